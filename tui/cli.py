"""txtop's command line: parse and check arguments, pick a data source, run the dashboard.

Textual is imported only after the colour environment is set (it reads
TEXTUAL_COLOR_SYSTEM at import time), so this module must not import it at the top.

Adding a data source (record, replay, demo...) is one branch in ``build_source``; the app
takes any SnapshotSource.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import queue
import sys
import time
from collections.abc import Sequence
from typing import Any, NoReturn

from txtop.probes.model import ProbeStatus, Snapshot
from txtop.probes.source import MAX_INTERVAL_S, MIN_INTERVAL_S, SnapshotSource
from txtop.probes.tracer import MAX_SAMPLE_EVERY, MAX_SAMPLES_PER_S
from txtop.themes import DEFAULT_THEME, theme_names
from txtop.tui import __version__

PROG = "txtop"
COLOR_MODES = ("auto", "truecolor", "256", "16", "none")
# --color -> TEXTUAL_COLOR_SYSTEM (Rich's names); "none" also sets NO_COLOR.
_COLOR_SYSTEMS = {"truecolor": "truecolor", "256": "256", "16": "standard", "none": "standard"}
PROBE_READY_TIMEOUT_S = 60.0  # --once: longest wait for the probes to compile and attach
MAX_PID = 4_194_304  # PID_MAX_LIMIT on 64-bit kernels


class UsageError(Exception):
    """Bad command-line input: one line on stderr, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse would print the whole usage block; the contract is one line.
        raise UsageError(message)


# ---- argument types (each raises ArgumentTypeError with a short reason) -----------------------


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or not MIN_INTERVAL_S <= value <= MAX_INTERVAL_S:
        raise argparse.ArgumentTypeError(
            f"must be between {MIN_INTERVAL_S:g} and {MAX_INTERVAL_S:g} seconds, got {text!r}"
        )
    return value


def _int_in(low: int, high: int, what: str) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{what} must be {low}..{high}, got {text!r}")
        return value

    return parse


def _ifname(text: str) -> str:
    from txtop.probes.netdev import InterfaceError, validate_ifname

    try:
        return validate_ifname(text)
    except InterfaceError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _theme(text: str) -> str:
    names = theme_names()
    if text not in names:
        raise argparse.ArgumentTypeError(
            f"unknown theme {text!r} (choose from: {', '.join(names)})"
        )
    return text


def _shape(text: str) -> tuple[int, int]:
    from txtop.tui.synthetic import parse_shape

    try:
        return parse_shape(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Live dashboard of the Linux transmit path: BQL and qdisc backlog per TX "
        "queue, NET_TX/NET_RX softirqs per CPU, and sampled packets stage by stage.",
        allow_abbrev=False,
    )
    add = parser.add_argument
    add(
        "-i",
        "--interface",
        dest="interfaces",
        action="append",
        type=_ifname,
        metavar="IFACE",
        help="interface to show; repeat for more (default: every interface with TX queues, "
        "lo last)",
    )
    add(
        "-d",
        "--interval",
        type=_interval,
        default=1.0,
        metavar="SECONDS",
        help=f"refresh interval, {MIN_INTERVAL_S:g}..{MAX_INTERVAL_S:g} (default 1)",
    )
    add(
        "--theme",
        type=_theme,
        default=None,
        metavar="NAME",
        help=f"colour theme: {', '.join(theme_names())} (default {DEFAULT_THEME}; "
        "mono when NO_COLOR is set)",
    )
    add(
        "--color",
        choices=COLOR_MODES,
        default="auto",
        help="colour depth; 'none' means no colour at all (implies the mono theme)",
    )
    add("--ascii", action="store_true", help="ASCII characters only for borders and bars")
    add("--no-mouse", action="store_true", help="do not capture the mouse")
    add(
        "--once",
        action="store_true",
        help="no dashboard: collect one interval once the probes are ready, print it, exit",
    )
    add("--format", choices=("json",), default=None, help="output format of --once (json)")
    add(
        "--sample",
        type=_int_in(1, MAX_SAMPLE_EVERY, "N"),
        default=None,
        metavar="N",
        help="trace one packet in N for the waterfall",
    )
    add(
        "--max-samples-per-s",
        type=_int_in(1, MAX_SAMPLES_PER_S, "R"),
        default=None,
        metavar="R",
        help="at most R traced packets per second",
    )
    add(
        "--pid",
        dest="pids",
        action="append",
        type=_int_in(1, MAX_PID, "PID"),
        metavar="PID",
        help="trace only packets sent by this process; repeat for more",
    )
    add(
        "--no-probes",
        action="store_true",
        help="load no BPF programs (sysfs, netlink and procfs numbers only)",
    )
    # Developer option: a synthetic source of QUEUESxCPUS, for benchmarks and UI work.
    add("--synthetic", type=_shape, default=None, metavar="QxC", help=argparse.SUPPRESS)
    add("--version", action="version", version=f"{PROG} {__version__}")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    if args.format is not None and not args.once:
        raise UsageError("--format needs --once")
    if args.once and args.format is None:
        args.format = "json"
    if args.no_probes and (args.sample or args.max_samples_per_s or args.pids):
        raise UsageError(
            "--sample, --max-samples-per-s and --pid need the probes (drop --no-probes)"
        )
    return args


# ---- environment ------------------------------------------------------------------------------


def _no_color_requested() -> bool:
    return bool(os.environ.get("NO_COLOR"))  # no-color.org: set and not empty


def configure_colors(args: argparse.Namespace) -> str:
    """Set Textual's colour environment before Textual is imported; return the theme."""
    system = _COLOR_SYSTEMS.get(args.color)
    if system is not None:
        os.environ["TEXTUAL_COLOR_SYSTEM"] = system
    if args.color == "none":
        os.environ["NO_COLOR"] = "1"
    elif "NO_COLOR" in os.environ and not _no_color_requested():
        del os.environ["NO_COLOR"]  # empty NO_COLOR means "not set"; Textual checks presence
    if args.theme is not None:
        return str(args.theme)
    return "mono" if _no_color_requested() else DEFAULT_THEME


# ---- sources ----------------------------------------------------------------------------------


def probe_unavailable_reason() -> str | None:
    """Why the BPF probes cannot run here, or None when they can."""
    try:
        from txtop.probes import tracer
    except ImportError as exc:
        return f"BPF tracer not installed ({exc})"
    reason: str | None = tracer.probe_prerequisites()
    return reason


def _make_tracer(args: argparse.Namespace, names: list[str] | None) -> Any:
    from txtop.probes import tracer
    from txtop.probes.netdev import read_device

    ifindexes = None
    if names:
        ifindexes = [d.ifindex for d in (read_device(n) for n in names) if d is not None]
    args.tracer_ifindexes = ifindexes
    kwargs: dict[str, Any] = {"ifindexes": ifindexes, "pids": args.pids}
    if args.sample is not None:
        kwargs["sample_every"] = args.sample
    if args.max_samples_per_s is not None:
        kwargs["max_samples_per_s"] = args.max_samples_per_s
    try:
        return tracer.Tracer(**kwargs)
    except ValueError as exc:  # a value the tracer refuses is bad input, not a crash
        raise UsageError(str(exc)) from None


class TracerControl:
    """What the dashboard may change in a running tracer: the sampling rate, and the kernel
    part of the packet filter (waterfall keys), always within the command line's -i/--pid.

    An empty set means "everything" to the tracer, so a filter that would leave nothing
    (outside the command line's limits) keeps those limits; the waterfall still filters its
    own rows in user space.
    """

    def __init__(self, tracer: Any, base_ifindexes: list[int] | None, base_pids: list[int] | None):
        self.tracer = tracer
        self.base_ifindexes = frozenset(base_ifindexes or ())
        self.base_pids = frozenset(base_pids or ())
        self.max_per_s: int | None = None

    def set_sampling(self, every: int, max_per_s: int) -> None:
        self.tracer.set_sampling(every, max_per_s)

    def set_filter(self, spec: Any) -> None:
        from txtop.probes.netdev import list_tx_interfaces, read_device

        names = {}
        for name in list_tx_interfaces():
            dev = read_device(name)
            if dev is not None:
                names[name] = dev.ifindex
        wanted = spec.kernel_filter(names)
        self.tracer.set_filters(
            ifindexes=sorted(_narrow(self.base_ifindexes, wanted.ifindexes)) or None,
            pids=sorted(_narrow(self.base_pids, wanted.pids)) or None,
        )


def _narrow(base: frozenset[int], wanted: frozenset[int] | None) -> frozenset[int]:
    """The command line's set narrowed by the filter's (empty = no limit on either side)."""
    if not wanted:
        return base
    if not base:
        return wanted
    return (base & wanted) or base


def build_source(args: argparse.Namespace) -> SnapshotSource:
    """The data source the command line asks for. One branch per kind of source."""
    if args.synthetic is not None:
        from txtop.tui.synthetic import SyntheticSource

        n_queues, n_cpus = args.synthetic
        return SyntheticSource(n_queues, n_cpus, interval_s=args.interval)
    return _live_source(args)


def _live_source(args: argparse.Namespace) -> SnapshotSource:
    from txtop.probes.collector import Collector, LiveSource
    from txtop.probes.netdev import InterfaceError, resolve_interfaces

    try:
        names = resolve_interfaces(args.interfaces) if args.interfaces else None
    except InterfaceError as exc:
        raise UsageError(str(exc)) from None
    status: ProbeStatus | None = None
    tracer = None
    if args.no_probes:
        status = ProbeStatus("off", reason="--no-probes")
    else:
        reason = probe_unavailable_reason()
        if reason is not None:
            status = ProbeStatus("unavailable", reason=reason)
        else:
            tracer = _make_tracer(args, names)
    try:
        collector = Collector(names, tracer=tracer)
    except InterfaceError as exc:
        if tracer is not None:
            tracer.close()
        raise UsageError(str(exc)) from None
    if status is not None:
        collector.probe_status = status
    # LiveSource compiles and attaches the probes on its own thread, after the UI is up.
    return LiveSource(collector, interval_s=args.interval, mode="live")


# ---- running ----------------------------------------------------------------------------------


def collect_once(
    source: SnapshotSource, ready_timeout_s: float = PROBE_READY_TIMEOUT_S
) -> Snapshot:
    """Start ``source``, wait until the probes are running (or known unavailable), let one
    full interval pass, and return the snapshot for that interval."""
    inbox: queue.Queue[Snapshot] = queue.Queue()
    source.start(inbox.put)
    ready = False
    deadline = time.monotonic() + ready_timeout_s + 3 * source.interval_s
    try:
        while True:
            if source.error is not None:
                raise RuntimeError(f"data source failed: {_one_line(source.error)}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError("timed out waiting for data")
            try:
                snap = inbox.get(timeout=min(left, 0.2))
            except queue.Empty:
                continue
            if ready:
                return snap
            # This snapshot primes the rates; the next one covers a whole interval.
            ready = snap.probes.state != "starting" or time.monotonic() > deadline - (
                3 * source.interval_s
            )
    finally:
        source.stop()


def run_once(args: argparse.Namespace) -> int:
    snap = collect_once(build_source(args))
    sys.stdout.write(json.dumps(snap.to_dict(), separators=(",", ":")) + "\n")
    sys.stdout.flush()
    return 0


def tracer_control(source: SnapshotSource, args: argparse.Namespace) -> TracerControl | None:
    collector = getattr(source, "collector", None)
    tracer = getattr(collector, "tracer", None)
    if tracer is None:
        return None
    return TracerControl(tracer, getattr(args, "tracer_ifindexes", None), args.pids)


def run_dashboard(args: argparse.Namespace, theme: str) -> int:
    if not (sys.stdin.isatty() and sys.__stderr__ is not None and sys.__stderr__.isatty()):
        raise UsageError("the dashboard needs a terminal; for scripts use --once --format json")
    source = build_source(args)
    try:
        from txtop.tui.app import TxtopApp, terminal_driver_class

        app = TxtopApp(
            source,
            theme=theme,
            ascii_only=args.ascii,
            handle_signals=True,
            driver_class=terminal_driver_class(),
            control=tracer_control(source, args),
        )
        app.run(mouse=not args.no_mouse)
        return int(app.return_code or 0)
    finally:
        source.stop()  # detaches the probes; idempotent


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _fail(message: str, code: int) -> NoReturn:
    sys.stderr.write(f"{PROG}: error: {message}\n")
    sys.stderr.flush()
    raise SystemExit(code)


def main(argv: Sequence[str] | None = None) -> None:
    try:
        args = parse_args(argv)
        theme = configure_colors(args)
        code = run_once(args) if args.once else run_dashboard(args, theme)
    except UsageError as exc:
        _fail(_one_line(exc), 2)
    except KeyboardInterrupt:
        code = 130
    except Exception as exc:
        if os.environ.get("TXTOP_DEBUG") == "1":
            raise
        _fail(_one_line(exc), 1)
    raise SystemExit(code)


if __name__ == "__main__":
    main()
