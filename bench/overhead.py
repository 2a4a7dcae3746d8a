"""The overhead benchmark (``bench/run --only overhead``).

pps of a bounded UDP flood (64- and 1400-byte frames) and throughput of one TCP stream over the
veth lab, without any observer (A) and with observers (B, bench/observers.py): the real txtop
at defaults, with ``--sample 1`` and with ``--trace-duty 100``, the bpftrace peer (every stage
per packet, as a user would write it by hand), a bpftrace floor, and netqtop where it runs. A
and the Bs are interleaved, the order rotating each round; ratios are per round (B / A of the
same round), reported as median with min/max over rounds. Then one extra flood per observer
with BPF statistics on (bench/bpf_stats.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import bpf_stats
from observers import (
    NETQTOP,
    BpftraceFloor,
    BpftracePeer,
    Netqtop,
    Observer,
    TxtopHeadless,
    header_tree,
)
from procs import log
from stats import cell, ratio_summary, rotate, summary
from traffic import Traffic


def observer_makers(dev: str) -> tuple[dict[str, Callable[[], Observer]], str]:
    """The B sides by name, and what happened when netqtop was tried (it joins only when it
    prints its table within 30 s)."""
    makers: dict[str, Callable[[], Observer]] = {
        "txtop": lambda: TxtopHeadless(dev),
        "txtop_sample1": lambda: TxtopHeadless(dev, ["--sample", "1"], name="txtop_sample1"),
        # the probes always attached (no trace windows): what the windows save
        "txtop_always": lambda: TxtopHeadless(dev, ["--trace-duty", "100"], name="txtop_always"),
        "peer": lambda: BpftracePeer(dev),
        "floor": BpftraceFloor,
    }
    netqtop_status = "not installed"
    if NETQTOP.exists():
        tree = header_tree()
        try:
            with Netqtop(dev, tree) as probe:
                netqtop_status = f"runs (BCC_KERNEL_SOURCE={tree}, ready {probe.ready_s:.1f}s)"
            makers["netqtop"] = lambda: Netqtop(dev, tree)
        except RuntimeError as exc:
            netqtop_status = f"fails with BCC_KERNEL_SOURCE={tree}: {exc}"
    return makers, netqtop_status


def plans(quick: bool, rounds: int, netqtop: bool) -> list[tuple[str, list[str], int]]:
    """(workload, sides, rounds) to run."""
    if quick:
        return [("udp64", ["A", "txtop", "txtop_always", "peer", "floor"], rounds)]
    udp_sides = ["A", "txtop", "txtop_always", "txtop_sample1", "peer", "floor"] + (
        ["netqtop"] if netqtop else []
    )
    return [
        ("udp64", udp_sides, rounds),
        ("udp1400", ["A", "txtop"], max(3, rounds * 3 // 4)),
        ("tcp", ["A", "txtop"], max(3, rounds * 3 // 4)),
    ]


def _got(values: list[float | None]) -> list[float]:
    """The rounds a side ran in (an observer that did not start leaves None)."""
    return [v for v in values if v is not None]


def _zeros(values: list[float | None]) -> list[float]:
    """None (did not run) as 0.0, which round_ratios skips as a base."""
    return [0.0 if v is None else v for v in values]


def _fmt_side(side: str, v: float | None, a: float | None) -> str:
    if v is None:
        return f"{side} -"
    if side == "A" or not a:
        return f"{side} {v:,.0f}"
    return f"{side} {v:,.0f} ({v / a:.3f})"


class Tally:
    """What the default txtop side reported over every round: start times and lost events."""

    def __init__(self) -> None:
        self.ready: list[float] = []
        self.lost = 0


def run_workload(
    traffic: Traffic,
    workload: str,
    sides: list[str],
    n: int,
    seconds: float,
    makers: dict[str, Callable[[], Observer]],
    tally: Tally,
) -> dict[str, Any]:
    """``n`` rounds of ``workload``, every side once per round in rotated order."""
    per: dict[str, list[float | None]] = {s: [] for s in sides}
    failed: dict[str, list[str]] = {}
    foreign: list[list[int]] = []
    stable: list[int] = []  # rounds in which that count did not change
    extra: dict[str, list[dict[str, Any]]] = {s: [] for s in sides if s != "A"}
    unit = "bytes/s" if workload == "tcp" else "pps"
    log(f"  {workload}: {n} rounds x {len(sides)} sides x {seconds:g}s ({unit})")
    for r in range(n):
        row: dict[str, float | None] = {}
        seen: list[int] = []  # other people's tracing programs, before each side
        for side in rotate(sides, r):
            seen.append(len(bpf_stats.tracing_programs()))
            if side == "A":
                row[side] = traffic.run(workload, seconds)
                continue
            try:
                with makers[side]() as obs:
                    row[side] = traffic.run(workload, seconds)
            except RuntimeError as exc:  # it did not start: this round goes without it
                row[side] = None
                failed.setdefault(side, []).append(f"round {r}: {exc}")
                log(f"    {side} did not start: {exc}")
                continue
            extra[side].append(obs.info)
            if side == "txtop":
                if obs.ready_s is not None:
                    tally.ready.append(obs.ready_s)
                tally.lost += int(obs.info.get("lost_events") or 0)
        for side in sides:
            per[side].append(row[side])
        foreign.append(seen)
        if len(set(seen)) == 1:
            stable.append(r)
        log(
            f"    round {r} (foreign tracing programs {'/'.join(map(str, seen))}): "
            + "  ".join(_fmt_side(s, row[s], row["A"]) for s in sides)
        )
    w: dict[str, Any] = {
        "unit": unit,
        "A": summary(_got(per["A"]), 1),
        "foreign_tracing_programs": foreign,
        "stable_rounds": stable,
    }
    for side in sides:
        if side == "A":
            continue
        w[side] = {
            "value": summary(_got(per[side]), 1),
            "ratio": ratio_summary(_zeros(per["A"]), per[side]),
            "ratio_stable_rounds": ratio_summary(_zeros(per["A"]), per[side], stable),
            "observer": extra[side],
        }
    # observer against observer, within the same round (txtop_always vs the hand-written
    # bpftrace peer: both follow every packet through every stage)
    for b, base in (("txtop", "floor"), ("txtop", "peer"), ("txtop_always", "peer")):
        if b in sides and base in sides:
            w[f"{b}_vs_{base}"] = ratio_summary(_zeros(per[base]), per[b])
    if failed:
        w["failed_starts"] = failed
    log(
        f"    {workload}: "
        + "  ".join(
            f"{s} ratio {w[s]['ratio']['median']} [{w[s]['ratio']['min']}..{w[s]['ratio']['max']}]"
            for s in sides
            if s != "A"
        )
    )
    return w


def run_overhead(traffic: Traffic, quick: bool, rounds: int, seconds: float) -> dict[str, Any]:
    makers, netqtop_status = observer_makers(traffic.dev)
    log(f"  netqtop: {netqtop_status}")
    out: dict[str, Any] = {"netqtop": netqtop_status, "workloads": {}}
    tally = Tally()
    for workload, sides, n in plans(quick, rounds, "netqtop" in makers):
        out["workloads"][workload] = run_workload(
            traffic, workload, sides, n, seconds, makers, tally
        )
    # Precise figure: per-program BPF run time, one round per observer with stats on.
    stats_sides = ["txtop", "txtop_always", "peer", "floor"]
    if not quick:
        stats_sides.insert(2, "txtop_sample1")
    out["bpf_stats"] = {}
    for side in stats_sides:
        try:
            s = bpf_stats.stats_round(traffic, makers[side], seconds)
        except (OSError, RuntimeError) as exc:
            s = {"error": str(exc)}
        out["bpf_stats"][side] = s
        log(
            f"  bpf_stats {side}: {s.get('bpf_ns_per_packet')} ns of BPF per packet "
            f"({s.get('bpf_cpu_pct_of_packet_time')}% of the sender's time; "
            f"{s.get('foreign_packets_share')} of the packets not ours)"
            + (f" error: {s['error']}" if "error" in s else "")
        )
        for prog in s.get("programs", []):
            log(
                f"    {prog['name']:<16} {prog['ns_per_packet']:>7} ns/packet "
                f"({prog['runs_per_packet']} runs/packet x {prog['ns_per_run']} ns)"
            )
    out["probes_ready_headless_s"] = summary(tally.ready, 3)
    out["lost_events_default"] = tally.lost
    return out


def report(ov: dict[str, Any]) -> list[str]:
    """The overhead and bpf_stats tables of bench/RESULTS.md."""
    if "workloads" not in ov:
        return []
    out = ["| workload | A (no observer) | observer | B / A per round | stable rounds only |",
           "|---|---|---|---|---|"]  # fmt: skip
    for wname, w in ov["workloads"].items():
        for side, v in w.items():
            if not isinstance(v, dict) or "ratio" not in v:
                continue
            out.append(
                f"| {wname} ({w['unit']}) | {cell(w['A'], 0)} | {side} | {cell(v['ratio'])} "
                f"| {cell(v.get('ratio_stable_rounds'))} |"
            )
        for key in ("txtop_vs_floor", "txtop_vs_peer", "txtop_always_vs_peer"):
            if key in w:
                b, base = key.split("_vs_")
                out.append(f"| {wname} | | {b} / {base} | {cell(w[key])} | |")
    out += ["", f"netqtop: {ov.get('netqtop')}", ""]
    out += bpf_stats.report(ov.get("bpf_stats", {}))
    out.append("")
    return out
