"""SVG snapshots of the waterfall from the constructed traces (tests/data/traces).

Regenerate after an intended change with ``pytest tests/test_waterfall_snapshots.py
--snapshot-update`` and look at the SVGs before committing them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest
from textual.pilot import Pilot
from waterfall_data import trace_snapshot
from waterfall_fixtures import WaterfallApp


@pytest.fixture(autouse=True)
def utc() -> Iterator[None]:
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"  # the time column is local time
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


@pytest.mark.parametrize("size", [(80, 24), (120, 40), (200, 60)])
def test_rows_per_row_scale(snap_compare, size: tuple[int, int]) -> None:
    assert snap_compare(WaterfallApp(trace_snapshot()), terminal_size=size)


@pytest.mark.parametrize("size", [(80, 24), (120, 40), (200, 60)])
def test_rows_shared_log_scale(snap_compare, size: tuple[int, int]) -> None:
    async def log_scale(pilot: Pilot) -> None:
        await pilot.press("l", "l", "down", "down")

    assert snap_compare(WaterfallApp(trace_snapshot()), terminal_size=size, run_before=log_scale)


def test_rows_shared_linear_scale(snap_compare) -> None:
    async def linear(pilot: Pilot) -> None:
        await pilot.press("l")

    assert snap_compare(WaterfallApp(trace_snapshot()), terminal_size=(120, 40), run_before=linear)


def test_ascii_and_frozen(snap_compare) -> None:
    async def freeze(pilot: Pilot) -> None:
        await pilot.press("space")

    app = WaterfallApp(trace_snapshot(), ascii=True)
    assert snap_compare(app, terminal_size=(80, 24), run_before=freeze)


def test_stage_percentiles(snap_compare) -> None:
    async def stats(pilot: Pilot) -> None:
        await pilot.press("p")

    assert snap_compare(WaterfallApp(trace_snapshot()), terminal_size=(120, 40), run_before=stats)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_inspector(snap_compare, size: tuple[int, int]) -> None:
    async def inspect(pilot: Pilot) -> None:
        await pilot.press("down", "down", "down", "down", "down", "down", "down", "enter")

    assert snap_compare(WaterfallApp(trace_snapshot()), terminal_size=size, run_before=inspect)


def test_filter_screen(snap_compare) -> None:
    async def open_filter(pilot: Pilot) -> None:
        await pilot.press("slash", *"dev=eth0 port=x")

    app = WaterfallApp(trace_snapshot())
    assert snap_compare(app, terminal_size=(80, 24), run_before=open_filter)
