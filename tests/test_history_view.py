"""The history on screen: the history column of the TX queue and CPU rows, the history view
(``h``), selection, ``g``, and the history across a replay seek. SVG snapshots come from a
fixed source (90 synthetic ticks of 16 queues and 16 CPUs, delivered at once).

Regenerate after an intended visual change with:
    .venv/bin/python -m pytest tests/test_history_view.py --snapshot-update
"""

from __future__ import annotations

import asyncio
import time

import pytest
import ui_fixtures as fx

from txtop.core.history import CpuTarget, QueueTarget
from txtop.lab.synthetic import make_snapshot
from txtop.recordings.replay import ReplaySource
from txtop.tui.app import TxtopApp
from txtop.tui.history_view import HistoryChart, HistoryScreen
from txtop.tui.panels import CpusPanel, QueuesPanel

DEADLINE_S = 10.0
TICKS = 90


@pytest.fixture(autouse=True)
def utc(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def fixed_app(n_cpus: int = 16, **kwargs) -> TxtopApp:
    snaps = [make_snapshot(16, n_cpus, t) for t in range(1, TICKS + 1)]
    return TxtopApp(fx.ManualSource(*snaps), **kwargs)


def shown(*keys: str):
    async def run_before(pilot) -> None:
        app = pilot.app
        await fx.until(pilot, lambda: app.shown is not None, "a snapshot shown")
        for key in keys:
            await pilot.press(key)
            await pilot.pause()
        if isinstance(app.screen, HistoryScreen):
            await fx.until(pilot, lambda: bool(app.screen.chart.text()), "the charts")
        await pilot.pause()

    return run_before


SIZES = [(80, 24), (200, 60)]
SIZE_IDS = ["80x24", "200x60"]


# ---- SVG snapshots ------------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_history_column_snapshot(snap_compare, size):
    # 80x24: the CPU panel is a heat strip; 200x60: both panels have the column, and the
    # second tab puts the selection pointer on the CPU panel.
    keys = ("tab", "tab", "down") if size[0] > 100 else ()
    assert snap_compare(fixed_app(), terminal_size=size, run_before=shown(*keys))


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_history_view_snapshot(snap_compare, size):
    # tab (queues panel), down twice (tx-0 -> tx-2), h: that queue's history.
    keys = ("tab", "down", "down", "h")
    assert snap_compare(fixed_app(), terminal_size=size, run_before=shown(*keys))


def test_history_view_of_a_cpu_snapshot(snap_compare):
    keys = ("tab", "tab", "down", "down", "down", "h")
    assert snap_compare(fixed_app(4), terminal_size=(80, 24), run_before=shown(*keys))


def test_history_column_mono_ascii_snapshot(snap_compare):
    # Plain ASCII heights in the mono theme (no colour to tell them apart) and with --ascii.
    app = fixed_app(4, theme="mono", ascii_only=True)
    assert snap_compare(app, terminal_size=(80, 24), run_before=shown("g"))


# ---- behaviour ------------------------------------------------------------------------------------


def test_selection_history_key_and_view_navigation():
    asyncio.run(_test_selection_history_key_and_view_navigation())


async def _test_selection_history_key_and_view_navigation():
    app = fixed_app(4)
    async with app.run_test(size=(120, 40)) as pilot:
        await fx.until(pilot, lambda: app.shown is not None, "a snapshot shown")
        queues, cpus = app.query_one(QueuesPanel), app.query_one(CpusPanel)
        assert not any(line.startswith("›") for line in queues.body_text())  # not focused
        await pilot.press("tab", "down", "down")  # from tx-0, the first queue: two down
        await fx.until(pilot, lambda: queues.current_target() == QueueTarget("syn0", 2), "tx-2")
        assert "› tx-2" in queues.body_text()[queues.targets.index(QueueTarget("syn0", 2))]
        await pilot.press("h")
        await fx.until(pilot, lambda: isinstance(app.screen, HistoryScreen), "the view")
        screen = app.screen
        assert isinstance(screen, HistoryScreen) and screen.target == QueueTarget("syn0", 2)
        chart = screen.query_one(HistoryChart)
        await fx.until(pilot, lambda: "packets/s" in "\n".join(chart.text()), "charts")
        text = "\n".join(chart.text())
        for title in ("qdisc backlog", "qdisc drops/s", "BQL inflight peak", "p99 qdisc wait"):
            assert title in text
        assert text.rstrip().endswith("now")
        assert "syn0 tx-2" in str(screen.query_one("#history-box").border_title)
        await pilot.press("down")
        assert screen.target == QueueTarget("syn0", 3)
        targets = app.history.targets()  # queues by device name (lo first), then CPUs
        await pilot.press(*["up"] * (targets.index(screen.target) + 1))
        assert screen.target == CpuTarget(3)  # wrapped around to the last
        await pilot.pause()
        assert "NET_TX/s" in "\n".join(chart.text())
        await pilot.press("escape")
        await fx.until(pilot, lambda: not isinstance(app.screen, HistoryScreen), "closed")
        # From the CPU panel: its selection; g cycles the CPU panel's column.
        await pilot.press("tab", "down", "g")
        await fx.until(pilot, lambda: cpus.spark_metric == "net_rx", "g on the CPU panel")
        assert "NET_RX" in cpus.pinned_text()[0] and queues.spark_metric == "pps"
        await pilot.press("h")
        await fx.until(pilot, lambda: isinstance(app.screen, HistoryScreen), "the view")
        assert app.screen.target == CpuTarget(1)  # cpu 0, then one down
        await pilot.press("h")
        await fx.until(pilot, lambda: not isinstance(app.screen, HistoryScreen), "closed by h")


def test_new_ticks_update_the_open_view():
    asyncio.run(_test_new_ticks_update_the_open_view())


async def _test_new_ticks_update_the_open_view():
    first = [make_snapshot(4, 2, t) for t in range(1, 11)]
    source = fx.ManualSource(*first)
    app = TxtopApp(source)
    async with app.run_test(size=(80, 24)) as pilot:
        await fx.until(pilot, lambda: app.shown is not None, "a snapshot shown")
        await pilot.press("h")
        await fx.until(pilot, lambda: isinstance(app.screen, HistoryScreen), "the view")
        assert app.history.covered_s() == pytest.approx(9.5)
        for t in range(11, 60):
            source.push(make_snapshot(4, 2, t))
        await fx.until(pilot, lambda: app.history.covered_s() > 50, "the new ticks kept")
        await fx.until(pilot, lambda: "last 1m" in app.screen.chart.subtitle, "the view updated")


def test_history_across_a_replay_seek():
    asyncio.run(_test_history_across_a_replay_seek())


async def _test_history_across_a_replay_seek():
    """Replay fills the history as it plays; a seek rebuilds it from the recording: after
    seeking past 5 minutes it holds exactly the 5 recorded minutes before the new frame."""
    frames = [make_snapshot(4, 2, t) for t in range(1, 500)]
    source = ReplaySource(frames, speed=16.0)
    app = TxtopApp(source)
    async with app.run_test(size=(80, 24)) as pilot:
        await fx.until(pilot, lambda: app.shown is not None, "a snapshot shown")
        await fx.until(pilot, lambda: app.history.covered_s() >= 2.0, "history while playing")
        await pilot.press("space")  # pause the recording
        await fx.until(pilot, lambda: source.paused, "paused")
        source.seek(400.0)
        await fx.until(
            pilot,
            lambda: app.shown is not None and app.shown.replay.index == 399,
            "the frame sought",
        )
        assert app.history.covered_s() == pytest.approx(300.0)
        from txtop.core.history import History

        expected = History()
        expected.rebuild(frames[399 - 300 : 400])
        target = QueueTarget("syn0", 1)
        assert app.history.window(target, "pps", 100, 3.0) == expected.window(
            target, "pps", 100, 3.0
        )
        source.seek(20.0)  # back: rebuilt again, from the start of the recording
        await fx.until(
            pilot, lambda: app.shown is not None and app.shown.replay.index == 19, "back"
        )
        assert app.history.covered_s() == pytest.approx(19.5)
