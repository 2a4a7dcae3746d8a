"""Per-stage latency percentiles over a sliding window of sampled packets (pure, no I/O).

A packet's stage timestamps (``PacketTrace.stages``, CLOCK_MONOTONIC ns) are turned into
named intervals between adjacent TX-path stages. Only intervals whose two ends were both
observed are counted: a missing stage never becomes an invented zero. The collector feeds one
``LatencyWindow`` per tick and copies ``overall()`` / ``per_queue()`` into the snapshot
(``Snapshot.latency_ns``, ``QueueRow.latency_ns``).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from txtop.core.model import STAGES, LatencyStats, PacketTrace

# Interval name -> (from stage, to stage). Names are a public contract: the JSON snapshot keys
# latency_ns by them and the queues panel reads latency_ns["qdisc"] and ["total"].
INTERVAL_STAGES: Mapping[str, tuple[str, str]] = {
    "stack": ("sendto", "dev_queue"),  # syscall entry to __dev_queue_xmit
    "enqueue": ("dev_queue", "qdisc_enqueue"),
    "qdisc": ("qdisc_enqueue", "qdisc_dequeue"),  # time spent waiting in the qdisc
    "dequeue": ("qdisc_dequeue", "start_xmit"),
    "driver": ("start_xmit", "xmit"),  # ndo_start_xmit
    "completion": ("xmit", "free"),  # NIC TX completion; on veth/lo the receiver's free
}
TOTAL = "total"  # first observed stage -> last observed stage, complete tracks only
INTERVALS: tuple[str, ...] = (*INTERVAL_STAGES, TOTAL)

# Percentiles reported for every interval (nearest-rank method, see percentile()).
PERCENTILES: tuple[int, ...] = (50, 90, 99)

assert all(a in STAGES and b in STAGES for a, b in INTERVAL_STAGES.values())

QueueKey = tuple[int, int]  # (ifindex, queue)


def intervals_ns(packet: PacketTrace) -> dict[str, int]:
    """The named intervals of one packet whose two ends were both observed.

    Negative differences (a track whose stages are out of order, e.g. a reused skb address
    matched to the wrong packet) are left out rather than clamped: they are not latencies.
    ``total`` is only given for complete tracks; a lost or aged track's span is not the
    packet's lifetime. A dropped packet has no ``completion`` but keeps its ``total`` (its
    lifetime up to the drop).
    """
    stages = packet.stages
    out: dict[str, int] = {}
    for name, (a, b) in INTERVAL_STAGES.items():
        if name == "completion" and packet.free_kind == "drop":
            continue  # time until a drop is not a completion
        ta = stages.get(a)
        tb = stages.get(b)
        if ta is not None and tb is not None and tb >= ta:
            out[name] = tb - ta
    if packet.track == "complete" and len(stages) >= 2:
        out[TOTAL] = packet.last_ns - packet.first_ns
    return out


def percentile(sorted_values: Sequence[int], pct: float) -> int:
    """Nearest-rank percentile of an ascending, non-empty sequence (always a real sample)."""
    n = len(sorted_values)
    rank = max(1, math.ceil(pct / 100.0 * n))
    return sorted_values[min(rank, n) - 1]


def summarize(values: Iterable[int]) -> LatencyStats | None:
    """p50/p90/p99/max/count of some samples, or None when there are none."""
    ordered = sorted(values)
    if not ordered:
        return None
    p50, p90, p99 = (percentile(ordered, p) for p in PERCENTILES)
    return LatencyStats(p50=p50, p90=p90, p99=p99, max=ordered[-1], count=len(ordered))


def summarize_packets(packets: Iterable[PacketTrace]) -> dict[str, LatencyStats]:
    """Stats of every interval over a set of packets (no window); used by the UI directly."""
    buckets: dict[str, list[int]] = {}
    for packet in packets:
        for name, value in intervals_ns(packet).items():
            buckets.setdefault(name, []).append(value)
    return _stats_of(buckets)


def _stats_of(buckets: Mapping[str, list[int]]) -> dict[str, LatencyStats]:
    out: dict[str, LatencyStats] = {}
    for name in INTERVALS:  # keep the TX-path order in the result
        stats = summarize(buckets.get(name, ()))
        if stats is not None:
            out[name] = stats
    return out


@dataclass(frozen=True, slots=True)
class _Sample:
    added_ns: int  # the tick that added it: monotonic across add() calls, so eviction is FIFO
    key: QueueKey | None
    intervals: Mapping[str, int]


class LatencyWindow:
    """Keeps the packets of the last ``window_s`` seconds and summarises them.

    Memory is bounded by ``max_samples`` (oldest dropped first): at 1000 samples/s a 10 s
    window holds 10 000. Results are cached until the next ``add``.
    """

    def __init__(self, window_s: float = 10.0, max_samples: int = 20_000) -> None:
        if window_s <= 0:
            raise ValueError("window_s must be positive")
        self.window_s = window_s
        self.max_samples = max_samples
        self._window_ns = int(window_s * 1e9)
        self._samples: deque[_Sample] = deque()
        self._last_now_ns: int | None = None
        self._overall: dict[str, LatencyStats] | None = None
        self._per_queue: dict[QueueKey, dict[str, LatencyStats]] | None = None

    def __len__(self) -> int:
        return len(self._samples)

    def clear(self) -> None:
        self._samples.clear()
        self._last_now_ns = None
        self._invalidate()

    def add(self, packets: Iterable[PacketTrace], now_ns: int) -> None:
        """Add one tick's packets; ``now_ns`` is the tick's CLOCK_MONOTONIC (Snapshot.mono_ns).

        Also call it with no packets on quiet ticks so old samples age out.
        """
        if self._last_now_ns is not None and now_ns < self._last_now_ns:
            self._samples.clear()  # the clock went back (replay looped): start over
        self._last_now_ns = now_ns
        cutoff_ns = now_ns - self._window_ns
        for packet in packets:
            if packet.stages and packet.last_ns < cutoff_ns:
                continue  # finished before the window began (a late, aged-out track)
            ivals = intervals_ns(packet)
            if not ivals:
                continue
            key = (packet.ifindex, packet.queue) if packet.queue is not None else None
            self._samples.append(_Sample(now_ns, key, ivals))
        samples = self._samples
        while samples and samples[0].added_ns < cutoff_ns:
            samples.popleft()
        while len(samples) > self.max_samples:
            samples.popleft()
        self._invalidate()

    def overall(self) -> Mapping[str, LatencyStats]:
        if self._overall is None:
            buckets: dict[str, list[int]] = {}
            for sample in self._samples:
                for name, value in sample.intervals.items():
                    buckets.setdefault(name, []).append(value)
            self._overall = _stats_of(buckets)
        return self._overall

    def per_queue(self) -> Mapping[QueueKey, Mapping[str, LatencyStats]]:
        if self._per_queue is None:
            grouped: dict[QueueKey, dict[str, list[int]]] = {}
            for sample in self._samples:
                if sample.key is None:
                    continue  # never reached a TX queue (e.g. dropped before queue selection)
                buckets = grouped.setdefault(sample.key, {})
                for name, value in sample.intervals.items():
                    buckets.setdefault(name, []).append(value)
            self._per_queue = {key: _stats_of(b) for key, b in sorted(grouped.items())}
        return self._per_queue

    def _invalidate(self) -> None:
        self._overall = None
        self._per_queue = None
