"""txtop's command line: parse and check arguments, pick a data source, run the dashboard.

Textual is imported only after the colour environment is set (it reads
TEXTUAL_COLOR_SYSTEM at import time), so this module must not import it at the top.

Adding a data source (record, replay, demo...) is one branch in ``build_source``; the app
takes any SnapshotSource.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from txtop.core.model import ProbeStatus, Snapshot
from txtop.core.source import MAX_INTERVAL_S, MIN_INTERVAL_S, SnapshotSource
from txtop.core.text import exc_line
from txtop.probes.bpf.tracer import MAX_SAMPLE_EVERY, MAX_SAMPLES_PER_S
from txtop.themes import DEFAULT_THEME, theme_names
from txtop.tui import __version__

PROG = "txtop"
COLOR_MODES = ("auto", "truecolor", "256", "16", "none")
# --color -> TEXTUAL_COLOR_SYSTEM (Rich's names); "none" also sets NO_COLOR.
_COLOR_SYSTEMS = {"truecolor": "truecolor", "256": "256", "16": "standard", "none": "standard"}
PROBE_READY_TIMEOUT_S = 60.0  # --once: longest wait for the probes to compile and attach
MAX_PID = 4_194_304  # PID_MAX_LIMIT on 64-bit kernels
MAX_DURATION_S = 366 * 86400.0
BUNDLED_RECORDING = "demo.txtop"  # in txtop.recordings/data, made by scripts/record_bundled.py
DEMO_REPLAY_NOTICE = "demo: not root, replaying a recording of the lab"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


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


def _duration(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or not 0 < value <= MAX_DURATION_S:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds (and finite), got {text!r}")
    return value


def _position(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
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


def _demo_tag(text: str) -> str:
    from txtop.lab.netns import _TAG_RE

    if not _TAG_RE.match(text):
        raise argparse.ArgumentTypeError(f"invalid lab tag {text!r}: use 1-8 of [a-z0-9]")
    return text


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


def _trace_duty(text: str) -> str | int:
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
        "--comm",
        action="append",
        metavar="NAME",
        help="waterfall: show only packets sent by this command (glob); repeat for more",
    )
    add(
        "--port",
        action="append",
        metavar="N[-M]",
        help="waterfall: show only packets from or to this port or port range",
    )
    add(
        "--proto",
        action="append",
        metavar="PROTO",
        help="waterfall: show only this protocol (udp, tcp, icmp, ...)",
    )
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
    add(
        "--replay",
        type=_file_arg,
        metavar="FILE",
        help="play a recording through the dashboard (no root or bcc needed); with --once, "
        "print the snapshot of the whole recording",
    )
    add(
        "--at",
        type=_position,
        metavar="SECONDS",
        help="replay: start at SECONDS from the beginning; with --once, the snapshot there",
    )
    add(
        "--speed",
        type=_speed,
        metavar="X",
        help="replay speed, 0.25 to 16 (default 1)",
    )
    # Developer option: the demo lab's tag (tests run their own lab beside a user's demo).
    add("--demo-tag", type=_demo_tag, default="demo", help=argparse.SUPPRESS)
    # Developer option: a synthetic source of QUEUESxCPUS, for benchmarks and UI work.
    add("--synthetic", type=_shape, default=None, metavar="QxC", help=argparse.SUPPRESS)
    add("--version", action="version", version=f"{PROG} {__version__}")
    return parser


def _given(args: argparse.Namespace, *names: str) -> list[str]:
    """The command-line spelling of those of ``names`` that were given."""
    flags = {"interfaces": "-i", "pids": "--pid"}
    out = []
    for name in names:
        value = getattr(args, name)
        if value not in (None, False, []):
            out.append(flags.get(name, "--" + name.replace("_", "-")))
    return out


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    if args.format is not None and not (args.once or args.headless):
        raise UsageError("--format needs --once")
    if args.once and args.format is None:
        args.format = "json"
    if args.no_probes and (
        args.sample or args.max_samples_per_s or args.pids or args.trace_duty is not None
    ):
        raise UsageError(
            "--sample, --max-samples-per-s, --trace-duty and --pid need the probes "
            "(drop --no-probes)"
        )
    if args.replay_bundled:
        args.demo = True
    if args.replay is not None:
        clash = _given(args, "demo", "interfaces", "record", "synthetic", "no_probes")
        clash += _given(args, "sample", "max_samples_per_s", "trace_duty")
        if clash:
            raise UsageError(f"--replay cannot be combined with {', '.join(clash)}")
    if args.once and args.headless:
        raise UsageError("--once and --headless cannot be combined (--once prints one snapshot)")
    if args.once and (args.duration is not None or args.record):
        raise UsageError("--duration and --record need the dashboard or --headless, not --once")
    if args.synthetic is not None and args.demo:
        raise UsageError("--synthetic cannot be combined with --demo")
    if (args.at is not None or args.speed is not None) and not (args.replay or args.demo):
        raise UsageError(f"{_given(args, 'at', 'speed')[0]} needs --replay FILE")
    try:
        args.filter_spec = waterfall_filter(args)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return args


def waterfall_filter(args: argparse.Namespace) -> Any:
    """The waterfall's starting filter from -i, --pid, --comm, --port, --proto."""
    from txtop.core.filters import FilterSpec

    for flag, values in (("--comm", args.comm), ("--port", args.port), ("--proto", args.proto)):
        if any(not v.strip(" ,") for v in values or ()):
            raise ValueError(f"{flag}: empty value")
    return FilterSpec.from_cli(
        iface=args.interfaces,
        pid=args.pids,
        comm=args.comm,
        port=args.port,
        proto=args.proto,
    )


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
        from txtop.probes.bpf import tracer
    except ImportError as exc:
        return f"BPF tracer not installed ({exc})"
    reason: str | None = tracer.probe_prerequisites()
    return reason


def _make_tracer(args: argparse.Namespace, names: list[str] | None) -> Any:
    from txtop.probes.bpf import tracer
    from txtop.probes.readers.netdev import read_device

    ifindexes = None
    if names:
        ifindexes = [d.ifindex for d in (read_device(n) for n in names) if d is not None]
    args.tracer_ifindexes = ifindexes
    kwargs: dict[str, Any] = {"ifindexes": ifindexes, "pids": args.pids}
    if args.sample is not None:
        kwargs["sample_every"] = args.sample
    if args.max_samples_per_s is not None:
        kwargs["max_samples_per_s"] = args.max_samples_per_s
    if isinstance(args.trace_duty, int):
        kwargs["trace_duty"] = args.trace_duty / 100.0
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
        from txtop.probes.readers.netdev import list_tx_interfaces, read_device

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


@dataclasses.dataclass
class Recording:
    """A recording read for replay: its intact snapshots and why it ends early ("" if not)."""

    path: str
    snapshots: list[Snapshot]
    damage: str
    notice: str = ""

    @property
    def total_s(self) -> float:
        first = self.snapshots[0]
        return self.snapshots[-1].time - (first.time - first.interval_s)


def bundled_recording_path() -> contextlib.AbstractContextManager[Path]:
    from importlib import resources

    return resources.as_file(resources.files("txtop.recordings") / "data" / BUNDLED_RECORDING)


def load_recording(path: str | Path, notice: str = "") -> Recording:
    """Read a recording for replay. A file that is not one is bad input (UsageError)."""
    from txtop.recordings.recording import RecordingError, read_recording

    try:
        result = read_recording(path)
    except RecordingError as exc:
        raise UsageError(str(exc)) from None
    if not result.snapshots:
        raise UsageError(f"{path}: the recording holds no snapshot ({result.damage})")
    return Recording(str(path), result.snapshots, result.damage, notice)


def replay_recording(args: argparse.Namespace) -> Recording | None:
    """The recording this command line replays: --replay FILE, the bundled one for
    --replay-bundled, or for --demo without root. None when the source is live."""
    if args.replay is not None:
        return load_recording(args.replay)
    if not args.demo:
        return None
    if not args.replay_bundled and os.geteuid() == 0:
        return None
    if args.replay_bundled:
        return _bundled(args, "", "--replay-bundled")
    return _bundled(args, DEMO_REPLAY_NOTICE, "--demo without root")


def _bundled(args: argparse.Namespace, notice: str, why: str) -> Recording:
    clash = _given(
        args, "interfaces", "record", "no_probes", "sample", "max_samples_per_s", "trace_duty"
    )
    if clash:
        raise UsageError(f"{why} replays a recording: {', '.join(clash)} cannot be used")
    with bundled_recording_path() as path:
        if not path.is_file():
            raise RuntimeError(f"the bundled demo recording is missing ({path})")
        return load_recording(path, notice)


def check_position(args: argparse.Namespace, recording: Recording) -> None:
    if args.at is not None and args.at > recording.total_s + 1e-6:
        raise UsageError(
            f"--at {args.at:g}: outside the recording (0 to {recording.total_s:.1f} seconds)"
        )


def build_source(args: argparse.Namespace, recording: Recording | None = None) -> SnapshotSource:
    """The data source the command line asks for. One branch per kind of source."""
    if args.synthetic is not None:
        from txtop.lab.synthetic import SyntheticSource

        n_queues, n_cpus = args.synthetic
        return SyntheticSource(n_queues, n_cpus, interval_s=args.interval)
    if recording is None:
        recording = replay_recording(args)
    if recording is not None:
        return _replay_source(args, recording)
    if args.demo:
        return _demo_source(args)
    return _live_source(args)


def _replay_source(args: argparse.Namespace, recording: Recording) -> SnapshotSource:
    from txtop.recordings.replay import ReplaySource

    check_position(args, recording)
    source = ReplaySource(
        recording.snapshots,
        speed=args.speed or 1.0,
        damage=recording.damage,
        loop=args.demo,  # the demo runs until quit; a replay holds its last frame
        notice=recording.notice,
    )
    if args.at is not None:
        source.seek(args.at)
    return source


def _demo_source(args: argparse.Namespace) -> SnapshotSource:
    """As root: the lab, then a live source over it that removes the lab when it closes.
    When the lab cannot be built, the recording of it, saying why."""
    from txtop.lab.demo import DemoLab
    from txtop.lab.netns import LabError

    demo = DemoLab(tag=args.demo_tag)
    try:
        demo.start()
    except LabError as exc:
        if args.record:
            raise RuntimeError(f"demo: cannot build the lab: {exc_line(exc)}") from None
        notice = f"demo: {exc_line(exc)}; replaying a recording of the lab"
        return _replay_source(args, _bundled(args, notice, "--demo without a lab"))
    try:
        return _live_source(args, demo=demo)
    except BaseException:
        demo.stop()
        raise


def _live_source(args: argparse.Namespace, demo: Any = None) -> SnapshotSource:
    from txtop.probes.collector import Collector, LiveSource
    from txtop.probes.readers.netdev import InterfaceError, resolve_interfaces

    try:
        if args.interfaces:
            names = resolve_interfaces(args.interfaces)
        elif demo is not None:
            names = [demo.dev]
        else:
            names = None
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
    if demo is not None:
        from txtop.lab.demo import DemoSource

        return DemoSource(demo, collector, interval_s=args.interval)
    return LiveSource(collector, interval_s=args.interval, mode="live")


# ---- running ----------------------------------------------------------------------------------


class Stopped(BaseException):
    """A stop signal arrived while txtop was starting (e.g. building the demo lab)."""

    def __init__(self, sig: int) -> None:
        super().__init__(signal.Signals(sig).name)
        self.sig = sig


@contextlib.contextmanager
def stop_signals(on_signal: Callable[[int], None]) -> Iterator[list[int]]:
    """Route SIGTERM/SIGINT/SIGHUP to ``on_signal`` (main thread) and restore afterwards.
    Yields the list of signals received."""
    got: list[int] = []

    def handler(sig: int, frame: object) -> None:
        got.append(sig)
        on_signal(sig)

    old = {}
    for sig in STOP_SIGNALS:
        try:
            old[sig] = signal.signal(sig, handler)
        except (ValueError, OSError):  # not the main thread: leave the signals alone
            pass
    try:
        yield got
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)


def _raise_stopped(sig: int) -> None:
    raise Stopped(sig)


def _ignore(sig: int) -> None:
    """During clean-up: remember the signal, finish removing the lab, then exit."""


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
                raise RuntimeError(f"data source failed: {exc_line(source.error)}")
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
        with stop_signals(_ignore):
            source.stop()


def replay_once(args: argparse.Namespace, recording: Recording) -> Snapshot:
    """--once on a recording: the whole window (aggregate), or the frame at --at."""
    from txtop.recordings.replay import aggregate, index_at

    check_position(args, recording)
    snaps = recording.snapshots
    t0 = snaps[0].time - snaps[0].interval_s
    if args.at is None:
        snap = aggregate(snaps)
        index = len(snaps) - 1
    else:
        index = index_at([s.time - t0 for s in snaps], args.at)
        snap = snaps[index]
    info = {
        "index": index,
        "count": len(snaps),
        "at_s": round(snaps[index].time - t0, 3),
        "total_s": round(recording.total_s, 3),
        "speed": None,
        "paused": True,
        "damage": recording.damage,
        "notice": recording.notice,
        "jump": False,
        "window": "all" if args.at is None else "frame",
    }
    return dataclasses.replace(snap, mode="replay", replay=info)


def _warn_recording(recording: Recording) -> None:
    if recording.notice:
        _warn(recording.notice)
    if recording.damage:
        _warn(f"recording damaged: {recording.damage} - showing the intact part")


def run_once(args: argparse.Namespace) -> int:
    recording = replay_recording(args)
    if recording is not None:
        _warn_recording(recording)
        snap = replay_once(args, recording)
    else:
        with stop_signals(_raise_stopped):
            source = build_source(args)
        _warn_source(source)
        snap = collect_once(source)
    sys.stdout.write(json.dumps(snap.to_dict(), separators=(",", ":")) + "\n")
    sys.stdout.flush()
    return 0


def open_recorder(args: argparse.Namespace) -> Any:
    from txtop.recordings.recording import Recorder, RecordingError

    if not args.record:
        return None
    try:
        return Recorder(args.record)
    except RecordingError as exc:
        raise UsageError(str(exc)) from None


def _discard_recorder(recorder: Any) -> None:
    """txtop did not start after creating the recording: remove the empty file it made."""
    if recorder is None:
        return
    recorder.close()
    if recorder.frames == 0:
        with contextlib.suppress(OSError):
            os.unlink(recorder.path)


def _start(
    args: argparse.Namespace, recording: Recording | None = None
) -> tuple[SnapshotSource, Any]:
    """The recorder (created first: a bad --record path is bad input before anything is
    built) and the source; a stop signal while the demo lab is being built unwinds it."""
    recorder = open_recorder(args)
    try:
        with stop_signals(_raise_stopped):
            source = build_source(args, recording)
    except BaseException:
        _discard_recorder(recorder)
        raise
    return source, recorder


def _warn_source(source: SnapshotSource) -> None:
    notice = getattr(source, "notice", "")
    damage = getattr(source, "damage", "")
    if notice:
        _warn(notice)
    if damage:
        _warn(f"recording damaged: {damage} - showing the intact part")


class _JsonLines:
    """--headless without --record: one JSON snapshot per line on stdout."""

    def __init__(self) -> None:
        self.broken = False

    def write(self, snap: Snapshot) -> None:
        if self.broken:
            return
        try:
            sys.stdout.write(json.dumps(snap.to_dict(), separators=(",", ":")) + "\n")
            sys.stdout.flush()
        except BrokenPipeError:  # `txtop --headless | head -1`: the reader is done
            self.broken = True
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)


def run_headless(args: argparse.Namespace) -> int:
    """No terminal: record and/or print JSON lines until --duration, a signal, or the end of
    a replay. Stop signals end it normally (status 0) after the recording is closed."""
    out = None if args.record else _JsonLines()
    recording = replay_recording(args)
    if recording is not None:
        assert out is not None  # --record with a replay was refused by parse_args
        return _headless_replay(args, recording, out)
    source, recorder = _start(args)
    _warn_source(source)
    from txtop.recordings.recording import RecordingSink

    inbox: queue.Queue[Snapshot] = queue.Queue(maxsize=1000)
    stop = threading.Event()

    def deliver(snap: Snapshot) -> None:
        if out is not None:
            with contextlib.suppress(queue.Full):
                inbox.put_nowait(snap)

    sink = RecordingSink(recorder, deliver) if recorder is not None else deliver
    deadline = time.monotonic() + args.duration if args.duration else math.inf
    try:
        with stop_signals(lambda sig: stop.set()):
            source.start(sink)
            while not stop.is_set():
                if source.error is not None:
                    raise RuntimeError(f"data source failed: {exc_line(source.error)}")
                if isinstance(sink, RecordingSink) and sink.error:
                    raise RuntimeError(f"recording stopped: {sink.error}")
                if out is not None and out.broken:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    snap = inbox.get(timeout=min(left, 0.2))
                except queue.Empty:
                    continue
                if out is not None:
                    out.write(snap)
    finally:
        with stop_signals(_ignore):
            source.stop()
            if isinstance(sink, RecordingSink):
                sink.close()
    return 0


def _headless_replay(args: argparse.Namespace, recording: Recording, out: _JsonLines) -> int:
    """--replay FILE --headless: every frame (from --at) as a JSON line, as fast as read."""
    from txtop.recordings.replay import index_at

    _warn_recording(recording)
    check_position(args, recording)
    snaps = recording.snapshots
    t0 = snaps[0].time - snaps[0].interval_s
    first = 0 if args.at is None else index_at([s.time - t0 for s in snaps], args.at)
    for i in range(first, len(snaps)):
        snap = snaps[i]
        info = {
            "index": i,
            "count": len(snaps),
            "at_s": round(snap.time - t0, 3),
            "total_s": round(recording.total_s, 3),
            "speed": None,
            "paused": False,
            "damage": recording.damage,
            "notice": recording.notice,
            "jump": False,
        }
        out.write(dataclasses.replace(snap, mode="replay", replay=info))
        if out.broken:
            break
    return 0


def tracer_control(source: SnapshotSource, args: argparse.Namespace) -> TracerControl | None:
    collector = getattr(source, "collector", None)
    tracer = getattr(collector, "tracer", None)
    if tracer is None:
        return None
    return TracerControl(tracer, getattr(args, "tracer_ifindexes", None), args.pids)


def run_dashboard(args: argparse.Namespace, theme: str) -> int:
    recording = replay_recording(args)  # a bad recording is bad input, terminal or not
    if recording is not None:
        check_position(args, recording)
    if not (sys.stdin.isatty() and sys.__stderr__ is not None and sys.__stderr__.isatty()):
        raise UsageError(
            "the dashboard needs a terminal; for scripts use --once --format json or --headless"
        )
    if os.environ.get("TERM", "").strip().lower() == "dumb":
        # Textual would draw with escape sequences such a terminal prints as garbage.
        raise UsageError(
            "this terminal (TERM=dumb) cannot show the full-screen dashboard; "
            "use --once --format json or --headless"
        )
    source, recorder = _start(args, recording)
    sink = None
    try:
        from txtop.recordings.recording import RecordingSink
        from txtop.tui.app import TxtopApp, terminal_driver_class

        sink = RecordingSink(recorder) if recorder is not None else None
        notice = getattr(source, "notice", "")
        app = TxtopApp(
            source,
            theme=theme,
            ascii_only=args.ascii,
            handle_signals=True,
            driver_class=terminal_driver_class(),
            control=tracer_control(source, args),
            recording=sink,
            duration_s=args.duration,
            waterfall_filter=args.filter_spec,
            notices=[notice] if notice and source.mode != "replay" else [],
        )
        app.run(mouse=not args.no_mouse)
        return int(app.return_code or 0)
    finally:
        with stop_signals(_ignore):
            source.stop()  # detaches the probes, removes the demo lab; idempotent
            if sink is not None:
                sink.close()



def _warn(message: str) -> None:
    sys.stderr.write(f"{PROG}: {message}\n")
    sys.stderr.flush()


def _fail(message: str, code: int) -> NoReturn:
    sys.stderr.write(f"{PROG}: error: {message}\n")
    sys.stderr.flush()
    raise SystemExit(code)


def main(argv: Sequence[str] | None = None) -> None:
    try:
        args = parse_args(argv)
        theme = configure_colors(args)
        if args.once:
            code = run_once(args)
        elif args.headless:
            code = run_headless(args)
        else:
            code = run_dashboard(args, theme)
    except UsageError as exc:
        _fail(exc_line(exc), 2)
    except Stopped as exc:  # a stop signal during start-up: everything built is removed
        code = 0 if getattr(args, "headless", False) else 128 + exc.sig
    except KeyboardInterrupt:
        code = 130
    except Exception as exc:
        if os.environ.get("TXTOP_DEBUG") == "1":
            raise
        _fail(exc_line(exc), 1)
    raise SystemExit(code)


if __name__ == "__main__":
    main()
