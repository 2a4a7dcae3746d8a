"""The panels' pure builders (tui/panels/{format,queues,cpus,header}.py, drawing with
tui/glyphs.py): fixed snapshots in, fragment lines out, no App and no terminal."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest
import ui_fixtures as fx

from txtop.core.model import ProbeStatus
from txtop.tui.glyphs import ASCII, UNICODE, Glyphs, glyphs_for
from txtop.tui.panels.cpus import CPU_COLUMNS, cpu_lines, cpu_list_rows, heat_rows
from txtop.tui.panels.format import (
    ROLES,
    Column,
    bar,
    fit,
    fit_columns,
    fmt_bytes,
    fmt_pct,
    fmt_si,
    frag_len,
    line_text,
    truncate,
)
from txtop.tui.panels.header import HeaderState, header_lines, key_hint_line
from txtop.tui.panels.queues import QUEUE_COLUMNS, SORT_KEYS, queue_body_rows, queue_lines

PANELS = Path(__file__).resolve().parent.parent / "tui" / "panels"
PURE_MODULES = ("format", "queues", "cpus", "header")
SNAPSHOTS = {
    "none": None,
    "idle": fx.idle_vm(),
    "busy": fx.busy_lab(),
    "starting": fx.starting(),
    "many": fx.many(),
    "wide": fx.many(40, 200),
}


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_builders_never_import_textual_or_rich(module: str) -> None:
    """The widgets (base.py, widgets.py) draw; the builders only lay out text."""
    tree = ast.parse((PANELS / f"{module}.py").read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add("." * node.level + (node.module or ""))
    bad = {m for m in imported if m.split(".")[0] in ("textual", "rich")}
    bad |= {m for m in imported if m.lstrip(".").split(".")[-1] in ("base", "widgets")}
    assert not bad, f"{module}.py imports {sorted(bad)}"


@pytest.mark.parametrize(
    ("value", "si", "size", "pct"),
    [
        (None, "-", "-", "-"),
        (0, "0", "0", "0%"),
        (0.5, "0.5", "0", "0.5%"),
        (12, "12", "12", "12%"),
        (999.4, "999", "999", "999%"),
        (1234, "1.2k", "1.2K", "1234%"),
        (12_345, "12k", "12K", "12345%"),
        (1_500_000, "1.5M", "1.4M", "1500000%"),
    ],
)
def test_number_formats(value, si: str, size: str, pct: str) -> None:
    assert fmt_si(value) == si
    assert fmt_bytes(value) == size
    assert fmt_pct(value) == pct


def test_numbers_fit_five_cells() -> None:
    for exp in range(0, 16):
        for mantissa in (1.0, 4.99, 9.949, 9.951, 99.94, 99.96, 999.4, 999.6):
            value = mantissa * 10**exp
            assert len(fmt_si(value)) <= 5, value
            if value < 1024**5:
                assert len(fmt_bytes(value)) <= 5, value


def test_fit_and_truncate_give_exact_widths() -> None:
    frags = [("abcdef", "text"), ("ghij", "dim")]
    for width in range(0, 14):
        for align in ("<", ">"):
            assert frag_len(fit(frags, width, align)) == width
        assert frag_len(truncate(frags, width)) <= max(width, 0)
    assert line_text(truncate(frags, 6, "~")) == "abcde~"
    assert line_text(fit(frags, 12, ">")) == "  abcdefghij"


def test_narrow_widths_drop_high_priority_numbers_first() -> None:
    cols = [Column("a", "a", 4), Column("b", "b", 4, priority=2), Column("c", "c", 4, priority=1)]
    assert [c.key for c, _ in fit_columns(cols, 14)] == ["a", "b", "c"]
    assert [c.key for c, _ in fit_columns(cols, 9)] == ["a", "c"]
    assert [c.key for c, _ in fit_columns(cols, 2)] == ["a"]  # priority 0 stays, even cut
    grown = fit_columns([Column("a", "a", 4, grow=3), Column("b", "b", 4, grow=10)], 20)
    assert [w for _, w in grown] == [7, 12]


@pytest.mark.parametrize("glyphs", [UNICODE, ASCII])
def test_bars_are_as_wide_as_asked(glyphs: Glyphs) -> None:
    for width in range(0, 12):
        for ratio in (0.0, 0.01, 0.3, 0.79, 0.8, 1.0, 1.5, float("nan")):
            assert frag_len(bar(ratio, width, glyphs)) == width
    assert bar(0.9, 4, glyphs)[0][1] == "bar-high"
    if glyphs.ascii:  # whole cells only, but any non-zero value shows
        assert bar(0.01, 4, glyphs)[0] == ("#", "bar")


def test_ascii_glyphs_are_seven_bit_and_fills_follow_the_look() -> None:
    assert glyphs_for(True) is ASCII and glyphs_for(False) is UNICODE
    for glyphs in (ASCII, UNICODE):
        assert len(glyphs.heat) == 8 and len(glyphs.bar_full) == 1
    text_fields = [f.name for f in dataclasses.fields(Glyphs) if f.type == "str"]
    assert text_fields and all(getattr(ASCII, name).isascii() for name in text_fields)
    hash(UNICODE)  # usable as a cache key
    assert UNICODE.fills(mono=False) is UNICODE.fill
    assert UNICODE.fills(mono=True) is UNICODE.fill_mono


@pytest.mark.parametrize("name", sorted(SNAPSHOTS))
@pytest.mark.parametrize("width", [40, 79, 120, 200])
@pytest.mark.parametrize("ascii_only", [False, True])
def test_queue_lines_fit_the_width_and_match_the_row_count(name, width, ascii_only) -> None:
    snapshot = SNAPSHOTS[name]
    for sort_key in SORT_KEYS:
        head, body = queue_lines(snapshot, width, sort_key, ascii_only)
        assert len(body) == queue_body_rows(snapshot)
        if snapshot is not None and snapshot.queues:
            assert frag_len(head) <= width
            assert all(frag_len(line) == frag_len(head) for line in body)
        roles = {role for line in [head, *body] for _, role in line}
        assert roles <= set(ROLES)
        if ascii_only:
            assert all(line_text(line).isascii() for line in [head, *body])


def test_queue_sort_keys_reorder_but_keep_every_row() -> None:
    snapshot = fx.many(16, 4)
    rows = {key: sorted(map(line_text, queue_lines(snapshot, 120, key)[1])) for key in SORT_KEYS}
    assert len({tuple(r) for r in rows.values()}) == 1
    with pytest.raises(ValueError):
        queue_lines(snapshot, 120, "nonsense")


@pytest.mark.parametrize("name", sorted(SNAPSHOTS))
@pytest.mark.parametrize("width", [40, 79, 160])
def test_cpu_lines_list_when_it_fits_heat_otherwise(name, width) -> None:
    snapshot = SNAPSHOTS[name]
    rows = cpu_list_rows(snapshot)
    head, body, view = cpu_lines(snapshot, width, rows + 1)
    assert view == "list" and len(body) == rows
    if snapshot is None or not snapshot.cpus:
        return
    head, body, view = cpu_lines(snapshot, width, rows)
    assert view == "heat"
    assert len(body) == heat_rows(len(snapshot.cpus), width)
    assert frag_len(head) <= width
    _, body, _ = cpu_lines(snapshot, width, 3, ascii_only=True)
    assert all(line_text(line).isascii() for line in body)


def test_columns_explain_themselves_for_the_help_screen() -> None:
    for col in QUEUE_COLUMNS + CPU_COLUMNS:
        assert col.help, col.key
    assert len({c.key for c in QUEUE_COLUMNS}) == len(QUEUE_COLUMNS)


@pytest.mark.parametrize(
    "state",
    [
        HeaderState(1.0, "live"),
        HeaderState(0.5, "demo", paused=True, paused_ticks=4, recording=True),
        HeaderState(1.0, "live", source_error="reader died"),
    ],
)
@pytest.mark.parametrize("width", [30, 80, 160])
def test_header_is_two_lines_of_exactly_the_width(state: HeaderState, width: int) -> None:
    position = {"index": 3, "count": 9, "at_s": 3.0, "total_s": 9.0, "speed": 2.0}
    position |= {"paused": True, "damage": "cut short", "notice": "", "jump": False}
    replay = dataclasses.replace(fx.busy_lab(), replay=position)
    for snapshot in (None, fx.idle_vm(), fx.busy_lab(), replay):
        for glyphs in (UNICODE, ASCII):
            lines = header_lines(snapshot, state, width, glyphs)
            assert len(lines) == 2
            assert frag_len(lines[0]) >= width  # badges may overflow a very narrow header
            assert frag_len(lines[1]) == width


def test_probe_line_says_why_and_what_is_missing() -> None:
    probes = ProbeStatus(
        state="running",
        sampling={"every": 8, "max_per_s": 2000},
        trace_duty_pct=3.0,
        lost_events=5,
        unavailable={"qdisc": "no tracepoint"},
    )
    snapshot = dataclasses.replace(fx.busy_lab(), probes=probes)
    text = line_text(header_lines(snapshot, HeaderState(1.0, "live"), 200, UNICODE)[1])
    assert "sampling 1/8 (max 2.0k/s)" in text
    assert "traced 3% of the time (auto)" in text
    assert "lost 5" in text and "partial: qdisc unavailable" in text
    down = dataclasses.replace(snapshot, probes=ProbeStatus(state="unavailable", reason="no bpf"))
    assert "unavailable: no bpf" in line_text(
        header_lines(down, HeaderState(1.0, "live"), 200, UNICODE)[1]
    )


def test_key_hints_line() -> None:
    assert line_text(key_hint_line([("q", "quit"), ("?", "help")])) == " q quit  ? help "
