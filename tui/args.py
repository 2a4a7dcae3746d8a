"""The command line: the rules on how flags combine, and the typed ``Options`` the rest of txtop
reads. The parser itself (argument types, one small function per group of flags) is
tui/flags.py; its names are re-exported here.

Bad input raises ``UsageError`` with one line for the user (the caller prints it and exits 2).
No Textual here: the colour environment must be set before Textual is imported (tui/cli.py).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from txtop.core.filters import FilterSpec
from txtop.tui.flags import (
    COLOR_MODES,
    FORMATS,
    HISTOGRAM_MODES,
    MAX_DURATION_S,
    MAX_PID,
    METRICS_FORMATS,
    PROG,
    UsageError,
    build_parser,
)

__all__ = [
    "COLOR_MODES",
    "FORMATS",
    "HISTOGRAM_MODES",
    "MAX_DURATION_S",
    "MAX_PID",
    "METRICS_FORMATS",
    "PROG",
    "Options",
    "UsageError",
    "build_parser",
    "parse_args",
    "waterfall_filter",
]


@dataclass(frozen=True)
class Options:
    """The checked command line. Repeatable flags are tuples, empty when not given."""

    interfaces: tuple[str, ...] = ()  # -i before any --netns: txtop's own namespace
    netns: tuple[str, ...] = ()  # --netns NAME|PATH|PID, as given
    netns_interfaces: tuple[tuple[str, str], ...] = ()  # (--netns argument, -i after it)
    interval: float = 1.0
    theme: str | None = None
    color: str = "auto"
    ascii: bool = False
    no_mouse: bool = False
    once: bool = False
    format: str | None = None  # "json" with --once (unless --textfile), or a metrics format
    sample: int | None = None
    max_samples_per_s: int | None = None
    trace_duty: int | Literal["auto"] | None = None  # a percentage, or None for the default
    pids: tuple[int, ...] = ()
    no_probes: bool = False
    bql_hz: float | None = None  # BQL samples per second between ticks; None: the default
    comm: tuple[str, ...] = ()
    port: tuple[str, ...] = ()
    proto: tuple[str, ...] = ()
    host: tuple[str, ...] = ()  # --host CIDR
    demo: bool = False  # also set by --replay-bundled
    replay_bundled: bool = False
    record: str | None = None
    max_size: int | None = None  # --max-size in bytes: --record rotates at this size
    keep: int | None = None  # files a rotating --record keeps (None: the default)
    flight: float | None = None  # --flight SECONDS kept in memory
    flight_dir: str | None = None  # None: recordings.flight.default_flight_dir()
    flight_on: str | None = None  # "warn" | "crit": a finding of that severity writes
    duration: float | None = None
    headless: bool = False
    replay: str | None = None  # the first of replay_paths (None without --replay)
    replay_paths: tuple[str, ...] = ()  # every --replay PATH: files, or a directory
    at: float | None = None
    speed: float | None = None
    demo_tag: str = "demo"
    synthetic: tuple[int, int] | None = None  # (queues, CPUs)
    serve: tuple[str, int] | None = None  # --serve [ADDR:]PORT as (address, port)
    textfile: str | None = None
    metrics_histograms: str | None = None  # None: the exporter's default
    filter_spec: FilterSpec = field(default_factory=FilterSpec)  # from the flags above

    def given(self, *names: str) -> list[str]:
        """The command-line spelling of those of ``names`` that were given."""
        flags = {"interfaces": "-i", "pids": "--pid", "netns_interfaces": "-i"}
        out = []
        for name in names:
            value = getattr(self, name)
            if value is not None and value is not False and value != ():
                out.append(flags.get(name, "--" + name.replace("_", "-")))
        return out


# ---- how flags combine ------------------------------------------------------------------------


def _options(ns: argparse.Namespace) -> Options:
    """The parsed flags as Options: repeatable flags as tuples, --replay-bundled implying
    --demo, --once implying --format json (not with --textfile: that is its output)."""
    values = vars(ns)
    kwargs = {f.name: values[f.name] for f in dataclasses.fields(Options) if f.name in values}
    for name in ("interfaces", "pids", "comm", "port", "proto", "host", "netns"):
        kwargs[name] = tuple(kwargs[name] or ())
    kwargs["netns_interfaces"] = tuple(tuple(p) for p in values.get("netns_interfaces") or ())
    kwargs["demo"] = ns.demo or ns.replay_bundled
    kwargs["replay_paths"] = tuple(ns.replay_paths or ())
    kwargs["replay"] = kwargs["replay_paths"][0] if kwargs["replay_paths"] else None
    if ns.once and ns.format is None and ns.textfile is None:
        kwargs["format"] = "json"
    return Options(**kwargs)


def _check_outputs(opts: Options) -> None:
    if opts.format is not None and not (opts.once or opts.headless):
        raise UsageError("--format needs --once")
    if opts.format in METRICS_FORMATS and not opts.once:
        raise UsageError(
            f"--format {opts.format} needs --once (a daemon serves them: --serve or --textfile)"
        )
    if opts.serve is not None and opts.once:
        raise UsageError("--serve needs the dashboard or --headless, not --once")
    if opts.metrics_histograms is not None and not (
        opts.serve or opts.textfile or opts.format in METRICS_FORMATS
    ):
        raise UsageError(
            "--metrics-histograms needs --serve, --textfile or --once --format openmetrics"
        )
    if opts.no_probes and (
        opts.sample or opts.max_samples_per_s or opts.pids or opts.trace_duty is not None
    ):
        raise UsageError(
            "--sample, --max-samples-per-s, --trace-duty and --pid need the probes "
            "(drop --no-probes)"
        )


def _check_sources(opts: Options) -> None:
    if opts.netns and (opts.replay is not None or opts.synthetic is not None):
        raise UsageError(f"--netns cannot be combined with {opts.given('replay', 'synthetic')[0]}")
    if opts.replay is not None:
        clash = opts.given("demo", "interfaces", "record", "synthetic", "no_probes", "bql_hz")
        clash += opts.given("sample", "max_samples_per_s", "trace_duty")
        if clash:
            raise UsageError(f"--replay cannot be combined with {', '.join(clash)}")
    if opts.once and opts.headless:
        raise UsageError("--once and --headless cannot be combined (--once prints one snapshot)")
    if opts.once and (opts.duration is not None or opts.record):
        raise UsageError("--duration and --record need the dashboard or --headless, not --once")
    if opts.synthetic is not None and opts.demo:
        raise UsageError("--synthetic cannot be combined with --demo")
    if (opts.at is not None or opts.speed is not None) and not (opts.replay or opts.demo):
        raise UsageError(f"{opts.given('at', 'speed')[0]} needs --replay FILE")


def _check_recordings(opts: Options) -> None:
    """--max-size/--keep with --record; the flight recorder's flags with --flight."""
    if opts.max_size is not None and not opts.record:
        raise UsageError("--max-size needs --record FILE")
    if opts.keep is not None and opts.max_size is None:
        raise UsageError("--keep needs --max-size SIZE")
    if opts.flight is None:
        needs = opts.given("flight_dir", "flight_on")
        if needs:
            raise UsageError(f"{needs[0]} needs --flight SECONDS")
        return
    if opts.once:
        raise UsageError("--flight needs the dashboard or --headless, not --once")
    if opts.replay is not None:
        raise UsageError("--replay cannot be combined with --flight (it records live data)")


def waterfall_filter(opts: Options) -> FilterSpec:
    """The waterfall's starting filter from -i, --pid, --comm, --port, --proto, --host. Raises
    ValueError on a bad value."""
    flags = (
        ("--comm", opts.comm),
        ("--port", opts.port),
        ("--proto", opts.proto),
        ("--host", opts.host),
    )
    for flag, values in flags:
        if any(not v.strip(" ,") for v in values):
            raise ValueError(f"{flag}: empty value")
    return FilterSpec.from_cli(
        iface=opts.interfaces or None,
        pid=opts.pids or None,
        comm=opts.comm or None,
        port=opts.port or None,
        proto=opts.proto or None,
        host=opts.host or None,
    )


def parse_args(argv: Sequence[str] | None = None) -> Options:
    """The command line as Options. Raises UsageError on bad input."""
    opts = _options(build_parser().parse_args(argv))
    _check_outputs(opts)
    _check_sources(opts)
    _check_recordings(opts)
    try:
        return dataclasses.replace(opts, filter_spec=waterfall_filter(opts))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
