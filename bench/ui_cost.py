"""CPU cost and start-up time of the whole dashboard: the real ``txtop`` process in tmux.

Goal (issue 2): at the default 1 s refresh with 16 TX queues and 16 CPUs, txtop uses at most
5% of one core while drawing, and the first frame is on screen within 1 s of start.

How: start ``txtop --synthetic QxC -d INTERVAL`` (or a live source) as the only command of a
detached tmux session of the given size, so it writes to a real pty (tmux plays the user's
terminal; tmux's own CPU is not counted). Then:
  - first frame: time from spawn until the pane shows the panel titles;
  - first data:  time until a data row is drawn (the source's first snapshot);
  - CPU: utime+stime of the process (all threads, /proc/<pid>/stat) over a window of
    ``--seconds`` after a warm-up, as % of one core; also the peak RSS.
Finally ``q`` is sent and the exit is timed. The measurement is bench/ui.py's
``dashboard_cost`` (a private tmux server), the same as ``bench/run --only ui``'s.

Examples:
  .venv/bin/python bench/ui_cost.py                          # 80x24 and 200x60, 16x16, 20 s
  .venv/bin/python bench/ui_cost.py --size 200x60 --shape 64x256 --seconds 10
  .venv/bin/python bench/ui_cost.py --live --seconds 10      # real collector (root for probes)
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from typing import Any

from procs import TXTOP, parse_size
from ui import dashboard_cost

BUDGET_PCT = 5.0
FIRST_FRAME_BUDGET_S = 1.0


def measure(
    size: tuple[int, int], argv: list[str], data_needle: str, seconds: float
) -> dict[str, Any]:
    m = dashboard_cost(argv, size, data_needle, seconds, tag="uicost", wait_exec="txtop")
    cols, rows = size
    return {
        "size": f"{cols}x{rows}",
        "argv": " ".join(argv[1:]),
        "first_frame_s": round(m.first_frame_s, 3),
        "first_data_s": round(m.first_data_s, 3),
        "cpu_pct": round(m.cpu_pct, 2),
        "window_s": round(m.window_s, 1),
        "peak_rss_mb": round(m.peak_rss_mb or 0.0, 1),
        "exit_s": round(m.exit_s or 0.0, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--size",
        type=parse_size,
        action="append",
        help="terminal size, repeatable (default 80x24 and 200x60)",
    )
    parser.add_argument("--shape", default="16x16", help="synthetic QUEUESxCPUS (default 16x16)")
    parser.add_argument("--interval", default="1", help="refresh interval in seconds")
    parser.add_argument("--seconds", type=float, default=20.0, help="measurement window")
    parser.add_argument(
        "--live", action="store_true", help="real collector instead of the synthetic source"
    )
    parser.add_argument("--json", action="store_true", help="print JSON lines")
    args = parser.parse_args()
    if shutil.which("tmux") is None:
        print("ui_cost: tmux is needed", file=sys.stderr)
        return 2
    if not 1 <= args.seconds <= 600:
        print("ui_cost: --seconds must be 1..600", file=sys.stderr)
        return 2
    if args.live:
        # The softirq panel's total row appears once a snapshot has been drawn.
        argv, needle = [str(TXTOP), "-d", args.interval], "all "
    else:
        argv, needle = [str(TXTOP), "--synthetic", args.shape, "-d", args.interval], "syn0"
    failed = False
    for size in args.size or [(80, 24), (200, 60)]:
        result = measure(size, argv, needle, args.seconds)
        ok = result["first_frame_s"] <= FIRST_FRAME_BUDGET_S
        if float(args.interval) == 1.0:  # the CPU budget is set for the default refresh
            ok = ok and result["cpu_pct"] <= BUDGET_PCT
        result["within_budget"] = ok
        failed |= not ok
        if args.json:
            print(json.dumps(result))
        else:
            print(
                f"{result['size']:>7}  {result['argv']:<32} first frame {result['first_frame_s']:.2f}s"
                f"  first data {result['first_data_s']:.2f}s  CPU {result['cpu_pct']:.2f}%"
                f" over {result['window_s']}s  RSS {result['peak_rss_mb']} MB"
                f"  exit {result['exit_s']:.2f}s  {'ok' if ok else 'OVER BUDGET'}"
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
