"""What each line of the waterfall says, as fragments (pure).

The panel, top to bottom: a header line, a column/axis line, the packet rows (or the
stage-latency summary, ``stats.py``), a legend line. Every function here returns
(text, style name) fragments for one line; the view styles them, caches the result, and asks
again only when what the line depends on changed.
"""

from __future__ import annotations

import textwrap
import time
from collections.abc import Mapping
from dataclasses import dataclass

from txtop.core.text import fit_text, format_ns
from txtop.tui.glyphs import UNICODE, Glyphs, glyphs_for

from .bars import SCALE_LABELS, SEGMENT_KINDS, Frag, axis_text, bar_frags
from .empty import empty_reason
from .flows import flow_text, owner_text
from .rows import ROW_ORDER, Entry, RowBuffer

LEGEND_NAMES = {
    "stack": "stack",
    "enqueue": "enq",
    "qdisc": "qdisc",
    "dequeue": "deq",
    "driver": "driver",
    "completion": "free",
    "gap": "unseen",
    "drop": "drop",
}
LEGEND_HINTS = "  l scale  p pct  / filter  [ ] rate  o talkers  {enter} inspect"


@dataclass(frozen=True, slots=True)
class Look:
    """The drawing choices the text depends on (besides the data)."""

    scale: str = "row"
    ascii: bool = False
    mono: bool = False  # stages told apart by fill characters rather than colour

    @property
    def glyphs(self) -> Glyphs:
        return glyphs_for(self.ascii)

    @property
    def fills(self) -> Mapping[str, str]:
        return self.glyphs.fills(self.mono)


@dataclass(frozen=True, slots=True)
class Columns:
    marker: int
    time: int
    who: int
    flow: int
    dev: int
    length: int
    bar_x: int
    bar: int
    total: int
    hours: bool  # time column shows HH:MM:SS.mmm rather than MM:SS.mmm


def layout_columns(width: int, dev_chars: int = 0) -> Columns:
    """Column widths for a panel ``width`` wide; ``dev_chars``: longest "dev:queue" seen.
    The flow column holds ``>:5201 tcp`` at 80 columns and the whole flow from 150 (a 160-column
    terminal); below 72 it is left out (the inspector shows the flow)."""
    wide = width >= 100
    time_w = 12 if wide else 9
    who_w = 22 if width >= 150 else 18 if wide else 12
    flow_w = 44 if width >= 150 else 24 if wide else 10 if width >= 72 else 0
    dev_w = max(10, min(dev_chars, 18)) if wide else max(8, min(dev_chars, 10))
    len_w = 8
    total_w = 8
    x = 1 + time_w + 1 + who_w + 1 + (flow_w + 1 if flow_w else 0) + dev_w + 1 + len_w + 1
    bar_w = max(0, width - x - 1 - total_w)
    return Columns(1, time_w, who_w, flow_w, dev_w, len_w, x, bar_w, total_w, wide)


def frame(height: int) -> tuple[int, int, bool]:
    """(first row line, number of row lines, has legend) for a panel ``height`` lines high."""
    legend = height >= 5
    first = 2 if height >= 3 else 1
    return first, max(0, height - first - (1 if legend else 0)), legend


def format_len(length: int, gso_segs: int, times: str = UNICODE.times) -> str:
    text = str(length) if length < 10_000 else f"{length / 1024:.1f}K"
    return f"{text}{times}{gso_segs}" if gso_segs > 1 else text


def format_dev(dev: str, queue: int | None, width: int, ascii: bool = False) -> str:
    """``dev:queue`` in ``width`` cells; a long name is cut, never the queue number."""
    tail = ":" + ("?" if queue is None else str(queue))
    if len(dev) + len(tail) <= width:
        return dev + tail
    keep = max(1, width - len(tail) - 1)
    return dev[:keep] + glyphs_for(ascii).ellipsis + tail


def header_frags(rows: RowBuffer, look: Look) -> tuple[list[Frag], list[Frag]]:
    """The header line's (left, right) parts; the right part is kept whole when narrow."""
    snap = rows.snapshot
    view = rows.entries
    g = look.glyphs
    left: list[Frag] = [(" Packets ", "heading")]
    if rows.filter.empty:
        left.append((f"{len(view)} ", "text"))
    else:
        left.append((f"{len(view)} match ", "text"))
    left.append((f"{g.dot} {SCALE_LABELS[look.scale]} ", "dim"))
    every = rows.effective_every()
    if every:
        rate = f"{g.dot} sampling 1/{every}"
        if snap is not None and snap.probes.sampling.get("max_per_s"):
            rate += f" {g.at_most}{snap.probes.sampling['max_per_s']}/s"
        left.append((rate + " ", "dim"))
    if rows.pending_every is not None:
        left.append((f"{g.arrow} 1/{rows.pending_every} ", "warn"))
    if not rows.filter.empty:
        left.append((f"{g.dot} filter ", "dim"))
        left.append((rows.filter.to_string() + " ", "bold"))
    right: list[Frag] = []
    if rows.frozen:
        right.append((f" FROZEN +{rows.arrived_while_frozen} new ", "alert"))
    elif rows.cursor or rows.top:
        # Holding the selected row in place: say how many newer rows are above the view.
        right.append((f" {g.up} {rows.top} newer {g.dot} Home: follow ", "warn"))
    if snap is not None and snap.probes.state != "running":
        why = snap.probes.reason or snap.probes.state
        right.append((f" probes {snap.probes.state}: {why} ", "warn"))
    return left, right


def column_frags(cols: Columns, look: Look, hi: int) -> list[Frag]:
    """The column titles over the rows, with the axis over the bar region."""
    head = (
        " "
        + fit_text(f"{ROW_ORDER} {look.glyphs.down}", cols.time)
        + " "
        + fit_text("comm[pid]", cols.who)
        + " "
        + (fit_text("flow", cols.flow) + " " if cols.flow else "")
        + fit_text("dev:txq", cols.dev)
        + " "
        + fit_text("len", cols.length, ">")
        + " "
    )
    axis = axis_text(look.scale, cols.bar, hi, look.ascii)
    return [(head, "dim"), (axis, "dim"), (" " + fit_text("total", cols.total, ">"), "dim")]


def stats_title_frags() -> list[Frag]:
    """The column line while the stage-latency summary is shown."""
    return [(" stage latency percentiles (p: back to packets)", "dim")]


def legend_frags(width: int, look: Look) -> list[Frag]:
    """Fill and name of each segment kind, and the keys when they fit."""
    fills = look.fills
    parts: list[Frag] = [(" ", "text")]
    for kind in SEGMENT_KINDS:
        parts.append((fills[kind], kind))
        parts.append((LEGEND_NAMES[kind] + " ", "dim"))
    thin = look.glyphs.thin_for(look.mono)
    if thin:  # only where the Unicode look draws it, so "½" is safe here
        parts.append((thin, "dim"))
        parts.append(("<½ cell ", "dim"))
    hints = LEGEND_HINTS.format(enter=look.glyphs.enter_key)
    used = sum(len(t) for t, _ in parts)
    if used + len(hints) <= width:
        parts.append((hints, "dim"))
    return parts


def message_frags(rows: RowBuffer, width: int = 0) -> list[list[Frag]]:
    """What the empty panel says instead of rows, from its second row line on: why it is
    empty, wrapped to ``width`` (0: one line)."""
    reason = empty_reason(rows.snapshot, rows.filter, rows.received, rows.missing_pids)
    if width <= 4:
        return [[("  " + reason, "dim")]]
    lines = textwrap.wrap(reason, width - 2, subsequent_indent="  ", break_on_hyphens=False)
    return [[("  " + line, "dim")] for line in lines]


def row_frags(entry: Entry, cols: Columns, selected: bool, look: Look, hi: int) -> list[Frag]:
    """One packet's row: time, sender, flow, device and queue, length, bar, total."""
    p = entry.packet
    asc = look.ascii
    g = look.glyphs
    wall = p.first_ns / 1e9 + entry.wall_offset_s
    whole = int(wall)
    clock = time.strftime("%H:%M:%S" if cols.hours else "%M:%S", time.localtime(whole))
    stamp = f"{clock}.{int((wall - whole) * 1000):03d}"
    if p.pid:
        pid = f"[{p.pid}]"
        comm = p.comm or "?"
        room = cols.who - len(pid)
        if len(comm) <= room:
            who = comm + pid
        elif len(comm) <= cols.who or room < 6:
            who = comm  # the name tells senders apart; the inspector has the pid
        else:
            who = comm[: max(1, room - 1)] + g.ellipsis + pid
    else:
        who = owner_text(p)  # kernel context, or no identity to name a sender with
    dev = format_dev(p.dev, p.queue, cols.dev, asc)
    length = format_len(p.len, p.gso_segs, g.times)
    text_style = "selected" if selected else "text"
    parts: list[Frag] = [
        (g.pointer if selected else " ", "bold"),
        (fit_text(stamp, cols.time) + " ", text_style),
        (fit_text(who, cols.who) + " ", "dim" if not p.pid and not selected else text_style),
        (
            fit_text(flow_text(p.flow, cols.flow, g.ellipsis), cols.flow) + " "
            if cols.flow
            else "",
            text_style,
        ),
        (fit_text(dev, cols.dev) + " ", text_style),
        (fit_text(length, cols.length, ">"), text_style),
        (" ", "text"),
    ]
    thin_ok = bool(g.thin_for(look.mono))
    parts.extend(bar_frags(p, entry.parts, cols.bar, look.scale, hi, look.fills, thin_ok, asc))
    if len(p.stages) < 2:
        total = "-"
    else:
        total = format_ns(entry.total_ns, asc)
        if p.track != "complete":
            total = g.at_least + total
    parts.append((" " + fit_text(total, cols.total, ">"), "bold"))
    return parts
