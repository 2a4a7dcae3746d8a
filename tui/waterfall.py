"""The packet waterfall panel: one row per sampled packet, newest first.

A Line-API widget: ``render_line`` builds only the rows on screen, and each row's strip is
cached by (packet, width, scale, axis, selection), so a 10 Hz update costs the few new rows
plus one header line. Layout (top to bottom): header, column/axis line, packet rows (or the
stage-latency summary), legend.

Bars: each segment is the time between two adjacent observed stages (names from
``txtop.core.latency.INTERVALS``); stages that were not observed merge their neighbours into
a "gap" segment drawn as such, and the segment ending in a drop is drawn in the drop style with
the reason after the bar. Every segment gets at least one cell; one whose true width is under
half a cell is drawn thin (``▏``) so a minimum width never reads as a real duration. The
number column always shows the exact total.
"""

from __future__ import annotations

import bisect
import math
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.cache import LRUCache
from textual.color import Color, ColorParseError
from textual.geometry import Region
from textual.strip import Strip
from textual.theme import Theme
from textual.widget import Widget

from txtop.core.filters import EMPTY_FILTER, FilterSpec
from txtop.core.latency import INTERVAL_STAGES, INTERVALS, summarize_packets
from txtop.core.model import STAGES, LatencyStats, PacketTrace, Snapshot
from txtop.core.text import format_ns

from .filter import FilterScreen
from .inspector import InspectorScreen
from .messages import FilterChanged, SamplingChanged

SCALES = ("row", "linear", "log")
SCALE_LABELS = {"row": "per-row scale", "linear": "shared linear", "log": "shared log"}
SEGMENT_KINDS: tuple[str, ...] = (*INTERVAL_STAGES, "gap", "drop")
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
# Theme variable per segment kind, then Textual base colours to fall back on.
# Theme variable per style, then Textual base colours to fall back on. Stage colours fall back
# to a fixed palette instead: base themes often reuse one colour (accent = warning).
STYLE_VARIABLES: dict[str, tuple[str, ...]] = {
    "stack": ("txtop-stage-stack",),
    "enqueue": ("txtop-stage-enqueue",),
    "qdisc": ("txtop-stage-qdisc",),
    "dequeue": ("txtop-stage-dequeue",),
    "driver": ("txtop-stage-driver",),
    "completion": ("txtop-stage-completion",),
    "gap": ("txtop-stage-gap", "txtop-dim", "text-muted"),
    "drop": ("txtop-drop", "txtop-alert", "error"),
    "dim": ("txtop-dim", "text-muted"),
    "heading": ("txtop-heading", "primary"),
    "alert": ("txtop-alert", "error"),
    "warn": ("txtop-warn", "warning"),
}
# (dark background, light background)
FALLBACK_COLORS: dict[str, tuple[str, str]] = {
    "stack": ("#5f9fdf", "#1f5fa8"),
    "enqueue": ("#4fc1b5", "#137a70"),
    "qdisc": ("#e0b040", "#9a6700"),
    "dequeue": ("#b58fe0", "#7446b0"),
    "driver": ("#7cc46a", "#2f7d22"),
    "completion": ("#b0b8c4", "#5a6472"),
    "gap": ("#6c7480", "#9aa2ad"),
    "drop": ("#ff5f6f", "#c8202e"),
    "dim": ("#808a96", "#6a737d"),
    "heading": ("#8fb3cc", "#0b4f9c"),
    "alert": ("#ff6b7d", "#cf222e"),
    "warn": ("#e0a23c", "#9a6700"),
}
# Fill characters. Colour mode draws every stage solid; without distinct colours (mono theme,
# NO_COLOR) each stage gets its own fill so the bar still reads; ASCII mode likewise.
FILL_COLOR = dict.fromkeys(SEGMENT_KINDS, "█") | {"gap": "┄"}
FILL_MONO = {
    "stack": "█",
    "enqueue": "▓",
    "qdisc": "▒",
    "dequeue": "░",
    "driver": "▞",
    "completion": "─",
    "gap": "┄",
    "drop": "✗",
}
FILL_ASCII = {
    "stack": "=",
    "enqueue": "-",
    "qdisc": "#",
    "dequeue": "~",
    "driver": "%",
    "completion": "+",
    "gap": ".",
    "drop": "X",
}
THIN = "▏"  # a segment shorter than half a cell, drawn at the minimum width
LOG_FLOOR_NS = 100  # the log axis is log(1 + t/100ns): linear below ~100 ns, log above
SAMPLING_STEPS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 100_000)
STATS_REFRESH_S = 1.0  # the summary view recomputes at most this often
STATS_WINDOW_NS = 10_000_000_000


# --- pure helpers (tested directly) ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BarPart:
    kind: str  # an interval name, "gap" (stages in between not observed) or "drop"
    start: str  # stage the segment starts at
    end: str  # stage it ends at
    ns: int


_INTERVAL_BY_PAIR = {pair: name for name, pair in INTERVAL_STAGES.items()}
_STAGE_INDEX = {s: i for i, s in enumerate(STAGES)}


def bar_parts(packet: PacketTrace) -> list[BarPart]:
    """The segments of a packet's bar, in TX-path order (out-of-order stamps count as 0)."""
    present = [(s, packet.stages[s]) for s in STAGES if s in packet.stages]
    parts = []
    for (a, ta), (b, tb) in zip(present, present[1:], strict=False):
        if b == "free" and packet.free_kind == "drop":
            kind = "drop"
        else:
            kind = _INTERVAL_BY_PAIR.get((a, b), "gap")
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
            return step * exp
    return 10 * exp


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
    text = format_ns(ns, ascii)
    digits = len(text) - len(text.lstrip("0123456789."))
    number, unit = text[:digits], text[digits:]
    if "." in number:
        number = number.rstrip("0").rstrip(".")
    return number + unit


def format_len(length: int, gso_segs: int) -> str:
    text = str(length) if length < 10_000 else f"{length / 1024:.1f}K"
    return f"{text}×{gso_segs}" if gso_segs > 1 else text


def format_dev(dev: str, queue: int | None, width: int, ascii: bool = False) -> str:
    """``dev:queue`` in ``width`` cells; a long name is cut, never the queue number."""
    tail = ":" + ("?" if queue is None else str(queue))
    if len(dev) + len(tail) <= width:
        return dev + tail
    keep = max(1, width - len(tail) - 1)
    return dev[:keep] + ("~" if ascii else "…") + tail


def _fit(text: str, width: int, align: str = "<") -> str:
    if len(text) > width:
        text = text[: max(0, width - 1)] + "…" if width > 0 else ""
    return f"{text:{align}{width}}"


def step_sampling(every: int, direction: int) -> int:
    """The next sampling divisor: direction +1 samples less (larger N), -1 samples more."""
    if direction > 0:
        return next((s for s in SAMPLING_STEPS if s > every), SAMPLING_STEPS[-1])
    return next((s for s in reversed(SAMPLING_STEPS) if s < every), SAMPLING_STEPS[0])


@dataclass(frozen=True, slots=True)
class Columns:
    marker: int
    time: int
    who: int
    dev: int
    length: int
    bar_x: int
    bar: int
    total: int
    hours: bool  # time column shows HH:MM:SS.mmm rather than MM:SS.mmm


def layout_columns(width: int, dev_chars: int = 0) -> Columns:
    """Column widths for a panel ``width`` wide; ``dev_chars``: longest "dev:queue" seen."""
    wide = width >= 100
    time_w = 12 if wide else 9
    who_w = 22 if width >= 160 else 18 if wide else 14
    dev_w = max(10, min(dev_chars, 18)) if wide else max(8, min(dev_chars, 10))
    len_w = 8
    total_w = 8
    x = 1 + time_w + 1 + who_w + 1 + dev_w + 1 + len_w + 1
    bar_w = max(0, width - x - 1 - total_w)
    return Columns(1, time_w, who_w, dev_w, len_w, x, bar_w, total_w, wide)


# --- the widget ----------------------------------------------------------------------------


class _Entry:
    """One buffered packet with what its row needs, computed once."""

    __slots__ = ("seq", "packet", "wall_offset_s", "total_ns", "_parts")

    def __init__(self, seq: int, packet: PacketTrace, wall_offset_s: float) -> None:
        self.seq = seq
        self.packet = packet
        self.wall_offset_s = wall_offset_s
        stamps = packet.stages.values()
        self.total_ns = max(stamps) - min(stamps) if stamps else 0
        self._parts: list[BarPart] | None = None

    @property
    def parts(self) -> list[BarPart]:
        if self._parts is None:
            self._parts = bar_parts(self.packet)
        return self._parts


class Waterfall(Widget, can_focus=True):
    """Sampled packets, newest first, with a stage timeline each.

    The app calls ``update_snapshot`` once per snapshot (also while frozen) and
    ``set_frozen``; the widget posts ``FilterChanged`` and ``SamplingChanged``.
    """

    DEFAULT_CSS = """
    Waterfall {
        height: 1fr;
        min-height: 5;
    }
    """
    BINDINGS = [
        Binding("up", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "home", "Newest", show=False),
        Binding("end", "end", "Oldest", show=False),
        Binding("enter", "inspect", "Inspect"),
        Binding("l", "cycle_scale", "Scale"),
        Binding("p", "toggle_stats", "Percentiles"),
        Binding("slash", "filter", "Filter"),
        Binding("left_square_bracket", "sampling(1)", "Sample less", show=False),
        Binding("right_square_bracket", "sampling(-1)", "Sample more", show=False),
    ]

    def __init__(
        self,
        *,
        max_rows: int = 2000,
        ascii: bool = False,
        mono: bool | None = None,
        filter: FilterSpec = EMPTY_FILTER,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.max_rows = max_rows
        self._ascii = ascii
        self._mono_setting = mono  # None: decide from the theme's colours
        self._filter = filter
        self._scale = "row"
        self._show_stats = False
        self._seq = 0
        self._buffer: deque[_Entry] = deque(maxlen=max_rows)  # every packet, for re-filtering
        self._rows: list[_Entry] = []  # matching packets, oldest first
        self._frozen = False
        self._frozen_rows: list[_Entry] = []
        self._frozen_buffer: list[_Entry] = []
        self._frozen_seq = 0
        self._dev_chars = 0  # longest "dev:queue" seen: sizes the device column
        self._cursor = 0  # display index (0 = newest) of the selected row
        self._top = 0  # display index of the first row on screen
        self._snapshot: Snapshot | None = None
        self._received = 0  # packets received in total (before filtering)
        self._pending_every: int | None = None
        self._pending_ticks = 0
        self._axis_hi_ns: int | None = None
        self._row_cache: LRUCache[tuple[object, ...], Strip] = LRUCache(512)
        self._styles: dict[str, Style] = {}
        self._base_style = Style()
        self._fills = FILL_COLOR
        self._mono = False
        self._styles_dirty = True
        self._stats_strips: list[Strip] | None = None
        self._stats_key: tuple[object, ...] | None = None
        self._stats_time = 0.0

    # --- public API ---------------------------------------------------------------------

    def update_snapshot(self, snapshot: Snapshot) -> None:
        """Take one snapshot's packets (call once per snapshot, also while frozen)."""
        previous = self._snapshot
        self._snapshot = snapshot
        sampling = snapshot.probes.sampling.get("every") if snapshot.probes.sampling else None
        if self._pending_every is not None:
            self._pending_ticks += 1
            if sampling == self._pending_every or self._pending_ticks > 5:
                self._pending_every = None
        if previous is not None and (snapshot is previous or snapshot.mono_ns == previous.mono_ns):
            self._refresh_header()  # a repeated snapshot (replay's last one): no new packets
            return
        # Rows appear in the order the packets' traces finished (a rolling log); sorting the
        # batch by last stage keeps that order across CPUs and across batches.
        packets = sorted(snapshot.packets, key=lambda p: p.last_ns)
        if not packets:
            self._refresh_header()
            return
        offset_s = snapshot.time - snapshot.mono_ns / 1e9
        anchor = self._anchor()
        matched = 0
        match = self._filter.matches
        dev_chars = self._dev_chars
        for packet in packets:
            dev_chars = max(dev_chars, len(packet.dev) + 1 + len(str(packet.queue)))
            self._seq += 1
            entry = _Entry(self._seq, packet, offset_s)
            self._buffer.append(entry)
            if match(packet):
                self._rows.append(entry)
                matched += 1
        self._received += len(packets)
        if dev_chars != self._dev_chars:
            self._dev_chars = dev_chars
            self.refresh()  # the column widths changed
        if len(self._rows) > self.max_rows:
            del self._rows[: len(self._rows) - self.max_rows]
        if self._frozen:
            self._refresh_header()
            return
        if matched == 0:
            self._refresh_header()
            return
        self._axis_hi_ns = None
        if anchor is not None:
            self._restore(anchor)
            self._refresh_header()  # the rows on screen did not move
        else:
            self.refresh()

    @property
    def frozen(self) -> bool:
        return self._frozen

    @property
    def arrived_while_frozen(self) -> int:
        """Packets matching the current filter that arrived since the view was frozen."""
        if not self._frozen:
            return 0
        rows = self._rows
        return len(rows) - bisect.bisect_right(rows, self._frozen_seq, key=lambda e: e.seq)

    def set_frozen(self, frozen: bool) -> None:
        """Freeze the rows for reading; packets keep being collected behind the view."""
        if frozen == self._frozen:
            return
        anchor = self._anchor()
        if frozen:
            self._frozen_rows = list(self._rows)
            self._frozen_buffer = list(self._buffer)
            self._frozen_seq = self._seq  # packets after this one arrived while frozen
        self._frozen = frozen
        if not frozen:
            self._frozen_rows = []
            self._frozen_buffer = []
        self._axis_hi_ns = None
        if anchor is not None:
            self._restore(anchor)
        self._invalidate_stats()
        self.refresh()

    @property
    def filter(self) -> FilterSpec:
        return self._filter

    def set_filter(self, spec: FilterSpec, announce: bool = True) -> None:
        """Show only matching packets; ``announce`` posts FilterChanged for the app."""
        self._filter = spec
        self._rows = [e for e in self._buffer if spec.matches(e.packet)]
        if self._frozen:
            self._frozen_rows = [e for e in self._frozen_buffer if spec.matches(e.packet)]
        self._cursor = self._top = 0
        self._axis_hi_ns = None
        self._invalidate_stats()
        self.refresh()
        if announce:
            self.post_message(FilterChanged(spec))

    @property
    def scale(self) -> str:
        return self._scale

    def set_scale(self, scale: str) -> None:
        if scale not in SCALES:
            raise ValueError(f"unknown scale {scale!r}; one of {', '.join(SCALES)}")
        self._scale = scale
        self.refresh()

    @property
    def show_stats(self) -> bool:
        return self._show_stats

    @property
    def ascii(self) -> bool:
        return self._ascii

    @ascii.setter
    def ascii(self, value: bool) -> None:
        self._ascii = value
        self._styles_dirty = True
        self.refresh()

    @property
    def mono(self) -> bool:
        """True when stages are told apart by fill characters rather than colour."""
        if self._styles_dirty and self.is_mounted:
            self._resolve_styles()
        return self._mono

    @mono.setter
    def mono(self, value: bool | None) -> None:
        self._mono_setting = value
        self._styles_dirty = True
        self.refresh()

    def shown_packets(self) -> list[PacketTrace]:
        """The rows' packets, newest first (what the panel shows, before scrolling)."""
        return [e.packet for e in reversed(self._view)]

    @property
    def cursor(self) -> int:
        return self._cursor

    @property
    def selected_packet(self) -> PacketTrace | None:
        entry = self._entry_at(self._cursor)
        return entry.packet if entry else None

    # --- data helpers -------------------------------------------------------------------

    @property
    def _view(self) -> list[_Entry]:
        return self._frozen_rows if self._frozen else self._rows

    def _entry_at(self, index: int) -> _Entry | None:
        view = self._view
        if 0 <= index < len(view):
            return view[len(view) - 1 - index]
        return None

    def _display_index(self, seq: int) -> int:
        """Display index of the packet with ``seq``, or of the nearest one still kept."""
        view = self._view
        if not view:
            return 0
        pos = bisect.bisect_left(view, seq, key=lambda e: e.seq)
        return len(view) - 1 - min(pos, len(view) - 1)

    def _anchor(self) -> tuple[int, int] | None:
        """(cursor seq, top seq) when the user has scrolled away from the newest row."""
        if self._cursor == 0 and self._top == 0:
            return None  # following the newest packets
        cur = self._entry_at(self._cursor)
        top = self._entry_at(self._top)
        if cur is None or top is None:
            return None
        return (cur.seq, top.seq)

    def _restore(self, anchor: tuple[int, int]) -> None:
        self._cursor = self._display_index(anchor[0])
        self._top = self._display_index(anchor[1])

    def _axis_hi(self) -> int:
        if self._axis_hi_ns is None:
            longest = max((e.total_ns for e in self._view), default=0)
            self._axis_hi_ns = nice_ceiling_ns(longest)
        return self._axis_hi_ns

    def _layout(self) -> tuple[int, int, bool]:
        """(first row line, number of row lines, has legend) for the current height."""
        height = self.size.height
        legend = height >= 5
        first = 2 if height >= 3 else 1
        return first, max(0, height - first - (1 if legend else 0)), legend

    def _effective_every(self) -> int | None:
        snap = self._snapshot
        if snap is not None and snap.probes.sampling.get("every"):
            return int(snap.probes.sampling["every"])
        view = self._view
        if view and view[-1].packet.sample_every:
            return view[-1].packet.sample_every
        return None

    # --- actions ------------------------------------------------------------------------

    def _move_cursor(self, index: int) -> None:
        n = len(self._view)
        _, rows_h, _ = self._layout()
        self._cursor = max(0, min(index, n - 1))
        if self._cursor < self._top:
            self._top = self._cursor
        elif rows_h and self._cursor >= self._top + rows_h:
            self._top = self._cursor - rows_h + 1
        self.refresh()

    def action_cursor(self, delta: int) -> None:
        self._move_cursor(self._cursor + delta)

    def action_page(self, direction: int) -> None:
        _, rows_h, _ = self._layout()
        step = max(1, rows_h - 1)
        self._top = max(0, min(self._top + direction * step, max(0, len(self._view) - rows_h)))
        self._move_cursor(self._cursor + direction * step)

    def action_home(self) -> None:
        self._top = 0
        self._move_cursor(0)

    def action_end(self) -> None:
        self._move_cursor(len(self._view) - 1)

    def action_cycle_scale(self) -> None:
        self.set_scale(SCALES[(SCALES.index(self._scale) + 1) % len(SCALES)])

    def action_toggle_stats(self) -> None:
        self._show_stats = not self._show_stats
        self._invalidate_stats()
        self.refresh()

    def action_filter(self) -> None:
        def done(spec: FilterSpec | None) -> None:
            if spec is not None and spec != self._filter:
                self.set_filter(spec)

        self.app.push_screen(FilterScreen(self._filter), done)

    def action_sampling(self, direction: int) -> None:
        current = self._pending_every or self._effective_every() or 1
        every = step_sampling(current, direction)
        if every == current:
            return
        self._pending_every = every
        self._pending_ticks = 0
        self.post_message(SamplingChanged(every))
        self._refresh_header()

    def action_inspect(self) -> None:
        view = self._view
        if not view:
            return
        packets = [(e.packet, e.wall_offset_s) for e in reversed(view)]
        has_bql = {d.dev: d.has_bql for d in self._snapshot.devices} if self._snapshot else {}
        self.app.push_screen(InspectorScreen(packets, self._cursor, has_bql, self._ascii))

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        first, rows_h, _ = self._layout()
        line = offset.y - first
        if self._show_stats or not 0 <= line < rows_h:
            return
        index = self._top + line
        if index < len(self._view):
            self._move_cursor(index)
            if event.chain >= 2:
                self.action_inspect()

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        _, rows_h, _ = self._layout()
        self._top = min(self._top + 3, max(0, len(self._view) - rows_h))
        event.stop()
        self.refresh()

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        self._top = max(0, self._top - 3)
        event.stop()
        self.refresh()

    # --- styles -------------------------------------------------------------------------

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, self._on_theme_changed)

    def _on_theme_changed(self, theme: Theme) -> None:
        self._styles_dirty = True
        self.refresh()

    def _resolve_styles(self) -> None:
        variables = self.app.theme_variables
        base_bg, bg = self.background_colors
        self._base_style = self.rich_style
        colors: dict[str, Color] = {}
        # A theme built on the terminal's default colour (txtop's "mono") gets no palette
        # colours from us either: stages are then told apart by their fill characters.
        mono_theme = _parse_color(variables.get("primary", "")) == Color.parse("ansi_default")
        for kind, names in STYLE_VARIABLES.items():
            color = None
            for var in names:
                value = variables.get(var)
                if not value:
                    continue
                try:
                    color = Color.parse(value)
                    break
                except ColorParseError:
                    continue
            if color is None and mono_theme:
                color = Color.parse("ansi_default")
            elif color is None:
                dark, light = FALLBACK_COLORS[kind]
                color = Color.parse(dark if self.app.current_theme.dark else light)
            colors[kind] = (bg + color) if color.a < 1 else color
        self._styles = {
            kind: self._base_style + Style(color=c.rich_color) for kind, c in colors.items()
        }
        distinct = {colors[k] for k in SEGMENT_KINDS}
        auto_mono = self.app.no_color or len(distinct) < len(SEGMENT_KINDS)
        self._mono = auto_mono if self._mono_setting is None else self._mono_setting
        self._fills = FILL_ASCII if self._ascii else FILL_MONO if self._mono else FILL_COLOR
        self._styles["text"] = self._base_style
        self._styles["selected"] = self._base_style + Style(reverse=True)
        self._styles["bold"] = self._base_style + Style(bold=True)
        self._styles["heading"] = self._styles["heading"] + Style(bold=True)
        self._styles["alert"] = self._styles["alert"] + Style(bold=True)
        if self._mono:
            self._styles["alert"] += Style(reverse=True)
        self._styles_dirty = False
        self._row_cache.clear()
        self._invalidate_stats()

    # --- rendering ----------------------------------------------------------------------

    def _refresh_header(self) -> None:
        self.refresh(Region(0, 0, self.size.width, 1))

    def _invalidate_stats(self) -> None:
        self._stats_strips = None

    def render_line(self, y: int) -> Strip:
        if self._styles_dirty:
            self._resolve_styles()
        width = self.size.width
        first, rows_h, legend = self._layout()
        if y == 0:
            strip = self._header_strip(width)
        elif y < first:
            strip = self._axis_strip(width)
        elif legend and y == self.size.height - 1:
            strip = self._legend_strip(width)
        elif self._show_stats:
            strip = self._stats_strip(y - first, width)
        else:
            strip = self._row_strip(y - first, width)
        return strip.adjust_cell_length(width, self._base_style)

    def _strip(self, parts: Sequence[tuple[str, str]]) -> Strip:
        styles = self._styles
        return Strip([Segment(text, styles[style]) for text, style in parts if text])

    def _header_strip(self, width: int) -> Strip:
        snap = self._snapshot
        view = self._view
        left: list[tuple[str, str]] = [(" Packets ", "heading")]
        if self._filter.empty:
            left.append((f"{len(view)} ", "text"))
        else:
            left.append((f"{len(view)} match ", "text"))
        left.append((f"· {SCALE_LABELS[self._scale]} ", "dim"))
        every = self._effective_every()
        if every:
            rate = f"· sampling 1/{every}"
            if snap is not None and snap.probes.sampling.get("max_per_s"):
                rate += f" ≤{snap.probes.sampling['max_per_s']}/s"
            left.append((rate + " ", "dim"))
        if self._pending_every is not None:
            left.append((f"→ 1/{self._pending_every} ", "warn"))
        if not self._filter.empty:
            left.append(("· filter ", "dim"))
            left.append((self._filter.to_string() + " ", "bold"))
        right: list[tuple[str, str]] = []
        if self._frozen:
            right.append((f" FROZEN +{self.arrived_while_frozen} new ", "alert"))
        elif self._cursor or self._top:
            # Holding the selected row in place: say how many newer rows are above the view.
            right.append((f" ▲ {self._top} newer · Home: follow ", "warn"))
        if snap is not None and snap.probes.state != "running":
            why = snap.probes.reason or snap.probes.state
            right.append((f" probes {snap.probes.state}: {why} ", "warn"))
        if self._ascii:
            left = [(t.replace("·", "|").replace("≤", "<=").replace("→", "->"), s) for t, s in left]
            right = [(t.replace("▲", "^").replace("·", "|"), s) for t, s in right]
        right_len = sum(len(t) for t, _ in right)
        left_strip = self._strip(left).crop(0, max(0, width - right_len))
        pad = max(0, width - right_len - left_strip.cell_length)
        return Strip.join([left_strip, Strip([Segment(" " * pad, self._base_style)]),
                           self._strip(right)])  # fmt: skip

    def _axis_strip(self, width: int) -> Strip:
        cols = layout_columns(width, self._dev_chars)
        key = ("axis", cols, self._scale, self._axis_hi() if self._scale != "row" else 0,
               self._show_stats, self._ascii)  # fmt: skip
        cached = self._row_cache.get(key)
        if cached is not None:
            return cached
        if self._show_stats:
            strip = self._strip([(" stage latency percentiles (p: back to packets)", "dim")])
            self._row_cache[key] = strip
            return strip
        head = (
            " "
            + _fit("time", cols.time)
            + " "
            + _fit("comm[pid]", cols.who)
            + " "
            + _fit("dev:txq", cols.dev)
            + " "
            + _fit("len", cols.length, ">")
            + " "
        )
        axis = self._axis_text(cols.bar)
        strip = self._strip([(head, "dim"), (axis, "dim"), (" " + _fit("total", cols.total, ">"),
                                                           "dim")])  # fmt: skip
        self._row_cache[key] = strip
        return strip

    def _axis_text(self, width: int) -> str:
        """Tick labels over the bar region for the current scale."""
        if width <= 0:
            return ""
        if self._scale == "row":
            return _fit("each bar = its row's total", width)
        hi = self._axis_hi()
        cells = [" "] * width
        ticks: list[tuple[float, int]]
        if self._scale == "linear":
            ticks = [(0.0, 0), (0.5, hi // 2), (1.0, hi)]
        else:
            ticks = [(0.0, 0)]
            decade = 1000
            while decade < hi:
                ticks.append((log_position(decade, hi), decade))
                decade *= 10
            ticks.append((1.0, hi))
        end_label = tick_label(hi, self._ascii)
        end_start = width - len(end_label)  # the axis end is always labelled
        last_end = -1
        for frac, ns in ticks:
            label = tick_label(ns, self._ascii)
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

    def _legend_strip(self, width: int) -> Strip:
        key = ("legend", width, self._ascii, self._mono)
        cached = self._row_cache.get(key)
        if cached is not None:
            return cached
        parts: list[tuple[str, str]] = [(" ", "text")]
        for kind in SEGMENT_KINDS:
            parts.append((self._fills[kind], kind))
            parts.append((LEGEND_NAMES[kind] + " ", "dim"))
        if not (self._ascii or self._mono):
            parts.append((THIN, "dim"))
            parts.append(("<½ cell ", "dim"))
        hints = "  l scale  p pct  / filter  [ ] rate  ⏎ inspect"
        if self._ascii:
            hints = hints.replace("⏎", "Enter")
        used = sum(len(t) for t, _ in parts)
        if used + len(hints) <= width:
            parts.append((hints, "dim"))
        strip = self._strip(parts)
        self._row_cache[key] = strip
        return strip

    def _message_strip(self, line: int, width: int) -> Strip:
        if line != 1:
            return Strip([])
        snap = self._snapshot
        if snap is None:
            text = "waiting for the first snapshot"
        elif snap.probes.state != "running":
            text = f"no packet traces: probes {snap.probes.state}"
            if snap.probes.reason:
                text += f" ({snap.probes.reason})"
        elif self._received and not self._filter.empty:
            text = f"no packet matches the filter: {self._filter.to_string()}  (/ to change)"
        else:
            every = self._effective_every()
            text = "waiting for sampled packets" + (f" (1 in {every} is traced)" if every else "")
        return self._strip([("  " + text, "dim")])

    def _row_strip(self, line: int, width: int) -> Strip:
        view = self._view
        if not view:
            return self._message_strip(line, width)
        index = self._top + line
        if index >= len(view):
            return Strip([])
        entry = view[len(view) - 1 - index]
        selected = index == self._cursor
        hi = self._axis_hi() if self._scale != "row" else 0
        key = (entry.seq, width, self._dev_chars, self._scale, hi, selected)
        strip = self._row_cache.get(key)
        if strip is None:
            strip = self._build_row(entry, width, selected, hi)
            self._row_cache[key] = strip
        return strip

    def _build_row(self, entry: _Entry, width: int, selected: bool, hi: int) -> Strip:
        cols = layout_columns(width, self._dev_chars)
        p = entry.packet
        asc = self._ascii
        wall = p.first_ns / 1e9 + entry.wall_offset_s
        whole = int(wall)
        clock = time.strftime("%H:%M:%S" if cols.hours else "%M:%S", time.localtime(whole))
        stamp = f"{clock}.{int((wall - whole) * 1000):03d}"
        if p.pid:
            pid = f"[{p.pid}]"
            comm = p.comm or "?"
            room = cols.who - len(pid)
            who = (comm if len(comm) <= room else comm[: max(1, room - 1)] + "…") + pid
        else:
            who = "(no syscall)"  # sent from softirq/kernel context: no sender to name
        dev = format_dev(p.dev, p.queue, cols.dev, asc)
        length = format_len(p.len, p.gso_segs)
        if asc:
            who = who.replace("…", "~")
            length = length.replace("×", "x")
        text_style = "selected" if selected else "text"
        parts: list[tuple[str, str]] = [
            (">" if selected and asc else "›" if selected else " ", "bold"),
            (_fit(stamp, cols.time) + " ", text_style),
            (_fit(who, cols.who) + " ", "dim" if not p.pid and not selected else text_style),
            (_fit(dev, cols.dev) + " ", text_style),
            (_fit(length, cols.length, ">"), text_style),
            (" ", "text"),
        ]
        parts.extend(self._bar(entry, cols.bar))
        if len(p.stages) < 2:
            total = "-"
        else:
            total = format_ns(entry.total_ns, asc)
            if p.track != "complete":
                total = (">=" if asc else "≥") + total
        parts.append((" " + _fit(total, cols.total, ">"), "bold"))
        return self._strip(parts)

    def _suffix(self, packet: PacketTrace, parts: Sequence[BarPart]) -> tuple[str, str]:
        asc = self._ascii
        if packet.free_kind == "drop":
            mark = "x" if asc else "✗"
            return f"{mark} {packet.drop_reason or 'drop'}", "drop"
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

    def _bar(self, entry: _Entry, width: int) -> list[tuple[str, str]]:
        if width <= 0:
            return []
        packet = entry.packet
        parts = entry.parts
        suffix, suffix_style = self._suffix(packet, parts)
        bar_room = width
        if suffix and self._scale == "row":
            # Per-row scale has no shared axis to keep: shorten the bar for the label.
            bar_room = max(min(len(parts), width), width - len(suffix) - 1)
        hi = self._axis_hi()
        cells = layout_bar(parts, self._scale, bar_room, hi)
        out: list[tuple[str, str]] = []
        used = 0
        fills = self._fills
        thin_ok = not (self._ascii or self._mono)
        for part, n, thin in cells:
            char = THIN if thin and thin_ok and n == 1 else fills[part.kind]
            out.append((char * n, part.kind))
            used += n
        if not parts:
            marker = "|" if self._ascii else "┃"
            out.append((marker, "dim"))
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

    def _stats_strip(self, line: int, width: int) -> Strip:
        now = time.monotonic()
        key = (width, self._frozen, self._filter, id(self._snapshot))
        if (
            self._stats_strips is None
            or key != self._stats_key
            and now - self._stats_time >= STATS_REFRESH_S
        ):
            self._stats_strips = self._build_stats(width)
            self._stats_key = key
            self._stats_time = now
        if line < len(self._stats_strips):
            return self._stats_strips[line]
        return Strip([])

    def _stats_source(
        self,
    ) -> tuple[str, dict[str, LatencyStats], list[tuple[str, dict[str, LatencyStats]]]]:
        snap = self._snapshot
        if snap is not None and snap.latency_ns and self._filter.empty and not self._frozen:
            per_queue = [(f"{q.dev}:{q.queue}", dict(q.latency_ns)) for q in snap.queues]
            return (
                "all sampled packets, collector window",
                dict(snap.latency_ns),
                [(n, s) for n, s in per_queue if s],
            )
        view = self._view
        newest = max((e.packet.last_ns for e in view), default=0)
        packets = [e.packet for e in view if e.packet.last_ns >= newest - STATS_WINDOW_NS]
        groups: dict[tuple[str, int], list[PacketTrace]] = {}
        for packet in packets:
            if packet.queue is not None:
                groups.setdefault((packet.dev, packet.queue), []).append(packet)
        what = "shown rows" + (" (frozen)" if self._frozen else "")
        return (
            f"{what}, last 10 s",
            summarize_packets(packets),
            [(f"{d}:{q}", summarize_packets(g)) for (d, q), g in sorted(groups.items())],
        )

    def _build_stats(self, width: int) -> list[Strip]:
        asc = self._ascii
        label, overall, per_queue = self._stats_source()
        count = max((s.count for s in overall.values()), default=0)
        title_w = 36 if width >= 100 else 14
        header = "   " + _fit("interval", title_w)
        header += "".join(_fit(h, 9, ">") for h in ("p50", "p90", "p99", "max", "count"))
        lines: list[list[tuple[str, str]]] = [
            [(" Stage latency ", "heading"), (f"· {label} · up to {count} samples", "dim")],
            [(header, "dim")],
        ]
        for name in INTERVALS:
            span = "first→last" if name == "total" else "→".join(INTERVAL_STAGES[name])
            if asc:
                span = span.replace("→", "->")
            title = _fit(f"{name} ({span})" if width >= 100 else name, title_w)
            stats = overall.get(name)
            if stats is None:
                values = _fit("-", 9, ">") * 4 + _fit("0", 9, ">")
            else:
                quantiles = (stats.p50, stats.p90, stats.p99, stats.max)
                values = "".join(_fit(format_ns(v, asc), 9, ">") for v in quantiles)
                values += _fit(str(stats.count), 9, ">")
            kind = name if name in self._styles and name != "total" else "bold"
            lines.append(
                [(" ", "text"), (self._fills.get(name, " "), kind), (" " + title, "text"),
                 (values, "text")]
            )  # fmt: skip
        if per_queue:
            lines.append([])
            short = {"stack": "stack", "enqueue": "enq", "qdisc": "qdisc", "dequeue": "deq",
                     "driver": "driver", "completion": "free", "total": "total"}  # fmt: skip
            lines.append([(" " + _fit("p99 by queue", 12) + "".join(_fit(short[n], 8, ">")
                          for n in INTERVALS), "dim")])  # fmt: skip
            for name, stats_by in per_queue:
                cells = "".join(
                    _fit(format_ns(stats_by[n].p99, asc) if n in stats_by else "-", 8, ">")
                    for n in INTERVALS
                )
                lines.append([(" " + _fit(name, 12), "text"), (cells, "text")])
        return [self._strip(parts) if parts else Strip([]) for parts in lines]


def _parse_color(value: str) -> Color | None:
    try:
        return Color.parse(value)
    except ColorParseError:
        return None


def _trim_cells(out: list[tuple[str, str]], keep: int) -> tuple[list[tuple[str, str]], int]:
    """Keep the first ``keep`` cells of (text, style) pieces."""
    trimmed: list[tuple[str, str]] = []
    used = 0
    for text, style in out:
        if used >= keep:
            break
        take = text[: keep - used]
        trimmed.append((take, style))
        used += len(take)
    return trimmed, used
