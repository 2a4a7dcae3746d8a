"""CPU time shares: the softirq share of each CPU from /proc/stat's ticks, and its NET_TX /
NET_RX parts from the probes, kept consistent with each other (the parts never exceed the
whole). Pure; used by the tick merge (core/merge.py) for the CPU rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol


class CpuTimesLike(Protocol):
    """The fields of CpuTimes that softirq_time_pct reads (psutil's scputimes have them too)."""

    @property
    def user(self) -> float: ...
    @property
    def nice(self) -> float: ...
    @property
    def system(self) -> float: ...
    @property
    def idle(self) -> float: ...
    @property
    def iowait(self) -> float: ...
    @property
    def irq(self) -> float: ...
    @property
    def softirq(self) -> float: ...
    @property
    def steal(self) -> float: ...


def _busy_total(t: CpuTimesLike) -> float:
    # guest/guest_nice are already counted in user/nice (kernel/sched/cputime.c account_guest_time)
    return float(t.user + t.nice + t.system + t.idle + t.iowait + t.irq + t.softirq + t.steal)


def softirq_time_pct(
    prev: Mapping[int, CpuTimesLike], cur: Mapping[int, CpuTimesLike]
) -> dict[int, float]:
    """Per CPU, the share (0..100) of the interval spent in softirq context.

    Takes two readings of cpu -> times, each with the psutil scputimes fields (CpuTimes or
    psutil's own tuples). A CPU missing from either reading, or whose total did not advance
    (or went backwards: CPU hot-replug), gets 0.0.
    """
    return {cpu: pct for cpu, (pct, _) in softirq_stat_shares(prev, cur).items()}


def softirq_stat_shares(
    prev: Mapping[int, CpuTimesLike], cur: Mapping[int, CpuTimesLike]
) -> dict[int, tuple[float, float | None]]:
    """Per CPU, /proc/stat's softirq share (as ``softirq_time_pct``) and its resolution: what
    one tick (USER_HZ, 10 ms at the usual 100) is worth in percent of the ticks that passed,
    None when none passed. At a 1 s refresh one tick is 1%: the share moves in whole steps
    and a softirq load under a tick shows as 0."""
    out: dict[int, tuple[float, float | None]] = {}
    for cpu, now in cur.items():
        before = prev.get(cpu)
        if before is None:
            out[cpu] = (0.0, None)
            continue
        total = _busy_total(now) - _busy_total(before)
        soft = float(now.softirq - before.softirq)
        resolution = 100.0 / total if total > 0 else None
        if total <= 0 or soft <= 0:
            out[cpu] = (0.0, resolution)
        else:
            out[cpu] = (min(100.0, 100.0 * soft / total), resolution)
    return out


@dataclass(frozen=True, slots=True)
class SoftirqShares:
    """One CPU's softirq time, whole and parts, consistent with each other (see
    ``consistent_shares``)."""

    whole: float
    source: str  # "stat" | "probes": which measurement set ``whole``
    net_tx: float | None
    net_rx: float | None


def consistent_shares(
    stat_pct: float,
    resolution: float | None,
    net_tx: float | None,
    net_rx: float | None,
    this_interval: bool,
) -> SoftirqShares:
    """The softirq share of a CPU and its NET_TX / NET_RX parts, so that the parts never
    exceed the whole.

    The whole comes from /proc/stat (USER_HZ ticks over the ticks that passed); the parts from
    the probes (irq:softirq_entry -> softirq_exit nanoseconds over the attached time, on
    CLOCK_MONOTONIC). Both are shares of the same interval on their own clocks, so they can
    be compared. When the parts were measured in this interval (``this_interval``: probes
    attached, or a trace window within it) they are the finer measurement: NET_TX + NET_RX
    above the ticks' share raises the whole to it (the ticks missed a part of a tick, or the
    whole interval was under one). When they are an estimate held from an earlier window,
    they may only reach the ticks' share plus one tick (its resolution), and are scaled down
    to fit under the whole otherwise. Without ticks (``resolution`` None) the parts set it.
    """
    if net_tx is None or net_rx is None:
        return SoftirqShares(stat_pct, "stat", net_tx, net_rx)
    parts = net_tx + net_rx
    bound = parts  # no ticks to compare with (/proc/stat unread): the parts are all there is
    if not this_interval and resolution is not None:
        bound = min(parts, stat_pct + resolution)
    if bound > stat_pct:
        whole, source = min(100.0, bound), "probes"
    else:
        whole, source = stat_pct, "stat"
    if parts > whole and parts > 0:
        scale = whole / parts
        net_tx, net_rx = net_tx * scale, net_rx * scale
    return SoftirqShares(whole, source, net_tx, net_rx)


def share(before_ns: int | None, now_ns: int, interval_ns: float) -> float:
    """Percent of the interval spent in one softirq on one CPU (never below 0 or above 100)."""
    if before_ns is None or not interval_ns > 0:
        return 0.0
    delta = now_ns - before_ns if now_ns >= before_ns else now_ns
    return min(100.0, max(0.0, 100.0 * delta / interval_ns))
