"""The softirq panel: per CPU, NET_TX/NET_RX softirq rates, the softirq share of CPU time and
softnet drops; a heat strip per metric (one cell per CPU) when a row per CPU does not fit.

A row per CPU also carries a sparkline of its recent NET_TX/s or NET_RX/s (``g``).

Pure: Snapshot (plus width, height, history, selection) in, fragment lines out; the widget is
``widgets.CpusPanel``. Textual-free.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from txtop.core.history import CPU_METRICS, CpuTarget, Target
from txtop.core.model import CpuRow, Snapshot
from txtop.tui.glyphs import Glyphs, glyphs_for

from .format import (
    Column,
    Frag,
    Line,
    bar,
    column_width,
    fit_columns,
    fmt_pct,
    fmt_si,
    header_row,
    render_row,
    truncate,
    value_frag,
)
from .history import SHORT_TITLES, spark_cell_s, spark_title, spark_top
from .history import spark as spark_line
from .queues import SparkSpec

CPU_COLUMNS: tuple[Column, ...] = (
    Column("cpu", "cpu", 4, align="<", help="CPU number; 'all' sums rates, averages shares"),
    Column("tx", "NET_TX/s", 8, help="NET_TX softirqs run per second (/proc/softirqs)"),
    Column("rx", "NET_RX/s", 8, help="NET_RX softirqs run per second"),
    Column(
        "hist",
        "history",
        8,
        grow=8,
        align="<",
        priority=1,
        help="the last seconds of NET_TX/s or NET_RX/s (g, with this panel focused), a cell "
        "per refresh; height = share of the busiest CPU; h opens the selected CPU's history",
    ),
    Column(
        "si",
        "softirq time",
        12,
        grow=14,
        align="<",
        help="share of the CPU in softirq (all vectors), from /proc/stat's ticks: at a 1 s "
        "refresh one tick is 1%, so it shows whole percents and '<1%' under a tick; with the "
        "probes at least tx% + rx%, shown to 0.1% when they measured more than the ticks",
    ),
    Column(
        "txt",
        "tx%",
        5,
        priority=1,
        help="time in NET_TX softirq (probes: entry to exit, ns), a part of softirq time",
    ),
    Column("rxt", "rx%", 5, priority=1, help="time in NET_RX softirq (probes), a part of it"),
    Column("drop", "drop/s", 6, priority=1, help="softnet backlog drops per second"),
    Column("sqz", "sqz/s", 6, priority=1, help="NET_RX budget/time squeezes per second"),
    Column("dropt", "drops", 7, priority=2, help="softnet drops since boot"),
    Column("sqzt", "squeezes", 8, priority=2, help="time squeezes since boot"),
    Column("proc", "proc/s", 7, priority=3, help="packets processed by the backlog per second"),
)

HEAT_METRICS: tuple[tuple[str, Callable[[CpuRow], float]], ...] = (
    ("NET_TX/s", lambda c: c.net_tx_per_s),
    ("NET_RX/s", lambda c: c.net_rx_per_s),
    ("softirq%", lambda c: c.softirq_pct),
    ("drop+sqz", lambda c: c.softnet_dropped_per_s + c.time_squeeze_per_s),
)
HEAT_LABEL_W = 15  # "NET_TX/s  12k " : 64 CPUs per line at 80 columns
SPARK_METRICS: tuple[str, ...] = tuple(m.key for m in CPU_METRICS)


# ---- the list view: a row per CPU -----------------------------------------------------------


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _mean_known(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return _mean(known) if known else None


def _total_resolution(cpus: Sequence[CpuRow]) -> float | None:
    """The 'all' share's resolution: a tick of one CPU, over all of them."""
    known = [c.softirq_pct_resolution for c in cpus]
    if not cpus or any(r is None for r in known):
        return None
    return _mean([r for r in known if r is not None]) / len(cpus)


def cpu_total(cpus: Sequence[CpuRow]) -> CpuRow:
    """The 'all' row: rates summed, time shares averaged over CPUs."""
    return CpuRow(
        cpu=-1,
        net_tx_per_s=sum(c.net_tx_per_s for c in cpus),
        net_rx_per_s=sum(c.net_rx_per_s for c in cpus),
        softirq_pct=_mean([c.softirq_pct for c in cpus]),
        softnet_processed_per_s=sum(c.softnet_processed_per_s for c in cpus),
        softnet_dropped=sum(c.softnet_dropped for c in cpus),
        time_squeeze=sum(c.time_squeeze for c in cpus),
        softnet_dropped_per_s=sum(c.softnet_dropped_per_s for c in cpus),
        time_squeeze_per_s=sum(c.time_squeeze_per_s for c in cpus),
        net_tx_time_pct=_mean_known([c.net_tx_time_pct for c in cpus]),
        net_rx_time_pct=_mean_known([c.net_rx_time_pct for c in cpus]),
        softirq_stat_pct=_mean_known([c.softirq_stat_pct for c in cpus]),
        softirq_pct_resolution=_total_resolution(cpus),
        softirq_pct_source="probes" if any(c.softirq_pct_source == "probes" for c in cpus) else "",
    )


def fmt_share(c: CpuRow) -> str:
    """The softirq share with the resolution its data has: /proc/stat's ticks are worth
    ``softirq_pct_resolution`` percent each (1% at a 1 s refresh), so whole percents, and
    '<1%' when no tick fell; the probes measure nanoseconds, so 0.1% when they set it."""
    pct, res = c.softirq_pct, c.softirq_pct_resolution
    if c.softirq_pct_source == "probes" or res is None:
        return fmt_pct(pct)  # one decimal under 10%; older recordings too
    if pct <= 0:
        return f"<{max(res, 0.1):.1g}%" if res < 9.5 else "0%"  # at most 5 cells
    if res >= 1 or pct >= 9.95:
        return f"{pct:.0f}%"
    return f"{pct:.1f}%"


def _cpu_cells(c: CpuRow, name: str, si_w: int, glyphs: Glyphs, role: str) -> dict[str, Line]:
    pct_label = fmt_share(c).rjust(5)
    return {
        "cpu": [(name, role)],
        "tx": [(fmt_si(c.net_tx_per_s), role if c.net_tx_per_s else "dim")],
        "rx": [(fmt_si(c.net_rx_per_s), role if c.net_rx_per_s else "dim")],
        "si": bar(c.softirq_pct / 100.0, si_w - 6, glyphs, high_at=0.5)
        + [(" ", "text"), (pct_label, role if c.softirq_pct else "dim")],
        "txt": [(fmt_pct(c.net_tx_time_pct), "text" if c.net_tx_time_pct else "dim")],
        "rxt": [(fmt_pct(c.net_rx_time_pct), "text" if c.net_rx_time_pct else "dim")],
        "drop": value_frag(fmt_si(c.softnet_dropped_per_s), c.softnet_dropped_per_s),
        "sqz": value_frag(fmt_si(c.time_squeeze_per_s), c.time_squeeze_per_s, "warn"),
        "dropt": [(fmt_si(c.softnet_dropped), "text" if c.softnet_dropped else "dim")],
        "sqzt": [(fmt_si(c.time_squeeze), "text" if c.time_squeeze else "dim")],
        "proc": [(fmt_si(c.softnet_processed_per_s), "text")],
    }


def cpu_list_rows(snapshot: Snapshot | None) -> int:
    """Body lines of the per-CPU list view: an 'all' row plus one per CPU."""
    if snapshot is None or not snapshot.cpus:
        return 1
    return len(snapshot.cpus) + 1


# ---- the heat view: a cell per CPU ----------------------------------------------------------


def heat_per_line(width: int) -> int:
    room = max(8, width - HEAT_LABEL_W)
    step = 16 if room >= 16 else 8  # whole blocks of 16 CPUs per line read more easily
    return max(step, room // step * step)


def heat_rows(n_cpus: int, width: int) -> int:
    return len(HEAT_METRICS) * max(1, math.ceil(n_cpus / heat_per_line(width)))


def _heat_cell(value: float, top: float, glyphs: Glyphs) -> Frag:
    if value <= 0 or top <= 0:
        return (glyphs.heat_zero, "dim")
    level = min(8, max(1, math.ceil(value / top * 8)))  # any activity shows as level >= 1
    role = "heat-1" if level <= 3 else "heat-2" if level <= 6 else "heat-3"
    return (glyphs.heat[level - 1], role)


def _heat_label(name: str, top: float, start: int) -> Frag:
    """A metric's first line names it and its busiest CPU's value; later lines their CPU."""
    if start == 0:
        top_label = fmt_pct(top) if name.endswith("%") else fmt_si(top)
        label, role = f"{name:<8} {top_label:>5}", "heading"
    else:
        label, role = f"cpu {start}".rjust(HEAT_LABEL_W - 1), "dim"
    return (label.ljust(HEAT_LABEL_W - 1)[: HEAT_LABEL_W - 1] + " ", role)


def cpu_heat_lines(snapshot: Snapshot, width: int, glyphs: Glyphs) -> tuple[Line, list[Line]]:
    """Dense view: one cell per CPU and metric, height relative to that metric's busiest CPU."""
    cpus = sorted(snapshot.cpus, key=lambda c: c.cpu)
    per = heat_per_line(width)
    total = cpu_total(cpus)
    head: Line = [
        (f"{len(cpus)} CPUs, 1 cell each; height = share of the busiest ", "heading"),
        (f"({glyphs.heat_zero} idle)", "dim"),
        (f"  all: tx {fmt_si(total.net_tx_per_s)}/s rx {fmt_si(total.net_rx_per_s)}/s", "text"),
        (f" si {fmt_share(total)}", "text"),
    ]
    body: list[Line] = []
    for name, get in HEAT_METRICS:
        values = [get(c) for c in cpus]
        top = max(values, default=0.0)
        for start in range(0, max(1, len(cpus)), per):
            line: Line = [_heat_label(name, top, start)]
            line.extend(_heat_cell(v, top, glyphs) for v in values[start : start + per])
            body.append(line)
    return head, body


# ---- the panel ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CpuView:
    """The panel's header, body, view ('list' or 'heat') and per body line the CPU it shows
    (None for the 'all' row, the heat strip and messages)."""

    head: Line
    body: list[Line]
    view: str
    targets: list[CpuTarget | None]


def cpu_view(
    snapshot: Snapshot | None,
    width: int,
    height: int,
    ascii_only: bool = False,
    spark: SparkSpec | None = None,
    selected: Target | None = None,
) -> CpuView:
    """The softirq panel; view is 'list', or 'heat' when a row per CPU would not fit in
    ``height`` lines (including the header). With ``spark`` the list has a history column,
    with ``selected`` a pointer on that CPU's row."""
    glyphs = glyphs_for(ascii_only)
    columns = [c for c in CPU_COLUMNS if spark is not None or c.key != "hist"]
    layout = fit_columns(columns, width)
    if snapshot is None or not snapshot.cpus:
        msg = "waiting for the first sample..." if snapshot is None else "no CPU data"
        return CpuView(header_row(layout, glyphs), [[(msg, "dim")]], "list", [None])
    if cpu_list_rows(snapshot) + 1 > height:
        head, body = cpu_heat_lines(snapshot, width, glyphs)
        return CpuView(truncate(head, width, glyphs.ellipsis), body, "heat", [None] * len(body))
    si_w = column_width(layout, "si")
    cpus = sorted(snapshot.cpus, key=lambda c: c.cpu)
    targets = [CpuTarget(c.cpu) for c in cpus]
    sparks: list[Line] = []
    hist_w = dict((c.key, w) for c, w in layout).get("hist")
    if spark is not None and hist_w is not None:
        cell_s = spark_cell_s(spark.interval_s, hist_w, spark.history.span_s)
        windows = spark.history.windows(targets, spark.metric, hist_w, cell_s)
        top = spark_top(windows)
        sparks = [spark_line(w, top, spark.glyphs) for w in windows]
        title = spark_title(spark.metric, hist_w, cell_s)
        layout = [
            (dataclasses.replace(c, title=title, short=SHORT_TITLES[spark.metric]), w)
            if c.key == "hist"
            else (c, w)
            for c, w in layout
        ]
    body = [render_row(layout, _cpu_cells(cpu_total(cpus), "all", si_w, glyphs, "group"), glyphs)]
    for n, (c, target) in enumerate(zip(cpus, targets, strict=True)):
        cells = _cpu_cells(c, str(c.cpu), si_w, glyphs, "text")
        if sparks:
            cells["hist"] = sparks[n]
        if target == selected:
            cells["cpu"] = [(glyphs.pointer, "heading"), (str(c.cpu), "text")]
        body.append(render_row(layout, cells, glyphs))
    return CpuView(header_row(layout, glyphs), body, "list", [None, *targets])


def cpu_lines(
    snapshot: Snapshot | None, width: int, height: int, ascii_only: bool = False
) -> tuple[Line, list[Line], str]:
    """(header, body, view) of the softirq panel without history or selection (``cpu_view``
    has both)."""
    view = cpu_view(snapshot, width, height, ascii_only)
    return view.head, view.body, view.view
