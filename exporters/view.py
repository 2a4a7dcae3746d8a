"""What one scrape exports: ``MetricsView``, the latest snapshot and the totals up to it.

Built by ``MetricsHolder.publish`` (exporters/metrics.py) from the totals kept in
exporters/accounting.py and never changed afterwards, so scrapes read it without a lock.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from txtop.core.model import Snapshot
from txtop.exporters.histograms import HistKey, Histogram

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


def with_errors(view: MetricsView, errors: int) -> MetricsView:
    """``view`` with another count of failed publishes."""
    return dataclasses.replace(view, publish_errors=errors)
