"""A time-bounded history of per-queue and per-CPU numbers, built from snapshots (pure).

Everything comes from the snapshots a source emits, live or replayed, so a replay shows the same
history as the live run did, and a seek rebuilds it from the recorded snapshots before the new
position (``History.rebuild``). Per TX queue: qdisc backlog bytes, BQL inflight peak (between
ticks, core/bqlsample.py; the tick's own read without sampling), qdisc drops/s, packets/s and
p99 qdisc wait; per CPU: NET_TX/s and NET_RX/s.

Time is cut into fixed buckets (``resolution_s``, 0.5 s by default) on the snapshots' own clock
(``mono_ns``), kept in one ring of ``span_s / resolution_s`` slots (600 for the default 5
minutes) per series. A tick covers its interval: every bucket it overlaps takes its value,
rates as the overlap-weighted mean, peaks and gauges as the maximum. Reading resamples the
buckets into as many cells as a view has (``window``).

Memory is bounded: a float32 ring per series, ``4 * slots`` bytes plus ~100 bytes of
overhead, so ~12.3 KB per queue (5 series) and ~4.9 KB per CPU (2) at the defaults; at most
``max_queues`` queues and ``max_cpus`` CPUs are kept (1024 each: <= 17.6 MB; 16 queues and 16
CPUs: ~275 KB), and a queue or CPU unseen for a whole span is dropped. ``memory_bound_bytes``
states the bound, ``memory_bytes`` the current use. Thread-safe: one thread adds (the
source's), others read (the UI).
"""

from __future__ import annotations

import math
import threading
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from txtop.core.model import CpuRow, QueueRow, Snapshot

DEFAULT_SPAN_S = 300.0
DEFAULT_RESOLUTION_S = 0.5
MAX_QUEUES = 1024
MAX_CPUS = 1024
_NAN = float("nan")
_SERIES_OVERHEAD = 100  # bytes per series beyond its samples: the array object, dict entries


@dataclass(frozen=True, slots=True)
class Metric:
    """One kind of series. ``peak``: a bucket keeps the largest value it saw (gauges, peaks,
    percentiles); otherwise the time-weighted mean (rates). ``unit``: "bytes", "rate" (per
    second) or "ns"."""

    key: str
    title: str
    unit: str
    peak: bool


QUEUE_METRICS: tuple[Metric, ...] = (
    Metric("pps", "packets/s", "rate", peak=False),
    Metric("backlog", "qdisc backlog", "bytes", peak=True),
    Metric("drops", "qdisc drops/s", "rate", peak=False),
    Metric("bql_peak", "BQL inflight peak", "bytes", peak=True),
    Metric("p99q", "p99 qdisc wait", "ns", peak=True),
)
CPU_METRICS: tuple[Metric, ...] = (
    Metric("net_tx", "NET_TX/s", "rate", peak=False),
    Metric("net_rx", "NET_RX/s", "rate", peak=False),
)
METRICS = {m.key: m for m in QUEUE_METRICS + CPU_METRICS}


@dataclass(frozen=True, slots=True, order=True)
class QueueTarget:
    dev: str
    queue: int

    @property
    def label(self) -> str:
        return f"{self.dev} tx-{self.queue}"


@dataclass(frozen=True, slots=True, order=True)
class CpuTarget:
    cpu: int

    @property
    def label(self) -> str:
        return f"cpu {self.cpu}"


Target = QueueTarget | CpuTarget


def metrics_of(target: Target) -> tuple[Metric, ...]:
    return QUEUE_METRICS if isinstance(target, QueueTarget) else CPU_METRICS


def _queue_values(q: QueueRow, device_pps: float | None) -> tuple[float, ...]:
    """The QUEUE_METRICS of one row, NaN where unknown. ``device_pps``: the device's packet
    rate when the device has this one queue only (its rate is the queue's then, as the panel
    shows it), used when the queue has no rate of its own (no probes, no mq child)."""
    qd, bql, tx = q.qdisc, q.bql, q.tx
    wait = q.latency_ns.get("qdisc")
    peak = _NAN
    if bql is not None:
        peak = float(bql.inflight_peak if bql.inflight_peak is not None else bql.inflight)
    return (
        tx.pps if tx is not None else device_pps if device_pps is not None else _NAN,
        float(qd.backlog_bytes) if qd is not None else _NAN,
        qd.drops_per_s if qd is not None else _NAN,
        peak,
        float(wait.p99) if wait is not None and wait.count > 0 else _NAN,
    )


def _cpu_values(c: CpuRow) -> tuple[float, ...]:
    return (c.net_tx_per_s, c.net_rx_per_s)


class History:
    """The last ``span_s`` seconds of every queue's and CPU's series (see the module doc)."""

    def __init__(
        self,
        span_s: float = DEFAULT_SPAN_S,
        resolution_s: float = DEFAULT_RESOLUTION_S,
        max_queues: int = MAX_QUEUES,
        max_cpus: int = MAX_CPUS,
    ) -> None:
        if not (resolution_s > 0 and span_s >= resolution_s):
            raise ValueError("need span_s >= resolution_s > 0")
        self.span_s = float(span_s)
        self.resolution_s = float(resolution_s)
        self.slots = math.ceil(span_s / resolution_s)
        self.max_queues = max_queues
        self.max_cpus = max_cpus
        self._res_ns = int(resolution_s * 1e9)
        self._lock = threading.Lock()
        self._ids = array("q", [-1] * self.slots)  # the bucket each slot holds now
        self._weight = array("d", [0.0] * self.slots)  # seconds of ticks merged into it
        self._series: dict[Target, list[array[float]]] = {}
        self._seen: dict[Target, int] = {}  # the newest bucket each target had a value in
        self._newest = -1  # newest bucket id; -1: empty
        self._last_ns: int | None = None
        self.ignored = 0  # targets beyond max_queues/max_cpus not kept

    # ---- bounds ------------------------------------------------------------------------------

    def series_bytes(self) -> int:
        return 4 * self.slots + _SERIES_OVERHEAD

    def memory_bound_bytes(self) -> int:
        """The most this history can hold (every queue and CPU slot in use)."""
        per_queue = len(QUEUE_METRICS) * self.series_bytes()
        per_cpu = len(CPU_METRICS) * self.series_bytes()
        fixed = 16 * self.slots  # bucket ids and weights
        return self.max_queues * per_queue + self.max_cpus * per_cpu + fixed

    def memory_bytes(self) -> int:
        """Bytes in use now (by the same measure as the bound)."""
        with self._lock:
            n = sum(len(v) for v in self._series.values())
        return n * self.series_bytes() + 16 * self.slots

    # ---- writing -----------------------------------------------------------------------------

    def clear(self) -> None:
        with self._lock:
            self._clear()

    def _clear(self) -> None:
        self._ids = array("q", [-1] * self.slots)
        self._weight = array("d", [0.0] * self.slots)
        self._series.clear()
        self._seen.clear()
        self._newest = -1
        self._last_ns = None

    def rebuild(self, snapshots: Iterable[Snapshot]) -> None:
        """Start over from ``snapshots`` (oldest first), e.g. after a replay seek."""
        with self._lock:
            self._clear()
            for snap in snapshots:
                self._add(snap)

    def add(self, snapshot: Snapshot) -> None:
        """Merge one tick. A tick with the same end time as the last is ignored (a repeated
        frame); one that ends earlier starts the history over (another recording, a loop)."""
        with self._lock:
            self._add(snapshot)

    def _add(self, snap: Snapshot) -> None:
        end_ns = snap.mono_ns
        if self._last_ns is not None:
            if end_ns == self._last_ns:
                return
            if end_ns < self._last_ns:
                self._clear()
        first = self._last_ns is None
        self._last_ns = end_ns
        interval_ns = 0 if first else max(0, int(snap.interval_s * 1e9))
        start_ns = end_ns - interval_ns
        res = self._res_ns
        b_last = (end_ns - 1) // res  # the bucket holding the interval's last instant
        b_first = max(min(start_ns // res, b_last), b_last - self.slots + 1)
        self._advance(b_first, b_last)
        single = {d.dev: d.tx_pps for d in snap.devices if d.tx_queues == 1}
        rows: list[tuple[Target, tuple[float, ...]]] = [
            (QueueTarget(q.dev, q.queue), _queue_values(q, single.get(q.dev))) for q in snap.queues
        ]
        rows += [(CpuTarget(c.cpu), _cpu_values(c)) for c in snap.cpus]
        targets = []
        for target, values in rows:
            series = self._series.get(target)
            if series is None:
                series = self._new_series(target, len(values))
                if series is None:
                    continue
            self._seen[target] = b_last
            targets.append((series, values, metrics_of(target)))
        for b in range(b_first, b_last + 1):
            lo, hi = max(start_ns, b * res), min(end_ns, (b + 1) * res)
            overlap = (hi - lo) / 1e9 if interval_ns else 1e-9
            if overlap <= 0 and interval_ns:
                continue
            slot = b % self.slots
            w_old = self._weight[slot]
            w_new = w_old + overlap
            for series, values, metrics in targets:
                for arr, value, metric in zip(series, values, metrics, strict=True):
                    if value != value:  # NaN: unknown this tick
                        continue
                    cur = arr[slot]
                    if cur != cur:
                        arr[slot] = value
                    elif metric.peak:
                        if value > cur:
                            arr[slot] = value
                    else:
                        arr[slot] = (cur * w_old + value * overlap) / w_new
            self._weight[slot] = w_new

    def _new_series(self, target: Target, n: int) -> list[array[float]] | None:
        is_queue = isinstance(target, QueueTarget)
        kept = sum(1 for t in self._series if isinstance(t, QueueTarget) == is_queue)
        if kept >= (self.max_queues if is_queue else self.max_cpus):
            self.ignored += 1
            return None
        series = [array("f", [_NAN] * self.slots) for _ in range(n)]
        self._series[target] = series
        return series

    def _advance(self, b_first: int, b_last: int) -> None:
        """Make ``b_last`` the newest bucket: empty the slots of the buckets that start now
        (the first tick's own, when empty), and drop targets unseen for a whole span."""
        if b_last <= self._newest:
            return
        first_new = max(self._newest + 1 if self._newest >= 0 else b_first, b_last - self.slots + 1)
        for b in range(first_new, b_last + 1):
            slot = b % self.slots
            self._ids[slot] = b
            self._weight[slot] = 0.0
            for series in self._series.values():
                for arr in series:
                    arr[slot] = _NAN
        self._newest = b_last
        oldest = b_last - self.slots + 1
        for target in [t for t, seen in self._seen.items() if seen < oldest]:
            del self._seen[target]
            del self._series[target]

    # ---- reading -----------------------------------------------------------------------------

    def targets(self) -> list[Target]:
        """Every queue and CPU with history, queues first, each group in order."""
        with self._lock:
            keys = list(self._series)
        queues = sorted(t for t in keys if isinstance(t, QueueTarget))
        cpus = sorted(t for t in keys if isinstance(t, CpuTarget))
        return [*queues, *cpus]

    def covered_s(self) -> float:
        """Seconds from the oldest bucket still held to the newest (0 when empty)."""
        with self._lock:
            if self._newest < 0:
                return 0.0
            held = [b for b in self._ids if b >= 0]
            return (self._newest - min(held) + 1) * self.resolution_s if held else 0.0

    def window(self, target: Target, metric: str, cells: int, cell_s: float) -> list[float | None]:
        """``cells`` values, oldest first, each over ``cell_s`` seconds, the last ending with
        the newest bucket; None where nothing is known (before the history starts, or while
        the queue or CPU was absent)."""
        with self._lock:
            return self._window(target, metric, cells, cell_s)

    def windows(
        self, targets: Sequence[Target], metric: str, cells: int, cell_s: float
    ) -> list[list[float | None]]:
        """``window`` for several targets under one lock (a panel's rows)."""
        with self._lock:
            return [self._window(t, metric, cells, cell_s) for t in targets]

    def _window(self, target: Target, metric: str, cells: int, cell_s: float) -> list[float | None]:
        if cells <= 0:
            return []
        series = self._series.get(target)
        kind = METRICS[metric]
        if series is None or self._newest < 0:
            return [None] * cells
        arr = series[[m.key for m in metrics_of(target)].index(metric)]
        per_cell = max(cell_s, 1e-9) / self.resolution_s  # buckets per cell, maybe fractional
        end = self._newest + 1  # one past the newest bucket
        out: list[float | None] = []
        ids, weight, slots = self._ids, self._weight, self.slots
        for k in range(cells):
            lo = end - (cells - k) * per_cell
            hi = lo + per_cell
            b0 = math.floor(lo)
            b1 = max(b0 + 1, math.floor(hi))  # at least the bucket under the cell
            best: float | None = None
            total = w_sum = 0.0
            for b in range(max(b0, end - slots), min(b1, end)):
                slot = b % slots
                if ids[slot] != b:
                    continue
                value = arr[slot]
                if value != value:
                    continue
                if kind.peak:
                    if best is None or value > best:
                        best = value
                else:
                    w = weight[slot] or 1e-9
                    total += value * w
                    w_sum += w
            if not kind.peak and w_sum > 0:
                best = total / w_sum
            out.append(best)
        return out
