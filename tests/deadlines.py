"""Time limits that mean the same on a quiet machine and on a loaded 2-core CI machine.

A limit such as "the dashboard exits within 3 s of SIGTERM" is a promise about txtop's own work.
When other processes hold the CPUs (CI's parallel jobs, a CPU hog on each core), that work takes
longer in wall-clock time although txtop does nothing more. ``scaled()`` stretches such a limit
by the CPU share a busy thread of this process gets right now, measured, so a real regression
(a hang, a 30 s wait for a failed write) still fails while contention alone does not.
"""

from __future__ import annotations

import time

PROBE_S = 0.2  # how long the share is measured
MIN_SHARE = 0.05  # never stretch a limit more than 20x


def cpu_share(probe_s: float = PROBE_S) -> float:
    """The share of one CPU a busy thread of this process gets now (1.0 on an idle machine)."""
    wall0, cpu0 = time.monotonic(), time.thread_time()
    while time.monotonic() - wall0 < probe_s:
        pass
    wall = time.monotonic() - wall0
    return max(MIN_SHARE, min(1.0, (time.thread_time() - cpu0) / wall))


def scaled(limit_s: float, share: float | None = None) -> float:
    """``limit_s`` stretched by the measured CPU share (unchanged on an idle machine)."""
    return limit_s / (cpu_share() if share is None else share)
