"""The panel widgets: thin Line-API shells over the pure builders of queues.py, cpus.py and
header.py. They hold the view state (sort order, header state) and draw; the layout is the
builders' job."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from textual.strip import Strip

from txtop.core.model import Snapshot
from txtop.tui.glyphs import glyphs_for

from .base import RoleStyled
from .cpus import SPARK_METRICS as CPU_SPARK_METRICS
from .cpus import cpu_view
from .format import Line, frag_len, line_text, truncate
from .header import HeaderState, header_lines, key_hint_line
from .queues import COLUMN_SETS, SORT_KEYS, queue_view, queues_title
from .queues import SPARK_METRICS as QUEUE_SPARK_METRICS
from .selection import HistoryRowsView


class QueuesPanel(HistoryRowsView):
    """Per (device, TX queue): BQL in flight vs. limit, the qdisc in front of it, rates, the
    history column; a selected queue for the history view."""

    sort_key: str = SORT_KEYS[0]
    column_set: str = "auto"
    hidden: tuple[str, ...] = ()  # the columns this width leaves out (named in the title)
    spark_metrics = QUEUE_SPARK_METRICS

    def rebuild(self) -> None:
        view = queue_view(
            self.snapshot,
            self.scrollable_content_region.width,
            self.sort_key,
            self.ascii_only,
            spark=self.spark_spec(),
            selected=self.shown_selection(),
            column_set=self.column_set,
        )
        self.set_targets(view.targets)
        self.set_lines([view.head], view.body)
        # The title names the sort order and the columns this width hides (the panel owns it:
        # only the panel knows its layout). Room: the width less the border's corners.
        room = max(0, self.size.width - 4)
        self.hidden = tuple(view.hidden)
        self.border_title = queues_title(self.sort_key, view.hidden, self.column_set, room)

    def set_sort(self, sort_key: str) -> None:
        self.sort_key = sort_key
        self.rebuild()

    def cycle_columns(self) -> str:
        """The next column set (``v``): which columns come first when some must be hidden."""
        names = list(COLUMN_SETS)
        index = names.index(self.column_set) if self.column_set in names else -1
        self.column_set = names[(index + 1) % len(names)]
        self.rebuild()
        return self.column_set


class CpusPanel(HistoryRowsView):
    """Per CPU: NET_TX/NET_RX softirq rates and time, the history column; a heat strip when
    rows don't fit; a selected CPU for the history view."""

    view: str = "list"
    spark_metrics = CPU_SPARK_METRICS

    def rebuild(self) -> None:
        region = self.scrollable_content_region
        view = cpu_view(
            self.snapshot,
            region.width,
            region.height,
            self.ascii_only,
            spark=self.spark_spec(),
            selected=self.shown_selection(),
        )
        self.view = view.view
        self.set_targets(view.targets)
        self.set_lines([view.head], view.body)


class HeaderBar(RoleStyled):
    """Two lines: where/what/how often, and the state of the BPF probes."""

    def __init__(self, state: HeaderState, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.state = state
        self.snapshot: Snapshot | None = None
        self._lines: list[Line] = []

    def set(self, snapshot: Snapshot | None = None, **changes: Any) -> None:
        if snapshot is not None:
            self.snapshot = snapshot
        if changes:
            self.state = dataclasses.replace(self.state, **changes)
        self._lines = []
        self.refresh()

    def text(self) -> list[str]:
        width = self.size.width or 80
        glyphs = glyphs_for(self.ascii_only)
        return [line_text(x) for x in header_lines(self.snapshot, self.state, width, glyphs)]

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if not self._lines or frag_len(self._lines[0]) != width:
            glyphs = glyphs_for(self.ascii_only)
            self._lines = header_lines(self.snapshot, self.state, width, glyphs)
        if y < len(self._lines):
            return self.strip(self._lines[y], width)
        return Strip.blank(width, self.rich_style)


class KeyHints(RoleStyled):
    """One line of the app's key hints. Static: unlike Textual's Footer it does not follow
    the focused widget, so the global keys stay visible at 80 columns (the waterfall shows
    its own keys in its legend, and ``?`` lists every key)."""

    def __init__(self, hints: Sequence[tuple[str, str]], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.hints = list(hints)

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if y == 0:
            ellipsis = glyphs_for(self.ascii_only).ellipsis
            return self.strip(truncate(key_hint_line(self.hints), width, ellipsis), width)
        return Strip.blank(width, self.rich_style)
