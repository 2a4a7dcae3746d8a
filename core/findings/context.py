"""What rules see (``Context``: the newest snapshot, the window before it, which findings are
active) and the helpers they share: the weighted ``mean``, names quoted for shown commands,
rounding and rate text."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from txtop.core.finding import Subject
from txtop.core.findings.thresholds import RATE_WINDOW_S, SERIES_MAX
from txtop.core.model import CpuRow, DeviceRow, PacketTrace, QueueRow, Snapshot

QueueKey = tuple[str, int]
_R = TypeVar("_R")


# ---- the context rules see ----------------------------------------------------------------------


@dataclass
class Context:
    """The newest snapshot, the window before it, and which findings are active."""

    snaps: Sequence[Snapshot]  # oldest first; the last is the one being evaluated
    active_keys: frozenset[tuple[str, Subject]] = frozenset()
    _recent: list[Snapshot] | None = None
    _queues: dict[QueueKey, list[tuple[float, QueueRow]]] | None = None
    _cpus: dict[int, list[tuple[float, CpuRow]]] | None = None
    _first_queues: dict[QueueKey, QueueRow] | None = None
    _first_cpus: dict[int, CpuRow] | None = None

    @property
    def snap(self) -> Snapshot:
        return self.snaps[-1]

    def active(self, rule_id: str, subject: Subject) -> bool:
        return (rule_id, subject) in self.active_keys

    def recent(self) -> list[Snapshot]:
        """The snapshots of the rate window (RATE_WINDOW_S back from the newest)."""
        if self._recent is None:
            newest = self.snap.mono_ns
            self._recent = [s for s in self.snaps if newest - s.mono_ns < RATE_WINDOW_S * 1e9]
        return self._recent

    def sampled(self) -> list[tuple[float, Snapshot]]:
        """At most SERIES_MAX snapshots spread over the rate window (the newest always), each
        with the seconds it stands for: gauges and per-tick rates averaged over the window
        cost the same at a 0.1 s refresh as at 1 s."""
        recent = self.recent()
        step = max(1, -(-len(recent) // SERIES_MAX))
        picked = list(range(len(recent) - 1, -1, -step))[::-1]
        out = []
        previous = -1
        for index in picked:
            out.append((sum(s.interval_s for s in recent[previous + 1 : index + 1]), recent[index]))
            previous = index
        return out

    def queue_series(self, dev: str, queue: int) -> list[tuple[float, QueueRow]]:
        """(seconds, row) of one queue over the rate window (sampled), oldest first."""
        if self._queues is None:
            self._queues = {}
            for weight, s in self.sampled():
                for q in s.queues:
                    self._queues.setdefault((q.dev, q.queue), []).append((weight, q))
        return self._queues.get((dev, queue), [])

    def cpu_series(self, cpu: int) -> list[tuple[float, CpuRow]]:
        if self._cpus is None:
            self._cpus = {}
            for weight, s in self.sampled():
                for c in s.cpus:
                    self._cpus.setdefault(c.cpu, []).append((weight, c))
        return self._cpus.get(cpu, [])

    def _span_s(self) -> float:
        return (self.snap.mono_ns - self.recent()[0].mono_ns) / 1e9

    def queue_rate(self, q: QueueRow, counter: str) -> float:
        """A queue's rate over the rate window from its cumulative counter ("drops",
        "requeues" of its qdisc; "packets" sent): exact, and O(1) per queue. Falls back to
        the newest interval's rate when there is no earlier snapshot, the qdisc was replaced
        or the counter went back (a reset, a u32 wrap)."""
        if counter == "packets":
            fallback = q.tx.pps if q.tx is not None else 0.0
        else:
            fallback = float(getattr(q.qdisc, f"{counter}_per_s")) if q.qdisc is not None else 0.0
        if self._first_queues is None:
            self._first_queues = {(r.dev, r.queue): r for r in self.recent()[0].queues}
        old = self._first_queues.get((q.dev, q.queue))
        span = self._span_s()
        if old is None or span <= 0 or old is q:
            return fallback
        if counter == "packets":
            if old.tx is None or q.tx is None or old.tx.source != q.tx.source:
                return fallback
            a, b = old.tx.packets, q.tx.packets
        else:
            if old.qdisc is None or q.qdisc is None or old.qdisc.handle != q.qdisc.handle:
                return fallback
            a, b = getattr(old.qdisc, counter), getattr(q.qdisc, counter)
        return (b - a) / span if b >= a else fallback

    def cpu_rate(self, c: CpuRow, counter: str) -> float:
        """A CPU's rate from its cumulative softnet counter ("time_squeeze",
        "softnet_dropped") over the rate window, as ``queue_rate``."""
        fallback = float(getattr(c, f"{counter}_per_s"))
        if self._first_cpus is None:
            self._first_cpus = {r.cpu: r for r in self.recent()[0].cpus}
        old = self._first_cpus.get(c.cpu)
        span = self._span_s()
        if old is None or span <= 0 or old is c:
            return fallback
        a, b = getattr(old, counter), getattr(c, counter)
        return (b - a) / span if b >= a else fallback

    def packets(self, dev: str | None = None) -> list[PacketTrace]:
        return [p for s in self.recent() for p in s.packets if dev is None or p.dev == dev]

    def device(self, dev: str) -> DeviceRow | None:
        return next((d for d in self.snap.devices if d.dev == dev), None)

    def sysctl(self, name: str) -> str | None:
        for d in self.snap.devices:
            if d.config is not None and name in d.config.sysctl:
                return d.config.sysctl[name]
        return None


def mean(series: Iterable[tuple[float, _R]], get: Callable[[_R], float | None]) -> float:
    """Interval-weighted mean of ``get(row)`` (rows where it is None are left out)."""
    total_w = total = 0.0
    for weight, row in series:
        value = get(row)
        if value is None:
            continue
        w = weight if weight > 0 else 0.0
        total_w += w
        total += w * value
    return total / total_w if total_w else 0.0


def _arg(text: object) -> str:
    """A name for a shown shell command: printable and quoted (it may come from a recording)."""
    return shlex.quote("".join(c if c.isprintable() else "?" for c in str(text)))


def _dev(dev: str) -> str:
    """The device's own name for a command: a device of another namespace is "<netns>/<name>"
    in the snapshot (--netns); the command then runs inside it (``_ns``)."""
    return _arg(dev.partition("/")[2] if "/" in dev else dev)


def _ns(dev: str, command: str) -> str:
    """``command`` about ``dev``, run in the device's network namespace when it is another's
    (its label: an ``ip netns`` name, or "pid<N>" for a namespace named by a process)."""
    if "/" not in dev:
        return command
    label = dev.partition("/")[0]
    if label.startswith("pid") and label[3:].isdigit():
        return f"nsenter -t {label[3:]} -n {command}"
    return f"ip netns exec {_arg(label)} {command}"


def _round(value: float, digits: int = 2) -> float:
    return round(float(value), digits)


def _rate(value: float) -> str:
    return f"{value:.1f}" if value < 10 else f"{value:.0f}"
