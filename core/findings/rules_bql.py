"""The driver-queue rules: BQL at its limit (or pinned at a lowered limit_max), BQL stalls,
and slow TX completion."""

from __future__ import annotations

from collections.abc import Iterator

from txtop.core.finding import Finding, Subject
from txtop.core.findings.context import Context, _dev, _ns, _round, mean
from txtop.core.findings.thresholds import (
    BQL_AT_LIMIT_HOLD,
    BQL_AT_LIMIT_RAISE,
    BQL_MIN_TICKS,
    DQL_MAX_LIMIT,
    MIN_SAMPLES,
    SLOW_COMPLETION_HOLD_NS,
    SLOW_COMPLETION_RAISE_NS,
)
from txtop.core.model import QueueRow
from txtop.core.text import format_ns

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
