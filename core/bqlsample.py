"""BQL between ticks: what many samples of a queue's ``inflight`` and ``limit`` add up to.

One sysfs read per refresh sees BQL's bytes in flight at one instant; on a NIC that completes
quickly that is 0 at nearly every tick, however busy the queue is between them. The collector's
worker therefore samples ``inflight`` and ``limit`` of every BQL queue 20-50 times a second
between ticks (probes/readers/bql.py ``BqlSampleFiles``) and hands each sample to
``BqlAccumulator.add``; at the tick ``summarize`` folds the interval's samples, plus the tick's
own read, into the queue's ``BqlStats``: the peak and mean bytes in flight, the share of
samples at or above the limit, and how often the limit changed. Pure: no I/O, no clock.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Hashable
from dataclasses import dataclass

from txtop.core.model import BqlStats


@dataclass(slots=True)
class _Interval:
    """One queue's samples since the last tick (``limit`` outlives the tick: the next
    interval's first change is counted against it)."""

    samples: int = 0
    total: int = 0
    peak: int = 0
    at_limit: int = 0
    changes: int = 0
    limit: int | None = None

    def add(self, inflight: int, limit: int) -> None:
        self.samples += 1
        self.total += inflight
        if inflight > self.peak:
            self.peak = inflight
        if limit > 0 and inflight >= limit:
            self.at_limit += 1
        if self.limit is not None and limit != self.limit:
            self.changes += 1
        self.limit = limit


class BqlAccumulator:
    """Per-queue accumulation of BQL samples between ticks. Keys are whatever identifies a
    queue to the caller (the collector uses ``(device, queue)``). Not thread-safe: one
    thread adds and summarizes (the collector's worker)."""

    def __init__(self) -> None:
        self._queues: dict[Hashable, _Interval] = {}

    def __len__(self) -> int:
        return len(self._queues)

    def add(self, key: Hashable, inflight: int, limit: int) -> None:
        """One sample of one queue."""
        acc = self._queues.get(key)
        if acc is None:
            acc = self._queues[key] = _Interval()
        acc.add(inflight, limit)

    def summarize(self, key: Hashable, stats: BqlStats) -> BqlStats:
        """``stats`` (the tick's own read of the queue, which counts as one more sample) with
        the interval's ``inflight_peak``, ``inflight_mean``, ``at_limit_pct``,
        ``limit_changes`` and ``samples``; starts the queue's next interval."""
        acc = self._queues.get(key)
        if acc is None:
            acc = self._queues[key] = _Interval()
        acc.add(stats.inflight, stats.limit)
        summary = dataclasses.replace(
            stats,
            inflight_peak=acc.peak,
            inflight_mean=round(acc.total / acc.samples, 1),
            at_limit_pct=round(100.0 * acc.at_limit / acc.samples, 1),
            limit_changes=acc.changes,
            samples=acc.samples,
        )
        self._queues[key] = _Interval(limit=acc.limit)
        return summary

    def retain(self, keys: Collection[Hashable]) -> None:
        """Forget every queue not in ``keys`` (devices and queues that went away)."""
        for key in [k for k in self._queues if k not in keys]:
            del self._queues[key]
