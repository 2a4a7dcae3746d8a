"""One run of txtop: the source, its probes' controls and the recording, started and stopped
with the stop signals (SIGTERM, SIGINT, SIGHUP) in mind.

A stop signal while the source is being built (the demo lab takes a while) unwinds what was
built (``Stopped``); during clean-up stop signals are noted and ignored, so a lab is never left
half removed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from txtop.core.controls import Notices, TracerControls
from txtop.core.source import SnapshotSource
from txtop.recordings.recording import Recorder, RecordingError, RecordingSink
from txtop.recordings.replay import Timeline
from txtop.tui import sources
from txtop.tui.args import PROG, Options, UsageError

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


@dataclass(frozen=True)
class Session:
    """A started run: the source, its probes' controls, and the --record sink."""

    source: SnapshotSource
    tracer: TracerControls | None = None
    recording: RecordingSink | None = None

    def stop(self) -> None:
        """Stop the source (detaches the probes, removes the demo lab) and close the
        recording. Idempotent; stop signals meanwhile do not interrupt it."""
        with stop_signals(ignore_signal):
            self.source.stop()
            if self.recording is not None:
                self.recording.close()


def start(opts: Options, recording: Timeline | None = None) -> Session:
    """The recorder (created first: a bad --record path is bad input before anything is
    built) and the source; a stop signal while the demo lab is being built unwinds it."""
    recorder = _open_recorder(opts)
    try:
        with stop_signals(raise_stopped):
            built = sources.build_source(opts, recording)
    except BaseException:
        _discard(recorder)
        raise
    sink = RecordingSink(recorder) if recorder is not None else None
    return Session(built.source, built.tracer, sink)


def _open_recorder(opts: Options) -> Recorder | None:
    if not opts.record:
        return None
    try:
        return Recorder(opts.record)
    except RecordingError as exc:
        raise UsageError(str(exc)) from None


def _discard(recorder: Recorder | None) -> None:
    """txtop did not start after creating the recording: remove the empty file it made."""
    if recorder is None:
        return
    recorder.close()
    if recorder.frames == 0:
        with contextlib.suppress(OSError):
            os.unlink(recorder.path)
