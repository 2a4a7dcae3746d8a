"""Families of the CPUs: NET_TX/NET_RX softirqs and their time, the softnet backlog."""

from __future__ import annotations

from typing import Final

from txtop.exporters.families import Families
from txtop.exporters.view import MetricsView

_INTEGRATED: Final = " Integrated by txtop from its per-interval rates, from 0 when txtop started."


def cpu_families(fams: Families, view: MetricsView) -> None:
    if not view.cpus:
        return
    softirqs = fams.counter(
        "softirqs",
        "NET_TX and NET_RX softirqs raised on the CPU (/proc/softirqs)." + _INTEGRATED,
        ["cpu", "type"],
    )
    time_s = fams.counter(
        "softirq_time_seconds",
        "Time the CPU spent in NET_TX and NET_RX softirqs (irq:softirq_entry/exit, from the "
        "probes; estimated from trace windows when txtop_probe_traced_ratio < 1)." + _INTEGRATED,
        ["cpu", "type"],
        "seconds",
    )
    processed = fams.counter(
        "softnet_processed",
        "Packets processed by the CPU's backlog (/proc/net/softnet_stat column 1)." + _INTEGRATED,
        ["cpu"],
    )
    dropped = fams.counter(
        "softnet_dropped",
        "Packets dropped because the CPU's backlog was full (/proc/net/softnet_stat column 2; monotonic across u32 wraps).",
        ["cpu"],
    )
    squeezed = fams.counter(
        "softnet_times_squeezed",
        "Times net_rx_action ran out of budget or time with work left (/proc/net/softnet_stat column 3; monotonic across u32 wraps).",
        ["cpu"],
    )
    for cpu, t in view.cpus.items():
        c = str(cpu)
        softirqs.add_metric([c, "NET_TX"], t.net_tx)
        softirqs.add_metric([c, "NET_RX"], t.net_rx)
        if t.net_tx_s is not None:
            time_s.add_metric([c, "NET_TX"], t.net_tx_s)
        if t.net_rx_s is not None:
            time_s.add_metric([c, "NET_RX"], t.net_rx_s)
        processed.add_metric([c], t.processed)
        dropped.add_metric([c], t.dropped)
        squeezed.add_metric([c], t.squeezed)
