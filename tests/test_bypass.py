"""Qdisc bypass told from the sampled packets' tracks (core/bypass.py), on constructed tracks."""

from __future__ import annotations

import dataclasses

import pytest

from txtop.core.bypass import BypassWindow, bypassed
from txtop.core.model import BypassStats, PacketTrace

S = 1_000_000_000
T0 = 1_000 * S
ETH = 2

# An idle pfifo_fast: net_dev_queue -> net_dev_start_xmit directly (sch_direct_xmit).
BYPASSED = PacketTrace(
    pid=7, tid=7, comm="ping", dev="eth0", ifindex=ETH, queue=0, len=98, gso_segs=1,
    stages={"sendto": 100, "dev_queue": 200, "start_xmit": 300, "xmit": 400, "free": 900},
    cpus={}, track="complete",
)  # fmt: skip
QUEUED = dataclasses.replace(
    BYPASSED,
    stages={**BYPASSED.stages, "qdisc_enqueue": 250, "qdisc_dequeue": 280},
)


def test_a_track_without_enqueue_but_with_start_xmit_bypassed() -> None:
    assert bypassed(BYPASSED) is True
    assert bypassed(QUEUED) is False
    # What a track cannot tell: not complete, no queue, no start_xmit (dropped before the
    # driver, or the probe missed), no dev_queue (the track began later).
    assert bypassed(dataclasses.replace(BYPASSED, track="aged")) is None
    assert bypassed(dataclasses.replace(BYPASSED, queue=None)) is None
    no_xmit = {k: v for k, v in BYPASSED.stages.items() if k != "start_xmit"}
    assert bypassed(dataclasses.replace(BYPASSED, stages=no_xmit)) is None
    no_queue = {k: v for k, v in BYPASSED.stages.items() if k != "dev_queue"}
    assert bypassed(dataclasses.replace(BYPASSED, stages=no_queue)) is None


def test_window_counts_per_queue_and_forgets_old_ticks() -> None:
    w = BypassWindow(window_s=10)
    tx1 = dataclasses.replace(BYPASSED, queue=1)
    w.add([BYPASSED, BYPASSED, QUEUED, tx1, dataclasses.replace(QUEUED, track="lost")], T0)
    assert w.per_queue() == {(ETH, 0): BypassStats(3, 2), (ETH, 1): BypassStats(1, 1)}
    w.add([QUEUED], T0 + 5 * S)
    assert w.per_queue()[(ETH, 0)] == BypassStats(4, 2)
    w.add([], T0 + 11 * S)  # the first tick left the window
    assert w.per_queue() == {(ETH, 0): BypassStats(1, 0)}
    w.add([BYPASSED], T0)  # the clock went back (a replay looped): start over
    assert w.per_queue() == {(ETH, 0): BypassStats(1, 1)}
    with pytest.raises(ValueError):
        BypassWindow(window_s=0)
