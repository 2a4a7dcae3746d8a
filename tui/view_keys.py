"""The dashboard's keys that open a view or pick a row: ``?`` help, ``c`` config, ``f``
findings, ``h`` history and ``g`` its column, and a finding's jump to its queue or CPU row.

The bindings stay on the app (TxtopApp); its actions call these.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from txtop.core.finding import Subject
from txtop.core.history import CpuTarget, QueueTarget, Target
from txtop.tui.config_view import ConfigScreen, SnapshotScreen
from txtop.tui.findings_view import FindingsScreen
from txtop.tui.help import HelpScreen
from txtop.tui.history_view import HistoryScreen
from txtop.tui.panels import CpusPanel, QueuesPanel
from txtop.tui.panels.selection import HistoryRowsView

if TYPE_CHECKING:
    from txtop.tui.app import TxtopApp


class ViewKeys:
    def __init__(self, app: TxtopApp) -> None:
        self.app = app

    def help(self) -> None:
        if not isinstance(self.app.screen, HelpScreen):
            self.app.push_screen(HelpScreen(self.app.latest))

    def config(self) -> None:
        """The config view (tui/config_view.py): every knob beside the live numbers."""
        if not isinstance(self.app.screen, SnapshotScreen):
            self.app.push_screen(ConfigScreen(self.app.shown))

    def findings(self) -> None:
        """The findings view (tui/findings_view.py): evidence, knob and command of each."""
        if not isinstance(self.app.screen, SnapshotScreen):
            self.app.push_screen(FindingsScreen(self.app.shown))

    def jump_to(self, subject: Subject) -> None:
        """A finding's subject: select its row in the TX queue or CPU panel, focused."""
        app = self.app
        panel: HistoryRowsView
        target: Target | None
        if subject.kind in ("queue", "device"):
            panel = app.query_one(QueuesPanel)
            mine = [t for t in panel.targets if isinstance(t, QueueTarget) and t.dev == subject.dev]
            if subject.kind == "queue":
                target = QueueTarget(str(subject.dev), subject.queue or 0)
            else:  # the device row is not selectable: its first queue
                target = mine[0] if mine else None
        elif subject.kind == "cpu":
            panel, target = app.query_one(CpusPanel), CpuTarget(subject.cpu or 0)
        else:
            app.notify("the probes' state is on the header's second line", timeout=3)
            return
        if target is None or target not in panel.targets:
            app.notify(f"{subject.label} has no row on screen now", timeout=3)
            return
        panel.selected = target
        panel.focus()
        panel.action_move_selection(0)  # draw and scroll to it

    # ---- history (core/history.py, tui/history_view.py) ------------------------------------------
    def _rows_panel(self) -> HistoryRowsView:
        """The focused queue or CPU panel, else the queues panel."""
        focused = self.app.focused
        return focused if isinstance(focused, HistoryRowsView) else self.app.query_one(QueuesPanel)

    def history(self) -> None:
        """The history view of the selected queue or CPU (of the focused panel)."""
        app = self.app
        if isinstance(app.screen, HistoryScreen):
            return
        targets = app.history.targets()
        if not targets:
            app.notify("no history yet", timeout=2)
            return
        target = self._rows_panel().current_target()
        index = targets.index(target) if target in targets else 0
        app.push_screen(HistoryScreen(app.history, targets, index))

    def cycle_graph(self) -> None:
        """The next metric of the history column (of the focused panel)."""
        title = self._rows_panel().cycle_metric()
        if title:
            self.app.notify(f"history column: {title}", timeout=1.5)
