"""txtop without a dashboard: ``--once`` (one JSON snapshot) and ``--headless`` (record, or one
JSON snapshot per line on stdout, until --duration, a stop signal, or the end of a replay).

The JSON is a recording frame's (recordings/recording.py ``snapshot_json``), one snapshot a line.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import queue
import sys
import threading
import time

from txtop.core.model import Snapshot
from txtop.core.text import exc_line
from txtop.recordings.recording import snapshot_json
from txtop.recordings.replay import Timeline, aggregate
from txtop.tui import session as sessions
from txtop.tui.args import Options
from txtop.tui.sources import check_position, replay_recording

PROBE_READY_TIMEOUT_S = 60.0  # --once: longest wait for the probes to compile and attach


# ---- --once -----------------------------------------------------------------------------------


def run_once(opts: Options) -> int:
    recording = replay_recording(opts)
    if recording is not None:
        sessions.warn_notices(recording)
        snap = replay_once(opts, recording)
    else:
        session = sessions.start(opts)
        sessions.warn_notices(session.source)
        snap = collect_once(session)
    sys.stdout.write(snapshot_json(snap) + "\n")
    sys.stdout.flush()
    return 0


def collect_once(
    session: sessions.Session, ready_timeout_s: float = PROBE_READY_TIMEOUT_S
) -> Snapshot:
    """Start the source, wait until the probes are running (or known unavailable), let one
    full interval pass, stop, and return the snapshot for that interval."""
    source = session.source
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


def run_headless(opts: Options) -> int:
    """No terminal: record and/or print JSON lines until --duration, a signal, or the end of
    a replay. Stop signals end it normally (status 0) after the recording is closed."""
    out = None if opts.record else JsonLines()
    recording = replay_recording(opts)
    if recording is not None:
        assert out is not None  # --record with a replay was refused by parse_args
        return _headless_replay(opts, recording, out)
    session = sessions.start(opts)
    sessions.warn_notices(session.source)
    try:
        _headless_live(opts, session, out)
    finally:
        session.stop()
    return 0


def _headless_live(opts: Options, session: sessions.Session, out: JsonLines | None) -> None:
    inbox: queue.Queue[Snapshot] = queue.Queue(maxsize=1000)
    stop = threading.Event()

    def deliver(snap: Snapshot) -> None:
        if out is not None:
            with contextlib.suppress(queue.Full):
                inbox.put_nowait(snap)

    source, sink = session.source, session.recording
    deadline = time.monotonic() + opts.duration if opts.duration else math.inf
    with sessions.stop_signals(lambda sig: stop.set()):
        if sink is not None:
            sink.downstream = deliver
        source.start(sink if sink is not None else deliver)
        while not stop.is_set():
            if source.error is not None:
                raise RuntimeError(f"data source failed: {exc_line(source.error)}")
            if sink is not None and sink.error:
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
