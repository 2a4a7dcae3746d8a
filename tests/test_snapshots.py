"""SVG snapshots of the dashboard from the fixed (synthetic) snapshots in ui_fixtures.

Regenerate after an intended visual change with:
    .venv/bin/python -m pytest tests/test_snapshots.py --snapshot-update
and look at the report (snapshot_report.html) before committing the new SVGs.
"""

from __future__ import annotations

import time

import pytest
import ui_fixtures as fx

from txtop.tui.app import TxtopApp

DEADLINE_S = 5.0


@pytest.fixture(autouse=True)
def utc(monkeypatch):
    # The header shows local wall-clock time: pin the zone so the SVGs are stable.
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def make_app(snapshot, **kwargs) -> TxtopApp:
    return TxtopApp(fx.ManualSource(snapshot), **kwargs)


def shown(*keys: str):
    async def run_before(pilot) -> None:
        app = pilot.app
        deadline = time.monotonic() + DEADLINE_S
        while app.shown is None:
            assert time.monotonic() < deadline, "no snapshot shown"
            await pilot.pause(0.02)
        if keys:
            await pilot.press(*keys)
        await pilot.pause()

    return run_before


@pytest.mark.parametrize("size", [(80, 24), (160, 50)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_busy_lab(snap_compare, size):
    assert snap_compare(make_app(fx.busy_lab()), terminal_size=size, run_before=shown())


def test_idle_vm_probes_unavailable(snap_compare):
    assert snap_compare(make_app(fx.idle_vm()), terminal_size=(80, 24), run_before=shown())


@pytest.mark.parametrize("size", [(80, 24), (160, 50)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_many_queues_and_cpus(snap_compare, size):
    app = make_app(fx.many(16, 64))
    assert snap_compare(app, terminal_size=size, run_before=shown())


def test_mono_theme(snap_compare):
    app = make_app(fx.busy_lab(), theme="mono")
    assert snap_compare(app, terminal_size=(80, 24), run_before=shown())


def test_light_ascii(snap_compare):
    app = make_app(fx.busy_lab(), theme="light", ascii_only=True)
    assert snap_compare(app, terminal_size=(80, 24), run_before=shown())


def test_paused_and_sorted(snap_compare):
    app = make_app(fx.busy_lab())
    assert snap_compare(app, terminal_size=(80, 24), run_before=shown("space", "s"))


def test_help_screen(snap_compare):
    app = make_app(fx.idle_vm())
    assert snap_compare(app, terminal_size=(80, 24), run_before=shown("question_mark"))


def test_too_small(snap_compare):
    assert snap_compare(make_app(fx.busy_lab()), terminal_size=(60, 20), run_before=shown())
