"""What the readers hand the core: plain, immutable readings of kernel counters (no I/O here).

The readers in probes/readers/ parse sysfs, procfs and rtnetlink into these types; the pure
merge (core/merge.py) turns one tick's ``TickReadings`` plus the previous tick's state into
snapshot rows. The core never imports the readers: the types live here and the readers import
them. The tracer's own readings (``TracerReading`` and its counters) live in core/source.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from txtop.core.model import BqlStats, QdiscStats
from txtop.core.source import TracerReading

# Qdisc parents as the kernel sends them (include/uapi/linux/pkt_sched.h).
TC_H_ROOT = 0xFFFFFFFF
TC_H_UNSPEC = 0


@dataclass(frozen=True, slots=True)
class TxCounters:
    """/sys/class/net/<dev>/statistics/tx_* (dev_get_stats -> ndo_get_stats64)."""

    tx_packets: int
    tx_bytes: int
    tx_dropped: int
    tx_errors: int


@dataclass(frozen=True, slots=True)
class NetDevice:
    name: str
    ifindex: int
    tx_queues: tuple[int, ...]  # indices N of queues/tx-N, ascending
    oper_state: str  # /sys/class/net/<dev>/operstate (RFC 2863 words: up, down, unknown, ...)
    counters: TxCounters


def format_handle(handle: int) -> str:
    """A qdisc handle the way ``tc qdisc show`` prints it: major in hex and a colon ("8001:")."""
    major, minor = handle >> 16 & 0xFFFF, handle & 0xFFFF
    return f"{major:x}:" if minor == 0 else f"{major:x}:{minor:x}"


def format_parent(parent: int) -> str:
    """A parent class id as tc prints it: "root", "none", ":3", "1:" or "1:3"."""
    if parent == TC_H_ROOT:
        return "root"
    if parent == TC_H_UNSPEC:
        return "none"
    if parent >> 16 & 0xFFFF == 0:
        return f":{parent & 0xFFFF:x}"
    return format_handle(parent)


@dataclass(frozen=True, slots=True)
class QdiscInfo:
    """One qdisc of an RTM_GETQDISC dump (probes/readers/qdisc.py decodes it)."""

    ifindex: int
    kind: str
    handle: int  # u32 as the kernel sends it (major << 16 | minor)
    parent: int
    qlen: int
    backlog_bytes: int
    drops: int
    requeues: int
    overlimits: int
    bytes: int
    packets: int  # u32 in TCA_STATS_BASIC: wraps after 4G packets

    @property
    def handle_str(self) -> str:
        return format_handle(self.handle)

    @property
    def parent_str(self) -> str:
        return format_parent(self.parent)

    def to_stats(self, per_queue: bool) -> QdiscStats:
        return QdiscStats(
            kind=self.kind,
            handle=self.handle_str,
            parent=self.parent_str,
            qlen=self.qlen,
            backlog_bytes=self.backlog_bytes,
            backlog_pkts=self.qlen,
            drops=self.drops,
            requeues=self.requeues,
            overlimits=self.overlimits,
            bytes=self.bytes,
            packets=self.packets,
            per_queue=per_queue,
        )


class SoftnetRow(NamedTuple):
    """One CPU's row of /proc/net/softnet_stat (cumulative, u32)."""

    processed: int
    dropped: int
    time_squeeze: int


class CpuTimes(NamedTuple):
    """One /proc/stat cpuN line in USER_HZ ticks; field names match psutil's scputimes."""

    user: float
    nice: float
    system: float
    idle: float
    iowait: float = 0.0
    irq: float = 0.0
    softirq: float = 0.0
    steal: float = 0.0
    guest: float = 0.0
    guest_nice: float = 0.0


QueueKey = tuple[str, int]  # (device name, TX queue index)


@dataclass(frozen=True, slots=True)
class TickReadings:
    """Everything the collector read in one tick, as plain data.

    A source that could not be read is simply empty here (the collector reports why in the
    snapshot's ``probes.unavailable``). ``bql`` maps (device, queue) to the queue's BQL, None
    when the device has no BQL or the queue could not be read. ``tracer`` is None when no
    tracer is running.
    """

    mono_ns: int
    devices: tuple[NetDevice, ...] = ()
    bql: Mapping[QueueKey, BqlStats | None] = field(default_factory=dict)
    qdiscs: tuple[QdiscInfo, ...] = ()
    softirqs: Mapping[int, tuple[int, int]] = field(default_factory=dict)  # (NET_TX, NET_RX)
    softnet: Mapping[int, SoftnetRow] = field(default_factory=dict)
    cpu_times: Mapping[int, CpuTimes] = field(default_factory=dict)
    tracer: TracerReading | None = None
