"""What is wrong on the TX path: a small rules engine over snapshots (pure, no I/O).

Each rule is a short function over a ``Context`` (the newest snapshot and the last
``WINDOW_S`` seconds of them, with their sampled packets) that yields a ``Finding``
(core/finding.py) per subject whose condition holds *now*; its docstring names the kernel
behaviour behind it. The ``FindingsEngine`` turns those instant conditions into what is shown:

- hysteresis in time: a condition must hold for ``RAISE_AFTER_S`` before its finding is raised,
  and stay gone for ``CLEAR_AFTER_S`` before it clears, so a finding does not flicker with
  each burst; a cleared finding stays listed (greyed) for ``KEEP_CLEARED_S``;
- hysteresis in value: a rule raises at one threshold and, once active, holds down to a lower
  one (``ctx.active(...)`` tells it which applies);
- severity goes up at once and down only after ``CLEAR_AFTER_S`` at the lower level.

Where findings come from: the live collector runs an engine on every snapshot it makes, so
``Snapshot.findings`` is in the JSON, recordings and replay; a recording made before findings
existed gets them recomputed once, in order, when it is loaded (``with_findings``); ``--once``
on live data evaluates its single interval without the time hysteresis (``evaluate_once``);
a whole-recording ``--once`` lists every finding of the recording (``summarize``).

txtop never changes a setting: ``command`` is what an operator would type.
"""

from __future__ import annotations

import dataclasses
import shlex
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from txtop.core.config import (
    AQM_QDISCS,
    FIFO_QDISCS,
    SHAPING_QDISCS,
    TXQUEUELEN_QDISCS,
    DeviceConfig,
    QdiscConfig,
    describe_qdisc,
    parse_cpu_list,
    xps_queue_of_cpu,
)
from txtop.core.finding import Finding, Subject, severity_rank
from txtop.core.model import CpuRow, DeviceRow, PacketTrace, QueueRow, Snapshot
from txtop.core.text import format_ns

# ---- time hysteresis ------------------------------------------------------------------------

# A condition must hold this long before its finding is raised: one tick that straddles a
# burst is not a finding. Two ticks at the default 1 s refresh.
RAISE_AFTER_S = 2.0
# ...and be gone this long before the finding clears: a queue that drops with every other burst
# keeps one finding instead of one that blinks.
CLEAR_AFTER_S = 5.0
# A cleared finding stays listed (greyed) this long: long enough to notice it happened.
KEEP_CLEARED_S = 60.0
# Snapshots kept for windowed rules, and the span rates are averaged over (a few ticks: a
# single interval's rate is too jumpy to hold a threshold against).
WINDOW_S = 10.0
RATE_WINDOW_S = 5.0
# Gauges and per-tick rates over the window are averaged from at most this many snapshots
# spread over it (counters use the first and the last): bounded work per tick at any refresh.
SERIES_MAX = 10
# A gap this long (or time going backwards: a seek, another recording) starts over.
MAX_GAP_S = 120.0

# ---- thresholds (raise / hold once active), each with why ---------------------------------------

# A qdisc drop is a packet the sender already built and the stack threw away: one a second,
# sustained over the rate window, is a policy or sizing problem, not noise. Crit when it is
# a real share of what the queue carries.
DROPS_RAISE_PER_S = 1.0
DROPS_HOLD_PER_S = 0.2
DROPS_CRIT_SHARE = 0.05
# Percentiles from fewer sampled packets than this are noise (p99 of 20 is the maximum).
MIN_SAMPLES = 20
# Qdisc wait that dominates: above a millisecond a packet is queued behind others (below it is
# CPU scheduling of the NET_TX softirq), and more than half of its lifetime in the qdisc.
QDISC_WAIT_RAISE_NS = 1_000_000
QDISC_WAIT_HOLD_NS = 500_000
QDISC_WAIT_RAISE_SHARE = 0.5
QDISC_WAIT_HOLD_SHARE = 0.4
# BQL: bytes in flight at the limit most of the time means the driver queue is the bottleneck
# (the rest waits in the qdisc); needs a few ticks of evidence.
BQL_AT_LIMIT_RAISE = 0.5
BQL_AT_LIMIT_HOLD = 0.3
BQL_MIN_TICKS = 3
# lib/dynamic_queue_limits.h DQL_MAX_LIMIT: limit_max's default. Below it, someone capped it.
DQL_MAX_LIMIT = (0xFFFFFFFF // 2) - (0xFFFFFFFF // 16)
# Requeues: the odd one happens when two CPUs race for a queue's lock; tens a second mean the
# driver keeps handing packets back (NETDEV_TX_BUSY: ring full, queue stopped late).
REQUEUES_RAISE_PER_S = 10.0
REQUEUES_HOLD_PER_S = 2.0
# One TX queue of several carrying (nearly) everything while several CPUs send: XPS or the
# flow hash is not spreading. Below CONC_MIN_PPS a device is too quiet to care.
CONC_MIN_PPS = 100.0
CONC_RAISE_SHARE = 0.9
CONC_HOLD_SHARE = 0.8
CONC_MIN_PACKETS = 10
CONC_MIN_CPUS = 2
# NET_TX/NET_RX softirqs of the machine concentrated on one CPU (of two or more): the
# interrupts or RPS steer everything there. Below SOFTIRQ_MIN_PER_S it does not matter.
SOFTIRQ_MIN_PER_S = 1000.0
# ...and only when that CPU is busy with softirqs at all: one spending under a tenth of its
# time there still has room, and concentration costs nothing yet.
SOFTIRQ_MIN_PCT = 10.0
SOFTIRQ_RAISE_SHARE = 0.8
SOFTIRQ_HOLD_SHARE = 0.7
# softnet_stat: a time squeeze is net_rx_action stopping with work left (budget or time used
# up); a drop is the per-CPU backlog (netdev_max_backlog) full. Sustained once a second, not
# one stray event.
SQUEEZE_RAISE_PER_S = 1.0
SQUEEZE_HOLD_PER_S = 0.2
SOFTNET_DROPS_RAISE_PER_S = 1.0
SOFTNET_DROPS_HOLD_PER_S = 0.2
# TX completion (net_dev_xmit -> the free after the NIC said it was sent) slower than a
# millisecond at p99 holds skbs, BQL budget and socket memory: interrupt coalescing or a busy
# CPU taking the completion interrupt.
SLOW_COMPLETION_RAISE_NS = 1_000_000
SLOW_COMPLETION_HOLD_NS = 500_000
# txtop's own probes: any sustained loss means holes in the waterfall; a few a second is a
# sampling setting too aggressive for the ring buffer.
PROBE_LOSS_RAISE_PER_S = 1.0
PROBE_LOSS_HOLD_PER_S = 0.1
PROBE_SKIP_RAISE_PER_S = 1.0
PROBE_SKIP_HOLD_PER_S = 0.1
# Probe losses that mean "sampling too aggressive" (probes/bpf/counters.py breakdown keys);
# aged/lost tracks are packets held in a qdisc or replaced skbs, not overflow.
OVERFLOW_KEYS = ("ringbuf_full:", "track_full", "counter_map_full", "track_evicted")

QueueKey = tuple[str, int]
_R = TypeVar("_R")


# ---- the context rules see ----------------------------------------------------------------------


@dataclass
class Context:
    """The newest snapshot, the window before it, and which findings are active."""

    snaps: Sequence[Snapshot]  # oldest first; the last is the one being evaluated
    active_keys: frozenset[tuple[str, Subject]] = frozenset()
    _recent: list[Snapshot] | None = None
    _queues: dict[QueueKey, list[tuple[float, QueueRow]]] | None = None
    _cpus: dict[int, list[tuple[float, CpuRow]]] | None = None
    _first_queues: dict[QueueKey, QueueRow] | None = None
    _first_cpus: dict[int, CpuRow] | None = None

    @property
    def snap(self) -> Snapshot:
        return self.snaps[-1]

    def active(self, rule_id: str, subject: Subject) -> bool:
        return (rule_id, subject) in self.active_keys

    def recent(self) -> list[Snapshot]:
        """The snapshots of the rate window (RATE_WINDOW_S back from the newest)."""
        if self._recent is None:
            newest = self.snap.mono_ns
            self._recent = [s for s in self.snaps if newest - s.mono_ns < RATE_WINDOW_S * 1e9]
        return self._recent

    def sampled(self) -> list[tuple[float, Snapshot]]:
        """At most SERIES_MAX snapshots spread over the rate window (the newest always), each
        with the seconds it stands for: gauges and per-tick rates averaged over the window
        cost the same at a 0.1 s refresh as at 1 s."""
        recent = self.recent()
        step = max(1, -(-len(recent) // SERIES_MAX))
        picked = list(range(len(recent) - 1, -1, -step))[::-1]
        out = []
        previous = -1
        for index in picked:
            out.append((sum(s.interval_s for s in recent[previous + 1 : index + 1]), recent[index]))
            previous = index
        return out

    def queue_series(self, dev: str, queue: int) -> list[tuple[float, QueueRow]]:
        """(seconds, row) of one queue over the rate window (sampled), oldest first."""
        if self._queues is None:
            self._queues = {}
            for weight, s in self.sampled():
                for q in s.queues:
                    self._queues.setdefault((q.dev, q.queue), []).append((weight, q))
        return self._queues.get((dev, queue), [])

    def cpu_series(self, cpu: int) -> list[tuple[float, CpuRow]]:
        if self._cpus is None:
            self._cpus = {}
            for weight, s in self.sampled():
                for c in s.cpus:
                    self._cpus.setdefault(c.cpu, []).append((weight, c))
        return self._cpus.get(cpu, [])

    def _span_s(self) -> float:
        return (self.snap.mono_ns - self.recent()[0].mono_ns) / 1e9

    def queue_rate(self, q: QueueRow, counter: str) -> float:
        """A queue's rate over the rate window from its cumulative counter ("drops",
        "requeues" of its qdisc; "packets" sent): exact, and O(1) per queue. Falls back to
        the newest interval's rate when there is no earlier snapshot, the qdisc was replaced
        or the counter went back (a reset, a u32 wrap)."""
        if counter == "packets":
            fallback = q.tx.pps if q.tx is not None else 0.0
        else:
            fallback = float(getattr(q.qdisc, f"{counter}_per_s")) if q.qdisc is not None else 0.0
        if self._first_queues is None:
            self._first_queues = {(r.dev, r.queue): r for r in self.recent()[0].queues}
        old = self._first_queues.get((q.dev, q.queue))
        span = self._span_s()
        if old is None or span <= 0 or old is q:
            return fallback
        if counter == "packets":
            if old.tx is None or q.tx is None or old.tx.source != q.tx.source:
                return fallback
            a, b = old.tx.packets, q.tx.packets
        else:
            if old.qdisc is None or q.qdisc is None or old.qdisc.handle != q.qdisc.handle:
                return fallback
            a, b = getattr(old.qdisc, counter), getattr(q.qdisc, counter)
        return (b - a) / span if b >= a else fallback

    def cpu_rate(self, c: CpuRow, counter: str) -> float:
        """A CPU's rate from its cumulative softnet counter ("time_squeeze",
        "softnet_dropped") over the rate window, as ``queue_rate``."""
        fallback = float(getattr(c, f"{counter}_per_s"))
        if self._first_cpus is None:
            self._first_cpus = {r.cpu: r for r in self.recent()[0].cpus}
        old = self._first_cpus.get(c.cpu)
        span = self._span_s()
        if old is None or span <= 0 or old is c:
            return fallback
        a, b = getattr(old, counter), getattr(c, counter)
        return (b - a) / span if b >= a else fallback

    def packets(self, dev: str | None = None) -> list[PacketTrace]:
        return [p for s in self.recent() for p in s.packets if dev is None or p.dev == dev]

    def device(self, dev: str) -> DeviceRow | None:
        return next((d for d in self.snap.devices if d.dev == dev), None)

    def sysctl(self, name: str) -> str | None:
        for d in self.snap.devices:
            if d.config is not None and name in d.config.sysctl:
                return d.config.sysctl[name]
        return None


def mean(series: Iterable[tuple[float, _R]], get: Callable[[_R], float | None]) -> float:
    """Interval-weighted mean of ``get(row)`` (rows where it is None are left out)."""
    total_w = total = 0.0
    for weight, row in series:
        value = get(row)
        if value is None:
            continue
        w = weight if weight > 0 else 0.0
        total_w += w
        total += w * value
    return total / total_w if total_w else 0.0


def _arg(text: object) -> str:
    """A name for a shown shell command: printable and quoted (it may come from a recording)."""
    return shlex.quote("".join(c if c.isprintable() else "?" for c in str(text)))


def _dev(dev: str) -> str:
    """The device's own name for a command: a device of another namespace is "<netns>/<name>"
    in the snapshot (--netns); the command then runs inside it (``_ns``)."""
    return _arg(dev.partition("/")[2] if "/" in dev else dev)


def _ns(dev: str, command: str) -> str:
    """``command`` about ``dev``, run in the device's network namespace when it is another's
    (its label: an ``ip netns`` name, or "pid<N>" for a namespace named by a process)."""
    if "/" not in dev:
        return command
    label = dev.partition("/")[0]
    if label.startswith("pid") and label[3:].isdigit():
        return f"nsenter -t {label[3:]} -n {command}"
    return f"ip netns exec {_arg(label)} {command}"


def _round(value: float, digits: int = 2) -> float:
    return round(float(value), digits)


def _rate(value: float) -> str:
    return f"{value:.1f}" if value < 10 else f"{value:.0f}"


# ---- qdisc rules ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _QdiscView:
    """One qdisc as the queue rows show it: per queue (an mq child) or the device's root."""

    subject: Subject
    dev: str
    row: QueueRow
    config: QdiscConfig | None
    device_config: DeviceConfig | None


def _qdiscs(ctx: Context) -> Iterator[_QdiscView]:
    """Each qdisc once: mq/mqprio children per queue, a shared root qdisc per device."""
    seen: set[tuple[str, str]] = set()
    for q in ctx.snap.queues:
        qd = q.qdisc
        if qd is None or qd.kind in ("mq", "mqprio", "noqueue"):
            continue
        if (q.dev, qd.handle) in seen:
            continue
        seen.add((q.dev, qd.handle))
        device = ctx.device(q.dev)
        dc = device.config if device is not None else None
        qc = q.config.qdisc if q.config is not None else None
        if qd.per_queue:
            subject = Subject("queue", q.dev, q.queue)
        else:
            subject = Subject("device", q.dev)
            if qc is None and dc is not None:
                qc = dc.root_qdisc
        yield _QdiscView(subject, q.dev, q, qc, dc)


def _where(view: _QdiscView) -> str:
    qd = view.row.qdisc
    parent = qd.parent if qd is not None else ""
    return f"dev {_dev(view.dev)} " + ("root" if parent in ("root", "") else f"parent {parent}")


def _from_txqueuelen(view: _QdiscView) -> bool:
    """The qdisc's limit is the device's txqueuelen: pfifo_fast always; a pfifo whose limit
    equals it (fifo_init took it from txqueuelen when created without one)."""
    qd = view.row.qdisc
    if qd is None or qd.kind not in TXQUEUELEN_QDISCS:
        return False
    if qd.kind == "pfifo_fast":
        return True
    txqlen = view.device_config.txqueuelen if view.device_config is not None else None
    return view.config is not None and txqlen is not None and view.config.limit == txqlen


def _drop_evidence(
    ctx: Context, view: _QdiscView, drops: float
) -> dict[str, int | float | str | None]:
    qd = view.row.qdisc
    assert qd is not None
    pps = ctx.queue_rate(view.row, "packets")
    return {
        "qdisc": qd.kind,
        "handle": qd.handle,
        "drops_per_s": _round(drops),
        "drops": qd.drops,
        "pps": _round(pps),
        "backlog_bytes": qd.backlog_bytes,
        "backlog_pkts": qd.backlog_pkts,
        "limit": view.config.limit if view.config else None,
        "limit_unit": view.config.limit_unit if view.config else None,
        "txqueuelen": view.device_config.txqueuelen if view.device_config else None,
    }


def _drops_severity(drops: float, pps: float) -> str:
    return "crit" if drops >= DROPS_CRIT_SHARE * max(drops + pps, 1.0) else "warn"


def qdisc_drops(ctx: Context) -> Iterator[Finding]:
    """Qdisc drops rising: the qdisc's enqueue refused packets (qdisc_drop: its limit of
    packets or bytes was reached, or its policy - tbf's bucket, an AQM - chose to drop).
    The knob is the limit, or what fills it (a shaping rate below what is offered).
    FIFOs whose limit is the txqueuelen are ``txqueuelen_drops`` instead."""
    for view in _qdiscs(ctx):
        drops = ctx.queue_rate(view.row, "drops")
        threshold = (
            DROPS_HOLD_PER_S if ctx.active("qdisc_drops", view.subject) else DROPS_RAISE_PER_S
        )
        if drops < threshold or _from_txqueuelen(view):
            continue
        evidence = _drop_evidence(ctx, view, drops)
        qd = view.row.qdisc
        assert qd is not None
        what = describe_qdisc(view.config, qd.kind)
        yield Finding(
            id="qdisc_drops",
            severity=_drops_severity(drops, float(evidence["pps"] or 0.0)),
            subject=view.subject,
            summary=f"{view.subject.label}: {what} drops {_rate(drops)}/s",
            evidence=evidence,
            knob=f"the {qd.kind} limit (or the rate that fills it): tc qdisc ... {qd.kind} limit N",
            command=_ns(view.dev, f"tc -s qdisc show {_where(view)}"),
        )


def txqueuelen_drops(ctx: Context) -> Iterator[Finding]:
    """Drops on a FIFO sized by txqueuelen: pfifo_fast holds at most dev->tx_queue_len packets
    (and follows a change of it); a pfifo created without a limit took txqueuelen then
    (net/sched/sch_fifo.c fifo_init) and keeps it. Bursts longer than that are dropped."""
    for view in _qdiscs(ctx):
        if not _from_txqueuelen(view):
            continue
        drops = ctx.queue_rate(view.row, "drops")
        active = ctx.active("txqueuelen_drops", view.subject)
        if drops < (DROPS_HOLD_PER_S if active else DROPS_RAISE_PER_S):
            continue
        evidence = _drop_evidence(ctx, view, drops)
        qd = view.row.qdisc
        assert qd is not None
        txqlen = evidence["txqueuelen"]
        bigger = int(txqlen) * 4 if isinstance(txqlen, int) and txqlen > 0 else 1000
        if qd.kind == "pfifo_fast":
            command = f"ip link set dev {_dev(view.dev)} txqueuelen {bigger}"
            knob = "txqueuelen (pfifo_fast's queue follows it)"
        else:
            command = f"tc qdisc replace {_where(view)} pfifo limit {bigger}"
            knob = "the pfifo's limit (it copied txqueuelen when created; changing txqueuelen now does not resize it)"
        yield Finding(
            id="txqueuelen_drops",
            severity=_drops_severity(drops, float(evidence["pps"] or 0.0)),
            subject=view.subject,
            summary=f"{view.subject.label}: {qd.kind} (txqueuelen {txqlen if txqlen is not None else '?'}) drops {_rate(drops)}/s",
            evidence=evidence,
            knob=knob,
            command=_ns(view.dev, command),
        )


def qdisc_wait(ctx: Context) -> Iterator[Finding]:
    """Qdisc wait dominating a queue's latency: sampled packets spend most of their lifetime
    between qdisc_enqueue and qdisc_dequeue, queued behind others. Under a shaper (tbf, htb)
    that is the shaping; on a plain FIFO it is bufferbloat: a standing queue that fq_codel
    (CoDel drops at the head when the sojourn time stays above its target) or fq would keep
    short."""
    for q in ctx.snap.queues:
        wait = q.latency_ns.get("qdisc")
        total = q.latency_ns.get("total")
        if wait is None or total is None or wait.count < MIN_SAMPLES or total.count < MIN_SAMPLES:
            continue
        subject = Subject("queue", q.dev, q.queue)
        active = ctx.active("qdisc_wait", subject)
        share = wait.p99 / total.p99 if total.p99 > 0 else 0.0
        floor = QDISC_WAIT_HOLD_NS if active else QDISC_WAIT_RAISE_NS
        min_share = QDISC_WAIT_HOLD_SHARE if active else QDISC_WAIT_RAISE_SHARE
        if wait.p99 < floor or share < min_share:
            continue
        kind = q.qdisc.kind if q.qdisc is not None else "?"
        qc = q.config.qdisc if q.config is not None else None
        parent = q.qdisc.parent if q.qdisc is not None else "root"
        where = f"dev {_dev(q.dev)} " + ("root" if parent == "root" else f"parent {parent}")
        if kind in FIFO_QDISCS:
            why = "a plain FIFO: a standing queue (bufferbloat)"
            knob = "the qdisc: fq_codel (or fq) keeps the queue short where a FIFO lets it grow"
            command = f"tc qdisc replace {where} fq_codel"
        elif kind in SHAPING_QDISCS:
            why = "shaping: more is offered than the rate lets through"
            knob = f"the {kind} rate, or what is sent through it"
            command = f"tc -s qdisc show {where}"
        elif kind in AQM_QDISCS:
            why = f"{kind} already manages the queue: its target/limit, or a link too slow"
            knob = f"{kind}'s target and limit"
            command = f"tc -s qdisc show {where}"
        else:
            why = "packets queue behind others"
            knob = "the qdisc and the rate of the queue"
            command = f"tc -s qdisc show {where}"
        yield Finding(
            id="qdisc_wait",
            severity="warn",
            subject=subject,
            summary=(
                f"{subject.label}: p99 qdisc wait {format_ns(wait.p99, ascii=True)} is "
                f"{share:.0%} of p99 total ({describe_qdisc(qc, kind)}: {why})"
            ),
            evidence={
                "qdisc": kind,
                "qdisc_p99_ns": wait.p99,
                "qdisc_p50_ns": wait.p50,
                "total_p99_ns": total.p99,
                "share_pct": _round(100 * share, 1),
                "samples": wait.count,
                "limit": qc.limit if qc else None,
                "limit_unit": qc.limit_unit if qc else None,
            },
            knob=knob,
            command=_ns(q.dev, command),
        )


def requeues(ctx: Context) -> Iterator[Finding]:
    """Requeues: the qdisc handed a packet to the driver and got it back (dev_requeue_skb:
    ndo_start_xmit returned NETDEV_TX_BUSY, or the queue was found stopped or its lock taken
    by another CPU). Sustained, the driver's TX ring is too small or stops the queue late."""
    for view in _qdiscs(ctx):
        rate = ctx.queue_rate(view.row, "requeues")
        active = ctx.active("requeues", view.subject)
        if rate < (REQUEUES_HOLD_PER_S if active else REQUEUES_RAISE_PER_S):
            continue
        dc = view.device_config
        ring = dc.tx_ring if dc else None
        qd = view.row.qdisc
        assert qd is not None
        yield Finding(
            id="requeues",
            severity="warn",
            subject=view.subject,
            summary=f"{view.subject.label}: {qd.kind} requeues {_rate(rate)}/s (the driver pushes back)",
            evidence={
                "requeues_per_s": _round(rate),
                "requeues": qd.requeues,
                "tx_ring": ring,
                "tx_ring_max": dc.tx_ring_max if dc else None,
            },
            knob="the TX ring size (ethtool -G tx), and BQL's limit_max",
            command=_ns(view.dev, f"ethtool -g {_dev(view.dev)}"),
        )


# ---- BQL --------------------------------------------------------------------------------------


def _bql_rows(ctx: Context) -> Iterator[tuple[QueueRow, list[tuple[float, QueueRow]]]]:
    for q in ctx.snap.queues:
        if q.bql is not None:
            yield q, [(w, r) for w, r in ctx.queue_series(q.dev, q.queue) if r.bql is not None]


def _at_limit_share(series: list[tuple[float, QueueRow]]) -> float | None:
    """Share of the window BQL's inflight was at its limit: from the between-tick samples
    (``at_limit_pct``) when there are some, else from the tick reads themselves."""
    pcts = [(w, r.bql.at_limit_pct) for w, r in series if r.bql and r.bql.at_limit_pct is not None]
    if pcts:
        return mean(pcts, lambda v: v) / 100.0
    if len(series) < BQL_MIN_TICKS:
        return None
    hits = [
        (w, 1.0 if r.bql and r.bql.limit > 0 and r.bql.inflight >= r.bql.limit else 0.0)
        for w, r in series
    ]
    return mean(hits, lambda v: v)


def bql_limits(ctx: Context) -> Iterator[Finding]:
    """BQL (lib/dynamic_queue_limits.c): inflight at the limit most of the time means the
    driver queue is full and the rest waits in the qdisc (netif_tx_stop_queue on the BQL
    limit). With the limit pinned at limit_max the cap, not the link, decides: dql would go
    higher if allowed."""
    for q, series in _bql_rows(ctx):
        share = _at_limit_share(series)
        assert q.bql is not None
        if share is None:
            continue
        qsubject = Subject("queue", q.dev, q.queue)
        pinned = [(w, 1.0 if r.bql and r.bql.limit >= r.bql.limit_max else 0.0) for w, r in series]
        pinned_share = mean(pinned, lambda v: v)
        capped = q.bql.limit_max < DQL_MAX_LIMIT
        active_max = ctx.active("bql_limit_max", qsubject)
        active_at = ctx.active("bql_at_limit", qsubject)
        evidence = {
            "at_limit_pct": _round(100 * share, 1),
            "inflight": q.bql.inflight,
            "inflight_peak": q.bql.inflight_peak,
            "limit": q.bql.limit,
            "limit_min": q.bql.limit_min,
            "limit_max": q.bql.limit_max,
        }
        hold = BQL_AT_LIMIT_HOLD if active_max else BQL_AT_LIMIT_RAISE
        base = f"/sys/class/net/{_dev(q.dev)}/queues/tx-{q.queue}/byte_queue_limits"
        if capped and pinned_share >= hold and share >= hold:
            yield Finding(
                id="bql_limit_max",
                severity="warn",
                subject=qsubject,
                summary=(
                    f"{qsubject.label}: BQL limit pinned at limit_max {q.bql.limit_max} B, "
                    f"in flight at it {share:.0%} of the time"
                ),
                evidence=evidence,
                knob="BQL limit_max (someone capped it below the default)",
                command=_ns(q.dev, f"cat {base}/limit_max"),
            )
            continue
        if share >= (BQL_AT_LIMIT_HOLD if active_at else BQL_AT_LIMIT_RAISE):
            yield Finding(
                id="bql_at_limit",
                severity="info",
                subject=qsubject,
                summary=(
                    f"{qsubject.label}: BQL in flight at its limit {q.bql.limit} B "
                    f"{share:.0%} of the time (the driver queue is the bottleneck)"
                ),
                evidence=evidence,
                knob="BQL limit_min/limit_max; the link rate; the qdisc in front of it",
                command=_ns(q.dev, f"grep . {base}/*"),
            )


def bql_stalls(ctx: Context) -> Iterator[Finding]:
    """BQL stalls (kernels >= 6.10, dql_check_stall): a completion that came later than
    stall_thrs ms after the queue had bytes in flight: the NIC or its completion interrupt
    stalled. Per queue from stall_cnt; machine-wide from napi:dql_stall_detected."""
    recent = ctx.recent()
    if len(recent) < 2:
        return
    first = recent[0]
    before = {(q.dev, q.queue): q for q in first.queues}
    span = sum(s.interval_s for s in recent[1:])
    for q in ctx.snap.queues:
        old = before.get((q.dev, q.queue))
        if q.bql is None or old is None or old.bql is None:
            continue
        if q.bql.stall_cnt is None or old.bql.stall_cnt is None:
            continue
        grew = q.bql.stall_cnt - old.bql.stall_cnt
        if grew <= 0:
            continue
        subject = Subject("queue", q.dev, q.queue)
        yield Finding(
            id="bql_stalls",
            severity="warn",
            subject=subject,
            summary=f"{subject.label}: {grew} BQL stall(s) in {span:.0f}s (completions late > {q.bql.stall_thrs} ms)",
            evidence={
                "stalls": grew,
                "stall_cnt": q.bql.stall_cnt,
                "stall_max_ms": q.bql.stall_max,
                "stall_thrs_ms": q.bql.stall_thrs,
            },
            knob="the NIC's TX completion interrupt (coalescing, affinity), the driver",
            command=_ns(
                q.dev,
                f"grep . /sys/class/net/{_dev(q.dev)}/queues/tx-{q.queue}/byte_queue_limits/stall_*",
            ),
        )
    a, b = first.probes.bql_stalls, ctx.snap.probes.bql_stalls
    if (
        a is not None
        and b is not None
        and b > a
        and not any(q.bql is not None and q.bql.stall_cnt is not None for q in ctx.snap.queues)
    ):
        yield Finding(
            id="bql_stalls",
            severity="warn",
            subject=Subject("probes"),
            summary=f"{b - a} BQL stall(s) in {span:.0f}s (napi:dql_stall_detected; no queue named)",
            evidence={"stalls": b - a, "bql_stalls": b},
            knob="the NIC's TX completion interrupt (coalescing, affinity), the driver",
            command="grep . /sys/class/net/*/queues/tx-*/byte_queue_limits/stall_cnt",
        )


# ---- spreading -------------------------------------------------------------------------------


def _send_cpu(p: PacketTrace) -> int | None:
    """The CPU that ran __dev_queue_xmit for the packet (XPS picks the queue by it)."""
    for stage in ("dev_queue", "sendto", "qdisc_enqueue"):
        cpu = p.cpus.get(stage)
        if cpu is not None:
            return cpu
    return None


def tx_queue_concentration(ctx: Context) -> Iterator[Finding]:
    """Traffic on one TX queue of several while several CPUs send: netdev_pick_tx chose the
    same queue for all of them - XPS maps their CPUs to it (get_xps_queue), or it is one flow
    (skb_tx_hash puts a flow on one queue, and a socket keeps its queue: sk_tx_queue_mapping).
    One queue means one qdisc lock, one BQL budget and one completion interrupt for all."""
    by_dev: dict[str, list[QueueRow]] = {}
    for q in ctx.snap.queues:
        by_dev.setdefault(q.dev, []).append(q)
    for dev, rows in by_dev.items():
        if len(rows) < 2:
            continue
        rates = {q.queue: ctx.queue_rate(q, "packets") for q in rows}
        total = sum(rates.values())
        if total < CONC_MIN_PPS:
            continue
        hot, hot_pps = max(rates.items(), key=lambda kv: kv[1])
        share = hot_pps / total
        subject = Subject("queue", dev, hot)
        active = ctx.active("tx_queue_concentration", subject)
        if share < (CONC_HOLD_SHARE if active else CONC_RAISE_SHARE):
            continue
        packets = ctx.packets(dev)
        cpus = {c for c in (_send_cpu(p) for p in packets) if c is not None}
        if len(packets) < CONC_MIN_PACKETS or len(cpus) < CONC_MIN_CPUS:
            continue
        configs = {q.queue: q.config for q in rows if q.config is not None}
        xps = {cpu: xps_queue_of_cpu(cpu, configs) for cpu in cpus} if configs else {}
        flows = {(p.l4_proto, p.sport, p.dport) for p in packets if p.sport is not None}
        cpu_list = ",".join(str(c) for c in sorted(cpus))
        if xps and all(xps[c] == [hot] for c in cpus):
            why = f"XPS maps CPUs {cpu_list} all to tx-{hot}"
            knob = "XPS: give each sending CPU its own queue (xps_cpus)"
        elif len(flows) == 1:
            why = "one flow: a flow stays on one queue"
            knob = "spread the work over more flows (or accept one queue per flow)"
        else:
            why = "the queue selection (XPS map, flow hash, socket's cached queue) puts them there"
            knob = "XPS (xps_cpus per queue); the flows' hash"
        yield Finding(
            id="tx_queue_concentration",
            severity="warn",
            subject=subject,
            summary=f"{dev}: tx-{hot} carries {share:.0%} of {len(rows)} queues' packets from CPUs {cpu_list} ({why})",
            evidence={
                "share_pct": _round(100 * share, 1),
                "queue_pps": _round(hot_pps),
                "device_pps": _round(total),
                "queues": len(rows),
                "sending_cpus": cpu_list,
                "flows": len(flows),
                "xps_cpus": configs[hot].xps_cpus if hot in configs else None,
            },
            knob=knob,
            command=_ns(dev, f"grep . /sys/class/net/{_dev(dev)}/queues/tx-*/xps_cpus"),
        )


def softirq_concentration(ctx: Context) -> Iterator[Finding]:
    """NET_RX/NET_TX softirq work concentrated on one CPU: a softirq runs on the CPU that
    raised it - the one that took the NIC's interrupt (NET_RX, and TX completions polled from
    it), or that ran the qdisc (NET_TX) - so interrupt affinity, RPS and XPS decide where it
    lands. One CPU doing it all caps the machine's packet rate at what that CPU can do."""
    cpus = ctx.snap.cpus
    if len(cpus) < 2:
        return
    for vec, attr in (("NET_RX", "net_rx_per_s"), ("NET_TX", "net_tx_per_s")):
        rates = {c.cpu: mean(ctx.cpu_series(c.cpu), _getter(attr)) for c in cpus}
        total = sum(rates.values())
        if total < SOFTIRQ_MIN_PER_S:
            continue
        hot, hot_rate = max(rates.items(), key=lambda kv: kv[1])
        share = hot_rate / total
        subject = Subject("cpu", cpu=hot)
        rule_id = f"{vec.lower()}_concentration"
        active = ctx.active(rule_id, subject)
        if share < (SOFTIRQ_HOLD_SHARE if active else SOFTIRQ_RAISE_SHARE):
            continue
        busy = mean(ctx.cpu_series(hot), lambda r: r.softirq_pct)
        if busy < SOFTIRQ_MIN_PCT:
            continue
        irqs = sorted(
            {
                i.irq
                for d in ctx.snap.devices
                if d.config is not None
                for i in d.config.irqs
                if _only_cpu(i.effective or i.affinity) == hot
            }
        )
        yield Finding(
            id=rule_id,
            severity="warn" if share >= 0.95 else "info",
            subject=subject,
            summary=f"cpu{hot} runs {share:.0%} of the {vec} softirqs ({_rate(hot_rate)}/s of {_rate(total)}/s)",
            evidence={
                "share_pct": _round(100 * share, 1),
                "cpu_per_s": _round(hot_rate),
                "total_per_s": _round(total),
                "cpus": len(cpus),
                "softirq_pct": _round(busy, 1),
                "irqs_on_cpu": ",".join(str(i) for i in irqs) or None,
            },
            knob="IRQ affinity (smp_affinity_list), RPS (rps_cpus), XPS",
            command="grep . /proc/irq/*/smp_affinity_list /sys/class/net/*/queues/rx-*/rps_cpus",
        )


def _getter(attr: str) -> Callable[[CpuRow], float | None]:
    def get(row: CpuRow) -> float | None:
        value = getattr(row, attr)
        return float(value) if value is not None else None

    return get


def _only_cpu(cpu_list: str) -> int | None:
    try:
        cpus = parse_cpu_list(cpu_list)
    except ValueError:
        return None
    return next(iter(cpus)) if len(cpus) == 1 else None


# ---- softnet ------------------------------------------------------------------------------


def softnet(ctx: Context) -> Iterator[Finding]:
    """softnet_stat per CPU: ``time_squeeze`` counts net_rx_action returning with work left
    because netdev_budget packets or netdev_budget_usecs ran out; ``dropped`` counts packets
    refused by a full per-CPU backlog (enqueue_to_backlog, netdev_max_backlog) - on the TX
    side that is where veth and loopback deliver."""
    budget = ctx.sysctl("net.core.netdev_budget")
    usecs = ctx.sysctl("net.core.netdev_budget_usecs")
    backlog = ctx.sysctl("net.core.netdev_max_backlog")
    for c in ctx.snap.cpus:
        subject = Subject("cpu", cpu=c.cpu)
        squeeze = ctx.cpu_rate(c, "time_squeeze")
        active = ctx.active("softnet_squeeze", subject)
        if squeeze >= (SQUEEZE_HOLD_PER_S if active else SQUEEZE_RAISE_PER_S):
            bigger = int(budget) * 2 if budget and budget.isdigit() else 600
            yield Finding(
                id="softnet_squeeze",
                severity="warn",
                subject=subject,
                summary=f"cpu{c.cpu}: softirq budget ran out {_rate(squeeze)}/s (time_squeeze; budget {budget or '?'} pkts / {usecs or '?'} us)",
                evidence={
                    "time_squeeze_per_s": _round(squeeze),
                    "time_squeeze": c.time_squeeze,
                    "netdev_budget": budget,
                    "netdev_budget_usecs": usecs,
                },
                knob="net.core.netdev_budget / netdev_budget_usecs (or spread the work: RPS, IRQ affinity)",
                command=f"sysctl -w net.core.netdev_budget={bigger}",
            )
        drops = ctx.cpu_rate(c, "softnet_dropped")
        active = ctx.active("softnet_drops", subject)
        if drops >= (SOFTNET_DROPS_HOLD_PER_S if active else SOFTNET_DROPS_RAISE_PER_S):
            bigger = int(backlog) * 2 if backlog and backlog.isdigit() else 2000
            yield Finding(
                id="softnet_drops",
                severity="crit",
                subject=subject,
                summary=f"cpu{c.cpu}: backlog full, {_rate(drops)} packets/s dropped (netdev_max_backlog {backlog or '?'})",
                evidence={
                    "dropped_per_s": _round(drops),
                    "dropped": c.softnet_dropped,
                    "netdev_max_backlog": backlog,
                },
                knob="net.core.netdev_max_backlog (or spread the work: RPS)",
                command=f"sysctl -w net.core.netdev_max_backlog={bigger}",
            )


# ---- completion --------------------------------------------------------------------------


def slow_completion(ctx: Context) -> Iterator[Finding]:
    """Slow TX completion: from net_dev_xmit (the driver took the packet) to its free after
    the NIC reported it sent, p99 over a millisecond. The free runs in the TX-completion NAPI
    poll after an interrupt the NIC delays by its coalescing (tx-usecs / tx-frames); until
    then the skb holds socket memory (TCP small queues) and BQL budget. Only on devices with
    real TX completion (BQL): on veth/lo that stage is the receiver's free."""
    for q in ctx.snap.queues:
        comp = q.latency_ns.get("completion")
        if q.bql is None or comp is None or comp.count < MIN_SAMPLES:
            continue
        subject = Subject("queue", q.dev, q.queue)
        active = ctx.active("slow_completion", subject)
        if comp.p99 < (SLOW_COMPLETION_HOLD_NS if active else SLOW_COMPLETION_RAISE_NS):
            continue
        device = ctx.device(q.dev)
        coalesce = device.config.coalesce if device is not None and device.config else {}
        yield Finding(
            id="slow_completion",
            severity="warn",
            subject=subject,
            summary=(
                f"{subject.label}: TX completion p99 {format_ns(comp.p99, ascii=True)} "
                f"(xmit -> free; tx-usecs {coalesce.get('tx_usecs', '?')}, "
                f"tx-frames {coalesce.get('tx_frames', '?')})"
            ),
            evidence={
                "completion_p99_ns": comp.p99,
                "completion_p50_ns": comp.p50,
                "samples": comp.count,
                "tx_usecs": coalesce.get("tx_usecs"),
                "tx_frames": coalesce.get("tx_frames"),
                "irq_cpus": q.config.irq_cpus if q.config else None,
            },
            knob="interrupt coalescing (ethtool -C tx-usecs/tx-frames); the CPU taking the TX interrupt",
            command=_ns(q.dev, f"ethtool -c {_dev(q.dev)}"),
        )


# ---- txtop's own probes -------------------------------------------------------------------


def _overflow(breakdown: Mapping[str, int]) -> int:
    return sum(v for k, v in breakdown.items() if k.startswith(OVERFLOW_KEYS))


def probes(ctx: Context) -> Iterator[Finding]:
    """txtop's probes losing events: the BPF ring buffer or track table was full when a
    sampled packet's record was reserved (bpf_ringbuf_reserve failed): sampling too often for
    how fast records are drained. Skipped runs: the kernel did not run a tracepoint program
    because another BPF program was running on that CPU (bpf_prog_info.recursion_misses)."""
    recent = [s for s in ctx.recent() if s.probes.state == "running"]
    if len(recent) < 2:
        return
    first, last = recent[0], recent[-1]
    span = sum(s.interval_s for s in recent[1:])
    if span <= 0:
        return
    subject = Subject("probes")
    lost = _overflow(last.probes.breakdown) - _overflow(first.probes.breakdown)
    lost_rate = max(0, lost) / span
    active = ctx.active("probe_losses", subject)
    if lost_rate >= (PROBE_LOSS_HOLD_PER_S if active else PROBE_LOSS_RAISE_PER_S):
        every = int(last.probes.sampling.get("every", 0) or 0)
        yield Finding(
            id="probe_losses",
            severity="warn",
            subject=subject,
            summary=f"probes lose {_rate(lost_rate)} events/s (ring buffer or track table full): sampling too aggressive",
            evidence={
                "lost_per_s": _round(lost_rate),
                "lost_events": last.probes.lost_events,
                "sample_every": every or None,
                "max_per_s": last.probes.sampling.get("max_per_s"),
            },
            knob="sampling: trace fewer packets (--sample N, or ] in the waterfall), --max-samples-per-s",
            command=f"txtop --sample {max(every, 1) * 4}",
        )
    skipped = last.probes.skipped_runs - first.probes.skipped_runs
    skip_rate = max(0, skipped) / span
    active = ctx.active("probe_skipped", subject)
    if skip_rate >= (PROBE_SKIP_HOLD_PER_S if active else PROBE_SKIP_RAISE_PER_S):
        yield Finding(
            id="probe_skipped",
            severity="info",
            subject=subject,
            summary=f"the kernel skipped {_rate(skip_rate)} probe runs/s (another BPF program was running on the CPU)",
            evidence={"skipped_per_s": _round(skip_rate), "skipped_runs": last.probes.skipped_runs},
            knob="other BPF programs on the same tracepoints or in softirq context",
            command="bpftool prog show",
        )


# Rule functions in the order findings are listed at equal severity. Ids a rule yields:
RULES: tuple[Callable[[Context], Iterable[Finding]], ...] = (
    qdisc_drops,  # qdisc_drops
    txqueuelen_drops,  # txqueuelen_drops
    qdisc_wait,  # qdisc_wait
    bql_limits,  # bql_at_limit, bql_limit_max
    bql_stalls,  # bql_stalls
    requeues,  # requeues
    tx_queue_concentration,  # tx_queue_concentration
    softirq_concentration,  # net_rx_concentration, net_tx_concentration
    softnet,  # softnet_squeeze, softnet_drops
    slow_completion,  # slow_completion
    probes,  # probe_losses, probe_skipped
)
RULE_IDS: tuple[str, ...] = (
    "qdisc_drops",
    "txqueuelen_drops",
    "qdisc_wait",
    "bql_at_limit",
    "bql_limit_max",
    "bql_stalls",
    "requeues",
    "tx_queue_concentration",
    "net_rx_concentration",
    "net_tx_concentration",
    "softnet_squeeze",
    "softnet_drops",
    "slow_completion",
    "probe_losses",
    "probe_skipped",
)


def conditions(ctx: Context) -> dict[tuple[str, Subject], Finding]:
    """Every rule's findings for the newest snapshot, one per (id, subject): the worst."""
    out: dict[tuple[str, Subject], Finding] = {}
    for rule in RULES:
        for f in rule(ctx):
            old = out.get(f.key)
            if old is None or severity_rank(f.severity) > severity_rank(old.severity):
                out[f.key] = f
    return out


# ---- the engine -------------------------------------------------------------------------------


@dataclass
class _Track:
    """One (rule, subject): the current run of its condition and what is shown for it."""

    start_ns: int | None = None  # the condition's current run began (None: not holding)
    last_true_ns: int = 0
    latest: Finding | None = None
    active: bool = False
    since: float = 0.0
    levels: deque[tuple[int, int]] = field(default_factory=deque)  # (mono_ns, severity rank)
    cleared: Finding | None = None  # shown greyed while not active
    cleared_ns: int = 0


def _order(f: Finding) -> tuple[int, int, float, str, Subject]:
    return (0 if f.active else 1, -severity_rank(f.severity), f.since, f.id, f.subject)


class FindingsEngine:
    """Feeds on snapshots in order; ``observe`` returns the findings to show after each."""

    def __init__(
        self,
        raise_after_s: float = RAISE_AFTER_S,
        clear_after_s: float = CLEAR_AFTER_S,
        keep_cleared_s: float = KEEP_CLEARED_S,
    ) -> None:
        self.raise_after_ns = int(raise_after_s * 1e9)
        self.clear_after_ns = int(clear_after_s * 1e9)
        self.keep_cleared_ns = int(keep_cleared_s * 1e9)
        self._window: deque[Snapshot] = deque()
        self._tracks: dict[tuple[str, Subject], _Track] = {}

    def reset(self) -> None:
        self._window.clear()
        self._tracks.clear()

    def apply(self, snap: Snapshot) -> Snapshot:
        """``snap`` with its ``findings`` set (the engine's state moves on by one tick)."""
        return dataclasses.replace(snap, findings=self.observe(snap))

    def observe(self, snap: Snapshot) -> tuple[Finding, ...]:
        now = snap.mono_ns
        if self._window:
            last = self._window[-1].mono_ns
            if now < last or now - last > MAX_GAP_S * 1e9:
                self.reset()
        self._window.append(snap)
        while self._window and now - self._window[0].mono_ns > WINDOW_S * 1e9:
            self._window.popleft()
        active = frozenset(k for k, t in self._tracks.items() if t.active)
        found = conditions(Context(list(self._window), active))
        start = now - int(max(0.0, snap.interval_s) * 1e9)
        for key, finding in found.items():
            track = self._tracks.setdefault(key, _Track())
            if track.start_ns is None:
                track.start_ns = start
            track.last_true_ns = now
            track.latest = finding
            track.levels.append((now, severity_rank(finding.severity)))
            if not track.active and now - track.start_ns >= self.raise_after_ns:
                track.active = True
                track.since = snap.time - (now - track.start_ns) / 1e9
                track.cleared = None
        for key, track in list(self._tracks.items()):
            if key in found:
                continue
            if track.active and now - track.last_true_ns >= self.clear_after_ns:
                track.active = False
                assert track.latest is not None
                track.cleared = dataclasses.replace(
                    self._shown(track, now), state="cleared", cleared_at=snap.time
                )
                track.cleared_ns = now
            if not track.active:
                track.start_ns = None
            if track.cleared is not None and now - track.cleared_ns > self.keep_cleared_ns:
                track.cleared = None
            if not track.active and track.cleared is None and track.start_ns is None:
                del self._tracks[key]
        out = []
        for track in self._tracks.values():
            if track.active:
                out.append(self._shown(track, now))
            elif track.cleared is not None:
                out.append(track.cleared)
        return tuple(sorted(out, key=_order))

    def _shown(self, track: _Track, now: int) -> Finding:
        """The latest finding at the worst severity of the last CLEAR_AFTER_S: up at once,
        down only when the lower level has held that long."""
        while track.levels and now - track.levels[0][0] > self.clear_after_ns:
            track.levels.popleft()
        assert track.latest is not None
        rank = max((r for _, r in track.levels), default=severity_rank(track.latest.severity))
        severity = ("info", "warn", "crit")[max(0, rank)]
        return dataclasses.replace(track.latest, severity=severity, since=track.since)


# ---- findings for other uses ----------------------------------------------------------------


def with_findings(snapshots: Sequence[Snapshot]) -> tuple[Snapshot, ...]:
    """A recording's frames with findings: frames that carry them keep theirs (recorded live);
    frames without (recorded before findings existed) get them from an engine run over the
    frames in order, so replay, seeks and ``--at`` all show the same findings."""
    if all(s.findings is not None for s in snapshots):
        return tuple(snapshots)
    engine = FindingsEngine()
    out = []
    for snap in snapshots:
        computed = engine.observe(snap)
        out.append(
            snap if snap.findings is not None else dataclasses.replace(snap, findings=computed)
        )
    return tuple(out)


def evaluate_once(snap: Snapshot, before: Sequence[Snapshot] = ()) -> tuple[Finding, ...]:
    """The conditions of one interval without time hysteresis (``--once``: no flicker to
    damp in a single picture); ``before`` may give earlier snapshots for windowed rules."""
    found = conditions(Context([*before, snap]))
    start = snap.time - snap.interval_s
    return tuple(sorted((dataclasses.replace(f, since=start) for f in found.values()), key=_order))


def summarize(snapshots: Sequence[Snapshot]) -> tuple[Finding, ...] | None:
    """Every finding seen over a window of snapshots, once per (id, subject): active if it
    is active in the last one, else cleared; at the worst severity it reached, with the
    evidence of its worst moment (``--once`` over a whole recording)."""
    if all(s.findings is None for s in snapshots):
        return None
    last_active = {f.key for f in (snapshots[-1].findings or ()) if f.active}
    best: dict[tuple[str, Subject], Finding] = {}
    first_since: dict[tuple[str, Subject], float] = {}
    for snap in snapshots:
        for f in snap.findings or ():
            if not f.active:
                continue
            first_since.setdefault(f.key, f.since)
            old = best.get(f.key)
            if old is None or severity_rank(f.severity) >= severity_rank(old.severity):
                best[f.key] = f
    out = []
    for key, f in best.items():
        state = "active" if key in last_active else "cleared"
        cleared_at = None
        if state == "cleared":
            cleared_at = next(
                (
                    g.cleared_at
                    for s in reversed(snapshots)
                    for g in s.findings or ()
                    if g.key == key and not g.active
                ),
                None,
            )
        out.append(
            dataclasses.replace(f, state=state, since=first_since[key], cleared_at=cleared_at)
        )
    return tuple(sorted(out, key=_order))
