"""Prometheus/OpenMetrics metrics from txtop snapshots (issue 14).

Two halves:

- ``MetricsHolder.publish(snapshot)`` runs on the thread that produces snapshots (the source's
  sink). It keeps the monotonic totals and the latency histograms and then swaps one immutable
  ``MetricsView`` in with a single reference assignment. Only publishers take its lock.
- ``TxtopCollector.collect()`` runs on a scrape. It reads ``holder.view`` once (no lock: the
  view is never changed after it was published) and yields ``prometheus_client`` metric
  families; the exposition text is always written by ``prometheus_client``.

So a scrape never waits for the collector or the UI, and neither waits for a scrape.

Names follow node_exporter (``node_qdisc_*``, ``node_softnet_*``): prefix ``txtop_``, base units
(bytes, seconds), ``_total`` counters, the TX queue a label and never part of a name.

Counters stay monotonic while txtop runs:

- Kernel counters the snapshot carries raw (qdisc packets/bytes/drops/requeues/overlimits,
  softnet dropped/times_squeezed, BQL stall_cnt, the probes' loss counters) advance by
  ``core.rates.counter_delta``: a u32 wrap (qdisc and softnet counters are u32) adds the wrapped
  delta; a decrease that is no wrap, or a new ifindex under the same name (a re-created device),
  adds the new value (what was counted since the restart).
- Per-queue transmit counters start at the snapshot's cumulative value and then advance by the
  snapshot's rate x interval. Those rates already went through core/merge.py (wraps, resets,
  re-created devices give no spike) and, below 100% trace duty, are the estimates extrapolated
  from trace windows, carried over intervals without a window: the probes' own counters only
  grow while attached, so the totals keep growing at the estimated rate between windows
  (``txtop_probe_traced_ratio`` < 1 says so).
- What the snapshot carries only as rates (NET_TX/NET_RX softirq counts, softnet processed,
  softirq time shares) is integrated from rate x interval, starting at 0 when txtop started.
  The HELP text of those metrics says so.

Replayed snapshots (``Snapshot.replay`` set: --replay, --demo without root) are exported as the
data of the frame being played, with counters that count what was played: a frame shown again
(pause, a speed change) is not counted twice, and a jump (a seek, a step back, the demo's
loop) moves no counter: the raw counters are taken as the new base and the jump frame's
packets (it carries the seconds before it for the waterfall) are left out of the histograms.
So counters stay monotonic however the recording is played, and rate() reads the recorded
rates while it plays forward at 1x (at 4x it reads four times them: the snapshots'
intervals are the recorded ones).

This requires every snapshot to be published, in order (wire ``publish`` into the source's
sink, not into the UI's redraw).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import threading
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import MappingProxyType
from typing import Final

import psutil
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from txtop.core.latency import INTERVALS, intervals_ns
from txtop.core.model import TRACK_KINDS, ProbeStatus, QueueRow, Snapshot
from txtop.core.rates import counter_delta

PREFIX: Final = "txtop"
U32: Final = 32  # qdisc packets/drops/requeues/overlimits and softnet_stat columns are u32

# --metrics-histograms: how finely the stage-latency histograms are split.
HISTOGRAM_MODES: Final = ("none", "device", "queue")
# "device": one histogram per device and stage (26 series each) is enough for fleet alerting
# and heatmaps; per queue it is 26 x 7 stages = 182 series per TX queue (11,648 for a 64-queue
# NIC, five times everything else txtop exports), and the 1-in-N samples spread over 64 queues
# are too few per queue for a stable p99. "queue" is for a few queues under investigation.
DEFAULT_HISTOGRAMS: Final = "device"

# Power-of-two bucket bounds, 1 us .. 4.194304 s (2^22 us), in nanoseconds and seconds.
BUCKET_BOUNDS_NS: Final = tuple(1000 << k for k in range(23))
BUCKET_LE: Final = (*(repr(ns / 1e9) for ns in BUCKET_BOUNDS_NS), "+Inf")
_LAST_BUCKET: Final = len(BUCKET_BOUNDS_NS)  # index of the +Inf bucket

PROBE_STATES: Final = ("running", "starting", "unavailable", "off")
# Totals not updated for this many publishes are forgotten (a device gone for good). One that
# comes back later starts again from its current value: a counter reset rate() handles.
FORGET_AFTER: Final = 600

HistKey = tuple[str, ...]  # (device, stage) or (device, queue, stage)


def bucket_index(ns: int) -> int:
    """Index of the first bucket whose upper bound (``BUCKET_BOUNDS_NS``) holds ``ns``."""
    if ns <= BUCKET_BOUNDS_NS[0]:
        return 0
    return min(((ns - 1) // 1000).bit_length(), _LAST_BUCKET)


def txtop_version() -> str:
    try:
        return metadata.version("txtop")
    except metadata.PackageNotFoundError:
        return "unknown"


_FALLBACK_HEADERS = re.compile(r"using (\S+) via BCC_KERNEL_SOURCE=")


def headers_label(probes: ProbeStatus) -> str:
    """Which kernel headers the probes were compiled against, from the probe status line:
    the fallback package's directory name (probes/bpf/headers.py ``HeaderPlan.notice``),
    ``user`` (BCC_KERNEL_SOURCE set by the user), ``kernel`` (the running kernel's own
    headers or kheaders), ``none`` (probes unavailable) or ``unknown``."""
    match = _FALLBACK_HEADERS.search(probes.notice)
    if match:
        return match.group(1)
    if "BCC_KERNEL_SOURCE=" in probes.notice:
        return "user"
    if probes.state == "running":
        return "kernel"
    if probes.state == "unavailable":
        return "none"
    return "unknown"


# ---- accumulation (publisher side) -------------------------------------------------------------


@dataclass(slots=True)
class _Track:
    raw: float  # the last raw value seen (cumulative counters), unused for integrated ones
    total: float  # the exported monotonic total
    epoch: Hashable  # what identifies one life of the raw counter (the ifindex)
    seen: int  # publish number of the last update


class _Totals:
    """Monotonic totals keyed by (metric, labels...), updated by one publisher at a time."""

    def __init__(self) -> None:
        self._tracks: dict[Hashable, _Track] = {}
        self.rebasing = False  # a replay jump is being accounted: raw values are new bases

    def __len__(self) -> int:
        return len(self._tracks)

    def cumulative(
        self,
        key: Hashable,
        raw: int,
        tick: int,
        *,
        width: int | None = None,
        epoch: Hashable = None,
    ) -> float:
        """A kernel counter given raw: start at its value, then add its deltas (none while
        ``rebasing``: the raw value only becomes the base the next delta is taken from)."""
        track = self._tracks.get(key)
        if track is None:
            self._tracks[key] = _Track(raw, float(raw), epoch, tick)
            return float(raw)
        if self.rebasing:
            delta = 0
        elif epoch != track.epoch:
            delta = raw if raw >= 0 else 0  # a new life (re-created device): counted since
        else:
            delta = counter_delta(int(track.raw), raw, width)
        track.total += delta
        track.raw, track.epoch, track.seen = raw, epoch, tick
        return track.total

    def integrated(self, key: Hashable, start: float, amount: float, tick: int) -> float:
        """A total known through rates: ``start`` the first time, then + ``amount`` (>= 0)."""
        track = self._tracks.get(key)
        if track is None:
            self._tracks[key] = _Track(0, float(start), None, tick)
            return float(start)
        if amount > 0 and math.isfinite(amount):
            track.total += amount
        track.seen = tick
        return track.total

    def forget_older_than(self, tick: int) -> None:
        stale = [k for k, t in self._tracks.items() if t.seen < tick]
        for key in stale:
            del self._tracks[key]


@dataclass(frozen=True, slots=True)
class Histogram:
    """Non-cumulative counts per bucket (``BUCKET_LE`` order, +Inf last) and the sum in s."""

    counts: tuple[int, ...]
    sum_s: float

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        running = 0
        for le, n in zip(BUCKET_LE, self.counts, strict=True):
            running += n
            out.append((le, float(running)))
        return out


QueueLabels = tuple[str, str]  # (device, queue)
QdiscLabels = tuple[str, str, str, str, str]  # (device, queue, kind, handle, parent)
BpfLabels = tuple[str, str]  # (id, tag)


@dataclass(frozen=True, slots=True)
class QdiscTotals:
    backlog_bytes: int
    backlog_pkts: int
    qlen: int
    packets: float
    bytes: float
    drops: float
    requeues: float
    overlimits: float


@dataclass(frozen=True, slots=True)
class TxTotals:
    packets: float
    bytes: float
    errors: float | None
    stopped: float | None


@dataclass(frozen=True, slots=True)
class CpuTotals:
    net_tx: float
    net_rx: float
    net_tx_s: float | None
    net_rx_s: float | None
    processed: float
    dropped: float
    squeezed: float


@dataclass(frozen=True, slots=True)
class MetricsView:
    """Everything one scrape exports: the latest snapshot and the totals up to it.

    Built by ``MetricsHolder.publish`` and never changed afterwards.
    """

    snapshot: Snapshot
    publishes: int
    qdiscs: Mapping[QdiscLabels, QdiscTotals]
    tx: Mapping[QueueLabels, TxTotals]
    bql_stalls: Mapping[QueueLabels, float]
    cpus: Mapping[int, CpuTotals]
    lost_events: float
    skipped_runs: float
    bql_stalls_detected: float | None
    sampled: Mapping[str, int]
    histograms: Mapping[HistKey, Histogram]
    histogram_labels: tuple[str, ...]
    publish_errors: int = 0
    headers: str = "unknown"


def qdisc_rows(snap: Snapshot) -> Iterator[tuple[QdiscLabels, QueueRow]]:
    """Each qdisc of the snapshot once, with its labels and the queue row carrying it.

    An mq/mqprio child serves its own queue. Any other root qdisc serves every TX queue of the
    device (the snapshot repeats it on each queue row): it is exported once, with the queue
    label set when the device has a single TX queue and empty otherwise, so that sums over
    queues do not count it once per queue.
    """
    n_queues = {d.dev: d.tx_queues for d in snap.devices}
    shared: set[tuple[str, str, str, str]] = set()
    for row in snap.queues:
        q = row.qdisc
        if q is None:
            continue
        if q.per_queue or n_queues.get(row.dev, 1) <= 1:
            queue = str(row.queue)
        else:
            ident = (row.dev, q.kind, q.handle, q.parent)
            if ident in shared:
                continue
            shared.add(ident)
            queue = ""
        yield (row.dev, queue, q.kind, q.handle, q.parent), row


class MetricsHolder:
    """The latest snapshot and the running totals, for any number of scrapers.

    ``publish(snapshot)`` from the producing thread (every snapshot, in order); scrapes read
    ``view``. ``histograms`` is one of ``HISTOGRAM_MODES``.
    """

    def __init__(
        self,
        histograms: str = DEFAULT_HISTOGRAMS,
        *,
        headers: str | None = None,
        version: str | None = None,
        process: bool = True,
        proc_root: Path | None = Path("/proc"),
    ) -> None:
        if histograms not in HISTOGRAM_MODES:
            raise ValueError(
                f"--metrics-histograms must be one of {', '.join(HISTOGRAM_MODES)}, "
                f"got {histograms!r}"
            )
        self.histogram_mode = histograms
        self.version = version if version is not None else txtop_version()
        self._headers = headers
        self.process = process
        self.proc_root = proc_root
        self._lock = threading.Lock()  # publishers only; readers never take it
        self._view: MetricsView | None = None
        self._publishes = 0
        self._replay_index: int | None = None  # the recording frame published last
        self._errors = 0
        self.last_error = ""
        self._totals = _Totals()
        self._hist_counts: dict[HistKey, list[int]] = {}
        self._hist_sums: dict[HistKey, float] = {}
        self._hist_frozen: dict[HistKey, Histogram] = {}
        self._sampled: dict[str, int] = dict.fromkeys(TRACK_KINDS, 0)
        self._collector = TxtopCollector(self)
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(self._collector)

    @property
    def view(self) -> MetricsView | None:
        """The latest published view (None before the first snapshot). Lock-free."""
        return self._view

    @property
    def collector(self) -> TxtopCollector:
        return self._collector

    @property
    def registry(self) -> CollectorRegistry:
        """A registry of its own holding only this holder's collector."""
        return self._registry

    def publish(self, snapshot: Snapshot) -> None:
        """Account one snapshot and make it the one scrapes see. Never raises: an error is
        counted (``txtop_exporter_publish_errors_total``) and the previous view stays."""
        with self._lock:
            try:
                rebase = False
                position = snapshot.replay
                if position is None:
                    self._replay_index = None
                elif position.index == self._replay_index and not position.jump:
                    return  # the same recorded frame shown again (paused, speed change)
                else:
                    rebase = position.jump and self._view is not None
                    self._replay_index = position.index
                self._view = self._account(snapshot, rebase)
            except Exception as exc:  # a bug here must not stop the source feeding the UI
                self._errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                old = self._view
                if old is not None:
                    self._view = _with_errors(old, self._errors)

    # -- one snapshot --

    def _account(self, snap: Snapshot, rebase: bool = False) -> MetricsView:
        """``rebase``: a replay jump; no counter moves (see the module docstring)."""
        self._publishes += 1
        tick = self._publishes
        totals = self._totals
        totals.rebasing = rebase
        interval = (
            snap.interval_s if snap.interval_s > 0 and math.isfinite(snap.interval_s) else 0.0
        )
        if rebase:
            interval = 0.0  # the integrated totals do not move either

        qdiscs: dict[QdiscLabels, QdiscTotals] = {}
        for labels, row in qdisc_rows(snap):
            q = row.qdisc
            assert q is not None
            epoch = row.ifindex  # a re-created device has a new ifindex: its counters restart
            qdiscs[labels] = QdiscTotals(
                backlog_bytes=q.backlog_bytes,
                backlog_pkts=q.backlog_pkts,
                qlen=q.qlen,
                packets=totals.cumulative(("qp", labels), q.packets, tick, width=U32, epoch=epoch),
                bytes=totals.cumulative(("qb", labels), q.bytes, tick, epoch=epoch),
                drops=totals.cumulative(("qd", labels), q.drops, tick, width=U32, epoch=epoch),
                requeues=totals.cumulative(
                    ("qr", labels), q.requeues, tick, width=U32, epoch=epoch
                ),
                overlimits=totals.cumulative(
                    ("qo", labels), q.overlimits, tick, width=U32, epoch=epoch
                ),
            )

        tx: dict[QueueLabels, TxTotals] = {}
        stalls: dict[QueueLabels, float] = {}
        for row in snap.queues:
            qlabels = (row.dev, str(row.queue))
            epoch = row.ifindex
            t = row.tx
            if t is not None:
                errors = stopped = None
                if t.errors is not None or t.errors_per_s is not None:
                    errors = totals.integrated(
                        ("te", qlabels), t.errors or 0, (t.errors_per_s or 0.0) * interval, tick
                    )
                if t.stopped is not None or t.stopped_per_s is not None:
                    stopped = totals.integrated(
                        ("ts", qlabels), t.stopped or 0, (t.stopped_per_s or 0.0) * interval, tick
                    )
                tx[qlabels] = TxTotals(
                    packets=totals.integrated(("tp", qlabels), t.packets, t.pps * interval, tick),
                    bytes=totals.integrated(("tb", qlabels), t.bytes, t.bps / 8 * interval, tick),
                    errors=errors,
                    stopped=stopped,
                )
            if row.bql is not None and row.bql.stall_cnt is not None:
                stalls[qlabels] = totals.cumulative(
                    ("bs", qlabels), row.bql.stall_cnt, tick, epoch=epoch
                )

        cpus: dict[int, CpuTotals] = {}
        for c in snap.cpus:
            key = c.cpu
            tx_s = rx_s = None
            if c.net_tx_time_pct is not None:
                tx_s = totals.integrated(("ct", key), 0, c.net_tx_time_pct / 100 * interval, tick)
            if c.net_rx_time_pct is not None:
                rx_s = totals.integrated(("cr", key), 0, c.net_rx_time_pct / 100 * interval, tick)
            cpus[key] = CpuTotals(
                net_tx=totals.integrated(("stx", key), 0, c.net_tx_per_s * interval, tick),
                net_rx=totals.integrated(("srx", key), 0, c.net_rx_per_s * interval, tick),
                net_tx_s=tx_s,
                net_rx_s=rx_s,
                processed=totals.integrated(
                    ("snp", key), 0, c.softnet_processed_per_s * interval, tick
                ),
                dropped=totals.cumulative(("snd", key), c.softnet_dropped, tick, width=U32),
                squeezed=totals.cumulative(("sns", key), c.time_squeeze, tick, width=U32),
            )

        probes = snap.probes
        lost = totals.cumulative(("pl",), probes.lost_events, tick)
        skipped = totals.cumulative(("ps",), probes.skipped_runs, tick)
        detected = None
        if probes.bql_stalls is not None:
            detected = totals.cumulative(("pb",), probes.bql_stalls, tick)

        totals.rebasing = False
        if not rebase:
            self._add_packets(snap)
        present = {d.dev for d in snap.devices} | {q.dev for q in snap.queues}
        for gone in [k for k in self._hist_frozen if k[0] not in present]:
            del self._hist_frozen[gone], self._hist_counts[gone], self._hist_sums[gone]
        if tick % 64 == 0:
            totals.forget_older_than(tick - FORGET_AFTER)

        hist_labels: tuple[str, ...] = ()
        if self.histogram_mode == "device":
            hist_labels = ("device", "stage")
        elif self.histogram_mode == "queue":
            hist_labels = ("device", "queue", "stage")
        return MetricsView(
            snapshot=snap,
            publishes=tick,
            qdiscs=MappingProxyType(qdiscs),
            tx=MappingProxyType(tx),
            bql_stalls=MappingProxyType(stalls),
            cpus=MappingProxyType(cpus),
            lost_events=lost,
            skipped_runs=skipped,
            bql_stalls_detected=detected,
            sampled=MappingProxyType(dict(self._sampled)),
            histograms=MappingProxyType(dict(self._hist_frozen)),
            histogram_labels=hist_labels,
            publish_errors=self._errors,
            headers=self._headers if self._headers is not None else headers_label(probes),
        )

    def _add_packets(self, snap: Snapshot) -> None:
        mode = self.histogram_mode
        touched: set[HistKey] = set()
        counts, sums = self._hist_counts, self._hist_sums
        for packet in snap.packets:
            if packet.track in self._sampled:
                self._sampled[packet.track] += 1
            if mode == "none":
                continue
            if mode == "queue":
                if packet.queue is None:
                    continue  # never reached a TX queue: counted only per device
                base: HistKey = (packet.dev, str(packet.queue))
            else:
                base = (packet.dev,)
            for stage, ns in intervals_ns(packet).items():
                key = (*base, stage)
                row = counts.get(key)
                if row is None:
                    row = counts[key] = [0] * len(BUCKET_LE)
                    sums[key] = 0.0
                row[bucket_index(ns)] += 1
                sums[key] += ns / 1e9
                touched.add(key)
        for key in touched:
            self._hist_frozen[key] = Histogram(tuple(counts[key]), sums[key])


def _with_errors(view: MetricsView, errors: int) -> MetricsView:
    return dataclasses.replace(view, publish_errors=errors)


# ---- BPF run time (kernel.bpf_stats_enabled) ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class BpfProgram:
    prog_id: int
    tag: str
    run_time_ns: int
    run_cnt: int


def bpf_programs(proc_root: Path) -> tuple[BpfProgram, ...]:
    """The BPF programs this process holds, with their run time, when the user has enabled
    ``kernel.bpf_stats_enabled`` (``()`` otherwise: the kernel then counts nothing)."""
    try:
        if (proc_root / "sys/kernel/bpf_stats_enabled").read_text().strip() != "1":
            return ()
        fds = os.listdir(proc_root / "self/fd")
    except OSError:
        return ()
    seen: dict[int, BpfProgram] = {}
    for fd in fds:
        try:
            if os.readlink(proc_root / "self/fd" / fd) != "anon_inode:bpf-prog":
                continue
            text = (proc_root / "self/fdinfo" / fd).read_text()
        except OSError:
            continue  # closed meanwhile
        fields = dict(
            (parts[0].rstrip(":"), parts[1])
            for parts in (line.split() for line in text.splitlines())
            if len(parts) >= 2
        )
        try:
            prog = BpfProgram(
                prog_id=int(fields["prog_id"]),
                tag=fields.get("prog_tag", ""),
                run_time_ns=int(fields.get("run_time_ns", "0")),
                run_cnt=int(fields.get("run_cnt", "0")),
            )
        except (KeyError, ValueError):
            continue
        seen[prog.prog_id] = prog
    return tuple(seen[k] for k in sorted(seen))


# ---- the collector (scrape side) ---------------------------------------------------------------


def _name(suffix: str) -> str:
    return f"{PREFIX}_{suffix}"


@dataclass(slots=True)
class _Families:
    """Metric families being filled for one scrape, in a stable order."""

    out: list[Metric] = field(default_factory=list)

    def gauge(
        self, name: str, doc: str, labels: Iterable[str] = (), unit: str = ""
    ) -> GaugeMetricFamily:
        fam = GaugeMetricFamily(_name(name), doc, labels=list(labels), unit=unit)
        self.out.append(fam)
        return fam

    def counter(
        self, name: str, doc: str, labels: Iterable[str] = (), unit: str = ""
    ) -> CounterMetricFamily:
        fam = CounterMetricFamily(_name(name), doc, labels=list(labels), unit=unit)
        self.out.append(fam)
        return fam


_QUEUE = ("device", "queue")
_QDISC = ("device", "queue", "kind", "handle", "parent")


class TxtopCollector(Collector):
    """Yields txtop's metric families from the holder's latest view."""

    def __init__(self, holder: MetricsHolder) -> None:
        self._holder = holder
        self._process: psutil.Process | None = None

    def collect(self) -> Iterator[Metric]:
        holder = self._holder
        view = holder.view  # one read: everything below comes from this one view
        fams = _Families()
        self._self_metrics(fams, view)
        if view is not None:
            _snapshot_metrics(fams, view)
        if holder.process:
            self._process_metrics(fams)
        if holder.proc_root is not None:
            _bpf_metrics(fams, bpf_programs(holder.proc_root))
        yield from fams.out

    def _self_metrics(self, fams: _Families, view: MetricsView | None) -> None:
        snap = view.snapshot if view is not None else None
        info = InfoMetricFamily(
            PREFIX,
            "txtop build and what it watches: version, running kernel, kernel headers the "
            "probes were compiled against.",
            labels=["version", "kernel", "headers"],
        )
        info.add_metric(
            [
                self._holder.version,
                snap.kernel if snap is not None else os.uname().release,
                view.headers if view is not None else "unknown",
            ],
            {},
        )
        fams.out.append(info)
        errors = fams.counter(
            "exporter_publish_errors",
            "Snapshots the exporter failed to account (it keeps the previous one; see txtop's log).",
        )
        errors.add_metric([], view.publish_errors if view is not None else 0)
        if snap is None:
            return
        fams.gauge(
            "snapshot_timestamp_seconds",
            "Wall-clock time (Unix epoch) at the end of the latest snapshot's interval.",
            unit="seconds",
        ).add_metric([], snap.time)
        fams.gauge(
            "snapshot_interval_seconds",
            "Length of the latest snapshot's interval.",
            unit="seconds",
        ).add_metric([], snap.interval_s)

    def _process_metrics(self, fams: _Families) -> None:
        try:
            if self._process is None:
                self._process = psutil.Process()
            proc = self._process
            with proc.oneshot():
                times = proc.cpu_times()
                rss = proc.memory_info().rss
        except psutil.Error:
            return
        fams.counter(
            "process_cpu_seconds",
            "CPU time (user + system) txtop itself has used, BPF programs run by the kernel "
            "excluded (see txtop_bpf_run_time_seconds_total).",
            unit="seconds",
        ).add_metric([], times.user + times.system)
        fams.gauge(
            "process_resident_memory_bytes",
            "Resident memory of the txtop process.",
            unit="bytes",
        ).add_metric([], rss)


def _bpf_metrics(fams: _Families, programs: tuple[BpfProgram, ...]) -> None:
    if not programs:
        return
    run_time = fams.counter(
        "bpf_run_time_seconds",
        "Time the kernel spent running each of txtop's BPF programs since kernel.bpf_stats_enabled "
        "was set (id and tag as `bpftool prog show` prints them).",
        ["id", "tag"],
        unit="seconds",
    )
    runs = fams.counter(
        "bpf_runs",
        "Runs of each of txtop's BPF programs since kernel.bpf_stats_enabled was set.",
        ["id", "tag"],
    )
    for p in programs:
        labels = [str(p.prog_id), p.tag]
        run_time.add_metric(labels, p.run_time_ns / 1e9)
        runs.add_metric(labels, p.run_cnt)


def _snapshot_metrics(fams: _Families, view: MetricsView) -> None:
    snap = view.snapshot
    _probe_metrics(fams, view)
    _device_metrics(fams, snap)
    _bql_metrics(fams, view)
    _qdisc_metrics(fams, view)
    _tx_metrics(fams, view)
    _cpu_metrics(fams, view)
    _histogram_metrics(fams, view)


def _probe_metrics(fams: _Families, view: MetricsView) -> None:
    probes = view.snapshot.probes
    state = fams.gauge(
        "probe_state",
        "1 for the state the BPF probes are in (running, starting, unavailable, off), 0 for the "
        "others.",
        ["state"],
    )
    for name in PROBE_STATES:
        state.add_metric([name], 1.0 if probes.state == name else 0.0)
    if probes.state not in PROBE_STATES:
        state.add_metric([probes.state], 1.0)
    # No traced_pct while running: the tracer does not window (always attached).
    if probes.traced_pct is not None:
        traced = probes.traced_pct / 100
    else:
        traced = 1.0 if probes.state == "running" else 0.0
    fams.gauge(
        "probe_traced_ratio",
        "Share (0..1) of the latest interval the per-packet probes were attached. Below 1, "
        "txtop_transmit_* and txtop_softirq_time_seconds_total grow at rates extrapolated "
        "from trace windows (estimates).",
        unit="ratio",
    ).add_metric([], traced)
    if probes.trace_duty_pct is not None:
        fams.gauge(
            "probe_trace_duty_ratio",
            "Share (0..1) of the time the per-packet probes are meant to be attached "
            "(--trace-duty; 1 = always).",
            unit="ratio",
        ).add_metric([], probes.trace_duty_pct / 100)
    every = probes.sampling.get("every")
    if every:
        fams.gauge(
            "probe_sample_every",
            "The probes sample 1 packet in this many for the latency histograms.",
        ).add_metric([], every)
    fams.counter(
        "probe_lost_events",
        "Events txtop's own pipeline lost: full ring buffer or track table, lost tracks.",
    ).add_metric([], view.lost_events)
    fams.counter(
        "probe_skipped_runs",
        "Tracepoint runs the kernel skipped because another BPF program was running on that CPU.",
    ).add_metric([], view.skipped_runs)
    if view.bql_stalls_detected is not None:
        fams.counter(
            "probe_bql_stalls",
            "napi:dql_stall_detected events (BQL saw a TX queue stall) since the probes started; "
            "the tracepoint names no queue (see txtop_bql_stalls_total).",
        ).add_metric([], view.bql_stalls_detected)
    sampled = fams.counter(
        "sampled_packets",
        "Sampled packets decoded, by how their track ended (complete, aged: still held when "
        "followed no longer, lost).",
        ["track"],
    )
    for track, n in view.sampled.items():
        sampled.add_metric([track], n)


def _device_metrics(fams: _Families, snap: Snapshot) -> None:
    queues = fams.gauge(
        "device_transmit_queues",
        "TX queues of each device txtop watches.",
        ["device"],
    )
    for d in snap.devices:
        queues.add_metric([d.dev], d.tx_queues)
    present = fams.gauge(
        "queue_info",
        "1 for every TX queue txtop watches (for dashboard variables and joins).",
        _QUEUE,
    )
    for row in snap.queues:
        present.add_metric([row.dev, str(row.queue)], 1.0)


def _bql_metrics(fams: _Families, view: MetricsView) -> None:
    rows = [r for r in view.snapshot.queues if r.bql is not None]
    if not rows:
        return
    doc = "Byte queue limits of the TX queue (/sys/class/net/<device>/queues/tx-<queue>/byte_queue_limits/"
    inflight = fams.gauge(
        "bql_inflight_bytes", f"Bytes in flight to the device. {doc}inflight).", _QUEUE, "bytes"
    )
    limit = fams.gauge(
        "bql_limit_bytes", f"Current limit on bytes in flight. {doc}limit).", _QUEUE, "bytes"
    )
    lmin = fams.gauge(
        "bql_limit_min_bytes", f"Lowest limit BQL may set. {doc}limit_min).", _QUEUE, "bytes"
    )
    lmax = fams.gauge(
        "bql_limit_max_bytes", f"Highest limit BQL may set. {doc}limit_max).", _QUEUE, "bytes"
    )
    hold = fams.gauge(
        "bql_hold_time_seconds",
        f"Time the limit is held before it may shrink. {doc}hold_time).",
        _QUEUE,
        "seconds",
    )
    thrs: GaugeMetricFamily | None = None
    smax: GaugeMetricFamily | None = None
    for r in rows:
        b = r.bql
        assert b is not None
        labels = [r.dev, str(r.queue)]
        inflight.add_metric(labels, b.inflight)
        limit.add_metric(labels, b.limit)
        lmin.add_metric(labels, b.limit_min)
        lmax.add_metric(labels, b.limit_max)
        hold.add_metric(labels, b.hold_time / 1000)
        if b.stall_thrs is not None:
            if thrs is None:
                thrs = fams.gauge(
                    "bql_stall_threshold_seconds",
                    f"Time without completions that counts as a stall. {doc}stall_thrs, kernels >= 6.10).",
                    _QUEUE,
                    "seconds",
                )
            thrs.add_metric(labels, b.stall_thrs / 1000)
        if b.stall_max is not None:
            if smax is None:
                smax = fams.gauge(
                    "bql_stall_max_seconds",
                    f"Longest stall seen. {doc}stall_max, kernels >= 6.10).",
                    _QUEUE,
                    "seconds",
                )
            smax.add_metric(labels, b.stall_max / 1000)
    if view.bql_stalls:
        stalls = fams.counter(
            "bql_stalls",
            f"Stalls BQL detected on the TX queue. {doc}stall_cnt, kernels >= 6.10).",
            _QUEUE,
        )
        for (dev, queue), value in view.bql_stalls.items():
            stalls.add_metric([dev, queue], value)


def _qdisc_metrics(fams: _Families, view: MetricsView) -> None:
    if not view.qdiscs:
        return
    note = (
        " The qdisc serving the TX queue: an mq/mqprio child, or the root qdisc, which serves "
        "every TX queue of the device (queue label empty when there are several)."
    )
    backlog_b = fams.gauge(
        "qdisc_backlog_bytes", "Bytes waiting in the qdisc." + note, _QDISC, "bytes"
    )
    backlog_p = fams.gauge("qdisc_backlog_packets", "Packets waiting in the qdisc." + note, _QDISC)
    qlen = fams.gauge(
        "qdisc_current_queue_length", "The qdisc's queue length (qlen)." + note, _QDISC
    )
    for labels, totals in view.qdiscs.items():
        backlog_b.add_metric(list(labels), totals.backlog_bytes)
        backlog_p.add_metric(list(labels), totals.backlog_pkts)
        qlen.add_metric(list(labels), totals.qlen)
    mono = " Monotonic across u32 wraps and re-created devices."
    families: tuple[tuple[str, str, str, Callable[[QdiscTotals], float]], ...] = (
        ("qdisc_packets", "Packets the qdisc sent.", "", lambda t: t.packets),
        ("qdisc_bytes", "Bytes the qdisc sent.", "bytes", lambda t: t.bytes),
        ("qdisc_drops", "Packets the qdisc dropped.", "", lambda t: t.drops),
        (
            "qdisc_requeues",
            "Packets dequeued, not transmitted, and requeued.",
            "",
            lambda t: t.requeues,
        ),
        (
            "qdisc_overlimits",
            "Times the qdisc was over its limit (shaping delayed or dropped a packet).",
            "",
            lambda t: t.overlimits,
        ),
    )
    for name, doc, unit, get in families:
        fam = fams.counter(name, doc + note + mono, _QDISC, unit)
        for labels, totals in view.qdiscs.items():
            fam.add_metric(list(labels), get(totals))


def _tx_metrics(fams: _Families, view: MetricsView) -> None:
    if not view.tx:
        return
    est = (
        " Starts at the probes' (or the mq child qdisc's) count and grows by txtop's rate x "
        "interval: estimated from trace windows when txtop_probe_traced_ratio < 1."
    )
    packets = fams.counter(
        "transmit_packets",
        "Packets handed to the driver on the TX queue (net_dev_start_xmit)." + est,
        _QUEUE,
    )
    bytes_ = fams.counter(
        "transmit_bytes", "Bytes handed to the driver on the TX queue." + est, _QUEUE, "bytes"
    )
    errors = fams.counter(
        "transmit_errors",
        "Driver transmits on the TX queue that did not return NETDEV_TX_OK (net_dev_xmit)." + est,
        _QUEUE,
    )
    stopped = fams.counter(
        "transmit_stopped",
        "Dequeues that found the TX queue stopped (XOFF: driver or BQL full)." + est,
        _QUEUE,
    )
    for (dev, queue), t in view.tx.items():
        labels = [dev, queue]
        packets.add_metric(labels, t.packets)
        bytes_.add_metric(labels, t.bytes)
        if t.errors is not None:
            errors.add_metric(labels, t.errors)
        if t.stopped is not None:
            stopped.add_metric(labels, t.stopped)


def _cpu_metrics(fams: _Families, view: MetricsView) -> None:
    if not view.cpus:
        return
    integ = " Integrated by txtop from its per-interval rates, from 0 when txtop started."
    softirqs = fams.counter(
        "softirqs",
        "NET_TX and NET_RX softirqs raised on the CPU (/proc/softirqs)." + integ,
        ["cpu", "type"],
    )
    time_s = fams.counter(
        "softirq_time_seconds",
        "Time the CPU spent in NET_TX and NET_RX softirqs (irq:softirq_entry/exit, from the "
        "probes; estimated from trace windows when txtop_probe_traced_ratio < 1)." + integ,
        ["cpu", "type"],
        "seconds",
    )
    processed = fams.counter(
        "softnet_processed",
        "Packets processed by the CPU's backlog (/proc/net/softnet_stat column 1)." + integ,
        ["cpu"],
    )
    dropped = fams.counter(
        "softnet_dropped",
        "Packets dropped because the CPU's backlog was full (/proc/net/softnet_stat column 2; monotonic across u32 wraps).",
        ["cpu"],
    )
    squeezed = fams.counter(
        "softnet_times_squeezed",
        "Times net_rx_action ran out of budget or time with work left (/proc/net/softnet_stat column 3; monotonic across u32 wraps).",
        ["cpu"],
    )
    for cpu, t in view.cpus.items():
        c = str(cpu)
        softirqs.add_metric([c, "NET_TX"], t.net_tx)
        softirqs.add_metric([c, "NET_RX"], t.net_rx)
        if t.net_tx_s is not None:
            time_s.add_metric([c, "NET_TX"], t.net_tx_s)
        if t.net_rx_s is not None:
            time_s.add_metric([c, "NET_RX"], t.net_rx_s)
        processed.add_metric([c], t.processed)
        dropped.add_metric([c], t.dropped)
        squeezed.add_metric([c], t.squeezed)


def _histogram_metrics(fams: _Families, view: MetricsView) -> None:
    if not view.histogram_labels:
        return
    fam = HistogramMetricFamily(
        _name("stage_latency_seconds"),
        "Time between TX-path stages of SAMPLED packets (counts are samples, 1 in "
        "txtop_probe_sample_every, not packets): stack, enqueue, qdisc, dequeue, driver, "
        "completion, and total (first to last stage of complete tracks).",
        labels=list(view.histogram_labels),
        unit="seconds",
    )
    order = {name: i for i, name in enumerate(INTERVALS)}
    for key in sorted(view.histograms, key=lambda k: (k[:-1], order.get(k[-1], 99), k[-1])):
        hist = view.histograms[key]
        fam.add_metric(list(key), hist.cumulative(), hist.sum_s)
    fams.out.append(fam)
