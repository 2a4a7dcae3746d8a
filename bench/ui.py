"""The UI benchmark (``bench/run --only ui``), and the measurement bench/ui_cost.py shares.

CPU of the dashboard process in a detached tmux session (a real pty; tmux plays the terminal
and its CPU is not counted) at 80x24 and 200x60, 1 s and 0.1 s refresh, synthetic sources of
16x16, 64x64 and 128x256 (queues x CPUs). The harness runs ``bench/harness.py _ui-load RATE --
<txtop args>``: txtop's own CLI with its ``--synthetic`` source patched to deliver RATE sampled
packets per second (the stock source makes 12 per tick); that source runs inside the measured
process, so its cost (``ui_source_cost``, measured apart) is part of the figures.
"""

from __future__ import annotations

import dataclasses
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from procs import HARNESS, WARMUP_S, TmuxRun, log, proc_cpu_s, proc_mem_mb
from stats import cell, summary

RATE = 1000  # sampled packets per second of the harness's source


@dataclasses.dataclass
class DashboardCost:
    """One run of a dashboard in tmux; times in seconds from spawn, CPU in % of one core."""

    first_frame_s: float
    first_data_s: float
    cpu_pct: float
    window_s: float
    peak_rss_mb: float | None
    exit_s: float | None


def dashboard_cost(
    argv: Sequence[str],
    size: tuple[int, int],
    data_needle: str,
    seconds: float,
    tag: str = "ui",
    wait_exec: str | None = None,
) -> DashboardCost:
    """Start ``argv`` in tmux at ``size``; time until the panel titles ("TX queues") and then
    ``data_needle`` are drawn; after a warm-up, its CPU over ``seconds``; its peak RSS; then
    ``q`` and the time it takes to exit. ``wait_exec``: first check that the pane's process
    has exec'd a command line containing it."""
    with TmuxRun(argv, size, tag) as run:
        if wait_exec is not None:
            deadline = time.monotonic() + 5
            cmdline = ""
            while wait_exec not in cmdline and time.monotonic() < deadline:
                raw = Path(f"/proc/{run.pid}/cmdline").read_bytes()
                cmdline = raw.replace(b"\0", b" ").decode(errors="replace")
                time.sleep(0.005)
            if wait_exec not in cmdline:
                raise RuntimeError(f"pane pid {run.pid} is not {wait_exec}: {cmdline!r}")
        frame = run.wait_text("TX queues", 30)
        data = run.wait_text(data_needle, 30)
        if frame is None or data is None:
            raise RuntimeError("no frame: " + run.pane()[-300:])
        time.sleep(WARMUP_S)
        cpu0, t0 = proc_cpu_s(run.pid), time.monotonic()
        time.sleep(seconds)
        cpu1, t1 = proc_cpu_s(run.pid), time.monotonic()
        hwm = proc_mem_mb(run.pid, "VmHWM")
        exit_s = run.quit()
    return DashboardCost(frame, data, 100 * (cpu1 - cpu0) / (t1 - t0), t1 - t0, hwm, exit_s)


# ---- the harness's source: txtop's synthetic source at RATE packets/s ------------------------


def ui_load_packets(
    template: Any, n: int, mono_ns: int, n_queues: int, n_cpus: int, seed: int
) -> tuple[Any, ...]:
    """``n`` sampled packets with varied stages ending before ``mono_ns`` (for ``_ui-load``)."""
    from txtop.core.model import STAGES

    rng = random.Random(seed)
    out = []
    for i in range(n):
        at = mono_ns - rng.randint(1_000_000, 900_000_000)
        stages = {}
        for stage in STAGES:
            stages[stage] = at
            at += int(rng.lognormvariate(8.0, 1.0))
        out.append(
            dataclasses.replace(
                template,
                tid=template.pid + i % 7,
                queue=rng.randrange(n_queues),
                len=rng.choice((90, 590, 1514)),
                stages=stages,
                cpus={s: (i + k) % n_cpus for k, s in enumerate(stages)},
                sport=40000 + i % 1000,
            )
        )
    return tuple(out)


def ui_load_maker(rate: int) -> Callable[..., Any]:
    """txtop's synthetic make_snapshot, with ``rate`` sampled packets per second instead of
    its 12 per tick."""
    from txtop.lab import synthetic

    original = synthetic.make_snapshot

    def make(n_queues: int, n_cpus: int, tick: int, interval_s: float = 1.0, seed: int = 1) -> Any:
        snap = original(n_queues, n_cpus, tick, interval_s, seed)
        n = max(1, round(rate * interval_s))
        pkts = ui_load_packets(snap.packets[0], n, snap.mono_ns, n_queues, n_cpus, tick)
        return dataclasses.replace(snap, packets=pkts)

    return make


def ui_load_main(rate: int, argv: list[str]) -> None:
    """``_ui-load`` mode: txtop's own CLI with its --synthetic source made to deliver ``rate``
    sampled packets per second (the stock synthetic source makes 12 per tick)."""
    from txtop.lab import synthetic
    from txtop.tui import cli

    synthetic.make_snapshot = ui_load_maker(rate)
    cli.main(argv)


def ui_source_cost(shape: str, interval: float, rate: int) -> float:
    """% of one core the source itself (making the snapshots, in the measured process) costs
    at this shape and refresh: part of the UI figures, and not the dashboard's cost (in live
    mode the collector takes its place)."""
    from txtop.lab.synthetic import parse_shape

    q, c = parse_shape(shape)
    make = ui_load_maker(rate)
    ticks = max(3, round(2 / interval))
    t0 = time.process_time()
    for tick in range(ticks):
        make(q, c, tick + 1, interval)
    per_tick = (time.process_time() - t0) / ticks
    return round(100 * per_tick / interval, 2)


# ---- the section ------------------------------------------------------------------------------


def ui_measure(
    shape: str, size: tuple[int, int], interval: str, seconds: float, rate: int
) -> dict[str, Any]:
    argv = [sys.executable, str(HARNESS), "_ui-load", str(rate), "--",
            "--synthetic", shape, "-d", interval]  # fmt: skip
    m = dashboard_cost(argv, size, "syn0", seconds)
    return {
        "shape": shape,
        "size": f"{size[0]}x{size[1]}",
        "interval_s": float(interval),
        "samples_per_s": rate,
        "cpu_pct": round(m.cpu_pct, 2),
        "first_frame_s": round(m.first_frame_s, 3),
        "peak_rss_mb": None if m.peak_rss_mb is None else round(m.peak_rss_mb, 1),
        "exit_s": None if m.exit_s is None else round(m.exit_s, 3),
    }


def run_ui(quick: bool, seconds: float, repeats: int) -> dict[str, Any]:
    rate = RATE
    if quick:
        matrix = [("16x16", (80, 24), "1"), ("16x16", (200, 60), "1"), ("16x16", (200, 60), "0.1")]
    else:
        matrix = [
            (shape, size, interval)
            for shape in ("16x16", "64x64", "128x256")
            for interval in ("1", "0.1")
            for size in ((80, 24), (200, 60))
        ]
    rows = []
    for shape, size, interval in matrix:
        cpu = []
        last: dict[str, Any] = {}
        for _ in range(repeats):
            last = ui_measure(shape, size, interval, seconds, rate)
            cpu.append(last["cpu_pct"])
        last["cpu_pct_runs"] = summary(cpu, 2)
        last["cpu_pct"] = last["cpu_pct_runs"]["median"]
        last["source_cpu_pct"] = ui_source_cost(shape, float(interval), rate)
        last["cpu_pct_without_source"] = round(last["cpu_pct"] - last["source_cpu_pct"], 2)
        rows.append(last)
        log(
            f"  {shape:>7} {last['size']:>6} every {interval:>3}s, {rate} samples/s: CPU "
            f"{last['cpu_pct']:.2f}% [{last['cpu_pct_runs']['min']}..{last['cpu_pct_runs']['max']}]"
            f" (source {last['source_cpu_pct']}%)"
            f"  first frame {last['first_frame_s']:.2f}s  peak RSS {last['peak_rss_mb']} MB"
        )
    return {"runs": rows}


def ui_pick(ui: dict[str, Any], shape: str, size: str, interval: float) -> float | None:
    for r in ui.get("runs", []):
        if r["shape"] == shape and r["size"] == size and r["interval_s"] == interval:
            cpu: float | None = r["cpu_pct"]
            return cpu
    return None


def report(ui: dict[str, Any]) -> list[str]:
    """The UI table of bench/RESULTS.md."""
    if "runs" not in ui:
        return []
    out = ["| source QxC | size | refresh | CPU % of one core | of which the source | "
           "first frame s | peak RSS MB |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in ui["runs"]:
        out.append(
            f"| {r['shape']} | {r['size']} | {r['interval_s']:g} s | "
            f"{cell(r.get('cpu_pct_runs'), 2)} | {r.get('source_cpu_pct', 'n/a')} | "
            f"{r['first_frame_s']} | {r['peak_rss_mb']} |"
        )
    out += ["", "(1000 sampled packets/s. The source makes its snapshots inside the measured "
            "process: its cost, measured apart, is included in the CPU column.)", ""]  # fmt: skip
    return out
