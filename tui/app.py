"""The txtop dashboard: a Textual app fed by any SnapshotSource.

Data flow: the source's thread calls ``sink(snapshot)``; the sink posts a ``SnapshotArrived``
message (``post_message`` is thread-safe), and a newer unhandled snapshot replaces an older
one (``can_replace``), so a slow terminal never builds a backlog. Panels are rebuilt only
when a snapshot arrives or the view changes (sort, size, theme), never on a timer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import os
import select
import signal
import threading
import time
from typing import IO, Any

from textual import events
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Container
from textual.driver import Driver
from textual.message import Message
from textual.widgets import Static

from txtop.core.filters import FilterSpec
from txtop.core.model import PacketTrace, Snapshot
from txtop.core.source import SnapshotSource
from txtop.recordings.replay import ReplaySource
from txtop.themes import DEFAULT_THEME
from txtop.tui.help import HelpScreen
from txtop.tui.messages import FilterChanged, SamplingChanged
from txtop.tui.panels import (
    SORT_KEYS,
    CpusPanel,
    HeaderBar,
    HeaderState,
    KeyHints,
    QueuesPanel,
    cpu_list_rows,
    fmt_interval,
    heat_rows,
    queue_body_rows,
)
from txtop.tui.theming import VARIABLE_DEFAULTS, register_themes
from txtop.tui.waterfall import Waterfall

MIN_WIDTH = 80
MIN_HEIGHT = 24
WIDE_WIDTH = 160  # from here the queues and softirq panels sit side by side
INTERVAL_STEPS_S = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
EXIT_GRACE_S = 3.0  # after a signal or a lost terminal, force the exit after this long
# How often the terminal is checked for a hang-up. Without SIGHUP (txtop not the terminal's
# controlling process) a closed terminal is otherwise noticed only at the next failed write,
# up to a refresh interval later, while Textual's input thread spins on end-of-file.
HANGUP_CHECK_S = 0.25
HEADER_LINES = 2
FOOTER_LINES = 1
SEEK_STEP_S = 10.0  # < > (and left/right) in replay
REPLAY_ACTIONS = ("replay_step", "replay_seek")


_arrival_seq = itertools.count()


# Queue and CPU tables refresh at most twice a second (../shared/notes/textual.md: tables cost
# several times more than meters; the waterfall is the part that moves at 10 Hz).
TABLE_MIN_INTERVAL_S = 0.5


class SnapshotArrived(Message):
    """A new snapshot from the source thread."""

    def __init__(self, snapshot: Snapshot) -> None:
        super().__init__()
        self.snapshot = snapshot
        self.seq = next(_arrival_seq)  # atomic under the GIL; orders messages across threads
        self.carried: tuple[PacketTrace, ...] = ()  # packets of snapshots this one replaced

    def can_replace(self, message: Message) -> bool:
        # Only the newest picture matters: an unhandled older snapshot is dropped. Its
        # sampled packets are not: they are per-interval, so the newer one carries them.
        if not isinstance(message, SnapshotArrived):
            return False
        older, newer = sorted((self, message), key=lambda m: m.seq)
        newer.carried = older.carried + older.snapshot.packets + newer.carried
        older.carried = ()
        return True

    def merged(self) -> Snapshot:
        if not self.carried:
            return self.snapshot
        if self.snapshot.replay and self.snapshot.replay.get("jump"):
            return self.snapshot  # a replay seek: packets from before the jump do not belong
        packets = self.carried + self.snapshot.packets
        return dataclasses.replace(self.snapshot, packets=packets)


def next_interval(current_s: float, direction: int) -> float:
    """The next step on INTERVAL_STEPS_S above (direction > 0) or below ``current_s``."""
    if direction > 0:
        return next((s for s in INTERVAL_STEPS_S if s > current_s + 1e-9), INTERVAL_STEPS_S[-1])
    return next(
        (s for s in reversed(INTERVAL_STEPS_S) if s < current_s - 1e-9), INTERVAL_STEPS_S[0]
    )


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
        Binding("t", "next_theme", "Theme"),
        Binding("question_mark", "help", "Help", key_display="?"),
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
        driver_class: type[Driver] | None = None,
        control: Any = None,
        recording: Any = None,
        duration_s: float | None = None,
        waterfall_filter: FilterSpec | None = None,
        notices: list[str] | tuple[str, ...] = (),
    ) -> None:
        # With NO_COLOR, Textual picks its colour-stripping filter from the theme active at
        # construction (its own default): ansi_color=True selects the filter that drops colour
        # entirely instead of mapping it to greys (which 16-colour terminals render as black).
        no_color = bool(os.environ.get("NO_COLOR"))
        super().__init__(driver_class=driver_class, ansi_color=True if no_color else None)
        self.source = source
        # Optional tracer control (cli.TracerControl): set_sampling(every, max_per_s) and
        # set_filter(spec). None when no probes run (replay, synthetic, --no-probes).
        self.control = control
        # Replay controls (pause, step, seek, speed) when the source is a recording.
        self.replay = source if isinstance(source, ReplaySource) else None
        # probes.recording.RecordingSink (or None): every snapshot is written on the source
        # thread before it is posted here, so pausing the display never pauses the recording.
        self.recording = recording
        self.duration_s = duration_s
        self.waterfall_filter = waterfall_filter
        self.notices = [n for n in notices if n]
        self.theme_names = register_themes(self)
        self.theme = theme
        self.ascii_only = ascii_only
        self.handle_signals = handle_signals
        self.paused = False
        self.paused_ticks = 0  # snapshots received while paused
        self.ticks = 0  # snapshots received in total
        self.latest: Snapshot | None = None  # newest snapshot received
        self.shown: Snapshot | None = None  # snapshot the panels currently show
        self._tables_at = 0.0  # monotonic time the queue/CPU tables were last rebuilt
        self._tables_timer: Any = None
        self.exit_reason = ""
        self._source_error_shown = False
        self._watchdog: threading.Timer | None = None
        self._signals: list[int] = []
        self._heights: dict[str, Any] = {}
        self._term_size: tuple[int, int] | None = None

    # ---- layout -----------------------------------------------------------------------------
    def get_theme_variable_defaults(self) -> dict[str, str]:
        return dict(VARIABLE_DEFAULTS)

    def compose(self) -> ComposeResult:
        state = HeaderState(
            self.source.interval_s, self.source.mode, recording=self.recording is not None
        )
        yield HeaderBar(state, id="header")
        with Container(id="main"):
            with Container(id="top"):
                yield QueuesPanel(id="queues")
                yield CpusPanel(id="cpus")
            with Container(id="wf-box"):
                yield self._new_waterfall(self.waterfall_filter)
        yield Static("", id="too-small")
        yield KeyHints(self.key_hints(), id="keys")

    def key_hints(self) -> list[tuple[str, str]]:
        if self.replay is not None:
            return [
                ("q", "Quit"),
                ("space", "Play/pause"),
                (".", "Step"),
                (",", "Back"),
                ("< >", "Seek 10s"),
                ("+ -", "Speed"),
                ("?", "Help"),
                ("t", "Theme"),
                ("s", "Sort"),
            ]
        return [(b.key_display or b.key, b.description) for b in self.BINDINGS if b.show] + [
            ("tab", "Panels")
        ]

    def _new_waterfall(self, spec: FilterSpec | None) -> Waterfall:
        if spec is None or spec.empty:
            return Waterfall(id="waterfall", ascii=self.ascii_only)
        return Waterfall(id="waterfall", ascii=self.ascii_only, filter=spec)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in REPLAY_ACTIONS:
            return self.replay is not None  # otherwise the key goes on to other bindings
        return True

    def on_mount(self) -> None:
        self.set_class(self.ascii_only, "-ascii")
        self.query_one("#queues").border_title = self._queues_title()
        self.query_one("#cpus").border_title = "softirqs per CPU"
        self.query_one("#wf-box").border_title = "sampled packets"
        if self.handle_signals:
            self._install_signal_handlers()
        self.set_interval(1.0, self._check_source)
        if callable(getattr(getattr(self, "_driver", None), "terminal_hung_up", None)):
            self.set_interval(HANGUP_CHECK_S, self._check_terminal)
        self._apply_size()
        for notice in self.notices:
            self.notify(notice, timeout=10)
        if self.duration_s is not None:
            self.set_timer(self.duration_s, self._duration_over)
        sink: Any = self._sink
        if self.recording is not None:
            self.recording.downstream = self._sink
            sink = self.recording
        self.source.start(sink)

    def on_unmount(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in self._signals:
            loop.remove_signal_handler(sig)
        self.source.stop()
        self._close_recording()

    def _close_recording(self) -> None:
        if self.recording is not None:
            self.recording.close()

    def _duration_over(self) -> None:
        self.exit_reason = "duration"
        self.exit(0, return_code=0)

    def _queues_title(self) -> str:
        return f"TX queues - sort: {self.query_one(QueuesPanel).sort_key} (s)"

    def on_resize(self, event: events.Resize) -> None:
        # self.size may still be the old size while this handler runs: use the event's.
        self._term_size = (event.size.width, event.size.height)
        self._apply_size()

    def _apply_size(self) -> None:
        width, height = self._term_size or self.size
        small = width < MIN_WIDTH or height < MIN_HEIGHT
        self.set_class(small, "-too-small")
        if small:
            self.query_one("#too-small", Static).update(
                f"make the window larger (need {MIN_WIDTH}x{MIN_HEIGHT}, have {width}x{height})"
            )
            return
        self.query_one("#top").set_class(width >= WIDE_WIDTH, "-wide")
        self._relayout()

    def _relayout(self) -> None:
        """Share the rows between the panels: each gets what it needs up to a fair share,
        the waterfall keeps at least a third and gets whatever is left."""
        width, height = self._term_size or self.size
        if width < MIN_WIDTH or height < MIN_HEIGHT:
            return
        snap = self.shown
        avail = height - HEADER_LINES - FOOTER_LINES
        wide = width >= WIDE_WIDTH
        cpu_width = (width * 45 // 100 if wide else width) - 1
        n_cpus = len(snap.cpus) if snap is not None else 0
        q_need = 2 + queue_body_rows(snap)  # title + column header + rows
        c_list = 2 + cpu_list_rows(snap)
        c_heat = 2 + heat_rows(n_cpus, cpu_width) if n_cpus else c_list
        budget = avail - max(6, avail // 3)
        if wide:
            c_pref = c_list if c_list <= budget else c_heat
            heights = {
                "#top": max(5, min(budget, max(q_need, c_pref))),
                "#queues": "1fr",
                "#cpus": "1fr",
            }
        else:
            if q_need + c_list <= budget:
                q, c = q_need, c_list
            else:
                c_pref = c_list if c_list <= budget // 2 else c_heat
                c = max(4, min(c_pref, budget - 4))
                q = max(4, min(q_need, budget - c))
                c = max(c, min(c_pref, budget - q))  # hand back rows the queues do not use
            heights = {"#top": "auto", "#queues": q, "#cpus": c}
        if heights != self._heights:
            self._heights = heights
            for selector, value in heights.items():
                self.query_one(selector).styles.height = value

    # ---- data -------------------------------------------------------------------------------
    def _sink(self, snapshot: Snapshot) -> None:
        """Called on the source's thread."""
        self.post_message(SnapshotArrived(snapshot))

    async def on_snapshot_arrived(self, message: SnapshotArrived) -> None:
        snapshot = message.merged()
        self.ticks += 1
        self.latest = snapshot
        if snapshot.replay and snapshot.replay.get("jump") and self.ticks > 1:
            # A seek, a step back or a loop: the packet log starts over from this point
            # (the snapshot carries the packets of the seconds before it).
            await self._reset_waterfall()
        # The waterfall takes every snapshot, paused or not: it keeps the packets behind its
        # frozen view (set_frozen) so none are lost.
        self.query_one(Waterfall).update_snapshot(snapshot)
        if self.paused:
            self.paused_ticks += 1
            self.query_one(HeaderBar).set(paused_ticks=self.paused_ticks)
            return
        self._show(snapshot)

    def _show(self, snapshot: Snapshot) -> None:
        self.shown = snapshot
        # The header and the waterfall follow every tick; the queue and CPU tables are
        # rebuilt at most TABLE_MIN_INTERVAL_S apart (a person cannot read tables at 10 Hz,
        # and rebuilding them was most of the UI's cost at a 0.1 s refresh). The newest
        # snapshot always reaches them: a timer catches up when ticks stop.
        now = time.monotonic()
        wait_s = TABLE_MIN_INTERVAL_S - (now - self._tables_at)
        with self.batch_update():
            self.query_one(HeaderBar).set(snapshot, mode=snapshot.mode)
            if self.source.interval_s >= TABLE_MIN_INTERVAL_S or wait_s <= 0:
                self._show_tables(snapshot)
            elif self._tables_timer is None:
                self._tables_timer = self.set_timer(wait_s, self._catch_up_tables)

    def _show_tables(self, snapshot: Snapshot) -> None:
        self._tables_at = time.monotonic()
        self._relayout()
        self.query_one(QueuesPanel).update_snapshot(snapshot)
        self.query_one(CpusPanel).update_snapshot(snapshot)

    def _catch_up_tables(self) -> None:
        self._tables_timer = None
        if self.shown is not None:
            with self.batch_update():
                self._show_tables(self.shown)

    async def _reset_waterfall(self) -> None:
        old = self.query_one(Waterfall)
        focused = self.focused is old
        new = self._new_waterfall(old.filter)
        new.max_rows = old.max_rows
        await old.remove()
        await self.query_one("#wf-box").mount(new)
        new.set_scale(old.scale)
        if old.show_stats:
            new.action_toggle_stats()
        if focused:
            new.focus()

    def _check_source(self) -> None:
        if self.recording is not None and self.recording.error:
            header = self.query_one(HeaderBar)
            if header.state.recording:
                header.set(recording=False)
                self.notify(
                    f"recording stopped: {self.recording.error}", severity="error", timeout=10
                )
        error = self.source.error
        if error is not None and not self._source_error_shown:
            self._source_error_shown = True
            text = " ".join(str(error).split()) or type(error).__name__
            self.query_one(HeaderBar).set(source_error=text[:200])

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
        self.exit_reason = "quit"
        self.exit(0, return_code=0)

    def action_toggle_pause(self) -> None:
        if self.replay is not None:
            # Replay: pause the recording itself (the header shows PAUSED from the frame).
            self.replay.set_paused(not self.replay.paused)
            return
        header = self.query_one(HeaderBar)
        self.paused = not self.paused
        self.paused_ticks = 0
        header.set(paused=self.paused, paused_ticks=0)
        self.query_one(Waterfall).set_frozen(self.paused)
        if not self.paused and self.latest is not None and self.latest is not self.shown:
            self._show(self.latest)

    def action_interval(self, direction: int) -> None:
        if self.replay is not None:
            # Replay: + and - act on the speed (+ slower, - faster, as they do on the
            # refresh interval live).
            if direction > 0:
                self.replay.slower()
            else:
                self.replay.faster()
            self.notify(f"replay speed {self.replay.speed:g}x", timeout=1.5)
            return
        self.source.set_interval(next_interval(self.source.interval_s, direction))
        self.query_one(HeaderBar).set(interval_s=self.source.interval_s)
        self.notify(f"refresh every {fmt_interval(self.source.interval_s)}", timeout=1.5)

    def action_replay_step(self, frames: int) -> None:
        if self.replay is not None:
            self.replay.step(frames)

    def action_replay_seek(self, direction: int) -> None:
        if self.replay is not None:
            self.replay.seek_relative(direction * SEEK_STEP_S)

    def action_cycle_sort(self) -> None:
        panel = self.query_one(QueuesPanel)
        panel.set_sort(SORT_KEYS[(SORT_KEYS.index(panel.sort_key) + 1) % len(SORT_KEYS)])
        self.query_one("#queues").border_title = self._queues_title()

    def action_next_theme(self) -> None:
        names = self.theme_names
        index = names.index(self.theme) if self.theme in names else -1
        self.theme = names[(index + 1) % len(names)]

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    # ---- leaving ----------------------------------------------------------------------------
    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, self._on_signal, sig)
                self._signals.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):
                pass

    def _on_signal(self, sig: int) -> None:
        self.exit_reason = signal.Signals(sig).name
        self.arm_watchdog(128 + sig)
        self.exit(128 + sig, return_code=128 + sig)

    def _check_terminal(self) -> None:
        driver: Any = getattr(self, "_driver", None)
        if self.exit_reason != "terminal lost" and driver.terminal_hung_up():
            self.terminal_lost()

    def terminal_lost(self) -> None:
        """The TTY went away (EIO): leave quietly; nobody can see an error message."""
        self.exit_reason = "terminal lost"
        self.arm_watchdog(129)
        self.exit(129, return_code=129)

    def arm_watchdog(self, code: int) -> None:
        """If a normal exit hangs (e.g. writing to a dead terminal), stop the source and
        end the process anyway: an orphaned root process must never linger."""
        if self._watchdog is not None:
            return

        def force_exit() -> None:
            try:
                self.source.stop(timeout=1.0)
            finally:
                try:
                    self._close_recording()
                finally:
                    os._exit(code)

        self._watchdog = threading.Timer(EXIT_GRACE_S, force_exit)
        self._watchdog.daemon = True
        self._watchdog.start()


class _GuardedFile:
    """Wraps the terminal file: a write error (EIO, EPIPE) ends the app instead of killing
    Textual's writer thread, which would leave later writes blocked forever."""

    def __init__(self, file: IO[str], on_error: Any) -> None:
        self._file = file
        self._on_error = on_error
        self._dead = False

    def write(self, text: str) -> int:
        if self._dead:
            return len(text)
        try:
            return self._file.write(text)
        except OSError:
            self._dead = True
            self._on_error()
            return len(text)

    def flush(self) -> None:
        if self._dead:
            return
        try:
            self._file.flush()
        except OSError:
            self._dead = True
            self._on_error()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)


def terminal_driver_class() -> type[Driver]:
    """Textual's Linux driver, changed to exit cleanly when the terminal disappears."""
    from textual.drivers.linux_driver import LinuxDriver

    class TxtopDriver(LinuxDriver):
        def __init__(self, app: App[Any], **kwargs: Any) -> None:
            super().__init__(app, **kwargs)
            self._file = _GuardedFile(self._file, self._lost)  # type: ignore[arg-type]

        def terminal_hung_up(self) -> bool:
            """True once the terminal is gone (the pty's other end closed, SSH dropped):
            a hung-up tty polls as POLLHUP/POLLERR, a live one never does."""
            poller = select.poll()
            fds = {self.fileno}
            try:
                fds.add(self._file.fileno())
            except (OSError, ValueError):
                return True
            for fd in fds:
                poller.register(fd, select.POLLIN | select.POLLOUT)
            try:
                events = poller.poll(0)
            except OSError:
                return True
            bad = select.POLLHUP | select.POLLERR | select.POLLNVAL
            return any(mask & bad for _fd, mask in events)

        def _lost(self) -> None:
            app = self._app
            if isinstance(app, TxtopApp):
                app.arm_watchdog(129)
                app.call_later(app.terminal_lost)

        def _run_input_thread(self) -> None:
            try:
                self.run_input_thread()
            except OSError:  # EIO on read: SSH dropped, tmux killed, pty closed
                self._lost()
            except BaseException:  # as Textual does: report anything else loudly
                import rich.traceback

                self._app.call_later(self._app.panic, rich.traceback.Traceback())

    return TxtopDriver
