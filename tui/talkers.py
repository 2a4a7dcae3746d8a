"""The top-talkers view (``o`` in the waterfall): the flows and processes carrying the most
through each TX queue over the recent window, with qdisc wait and drops; estimates, marked ``~``.

The text comes from ``waterfall/talkers.py`` (pure); this screen lays it out and redraws it every
second from the newest snapshot the waterfall holds.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from txtop.core.model import Snapshot

from .waterfall.talkers import talkers_lines

STYLES = {"heading": "bold", "dim": "dim", "alert": "bold red", "text": ""}
REFRESH_S = 1.0


class TalkersScreen(ModalScreen[None]):
    """Top talkers per queue; ``latest`` returns the newest snapshot (None before the first)."""

    DEFAULT_CSS = """
    TalkersScreen {
        align: center middle;
    }
    TalkersScreen > Vertical {
        width: 96%;
        max-width: 140;
        height: 90%;
        border: round $primary;
        background: $surface;
        padding: 0 1;
    }
    TalkersScreen #talkers-title {
        text-style: bold;
    }
    TalkersScreen #talkers-hint {
        color: $text-muted;
    }
    """
    BINDINGS = [
        Binding("escape", "close", "Close"),
        Binding("o", "close", "Close", show=False),
        Binding("pageup", "scroll(-1)", "Scroll up", show=False),
        Binding("pagedown", "scroll(1)", "Scroll down", show=False),
    ]

    def __init__(self, latest: Callable[[], Snapshot | None], ascii: bool = False) -> None:
        super().__init__()
        self._latest = latest
        self._ascii = ascii
        self._shown: Snapshot | None = None

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Top talkers per TX queue (~ = estimate)", id="talkers-title")
            with VerticalScroll():
                yield Static("", id="talkers-body")
            yield Label("Esc/o close   PgUp/PgDn scroll", id="talkers-hint", markup=False)

    def on_mount(self) -> None:
        self._show(force=True)
        self.set_interval(REFRESH_S, self._show)

    def on_resize(self) -> None:
        self._show(force=True)

    def _show(self, force: bool = False) -> None:
        snap = self._latest()
        if snap is self._shown and not force:
            return
        self._shown = snap
        width = max(40, self.query_one("#talkers-body", Static).size.width or 100)
        text = Text()
        for i, line in enumerate(talkers_lines(snap, width, self._ascii)):
            if i:
                text.append("\n")
            for chunk, style in line:
                text.append(chunk, style=STYLES.get(style, ""))
        self.query_one("#talkers-body", Static).update(text)

    def action_scroll(self, direction: int) -> None:
        body = self.query_one(VerticalScroll)
        if direction > 0:
            body.scroll_page_down(animate=False)
        else:
            body.scroll_page_up(animate=False)

    def action_close(self) -> None:
        self.dismiss(None)
