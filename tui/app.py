"""The txtop dashboard: a Textual app fed by any SnapshotSource.

Data flow: the source's thread calls ``sink(snapshot)``; the sink posts a ``SnapshotArrived``
message (tui/messages.py), and a newer unhandled snapshot replaces an older one, so a slow
terminal never builds a backlog. Panels are rebuilt only when a snapshot arrives or the view
changes (sort, size, theme), never on a timer.

What the app may ask of its source beyond snapshots comes as protocols (core/controls.py):
``ReplayControls`` from ``source.replay_controls`` when it plays a recording (tui/replay_keys.py
maps the keys), and ``TracerControls`` (``control``) when probes run. The rows are shared out by
tui/layout.py; leaving (signals, a lost terminal, the watchdog) is tui/terminal.py.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence

from textual import events
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container
from textual.widgets import Static

from txtop.core.controls import TracerControls
from txtop.core.filters import FilterSpec
from txtop.core.history import History
from txtop.core.model import Snapshot
from txtop.core.source import SnapshotSource
from txtop.recordings.recording import RecordingSink
from txtop.themes import DEFAULT_THEME
from txtop.tui.feed import TABLE_MIN_INTERVAL_S, SourceLink, TableRefresh
from txtop.tui.findings_view import FindingsStrip, JumpTo
from txtop.tui.flight_keys import FlightKeys
from txtop.tui.layout import PanelLayout
from txtop.tui.messages import FilterChanged, SamplingChanged, SnapshotArrived
from txtop.tui.panels import (
    SORT_KEYS,
    CpusPanel,
    HeaderBar,
    HeaderState,
    KeyHints,
    QueuesPanel,
    fmt_interval,
)
from txtop.tui.panels.queues import queues_title
from txtop.tui.panels.selection import HistoryRowsView
from txtop.tui.replay_keys import KEY_HINTS as REPLAY_KEY_HINTS
from txtop.tui.replay_keys import ReplayKeys
from txtop.tui.terminal import HANGUP_CHECK_S, ExitGuard, terminal_driver_class
from txtop.tui.theming import register_themes, theme_variable_defaults
from txtop.tui.view_keys import ViewKeys
from txtop.tui.waterfall import Waterfall

INTERVAL_STEPS_S = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
REPLAY_ACTIONS = ("replay_step", "replay_seek")
__all__ = ["INTERVAL_STEPS_S", "TABLE_MIN_INTERVAL_S", "TxtopApp", "next_interval"]


def next_interval(current_s: float, direction: int) -> float:
    """The next step on INTERVAL_STEPS_S above (direction > 0) or below ``current_s``."""
    if direction > 0:
        return next((s for s in INTERVAL_STEPS_S if s > current_s + 1e-9), INTERVAL_STEPS_S[-1])
    return next(
        (s for s in reversed(INTERVAL_STEPS_S) if s < current_s - 1e-9), INTERVAL_STEPS_S[0]
    )


def new_waterfall(
    spec: FilterSpec | None, ascii_only: bool, missing_pids: Sequence[int] = ()
) -> Waterfall:
    """``missing_pids``: --pid values no process had (the empty waterfall says so)."""
    if spec is None or spec.empty:
        return Waterfall(id="waterfall", ascii=ascii_only, missing_pids=missing_pids)
    return Waterfall(id="waterfall", ascii=ascii_only, filter=spec, missing_pids=missing_pids)


async def reset_waterfall(app: App[int], ascii_only: bool) -> None:
    """A new waterfall in place of the old one, with its filter, size, scale and focus."""
    old = app.query_one(Waterfall)
    focused = app.focused is old
    new = new_waterfall(old.filter, ascii_only, tuple(old.rows.missing_pids))
    new.max_rows = old.max_rows
    await old.remove()
    await app.query_one("#wf-box").mount(new)
    new.set_scale(old.scale)
    if old.show_stats:
        new.action_toggle_stats()
    if focused:
        new.focus()


def key_hints(bindings: list[BindingType], replaying: bool) -> list[tuple[str, str]]:
    """The footer: the replay keys, else the bindings shown and tab."""
    if replaying:
        return list(REPLAY_KEY_HINTS)
    shown = [b for b in bindings if isinstance(b, Binding) and b.show]
    return [(b.key_display or b.key, b.description) for b in shown] + [("tab", "Panels")]


class TxtopApp(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "txtop"
    ENABLE_COMMAND_PALETTE = False
    AUTO_FOCUS = "#waterfall"
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
        Binding("space", "toggle_pause", "Pause"),
        Binding("plus,equals_sign", "interval(1)", "Slower", key_display="+"),
        Binding("minus", "interval(-1)", "Faster", key_display="-"),
        Binding("s", "cycle_sort", "Sort"),
        Binding("v", "cycle_columns", "Columns", show=False),  # named in the queues' title
        Binding("h", "history", "History", show=False),  # hinted in the queues' title
        Binding("g", "cycle_graph", "History column", show=False),
        Binding("t", "next_theme", "Theme"),
        Binding("c", "config", "Config", show=False),  # in the help and the findings strip
        Binding("f", "findings", "Findings", show=False),
        Binding("question_mark", "help", "Help", key_display="?"),
        # --flight: write the flight recorder's window now (tui/help.py says so).
        Binding("w", "flight_write", "Save flight recording", show=False),
        # Replay only (check_action hides them otherwise):
        Binding("full_stop", "replay_step(1)", "Step", key_display=".", show=False),
        Binding("comma", "replay_step(-1)", "Step back", key_display=",", show=False),
        Binding(
            "greater_than_sign,right", "replay_seek(1)", "Seek +10s", key_display=">", show=False
        ),
        Binding("less_than_sign,left", "replay_seek(-1)", "Seek -10s", key_display="<", show=False),
    ]

    def __init__(
        self,
        source: SnapshotSource,
        *,
        theme: str = DEFAULT_THEME,
        ascii_only: bool = False,
        handle_signals: bool = False,
        guard_terminal: bool = False,
        control: TracerControls | None = None,
        recording: RecordingSink | None = None,
        duration_s: float | None = None,
        waterfall_filter: FilterSpec | None = None,
        notices: list[str] | tuple[str, ...] = (),
        missing_pids: Sequence[int] = (),
    ) -> None:
        """``handle_signals`` and ``guard_terminal`` are for the real terminal (tui/cli.py):
        stop signals end the app, and so does the terminal going away. ``control`` changes
        the running probes (None without). ``recording`` writes every snapshot on the
        source's thread before it is posted here, so pausing the display never pauses it."""
        driver_class = None
        if guard_terminal:
            driver_class = terminal_driver_class(lambda: self.exits.lost_from_driver())
        # With NO_COLOR, Textual picks its colour-stripping filter from the theme active at
        # construction (its own default): ansi_color=True selects the filter that drops colour
        # entirely instead of mapping it to greys (which 16-colour terminals render as black).
        no_color = bool(os.environ.get("NO_COLOR"))
        super().__init__(driver_class=driver_class, ansi_color=True if no_color else None)
        self.source = source
        self.control = control
        controls = source.replay_controls
        notify = functools.partial(self.notify, timeout=1.5)
        self.replay = ReplayKeys(controls, notify) if controls is not None else None
        self.recording = recording
        self.duration_s = duration_s
        self.waterfall_filter = waterfall_filter
        self.missing_pids = tuple(missing_pids)
        self.notices = [n for n in notices if n]
        self.theme_names = register_themes(self)
        self.theme = theme
        self.ascii_only = ascii_only
        self.handle_signals = handle_signals
        self.guard_terminal = guard_terminal
        self.link = SourceLink(self, source, recording)
        self.exits = ExitGuard(self, self.link.stop)
        self.panel_layout = PanelLayout(self)
        self.tables = TableRefresh(self, source, self.panel_layout)
        self.flight = FlightKeys(recording, self.replay is not None, self.notify)
        self.views = ViewKeys(self)
        self.paused = False
        self.paused_ticks = 0  # snapshots received while paused
        self.ticks = 0  # snapshots received in total
        self.latest: Snapshot | None = None  # newest snapshot received
        self.shown: Snapshot | None = None  # snapshot the panels currently show (self.tables)
        # The last minutes of every queue and CPU (core/history.py), fed on the source's
        # thread from every snapshot (feed_history), drawn by the panels and the history view.
        self.history = History()

    # ---- layout -----------------------------------------------------------------------------
    def get_theme_variable_defaults(self) -> dict[str, str]:
        return theme_variable_defaults(self.current_theme)

    def compose(self) -> ComposeResult:
        recording = self.recording is not None and self.recording.writes_file
        state = HeaderState(self.source.interval_s, self.source.mode, recording=recording)
        yield HeaderBar(state, id="header")
        yield FindingsStrip(id="findings")
        with Container(id="main"):
            with Container(id="top"):
                yield QueuesPanel(id="queues")
                yield CpusPanel(id="cpus")
            with Container(id="wf-box"):
                yield new_waterfall(self.waterfall_filter, self.ascii_only, self.missing_pids)
        yield Static("", id="too-small")
        yield KeyHints(key_hints(self.BINDINGS, self.replay is not None), id="keys")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in REPLAY_ACTIONS:
            return self.replay is not None  # otherwise the key goes on to other bindings
        return True

    def on_mount(self) -> None:
        self.set_class(self.ascii_only, "-ascii")
        self.query_one("#queues").border_title = queues_title(self.query_one(QueuesPanel).sort_key)
        self.query_one("#cpus").border_title = "softirqs per CPU"
        self.query_one("#wf-box").border_title = "sampled packets"
        if self.handle_signals:
            self.exits.install_signal_handlers()
        self.flight.install(self.handle_signals)
        self.set_interval(1.0, self.link.check)
        if self.guard_terminal:
            self.set_interval(HANGUP_CHECK_S, self.exits.check_terminal)
        self.panel_layout.apply_size(self.shown)
        for notice in self.notices:
            self.notify(notice, timeout=10)
        if self.duration_s is not None:
            self.set_timer(self.duration_s, lambda: self.exits.leave("duration", 0))

        for panel in self.query(HistoryRowsView):
            panel.history = self.history
        self.link.start(self.history)

    def on_unmount(self) -> None:
        self.exits.remove_signal_handlers()
        self.flight.remove()
        self.link.stop()

    def on_resize(self, event: events.Resize) -> None:
        self.panel_layout.resize(event.size.width, event.size.height, self.shown)

    # ---- data -------------------------------------------------------------------------------
    async def on_snapshot_arrived(self, message: SnapshotArrived) -> None:
        snapshot = message.merged()
        self.ticks += 1
        self.latest = snapshot
        if snapshot.replay is not None and snapshot.replay.jump and self.ticks > 1:
            # A seek, a step back or a loop: the packet log starts over from this point
            # (the snapshot carries the packets of the seconds before it).
            await reset_waterfall(self, self.ascii_only)
        # The waterfall takes every snapshot, paused or not: it keeps the packets behind its
        # frozen view (set_frozen) so none are lost.
        self.query_one(Waterfall).update_snapshot(snapshot)
        if self.paused:
            self.paused_ticks += 1
            self.query_one(HeaderBar).set(paused_ticks=self.paused_ticks)
            return
        self.tables.show(snapshot)

    def on_sampling_changed(self, message: SamplingChanged) -> None:
        if self.control is None:
            self.notify("no probes running: sampling is fixed", timeout=2)
            return
        sampling = self.latest.probes.sampling if self.latest is not None else {}
        max_per_s = int(sampling.get("max_per_s", 0) or 0)
        try:
            self.control.set_sampling(message.every, max_per_s)
        except (ValueError, OSError) as exc:
            self.notify(f"sampling not changed: {exc}", severity="error", timeout=3)

    def on_filter_changed(self, message: FilterChanged) -> None:
        if self.control is None:
            return  # the waterfall filters its rows itself; nothing to push down
        try:
            self.control.set_filter(message.spec)
        except (ValueError, OSError) as exc:
            self.notify(f"filter applied in the display only: {exc}", severity="warning")

    # ---- actions ----------------------------------------------------------------------------
    def action_quit(self) -> None:  # type: ignore[override]
        self.exits.leave("quit", 0)

    def action_toggle_pause(self) -> None:
        if self.replay is not None:
            self.replay.toggle_pause()  # the recording itself pauses
            return
        self.paused = not self.paused
        self.paused_ticks = 0
        self.query_one(HeaderBar).set(paused=self.paused, paused_ticks=0)
        self.query_one(Waterfall).set_frozen(self.paused)
        if not self.paused and self.latest is not None and self.latest is not self.shown:
            self.tables.show(self.latest)

    def action_interval(self, direction: int) -> None:
        if self.replay is not None:
            self.replay.change_speed(direction)
            return
        self.source.set_interval(next_interval(self.source.interval_s, direction))
        self.query_one(HeaderBar).set(interval_s=self.source.interval_s)
        self.notify(f"refresh every {fmt_interval(self.source.interval_s)}", timeout=1.5)

    def action_replay_step(self, frames: int) -> None:
        if self.replay is not None:
            self.replay.step(frames)

    def action_replay_seek(self, direction: int) -> None:
        if self.replay is not None:
            self.replay.seek(direction)

    def action_cycle_sort(self) -> None:
        panel = self.query_one(QueuesPanel)
        panel.set_sort(SORT_KEYS[(SORT_KEYS.index(panel.sort_key) + 1) % len(SORT_KEYS)])

    def action_cycle_columns(self) -> None:
        """v: the TX queue columns shown first when the width hides some."""
        column_set = self.query_one(QueuesPanel).cycle_columns()
        self.notify(f"TX queue columns: {column_set} first", timeout=1.5)

    def action_next_theme(self) -> None:
        names = self.theme_names
        index = names.index(self.theme) if self.theme in names else -1
        self.theme = names[(index + 1) % len(names)]

    def action_flight_write(self) -> None:
        self.flight.write("key")

    # ---- views and rows (tui/view_keys.py) ------------------------------------------------------
    def action_help(self) -> None:
        self.views.help()

    def action_config(self) -> None:
        self.views.config()

    def action_findings(self) -> None:
        self.views.findings()

    def on_jump_to(self, message: JumpTo) -> None:
        self.views.jump_to(message.subject)

    def action_history(self) -> None:
        self.views.history()

    def action_cycle_graph(self) -> None:
        self.views.cycle_graph()
