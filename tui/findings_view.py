"""The findings strip (under the header) and the findings view (``f``).

The strip draws one line per finding in its severity's colour (theme roles: alert, warn,
heading; a cleared one dim), as many as tui/layout.py gives it rows (``strip_rows``: at most 2
at 24 rows, taken before the panels share the rest, each keeping its minimum: none is hidden). The findings view lists
them all with a cursor; the selected one's evidence, knob and command are shown below the list.
Enter jumps to the subject's row: the TX queue or CPU row in the dashboard's panels (selected
and focused), ``c`` opens the config view at that row. Text from tui/findings_text.py (pure).
"""

from __future__ import annotations

from collections.abc import Hashable

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container
from textual.message import Message
from textual.strip import Strip

from txtop.core.finding import Finding, Subject
from txtop.core.model import Snapshot
from txtop.tui.config_view import SCREEN_CSS, CursorRows, SnapshotScreen
from txtop.tui.findings_text import detail_lines, list_lines, listed, strip_lines
from txtop.tui.panels.base import RoleStyled
from txtop.tui.panels.format import Line, line_text
from txtop.tui.panels.widgets import KeyHints

FINDINGS_KEYS = (
    ("up/down", "Finding"),
    ("enter", "Go to its row"),
    ("c", "Config at its row"),
    ("f/esc", "Close"),
)


class JumpTo(Message):
    """Select ``subject``'s row in the dashboard (posted to the app by the findings view)."""

    def __init__(self, subject: Subject) -> None:
        super().__init__()
        self.subject = subject


class FindingsStrip(RoleStyled):
    """One line per listed finding (tui/findings_text.py ``strip_lines``); its height is set
    by the layout (0 rows when there is nothing to say)."""

    DEFAULT_CSS = """
    FindingsStrip { height: 0; background: $panel; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.snapshot: Snapshot | None = None
        self._lines: list[Line] = []
        self._built_for: tuple[int, int] = (-1, -1)

    def update_snapshot(self, snapshot: Snapshot | None) -> None:
        self.snapshot = snapshot
        self._built_for = (-1, -1)
        self.refresh()

    def text(self) -> list[str]:
        return [line_text(line) for line in self._build()]

    def _build(self) -> list[Line]:
        size = (self.size.width, self.size.height)
        if size != self._built_for:
            self._lines = strip_lines(self.snapshot, size[0], size[1], self.ascii_only)
            self._built_for = size
        return self._lines

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        lines = self._build()
        if y < len(lines):
            return self.strip(lines[y], width)
        return Strip.blank(width, self.rich_style)


class FindingsScreen(SnapshotScreen):
    """Every finding (active, then recently cleared), the selected one's details below."""

    DEFAULT_CSS = (
        SCREEN_CSS.format(name="FindingsScreen")
        + """
    FindingsScreen #findings-list { height: 1fr; }
    FindingsScreen #findings-detail { height: 12; border-top: solid $primary; }
    App.-ascii FindingsScreen #findings-detail { border-top: ascii $primary; }
    """
    )
    BINDINGS = [
        Binding("escape,f,q", "close", "Close", show=False),
        Binding("enter", "jump", "Go to its row", show=False),
        Binding("c", "config", "Config at its row", show=False),
    ]

    def __init__(self, snapshot: Snapshot | None) -> None:
        super().__init__()
        self.snapshot = snapshot
        self.findings: tuple[Finding, ...] = ()

    def compose(self) -> ComposeResult:
        with Container(classes="txtop-view-box") as box:
            box.border_title = "findings (txtop changes nothing; the commands are for you)"
            yield CursorRows(id="findings-list")
            yield CursorRows(cursor=False, id="findings-detail")
        yield KeyHints(FINDINGS_KEYS, id="findings-keys")

    @property
    def rows(self) -> CursorRows:
        return self.query_one("#findings-list", CursorRows)

    def on_mount(self) -> None:
        self.rows.focus()
        self.update_snapshot(self.snapshot)

    def on_resize(self) -> None:
        self.update_snapshot(self.snapshot)

    def update_snapshot(self, snapshot: Snapshot | None) -> None:
        self.snapshot = snapshot
        self.findings = listed(snapshot)
        width = max(40, self.rows.scrollable_content_region.width or self.app.size.width - 1)
        lines = list_lines(self.findings, width, self.rows.ascii_only)
        keys: list[Hashable | None] = [f.key for f in self.findings]  # one per finding
        self.rows.set_rows(list(zip(lines, keys or [None], strict=True)))
        self._show_detail()

    def selected(self) -> Finding | None:
        line = self.rows.cursor_line()
        return self.findings[line] if line is not None and line < len(self.findings) else None

    def _show_detail(self) -> None:
        detail = self.query_one("#findings-detail", CursorRows)
        width = max(40, detail.scrollable_content_region.width or self.app.size.width - 1)
        detail.set_rows([(line, None) for line in detail_lines(self.selected(), width)])

    def on_cursor_rows_moved(self, message: CursorRows.Moved) -> None:
        if message.rows is self.rows:
            self._show_detail()

    def action_jump(self) -> None:
        f = self.selected()
        if f is None:
            return
        self.dismiss(None)
        self.app.post_message(JumpTo(f.subject))

    def action_config(self) -> None:
        from txtop.tui.config_view import ConfigScreen

        f = self.selected()
        self.dismiss(None)
        self.app.push_screen(ConfigScreen(self.snapshot, f.subject if f is not None else None))

    def action_close(self) -> None:
        self.dismiss(None)
