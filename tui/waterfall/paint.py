"""Textual side of drawing the waterfall: theme colours to Rich styles, fragments to strips.

Strips are cached by what they depend on, so a 10 Hz update costs the few new rows plus the
header line: a row by (packet, width, device column, scale, axis end, selection), the column
line by its columns and axis, the legend by width and look. The percentile summary is rebuilt
at most once a second.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from rich.segment import Segment
from rich.style import Style
from textual.cache import LRUCache
from textual.color import Color, ColorParseError
from textual.geometry import Size
from textual.strip import Strip
from textual.widget import Widget

from txtop.themes.defaults import variable_defaults

from .bars import SEGMENT_KINDS, Frag
from .lines import (
    Look,
    column_frags,
    frame,
    header_frags,
    layout_columns,
    legend_frags,
    message_frags,
    row_frags,
    stats_title_frags,
)
from .rows import RowBuffer
from .stats import STATS_REFRESH_S, stats_lines
from .style import STYLE_VARIABLES

ANSI_DEFAULT = Color.parse("ansi_default")  # the terminal's own colour


class Painter:
    """Styles and cached strips for one waterfall widget."""

    def __init__(self) -> None:
        self.styles: dict[str, Style] = {}
        self.base = Style()
        self.mono = False  # resolved: stages told apart by fills rather than colour
        self.dirty = True  # theme or look changed: resolve before drawing the next line
        self._lines: LRUCache[tuple[object, ...], Strip] = LRUCache(512)
        self._stats: list[Strip] | None = None
        self._stats_key: tuple[object, ...] | None = None
        self._stats_time = 0.0

    def resolve(self, widget: Widget, mono_setting: bool | None) -> None:
        """Styles for every style name from the app's theme; ``mono_setting`` None: decide
        from the theme (no colour, or stage colours that are not all distinct)."""
        app = widget.app
        variables = app.theme_variables
        _, bg = widget.background_colors
        self.base = widget.rich_style
        colors: dict[str, Color] = {}
        # A theme built on the terminal's default colour gets no palette colours from the
        # defaults either: stages are then told apart by their fill characters.
        mono_theme = _parse_color(variables.get("primary", "")) == ANSI_DEFAULT
        defaults = variable_defaults(app.current_theme.dark)
        for kind, names in STYLE_VARIABLES.items():
            color = _first_color(variables, names)
            if color is None:  # a host app's theme without txtop's variables (style.py)
                color = ANSI_DEFAULT if mono_theme else Color.parse(defaults[names[0]])
            colors[kind] = (bg + color) if color.a < 1 else color
        styles = {kind: self.base + Style(color=c.rich_color) for kind, c in colors.items()}
        distinct = {colors[k] for k in SEGMENT_KINDS}
        auto_mono = app.no_color or len(distinct) < len(SEGMENT_KINDS)
        self.mono = auto_mono if mono_setting is None else mono_setting
        styles["text"] = self.base
        styles["selected"] = self.base + Style(reverse=True)
        styles["bold"] = self.base + Style(bold=True)
        styles["heading"] = styles["heading"] + Style(bold=True)
        styles["alert"] = styles["alert"] + Style(bold=True)
        if self.mono:
            styles["alert"] += Style(reverse=True)
        self.styles = styles
        self.dirty = False
        self._lines.clear()
        self.invalidate_stats()

    def invalidate_stats(self) -> None:
        self._stats = None

    def strip(self, frags: Sequence[Frag]) -> Strip:
        styles = self.styles
        return Strip([Segment(text, styles[style]) for text, style in frags if text])

    def line(self, y: int, size: Size, rows: RowBuffer, look: Look, show_stats: bool) -> Strip:
        """Line ``y`` of a waterfall of ``size``: header, column line, rows or summary, legend."""
        width, height = size
        first, _, legend = frame(height)
        if y == 0:
            strip = self._header(width, rows, look)
        elif y < first:
            strip = self._columns(width, rows, look, show_stats)
        elif legend and y == height - 1:
            strip = self._legend(width, look)
        elif show_stats:
            strip = self._stats_line(y - first, width, rows, look)
        else:
            strip = self._row(y - first, width, rows, look)
        return strip.adjust_cell_length(width, self.base)

    def _header(self, width: int, rows: RowBuffer, look: Look) -> Strip:
        left, right = header_frags(rows, look)
        right_len = sum(len(t) for t, _ in right)
        # Cut the left part (it may hold a user's filter text), never the state on the right.
        left_strip = self.strip(left).crop(0, max(0, width - right_len))
        pad = max(0, width - right_len - left_strip.cell_length)
        return Strip.join([left_strip, Strip([Segment(" " * pad, self.base)]), self.strip(right)])

    def _columns(self, width: int, rows: RowBuffer, look: Look, show_stats: bool) -> Strip:
        cols = layout_columns(width, rows.dev_chars)
        hi = rows.axis_hi() if look.scale != "row" else 0
        key = ("axis", cols, look.scale, hi, show_stats, look.ascii)
        strip = self._lines.get(key)
        if strip is None:
            frags = stats_title_frags() if show_stats else column_frags(cols, look, hi)
            strip = self._lines[key] = self.strip(frags)
        return strip

    def _legend(self, width: int, look: Look) -> Strip:
        key = ("legend", width, look.ascii, look.mono)
        strip = self._lines.get(key)
        if strip is None:
            strip = self._lines[key] = self.strip(legend_frags(width, look))
        return strip

    def _row(self, line: int, width: int, rows: RowBuffer, look: Look) -> Strip:
        view = rows.entries
        if not view:
            message = message_frags(rows, width)
            return self.strip(message[line - 1]) if 1 <= line <= len(message) else Strip([])
        index = rows.top + line
        if index >= len(view):
            return Strip([])
        entry = view[len(view) - 1 - index]
        selected = index == rows.cursor
        hi = rows.axis_hi() if look.scale != "row" else 0
        key = (entry.seq, width, rows.dev_chars, look.scale, hi, selected)
        strip = self._lines.get(key)
        if strip is None:
            cols = layout_columns(width, rows.dev_chars)
            strip = self._lines[key] = self.strip(row_frags(entry, cols, selected, look, hi))
        return strip

    def _stats_line(self, line: int, width: int, rows: RowBuffer, look: Look) -> Strip:
        now = time.monotonic()
        key = (width, rows.frozen, rows.filter, id(rows.snapshot))
        stale = key != self._stats_key and now - self._stats_time >= STATS_REFRESH_S
        if self._stats is None or stale:
            lines = stats_lines(rows, width, look)
            self._stats = [self.strip(parts) if parts else Strip([]) for parts in lines]
            self._stats_key = key
            self._stats_time = now
        return self._stats[line] if line < len(self._stats) else Strip([])


def _first_color(variables: Mapping[str, str], names: Sequence[str]) -> Color | None:
    """The colour of the first of ``names`` that the theme sets to a colour Textual parses."""
    for name in names:
        color = _parse_color(variables.get(name, ""))
        if color is not None:
            return color
    return None


def _parse_color(value: str) -> Color | None:
    if not value:
        return None
    try:
        return Color.parse(value)
    except ColorParseError:
        return None
