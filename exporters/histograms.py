"""Stage-latency histograms of the sampled packets (publisher side).

``StageHistograms.add`` counts each snapshot's sampled packets into power-of-two buckets, per
device and stage (``--metrics-histograms device``) or per device, TX queue and stage
(``queue``), and how many sampled packets ended each way (``txtop_sampled_packets_total``).
The counts only grow; a device that is no longer in the snapshot has its histograms dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from txtop.core.latency import intervals_ns
from txtop.core.model import TRACK_KINDS, PacketTrace

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

# The label names of the histogram series in each mode (the last one is always the stage).
_LABELS: Final[Mapping[str, tuple[str, ...]]] = {
    "none": (),
    "device": ("device", "stage"),
    "queue": ("device", "queue", "stage"),
}

HistKey = tuple[str, ...]  # (device, stage) or (device, queue, stage)


def bucket_index(ns: int) -> int:
    """Index of the first bucket whose upper bound (``BUCKET_BOUNDS_NS``) holds ``ns``."""
    if ns <= BUCKET_BOUNDS_NS[0]:
        return 0
    return min(((ns - 1) // 1000).bit_length(), _LAST_BUCKET)


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


class StageHistograms:
    """The running histograms and sampled-packet counts, for one publisher at a time."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self._counts: dict[HistKey, list[int]] = {}
        self._sums: dict[HistKey, float] = {}
        self._frozen: dict[HistKey, Histogram] = {}
        self._sampled: dict[str, int] = dict.fromkeys(TRACK_KINDS, 0)

    @property
    def labels(self) -> tuple[str, ...]:
        """The label names of the series (``()`` when histograms are off)."""
        return _LABELS.get(self.mode, ())

    def frozen(self) -> dict[HistKey, Histogram]:
        """A copy of the current histograms (each one immutable)."""
        return dict(self._frozen)

    def sampled(self) -> dict[str, int]:
        """A copy of the sampled-packet counts by how their track ended."""
        return dict(self._sampled)

    def add(self, packets: Iterable[PacketTrace]) -> None:
        """Count ``packets``: every one by its track, and its stage intervals into buckets."""
        touched: set[HistKey] = set()
        for packet in packets:
            if packet.track in self._sampled:
                self._sampled[packet.track] += 1
            base = self._base_key(packet)
            if base is None:
                continue
            for stage, ns in intervals_ns(packet).items():
                key = (*base, stage)
                self._count(key, ns)
                touched.add(key)
        for key in touched:
            self._frozen[key] = Histogram(tuple(self._counts[key]), self._sums[key])

    def _base_key(self, packet: PacketTrace) -> HistKey | None:
        """The labels before the stage, or None when the packet goes in no histogram."""
        if self.mode == "none":
            return None
        if self.mode == "queue":
            if packet.queue is None:
                return None  # never reached a TX queue: counted only per device
            return (packet.dev, str(packet.queue))
        return (packet.dev,)

    def _count(self, key: HistKey, ns: int) -> None:
        row = self._counts.get(key)
        if row is None:
            row = self._counts[key] = [0] * len(BUCKET_LE)
            self._sums[key] = 0.0
        row[bucket_index(ns)] += 1
        self._sums[key] += ns / 1e9

    def keep_devices(self, present: set[str]) -> None:
        """Drop the histograms of devices not in ``present``."""
        for gone in [k for k in self._frozen if k[0] not in present]:
            del self._frozen[gone], self._counts[gone], self._sums[gone]
