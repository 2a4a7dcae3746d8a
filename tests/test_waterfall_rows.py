"""The waterfall's pure modules, tested without Textual: the row buffer (filter, freeze,
cursor and anchor), bar maths, column layout, and the text of each line.

Nothing here imports Textual; ``test_pure_modules_load_no_textual`` checks that the modules
themselves do not either.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st
from waterfall_data import by_comm, later_snapshot, make_snapshot, trace_packets, trace_snapshot

from txtop.core.filters import FilterSpec
from txtop.core.model import PacketTrace
from txtop.core.text import fit_text, format_ns
from txtop.tui.glyphs import UNICODE
from txtop.tui.waterfall.bars import (
    SCALES,
    allocate_cells,
    bar_frags,
    bar_parts,
    layout_bar,
    log_position,
    nice_ceiling_ns,
)
from txtop.tui.waterfall.lines import (
    Look,
    column_frags,
    format_dev,
    frame,
    header_frags,
    layout_columns,
    legend_frags,
    message_frags,
    row_frags,
)
from txtop.tui.waterfall.rows import PENDING_TICKS, RowBuffer, step_sampling
from txtop.tui.waterfall.stats import stats_lines

PURE = ("rows", "bars", "lines", "stats", "style")


def text_of(frags: list[tuple[str, str]]) -> str:
    return "".join(t for t, _ in frags)


def loaded(snapshot_count: int = 0, **kw: object) -> RowBuffer:
    """A buffer holding the constructed traces, then ``snapshot_count`` later snapshots."""
    rows = RowBuffer(**kw)  # type: ignore[arg-type]
    rows.add(trace_snapshot())
    for i in range(1, snapshot_count + 1):
        rows.add(later_snapshot(3, after_s=float(i)))
    return rows


def test_pure_modules_load_no_textual() -> None:
    # A fresh interpreter: this test process has Textual loaded by other tests.
    probe = (
        "import sys\n"
        + "".join(f"import txtop.tui.waterfall.{m}\n" for m in PURE)
        + "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich'))\n"
        + "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


# --- bars and columns ------------------------------------------------------------------------


def test_bar_parts_name_every_interval_in_order() -> None:
    parts = bar_parts(by_comm("systemd-resolve"))
    assert [p.kind for p in parts] == ["stack", "enqueue", "qdisc", "dequeue", "driver",
                                       "completion"]  # fmt: skip
    assert [p.ns for p in parts] == [5200, 450, 300, 350, 1900, 95000]


def test_bar_parts_show_missing_stages_and_drops() -> None:
    ping = bar_parts(by_comm("ping"))  # lo: no qdisc stages
    assert [(p.kind, p.start, p.end) for p in ping] == [
        ("stack", "sendto", "dev_queue"),
        ("gap", "dev_queue", "start_xmit"),
        ("driver", "start_xmit", "xmit"),
        ("completion", "xmit", "free"),
    ]
    qdisc_drop = next(p for p in trace_packets() if p.drop_reason == "QDISC_DROP")
    assert [(p.kind, p.end) for p in bar_parts(qdisc_drop)] == [
        ("stack", "dev_queue"),
        ("drop", "free"),
    ]
    lost = next(p for p in trace_packets() if p.track == "lost")
    assert [p.kind for p in bar_parts(lost)] == ["stack"]


@given(
    st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=8),
    st.integers(min_value=0, max_value=200),
)
def test_allocate_cells_sums_and_keeps_every_segment(weights: list[int], extra: int) -> None:
    cells = len(weights) + extra
    out = allocate_cells(weights, cells)
    assert sum(out) == cells
    assert all(c >= 1 for c in out)
    total = sum(weights)
    if total and all(w / total * cells >= 1 for w in weights):
        # No minimum had to be enforced: every segment is within one cell of exact.
        assert all(abs(c - w / total * cells) < 1 for c, w in zip(out, weights, strict=True))


def test_allocate_cells_refuses_too_few_cells() -> None:
    with pytest.raises(ValueError):
        allocate_cells([1, 2, 3], 2)


def test_row_scale_fills_width_and_marks_tiny_segments() -> None:
    parts = bar_parts(by_comm("chronyd"))  # 6.4 us stack ... 88 us completion
    cells = layout_bar(parts, "row", 40, axis_hi_ns=0)
    assert sum(n for _, n, _ in cells) == 40
    thin = {p.kind for p, n, t in cells if t}
    assert thin == {"enqueue", "qdisc", "dequeue"}  # each far under half a cell (~2.4 us)
    assert all(n == 1 for _, n, t in cells if t)


def test_shared_scales_compare_rows() -> None:
    short, long = by_comm("ping"), by_comm("postgres")
    for scale in ("linear", "log"):
        hi = nice_ceiling_ns(long.total_ns)
        a = sum(n for _, n, _ in layout_bar(bar_parts(short), scale, 60, hi))
        b = sum(n for _, n, _ in layout_bar(bar_parts(long), scale, 60, hi))
        assert a < b <= 60
    # Linear: 13.1 us of a 2 ms axis is a sliver, but each segment keeps its one cell.
    linear = layout_bar(bar_parts(short), "linear", 60, nice_ceiling_ns(long.total_ns))
    assert [n for _, n, _ in linear] == [1, 1, 1, 1]
    assert all(t for _, _, t in linear)


def test_axis_helpers() -> None:
    assert nice_ceiling_ns(1) == 1000
    assert nice_ceiling_ns(1001) == 2000
    assert nice_ceiling_ns(2_321_100) == 3_000_000
    assert nice_ceiling_ns(4_000_000) == 5_000_000
    assert nice_ceiling_ns(6_000_000) == 10_000_000
    assert log_position(0, 10**6) == 0
    assert log_position(10**6, 10**6) == pytest.approx(1.0)
    assert 0 < log_position(10**3, 10**6) < log_position(10**4, 10**6) < 1


def test_sampling_steps() -> None:
    assert step_sampling(100, -1) == 50
    assert step_sampling(100, 1) == 200
    assert step_sampling(1, -1) == 1
    assert step_sampling(7, 1) == 10
    assert step_sampling(7, -1) == 5


@pytest.mark.parametrize("width", [80, 120, 200])
@pytest.mark.parametrize("dev_chars", [0, 11, 40])
def test_columns_fit(width: int, dev_chars: int) -> None:
    cols = layout_columns(width, dev_chars)
    assert cols.bar_x + cols.bar + 1 + cols.total == width
    assert cols.bar >= (20 if width >= 100 else 16)  # 80 columns give room to a flow column
    assert cols.flow >= 10
    if width >= 100:
        assert cols.dev >= min(dev_chars, 18)


def test_long_device_names_keep_the_queue() -> None:
    assert format_dev("eth0", 3, 8) == "eth0:3"
    assert format_dev("txlshotsa", 1, 11) == "txlshotsa:1"
    assert format_dev("txlshotsa", 1, 10) == "txlshot…:1"
    assert format_dev("txlshotsa", 12, 8) == "txls…:12"
    assert format_dev("enp0s31f6", None, 8, ascii=True) == "enp0s~:?"


def test_bar_frags_fill_the_width_with_the_drop_reason() -> None:
    drop = next(p for p in trace_packets() if p.drop_reason == "QDISC_DROP")
    for width in (3, 12, 40):
        frags = bar_frags(drop, bar_parts(drop), width, "row", 0, UNICODE.fill, True, False)
        assert len(text_of(frags)) == width
    wide = text_of(bar_frags(drop, bar_parts(drop), 40, "row", 0, UNICODE.fill, True, False))
    assert wide.rstrip().endswith("✗ QDISC_DROP")
    # Too narrow for bar and reason: the reason overwrites the bar's tail.
    assert text_of(bar_frags(drop, bar_parts(drop), 8, "row", 0, UNICODE.fill, True, True)) == (
        " x QDISC"
    )


# --- text cells --------------------------------------------------------------------------


def test_format_ns() -> None:
    assert [format_ns(n) for n in (850, 4100, 62_400, 237_800, 2_321_100, 1_200_000_000)] == [
        "850ns",
        "4.10µs",
        "62.4µs",
        "238µs",
        "2.32ms",
        "1.20s",
    ]
    assert format_ns(4100, ascii=True) == "4.10us"


def test_fit_text_pads_and_cuts() -> None:
    assert fit_text("len", 6, ">") == "   len"
    assert fit_text("len", 6) == "len   "
    assert fit_text("comm", 6, "^") == " comm "
    assert fit_text("iperf3-client", 6) == "iperf…"
    assert fit_text("iperf3-client", 6, ellipsis="~") == "iperf~"
    assert fit_text("iperf3-client", 6, ellipsis="") == "iperf3"
    assert fit_text("abc", 0) == ""
    assert fit_text("abcdef", 2, ellipsis="...") == "  "  # narrower than the ellipsis


@given(st.text(max_size=30), st.integers(min_value=0, max_value=40), st.sampled_from("<>^"))
def test_fit_text_is_always_exactly_the_width(text: str, width: int, align: str) -> None:
    out = fit_text(text, width, align)
    assert len(out) == width
    if len(text) <= width:
        assert out.strip(" ") == text.strip(" ")


# --- the row buffer ----------------------------------------------------------------------


def test_rows_are_newest_first_in_finishing_order() -> None:
    rows = RowBuffer()
    assert rows.add(trace_snapshot()) is True
    shown = rows.shown_packets()
    assert len(shown) == len(trace_packets())
    assert [p.last_ns for p in shown] == sorted((p.last_ns for p in shown), reverse=True)
    assert rows.received == len(shown)
    assert rows.selected_packet == shown[0]


def test_a_repeated_snapshot_adds_nothing() -> None:
    rows = loaded()
    n = len(rows.entries)
    assert rows.add(rows.snapshot) is False  # type: ignore[arg-type]
    again = dataclasses.replace(trace_snapshot(), time=rows.snapshot.time + 5)  # type: ignore[union-attr]
    assert rows.add(again) is False  # same mono_ns: replay's last snapshot, repeated
    assert len(rows.entries) == n


def test_max_rows_bounds_the_buffer_and_the_rows() -> None:
    rows = RowBuffer(max_rows=20)
    for i in range(1, 30):
        rows.add(later_snapshot(5, after_s=float(i)))
    assert len(rows.entries) == 20
    assert len(rows._buffer) == 20  # noqa: SLF001


def test_filter_applies_to_packets_already_received() -> None:
    rows = loaded()
    rows.navigate("line", 10, 3)
    spec = FilterSpec.parse("dev=eth0")
    rows.set_filter(spec)
    assert rows.filter == spec
    assert rows.shown_packets() and all(p.dev == "eth0" for p in rows.shown_packets())
    assert (rows.cursor, rows.top) == (0, 0)  # a new set of rows starts at the newest
    rows.add(later_snapshot(len(trace_packets()), after_s=1.0))
    assert all(p.dev == "eth0" for p in rows.shown_packets())


def test_freeze_holds_rows_and_counts_matching_arrivals() -> None:
    rows = loaded()
    before = rows.shown_packets()
    assert rows.set_frozen(True) is True
    assert rows.set_frozen(True) is False  # no change
    assert rows.add(later_snapshot(4)) is False  # behind the frozen view: header only
    assert rows.shown_packets() == before
    assert rows.arrived_while_frozen == 4
    rows.set_filter(FilterSpec.parse("pid=1"))  # matches none of the new packets
    assert rows.arrived_while_frozen == 0
    rows.set_filter(FilterSpec.parse(""))
    rows.set_frozen(False)
    assert rows.arrived_while_frozen == 0
    assert len(rows.shown_packets()) == len(before) + 4


def test_a_held_selection_stays_on_its_packet() -> None:
    rows = loaded()
    rows.navigate("line", 5, 7)
    chosen = rows.selected_packet
    top_seq = rows.entry_at(rows.top).seq  # type: ignore[union-attr]
    assert rows.add(later_snapshot(3)) is False  # the rows on screen did not move
    assert rows.selected_packet == chosen
    assert rows.cursor == 10 and rows.top == 6
    assert rows.entry_at(rows.top).seq == top_seq  # type: ignore[union-attr]
    rows.navigate("home", 5)
    assert (rows.cursor, rows.top) == (0, 0)
    assert rows.add(later_snapshot(3, after_s=2.0)) is True  # following: everything moves


def test_navigation_clamps_and_scrolls_the_cursor_into_view() -> None:
    rows = loaded()
    n = len(rows.entries)
    rows.navigate("line", 5, -1)
    assert (rows.cursor, rows.top) == (0, 0)
    rows.navigate("line", 5, 6)
    assert (rows.cursor, rows.top) == (6, 2)  # the cursor is the last line on screen
    rows.navigate("page", 5, 1)
    assert (rows.cursor, rows.top) == (10, 6)
    rows.navigate("end", 5)
    assert (rows.cursor, rows.top) == (n - 1, n - 5)
    rows.navigate("page", 5, -1)
    assert (rows.cursor, rows.top) == (n - 5, n - 9)
    rows.scroll(3, 5)
    assert rows.top == n - 6 and rows.cursor == n - 5  # the wheel moves the view only
    rows.scroll(-100, 5)
    assert rows.top == 0
    with pytest.raises(ValueError):
        rows.navigate("sideways", 5)


def test_sampling_requests_stay_pending_until_confirmed() -> None:
    rows = loaded()  # the traces were sampled 1 in 100
    assert rows.effective_every() == 100
    assert rows.request_sampling(-1) == 50
    assert rows.request_sampling(-1) == 20  # steps on from the pending rate
    rows.add(later_snapshot(1, every=100))
    assert rows.pending_every == 20  # not confirmed yet
    rows.add(later_snapshot(1, after_s=2.0, every=20))
    assert rows.pending_every is None and rows.effective_every() == 20
    rows.request_sampling(1)
    for i in range(PENDING_TICKS + 1):
        rows.add(later_snapshot(1, after_s=3.0 + i, every=20))
    assert rows.pending_every is None  # never confirmed: given up after a few snapshots
    assert RowBuffer().request_sampling(-1) is None  # already 1 in 1


def test_a_longer_device_name_widens_the_column_even_when_frozen() -> None:
    rows = loaded()
    rows.set_frozen(True)
    long = dataclasses.replace(trace_packets()[0], dev="enp0s31f6-long")
    snap = make_snapshot([long], rows.snapshot.mono_ns + 10**9, rows.snapshot.time + 1)  # type: ignore[union-attr]
    assert rows.add(snap) is True
    assert rows.dev_chars == len("enp0s31f6-long:") + len(str(long.queue))


def test_axis_end_is_a_round_number_above_the_longest_row() -> None:
    rows = loaded()
    longest = max(e.total_ns for e in rows.entries)
    assert rows.axis_hi() == nice_ceiling_ns(longest) >= longest


# --- the text of each line ---------------------------------------------------------------


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("ascii", [False, True])
def test_every_row_is_exactly_the_panel_width(scale: str, ascii: bool) -> None:
    rows = loaded()
    look = Look(scale, ascii)
    for width in (60, 80, 120, 200):
        cols = layout_columns(width, rows.dev_chars)
        hi = rows.axis_hi() if scale != "row" else 0
        for i, entry in enumerate(reversed(rows.entries)):
            text = text_of(row_frags(entry, cols, i == 0, look, hi))
            assert len(text) == width, (width, text)
            assert text.isascii() or not ascii


def test_header_says_frozen_held_and_pending() -> None:
    rows = loaded()
    left, right = header_frags(rows, Look())
    assert text_of(left).startswith(
        f" Packets {len(rows.entries)} · per-row scale · sampling 1/100"
    )
    assert right == []
    rows.navigate("line", 5, 7)
    assert "▲ 3 newer · Home: follow" in text_of(header_frags(rows, Look())[1])
    rows.request_sampling(-1)
    rows.set_frozen(True)
    rows.add(later_snapshot(2))
    left, right = header_frags(rows, Look(ascii=True))
    assert "-> 1/50" in text_of(left) and "|" in text_of(left)
    assert text_of(right) == " FROZEN +2 new "


def test_messages_of_an_empty_panel() -> None:
    rows = RowBuffer()
    assert text_of(message_frags(rows)[0]) == "  waiting for the first snapshot"
    rows.add(make_snapshot([], 10**12, 1.0e9, state="unavailable", reason="no BTF"))
    assert text_of(message_frags(rows)[0]) == "  no packet traces: probes unavailable (no BTF)"
    rows = RowBuffer(filter=FilterSpec.parse("dev=nothere"))
    rows.add(trace_snapshot())
    assert "no packet matches the filter: dev=nothere" in text_of(message_frags(rows)[0])


def test_legend_and_frame() -> None:
    assert "⏎ inspect" in text_of(legend_frags(200, Look()))
    assert "inspect" not in text_of(legend_frags(60, Look()))
    assert text_of(legend_frags(200, Look(ascii=True))).isascii()
    assert frame(24) == (2, 21, True)
    assert frame(4) == (2, 2, False)
    assert frame(2) == (1, 1, False)


def test_stats_lines_from_the_shown_rows() -> None:
    rows = loaded()
    rows.set_filter(FilterSpec.parse("dev=eth0"))
    lines = [text_of(line) for line in stats_lines(rows, 120, Look())]
    assert lines[0].startswith(" Stage latency · shown rows, last 10 s")
    assert any(line.startswith(" █ qdisc (qdisc_enqueue→qdisc_dequeue)") for line in lines)
    assert any(line.startswith(" eth0:") for line in lines)  # p99 by queue


def test_sender_column_keeps_the_name_when_name_and_pid_do_not_fit() -> None:
    from txtop.core.model import FlowInfo

    base = by_comm("ping")
    flow = FlowInfo("ipv4", "10.253.250.1", "10.253.250.2", 6, 43512, 5201, 0x18)
    rows = RowBuffer()
    packets = [
        dataclasses.replace(base, comm="tcpsendfile", pid=12345, tid=12345, flow=flow),
        dataclasses.replace(base, comm="udpgen", pid=6759, tid=6759, flow=flow),
        dataclasses.replace(base, comm="a-very-long-process-name", pid=7, tid=7, flow=flow),
    ]
    rows.add(make_snapshot(packets, 10**9, 1_750_000_000.0))
    cols = layout_columns(80, rows.dev_chars)
    texts = [text_of(row_frags(e, cols, False, Look(), 0)) for e in rows.entries]
    who = [t[1 + cols.time + 1 :][: cols.who] for t in texts]
    assert [w.rstrip() for w in who] == ["tcpsendfile", "udpgen[6759]", "a-very-l…[7]"]
    assert all(">:5201 tcp" in t for t in texts)  # the flow column at 80 columns


# --- issue 17: row order under shaping, a held selection that leaves the buffer ----------


def _shaped(seq: int, start_ns: int, wait_ns: int) -> PacketTrace:
    """A packet sent at ``start_ns`` that a shaping qdisc held for ``wait_ns``."""
    base = by_comm("iperf3")
    stages = {
        "sendto": start_ns,
        "dev_queue": start_ns + 1_000,
        "qdisc_enqueue": start_ns + 2_000,
        "qdisc_dequeue": start_ns + 2_000 + wait_ns,
        "start_xmit": start_ns + 3_000 + wait_ns,
        "xmit": start_ns + 4_000 + wait_ns,
    }
    return dataclasses.replace(base, pid=1000 + seq, stages=stages, track="complete")


def test_rows_are_ordered_by_start_whatever_order_they_completed_in() -> None:
    t0 = 10**12
    ms = 1_000_000
    # Sent 0, 1, 2, 3 ms apart; the first two waited 50 ms in a tbf, so they end last.
    a = _shaped(1, t0, 50 * ms)
    b = _shaped(2, t0 + 1 * ms, 50 * ms)
    c = _shaped(3, t0 + 2 * ms, 0)
    d = _shaped(4, t0 + 3 * ms, 0)
    rows = RowBuffer()
    # c and d finish first and arrive in one snapshot; a and b in the next one.
    rows.add(make_snapshot([d, c], t0 + 10 * ms, 1.0e9))
    rows.add(make_snapshot([b, a], t0 + 60 * ms, 1.0e9 + 0.05))
    assert [p.pid for p in rows.shown_packets()] == [1004, 1003, 1002, 1001]  # newest start on top
    starts = [p.first_ns for p in rows.shown_packets()]
    assert starts == sorted(starts, reverse=True)
    # The same rows after a filter change (rebuilt from the buffer) keep that order.
    rows.set_filter(FilterSpec.parse("dev=eth0"))
    rows.set_filter(FilterSpec())
    assert [p.pid for p in rows.shown_packets()] == [1004, 1003, 1002, 1001]


def test_the_time_column_names_the_order() -> None:
    cols = layout_columns(80)
    head = text_of(column_frags(cols, Look(), 0))
    assert head.startswith(" start ▼ ")
    assert text_of(column_frags(cols, Look(ascii=True), 0)).startswith(" start v ")


def test_a_held_selection_that_leaves_the_buffer_falls_back_to_the_newest() -> None:
    rows = RowBuffer(max_rows=30)
    rows.add(trace_snapshot())
    rows.navigate("line", 5, 3)  # select the fourth row: the view now holds it
    held = rows.selected_packet
    assert rows.cursor == 3 and held is not None
    assert rows.take_notice() == ""
    for i in range(1, 6):  # 5 x 18 newer packets: more than the buffer keeps
        rows.add(later_snapshot(18, after_s=float(i)))
    assert held not in rows.shown_packets()
    assert rows.cursor == 0 and rows.top == 0  # following the newest again
    assert rows.selected_packet == rows.shown_packets()[0]
    notice = rows.take_notice()
    assert "left the buffer" in notice and "following the newest" in notice
    assert rows.take_notice() == ""  # said once
    _, right = header_frags(rows, Look())
    assert "newer" not in text_of(right)


def test_a_held_selection_still_kept_is_not_moved() -> None:
    rows = RowBuffer(max_rows=200)
    rows.add(trace_snapshot())
    rows.navigate("line", 5, 3)
    held = rows.selected_packet
    rows.add(later_snapshot(18, after_s=1.0))
    assert rows.selected_packet is held and rows.cursor == 3 + 18
    assert rows.take_notice() == ""


def test_a_frozen_selection_that_left_the_buffer_falls_back_on_resume() -> None:
    rows = RowBuffer(max_rows=30)
    rows.add(trace_snapshot())
    rows.set_frozen(True)
    rows.navigate("line", 5, 2)
    for i in range(1, 4):
        rows.add(later_snapshot(18, after_s=float(i)))
    rows.set_frozen(False)
    assert rows.cursor == 0 and rows.top == 0
    assert "left the buffer" in rows.take_notice()
