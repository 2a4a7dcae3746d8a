"""Cheap checks of the benchmark harness (bench/run, bench/harness.py and its modules): the command line works
without root, and the maths and parsing behind bench/RESULTS.md are right. The benchmarks
themselves run with `bench/run` (root, minutes), not here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
RUN = BENCH / "run"
MODULES = ("harness", "stats", "procs", "traffic", "observers", "bpf_stats", "overhead", "drain",
           "ui", "startup", "memory", "tracer_cost", "ui_cost", "waterfall_cost",
           "waterfall_flood", "exporter")  # fmt: skip

sys.path.insert(0, str(BENCH))  # bench/run does the same; the modules import each other by name
import drain  # noqa: E402
import harness as h  # noqa: E402
import stats  # noqa: E402
import ui  # noqa: E402
from procs import parse_fdinfo, parse_size  # noqa: E402


def test_run_is_executable_and_help_works() -> None:
    assert RUN.stat().st_mode & 0o111
    res = subprocess.run([str(RUN), "--help"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    for word in ("--quick", "--only", "--out", "JSON"):
        assert word in res.stdout


def test_bad_section_is_a_usage_error() -> None:
    res = subprocess.run(
        [str(RUN), "--only", "nonsense"], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 2
    assert "unknown section" in res.stderr


def test_summary_median_min_max() -> None:
    assert stats.summary([3, 1, 2]) == {"median": 2.0, "min": 1.0, "max": 3.0, "n": 3}
    assert stats.summary([1, 2, 3, 4])["median"] == 2.5
    assert stats.summary([]) == {"median": None, "min": None, "max": None, "n": 0}
    assert stats.summary([0.123456], digits=2)["median"] == 0.12


def test_round_ratios_pair_rounds_and_skip_missing() -> None:
    assert stats.round_ratios([100, 200], [95, 100]) == [0.95, 0.5]
    assert stats.round_ratios([0, 100], [50, None]) == []
    with pytest.raises(ValueError):
        stats.round_ratios([1, 2], [1])


def test_rotation_puts_each_side_first_in_turn() -> None:
    sides = ["A", "txtop", "floor"]
    firsts = [stats.rotate(sides, r)[0] for r in range(6)]
    assert firsts == ["A", "txtop", "floor", "A", "txtop", "floor"]
    assert sorted(stats.rotate(sides, 4)) == sorted(sides)


def test_slope_per_min() -> None:
    flat = [(t, 100.0) for t in range(10)]
    assert stats.slope_per_min(flat) == 0.0
    growing = [(t, 100.0 + 0.5 * t) for t in range(10)]  # 0.5 MB/s
    assert stats.slope_per_min(growing) == pytest.approx(30.0)
    assert stats.slope_per_min([(0, 1.0), (1, 2.0)]) is None
    assert stats.slope_per_min([(5, 1.0), (5, 2.0), (5, 3.0)]) is None


def test_last_json_line_skips_noise() -> None:
    text = "progress\n{not json}\n" + json.dumps({"a": 1}) + "\n" + '{"b": 2}\n  \n'
    assert stats.last_json_line(text) == {"b": 2}
    assert stats.last_json_line("no json here\n[1, 2]\n") is None


def test_goals() -> None:
    met = h.check_goals({"overhead_pps_ratio": 0.98, "ui_cpu_pct_80x24": 5.0, "first_frame_s": 1.0})
    assert met["overhead_pps_ratio"] is True  # >= 0.97 (issue 13)
    assert h.check_goals({"overhead_pps_ratio": 0.96})["overhead_pps_ratio"] is False
    assert met["ui_cpu_pct_80x24"] is True  # <= 5
    assert met["first_frame_s"] is False  # < 1
    assert met["probes_ready_s"] is None


def test_fdinfo_parsing() -> None:
    text = "pos:\t0\nprog_type:\t5\nprog_id:\t7306\nrun_time_ns:\t0\n"
    info = parse_fdinfo(text)
    assert info["prog_id"] == "7306" and info["prog_type"] == "5"


def test_shown_lost_reads_the_probe_line() -> None:
    pane = "x\nprobes: running  sampling 1/1 (max 1M/s)  lost 12345\n TX queues lost 9\n"
    assert drain.shown_lost(pane) == 12345
    assert drain.shown_lost("probes: compiling probes...") is None


def test_flat_result_has_the_promised_keys() -> None:
    res = {"machine": {"kernel": "k", "cpu_model": "c", "cores": 2, "date": "d"}}
    flat = h.flat_result(res)
    for key in (
        "overhead_pps_ratio", "overhead_pps_ratio_floor", "drain_events_per_s", "lost_events",
        "ui_cpu_pct_80x24", "ui_cpu_pct_200x60", "first_frame_s", "probes_ready_s", "rss_mb",
    ):  # fmt: skip
        assert key in flat
    json.dumps(flat)


def test_ui_load_packets_are_varied_and_bounded() -> None:
    from txtop.lab import synthetic

    snap = synthetic.make_snapshot(16, 16, 1)
    pkts = ui.ui_load_packets(snap.packets[0], 100, snap.mono_ns, 16, 16, seed=3)
    assert len(pkts) == 100
    assert len({p.queue for p in pkts}) > 1
    assert all(0 <= p.queue < 16 for p in pkts)
    assert all(p.last_ns < snap.mono_ns for p in pkts)


def test_bench_modules_import_without_bcc_or_root() -> None:
    # --help must stay cheap: no bcc, no Textual at import time, in any bench module.
    code = (
        "import sys; sys.path.insert(0, 'bench'); "
        + "; ".join(f"import {m}" for m in MODULES)
        + "; print('bcc' in sys.modules, 'textual' in sys.modules)"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert res.stdout.split() == ["False", "False"], res.stderr


def test_bench_modules_stay_small() -> None:
    # Issue 11: one module per benchmark, none over ~600 lines.
    for path in BENCH.glob("*.py"):
        assert len(path.read_text().splitlines()) <= 600, path.name


def test_ratio_summary_of_chosen_rounds() -> None:
    base, other = [100.0, 200.0, 100.0], [90.0, 100.0, 95.0]
    assert stats.ratio_summary(base, other)["median"] == 0.9
    assert stats.ratio_summary(base, other, [0, 2]) == {
        "median": 0.925, "min": 0.9, "max": 0.95, "n": 2,
    }  # fmt: skip
    assert stats.ratio_summary(base, other, [])["n"] == 0


def test_dig_and_cell() -> None:
    d = {"a": {"b": {"c": 3}}, "x": 5}
    assert stats.dig(d, "a", "b", "c") == 3
    assert stats.dig(d, "a", "nope", "c") is None
    assert stats.dig(d, "x", "y") is None
    assert stats.cell({"median": 1, "min": 0.5, "max": 2, "n": 4}, 1) == "1.0 [0.5..2.0] (n=4)"
    assert stats.cell(None) == stats.cell(stats.summary([])) == "n/a"


def test_parse_size() -> None:
    assert parse_size("200x60") == (200, 60)
    assert parse_size("80X24") == (80, 24)
    for bad in ("80", "1x1", "80x24x2", "ax24"):
        with pytest.raises(Exception, match="COLSxROWS"):
            parse_size(bad)


def test_report_renders_every_section() -> None:
    s = {"median": 1.0, "min": 0.9, "max": 1.1, "n": 3}
    res = {
        "machine": {"date": "d", "commit": "c", "kernel": "k", "cpu_model": "cpu", "cores": 2,
                    "mem_gb": 1, "python": "3", "bcc": "b", "load_avg_at_start": [0, 0, 0]},
        "quick": True,
        "overhead": {
            "netqtop": "fails",
            "workloads": {"udp64": {"unit": "pps", "A": s, "txtop": {"ratio": s},
                                    "txtop_vs_floor": s}},
            "bpf_stats": {"txtop": {"pps": 1000, "bpf_ns_per_packet": 400.0, "programs": [
                {"name": "p", "runs_per_packet": 1.0, "ns_per_run": 40.0, "ns_per_packet": 40.0}
            ]}},
        },
        "drain": {"sweep": [{"cap_per_s": 5000, "ringbuf_pages": 64, "records_per_s": 9000,
                             "traces_per_s": 4500, "ringbuf_lost": 0, "other_lost": 0,
                             "flood_pps": 500000}], "dashboard_overload": {}},
        "ui": {"runs": [{"shape": "16x16", "size": "80x24", "interval_s": 1.0,
                         "cpu_pct_runs": s, "first_frame_s": 0.3, "peak_rss_mb": 40}]},
        "startup": {"warm": {"first_frame_s": s, "probes_ready_s": s, "exit_s": s}},
        "memory": {"error": "boom"},
    }  # fmt: skip
    md = h.render_markdown(res)
    for needle in ("| udp64 (pps)", "1.000 [0.900..1.100] (n=3)", "| 5,000 | 64 | 9,000",
                   "| 16x16 | 80x24 | 1 s", "| warm |", "memory failed: boom"):  # fmt: skip
        assert needle in md
