"""The top-talkers view's text (pure): per TX queue, the flows and processes that carry the most
bytes over the recent window, with packets, share, qdisc wait p50/p99 and drops.

Every number is an estimate from the sampled packets (core/talkers.py has the estimator) and
is marked ``~``. Lines are (text, style name) fragments like the waterfall's other lines.
"""

from __future__ import annotations

from collections.abc import Sequence

from txtop.core.model import QueueRow, Snapshot, Talker
from txtop.core.text import fit_text, format_ns
from txtop.tui.glyphs import glyphs_for

Frag = tuple[str, str]
Line = list[Frag]

# (title, width, align) of the numeric columns after the name
COLUMNS: tuple[tuple[str, int, str], ...] = (
    ("bits/s", 8, ">"),
    ("pkt/s", 7, ">"),
    ("share", 6, ">"),
    ("wait p50", 9, ">"),
    ("p99", 8, ">"),
    ("drops/s", 8, ">"),
)
NUMBERS_W = sum(w + 1 for _, w, _ in COLUMNS)


def si(value: float) -> str:
    """1234567 -> "1.2M" (no unit), 950 -> "950"."""
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            scaled = value / factor
            return f"{scaled:.1f}{suffix}" if scaled < 100 else f"{scaled:.0f}{suffix}"
    return f"{value:.0f}" if value >= 10 or value == 0 else f"{value:.1f}"


def estimate(value: float) -> str:
    return "~" + si(value)


def _wait(ns: int | None, ascii: bool) -> str:
    return "-" if ns is None else format_ns(ns, ascii)


def talker_line(t: Talker, width: int, ascii: bool = False, who: bool = True) -> Line:
    """One flow or process: name (and, for a flow, its sender), then the numbers."""
    name_w = max(8, width - NUMBERS_W - 2)
    name = t.name
    if who and t.kind == "flow" and t.owner is not None:
        sender = f"{t.owner.comm}[{t.owner.pid}]" if t.owner.pid else "(kernel)"
        name = f"{name}  {sender}"
    ellipsis = glyphs_for(ascii).ellipsis
    values = (
        estimate(t.bytes_per_s * 8),
        estimate(t.packets_per_s),
        f"{t.share_pct:.0f}%",
        _wait(t.wait_p50_ns, ascii),
        _wait(t.wait_p99_ns, ascii),
        estimate(t.drops_per_s) if t.drops_per_s else "0",
    )
    out: Line = [("  " + fit_text(name, name_w, ellipsis=ellipsis), "text")]
    for (title, w, align), value in zip(COLUMNS, values, strict=True):
        style = "alert" if title == "drops/s" and t.drops_per_s else "text"
        out.append((" " + fit_text(value, w, align), style))
    return out


def header_line(title: str, width: int, ascii: bool = False) -> Line:
    name_w = max(8, width - NUMBERS_W - 2)
    text = "  " + fit_text(title, name_w, ellipsis=glyphs_for(ascii).ellipsis)
    text += "".join(" " + fit_text(t, w, a) for t, w, a in COLUMNS)
    return [(text, "dim")]


def _queue_bytes(row: QueueRow) -> float:
    return sum(t.bytes_per_s for t in row.flows)


def talkers_lines(snapshot: Snapshot | None, width: int, ascii: bool = False) -> list[Line]:
    """The whole view: a block per queue with samples, busiest first."""
    if snapshot is None:
        return [[("waiting for the first snapshot", "dim")]]
    rows = [q for q in snapshot.queues if q.flows or q.processes]
    if not rows:
        why = "no sampled packets in the recent window"
        if snapshot.probes.state != "running" and snapshot.mode == "live":
            why = f"probes {snapshot.probes.state}: {snapshot.probes.reason or 'no samples'}"
        return [[(why, "dim")]]
    rows.sort(key=_queue_bytes, reverse=True)
    samples = sum(t.samples for q in rows for t in q.flows)
    window = max((t.window_s for q in rows for t in q.flows), default=0.0)
    note = (
        f"~ estimates: {samples} sampled packets over {window:.1f} s of traced time, "
        "each counted 1/p times (1-in-N, the sample cap, trace windows)"
    )
    lines: list[Line] = [[(fit_text(note, width, ellipsis=glyphs_for(ascii).ellipsis).rstrip(), "dim")]]
    for row in rows:
        total = _queue_bytes(row)
        pps = sum(t.packets_per_s for t in row.flows)
        lines.append([])
        lines.append(
            [
                (f"{row.dev} tx-{row.queue}", "heading"),
                (f"  {estimate(total * 8)}bit/s  {estimate(pps)} pkt/s", "text"),
            ]
        )
        lines.append(header_line("flows (sender)", width, ascii))
        lines += [talker_line(t, width, ascii) for t in row.flows]
        lines.append(header_line("processes", width, ascii))
        lines += [talker_line(t, width, ascii, who=False) for t in row.processes]
    return lines


def line_text(line: Sequence[Frag]) -> str:
    return "".join(t for t, _ in line)
