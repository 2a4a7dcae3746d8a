"""The live collector: one Snapshot per tick from sysfs, rtnetlink, procfs and the BPF tracer.

Per tick it costs one directory listing per device, the device's four tx_* statistics files,
the BQL files of each TX queue, one RTM_GETQDISC dump for all devices, /proc/softirqs,
/proc/net/softnet_stat and /proc/stat once each, and one ``tracer.read()``. Every rate is a
delta against the previous tick's raw counters (core/rates.py policy: first tick, new keys,
resets and u32 wraps never give negative or invented rates).
"""

from __future__ import annotations

import dataclasses
import os
import platform
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

from txtop.core.latency import LatencyWindow
from txtop.core.model import (
    CpuRow,
    DeviceRow,
    ProbeStatus,
    QdiscStats,
    QueueRow,
    Snapshot,
    TxStats,
)
from txtop.core.rates import rate
from txtop.core.source import CpuSoftirqCounters, QueueCounters, SnapshotSource, TracerReading
from txtop.core.text import exc_line, one_line
from txtop.probes.readers.bql import read_bql
from txtop.probes.readers.netdev import (
    SYSFS_NET,
    NetDevice,
    TxCounters,
    is_valid_ifname,
    order_interfaces,
    read_device,
    resolve_interfaces,
)
from txtop.probes.readers.qdisc import QdiscInfo, QdiscReader, map_qdiscs_to_queues, root_qdisc
from txtop.probes.readers.softirq import (
    PROC,
    CpuTimes,
    SoftnetRow,
    read_cpu_times,
    read_softirqs,
    read_softnet_stat,
    softirq_time_pct,
)

_T = TypeVar("_T")
U32 = 32  # /proc/softirqs (unsigned int), softnet_stat (%08x) and qdisc packets are u32

PROBES_OFF = ProbeStatus("off", reason="BPF probes not attached")
PROBES_STARTING = ProbeStatus("starting", reason="compiling probes...")


class Tracer(Protocol):
    """What the collector needs from probes/bpf/tracer.py."""

    status: ProbeStatus

    def start(self) -> None: ...

    def read(self) -> TracerReading: ...

    def poll(self, timeout_s: float) -> None: ...

    def close(self) -> None: ...


class QdiscSource(Protocol):
    def read(self) -> list[QdiscInfo]: ...

    def close(self) -> None: ...


@dataclass
class _Raw:
    """The cumulative counters of one tick, kept to compute the next tick's rates."""

    mono_ns: int
    devices: dict[tuple[str, int], TxCounters] = field(default_factory=dict)
    # (ifindex, handle, parent, kind) -> (bytes, packets, drops, requeues)
    qdiscs: dict[tuple[int, str, str, str], tuple[int, int, int, int]] = field(default_factory=dict)
    softirqs: dict[int, tuple[int, int]] = field(default_factory=dict)
    softnet: dict[int, SoftnetRow] = field(default_factory=dict)
    cpu_times: dict[int, CpuTimes] = field(default_factory=dict)
    tracer_queues: Mapping[tuple[int, int], QueueCounters] = field(default_factory=dict)
    tracer_cpus: Mapping[int, CpuSoftirqCounters] = field(default_factory=dict)
    # Trace windows (probes/bpf/duty.py): cumulative seconds the probe groups were attached, and
    # the last estimates, shown again for an interval in which no window was open.
    traced_s: float | None = None
    traced_late_s: float | None = None
    tx_held: dict[tuple[int, int], TxStats] = field(default_factory=dict)
    cpu_held: dict[int, tuple[float, float]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Spans:
    """Seconds over which this tick's tracer counters grew: the interval when the probes are
    always attached, the open time of the trace windows otherwise (0: none was open)."""

    sampling_s: float
    late_s: float
    windowed: bool  # attached for less than the whole interval


WINDOWED_BELOW = 0.98  # attached for less than this share of the interval: rates are estimates


def _spans(raw: _Raw, old: _Raw, interval_s: float) -> _Spans:
    if raw.traced_s is None or raw.traced_late_s is None or old.traced_s is None:
        return _Spans(interval_s, interval_s, False)
    sampling_s = max(0.0, raw.traced_s - old.traced_s)
    late_s = max(0.0, raw.traced_late_s - (old.traced_late_s or 0.0))
    windowed = interval_s > 0 and sampling_s < WINDOWED_BELOW * interval_s
    return _Spans(
        sampling_s if windowed else interval_s, late_s if windowed else interval_s, windowed
    )


def _summary(items: list[str]) -> str:
    """One line for ``probes.unavailable``: the first reason, and how many more there were."""
    first = one_line(items[0])
    return first if len(items) == 1 else f"{first} (+{len(items) - 1} more)"


class Collector:
    """Builds Snapshots. ``collect()`` from one thread at a time; ``close()`` from any.

    ``interfaces``: names to show, in that order (validated now: InterfaceError on bad or
    unknown names); None or empty = every interface with TX queues, re-listed each tick.
    ``tracer``: the BPF tracer or None; call ``start_tracer()`` before expecting probe data
    (LiveSource does it on its worker thread). ``qdisc_source`` replaces the netlink reader
    (tests). ``clock`` returns CLOCK_MONOTONIC ns.
    """

    def __init__(
        self,
        interfaces: Sequence[str] | None = None,
        tracer: Tracer | None = None,
        sysfs_root: Path = SYSFS_NET,
        proc_root: Path = PROC,
        qdisc_source: QdiscSource | None = None,
        latency: LatencyWindow | None = None,
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.sysfs_root = Path(sysfs_root)
        self.proc_root = Path(proc_root)
        self._fixed: list[str] | None = (
            resolve_interfaces(interfaces, self.sysfs_root) if interfaces else None
        )
        self.tracer = tracer
        self.probe_status: ProbeStatus = PROBES_OFF
        self._tracer_started = False
        self._qdiscs: QdiscSource = qdisc_source if qdisc_source is not None else QdiscReader()
        self.latency = latency if latency is not None else LatencyWindow()
        self._clock = clock
        self._prev: _Raw | None = None
        self._lock = threading.Lock()
        self._closed = False
        self.host = socket.gethostname()
        self.kernel = platform.release()

    # ---- tracer lifecycle --------------------------------------------------------------------

    def start_tracer(self) -> bool:
        """Start (compile and attach) the tracer. On failure the snapshot's probes say why."""
        if self.tracer is None or self._tracer_started:
            return self._tracer_started
        try:
            self.tracer.start()
        except Exception as exc:  # the tracer should report via status; be safe anyway
            self._drop_tracer(ProbeStatus("unavailable", reason=exc_line(exc, typed=True)))
            return False
        self._tracer_started = True
        return True

    def poll_tracer(self, timeout_s: float) -> None:
        """Let the tracer drain its ring buffer for up to ``timeout_s``; else just wait."""
        tracer = self.tracer
        if tracer is None or not self._tracer_started:
            time.sleep(max(0.0, timeout_s))
            return
        try:
            tracer.poll(timeout_s)
        except Exception as exc:
            self._drop_tracer(ProbeStatus("unavailable", reason=exc_line(exc, typed=True)))

    def _drop_tracer(self, status: ProbeStatus) -> None:
        tracer, self.tracer = self.tracer, None
        self._tracer_started = False
        self.probe_status = status
        if tracer is not None:
            try:
                tracer.close()
            except Exception:
                pass  # already failing; the status above carries the first reason

    # ---- the tick ----------------------------------------------------------------------------

    def collect(self, probes: ProbeStatus | None = None) -> Snapshot:
        """One snapshot; the first call returns zero rates. ``probes`` overrides the status."""
        with self._lock:
            if self._closed:
                raise RuntimeError("collector is closed")
            return self._collect(probes)

    def _collect(self, probes_override: ProbeStatus | None) -> Snapshot:
        problems: dict[str, str] = {}
        devices = self._read_devices(problems)
        try:
            qdiscs = self._qdiscs.read()
        except Exception as exc:  # pyroute2's NetlinkError is a bare Exception subclass
            qdiscs = []
            problems["qdisc"] = f"rtnetlink qdisc dump failed: {exc_line(exc, typed=True)}"
        else:
            skipped = getattr(self._qdiscs, "problem", "")  # some messages did not decode
            if isinstance(skipped, str) and skipped:
                problems["qdisc"] = one_line(skipped)
        reading, probes = self._read_tracer()
        proc = self.proc_root
        softirqs = self._try(problems, "softirqs", lambda: read_softirqs(proc)) or {}
        cpu_times = self._try(problems, "stat", lambda: read_cpu_times(proc)) or {}
        online = sorted(cpu_times) or None  # /proc/stat lists online CPUs, by id
        softnet = self._try(problems, "softnet_stat", lambda: read_softnet_stat(proc, online))
        softnet = softnet or {}
        now_ns = self._clock()
        wall = time.time()

        prev = self._prev
        interval_s = max(0.0, (now_ns - prev.mono_ns) / 1e9) if prev is not None else 0.0
        raw = _Raw(
            mono_ns=now_ns,
            softirqs=softirqs,
            softnet=softnet,
            cpu_times=cpu_times,
            tracer_queues=_current_queues(reading.queues, devices) if reading else {},
            tracer_cpus=reading.cpus if reading else {},
            traced_s=reading.traced_s if reading else None,
            traced_late_s=reading.traced_late_s if reading else None,
        )
        old = prev if prev is not None else _Raw(mono_ns=now_ns)
        spans = _spans(raw, old, interval_s)

        packets = tuple(sorted(reading.packets, key=lambda p: p.first_ns)) if reading else ()
        self.latency.add(packets, now_ns)
        per_queue_latency = self.latency.per_queue()

        device_rows: list[DeviceRow] = []
        queue_rows: list[QueueRow] = []
        for dev in devices:
            qrows, root_kind = self._queue_rows(
                dev, qdiscs, raw, old, interval_s, spans, per_queue_latency, problems
            )
            queue_rows.extend(qrows)
            device_rows.append(self._device_row(dev, raw, old, interval_s, qrows, root_kind))

        cpu_rows = self._cpu_rows(raw, old, interval_s, spans, reading is not None)
        self._prev = raw

        if probes_override is not None:
            probes = probes_override
        elif reading is not None and raw.traced_s is not None and interval_s > 0:
            traced = 100.0 * spans.sampling_s / interval_s if spans.windowed else 100.0
            probes = dataclasses.replace(probes, traced_pct=round(min(100.0, traced), 1))
        if problems:
            probes = dataclasses.replace(probes, unavailable={**probes.unavailable, **problems})
        return Snapshot(
            host=self.host,
            kernel=self.kernel,
            time=wall,
            mono_ns=now_ns,
            interval_s=interval_s,
            mode="live",
            interfaces=tuple(d.name for d in devices),
            devices=tuple(device_rows),
            queues=tuple(queue_rows),
            cpus=tuple(cpu_rows),
            packets=packets,
            probes=probes,
            latency_ns=dict(self.latency.overall()),
        )

    @staticmethod
    def _try(problems: dict[str, str], what: str, read: Callable[[], _T]) -> _T | None:
        try:
            return read()
        except (OSError, ValueError) as exc:
            problems[what] = exc_line(exc, typed=True)
            return None

    def _read_devices(self, problems: dict[str, str]) -> list[NetDevice]:
        if self._fixed is not None:
            names = self._fixed
        else:
            try:  # re-listed every tick: devices come and go (one directory listing)
                listing = os.listdir(self.sysfs_root)
            except FileNotFoundError:
                listing = []
            except OSError as exc:
                problems["netdev"] = f"{self.sysfs_root}: {exc_line(exc, typed=True)}"
                listing = []
            # Only names the kernel could have made reach a path (a fake tree may hold others).
            names = order_interfaces(n for n in listing if is_valid_ifname(n))
        out = []
        failed: list[str] = []
        for name in names:
            try:
                dev = read_device(name, self.sysfs_root)  # None: vanished, or no TX queues
            except (OSError, ValueError) as exc:  # unreadable or garbage: skip it, say why
                failed.append(f"{name}: {exc_line(exc, typed=True)}")
                continue
            if dev is not None:
                out.append(dev)
        if failed:
            problems["netdev"] = _summary(failed)
        return out

    def _read_tracer(self) -> tuple[TracerReading | None, ProbeStatus]:
        tracer = self.tracer
        if tracer is None:
            return None, self.probe_status
        if not self._tracer_started:
            return None, PROBES_STARTING
        try:
            reading = tracer.read()
        except Exception as exc:
            self._drop_tracer(ProbeStatus("unavailable", reason=exc_line(exc, typed=True)))
            return None, self.probe_status
        return reading, reading.status

    # ---- rows --------------------------------------------------------------------------------

    def _queue_rows(
        self,
        dev: NetDevice,
        qdiscs: list[QdiscInfo],
        raw: _Raw,
        old: _Raw,
        interval_s: float,
        spans: _Spans,
        latency: Mapping[tuple[int, int], Mapping],
        problems: dict[str, str],
    ) -> tuple[list[QueueRow], str | None]:
        n_queues = max(dev.tx_queues) + 1
        mapped = map_qdiscs_to_queues(qdiscs, dev.ifindex, n_queues)
        root = root_qdisc(qdiscs, dev.ifindex)
        probe_devs = {k[0] for k in raw.tracer_queues}
        rows = []
        bql_failed: list[str] = []
        for queue in dev.tx_queues:
            try:
                bql = read_bql(dev.name, queue, self.sysfs_root)
            except (OSError, ValueError) as exc:  # one unreadable queue must not end the tick
                bql = None
                bql_failed.append(f"{dev.name} tx-{queue}: {exc_line(exc, typed=True)}")
            qdisc = mapped.get(queue)
            if qdisc is not None:
                qdisc = self._qdisc_rates(dev.ifindex, qdisc, raw, old, interval_s)
            tx = self._tx_stats(dev.ifindex, queue, qdisc, raw, old, interval_s, spans, probe_devs)
            rows.append(
                QueueRow(
                    dev=dev.name,
                    ifindex=dev.ifindex,
                    queue=queue,
                    bql=bql,
                    qdisc=qdisc,
                    tx=tx,
                    latency_ns=dict(latency.get((dev.ifindex, queue), {})),
                )
            )
        if bql_failed:
            earlier = problems.get("bql")
            problems["bql"] = _summary(([earlier] if earlier else []) + bql_failed)
        return rows, root.kind if root is not None else None

    @staticmethod
    def _qdisc_key(ifindex: int, q: QdiscStats) -> tuple[int, str, str, str]:
        # A replaced qdisc gets a new handle (or kind): its counters start a new series.
        return (ifindex, q.handle, q.parent, q.kind)

    def _qdisc_rates(
        self, ifindex: int, q: QdiscStats, raw: _Raw, old: _Raw, interval_s: float
    ) -> QdiscStats:
        key = self._qdisc_key(ifindex, q)
        counters = (q.bytes, q.packets, q.drops, q.requeues)
        raw.qdiscs[key] = counters
        before = old.qdiscs.get(key)
        if before is None:
            return q
        # drops/requeues are u32 in TCA_STATS_QUEUE (struct gnet_stats_queue)
        return dataclasses.replace(
            q,
            drops_per_s=rate(before[2], q.drops, interval_s, U32),
            requeues_per_s=rate(before[3], q.requeues, interval_s, U32),
        )

    def _tx_stats(
        self,
        ifindex: int,
        queue: int,
        qdisc: QdiscStats | None,
        raw: _Raw,
        old: _Raw,
        interval_s: float,
        spans: _Spans,
        probe_devs: set[int],
    ) -> TxStats | None:
        key = (ifindex, queue)
        counters = raw.tracer_queues.get(key)
        if counters is None and ifindex in probe_devs:
            counters = QueueCounters()  # the tracer watches this device; no packets yet
        from_qdisc = None
        if qdisc is not None and qdisc.per_queue:
            # An mq child only sees this queue's packets: its dequeue counters are its rate.
            before = old.qdiscs.get(self._qdisc_key(ifindex, qdisc))
            from_qdisc = TxStats(
                pps=rate(before[1] if before else None, qdisc.packets, interval_s, U32),
                bps=8 * rate(before[0] if before else None, qdisc.bytes, interval_s),
                packets=qdisc.packets,
                bytes=qdisc.bytes,
                source="qdisc",
            )
        if counters is None:
            return from_qdisc
        # net_dev_start_xmit / net_dev_xmit / qdisc_dequeue counters from the BPF maps; they
        # grow only while the probes are attached (spans.late_s of this interval).
        b = old.tracer_queues.get(key)
        span = spans.late_s
        if spans.windowed and span <= 0:
            held = old.tx_held.get(key)  # no window this interval: the last estimate stands
            if held is not None:
                raw.tx_held[key] = held
                return held if from_qdisc is None else self._exact_rates(held, from_qdisc)
        tx = TxStats(
            pps=rate(b.packets if b else None, counters.packets, span),
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
        )
        if spans.windowed:
            raw.tx_held[key] = tx
            if from_qdisc is not None:
                return self._exact_rates(tx, from_qdisc)
        return tx

    @staticmethod
    def _exact_rates(probe: TxStats, qdisc: TxStats) -> TxStats:
        """Between trace windows an mq child's counters are still exact: its packet and byte
        rates replace the estimates; the probes add what only they see."""
        return dataclasses.replace(
            qdisc,
            gso_segs=probe.gso_segs,
            errors=probe.errors,
            stopped=probe.stopped,
            errors_per_s=probe.errors_per_s,
            stopped_per_s=probe.stopped_per_s,
        )

    @staticmethod
    def _device_row(
        dev: NetDevice,
        raw: _Raw,
        old: _Raw,
        interval_s: float,
        queues: list[QueueRow],
        root_kind: str | None,
    ) -> DeviceRow:
        key = (dev.name, dev.ifindex)  # a re-created device gets a new ifindex: no spike
        c = dev.counters
        raw.devices[key] = c
        b = old.devices.get(key)
        return DeviceRow(
            dev=dev.name,
            ifindex=dev.ifindex,
            tx_queues=len(dev.tx_queues),
            has_bql=any(q.bql is not None for q in queues),
            oper_state=dev.oper_state,
            root_qdisc=root_kind,
            tx_packets=c.tx_packets,
            tx_bytes=c.tx_bytes,
            tx_dropped=c.tx_dropped,
            tx_errors=c.tx_errors,
            tx_pps=rate(b.tx_packets if b else None, c.tx_packets, interval_s),
            tx_bps=8 * rate(b.tx_bytes if b else None, c.tx_bytes, interval_s),
        )

    @staticmethod
    def _cpu_rows(
        raw: _Raw, old: _Raw, interval_s: float, spans: _Spans, probing: bool
    ) -> list[CpuRow]:
        cpus = sorted(raw.cpu_times) or sorted(raw.softnet) or sorted(raw.softirqs)
        pct = softirq_time_pct(old.cpu_times, raw.cpu_times)
        span_ns = spans.sampling_s * 1e9
        rows = []
        for cpu in cpus:
            tx_rx = raw.softirqs.get(cpu)
            b_tx_rx = old.softirqs.get(cpu)
            sn = raw.softnet.get(cpu)
            b_sn = old.softnet.get(cpu)
            net_tx_time = net_rx_time = None
            if probing:
                # irq:softirq_entry -> softirq_exit time summed per CPU by the tracer, over the
                # time its probes were attached
                t = raw.tracer_cpus.get(cpu) or CpuSoftirqCounters()
                bt = old.tracer_cpus.get(cpu)
                held = old.cpu_held.get(cpu)
                if spans.windowed and span_ns <= 0 and held is not None:
                    net_tx_time, net_rx_time = held
                else:
                    net_tx_time = _share(bt.net_tx_ns if bt else None, t.net_tx_ns, span_ns)
                    net_rx_time = _share(bt.net_rx_ns if bt else None, t.net_rx_ns, span_ns)
                if spans.windowed:
                    raw.cpu_held[cpu] = (net_tx_time, net_rx_time)
            rows.append(
                CpuRow(
                    cpu=cpu,
                    net_tx_per_s=rate(
                        b_tx_rx[0] if b_tx_rx else None, tx_rx[0] if tx_rx else 0, interval_s, U32
                    ),
                    net_rx_per_s=rate(
                        b_tx_rx[1] if b_tx_rx else None, tx_rx[1] if tx_rx else 0, interval_s, U32
                    ),
                    softirq_pct=pct.get(cpu, 0.0),
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
                    net_tx_time_pct=net_tx_time,
                    net_rx_time_pct=net_rx_time,
                )
            )
        return rows

    # ---- shutdown ----------------------------------------------------------------------------

    def close(self) -> None:
        """Release the netlink socket and the tracer (BPF programs). Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            tracer, self.tracer = self.tracer, None
        try:
            self._qdiscs.close()
        finally:
            if tracer is not None:
                tracer.close()


def _current_queues(
    counters: Mapping[tuple[int, int], QueueCounters], devices: Sequence[NetDevice]
) -> dict[tuple[int, int], QueueCounters]:
    """The tracer's per-queue counters for queues that exist now. Its maps may still hold
    devices deleted long ago (or queues ethtool -L removed); kept as the previous reading,
    those would grow with every device that ever came and went."""
    present = {(d.ifindex, q) for d in devices for q in d.tx_queues}
    return {k: v for k, v in counters.items() if k in present}


def _share(before_ns: int | None, now_ns: int, interval_ns: float) -> float:
    """Percent of the interval spent in one softirq on one CPU (never below 0 or above 100)."""
    if before_ns is None or not interval_ns > 0:
        return 0.0
    delta = now_ns - before_ns if now_ns >= before_ns else now_ns
    return min(100.0, max(0.0, 100.0 * delta / interval_ns))


class LiveSource(SnapshotSource):
    """Runs a Collector on the source thread: compiles the probes there, then ticks.

    Sequence: a first snapshot at once (zero rates; probes "starting" while the BPF programs
    compile, so the UI can say so), the tracer start, a snapshot as soon as it is attached,
    then one per interval. Between ticks the tracer drains its ring buffer (``_poll``).
    """

    def __init__(self, collector: Collector, interval_s: float = 1.0, mode: str = "live") -> None:
        super().__init__(interval_s)
        self.mode = mode
        self.collector = collector
        self._close_lock = threading.Lock()
        self._closed = False

    def _emit(self) -> None:
        snap = self._produce()
        if snap is not None and self._sink is not None and not self.stopped:
            self._sink(snap)

    def _prepare(self) -> None:
        self._emit()
        if self.collector.tracer is not None and not self.stopped:
            self.collector.start_tracer()
            self._emit()

    def _poll(self, timeout_s: float) -> None:
        self.collector.poll_tracer(timeout_s)

    def _produce(self) -> Snapshot | None:
        try:
            snap = self.collector.collect()
        except RuntimeError:
            if self.stopped:  # stop() closed the collector while we were busy: not a crash
                return None
            raise
        if self.mode != "live":
            snap = dataclasses.replace(snap, mode=self.mode)
        return snap

    def _close(self) -> None:
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self.collector.close()
