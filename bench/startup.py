"""The start-up benchmark (``bench/run --only startup``): ``txtop -i <lab dev>`` in tmux at
80x24, time from spawn until ``TX queues`` is on screen (first frame) and until ``probes:
running`` (compiled and attached); warm = the header tree cached, cold = no cache (an empty
private tmpfs over the cache directory, in a private mount namespace: ``bench/harness.py
_cold-exec``; nothing else sees it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from procs import HARNESS, TXTOP, TmuxRun, log
from stats import cell, summary
from traffic import Traffic

HEADER_CACHE_DIR = Path("/var/cache/txtop")  # probes/bpf/headers.py DEFAULT_CACHE_ROOT's parent


def cold_exec_main(argv: list[str]) -> None:
    """``_cold-exec`` mode, run under ``unshare --mount``: an empty private tmpfs over txtop's
    header cache (only this mount namespace sees it), then exec ``argv``."""
    subprocess.run(["mount", "--make-rprivate", "/"], check=True, capture_output=True, timeout=10)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "mode=0700,size=64m", "txtop-bench-cold",
         str(HEADER_CACHE_DIR)],
        check=True, capture_output=True, timeout=10,
    )  # fmt: skip
    os.execv(argv[0], argv)


def startup_once(dev: str, cold: bool) -> dict[str, Any]:
    argv = [str(TXTOP), "-i", dev]
    if cold:
        argv = ["unshare", "--mount", "--propagation", "private", "--", sys.executable,
                str(HARNESS), "_cold-exec", "--", *argv]  # fmt: skip
    with TmuxRun(argv, (80, 24), "start") as run:
        frame = run.wait_text("TX queues", 30)
        ready = run.wait_text("probes: running", 30)
        pane = run.pane()
        exit_s = run.quit()
    if frame is None or ready is None:
        raise RuntimeError("no frame or probes did not start: " + pane[-400:])
    return {
        "first_frame_s": round(frame, 3),
        "probes_ready_s": round(ready, 3),
        "exit_s": None if exit_s is None else round(exit_s, 3),
    }


def run_startup(traffic: Traffic, quick: bool) -> dict[str, Any]:
    if not HEADER_CACHE_DIR.is_dir():
        startup_once(traffic.dev, cold=False)  # builds the cache once
    out: dict[str, Any] = {}
    for kind, n in (("warm", 2 if quick else 5), ("cold", 1 if quick else 3)):
        rows = []
        for _ in range(n):
            try:
                rows.append(startup_once(traffic.dev, cold=kind == "cold"))
            except (RuntimeError, subprocess.CalledProcessError) as exc:
                rows.append({"error": str(exc)})
        ok = [r for r in rows if "error" not in r]
        out[kind] = {
            "first_frame_s": summary([r["first_frame_s"] for r in ok], 3),
            "probes_ready_s": summary([r["probes_ready_s"] for r in ok], 3),
            "exit_s": summary([r["exit_s"] for r in ok if r["exit_s"] is not None], 3),
            "errors": [r["error"] for r in rows if "error" in r],
        }
        k = out[kind]
        log(
            f"  {kind}: first frame {k['first_frame_s']['median']}s "
            f"[{k['first_frame_s']['min']}..{k['first_frame_s']['max']}]  "
            f"probes ready {k['probes_ready_s']['median']}s "
            f"[{k['probes_ready_s']['min']}..{k['probes_ready_s']['max']}]"
            + (f"  errors: {k['errors']}" if k["errors"] else "")
        )
    return out


def report(st: dict[str, Any]) -> list[str]:
    """The start-up table of bench/RESULTS.md."""
    if "warm" not in st:
        return []
    out = ["| start | first frame s | probes ready s | exit after q s |", "|---|---|---|---|"]
    for kind in ("warm", "cold"):
        k = st.get(kind, {})
        out.append(
            f"| {kind} | {cell(k.get('first_frame_s'))} | {cell(k.get('probes_ready_s'))} | "
            f"{cell(k.get('exit_s'))} |"
        )
    out.append("")
    return out
