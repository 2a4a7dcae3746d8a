"""The qdisc rules: drops (by a qdisc's own limit or policy, or by a FIFO sized by
txqueuelen), qdisc wait dominating latency, and requeues."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from txtop.core.config import (
    AQM_QDISCS,
    FIFO_QDISCS,
    SHAPING_QDISCS,
    TXQUEUELEN_QDISCS,
    DeviceConfig,
    QdiscConfig,
    describe_qdisc,
)
from txtop.core.finding import Finding, Subject
from txtop.core.findings.context import Context, _dev, _ns, _rate, _round
from txtop.core.findings.thresholds import (
    DROPS_CRIT_SHARE,
    DROPS_HOLD_PER_S,
    DROPS_RAISE_PER_S,
    MIN_SAMPLES,
    QDISC_WAIT_HOLD_NS,
    QDISC_WAIT_HOLD_SHARE,
    QDISC_WAIT_RAISE_NS,
    QDISC_WAIT_RAISE_SHARE,
    REQUEUES_HOLD_PER_S,
    REQUEUES_RAISE_PER_S,
)
from txtop.core.model import QueueRow
from txtop.core.text import format_ns

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
