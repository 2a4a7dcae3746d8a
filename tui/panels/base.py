"""What every panel widget shares: fragment roles turned into theme styles, and a Line-API
view of pinned header lines over a scrolled body."""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widget import Widget

from txtop.core.model import Snapshot

from .format import ROLES, Line, frag_len, line_text

COMPONENT_CLASSES = {f"txtop--{role}" for role in ROLES}


class RoleStyled(Widget):
    """Maps fragment roles to Rich styles from the ``txtop--<role>`` component classes, whose
    CSS reads the theme's variables. Cached until Textual reports a style change."""

    COMPONENT_CLASSES = COMPONENT_CLASSES

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._role_style_cache: dict[str, Style] = {}

    def notify_style_update(self) -> None:
        self._role_style_cache = {}
        super().notify_style_update()

    def role_styles(self) -> dict[str, Style]:
        if not self._role_style_cache:
            base = self.rich_style
            styles = {
                role: base + self.get_component_rich_style(f"txtop--{role}", partial=True)
                for role in ROLES
            }
            styles["text"] = base
            self._role_style_cache = styles
        return self._role_style_cache

    def strip(self, line: Line, width: int) -> Strip:
        styles = self.role_styles()
        base = styles["text"]
        segments = [Segment(text, styles.get(role, base)) for text, role in line if text]
        return Strip(segments).adjust_cell_length(width, base)

    @property
    def ascii_only(self) -> bool:
        return self.app.has_class("-ascii")


class LinesView(RoleStyled, ScrollView, can_focus=True):
    """Draws pinned header lines and a scrolled body of fragment lines (Line API). A subclass
    builds the lines from ``self.snapshot`` in ``rebuild``."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._pinned: list[Line] = []
        self._body: list[Line] = []
        self.snapshot: Snapshot | None = None

    def set_lines(self, pinned: list[Line], body: list[Line]) -> None:
        self._pinned = pinned
        self._body = body
        width = max((frag_len(line) for line in pinned + body), default=0)
        self.virtual_size = Size(width, len(pinned) + len(body))
        self.refresh()

    def body_text(self) -> list[str]:
        """Plain text of the body lines (for tests)."""
        return [line_text(line) for line in self._body]

    def pinned_text(self) -> list[str]:
        return [line_text(line) for line in self._pinned]

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        if y < len(self._pinned):
            return self.strip(self._pinned[y], width)
        index = y - len(self._pinned) + self.scroll_offset.y
        if 0 <= index < len(self._body):
            return self.strip(self._body[index], width)
        return Strip.blank(width, self.rich_style)

    def on_resize(self) -> None:
        self.rebuild()

    def update_snapshot(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.rebuild()

    def rebuild(self) -> None:
        raise NotImplementedError
