"""The config view (``c``) and a queue's inspector (enter on a queue in it).

The config view lists every device's knobs, a row per TX queue with its knobs beside its live
numbers, and a row per CPU; a cursor (up/down) stops on the device, queue and CPU rows, enter on
a queue opens its inspector (``QueueScreen``). Both are full screens like the history view,
kept up to date by the app with each snapshot it shows (``SnapshotScreen.update_snapshot``).
The text comes from tui/config_text.py (pure).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from rich.style import Style
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container
from textual.geometry import Size
from textual.message import Message
from textual.screen import Screen
from textual.scroll_view import ScrollView
from textual.strip import Strip

from txtop.core.finding import Subject
from txtop.core.model import Snapshot
from txtop.tui.config_text import config_lines, queue_detail
from txtop.tui.glyphs import glyphs_for
from txtop.tui.panels.base import RoleStyled
from txtop.tui.panels.format import Line, frag_len, line_text, truncate
from txtop.tui.panels.widgets import KeyHints

CONFIG_KEYS = (
    ("up/down", "Row"),
    ("enter", "Queue inspector"),
    ("f", "Findings"),
    ("c/esc", "Close"),
)
QUEUE_KEYS = (("up/down", "Scroll"), ("esc/enter", "Back"))


class CursorRows(RoleStyled, ScrollView, can_focus=True):
    """Lines, some of which are rows with a key (a device, queue or CPU ``Subject``, a
    finding's key); a cursor moves between those and is drawn reversed. ``set_rows`` keeps the
    cursor on the same key. Line API: only the visible lines are drawn."""

    BINDINGS = [
        Binding("up,k", "move(-1)", "Up", show=False),
        Binding("down,j", "move(1)", "Down", show=False),
        Binding("pageup", "move(-10)", "Page up", show=False),
        Binding("pagedown", "move(10)", "Page down", show=False),
        Binding("home", "move(-100000)", "First", show=False),
        Binding("end", "move(100000)", "Last", show=False),
    ]

    class Moved(Message):
        """The cursor moved to another row."""

        def __init__(self, rows: CursorRows) -> None:
            super().__init__()
            self.rows = rows

    def __init__(self, *, cursor: bool = True, id: str | None = None) -> None:
        super().__init__(id=id)
        self.show_cursor = cursor
        self.lines: list[Line] = []
        self.subjects: list[Hashable | None] = []  # each line's key, None: not a row
        self.selected: Hashable | None = None

    def set_rows(self, rows: Sequence[tuple[Line, Hashable | None]]) -> None:
        self.lines = [line for line, _ in rows]
        self.subjects = [key for _, key in rows]
        width = max((frag_len(line) for line in self.lines), default=0)
        self.virtual_size = Size(width, len(self.lines))
        if self.selected is None or self.selected not in self.subjects:
            self.selected = next((s for s in self.subjects if s is not None), None)
        self.refresh()

    def select(self, subject: Hashable | None) -> bool:
        """Put the cursor on ``subject``'s row (scrolled into view); False when not shown."""
        if subject is None or subject not in self.subjects:
            return False
        self.selected = subject
        self._scroll_to_cursor()
        self.refresh()
        self.post_message(self.Moved(self))
        return True

    def text(self) -> list[str]:
        return [line_text(line) for line in self.lines]

    def cursor_line(self) -> int | None:
        if self.selected is None or self.selected not in self.subjects:
            return None
        return self.subjects.index(self.selected)

    def action_move(self, step: int) -> None:
        rows = [i for i, s in enumerate(self.subjects) if s is not None]
        if not rows or not self.show_cursor:
            self.scroll_relative(y=step, animate=False)
            return
        current = self.cursor_line()
        at = rows.index(current) if current in rows else 0
        self.selected = self.subjects[rows[max(0, min(len(rows) - 1, at + step))]]
        self._scroll_to_cursor()
        self.refresh()
        self.post_message(self.Moved(self))

    def _scroll_to_cursor(self) -> None:
        line = self.cursor_line()
        if line is None:
            return
        height = max(1, self.scrollable_content_region.height)
        top = int(self.scroll_offset.y)
        if line < top:
            self.scroll_to(y=line, animate=False)
        elif line >= top + height:
            self.scroll_to(y=line - height + 1, animate=False)

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        index = y + int(self.scroll_offset.y)
        if not 0 <= index < len(self.lines):
            return Strip.blank(width, self.rich_style)
        line = truncate(self.lines[index], max(width, 1), glyphs_for(self.ascii_only).ellipsis)
        strip = self.strip(line, width)
        if self.show_cursor and index == self.cursor_line():
            strip = strip.apply_style(Style(reverse=True))
        return strip


class SnapshotScreen(Screen[None]):
    """A full screen the app keeps up to date with every snapshot it shows."""

    def update_snapshot(self, snapshot: Snapshot | None) -> None:
        raise NotImplementedError


SCREEN_CSS = """
{name} {{ layout: vertical; }}
{name} .txtop-view-box {{
    height: 1fr;
    border-top: solid $primary;
    border-title-color: $txtop-heading;
    border-title-style: bold;
    background: $surface;
}}
App.-ascii {name} .txtop-view-box {{ border-top: ascii $primary; }}
{name} CursorRows {{ height: 1fr; scrollbar-size-vertical: 1; }}
{name} KeyHints {{ height: 1; background: $panel; }}
"""


class ConfigScreen(SnapshotScreen):
    """Every device's and queue's knobs beside the live numbers; ``focus`` puts the cursor on a
    subject's row at start (a finding's jump)."""

    DEFAULT_CSS = SCREEN_CSS.format(name="ConfigScreen")
    BINDINGS = [
        Binding("escape,c,q", "close", "Close", show=False),
        Binding("enter", "inspect", "Queue inspector", show=False),
        Binding("f", "findings", "Findings", show=False),
    ]

    def __init__(self, snapshot: Snapshot | None, focus: Subject | None = None) -> None:
        super().__init__()
        self.snapshot = snapshot
        self.initial = focus

    def compose(self) -> ComposeResult:
        with Container(classes="txtop-view-box") as box:
            box.border_title = "configuration beside the live numbers (read-only)"
            yield CursorRows(id="config-rows")
        yield KeyHints(CONFIG_KEYS, id="config-keys")

    @property
    def rows(self) -> CursorRows:
        return self.query_one(CursorRows)

    def on_mount(self) -> None:
        self.rows.focus()
        self.update_snapshot(self.snapshot)
        if self.initial is not None:
            self.call_after_refresh(self.rows.select, self.initial)

    def on_resize(self) -> None:
        self.update_snapshot(self.snapshot)

    def update_snapshot(self, snapshot: Snapshot | None) -> None:
        self.snapshot = snapshot
        width = max(40, self.rows.scrollable_content_region.width or self.app.size.width - 1)
        self.rows.set_rows(config_lines(snapshot, width, self.rows.ascii_only))

    def action_inspect(self) -> None:
        subject = self.rows.selected
        if not isinstance(subject, Subject) or subject.kind not in ("queue", "device"):
            return
        if subject.kind == "device":  # its first queue
            queues = [s for s in self.rows.subjects if isinstance(s, Subject) and s.kind == "queue"]
            subject = next((s for s in queues if s.dev == subject.dev), None)
        if subject is not None:
            self.app.push_screen(QueueScreen(self.snapshot, subject))

    def action_findings(self) -> None:
        from txtop.tui.findings_view import FindingsScreen  # it imports this module

        self.dismiss(None)
        self.app.push_screen(FindingsScreen(self.snapshot))

    def action_close(self) -> None:
        self.dismiss(None)


class QueueScreen(SnapshotScreen):
    """One TX queue's inspector: its knobs, its live numbers, its findings."""

    DEFAULT_CSS = SCREEN_CSS.format(name="QueueScreen")
    BINDINGS = [Binding("escape,enter,q", "close", "Back", show=False)]

    def __init__(self, snapshot: Snapshot | None, subject: Subject) -> None:
        super().__init__()
        self.snapshot = snapshot
        self.subject = subject

    def compose(self) -> ComposeResult:
        with Container(classes="txtop-view-box") as box:
            box.border_title = f"queue inspector: {self.subject.label}"
            yield CursorRows(cursor=False, id="queue-rows")
        yield KeyHints(QUEUE_KEYS, id="queue-keys")

    def on_mount(self) -> None:
        self.query_one(CursorRows).focus()
        self.update_snapshot(self.snapshot)

    def update_snapshot(self, snapshot: Snapshot | None) -> None:
        self.snapshot = snapshot
        self.query_one(CursorRows).set_rows(
            [(line, None) for line in queue_detail(snapshot, self.subject)]
        )

    def action_close(self) -> None:
        self.dismiss(None)
