"""Prometheus/OpenMetrics metrics from txtop snapshots (issue 14).

Two halves:

- ``MetricsHolder.publish(snapshot)`` runs on the thread that produces snapshots (the source's
  sink). It keeps the monotonic totals (exporters/accounting.py) and the latency histograms
  (exporters/histograms.py) and then swaps one immutable ``MetricsView`` (exporters/view.py)
  in with a single reference assignment. Only publishers take its lock.
- ``TxtopCollector.collect()`` runs on a scrape. It reads ``holder.view`` once (no lock: the
  view is never changed after it was published) and yields ``prometheus_client`` metric
  families (exporters/*_families.py); the exposition text is always written by
  ``prometheus_client``.

So a scrape never waits for the collector or the UI, and neither waits for a scrape.

How counters stay monotonic (u32 wraps, resets, re-created devices, replayed recordings) is
told in exporters/accounting.py. This requires every snapshot to be published, in order (wire
``publish`` into the source's sink, not into the UI's redraw).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType

from prometheus_client.core import Metric
from prometheus_client.registry import Collector, CollectorRegistry

from txtop.core.model import Snapshot
from txtop.exporters.accounting import (
    FORGET_AFTER,
    U32,
    Totals,
    account_cpus,
    account_probes,
    account_qdiscs,
    account_queues,
    qdisc_rows,
    usable_interval,
)
from txtop.exporters.cpu_families import cpu_families
from txtop.exporters.families import PREFIX, Families
from txtop.exporters.histograms import (
    BUCKET_BOUNDS_NS,
    BUCKET_LE,
    DEFAULT_HISTOGRAMS,
    HISTOGRAM_MODES,
    HistKey,
    Histogram,
    StageHistograms,
    bucket_index,
)
from txtop.exporters.probe_families import PROBE_STATES, histogram_families, probe_families
from txtop.exporters.queue_families import (
    bql_families,
    device_families,
    qdisc_families,
    transmit_families,
)
from txtop.exporters.self_families import (
    BpfProgram,
    ProcessFamilies,
    bpf_families,
    bpf_programs,
    headers_label,
    self_families,
    txtop_version,
)
from txtop.exporters.view import (
    CpuTotals,
    MetricsView,
    QdiscTotals,
    TxTotals,
    with_errors,
)


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
        self._totals = Totals()
        self._histograms = StageHistograms(histograms)
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
                    self._view = with_errors(old, self._errors)

    def _account(self, snap: Snapshot, rebase: bool = False) -> MetricsView:
        """``rebase``: a replay jump; no counter moves (exporters/accounting.py)."""
        self._publishes += 1
        tick = self._publishes
        totals = self._totals
        totals.rebasing = rebase
        interval = usable_interval(snap, rebase)
        qdiscs = account_qdiscs(totals, snap, tick)
        tx, stalls = account_queues(totals, snap, tick, interval)
        cpus = account_cpus(totals, snap, tick, interval)
        probes = account_probes(totals, snap.probes, tick)
        totals.rebasing = False
        hists = self._histograms
        if not rebase:
            hists.add(snap.packets)
        hists.keep_devices({d.dev for d in snap.devices} | {q.dev for q in snap.queues})
        totals.sweep(tick)
        return MetricsView(
            snapshot=snap,
            publishes=tick,
            qdiscs=MappingProxyType(qdiscs),
            tx=MappingProxyType(tx),
            bql_stalls=MappingProxyType(stalls),
            cpus=MappingProxyType(cpus),
            lost_events=probes.lost_events,
            skipped_runs=probes.skipped_runs,
            bql_stalls_detected=probes.bql_stalls_detected,
            sampled=MappingProxyType(hists.sampled()),
            histograms=MappingProxyType(hists.frozen()),
            histogram_labels=hists.labels,
            publish_errors=self._errors,
            headers=self._headers if self._headers is not None else headers_label(snap.probes),
        )


class TxtopCollector(Collector):
    """Yields txtop's metric families from the holder's latest view."""

    def __init__(self, holder: MetricsHolder) -> None:
        self._holder = holder
        self._process = ProcessFamilies()

    def collect(self) -> Iterator[Metric]:
        holder = self._holder
        view = holder.view  # one read: everything below comes from this one view
        fams = Families()
        self_families(fams, holder.version, view)
        if view is not None:
            _snapshot_families(fams, view)
        if holder.process:
            self._process.add_to(fams)
        if holder.proc_root is not None:
            bpf_families(fams, bpf_programs(holder.proc_root))
        yield from fams.out


def _snapshot_families(fams: Families, view: MetricsView) -> None:
    probe_families(fams, view)
    device_families(fams, view.snapshot)
    bql_families(fams, view)
    qdisc_families(fams, view)
    transmit_families(fams, view)
    cpu_families(fams, view)
    histogram_families(fams, view)


# The names this module gave before it was split (tests and callers import them from here).
__all__ = [
    "BUCKET_BOUNDS_NS",
    "BUCKET_LE",
    "DEFAULT_HISTOGRAMS",
    "FORGET_AFTER",
    "HISTOGRAM_MODES",
    "PREFIX",
    "PROBE_STATES",
    "U32",
    "BpfProgram",
    "CpuTotals",
    "HistKey",
    "Histogram",
    "MetricsHolder",
    "MetricsView",
    "QdiscTotals",
    "TxTotals",
    "TxtopCollector",
    "bpf_programs",
    "bucket_index",
    "headers_label",
    "qdisc_rows",
    "txtop_version",
]
