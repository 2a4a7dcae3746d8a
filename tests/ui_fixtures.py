"""SYNTHETIC snapshots for UI tests: fixed, realistic, hand-built in code.

Nothing here was recorded. The numbers are modelled on this development VM (host "vm",
kernel 6.18.44, 2 CPUs, virtio eth0 with BQL limit 2198 and pfifo_fast, lo with noqueue,
two idle ifb devices) and on a netns veth lab with 4 TX queues under mq, one of them behind
a tbf that backs up and drops. Wall-clock times are fixed so SVG snapshots are stable.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from txtop.core.model import (
    BqlStats,
    CpuRow,
    DeviceRow,
    LatencyStats,
    PacketTrace,
    ProbeStatus,
    QdiscStats,
    QueueRow,
    Snapshot,
    TxStats,
)
from txtop.core.source import Sink, SnapshotSource
from txtop.lab.synthetic import make_snapshot

HOST = "vm"
KERNEL = "6.18.44-fc-v782"
TIME = 1_790_000_000.0  # fixed wall clock (2026-09-21 14:13:20 UTC)
MONO_NS = 5_000_000_000_000


def _eth0(inflight: int = 0, pps: float = 3.0, bps: float = 2_400.0) -> tuple[DeviceRow, QueueRow]:
    dev = DeviceRow("eth0", 2, 1, True, "up", "pfifo_fast", 2707, 236_893, 0, 0, pps, bps)
    queue = QueueRow(
        dev="eth0",
        ifindex=2,
        queue=0,
        bql=BqlStats(inflight, 2198, 0, 1_879_048_192, 1000, 0, 0, 0),
        qdisc=QdiscStats("pfifo_fast", "0:", "root", 0, 0, 0, 0, 0, 0, 236_893, 2707),
        tx=None,
    )
    return dev, queue


def _ifb(name: str, ifindex: int) -> tuple[DeviceRow, QueueRow]:
    dev = DeviceRow(name, ifindex, 1, False, "down", None, 0, 0, 0, 0, 0.0, 0.0)
    return dev, QueueRow(name, ifindex, 0, None, None, None)


def _lo(pps: float = 0.0) -> tuple[DeviceRow, QueueRow]:
    dev = DeviceRow("lo", 1, 1, False, "unknown", "noqueue", 1200, 98_000, 0, 0, pps, pps * 800)
    return dev, QueueRow("lo", 1, 0, None, None, None)


def _cpu(cpu: int, tx: float, rx: float, si: float, **kw: float) -> CpuRow:
    return CpuRow(
        cpu=cpu,
        net_tx_per_s=tx,
        net_rx_per_s=rx,
        softirq_pct=si,
        softnet_processed_per_s=kw.pop("processed", rx),
        softnet_dropped=int(kw.pop("dropped", 0)),
        time_squeeze=int(kw.pop("squeeze", 1)),
        **kw,
    )


def idle_vm(probes: ProbeStatus | None = None) -> Snapshot:
    """This VM at rest: SSH keeps eth0 trickling, probes unavailable (no kernel headers)."""
    pairs = [_eth0(), _ifb("ifb0", 3), _ifb("ifb1", 4), _lo()]
    return Snapshot(
        host=HOST,
        kernel=KERNEL,
        time=TIME,
        mono_ns=MONO_NS,
        interval_s=1.0,
        mode="live",
        interfaces=("eth0", "ifb0", "ifb1", "lo"),
        devices=tuple(d for d, _ in pairs),
        queues=tuple(q for _, q in pairs),
        cpus=(_cpu(0, 0.0, 3.0, 0.2), _cpu(1, 1.0, 4.0, 0.1)),
        packets=(),
        probes=probes
        or ProbeStatus(
            state="unavailable",
            reason="no kernel headers for 6.18.44-fc-v782 (install linux-headers-*)",
        ),
    )


def _lat(p50: int, count: int = 180) -> LatencyStats:
    return LatencyStats(p50=p50, p90=p50 * 3, p99=p50 * 9, max=p50 * 25, count=count)


def _lab_queue(
    n: int, pps: float, backlog_pkts: int = 0, drops_per_s: float = 0.0, kind: str = "pfifo_fast"
) -> QueueRow:
    bps = pps * 1_042 * 8  # 1000-byte UDP payloads
    return QueueRow(
        dev="txlp1a",
        ifindex=9,
        queue=n,
        bql=None,  # veth has no BQL
        qdisc=QdiscStats(
            kind=kind,
            handle=f"{0x8001 + n:x}:" if kind != "tbf" else "10:",
            parent=f"1:{n + 1:x}",
            qlen=backlog_pkts,
            backlog_bytes=backlog_pkts * 1_042,
            backlog_pkts=backlog_pkts,
            drops=int(drops_per_s * 40),
            requeues=0,
            overlimits=int(drops_per_s * 90),
            bytes=int(bps / 8 * 40),
            packets=int(pps * 40),
            drops_per_s=drops_per_s,
            requeues_per_s=0.0,
            per_queue=True,
        ),
        tx=TxStats(
            pps=pps,
            bps=bps,
            packets=int(pps * 40),
            bytes=int(bps / 8 * 40),
            source="probe",
            gso_segs=int(pps * 40),
            errors=0,
            stopped=0,
            errors_per_s=0.0,
            stopped_per_s=0.0,
        ),
        latency_ns={
            "qdisc": _lat(45_000_000 if kind == "tbf" else 1_800),
            "total": _lat(46_000_000 if kind == "tbf" else 9_500),
        },
    )


def _packet(i: int, queue: int, base_ns: int, qwait_ns: int) -> PacketTrace:
    stages = {}
    at = base_ns
    for stage, step in (
        ("sendto", 0),
        ("dev_queue", 3_100),
        ("qdisc_enqueue", 900),
        ("qdisc_dequeue", qwait_ns),
        ("start_xmit", 700),
        ("xmit", 2_400),
    ):
        at += step
        stages[stage] = at
    return PacketTrace(
        pid=3301,
        tid=3301,
        comm="udpflood",
        dev="txlp1a",
        ifindex=9,
        queue=queue,
        len=1_042,
        gso_segs=1,
        stages=stages,
        cpus={s: i % 2 for s in stages},
        track="complete",
        protocol=0x0800,
        xmit_rc=0,
        syscall="sendto",
        l4_proto=17,
        sport=41000 + i,
        dport=9,
        sample_every=64,
        sample_max_per_s=2000,
    )


def busy_lab() -> Snapshot:
    """eth0 idle plus a 4-queue veth under mq, tx-0 behind a tbf that queues and drops."""
    eth_dev, eth_q = _eth0(inflight=1_514, pps=12.0, bps=96_000.0)
    lab_queues = (
        _lab_queue(0, 950.0, backlog_pkts=196, drops_per_s=310.0, kind="tbf"),
        _lab_queue(1, 41_200.0),
        _lab_queue(2, 38_900.0),
        _lab_queue(3, 0.0),
    )
    lab_dev = DeviceRow(
        "txlp1a",
        9,
        4,
        False,
        "up",
        "mq",
        3_246_000,
        3_382_000_000,
        12_400,
        0,
        sum(q.tx.pps for q in lab_queues if q.tx),
        sum(q.tx.bps for q in lab_queues if q.tx),
    )
    lo_dev, lo_q = _lo(pps=2.0)
    packets = tuple(
        _packet(
            i, i % 3, MONO_NS - 800_000_000 + i * 40_000_000, 45_000_000 if i % 3 == 0 else 1_800
        )
        for i in range(9)
    )
    return Snapshot(
        host=HOST,
        kernel=KERNEL,
        time=TIME + 42,
        mono_ns=MONO_NS,
        interval_s=1.0,
        mode="live",
        interfaces=("eth0", "txlp1a", "lo"),
        devices=(eth_dev, lab_dev, lo_dev),
        queues=(eth_q, *lab_queues, lo_q),
        cpus=(
            _cpu(
                0,
                1_210.0,
                41_800.0,
                38.5,
                squeeze=57,
                time_squeeze_per_s=3.0,
                net_tx_time_pct=4.1,
                net_rx_time_pct=27.9,
            ),
            _cpu(
                1,
                880.0,
                39_950.0,
                35.2,
                squeeze=12,
                net_tx_time_pct=3.2,
                net_rx_time_pct=25.4,
                dropped=3,
                softnet_dropped_per_s=0.0,
            ),
        ),
        packets=packets,
        probes=ProbeStatus(
            state="running",
            lost_events=12,
            breakdown={"ringbuf": 12},
            sampling={"every": 64, "max_per_s": 2000},
        ),
        latency_ns={"qdisc": _lat(2_100, 900), "total": _lat(11_000, 900)},
    )


def starting() -> Snapshot:
    """The first tick while the BPF programs still compile."""
    return idle_vm(ProbeStatus(state="starting"))


def many(n_queues: int = 16, n_cpus: int = 16, tick: int = 3) -> Snapshot:
    """A big machine (synthetic generator, fixed tick): 16x16, or 64x256 for dense views."""
    return make_snapshot(n_queues, n_cpus, tick)


ALL = {"idle_vm": idle_vm, "busy_lab": busy_lab, "starting": starting, "many": many}


class ManualSource(SnapshotSource):
    """A source without a thread: the test decides when a snapshot arrives (``push``).

    ``initial`` snapshots are delivered as soon as the app starts the source, which makes
    the first frame deterministic for SVG snapshots.
    """

    mode = "replay"

    def __init__(self, *initial: Snapshot, interval_s: float = 1.0) -> None:
        super().__init__(interval_s)
        self.initial = list(initial)
        self.started = False
        self.intervals: list[float] = []

    def start(self, sink: Sink) -> None:
        self._sink = sink
        self.started = True
        for snap in self.initial:
            sink(snap)

    def push(self, snapshot: Snapshot) -> None:
        assert self._sink is not None, "source not started"
        self._sink(snapshot)

    def set_interval(self, seconds: float) -> None:
        super().set_interval(seconds)
        self.intervals.append(self.interval_s)

    def _produce(self) -> Snapshot | None:
        return None


# ---- Pilot helpers shared by the UI tests ------------------------------------------------------
# Generous: a condition is normally met within a frame or two; the deadline only matters on
# failure, and CI runs on a shared 2-core machine.
PILOT_DEADLINE_S = 10.0


async def until(pilot, condition: Callable[[], bool], what: str) -> None:
    """Let the app run until ``condition()`` holds; fail after PILOT_DEADLINE_S."""
    deadline = time.monotonic() + PILOT_DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.02)


def header(app) -> str:
    """The header bar's text (tui/panels.py HeaderBar)."""
    from txtop.tui.panels import HeaderBar

    return "\n".join(app.query_one(HeaderBar).text())
