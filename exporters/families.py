"""Building the metric families of one scrape (scrape side).

Names follow node_exporter (``node_qdisc_*``, ``node_softnet_*``): prefix ``txtop_``, base units
(bytes, seconds), ``_total`` counters, the TX queue a label and never part of a name. The
exposition text is always written by ``prometheus_client`` from these families.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final, TypeVar

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

PREFIX: Final = "txtop"

M = TypeVar("M", bound=Metric)

QUEUE_LABELS: Final = ("device", "queue")
QDISC_LABELS: Final = ("device", "queue", "kind", "handle", "parent")


def metric_name(suffix: str) -> str:
    return f"{PREFIX}_{suffix}"


@dataclass(slots=True)
class Families:
    """Metric families being filled for one scrape, in a stable order."""

    out: list[Metric] = field(default_factory=list)

    def gauge(
        self, name: str, doc: str, labels: Iterable[str] = (), unit: str = ""
    ) -> GaugeMetricFamily:
        return self._add(GaugeMetricFamily(metric_name(name), doc, labels=list(labels), unit=unit))

    def counter(
        self, name: str, doc: str, labels: Iterable[str] = (), unit: str = ""
    ) -> CounterMetricFamily:
        return self._add(
            CounterMetricFamily(metric_name(name), doc, labels=list(labels), unit=unit)
        )

    def _add(self, fam: M) -> M:
        self.out.append(fam)
        return fam
