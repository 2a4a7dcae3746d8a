"""Per-stage latency percentiles over a sliding window of sampled packets (pure, no I/O).

Interface stub; the waterfall issue fills it in.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from .model import LatencyStats, PacketTrace


class LatencyWindow:
    """Keeps the packets of the last ``window_s`` seconds and summarises them."""

    def __init__(self, window_s: float = 10.0) -> None:
        self.window_s = window_s

    def add(self, packets: Iterable[PacketTrace], now_ns: int) -> None:
        pass

    def overall(self) -> Mapping[str, LatencyStats]:
        return {}

    def per_queue(self) -> Mapping[tuple[int, int], Mapping[str, LatencyStats]]:
        return {}
