"""The memory benchmark (``bench/run --only memory``): the dashboard (200x60, ``-i <lab dev>``,
defaults) under the 64-byte flood for 600 s (quick: 25 s), RSS every second; the least-squares
slope over the last two thirds says whether it is flat."""

from __future__ import annotations

import re
import subprocess
import time
from typing import Any

from procs import TXTOP, TmuxRun, log, proc_cpu_s, proc_mem_mb, stop_process
from stats import slope_per_min
from traffic import Traffic


def run_memory(traffic: Traffic, seconds: float) -> dict[str, Any]:
    """The dashboard at 200x60 watching the lab under a UDP flood (restarted in bounded
    chunks): RSS every second; slope over the last two thirds."""
    argv = [str(TXTOP), "-i", traffic.dev]
    points: list[tuple[float, float]] = []
    with TmuxRun(argv, (200, 60), "mem") as run:
        if run.wait_text("probes: running", 30) is None:
            raise RuntimeError("probes did not start: " + run.pane()[-300:])
        flood: subprocess.Popen[bytes] | None = None
        t0 = time.monotonic()
        cpu0 = proc_cpu_s(run.pid)
        try:
            while (now := time.monotonic()) - t0 < seconds:
                if flood is None or flood.poll() is not None:
                    chunk = min(60.0, seconds - (now - t0) + 1)
                    flood = traffic.udp_background(64, chunk)
                rss = proc_mem_mb(run.pid)
                if rss is None:
                    raise RuntimeError("txtop exited during the memory run: " + run.pane()[-300:])
                points.append((now - t0, rss))
                time.sleep(1.0)
            cpu = 100 * (proc_cpu_s(run.pid) - cpu0) / (time.monotonic() - t0)
            m = re.search(r"lost (\d+)", run.pane())
        finally:
            if flood is not None:
                stop_process(flood)
    third = len(points) // 3
    tail = points[third:]
    out = {
        "seconds": round(points[-1][0], 1) if points else 0,
        "rss_start_mb": round(points[0][1], 1) if points else None,
        "rss_after_warmup_mb": round(tail[0][1], 1) if tail else None,
        "rss_end_mb": round(points[-1][1], 1) if points else None,
        "rss_max_mb": round(max(p[1] for p in points), 1) if points else None,
        "slope_mb_per_min": None if (s := slope_per_min(tail)) is None else round(s, 3),
        "slope_all_mb_per_min": None if (s := slope_per_min(points)) is None else round(s, 3),
        "cpu_pct_under_flood": round(cpu, 2),
        "lost_shown": int(m.group(1)) if m else None,
        "samples": [(round(t, 1), round(v, 2)) for t, v in points[:: max(1, len(points) // 60)]],
    }
    log(
        f"  RSS {out['rss_start_mb']} -> {out['rss_end_mb']} MB over {out['seconds']}s"
        f" (max {out['rss_max_mb']}), slope {out['slope_mb_per_min']} MB/min after "
        f"warm-up, CPU {out['cpu_pct_under_flood']}%"
    )
    return out


def report(mem: dict[str, Any]) -> list[str]:
    """The memory sentence of bench/RESULTS.md."""
    if "rss_end_mb" not in mem:
        return []
    return [
        f"Memory: RSS {mem['rss_start_mb']} MB at start, {mem['rss_after_warmup_mb']} after "
        f"the first third, {mem['rss_end_mb']} at the end of {mem['seconds']} s (max "
        f"{mem['rss_max_mb']}); slope over the last two thirds {mem['slope_mb_per_min']} "
        f"MB/min; CPU {mem['cpu_pct_under_flood']}% of a core; lost shown {mem['lost_shown']}."
    ]
