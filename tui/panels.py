"""The dashboard's panels: header, TX queues and per-CPU softirqs.

Each panel is split in two:
- a pure layout function of a Snapshot (plus view options such as width and sort key) that
  returns lines of ``(text, role)`` fragments - testable without a terminal;
- a thin Line-API widget that turns roles into styles (theme variables via component
  classes, see app.tcss) and draws only the visible lines.

Nothing here touches the kernel: panels see Snapshots and nothing else.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.segment import Segment
from rich.style import Style
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widget import Widget

from txtop.core.model import CpuRow, DeviceRow, LatencyStats, QdiscStats, QueueRow, Snapshot
from txtop.core.text import format_ns

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


# ---- glyphs ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Glyphs:
    bar_full: str
    bar_partial: str  # 1/8 .. 7/8 of a cell; empty string: whole cells only
    bar_empty: str
    heat: str  # 8 levels, lowest first
    heat_zero: str
    ellipsis: str
    sep: str
    micro: str
    ascii: bool


UNICODE = Glyphs("█", "▏▎▍▌▋▊▉", "·", "▁▂▃▄▅▆▇█", "·", "…", "│", "µ", False)
ASCII = Glyphs("#", "", ".", ":-=+*#%@", ".", "~", "|", "u", True)


def glyphs_for(ascii_only: bool) -> Glyphs:
    return ASCII if ascii_only else UNICODE


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


# ---- fragments and columns ------------------------------------------------------------------


def line_text(line: Line) -> str:
    return "".join(text for text, _ in line)


def frag_len(frags: Sequence[Frag]) -> int:
    return sum(len(text) for text, _ in frags)


def truncate(frags: Sequence[Frag], width: int, ellipsis: str = "…") -> Line:
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


def fit(frags: Sequence[Frag], width: int, align: str, ellipsis: str = "…") -> Line:
    """Pad or cut fragments to exactly ``width`` cells."""
    cut = truncate(frags, width, ellipsis)
    pad = width - frag_len(cut)
    if pad <= 0:
        return cut
    return cut + [(" " * pad, "text")] if align == "<" else [(" " * pad, "text")] + cut


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


def fit_columns(columns: Sequence[Column], width: int, gap: int = 1) -> list[tuple[Column, int]]:
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


def render_row(
    layout: Sequence[tuple[Column, int]], cells: dict[str, Sequence[Frag]], glyphs: Glyphs
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


def value_frag(text: str, value: float | None, bad_role: str = "alert") -> Line:
    """A number that is dim when zero or absent and highlighted (``bad_role``) when not."""
    if value is None:
        return [("-", "dim")]
    return [(text, bad_role if value > 0 else "dim")]


# ---- TX queues panel ------------------------------------------------------------------------

QUEUE_COLUMNS: tuple[Column, ...] = (
    Column("name", "queue", 8, align="<", help="device, or tx-N under its device"),
    Column(
        "bql",
        "BQL inflight/limit",
        14,
        grow=22,
        align="<",
        short="BQL infl/lim",
        help="bytes handed to the driver and not yet completed, against BQL's current limit",
    ),
    Column(
        "qdisc",
        "qdisc",
        8,
        grow=4,
        align="<",
        priority=1,
        help="qdisc serving the queue ('shared': one root qdisc for all queues)",
    ),
    Column("backlog", "backlog", 9, grow=1, priority=1, help="qdisc backlog, bytes/packets"),
    Column("drops", "drop/s", 6, priority=1, help="qdisc drops per second"),
    Column("requeues", "rq/s", 4, priority=1, help="qdisc requeues per second"),
    Column("pps", "pkt/s", 5, priority=1, help="TX packets per second"),
    Column("bps", "bit/s", 5, priority=1, help="TX bits per second"),
    Column("p99q", "p99q", 5, priority=2, help="p99 wait in the qdisc, sampled packets"),
    Column("p99t", "p99t", 5, priority=2, help="p99 first-to-last stage, sampled packets"),
    Column("xoff", "xoff/s", 6, priority=3, help="dequeues that found the TX queue stopped"),
    Column("errors", "err/s", 5, priority=3, help="driver transmit errors per second"),
    Column("p50t", "p50t", 5, priority=4, help="median first-to-last stage"),
    Column("maxt", "maxt", 5, priority=4, help="slowest first-to-last stage"),
)

IFNAME_MAX = 15  # IFNAMSIZ - 1
SORT_KEYS: tuple[str, ...] = ("device/queue", "busiest tx", "backlog", "drops")


@dataclass(frozen=True, slots=True)
class QueueGroup:
    dev: str
    device: DeviceRow | None
    queues: tuple[QueueRow, ...]


def group_queues(snapshot: Snapshot) -> list[QueueGroup]:
    """Queue rows grouped per device, in the snapshot's interface order."""
    devices = {d.dev: d for d in snapshot.devices}
    order: list[str] = list(snapshot.interfaces)
    for name in list(devices) + [q.dev for q in snapshot.queues]:
        if name not in order:
            order.append(name)
    rows: dict[str, list[QueueRow]] = {name: [] for name in order}
    for q in snapshot.queues:
        rows[q.dev].append(q)
    return [
        QueueGroup(name, devices.get(name), tuple(sorted(rows[name], key=lambda q: q.queue)))
        for name in order
        if name in devices or rows[name]
    ]


def _distinct_qdiscs(queues: Iterable[QueueRow]) -> list[QdiscStats]:
    """One entry per qdisc: a shared root qdisc appears in every queue row but counts once."""
    seen: dict[tuple[str, str], QdiscStats] = {}
    for q in queues:
        if q.qdisc is not None:
            seen.setdefault((q.qdisc.handle, q.qdisc.parent), q.qdisc)
    return list(seen.values())


def _queue_tx_bps(q: QueueRow) -> float:
    return q.tx.bps if q.tx is not None else -1.0


def _group_tx_bps(g: QueueGroup) -> float:
    if g.device is not None:
        return g.device.tx_bps
    return sum(max(0.0, _queue_tx_bps(q)) for q in g.queues)


def _group_backlog(g: QueueGroup) -> int:
    return sum(qd.backlog_bytes for qd in _distinct_qdiscs(g.queues))


def _group_drops(g: QueueGroup) -> float:
    return sum(qd.drops_per_s for qd in _distinct_qdiscs(g.queues))


def sort_groups(groups: list[QueueGroup], sort_key: str) -> list[QueueGroup]:
    """Order device groups and the queues inside each by ``sort_key`` (largest first)."""
    if sort_key == "device/queue":
        return groups
    group_key: Callable[[QueueGroup], float]
    queue_key: Callable[[QueueRow], float]
    if sort_key == "busiest tx":
        group_key, queue_key = _group_tx_bps, _queue_tx_bps
    elif sort_key == "backlog":
        group_key = _group_backlog
        queue_key = lambda q: q.qdisc.backlog_bytes if q.qdisc else -1  # noqa: E731
    elif sort_key == "drops":
        group_key = _group_drops
        queue_key = lambda q: q.qdisc.drops_per_s if q.qdisc else -1  # noqa: E731
    else:
        raise ValueError(f"unknown sort key {sort_key!r}")
    # sorted() is stable, so ties keep device/queue order.
    return [
        QueueGroup(g.dev, g.device, tuple(sorted(g.queues, key=queue_key, reverse=True)))
        for g in sorted(groups, key=group_key, reverse=True)
    ]


def _bql_cell(inflight: int, limit: int, width: int, glyphs: Glyphs) -> Line:
    label = f"{fmt_bytes(inflight)}/{fmt_bytes(limit)}"
    bar_w = width - len(label) - 1
    if limit > 0:
        ratio = inflight / limit
    else:
        ratio = 1.0 if inflight > 0 else 0.0
    if bar_w < 3:
        return [(label, "bar-high" if ratio >= 0.8 else "text")]
    return bar(ratio, bar_w, glyphs) + [(" ", "text"), (label, "text")]


def _lat(stats: LatencyStats | None, attr: str, glyphs: Glyphs) -> Line:
    if stats is None or stats.count == 0:
        return [("-", "dim")]
    return [(format_ns(getattr(stats, attr), ascii=glyphs.micro != "µ", short=True), "text")]


def _qdisc_cells(qd: QdiscStats | None, shared: bool) -> dict[str, Line]:
    if qd is None:
        return {"qdisc": [("-", "dim")], "backlog": [("-", "dim")]}
    if shared:  # the device row carries this qdisc's numbers; repeating them misleads
        return {"qdisc": [("shared", "dim")]}
    backlog = (
        [(f"{fmt_bytes(qd.backlog_bytes)}/{qd.backlog_pkts}p", "warn")]
        if qd.backlog_bytes or qd.backlog_pkts
        else [("0", "dim")]
    )
    return {
        "qdisc": [(qd.kind, "text")],
        "backlog": backlog,
        "drops": value_frag(fmt_si(qd.drops_per_s), qd.drops_per_s),
        "requeues": value_frag(fmt_si(qd.requeues_per_s), qd.requeues_per_s, "warn"),
    }


def _tx_cells(q: QueueRow, glyphs: Glyphs) -> dict[str, Line]:
    cells: dict[str, Line] = {}
    tx = q.tx
    if tx is not None:
        # "~": extrapolated from trace windows (the probes were attached part of the time)
        est = "~" if tx.estimated else ""
        cells["pps"] = [(est + fmt_si(tx.pps), "text" if tx.pps else "dim")]
        cells["bps"] = [(est + fmt_si(tx.bps), "text" if tx.bps else "dim")]
        cells["xoff"] = value_frag(est + fmt_si(tx.stopped_per_s), tx.stopped_per_s, "warn")
        cells["errors"] = value_frag(est + fmt_si(tx.errors_per_s), tx.errors_per_s)
    else:
        for key in ("pps", "bps", "xoff", "errors"):
            cells[key] = [("-", "dim")]
    total = q.latency_ns.get("total")
    cells["p99q"] = _lat(q.latency_ns.get("qdisc"), "p99", glyphs)
    cells["p99t"] = _lat(total, "p99", glyphs)
    cells["p50t"] = _lat(total, "p50", glyphs)
    cells["maxt"] = _lat(total, "max", glyphs)
    return cells


def _device_cells(g: QueueGroup, bql_w: int, glyphs: Glyphs, name: str) -> dict[str, Line]:
    dev = g.device
    down = dev is not None and dev.oper_state not in ("up", "unknown")
    cells: dict[str, Line] = {"name": [(name, "dim" if down else "group")]}
    bqls = [q.bql for q in g.queues if q.bql is not None]
    if down:
        cells["bql"] = [(f"link {dev.oper_state}" if dev else "link down", "dim")]
    elif bqls:
        cells["bql"] = _bql_cell(
            sum(b.inflight for b in bqls), sum(b.limit for b in bqls), bql_w, glyphs
        )
    else:
        cells["bql"] = [("no BQL", "dim")]
    qdiscs = _distinct_qdiscs(g.queues)
    root = dev.root_qdisc if dev is not None else None
    cells["qdisc"] = [(root or (qdiscs[0].kind if len(qdiscs) == 1 else "-"), "text")]
    if qdiscs:
        backlog_b = sum(qd.backlog_bytes for qd in qdiscs)
        backlog_p = sum(qd.backlog_pkts for qd in qdiscs)
        drops = sum(qd.drops_per_s for qd in qdiscs)
        requeues = sum(qd.requeues_per_s for qd in qdiscs)
        cells["backlog"] = (
            [(f"{fmt_bytes(backlog_b)}/{backlog_p}p", "warn")]
            if backlog_b or backlog_p
            else [("0", "dim")]
        )
        cells["drops"] = value_frag(fmt_si(drops), drops)
        cells["requeues"] = value_frag(fmt_si(requeues), requeues, "warn")
    else:
        cells["backlog"] = [("-", "dim")]
    if dev is not None:
        cells["pps"] = [(fmt_si(dev.tx_pps), "group" if dev.tx_pps else "dim")]
        cells["bps"] = [(fmt_si(dev.tx_bps), "group" if dev.tx_bps else "dim")]
    return cells


def queue_columns(groups: Sequence[QueueGroup], width: int) -> list[Column]:
    """QUEUE_COLUMNS with the name column as wide as the longest device name allows: at 80
    columns it may take up to 3 cells from the BQL bar, wider terminals give it more."""
    longest = max((len(g.dev) for g in groups), default=0)
    base = {c.key: c for c in QUEUE_COLUMNS}
    name_w = min(IFNAME_MAX, max(base["name"].width, longest), 12 + max(0, width - 79))
    taken = max(0, name_w - base["name"].width - 1)  # one spare cell exists at 80 columns
    return [
        dataclasses.replace(c, width=name_w)
        if c.key == "name"
        else dataclasses.replace(c, width=c.width - taken)
        if c.key == "bql"
        else c
        for c in QUEUE_COLUMNS
    ]


def queue_lines(
    snapshot: Snapshot | None, width: int, sort_key: str = "device/queue", ascii_only: bool = False
) -> tuple[Line, list[Line]]:
    """(column header, body lines) of the TX queues panel for ``width`` cells."""
    glyphs = glyphs_for(ascii_only)
    groups = sort_groups(group_queues(snapshot), sort_key) if snapshot is not None else []
    layout = fit_columns(queue_columns(groups, width), width)
    head = header_row(layout, glyphs)
    if snapshot is None:
        return head, [[("waiting for the first sample...", "dim")]]
    if not groups:
        return head, [[("no interface with TX queues selected", "dim")]]
    bql_w = dict((c.key, w) for c, w in layout)["bql"]
    body: list[Line] = []
    for g in groups:
        if len(g.queues) == 1:
            # One queue: a single row carries both device and queue numbers.
            q = g.queues[0]
            cells = _device_cells(g, bql_w, glyphs, g.dev)
            if q.bql is not None and "link" not in line_text(cells["bql"]):
                cells["bql"] = _bql_cell(q.bql.inflight, q.bql.limit, bql_w, glyphs)
            tx = _tx_cells(q, glyphs)
            if q.tx is None:  # keep the device's rates
                tx = {k: v for k, v in tx.items() if k not in ("pps", "bps")}
            cells.update(tx)
            cells.update(_qdisc_cells(q.qdisc, shared=False))
            body.append(render_row(layout, cells, glyphs))
            continue
        body.append(render_row(layout, _device_cells(g, bql_w, glyphs, g.dev), glyphs))
        for q in g.queues:
            cells = {"name": [(f"  tx-{q.queue}", "text")]}
            if q.bql is not None:
                cells["bql"] = _bql_cell(q.bql.inflight, q.bql.limit, bql_w, glyphs)
            else:
                cells["bql"] = [("no BQL", "dim")]
            cells.update(
                _qdisc_cells(q.qdisc, shared=q.qdisc is not None and not q.qdisc.per_queue)
            )
            cells.update(_tx_cells(q, glyphs))
            body.append(render_row(layout, cells, glyphs))
    return head, body


def queue_body_rows(snapshot: Snapshot | None) -> int:
    """How many body lines ``queue_lines`` produces (for layout, without rendering)."""
    if snapshot is None:
        return 1
    groups = group_queues(snapshot)
    return max(1, sum(1 if len(g.queues) <= 1 else 1 + len(g.queues) for g in groups))


# ---- softirq panel --------------------------------------------------------------------------

CPU_COLUMNS: tuple[Column, ...] = (
    Column("cpu", "cpu", 4, align="<", help="CPU number; 'all' sums rates, averages shares"),
    Column("tx", "NET_TX/s", 8, help="NET_TX softirqs run per second (/proc/softirqs)"),
    Column("rx", "NET_RX/s", 8, help="NET_RX softirqs run per second"),
    Column("si", "softirq time", 12, grow=14, align="<", help="share of the CPU in softirq"),
    Column("txt", "tx%", 5, priority=1, help="time in NET_TX softirq (probes)"),
    Column("rxt", "rx%", 5, priority=1, help="time in NET_RX softirq (probes)"),
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


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _cpu_cells(c: CpuRow, name: str, si_w: int, glyphs: Glyphs, role: str) -> dict[str, Line]:
    pct_label = fmt_pct(c.softirq_pct).rjust(5)
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


def cpu_total(cpus: Sequence[CpuRow]) -> CpuRow:
    """The 'all' row: rates summed, time shares averaged over CPUs."""

    def mean_opt(values: list[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        return _mean(known) if known else None

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
        net_tx_time_pct=mean_opt([c.net_tx_time_pct for c in cpus]),
        net_rx_time_pct=mean_opt([c.net_rx_time_pct for c in cpus]),
    )


def cpu_list_rows(snapshot: Snapshot | None) -> int:
    """Body lines of the per-CPU list view: an 'all' row plus one per CPU."""
    if snapshot is None or not snapshot.cpus:
        return 1
    return len(snapshot.cpus) + 1


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


def cpu_heat_lines(snapshot: Snapshot, width: int, glyphs: Glyphs) -> tuple[Line, list[Line]]:
    """Dense view: one cell per CPU and metric, height relative to that metric's busiest CPU."""
    cpus = sorted(snapshot.cpus, key=lambda c: c.cpu)
    per = heat_per_line(width)
    total = cpu_total(cpus)
    head: Line = [
        (f"{len(cpus)} CPUs, 1 cell each; height = share of the busiest ", "heading"),
        (f"({glyphs.heat_zero} idle)", "dim"),
        (f"  all: tx {fmt_si(total.net_tx_per_s)}/s rx {fmt_si(total.net_rx_per_s)}/s", "text"),
        (f" si {fmt_pct(total.softirq_pct)}", "text"),
    ]
    body: list[Line] = []
    for name, get in HEAT_METRICS:
        values = [get(c) for c in cpus]
        top = max(values, default=0.0)
        for start in range(0, max(1, len(cpus)), per):
            if start == 0:
                top_label = fmt_pct(top) if name.endswith("%") else fmt_si(top)
                label = f"{name:<8} {top_label:>5}"
                role = "heading"
            else:
                label = f"cpu {start}".rjust(HEAT_LABEL_W - 1)
                role = "dim"
            line: Line = [(label.ljust(HEAT_LABEL_W - 1)[: HEAT_LABEL_W - 1] + " ", role)]
            line.extend(_heat_cell(v, top, glyphs) for v in values[start : start + per])
            body.append(line)
    return head, body


def cpu_lines(
    snapshot: Snapshot | None, width: int, height: int, ascii_only: bool = False
) -> tuple[Line, list[Line], str]:
    """(header, body, view) of the softirq panel; view is 'list', or 'heat' when a row per
    CPU would not fit in ``height`` lines (including the header)."""
    glyphs = glyphs_for(ascii_only)
    layout = fit_columns(CPU_COLUMNS, width)
    if snapshot is None or not snapshot.cpus:
        msg = "waiting for the first sample..." if snapshot is None else "no CPU data"
        return header_row(layout, glyphs), [[(msg, "dim")]], "list"
    if cpu_list_rows(snapshot) + 1 > height:
        head, body = cpu_heat_lines(snapshot, width, glyphs)
        return truncate(head, width, glyphs.ellipsis), body, "heat"
    si_w = dict((c.key, w) for c, w in layout)["si"]
    cpus = sorted(snapshot.cpus, key=lambda c: c.cpu)
    body = [render_row(layout, _cpu_cells(cpu_total(cpus), "all", si_w, glyphs, "group"), glyphs)]
    body.extend(
        render_row(layout, _cpu_cells(c, str(c.cpu), si_w, glyphs, "text"), glyphs) for c in cpus
    )
    return header_row(layout, glyphs), body, "list"


# ---- header ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HeaderState:
    interval_s: float
    mode: str
    paused: bool = False
    paused_ticks: int = 0
    source_error: str = ""
    theme: str = ""
    recording: bool = False  # --record is writing every snapshot


def probe_frags(snapshot: Snapshot | None) -> Line:
    if snapshot is None:
        return [("probes:", "heading"), (" waiting for the first sample", "dim")]
    p = snapshot.probes
    out: Line = [("probes:", "heading"), (" ", "text")]
    if p.state == "starting":
        out.append(("compiling probes...", "warn"))
    elif p.state == "running":
        out.append(("running", "text"))
        every = p.sampling.get("every")
        cap = p.sampling.get("max_per_s")
        if every:
            out.append((f"  sampling 1/{every}", "text"))
            if cap:
                out.append((f" (max {fmt_si(cap)}/s)", "text"))
        duty = p.trace_duty_pct
        if duty is not None and duty < 100:
            # trace windows: the per-packet probes are attached this share of the time (the
            # duty, not this tick's share: a window comes every 1-10 s)
            out.append((f"  traced {duty:.2g}% of the time ({p.trace_mode or 'auto'})", "warn"))
        out.append(("  lost ", "text"))
        out.append((str(p.lost_events), "alert" if p.lost_events else "dim"))
        if p.bql_stalls:  # napi:dql_stall_detected: a TX completion stalled (see bql stall_cnt)
            out.append(("  BQL stalls ", "text"))
            out.append((fmt_si(p.bql_stalls), "warn"))
        if p.skipped_runs:  # another BPF program was running on that CPU: kernel's choice
            out.append(("  skipped ", "text"))
            out.append((fmt_si(p.skipped_runs), "warn"))
        if p.unavailable:
            out.append((f"  partial: {', '.join(sorted(p.unavailable))} unavailable", "warn"))
    elif p.state == "unavailable":
        out.append(("unavailable", "alert"))
        if p.reason:
            out.append((f": {p.reason}", "text"))
    else:
        out.append((p.state, "dim"))
        if p.reason:
            out.append((f" ({p.reason})", "dim"))
    if p.notice:
        out.append((f"  {p.notice}", "dim"))
    return out


def replay_frags(replay: Mapping[str, Any], glyphs: Glyphs, width: int = 8) -> Line:
    """The replay position: ``replay 12.0/30.0s ███▎···· 2x PAUSED``."""
    at = float(replay.get("at_s") or 0.0)
    total = float(replay.get("total_s") or 0.0)
    ratio = at / total if total > 0 else 1.0
    out: Line = [(f" replay {at:.1f}/{total:.1f}s ", "text")]
    out += bar(ratio, width, glyphs, high_at=2.0)
    speed = replay.get("speed")
    if isinstance(speed, (int, float)):
        out.append((f" {speed:g}x", "text"))
    if replay.get("paused"):
        out.append((" PAUSED", "badge"))
    out.append((" ", "text"))
    return out


def replay_note_frags(replay: Mapping[str, Any] | None) -> Line:
    """Line 2's start in replay: why the recording stops early, and the source's notice."""
    if not replay:
        return []
    out: Line = []
    damage = replay.get("damage")
    if damage:
        out += [("recording damaged: ", "alert"), (f"{damage} - showing the intact part", "warn")]
    notice = replay.get("notice")
    if notice:
        out += [("  " if out else "", "text"), (str(notice), "warn")]
    return out


def header_lines(
    snapshot: Snapshot | None, state: HeaderState, width: int, glyphs: Glyphs
) -> list[Line]:
    sep = (f" {glyphs.sep} ", "dim")
    replay = snapshot.replay if snapshot is not None else None
    first: Line = [(" ", "text"), ("txtop", "heading")]
    if snapshot is not None:
        first += [sep, (snapshot.host, "group"), sep, (snapshot.kernel, "text"), sep]
        first.append((",".join(snapshot.interfaces) or "no interfaces", "text"))
    if not replay:  # in replay the position and speed (right) replace interval and mode
        first += [sep, (f"every {fmt_interval(state.interval_s)}", "text"), sep]
        first.append((state.mode, "text"))
    if snapshot is not None:
        first += [sep, (time.strftime("%H:%M:%S", time.localtime(snapshot.time)), "text")]
    badge: Line = []
    if replay:
        badge += replay_frags(replay, glyphs)
    if state.recording:
        badge += [(" REC ", "badge"), (" ", "text")]
    if state.paused:
        badge += [(f" PAUSED +{state.paused_ticks} ", "badge")]
    room = width - frag_len(badge)
    first = fit(first, max(0, room), "<", glyphs.ellipsis) + badge
    note = replay_note_frags(replay)
    second = [(" ", "text")] + note + ([sep] if note else []) + probe_frags(snapshot)
    if state.source_error:
        second = [(" ", "text"), ("data source failed: ", "alert"), (state.source_error, "text")]
    return [first, fit(second, width, "<", glyphs.ellipsis)]


# ---- widgets --------------------------------------------------------------------------------

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
    """Draws pinned header lines and a scrolled body of fragment lines (Line API)."""

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


class QueuesPanel(LinesView):
    """Per (device, TX queue): BQL in flight vs. limit, the qdisc in front of it, rates."""

    sort_key: str = SORT_KEYS[0]

    def rebuild(self) -> None:
        head, body = queue_lines(
            self.snapshot, self.scrollable_content_region.width, self.sort_key, self.ascii_only
        )
        self.set_lines([head], body)

    def set_sort(self, sort_key: str) -> None:
        self.sort_key = sort_key
        self.rebuild()


class CpusPanel(LinesView):
    """Per CPU: NET_TX/NET_RX softirq rates and time; a heat strip when rows don't fit."""

    view: str = "list"

    def rebuild(self) -> None:
        region = self.scrollable_content_region
        head, body, self.view = cpu_lines(
            self.snapshot, region.width, region.height, self.ascii_only
        )
        self.set_lines([head], body)


class HeaderBar(RoleStyled):
    """Two lines: where/what/how often, and the state of the BPF probes."""

    def __init__(self, state: HeaderState, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.state = state
        self.snapshot: Snapshot | None = None
        self._lines: list[Line] = []

    def set(self, snapshot: Snapshot | None = None, **changes: object) -> None:
        if snapshot is not None:
            self.snapshot = snapshot
        if changes:
            fields = {f: getattr(self.state, f) for f in HeaderState.__slots__}
            fields.update(changes)
            self.state = HeaderState(**fields)  # type: ignore[arg-type]
        self._lines = []
        self.refresh()

    def text(self) -> list[str]:
        width = self.size.width or 80
        glyphs = glyphs_for(self.ascii_only)
        return [line_text(x) for x in header_lines(self.snapshot, self.state, width, glyphs)]

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if not self._lines or frag_len(self._lines[0]) != width:
            glyphs = glyphs_for(self.ascii_only)
            self._lines = header_lines(self.snapshot, self.state, width, glyphs)
        if y < len(self._lines):
            return self.strip(self._lines[y], width)
        return Strip.blank(width, self.rich_style)


class KeyHints(RoleStyled):
    """One line of the app's key hints. Static: unlike Textual's Footer it does not follow
    the focused widget, so the global keys stay visible at 80 columns (the waterfall shows
    its own keys in its legend, and ``?`` lists every key)."""

    def __init__(self, hints: Sequence[tuple[str, str]], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.hints = list(hints)

    def line(self) -> Line:
        out: Line = []
        for key, what in self.hints:
            out += [(f" {key}", "heading"), (f" {what} ", "text")]
        return out

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if y == 0:
            return self.strip(
                truncate(self.line(), width, glyphs_for(self.ascii_only).ellipsis), width
            )
        return Strip.blank(width, self.rich_style)
