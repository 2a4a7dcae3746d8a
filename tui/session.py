"""One run of txtop: the source, its probes' controls, the recording and the metrics exporter,
started and stopped with the stop signals (SIGTERM, SIGINT, SIGHUP) in mind.

The exporter (--serve, --textfile) is fed on the source's own thread: the run's source is
wrapped (``ExportingSource``) so that every snapshot is published to the exporter's holder
before it goes on to the recording and the dashboard (or the --headless loop). A scrape reads
the last published view and never waits for either.

A stop signal while the source is being built (the demo lab takes a while) unwinds what was
built (``Stopped``); during clean-up stop signals are noted and ignored, so a lab is never left
half removed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from txtop.core.controls import Notices, ReplayControls, TracerControls
from txtop.core.model import Snapshot
from txtop.core.source import Sink, SnapshotSource
from txtop.recordings.flight import FlightRecorder
from txtop.recordings.recording import Recorder, RecordingError, RecordingSink, SnapshotWriter
from txtop.recordings.replay import Timeline
from txtop.tui import sources
from txtop.tui.args import PROG, Options, UsageError

if TYPE_CHECKING:
    from txtop.exporters import MetricsHolder, MetricsServer, TextfileWriter

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


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


def raise_stopped(sig: int) -> None:
    raise Stopped(sig)


def ignore_signal(sig: int) -> None:
    """During clean-up: remember the signal, finish removing the lab, then exit."""


def warn(message: str) -> None:
    sys.stderr.write(f"{PROG}: {message}\n")
    sys.stderr.flush()


def warn_notices(about: Notices) -> None:
    """What a source or a recording says about its data, as warnings on stderr."""
    if about.notice:
        warn(about.notice)
    if about.damage:
        warn(f"recording damaged: {about.damage} - showing the intact part")


# ---- the metrics exporter ---------------------------------------------------------------------


@dataclass(frozen=True)
class Exporter:
    """--serve and --textfile: the holder every snapshot is published to, the HTTP endpoint
    and the textfile writer (each None when not asked for)."""

    holder: MetricsHolder
    server: MetricsServer | None = None
    textfile: TextfileWriter | None = None

    def publish(self, snap: Snapshot) -> None:
        """On the source's thread, for every snapshot in order. Never raises."""
        self.holder.publish(snap)
        if self.textfile is not None:
            self.textfile.notify()  # written on the writer's own thread

    def describe(self) -> list[str]:
        """Where the metrics go, one line each (for the log and the dashboard's notices)."""
        out = []
        if self.server is not None:
            out.append(f"serving metrics on {self.server.url}")
        if self.textfile is not None:
            out.append(f"writing metrics to {self.textfile.path} every interval")
        return out

    def close(self) -> None:
        """Stop serving and write the textfile a last time (idempotent)."""
        if self.server is not None:
            self.server.close()
        if self.textfile is not None:
            self.textfile.close()


def exporting(opts: Options) -> bool:
    return opts.serve is not None or (opts.textfile is not None and not opts.once)


def start_exporter(
    opts: Options, on_change: Callable[[str], None] | None = None
) -> Exporter | None:
    """The exporter --serve/--textfile ask for, listening already (None without them): a port
    in use, a bad address or an unwritable textfile is bad input (UsageError) found before
    anything else is built. ``on_change`` gets the textfile writer's state changes."""
    if not exporting(opts):
        return None
    from txtop.exporters import DEFAULT_HISTOGRAMS, ExporterError, MetricsHolder, TextfileWriter
    from txtop.exporters import serve as serve_metrics

    holder = MetricsHolder(opts.metrics_histograms or DEFAULT_HISTOGRAMS)
    server = writer = None
    try:
        if opts.textfile is not None:
            writer = TextfileWriter(opts.textfile, holder, on_change)
        if opts.serve is not None:
            server = serve_metrics(opts.serve[0], opts.serve[1], holder)
    except ExporterError as exc:
        if writer is not None:
            writer.close()
        raise UsageError(str(exc)) from None
    return Exporter(holder, server, writer)


class ExportingSource(SnapshotSource):
    """A run's source with the exporter tapped in: ``start(sink)`` starts the wrapped source
    with a sink that publishes each snapshot to the exporter and then hands it to ``sink``,
    on the wrapped source's thread. Everything else is the wrapped source's."""

    def __init__(self, inner: SnapshotSource, publish: Sink) -> None:
        super().__init__(inner.interval_s)
        self.inner = inner
        self._publish = publish
        self.mode = inner.mode
        self.notice = inner.notice
        self.damage = inner.damage

    @property  # the wrapped source's, read through
    def error(self) -> BaseException | None:
        return self.inner.error

    @error.setter
    def error(self, value: BaseException | None) -> None:
        pass  # SnapshotSource.__init__ sets it; this wrapper runs no thread of its own

    @property
    def interval_s(self) -> float:
        return self.inner.interval_s

    def set_interval(self, seconds: float) -> None:
        self.inner.set_interval(seconds)

    def request_tick(self) -> None:
        self.inner.request_tick()

    @property
    def replay_controls(self) -> ReplayControls | None:
        return self.inner.replay_controls

    @property
    def stopped(self) -> bool:
        return self.inner.stopped

    def start(self, sink: Sink) -> None:
        publish = self._publish

        def tapped(snap: Snapshot) -> None:
            publish(snap)
            sink(snap)

        self._sink = sink
        self.inner.start(tapped)

    def stop(self, timeout: float = 3.0) -> None:
        self.inner.stop(timeout)

    def _produce(self) -> Snapshot | None:  # never called: the wrapped source produces
        return None


@dataclass(frozen=True)
class Session:
    """A started run: the source, its probes' controls, the --record sink and the exporter,
    and the warnings said on stderr at its start (the dashboard shows them again)."""

    source: SnapshotSource
    tracer: TracerControls | None = None
    recording: RecordingSink | None = None
    exporter: Exporter | None = None
    warnings: tuple[str, ...] = ()
    missing_pids: tuple[int, ...] = ()  # --pid values no process had at the start

    def stop(self) -> None:
        """Stop the source (detaches the probes, removes the demo lab), close the recording
        and stop the exporter. Idempotent; stop signals meanwhile do not interrupt it."""
        with stop_signals(ignore_signal):
            self.source.stop()
            if self.recording is not None:
                self.recording.close()
            if self.exporter is not None:
                self.exporter.close()


def start(
    opts: Options,
    recording: Timeline | None = None,
    on_change: Callable[[str], None] | None = None,
) -> Session:
    """The recorder and the exporter (first: a bad --record path, a port in use or a bad
    --textfile are bad input before anything is built), then the source; a stop signal while
    the demo lab is being built unwinds it. ``on_change``: see ``start_exporter``."""
    flight = _open_flight(opts)
    recorder = _open_recorder(opts)
    exporter = None
    try:
        exporter = start_exporter(opts, on_change)
        with stop_signals(raise_stopped):
            built = sources.build_source(opts, recording)
    except BaseException:
        _discard(recorder)
        if exporter is not None:
            exporter.close()
        raise
    sink = None
    if recorder is not None or flight is not None:
        sink = RecordingSink(recorder, flight=flight)
    source = built.source
    if exporter is not None:
        source = ExportingSource(source, exporter.publish)
    live = recording is None and opts.synthetic is None and source.replay_controls is None
    missing = tuple(missing_pids(opts.pids)) if live and opts.pids else ()
    warnings = tuple(start_warnings(opts, live, missing))
    for line in warnings:
        warn(line)
    return Session(source, built.tracer, sink, exporter, warnings, missing)


def missing_pids(pids: Sequence[int]) -> list[int]:
    """The pids no process has now (kill(pid, 0): ESRCH; EPERM means it exists)."""
    out = []
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            out.append(pid)
        except PermissionError:
            pass
    return out


def start_warnings(opts: Options, live: bool, missing: Sequence[int] | None = None) -> list[str]:
    """What is worth a warning line before the data starts: a --pid no process has (its
    packets cannot be sampled; a later process with that id would be). Only for live data:
    a recording was filtered when it was made. ``missing``: those pids, when already looked
    up."""
    if not live or not opts.pids:
        return []
    return [
        f"warning: --pid {pid}: no such process now; no packet of it can be sampled "
        "(the waterfall stays empty for it)"
        for pid in (missing_pids(opts.pids) if missing is None else missing)
    ]


def _open_recorder(opts: Options) -> SnapshotWriter | None:
    """--record FILE, rotating with --max-size (recordings/rotation.py)."""
    if not opts.record:
        return None
    try:
        if opts.max_size is not None:
            from txtop.recordings.rotation import DEFAULT_KEEP, RotatingRecorder

            return RotatingRecorder(opts.record, opts.max_size, opts.keep or DEFAULT_KEEP)
        return Recorder(opts.record)
    except RecordingError as exc:
        raise UsageError(str(exc)) from None


def _open_flight(opts: Options) -> FlightRecorder | None:
    """--flight: the directory is created (0700) and checked now, so a file in its place or
    one that cannot be written to is bad input. Writes are announced through the recorder's
    ``on_write``, which the dashboard or the --headless loop sets."""
    if opts.flight is None:
        return None
    from txtop.recordings.flight import default_flight_dir, prepare_dir

    try:
        directory = prepare_dir(opts.flight_dir or default_flight_dir())
    except RecordingError as exc:
        raise UsageError(str(exc)) from None
    return FlightRecorder(opts.flight, directory, flight_on=opts.flight_on)


def _discard(recorder: SnapshotWriter | None) -> None:
    """txtop did not start after creating the recording: remove the empty file it made."""
    if recorder is None:
        return
    recorder.close()
    if recorder.frames == 0:
        with contextlib.suppress(OSError):
            os.unlink(recorder.path)
