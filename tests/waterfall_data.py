"""The constructed waterfall traces (tests/data/traces) as packets and snapshots.

No Textual here, so that the waterfall's pure modules are tested without it
(tests/test_waterfall_rows.py); the Textual host app is in waterfall_fixtures.py.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from txtop.core.model import DeviceRow, PacketTrace, ProbeStatus, Snapshot

TRACES = Path(__file__).parent / "data" / "traces" / "waterfall.json"


def load_traces() -> dict[str, Any]:
    return json.loads(TRACES.read_text())


def trace_packets() -> list[PacketTrace]:
    return [PacketTrace(**p) for p in load_traces()["packets"]]


def make_snapshot(
    packets: list[PacketTrace],
    mono_ns: int,
    wall_s: float,
    every: int = 100,
    state: str = "running",
    reason: str = "",
) -> Snapshot:
    devices = (
        _device("lo", 1, False),
        _device("eth0", 2, True),
        _device("txl0", 7, False),
    )
    return Snapshot(
        host="test",
        kernel="6.18.0",
        time=wall_s,
        mono_ns=mono_ns,
        interval_s=1.0,
        mode="replay",
        interfaces=("eth0", "txl0", "lo"),
        devices=devices,
        queues=(),
        cpus=(),
        packets=tuple(packets),
        probes=ProbeStatus(
            state=state, reason=reason, sampling={"every": every, "max_per_s": 1000}
        ),
    )


def trace_snapshot() -> Snapshot:
    doc = load_traces()
    return make_snapshot(
        [PacketTrace(**p) for p in doc["packets"]],
        doc["mono_ns"],
        doc["time"],
        every=doc["sampling"]["every"],
    )


def _device(dev: str, ifindex: int, bql: bool) -> DeviceRow:
    return DeviceRow(dev, ifindex, 4, bql, "up", "mq", 0, 0, 0, 0, 0.0, 0.0)


def by_comm(comm: str, dev: str | None = None) -> PacketTrace:
    """The constructed packet sent by ``comm`` (on ``dev``)."""
    return next(p for p in trace_packets() if p.comm == comm and (dev is None or p.dev == dev))


def shifted(packets: list[PacketTrace], by_ns: int, pid: int | None = None) -> list[PacketTrace]:
    out = []
    for p in packets:
        changes: dict[str, object] = {"stages": {s: t + by_ns for s, t in p.stages.items()}}
        if pid is not None:
            changes["pid"] = pid
        out.append(dataclasses.replace(p, **changes))  # type: ignore[arg-type]
    return out


def later_snapshot(n: int, after_s: float = 1.0, pid: int = 77, **kw: Any) -> Snapshot:
    """A snapshot ``after_s`` after the traces' one with copies of its first ``n`` packets,
    sent by ``pid`` (so they are told apart from the originals)."""
    base = trace_snapshot()
    step = int(after_s * 1e9)
    packets = shifted(list(base.packets)[:n], step, pid=pid)
    return make_snapshot(packets, base.mono_ns + step, base.time + after_s, **kw)
