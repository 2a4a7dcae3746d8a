"""The probes' data of devices in other network namespaces (--netns), split from txtop's own.

Names and ifindexes are unique only within a namespace, so the tracer keys these devices by
(namespace inode, ifindex): its per-queue counters for them are ``TracerReading.ns_queues``
((inode, ifindex, queue) -> counters) and its packets carry ``PacketTrace.netns_inode`` (0 for
txtop's own namespace, or where the probes could not read it). ``own_reading`` keeps what is
txtop's own, ``namespace_reading`` gives one namespace's share in the form the merge takes for
any device (queues by (ifindex, queue) within that namespace), and ``label_packets`` names a
namespace's packets as its rows are named: "<label>/<dev>", ``netns`` = the label.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from txtop.core.model import PacketTrace
from txtop.core.source import QueueCounters, TracerReading


def own_reading(reading: TracerReading) -> TracerReading:
    """``reading`` without the packets of devices in other namespaces."""
    packets = tuple(p for p in reading.packets if not p.netns_inode)
    if len(packets) == len(reading.packets):
        return reading
    return dataclasses.replace(reading, packets=packets)


def namespace_queues(
    ns_queues: Mapping[tuple[int, int, int], QueueCounters], inode: int
) -> dict[tuple[int, int], QueueCounters]:
    """The per-(ifindex, queue) counters of the namespace with this inode."""
    return {(ifindex, queue): c for (ns, ifindex, queue), c in ns_queues.items() if ns == inode}


def namespace_reading(reading: TracerReading, inode: int) -> TracerReading:
    """The share of ``reading`` of one other namespace (its inode, never 0): its devices'
    queue counters keyed by (ifindex, queue) and its packets. No CPU counters: those are
    per CPU, shown once with txtop's own."""
    if inode <= 0:
        raise ValueError(f"a namespace inode is positive, got {inode!r}")
    return TracerReading(
        status=reading.status,
        packets=tuple(p for p in reading.packets if p.netns_inode == inode),
        queues=namespace_queues(reading.ns_queues, inode),
        traced_s=reading.traced_s,
        traced_late_s=reading.traced_late_s,
    )


def label_packets(label: str, packets: Iterable[PacketTrace]) -> tuple[PacketTrace, ...]:
    """A namespace's packets named as its rows: dev "<label>/<dev>", netns = label."""
    return tuple(
        dataclasses.replace(p, dev=f"{label}/{p.dev}" if p.dev else label, netns=label)
        for p in packets
    )
