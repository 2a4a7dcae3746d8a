"""Monotonic totals of the counters txtop exports (publisher side).

Counters stay monotonic while txtop runs:

- Kernel counters the snapshot carries raw (qdisc packets/bytes/drops/requeues/overlimits,
  softnet dropped/times_squeezed, BQL stall_cnt, the probes' loss counters) advance by
  ``core.rates.counter_delta``: a u32 wrap (qdisc and softnet counters are u32) adds the wrapped
  delta; a decrease that is no wrap, or a new ifindex under the same name (a re-created device),
  adds the new value (what was counted since the restart).
- Per-queue transmit counters start at the snapshot's cumulative value and then advance by the
  snapshot's rate x interval. Those rates already went through core/merge.py (wraps, resets,
  re-created devices give no spike) and, below 100% trace duty, are the estimates extrapolated
  from trace windows, carried over intervals without a window: the probes' own counters only
  grow while attached, so the totals keep growing at the estimated rate between windows
  (``txtop_probe_traced_ratio`` < 1 says so).
- What the snapshot carries only as rates (NET_TX/NET_RX softirq counts, softnet processed,
  softirq time shares) is integrated from rate x interval, starting at 0 when txtop started.
  The HELP text of those metrics says so.

Replayed snapshots (``Snapshot.replay`` set: --replay, --demo without root) are exported as the
data of the frame being played, with counters that count what was played: a frame shown again
(pause, a speed change) is not counted twice, and a jump (a seek, a step back, the demo's
loop) moves no counter: the raw counters are taken as the new base and the jump frame's
packets (it carries the seconds before it for the waterfall) are left out of the histograms.
So counters stay monotonic however the recording is played, and rate() reads the recorded
rates while it plays forward at 1x (at 4x it reads four times them: the snapshots'
intervals are the recorded ones).

The ``account_*`` functions below take the totals forward by one snapshot, in a fixed order
(qdiscs, queues, CPUs, probes); ``tick`` is the publish number.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from typing import Final

from txtop.core.model import CpuRow, ProbeStatus, QdiscStats, QueueRow, Snapshot, TxStats
from txtop.core.rates import counter_delta
from txtop.exporters.view import CpuTotals, QdiscLabels, QdiscTotals, QueueLabels, TxTotals

U32: Final = 32  # qdisc packets/drops/requeues/overlimits and softnet_stat columns are u32
# Totals not updated for this many publishes are forgotten (a device gone for good). One that
# comes back later starts again from its current value: a counter reset rate() handles.
FORGET_AFTER: Final = 600
_SWEEP_EVERY: Final = 64  # publishes between two looks for forgotten totals


@dataclass(slots=True)
class Track:
    raw: float  # the last raw value seen (cumulative counters), unused for integrated ones
    total: float  # the exported monotonic total
    epoch: Hashable  # what identifies one life of the raw counter (the ifindex)
    seen: int  # publish number of the last update


class Totals:
    """Monotonic totals keyed by (metric, labels...), updated by one publisher at a time."""

    def __init__(self) -> None:
        self._tracks: dict[Hashable, Track] = {}
        self.rebasing = False  # a replay jump is being accounted: raw values are new bases

    def __len__(self) -> int:
        return len(self._tracks)

    def cumulative(
        self,
        key: Hashable,
        raw: int,
        tick: int,
        *,
        width: int | None = None,
        epoch: Hashable = None,
    ) -> float:
        """A kernel counter given raw: start at its value, then add its deltas (none while
        ``rebasing``: the raw value only becomes the base the next delta is taken from)."""
        track = self._tracks.get(key)
        if track is None:
            self._tracks[key] = Track(raw, float(raw), epoch, tick)
            return float(raw)
        if self.rebasing:
            delta = 0
        elif epoch != track.epoch:
            delta = raw if raw >= 0 else 0  # a new life (re-created device): counted since
        else:
            delta = counter_delta(int(track.raw), raw, width)
        track.total += delta
        track.raw, track.epoch, track.seen = raw, epoch, tick
        return track.total

    def integrated(self, key: Hashable, start: float, amount: float, tick: int) -> float:
        """A total known through rates: ``start`` the first time, then + ``amount`` (>= 0)."""
        track = self._tracks.get(key)
        if track is None:
            self._tracks[key] = Track(0, float(start), None, tick)
            return float(start)
        if amount > 0 and math.isfinite(amount):
            track.total += amount
        track.seen = tick
        return track.total

    def forget_older_than(self, tick: int) -> None:
        stale = [k for k, t in self._tracks.items() if t.seen < tick]
        for key in stale:
            del self._tracks[key]

    def sweep(self, tick: int) -> None:
        """Every ``_SWEEP_EVERY`` publishes, forget what was not updated for ``FORGET_AFTER``."""
        if tick % _SWEEP_EVERY == 0:
            self.forget_older_than(tick - FORGET_AFTER)


@dataclass(frozen=True, slots=True)
class ProbeTotals:
    lost_events: float
    skipped_runs: float
    bql_stalls_detected: float | None


def usable_interval(snap: Snapshot, rebase: bool) -> float:
    """The interval rates are integrated over: 0 for a replay jump (no total moves) and for an
    interval that is not a positive finite number."""
    if rebase:
        return 0.0
    return snap.interval_s if snap.interval_s > 0 and math.isfinite(snap.interval_s) else 0.0


def qdisc_rows(snap: Snapshot) -> Iterator[tuple[QdiscLabels, QueueRow]]:
    """Each qdisc of the snapshot once, with its labels and the queue row carrying it.

    An mq/mqprio child serves its own queue. Any other root qdisc serves every TX queue of the
    device (the snapshot repeats it on each queue row): it is exported once, with the queue
    label set when the device has a single TX queue and empty otherwise, so that sums over
    queues do not count it once per queue.
    """
    n_queues = {d.dev: d.tx_queues for d in snap.devices}
    shared: set[tuple[str, str, str, str]] = set()
    for row in snap.queues:
        q = row.qdisc
        if q is None:
            continue
        if q.per_queue or n_queues.get(row.dev, 1) <= 1:
            queue = str(row.queue)
        else:
            ident = (row.dev, q.kind, q.handle, q.parent)
            if ident in shared:
                continue
            shared.add(ident)
            queue = ""
        yield (row.dev, queue, q.kind, q.handle, q.parent), row


def account_qdiscs(totals: Totals, snap: Snapshot, tick: int) -> dict[QdiscLabels, QdiscTotals]:
    """The qdiscs' backlog as it is and their counters' totals."""
    qdiscs: dict[QdiscLabels, QdiscTotals] = {}
    for labels, row in qdisc_rows(snap):
        assert row.qdisc is not None
        # A re-created device has a new ifindex: its counters restart.
        qdiscs[labels] = _qdisc_totals(totals, labels, row.qdisc, row.ifindex, tick)
    return qdiscs


def _qdisc_totals(
    totals: Totals, labels: QdiscLabels, q: QdiscStats, epoch: int, tick: int
) -> QdiscTotals:
    def count(tag: str, raw: int, width: int | None = U32) -> float:
        return totals.cumulative((tag, labels), raw, tick, width=width, epoch=epoch)

    return QdiscTotals(
        backlog_bytes=q.backlog_bytes,
        backlog_pkts=q.backlog_pkts,
        qlen=q.qlen,
        packets=count("qp", q.packets),
        bytes=count("qb", q.bytes, None),  # u64 in the kernel
        drops=count("qd", q.drops),
        requeues=count("qr", q.requeues),
        overlimits=count("qo", q.overlimits),
    )


def account_queues(
    totals: Totals, snap: Snapshot, tick: int, interval: float
) -> tuple[dict[QueueLabels, TxTotals], dict[QueueLabels, float]]:
    """Per TX queue: the transmit totals and the BQL stall count (kernels >= 6.10)."""
    tx: dict[QueueLabels, TxTotals] = {}
    stalls: dict[QueueLabels, float] = {}
    for row in snap.queues:
        qlabels = (row.dev, str(row.queue))
        if row.tx is not None:
            tx[qlabels] = _tx_totals(totals, qlabels, row.tx, tick, interval)
        if row.bql is not None and row.bql.stall_cnt is not None:
            stalls[qlabels] = totals.cumulative(
                ("bs", qlabels), row.bql.stall_cnt, tick, epoch=row.ifindex
            )
    return tx, stalls


def _tx_totals(
    totals: Totals, qlabels: QueueLabels, t: TxStats, tick: int, interval: float
) -> TxTotals:
    errors = _optional_total(totals, ("te", qlabels), t.errors, t.errors_per_s, interval, tick)
    stopped = _optional_total(totals, ("ts", qlabels), t.stopped, t.stopped_per_s, interval, tick)
    return TxTotals(
        packets=totals.integrated(("tp", qlabels), t.packets, t.pps * interval, tick),
        bytes=totals.integrated(("tb", qlabels), t.bytes, t.bps / 8 * interval, tick),
        errors=errors,
        stopped=stopped,
    )


def _optional_total(
    totals: Totals,
    key: Hashable,
    start: int | None,
    per_s: float | None,
    interval: float,
    tick: int,
) -> float | None:
    """A transmit counter the probes may not give: None when neither it nor its rate is known."""
    if start is None and per_s is None:
        return None
    return totals.integrated(key, start or 0, (per_s or 0.0) * interval, tick)


def account_cpus(
    totals: Totals, snap: Snapshot, tick: int, interval: float
) -> dict[int, CpuTotals]:
    """Per CPU: NET_TX/NET_RX softirqs and their time, softnet processed/dropped/squeezed."""
    cpus: dict[int, CpuTotals] = {}
    for c in snap.cpus:
        cpus[c.cpu] = _cpu_totals(totals, c, tick, interval)
    return cpus


def _cpu_totals(totals: Totals, c: CpuRow, tick: int, interval: float) -> CpuTotals:
    key = c.cpu

    def integrated(tag: str, per_s: float) -> float:
        return totals.integrated((tag, key), 0, per_s * interval, tick)

    def seconds(tag: str, pct: float | None) -> float | None:
        return None if pct is None else totals.integrated((tag, key), 0, pct / 100 * interval, tick)

    tx_s = seconds("ct", c.net_tx_time_pct)
    rx_s = seconds("cr", c.net_rx_time_pct)
    return CpuTotals(
        net_tx=integrated("stx", c.net_tx_per_s),
        net_rx=integrated("srx", c.net_rx_per_s),
        net_tx_s=tx_s,
        net_rx_s=rx_s,
        processed=integrated("snp", c.softnet_processed_per_s),
        dropped=totals.cumulative(("snd", key), c.softnet_dropped, tick, width=U32),
        squeezed=totals.cumulative(("sns", key), c.time_squeeze, tick, width=U32),
    )


def account_probes(totals: Totals, probes: ProbeStatus, tick: int) -> ProbeTotals:
    """txtop's own losses and the BQL stalls the probes saw."""
    lost = totals.cumulative(("pl",), probes.lost_events, tick)
    skipped = totals.cumulative(("ps",), probes.skipped_runs, tick)
    detected = None
    if probes.bql_stalls is not None:
        detected = totals.cumulative(("pb",), probes.bql_stalls, tick)
    return ProbeTotals(lost, skipped, detected)
