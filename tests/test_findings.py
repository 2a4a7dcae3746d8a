"""The findings rules and engine (core/findings.py) on constructed snapshots.

Every rule fires on a snapshot series built to show its condition and stays quiet on a healthy
one; the thresholds sit where their constants say (just below: quiet, at: fires); the engine's
hysteresis raises only after RAISE_AFTER_S, clears only after CLEAR_AFTER_S, keeps a cleared
finding listed for KEEP_CLEARED_S, holds an active one down to the lower threshold, and moves
severity up at once and down slowly. BQL at the limit, slow TX completion, time squeeze,
softnet drops, requeues, BQL stalls and softirq concentration are tested only here (a veth
lab cannot produce them); the other rules also fire in real labs (tests/test_findings_lab.py).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable

import pytest

from txtop.core import findings as fd
from txtop.core.config import DeviceConfig, QdiscConfig, QueueConfig
from txtop.core.finding import Finding, Subject
from txtop.core.findings import FindingsEngine, conditions, evaluate_once, summarize, with_findings
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

T0 = 1_790_000_000.0
MONO0 = 10_000_000_000_000
DEV = "txlt1a"


def lat(p99: int, count: int = 100, p50: int | None = None) -> LatencyStats:
    return LatencyStats(p50 if p50 is not None else p99 // 4, p99 // 2, p99, p99 * 2, count)


def qdisc(
    kind: str = "pfifo_fast",
    n: int = 0,
    drops: float = 0.0,
    requeues: float = 0.0,
    per_queue: bool = True,
    tick: float = 0.0,
    total_drops: int | None = None,
) -> QdiscStats:
    """A qdisc's stats; the cumulative counters advance with ``tick`` (seconds) at the rates
    given, as the kernel's would (the rules read rates from counter deltas)."""
    return QdiscStats(
        kind,
        f"{0x8001 + n:x}:",
        f"1:{n + 1:x}" if per_queue else "root",
        0,
        0,
        0,
        int(drops * tick) if total_drops is None else total_drops,
        int(requeues * tick),
        0,
        0,
        0,
        drops_per_s=drops,
        requeues_per_s=requeues,
        per_queue=per_queue,
    )


def queue(n: int, pps: float = 100.0, tick: float = 0.0, **kw) -> QueueRow:
    return QueueRow(
        dev=kw.pop("dev", DEV),
        ifindex=7,
        queue=n,
        bql=kw.pop("bql", None),
        qdisc=kw.pop("qd", qdisc(n=n)),
        tx=TxStats(pps, pps * 8000, int(pps * tick), 0, source="qdisc"),
        latency_ns=kw.pop("latency", {}),
        config=kw.pop("config", None),
    )


def cpu(n: int, tx: float = 10.0, rx: float = 10.0, si: float = 1.0, **kw) -> CpuRow:
    return CpuRow(n, tx, rx, si, rx, int(kw.pop("dropped", 0)), int(kw.pop("squeeze", 0)), **kw)


def device(
    n_queues: int = 4, has_bql: bool = False, config: DeviceConfig | None = None, root: str = "mq"
) -> DeviceRow:
    return DeviceRow(DEV, 7, n_queues, has_bql, "up", root, 0, 0, 0, 0, 400.0, 0.0, config=config)


def snap(
    i: int, queues=None, cpus=None, devices=None, packets=(), probes=None, dt: float = 1.0
) -> Snapshot:
    queues = tuple(queues if queues is not None else [queue(n) for n in range(4)])
    return Snapshot(
        host="h",
        kernel="k",
        time=T0 + i * dt,
        mono_ns=MONO0 + int(i * dt * 1e9),
        interval_s=dt,
        mode="live",
        interfaces=(DEV,),
        devices=tuple(devices if devices is not None else [device(len({q.queue for q in queues}))]),
        queues=queues,
        cpus=tuple(cpus if cpus is not None else [cpu(0), cpu(1)]),
        packets=tuple(packets),
        probes=probes or ProbeStatus("running"),
    )


def series(make: Callable[[int], Snapshot], n: int = 8) -> list[Snapshot]:
    return [make(i) for i in range(n)]


def run(snaps: list[Snapshot], engine: FindingsEngine | None = None) -> list[tuple[Finding, ...]]:
    engine = engine or FindingsEngine()
    return [engine.observe(s) for s in snaps]


def ids(found: tuple[Finding, ...], state: str = "active") -> set[tuple[str, str]]:
    return {(f.id, f.subject.label) for f in found if f.state == state}


def now(snaps: list[Snapshot]) -> dict:
    """The conditions of the newest snapshot (no time hysteresis)."""
    return {(f.id, f.subject.label): f for f in conditions(fd.Context(snaps)).values()}


def packet(i: int, send_cpu: int, sport: int = 4000, dev: str = DEV) -> PacketTrace:
    return PacketTrace(
        pid=100,
        tid=100,
        comm="s",
        dev=dev,
        ifindex=7,
        queue=0,
        len=100,
        gso_segs=1,
        stages={"dev_queue": MONO0 + i, "xmit": MONO0 + i + 1000},
        cpus={"dev_queue": send_cpu},
        track="complete",
        l4_proto=17,
        sport=sport,
        dport=5000,
    )


# ---- a healthy lab is quiet -------------------------------------------------------------


def test_healthy_snapshots_raise_nothing() -> None:
    healthy = series(
        lambda i: snap(
            i,
            queues=[
                queue(n, 300.0, latency={"qdisc": lat(2_000), "total": lat(20_000)})
                for n in range(4)
            ],
            cpus=[cpu(0, 500, 800, 3.0), cpu(1, 450, 700, 3.0)],
            packets=[packet(i * 10 + k, k % 2, 4000 + k) for k in range(10)],
        ),
        20,
    )
    assert all(found == () for found in run(healthy))


# ---- each rule --------------------------------------------------------------------------------


def test_qdisc_drops_names_the_qdisc_and_its_limit() -> None:
    tbf = QdiscConfig("tbf", "8002:", "1:2", 3072, "bytes", "rate 1Mbit")
    queues = lambda i: [  # noqa: E731
        queue(
            n,
            50.0,
            tick=i,
            qd=qdisc("tbf" if n == 1 else "pfifo_fast", n, drops=30.0 if n == 1 else 0.0, tick=i),
            config=QueueConfig(qdisc=tbf if n == 1 else None),
        )
        for n in range(4)
    ]
    found = now(series(lambda i: snap(i, queues=queues(i)), 3))
    f = found[("qdisc_drops", f"{DEV} tx-1")]
    assert f.evidence["qdisc"] == "tbf" and f.evidence["limit"] == 3072
    assert f.evidence["limit_unit"] == "bytes" and f.evidence["drops_per_s"] == 30.0
    assert "tbf 8002: (limit 3072 bytes) drops 30/s" in f.summary
    assert f.command == f"tc -s qdisc show dev {DEV} parent 1:2"
    assert f.severity == "crit"  # 30 drops of 80 offered: over DROPS_CRIT_SHARE
    assert len(found) == 1


def test_root_qdisc_drops_are_the_device_s() -> None:
    shared = qdisc("tbf", 0, drops=5.0, per_queue=False)
    queues = [queue(n, 500.0, qd=shared) for n in range(2)]
    found = now([snap(0, queues=queues, devices=[device(2, root="tbf")])])
    assert ("qdisc_drops", DEV) in found and found[("qdisc_drops", DEV)].severity == "warn"
    assert found[("qdisc_drops", DEV)].command.endswith(f"dev {DEV} root")


def test_drop_thresholds_and_hold() -> None:
    def at(rate: float) -> Snapshot:
        return snap(
            0, queues=[queue(0, 1000.0, qd=qdisc(drops=rate, kind="tbf"))], devices=[device(1)]
        )

    subject = Subject("queue", DEV, 0)
    assert not conditions(fd.Context([at(fd.DROPS_RAISE_PER_S * 0.99)]))
    assert conditions(fd.Context([at(fd.DROPS_RAISE_PER_S)]))
    # Once active, it holds down to the lower threshold.
    held = fd.Context([at(fd.DROPS_HOLD_PER_S)], frozenset({("qdisc_drops", subject)}))
    assert conditions(held)
    gone = fd.Context([at(fd.DROPS_HOLD_PER_S * 0.9)], frozenset({("qdisc_drops", subject)}))
    assert not conditions(gone)


def test_txqueuelen_drops_on_a_fifo_sized_by_txqueuelen() -> None:
    pfifo = QdiscConfig("pfifo", "8001:", "1:1", 5, "packets")
    dconf = DeviceConfig(txqueuelen=5)
    queues = [queue(0, 900.0, qd=qdisc("pfifo", 0, drops=40.0), config=QueueConfig(qdisc=pfifo))]
    found = now([snap(0, queues=queues, devices=[device(1, config=dconf)])])
    f = found[("txqueuelen_drops", f"{DEV} tx-0")]
    assert ("qdisc_drops", f"{DEV} tx-0") not in found  # one finding per cause
    assert f.evidence["txqueuelen"] == 5 and f.evidence["limit"] == 5
    assert f.command == f"tc qdisc replace dev {DEV} parent 1:1 pfifo limit 20"
    assert "txqueuelen" in f.knob
    # pfifo_fast always uses the txqueuelen: the command changes it.
    fast = [queue(0, 900.0, qd=qdisc("pfifo_fast", 0, drops=40.0))]
    f = now([snap(0, queues=fast, devices=[device(1, config=dconf)])])[
        ("txqueuelen_drops", f"{DEV} tx-0")
    ]
    assert f.command == f"ip link set dev {DEV} txqueuelen 20"
    # A pfifo with a limit of its own (not the txqueuelen) is plain qdisc_drops.
    own = [
        queue(
            0,
            900.0,
            qd=qdisc("pfifo", 0, drops=40.0),
            config=QueueConfig(qdisc=dataclasses.replace(pfifo, limit=64)),
        )
    ]
    assert ("qdisc_drops", f"{DEV} tx-0") in now(
        [snap(0, queues=own, devices=[device(1, config=dconf)])]
    )


def test_qdisc_wait_dominating_suggests_fq_codel_on_a_fifo_and_names_shaping() -> None:
    slow = {"qdisc": lat(40_000_000), "total": lat(42_000_000)}
    fifo = [queue(0, latency=slow, qd=qdisc("pfifo_fast"))]
    f = now([snap(0, queues=fifo, devices=[device(1)])])[("qdisc_wait", f"{DEV} tx-0")]
    assert "fq_codel" in f.knob and f.command == f"tc qdisc replace dev {DEV} parent 1:1 fq_codel"
    assert f.evidence["share_pct"] == pytest.approx(95.2, abs=0.1)
    shaped = [queue(0, latency=slow, qd=qdisc("tbf"))]
    f = now([snap(0, queues=shaped, devices=[device(1)])])[("qdisc_wait", f"{DEV} tx-0")]
    assert "shaping" in f.summary and f.command.startswith("tc -s qdisc show")
    # Thresholds: under a millisecond, under half the total, or too few samples: quiet.
    for latency in (
        {"qdisc": lat(fd.QDISC_WAIT_RAISE_NS - 1), "total": lat(fd.QDISC_WAIT_RAISE_NS)},
        {"qdisc": lat(10_000_000), "total": lat(25_000_000)},
        {"qdisc": lat(40_000_000, count=fd.MIN_SAMPLES - 1), "total": lat(42_000_000)},
    ):
        assert not now([snap(0, queues=[queue(0, latency=latency)], devices=[device(1)])])
    at = {"qdisc": lat(fd.QDISC_WAIT_RAISE_NS), "total": lat(2 * fd.QDISC_WAIT_RAISE_NS)}
    assert now([snap(0, queues=[queue(0, latency=at)], devices=[device(1)])])


def bql(inflight: int, limit: int = 3000, limit_max: int = fd.DQL_MAX_LIMIT, **kw) -> BqlStats:
    return BqlStats(inflight, limit, 0, limit_max, 1000, **kw)


def test_bql_at_limit_from_samples_and_from_ticks() -> None:
    sampled = series(
        lambda i: snap(
            i, queues=[queue(0, bql=bql(100, at_limit_pct=80.0))], devices=[device(1, True)]
        ),
        3,
    )
    f = now(sampled)[("bql_at_limit", f"{DEV} tx-0")]
    assert f.evidence["at_limit_pct"] == 80.0 and f.severity == "info"

    # No between-tick samples: the tick reads themselves, at least BQL_MIN_TICKS of them.
    def full(i: int) -> Snapshot:
        return snap(i, queues=[queue(0, bql=bql(3000 if i % 4 else 0))], devices=[device(1, True)])

    assert ("bql_at_limit", f"{DEV} tx-0") in now(series(full, 4))
    assert not now(series(full, fd.BQL_MIN_TICKS - 1))
    low = series(
        lambda i: snap(
            i, queues=[queue(0, bql=bql(100, at_limit_pct=40.0))], devices=[device(1, True)]
        ),
        3,
    )
    assert not now(low)


def test_bql_limit_pinned_at_a_lowered_limit_max() -> None:
    pinned = series(
        lambda i: snap(
            i,
            queues=[queue(0, bql=bql(4000, limit=4000, limit_max=4000, at_limit_pct=90.0))],
            devices=[device(1, True)],
        ),
        3,
    )
    found = now(pinned)
    f = found[("bql_limit_max", f"{DEV} tx-0")]
    assert ("bql_at_limit", f"{DEV} tx-0") not in found  # the more specific one
    assert f.evidence["limit_max"] == 4000 and "limit_max" in f.command


def test_bql_stalls_per_queue_and_machine_wide() -> None:
    per_queue = [
        snap(
            i,
            queues=[queue(0, bql=bql(0, stall_thrs=100, stall_cnt=2 + (i >= 2), stall_max=150))],
            devices=[device(1, True)],
        )
        for i in range(4)
    ]
    f = now(per_queue)[("bql_stalls", f"{DEV} tx-0")]
    assert f.evidence["stalls"] == 1 and "stall_" in f.command
    wide = [snap(i, probes=ProbeStatus("running", bql_stalls=i // 2)) for i in range(4)]
    assert ("bql_stalls", "probes") in now(wide)
    assert not now([snap(i, probes=ProbeStatus("running", bql_stalls=3)) for i in range(4)])


def test_requeues() -> None:
    def at(rate: float) -> list[Snapshot]:
        return [
            snap(
                0,
                queues=[queue(0, qd=qdisc(requeues=rate))],
                devices=[device(1, config=DeviceConfig(tx_ring=64, tx_ring_max=4096))],
            )
        ]

    f = now(at(fd.REQUEUES_RAISE_PER_S))[("requeues", f"{DEV} tx-0")]
    assert f.evidence["tx_ring"] == 64 and f.command == f"ethtool -g {DEV}"
    assert not now(at(fd.REQUEUES_RAISE_PER_S - 0.1))


def test_tx_queue_concentration_blames_the_xps_map() -> None:
    xps = {0: "0-1", 1: "", 2: "", 3: ""}
    queues = [
        queue(n, 980.0 if n == 0 else 5.0, config=QueueConfig(xps_cpus=xps[n])) for n in range(4)
    ]
    packets = [packet(k, k % 2, 4000 + k) for k in range(20)]
    f = now([snap(0, queues=queues, packets=packets)])[("tx_queue_concentration", f"{DEV} tx-0")]
    assert "XPS maps CPUs 0,1 all to tx-0" in f.summary and f.evidence["sending_cpus"] == "0,1"
    assert "xps_cpus" in f.command
    # One flow from several CPUs (no XPS map): a flow stays on one queue.
    plain = [queue(n, 980.0 if n == 0 else 5.0) for n in range(4)]
    one_flow = [packet(k, k % 2) for k in range(20)]
    f = now([snap(0, queues=plain, packets=one_flow)])[("tx_queue_concentration", f"{DEV} tx-0")]
    assert "one flow" in f.summary
    # One CPU sending, or too few packets to tell, or a quiet device: quiet.
    assert not now([snap(0, queues=plain, packets=[packet(k, 0, 4000 + k) for k in range(20)])])
    assert not now([snap(0, queues=plain, packets=packets[: fd.CONC_MIN_PACKETS - 1])])
    quiet = [queue(n, 50.0 if n == 0 else 0.0) for n in range(4)]
    assert not now([snap(0, queues=quiet, packets=packets)])
    spread = [queue(n, 250.0) for n in range(4)]
    assert not now([snap(0, queues=spread, packets=packets)])


def test_softirq_concentration_needs_a_busy_cpu() -> None:
    busy = [cpu(0, 10, 90_000, 35.0), cpu(1, 10, 2_000, 2.0)]
    f = now([snap(0, cpus=busy)])[("net_rx_concentration", "cpu0")]
    assert f.evidence["share_pct"] == pytest.approx(97.8, abs=0.1) and f.severity == "warn"
    idle = [cpu(0, 10, 90_000, fd.SOFTIRQ_MIN_PCT - 1), cpu(1, 10, 2_000, 2.0)]
    assert not now([snap(0, cpus=idle)])
    few = [cpu(0, 10, 900, 35.0), cpu(1, 0, 0, 0.0)]
    assert not now([snap(0, cpus=few)])
    assert not now([snap(0, cpus=[cpu(0, 10, 90_000, 50.0)])])  # one CPU: nothing to spread to


def test_softnet_squeeze_and_drops_name_the_sysctls() -> None:
    sysctl = {
        "net.core.netdev_budget": "300",
        "net.core.netdev_budget_usecs": "8000",
        "net.core.netdev_max_backlog": "1000",
    }
    dconf = DeviceConfig(sysctl=sysctl)
    cpus = [
        cpu(0, time_squeeze_per_s=5.0, squeeze=50),
        cpu(1, softnet_dropped_per_s=12.0, dropped=120),
    ]
    found = now([snap(0, cpus=cpus, devices=[device(4, config=dconf)])])
    squeeze = found[("softnet_squeeze", "cpu0")]
    assert (
        squeeze.evidence["netdev_budget"] == "300"
        and squeeze.command == "sysctl -w net.core.netdev_budget=600"
    )
    drops = found[("softnet_drops", "cpu1")]
    assert (
        drops.severity == "crit" and drops.command == "sysctl -w net.core.netdev_max_backlog=2000"
    )
    quiet = [cpu(0, time_squeeze_per_s=fd.SQUEEZE_RAISE_PER_S * 0.9), cpu(1)]
    assert not now([snap(0, cpus=quiet)])


def test_slow_completion_only_where_completion_is_real() -> None:
    slow = {"completion": lat(4_000_000)}
    coalesce = DeviceConfig(coalesce={"tx_usecs": 500, "tx_frames": 64})
    nic = [queue(0, bql=bql(0), latency=slow)]
    f = now([snap(0, queues=nic, devices=[device(1, True, config=coalesce)])])[
        ("slow_completion", f"{DEV} tx-0")
    ]
    assert f.evidence["tx_usecs"] == 500 and f.command == f"ethtool -c {DEV}"
    veth = [queue(0, latency=slow)]  # no BQL: completion is the receiver's free
    assert not now([snap(0, queues=veth)])
    fast = [queue(0, bql=bql(0), latency={"completion": lat(fd.SLOW_COMPLETION_RAISE_NS - 1)})]
    assert not now([snap(0, queues=fast, devices=[device(1, True)])])


def test_probe_losses_and_skipped_runs() -> None:
    def probes(i: int, lost: int, skipped: int = 0) -> ProbeStatus:
        return ProbeStatus(
            "running",
            lost_events=lost * i + 7 * i,
            breakdown={"ringbuf_full:start_xmit": lost * i, "track_aged": 7 * i},
            skipped_runs=skipped * i,
            sampling={"every": 1, "max_per_s": 100000},
        )

    found = now([snap(i, probes=probes(i, 50, 20)) for i in range(3)])
    f = found[("probe_losses", "probes")]
    assert f.evidence["lost_per_s"] == 50.0 and f.command == "txtop --sample 4"
    assert ("probe_skipped", "probes") in found
    # Aged tracks (packets held in a shaping qdisc) are not overflow: no finding.
    assert not now([snap(i, probes=probes(i, 0)) for i in range(3)])
    # A single lost event is not a sampling problem.
    assert not now(
        [
            snap(
                i,
                probes=probes(i, 0)
                if i < 2
                else ProbeStatus("running", breakdown={"track_full": 1}),
            )
            for i in range(3)
        ]
    )


# ---- the engine's hysteresis -------------------------------------------------------------


class Dropper:
    """Snapshots of one queue behind a tbf whose drop counter advances tick by tick."""

    def __init__(self, dt: float = 1.0) -> None:
        self.dt = dt
        self.total = 0.0
        self.sent = 0.0

    def __call__(self, i: int, on: bool, rate: float = 20.0, pps: float = 1000.0) -> Snapshot:
        dropped = rate if on else 0.0
        self.total += dropped * self.dt
        self.sent += pps * self.dt
        qd = qdisc("tbf", 0, drops=dropped, total_drops=int(round(self.total)))
        row = queue(0, pps, qd=qd)
        row = dataclasses.replace(row, tx=dataclasses.replace(row.tx, packets=int(self.sent)))
        return snap(i, queues=[row], devices=[device(1)], dt=self.dt)


def dropping(i: int, on: bool, rate: float = 20.0) -> Snapshot:
    """One snapshot of a fresh Dropper (for single-snapshot checks)."""
    return Dropper()(i, on, rate)


def test_raise_after_and_clear_after_in_time_not_ticks() -> None:
    engine = FindingsEngine()
    dropping = Dropper()
    key = ("qdisc_drops", f"{DEV} tx-0")
    # At 1 s ticks: the first tick holds 1 s (< RAISE_AFTER_S), the second 2 s: raised.
    assert key not in ids(engine.observe(dropping(0, True)))
    raised = engine.observe(dropping(1, True))
    assert key in ids(raised)
    assert raised[0].since == pytest.approx(T0 - 1.0)  # the condition began with tick 0's interval
    # The windowed drop rate decays over RATE_WINDOW_S; then CLEAR_AFTER_S more: cleared.
    states = [engine.observe(dropping(i, False)) for i in range(2, 20)]
    first_clear = next(i for i, s in enumerate(states) if key in ids(s, "cleared"))
    assert all(key in ids(s) for s in states[:first_clear])
    gone_at = next(i for i, s in enumerate(states) if mean_rate_below(i + 2))
    assert first_clear - gone_at == pytest.approx(fd.CLEAR_AFTER_S, abs=1)
    cleared = next(f for f in states[first_clear] if f.state == "cleared")
    assert cleared.cleared_at is not None and cleared.since == raised[0].since
    # At 0.1 s ticks the same 2 s need 20 ticks.
    fast, quick = FindingsEngine(), Dropper(dt=0.1)
    got = [fast.observe(quick(i, True)) for i in range(21)]
    first = next(i for i, s in enumerate(got) if key in ids(s))
    assert first == 19  # (19 + 1) intervals of 0.1 s


def mean_rate_below(i: int) -> bool:
    """Whether tick ``i`` of test_raise_after... has its windowed drop rate under the hold."""
    first = max(0, i - 4)  # the oldest tick inside RATE_WINDOW_S: the counter's base
    dropped = sum(20.0 for k in range(first + 1, i + 1) if k < 2)
    return dropped / max(1, i - first) < fd.DROPS_HOLD_PER_S


def test_a_blinking_condition_does_not_flicker() -> None:
    engine = FindingsEngine()
    key = ("qdisc_drops", f"{DEV} tx-0")
    # Drops every other second: windowed, the rate stays over the hold threshold.
    dropping = Dropper()
    shown = [ids(engine.observe(dropping(i, i % 2 == 0))) for i in range(30)]
    first = next(i for i, s in enumerate(shown) if key in s)
    assert all(key in s for s in shown[first:])


def test_a_one_tick_blip_is_never_raised() -> None:
    engine = FindingsEngine()
    dropping = Dropper()
    quiet = [engine.observe(dropping(i, i == 3, rate=2.0)) for i in range(15)]
    assert all(found == () for found in quiet)


def test_cleared_findings_stay_listed_then_go() -> None:
    engine = FindingsEngine(keep_cleared_s=20.0)
    dropping = Dropper()
    for i in range(3):
        engine.observe(dropping(i, True))
    listed = [engine.observe(dropping(i, False)) for i in range(3, 60)]
    cleared_at = next(i for i, s in enumerate(listed) if ids(s, "cleared"))
    gone = next(i for i, s in enumerate(listed) if i > cleared_at and not s)
    assert gone - cleared_at == pytest.approx(21, abs=1)


def test_severity_goes_up_at_once_and_down_after_clear_after() -> None:
    engine = FindingsEngine()

    dropping = Dropper()

    def heavy(i: int) -> Snapshot:  # crit: most of what is offered is dropped
        return dropping(i, True, rate=200_000.0, pps=100_000.0)

    def light(i: int) -> Snapshot:  # warn: a small share
        return dropping(i, True, rate=5.0, pps=100_000.0)

    for i in range(3):
        engine.observe(light(i))
    assert engine.observe(light(3))[0].severity == "warn"
    assert engine.observe(heavy(4))[0].severity == "crit"  # up at once
    sev = [engine.observe(light(i))[0].severity for i in range(5, 20)]
    assert sev[0] == "crit"
    down = sev.index("warn")
    assert down >= fd.CLEAR_AFTER_S - 1


def test_a_jump_starts_over() -> None:
    engine = FindingsEngine()
    dropping = Dropper()
    for i in range(3):
        engine.observe(dropping(i, True))
    back = dataclasses.replace(dropping(0, False), mono_ns=MONO0 - 10**9)
    assert engine.observe(back) == ()


# ---- replay, --once, aggregates, JSON -------------------------------------------------------


def test_with_findings_recomputes_only_for_frames_without() -> None:
    dropping = Dropper()
    frames = [dropping(i, True) for i in range(5)]
    out = with_findings(frames)
    assert out[0].findings == () and ids(out[-1].findings) == {("qdisc_drops", f"{DEV} tx-0")}
    recorded = [dataclasses.replace(f, findings=()) for f in frames]
    assert with_findings(recorded) == tuple(recorded)  # recorded live: kept as they are


def test_evaluate_once_has_no_time_hysteresis() -> None:
    one = dropping(0, True)
    found = evaluate_once(one)
    assert [f.id for f in found] == ["qdisc_drops"] and found[0].since == one.time - one.interval_s
    assert FindingsEngine().observe(one) == ()


def test_summarize_lists_every_finding_of_a_window() -> None:
    dropping = Dropper()
    frames = with_findings([dropping(i, i < 4) for i in range(20)])
    summary = summarize(frames)
    assert summary is not None and len(summary) == 1
    f = summary[0]
    assert f.state == "cleared" and f.cleared_at is not None
    assert summarize([dropping(0, True)]) is None  # frames never evaluated: unknown, not none


def test_findings_json_round_trip_and_malformed() -> None:
    dropping = Dropper()
    frames = with_findings([dropping(i, True) for i in range(3)])
    data = json.loads(json.dumps(frames[-1].to_dict()))
    assert data["findings"][0]["subject"] == {"kind": "queue", "dev": DEV, "queue": 0, "cpu": None}
    assert set(data["findings"][0]) == {
        "id",
        "severity",
        "subject",
        "summary",
        "evidence",
        "knob",
        "command",
        "state",
        "since",
        "cleared_at",
    }
    back = Snapshot.from_dict(data)
    assert back.findings == frames[-1].findings
    old = dict(data)
    del old["findings"]
    assert Snapshot.from_dict(old).findings is None  # an older recording: not evaluated
    for bad in (
        {"severity": "fatal"},
        {"evidence": {"x": [1]}},
        {"subject": "eth0"},
        {"state": "gone"},
    ):
        broken = json.loads(json.dumps(data))
        broken["findings"][0].update(bad)
        with pytest.raises(ValueError):
            Snapshot.from_dict(broken)


def test_commands_quote_odd_device_names() -> None:
    odd = "a b;rm"
    qd = qdisc("tbf", 0, drops=50.0)
    row = dataclasses.replace(queue(0, 100.0, qd=qd), dev=odd)
    f = conditions(
        fd.Context([snap(0, queues=[row], devices=[dataclasses.replace(device(1), dev=odd)])])
    )
    assert f and all("'a b;rm'" in x.command for x in f.values())


def test_commands_for_devices_of_other_namespaces() -> None:
    for dev, prefix, name in (
        ("labns/veth0", "ip netns exec labns ", "veth0"),
        ("pid4242/eth0", "nsenter -t 4242 -n ", "eth0"),
    ):
        qd = qdisc("tbf", 0, drops=50.0)
        row = dataclasses.replace(queue(0, 100.0, qd=qd), dev=dev)
        found = conditions(
            fd.Context([snap(0, queues=[row], devices=[dataclasses.replace(device(1), dev=dev)])])
        )
        f = found[("qdisc_drops", Subject("queue", dev, 0))]
        assert f.command == f"{prefix}tc -s qdisc show dev {name} parent 1:1"


def test_rule_ids_listed() -> None:
    assert len(set(fd.RULE_IDS)) == len(fd.RULE_IDS) == 15
    for rule in fd.RULES:
        assert rule.__doc__ and len(rule.__doc__) > 80, rule.__name__  # names the kernel behaviour
