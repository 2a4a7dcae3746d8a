"""Replay: a recording played back through the same panels, without root or bcc."""

from __future__ import annotations

import bisect
import dataclasses
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from txtop.core.controls import ReplayControls
from txtop.core.findings import summarize, with_findings
from txtop.core.latency import LatencyWindow
from txtop.core.model import CpuRow, ReplayPosition, Snapshot, TxStats
from txtop.core.source import SnapshotSource

SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)


@dataclass(frozen=True)
class Timeline:
    """A recording's snapshots on its own clock: frame ``i`` ends ``times[i]`` seconds after
    the recording starts (the start of the first frame's interval). ``damage`` says why the
    recording ends early ("" when intact), ``notice`` is a line about it for the user."""

    snapshots: tuple[Snapshot, ...]
    damage: str = ""
    notice: str = ""
    times: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.snapshots:
            raise ValueError("the recording holds no snapshot")
        # Frames recorded before findings existed get them now, computed over the frames in
        # order (core/findings.py), so a seek or --at shows what playing through would.
        object.__setattr__(self, "snapshots", with_findings(self.snapshots))
        first = self.snapshots[0]
        t0 = first.time - first.interval_s
        object.__setattr__(self, "times", tuple(s.time - t0 for s in self.snapshots))

    @property
    def total_s(self) -> float:
        return self.times[-1]

    def index_at(self, at_s: float) -> int:
        return index_at(self.times, at_s)

    def position(
        self,
        index: int,
        *,
        speed: float | None,
        paused: bool,
        jump: bool,
        window: str | None = None,
    ) -> ReplayPosition:
        """Frame ``index``'s place in the recording, for ``Snapshot.replay``."""
        return ReplayPosition(
            index=index,
            count=len(self.snapshots),
            at_s=round(self.times[index], 3),
            total_s=round(self.total_s, 3),
            speed=speed,
            paused=paused,
            damage=self.damage,
            notice=self.notice,
            jump=jump,
            window=window,
        )


class ReplaySource(SnapshotSource):
    """Emits the recorded snapshots at their recorded pace times ``speed``.

    Controls (core/controls.py ReplayControls; thread-safe, called from the UI): pause, step,
    seek, speed. Every emitted snapshot carries its ``replay`` position (core/model.py
    ReplayPosition). A jump's snapshot (a seek, a step back, a loop) also carries the packets
    of the ``history_s`` seconds before it, so a rolling packet view can be rebuilt.
    """

    mode = "replay"

    def __init__(
        self,
        snapshots: Sequence[Snapshot],
        speed: float = 1.0,
        damage: str = "",
        loop: bool = False,
        notice: str = "",
        history_s: float = 10.0,
    ) -> None:
        self.timeline = Timeline(tuple(snapshots), damage, notice)
        speed = min(SPEEDS[-1], max(SPEEDS[0], speed))
        super().__init__(max(0.1, snapshots[0].interval_s) / speed)
        self._snaps = self.timeline.snapshots
        self._times = self.timeline.times
        self._lock = threading.Lock()
        self._index = 0  # the frame the next tick shows
        self._emitted = -1  # the frame shown last
        self._pending = False  # show _index at the next tick even while paused
        self._speed = speed
        self._paused = False
        self._loop = loop
        self.damage = damage
        self.notice = notice
        self.history_s = history_s

    # --- controls ------------------------------------------------------------------------
    @property
    def count(self) -> int:
        return len(self._snaps)

    @property
    def total_s(self) -> float:
        return self.timeline.total_s

    @property
    def replay_controls(self) -> ReplayControls:
        return self

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def speed(self) -> float:
        return self._speed

    @property
    def position(self) -> int:
        """Index of the frame shown last (-1 before the first)."""
        return self._emitted

    def set_paused(self, paused: bool) -> None:
        with self._lock:
            if paused and not self._paused:
                # Hold the frame on screen and show it again, marked paused, for the header.
                if self._emitted >= 0:
                    self._index = self._emitted
                self._pending = True
            elif not paused and self._paused and self._emitted == self._index:
                # Resume after the frame on screen, not by showing it again; at the end,
                # resuming starts over.
                last = len(self._snaps) - 1
                self._index = 0 if self._index >= last else self._index + 1
                self._pending = True
            self._paused = paused
        self.request_tick()

    def set_speed(self, speed: float) -> None:
        with self._lock:
            self._speed = min(SPEEDS[-1], max(SPEEDS[0], speed))
            self._interval_s = self._frame_interval(self._index)
            if self._paused:
                self._index = max(self._emitted, 0)
                self._pending = True  # show the new speed in the header
                tick = True
            else:
                tick = False
        if tick:
            self.request_tick()
        else:
            self._wake.set()  # the new pace applies from now, without skipping a frame

    def faster(self) -> None:
        i = bisect.bisect_right(SPEEDS, self._speed)
        self.set_speed(SPEEDS[min(i, len(SPEEDS) - 1)])

    def slower(self) -> None:
        i = bisect.bisect_left(SPEEDS, self._speed) - 1
        self.set_speed(SPEEDS[max(i, 0)])

    def step(self, frames: int = 1) -> None:
        """Move by ``frames`` (negative: back) and pause there."""
        with self._lock:
            self._paused = True
            base = self._index if self._pending else self._emitted  # quick repeats add up
            self._index = min(max(base + frames, 0), len(self._snaps) - 1)
            self._pending = True
        self.request_tick()

    def seek(self, at_s: float) -> None:
        """Jump to the frame at ``at_s`` seconds from the start of the recording."""
        with self._lock:
            self._index = index_at(self._times, at_s)
            self._pending = True
        self.request_tick()

    def seek_relative(self, delta_s: float) -> None:
        with self._lock:
            cur = self._times[self._index if self._pending else max(self._emitted, 0)]
        self.seek(cur + delta_s)

    def frames(self, index: int, seconds: float) -> tuple[Snapshot, ...]:
        """The recorded snapshots from ``seconds`` before frame ``index`` up to it, oldest
        first (the app rebuilds its history from them after a jump)."""
        index = min(max(index, 0), len(self._snaps) - 1)
        first = bisect.bisect_left(self._times, self._times[index] - seconds, 0, index)
        return self._snaps[first : index + 1]

    def set_interval(self, seconds: float) -> None:
        """+/- in replay change the speed rather than the (recorded) interval."""
        if seconds < self.interval_s:
            self.faster()
        else:
            self.slower()

    # --- tick ----------------------------------------------------------------------------
    def _frame_interval(self, index: int) -> float:
        return max(0.05, self._snaps[index].interval_s / self._speed)

    def _prepare(self) -> None:
        self._emit()  # the first frame at once, not after one (recorded) interval

    def _produce(self) -> Snapshot | None:
        with self._lock:
            if self._paused and not self._pending:
                return None
            self._pending = False
            i = self._index
            prev = self._emitted
            snap = self._snaps[i]
            self._emitted = i
            if not self._paused:
                if i + 1 < len(self._snaps):
                    self._index = i + 1
                elif self._loop:
                    self._index = 0
                else:
                    self._paused = True  # the end: hold the last frame
            self._interval_s = self._frame_interval(self._index)
            jump = i not in (prev, prev + 1)  # from nothing to a later frame is one too
            position = self.timeline.position(i, speed=self._speed, paused=self._paused, jump=jump)
            packets = snap.packets
            if jump:
                since = self._times[i] - self.history_s
                first = bisect.bisect_left(self._times, since, 0, i)
                packets = tuple(p for s in self._snaps[first:i] for p in s.packets) + packets
        return dataclasses.replace(snap, mode="replay", replay=position, packets=packets)


def index_at(times: Sequence[float], at_s: float) -> int:
    """Index of the frame covering ``at_s`` (the first frame ending at or after it)."""
    i = bisect.bisect_left(times, at_s - 1e-6)  # positions are printed to the microsecond
    return min(max(i, 0), len(times) - 1)


def snapshot_at(snapshots: Sequence[Snapshot], at_s: float) -> Snapshot:
    timeline = Timeline(tuple(snapshots))
    return timeline.snapshots[timeline.index_at(at_s)]


def _weighted(rows: Iterable[tuple[float, Any]], names: Sequence[str]) -> dict[str, Any]:
    total_w = 0.0
    sums = dict.fromkeys(names, 0.0)
    for w, row in rows:
        total_w += w
        for n in names:
            v = getattr(row, n)
            if v is not None:
                sums[n] += w * v
    return {n: (s / total_w if total_w else 0.0) for n, s in sums.items()}


def aggregate(snapshots: Sequence[Snapshot]) -> Snapshot:
    """One snapshot for a whole recording window.

    Cumulative counters and gauges (BQL inflight, backlog) come from the last frame; every
    rate is the interval-weighted mean over the window; packets are all packets of the window
    and latency percentiles are computed over all of them.
    """
    if not snapshots:
        raise ValueError("no snapshots to aggregate")
    last = snapshots[-1]
    window_s = sum(s.interval_s for s in snapshots)

    def by_key(get_rows: Any, key: Any) -> dict[Any, list[tuple[float, Any]]]:
        out: dict[Any, list[tuple[float, Any]]] = {}
        for s in snapshots:
            for row in get_rows(s):
                out.setdefault(key(row), []).append((s.interval_s, row))
        return out

    cpu_hist = by_key(lambda s: s.cpus, lambda r: r.cpu)
    cpu_rates = [f.name for f in dataclasses.fields(CpuRow) if f.name.endswith(("_per_s", "_pct"))]
    cpus = tuple(
        dataclasses.replace(row, **_weighted(cpu_hist[row.cpu], cpu_rates)) for row in last.cpus
    )
    dev_hist = by_key(lambda s: s.devices, lambda r: r.dev)
    devices = tuple(
        dataclasses.replace(row, **_weighted(dev_hist[row.dev], ("tx_pps", "tx_bps")))
        for row in last.devices
    )
    q_hist = by_key(lambda s: s.queues, lambda r: (r.dev, r.queue))
    packets = tuple(p for s in snapshots for p in s.packets)
    lat = LatencyWindow(window_s=window_s + 1.0)
    lat.add(packets, last.mono_ns)
    per_queue = lat.per_queue()
    queues = []
    for row in last.queues:
        hist = q_hist[(row.dev, row.queue)]
        tx = row.tx
        if tx is not None:
            txs = [(w, r.tx) for w, r in hist if r.tx is not None]
            tx_names = [f.name for f in dataclasses.fields(TxStats)]
            rate_names = [n for n in tx_names if n in ("pps", "bps") or n.endswith("_per_s")]
            tx = dataclasses.replace(tx, **_weighted(txs, rate_names))
        qdisc = row.qdisc
        if qdisc is not None:
            qs = [(w, r.qdisc) for w, r in hist if r.qdisc is not None]
            qdisc = dataclasses.replace(qdisc, **_weighted(qs, ("drops_per_s", "requeues_per_s")))
        latency = dict(per_queue.get((row.ifindex, row.queue), {}))
        queues.append(dataclasses.replace(row, tx=tx, qdisc=qdisc, latency_ns=latency))
    return dataclasses.replace(
        last,
        interval_s=round(window_s, 6),
        cpus=cpus,
        devices=devices,
        queues=tuple(queues),
        packets=packets,
        latency_ns=dict(lat.overall()),
        replay=None,
        findings=summarize(snapshots),  # every finding of the window, once
    )
