"""History as text: the sparkline column of the TX queue and CPU rows, and the charts of the
history view (tui/history_view.py), from a core/history.py ``History``.

Pure: history, sizes and a glyph table in, ``(text, role)`` fragment lines out; Textual-free.

- A sparkline cell is one of 8 heights (``Glyphs.spark``; the ASCII table's under ``--ascii``
  and in the mono theme), coloured by height (heat roles); ``heat_zero`` marks a known zero,
  a blank an unknown. Every row of a panel shares one scale: the tallest cell is the busiest
  row's largest value, and any activity shows at least the lowest height.
- A chart is a stack of such cells in eighths of a row, on a scale rounded up to 1, 2 or 5
  times a power of ten, with the value axis on the left and one time axis for the view.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from txtop.core.history import History, Metric, Target, metrics_of
from txtop.core.text import format_ns
from txtop.tui.glyphs import Glyphs

from .format import Frag, Line, fmt_bytes, fmt_si

SPARK_MIN_CELL_S = 1.0  # a sparkline cell covers at least a second (or one refresh)
VIEW_SPANS_S = (30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
LABEL_W = 6  # the value axis: 5 cells of number and a space
SHORT_TITLES = {
    "pps": "pkt/s",
    "backlog": "backlog",
    "drops": "drop/s",
    "bql_peak": "BQL pk",
    "p99q": "p99q",
    "net_tx": "NET_TX",
    "net_rx": "NET_RX",
}


# ---- values -----------------------------------------------------------------------------------


def fmt_value(metric: Metric, value: float | None, ascii_only: bool = False) -> str:
    """A value of ``metric`` in at most 5 cells."""
    if value is None or math.isnan(value):
        return "-"
    if metric.unit == "bytes":
        return fmt_bytes(value)
    if metric.unit == "ns":
        return format_ns(value, ascii=ascii_only, short=True)
    return fmt_si(value)


def nice_top(value: float | None) -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten at or above ``value`` (1 for none)."""
    if value is None or not value > 0 or math.isinf(value):
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if value <= step * power * (1 + 1e-9):
            return step * power
    return 10.0 * power


def fmt_ago(seconds: float) -> str:
    """A time before now on the axis: -30s, -2m, -90s, -1h."""
    s = round(seconds)
    if s >= 3600 and s % 3600 == 0:
        return f"-{s // 3600}h"
    if s >= 60 and s % 60 == 0:
        return f"-{s // 60}m"
    return f"-{s}s"


def fmt_span(seconds: float) -> str:
    return fmt_ago(seconds)[1:]


# ---- the sparkline column ---------------------------------------------------------------------


def spark_cell_s(interval_s: float, cells: int, span_s: float) -> float:
    """Seconds per sparkline cell: one refresh (at least a second), so that ``cells`` of them
    never reach past what the history keeps."""
    return min(max(SPARK_MIN_CELL_S, interval_s), span_s / max(1, cells))


def spark_title(metric: str, cells: int, cell_s: float) -> str:
    """The column's title: what it shows and over how long ("pkt/s 16s")."""
    return f"{SHORT_TITLES[metric]} {fmt_span(cells * cell_s)}"


def spark_top(windows: Sequence[Sequence[float | None]]) -> float:
    """The shared scale of a panel's sparklines: the largest known value (0 when none)."""
    return max((v for w in windows for v in w if v is not None), default=0.0)


def _level(value: float, top: float, levels: int) -> int:
    """1..levels for a value above 0 (any activity shows), by its share of ``top``."""
    return min(levels, max(1, math.ceil(value / top * levels))) if top > 0 else 1


def _heat_role(level: int) -> str:
    return "heat-1" if level <= 3 else "heat-2" if level <= 6 else "heat-3"


def spark(values: Sequence[float | None], top: float, glyphs: Glyphs) -> Line:
    """One cell per value, oldest first; neighbouring cells of one role share a fragment."""
    out: Line = []
    for value in values:
        if value is None:
            frag: Frag = (" ", "text")
        elif value <= 0:
            frag = (glyphs.heat_zero, "dim")
        else:
            level = _level(value, top, len(glyphs.spark))
            frag = (glyphs.spark[level - 1], _heat_role(level))
        if out and out[-1][1] == frag[1]:
            out[-1] = (out[-1][0] + frag[0], frag[1])
        else:
            out.append(frag)
    return out


# ---- the history view's charts ----------------------------------------------------------------


def view_span(covered_s: float, kept_s: float) -> float:
    """The time the view shows: the first of VIEW_SPANS_S that holds what is known, at most
    what the history keeps."""
    for span in VIEW_SPANS_S:
        if covered_s <= span + 1e-9:
            return min(span, kept_s)
    return kept_s


def chart_rows(
    values: Sequence[float | None], top: float, height: int, glyphs: Glyphs
) -> list[Line]:
    """``height`` rows of cells, top row first; a cell's column is filled in eighths of a row
    up to its value's share of ``top`` (any activity at least one eighth)."""
    levels = len(glyphs.spark)
    full = glyphs.spark[-1]
    fills = []
    for value in values:
        if value is None or value <= 0:
            fills.append(0)
        else:
            fills.append(min(height * levels, max(1, math.ceil(value / top * height * levels))))
    rows: list[Line] = []
    for r in range(height):
        floor = (height - 1 - r) * levels  # eighths below this row
        line: Line = []
        for eighths, value in zip(fills, values, strict=True):
            part = eighths - floor
            if part <= 0:
                frag: Frag = (" ", "text")
            else:
                role = "bar-high" if value is not None and value >= 0.8 * top else "bar"
                frag = (full if part >= levels else glyphs.spark[part - 1], role)
            if line and line[-1][1] == frag[1]:
                line[-1] = (line[-1][0] + frag[0], frag[1])
            else:
                line.append(frag)
        rows.append(line)
    return rows


def _axis_label(text: str) -> Frag:
    return (text.rjust(LABEL_W - 1)[: LABEL_W - 1] + " ", "dim")


def chart_block(
    metric: Metric,
    values: Sequence[float | None],
    height: int,
    glyphs: Glyphs,
    span_s: float,
) -> list[Line]:
    """One metric: a title line (now, max, mean, min over the span), ``height`` rows of chart
    with the value axis on the left, and a base line marking where data is known."""
    known = [v for v in values if v is not None]
    now = next((v for v in reversed(values) if v is not None), None)

    def fmt(value: float | None) -> str:
        return fmt_value(metric, value, glyphs.ascii)

    title: Line = [(metric.title, "heading")]
    if known:
        mean = sum(known) / len(known)
        for name, value in (("now", now), ("max", max(known)), ("mean", mean), ("min", min(known))):
            title += [(f"  {name} ", "dim"), (fmt(value), "text")]
    else:
        title.append((f"  no data in the last {fmt_span(span_s)}", "dim"))
    top = nice_top(max(known, default=0.0))
    rows = chart_rows(values, top, height, glyphs)
    labelled: list[Line] = [title]
    half = height // 2 if height >= 4 and height % 2 == 0 else None
    for r, row in enumerate(rows):
        label = fmt(top) if r == 0 else fmt(top / 2) if r == half else ""
        labelled.append([_axis_label(label), *row])
    base: Line = [_axis_label(fmt(0.0))]
    for value in values:
        frag: Frag = (glyphs.axis, "dim") if value is not None else (" ", "text")
        if len(base) > 1 and base[-1][1] == frag[1]:
            base[-1] = (base[-1][0] + frag[0], frag[1])
        else:
            base.append(frag)
    labelled.append(base)
    return labelled


def time_axis(cells: int, span_s: float) -> Line:
    """Labels under the charts: "now" at the right edge, earlier times at round steps."""
    text = [" "] * cells
    now = "now"
    if cells < len(now):
        return [(" " * (LABEL_W + cells), "text")]
    text[cells - len(now) :] = list(now)
    per_cell = span_s / cells
    step = next(
        (
            s
            for s in (5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)
            if s / per_cell >= 10 and span_s / s <= 8  # room for a label, at most 8 of them
        ),
        3600,
    )
    free_until = cells - len(now) - 1  # labels must end before this column
    t = step
    while t <= span_s + 1e-9:
        col = cells - 1 - round(t / per_cell)  # the cell ending t seconds before now
        label = fmt_ago(t)
        start = col - len(label) // 2
        if start < 0:
            break
        if start + len(label) <= free_until:
            text[start : start + len(label)] = list(label)
            free_until = start - 1
        t += step
    return [(" " * LABEL_W, "text"), ("".join(text), "dim")]


def history_lines(
    history: History, target: Target, width: int, height: int, glyphs: Glyphs
) -> tuple[str, list[Line]]:
    """(subtitle, lines) of the history view for ``target`` in ``width`` x ``height`` cells:
    a chart per metric, one time axis at the bottom."""
    metrics = metrics_of(target)
    span = view_span(history.covered_s(), history.span_s)
    cells = max(1, width - LABEL_W)
    cell_s = span / cells
    per_block = max(3, (height - 1) // len(metrics))
    chart_h = per_block - 2
    if chart_h >= 5 and chart_h % 2:
        chart_h -= 1  # even: the value axis gets its middle label on a row edge
    lines: list[Line] = []
    for metric in metrics:
        if len(lines) + chart_h + 2 > height - 1:
            break  # too little room: the later metrics are left out
        values = history.window(target, metric.key, cells, cell_s)
        lines.extend(chart_block(metric, values, chart_h, glyphs, span))
    lines.append(time_axis(cells, span))
    kept = fmt_span(history.span_s)
    subtitle = f"{target.label}, last {fmt_span(span)} (up to {kept} kept)"
    return subtitle, lines
