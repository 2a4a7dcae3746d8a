"""Pilot tests of issue 17's screen points: the help scrolls at once (no Tab first), says what
each key does and has the probes' details; the TX queues' title names the columns the width
hides and v brings others forward."""

from __future__ import annotations

import asyncio

import pytest
import ui_fixtures as fx
from textual.containers import VerticalScroll
from ui_fixtures import until

from txtop.tui.app import TxtopApp
from txtop.tui.help import HelpScreen
from txtop.tui.panels import QueuesPanel


def run(coro) -> None:
    asyncio.run(coro)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_help_scrolls_at_once_with_pgdn_and_arrows(size: tuple[int, int]) -> None:
    async def main():
        app = TxtopApp(fx.ManualSource(fx.busy_lab()))
        async with app.run_test(size=size) as pilot:
            await until(pilot, lambda: app.shown is not None, "first snapshot")
            await pilot.press("question_mark")
            await until(pilot, lambda: isinstance(app.screen, HelpScreen), "help screen")
            box = app.screen.query_one("#help-box", VerticalScroll)
            await until(pilot, lambda: box.max_scroll_y > 0, "help taller than its box")
            assert app.screen.focused is box  # no Tab needed
            await pilot.press("pagedown")
            await until(pilot, lambda: box.scroll_y > 0, "PgDn scrolled")
            after_page = box.scroll_y
            await pilot.press("down", "down")
            await until(pilot, lambda: box.scroll_y > after_page, "down scrolled")
            await pilot.press("end")
            await until(pilot, lambda: box.scroll_y == box.max_scroll_y, "end")
            await pilot.press("home")
            await until(pilot, lambda: box.scroll_y == 0, "home")
            await pilot.press("escape")
            await until(pilot, lambda: not isinstance(app.screen, HelpScreen), "closed")

    run(main())


def test_help_says_what_keys_do_and_shows_the_probe_details() -> None:
    async def main():
        app = TxtopApp(fx.ManualSource(fx.idle_vm()))
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: app.shown is not None, "first snapshot")
            await pilot.press("question_mark")
            await until(pilot, lambda: isinstance(app.screen, HelpScreen), "help screen")
            text = " ".join(str(app.screen.query_one("#help-text").render()).split())
            assert "l waterfall time scale: per row" in text
            assert "Probes now" in text and "no kernel headers for 6.18.44-fc-v782" in text

    run(main())


def test_queues_title_names_hidden_columns_and_v_brings_others_forward() -> None:
    async def main():
        app = TxtopApp(fx.ManualSource(fx.busy_lab()))
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: app.shown is not None, "first snapshot")
            panel = app.query_one(QueuesPanel)
            await until(pilot, lambda: bool(panel.hidden), "columns hidden at 80")
            title = str(panel.border_title)
            assert "hidden: " in title and "(v)" in title, title
            assert "xoff/s" in panel.hidden and "p50t" in panel.hidden
            await pilot.press("v")
            await until(pilot, lambda: panel.column_set == "latency", "latency first")
            head = panel.pinned_text()[0].split()
            assert "p50t" in head and "maxt" in head and "p50t" not in panel.hidden
            assert "latency first (v)" in str(panel.border_title)
            await pilot.press("s")  # the sort order goes on showing with the hint
            title = str(panel.border_title)
            assert "sort: busiest tx" in title and "hidden" in title
            assert len(title) <= panel.size.width - 4

    run(main())
