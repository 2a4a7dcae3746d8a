"""The TX queues panel: per device and TX queue, BQL bytes in flight against the limit (and
the interval's peak, sampled between ticks), the qdisc in front of the queue with its backlog,
rates, sampled latencies and a sparkline of one metric's recent history. The rows are grouped
and sorted in queue_groups.py, their cells built in queue_cells.py.

Pure: Snapshot (plus width, sort key, history, selection) in, fragment lines out; the widget is
``widgets.QueuesPanel``. Textual-free.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from txtop.core.history import QUEUE_METRICS, History, QueueTarget, Target
from txtop.core.model import Snapshot
from txtop.tui.glyphs import Glyphs, glyphs_for

from .format import Column, Layout, Line, column_width, fit_columns, header_row, render_row
from .history import SHORT_TITLES, spark, spark_cell_s, spark_title, spark_top
from .queue_cells import group_cells
from .queue_groups import SORT_KEYS, QueueGroup, group_queues, group_targets, sort_groups

__all__ = [
    "COLUMN_SETS",
    "QUEUE_COLUMNS",
    "SORT_KEYS",
    "SPARK_METRICS",
    "QueueView",
    "SparkSpec",
    "group_queues",
    "hidden_columns",
    "queue_body_rows",
    "queue_columns",
    "queue_lines",
    "queue_view",
    "queues_title",
    "sort_groups",
]

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
# ``v`` picks the columns shown first when the width hides some (the rest by priority).
COLUMN_SETS: dict[str, frozenset[str]] = {
    "auto": frozenset(),
    "latency": frozenset({"p99q", "p99t", "byp", "p50t", "maxt"}),
    "drops": frozenset({"backlog", "drops", "dropt", "requeues", "rqt", "xoff", "errors"}),
    "packets": frozenset({"pps", "segs", "bps", "byp"}),
}
SPARK_METRICS: tuple[str, ...] = tuple(m.key for m in QUEUE_METRICS)


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
        targets, (c for g in groups for c in group_cells(g, bql_w, glyphs)), strict=True
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
