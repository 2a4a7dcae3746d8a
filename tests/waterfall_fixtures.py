"""Shared by the waterfall tests: the constructed traces as a Snapshot, and a small host app."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.message import Message

from txtop.core.model import DeviceRow, PacketTrace, ProbeStatus, Snapshot
from txtop.tui.messages import FilterChanged, SamplingChanged
from txtop.tui.waterfall import Waterfall

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


class WaterfallApp(App[None]):
    """The waterfall alone, with the app's global freeze key, recording bubbled messages."""

    BINDINGS = [
        Binding("space", "freeze", "Freeze"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, snapshot: Snapshot | None = None, **waterfall: Any) -> None:
        super().__init__()
        self._initial = snapshot
        self._waterfall_args = waterfall
        self.messages: list[Message] = []

    def compose(self) -> ComposeResult:
        yield Waterfall(id="waterfall", **self._waterfall_args)

    def on_mount(self) -> None:
        wf = self.query_one(Waterfall)
        wf.focus()
        if self._initial is not None:
            wf.update_snapshot(self._initial)

    @property
    def waterfall(self) -> Waterfall:
        return self.query_one(Waterfall)

    def action_freeze(self) -> None:
        self.waterfall.set_frozen(not self.waterfall.frozen)

    def on_filter_changed(self, message: FilterChanged) -> None:
        self.messages.append(message)

    def on_sampling_changed(self, message: SamplingChanged) -> None:
        self.messages.append(message)
