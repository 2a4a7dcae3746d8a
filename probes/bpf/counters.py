"""The tracer's counters: per-queue packets, per-CPU NET softirqs, the ``stats`` slots, lost
events and runs the kernel skipped, read from the loaded program's maps.

``probe_status`` (pure) turns the stats slots and what track reconstruction counted into the
ProbeStatus of a TracerReading; ``Counters`` reads the maps.
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from txtop.core.model import ProbeStatus
from txtop.core.source import CpuSoftirqCounters, QueueCounters
from txtop.probes.bpf.abi import (
    N_STATS,
    PROBE_IDS,
    S_COUNTER_FULL,
    S_DQL_STALL,
    S_FLOW_FILTERED,
    S_NO_FLOW,
    S_RATE_LIMITED,
    S_RB_FULL,
    S_RB_PARKED,
    S_SAMPLED,
    S_TRACK_AGED,
    S_TRACK_FULL,
    S_TRACK_LOST,
    S_XMIT_PACKETS,
    SLOT_QUEUES,
)
from txtop.probes.bpf.decode import c_string
from txtop.probes.bpf.ifnames import IfNames, own_netns
from txtop.probes.bpf.tracks import TrackCounts
from txtop.probes.readers.softirq import read_online_cpus

TC_H_ROOT = 0xFFFFFFFF  # include/uapi/linux/pkt_sched.h
SYS_CLASS_NET = Path("/sys/class/net")


QUEUE_COUNT_TTL_S = 5.0


def tx_queue_count(name: str) -> int:
    """The device's TX queues (tx-N directories in sysfs); 0 when it is gone."""
    try:
        return sum(1 for e in os.scandir(SYS_CLASS_NET / name / "queues") if e.name[:3] == "tx-")
    except OSError:
        return 0


def dev_of_key(dev: Any, netns: int, ifindex_of: Callable[[str], int | None]) -> int | None:
    """The ifindex in this namespace of a counter key's device: a struct txtop_devkey (raw
    forms: namespace 0 = not known, taken as ours) or a name (classic forms). None: a device
    of another network namespace, or gone."""
    if isinstance(dev, (bytes, bytearray)) or not hasattr(dev, "ifindex"):
        name = c_string(bytes(dev))
        return ifindex_of(name) if name else None
    ns = int(dev.netns)
    if ns not in (0, netns):
        return None
    return int(dev.ifindex)


def devkey_of(
    dev: Any, netns: int, ifindex_of: Callable[[str], int | None]
) -> tuple[int, int] | None:
    """A counter key's device as (namespace, ifindex): namespace 0 for txtop's own (``netns``,
    or 0 = not known: the raw forms without the BTF offset for it, and the classic forms,
    whose keys are names looked up here), else the other namespace's inode. None: gone."""
    if isinstance(dev, (bytes, bytearray)) or not hasattr(dev, "ifindex"):
        name = c_string(bytes(dev))
        ifindex = ifindex_of(name) if name else None
        return None if ifindex is None else (0, ifindex)
    ns = int(dev.netns)
    return (0 if ns in (0, netns) else ns, int(dev.ifindex))


def split_queues(
    acc: dict[tuple[int, int, int], list[int]],
) -> tuple[dict[tuple[int, int], QueueCounters], dict[tuple[int, int, int], QueueCounters]]:
    """(namespace, ifindex, queue) -> [packets, bytes, gso_segs, errors, stopped] as txtop's
    own queues by (ifindex, queue) and those of other namespaces by (inode, ifindex, queue):
    apart, so that the same ifindex in two namespaces never adds up."""
    own: dict[tuple[int, int], QueueCounters] = {}
    other: dict[tuple[int, int, int], QueueCounters] = {}
    for (ns, ifindex, queue), v in acc.items():
        c = QueueCounters(packets=v[0], bytes=v[1], gso_segs=v[2], errors=v[3], stopped=v[4])
        if ns:
            other[ns, ifindex, queue] = c
        else:
            own[ifindex, queue] = c
    return own, other


def queue_of_parent(parent: int) -> int:
    """The TX queue a qdisc_dequeue ran for: an mq-style child's parent class minor is queue+1
    (mq_init: TC_H_MAKE(handle, ntx + 1)); a root qdisc is dequeued for queue 0."""
    if parent == TC_H_ROOT or parent & 0xFFFF == 0:
        return 0
    return (parent & 0xFFFF) - 1


def probe_status(
    base: ProbeStatus, stats: list[int], counts: TrackCounts, skipped: dict[str, int]
) -> ProbeStatus:
    """The running status: ``base`` (settings, filters, windows) with the loss counters.

    Loss in txtop's own pipeline (full ring buffer or track table, dropped tracks) is kept
    apart from runs the kernel skipped because another BPF program was active on that CPU
    (``skipped``): those are real blind spots too, but no setting of ours can remove them."""
    breakdown: dict[str, int] = {}
    for i, probe in enumerate(PROBE_IDS):
        if stats[S_RB_FULL + i]:
            breakdown[f"ringbuf_full:{probe}"] = stats[S_RB_FULL + i]
    extra = {
        "track_full": stats[S_TRACK_FULL],
        "counter_map_full": stats[S_COUNTER_FULL],
        "track_lost": stats[S_TRACK_LOST],
        "track_aged": stats[S_TRACK_AGED] + counts.aged,
        "track_evicted": counts.evicted,
        "decode_errors": counts.decode_errors,
    }
    breakdown.update({k: v for k, v in extra.items() if v})
    lost = sum(breakdown.values())
    breakdown.update(skipped)
    flow_counts = {
        "flow_filtered": stats[S_FLOW_FILTERED],
        "no_flow": stats[S_NO_FLOW],
        # records the ring refused at first (full, or busy on that CPU) and kept in their map
        # for a retry or user space's scan: delayed, not lost
        "ringbuf_retried": stats[S_RB_PARKED],
    }
    return dataclasses.replace(
        base,
        state="running",
        reason="",
        lost_events=lost,
        skipped_runs=sum(skipped.values()),
        breakdown=breakdown,
        sampling={
            **base.sampling,
            "sampled": stats[S_SAMPLED],
            "rate_limited": stats[S_RATE_LIMITED],
            "sys_exit_unmatched": counts.exit_missed,
            "window_cut": counts.cut,
            # only when they happened: refused by the flow filter at the sampling decision
            # (before 1-in-N); sampled, but the headers could not be read (no flow for them)
            **{k: v for k, v in flow_counts.items() if v},
        },
        bql_stalls=None if "bql_stall" in base.unavailable else stats[S_DQL_STALL],
    )


class Counters:
    """Reads the loaded program's counter maps (cumulative values, summed over CPUs)."""

    def __init__(
        self,
        bpf: Any,
        names: IfNames,
        unavailable: dict[str, str],
        namespaces: Callable[[], Iterable[int]] = tuple,
    ) -> None:
        self._bpf = bpf
        self._names = names
        self._unavailable = unavailable
        self._netns = own_netns()
        # The other namespaces whose devices are counted (their inodes; --netns), and their
        # per-queue counters as of the last ``queues()``: (inode, ifindex, queue) -> counters.
        self._namespaces = namespaces
        self.ns_queues: dict[tuple[int, int, int], QueueCounters] = {}
        self._queue_counts: dict[str, tuple[float, int]] = {}  # name -> (read at, TX queues)
        try:  # the per-queue counters by slot (raw net_dev_start_xmit: BTF offsets only)
            self._slots: tuple[Any, Any] | None = (bpf[b"dev_slots"], bpf[b"txq_counts"])
        except Exception:  # bcc raises a plain Exception for a map the program lacks
            self._slots = None

    def stats(self) -> list[int]:
        """The ``stats`` slots (abi.S_*), summed over CPUs."""
        table = self._bpf[b"stats"]
        return [sum(int(v) for v in table.getvalue(ctypes.c_int(i))) for i in range(N_STATS)]

    def packets_and_softirq_runs(self) -> tuple[int, int]:
        """net_dev_start_xmit runs and NET_TX + NET_RX softirq runs, for auto duty: two per-CPU
        array reads, cheap enough for every 0.05 s (a walk of the per-queue hash would cost
        milliseconds on a many-queue NIC)."""
        packets = sum(int(v) for v in self._bpf[b"stats"].getvalue(ctypes.c_int(S_XMIT_PACKETS)))
        runs = 0
        if "softirq" not in self._unavailable:
            for v in self._bpf[b"softirq"].getvalue(ctypes.c_int(0)):
                runs += int(v.runs[0]) + int(v.runs[1])
        return packets, runs

    def _tx_queues(self, name: str) -> int:
        """``tx_queue_count`` of a device, re-read from sysfs at most every
        QUEUE_COUNT_TTL_S (queues() runs every tick; the count changes only with ethtool -L)."""
        now = time.monotonic()
        seen = self._queue_counts.get(name)
        if seen is None or now - seen[0] >= QUEUE_COUNT_TTL_S:
            if len(self._queue_counts) > 4 * SLOT_QUEUES:  # devices come and go: stay bounded
                self._queue_counts.clear()
            seen = (now, tx_queue_count(name))
            self._queue_counts[name] = seen
        return seen[1]

    def queues(self) -> dict[tuple[int, int], QueueCounters]:
        """Per (ifindex, TX queue) of this network namespace; those of the other namespaces
        asked for go to ``ns_queues``."""
        acc: dict[tuple[int, int, int], list[int]] = {}
        wanted = set(self._namespaces())

        def key_of(dev: Any) -> tuple[int, int] | None:
            key = devkey_of(dev, self._netns, self._names.ifindex)
            if key is None or (key[0] and key[0] not in wanted):
                return None  # gone, or a device of a namespace nobody asked for
            return key

        def slot(dev: Any, queue: int) -> list[int] | None:
            key = key_of(dev)
            return None if key is None else acc.setdefault((*key, queue), [0, 0, 0, 0, 0])

        bpf = self._bpf
        if self._slots is not None:
            dev_slots, counts = self._slots
            for dk, leaf in dev_slots.items():
                key = key_of(dk)
                if key is None:
                    continue
                if key[0]:  # another namespace: its sysfs is not ours; every slot queue
                    n_queues = SLOT_QUEUES
                else:
                    name = self._names.name(key[1])
                    n_queues = min(self._tx_queues(name), SLOT_QUEUES) if name else 0
                base = int(leaf.value) * SLOT_QUEUES
                for q in range(n_queues):
                    per_cpu = counts.getvalue(ctypes.c_int(base + q))
                    packets = sum(int(v.packets) for v in per_cpu)
                    if packets:
                        row = acc.setdefault((*key, q), [0, 0, 0, 0, 0])
                        row[0] += packets
                        row[1] += sum(int(v.bytes) for v in per_cpu)
                        row[2] += sum(int(v.gso_segs) for v in per_cpu)
        for k, per_cpu in bpf[b"txq_stats"].items():
            s = slot(k.dev, int(k.queue))
            if s is not None:
                s[0] += sum(int(v.packets) for v in per_cpu)
                s[1] += sum(int(v.bytes) for v in per_cpu)
                s[2] += sum(int(v.gso_segs) for v in per_cpu)
        for k, per_cpu in bpf[b"xmit_errors"].items():
            s = slot(k.dev, int(k.queue))
            if s is not None:
                s[3] += sum(int(v) for v in per_cpu)
        for k, per_cpu in bpf[b"txq_stopped"].items():
            ns = int(k.netns)
            ns = 0 if ns in (0, self._netns) else ns
            if ns and ns not in wanted:
                continue
            q_key = (ns, int(k.ifindex), queue_of_parent(int(k.parent)))
            acc.setdefault(q_key, [0, 0, 0, 0, 0])[4] += sum(int(v) for v in per_cpu)
        own, self.ns_queues = split_queues(acc)
        return own

    def xmit_errors_by_rc(self) -> dict[tuple[int, int, int], int]:
        """net_dev_xmit failures by (ifindex, queue, rc), cumulative."""
        out: dict[tuple[int, int, int], int] = {}
        for k, per_cpu in self._bpf[b"xmit_errors"].items():
            idx = dev_of_key(k.dev, self._netns, self._names.ifindex)
            if idx is not None:
                key = (idx, int(k.queue), int(k.rc))
                out[key] = out.get(key, 0) + sum(int(v) for v in per_cpu)
        return out

    def softirq(self) -> dict[int, CpuSoftirqCounters]:
        """NET_TX / NET_RX runs and time per online CPU."""
        if "softirq" in self._unavailable:
            return {}
        per_cpu = self._bpf[b"softirq"].getvalue(ctypes.c_int(0))
        online_list = read_online_cpus()
        online = None if online_list is None else set(online_list)
        out = {}
        for cpu, v in enumerate(per_cpu):
            if online is not None and cpu not in online:
                continue
            out[cpu] = CpuSoftirqCounters(
                net_tx_runs=int(v.runs[0]),
                net_tx_ns=int(v.ns[0]),  # estimated from 1 run in 8, see txtop.bpf.c
                net_rx_runs=int(v.runs[1]),
                net_rx_ns=int(v.ns[1]),
            )
        return out

    def recursion_misses(self) -> dict[str, int]:
        """Runs the kernel skipped because another BPF program was active on that CPU
        (bpf_prog_info.recursion_misses, shown in /proc/self/fdinfo of each program)."""
        out: dict[str, int] = {}
        for name, fn in list(self._bpf.funcs.items()):
            try:
                text = Path(f"/proc/self/fdinfo/{int(fn.fd)}").read_text()
            except (OSError, ValueError):
                continue
            for line in text.splitlines():
                if line.startswith("recursion_misses:"):
                    n = int(line.split()[1])
                    if n:
                        label = name.decode() if isinstance(name, bytes) else str(name)
                        out[f"skipped:{label}"] = n
        return out

    def status(self, base: ProbeStatus, stats: list[int], counts: TrackCounts) -> ProbeStatus:
        return probe_status(base, stats, counts, self.recursion_misses())
