"""Pilot tests of the dashboard: every key, pause semantics, layout at the edges, themes.

Snapshots come from tests/ui_fixtures.py (synthetic, fixed) through a ManualSource, so each
test decides exactly when data arrives; waits are bounded polls on a condition.
"""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
import ui_fixtures as fx
from ui_fixtures import header, until

from txtop.core.model import ProbeStatus
from txtop.core.text import format_ns
from txtop.themes import load_themes
from txtop.themes.defaults import VARIABLE_NAMES
from txtop.tui.app import INTERVAL_STEPS_S, TxtopApp, next_interval
from txtop.tui.help import KEYS, WATERFALL_ACTIONS, HelpScreen, help_text
from txtop.tui.messages import SnapshotArrived
from txtop.tui.panels import (
    SORT_KEYS,
    CpusPanel,
    HeaderBar,
    QueuesPanel,
    cpu_lines,
    fmt_bytes,
    fmt_si,
    line_text,
    queue_lines,
)

DEADLINE_S = 5.0


def queues_text(app: TxtopApp) -> list[str]:
    return app.query_one(QueuesPanel).body_text()


def run(coro) -> None:
    asyncio.run(coro)


# ---- keys -------------------------------------------------------------------------------------


def test_q_quits_and_stops_the_source():
    async def main():
        source = fx.ManualSource(fx.idle_vm())
        app = TxtopApp(source)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: app.shown is not None, "first snapshot")
            await pilot.press("q")
            await until(pilot, lambda: app._exit, "exit")
        assert app.return_code == 0
        assert app.exits.reason == "quit"
        assert source.stopped

    run(main())


def test_space_pauses_display_but_counts_ticks_and_resume_shows_latest():
    async def main():
        first = fx.idle_vm()
        busy = fx.busy_lab()
        source = fx.ManualSource(first)
        app = TxtopApp(source)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: app.shown is first, "first snapshot")
            before = queues_text(app)
            cpus_before = app.query_one(CpusPanel).body_text()
            await pilot.press("space")
            assert app.paused
            assert "PAUSED +0" in header(app)
            source.push(busy)
            await until(pilot, lambda: app.ticks == 2, "second tick")
            source.push(dataclasses.replace(busy, time=busy.time + 1))
            await until(pilot, lambda: app.ticks == 3, "third tick")
            await pilot.pause()
            # The panels still show the first snapshot; the header counts what arrived.
            assert queues_text(app) == before
            assert app.query_one(CpusPanel).body_text() == cpus_before
            assert app.shown is first
            assert "PAUSED +2" in header(app)
            await pilot.press("space")
            assert not app.paused
            assert "PAUSED" not in header(app)
            assert app.shown is app.latest and app.shown.time == busy.time + 1
            assert any("txlp1a" in line for line in queues_text(app))

    run(main())


def test_plus_minus_change_the_source_interval_and_header():
    async def main():
        source = fx.ManualSource(fx.idle_vm(), interval_s=1.0)
        app = TxtopApp(source)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: app.shown is not None, "first snapshot")
            assert "every 1s" in header(app)
            await pilot.press("plus")
            assert source.interval_s == 2.0
            assert "every 2s" in header(app)
            await pilot.press("minus", "minus")
            assert source.interval_s == 0.5
            assert "every 0.5s" in header(app)
            assert source.intervals == [2.0, 1.0, 0.5]

    run(main())


def test_interval_steps_stay_in_range():
    assert next_interval(60.0, 1) == 60.0
    assert next_interval(0.1, -1) == 0.1
    assert next_interval(0.3, 1) == 0.5 and next_interval(0.3, -1) == 0.2
    assert INTERVAL_STEPS_S[0] >= 0.1 and INTERVAL_STEPS_S[-1] <= 60


def test_t_cycles_themes_and_changes_styles():
    async def main():
        app = TxtopApp(fx.ManualSource(fx.busy_lab()))
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: app.shown is not None, "first snapshot")
            panel = app.query_one(QueuesPanel)
            seen = []
            for _ in range(len(app.theme_names)):
                seen.append((app.theme, panel.role_styles()["alert"]))
                await pilot.press("t")
                await pilot.pause()
            assert [name for name, _ in seen] == ["dark", "light", "mono"]
            assert app.theme == "dark"  # wrapped around
            styles = {name: style for name, style in seen}
            assert styles["dark"].color != styles["light"].color
            assert styles["mono"].reverse and styles["mono"].bold  # meaning without colour

    run(main())


def test_s_cycles_sort_orders():
    async def main():
        app = TxtopApp(fx.ManualSource(fx.busy_lab()))
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: app.shown is not None, "first snapshot")
            panel = app.query_one(QueuesPanel)
            names = lambda: [line.split()[0] for line in queues_text(app)]  # noqa: E731
            assert names() == ["eth0", "txlp1a", "tx-0", "tx-1", "tx-2", "tx-3", "lo"]
            await pilot.press("s")
            assert panel.sort_key == "busiest tx"
            assert "busiest tx" in str(app.query_one("#queues").border_title)
            assert names() == ["txlp1a", "tx-1", "tx-2", "tx-0", "tx-3", "eth0", "lo"]
            await pilot.press("s")
            assert panel.sort_key == "backlog"
            assert names()[:3] == ["txlp1a", "tx-0", "tx-1"]
            await pilot.press("s")
            assert panel.sort_key == "drops"
            assert names()[:2] == ["txlp1a", "tx-0"]
            await pilot.press("s")
            assert panel.sort_key == "requeues"
            await pilot.press("s")
            assert panel.sort_key == SORT_KEYS[0]

    run(main())


def test_question_mark_opens_and_closes_help():
    async def main():
        app = TxtopApp(fx.ManualSource(fx.idle_vm()))
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("question_mark")
            await until(pilot, lambda: isinstance(app.screen, HelpScreen), "help screen")
            await pilot.press("escape")
            await until(pilot, lambda: not isinstance(app.screen, HelpScreen), "help closed")
            await pilot.press("question_mark")
            await until(pilot, lambda: isinstance(app.screen, HelpScreen), "help again")
            await pilot.press("question_mark")
            await until(pilot, lambda: not isinstance(app.screen, HelpScreen), "closed by ?")
            assert not app._exit

    run(main())


def test_help_lists_every_key_binding():
    text = help_text()
    keys = " ".join(k for k, _ in KEYS)
    for binding in TxtopApp.BINDINGS:
        shown = binding.key_display or binding.key.split(",")[0]
        shown = {"question_mark": "?", "space": "space"}.get(shown, shown)
        assert shown in keys, f"help does not mention {binding.key}"
    assert "BQL" in text and "NET_TX/s" in text
    from txtop.tui.waterfall import Waterfall

    for binding in Waterfall.BINDINGS:  # the waterfall's own keys, saying what they do
        assert binding.action in WATERFALL_ACTIONS, f"describe {binding.key} in tui/help.py"
        assert WATERFALL_ACTIONS[binding.action] in " ".join(text.split()), binding
    assert all(len(line) <= 66 for line in help_text(66).splitlines()[1:] if line.startswith(" "))


# ---- layout -----------------------------------------------------------------------------------


def test_too_small_terminal_shows_a_message_and_recovers():
    async def main():
        app = TxtopApp(fx.ManualSource(fx.busy_lab()))
        async with app.run_test(size=(60, 20)) as pilot:
            await until(pilot, lambda: app.shown is not None, "first snapshot")
            small = app.query_one("#too-small")
            assert small.display and small.region.height > 0
            assert "need 80x24, have 60x20" in str(small.render())
            assert app.query_one("#main").region.height == 0
            await pilot.resize_terminal(80, 24)
            await until(pilot, lambda: app.query_one("#main").region.height > 0, "main shown")
            assert app.query_one("#too-small").region.height == 0

    run(main())


@pytest.mark.parametrize("size", [(80, 24), (200, 60)])
@pytest.mark.parametrize("shape", [(4, 2), (16, 16), (64, 256)])
def test_every_panel_gets_rows(size, shape):
    async def main():
        snap = fx.busy_lab() if shape == (4, 2) else fx.many(*shape)
        app = TxtopApp(fx.ManualSource(snap))
        async with app.run_test(size=size) as pilot:
            await until(pilot, lambda: app.shown is not None, "first snapshot")
            await pilot.pause()
            for selector in ("#queues", "#cpus", "#wf-box"):
                region = app.query_one(selector).region
                assert region.height >= 4, (selector, region)
                assert region.right <= size[0] and region.bottom <= size[1]
            cpus = app.query_one(CpusPanel)
            if shape[1] >= 64 or (size == (80, 24) and shape[1] == 16):
                assert cpus.view == "heat"
            else:
                assert cpus.view == "list"
            header_region = app.query_one(HeaderBar).region
            assert header_region.y == 0 and header_region.height == 2

    run(main())


def test_uses_a_wide_terminal_side_by_side():
    async def main():
        app = TxtopApp(fx.ManualSource(fx.many(16, 16)))
        async with app.run_test(size=(200, 60)) as pilot:
            await until(pilot, lambda: app.shown is not None, "first snapshot")
            await pilot.pause()
            queues = app.query_one("#queues").region
            cpus = app.query_one("#cpus").region
            assert queues.y == cpus.y and cpus.x > queues.right - 1
            head = app.query_one(QueuesPanel).pinned_text()[0]
            assert "seg/s" in head and "xoff/s" in head  # wide columns
            assert "pkt/s 8s" in head  # and the history column
            assert len(app.query_one(CpusPanel).body_text()) == 17  # all + 16 CPUs listed

    run(main())


# ---- data path --------------------------------------------------------------------------------


def test_newer_snapshot_replaces_older_and_carries_its_packets():
    busy = fx.busy_lab()
    older = SnapshotArrived(busy)
    newer = SnapshotArrived(dataclasses.replace(busy, packets=busy.packets[:2], time=busy.time + 1))
    assert older.can_replace(newer)  # Textual asks the queued (older) message
    merged = newer.merged()
    assert merged.time == busy.time + 1
    assert len(merged.packets) == len(busy.packets) + 2
    assert older.merged().packets == busy.packets  # the dropped one is unchanged


def test_probe_states_in_header():
    async def main():
        source = fx.ManualSource(fx.starting())
        app = TxtopApp(source)
        async with app.run_test(size=(100, 24)) as pilot:
            await until(pilot, lambda: app.shown is not None, "first snapshot")
            assert "compiling probes" in header(app)
            source.push(fx.busy_lab())
            await until(pilot, lambda: app.ticks == 2, "second")
            text = header(app)
            assert "running" in text and "1/64" in text and "lost 12" in text
            source.push(fx.idle_vm(ProbeStatus("off", reason="--no-probes")))
            await until(pilot, lambda: app.ticks == 3, "third")
            assert "probes: off (--no-probes)" in header(app)
            source.push(fx.idle_vm())
            await until(pilot, lambda: app.ticks == 4, "fourth")
            assert "unavailable: no kernel headers" in header(app)

    run(main())


def test_source_failure_is_shown():
    async def main():
        source = fx.ManualSource(fx.idle_vm())
        app = TxtopApp(source)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: app.shown is not None, "first snapshot")
            source.error = OSError("netlink socket closed")
            await until(pilot, lambda: "data source failed" in header(app), "error shown")
            assert "netlink socket closed" in header(app)

    run(main())


# ---- pure panel functions ---------------------------------------------------------------------


def test_number_formats_fit_five_cells():
    for value in (0, 0.5, 9.94, 12, 999, 999.6, 1000, 12_345, 999_999, 1.2e6, 3.4e9, 7e12):
        assert len(fmt_si(value)) <= 5, value
    for count in (0, 999, 1000, 1023, 1024, 30_280, 1_048_576, 5 * 1024**3):
        assert len(fmt_bytes(count)) <= 5, count
    for ns in (850, 1_200, 41_000, 999_999, 1_200_000, 12_000_000, 1.2e9, 59e9):
        assert len(format_ns(ns, short=True)) <= 5, ns
    assert fmt_si(1_234) == "1.2k" and fmt_bytes(30_280) == "30K" and format_ns(41_000, short=True) == "41µs"
    assert fmt_si(None) == "-" and fmt_si(float("nan")) == "-"


def test_queue_rows_show_no_bql_shared_qdisc_and_missing_latency():
    _, body = queue_lines(fx.busy_lab(), 79)
    text = [line_text(line) for line in body]
    assert all(len(line) == 79 for line in text)
    lab = next(line for line in text if line.startswith("txlp1a"))
    assert "no BQL" in lab and "mq" in lab
    eth0 = next(line for line in text if line.startswith("eth0"))
    assert "1.5K/2.1K" in eth0 and "no BQL" not in eth0
    assert eth0.rstrip().endswith("-     -")  # no sampled latency for eth0
    tx0 = next(line for line in text if line.startswith("  tx-0"))
    assert "tbf" in tx0 and "310" in tx0 and "405ms" in tx0
    # A root qdisc shared by all queues is shown once, on the device row.
    shared = dataclasses.replace(
        fx.busy_lab(),
        queues=tuple(
            dataclasses.replace(q, qdisc=dataclasses.replace(q.qdisc, per_queue=False))
            if q.dev == "txlp1a" and q.qdisc
            else q
            for q in fx.busy_lab().queues
        ),
    )
    _, body = queue_lines(shared, 79)
    tx1 = next(line_text(x) for x in body if line_text(x).startswith("  tx-1"))
    assert "shared" in tx1


def test_cpu_panel_switches_to_heat_strip_when_rows_do_not_fit():
    snap = fx.many(16, 256)
    head, body, view = cpu_lines(snap, 79, 20)
    assert view == "heat"
    assert "256 CPUs" in line_text(head)
    assert len(body) == 4 * 4  # four metrics x 256/64 lines
    assert all(len(line_text(line)) <= 79 for line in body)
    _, body, view = cpu_lines(fx.busy_lab(), 79, 20)
    assert view == "list" and line_text(body[0]).startswith("all")
    _, body, view = cpu_lines(snap, 79, 20, ascii_only=True)
    assert all(line_text(line).isascii() for line in body)


def test_ascii_mode_draws_ascii_only():
    head, body = queue_lines(fx.busy_lab(), 120, ascii_only=True)
    for line in [head, *body]:
        assert line_text(line).isascii(), line_text(line)


def test_every_theme_defines_every_variable():
    themes = load_themes()
    assert list(themes)[:3] == ["dark", "light", "mono"]
    for spec in themes.values():
        missing = set(VARIABLE_NAMES) - set(spec.variables)
        assert not missing, (spec.name, missing)
    assert themes["mono"].ansi and "reverse" in themes["mono"].variables["txtop-alert-style"]


# ---- waterfall -> tracer control ----------------------------------------------------------------


class FakeTracer:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def set_sampling(self, every: int, max_per_s: int) -> None:
        self.calls.append(("sampling", every, max_per_s))

    def set_filters(self, ifindexes=None, pids=None) -> None:
        self.calls.append(("filters", ifindexes, pids))


def test_sampling_and_filter_messages_reach_the_tracer_control():
    from txtop.core.filters import FilterSpec
    from txtop.probes.live import TracerControl
    from txtop.tui.messages import FilterChanged, SamplingChanged

    async def main():
        tracer = FakeTracer()
        control = TracerControl(tracer, base_ifindexes=None, base_pids=[4242])
        app = TxtopApp(fx.ManualSource(fx.busy_lab()), control=control)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: app.shown is not None, "first snapshot")
            app.post_message(SamplingChanged(16))
            await until(pilot, lambda: bool(tracer.calls), "sampling call")
            assert tracer.calls[0] == ("sampling", 16, 2000)  # keeps the current cap
            app.post_message(FilterChanged(FilterSpec.parse("pid=4242,77 dev=lo")))
            await until(pilot, lambda: len(tracer.calls) == 2, "filter call")
            _, ifindexes, pids = tracer.calls[1]
            assert ifindexes == [1]  # lo
            assert pids == [4242]  # narrowed to the command line's --pid
            app.post_message(FilterChanged(FilterSpec.parse("pid=77")))
            await until(pilot, lambda: len(tracer.calls) == 3, "second filter")
            assert tracer.calls[2] == ("filters", None, [4242])  # never "everything"

    run(main())


def test_command_line_filter_starts_the_waterfall_filtered():
    from txtop.core.filters import FilterSpec
    from txtop.tui.waterfall import Waterfall

    async def main():
        spec = FilterSpec.from_cli(port="41001-41002", proto="udp")
        app = TxtopApp(fx.ManualSource(fx.busy_lab()), waterfall_filter=spec)
        async with app.run_test(size=(120, 30)) as pilot:
            await until(pilot, lambda: app.shown is not None, "first snapshot")
            waterfall = app.query_one(Waterfall)
            await until(pilot, lambda: bool(waterfall.shown_packets()), "filtered rows")
            assert waterfall.filter == spec
            assert sorted(p.sport for p in waterfall.shown_packets()) == [41001, 41002]

    run(main())


def test_tables_refresh_at_most_twice_a_second_at_10_hz_but_catch_up():
    """At a 0.1 s refresh the header follows every tick, the queue/CPU tables are rebuilt at
    most every TABLE_MIN_INTERVAL_S, and the newest snapshot still reaches them."""
    from txtop.tui import app as app_mod

    async def main():
        source = fx.ManualSource(fx.idle_vm(), interval_s=0.1)
        app = TxtopApp(source)
        rebuilds = []
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: app.shown is not None, "first snapshot")
            original = app.tables.show_tables
            app.tables.show_tables = lambda snap: (rebuilds.append(snap), original(snap))
            busy = fx.busy_lab()
            for _ in range(8):
                source.push(busy)
                await pilot.pause(0.02)
            assert app.shown is busy
            assert len(rebuilds) <= 2  # 8 ticks within ~0.2 s: not 8 rebuilds
            await until(pilot, lambda: rebuilds and rebuilds[-1] is busy, "tables catch up")
            assert any("tx-1" in line for line in queues_text(app))
            assert app_mod.TABLE_MIN_INTERVAL_S <= 0.5

    run(main())


def test_trace_windows_shown_in_header_and_estimates_marked():
    """Below 100% duty the probe line says how much of the time is traced, and queue rates
    extrapolated from the windows carry a '~'; BQL stalls seen by the probes are counted."""

    async def main():
        busy = fx.busy_lab()
        probes = dataclasses.replace(
            busy.probes, trace_mode="auto", trace_duty_pct=3.2, traced_pct=0.0, bql_stalls=4
        )
        queues = tuple(
            dataclasses.replace(q, tx=dataclasses.replace(q.tx, estimated=True))
            if q.dev == "txlp1a" and q.queue == 1 and q.tx is not None
            else q
            for q in busy.queues
        )
        source = fx.ManualSource(dataclasses.replace(busy, probes=probes, queues=queues))
        app = TxtopApp(source)
        async with app.run_test(size=(200, 40)) as pilot:
            await until(pilot, lambda: app.shown is not None, "first snapshot")
            text = header(app)
            assert "traced 3.2% of the time (auto)" in text and "BQL stalls 4" in text
            rows = [line for line in queues_text(app) if "tx-1" in line]
            assert rows and "~41k" in rows[0], rows
            assert "~" not in "".join(line for line in queues_text(app) if "tx-2" in line)

    run(main())
