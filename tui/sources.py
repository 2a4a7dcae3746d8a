"""The data source a command line asks for: live probes, the demo lab, a recording, synthetic.

``build_source`` has one branch per kind of source; the app takes any SnapshotSource, plus the
``TracerControls`` when probes run. Recordings read for replay are ``Timeline``s; a file that
is not one is bad input (UsageError), as is an interface that does not exist.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from txtop.core.controls import TracerControls
from txtop.core.model import ProbeStatus
from txtop.core.source import SnapshotSource
from txtop.core.text import exc_line
from txtop.recordings.replay import Timeline
from txtop.tui.args import Options, UsageError

if TYPE_CHECKING:
    from txtop.lab.demo import DemoLab
    from txtop.probes.live import Tracer
    from txtop.probes.readers.netns import Namespaces, NetnsReader

BUNDLED_RECORDING = "demo.txtop"  # in txtop.recordings/data, made by scripts/record_bundled.py
DEMO_REPLAY_NOTICE = "demo: not root, replaying a recording of the lab"
NETNS_NOTHING = "no device with TX queues in the other namespaces to probe"


@dataclass(frozen=True)
class Built:
    """A data source, and what the dashboard may change in its probes (None without any)."""

    source: SnapshotSource
    tracer: TracerControls | None = None


def build_source(opts: Options, recording: Timeline | None = None) -> Built:
    """The data source the command line asks for. One branch per kind of source."""
    if opts.synthetic is not None:
        from txtop.lab.synthetic import SyntheticSource

        n_queues, n_cpus = opts.synthetic
        return Built(SyntheticSource(n_queues, n_cpus, interval_s=opts.interval))
    if recording is None:
        recording = replay_recording(opts)
    if recording is not None:
        return Built(_replay_source(opts, recording))
    if opts.demo:
        return _demo_source(opts)
    return _live_source(opts)


# ---- recordings -------------------------------------------------------------------------------


def bundled_recording_path() -> contextlib.AbstractContextManager[Path]:
    from importlib import resources

    return resources.as_file(resources.files("txtop.recordings") / "data" / BUNDLED_RECORDING)


def load_recording(path: str | Path, notice: str = "") -> Timeline:
    """Read a recording for replay. A file that is not one is bad input (UsageError)."""
    from txtop.recordings.recording import RecordingError, read_recording

    try:
        result = read_recording(path)
    except RecordingError as exc:
        raise UsageError(str(exc)) from None
    if not result.snapshots:
        raise UsageError(f"{path}: the recording holds no snapshot ({result.damage})")
    why = result.info.describe()  # a flight recording: why it was written
    notice = "; ".join(n for n in (notice, why) if n)
    return Timeline(tuple(result.snapshots), result.damage, notice)


def load_recordings(paths: Sequence[str]) -> Timeline:
    """--replay PATH...: one file as ``load_recording``; several files or a directory (the
    parts of a rotated --record) as one recording, in order (recordings/rotation.py)."""
    if len(paths) == 1 and not os.path.isdir(paths[0]):
        return load_recording(paths[0])
    from txtop.recordings.recording import RecordingError
    from txtop.recordings.rotation import read_set

    try:
        result = read_set(paths)
    except RecordingError as exc:
        raise UsageError(str(exc)) from None
    if not result.snapshots:
        raise UsageError(f"{paths[0]}: no snapshot in these recordings ({result.damage})")
    return Timeline(tuple(result.snapshots), result.damage, result.notice)


def replay_recording(opts: Options) -> Timeline | None:
    """The recording this command line replays: --replay FILE, the bundled one for
    --replay-bundled, or for --demo without root. None when the source is live."""
    if opts.replay is not None:
        return load_recordings(opts.replay_paths or (opts.replay,))
    if not opts.demo:
        return None
    if not opts.replay_bundled and os.geteuid() == 0:
        return None
    if opts.replay_bundled:
        return _bundled(opts, "", "--replay-bundled")
    return _bundled(opts, DEMO_REPLAY_NOTICE, "--demo without root")


def _bundled(opts: Options, notice: str, why: str) -> Timeline:
    clash = opts.given(
        "interfaces", "record", "no_probes", "sample", "max_samples_per_s", "trace_duty"
    )
    clash += opts.given("flight")
    if clash:
        raise UsageError(f"{why} replays a recording: {', '.join(clash)} cannot be used")
    with bundled_recording_path() as path:
        if not path.is_file():
            raise RuntimeError(f"the bundled demo recording is missing ({path})")
        return load_recording(path, notice)


def check_position(opts: Options, recording: Timeline) -> None:
    if opts.at is not None and opts.at > recording.total_s + 1e-6:
        raise UsageError(
            f"--at {opts.at:g}: outside the recording (0 to {recording.total_s:.1f} seconds)"
        )


def _replay_source(opts: Options, recording: Timeline) -> SnapshotSource:
    from txtop.recordings.replay import ReplaySource

    check_position(opts, recording)
    source = ReplaySource(
        recording.snapshots,
        speed=opts.speed or 1.0,
        damage=recording.damage,
        loop=opts.demo,  # the demo runs until quit; a replay holds its last frame
        notice=recording.notice,
    )
    if opts.at is not None:
        source.seek(opts.at)
    return source


# ---- the demo lab and live probes -------------------------------------------------------------


def _demo_source(opts: Options) -> Built:
    """As root: the lab, then a live source over it that removes the lab when it closes.
    When the lab cannot be built, the recording of it, saying why."""
    from txtop.lab.demo import DemoLab
    from txtop.lab.netns import LabError

    demo = DemoLab(tag=opts.demo_tag)
    try:
        demo.start()
    except LabError as exc:
        if opts.record or opts.flight is not None:
            raise RuntimeError(f"demo: cannot build the lab: {exc_line(exc)}") from None
        notice = f"demo: {exc_line(exc)}; replaying a recording of the lab"
        return Built(_replay_source(opts, _bundled(opts, notice, "--demo without a lab")))
    try:
        return _live_source(opts, demo=demo)
    except BaseException:
        demo.stop()
        raise


def _interface_names(
    opts: Options, demo: DemoLab | None, own: Sequence[str] = ()
) -> list[str] | None:
    """The interfaces of txtop's own namespace to show (None: every one with TX queues);
    ``own``: names given after a --netns that is txtop's own namespace."""
    from txtop.probes.readers.netdev import InterfaceError, resolve_interfaces

    try:
        if opts.interfaces or own:
            return resolve_interfaces([*opts.interfaces, *own])
    except InterfaceError as exc:
        raise UsageError(str(exc)) from None
    return [demo.dev] if demo is not None else None


def _namespaces(opts: Options) -> Namespaces | None:
    """--netns: a reader per namespace, started (so a bad name or device is bad input now),
    and what was named of txtop's own namespace."""
    if not opts.netns:
        return None
    from txtop.probes.readers.netdev import InterfaceError
    from txtop.probes.readers.netns import NetnsError, open_readers

    try:
        return open_readers(opts.netns, opts.netns_interfaces)
    except (NetnsError, InterfaceError) as exc:
        raise UsageError(str(exc)) from None


def _namespace_devices(namespaces: Sequence[NetnsReader]) -> list[tuple[int, int]]:
    """The devices of the other namespaces as the probes key them, (netns inode, ifindex):
    the named ones, or all with TX queues now (one read in each namespace)."""
    return [(ns.ino, d.ifindex) for ns in namespaces for d in ns.read().devices]


def _make_tracer(
    opts: Options,
    ifindexes: list[int] | None,
    devices: list[tuple[int, int]] | None = None,
    namespaces: list[int] | None = None,
) -> Tracer:
    from txtop.probes.live import TracerSettings, make_tracer

    duty = opts.trace_duty / 100.0 if isinstance(opts.trace_duty, int) else None
    settings = TracerSettings(
        ifindexes=ifindexes,
        pids=list(opts.pids) or None,
        sample_every=opts.sample,
        max_samples_per_s=opts.max_samples_per_s,
        trace_duty=duty,
        flow=opts.filter_spec.flow,  # --proto/--port/--host, exact from the first sample
        devices=devices,
        namespaces=namespaces,
    )
    try:
        return make_tracer(settings)
    except ValueError as exc:  # a value the tracer refuses is bad input, not a crash
        raise UsageError(str(exc)) from None


def _live_source(opts: Options, demo: DemoLab | None = None) -> Built:
    from txtop.probes.collector import DEFAULT_BQL_HZ, Collector, LiveSource
    from txtop.probes.live import TracerControl, probe_unavailable_reason
    from txtop.probes.readers.netdev import InterfaceError, read_device

    netns = _namespaces(opts)
    namespaces = netns.readers if netns is not None else []
    try:
        names = _interface_names(opts, demo, netns.own_names if netns is not None else ())
    except BaseException:
        for ns in namespaces:
            ns.close()
        raise
    # --netns without a -i before it: none of txtop's own devices, unless one of them named
    # txtop's own namespace.
    own_devices = names is not None or netns is None or netns.own
    status: ProbeStatus | None = None
    tracer = control = None
    if opts.no_probes:
        status = ProbeStatus("off", reason="--no-probes")
    elif (reason := probe_unavailable_reason()) is not None:
        status = ProbeStatus("unavailable", reason=reason)
    else:
        # Devices of other namespaces by (netns inode, ifindex) in the interface filter,
        # unless all of txtop's own are shown (no filter at all then); their namespaces'
        # counters are read either way.
        all_own = own_devices and names is None
        devices = [] if all_own else _namespace_devices(namespaces)
        ifindexes = None
        if names:
            ifindexes = [d.ifindex for d in (read_device(n) for n in names) if d is not None]
        if not own_devices and not devices:
            status = ProbeStatus("off", reason=NETNS_NOTHING)
        else:
            inodes = [ns.ino for ns in namespaces]
            tracer = _make_tracer(opts, ifindexes, devices or None, inodes or None)
            control = TracerControl(tracer, ifindexes, list(opts.pids), opts.filter_spec.flow)
    try:
        bql_hz = DEFAULT_BQL_HZ if opts.bql_hz is None else opts.bql_hz
        collector = Collector(
            names, tracer=tracer, bql_hz=bql_hz, namespaces=namespaces, own_devices=own_devices
        )
    except InterfaceError as exc:
        if tracer is not None:
            tracer.close()
        for ns in namespaces:
            ns.close()
        raise UsageError(str(exc)) from None
    if status is not None:
        collector.probe_status = status
    # LiveSource compiles and attaches the probes on its own thread, after the UI is up.
    if demo is not None:
        from txtop.lab.demo import DemoSource

        return Built(DemoSource(demo, collector, interval_s=opts.interval), control)
    return Built(LiveSource(collector, interval_s=opts.interval, mode="live"), control)
