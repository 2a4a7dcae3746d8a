"""The history (core/history.py) and its text (tui/panels/history.py, the panels' history
column): pure, no App. Bucketing, peaks against means, gaps, repeated and backward ticks,
eviction, the memory bound over a long synthetic run, rebuilding after a replay seek."""

from __future__ import annotations

import ast
import dataclasses
import math
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
import ui_fixtures as fx

from txtop.core.findings import with_findings
from txtop.core.history import (
    CPU_METRICS,
    QUEUE_METRICS,
    CpuTarget,
    History,
    QueueTarget,
)
from txtop.core.model import BqlStats, LatencyStats, QdiscStats, QueueRow, Snapshot, TxStats
from txtop.lab.synthetic import make_snapshot
from txtop.recordings.replay import ReplaySource
from txtop.tui.glyphs import ASCII, UNICODE
from txtop.tui.history_view import feed_history
from txtop.tui.panels.cpus import cpu_view
from txtop.tui.panels.format import frag_len, line_text
from txtop.tui.panels.history import (
    chart_rows,
    fmt_ago,
    history_lines,
    nice_top,
    spark,
    spark_cell_s,
    time_axis,
    view_span,
)
from txtop.tui.panels.queues import SparkSpec, queue_lines, queue_view

T0 = 1_000_000_000_000  # mono_ns of the first tick (on a bucket boundary)
Q = QueueTarget("q0", 0)


def tick(
    t_s: float,
    pps: float = 0.0,
    backlog: int = 0,
    interval_s: float = 1.0,
    peak: int | None = None,
    cpus: tuple[float, ...] = (),
    queues: tuple[int, ...] = (0,),
) -> Snapshot:
    """A snapshot ending ``t_s`` seconds after T0 with queues of device q0 and some CPUs."""
    rows = []
    for n in queues:
        rows.append(
            QueueRow(
                dev="q0",
                ifindex=5,
                queue=n,
                bql=BqlStats(10, 3000, 0, 1 << 30, 1000, inflight_peak=peak),
                qdisc=QdiscStats("fq", "1:", "root", 0, backlog, 1, 0, 0, 0, 0, 0),
                tx=TxStats(pps=pps, bps=8 * pps, packets=0, bytes=0),
                latency_ns={"qdisc": LatencyStats(1, 2, 3000, 4, count=5)},
            )
        )
    base = fx.idle_vm()
    cpu_rows = tuple(
        dataclasses.replace(base.cpus[0], cpu=i, net_tx_per_s=v, net_rx_per_s=2 * v)
        for i, v in enumerate(cpus)
    )
    return dataclasses.replace(
        base,
        mono_ns=T0 + int(t_s * 1e9),
        interval_s=interval_s,
        queues=tuple(rows),
        cpus=cpu_rows,
        devices=(),
        interfaces=("q0",),
    )


# ---- the store --------------------------------------------------------------------------------


def test_one_second_ticks_fill_their_buckets_and_read_back() -> None:
    h = History(span_s=60, resolution_s=0.5)
    for t in range(1, 11):
        h.add(tick(t, pps=100.0 * t, backlog=t, cpus=(t,)))
    assert h.window(Q, "pps", 3, 1.0) == [800.0, 900.0, 1000.0]
    assert h.window(Q, "backlog", 2, 2.0) == [8.0, 10.0]  # a peak metric: the larger
    assert h.window(Q, "pps", 2, 2.0) == [750.0, 950.0]  # a rate: the mean
    assert h.window(CpuTarget(0), "net_rx", 1, 1.0) == [20.0]
    assert h.window(Q, "bql_peak", 1, 1.0) == [10.0]  # no sampling: the tick's inflight
    assert h.window(Q, "p99q", 1, 1.0) == [3000.0]
    # The first tick has no interval: only its own bucket; before it nothing is known.
    assert h.window(Q, "pps", 12, 1.0)[:2] == [None, None]
    assert h.covered_s() == pytest.approx(9.5)  # from the bucket holding the first tick
    assert h.targets() == [Q, CpuTarget(0)]


def test_fast_ticks_merge_into_buckets_peak_as_max_rates_as_mean() -> None:
    h = History(span_s=30, resolution_s=0.5)
    values = [10.0, 0.0, 50.0, 0.0, 20.0]  # five 0.1 s ticks in one half-second bucket
    h.add(tick(0.0, interval_s=0.1))
    for n, v in enumerate(values, start=1):
        h.add(tick(n * 0.1 + 0.5, pps=v, backlog=int(v), peak=int(v), interval_s=0.1))
    [pps] = h.window(Q, "pps", 1, 0.5)
    assert pps == pytest.approx(sum(values) / 5)
    assert h.window(Q, "backlog", 1, 0.5) == [50.0]
    assert h.window(Q, "bql_peak", 1, 0.5) == [50.0]  # the sampled peak, not the inflight


def test_gaps_unknown_values_and_absent_queues() -> None:
    h = History(span_s=60)
    h.add(tick(1, pps=5, queues=(0, 1)))
    h.add(tick(2, pps=5, queues=(0,)))  # tx-1 went away
    h.add(tick(3, pps=5, queues=(0, 1)))
    assert h.window(QueueTarget("q0", 1), "pps", 3, 1.0) == [5.0, None, 5.0]
    no_latency = dataclasses.replace(
        tick(4, pps=7), queues=(QueueRow("q0", 5, 0, None, None, None),)
    )
    h.add(no_latency)
    assert h.window(Q, "pps", 1, 1.0) == [None]  # nothing known of that queue this tick
    assert h.window(QueueTarget("zz", 9), "pps", 2, 1.0) == [None, None]


def test_repeated_tick_ignored_backward_time_starts_over() -> None:
    h = History(span_s=60)
    h.add(tick(1, pps=10))
    h.add(tick(2, pps=20))
    h.add(tick(2, pps=999))  # the same frame again (a held replay frame, a FixedSource)
    assert h.window(Q, "pps", 1, 1.0) == [20.0]
    h.add(tick(1.5, pps=30))  # the clock went back: another recording, a loop
    assert h.covered_s() == pytest.approx(0.5) and h.window(Q, "pps", 1, 0.5) == [pytest.approx(30)]
    h.clear()
    assert h.targets() == [] and h.covered_s() == 0.0


def test_eviction_after_a_span_and_the_cap_on_queues() -> None:
    h = History(span_s=10, resolution_s=0.5, max_queues=2, max_cpus=1)
    h.add(tick(1, queues=(0, 1, 2), cpus=(1, 2)))
    assert h.targets() == [QueueTarget("q0", 0), QueueTarget("q0", 1), CpuTarget(0)]
    assert h.ignored == 2
    for t in range(2, 14):
        h.add(tick(t, queues=(1,)))
    assert h.targets() == [QueueTarget("q0", 1)]  # unseen for a whole span: dropped


def test_memory_bound_over_a_long_synthetic_run() -> None:
    """20 minutes at a 0.1 s refresh, 16 queues and 16 CPUs, and every minute a device that
    comes and goes: the history stops growing after its 5 minutes and stays under its bound."""
    h = History()
    frames = [make_snapshot(16, 16, t, interval_s=0.1) for t in range(1, 51)]
    assert h.memory_bound_bytes() < 18_000_000
    tracemalloc.start()
    sizes = []
    try:
        for n in range(12_000):
            snap = frames[n % len(frames)]
            if n % 600 < 20:  # a device of its own name for 2 s every minute
                extra = dataclasses.replace(snap.queues[0], dev=f"tmp{n // 600}")
                snap = dataclasses.replace(snap, queues=(*snap.queues, extra))
            h.add(dataclasses.replace(snap, mono_ns=T0 + n * 100_000_000))
            if n in (4_000, 8_000, 11_999):
                sizes.append((tracemalloc.get_traced_memory()[0], h.memory_bytes()))
    finally:
        tracemalloc.stop()
    (traced_a, held_a), (traced_b, held_b), (traced_c, held_c) = sizes
    assert held_a == held_b == held_c  # a fixed number of series once the span is full
    assert held_c <= h.memory_bound_bytes()
    per_target = len(QUEUE_METRICS) * h.series_bytes()
    assert held_c <= 17 * per_target + 16 * len(CPU_METRICS) * h.series_bytes() + 6 * per_target
    assert abs(traced_c - traced_a) < 64_000  # no growth beyond noise
    assert h.covered_s() == pytest.approx(300.0)


def test_a_replay_seek_rebuilds_the_history_from_the_recording() -> None:
    # With findings already (as recorded live), so the timeline keeps the very frames.
    frames = list(with_findings([make_snapshot(4, 2, t) for t in range(1, 400)]))
    source = ReplaySource(frames)
    h = History()
    feed = feed_history(h, source)
    for snap in frames[:20]:
        feed(snap)
    at = source.timeline.position(350, speed=1.0, paused=True, jump=True)
    feed(dataclasses.replace(frames[350], replay=at))
    expected = History()
    expected.rebuild(frames[350 - 300 : 351])
    target = QueueTarget("syn0", 1)
    assert h.covered_s() == expected.covered_s() == pytest.approx(300.0)
    assert h.window(target, "pps", 60, 5.0) == expected.window(target, "pps", 60, 5.0)
    # frames() is the window before a frame, that frame included
    assert source.frames(350, 10.0)[-1] is frames[350] and len(source.frames(350, 10.0)) == 11
    assert source.frames(0, 300.0) == (frames[0],)


# ---- the text -----------------------------------------------------------------------------------


def test_spark_heights_roles_gaps_and_the_ascii_levels() -> None:
    line = spark([None, 0.0, 1.0, 50.0, 100.0], 100.0, UNICODE)
    assert line_text(line) == " ·▁▄█"
    assert [role for _, role in line] == ["text", "dim", "heat-1", "heat-2", "heat-3"]
    assert line_text(spark([0.0, 0.001, 100.0], 100.0, ASCII)) == ".__#"[1:] or True
    assert line_text(spark([0.0, 0.001, 100.0], 100.0, ASCII)) == "._#"
    assert line_text(spark([3.0, 3.0], 0.0, UNICODE)) == "▁▁"  # any activity shows
    assert spark_cell_s(0.1, 8, 300) == 1.0 and spark_cell_s(60, 8, 300) == 300 / 8


def test_chart_rows_fill_in_eighths_and_axes() -> None:
    rows = chart_rows([100.0, 50.0, 1.0, None, 0.0], 100.0, 2, UNICODE)
    assert [line_text(r) for r in rows] == ["█    ", "██▁  "]
    assert nice_top(0) == 1 and nice_top(3.2) == 5 and nice_top(1800) == 2000
    assert nice_top(2500) == 2500 and nice_top(7.1e6) == 1e7
    assert view_span(10, 300) == 30 and view_span(200, 300) == 300 and view_span(500, 300) == 300
    assert [fmt_ago(s) for s in (30, 60, 90, 3600)] == ["-30s", "-1m", "-90s", "-1h"]
    axis = line_text(time_axis(74, 300))
    assert axis.endswith("now") and "-1m" in axis and "-4m" in axis and len(axis) == 80


@pytest.mark.parametrize(("width", "height"), [(80, 21), (200, 56), (80, 8)])
@pytest.mark.parametrize("glyphs", [UNICODE, ASCII], ids=["unicode", "ascii"])
def test_history_lines_fit_the_view(width: int, height: int, glyphs) -> None:
    h = History()
    for t in range(1, 100):
        h.add(make_snapshot(4, 4, t))
    for target in (QueueTarget("syn0", 1), CpuTarget(2)):
        subtitle, lines = history_lines(h, target, width, height, glyphs)
        assert target.label in subtitle and "last 2m" in subtitle
        assert 2 <= len(lines) <= height
        assert all(frag_len(line) == width for line in lines if line[0][1] != "heading")
        text = "\n".join(line_text(line) for line in lines)
        assert text.rstrip().endswith("now")
        if glyphs is ASCII:
            assert text.isascii()
        if height > 20:  # every metric has its chart
            for metric in QUEUE_METRICS if isinstance(target, QueueTarget) else CPU_METRICS:
                assert metric.title in text


# ---- the panels' history column -------------------------------------------------------------------


def _history(n_queues: int = 16, n_cpus: int = 16, ticks: int = 40) -> tuple[History, Snapshot]:
    h = History()
    snaps = [make_snapshot(n_queues, n_cpus, t) for t in range(1, ticks + 1)]
    for s in snaps:
        h.add(s)
    return h, snaps[-1]


@pytest.mark.parametrize("width", [79, 199])
def test_queue_view_history_column_targets_and_pointer(width: int) -> None:
    h, snap = _history()
    view = queue_view(
        snap, width, spark=SparkSpec(h, "pps", 1.0, UNICODE), selected=QueueTarget("syn0", 3)
    )
    head = line_text(view.head)
    assert "pkt/s " in head.split("bit/s", 1)[1]  # the history column, after bit/s
    assert len(view.body) == len(view.targets)
    assert view.targets[:2] == [None, QueueTarget("syn0", 0)]  # the device row, then tx-0
    row = view.body[view.targets.index(QueueTarget("syn0", 3))]
    assert line_text(row).startswith(UNICODE.pointer + " tx-3")
    assert any(role.startswith("heat-") for _, role in row)
    assert len({frag_len(line) for line in view.body}) == 1  # one layout for every row
    assert frag_len(view.body[0]) <= width
    # Without a history the panel is as before: no history column.
    head_plain, body_plain = queue_lines(snap, width)
    assert "8s" not in line_text(head_plain) and len(body_plain) == len(view.body)


def test_cpu_view_history_column_and_heat_view_targets() -> None:
    h, snap = _history(n_cpus=4)
    view = cpu_view(snap, 79, 20, spark=SparkSpec(h, "net_rx", 1.0, ASCII), selected=CpuTarget(1))
    assert "NET_RX " in line_text(view.head) and view.view == "list"
    assert view.targets == [None, CpuTarget(0), CpuTarget(1), CpuTarget(2), CpuTarget(3)]
    assert line_text(view.body[2]).startswith(UNICODE.pointer + "1")
    heat = cpu_view(make_snapshot(4, 64, 3), 79, 8, spark=SparkSpec(h, "net_tx", 1.0, UNICODE))
    assert heat.view == "heat" and set(heat.targets) == {None}


def test_bql_bar_marks_the_peak_beside_the_current_value() -> None:
    snap = fx.busy_lab()
    eth0 = snap.queues[0]
    assert eth0.bql is not None
    bql = dataclasses.replace(eth0.bql, inflight=0, inflight_peak=1_650)  # 75% of 2198
    marked = dataclasses.replace(
        snap, queues=(dataclasses.replace(eth0, bql=bql), *snap.queues[1:])
    )
    for width, glyphs in ((79, UNICODE), (199, ASCII)):
        _, body = queue_lines(marked, width, ascii_only=glyphs is ASCII)
        row = next(line for line in body if line_text(line).startswith("eth0"))
        text = line_text(row)
        meter = [(t, r) for t, r in row if r in ("bar", "bar-high", "bar-empty")]
        cells = "".join(t for t, _ in meter)
        assert text.count(cells) == 1
        assert cells.count(glyphs.peak_mark) == 1
        mark_at = cells.index(glyphs.peak_mark)
        assert mark_at == int(0.75 * len(cells))  # where the peak reached
        if width > 100:
            assert "pk 1.6K" in text  # room for the value too
    # No mark without a peak above now.
    _, body = queue_lines(snap, 79)
    assert UNICODE.peak_mark not in line_text(body[0])


def test_pure_history_module_loads_no_textual() -> None:
    probe = (
        "import sys, txtop.core.history\n"
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich'))))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
    # The panel builder is Textual-free too (its package's __init__ loads the widgets).
    tree = ast.parse((Path(__file__).parent.parent / "tui/panels/history.py").read_text())
    imported = {
        node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
    } | {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
    assert not {m for m in imported if m.split(".")[0] in ("textual", "rich")}
    assert not {m for m in imported if m.split(".")[-1] in ("base", "widgets", "selection")}
    assert math.isfinite(History().memory_bound_bytes())


def test_a_single_queue_device_without_queue_rates_has_the_device_rate() -> None:
    snap = fx.idle_vm()  # eth0: one queue, no probe or mq rates, device pps 3
    h = History()
    h.add(snap)
    assert h.window(QueueTarget("eth0", 0), "pps", 1, 1.0) == [3.0]
    multi = fx.busy_lab()  # txlp1a: 4 queues with their own rates; eth0 again the device's
    h.add(dataclasses.replace(multi, mono_ns=snap.mono_ns + 10**9))
    assert h.window(QueueTarget("txlp1a", 1), "pps", 1, 1.0) == [41_200.0]
    assert h.window(QueueTarget("eth0", 0), "pps", 1, 1.0) == [12.0]
