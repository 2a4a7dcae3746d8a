"""Qdisc bypass from the sampled packets' tracks (pure, no I/O).

An empty qdisc with TCQ_F_CAN_BYPASS (pfifo, pfifo_fast, ... - net/core/dev.c __dev_xmit_skb)
is skipped: the packet goes straight to the driver (sch_direct_xmit) and the qdisc:qdisc_enqueue
tracepoint never fires for it, nor qdisc_dequeue. Such a packet has no qdisc wait to sample, so
the p99 qdisc wait of a queue whose packets all bypassed is not "unsampled" but "bypassed".

A complete track that went through net_dev_queue and net_dev_start_xmit without a
qdisc_enqueue bypassed the qdisc (or the device has none: noqueue, which the merge tells apart
by the queue's qdisc). ``BypassWindow`` counts them per TX queue over the same sliding window
as the latency percentiles (core/latency.py), from each tick's packets.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from txtop.core.model import BypassStats, PacketTrace

QueueKey = tuple[int, int]  # (ifindex, queue)


def bypassed(packet: PacketTrace) -> bool | None:
    """True: the packet reached the driver without being enqueued; False: it was enqueued;
    None: its track says neither (not complete, no queue, or a stage on either side missing)."""
    stages = packet.stages
    if packet.track != "complete" or packet.queue is None:
        return None
    if "dev_queue" not in stages or "start_xmit" not in stages:
        return None
    return "qdisc_enqueue" not in stages


@dataclass(frozen=True, slots=True)
class _Tick:
    added_ns: int
    counts: Mapping[QueueKey, tuple[int, int]]  # (sampled, bypassed)


class BypassWindow:
    """Per TX queue, how many of the sampled packets of the last ``window_s`` seconds
    bypassed the qdisc. Memory: one small dict per tick of the window."""

    def __init__(self, window_s: float = 10.0) -> None:
        if window_s <= 0:
            raise ValueError("window_s must be positive")
        self._window_ns = int(window_s * 1e9)
        self._ticks: deque[_Tick] = deque()
        self._last_now_ns: int | None = None
        self._cache: dict[QueueKey, BypassStats] | None = None

    def add(self, packets: Iterable[PacketTrace], now_ns: int) -> None:
        """One tick's packets at ``now_ns`` (CLOCK_MONOTONIC); call it on quiet ticks too."""
        if self._last_now_ns is not None and now_ns < self._last_now_ns:
            self._ticks.clear()  # the clock went back (a replay looped)
        self._last_now_ns = now_ns
        counts: dict[QueueKey, tuple[int, int]] = {}
        for packet in packets:
            went = bypassed(packet)
            if went is None or packet.queue is None:
                continue
            key = (packet.ifindex, packet.queue)
            sampled, skipped = counts.get(key, (0, 0))
            counts[key] = (sampled + 1, skipped + int(went))
        if counts:
            self._ticks.append(_Tick(now_ns, counts))
        cutoff = now_ns - self._window_ns
        while self._ticks and self._ticks[0].added_ns < cutoff:
            self._ticks.popleft()
        self._cache = None

    def per_queue(self) -> Mapping[QueueKey, BypassStats]:
        if self._cache is None:
            total: dict[QueueKey, list[int]] = {}
            for tick in self._ticks:
                for key, (sampled, skipped) in tick.counts.items():
                    acc = total.setdefault(key, [0, 0])
                    acc[0] += sampled
                    acc[1] += skipped
            self._cache = {k: BypassStats(v[0], v[1]) for k, v in sorted(total.items())}
        return self._cache
