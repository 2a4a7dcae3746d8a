"""How snapshots get from the source to the dashboard's panels.

``SourceLink`` starts the source (every snapshot feeds the history, then is posted to the app
as ``SnapshotArrived``), watches it and its recording for errors, and stops both.
``TableRefresh`` shows a snapshot: the header follows every tick, the queue and CPU tables are
rebuilt at most TABLE_MIN_INTERVAL_S apart.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from textual.app import App
from textual.timer import Timer

from txtop.core.history import History
from txtop.core.model import Snapshot
from txtop.core.source import SnapshotSource
from txtop.core.text import exc_line
from txtop.recordings.recording import RecordingSink
from txtop.tui.config_view import SnapshotScreen
from txtop.tui.findings_view import FindingsStrip
from txtop.tui.history_view import HistoryScreen, feed_history
from txtop.tui.layout import PanelLayout
from txtop.tui.messages import SnapshotArrived
from txtop.tui.panels import CpusPanel, HeaderBar, QueuesPanel

if TYPE_CHECKING:
    from txtop.tui.app import TxtopApp

# Queue and CPU tables refresh at most twice a second (../shared/notes/textual.md: tables cost
# several times more than meters; the waterfall is the part that moves at 10 Hz).
TABLE_MIN_INTERVAL_S = 0.5


class SourceLink:
    """``source`` (through ``recording`` when there is one) to ``app``'s message queue."""

    def __init__(
        self, app: App[Any], source: SnapshotSource, recording: RecordingSink | None
    ) -> None:
        self.app = app
        self.source = source
        self.recording = recording
        self._error_shown = False

    def start(self, history: History) -> None:
        feed = feed_history(history, self.source.replay_controls)

        def post(snapshot: Snapshot) -> None:  # called on the source's thread
            feed(snapshot)
            self.app.post_message(SnapshotArrived(snapshot))

        if self.recording is not None:
            self.recording.downstream = post
            self.source.start(self.recording)
        else:
            self.source.start(post)

    def stop(self, timeout: float = 3.0) -> None:
        """Stop the source and close the recording (idempotent)."""
        try:
            self.source.stop(timeout=timeout)
        finally:
            if self.recording is not None:
                self.recording.close()

    def check(self) -> None:
        """Once a second: a recording that stopped writing, a source that failed."""
        if self.recording is not None and self.recording.error:
            header = self.app.query_one(HeaderBar)
            if header.state.recording:
                header.set(recording=False)
                self.app.notify(
                    f"recording stopped: {self.recording.error}", severity="error", timeout=10
                )
        error = self.source.error
        if error is not None and not self._error_shown:
            self._error_shown = True
            self.app.query_one(HeaderBar).set(source_error=exc_line(error))


class TableRefresh:
    """Shows snapshots in ``app``'s panels; ``app.shown`` is the one they show now."""

    def __init__(self, app: TxtopApp, source: SnapshotSource, layout: PanelLayout) -> None:
        self.app = app
        self.source = source
        self.layout = layout
        self._tables_at = 0.0  # monotonic time the queue/CPU tables were last rebuilt
        self._tables_timer: Timer | None = None

    def show(self, snapshot: Snapshot) -> None:
        self.app.shown = snapshot
        # The header and the waterfall follow every tick; the queue and CPU tables are
        # rebuilt at most TABLE_MIN_INTERVAL_S apart (a person cannot read tables at 10 Hz,
        # and rebuilding them was most of the UI's cost at a 0.1 s refresh). The newest
        # snapshot always reaches them: a timer catches up when ticks stop.
        app = self.app
        now = time.monotonic()
        wait_s = TABLE_MIN_INTERVAL_S - (now - self._tables_at)
        with app.batch_update():
            app.query_one(HeaderBar).set(snapshot, mode=snapshot.mode)
            if self.source.interval_s >= TABLE_MIN_INTERVAL_S or wait_s <= 0:
                self.show_tables(snapshot)
            elif self._tables_timer is None:
                self._tables_timer = app.set_timer(wait_s, self._catch_up_tables)

    def show_tables(self, snapshot: Snapshot) -> None:
        app = self.app
        self._tables_at = time.monotonic()
        self.layout.relayout(snapshot)
        app.query_one(FindingsStrip).update_snapshot(snapshot)
        app.query_one(QueuesPanel).update_snapshot(snapshot)
        app.query_one(CpusPanel).update_snapshot(snapshot)
        if isinstance(app.screen, HistoryScreen):
            app.screen.update()
        elif isinstance(app.screen, SnapshotScreen):
            app.screen.update_snapshot(snapshot)

    def _catch_up_tables(self) -> None:
        self._tables_timer = None
        if self.app.shown is not None:
            with self.app.batch_update():
                self.show_tables(self.app.shown)
