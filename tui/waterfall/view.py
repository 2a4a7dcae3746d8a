"""The waterfall widget: keys, mouse, the public API the app uses, and ``render_line``.

A Line-API widget: Textual asks for the lines on screen only, and ``Painter`` answers from its
cache. What the lines say comes from ``RowBuffer`` (the data) and ``lines``/``bars``/``stats``
(the text), none of which need Textual.

Not a ``ScrollView`` (toolong's log view is one; considered): here the header, column and
legend lines stay put while only the rows scroll, which one scrolled area does not give without
splitting the panel into several widgets; a held selection moves its scroll offset on every tick
as newer rows arrive above it, and a ScrollView repaints its whole region on each ``scroll_y``
change where this widget repaints the header line only; and its scrollbar would change the
screenshots.
"""

from __future__ import annotations

from collections.abc import Collection

from textual import events, on
from textual.binding import Binding
from textual.geometry import Region
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget

from txtop.core.filters import EMPTY_FILTER, FilterSpec
from txtop.core.model import PacketTrace, Snapshot

from ..filter import FilterScreen
from ..inspector import InspectorScreen
from ..messages import FilterChanged, SamplingChanged
from ..talkers import TalkersScreen
from .bars import SCALES
from .lines import Look, frame
from .paint import Painter
from .rows import RowBuffer

WHEEL_LINES = 3  # rows per mouse-wheel step


class Waterfall(Widget, can_focus=True):
    """Sampled packets, newest first, with a stage timeline each.

    The app calls ``update_snapshot`` once per snapshot (also while frozen) and
    ``set_frozen``; the widget posts ``FilterChanged`` and ``SamplingChanged``. ``rows``
    holds the data (cursor, freeze, filter) for readers that want more than the API below.
    """

    DEFAULT_CSS = """
    Waterfall {
        height: 1fr;
        min-height: 5;
    }
    """
    BINDINGS = [
        Binding("up", "navigate('line', -1)", "Up", show=False),
        Binding("down", "navigate('line', 1)", "Down", show=False),
        Binding("pageup", "navigate('page', -1)", "Page up", show=False),
        Binding("pagedown", "navigate('page', 1)", "Page down", show=False),
        Binding("home", "navigate('home')", "Newest", show=False),
        Binding("end", "navigate('end')", "Oldest", show=False),
        Binding("enter", "inspect", "Inspect"),
        Binding("l", "cycle_scale", "Scale"),
        Binding("p", "toggle_stats", "Percentiles"),
        Binding("slash", "filter", "Filter"),
        Binding("o", "talkers", "Top talkers", show=False),
        Binding("left_square_bracket", "sampling(1)", "Sample less", show=False),
        Binding("right_square_bracket", "sampling(-1)", "Sample more", show=False),
    ]

    scale: reactive[str] = reactive("row", init=False)  # one of SCALES
    show_stats: reactive[bool] = reactive(False, init=False)  # percentiles instead of rows
    ascii: reactive[bool] = reactive(False, init=False)

    def __init__(
        self,
        *,
        max_rows: int = 2000,
        ascii: bool = False,
        mono: bool | None = None,
        filter: FilterSpec = EMPTY_FILTER,
        missing_pids: Collection[int] = (),
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.rows = RowBuffer(max_rows, filter)
        self.rows.missing_pids = frozenset(missing_pids)  # --pid of no process: the empty text
        self._mono_setting = mono  # None: decide from the theme's colours
        self._painter = Painter()
        self.set_reactive(Waterfall.ascii, ascii)

    # --- public API ---------------------------------------------------------------------

    @property
    def max_rows(self) -> int:
        return self.rows.max_rows

    @max_rows.setter
    def max_rows(self, value: int) -> None:
        self.rows.max_rows = value

    def update_snapshot(self, snapshot: Snapshot) -> None:
        """Take one snapshot's packets (call once per snapshot, also while frozen)."""
        if self.rows.add(snapshot):
            self.refresh()
        else:
            self.refresh(Region(0, 0, self.size.width, 1))  # the header line only
        notice = self.rows.take_notice()  # the selected packet left the buffer
        if notice:
            self.notify(notice, timeout=4)

    @property
    def frozen(self) -> bool:
        return self.rows.frozen

    def set_frozen(self, frozen: bool) -> None:
        """Freeze the rows for reading; packets keep being collected behind the view."""
        if self.rows.set_frozen(frozen):
            self._painter.invalidate_stats()
            self.refresh()
            notice = self.rows.take_notice()
            if notice:
                self.notify(notice, timeout=4)

    @property
    def filter(self) -> FilterSpec:
        return self.rows.filter

    def set_filter(self, spec: FilterSpec, announce: bool = True) -> None:
        """Show only matching packets; ``announce`` posts FilterChanged for the app."""
        self.rows.set_filter(spec)
        self._painter.invalidate_stats()
        self.refresh()
        if announce:
            self.post_message(FilterChanged(spec))

    def set_scale(self, scale: str) -> None:
        self.scale = scale

    def validate_scale(self, scale: str) -> str:
        if scale not in SCALES:
            raise ValueError(f"unknown scale {scale!r}; one of {', '.join(SCALES)}")
        return scale

    @property
    def mono(self) -> bool:
        """True when stages are told apart by fill characters rather than colour."""
        if self._painter.dirty and self.is_mounted:
            self._painter.resolve(self, self._mono_setting)
        return self._painter.mono

    def shown_packets(self) -> list[PacketTrace]:
        """The rows' packets, newest first (what the panel shows, before scrolling)."""
        return self.rows.shown_packets()

    def watch_show_stats(self) -> None:
        self._painter.invalidate_stats()

    def watch_ascii(self) -> None:
        self._painter.dirty = True

    # --- actions and input --------------------------------------------------------------

    def action_navigate(self, how: str, amount: int = 0) -> None:
        """Move the selection: ``line`` or ``page`` by ``amount``, ``home``, ``end``."""
        self.rows.navigate(how, frame(self.size.height)[1], amount)
        self.refresh()

    def action_cycle_scale(self) -> None:
        self.scale = SCALES[(SCALES.index(self.scale) + 1) % len(SCALES)]

    def action_toggle_stats(self) -> None:
        self.show_stats = not self.show_stats

    def action_filter(self) -> None:
        def done(spec: FilterSpec | None) -> None:
            if spec is not None and spec != self.rows.filter:
                self.set_filter(spec)

        self.app.push_screen(FilterScreen(self.rows.filter), done)

    def action_sampling(self, direction: int) -> None:
        every = self.rows.request_sampling(direction)
        if every is not None:
            self.post_message(SamplingChanged(every))
            self.refresh(Region(0, 0, self.size.width, 1))  # "-> 1/N" in the header

    def action_inspect(self) -> None:
        view = self.rows.entries
        if not view:
            return
        packets = [(e.packet, e.wall_offset_s) for e in reversed(view)]
        snap = self.rows.snapshot
        has_bql = {d.dev: d.has_bql for d in snap.devices} if snap else {}
        hooks = dict(snap.probes.hooks) if snap else {}
        self.app.push_screen(
            InspectorScreen(packets, self.rows.cursor, has_bql, self.ascii, hooks=hooks)
        )

    def action_talkers(self) -> None:
        """The top talkers of each queue, from the newest snapshot (redrawn as they come)."""
        self.app.push_screen(TalkersScreen(lambda: self.rows.snapshot, self.ascii))

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        first, rows_h, _ = frame(self.size.height)
        line = offset.y - first
        if self.show_stats or not 0 <= line < rows_h:
            return
        index = self.rows.top + line
        if index < len(self.rows.entries):
            self.rows.move_cursor(index, rows_h)
            self.refresh()
            if event.chain >= 2:
                self.action_inspect()

    @on(events.MouseScrollDown)
    @on(events.MouseScrollUp)
    def _wheel(self, event: events.MouseScrollDown | events.MouseScrollUp) -> None:
        down = isinstance(event, events.MouseScrollDown)
        self.rows.scroll(WHEEL_LINES if down else -WHEEL_LINES, frame(self.size.height)[1])
        event.stop()
        self.refresh()

    # --- drawing ------------------------------------------------------------------------

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, self._restyle)

    def _restyle(self, _theme: object = None) -> None:
        self._painter.dirty = True
        self.refresh()

    def render_line(self, y: int) -> Strip:
        painter = self._painter
        if painter.dirty:
            painter.resolve(self, self._mono_setting)
        look = Look(self.scale, self.ascii, painter.mono)
        return painter.line(y, self.size, self.rows, look, self.show_stats)
