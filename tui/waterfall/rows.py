"""The waterfall's rows without the widget: packets kept, filter, freeze, cursor (pure).

``RowBuffer`` keeps every packet received (bounded) so a new filter can be applied to the past,
the matching rows, a frozen copy while the view is frozen, and the cursor and scroll position
as display indexes (0 = newest). When the user has moved away from the newest row, the
position is held on the same packets while new ones arrive (the "anchor"); when the held packet
leaves the buffer, the view follows the newest rows again and says so (``take_notice``). The
widget asks it what to draw and tells it the visible height; nothing here knows about Textual.

Rows are ordered by their packet's start (its first stage, the time the row shows), not by
when its trace ended: a shaping qdisc that holds a packet for 200 ms must not put it above
packets sent after it. A packet whose trace ends late is inserted where its start belongs.
"""

from __future__ import annotations

import bisect
from collections import deque

from txtop.core.filters import EMPTY_FILTER, FilterSpec
from txtop.core.model import PacketTrace, Snapshot

from .bars import BarPart, bar_parts, nice_ceiling_ns

SAMPLING_STEPS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 100_000)
PENDING_TICKS = 5  # snapshots to wait for the tracer to confirm a new sampling rate
# What the rows are ordered by (Entry.key), as the time column's title names it.
ROW_ORDER = "start"
LEFT_BUFFER_NOTICE = (
    "the selected packet left the buffer (the newest {n} rows are kept): following the newest"
)


def _key(entry: Entry) -> tuple[int, int]:
    return entry.key


def step_sampling(every: int, direction: int) -> int:
    """The next sampling divisor: direction +1 samples less (larger N), -1 samples more."""
    if direction > 0:
        return next((s for s in SAMPLING_STEPS if s > every), SAMPLING_STEPS[-1])
    return next((s for s in reversed(SAMPLING_STEPS) if s < every), SAMPLING_STEPS[0])


class Entry:
    """One buffered packet with what its row needs, computed once."""

    __slots__ = ("seq", "key", "packet", "wall_offset_s", "total_ns", "_parts")

    def __init__(self, seq: int, packet: PacketTrace, wall_offset_s: float) -> None:
        self.seq = seq  # arrival order; identifies the row (cache keys)
        self.key = (packet.first_ns, seq)  # the rows' order: the packet's start (ROW_ORDER)
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


class RowBuffer:
    """Packets for the waterfall, newest last; display indexes count from the newest (0).

    ``cursor`` and ``top`` are display indexes of the selected row and of the first row on
    screen. Methods that move them take ``rows_h``, the number of row lines on screen.
    """

    def __init__(self, max_rows: int = 2000, filter: FilterSpec = EMPTY_FILTER) -> None:
        self.max_rows = max_rows
        self.cursor = 0
        self.top = 0
        self.dev_chars = 0  # longest "dev:queue" seen: sizes the device column
        self.snapshot: Snapshot | None = None  # the latest one
        self.received = 0  # packets received in total (before filtering)
        self.pending_every: int | None = None  # a sampling rate asked for, not yet confirmed
        self._pending_ticks = 0
        self._filter = filter
        self._seq = 0
        self._buffer: deque[Entry] = deque(maxlen=max_rows)  # every packet, for re-filtering
        self._rows: list[Entry] = []  # matching packets, oldest first
        self._frozen = False
        self._frozen_rows: list[Entry] = []
        self._frozen_buffer: list[Entry] = []
        self._frozen_seq = 0
        self._axis_hi_ns: int | None = None
        self._notice = ""
        # --pid values no process had at start (the empty panel's reason; set by the app).
        self.missing_pids: frozenset[int] = frozenset()

    def add(self, snapshot: Snapshot) -> bool:
        """Take one snapshot's packets (call once per snapshot, also while frozen).

        True when the rows on screen changed (repaint all); False when only the header line
        may have (new packets behind a frozen or anchored view, or none at all).
        """
        previous = self.snapshot
        self.snapshot = snapshot
        sampling = snapshot.probes.sampling.get("every") if snapshot.probes.sampling else None
        if self.pending_every is not None:
            self._pending_ticks += 1
            if sampling == self.pending_every or self._pending_ticks > PENDING_TICKS:
                self.pending_every = None
        if previous is not None and (snapshot is previous or snapshot.mono_ns == previous.mono_ns):
            return False  # a repeated snapshot (replay's last one): no new packets
        # Rows are ordered by their packets' start (Entry.key): a batch sorted by it is
        # appended; a packet that started before the newest row is inserted in its place.
        packets = sorted(snapshot.packets, key=lambda p: p.first_ns)
        if not packets:
            return False
        offset_s = snapshot.time - snapshot.mono_ns / 1e9
        anchor = self._anchor()
        matched = 0
        inserted = False
        match = self._filter.matches
        dev_chars = self.dev_chars
        rows = self._rows
        for packet in packets:
            dev_chars = max(dev_chars, len(packet.dev) + 1 + len(str(packet.queue)))
            self._seq += 1
            entry = Entry(self._seq, packet, offset_s)
            self._buffer.append(entry)
            if match(packet):
                if rows and entry.key < rows[-1].key:
                    bisect.insort(rows, entry, key=_key)
                    inserted = True  # among the rows already shown, maybe on screen
                else:
                    rows.append(entry)
                matched += 1
        self.received += len(packets)
        widened = dev_chars != self.dev_chars  # the column widths changed
        self.dev_chars = dev_chars
        if len(rows) > self.max_rows:
            del rows[: len(rows) - self.max_rows]
        if self._frozen or matched == 0:
            return widened
        self._axis_hi_ns = None
        if anchor is not None and self._restore(anchor):
            return widened or inserted  # the rows on screen did not move, unless inserted
        return True

    @property
    def entries(self) -> list[Entry]:
        """The rows shown, oldest first: the matching packets, or their frozen copy."""
        return self._frozen_rows if self._frozen else self._rows

    def shown_packets(self) -> list[PacketTrace]:
        """The rows' packets, newest first (what the panel shows, before scrolling)."""
        return [e.packet for e in reversed(self.entries)]

    def entry_at(self, index: int) -> Entry | None:
        """The entry at display index ``index`` (0 = newest), if there is one."""
        view = self.entries
        if 0 <= index < len(view):
            return view[len(view) - 1 - index]
        return None

    @property
    def selected_packet(self) -> PacketTrace | None:
        entry = self.entry_at(self.cursor)
        return entry.packet if entry else None

    # --- freeze and filter ----------------------------------------------------------------

    @property
    def frozen(self) -> bool:
        return self._frozen

    def set_frozen(self, frozen: bool) -> bool:
        """Freeze the rows for reading; packets keep being collected behind the view.
        False when nothing changed."""
        if frozen == self._frozen:
            return False
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
        return True

    @property
    def arrived_while_frozen(self) -> int:
        """Packets matching the current filter that arrived since the view was frozen."""
        if not self._frozen:
            return 0
        after = self._frozen_seq
        return sum(1 for e in self._rows if e.seq > after)

    @property
    def filter(self) -> FilterSpec:
        return self._filter

    def set_filter(self, spec: FilterSpec) -> None:
        """Show only packets matching ``spec``, the ones already received included."""
        self._filter = spec
        self._rows = sorted((e for e in self._buffer if spec.matches(e.packet)), key=_key)
        if self._frozen:
            kept = (e for e in self._frozen_buffer if spec.matches(e.packet))
            self._frozen_rows = sorted(kept, key=_key)
        self.cursor = self.top = 0
        self._axis_hi_ns = None

    # --- derived values -------------------------------------------------------------------

    def axis_hi(self) -> int:
        """End of the shared axis: a round number above the longest row's total."""
        if self._axis_hi_ns is None:
            longest = max((e.total_ns for e in self.entries), default=0)
            self._axis_hi_ns = nice_ceiling_ns(longest)
        return self._axis_hi_ns

    def effective_every(self) -> int | None:
        """The sampling divisor in force: the tracer's, else the newest row's."""
        snap = self.snapshot
        if snap is not None and snap.probes.sampling.get("every"):
            return int(snap.probes.sampling["every"])
        view = self.entries
        if view and view[-1].packet.sample_every:
            every: int = view[-1].packet.sample_every
            return every
        return None

    def request_sampling(self, direction: int) -> int | None:
        """Step the sampling rate (``[``: +1, ``]``: -1); the new divisor to ask the tracer
        for, or None at the end of the range. Pending until a snapshot confirms it."""
        current = self.pending_every or self.effective_every() or 1
        every = step_sampling(current, direction)
        if every == current:
            return None
        self.pending_every = every
        self._pending_ticks = 0
        return every

    # --- cursor and scrolling -------------------------------------------------------------

    def move_cursor(self, index: int, rows_h: int) -> None:
        """Select display index ``index`` (clamped), scrolling just enough to show it."""
        self.cursor = max(0, min(index, len(self.entries) - 1))
        if self.cursor < self.top:
            self.top = self.cursor
        elif rows_h and self.cursor >= self.top + rows_h:
            self.top = self.cursor - rows_h + 1

    def navigate(self, how: str, rows_h: int, amount: int = 0) -> None:
        """A navigation key: ``line`` or ``page`` by ``amount`` (+ = older), ``home`` (back to
        the newest row, following new packets again) or ``end`` (the oldest row)."""
        if how == "line":
            self.move_cursor(self.cursor + amount, rows_h)
        elif how == "page":
            # One screen less a line of overlap; the cursor moves as far as the view.
            step = max(1, rows_h - 1)
            last_top = max(0, len(self.entries) - rows_h)
            self.top = max(0, min(self.top + amount * step, last_top))
            self.move_cursor(self.cursor + amount * step, rows_h)
        elif how == "home":
            self.top = 0
            self.move_cursor(0, rows_h)
        elif how == "end":
            self.move_cursor(len(self.entries) - 1, rows_h)
        else:
            raise ValueError(f"unknown move {how!r}")

    def scroll(self, lines: int, rows_h: int) -> None:
        """Scroll the view ``lines`` towards older (+) or newer (-) rows; the cursor stays."""
        if lines > 0:
            self.top = min(self.top + lines, max(0, len(self.entries) - rows_h))
        else:
            self.top = max(0, self.top + lines)

    def take_notice(self) -> str:
        """A notice for the user since the last call ("" for none), once."""
        notice, self._notice = self._notice, ""
        return notice

    def _find(self, key: tuple[int, int]) -> tuple[int, bool]:
        """(display index of the row with ``key`` or of the nearest one kept, found)."""
        view = self.entries
        if not view:
            return 0, False
        pos = bisect.bisect_left(view, key, key=_key)
        found = pos < len(view) and view[pos].key == key
        return len(view) - 1 - min(pos, len(view) - 1), found

    def _anchor(self) -> tuple[tuple[int, int], tuple[int, int]] | None:
        """(cursor key, top key) when the user has scrolled away from the newest row."""
        if self.cursor == 0 and self.top == 0:
            return None  # following the newest packets
        cur = self.entry_at(self.cursor)
        top = self.entry_at(self.top)
        if cur is None or top is None:
            return None
        return (cur.key, top.key)

    def _restore(self, anchor: tuple[tuple[int, int], tuple[int, int]]) -> bool:
        """Put the cursor and the top back on their packets; False when the selected one
        has left the buffer and the view follows the newest rows instead."""
        cursor, found = self._find(anchor[0])
        if not found:
            # The selected packet is no longer kept: holding the view on the oldest row left
            # would show one row under "N newer"; follow the newest again instead.
            self.cursor = self.top = 0
            self._notice = LEFT_BUFFER_NOTICE.format(n=self.max_rows)
            return False
        self.cursor = cursor
        self.top = min(self._find(anchor[1])[0], cursor)
        return True
