"""A synthetic snapshot source for benchmarks and UI development (``txtop --synthetic NxM``).

Produces plausible, changing numbers for N TX queues on one device plus M CPUs, without
root or kernel access. Everything it makes is labelled: mode "synthetic", host "synthetic".
Deterministic for a given seed and tick, so tests can use it as a fixture generator.
"""

from __future__ import annotations

import math
import random
import re

from txtop.core.model import (
    STAGES,
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
from txtop.core.source import SnapshotSource

MAX_QUEUES = 4096
MAX_CPUS = 4096
_SHAPE_RE = re.compile(r"^(\d{1,4})x(\d{1,4})$")
_BASE_NS = 1_000_000_000_000
_BASE_TIME = 1_790_000_000.0  # a fixed wall clock keeps generated snapshots reproducible


def parse_shape(text: str) -> tuple[int, int]:
    """'16x16' -> (16 queues, 16 CPUs). Raises ValueError with a one-line message."""
    match = _SHAPE_RE.match(text.strip())
    if not match:
        raise ValueError(f"expected QUEUESxCPUS such as 16x16, got {text!r}")
    queues, cpus = int(match.group(1)), int(match.group(2))
    if not (1 <= queues <= MAX_QUEUES and 1 <= cpus <= MAX_CPUS):
        raise ValueError(f"queues and CPUs must be 1..{MAX_QUEUES}, got {text!r}")
    return queues, cpus


def _latency(rng: random.Random, scale_ns: float) -> LatencyStats:
    p50 = int(scale_ns * rng.uniform(0.6, 1.4))
    return LatencyStats(p50=p50, p90=p50 * 3, p99=p50 * 8, max=p50 * 20, count=rng.randint(5, 400))


def _queue_rows(rng: random.Random, n_queues: int, tick: int, wave: float) -> list[QueueRow]:
    rows: list[QueueRow] = []
    for q in range(n_queues):
        load = wave * rng.uniform(0.2, 1.0) / (1 + q % 4)
        pps = 40_000 * load
        bps = pps * 8 * rng.choice((90, 600, 1500))
        limit = rng.choice((3028, 6056, 15140, 30280, 60560))
        backlog_pkts = rng.randint(0, 40) if load > 0.35 else 0
        drops = rng.uniform(0, 30) if load > 0.45 else 0.0
        rows.append(
            QueueRow(
                dev="syn0",
                ifindex=2,
                queue=q,
                bql=BqlStats(
                    inflight=int(limit * min(1.0, load * 1.3)),
                    limit=limit,
                    limit_min=0,
                    limit_max=1879048192,
                    hold_time=1000,
                ),
                qdisc=QdiscStats(
                    kind="fq_codel",
                    handle=f"{q + 0x8001:x}:",
                    parent=f"1:{q + 1:x}",
                    qlen=backlog_pkts,
                    backlog_bytes=backlog_pkts * 1514,
                    backlog_pkts=backlog_pkts,
                    drops=int(drops * tick),
                    requeues=tick // 7,
                    overlimits=0,
                    bytes=int(bps / 8 * tick),
                    packets=int(pps * tick),
                    drops_per_s=drops,
                    requeues_per_s=rng.choice((0.0, 0.0, 0.0, 1.0)),
                    per_queue=True,
                ),
                tx=TxStats(
                    pps=pps,
                    bps=bps,
                    packets=int(pps * tick),
                    bytes=int(bps / 8 * tick),
                    stopped_per_s=rng.choice((0.0, 0.0, 3.0)),
                    errors_per_s=0.0,
                ),
                latency_ns={
                    "qdisc": _latency(rng, 8_000 * (1 + load)),
                    "total": _latency(rng, 30_000 * (1 + load)),
                },
            )
        )
    return rows


def _devices(queues: list[QueueRow], n_queues: int, tick: int) -> tuple[DeviceRow, ...]:
    """syn0 (the sum of its queues) and lo."""
    pps = bps = 0.0
    for row in queues:
        assert row.tx is not None
        pps += row.tx.pps
        bps += row.tx.bps
    return (
        DeviceRow(
            "syn0",
            2,
            n_queues,
            True,
            "up",
            "mq",
            int(pps * tick),
            int(bps / 8 * tick),
            0,
            0,
            pps,
            bps,
        ),
        DeviceRow("lo", 1, 1, False, "unknown", "noqueue", 0, 0, 0, 0, 0.0, 0.0),
    )


def _cpu_rows(rng: random.Random, n_cpus: int, tick: int, wave: float) -> list[CpuRow]:
    rows = []
    for c in range(n_cpus):
        busy = wave * rng.uniform(0.0, 1.0) * (1.0 if c % 3 else 0.3)
        rows.append(
            CpuRow(
                cpu=c,
                net_tx_per_s=2_000 * busy,
                net_rx_per_s=9_000 * busy,
                softirq_pct=25 * busy,
                softnet_processed_per_s=30_000 * busy,
                softnet_dropped=tick // 11,
                time_squeeze=tick // 3,
                softnet_dropped_per_s=rng.choice((0.0, 0.0, 0.0, 2.0)),
                time_squeeze_per_s=rng.choice((0.0, 1.0)),
                net_tx_time_pct=4 * busy,
                net_rx_time_pct=15 * busy,
            )
        )
    return rows


def _packets(rng: random.Random, n_queues: int, n_cpus: int, mono_ns: int) -> list[PacketTrace]:
    packets = []
    for i in range(12):
        start = mono_ns - rng.randint(1_000_000, 900_000_000)
        at, stages = start, {}
        for stage in STAGES:
            stages[stage] = at
            at += rng.randint(300, 20_000)
        packets.append(
            PacketTrace(
                pid=4242,
                tid=4242 + i % 3,
                comm="synth",
                dev="syn0",
                ifindex=2,
                queue=rng.randrange(n_queues),
                len=rng.choice((90, 1514)),
                gso_segs=1,
                stages=stages,
                cpus={s: i % n_cpus for s in stages},
                track="complete",
                syscall="sendto",
                l4_proto=17,
                sport=40000 + i,
                dport=9,
                sample_every=64,
                sample_max_per_s=2000,
            )
        )
    return packets


def make_snapshot(
    n_queues: int, n_cpus: int, tick: int, interval_s: float = 1.0, seed: int = 1
) -> Snapshot:
    """The synthetic snapshot number ``tick`` for the given shape."""
    rng = random.Random(seed * 1_000_003 + tick)  # drawn from in this order: queues, CPUs, packets
    wave = 0.5 + 0.5 * math.sin(tick / 5.0)
    queues = _queue_rows(rng, n_queues, tick, wave)
    devices = _devices(queues, n_queues, tick)
    cpus = _cpu_rows(rng, n_cpus, tick, wave)
    mono_ns = _BASE_NS + int(tick * interval_s * 1e9)
    packets = _packets(rng, n_queues, n_cpus, mono_ns)
    return Snapshot(
        host="synthetic",
        kernel="synthetic",
        time=_BASE_TIME + tick * interval_s,
        mono_ns=mono_ns,
        interval_s=interval_s,
        mode="synthetic",
        interfaces=("syn0", "lo"),
        devices=devices,
        queues=tuple([*queues, QueueRow("lo", 1, 0, None, None, None)]),
        cpus=tuple(cpus),
        packets=tuple(packets),
        probes=ProbeStatus(state="running", sampling={"every": 64, "max_per_s": 2000}),
    )


class SyntheticSource(SnapshotSource):
    """Emits ``make_snapshot(...)`` once per interval, tick after tick."""

    mode = "synthetic"

    def __init__(self, n_queues: int, n_cpus: int, interval_s: float = 1.0, seed: int = 1):
        super().__init__(interval_s)
        self.n_queues = n_queues
        self.n_cpus = n_cpus
        self.seed = seed
        self._tick = 0

    def _prepare(self) -> None:
        self._emit()  # like the live source: a first picture at once, then one per interval

    def _produce(self) -> Snapshot:
        self._tick += 1
        return make_snapshot(self.n_queues, self.n_cpus, self._tick, self.interval_s, self.seed)
