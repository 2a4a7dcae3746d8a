"""Why the waterfall has no rows, in the current state (pure).

An empty panel that only says "waiting" leaves the user to guess whether the probes are still
compiling, failed, filter everything out, are between trace windows, or simply see no traffic.
``empty_reason`` answers from the newest snapshot and the view's own state (its filter, how
many packets it received, the ``--pid`` values no process has); the panel shows the answer
where the rows would be.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from txtop.core.filters import FilterSpec
from txtop.core.model import Snapshot

# The probes' own filter (ProbeStatus.filters) as the options that set it.
_KERNEL_FILTER_FLAGS = (
    ("pids", "--pid"),
    ("proto", "--proto"),
    ("port", "--port"),
    ("host", "--host"),
)

def kernel_filter_text(filters: Mapping[str, Any]) -> str:
    """The probes' packet filter as the options that set it (``--pid 42 --port 5201``)."""
    parts = []
    for key, flag in _KERNEL_FILTER_FLAGS:
        for value in filters.get(key) or ():
            parts.append(f"{flag} {value}")
    return " ".join(parts)


def _has_traffic(snapshot: Snapshot) -> bool:
    if any(d.tx_pps > 0 for d in snapshot.devices):
        return True
    return any(q.tx is not None and q.tx.pps > 0 for q in snapshot.queues)


def _watched(snapshot: Snapshot) -> str:
    names = snapshot.interfaces or tuple(d.dev for d in snapshot.devices)
    shown = ", ".join(names[:4]) + (f" +{len(names) - 4}" if len(names) > 4 else "")
    return f" ({shown})" if shown else ""


def empty_reason(
    snapshot: Snapshot | None,
    view_filter: FilterSpec,
    received: int = 0,
    missing_pids: Collection[int] = (),
) -> str:
    """Why there is no row to show. ``received``: packets the view was given in all (before
    its filter); ``missing_pids``: ``--pid`` values no process had when txtop started."""
    if snapshot is None:
        return "waiting for the first snapshot"
    probes = snapshot.probes
    if probes.state == "starting":
        return "probes starting: compiling and loading the BPF program (a few seconds)"
    if probes.state == "off":
        why = f" ({probes.reason})" if probes.reason else " (--no-probes)"
        return f"no packet traces: probes off{why}"
    if probes.state != "running":
        why = f" ({probes.reason})" if probes.reason else ""
        return f"no packet traces: probes {probes.state}{why}"
    if received and not view_filter.empty:
        return f"no packet matches the filter: {view_filter.to_string()}  (/ to change)"
    pids = list(probes.filters.get("pids") or ())
    gone = [p for p in pids if p in missing_pids]
    if pids and len(gone) == len(pids):
        listed = " ".join(f"--pid {p}" for p in gone)
        return f"{listed}: no such process, so no packet of it can be sampled"
    if snapshot.replay is not None:
        at = snapshot.replay.at_s
        return f"no sampled packet in the recording up to {at:.1f} s  (> to seek forward)"
    if probes.traced_pct is not None and probes.traced_pct <= 0 and probes.trace_mode:
        mode = "auto duty" if probes.trace_mode == "auto" else "--trace-duty"
        duty = probes.trace_duty_pct
        period = probes.trace_period_s  # the tracer's window geometry (probes/bpf/duty.py)
        when = f"; windows come every ~{period:.0f} s" if period else ""
        share = f", traced {duty:g}% of the time" if duty is not None else ""
        return f"trace window closed ({mode}{share}){when}: packets come with the next one"
    kernel = kernel_filter_text(probes.filters)
    traffic = _has_traffic(snapshot)
    if kernel and traffic:
        return f"no packet matched the probes' filter {kernel} yet (other traffic is flowing)"
    if not traffic:
        return f"no traffic on the watched devices{_watched(snapshot)}"
    every = probes.sampling.get("every")
    sampled = f" (1 in {every} is traced)" if every else ""
    return f"probes running, no packet sampled yet{sampled}"
