"""The waterfall's stage-latency summary (``p``): percentiles per interval and queue (pure).

With no filter and a live view the numbers are the collector's (every sampled packet of its
window); otherwise they are computed from the rows shown, over their last 10 seconds.
"""

from __future__ import annotations

from txtop.core.latency import INTERVAL_STAGES, INTERVALS, summarize_packets
from txtop.core.model import LatencyStats, PacketTrace
from txtop.core.text import fit_text, format_ns
from txtop.tui.glyphs import UNICODE

from .bars import Frag
from .lines import Look
from .rows import RowBuffer

STATS_REFRESH_S = 1.0  # the summary view recomputes at most this often
STATS_WINDOW_NS = 10_000_000_000
SHORT_NAMES = {"stack": "stack", "enqueue": "enq", "qdisc": "qdisc", "dequeue": "deq",
               "driver": "driver", "completion": "free", "total": "total"}  # fmt: skip

StatsByName = dict[str, LatencyStats]


def stats_source(rows: RowBuffer) -> tuple[str, StatsByName, list[tuple[str, StatsByName]]]:
    """(what the numbers cover, stats per interval, [(dev:queue, stats per interval)])."""
    snap = rows.snapshot
    if snap is not None and snap.latency_ns and rows.filter.empty and not rows.frozen:
        per_queue = [(f"{q.dev}:{q.queue}", dict(q.latency_ns)) for q in snap.queues]
        return (
            "all sampled packets, collector window",
            dict(snap.latency_ns),
            [(n, s) for n, s in per_queue if s],
        )
    view = rows.entries
    newest = max((e.packet.last_ns for e in view), default=0)
    packets = [e.packet for e in view if e.packet.last_ns >= newest - STATS_WINDOW_NS]
    groups: dict[tuple[str, int], list[PacketTrace]] = {}
    for packet in packets:
        if packet.queue is not None:
            groups.setdefault((packet.dev, packet.queue), []).append(packet)
    what = "shown rows" + (" (frozen)" if rows.frozen else "")
    return (
        f"{what}, last 10 s",
        summarize_packets(packets),
        [(f"{d}:{q}", summarize_packets(g)) for (d, q), g in sorted(groups.items())],
    )


def stats_lines(rows: RowBuffer, width: int, look: Look) -> list[list[Frag]]:
    """The summary's lines (an empty list is a blank line)."""
    asc = look.ascii
    arrow = look.glyphs.arrow
    fills = look.fills
    label, overall, per_queue = stats_source(rows)
    count = max((s.count for s in overall.values()), default=0)
    title_w = 36 if width >= 100 else 14
    header = "   " + fit_text("interval", title_w)
    header += "".join(fit_text(h, 9, ">") for h in ("p50", "p90", "p99", "max", "count"))
    # The title's dots are Unicode in the ASCII look too: kept as it was drawn (issue 11 changes
    # no output); ``look.glyphs.dot`` would be the fix.
    dot = UNICODE.dot
    lines: list[list[Frag]] = [
        [(" Stage latency ", "heading"), (f"{dot} {label} {dot} up to {count} samples", "dim")],
        [(header, "dim")],
    ]
    for name in INTERVALS:
        span = f"first{arrow}last" if name == "total" else arrow.join(INTERVAL_STAGES[name])
        title = fit_text(f"{name} ({span})" if width >= 100 else name, title_w)
        stats = overall.get(name)
        if stats is None:
            values = fit_text("-", 9, ">") * 4 + fit_text("0", 9, ">")
        else:
            quantiles = (stats.p50, stats.p90, stats.p99, stats.max)
            values = "".join(fit_text(format_ns(v, asc), 9, ">") for v in quantiles)
            values += fit_text(str(stats.count), 9, ">")
        kind = name if name in INTERVAL_STAGES else "bold"  # "total" has no stage colour
        lines.append(
            [(" ", "text"), (fills.get(name, " "), kind), (" " + title, "text"), (values, "text")]
        )
    if per_queue:
        lines.append([])
        lines.append([(" " + fit_text("p99 by queue", 12) + "".join(fit_text(SHORT_NAMES[n], 8, ">")
                      for n in INTERVALS), "dim")])  # fmt: skip
        for name, stats_by in per_queue:
            cells = "".join(
                fit_text(format_ns(stats_by[n].p99, asc) if n in stats_by else "-", 8, ">")
                for n in INTERVALS
            )
            lines.append([(" " + fit_text(name, 12), "text"), (cells, "text")])
    return lines
