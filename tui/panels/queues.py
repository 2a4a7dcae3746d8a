"""The TX queues panel: per device and TX queue, BQL bytes in flight against the limit, the
qdisc in front of the queue with its backlog, rates and sampled latencies.

Pure: Snapshot (plus width, sort key) in, fragment lines out; the widget is
``widgets.QueuesPanel``. Textual-free.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from txtop.core.model import DeviceRow, LatencyStats, QdiscStats, QueueRow, Snapshot
from txtop.core.text import format_ns
from txtop.tui.glyphs import Glyphs, glyphs_for

from .format import (
    Column,
    Layout,
    Line,
    bar,
    column_width,
    fit_columns,
    fmt_bytes,
    fmt_si,
    header_row,
    line_text,
    render_row,
    value_frag,
)

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

Cells = dict[str, Line]  # column key -> the cell's fragments


# ---- grouping and sorting -------------------------------------------------------------------


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
        return float(g.device.tx_bps)
    return sum(max(0.0, _queue_tx_bps(q)) for q in g.queues)


def _group_backlog(g: QueueGroup) -> int:
    return sum(qd.backlog_bytes for qd in _distinct_qdiscs(g.queues))


def _group_drops(g: QueueGroup) -> float:
    return float(sum(qd.drops_per_s for qd in _distinct_qdiscs(g.queues)))


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


# ---- cells ----------------------------------------------------------------------------------


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
    return [(format_ns(getattr(stats, attr), ascii=glyphs.ascii, short=True), "text")]


def _backlog_cell(backlog_bytes: int, backlog_pkts: int) -> Line:
    if backlog_bytes or backlog_pkts:
        return [(f"{fmt_bytes(backlog_bytes)}/{backlog_pkts}p", "warn")]
    return [("0", "dim")]


def _qdisc_cells(qd: QdiscStats | None, shared: bool) -> Cells:
    if qd is None:
        return {"qdisc": [("-", "dim")], "backlog": [("-", "dim")]}
    if shared:  # the device row carries this qdisc's numbers; repeating them misleads
        return {"qdisc": [("shared", "dim")]}
    return {
        "qdisc": [(qd.kind, "text")],
        "backlog": _backlog_cell(qd.backlog_bytes, qd.backlog_pkts),
        "drops": value_frag(fmt_si(qd.drops_per_s), qd.drops_per_s),
        "requeues": value_frag(fmt_si(qd.requeues_per_s), qd.requeues_per_s, "warn"),
    }


def _tx_cells(q: QueueRow, glyphs: Glyphs) -> Cells:
    cells: Cells = {}
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


def _device_qdisc_cells(dev: DeviceRow | None, queues: Sequence[QueueRow]) -> Cells:
    """The device row's qdisc columns: its root qdisc, the backlog and rates of all qdiscs."""
    qdiscs = _distinct_qdiscs(queues)
    root = dev.root_qdisc if dev is not None else None
    cells: Cells = {"qdisc": [(root or (qdiscs[0].kind if len(qdiscs) == 1 else "-"), "text")]}
    if not qdiscs:
        cells["backlog"] = [("-", "dim")]
        return cells
    drops = sum(qd.drops_per_s for qd in qdiscs)
    requeues = sum(qd.requeues_per_s for qd in qdiscs)
    cells["backlog"] = _backlog_cell(
        sum(qd.backlog_bytes for qd in qdiscs), sum(qd.backlog_pkts for qd in qdiscs)
    )
    cells["drops"] = value_frag(fmt_si(drops), drops)
    cells["requeues"] = value_frag(fmt_si(requeues), requeues, "warn")
    return cells


def _device_cells(g: QueueGroup, bql_w: int, glyphs: Glyphs) -> Cells:
    """The device row: link state or the summed BQL, its qdiscs, the device's rates."""
    dev = g.device
    down = dev is not None and dev.oper_state not in ("up", "unknown")
    cells: Cells = {"name": [(g.dev, "dim" if down else "group")]}
    bqls = [q.bql for q in g.queues if q.bql is not None]
    if down:
        cells["bql"] = [(f"link {dev.oper_state}" if dev else "link down", "dim")]
    elif bqls:
        cells["bql"] = _bql_cell(
            sum(b.inflight for b in bqls), sum(b.limit for b in bqls), bql_w, glyphs
        )
    else:
        cells["bql"] = [("no BQL", "dim")]
    cells.update(_device_qdisc_cells(dev, g.queues))
    if dev is not None:
        cells["pps"] = [(fmt_si(dev.tx_pps), "group" if dev.tx_pps else "dim")]
        cells["bps"] = [(fmt_si(dev.tx_bps), "group" if dev.tx_bps else "dim")]
    return cells


def _single_queue_cells(g: QueueGroup, bql_w: int, glyphs: Glyphs) -> Cells:
    """A device with one queue: a single row carries both device and queue numbers."""
    q = g.queues[0]
    cells = _device_cells(g, bql_w, glyphs)
    if q.bql is not None and "link" not in line_text(cells["bql"]):
        cells["bql"] = _bql_cell(q.bql.inflight, q.bql.limit, bql_w, glyphs)
    tx = _tx_cells(q, glyphs)
    if q.tx is None:  # keep the device's rates
        tx = {k: v for k, v in tx.items() if k not in ("pps", "bps")}
    cells.update(tx)
    cells.update(_qdisc_cells(q.qdisc, shared=False))
    return cells


def _queue_cells(q: QueueRow, bql_w: int, glyphs: Glyphs) -> Cells:
    """A tx-N row under its device."""
    cells: Cells = {"name": [(f"  tx-{q.queue}", "text")]}
    if q.bql is not None:
        cells["bql"] = _bql_cell(q.bql.inflight, q.bql.limit, bql_w, glyphs)
    else:
        cells["bql"] = [("no BQL", "dim")]
    cells.update(_qdisc_cells(q.qdisc, shared=q.qdisc is not None and not q.qdisc.per_queue))
    cells.update(_tx_cells(q, glyphs))
    return cells


# ---- the panel ------------------------------------------------------------------------------


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


def _group_lines(g: QueueGroup, layout: Layout, bql_w: int, glyphs: Glyphs) -> list[Line]:
    if len(g.queues) == 1:
        return [render_row(layout, _single_queue_cells(g, bql_w, glyphs), glyphs)]
    lines = [render_row(layout, _device_cells(g, bql_w, glyphs), glyphs)]
    lines.extend(render_row(layout, _queue_cells(q, bql_w, glyphs), glyphs) for q in g.queues)
    return lines


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
    bql_w = column_width(layout, "bql")
    return head, [line for g in groups for line in _group_lines(g, layout, bql_w, glyphs)]


def queue_body_rows(snapshot: Snapshot | None) -> int:
    """How many body lines ``queue_lines`` produces (for layout, without rendering)."""
    if snapshot is None:
        return 1
    groups = group_queues(snapshot)
    return max(1, sum(1 if len(g.queues) <= 1 else 1 + len(g.queues) for g in groups))
