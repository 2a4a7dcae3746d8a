"""BPF run-time statistics, part of the overhead benchmark: one extra flood per observer with
``kernel.bpf_stats_enabled=1`` (restored after), reading ``run_time_ns``/``run_cnt`` of each of
the observer's programs (``bpftool prog show id N``; the ids from the observer's fdinfo, as
other people's tracers carry the same names). Also counts the tracing programs loaded on the
machine, which the overhead rounds use to tell stable rounds from disturbed ones."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from observers import Observer
from procs import bpf_prog_ids
from traffic import Traffic

BPF_STATS = Path("/proc/sys/kernel/bpf_stats_enabled")
TRACING_TYPES = {"tracepoint", "raw_tracepoint", "tracing", "kprobe", "perf_event"}


def machine_tx_packets() -> int:
    """tx_packets summed over every device of this network namespace (the labs' TX ends live
    here, so other people's lab floods count too)."""
    total = 0
    for stat in Path("/sys/class/net").glob("*/statistics/tx_packets"):
        with contextlib.suppress(OSError, ValueError):
            total += int(stat.read_text())
    return total


def bpftool_prog(prog_id: int) -> dict[str, Any]:
    res = subprocess.run(
        ["bpftool", "-j", "prog", "show", "id", str(prog_id)],
        capture_output=True,
        text=True,
        timeout=10,
    )
    if res.returncode != 0:
        return {}
    try:
        out = json.loads(res.stdout)
    except ValueError:
        return {}
    return out if isinstance(out, dict) else {}


def tracing_programs() -> dict[int, str]:
    """id -> name of every tracing BPF program loaded on the machine now. Other people's
    probes slow the A side too: a round during which this set changed is not "stable"."""
    res = subprocess.run(
        ["bpftool", "-j", "prog", "show"], capture_output=True, text=True, timeout=10
    )
    try:
        progs = json.loads(res.stdout or "[]")
    except ValueError:
        return {}
    return {int(p["id"]): p.get("name", "?") for p in progs if p.get("type") in TRACING_TYPES}


def prog_stats(ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    out = {}
    for i in ids:
        p = bpftool_prog(i)
        if p:
            out[i] = {
                "name": p.get("name", "?"),
                "run_time_ns": int(p.get("run_time_ns", 0)),
                "run_cnt": int(p.get("run_cnt", 0)),
            }
    return out


@contextlib.contextmanager
def bpf_stats_enabled() -> Iterator[None]:
    """kernel.bpf_stats_enabled=1 for the duration, restored after (it is system-wide: keep
    it short; it adds two clock reads to every BPF program run while on)."""
    old = BPF_STATS.read_text().strip()
    BPF_STATS.write_text("1\n")
    try:
        yield
    finally:
        BPF_STATS.write_text(f"{old}\n")


def stats_round(traffic: Traffic, make: Callable[[], Observer], seconds: float) -> dict[str, Any]:
    """One flood with ``make()`` attached and BPF stats on: per-program ns/run and ns/packet."""
    with bpf_stats_enabled(), make() as obs:
        assert obs.pid is not None
        ids = bpf_prog_ids(obs.pid)
        before = prog_stats(ids)
        tx0, own0 = machine_tx_packets(), traffic.tx_packets()
        t0 = time.monotonic()
        pps = traffic.udp(64, seconds)
        elapsed = time.monotonic() - t0
        tx1, own1 = machine_tx_packets(), traffic.tx_packets()
        after = prog_stats(ids)
    own = own1 - own0
    # Other people's floods (a shared machine) pass the same hooks: per packet of the
    # machine, not of our flood alone (the same when the machine is quiet).
    packets = max(own, tx1 - tx0)
    progs = []
    total_ns = 0
    for i, a in after.items():
        b = before.get(i, {"run_time_ns": 0, "run_cnt": 0})
        dt, dc = a["run_time_ns"] - b["run_time_ns"], a["run_cnt"] - b["run_cnt"]
        total_ns += dt
        if dc:
            progs.append({
                "id": i, "name": a["name"], "runs": dc, "ns_per_run": round(dt / dc, 1),
                "runs_per_packet": round(dc / packets, 3) if packets else None,
                "ns_per_packet": round(dt / packets, 1) if packets else None,
            })  # fmt: skip
    progs.sort(key=lambda p: -(p["ns_per_packet"] or 0))
    by_name: dict[str, float] = {}  # where each nanosecond goes (same names summed)
    for prog in progs:
        by_name[prog["name"]] = round(
            by_name.get(prog["name"], 0.0) + (prog["ns_per_packet"] or 0), 1
        )
    return {
        "observer": obs.name,
        "pps": round(pps),
        "packets_own": own,
        "packets_machine": tx1 - tx0,
        "foreign_packets_share": round(1 - own / packets, 3) if packets else None,
        "bpf_ns_per_own_packet": round(total_ns / own, 1) if own else None,
        "programs": progs,
        "ns_per_packet_by_program": by_name,
        "programs_loaded": len(after),
        "bpf_ns_per_packet": round(total_ns / packets, 1) if packets else None,
        "bpf_cpu_pct_of_packet_time": round(100 * total_ns / 1e9 / elapsed, 2),
        "observer_cpu_s": obs.info.get("cpu_s"),
    }


def report(bpf_stats: dict[str, Any]) -> list[str]:
    """The per-program table of bench/RESULTS.md."""
    out = [
        "| observer | program | runs/packet | ns/run | ns/packet |",
        "|---|---|---|---|---|",
    ]
    for side, st in bpf_stats.items():
        for prog in st.get("programs", []):
            out.append(
                f"| {side} | {prog['name']} | {prog['runs_per_packet']} | "
                f"{prog['ns_per_run']} | {prog['ns_per_packet']} |"
            )
        out.append(
            f"| **{side}** | **total** (flood {st.get('pps') or 0:,} pps with stats on; "
            f"share of the machine's packets not ours {st.get('foreign_packets_share')}) | | | "
            f"**{st.get('bpf_ns_per_packet')}** |"
        )
    return out
