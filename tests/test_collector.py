"""Collector and LiveSource against copies of the captured trees, a fake clock, fake qdisc
dumps and a fake tracer: exact rates, resets, vanishing devices, probe states, tick cost."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pyroute2.netlink.exceptions import NetlinkError

from txtop.core.model import PacketTrace, ProbeStatus, Snapshot
from txtop.core.readings import TC_H_ROOT, QdiscInfo
from txtop.core.source import CpuSoftirqCounters, QueueCounters, TracerReading
from txtop.probes.collector import Collector, LiveSource
from txtop.probes.readers.netdev import UnknownInterface

ENS_IFINDEX = 7  # tests/data/sysfs/ens1f0 (constructed, 8 queues)
ETH0_IFINDEX = 4


class FakeClock:
    def __init__(self) -> None:
        self.ns = 1_000_000_000_000

    def __call__(self) -> int:
        return self.ns

    def advance(self, seconds: float) -> None:
        self.ns += int(seconds * 1e9)


class FakeQdiscs:
    def __init__(self) -> None:
        self.qdiscs: list[QdiscInfo] = []
        self.closed = 0
        self.fail: Exception | None = None

    def read(self) -> list[QdiscInfo]:
        if self.fail is not None:
            raise self.fail
        return list(self.qdiscs)

    def close(self) -> None:
        self.closed += 1


def qd(ifindex: int, kind: str, handle: int, parent: int, **kw: int) -> QdiscInfo:
    values = dict(qlen=0, backlog_bytes=0, drops=0, requeues=0, overlimits=0, bytes=0, packets=0)
    values.update(kw)
    return QdiscInfo(ifindex, kind, handle, parent, **values)


def mq_setup(scale: int) -> list[QdiscInfo]:
    """ens1f0 on mq 1: (children 1:N+1), eth0 on pfifo_fast; counters grow with ``scale``."""
    out = [qd(ENS_IFINDEX, "mq", 0x10000, TC_H_ROOT, packets=8 * scale)]
    for n in range(8):
        out.append(
            qd(
                ENS_IFINDEX,
                "pfifo_fast",
                0x80010000 + (n << 16),
                0x10000 | (n + 1),
                packets=scale * (n + 1),
                bytes=scale * (n + 1) * 1000,
                drops=scale * n,
                qlen=n,
                backlog_bytes=n * 1500,
            )
        )
    out.append(qd(ETH0_IFINDEX, "pfifo_fast", 0, TC_H_ROOT, packets=scale, drops=scale))
    return out


class FakeTracer:
    def __init__(self, start_delay_s: float = 0.0) -> None:
        self.status = ProbeStatus("running")
        self.started = threading.Event()
        self.start_delay_s = start_delay_s
        self.closed = 0
        self.polls = 0
        self.reading = TracerReading(status=self.status)
        self.fail_start: Exception | None = None
        self.fail_read: Exception | None = None

    def start(self) -> None:
        time.sleep(self.start_delay_s)
        if self.fail_start is not None:
            raise self.fail_start
        self.started.set()

    def read(self) -> TracerReading:
        if self.fail_read is not None:
            raise self.fail_read
        return self.reading

    def poll(self, timeout_s: float) -> None:
        self.polls += 1
        time.sleep(min(timeout_s, 0.01))

    def close(self) -> None:
        self.closed += 1


@pytest.fixture
def trees(data_dir: Path, tmp_path: Path) -> tuple[Path, Path]:
    sysfs = tmp_path / "sysfs"
    proc = tmp_path / "proc"
    shutil.copytree(data_dir / "sysfs", sysfs)
    shutil.copytree(data_dir / "proc", proc)
    return sysfs, proc


def make(trees, **kw) -> tuple[Collector, FakeClock, FakeQdiscs]:
    sysfs, proc = trees
    clock = FakeClock()
    qdiscs = FakeQdiscs()
    collector = Collector(sysfs_root=sysfs, proc_root=proc, qdisc_source=qdiscs, clock=clock, **kw)
    return collector, clock, qdiscs


def bump(path: Path, value: int) -> None:
    path.write_text(f"{value}\n")


def test_first_collect_primes_with_zero_rates(trees) -> None:
    collector, _, qdiscs = make(trees)
    qdiscs.qdiscs = mq_setup(10)
    snap = collector.collect()
    assert snap.interval_s == 0.0 and snap.mode == "live"
    assert snap.interfaces == ("ens1f0", "eth0", "lo")
    assert [q.dev for q in snap.queues] == ["ens1f0"] * 8 + ["eth0", "lo"]
    assert all(d.tx_pps == 0.0 and d.tx_bps == 0.0 for d in snap.devices)
    assert all(c.net_rx_per_s == 0.0 for c in snap.cpus)
    eth0 = snap.devices[1]
    assert (eth0.dev, eth0.has_bql, eth0.root_qdisc, eth0.tx_packets) == (
        "eth0",
        True,
        "pfifo_fast",
        2707,
    )
    assert snap.devices[2].has_bql is False  # lo
    assert snap.queues[8].bql is not None and snap.queues[8].bql.limit == 2198
    assert snap.probes.state == "off" and snap.probes.reason
    assert [c.cpu for c in snap.cpus] == [0, 1]
    Snapshot.from_dict(snap.to_dict())  # the JSON contract round-trips
    collector.close()
    collector.close()
    assert qdiscs.closed == 1


def test_rates_resets_and_qdisc_derived_tx(trees) -> None:
    sysfs, proc = trees
    collector, clock, qdiscs = make(trees)
    qdiscs.qdiscs = mq_setup(10)
    collector.collect()

    stats = sysfs / "eth0" / "statistics"
    bump(stats / "tx_packets", 2707 + 500)
    bump(stats / "tx_bytes", 236893 + 1_000_000)
    bump(sysfs / "ens1f0" / "statistics" / "tx_packets", 40)  # was 123456789: a reset
    softirqs = (proc / "softirqs").read_text()
    (proc / "softirqs").write_text(
        softirqs.replace("NET_RX:    2114752    6106629", "NET_RX:    2115752    6106629")
    )
    qdiscs.qdiscs = mq_setup(30)
    clock.advance(2.0)
    snap = collector.collect()

    assert snap.interval_s == 2.0
    ens, eth0, _lo = snap.devices
    assert eth0.tx_pps == 250.0 and eth0.tx_bps == 4_000_000.0
    assert ens.tx_pps == 20.0  # reset: counted since the reset, never negative
    assert snap.cpus[0].net_rx_per_s == 500.0 and snap.cpus[1].net_rx_per_s == 0.0

    ens_queues = [q for q in snap.queues if q.dev == "ens1f0"]
    for n, q in enumerate(ens_queues):
        assert q.qdisc is not None and q.qdisc.per_queue and q.qdisc.parent == f"1:{n + 1}"
        assert q.qdisc.backlog_bytes == n * 1500 and q.qdisc.backlog_pkts == n
        assert q.qdisc.drops_per_s == 10.0 * n
        assert q.tx is not None and q.tx.source == "qdisc"
        assert q.tx.pps == 10.0 * (n + 1) and q.tx.bps == 8 * 10_000.0 * (n + 1)
    eth0_q = next(q for q in snap.queues if q.dev == "eth0")
    assert eth0_q.qdisc is not None and not eth0_q.qdisc.per_queue
    assert eth0_q.qdisc.drops_per_s == 10.0
    assert eth0_q.tx is None  # a shared root qdisc says nothing about one queue


def test_replaced_qdisc_starts_a_new_series(trees) -> None:
    collector, clock, qdiscs = make(trees)
    qdiscs.qdiscs = [qd(ETH0_IFINDEX, "pfifo_fast", 0, TC_H_ROOT, drops=1000)]
    collector.collect()
    qdiscs.qdiscs = [qd(ETH0_IFINDEX, "tbf", 0x80010000, TC_H_ROOT, drops=3)]
    clock.advance(1.0)
    snap = collector.collect()
    q = next(q for q in snap.queues if q.dev == "eth0")
    assert q.qdisc is not None and q.qdisc.kind == "tbf" and q.qdisc.drops_per_s == 0.0


def test_devices_vanish_and_return(trees) -> None:
    sysfs, _ = trees
    collector, clock, _ = make(trees)
    collector.collect()
    saved = sysfs.parent / "ens1f0.saved"
    (sysfs / "ens1f0").rename(saved)
    clock.advance(1.0)
    snap = collector.collect()
    assert snap.interfaces == ("eth0", "lo")
    assert all(q.dev != "ens1f0" for q in snap.queues)
    saved.rename(sysfs / "ens1f0")
    clock.advance(1.0)
    assert collector.collect().interfaces == ("ens1f0", "eth0", "lo")


def test_fixed_interface_list_vanishing(trees) -> None:
    sysfs, _ = trees
    collector, clock, _ = make(trees, interfaces=["lo", "ens1f0"])
    assert collector.collect().interfaces == ("lo", "ens1f0")  # the order asked for
    shutil.rmtree(sysfs / "ens1f0")
    clock.advance(1.0)
    snap = collector.collect()
    assert snap.interfaces == ("lo",) and [q.dev for q in snap.queues] == ["lo"]


def test_unknown_interface_is_one_line_error(trees) -> None:
    with pytest.raises(UnknownInterface, match=r"^unknown interface: eth7 \(available: "):
        make(trees, interfaces=["eth0", "eth7"])


def test_broken_sources_do_not_crash(trees) -> None:
    _, proc = trees
    collector, clock, qdiscs = make(trees)
    (proc / "softirqs").write_text("garbage\n")
    (proc / "net" / "softnet_stat").unlink()
    qdiscs.fail = OSError(105, "No buffer space available")
    snap = collector.collect()
    assert set(snap.probes.unavailable) == {"softirqs", "softnet_stat", "qdisc"}
    assert all("\n" not in v for v in snap.probes.unavailable.values())
    assert [c.cpu for c in snap.cpus] == [0, 1]  # still from /proc/stat
    assert all(q.qdisc is None for q in snap.queues)
    qdiscs.fail = NetlinkError(1, "Operation not permitted")  # not an OSError
    clock.advance(1.0)
    assert "Operation not permitted" in collector.collect().probes.unavailable["qdisc"]


def packet(ifindex: int, queue: int, t0: int, dev: str = "ens1f0") -> PacketTrace:
    stages = {"sendto": t0, "dev_queue": t0 + 1000, "qdisc_enqueue": t0 + 1500,
              "qdisc_dequeue": t0 + 9500, "start_xmit": t0 + 10_000, "xmit": t0 + 12_000}  # fmt: skip
    return PacketTrace(
        pid=1, tid=1, comm="x", dev=dev, ifindex=ifindex, queue=queue, len=100, gso_segs=1,
        stages=stages, cpus=dict.fromkeys(stages, 0), track="complete",
    )  # fmt: skip


def test_tracer_counters_packets_and_latency(trees) -> None:
    tracer = FakeTracer()
    collector, clock, qdiscs = make(trees, tracer=tracer)
    qdiscs.qdiscs = mq_setup(1)
    assert collector.collect().probes.state == "starting"  # not started yet
    assert collector.start_tracer()
    tracer.reading = TracerReading(
        status=ProbeStatus("running"),
        queues={(ENS_IFINDEX, 2): QueueCounters(100, 10_000, 120, 1, 2)},
        cpus={0: CpuSoftirqCounters(net_tx_ns=1_000_000, net_rx_ns=0)},
    )
    clock.advance(1.0)
    collector.collect()
    now = clock.ns
    tracer.reading = TracerReading(
        status=ProbeStatus("running", lost_events=3),
        packets=(packet(ENS_IFINDEX, 2, now - 5000), packet(ENS_IFINDEX, 2, now - 90_000)),
        queues={(ENS_IFINDEX, 2): QueueCounters(300, 30_000, 400, 5, 2)},
        cpus={0: CpuSoftirqCounters(net_tx_ns=51_000_000, net_rx_ns=20_000_000)},
    )
    clock.advance(0.5)
    snap = collector.collect()
    assert snap.probes.state == "running" and snap.probes.lost_events == 3
    q2 = next(q for q in snap.queues if q.dev == "ens1f0" and q.queue == 2)
    assert q2.tx is not None and q2.tx.source == "probe"
    assert (q2.tx.pps, q2.tx.bps, q2.tx.gso_segs) == (400.0, 8 * 40_000.0, 400)
    assert (q2.tx.errors_per_s, q2.tx.stopped_per_s) == (8.0, 0.0)
    # Other queues of a traced device are probe-sourced zeros, not qdisc guesses.
    q3 = next(q for q in snap.queues if q.dev == "ens1f0" and q.queue == 3)
    assert q3.tx is not None and q3.tx.source == "probe" and q3.tx.pps == 0.0
    # eth0 is not in the tracer's counters: no per-queue rate.
    assert next(q for q in snap.queues if q.dev == "eth0").tx is None
    # Packets are merged in time order; latency windows are filled.
    assert [p.first_ns for p in snap.packets] == sorted(p.first_ns for p in snap.packets)
    assert snap.latency_ns["qdisc"].p50 == 8000 and snap.latency_ns["qdisc"].count == 2
    assert q2.latency_ns["driver"].max == 2000
    cpu0 = snap.cpus[0]
    assert cpu0.net_tx_time_pct == pytest.approx(10.0)  # 50 ms of 500 ms
    assert cpu0.net_rx_time_pct == pytest.approx(4.0)
    assert snap.cpus[1].net_tx_time_pct == 0.0
    collector.close()
    assert tracer.closed == 1


def test_tracer_failures_become_status(trees) -> None:
    tracer = FakeTracer()
    tracer.fail_start = RuntimeError("bpf: Operation not permitted\nlong compiler log...")
    collector, _, _ = make(trees, tracer=tracer)
    assert collector.start_tracer() is False
    snap = collector.collect()
    assert snap.probes.state == "unavailable"
    assert snap.probes.reason == "RuntimeError: bpf: Operation not permitted"
    assert tracer.closed == 1

    tracer2 = FakeTracer()
    collector2, _, _ = make(trees, tracer=tracer2)
    collector2.start_tracer()
    tracer2.fail_read = OSError(9, "Bad file descriptor")
    snap = collector2.collect()
    assert snap.probes.state == "unavailable" and "Bad file descriptor" in snap.probes.reason
    assert collector2.tracer is None and tracer2.closed == 1


def wait_for(cond: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        time.sleep(0.01)


def test_live_source_sequence(trees) -> None:
    tracer = FakeTracer(start_delay_s=0.2)
    sysfs, proc = trees
    collector = Collector(
        sysfs_root=sysfs, proc_root=proc, qdisc_source=FakeQdiscs(), tracer=tracer
    )
    snaps: list[Snapshot] = []
    source = LiveSource(collector, interval_s=0.1)
    source.start(snaps.append)
    try:
        wait_for(lambda: len(snaps) >= 4)
    finally:
        source.stop()
    assert snaps[0].probes.state == "starting"  # emitted before the probes compiled
    assert snaps[0].interval_s == 0.0
    assert snaps[1].probes.state == "running" and snaps[1].interval_s >= 0.2
    assert tracer.polls > 0
    assert tracer.closed == 1
    source.stop()  # idempotent
    assert tracer.closed == 1 and source.error is None


def test_live_source_without_tracer(trees) -> None:
    sysfs, proc = trees
    collector = Collector(sysfs_root=sysfs, proc_root=proc, qdisc_source=FakeQdiscs())
    collector.probe_status = ProbeStatus("unavailable", reason="not root")
    snaps: list[Snapshot] = []
    source = LiveSource(collector, interval_s=0.1, mode="demo")
    source.start(snaps.append)
    try:
        wait_for(lambda: len(snaps) >= 2)
    finally:
        source.stop()
    assert all(s.mode == "demo" and s.probes.reason == "not root" for s in snaps)


def build_big_tree(root: Path, n_queues: int, n_cpus: int, data_dir: Path) -> tuple[Path, Path]:
    """A 128-queue NIC with BQL and a 256-CPU procfs (constructed, like proc256)."""
    sysfs = root / "sysfs"
    dev = sysfs / "big0"
    for name, value in (("ifindex", 9), ("operstate", "up")):
        (dev).mkdir(parents=True, exist_ok=True)
        (dev / name).write_text(f"{value}\n")
    (dev / "statistics").mkdir()
    for name in ("tx_packets", "tx_bytes", "tx_dropped", "tx_errors"):
        (dev / "statistics" / name).write_text("1000\n")
    for q in range(n_queues):
        bql = dev / "queues" / f"tx-{q}" / "byte_queue_limits"
        bql.mkdir(parents=True)
        for name in ("inflight", "limit", "limit_min", "limit_max", "hold_time", "stall_thrs",
                     "stall_cnt", "stall_max"):  # fmt: skip
            (bql / name).write_text(f"{q}\n")
    proc = root / "proc"
    shutil.copytree(data_dir / "proc256", proc)
    assert n_cpus == 256
    return sysfs, proc


def test_tick_cost_128_queues_256_cpus(data_dir: Path, tmp_path: Path) -> None:
    sysfs, proc = build_big_tree(tmp_path, 128, 256, data_dir)
    qdiscs = FakeQdiscs()
    qdiscs.qdiscs = [qd(9, "mq", 0x10000, TC_H_ROOT)] + [
        qd(9, "fq_codel", (0x100 + n) << 16, 0x10000 | (n + 1), packets=n) for n in range(128)
    ]
    collector = Collector(sysfs_root=sysfs, proc_root=proc, qdisc_source=qdiscs)
    collector.collect()
    runs = 20
    t0 = time.perf_counter()
    for _ in range(runs):
        snap = collector.collect()
    per_tick_ms = (time.perf_counter() - t0) / runs * 1e3
    assert len(snap.queues) == 128 and len(snap.cpus) == 200
    assert all(q.tx is not None and q.tx.source == "qdisc" for q in snap.queues)
    print(f"collect() at 128 queues x 256 CPUs: {per_tick_ms:.1f} ms/tick")
    # Budget: a 1 s tick must stay cheap even on a loaded 2-core VM.
    assert per_tick_ms < 150


def test_live_source_real_kernel_files() -> None:
    """The real readers (sysfs, procfs, rtnetlink dump: no root needed) on the worker thread;
    the netlink socket opened there is closed from this thread by stop()."""
    collector = Collector()
    snaps: list[Snapshot] = []
    source = LiveSource(collector, interval_s=0.1)
    source.start(snaps.append)
    try:
        wait_for(lambda: len(snaps) >= 3)
    finally:
        source.stop()
    assert source.error is None
    last = snaps[-1]
    assert "lo" in last.interfaces and last.interfaces[-1] == "lo"
    lo = next(q for q in last.queues if q.dev == "lo")
    assert lo.bql is None and lo.qdisc is not None and lo.qdisc.kind == "noqueue"
    assert last.cpus and last.interval_s > 0
    assert not last.probes.unavailable
    with pytest.raises(RuntimeError):
        collector.collect()  # closed


def test_live_source_stopped_while_compiling(trees) -> None:
    tracer = FakeTracer(start_delay_s=0.5)
    sysfs, proc = trees
    collector = Collector(
        sysfs_root=sysfs, proc_root=proc, qdisc_source=FakeQdiscs(), tracer=tracer
    )
    snaps: list[Snapshot] = []
    source = LiveSource(collector, interval_s=0.1)
    source.start(snaps.append)
    wait_for(lambda: len(snaps) >= 1)
    source.stop(timeout=0.05)  # returns while start() still "compiles"
    assert tracer.closed == 1
    wait_for(lambda: source._thread is not None and not source._thread.is_alive())
    assert source.error is None
    assert [s.probes.state for s in snaps] == ["starting"]


def test_trace_windows_rates_over_traced_time_and_held_between(trees) -> None:
    """Counters that grow only while the probes are attached are divided by the attached time;
    an interval without a window shows the last estimate again; an mq child's exact counters
    replace the estimated packet rate."""
    tracer = FakeTracer()
    collector, clock, qdiscs = make(trees, tracer=tracer)
    qdiscs.qdiscs = mq_setup(1)
    assert collector.start_tracer()
    status = ProbeStatus("running", trace_mode="auto", trace_duty_pct=10.0)

    def reading(traced: float, late: float, eth0: int, ens: int, ns: int) -> TracerReading:
        return TracerReading(
            status=status,
            queues={
                (ETH0_IFINDEX, 0): QueueCounters(eth0, eth0 * 100, eth0, 0, 0),
                (ENS_IFINDEX, 2): QueueCounters(ens, ens * 100, ens, 0, ens // 10),
            },
            cpus={0: CpuSoftirqCounters(net_rx_ns=ns)},
            traced_s=traced,
            traced_late_s=late,
        )

    tracer.reading = reading(5.0, 5.0, 0, 0, 0)
    collector.collect()
    # 1 s interval, of which a 0.1 s window (0.125 s with the late probes' drain)
    tracer.reading = reading(5.1, 5.125, 1000, 500, 20_000_000)
    qdiscs.qdiscs = mq_setup(4)  # ens1f0 tx-2's mq child: 3 x 3 packets more
    clock.advance(1.0)
    snap = collector.collect()
    assert snap.probes.traced_pct == pytest.approx(10.0)
    eth0 = next(q for q in snap.queues if q.dev == "eth0").tx
    assert eth0 is not None and eth0.estimated and eth0.source == "probe"
    assert eth0.pps == pytest.approx(1000 / 0.125) and eth0.packets == 1000
    ens2 = next(q for q in snap.queues if q.dev == "ens1f0" and q.queue == 2).tx
    assert ens2 is not None and ens2.source == "qdisc" and not ens2.estimated
    assert ens2.pps == pytest.approx(9.0)  # exact, from the qdisc
    assert ens2.stopped_per_s == pytest.approx(50 / 0.125)  # only the probes see this
    assert snap.cpus[0].net_rx_time_pct == pytest.approx(20.0)  # 20 ms of 100 ms traced
    # No window in the next interval: the estimates stand, the exact rate moves on.
    qdiscs.qdiscs = mq_setup(5)
    clock.advance(1.0)
    snap = collector.collect()
    assert snap.probes.traced_pct == 0.0
    eth0 = next(q for q in snap.queues if q.dev == "eth0").tx
    assert eth0 is not None and eth0.estimated and eth0.pps == pytest.approx(8000.0)
    ens2 = next(q for q in snap.queues if q.dev == "ens1f0" and q.queue == 2).tx
    assert ens2 is not None and ens2.pps == pytest.approx(3.0)
    assert ens2.stopped_per_s == pytest.approx(400.0)
    assert snap.cpus[0].net_rx_time_pct == pytest.approx(20.0)
    Snapshot.from_dict(snap.to_dict())  # the new fields round-trip
    collector.close()


def test_always_attached_tracer_rates_are_exact(trees) -> None:
    """traced_s growing with the clock (duty 100%) changes nothing: rates over the interval."""
    tracer = FakeTracer()
    collector, clock, qdiscs = make(trees, tracer=tracer)
    assert collector.start_tracer()
    q = {(ETH0_IFINDEX, 0): QueueCounters(0, 0, 0, 0, 0)}
    tracer.reading = TracerReading(
        status=ProbeStatus("running"), queues=q, traced_s=1.0, traced_late_s=1.0
    )
    collector.collect()
    q = {(ETH0_IFINDEX, 0): QueueCounters(500, 50_000, 500, 0, 0)}
    tracer.reading = TracerReading(
        status=ProbeStatus("running"), queues=q, traced_s=1.999, traced_late_s=1.999
    )
    clock.advance(1.0)
    snap = collector.collect()
    tx = next(x for x in snap.queues if x.dev == "eth0").tx
    assert tx is not None and not tx.estimated and tx.pps == 500.0
    assert snap.probes.traced_pct == 100.0
    collector.close()
