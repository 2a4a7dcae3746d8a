"""What the command line needs from the BPF tracer, without reaching into ``probes/bpf``.

The UI layer may not import bcc or the BPF loader (import-linter contract in pyproject.toml):
it asks here whether the probes can run, builds a tracer from plain settings, and changes a
running tracer's sampling and kernel filter through ``TracerControl``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from txtop.core.filters import FilterSpec, FlowFilter
from txtop.probes.bpf.tracer import MAX_SAMPLE_EVERY, MAX_SAMPLES_PER_S, Tracer

__all__ = [
    "MAX_SAMPLE_EVERY",
    "MAX_SAMPLES_PER_S",
    "Tracer",
    "TracerControl",
    "TracerSettings",
    "make_tracer",
    "probe_unavailable_reason",
]


def probe_unavailable_reason() -> str | None:
    """Why the BPF probes cannot run here (one line), or None when they can."""
    from txtop.probes.bpf.tracer import probe_prerequisites

    reason: str | None = probe_prerequisites()
    return reason


@dataclass(frozen=True, slots=True)
class TracerSettings:
    """The tracer's start-up settings as the command line gives them (None: the default)."""

    ifindexes: list[int] | None = None
    pids: list[int] | None = None
    sample_every: int | None = None
    max_samples_per_s: int | None = None
    trace_duty: float | None = None  # share of the time attached; None = auto
    flow: FlowFilter | None = None  # --proto/--port/--host: checked at the sampling decision
    # --netns: devices of other namespaces in the interface filter, (netns inode, ifindex),
    # and the namespaces (inodes) whose devices' per-queue counters are read
    devices: list[tuple[int, int]] | None = None
    namespaces: list[int] | None = None


def make_tracer(settings: TracerSettings) -> Tracer:
    """A Tracer (not started: the live source compiles and attaches it on its own thread).
    Raises ValueError for a setting the tracer refuses."""
    kwargs: dict[str, object] = {"ifindexes": settings.ifindexes, "pids": settings.pids}
    if settings.sample_every is not None:
        kwargs["sample_every"] = settings.sample_every
    if settings.max_samples_per_s is not None:
        kwargs["max_samples_per_s"] = settings.max_samples_per_s
    if settings.trace_duty is not None:
        kwargs["trace_duty"] = settings.trace_duty
    if settings.flow is not None and not settings.flow.empty:
        kwargs["flow"] = settings.flow
    if settings.devices:
        kwargs["devices"] = settings.devices
    if settings.namespaces:
        kwargs["namespaces"] = settings.namespaces
    return Tracer(**kwargs)  # type: ignore[arg-type]


class _Tunable(Protocol):
    """The run-time settings of a running tracer (probes/bpf/tracer.py Tracer)."""

    def set_sampling(self, every: int, max_per_s: int) -> None: ...

    def set_filters(
        self,
        ifindexes: list[int] | None = None,
        pids: list[int] | None = None,
        flow: FlowFilter | None = None,
    ) -> None: ...


class TracerControl:
    """TracerControls over a running tracer: the sampling rate, and the kernel part of the
    packet filter (waterfall keys), always within the command line's -i/--pid. The protocol,
    port and host part replaces the command line's (the filter prompt starts from it).

    An empty set means "everything" to the tracer, so a filter that would leave nothing
    (outside the command line's limits) keeps those limits; the waterfall still filters its
    own rows in user space.
    """

    def __init__(
        self,
        tracer: _Tunable,
        base_ifindexes: list[int] | None,
        base_pids: list[int] | None,
        base_flow: FlowFilter | None = None,
    ) -> None:
        self.tracer = tracer
        self.base_ifindexes = frozenset(base_ifindexes or ())
        self.base_pids = frozenset(base_pids or ())
        # A flow filter is in force (the command line's, or one set here): the next filter
        # replaces it, even with none. Without one, set_filters is called as before.
        self._flow_set = base_flow is not None and not base_flow.empty

    def set_sampling(self, every: int, max_per_s: int) -> None:
        self.tracer.set_sampling(every, max_per_s)

    def set_filter(self, spec: FilterSpec) -> None:
        from txtop.probes.readers.netdev import list_tx_interfaces, read_device

        names = {}
        for name in list_tx_interfaces():
            dev = read_device(name)
            if dev is not None:
                names[name] = dev.ifindex
        wanted = spec.kernel_filter(names)
        ifindexes = sorted(_narrow(self.base_ifindexes, wanted.ifindexes)) or None
        pids = sorted(_narrow(self.base_pids, wanted.pids)) or None
        if wanted.flow is None and not self._flow_set:
            self.tracer.set_filters(ifindexes=ifindexes, pids=pids)
            return
        self.tracer.set_filters(ifindexes=ifindexes, pids=pids, flow=wanted.flow)
        self._flow_set = wanted.flow is not None


def _narrow(base: frozenset[int], wanted: frozenset[int] | None) -> frozenset[int]:
    """The command line's set narrowed by the filter's (empty = no limit on either side)."""
    if not wanted:
        return base
    if not base:
        return wanted
    return (base & wanted) or base
