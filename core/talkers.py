"""Top talkers per TX queue: which flows and processes carry the most through each queue over the
recent window, estimated from the sampled packets (pure; the collector feeds it every tick).

The estimator. A packet reaches the waterfall only if three things let it through, and each is
known:

  - 1-in-N: net_dev_queue picks one packet in N (``PacketTrace.sample_every``; a random
    countdown with mean N, so each packet is picked with probability 1/N);
  - the token bucket: of the picked packets, the share A the cap admitted, from the tracer's
    counters over the window (``sampled / (sampled + rate_limited)``; the bucket is shared by
    all devices, so every picked packet had the same chance);
  - trace windows: sampling is on only part of the time; the window's traced seconds T are the
    sum over its ticks of interval x traced share (``ProbeStatus.traced_pct``, 100 when the
    probes stay attached).

So a sampled packet stands for N / A packets of the traced time, and a group's rate is

    packets/s ~= sum(N_i) / A / T          bytes/s ~= sum(N_i * len_i) / A / T

over its samples i in the window that went through (a ratio estimator: unbiased for steady
traffic, with a relative error of about 1/sqrt(samples)). Drops are the same sum over the
samples that ended in kfree_skb instead (a drop is not traffic through the queue: what a flow
offered is packets/s + drops/s). The qdisc wait percentiles are those of the samples themselves (every sample of one
window carries about the same weight). What the flow filter or the interface/pid filters keep
out is not sampled at all: the estimates then cover the matching traffic only.

Each sample is counted at the queue it was seen at (``PacketTrace.queue``: the TX queue picked
before the qdisc, so a dropped packet has one too); flows are keyed by their addresses, ports
and protocol (not TCP flags), processes by pid and comm.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from txtop.core.filters import PROTOCOLS
from txtop.core.model import FlowInfo, PacketOwner, PacketTrace, ProbeStatus, QueueRow, Talker

WINDOW_S = 10.0  # the recent window the estimates cover
TOP = 5  # flows and processes listed per queue

FlowKey = tuple[object, ...]
L4_NAMES = {value: name for name, (kind, value) in PROTOCOLS.items() if kind == "l4"}


@dataclass(frozen=True, slots=True)
class _Sample:
    queue: tuple[str, int]
    flow_key: FlowKey
    flow: FlowInfo | None
    owner_key: tuple[int, str, str]
    owner: PacketOwner | None
    every: int  # N
    length: int
    wait_ns: int | None
    dropped: bool


@dataclass(slots=True)
class _Tick:
    mono_ns: int
    traced_s: float  # interval x traced share
    sampled: int  # admitted by the token bucket (delta)
    limited: int  # refused by it (delta)
    samples: list[_Sample] = field(default_factory=list)


@dataclass(slots=True)
class _Group:
    every: float = 0.0
    bytes: float = 0.0
    drops: float = 0.0
    samples: int = 0
    waits: list[int] = field(default_factory=list)
    owners: dict[tuple[int, str, str], tuple[int, PacketOwner | None]] = field(default_factory=dict)
    flow: FlowInfo | None = None


def flow_key(flow: FlowInfo | None) -> FlowKey:
    """What tells flows apart: addresses, ports, protocol, VLAN, tunnel (not the TCP flags)."""
    if flow is None:
        return ("?",)
    return (flow.l3, flow.saddr, flow.daddr, flow.l4_proto, flow.sport, flow.dport, flow.vlan,
            flow.encap)  # fmt: skip


def owner_key(packet: PacketTrace) -> tuple[int, str, str]:
    owner = packet.owner
    if packet.pid:
        return (packet.pid, packet.comm, "")
    return (0, "", owner.via if owner is not None else "")


def percentile(sorted_values: Sequence[int], q: float) -> int:
    """Nearest-rank percentile of ascending ``sorted_values`` (``q`` in 0..1)."""
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def _sample(packet: PacketTrace) -> _Sample | None:
    if packet.queue is None:
        return None  # seen at no TX queue (no headers read, before start_xmit): not placed
    stages = packet.stages
    wait = None
    if "qdisc_enqueue" in stages and "qdisc_dequeue" in stages:
        wait = max(0, stages["qdisc_dequeue"] - stages["qdisc_enqueue"])
    flow = packet.flow
    return _Sample(
        queue=(packet.dev, packet.queue),
        flow_key=flow_key(flow),
        flow=flow,
        owner_key=owner_key(packet),
        owner=packet.owner,
        every=max(1, packet.sample_every or 1),
        length=packet.len,
        wait_ns=wait,
        dropped=packet.free_kind == "drop",
    )


class TalkerWindow:
    """The samples of the last ``window_s`` seconds and the sampling counters they came with.

    ``add`` once per tick with the tick's packets and probe status; ``attach`` puts the top
    flows and processes into the queue rows (``QueueRow.flows`` / ``.processes``)."""

    def __init__(self, window_s: float = WINDOW_S, top: int = TOP) -> None:
        self.window_s = window_s
        self.top = top
        self._ticks: deque[_Tick] = deque()
        self._prev: tuple[int, int] | None = None  # cumulative (sampled, rate_limited)

    def add(
        self,
        packets: Iterable[PacketTrace],
        probes: ProbeStatus,
        interval_s: float,
        mono_ns: int,
        traced_pct: float | None = None,
    ) -> None:
        """One tick: its finished packets, the probe status after it, its length, and the share
        of it the sampling probes were attached (None: all of it)."""
        sampling = probes.sampling or {}
        cum = (int(sampling.get("sampled", 0) or 0), int(sampling.get("rate_limited", 0) or 0))
        prev = self._prev if self._prev is not None else cum
        if cum[0] < prev[0] or cum[1] < prev[1]:
            prev = (0, 0)  # the tracer restarted: its counters began again
        self._prev = cum
        if probes.state != "running" or interval_s <= 0:
            self._expire(mono_ns)
            return
        share = 1.0 if traced_pct is None else max(0.0, min(100.0, traced_pct)) / 100.0
        tick = _Tick(mono_ns, interval_s * share, cum[0] - prev[0], cum[1] - prev[1])
        tick.samples = [s for s in (_sample(p) for p in packets) if s is not None]
        self._ticks.append(tick)
        self._expire(mono_ns)

    def _expire(self, mono_ns: int) -> None:
        horizon = mono_ns - int(self.window_s * 1e9)
        while self._ticks and self._ticks[0].mono_ns <= horizon:
            self._ticks.popleft()

    def scale(self) -> tuple[float, float]:
        """(1 / A, T): the token bucket's correction and the traced seconds of the window."""
        sampled = sum(t.sampled for t in self._ticks)
        limited = sum(t.limited for t in self._ticks)
        admit = sampled / (sampled + limited) if sampled + limited and sampled else 1.0
        return 1.0 / admit, sum(t.traced_s for t in self._ticks)

    def per_queue(self) -> dict[tuple[str, int], tuple[tuple[Talker, ...], tuple[Talker, ...]]]:
        """(dev, queue) -> (top flows, top processes), most bytes first."""
        inv_admit, traced_s = self.scale()
        if traced_s <= 0:
            return {}
        flows: dict[tuple[str, int], dict[FlowKey, _Group]] = {}
        procs: dict[tuple[str, int], dict[tuple[int, str, str], _Group]] = {}
        for tick in self._ticks:
            for s in tick.samples:
                _count(flows.setdefault(s.queue, {}).setdefault(s.flow_key, _Group()), s)
                _count(procs.setdefault(s.queue, {}).setdefault(s.owner_key, _Group()), s)
        out = {}
        for queue in flows:
            out[queue] = (
                self._top("flow", flows[queue], inv_admit, traced_s),
                self._top("process", procs[queue], inv_admit, traced_s),
            )
        return out

    def _top(
        self, kind: str, groups: Mapping[Any, _Group], inv_admit: float, traced_s: float
    ) -> tuple[Talker, ...]:
        total = sum(g.bytes for g in groups.values()) or 1.0
        ranked = sorted(groups.values(), key=lambda g: (-g.bytes, -g.drops, -g.samples))
        ranked = ranked[: self.top]
        out = []
        for g in ranked:
            waits = sorted(g.waits)
            owner = _main_owner(g)
            out.append(
                Talker(
                    kind=kind,
                    name=_name(kind, g.flow, owner),
                    packets_per_s=g.every * inv_admit / traced_s,
                    bytes_per_s=g.bytes * inv_admit / traced_s,
                    drops_per_s=g.drops * inv_admit / traced_s,
                    share_pct=100.0 * g.bytes / total,
                    samples=g.samples,
                    wait_p50_ns=percentile(waits, 0.5) if waits else None,
                    wait_p99_ns=percentile(waits, 0.99) if waits else None,
                    flow=g.flow if kind == "flow" else None,
                    owner=owner,
                    window_s=round(traced_s, 3),
                )
            )
        return tuple(out)

    def attach(self, queues: Sequence[QueueRow]) -> tuple[QueueRow, ...]:
        """The rows with their top talkers (rows without samples unchanged)."""
        talkers = self.per_queue()
        out = []
        for row in queues:
            found = talkers.get((row.dev, row.queue))
            out.append(replace(row, flows=found[0], processes=found[1]) if found else row)
        return tuple(out)


def _count(group: _Group, s: _Sample) -> None:
    if s.dropped:
        group.drops += s.every
    else:
        group.every += s.every
        group.bytes += s.every * s.length
    group.samples += 1
    if s.wait_ns is not None:
        group.waits.append(s.wait_ns)
    n, _ = group.owners.get(s.owner_key, (0, None))
    group.owners[s.owner_key] = (n + 1, s.owner)
    if group.flow is None:
        group.flow = s.flow


def _main_owner(group: _Group) -> PacketOwner | None:
    """The owner seen with most of the group's samples (a named one before "kernel")."""
    if not group.owners:
        return None
    key = max(group.owners, key=lambda k: (k[0] != 0, group.owners[k][0]))
    count, owner = group.owners[key]
    if owner is None and key[0]:  # a recording made before owners: the tie's pid and comm
        owner = PacketOwner(key[0], key[0], key[1], None, "syscall")
    return owner


def _name(kind: str, flow: FlowInfo | None, owner: PacketOwner | None) -> str:
    if kind == "flow":
        return flow_name(flow)
    if owner is None:
        return "(unknown)"
    if not owner.pid:
        return "(kernel)"
    return f"{owner.comm}[{owner.pid}]"


def flow_name(flow: FlowInfo | None) -> str:
    """The flow as one line: ``10.0.0.1:43512>10.0.0.2:5201 tcp``."""
    if flow is None:
        return "(headers not read)"
    l4 = flow.l4_proto
    proto = flow.l3 if l4 is None else L4_NAMES.get(l4, str(l4))
    if flow.saddr is None:
        return proto
    src = _host(flow.saddr, flow.sport)
    dst = _host(flow.daddr, flow.dport)
    vlan = f"vlan {flow.vlan} " if flow.vlan is not None else ""
    return f"{vlan}{src}>{dst} {proto}{' (outer)' if flow.encap else ''}"


def _host(addr: str | None, port: int | None) -> str:
    text = addr or "?"
    if port is None:
        return text
    return f"[{text}]:{port}" if ":" in text else f"{text}:{port}"
