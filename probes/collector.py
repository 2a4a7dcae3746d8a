"""The live collector: one Snapshot per tick from sysfs, rtnetlink, procfs and the BPF tracer.

This is the thin, kernel-facing half: it reads everything (probes/readers/*, the tracer), says
in ``probes.unavailable`` what could not be read, hands the readings to the pure merge
(core/merge.py ``merge_tick``) and keeps the merge's state for the next tick's rates.

Per tick it costs one directory listing per device, the device's four tx_* statistics files,
the BQL files of each TX queue, one RTM_GETQDISC dump for all devices, /proc/softirqs,
/proc/net/softnet_stat and /proc/stat once each, and one ``tracer.read()``.

Between ticks (``poll``) it samples every BQL queue's ``inflight`` and ``limit`` ``bql_hz``
times a second from files it keeps open (two preads per queue and sample; at 64 queues and the
default 50 Hz about 0.4% of one core, see tests/test_bql.py ``test_sampling_cost_64_queues``),
so each tick reports the interval's peak and mean bytes in flight, not one instant.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import socket
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, TypeVar

from txtop.core.bqlsample import BqlAccumulator
from txtop.core.bypass import BypassWindow
from txtop.core.config import ConfigReading, attach_config
from txtop.core.findings import FindingsEngine
from txtop.core.latency import LatencyWindow
from txtop.core.merge import TickState, in_namespace, merge_tick, probe_status, tick_packets
from txtop.core.model import BqlStats, DeviceRow, PacketTrace, ProbeStatus, QueueRow, Snapshot
from txtop.core.nsprobes import label_packets, namespace_reading, own_reading
from txtop.core.readings import CpuTimes, NetDevice, QdiscInfo, SoftnetRow, TickReadings
from txtop.core.source import SnapshotSource, TracerReading
from txtop.core.talkers import TalkerWindow
from txtop.core.text import exc_line, one_line
from txtop.probes.readers.bql import BqlSampleFiles, read_bql
from txtop.probes.readers.config import ConfigReader
from txtop.probes.readers.netdev import (
    SYSFS_NET,
    is_valid_ifname,
    order_interfaces,
    read_device,
    resolve_interfaces,
)
from txtop.probes.readers.netns import NetnsReading
from txtop.probes.readers.qdisc import QdiscReader
from txtop.probes.readers.softirq import PROC, read_cpu_times, read_softirqs, read_softnet_stat

_T = TypeVar("_T")

PROBES_OFF = ProbeStatus("off", reason="BPF probes not attached")
PROBES_STARTING = ProbeStatus("starting", reason="compiling probes...")

DEFAULT_BQL_HZ = 50.0  # BQL samples per second between ticks (--bql-hz; 0 = off)
MAX_BQL_HZ = 200.0


class Tracer(Protocol):
    """What the collector needs from probes/bpf/tracer.py."""

    @property
    def status(self) -> ProbeStatus: ...

    def start(self) -> None: ...

    def read(self) -> TracerReading: ...

    def poll(self, timeout_s: float) -> None: ...

    def close(self) -> None: ...


class QdiscSource(Protocol):
    def read(self) -> list[QdiscInfo]: ...

    def close(self) -> None: ...


class NamespaceSource(Protocol):
    """The devices of another network namespace (probes/readers/netns.py ``NetnsReader``)."""

    label: str
    ino: int  # the namespace's inode (net->ns.inum): how the probes key its devices

    def read(self) -> NetnsReading: ...

    def close(self) -> None: ...


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
    (tests). ``clock`` returns CLOCK_MONOTONIC ns. ``bql_hz``: BQL samples per second between
    ticks (``poll``), 0 = only the tick's own read.
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
        bql_hz: float = DEFAULT_BQL_HZ,
        namespaces: Sequence[NamespaceSource] = (),
        own_devices: bool = True,
    ) -> None:
        if not 0 <= bql_hz <= MAX_BQL_HZ:
            raise ValueError(f"bql_hz must be 0..{MAX_BQL_HZ:g}, got {bql_hz!r}")
        self.sysfs_root = Path(sysfs_root)
        self.proc_root = Path(proc_root)
        self._fixed: list[str] | None = (
            resolve_interfaces(interfaces, self.sysfs_root) if interfaces else None
        )
        # --netns: devices of other namespaces, read there; ``own_devices`` False shows none
        # of txtop's own namespace (--netns given and no -i before it).
        self.namespaces = list(namespaces)
        self._ns_prev: dict[str, TickState] = {}
        # Their probe data, per namespace label: latency and bypass windows keyed by (ifindex,
        # queue) as txtop's own, but within that namespace.
        self._ns_windows: dict[str, tuple[LatencyWindow, BypassWindow]] = {}
        if not own_devices and not interfaces:
            self._fixed = []
        self.tracer = tracer
        self.probe_status: ProbeStatus = PROBES_OFF
        self._tracer_started = False
        self._qdiscs: QdiscSource = qdisc_source if qdisc_source is not None else QdiscReader()
        # The knobs beside the numbers (probes/readers/config.py): read at start and on change.
        # Ioctls and netlink answer only for the running kernel, not for a fake tree.
        live = qdisc_source is None and self.sysfs_root == SYSFS_NET and self.proc_root == PROC
        self.config = ConfigReader(self.sysfs_root, self.proc_root, live=live)
        # What looks wrong (core/findings.py): every snapshot carries the findings after it.
        self.findings = FindingsEngine()
        self.latency = latency if latency is not None else LatencyWindow()
        self.bypass = BypassWindow(self.latency.window_s)  # qdisc bypass, over the same window
        self.talkers = TalkerWindow()  # top flows and processes per queue (estimates)
        self._clock = clock
        self._prev: TickState | None = None  # the last tick's counters, for rates
        self._lock = threading.Lock()
        self._closed = False
        # BQL between ticks: open files, the samples' accumulation, and when the next is due.
        self.bql_hz = float(bql_hz)
        self._bql_files = BqlSampleFiles(self.sysfs_root)
        self._bql_acc = BqlAccumulator()
        self._bql_due = 0.0  # time.monotonic() of the next sample
        self.bql_rounds = 0  # sampling rounds taken (every sampled queue read once each)
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

    def poll(self, timeout_s: float) -> None:
        """Spend ``timeout_s`` between ticks: sample BQL whenever a sample is due and let the
        tracer drain its ring buffer (or just wait) in between."""
        end = time.monotonic() + max(0.0, timeout_s)
        while True:
            now = time.monotonic()
            wait = end - now
            if self.bql_hz > 0 and len(self._bql_files):
                if now >= self._bql_due:
                    self.sample_bql()
                    period = 1.0 / self.bql_hz
                    # Keep the pace; after a stall (a slow tick, a suspend) start afresh.
                    self._bql_due = max(self._bql_due + period, now + period / 2)
                    now = time.monotonic()
                    wait = end - now
                wait = min(wait, self._bql_due - now)
            if end - now <= 0:
                return
            self.poll_tracer(max(0.0, wait))

    def sample_bql(self) -> int:
        """Read ``inflight`` and ``limit`` of every sampled queue once; how many were read."""
        with self._lock:
            if self._closed:
                return 0
            samples = self._bql_files.sample()
            add = self._bql_acc.add
            for key, inflight, limit in samples:
                add(key, inflight, limit)
            self.bql_rounds += 1
            return len(samples)

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
        problems: dict[str, str] = {}  # source -> why it could not be read this tick
        devices = self._read_devices(problems)
        qdiscs = self._read_qdiscs(problems)
        all_reading, status = self._read_tracer()
        reading = own_reading(all_reading) if all_reading is not None else None
        softirqs, softnet, cpu_times = self._read_proc(problems)
        now_ns = self._clock()
        wall = time.time()
        readings = TickReadings(
            mono_ns=now_ns,
            devices=tuple(devices),
            bql=self._read_bql(devices, problems),
            qdiscs=tuple(qdiscs),
            softirqs=softirqs,
            softnet=softnet,
            cpu_times=cpu_times,
            tracer=reading,
        )
        packets = tick_packets(reading)
        self.latency.add(packets, now_ns)
        self.bypass.add(packets, now_ns)
        # Without qdisc_enqueue every track would look like a bypass: then none is counted.
        bypass = None
        if reading is not None and "qdisc_enqueue" not in status.unavailable:
            bypass = self.bypass.per_queue()
        merged = merge_tick(readings, self._prev, self.latency.per_queue(), bypass)
        self._prev = merged.state
        device_rows, queue_rows = attach_config(
            merged.devices, merged.queues, self._read_config(devices, problems)
        )
        ns_names, ns_devices, ns_queues, ns_packets = self._read_namespaces(
            now_ns, problems, all_reading, status
        )
        device_rows, queue_rows = device_rows + ns_devices, queue_rows + ns_queues
        if ns_packets:
            packets = tuple(sorted(packets + ns_packets, key=lambda p: p.first_ns))
        self.talkers.add(packets, status, merged.interval_s, now_ns, merged.traced_pct)
        queue_rows = self.talkers.attach(queue_rows)
        snapshot = Snapshot(
            host=self.host,
            kernel=self.kernel,
            time=wall,
            mono_ns=now_ns,
            interval_s=merged.interval_s,
            mode="live",
            interfaces=tuple(d.name for d in devices) + ns_names,
            devices=device_rows,
            queues=queue_rows,
            cpus=merged.cpus,
            packets=packets,
            probes=probe_status(status, probes_override, merged.traced_pct, problems),
            latency_ns=dict(self.latency.overall()),
        )
        return self.findings.apply(snapshot)

    # ---- reading (every kernel-facing call of the tick) ---------------------------------------

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

    def _read_qdiscs(self, problems: dict[str, str]) -> list[QdiscInfo]:
        try:
            qdiscs = self._qdiscs.read()
        except Exception as exc:  # pyroute2's NetlinkError is a bare Exception subclass
            problems["qdisc"] = f"rtnetlink qdisc dump failed: {exc_line(exc, typed=True)}"
            return []
        skipped = getattr(self._qdiscs, "problem", "")  # some messages did not decode
        if isinstance(skipped, str) and skipped:
            problems["qdisc"] = one_line(skipped)
        return qdiscs

    def _read_proc(
        self, problems: dict[str, str]
    ) -> tuple[dict[int, tuple[int, int]], dict[int, SoftnetRow], dict[int, CpuTimes]]:
        proc = self.proc_root
        softirqs = self._try(problems, "softirqs", lambda: read_softirqs(proc)) or {}
        cpu_times = self._try(problems, "stat", lambda: read_cpu_times(proc)) or {}
        online = sorted(cpu_times) or None  # /proc/stat lists online CPUs, by id
        softnet = self._try(problems, "softnet_stat", lambda: read_softnet_stat(proc, online))
        return softirqs, softnet or {}, cpu_times

    def _read_bql(
        self, devices: Sequence[NetDevice], problems: dict[str, str]
    ) -> dict[tuple[str, int], BqlStats | None]:
        out: dict[tuple[str, int], BqlStats | None] = {}
        sampling = self.bql_hz > 0
        for dev in devices:
            failed: list[str] = []
            for queue in dev.tx_queues:
                try:
                    stats = read_bql(dev.name, queue, self.sysfs_root)
                except (OSError, ValueError) as exc:  # one unreadable queue must not end the tick
                    stats = None
                    failed.append(f"{dev.name} tx-{queue}: {exc_line(exc, typed=True)}")
                if stats is not None and sampling:
                    stats = self._bql_acc.summarize((dev.name, queue), stats)
                out[dev.name, queue] = stats
            if failed:
                earlier = problems.get("bql")
                problems["bql"] = _summary(([earlier] if earlier else []) + failed)
        if sampling:  # sample, until the next tick, the queues that have BQL now
            present = [key for key, stats in out.items() if stats is not None]
            self._bql_acc.retain(present)
            try:
                self._bql_files.sync(present)
            except ValueError as exc:  # a name no kernel would make (a fake tree)
                problems["bql"] = exc_line(exc, typed=True)
        return out

    def _read_config(
        self, devices: Sequence[NetDevice], problems: dict[str, str]
    ) -> ConfigReading | None:
        try:
            reading = self.config.current(devices)
        except (OSError, ValueError) as exc:  # the numbers must not stop for the knobs
            problems["config"] = exc_line(exc, typed=True)
            return None
        if self.config.problem:
            problems["config"] = one_line(self.config.problem)
        return reading

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

    def _read_namespaces(
        self,
        now_ns: int,
        problems: dict[str, str],
        reading: TracerReading | None,
        status: ProbeStatus,
    ) -> tuple[
        tuple[str, ...], tuple[DeviceRow, ...], tuple[QueueRow, ...], tuple[PacketTrace, ...]
    ]:
        """The devices of other network namespaces: read there, merged against their own
        previous tick (names and ifindexes repeat across namespaces), named "<ns>/<dev>",
        with the probes' counters and packets of that namespace (core/nsprobes.py)."""
        names: list[str] = []
        devices: list[DeviceRow] = []
        queues: list[QueueRow] = []
        packets: list[PacketTrace] = []
        for ns in self.namespaces:
            got = ns.read()
            problems.update(got.problems)
            sub = namespace_reading(reading, ns.ino) if reading is not None and ns.ino else None
            windows = self._ns_windows.get(ns.label)
            if windows is None:
                window_s = self.latency.window_s
                windows = self._ns_windows[ns.label] = (
                    LatencyWindow(window_s),
                    BypassWindow(window_s),
                )
            latency, bypass = windows
            ns_bypass = None
            if sub is not None:
                latency.add(sub.packets, now_ns)
                bypass.add(sub.packets, now_ns)
                if "qdisc_enqueue" not in status.unavailable:
                    ns_bypass = bypass.per_queue()
                packets += label_packets(ns.label, sub.packets)
            readings = TickReadings(
                mono_ns=now_ns, devices=got.devices, bql=got.bql, qdiscs=got.qdiscs, tracer=sub
            )
            merged = merge_tick(
                readings, self._ns_prev.get(ns.label), latency.per_queue(), ns_bypass
            )
            self._ns_prev[ns.label] = merged.state
            ns_devices, ns_queues = in_namespace(ns.label, merged.devices, merged.queues)
            names += [d.dev for d in ns_devices]
            devices += ns_devices
            queues += ns_queues
        return tuple(names), tuple(devices), tuple(queues), tuple(packets)

    # ---- shutdown ----------------------------------------------------------------------------

    def close(self) -> None:
        """Release the netlink socket and the tracer (BPF programs). Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            tracer, self.tracer = self.tracer, None
            self._bql_files.close()
        try:
            for ns in self.namespaces:
                ns.close()
            self.config.close()
            self._qdiscs.close()
        finally:
            if tracer is not None:
                tracer.close()


class LiveSource(SnapshotSource):
    """Runs a Collector on the source thread: compiles the probes there, then ticks.

    Sequence: a first snapshot at once (zero rates; probes "starting" while the BPF programs
    compile, so the UI can say so), the tracer start, a snapshot as soon as it is attached,
    then one per interval. Between ticks the collector samples BQL and the tracer drains its
    ring buffer (``_poll``).
    """

    def __init__(self, collector: Collector, interval_s: float = 1.0, mode: str = "live") -> None:
        super().__init__(interval_s)
        self.mode = mode
        self.collector = collector
        self._close_lock = threading.Lock()
        self._closed = False

    def _prepare(self) -> None:
        self._emit()
        if self.collector.tracer is not None and not self.stopped:
            self.collector.start_tracer()
            self._emit()

    def _poll(self, timeout_s: float) -> None:
        self.collector.poll(timeout_s)

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
