"""What the TX queue and CPU panels share beyond drawing lines: rows that are queues or CPUs.

A selection moved with up/down (k/j), shown with a pointer while the panel has focus, which
``h`` opens in the history view; and the history column, drawn from the app's History
(core/history.py) for the metric ``g`` picks. The rows and their targets come from the pure
builders (queues.py ``queue_view``, cpus.py ``cpu_view``).
"""

from __future__ import annotations

from collections.abc import Sequence

from textual.binding import Binding
from textual.color import Color, ColorParseError
from textual.widget import Widget

from txtop.core.history import METRICS, History, Target
from txtop.tui.glyphs import glyphs_for

from .base import LinesView
from .queues import SparkSpec


def mono_look(widget: Widget) -> bool:
    """True when colours cannot tell levels apart: no colour at all, or the mono theme
    (built on the terminal's default colour)."""
    app = widget.app
    if app.no_color:
        return True
    try:
        primary = Color.parse(app.theme_variables.get("primary", ""))
    except ColorParseError:
        return False
    return primary == Color.parse("ansi_default")


class HistoryRowsView(LinesView):
    """A LinesView whose body rows are queues or CPUs (``targets`` per body line, None for the
    others). Subclasses set ``spark_metrics`` and build lines and targets in ``rebuild``."""

    BINDINGS = [
        Binding("up,k", "move_selection(-1)", "Up", show=False),
        Binding("down,j", "move_selection(1)", "Down", show=False),
    ]

    spark_metrics: tuple[str, ...] = ()

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.history: History | None = None
        self.spark_metric = self.spark_metrics[0] if self.spark_metrics else ""
        self.selected: Target | None = None
        self.targets: list[Target | None] = []
        self._pointing = False  # has focus: draw the selection (has_focus lags the events)

    # ---- for the builders ---------------------------------------------------------------------

    def spark_spec(self) -> SparkSpec | None:
        """The history column's settings, None without a history (or its metric)."""
        if self.history is None or not self.spark_metric:
            return None
        interval = self.snapshot.interval_s if self.snapshot is not None else 1.0
        plain = self.ascii_only or mono_look(self)
        return SparkSpec(self.history, self.spark_metric, interval, glyphs_for(plain))

    def shown_selection(self) -> Target | None:
        """The selection as drawn: only while the panel has focus."""
        return self.current_target() if self._pointing else None

    def set_targets(self, targets: Sequence[Target | None]) -> None:
        self.targets = list(targets)

    # ---- selection ----------------------------------------------------------------------------

    def current_target(self) -> Target | None:
        """The selected queue or CPU if it is still shown, else the first one shown."""
        shown = [t for t in self.targets if t is not None]
        if self.selected in shown:
            return self.selected
        return shown[0] if shown else None

    def action_move_selection(self, step: int) -> None:
        shown = [t for t in self.targets if t is not None]
        if not shown:
            self.scroll_relative(y=step, animate=False)  # nothing to select: scroll
            return
        current = self.current_target()
        index = shown.index(current) if current in shown else 0
        self.selected = shown[max(0, min(len(shown) - 1, index + step))]
        self.rebuild()
        self._scroll_to_selection()

    def _scroll_to_selection(self) -> None:
        if self.selected not in self.targets:
            return
        row = self.targets.index(self.selected)
        visible = max(1, self.scrollable_content_region.height - len(self._pinned))
        top = int(self.scroll_offset.y)
        if row < top:
            self.scroll_to(y=row, animate=False)
        elif row >= top + visible:
            self.scroll_to(y=row - visible + 1, animate=False)

    def cycle_metric(self) -> str:
        """The next metric of the history column; returns its title."""
        if not self.spark_metrics:
            return ""
        metrics = self.spark_metrics
        index = metrics.index(self.spark_metric) if self.spark_metric in metrics else -1
        self.spark_metric = metrics[(index + 1) % len(metrics)]
        self.rebuild()
        return METRICS[self.spark_metric].title

    def on_focus(self) -> None:
        self._pointing = True
        self.rebuild()

    def on_blur(self) -> None:
        self._pointing = False
        self.rebuild()
