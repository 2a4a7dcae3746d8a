"""The history view (``h``): charts of one queue's or CPU's last minutes, with value and time
axes, over the whole screen.

The charts are fragment lines from tui/panels/history.py ``history_lines`` drawn by a Line-API
view (panels/base.py ``LinesView``), like every other panel: theme roles for colour (so 16
colours, mono and NO_COLOR work as everywhere else), the glyph table for --ascii, and only the
visible lines are rendered. ``feed_history`` is how snapshots reach the app's History.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container
from textual.screen import Screen

from txtop.core.controls import ReplayControls
from txtop.core.history import History, Target
from txtop.core.model import Snapshot
from txtop.tui.glyphs import glyphs_for
from txtop.tui.panels.base import LinesView
from txtop.tui.panels.format import line_text
from txtop.tui.panels.history import history_lines
from txtop.tui.panels.widgets import KeyHints

KEY_HINTS = (("up/down", "Previous/next queue or CPU"), ("h/esc", "Close"))


def feed_history(history: History, controls: ReplayControls | None) -> Callable[[Snapshot], None]:
    """A sink step for the source's thread: every snapshot goes into ``history``; a replay's
    jump (a seek, a step back, a loop) rebuilds it from the recorded snapshots before the new
    position, so the view shows what was recorded there rather than a splice."""

    def feed(snapshot: Snapshot) -> None:
        replay = snapshot.replay
        if replay is not None and replay.jump and controls is not None:
            history.rebuild(controls.frames(replay.index, history.span_s))
        else:
            history.add(snapshot)

    return feed


class HistoryChart(LinesView):
    """The charts of one target, rebuilt from the history when a snapshot arrives."""

    def __init__(self, history: History, target: Target, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.history = history
        self.target = target
        self.subtitle = ""

    def rebuild(self) -> None:
        region = self.scrollable_content_region
        if region.width <= 0 or region.height <= 0:
            return
        glyphs = glyphs_for(self.ascii_only)
        self.subtitle, lines = history_lines(
            self.history, self.target, region.width, region.height, glyphs
        )
        self.set_lines([], lines)
        box = self.parent
        if isinstance(box, Container):
            box.border_title = f"history: {self.subtitle}"

    def text(self) -> list[str]:
        return [line_text(line) for line in self._body]


class HistoryScreen(Screen[None]):
    """The history of ``targets[index]``; up/down (k/j) go to the previous/next queue or CPU,
    h, escape or q close. Updated by the app when its tables are (``update``)."""

    DEFAULT_CSS = """
    HistoryScreen { layout: vertical; }
    HistoryScreen #history-box {
        height: 1fr;
        border-top: solid $primary;
        border-title-color: $txtop-heading;
        border-title-style: bold;
        background: $surface;
    }
    App.-ascii HistoryScreen #history-box { border-top: ascii $primary; }
    HistoryScreen #history-chart { height: 1fr; scrollbar-size-vertical: 1; }
    HistoryScreen #history-keys { height: 1; background: $panel; }
    """

    BINDINGS = [
        Binding("escape,h,q", "close", "Close", show=False),
        Binding("up,k", "move(-1)", "Previous", show=False),
        Binding("down,j", "move(1)", "Next", show=False),
    ]

    def __init__(self, history: History, targets: Sequence[Target], index: int = 0) -> None:
        super().__init__()
        if not targets:
            raise ValueError("no queue or CPU to show")
        self.history = history
        self.targets = list(targets)
        self.index = max(0, min(index, len(self.targets) - 1))

    @property
    def target(self) -> Target:
        return self.targets[self.index]

    def compose(self) -> ComposeResult:
        with Container(id="history-box"):
            yield HistoryChart(self.history, self.target, id="history-chart")
        yield KeyHints(KEY_HINTS, id="history-keys")

    @property
    def chart(self) -> HistoryChart:
        return self.query_one(HistoryChart)

    def update(self) -> None:
        """Draw the newest history (new queues and CPUs join the up/down list)."""
        current = self.target
        known = self.history.targets()
        self.targets = known if current in known else [*known, current]
        self.index = self.targets.index(current)
        self.chart.rebuild()

    def action_move(self, step: int) -> None:
        self.index = (self.index + step) % len(self.targets)
        self.chart.target = self.target
        self.chart.scroll_to(y=0, animate=False)
        self.chart.rebuild()

    def action_close(self) -> None:
        self.dismiss(None)
