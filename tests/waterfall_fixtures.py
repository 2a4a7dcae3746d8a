"""Shared by the waterfall's Textual tests: a small host app (data in waterfall_data.py)."""

from __future__ import annotations

from typing import Any

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.message import Message

from txtop.core.model import Snapshot
from txtop.tui.messages import FilterChanged, SamplingChanged
from txtop.tui.waterfall import Waterfall


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
