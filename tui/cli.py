"""txtop's command line: parse and check arguments, pick a data source, run the dashboard.

Textual is imported only after the colour environment is set (it reads
TEXTUAL_COLOR_SYSTEM at import time), so neither this module nor those it imports at the top
may import it.

The parts: tui/args.py (the flags, checked, as Options), tui/sources.py (the data source they
ask for), tui/session.py (starting and stopping a run, with the metrics exporter of --serve
and --textfile), tui/headless.py (--once and --headless); here the colours, the dashboard and
``main``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from txtop.core.text import exc_line
from txtop.themes import DEFAULT_THEME
from txtop.tui import session as sessions
from txtop.tui.args import PROG, Options, UsageError, parse_args
from txtop.tui.headless import run_headless, run_once
from txtop.tui.sources import check_position, replay_recording

# --color -> TEXTUAL_COLOR_SYSTEM (Rich's names); "none" also sets NO_COLOR.
_COLOR_SYSTEMS = {"truecolor": "truecolor", "256": "256", "16": "standard", "none": "standard"}


def _no_color_requested() -> bool:
    return bool(os.environ.get("NO_COLOR"))  # no-color.org: set and not empty


def configure_colors(opts: Options) -> str:
    """Set Textual's colour environment before Textual is imported; return the theme."""
    system = _COLOR_SYSTEMS.get(opts.color)
    if system is not None:
        os.environ["TEXTUAL_COLOR_SYSTEM"] = system
    if opts.color == "none":
        os.environ["NO_COLOR"] = "1"
    elif "NO_COLOR" in os.environ and not _no_color_requested():
        del os.environ["NO_COLOR"]  # empty NO_COLOR means "not set"; Textual checks presence
    if opts.theme is not None:
        return opts.theme
    return "mono" if _no_color_requested() else DEFAULT_THEME


def _not_terminals() -> list[str]:
    """The streams the dashboard needs that are not a terminal: it reads keys from stdin and
    draws on stderr (Textual's driver), so stdout may be redirected."""
    stderr = sys.__stderr__
    out = [] if sys.stdin is not None and sys.stdin.isatty() else ["stdin"]
    if stderr is None or not stderr.isatty():
        out.append("stderr")
    return out


def _check_terminal() -> None:
    streams = _not_terminals()
    if streams:
        which = " and ".join(streams)
        verb = "is" if len(streams) == 1 else "are"
        raise UsageError(
            f"the dashboard needs a terminal, but {which} {verb} not one (redirected?): it "
            "reads keys from stdin and draws on stderr; for scripts use --once --format json "
            "or --headless"
        )
    if os.environ.get("TERM", "").strip().lower() == "dumb":
        # Textual would draw with escape sequences such a terminal prints as garbage.
        raise UsageError(
            "this terminal (TERM=dumb) cannot show the full-screen dashboard; "
            "use --once --format json or --headless"
        )


def run_dashboard(opts: Options, theme: str) -> int:
    recording = replay_recording(opts)  # a bad recording is bad input, terminal or not
    if recording is not None:
        check_position(opts, recording)
    _check_terminal()
    session = sessions.start(opts, recording)
    try:
        from txtop.tui.app import TxtopApp

        source = session.source
        notices = [source.notice] if source.notice and source.mode != "replay" else []
        if session.exporter is not None:
            notices += session.exporter.describe()
        notices += session.warnings
        app = TxtopApp(
            source,
            theme=theme,
            ascii_only=opts.ascii,
            handle_signals=True,
            guard_terminal=True,
            control=session.tracer,
            recording=session.recording,
            duration_s=opts.duration,
            waterfall_filter=opts.filter_spec,
            notices=notices,
            missing_pids=session.missing_pids,
        )
        app.run(mouse=not opts.no_mouse)
        return int(app.return_code or 0)
    finally:
        session.stop()  # detaches the probes, removes the demo lab; idempotent
        textfile = session.exporter.textfile if session.exporter is not None else None
        if textfile is not None and textfile.error:
            sessions.warn(f"the last textfile write failed: {textfile.error}")


def _fail(message: str, code: int) -> NoReturn:
    sys.stderr.write(f"{PROG}: error: {message}\n")
    sys.stderr.flush()
    raise SystemExit(code)


def main(argv: Sequence[str] | None = None) -> None:
    opts: Options | None = None
    try:
        opts = parse_args(argv)
        theme = configure_colors(opts)
        if opts.once:
            code = run_once(opts)
        elif opts.headless:
            code = run_headless(opts)
        else:
            code = run_dashboard(opts, theme)
    except UsageError as exc:
        _fail(exc_line(exc), 2)
    except sessions.Stopped as exc:  # a stop signal during start-up: everything built is removed
        code = 0 if opts is not None and opts.headless else 128 + exc.sig
    except KeyboardInterrupt:
        code = 130
    except Exception as exc:
        if os.environ.get("TXTOP_DEBUG") == "1":
            raise
        _fail(exc_line(exc), 1)
    raise SystemExit(code)


if __name__ == "__main__":
    main()
