"""Text building blocks of the panels: numbers that fit 5 cells, fragments, columns and bars.

A panel's line is a list of ``(text, role)`` fragments; the role names a style (``ROLES``, see
``base.RoleStyled`` and app.tcss) so that layout never deals with colours. Textual-free.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from txtop.tui.glyphs import UNICODE, Glyphs

Frag = tuple[str, str]  # (text, role)
Line = list[Frag]

ROLES = (
    "text",
    "dim",
    "alert",
    "warn",
    "group",
    "heading",
    "bar",
    "bar-high",
    "bar-empty",
    "heat-1",
    "heat-2",
    "heat-3",
    "badge",
)


# ---- number formatting (every result fits 5 cells unless said) -------------------------------


def fmt_si(value: float | None) -> str:
    """Rates: 0, 0.5, 12, 999, 1.2k, 12k, 123k, 1.2M ..."""
    if value is None or math.isnan(value):
        return "-"
    mag = abs(value)
    if mag < 9.95 and value != int(value):
        return f"{value:.1f}"
    if mag < 999.5:
        return f"{value:.0f}"
    for unit, div in (("k", 1e3), ("M", 1e6), ("G", 1e9), ("T", 1e12)):
        scaled = value / div
        if abs(scaled) < 9.95:
            return f"{scaled:.1f}{unit}"
        if abs(scaled) < 999.5:
            return f"{scaled:.0f}{unit}"
    return f"{value / 1e15:.0f}P"


def fmt_bytes(count: int | float | None) -> str:
    """Byte counts in binary units: 512, 1.5K, 30K, 1.2M."""
    if count is None:
        return "-"
    if count < 1000:
        return f"{count:.0f}"
    value = float(count)
    for unit in ("K", "M", "G", "T"):
        value /= 1024.0
        if value < 9.95:
            return f"{value:.1f}{unit}"
        if value < 999.5:
            return f"{value:.0f}{unit}"
    return f"{value:.0f}T"


def fmt_pct(pct: float | None) -> str:
    if pct is None or math.isnan(pct):
        return "-"
    if pct == 0:
        return "0%"
    if pct < 9.95:
        return f"{pct:.1f}%"
    return f"{pct:.0f}%"


def fmt_interval(seconds: float) -> str:
    return f"{seconds:g}s"


# ---- fragments ------------------------------------------------------------------------------


def line_text(line: Line) -> str:
    return "".join(text for text, _ in line)


def frag_len(frags: Sequence[Frag]) -> int:
    return sum(len(text) for text, _ in frags)


def truncate(frags: Sequence[Frag], width: int, ellipsis: str = UNICODE.ellipsis) -> Line:
    """Cut fragments to ``width`` cells, marking the cut with ``ellipsis``."""
    if frag_len(frags) <= width:
        return list(frags)
    out: Line = []
    room = max(0, width - len(ellipsis))
    for text, role in frags:
        if room <= 0:
            break
        out.append((text[:room], role))
        room -= len(text[:room])
    if width >= len(ellipsis):
        out.append((ellipsis, out[-1][1] if out else "dim"))
    return out


def fit(frags: Sequence[Frag], width: int, align: str, ellipsis: str = UNICODE.ellipsis) -> Line:
    """Pad or cut fragments to exactly ``width`` cells."""
    cut = truncate(frags, width, ellipsis)
    pad = width - frag_len(cut)
    if pad <= 0:
        return cut
    return cut + [(" " * pad, "text")] if align == "<" else [(" " * pad, "text")] + cut


def value_frag(text: str, value: float | None, bad_role: str = "alert") -> Line:
    """A number that is dim when zero or absent and highlighted (``bad_role``) when not."""
    if value is None:
        return [("-", "dim")]
    return [(text, bad_role if value > 0 else "dim")]


def bar(ratio: float, width: int, glyphs: Glyphs, high_at: float = 0.8) -> Line:
    """A horizontal bar of ``width`` cells; the filled part turns 'bar-high' near full."""
    if width <= 0:
        return []
    ratio = 0.0 if math.isnan(ratio) else min(1.0, max(0.0, ratio))
    role = "bar-high" if ratio >= high_at else "bar"
    eighths = round(ratio * width * 8)
    full, part = divmod(eighths, 8)
    if not glyphs.bar_partial:  # ASCII: round to whole cells, but show any non-zero value
        full = round(ratio * width)
        if ratio > 0 and full == 0:
            full = 1
        part = 0
    text = glyphs.bar_full * full
    if part:
        text += glyphs.bar_partial[part - 1]
    out: Line = [(text, role)] if text else []
    empty = width - len(text)
    if empty > 0:
        out.append((glyphs.bar_empty * empty, "bar-empty"))
    return out


# ---- columns --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    title: str
    width: int  # minimum cells
    grow: int = 0  # extra cells it may take when there is room
    align: str = ">"
    priority: int = 0  # 0 = always; higher numbers are dropped first when narrow
    help: str = ""
    short: str = ""  # title used when ``title`` does not fit


Layout = list[tuple[Column, int]]  # the chosen columns and their widths


def fit_columns(columns: Sequence[Column], width: int, gap: int = 1) -> Layout:
    """Choose the columns that fit ``width`` (by priority) and give spare cells to growers."""
    chosen: list[Column] = []
    used = -gap
    for col in sorted(columns, key=lambda c: c.priority):  # stable: keeps order within a rank
        if used + gap + col.width <= width or col.priority == 0:
            chosen.append(col)
            used += gap + col.width
    ordered = [c for c in columns if c in chosen]
    widths = {c.key: c.width for c in ordered}
    spare = width - used
    # Small growers first (a qdisc name that just misses), then the bars take the rest.
    for col in sorted(ordered, key=lambda c: c.grow):
        if spare <= 0:
            break
        extra = min(col.grow, spare)
        widths[col.key] += extra
        spare -= extra
    return [(c, widths[c.key]) for c in ordered]


def column_width(layout: Sequence[tuple[Column, int]], key: str) -> int:
    return dict((c.key, w) for c, w in layout)[key]


def render_row(
    layout: Sequence[tuple[Column, int]], cells: Mapping[str, Sequence[Frag]], glyphs: Glyphs
) -> Line:
    out: Line = []
    for index, (col, width) in enumerate(layout):
        if index:
            out.append((" ", "text"))
        out.extend(fit(cells.get(col.key, ()), width, col.align, glyphs.ellipsis))
    return out


def header_row(layout: Sequence[tuple[Column, int]], glyphs: Glyphs) -> Line:
    cells = {
        col.key: [(col.title if len(col.title) <= width or not col.short else col.short, "heading")]
        for col, width in layout
    }
    return render_row(layout, cells, glyphs)
