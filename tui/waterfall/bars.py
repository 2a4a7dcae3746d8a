"""Bar maths of the waterfall: a packet's stages as segments, their cells, the axis (pure).

Each segment is the time between two adjacent observed stages (names from
``txtop.core.latency.INTERVALS``); stages that were not observed merge their neighbours into a
"gap" segment drawn as such, and the segment ending in a drop is drawn in the drop style with
the reason after the bar. Every segment gets at least one cell; one whose true width is under
half a cell is drawn thin (``Glyphs.thin``) so a minimum width never reads as a real duration.
Every character drawn comes from the glyph table (``txtop.tui.glyphs``).

Text comes out as fragments, (text, style name) pairs; only the view turns them into styled
strips. No Textual here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from txtop.core.latency import INTERVAL_STAGES
from txtop.core.model import STAGES, PacketTrace
from txtop.core.text import fit_text, format_ns
from txtop.tui.glyphs import glyphs_for

from .endings import SEGMENTED_MARK, segmented_at_qdisc

Frag = tuple[str, str]  # (text, style name: a segment kind, "text", "dim", "bold", ...)

SCALES = ("row", "linear", "log")
SCALE_LABELS = {"row": "per-row scale", "linear": "shared linear", "log": "shared log"}
SEGMENT_KINDS: tuple[str, ...] = (*INTERVAL_STAGES, "gap", "drop")
LOG_FLOOR_NS = 100  # the log axis is log(1 + t/100ns): linear below ~100 ns, log above


@dataclass(frozen=True, slots=True)
class BarPart:
    kind: str  # an interval name, "gap" (stages in between not observed) or "drop"
    start: str  # stage the segment starts at
    end: str  # stage it ends at
    ns: int


_INTERVAL_BY_PAIR: dict[tuple[str, str], str] = {p: name for name, p in INTERVAL_STAGES.items()}


def interval_name(start: str, end: str) -> str:
    """The interval from stage ``start`` to the next observed stage ``end``: its name, or
    "gap" when stages in between were not observed."""
    return _INTERVAL_BY_PAIR.get((start, end), "gap")


def bar_parts(packet: PacketTrace) -> list[BarPart]:
    """The segments of a packet's bar, in TX-path order (out-of-order stamps count as 0)."""
    present = [(s, packet.stages[s]) for s in STAGES if s in packet.stages]
    parts = []
    for (a, ta), (b, tb) in zip(present, present[1:], strict=False):
        if b == "free" and packet.free_kind == "drop":
            kind = "drop"
        else:
            kind = interval_name(a, b)
        parts.append(BarPart(kind, a, b, max(0, tb - ta)))
    return parts


def allocate_cells(weights: Sequence[float], cells: int) -> list[int]:
    """Split ``cells`` among segments in proportion to ``weights``, at least 1 cell each.

    Largest-remainder rounding; cells taken back for the minimums come from the segments
    that got the most above their exact share.
    """
    n = len(weights)
    if n == 0:
        return []
    if cells < n:
        raise ValueError(f"{cells} cells cannot hold {n} segments")
    clean = [max(0.0, float(w)) for w in weights]
    total = sum(clean)
    if total <= 0:
        ideal = [cells / n] * n
    else:
        ideal = [w / total * cells for w in clean]
    out = [max(1, int(x)) for x in ideal]
    diff = cells - sum(out)
    if diff > 0:
        order = sorted(range(n), key=lambda i: ideal[i] - out[i], reverse=True)
        for k in range(diff):
            out[order[k % n]] += 1
    while diff < 0:
        i = max((j for j in range(n) if out[j] > 1), key=lambda j: out[j] - ideal[j])
        out[i] -= 1
        diff += 1
    return out


def nice_ceiling_ns(ns: int) -> int:
    """The smallest 1, 2, 3 or 5 x 10^k nanoseconds >= ns (at least 1 us): a stable axis end."""
    ns = max(ns, 1000)
    exp = 10 ** int(math.floor(math.log10(ns)))
    for step in (1, 2, 3, 5):
        if step * exp >= ns:
            return int(step * exp)
    return int(10 * exp)


def log_position(t_ns: float, hi_ns: float) -> float:
    """Where ``t_ns`` sits on a log axis from 0 to ``hi_ns`` (0..1)."""
    if hi_ns <= 0:
        return 0.0
    return math.log1p(max(0.0, t_ns) / LOG_FLOOR_NS) / math.log1p(hi_ns / LOG_FLOOR_NS)


def layout_bar(
    parts: Sequence[BarPart], scale: str, width: int, axis_hi_ns: int
) -> list[tuple[BarPart, int, bool]]:
    """Cells for each segment: (part, cells, thin). ``width`` is the whole bar region.

    ``row``: the bar fills the region (each row its own scale). ``linear``/``log``: the bar's
    length is the packet's total on an axis ending at ``axis_hi_ns``.
    """
    if not parts or width <= 0:
        return []
    parts = list(parts)[:width]  # a region narrower than the segment count: drop the tail
    n = len(parts)
    durations = [p.ns for p in parts]
    total = sum(durations)
    if scale == "log":
        edges = [0.0]
        for d in durations:
            edges.append(edges[-1] + d)
        pos = [log_position(e, axis_hi_ns) for e in edges]
        weights = [b - a for a, b in zip(pos, pos[1:], strict=False)]
        length = round(min(1.0, pos[-1]) * width)
        exact = [w * width for w in weights]
    elif scale == "linear":
        hi = max(axis_hi_ns, 1)
        weights = [float(d) for d in durations]
        length = round(min(1.0, total / hi) * width)
        exact = [d / hi * width for d in durations]
    else:
        weights = [float(d) for d in durations]
        length = width
        exact = [d / total * width if total else width / n for d in durations]
    length = min(width, max(n, length))
    cells = allocate_cells(weights, length)
    return [(p, c, e < 0.5) for p, c, e in zip(parts, cells, exact, strict=True)]


def tick_label(ns: int, ascii: bool = False) -> str:
    """An axis label without needless decimals: 0, 1µs, 2.5ms."""
    if ns == 0:
        return "0"
    text: str = format_ns(ns, ascii)
    digits = len(text) - len(text.lstrip("0123456789."))
    number, unit = text[:digits], text[digits:]
    if "." in number:
        number = number.rstrip("0").rstrip(".")
    return number + unit


def axis_text(scale: str, width: int, hi: int, ascii: bool) -> str:
    """Tick labels over the bar region (``width`` cells) for ``scale``; ``hi``: the axis end."""
    if width <= 0:
        return ""
    if scale == "row":
        text = "each bar = its row's total" if width >= 26 else "bar = row total"
        note: str = fit_text(text, width, ellipsis=glyphs_for(ascii).ellipsis)
        return note
    cells = [" "] * width
    ticks: list[tuple[float, int]]
    if scale == "linear":
        ticks = [(0.0, 0), (0.5, hi // 2), (1.0, hi)]
    else:
        ticks = [(0.0, 0)]
        decade = 1000
        while decade < hi:
            ticks.append((log_position(decade, hi), decade))
            decade *= 10
        ticks.append((1.0, hi))
    end_label = tick_label(hi, ascii)
    end_start = width - len(end_label)  # the axis end is always labelled
    last_end = -1
    for frac, ns in ticks:
        label = tick_label(ns, ascii)
        start = min(max(0, round(frac * (width - 1)) - len(label) // 2), width - len(label))
        if ns == hi:
            start = end_start
        elif start + len(label) >= end_start:
            continue  # would touch the end label
        if start <= last_end or start < 0:
            continue
        cells[start : start + len(label)] = label
        last_end = start + len(label)
    return "".join(cells)


def bar_suffix(packet: PacketTrace, parts: Sequence[BarPart], ascii: bool) -> Frag:
    """The label after a bar (how the packet ended, when that is not a plain send)."""
    if packet.free_kind == "drop":
        mark = glyphs_for(ascii).drop_mark
        return f"{mark} {packet.drop_reason or 'drop'}", "drop"
    if segmented_at_qdisc(packet):  # "complete", but only as far as the qdisc (endings.py)
        return SEGMENTED_MARK, "warn"
    if packet.track == "lost":
        last = parts[-1].end if parts else next(iter(packet.stages), "?")
        return f"lost after {last}", "warn"
    if packet.track == "aged":
        return "aged, no free seen", "warn"
    if packet.xmit_rc:
        return ("TX_BUSY" if packet.xmit_rc == 0x10 else f"rc={packet.xmit_rc}"), "warn"
    if parts and parts[-1].end == "xmit":
        # Complete at net_dev_xmit (veth/lo hand the skb to the receiver): say so, so the
        # missing free segment is not read as an instant completion.
        return "hand-off", "dim"
    return "", "dim"


def bar_frags(
    packet: PacketTrace,
    parts: Sequence[BarPart],
    width: int,
    scale: str,
    hi: int,
    fills: Mapping[str, str],
    thin_ok: bool,
    ascii: bool,
) -> list[Frag]:
    """A packet's bar and its suffix in exactly ``width`` cells (``hi``: the shared axis end)."""
    if width <= 0:
        return []
    glyphs = glyphs_for(ascii)
    thin_mark = glyphs.thin if thin_ok else ""  # "": none in this look (ASCII)
    suffix, suffix_style = bar_suffix(packet, parts, ascii)
    bar_room = width
    if suffix and scale == "row":
        # Per-row scale has no shared axis to keep: shorten the bar for the label.
        bar_room = max(min(len(parts), width), width - len(suffix) - 1)
    out: list[Frag] = []
    used = 0
    for part, n, thin in layout_bar(parts, scale, bar_room, hi):
        char = thin_mark if thin and thin_mark and n == 1 else fills[part.kind]
        out.append((char * n, part.kind))
        used += n
    if not parts:
        out.append((glyphs.tick, "dim"))
        used += 1
    if suffix:
        label = " " + suffix
        free = width - used
        if free < len(label):
            # No room after the bar: overwrite its tail so the reason stays readable.
            cut = len(label) - free
            out, used = _trim_cells(out, used - min(cut, used))
            free = width - used
        out.append((label[:free], suffix_style))
        used += min(len(label), free)
    out.append((" " * (width - used), "text"))
    return out


def _trim_cells(out: list[Frag], keep: int) -> tuple[list[Frag], int]:
    """Keep the first ``keep`` cells of (text, style) pieces."""
    trimmed: list[Frag] = []
    used = 0
    for text, style in out:
        if used >= keep:
            break
        take = text[: keep - used]
        trimmed.append((take, style))
        used += len(take)
    return trimmed, used
