"""The pure half of the live collector: one tick's readings -> snapshot rows (no I/O).

``merge_tick(readings, prev, latency)`` takes what probes/collector.py read this tick
(core/readings.py ``TickReadings``) and the previous tick's cumulative counters (``TickState``)
and returns the device, queue and CPU rows plus the state to keep for the next tick. Every
rate is a delta against that previous state (core/rates.py policy: first tick, new keys,
resets and u32 wraps never give negative or invented rates).

Trace windows (probes/bpf/duty.py): the tracer's counters grow only while its probes are
attached, so their rates are deltas over the attached time (``Spans``), and an interval in
which no window opened shows the last estimate again (``TickState.tx_held``/``cpu_held``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from txtop.core.cpu_shares import consistent_shares, share, softirq_stat_shares
from txtop.core.model import (
    BypassStats,
    CpuRow,
    DeviceRow,
    LatencyStats,
    PacketTrace,
    ProbeStatus,
    QdiscStats,
    QueueRow,
    TxStats,
)
from txtop.core.rates import counter_delta, rate
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

U32 = 32  # /proc/softirqs (unsigned int), softnet_stat (%08x) and qdisc packets are u32
WINDOWED_BELOW = 0.98  # attached for less than this share of the interval: rates are estimates
MULTIQUEUE_ROOTS = frozenset({"mq", "mqprio"})

TxQueue = tuple[int, int]  # (ifindex, TX queue)
QdiscKey = tuple[int, str, str, str]  # (ifindex, handle, parent, kind)
QdiscCounters = tuple[int, int, int, int]  # (bytes, packets, drops, requeues)
QueueLatency = Mapping[TxQueue, Mapping[str, LatencyStats]]
QueueBypass = Mapping[TxQueue, BypassStats]
NO_QDISC = frozenset({"noqueue", "noop"})  # nothing to bypass: packets go straight to the driver


@dataclass(frozen=True, slots=True)
class TickState:
    """The cumulative counters of one tick, kept to compute the next tick's rates."""

    mono_ns: int
    devices: Mapping[tuple[str, int], TxCounters] = field(default_factory=dict)
    qdiscs: Mapping[QdiscKey, QdiscCounters] = field(default_factory=dict)
    # Per TX queue, the qdisc drops and requeues counted since txtop first saw the queue.
    qdisc_totals: Mapping[TxQueue, tuple[int, int]] = field(default_factory=dict)
    softirqs: Mapping[int, tuple[int, int]] = field(default_factory=dict)
    softnet: Mapping[int, SoftnetRow] = field(default_factory=dict)
    cpu_times: Mapping[int, CpuTimes] = field(default_factory=dict)
    tracer_queues: Mapping[TxQueue, QueueCounters] = field(default_factory=dict)
    # The tracer's counters were read this tick: a queue missing from its maps then had no
    # packet yet (a zero to count from next tick, not an unknown start).
    traced: bool = False
    tracer_cpus: Mapping[int, CpuSoftirqCounters] = field(default_factory=dict)
    # Trace windows: cumulative seconds the probe groups were attached, and the last estimates,
    # shown again for an interval in which no window was open.
    traced_s: float | None = None
    traced_late_s: float | None = None
    tx_held: Mapping[TxQueue, TxStats] = field(default_factory=dict)
    cpu_held: Mapping[int, tuple[float, float]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Spans:
    """Seconds over which this tick's tracer counters grew: the interval when the probes are
    always attached, the open time of the trace windows otherwise (0: none was open)."""

    sampling_s: float
    late_s: float
    windowed: bool  # attached for less than the whole interval


@dataclass(frozen=True, slots=True)
class MergedTick:
    """The rows of one tick and the state to hand back as ``prev`` next tick."""

    interval_s: float
    devices: tuple[DeviceRow, ...]
    queues: tuple[QueueRow, ...]
    cpus: tuple[CpuRow, ...]
    # Percent of the interval the probes were attached (ProbeStatus.traced_pct); None when
    # the tracer does not report attached time or there is no interval yet.
    traced_pct: float | None
    state: TickState


def merge_tick(
    now: TickReadings,
    prev: TickState | None,
    latency: QueueLatency,
    bypass: QueueBypass | None = None,
) -> MergedTick:
    """Rows for ``now`` with rates against ``prev`` (None: the first tick, zero rates).

    ``latency`` is the per-(ifindex, queue) latency summary to show in the queue rows
    (core/latency.py ``LatencyWindow.per_queue()``, already fed with this tick's packets);
    ``bypass`` the same window's qdisc bypass counts (core/bypass.py), None without probes.
    """
    reading = now.tracer
    interval_s = max(0.0, (now.mono_ns - prev.mono_ns) / 1e9) if prev is not None else 0.0
    old = prev if prev is not None else TickState(mono_ns=now.mono_ns)
    traced_s = reading.traced_s if reading else None
    traced_late_s = reading.traced_late_s if reading else None
    spans = tick_spans(traced_s, traced_late_s, old, interval_s)
    tick = _Tick(now, old, interval_s, spans, latency, bypass)

    devices: list[DeviceRow] = []
    queues: list[QueueRow] = []
    for dev in now.devices:
        rows = tick.queue_rows(dev)
        queues.extend(rows)
        devices.append(tick.device_row(dev, rows))
    cpus = tick.cpu_rows(probing=reading is not None)

    traced_pct = None
    if reading is not None and traced_s is not None and interval_s > 0:
        traced = 100.0 * spans.sampling_s / interval_s if spans.windowed else 100.0
        traced_pct = round(min(100.0, traced), 1)
    state = TickState(
        mono_ns=now.mono_ns,
        devices=tick.devices,
        qdiscs=tick.qdiscs,
        qdisc_totals=tick.qdisc_totals,
        softirqs=now.softirqs,
        softnet=now.softnet,
        cpu_times=now.cpu_times,
        tracer_queues=tick.tracer_queues,
        tracer_cpus=tick.tracer_cpus,
        traced=reading is not None,
        traced_s=traced_s,
        traced_late_s=traced_late_s,
        tx_held=tick.tx_held,
        cpu_held=tick.cpu_held,
    )
    return MergedTick(interval_s, tuple(devices), tuple(queues), tuple(cpus), traced_pct, state)


def in_namespace(
    label: str, devices: Iterable[DeviceRow], queues: Iterable[QueueRow]
) -> tuple[tuple[DeviceRow, ...], tuple[QueueRow, ...]]:
    """Rows of devices in another network namespace (--netns): named "<label>/<dev>" (names and
    ifindexes are unique only within a namespace) and marked with ``netns``."""
    return (
        tuple(dataclasses.replace(d, dev=f"{label}/{d.dev}", netns=label) for d in devices),
        tuple(dataclasses.replace(q, dev=f"{label}/{q.dev}", netns=label) for q in queues),
    )


def tick_packets(reading: TracerReading | None) -> tuple[PacketTrace, ...]:
    """The tracer's finished packets of this tick, oldest first."""
    return tuple(sorted(reading.packets, key=lambda p: p.first_ns)) if reading else ()


def probe_status(
    status: ProbeStatus,
    override: ProbeStatus | None,
    traced_pct: float | None,
    problems: Mapping[str, str],
) -> ProbeStatus:
    """The snapshot's probe line: ``override`` if given, else the tracer's status with the
    attached share of the interval; the sources that could not be read added to
    ``unavailable``."""
    if override is not None:
        status = override
    elif traced_pct is not None:
        status = dataclasses.replace(status, traced_pct=traced_pct)
    if problems:
        status = dataclasses.replace(status, unavailable={**status.unavailable, **problems})
    return status


def tick_spans(
    traced_s: float | None, traced_late_s: float | None, old: TickState, interval_s: float
) -> Spans:
    """The attached time of this interval, from the tracer's cumulative attached seconds."""
    if traced_s is None or traced_late_s is None or old.traced_s is None:
        return Spans(interval_s, interval_s, False)
    sampling_s = max(0.0, traced_s - old.traced_s)
    late_s = max(0.0, traced_late_s - (old.traced_late_s or 0.0))
    windowed = interval_s > 0 and sampling_s < WINDOWED_BELOW * interval_s
    return Spans(
        sampling_s if windowed else interval_s, late_s if windowed else interval_s, windowed
    )


def current_queues(
    counters: Mapping[TxQueue, QueueCounters], devices: Sequence[NetDevice]
) -> dict[TxQueue, QueueCounters]:
    """The tracer's per-queue counters for queues that exist now. Its maps may still hold
    devices deleted long ago (or queues ethtool -L removed); kept as the previous reading,
    those would grow with every device that ever came and went."""
    present = {(d.ifindex, q) for d in devices for q in d.tx_queues}
    return {k: v for k, v in counters.items() if k in present}


# ---- qdisc topology ---------------------------------------------------------------------------


def map_qdiscs_to_queues(
    qdiscs: Iterable[QdiscInfo], ifindex: int, n_queues: int
) -> dict[int, QdiscStats]:
    """TX queue index -> the qdisc that serves it, for one device.

    An mq/mqprio root (sch_mq.c mq_init / sch_mqprio.c) grafts one child qdisc per TX queue
    with parent ``<root major>:<N+1>`` for tx-N; any other root qdisc serves every TX queue of
    the device, so each queue shows the same device-wide numbers (``per_queue=False``).
    No root qdisc in the dump (e.g. a down device on noop, which is never dumped) -> {}.
    An mq/mqprio queue whose child is missing is left out.
    """
    mine = [q for q in qdiscs if q.ifindex == ifindex]
    root = next((q for q in mine if q.parent == TC_H_ROOT), None)
    if root is None or n_queues <= 0:
        return {}
    if root.kind not in MULTIQUEUE_ROOTS:
        stats = root.to_stats(per_queue=False)
        return {n: stats for n in range(n_queues)}
    major = root.handle & 0xFFFF0000
    children = {q.parent: q for q in mine if q.parent != TC_H_ROOT}
    out: dict[int, QdiscStats] = {}
    for n in range(n_queues):
        child = children.get(major | (n + 1))
        if child is not None:
            out[n] = child.to_stats(per_queue=True)
    return out


def root_qdisc(qdiscs: Iterable[QdiscInfo], ifindex: int) -> QdiscInfo | None:
    return next((q for q in qdiscs if q.ifindex == ifindex and q.parent == TC_H_ROOT), None)


def qdisc_key(ifindex: int, q: QdiscStats) -> QdiscKey:
    # A replaced qdisc gets a new handle (or kind): its counters start a new series.
    return (ifindex, q.handle, q.parent, q.kind)


def exact_rates(probe: TxStats, qdisc: TxStats) -> TxStats:
    """Between trace windows an mq child's counters are still exact: its packet (GSO segment)
    and byte rates replace the estimates; the probes add what only they see, among them the
    packets handed to the driver (an estimate from the windows: ``skbs_estimated``)."""
    return dataclasses.replace(
        qdisc,
        gso_segs=probe.gso_segs,
        errors=probe.errors,
        stopped=probe.stopped,
        errors_per_s=probe.errors_per_s,
        stopped_per_s=probe.stopped_per_s,
        skbs_per_s=probe.skbs_per_s,
        skbs_estimated=probe.skbs_estimated,
    )


# ---- rows -------------------------------------------------------------------------------------


class _Tick:
    """One merge: the readings, the previous state, and the new state being filled in."""

    def __init__(
        self,
        now: TickReadings,
        old: TickState,
        interval_s: float,
        spans: Spans,
        latency: QueueLatency,
        bypass: QueueBypass | None = None,
    ) -> None:
        self.now = now
        self.old = old
        self.interval_s = interval_s
        self.spans = spans
        self.latency = latency
        self.bypass = bypass
        reading = now.tracer
        self.tracer_queues: Mapping[TxQueue, QueueCounters] = (
            current_queues(reading.queues, now.devices) if reading else {}
        )
        self.tracer_cpus: Mapping[int, CpuSoftirqCounters] = reading.cpus if reading else {}
        self.devices: dict[tuple[str, int], TxCounters] = {}
        self.qdiscs: dict[QdiscKey, QdiscCounters] = {}
        self.qdisc_totals: dict[TxQueue, tuple[int, int]] = {}
        self.tx_held: dict[TxQueue, TxStats] = {}
        self.cpu_held: dict[int, tuple[float, float]] = {}

    def queue_rows(self, dev: NetDevice) -> list[QueueRow]:
        mapped = map_qdiscs_to_queues(self.now.qdiscs, dev.ifindex, max(dev.tx_queues) + 1)
        probe_devs = {k[0] for k in self.tracer_queues}
        bql = self.now.bql
        rows = []
        for queue in dev.tx_queues:
            qdisc = mapped.get(queue)
            if qdisc is not None:
                qdisc = self.qdisc_rates(dev.ifindex, queue, qdisc)
            rows.append(
                QueueRow(
                    dev=dev.name,
                    ifindex=dev.ifindex,
                    queue=queue,
                    bql=bql.get((dev.name, queue)),
                    qdisc=qdisc,
                    tx=self.tx_stats(dev.ifindex, queue, qdisc, probe_devs),
                    latency_ns=dict(self.latency.get((dev.ifindex, queue), {})),
                    bypass=self.bypass_stats(dev.ifindex, queue, qdisc),
                )
            )
        return rows

    def bypass_stats(
        self, ifindex: int, queue: int, qdisc: QdiscStats | None
    ) -> BypassStats | None:
        """The window's bypass counts, for a queue with a qdisc that can be bypassed."""
        if self.bypass is None or qdisc is None or qdisc.kind in NO_QDISC:
            return None
        return self.bypass.get((ifindex, queue), BypassStats(0, 0))

    def qdisc_rates(self, ifindex: int, queue: int, q: QdiscStats) -> QdiscStats:
        key = qdisc_key(ifindex, q)
        self.qdiscs[key] = (q.bytes, q.packets, q.drops, q.requeues)
        before = self.old.qdiscs.get(key)
        # Since start, per queue: a replaced qdisc (a new key) adds from its next reading on.
        drops, requeues = self.old.qdisc_totals.get((ifindex, queue), (0, 0))
        if before is not None:
            drops += counter_delta(before[2], q.drops, U32)
            requeues += counter_delta(before[3], q.requeues, U32)
        self.qdisc_totals[ifindex, queue] = (drops, requeues)
        q = dataclasses.replace(q, drops_since_start=drops, requeues_since_start=requeues)
        if before is None:
            return q
        # drops/requeues are u32 in TCA_STATS_QUEUE (struct gnet_stats_queue)
        return dataclasses.replace(
            q,
            drops_per_s=rate(before[2], q.drops, self.interval_s, U32),
            requeues_per_s=rate(before[3], q.requeues, self.interval_s, U32),
        )

    def tx_stats(
        self, ifindex: int, queue: int, qdisc: QdiscStats | None, probe_devs: set[int]
    ) -> TxStats | None:
        key = (ifindex, queue)
        counters = self.tracer_queues.get(key)
        if counters is None and ifindex in probe_devs:
            counters = QueueCounters()  # the tracer watches this device; no packets yet
        from_qdisc = None
        if qdisc is not None and qdisc.per_queue:
            # An mq child only sees this queue's packets: its dequeue counters are its rate.
            # Its packets are GSO segments (bstats_update counts gso_segs), as tc shows them.
            before = self.old.qdiscs.get(qdisc_key(ifindex, qdisc))
            segs = rate(before[1] if before else None, qdisc.packets, self.interval_s, U32)
            from_qdisc = TxStats(
                pps=segs,
                bps=8 * rate(before[0] if before else None, qdisc.bytes, self.interval_s),
                packets=qdisc.packets,
                bytes=qdisc.bytes,
                source="qdisc",
                packets_unit="segment",
                segs_per_s=segs,
            )
        if counters is None:
            return from_qdisc
        # net_dev_start_xmit / net_dev_xmit / qdisc_dequeue counters from the BPF maps; they
        # grow only while the probes are attached (spans.late_s of this interval).
        b = self.old.tracer_queues.get(key)
        if b is None and self.old.traced:
            b = QueueCounters()  # its first packets since the last tick: all in this interval
        spans = self.spans
        span = spans.late_s
        if spans.windowed and span <= 0:
            held = self.old.tx_held.get(key)  # no window this interval: the last estimate stands
            if held is not None:
                self.tx_held[key] = held
                return held if from_qdisc is None else exact_rates(held, from_qdisc)
        # net_dev_start_xmit counts the packets handed to the driver (a GSO packet once, as
        # the device counters of veth, lo and virtio_net do) and their gso_segs apart.
        skbs = rate(b.packets if b else None, counters.packets, span)
        tx = TxStats(
            pps=skbs,
            bps=8 * rate(b.bytes if b else None, counters.bytes, span),
            packets=counters.packets,
            bytes=counters.bytes,
            source="probe",
            gso_segs=counters.gso_segs,
            errors=counters.errors,
            stopped=counters.stopped,
            errors_per_s=rate(b.errors if b else None, counters.errors, span),
            stopped_per_s=rate(b.stopped if b else None, counters.stopped, span),
            estimated=spans.windowed,
            packets_unit="skb",
            skbs_per_s=skbs,
            segs_per_s=rate(b.gso_segs if b else None, counters.gso_segs, span),
            skbs_estimated=spans.windowed,
        )
        if spans.windowed:
            self.tx_held[key] = tx
            if from_qdisc is not None:
                return exact_rates(tx, from_qdisc)
        return tx

    def device_row(self, dev: NetDevice, queues: list[QueueRow]) -> DeviceRow:
        key = (dev.name, dev.ifindex)  # a re-created device gets a new ifindex: no spike
        c = dev.counters
        root = root_qdisc(self.now.qdiscs, dev.ifindex)
        self.devices[key] = c
        b = self.old.devices.get(key)
        return DeviceRow(
            dev=dev.name,
            ifindex=dev.ifindex,
            tx_queues=len(dev.tx_queues),
            has_bql=any(q.bql is not None for q in queues),
            oper_state=dev.oper_state,
            root_qdisc=root.kind if root is not None else None,
            tx_packets=c.tx_packets,
            tx_bytes=c.tx_bytes,
            tx_dropped=c.tx_dropped,
            tx_errors=c.tx_errors,
            tx_pps=rate(b.tx_packets if b else None, c.tx_packets, self.interval_s),
            tx_bps=8 * rate(b.tx_bytes if b else None, c.tx_bytes, self.interval_s),
        )

    def cpu_rows(self, probing: bool) -> list[CpuRow]:
        now, old, interval_s = self.now, self.old, self.interval_s
        cpus = sorted(now.cpu_times) or sorted(now.softnet) or sorted(now.softirqs)
        stat = softirq_stat_shares(old.cpu_times, now.cpu_times)
        rows = []
        for cpu in cpus:
            tx_rx = now.softirqs.get(cpu)
            b_tx_rx = old.softirqs.get(cpu)
            sn = now.softnet.get(cpu)
            b_sn = old.softnet.get(cpu)
            net_tx_time, net_rx_time = self.softirq_time(cpu) if probing else (None, None)
            stat_pct, resolution = stat.get(cpu, (0.0, None))
            # Measured in this interval unless an estimate from an earlier window was held.
            measured = not self.spans.windowed or self.spans.sampling_s > 0
            shares = consistent_shares(stat_pct, resolution, net_tx_time, net_rx_time, measured)
            rows.append(
                CpuRow(
                    cpu=cpu,
                    net_tx_per_s=rate(
                        b_tx_rx[0] if b_tx_rx else None, tx_rx[0] if tx_rx else 0, interval_s, U32
                    ),
                    net_rx_per_s=rate(
                        b_tx_rx[1] if b_tx_rx else None, tx_rx[1] if tx_rx else 0, interval_s, U32
                    ),
                    softirq_pct=shares.whole,
                    softnet_processed_per_s=rate(
                        b_sn.processed if b_sn else None,
                        sn.processed if sn else 0,
                        interval_s,
                        U32,
                    ),
                    softnet_dropped=sn.dropped if sn else 0,
                    time_squeeze=sn.time_squeeze if sn else 0,
                    softnet_dropped_per_s=rate(
                        b_sn.dropped if b_sn else None, sn.dropped if sn else 0, interval_s, U32
                    ),
                    time_squeeze_per_s=rate(
                        b_sn.time_squeeze if b_sn else None,
                        sn.time_squeeze if sn else 0,
                        interval_s,
                        U32,
                    ),
                    net_tx_time_pct=shares.net_tx,
                    net_rx_time_pct=shares.net_rx,
                    softirq_stat_pct=stat_pct if cpu in stat else None,
                    softirq_pct_resolution=resolution,
                    softirq_pct_source=shares.source,
                )
            )
        return rows

    def softirq_time(self, cpu: int) -> tuple[float, float]:
        """NET_TX and NET_RX shares of one CPU: irq:softirq_entry -> softirq_exit time summed
        by the tracer, over the time its probes were attached."""
        spans = self.spans
        span_ns = spans.sampling_s * 1e9
        t = self.tracer_cpus.get(cpu) or CpuSoftirqCounters()
        bt = self.old.tracer_cpus.get(cpu)
        held = self.old.cpu_held.get(cpu)
        if spans.windowed and span_ns <= 0 and held is not None:
            shares = held
        else:
            shares = (
                share(bt.net_tx_ns if bt else None, t.net_tx_ns, span_ns),
                share(bt.net_rx_ns if bt else None, t.net_rx_ns, span_ns),
            )
        if spans.windowed:
            self.cpu_held[cpu] = shares
        return shares
