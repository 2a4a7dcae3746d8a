"""txtop without a dashboard: ``--once`` (one JSON snapshot, or one metrics scrape) and
``--headless`` (record, serve metrics, or one JSON snapshot per line on stdout, until
--duration, a stop signal, or the end of a replay).

The JSON is a recording frame's (recordings/recording.py ``snapshot_json``), one snapshot a line.
With --serve or --textfile, --headless is a daemon: nothing on stdout (unless --format json
asks for the JSON lines too), one line on stderr per state change (``StateLog``), and a replay
plays in time and then keeps serving its last frame until --duration or a stop signal.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType

from txtop.core.findings import evaluate_once
from txtop.core.model import Snapshot
from txtop.core.text import exc_line
from txtop.recordings.flight import FlightRecorder, FlightWrite
from txtop.recordings.recording import snapshot_json
from txtop.recordings.replay import Timeline, aggregate
from txtop.tui import session as sessions
from txtop.tui.args import METRICS_FORMATS, PROG, Options, UsageError
from txtop.tui.sources import check_position, replay_recording

PROBE_READY_TIMEOUT_S = 60.0  # --once: longest wait for the probes to compile and attach


# ---- --once -----------------------------------------------------------------------------------


def run_once(opts: Options) -> int:
    """One snapshot: printed as JSON (--format json), as one metrics scrape (--format
    openmetrics|prometheus), and/or written to --textfile."""
    metrics = opts.format in METRICS_FORMATS or opts.textfile is not None
    if opts.textfile is not None:
        _check_textfile(opts.textfile)  # bad input before the probes are compiled
    recording = replay_recording(opts)
    seen: list[Snapshot] = []
    if recording is not None:
        sessions.warn_notices(recording)
        snap = replay_once(opts, recording)
        seen.append(snap)
    else:
        session = sessions.start(opts)
        sessions.warn_notices(session.source)
        snap = collect_once(session, seen=seen.append)
        # One interval has nothing to flicker: its findings without the time hysteresis.
        snap = dataclasses.replace(snap, findings=evaluate_once(snap, seen[:-1]))
    if metrics:
        _once_metrics(opts, seen)
    if opts.format == "json":
        sys.stdout.write(snapshot_json(snap) + "\n")
        sys.stdout.flush()
    return 0


def _check_textfile(path: str) -> None:
    from txtop.exporters import ExporterError, check_textfile

    try:
        check_textfile(path)
    except ExporterError as exc:
        raise UsageError(str(exc)) from None


def _once_metrics(opts: Options, seen: list[Snapshot]) -> None:
    """The snapshots --once took (live: the one priming the rates, then the one returned), as
    an exporter would have published them: kernel counters at their values, what is known
    only as rates integrated over the interval, the histograms of the packets sampled."""
    from txtop.exporters import (
        DEFAULT_HISTOGRAMS,
        ExporterError,
        MetricsHolder,
        render_once,
        write_textfile,
    )

    holder = MetricsHolder(opts.metrics_histograms or DEFAULT_HISTOGRAMS)
    for snap in seen:
        holder.publish(snap)
    if opts.textfile is not None:
        try:
            write_textfile(opts.textfile, holder)
        except ExporterError as exc:
            raise RuntimeError(str(exc)) from None
    if opts.format in METRICS_FORMATS:
        sys.stdout.buffer.write(render_once(holder, opts.format))
        sys.stdout.flush()


def collect_once(
    session: sessions.Session,
    ready_timeout_s: float = PROBE_READY_TIMEOUT_S,
    seen: Callable[[Snapshot], object] | None = None,
) -> Snapshot:
    """Start the source, wait until the probes are running (or known unavailable), let one
    full interval pass, stop, and return the snapshot for that interval. ``seen`` gets that
    snapshot and the one before it (which primes the rates), in order."""
    source = session.source
    inbox: queue.Queue[Snapshot] = queue.Queue()
    source.start(inbox.put)
    ready = False
    deadline = time.monotonic() + ready_timeout_s + 3 * source.interval_s
    previous: Snapshot | None = None
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
                if seen is not None:
                    if previous is not None:
                        seen(previous)
                    seen(snap)
                return snap
            previous = snap
            # This snapshot primes the rates; the next one covers a whole interval.
            ready = snap.probes.state != "starting" or time.monotonic() > deadline - (
                3 * source.interval_s
            )
    finally:
        session.stop()


def replay_once(opts: Options, recording: Timeline) -> Snapshot:
    """--once on a recording: the whole window (aggregate), or the frame at --at."""
    check_position(opts, recording)
    snaps = recording.snapshots
    if opts.at is None:
        snap, index, window = aggregate(snaps), len(snaps) - 1, "all"
    else:
        index = recording.index_at(opts.at)
        snap, window = snaps[index], "frame"
    position = recording.position(index, speed=None, paused=True, jump=False, window=window)
    return dataclasses.replace(snap, mode="replay", replay=position)


# ---- --headless -------------------------------------------------------------------------------


class JsonLines:
    """--headless without --record: one JSON snapshot per line on stdout."""

    def __init__(self) -> None:
        self.broken = False

    def write(self, snap: Snapshot) -> None:
        if self.broken:
            return
        try:
            sys.stdout.write(snapshot_json(snap) + "\n")
            sys.stdout.flush()
        except BrokenPipeError:  # `txtop --headless | head -1`: the reader is done
            self.broken = True
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)


class StateLog:
    """--headless as a metrics daemon: one line on stderr per change of state (the exporter
    listening, the probes' state, the devices watched, the textfile failing or writing again,
    the end of a replay, stopping), never one per snapshot. Disabled: says nothing."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._lock = threading.Lock()  # the textfile writer's thread logs too
        self._probes: tuple[str, str, str] | None = None
        self._devices: tuple[str, ...] | None = None
        self._replay_ended = False

    def line(self, text: str) -> None:
        if self.enabled:
            with self._lock:
                sessions.warn(text)

    def snapshot(self, snap: Snapshot) -> None:
        if not self.enabled:
            return
        p = snap.probes
        probes = (p.state, p.reason, p.notice)
        if probes != self._probes:
            self._probes = probes
            detail = "; ".join(x for x in (p.reason, p.notice) if x)
            self.line(f"probes {p.state}" + (f": {detail}" if detail else ""))
        devices = tuple(sorted({d.dev for d in snap.devices}))
        if devices != self._devices:
            if self._devices is None:
                self.line(f"watching {', '.join(devices) or 'no device'}")
            else:
                added = sorted(set(devices) - set(self._devices))
                gone = sorted(set(self._devices) - set(devices))
                changes = [f"{d} appeared" for d in added] + [f"{d} gone" for d in gone]
                self.line("devices: " + ", ".join(changes))
            self._devices = devices
        pos = snap.replay
        ended = pos is not None and pos.paused and pos.index == pos.count - 1
        if ended and not self._replay_ended:
            self.line("replay: end of the recording; serving its last frame")
        self._replay_ended = ended


def run_headless(opts: Options) -> int:
    """No terminal: record, export metrics and/or print JSON lines until --duration, a
    signal, or the end of a replay (without an exporter). Stop signals end it normally
    (status 0) after the recording is closed."""
    exporting = sessions.exporting(opts)
    json_lines = not opts.record and (not exporting or opts.format == "json")
    json_lines = json_lines and opts.flight is None  # a flight recorder is quiet too
    out = JsonLines() if json_lines else None
    recording = replay_recording(opts)
    if recording is not None and not exporting:
        assert out is not None  # --record with a replay was refused by parse_args
        return _headless_replay(opts, recording, out)
    log = StateLog(exporting)
    session = sessions.start(opts, recording, on_change=log.line)
    sessions.warn_notices(session.source)
    try:
        if session.exporter is not None:
            for line in session.exporter.describe():
                log.line(line)
        _headless_live(opts, session, out, log)
    finally:
        session.stop()
    return 0


def _headless_live(
    opts: Options, session: sessions.Session, out: JsonLines | None, log: StateLog
) -> None:
    inbox: queue.Queue[Snapshot] = queue.Queue(maxsize=1000)
    stop = threading.Event()
    wanted = out is not None or log.enabled
    got: list[int] = []

    def deliver(snap: Snapshot) -> None:
        if wanted:
            with contextlib.suppress(queue.Full):
                inbox.put_nowait(snap)

    source, sink = session.source, session.recording
    deadline = time.monotonic() + opts.duration if opts.duration else math.inf
    # Live: the first line covers one whole interval, as --once (a replay's first frame does).
    first = FirstInterval(replaying=source.replay_controls is not None)

    def on_signal(sig: int) -> None:
        got.append(sig)
        stop.set()

    flight = FlightSignal(sink.flight) if sink is not None and sink.flight is not None else None
    with sessions.stop_signals(on_signal), contextlib.ExitStack() as undo:
        if flight is not None:
            flight.install()
            undo.callback(flight.restore)
        if sink is not None:
            sink.downstream = deliver
        source.start(sink if sink is not None else deliver)
        why = ""
        while not stop.is_set():
            if source.error is not None:
                raise RuntimeError(f"data source failed: {exc_line(source.error)}")
            if flight is not None:
                flight.poll()
            if sink is not None and sink.error:
                if flight is None:
                    raise RuntimeError(f"recording stopped: {sink.error}")
                if not flight.record_error_told:  # the flight recorder goes on
                    flight.record_error_told = True
                    flight.say(f"recording stopped: {sink.error}")
            if out is not None and out.broken:
                break
            left = deadline - time.monotonic()
            if left <= 0:
                why = f"after --duration {opts.duration:g}"
                break
            try:
                snap = inbox.get(timeout=min(left, 0.2))
            except queue.Empty:
                continue
            log.snapshot(snap)
            if out is not None and first.passes(snap):
                out.write(snap)
        if got:
            why = f"on {signal.Signals(got[0]).name}"
        log.line("stopping" + (f" {why}" if why else ""))


class FirstInterval:
    """Which live snapshots --headless prints: none before one covers a whole interval, as
    --once (``collect_once``) waits. The first snapshot comes at once (no interval yet; the
    probes "starting" while they compile), the next one when they are attached (its rates
    span the compile time and the tracer's counters only start there): both are held back,
    and so is any while the probes still compile (up to ``ready_timeout_s``)."""

    def __init__(self, replaying: bool = False, ready_timeout_s: float = PROBE_READY_TIMEOUT_S):
        self._passing = replaying
        self._ready = False
        self._deadline = time.monotonic() + ready_timeout_s

    def passes(self, snap: Snapshot) -> bool:
        if self._passing:
            return True
        if self._ready:
            self._passing = True
            return True
        # This one primes the rates once the probes are up (or known to be unavailable).
        self._ready = snap.probes.state != "starting" or time.monotonic() > self._deadline
        return False


class FlightSignal:
    """--headless --flight: SIGUSR1 asks the flight recorder for a write (requested from the
    loop, not inside the handler), and every write is one line on stderr with its path.

    The lines go to a copy of stderr taken at the start: while bcc compiles the probes, fd 2
    itself is sent to a temporary file (probes/bpf/prerequisites.py), and an announcement
    written then would be lost."""

    def __init__(self, flight: FlightRecorder) -> None:
        self.flight = flight
        self.asked = threading.Event()
        self.record_error_told = False
        self._old: signal.Handlers | Callable[[int, FrameType | None], object] | int | None = None
        self._err = os.dup(sys.stderr.fileno())
        flight.on_write = self.announce

    def say(self, line: str) -> None:
        sys.stderr.flush()
        with contextlib.suppress(OSError):
            os.write(self._err, f"{PROG}: {line}\n".encode(errors="replace"))

    def announce(self, result: FlightWrite) -> None:
        self.say(result.line())

    def install(self) -> None:
        """Handle SIGUSR1, then say so (a signal sent after this line is handled)."""
        self._old = signal.signal(signal.SIGUSR1, lambda sig, frame: self.asked.set())
        flight = self.flight
        self.say(
            f"flight recorder: keeping the last {flight.window_s:g} s; SIGUSR1 writes them "
            f"to {flight.directory}"
        )

    def restore(self) -> None:
        """Back to the old SIGUSR1 handler; writes still under way are announced (the
        session's stop waits for them) before the copy of stderr is closed at exit."""
        if self._old is not None:
            signal.signal(signal.SIGUSR1, self._old)
            self._old = None

    def poll(self) -> None:
        if self.asked.is_set():
            self.asked.clear()
            why_not = self.flight.request("signal")
            if why_not:
                self.say(f"flight recording not written: {why_not}")


def _headless_replay(opts: Options, recording: Timeline, out: JsonLines) -> int:
    """--replay FILE --headless: every frame (from --at) as a JSON line, as fast as read."""
    sessions.warn_notices(recording)
    check_position(opts, recording)
    first = 0 if opts.at is None else recording.index_at(opts.at)
    for i in range(first, len(recording.snapshots)):
        position = recording.position(i, speed=None, paused=False, jump=False)
        out.write(dataclasses.replace(recording.snapshots[i], mode="replay", replay=position))
        if out.broken:
            break
    return 0
