"""The command line's flags: the argument types (each raises ArgumentTypeError with a short
reason), one small function per group of flags, and ``build_parser``.

tui/args.py turns what this parser returns into the checked ``Options``. No Textual here: the
colour environment must be set before Textual is imported (tui/cli.py).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any, Literal, NoReturn

from txtop.core.source import MAX_INTERVAL_S, MIN_INTERVAL_S
from txtop.probes.live import MAX_SAMPLE_EVERY, MAX_SAMPLES_PER_S
from txtop.themes import DEFAULT_THEME, theme_names
from txtop.tui import __version__

PROG = "txtop"
FORMATS = ("json", "openmetrics", "prometheus")
METRICS_FORMATS = ("openmetrics", "prometheus")
HISTOGRAM_MODES = ("none", "device", "queue")  # txtop.exporters.HISTOGRAM_MODES
COLOR_MODES = ("auto", "truecolor", "256", "16", "none")
MAX_PID = 4_194_304  # PID_MAX_LIMIT on 64-bit kernels
MAX_DURATION_S = 366 * 86400.0


class UsageError(Exception):
    """Bad command-line input: one line on stderr, exit status 2."""


# ---- argument types (each raises ArgumentTypeError with a short reason) -----------------------


def _seconds(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None


def _interval(text: str) -> float:
    value = _seconds(text)
    if not math.isfinite(value) or not MIN_INTERVAL_S <= value <= MAX_INTERVAL_S:
        raise argparse.ArgumentTypeError(
            f"must be between {MIN_INTERVAL_S:g} and {MAX_INTERVAL_S:g} seconds, got {text!r}"
        )
    return value


def _duration(text: str) -> float:
    value = _seconds(text)
    if not math.isfinite(value) or not 0 < value <= MAX_DURATION_S:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds (and finite), got {text!r}")
    return value


def _position(text: str) -> float:
    value = _seconds(text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds, got {text!r}")
    return value


def _speed(text: str) -> float:
    from txtop.recordings.replay import SPEEDS

    try:
        value = float(text.rstrip("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a speed: {text!r}") from None
    if not math.isfinite(value) or not SPEEDS[0] <= value <= SPEEDS[-1]:
        raise argparse.ArgumentTypeError(
            f"must be between {SPEEDS[0]:g} and {SPEEDS[-1]:g}, got {text!r}"
        )
    return value


def _file_arg(text: str) -> str:
    if not text or "\0" in text:
        raise argparse.ArgumentTypeError("empty file name")
    return text


def _size(text: str) -> int:
    from txtop.recordings.rotation import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _flight_seconds(text: str) -> float:
    from txtop.recordings.flight import MAX_FLIGHT_S, MIN_FLIGHT_S

    value = _seconds(text)
    if not math.isfinite(value) or not MIN_FLIGHT_S <= value <= MAX_FLIGHT_S:
        raise argparse.ArgumentTypeError(
            f"must be {MIN_FLIGHT_S:g} to {MAX_FLIGHT_S:g} seconds, got {text!r}"
        )
    return value


def _demo_tag(text: str) -> str:
    from txtop.lab.netns import _TAG_RE

    if not _TAG_RE.match(text):
        raise argparse.ArgumentTypeError(f"invalid lab tag {text!r}: use 1-8 of [a-z0-9]")
    return text


def _int_in(low: int, high: int, what: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{what} must be {low}..{high}, got {text!r}")
        return value

    return parse


def _bql_hz(text: str) -> float:
    """0 (off) or 1..200 BQL samples per second."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or not (value == 0 or 1 <= value <= 200):
        raise argparse.ArgumentTypeError(f"HZ must be 0 (off) or 1..200, got {text!r}")
    return value


def _trace_duty(text: str) -> int | Literal["auto"]:
    """``auto`` or a percentage 1..100 of the time the per-packet probes stay attached."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not 'auto' or a whole number: {text!r}") from None
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError(f"PCT must be 1..100 or auto, got {text!r}")
    return value


def _ifname(text: str) -> str:
    from txtop.probes.readers.netdev import InterfaceError, validate_ifname

    try:
        return validate_ifname(text)
    except InterfaceError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _netns(text: str) -> str:
    from txtop.probes.readers.netns import NetnsError, netns_path

    try:
        netns_path(text)  # the form only; whether it exists is checked when the source starts
    except NetnsError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--netns ")) from None
    return text


class _InterfaceAction(argparse.Action):
    """-i: a device of txtop's own namespace, or, after a --netns, of that namespace."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        netns = getattr(namespace, "netns", None)
        if netns:
            pairs = list(getattr(namespace, "netns_interfaces", None) or ())
            namespace.netns_interfaces = [*pairs, (netns[-1], values)]
        else:
            namespace.interfaces = [*(getattr(namespace, "interfaces", None) or ()), values]


def _theme(text: str) -> str:
    names = theme_names()
    if text not in names:
        raise argparse.ArgumentTypeError(
            f"unknown theme {text!r} (choose from: {', '.join(names)})"
        )
    return text


def _shape(text: str) -> tuple[int, int]:
    from txtop.lab.synthetic import parse_shape

    try:
        return parse_shape(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# ---- the parser, group by group (the order is the order --help lists them in) ------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse would print the whole usage block; the contract is one line.
        raise UsageError(message)


def _add_view(add: Callable[..., Any]) -> None:
    add(
        "-i",
        "--interface",
        dest="interfaces",
        action=_InterfaceAction,
        type=_ifname,
        metavar="IFACE",
        help="interface to show; repeat for more (default: every interface with TX queues, "
        "lo last); after --netns, an interface in that namespace",
    )
    add(
        "--netns",
        action="append",
        type=_netns,
        metavar="NAME|PATH|PID",
        help="also show the devices of this network namespace (a name from `ip netns`, a "
        "namespace file such as /proc/PID/ns/net, or a PID), as NS/DEV; the -i after it name "
        "devices there (default: all with TX queues); repeat for more. Without a -i before "
        "the first --netns, txtop's own devices are not shown. Probes: by (namespace, ifindex)",
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


def _add_once(add: Callable[..., Any]) -> None:
    add(
        "--once",
        action="store_true",
        help="no dashboard: collect one interval once the probes are ready, print it, exit",
    )
    add(
        "--format",
        choices=FORMATS,
        default=None,
        help="output format of --once: json (default), or one metrics scrape in the "
        "openmetrics or prometheus text format",
    )


def _add_probes(add: Callable[..., Any]) -> None:
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
        "--trace-duty",
        type=_trace_duty,
        default=None,
        metavar="auto|PCT",
        help="share of the time the per-packet probes are attached: auto (default: always "
        "on a quiet machine, short windows under a flood, ~1%% of one CPU) or 1..100",
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
    add(
        "--bql-hz",
        type=_bql_hz,
        default=None,
        metavar="HZ",
        help="sample each TX queue's BQL bytes in flight HZ times a second between refreshes "
        "(peak, mean, share at the limit; default 50; 0 = only at each refresh)",
    )


def _add_filter(add: Callable[..., Any]) -> None:
    add(
        "--comm",
        action="append",
        metavar="NAME",
        help="waterfall: show only packets sent by this command (glob); repeat for more",
    )
    add(
        "--port",
        action="append",
        metavar="N[-M]",
        help="trace only packets from or to this port or port range (checked in the kernel)",
    )
    add(
        "--proto",
        action="append",
        metavar="PROTO",
        help="trace only this protocol: tcp, udp, icmp, ..., ipv4, ipv6, arp (in the kernel)",
    )
    add(
        "--host",
        action="append",
        metavar="CIDR",
        help="trace only packets from or to this address or prefix (in the kernel)",
    )


def _add_demo_and_recording(add: Callable[..., Any]) -> None:
    add(
        "--demo",
        action="store_true",
        help="as root: build a private lab (namespaces, veth with 4 TX queues, mq/tbf, "
        "generated traffic), show it, remove it on exit; otherwise replay a recording of it",
    )
    add(
        "--replay-bundled",
        action="store_true",
        help="replay the recording of the demo lab shipped with txtop (also as root)",
    )
    add(
        "--record",
        type=_file_arg,
        metavar="FILE",
        help="write every snapshot and sampled packet to FILE (a new file, mode 0600)",
    )
    add(
        "--max-size",
        type=_size,
        metavar="SIZE",
        help="--record: keep FILE under SIZE (4K..2G, e.g. 100M): then it becomes FILE.1 "
        "(FILE.1 becomes FILE.2, ...) and a new FILE starts",
    )
    add(
        "--keep",
        type=_int_in(1, 1000, "N"),
        metavar="N",
        help="--max-size: keep N files in all, FILE and FILE.1 .. FILE.<N-1> (default 5)",
    )
    add(
        "--duration",
        type=_duration,
        metavar="SECONDS",
        help="stop after SECONDS (dashboard or --headless)",
    )
    add(
        "--headless",
        action="store_true",
        help="no dashboard (cron, systemd, scripts): with --record only record; otherwise "
        "print one JSON snapshot per line; SIGINT/SIGTERM end it with status 0",
    )


def _add_flight(add: Callable[..., Any]) -> None:
    add(
        "--flight",
        type=_flight_seconds,
        metavar="SECONDS",
        help="flight recorder: keep the last SECONDS (1..3600) in memory and write them as a "
        "recording to --flight-dir on w (dashboard), SIGUSR1, or --flight-on",
    )
    add(
        "--flight-dir",
        type=_file_arg,
        metavar="DIR",
        help="where flight recordings go, created 0700 (default /var/lib/txtop/flight as "
        "root, else $XDG_STATE_HOME/txtop/flight or ~/.local/state/txtop/flight)",
    )
    add(
        "--flight-on",
        choices=("warn", "crit"),
        default=None,
        help="also write when a finding of this severity (or worse) starts in the snapshots' "
        "findings (and 10 s after it; at most once a minute)",
    )


def _add_replay(add: Callable[..., Any]) -> None:
    add(
        "--replay",
        dest="replay_paths",
        nargs="+",
        type=_file_arg,
        metavar="PATH",
        help="play a recording through the dashboard (no root or bcc needed); several files "
        "(the parts of a --max-size recording: FILE*) or a directory play as one, in order; "
        "with --once, print the snapshot of the whole recording",
    )
    add(
        "--at",
        type=_position,
        metavar="SECONDS",
        help="replay: start at SECONDS from the beginning; with --once, the snapshot there",
    )
    add("--speed", type=_speed, metavar="X", help="replay speed, 0.25 to 16 (default 1)")


def _listen(text: str) -> tuple[str, int]:
    from txtop.exporters import ExporterError, parse_listen

    try:
        return parse_listen(text)
    except ExporterError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _textfile(text: str) -> str:
    text = _file_arg(text)
    if not text.endswith(".prom") or text.rsplit("/", 1)[-1].startswith("."):
        raise argparse.ArgumentTypeError(
            f"{text!r}: the name must end in .prom (node_exporter reads only those)"
        )
    return text


def _add_exporter(add: Callable[..., Any]) -> None:
    add(
        "--serve",
        type=_listen,
        metavar="[ADDR:]PORT",
        help="serve Prometheus/OpenMetrics metrics on http://ADDR:PORT/metrics (ADDR "
        "default 127.0.0.1; [::1]:PORT for IPv6), beside the dashboard or with --headless",
    )
    add(
        "--textfile",
        type=_textfile,
        metavar="PATH",
        help="write the metrics to PATH (*.prom, for node_exporter's textfile collector), "
        "atomically every interval; with --once, once",
    )
    add(
        "--metrics-histograms",
        choices=HISTOGRAM_MODES,
        default=None,
        help="stage-latency histograms per device (default), per TX queue, or none",
    )


def _add_developer(add: Callable[..., Any]) -> None:
    # The demo lab's tag (tests run their own lab beside a user's demo).
    add("--demo-tag", type=_demo_tag, default="demo", help=argparse.SUPPRESS)
    # A synthetic source of QUEUESxCPUS, for benchmarks and UI work.
    add("--synthetic", type=_shape, default=None, metavar="QxC", help=argparse.SUPPRESS)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Live dashboard of the Linux transmit path: BQL and qdisc backlog per TX "
        "queue, NET_TX/NET_RX softirqs per CPU, and sampled packets stage by stage.",
        allow_abbrev=False,
    )
    for add_group in (
        _add_view,
        _add_once,
        _add_probes,
        _add_filter,
        _add_demo_and_recording,
        _add_flight,
        _add_replay,
        _add_exporter,
        _add_developer,
    ):
        add_group(parser.add_argument)
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    return parser
