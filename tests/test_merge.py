"""The pure merge (core/merge.py) on plain readings: no files, no netlink, no tracer, no clock.

Each test builds ``TickReadings`` by hand, merges them against the previous ``TickState`` and
checks the rows: exact rates, resets and wraps, mq children, trace-window estimates and the
estimates held over an interval without a window, the probe line, and that merging is pure.
"""

from __future__ import annotations

import copy
import dataclasses
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from txtop.core.cpu_shares import SoftirqShares, consistent_shares, share
from txtop.core.merge import (
    MergedTick,
    Spans,
    TickState,
    current_queues,
    merge_tick,
    probe_status,
    tick_packets,
    tick_spans,
)
from txtop.core.model import (
    BqlStats,
    BypassStats,
    LatencyStats,
    PacketTrace,
    ProbeStatus,
    QueueRow,
    TxStats,
)
from txtop.core.readings import (
    TC_H_ROOT,
    CpuTimes,
    NetDevice,
    QdiscInfo,
    SoftnetRow,
    TickReadings,
    TxCounters,
)
from txtop.core.source import CpuSoftirqCounters, QueueCounters, TracerReading

S = 1_000_000_000  # ns
T0 = 1_000 * S
ENS, ETH = 7, 4
RUNNING = ProbeStatus("running")


def dev(name: str, ifindex: int, queues: int, packets: int = 0, nbytes: int = 0) -> NetDevice:
    return NetDevice(name, ifindex, tuple(range(queues)), "up", TxCounters(packets, nbytes, 0, 0))


def qd(ifindex: int, kind: str, handle: int, parent: int, **kw: int) -> QdiscInfo:
    values = dict(qlen=0, backlog_bytes=0, drops=0, requeues=0, overlimits=0, bytes=0, packets=0)
    values.update(kw)
    return QdiscInfo(ifindex, kind, handle, parent, **values)


def mq(ifindex: int, n: int, packets: int, drops: int = 0) -> tuple[QdiscInfo, ...]:
    """An mq root 1: with one fq_codel child per queue; child N has packets * (N + 1)."""
    children = tuple(
        qd(ifindex, "fq_codel", (0x100 + q) << 16, 0x10000 | (q + 1),
           packets=packets * (q + 1), bytes=packets * (q + 1) * 100, drops=drops)
        for q in range(n)
    )  # fmt: skip
    return (qd(ifindex, "mq", 0x10000, TC_H_ROOT), *children)


def readings(t_ns: int, **kw: object) -> TickReadings:
    return TickReadings(mono_ns=t_ns, **kw)  # type: ignore[arg-type]


def queue(merged: MergedTick, name: str, n: int) -> QueueRow:
    return next(q for q in merged.queues if q.dev == name and q.queue == n)


def test_first_tick_has_rows_and_zero_rates() -> None:
    bql = BqlStats(inflight=0, limit=3000, limit_min=0, limit_max=1 << 30, hold_time=1000)
    now = readings(
        T0,
        devices=(dev("ens1f0", ENS, 2, 500, 50_000), dev("eth0", ETH, 1, 10, 1000)),
        bql={("ens1f0", 0): None, ("ens1f0", 1): None, ("eth0", 0): bql},
        qdiscs=(*mq(ENS, 2, 10), qd(ETH, "pfifo_fast", 0, TC_H_ROOT, drops=4)),
        softirqs={0: (10, 20)},
        cpu_times={0: CpuTimes(1, 0, 1, 10)},
    )
    merged = merge_tick(now, None, {})
    assert merged.interval_s == 0.0 and merged.traced_pct is None
    ens, eth = merged.devices
    assert (ens.root_qdisc, ens.has_bql, ens.tx_queues, ens.tx_pps) == ("mq", False, 2, 0.0)
    assert (eth.root_qdisc, eth.has_bql, eth.tx_packets) == ("pfifo_fast", True, 10)
    assert [(q.dev, q.queue) for q in merged.queues] == [("ens1f0", 0), ("ens1f0", 1), ("eth0", 0)]
    q1 = queue(merged, "ens1f0", 1)
    assert q1.qdisc is not None and q1.qdisc.per_queue and q1.qdisc.parent == "1:2"
    assert q1.tx is not None and q1.tx.source == "qdisc" and q1.tx.pps == 0.0
    eth0 = queue(merged, "eth0", 0)
    assert eth0.bql == bql and eth0.qdisc is not None and not eth0.qdisc.per_queue
    assert eth0.tx is None  # a shared root qdisc says nothing about one queue
    assert [c.cpu for c in merged.cpus] == [0] and merged.cpus[0].net_rx_per_s == 0.0
    assert merged.cpus[0].net_tx_time_pct is None  # no tracer: no time shares
    assert merged.state.mono_ns == T0 and merged.state.softirqs == {0: (10, 20)}


def test_device_rates_resets_and_recreated_devices() -> None:
    first = merge_tick(
        readings(T0, devices=(dev("eth0", ETH, 1, 1000, 10**6), dev("v0", 9, 1, 5000, 0))),
        None,
        {},
    )
    devices = (dev("eth0", ETH, 1, 1500, 2 * 10**6), dev("v0", 10, 1, 7000, 0))
    second = merge_tick(readings(T0 + 2 * S, devices=devices), first.state, {})
    eth0, v0 = second.devices
    assert second.interval_s == 2.0
    assert (eth0.tx_pps, eth0.tx_bps) == (250.0, 4_000_000.0)
    assert v0.tx_pps == 0.0  # v0 re-created (new ifindex): a new series, no spike
    reset = merge_tick(
        readings(T0 + 3 * S, devices=(dev("eth0", ETH, 1, 40, 0),)), second.state, {}
    )
    assert reset.devices[0].tx_pps == 40.0  # counted since the reset, never negative
    assert set(reset.state.devices) == {("eth0", ETH)}  # departed devices are not kept


def test_qdisc_rates_mq_children_wraps_and_replacement() -> None:
    ens = (dev("ens1f0", ENS, 3),)
    first = merge_tick(readings(T0, devices=ens, qdiscs=mq(ENS, 3, 10, drops=2**32 - 10)), None, {})
    second = merge_tick(
        readings(T0 + S, devices=ens, qdiscs=mq(ENS, 3, 30, drops=5)), first.state, {}
    )
    for n in range(3):
        q = queue(second, "ens1f0", n)
        assert q.qdisc is not None and q.qdisc.drops_per_s == 15.0  # u32 wrap, not a reset
        assert q.tx is not None and q.tx.source == "qdisc"
        assert (q.tx.pps, q.tx.bps) == (20.0 * (n + 1), 8 * 2000.0 * (n + 1))
    # The mq root replaced by tbf: a new series (no rate from the children's counters).
    third = merge_tick(
        readings(T0 + 2 * S, devices=ens, qdiscs=(qd(ENS, "tbf", 0x80010000, TC_H_ROOT, drops=3),)),
        second.state,
        {},
    )
    q0 = queue(third, "ens1f0", 0)
    assert q0.qdisc is not None and q0.qdisc.kind == "tbf" and q0.qdisc.drops_per_s == 0.0
    assert q0.tx is None and third.devices[0].root_qdisc == "tbf"
    assert set(third.state.qdiscs) == {(ENS, "8001:", "root", "tbf")}


def test_mq_child_missing_and_no_root() -> None:
    ens = (dev("ens1f0", ENS, 3),)
    root, c0, _c1, c2 = mq(ENS, 3, 1)
    merged = merge_tick(readings(T0, devices=ens, qdiscs=(root, c0, c2)), None, {})
    assert [queue(merged, "ens1f0", n).qdisc is None for n in range(3)] == [False, True, False]
    bare = merge_tick(readings(T0, devices=ens, qdiscs=(c0,)), None, {})
    assert all(q.qdisc is None for q in bare.queues) and bare.devices[0].root_qdisc is None


def tracer_tick(
    t_ns: int,
    queues: dict[tuple[int, int], QueueCounters],
    cpus: dict[int, CpuSoftirqCounters] | None = None,
    traced: tuple[float, float] | None = None,
    qdiscs: tuple[QdiscInfo, ...] = (),
) -> TickReadings:
    reading = TracerReading(
        status=RUNNING,
        queues=queues,
        cpus=cpus or {},
        traced_s=traced[0] if traced else None,
        traced_late_s=traced[1] if traced else None,
    )
    devices = (dev("ens1f0", ENS, 4), dev("eth0", ETH, 1))
    cpu_times = {0: CpuTimes(0, 0, 0, 0), 1: CpuTimes(0, 0, 0, 0)}
    return readings(t_ns, devices=devices, qdiscs=qdiscs, cpu_times=cpu_times, tracer=reading)


def test_tracer_queue_counters_over_the_interval() -> None:
    gone = (99, 0)  # a device deleted long ago, still in the tracer's maps
    first = merge_tick(
        tracer_tick(T0, {(ENS, 2): QueueCounters(100, 10_000, 120, 1, 2), gone: QueueCounters(5)}),
        None,
        {},
    )
    assert gone not in first.state.tracer_queues and (ENS, 2) in first.state.tracer_queues
    counters = {(ENS, 2): QueueCounters(300, 30_000, 400, 5, 2), gone: QueueCounters(9)}
    cpus = {0: CpuSoftirqCounters(net_tx_ns=50_000_000)}
    second = merge_tick(tracer_tick(T0 + S // 2, counters, cpus), first.state, {})
    tx = queue(second, "ens1f0", 2).tx
    assert tx is not None and tx.source == "probe" and not tx.estimated
    assert (tx.pps, tx.bps, tx.gso_segs, tx.errors_per_s, tx.stopped_per_s) == (
        400.0, 8 * 40_000.0, 400, 8.0, 0.0,
    )  # fmt: skip
    # Other queues of a traced device are probe-sourced zeros; untraced devices have none.
    other = queue(second, "ens1f0", 3).tx
    assert other is not None and other.source == "probe" and other.pps == 0.0
    assert queue(second, "eth0", 0).tx is None
    # CPU 0 had no previous tracer reading: its first share is 0, never the whole counter.
    assert second.cpus[0].net_tx_time_pct == 0.0 and second.cpus[1].net_rx_time_pct == 0.0
    assert second.traced_pct is None  # this tracer does not report attached time


def test_trace_windows_estimates_held_and_exact_mq_rates() -> None:
    ens2 = (ENS, 2)

    def counters(n: int) -> dict[tuple[int, int], QueueCounters]:
        return {(ETH, 0): QueueCounters(n, n * 100), ens2: QueueCounters(n, n * 100, n, 0, n // 10)}

    first = merge_tick(
        tracer_tick(T0, counters(0), {0: CpuSoftirqCounters()}, (5.0, 5.0), mq(ENS, 4, 1)),
        None,
        {},
    )
    # 1 s interval with a 0.1 s window (0.125 s for the late probes).
    windowed = merge_tick(
        tracer_tick(T0 + S, counters(1000), {0: CpuSoftirqCounters(net_rx_ns=20_000_000)},
                    (5.1, 5.125), mq(ENS, 4, 4)),
        first.state,
        {},
    )  # fmt: skip
    assert windowed.traced_pct == pytest.approx(10.0)
    eth0 = queue(windowed, "eth0", 0).tx
    assert eth0 is not None and eth0.estimated and eth0.pps == pytest.approx(8000.0)
    mq2 = queue(windowed, "ens1f0", 2).tx
    assert mq2 is not None and mq2.source == "qdisc" and not mq2.estimated
    assert mq2.pps == pytest.approx(9.0) and mq2.stopped_per_s == pytest.approx(800.0)
    assert windowed.cpus[0].net_rx_time_pct == pytest.approx(20.0)  # 20 ms of 100 ms
    assert set(windowed.state.tx_held) == {(ETH, 0), ens2, (ENS, 0), (ENS, 1), (ENS, 3)}
    # No window in the next interval: the estimates stand, the exact mq rate moves on.
    quiet = merge_tick(
        tracer_tick(T0 + 2 * S, counters(1000), {0: CpuSoftirqCounters(net_rx_ns=20_000_000)},
                    (5.1, 5.125), mq(ENS, 4, 5)),
        windowed.state,
        {},
    )  # fmt: skip
    assert quiet.traced_pct == 0.0
    assert queue(quiet, "eth0", 0).tx == eth0
    mq2 = queue(quiet, "ens1f0", 2).tx
    assert mq2 is not None and mq2.pps == pytest.approx(3.0)
    assert mq2.stopped_per_s == pytest.approx(800.0)
    assert quiet.cpus[0].net_rx_time_pct == pytest.approx(20.0)
    assert quiet.state.tx_held[(ETH, 0)] == eth0  # still held for the interval after


def test_always_attached_is_not_windowed() -> None:
    old = TickState(mono_ns=T0, traced_s=1.0, traced_late_s=1.0)
    assert tick_spans(1.99, 1.99, old, 1.0) == Spans(1.0, 1.0, False)  # >= 98%: the interval
    assert tick_spans(1.5, 1.6, old, 1.0) == Spans(0.5, pytest.approx(0.6), True)
    assert tick_spans(0.5, 0.5, old, 1.0) == Spans(0.0, 0.0, True)  # went back: never negative
    assert tick_spans(None, None, old, 1.0) == Spans(1.0, 1.0, False)
    assert tick_spans(2.0, 2.0, TickState(mono_ns=T0), 1.0) == Spans(1.0, 1.0, False)


def test_cpu_rows_wraps_sources_and_time_share() -> None:
    span = 1 << 32
    first = merge_tick(
        readings(
            T0,
            softirqs={0: (span - 10, 100), 1: (5, 5)},
            softnet={0: SoftnetRow(span - 1, 7, 3), 1: SoftnetRow(0, 0, 0)},
            cpu_times={0: CpuTimes(100, 0, 50, 800, 0, 0, 50), 1: CpuTimes(1, 1, 1, 1)},
        ),
        None,
        {},
    )
    second = merge_tick(
        readings(
            T0 + S,
            softirqs={0: (10, 300), 1: (5, 5)},
            softnet={0: SoftnetRow(99, 9, 4), 1: SoftnetRow(0, 0, 0)},
            cpu_times={0: CpuTimes(150, 0, 50, 950, 0, 0, 100), 1: CpuTimes(1, 1, 1, 1)},
        ),
        first.state,
        {},
    )
    cpu0 = second.cpus[0]
    assert (cpu0.net_tx_per_s, cpu0.net_rx_per_s) == (20.0, 200.0)  # u32 wrap
    assert cpu0.softnet_processed_per_s == 100.0 and cpu0.softnet_dropped_per_s == 2.0
    assert (cpu0.softnet_dropped, cpu0.time_squeeze, cpu0.time_squeeze_per_s) == (9, 4, 1.0)
    assert cpu0.softirq_pct == pytest.approx(20.0) and second.cpus[1].softirq_pct == 0.0


def test_cpu_list_falls_back_from_stat_to_softnet_to_softirqs() -> None:
    def cpus(**kw: object) -> list[int]:
        return [c.cpu for c in merge_tick(readings(T0, **kw), None, {}).cpus]

    net = {3: (1, 1), 1: (1, 1)}
    assert cpus(cpu_times={2: CpuTimes(1, 1, 1, 1)}, softirqs=net) == [2]
    assert cpus(softnet={5: SoftnetRow(1, 1, 1)}, softirqs=net) == [5]
    assert cpus(softirqs=net) == [1, 3]
    assert cpus() == []


def test_latency_goes_to_its_queue() -> None:
    stats = {"qdisc": LatencyStats(p50=1, p90=2, p99=3, max=4, count=5)}
    merged = merge_tick(
        readings(T0, devices=(dev("eth0", ETH, 2),)), None, {(ETH, 1): stats, (99, 0): stats}
    )
    assert queue(merged, "eth0", 1).latency_ns == stats
    assert queue(merged, "eth0", 0).latency_ns == {}


def test_probe_status() -> None:
    base = ProbeStatus("running", unavailable={"free": "no kfree_skb"})
    assert probe_status(base, None, None, {}) is base
    assert probe_status(base, None, 12.5, {}).traced_pct == 12.5
    off = ProbeStatus("off", reason="not root")
    assert probe_status(base, off, 12.5, {}) is off  # the override wins, without traced_pct
    merged = probe_status(base, None, None, {"qdisc": "dump failed"})
    assert merged.unavailable == {"free": "no kfree_skb", "qdisc": "dump failed"}


def test_helpers() -> None:
    assert share(None, 10, 1e9) == 0.0 and share(0, 10, 0.0) == 0.0
    assert share(0, 5 * 10**8, 1e9) == 50.0 and share(0, 10**10, 1e9) == 100.0
    assert share(10**9, 10**8, 1e9) == 10.0  # counter restarted: what it counted since
    devices = (dev("eth0", ETH, 2),)
    kept = current_queues({(ETH, 1): QueueCounters(1), (ETH, 2): QueueCounters(2)}, devices)
    assert kept == {(ETH, 1): QueueCounters(1)}
    a = PacketTrace(pid=1, tid=1, comm="a", dev="eth0", ifindex=ETH, queue=0, len=1, gso_segs=1,
                    stages={"xmit": 20}, cpus={}, track="complete")  # fmt: skip
    b = dataclasses.replace(a, stages={"xmit": 10})
    assert tick_packets(TracerReading(status=RUNNING, packets=(a, b))) == (b, a)
    assert tick_packets(None) == ()


def test_merge_is_pure() -> None:
    """Same inputs, same output; the previous state and the readings are never changed."""
    first = merge_tick(tracer_tick(T0, {(ETH, 0): QueueCounters(1)}, traced=(1.0, 1.0)), None, {})
    now = tracer_tick(T0 + S, {(ETH, 0): QueueCounters(100)}, traced=(1.1, 1.1))
    before = (copy.deepcopy(first.state), copy.deepcopy(now))
    again = merge_tick(now, first.state, {})
    assert merge_tick(now, first.state, {}) == again
    assert (first.state, now) == before
    with pytest.raises(dataclasses.FrozenInstanceError):
        again.state.mono_ns = 0  # type: ignore[misc]


counter = st.integers(0, 2**64)
u32 = st.integers(0, 2**32 - 1)


@st.composite
def tick(draw: st.DrawFn, t_ns: int) -> TickReadings:
    n = draw(st.integers(1, 4))
    nets = draw(st.lists(st.tuples(u32, u32), min_size=1, max_size=3))
    counters = {(ETH, q): QueueCounters(*draw(st.tuples(counter, counter, counter, counter, counter)))
                for q in range(n)}  # fmt: skip
    reading = TracerReading(
        status=RUNNING,
        queues=counters,
        cpus={0: CpuSoftirqCounters(net_tx_ns=draw(counter), net_rx_ns=draw(counter))},
        traced_s=draw(st.one_of(st.none(), st.floats(0, 1e6))),
        traced_late_s=draw(st.floats(0, 1e6)),
    )
    return readings(
        t_ns,
        devices=(dev("eth0", ETH, n, draw(counter), draw(counter)),),
        qdiscs=draw(st.sampled_from([(), mq(ETH, n, draw(u32), draw(u32))])),
        softirqs=dict(enumerate(nets)),
        softnet={0: SoftnetRow(draw(u32), draw(u32), draw(u32))},
        tracer=draw(st.one_of(st.none(), st.just(reading))),
    )


@given(tick(T0), tick(T0 + S), tick(T0 + S))
def test_fuzz_rates_are_finite_and_never_negative(a, b, c) -> None:
    state = None
    for now in (a, b, c):  # the third tick repeats the second's clock: a zero interval
        merged = merge_tick(now, state, {})
        state = merged.state
        values: list[float | None] = [merged.traced_pct]
        for d in merged.devices:
            values += [d.tx_pps, d.tx_bps]
        for q in merged.queues:
            tx: TxStats | None = q.tx
            if tx is not None:
                values += [tx.pps, tx.bps, tx.errors_per_s, tx.stopped_per_s]
            if q.qdisc is not None:
                values += [q.qdisc.drops_per_s, q.qdisc.requeues_per_s]
        for cpu in merged.cpus:
            values += [cpu.net_tx_per_s, cpu.net_rx_per_s, cpu.softnet_processed_per_s,
                       cpu.net_tx_time_pct, cpu.net_rx_time_pct]  # fmt: skip
        assert all(v is None or (math.isfinite(v) and v >= 0) for v in values), values


# ---- issue 17: one unit per column, parts within the whole, drops since start, bypass ----------


def test_queue_packets_in_the_device_counters_unit_and_segments_apart() -> None:
    """The probes count a GSO packet once (as veth/lo/virtio_net's tx_packets do) and its
    segments apart; an mq child's counter counts segments (as tc does). Each says which."""
    first = merge_tick(
        tracer_tick(T0, {(ENS, 2): QueueCounters(100, 10_000, 100)}, qdiscs=mq(ENS, 4, 0)),
        None,
        {},
    )
    # 1 s: 10 TSO packets of 44 segments each were handed to the driver on tx-2.
    counters = {(ENS, 2): QueueCounters(110, 10_000 + 10 * 64_000, 100 + 440)}
    second = merge_tick(tracer_tick(T0 + S, counters, qdiscs=mq(ENS, 4, 440)), first.state, {})
    tx = queue(second, "ens1f0", 2).tx
    assert tx is not None and tx.source == "probe" and tx.packet_unit == "skb"
    assert (tx.pps, tx.skbs_per_s, tx.segs_per_s) == (10.0, 10.0, 440.0)
    # tx-0 is not in the tracer's maps of a traced device: zeros, still in packets.
    # Without probes the mq child says segments, and no skb count is invented.
    bare = merge_tick(
        readings(T0, devices=(dev("ens1f0", ENS, 4),), qdiscs=mq(ENS, 4, 0)), None, {}
    )
    again = merge_tick(
        readings(T0 + S, devices=(dev("ens1f0", ENS, 4),), qdiscs=mq(ENS, 4, 440)), bare.state, {}
    )
    child = queue(again, "ens1f0", 0).tx
    assert child is not None and child.source == "qdisc" and child.packet_unit == "segment"
    assert child.pps == 440.0 and child.segs_per_s == 440.0 and child.skbs_per_s is None
    # An older recording's row (no unit written) still says what its source implies.
    old = TxStats(pps=1.0, bps=8.0, packets=1, bytes=1, source="qdisc")
    assert (
        old.packet_unit == "segment"
        and dataclasses.replace(old, source="probe").packet_unit == "skb"
    )


def test_between_trace_windows_segments_stay_exact_and_packets_are_estimates() -> None:
    ens2 = (ENS, 2)
    first = merge_tick(
        tracer_tick(T0, {ens2: QueueCounters(0, 0, 0)}, traced=(5.0, 5.0), qdiscs=mq(ENS, 4, 0)),
        None,
        {},
    )
    windowed = merge_tick(
        tracer_tick(T0 + S, {ens2: QueueCounters(10, 10_000, 100)}, traced=(5.1, 5.1),
                    qdiscs=mq(ENS, 4, 300)),
        first.state,
        {},
    )  # fmt: skip
    tx = queue(windowed, "ens1f0", 2).tx
    assert tx is not None and tx.source == "qdisc" and tx.packet_unit == "segment"
    assert tx.segs_per_s == pytest.approx(900.0)  # the child's own counter: exact
    assert tx.skbs_per_s == pytest.approx(100.0) and tx.skbs_estimated  # 10 in 0.1 s


def test_qdisc_drops_and_requeues_since_start() -> None:
    ens = (dev("ens1f0", ENS, 2),)

    def tick(t: int, drops: int, requeues: int, handle: int = 0x100) -> TickReadings:
        child = qd(ENS, "tbf", handle << 16, 0x10001, drops=drops, requeues=requeues)
        return readings(t, devices=ens, qdiscs=(qd(ENS, "mq", 0x10000, TC_H_ROOT), child))

    first = merge_tick(tick(T0, 2**32 - 10, 500), None, {})
    q0 = queue(first, "ens1f0", 0).qdisc
    assert q0 is not None and (q0.drops_since_start, q0.requeues_since_start) == (0, 0)
    second = merge_tick(tick(T0 + S, 5, 503), first.state, {})  # u32 wrap: 15 drops
    q0 = queue(second, "ens1f0", 0).qdisc
    assert q0 is not None and (q0.drops_since_start, q0.requeues_since_start) == (15, 3)
    quiet = merge_tick(tick(T0 + 2 * S, 5, 503), second.state, {})
    q0 = queue(quiet, "ens1f0", 0).qdisc
    assert q0 is not None and q0.drops_per_s == 0.0 and q0.drops_since_start == 15
    # The qdisc replaced (a new handle, counters from 0): the queue's total goes on from its
    # next reading, never back to 0 and never counting the new qdisc's start value.
    replaced = merge_tick(tick(T0 + 3 * S, 7, 1, handle=0x200), quiet.state, {})
    q0 = queue(replaced, "ens1f0", 0).qdisc
    assert q0 is not None and q0.drops_since_start == 15
    later = merge_tick(tick(T0 + 4 * S, 9, 1, handle=0x200), replaced.state, {})
    q0 = queue(later, "ens1f0", 0).qdisc
    assert q0 is not None and q0.drops_since_start == 17 and q0.requeues_since_start == 3
    assert queue(later, "ens1f0", 1).qdisc is None  # no child for tx-1


def test_softirq_parts_never_exceed_the_whole() -> None:
    """/proc/stat said 0 ticks (under one tick at 1 s) while the probes measured NET_TX 1.2%
    and NET_RX 1.0% of the same interval: the whole is at least their sum."""

    def tick(t: int, ticks: tuple[int, int], tx_ns: int, rx_ns: int) -> TickReadings:
        busy, soft = ticks
        now = tracer_tick(t, {}, {0: CpuSoftirqCounters(net_tx_ns=tx_ns, net_rx_ns=rx_ns)})
        return dataclasses.replace(now, cpu_times={0: CpuTimes(busy, 0, 0, 0, 0, 0, soft)})

    first = merge_tick(tick(T0, (0, 0), 0, 0), None, {})
    second = merge_tick(tick(T0 + S, (100, 0), 12_000_000, 10_000_000), first.state, {})
    cpu = second.cpus[0]
    assert cpu.net_tx_time_pct == pytest.approx(1.2) and cpu.net_rx_time_pct == pytest.approx(1.0)
    assert cpu.softirq_pct == pytest.approx(2.2) and cpu.softirq_pct_source == "probes"
    assert cpu.softirq_stat_pct == 0.0 and cpu.softirq_pct_resolution == pytest.approx(1.0)
    # The ticks said more (3 of 100): they set the whole, the parts are below it.
    third = merge_tick(tick(T0 + 2 * S, (197, 3), 24_000_000, 20_000_000), second.state, {})
    cpu = third.cpus[0]
    assert cpu.softirq_pct == pytest.approx(3.0) and cpu.softirq_pct_source == "stat"
    # Without probes the ticks are all there is.
    bare = merge_tick(readings(T0, cpu_times={0: CpuTimes(0, 0, 0, 0)}), None, {})
    cpu = merge_tick(
        readings(T0 + 10 * S, cpu_times={0: CpuTimes(990, 0, 0, 0, 0, 0, 10)}), bare.state, {}
    ).cpus[0]
    assert cpu.softirq_pct == pytest.approx(1.0) and cpu.softirq_pct_resolution == pytest.approx(
        0.1
    )
    assert cpu.net_tx_time_pct is None and cpu.softirq_pct_source == "stat"


def test_held_softirq_estimates_are_fitted_under_the_whole() -> None:
    """An estimate held from an earlier trace window may not exceed this interval's ticks
    plus one tick: it is scaled down to fit."""
    first = consistent_shares(2.0, 1.0, 4.0, 2.0, this_interval=False)
    assert first.whole == pytest.approx(3.0) and first.source == "probes"
    assert first.net_tx == pytest.approx(2.0) and first.net_rx == pytest.approx(1.0)
    assert consistent_shares(2.0, 1.0, 4.0, 2.0, this_interval=True).whole == pytest.approx(6.0)
    assert consistent_shares(5.0, 1.0, None, None, True) == SoftirqShares(5.0, "stat", None, None)


@given(
    st.floats(0, 100),
    st.one_of(st.none(), st.floats(0.01, 100)),
    st.floats(0, 100),
    st.floats(0, 100),
    st.booleans(),
)
def test_fuzz_softirq_parts_within_the_whole(stat, resolution, tx, rx, this_interval) -> None:
    shares = consistent_shares(stat, resolution, tx, rx, this_interval)
    assert shares.net_tx is not None and shares.net_rx is not None
    assert shares.net_tx + shares.net_rx <= shares.whole * (1 + 1e-9) + 1e-9
    assert 0 <= shares.whole <= 100 and shares.whole >= min(stat, 100)


def test_bypass_counts_go_to_queues_with_a_qdisc() -> None:
    devices = (dev("eth0", ETH, 2), dev("lo", 1, 1))
    qdiscs = (qd(ETH, "pfifo_fast", 0, TC_H_ROOT), qd(1, "noqueue", 0, TC_H_ROOT))
    counts = {(ETH, 0): BypassStats(12, 12), (1, 0): BypassStats(5, 5)}
    merged = merge_tick(readings(T0, devices=devices, qdiscs=qdiscs), None, {}, counts)
    assert queue(merged, "eth0", 0).bypass == BypassStats(12, 12)
    assert queue(merged, "eth0", 1).bypass == BypassStats(0, 0)  # nothing sampled there
    assert queue(merged, "lo", 0).bypass is None  # noqueue: nothing to bypass
    assert (
        queue(merge_tick(readings(T0, devices=devices, qdiscs=qdiscs), None, {}), "eth0", 0).bypass
        is None
    )


def test_a_queues_first_packets_since_the_last_tick_have_a_rate() -> None:
    """The tracer's maps hold a queue from its first packet on: absent in a traced tick
    means none yet, so the next tick counts all of them (it showed 0 before)."""
    first = merge_tick(tracer_tick(T0, {(ENS, 0): QueueCounters(5, 500, 5)}), None, {})
    second = merge_tick(
        tracer_tick(
            T0 + S, {(ENS, 0): QueueCounters(5, 500, 5), (ENS, 2): QueueCounters(100, 10_000, 400)}
        ),
        first.state,
        {},
    )
    tx = queue(second, "ens1f0", 2).tx
    assert tx is not None and (tx.pps, tx.skbs_per_s, tx.segs_per_s) == (100.0, 100.0, 400.0)
    # Without a traced tick before, nothing is known of when counting started: 0.
    cold = merge_tick(tracer_tick(T0, {(ENS, 2): QueueCounters(100, 10_000, 400)}), None, {})
    assert queue(cold, "ens1f0", 2).tx.pps == 0.0  # type: ignore[union-attr]
