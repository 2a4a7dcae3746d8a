"""The TX queues panel: per device and TX queue, BQL bytes in flight against the limit (and
the interval's peak, sampled between ticks), the qdisc in front of the queue with its backlog,
rates, sampled latencies and a sparkline of one metric's recent history.

Pure: Snapshot (plus width, sort key, history, selection) in, fragment lines out; the widget is
``widgets.QueuesPanel``. Textual-free.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from txtop.core.history import QUEUE_METRICS, History, QueueTarget, Target
from txtop.core.model import (
    BqlStats,
    DeviceRow,
    LatencyStats,
    QdiscStats,
    QueueRow,
    Snapshot,
    TxStats,
)
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
from .history import SHORT_TITLES, spark, spark_cell_s, spark_title, spark_top

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
    Column(
        "dropt",
        "drops",
        5,
        priority=3,
        help="qdisc drops since txtop started (the queue's own, or its shared qdisc's); "
        "s sorts on them",
    ),
    Column("requeues", "rq/s", 4, priority=3, help="qdisc requeues per second"),
    Column(
        "rqt",
        "requeues",
        5,
        priority=4,
        short="rqs",
        help="qdisc requeues since txtop started (the driver was busy: NETDEV_TX_BUSY)",
    ),
    Column(
        "pps",
        "pkt/s",
        5,
        priority=1,
        help="packets handed to the driver per second, a GSO packet once: the unit of the "
        "device's own counters (veth, lo, virtio_net; some NIC drivers count segments). "
        "A device row is its counters; a queue row the probes' (~: estimated from trace "
        "windows); '-' for a queue without probes",
    ),
    Column(
        "segs",
        "seg/s",
        5,
        priority=3,
        help="GSO segments per second (the packets on the wire; a 64 KB TSO packet of 44 "
        "segments counts 44 here and 1 in pkt/s): the probes' gso_segs, or an mq child "
        "qdisc's own counter, which is what tc -s counts",
    ),
    Column(
        "bps",
        "bit/s",
        5,
        priority=1,
        help="TX bits per second (the packets' lengths; an mq child qdisc's counter, used "
        "without probes and between trace windows, adds each GSO segment's headers)",
    ),
    Column(
        "hist",
        "history",
        8,
        grow=8,
        align="<",
        priority=1,
        help="the last seconds of one metric, a cell per refresh (g: packets/s, backlog, "
        "drops/s, BQL peak, p99 qdisc wait); height = share of the busiest queue; h opens "
        "the history view of the selected queue",
    ),
    Column(
        "p99q",
        "p99q",
        6,
        priority=2,
        help="p99 wait in the qdisc, sampled packets; 'bypass': every packet sampled there "
        "skipped the qdisc (empty pfifo/pfifo_fast go straight to the driver, so there is "
        "no wait to sample); '-': none sampled",
    ),
    Column("p99t", "p99t", 5, priority=2, help="p99 first-to-last stage, sampled packets"),
    Column(
        "byp",
        "byp%",
        5,
        priority=4,
        help="share of the sampled packets that bypassed the qdisc (last 10 s)",
    ),
    Column("xoff", "xoff/s", 6, priority=3, help="dequeues that found the TX queue stopped"),
    Column("errors", "err/s", 5, priority=3, help="driver transmit errors per second"),
    Column("p50t", "p50t", 5, priority=4, help="median first-to-last stage"),
    Column("maxt", "maxt", 5, priority=4, help="slowest first-to-last stage"),
)

IFNAME_MAX = 15  # IFNAMSIZ - 1
NAME_MAX = 32  # "<netns>/<dev>" names (--netns)
SORT_KEYS: tuple[str, ...] = ("device/queue", "busiest tx", "backlog", "drops", "requeues")
# ``v`` picks the columns shown first when the width hides some (the rest by priority).
COLUMN_SETS: dict[str, frozenset[str]] = {
    "auto": frozenset(),
    "latency": frozenset({"p99q", "p99t", "byp", "p50t", "maxt"}),
    "drops": frozenset({"backlog", "drops", "dropt", "requeues", "rqt", "xoff", "errors"}),
    "packets": frozenset({"pps", "segs", "bps", "byp"}),
}
SPARK_METRICS: tuple[str, ...] = tuple(m.key for m in QUEUE_METRICS)

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


def _since_start(value: int | None) -> int:
    return value if value is not None else -1


def _group_drops(g: QueueGroup) -> tuple[int, float]:
    qdiscs = _distinct_qdiscs(g.queues)
    return (
        sum(max(0, _since_start(qd.drops_since_start)) for qd in qdiscs),
        float(sum(qd.drops_per_s for qd in qdiscs)),
    )


def _group_requeues(g: QueueGroup) -> tuple[int, float]:
    qdiscs = _distinct_qdiscs(g.queues)
    return (
        sum(max(0, _since_start(qd.requeues_since_start)) for qd in qdiscs),
        float(sum(qd.requeues_per_s for qd in qdiscs)),
    )


def _queue_drops(q: QueueRow) -> tuple[int, float]:
    if q.qdisc is None:
        return (-1, -1.0)
    return (_since_start(q.qdisc.drops_since_start), q.qdisc.drops_per_s)


def _queue_requeues(q: QueueRow) -> tuple[int, float]:
    if q.qdisc is None:
        return (-1, -1.0)
    return (_since_start(q.qdisc.requeues_since_start), q.qdisc.requeues_per_s)


def sort_groups(groups: list[QueueGroup], sort_key: str) -> list[QueueGroup]:
    """Order device groups and the queues inside each by ``sort_key`` (largest first)."""
    if sort_key == "device/queue":
        return groups
    group_key: Callable[[QueueGroup], Any]
    queue_key: Callable[[QueueRow], Any]
    if sort_key == "busiest tx":
        group_key, queue_key = _group_tx_bps, _queue_tx_bps
    elif sort_key == "backlog":
        group_key = _group_backlog
        queue_key = lambda q: q.qdisc.backlog_bytes if q.qdisc else -1  # noqa: E731
    elif sort_key == "drops":  # since start, then the rate: a quiet second keeps the order
        group_key, queue_key = _group_drops, _queue_drops
    elif sort_key == "requeues":
        group_key, queue_key = _group_requeues, _queue_requeues
    else:
        raise ValueError(f"unknown sort key {sort_key!r}")
    # sorted() is stable, so ties keep device/queue order.
    return [
        QueueGroup(g.dev, g.device, tuple(sorted(g.queues, key=queue_key, reverse=True)))
        for g in sorted(groups, key=group_key, reverse=True)
    ]


# ---- cells ----------------------------------------------------------------------------------


def _ratio(inflight: int, limit: int) -> float:
    if limit > 0:
        return inflight / limit
    return 1.0 if inflight > 0 else 0.0


def _bql_cell(
    inflight: int, limit: int, width: int, glyphs: Glyphs, peak: int | None = None
) -> Line:
    """A meter of bytes in flight against the limit and its label; ``peak`` (the interval's
    largest, sampled between ticks) adds a mark where it reached when it was above now, and
    its value to the label when there is room."""
    label = f"{fmt_bytes(inflight)}/{fmt_bytes(limit)}"
    ratio = _ratio(inflight, limit)
    marked = peak is not None and peak > inflight
    if marked and width - len(label) - 1 >= 8 + len(f" pk {fmt_bytes(peak)}"):
        label += f" pk {fmt_bytes(peak)}"
    bar_w = width - len(label) - 1
    if bar_w < 3:
        return [(label, "bar-high" if ratio >= 0.8 else "text")]
    meter = bar(ratio, bar_w, glyphs)
    if marked and peak is not None:
        meter = _peak_mark(meter, _ratio(peak, limit), bar_w, glyphs)
    return meter + [(" ", "text"), (label, "text")]


def _peak_mark(meter: Line, peak_ratio: float, width: int, glyphs: Glyphs) -> Line:
    """The meter with the cell where the peak reached (at least the first cell past the
    filled part: beside the current value) drawn as ``glyphs.peak_mark``."""
    cells = [(ch, role) for text, role in meter for ch in text]
    filled = sum(1 for _, role in cells if role != "bar-empty")
    at = max(filled, min(width - 1, int(min(1.0, peak_ratio) * width)))
    if at >= len(cells):
        return meter
    cells[at] = (glyphs.peak_mark, "bar-high" if peak_ratio >= 0.8 else "bar")
    out: Line = []
    for ch, role in cells:
        if out and out[-1][1] == role:
            out[-1] = (out[-1][0] + ch, role)
        else:
            out.append((ch, role))
    return out


def _queue_bql_cell(bql: BqlStats, width: int, glyphs: Glyphs) -> Line:
    return _bql_cell(bql.inflight, bql.limit, width, glyphs, bql.inflight_peak)


def _lat(stats: LatencyStats | None, attr: str, glyphs: Glyphs) -> Line:
    if stats is None or stats.count == 0:
        return [("-", "dim")]
    return [(format_ns(getattr(stats, attr), ascii=glyphs.ascii, short=True), "text")]


def _backlog_cell(backlog_bytes: int, backlog_pkts: int) -> Line:
    if backlog_bytes or backlog_pkts:
        return [(f"{fmt_bytes(backlog_bytes)}/{backlog_pkts}p", "warn")]
    return [("0", "dim")]


def _total_cell(value: int | None, bad_role: str = "alert") -> Line:
    """A count since txtop started (None: not known, e.g. an older recording)."""
    return value_frag(fmt_si(value), value, bad_role)


def _qdisc_cells(qd: QdiscStats | None, shared: bool) -> Cells:
    if qd is None:
        return {"qdisc": [("-", "dim")], "backlog": [("-", "dim")]}
    if shared:  # the device row carries this qdisc's numbers; repeating them misleads
        return {"qdisc": [("shared", "dim")]}
    return {
        "qdisc": [(qd.kind, "text")],
        "backlog": _backlog_cell(qd.backlog_bytes, qd.backlog_pkts),
        "drops": value_frag(fmt_si(qd.drops_per_s), qd.drops_per_s),
        "dropt": _total_cell(qd.drops_since_start),
        "requeues": value_frag(fmt_si(qd.requeues_per_s), qd.requeues_per_s, "warn"),
        "rqt": _total_cell(qd.requeues_since_start, "warn"),
    }


def tx_skbs(tx: TxStats | None) -> tuple[float | None, bool]:
    """Packets handed to the driver per second (the device counters' unit) and whether it is
    an estimate from trace windows; None when only segments are known (an mq child's counter
    without probes)."""
    if tx is None:
        return None, False
    if tx.skbs_per_s is not None:
        return tx.skbs_per_s, tx.skbs_estimated
    if tx.packet_unit == "skb":  # a recording made before skbs_per_s
        return tx.pps, tx.estimated
    return None, False


def tx_segs(tx: TxStats | None) -> float | None:
    """GSO segments per second, None when not known."""
    if tx is None:
        return None
    if tx.segs_per_s is not None:
        return tx.segs_per_s
    return tx.pps if tx.packet_unit == "segment" else None


def _rate_cell(value: float | None, estimated: bool, role: str = "text") -> Line:
    if value is None:
        return [("-", "dim")]
    # "~": extrapolated from trace windows (the probes were attached part of the time)
    return [(("~" if estimated else "") + fmt_si(value), role if value else "dim")]


def _p99q_cell(q: QueueRow, glyphs: Glyphs) -> Line:
    """The p99 qdisc wait; 'bypass' when every sampled packet skipped the qdisc."""
    waits = q.latency_ns.get("qdisc")
    if (waits is None or waits.count == 0) and q.bypass is not None and q.bypass.bypassed:
        return [("bypass", "dim")]
    return _lat(waits, "p99", glyphs)


def _bypass_cell(q: QueueRow) -> Line:
    b = q.bypass
    if b is None or b.sampled == 0:
        return [("-", "dim")]
    return [(f"{100.0 * b.bypassed / b.sampled:.0f}%", "text" if b.bypassed else "dim")]


def _tx_cells(q: QueueRow, glyphs: Glyphs) -> Cells:
    cells: Cells = {}
    tx = q.tx
    if tx is not None:
        est = "~" if tx.estimated else ""
        skbs, skbs_est = tx_skbs(tx)
        cells["pps"] = _rate_cell(skbs, skbs_est)
        cells["segs"] = _rate_cell(tx_segs(tx), tx.estimated and tx.source == "probe")
        cells["bps"] = _rate_cell(tx.bps, tx.estimated)
        cells["xoff"] = value_frag(est + fmt_si(tx.stopped_per_s), tx.stopped_per_s, "warn")
        cells["errors"] = value_frag(est + fmt_si(tx.errors_per_s), tx.errors_per_s)
    else:
        for key in ("pps", "segs", "bps", "xoff", "errors"):
            cells[key] = [("-", "dim")]
    total = q.latency_ns.get("total")
    cells["p99q"] = _p99q_cell(q, glyphs)
    cells["byp"] = _bypass_cell(q)
    cells["p99t"] = _lat(total, "p99", glyphs)
    cells["p50t"] = _lat(total, "p50", glyphs)
    cells["maxt"] = _lat(total, "max", glyphs)
    return cells


def _sum_known(values: Iterable[int | float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return float(sum(known)) if known else None


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
    drops_total = _sum_known(qd.drops_since_start for qd in qdiscs)
    requeues_total = _sum_known(qd.requeues_since_start for qd in qdiscs)
    cells["dropt"] = value_frag(fmt_si(drops_total), drops_total)
    cells["rqt"] = value_frag(fmt_si(requeues_total), requeues_total, "warn")
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
    # The device counters do not count segments: the queues' sum, where they are known.
    segs = [tx_segs(q.tx) for q in g.queues]
    if any(v is not None for v in segs):
        estimated = any(q.tx is not None and q.tx.estimated for q in g.queues)
        cells["segs"] = _rate_cell(_sum_known(segs), estimated, "group")
    return cells


def _single_queue_cells(g: QueueGroup, bql_w: int, glyphs: Glyphs) -> Cells:
    """A device with one queue: a single row carries both device and queue numbers."""
    q = g.queues[0]
    cells = _device_cells(g, bql_w, glyphs)
    if q.bql is not None and "link" not in line_text(cells["bql"]):
        cells["bql"] = _queue_bql_cell(q.bql, bql_w, glyphs)
    tx = _tx_cells(q, glyphs)
    if q.tx is None:  # keep the device's rates
        tx = {k: v for k, v in tx.items() if k not in ("pps", "bps")}
    elif tx_skbs(q.tx)[0] is None:  # segments only: the device counts its packets
        tx = {k: v for k, v in tx.items() if k != "pps"}
    cells.update(tx)
    cells.update(_qdisc_cells(q.qdisc, shared=False))
    return cells


def _queue_cells(q: QueueRow, bql_w: int, glyphs: Glyphs) -> Cells:
    """A tx-N row under its device."""
    cells: Cells = {"name": [(f"  tx-{q.queue}", "text")]}
    if q.bql is not None:
        cells["bql"] = _queue_bql_cell(q.bql, bql_w, glyphs)
    else:
        cells["bql"] = [("no BQL", "dim")]
    cells.update(_qdisc_cells(q.qdisc, shared=q.qdisc is not None and not q.qdisc.per_queue))
    cells.update(_tx_cells(q, glyphs))
    return cells


# ---- the panel ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SparkSpec:
    """What a panel's history column draws: ``metric`` from ``history``, a cell per
    ``interval_s`` (the refresh, at least a second), in ``glyphs`` (the caller passes the
    ASCII table under --ascii and in the mono theme)."""

    history: History
    metric: str
    interval_s: float
    glyphs: Glyphs


@dataclass(frozen=True, slots=True)
class QueueView:
    """The panel's column header, body lines, and per body line the queue it shows (None for
    a device row over several queues, or a message)."""

    head: Line
    body: list[Line]
    targets: list[QueueTarget | None]
    hidden: list[str] = dataclasses.field(default_factory=list)  # columns the width left out


def queue_columns(
    groups: Sequence[QueueGroup],
    width: int,
    history: bool = False,
    promote: frozenset[str] = frozenset(),
) -> list[Column]:
    """QUEUE_COLUMNS with the name column as wide as the longest device name allows: at 80
    columns it may take up to 3 cells from the BQL bar, wider terminals give it more. The
    history column only with ``history``. Columns in ``promote`` (``COLUMN_SETS``) go before
    the others when the width cannot show them all."""
    longest = max((len(g.dev) for g in groups), default=0)
    base = {c.key: c for c in QUEUE_COLUMNS}
    # "<netns>/<dev>" names (--netns) may be longer than an interface name.
    cap = max(IFNAME_MAX, min(NAME_MAX, longest))
    name_w = min(cap, max(base["name"].width, longest), 12 + max(0, width - 79))
    taken = max(0, name_w - base["name"].width - 1)  # one spare cell exists at 80 columns
    out = []
    for c in QUEUE_COLUMNS:
        if not history and c.key == "hist":
            continue
        if c.key == "name":
            c = dataclasses.replace(c, width=name_w)
        elif c.key == "bql":
            c = dataclasses.replace(c, width=c.width - taken)
        if promote and c.priority:
            c = dataclasses.replace(c, priority=1 if c.key in promote else c.priority + 1)
        out.append(c)
    return out


def hidden_columns(columns: Sequence[Column], layout: Layout) -> list[str]:
    """Titles of the columns the width left out, in their order."""
    shown = {c.key for c, _ in layout}
    return [c.title for c in columns if c.key not in shown]


def queues_title(
    sort_key: str, hidden: Sequence[str] = (), column_set: str = "auto", width: int = 0
) -> str:
    """The panel's title: the sort order, the column set when it is not "auto", the columns
    the width hides (as many names as fit in ``width``, else their count; 0: no limit) with
    the key that shows others (v), and the history key when there is room."""
    title = f"TX queues - sort: {sort_key} (s)"
    if column_set != "auto":
        title += f" - {column_set} first (v)"
    history = " - history (h)"
    names = list(hidden)
    while True:
        more = len(hidden) - len(names)
        if not hidden:
            hint = ""
        elif names:
            hint = " - hidden: " + " ".join(names) + (f" +{more}" if more else "") + " (v)"
        else:
            hint = f" - {more} columns hidden (v)"
        if not width or len(title + hint + history) <= width:
            return title + hint + history
        if not names:
            return title + hint
        names.pop()


def group_targets(g: QueueGroup) -> list[QueueTarget | None]:
    """The queue each of a group's lines shows (None: the device row over several)."""
    if len(g.queues) == 1:
        return [QueueTarget(g.dev, g.queues[0].queue)]
    return [None, *(QueueTarget(g.dev, q.queue) for q in g.queues)]


def _group_cells(g: QueueGroup, bql_w: int, glyphs: Glyphs) -> list[Cells]:
    if len(g.queues) == 1:
        return [_single_queue_cells(g, bql_w, glyphs)]
    return [_device_cells(g, bql_w, glyphs), *(_queue_cells(q, bql_w, glyphs) for q in g.queues)]


def _pointed(name: Line, pointer: str) -> Line:
    """The name cell of the selected row: the pointer in front (in its first blank)."""
    text, role = name[0]
    return [(pointer, "heading"), (text[1:] if text.startswith(" ") else text, role)]


def _sparks(
    spec: SparkSpec, targets: Sequence[QueueTarget], cells: int
) -> tuple[str, dict[QueueTarget, Line]]:
    """The history column's title and each queue's sparkline, on one shared scale."""
    cell_s = spark_cell_s(spec.interval_s, cells, spec.history.span_s)
    windows = spec.history.windows(targets, spec.metric, cells, cell_s)
    top = spark_top(windows)
    lines = {t: spark(w, top, spec.glyphs) for t, w in zip(targets, windows, strict=True)}
    return spark_title(spec.metric, cells, cell_s), lines


def queue_view(
    snapshot: Snapshot | None,
    width: int,
    sort_key: str = "device/queue",
    ascii_only: bool = False,
    spark: SparkSpec | None = None,
    selected: Target | None = None,
    column_set: str = "auto",
) -> QueueView:
    """The TX queues panel for ``width`` cells; with ``spark`` a history column, with
    ``selected`` a pointer on that queue's row; ``column_set`` (COLUMN_SETS) the columns
    shown first."""
    glyphs = glyphs_for(ascii_only)
    groups = sort_groups(group_queues(snapshot), sort_key) if snapshot is not None else []
    columns = queue_columns(groups, width, spark is not None, COLUMN_SETS[column_set])
    layout = fit_columns(columns, width)
    hidden = hidden_columns(columns, layout)
    if snapshot is None or not groups:
        head = header_row(layout, glyphs)
        msg = (
            "waiting for the first sample..."
            if snapshot is None
            else ("no interface with TX queues selected")
        )
        return QueueView(head, [[(msg, "dim")]], [None], hidden)
    bql_w = column_width(layout, "bql")
    targets = [t for g in groups for t in group_targets(g)]
    sparks: dict[QueueTarget, Line] = {}
    hist_w = dict((c.key, w) for c, w in layout).get("hist")
    if spark is not None and hist_w is not None:
        title, sparks = _sparks(spark, [t for t in targets if t is not None], hist_w)
        layout = [
            (dataclasses.replace(c, title=title, short=SHORT_TITLES[spark.metric]), w)
            if c.key == "hist"
            else (c, w)
            for c, w in layout
        ]
    body = []
    for target, cells in zip(
        targets, (c for g in groups for c in _group_cells(g, bql_w, glyphs)), strict=True
    ):
        if target is not None:
            if target in sparks:
                cells["hist"] = sparks[target]
            if target == selected:
                cells["name"] = _pointed(cells["name"], glyphs.pointer)
        body.append(render_row(layout, cells, glyphs))
    return QueueView(header_row(layout, glyphs), body, list(targets), hidden)


def queue_lines(
    snapshot: Snapshot | None, width: int, sort_key: str = "device/queue", ascii_only: bool = False
) -> tuple[Line, list[Line]]:
    """(column header, body lines) of the TX queues panel for ``width`` cells (no history
    column, no selection: ``queue_view`` has both)."""
    view = queue_view(snapshot, width, sort_key, ascii_only)
    return view.head, view.body


def queue_body_rows(snapshot: Snapshot | None) -> int:
    """How many body lines ``queue_lines`` produces (for layout, without rendering)."""
    if snapshot is None:
        return 1
    groups = group_queues(snapshot)
    return max(1, sum(1 if len(g.queues) <= 1 else 1 + len(g.queues) for g in groups))
