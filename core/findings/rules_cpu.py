"""The spreading rules (one TX queue carrying a device's traffic from several CPUs, one CPU
running the machine's NET_RX/NET_TX softirqs) and the softnet_stat ones (time squeeze,
backlog drops)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from txtop.core.config import parse_cpu_list, xps_queue_of_cpu
from txtop.core.finding import Finding, Subject
from txtop.core.findings.context import Context, _dev, _ns, _rate, _round, mean
from txtop.core.findings.thresholds import (
    CONC_HOLD_SHARE,
    CONC_MIN_CPUS,
    CONC_MIN_PACKETS,
    CONC_MIN_PPS,
    CONC_RAISE_SHARE,
    SOFTIRQ_HOLD_SHARE,
    SOFTIRQ_MIN_PCT,
    SOFTIRQ_MIN_PER_S,
    SOFTIRQ_RAISE_SHARE,
    SOFTNET_DROPS_HOLD_PER_S,
    SOFTNET_DROPS_RAISE_PER_S,
    SQUEEZE_HOLD_PER_S,
    SQUEEZE_RAISE_PER_S,
)
from txtop.core.model import CpuRow, PacketTrace, QueueRow

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
