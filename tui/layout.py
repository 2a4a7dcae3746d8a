"""How the dashboard shares the terminal's rows between its panels.

``panel_heights`` is the pure rule; ``PanelLayout`` applies it to the app's containers when the
terminal is resized or a snapshot changes what the tables need.
"""

from __future__ import annotations

from textual.app import App
from textual.widgets import Static

from txtop.core.model import Snapshot
from txtop.tui.findings_text import strip_rows
from txtop.tui.panels import cpu_list_rows, heat_rows, queue_body_rows

MIN_WIDTH = 80
MIN_HEIGHT = 24
WIDE_WIDTH = 160  # from here the queues and softirq panels sit side by side
HEADER_LINES = 2
FOOTER_LINES = 1

Heights = dict[str, int | str]  # container selector -> rows, "auto" or "1fr"


def panel_heights(snap: Snapshot | None, width: int, height: int) -> Heights:
    """Each panel gets what it needs up to a fair share; the waterfall keeps at least a
    third and gets whatever is left. The findings strip (#findings, under the header) takes
    its rows first: one per finding, at most 2 at 24 rows (findings_text.strip_capacity), so
    at 80x24 the panels still get at least 4 rows each and the waterfall 6."""
    strip = strip_rows(snap, height)
    avail = height - HEADER_LINES - FOOTER_LINES - strip
    wide = width >= WIDE_WIDTH
    cpu_width = (width * 45 // 100 if wide else width) - 1
    n_cpus = len(snap.cpus) if snap is not None else 0
    q_need = 2 + queue_body_rows(snap)  # title + column header + rows
    c_list = 2 + cpu_list_rows(snap)
    c_heat = 2 + heat_rows(n_cpus, cpu_width) if n_cpus else c_list
    budget = avail - max(6, avail // 3)
    if wide:
        c_pref = c_list if c_list <= budget else c_heat
        return {
            "#findings": strip,
            "#top": max(5, min(budget, max(q_need, c_pref))),
            "#queues": "1fr",
            "#cpus": "1fr",
        }
    if q_need + c_list <= budget:
        q, c = q_need, c_list
    else:
        c_pref = c_list if c_list <= budget // 2 else c_heat
        c = max(4, min(c_pref, budget - 4))
        q = max(4, min(q_need, budget - c))
        c = max(c, min(c_pref, budget - q))  # hand back rows the queues do not use
    return {"#findings": strip, "#top": "auto", "#queues": q, "#cpus": c}


class PanelLayout:
    """Applies ``panel_heights`` to ``app``'s containers (#top, #queues, #cpus), or says the
    terminal is too small (#too-small) below MIN_WIDTH x MIN_HEIGHT."""

    def __init__(self, app: App[int]) -> None:
        self.app = app
        self._size: tuple[int, int] | None = None  # from the last resize event
        self._heights: Heights = {}

    def _current_size(self) -> tuple[int, int]:
        # app.size may still be the old size while a resize is handled: the event's wins.
        return self._size or (self.app.size.width, self.app.size.height)

    def resize(self, width: int, height: int, shown: Snapshot | None) -> None:
        self._size = (width, height)
        self.apply_size(shown)

    def apply_size(self, shown: Snapshot | None) -> None:
        width, height = self._current_size()
        small = width < MIN_WIDTH or height < MIN_HEIGHT
        self.app.set_class(small, "-too-small")
        if small:
            self.app.query_one("#too-small", Static).update(
                f"make the window larger (need {MIN_WIDTH}x{MIN_HEIGHT}, have {width}x{height})"
            )
            return
        self.app.query_one("#top").set_class(width >= WIDE_WIDTH, "-wide")
        self.relayout(shown)

    def relayout(self, shown: Snapshot | None) -> None:
        width, height = self._current_size()
        if width < MIN_WIDTH or height < MIN_HEIGHT:
            return
        heights = panel_heights(shown, width, height)
        if heights != self._heights:
            self._heights = heights
            for selector, value in heights.items():
                self.app.query_one(selector).styles.height = value
