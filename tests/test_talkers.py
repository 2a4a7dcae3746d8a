"""core/talkers.py: top flows and processes per TX queue, estimated from the samples scaled by
the probability each had to be sampled (1-in-N, the token bucket's admit share, trace windows)."""

from __future__ import annotations

import dataclasses
import random

import pytest

from txtop.core.model import FlowInfo, PacketOwner, PacketTrace, ProbeStatus, QueueRow, Snapshot
from txtop.core.talkers import TalkerWindow, flow_name, percentile

A = FlowInfo("ipv4", "10.0.0.1", "10.0.0.2", 6, 43512, 5201, 0x10)
B = FlowInfo("ipv4", "10.0.0.1", "10.0.0.2", 17, 40000, 53)
IPERF = PacketOwner(100, 100, "iperf3", "/", "socket")
DIG = PacketOwner(200, 201, "dig", None, "syscall")


def pkt(flow: FlowInfo, owner: PacketOwner | None, length: int, every: int = 4, **kw: object):
    base: dict[str, object] = dict(
        pid=owner.pid if owner else 0, tid=owner.tid if owner else 0,
        comm=owner.comm if owner else "", dev="eth0", ifindex=2, queue=1, len=length,
        gso_segs=1, stages={"dev_queue": 1, "qdisc_enqueue": 2, "qdisc_dequeue": 2 + 1000},
        cpus={}, track="complete", sample_every=every, flow=flow, owner=owner,
    )  # fmt: skip
    base.update(kw)
    return PacketTrace(**base)  # type: ignore[arg-type]


def status(sampled: int, limited: int) -> ProbeStatus:
    return ProbeStatus(
        "running", sampling={"every": 4, "sampled": sampled, "rate_limited": limited}
    )


def feed(window: TalkerWindow, ticks: list[list[PacketTrace]], admit: float, traced_pct: float):
    sampled = limited = 0
    for i, packets in enumerate(ticks):
        sampled += len(packets)
        limited += round(len(packets) * (1 - admit) / admit)
        window.add(packets, status(sampled, limited), 1.0, (i + 1) * 10**9, traced_pct)


def test_estimates_scale_by_every_admit_share_and_traced_share() -> None:
    w = TalkerWindow(window_s=10.0)
    # per tick: 30 samples of A (1500 bytes), 10 of B (100 bytes); 1 in 4, half admitted by the
    # bucket, probes attached a quarter of the time: each sample stands for 4 * 2 * 4 = 32
    # packets per traced second.
    ticks = [[pkt(A, IPERF, 1500)] * 30 + [pkt(B, DIG, 100)] * 10 for _ in range(5)]
    feed(w, ticks, admit=0.5, traced_pct=25.0)
    inv_admit, traced = w.scale()
    assert inv_admit == pytest.approx(2.0) and traced == pytest.approx(1.25)
    flows, procs = w.per_queue()[("eth0", 1)]
    a, b = flows
    assert a.flow == A and a.name == "10.0.0.1:43512>10.0.0.2:5201 tcp"
    assert a.packets_per_s == pytest.approx(30 * 5 * 4 * 2 / 1.25)  # 960/s
    assert a.bytes_per_s == pytest.approx(a.packets_per_s * 1500)
    assert b.packets_per_s == pytest.approx(320.0) and b.bytes_per_s == pytest.approx(32000.0)
    assert a.share_pct == pytest.approx(100 * 1500 * 30 / (1500 * 30 + 100 * 10))
    assert (a.samples, a.owner, a.wait_p50_ns, a.wait_p99_ns) == (150, IPERF, 1000, 1000)
    assert a.estimated and a.kind == "flow" and a.window_s == pytest.approx(1.25)
    assert [p.name for p in procs] == ["iperf3[100]", "dig[200]"]
    assert procs[0].flow is None and procs[0].owner == IPERF


def test_window_expiry_drops_and_restart() -> None:
    w = TalkerWindow(window_s=3.0)
    drop = pkt(B, DIG, 100, every=1, free_kind="drop")
    feed(w, [[drop] * 2] * 6, admit=1.0, traced_pct=100.0)
    (flow,), _ = w.per_queue()[("eth0", 1)]
    assert flow.samples == 6  # 3 ticks of 2 kept, the older ones expired
    assert flow.drops_per_s == pytest.approx(2.0) and flow.wait_p50_ns == 1000
    assert flow.packets_per_s == 0 == flow.bytes_per_s  # dropped: not traffic through the queue
    # the tracer restarted: its counters begin again, no negative deltas
    w.add([drop], status(1, 0), 1.0, 7 * 10**9, None)
    assert w.scale()[0] == pytest.approx(1.0)
    # probes not running: nothing new counted, old ticks still expire
    w.add([drop], ProbeStatus("off"), 1.0, 20 * 10**9, None)
    assert w.per_queue() == {}


def test_attach_puts_talkers_on_their_queue_rows_only() -> None:
    w = TalkerWindow()
    feed(w, [[pkt(A, IPERF, 1500, queue=3), pkt(B, None, 90, queue=None)]], 1.0, 100.0)
    rows = [QueueRow("eth0", 2, q, None, None, None) for q in range(4)]
    out = w.attach(rows)
    assert [len(r.flows) for r in out] == [0, 0, 0, 1] and out[3].processes[0].name == "iperf3[100]"
    assert out[0] is rows[0]


def test_kernel_and_unknown_senders_and_names() -> None:
    w = TalkerWindow()
    kernel = PacketOwner(0, 0, "", None, "kernel")
    feed(w, [[pkt(FlowInfo("arp"), kernel, 42), pkt(B, None, 80)]], 1.0, 100.0)
    flows, procs = w.per_queue()[("eth0", 1)]
    assert {p.name for p in procs} == {"(kernel)", "(unknown)"}
    assert {f.name for f in flows} == {"arp", "10.0.0.1:40000>10.0.0.2:53 udp"}
    v6 = FlowInfo("ipv6", "fd00::1", "fd00::2", 6, 1, 2, vlan=7, encap=True)
    assert flow_name(v6) == "vlan 7 [fd00::1]:1>[fd00::2]:2 tcp (outer)"
    assert flow_name(None) == "(headers not read)"


def test_percentile_nearest_rank() -> None:
    assert percentile([1, 2, 3, 4], 0.5) == 2 and percentile([1, 2, 3, 4], 0.99) == 4
    assert percentile([7], 0.5) == 7


def test_estimate_of_a_simulated_sampler_is_within_a_few_percent() -> None:
    """Run the sampler the kernel runs (random countdown with mean N, a token bucket, windows)
    over a known packet stream, and compare the estimate with the truth."""
    rng = random.Random(7)
    every, cap_per_tick, duty = 8, 40, 0.5
    rates = {A: 600, B: 200}  # packets per second, truth
    w = TalkerWindow(window_s=20.0)
    sampled = limited = 0
    countdown = 1
    for second in range(20):
        packets = []
        stream = [A] * rates[A] + [B] * rates[B]
        rng.shuffle(stream)
        tokens = cap_per_tick
        for i, flow in enumerate(stream):
            if i >= duty * len(stream):
                break  # the window closed for the rest of this second
            countdown -= 1
            if countdown > 0:
                continue
            countdown = 1 + rng.randrange(2 * every - 1)
            if tokens == 0:
                limited += 1
                continue
            tokens -= 1
            sampled += 1
            packets.append(pkt(flow, IPERF if flow is A else DIG, 1000, every=every))
        w.add(packets, status(sampled, limited), 1.0, (second + 1) * 10**9, 100 * duty)
    flows, _ = w.per_queue()[("eth0", 1)]
    est = {f.flow: f.packets_per_s for f in flows}
    for flow, truth in rates.items():
        assert est[flow] == pytest.approx(truth, rel=0.15), (flow, est[flow], truth)


def test_snapshot_json_round_trip_keeps_the_talkers() -> None:
    w = TalkerWindow()
    feed(w, [[pkt(A, IPERF, 1500)] * 3], 1.0, 100.0)
    row = w.attach([QueueRow("eth0", 2, 1, None, None, None)])[0]
    snap = Snapshot(
        "h", "k", 0.0, 0, 1.0, "live", ("eth0",), (), (row,), (), (), ProbeStatus("off")
    )
    d = snap.to_dict()
    assert d["queues"][0]["flows"][0]["name"] == "10.0.0.1:43512>10.0.0.2:5201 tcp"
    assert d["queues"][0]["flows"][0]["owner"]["comm"] == "iperf3"
    back = Snapshot.from_dict(d)
    assert back.queues[0].flows == row.flows and back.queues[0].processes == row.processes
    old = dataclasses.replace(row, flows=(), processes=())  # older recordings: no talkers
    assert (
        Snapshot.from_dict(dataclasses.replace(snap, queues=(old,)).to_dict()).queues[0].flows == ()
    )
