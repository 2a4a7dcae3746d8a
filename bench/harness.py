"""txtop's benchmark harness: every number in bench/RESULTS.md comes from here (via bench/run).

This file parses the command line, builds the lab (bench/traffic.py), runs the selected
sections and prints the one JSON line; each section lives in its own module:

  overhead  bench/overhead.py (observers.py, bpf_stats.py): pps of a bounded UDP flood and
            throughput of one TCP stream with no observer (A) and with observers (B: txtop,
            the hand-written bpftrace peer, a floor...), rounds interleaved, ratio B / A of the
            same round; per-program BPF run time.
  waterfall bench/waterfall_flood.py: sampled packets/s reaching txtop's output at defaults
            under a 64-byte flood from pinned senders, its losses, (queue, CPU) coverage.
  drain     bench/drain.py: records/s the collector's real worker drains, and the dashboard
            beyond that rate (losses shown, key latency).
  ui        bench/ui.py: CPU of the dashboard in tmux, sizes x refresh x source shapes.
  startup   bench/startup.py: time to first frame and to "probes: running", warm and cold.
  memory    bench/memory.py: RSS of the dashboard under a flood for 10 min (--quick: 25 s).
  exporter  bench/exporter.py: a metrics scrape of 64 queues x 128 CPUs (render ms, CPU at a
            15 s interval), the real --serve process, key latency while scraping at 10 Hz.

Shared: bench/stats.py (medians, rotation, per-round ratios, report cells) and bench/procs.py
(/proc, tmux, the machine). Traffic only goes from this namespace to the peer of a veth lab this
harness creates (lab/netns.py); every flood is bounded in time. The last line printed is one
JSON object. Hidden modes, run in child processes: ``_tcp DST PORT SECONDS`` (the TCP sender),
``_ui-load RATE -- <txtop args>`` and ``_cold-exec -- <argv>``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling modules below

import drain  # noqa: E402
import exporter  # noqa: E402
import memory  # noqa: E402
import overhead  # noqa: E402
import startup  # noqa: E402
import ui  # noqa: E402
import waterfall_flood  # noqa: E402
from procs import log, machine_info  # noqa: E402
from stats import dig  # noqa: E402
from traffic import Traffic, lab_traffic, tcp_sender  # noqa: E402

GOALS = {
    "overhead_pps_ratio": (">=", 0.97),
    "overhead_pps_ratio_always": (">=", 0.90),
    "bpf_ns_per_packet_always": ("<=", 120.0),
    "waterfall_rows_per_s_flood": (">=", 100.0),
    "waterfall_lost_flood": ("<=", 0),
    "drain_events_per_s": (">=", 50000),
    "ui_cpu_pct_80x24": ("<=", 5.0),
    "ui_cpu_pct_200x60": ("<=", 5.0),
    "ui_cpu_pct_200x60_10hz": ("<=", 15.0),
    "first_frame_s": ("<", 1.0),
    "probes_ready_s": ("<", 2.0),
    "exporter_scrape_ms": ("<", 50.0),
    "exporter_scrape_cpu_pct_15s": ("<", 2.0),
}
SECTIONS = ("overhead", "waterfall", "drain", "ui", "startup", "memory", "exporter")
RUNNERS: dict[str, Callable[[Traffic, argparse.Namespace], dict[str, Any]]] = {
    "overhead": lambda t, ns: overhead.run_overhead(t, ns.quick, ns.rounds, ns.seconds),
    "waterfall": lambda t, ns: waterfall_flood.run_waterfall(t, ns.quick),
    "drain": lambda t, ns: drain.run_drain(t, ns.quick, ns.seconds),
    "ui": lambda t, ns: ui.run_ui(ns.quick, ns.ui_s, 1 if ns.quick else 2),
    "startup": lambda t, ns: startup.run_startup(t, ns.quick),
    "memory": lambda t, ns: memory.run_memory(t, ns.memory_s),
    "exporter": lambda t, ns: exporter.run_exporter(ns.quick),
}
REPORTS: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "overhead": overhead.report,
    "waterfall": waterfall_flood.report,
    "drain": drain.report,
    "ui": ui.report,
    "startup": startup.report,
    "memory": memory.report,
    "exporter": exporter.report,
}


def check_goals(result: dict[str, Any]) -> dict[str, bool | None]:
    """Each goal -> met (True/False), or None when the figure is missing."""
    out: dict[str, bool | None] = {}
    for key, (op, bound) in GOALS.items():
        v = result.get(key)
        if v is None:
            out[key] = None
        elif op == ">=":
            out[key] = v >= bound
        elif op == "<=":
            out[key] = v <= bound
        else:
            out[key] = v < bound
    return out


def flat_result(res: dict[str, Any]) -> dict[str, Any]:
    """The one-line summary: the keys bench/run promises, then a few more."""
    ov = res.get("overhead", {})
    w = ov.get("workloads", {})
    u = res.get("ui", {})
    st = res.get("startup", {})
    mem = res.get("memory", {})
    dr = res.get("drain", {})
    out = {
        "overhead_pps_ratio": dig(w, "udp64", "txtop", "ratio", "median"),
        "overhead_pps_ratio_floor": dig(w, "udp64", "floor", "ratio", "median"),
        "drain_events_per_s": dr.get("capacity_records_per_s"),
        "lost_events": ov.get("lost_events_default"),
        "ui_cpu_pct_80x24": ui.ui_pick(u, "16x16", "80x24", 1.0),
        "ui_cpu_pct_200x60": ui.ui_pick(u, "16x16", "200x60", 1.0),
        "first_frame_s": dig(st, "warm", "first_frame_s", "median"),
        "probes_ready_s": dig(st, "warm", "probes_ready_s", "median"),
        "rss_mb": mem.get("rss_end_mb"),
        # more
        "overhead_pps_ratio_min": dig(w, "udp64", "txtop", "ratio", "min"),
        "overhead_pps_ratio_max": dig(w, "udp64", "txtop", "ratio", "max"),
        "overhead_vs_floor": dig(w, "udp64", "txtop_vs_floor", "median"),
        "overhead_pps_ratio_1400": dig(w, "udp1400", "txtop", "ratio", "median"),
        "overhead_tcp_ratio": dig(w, "tcp", "txtop", "ratio", "median"),
        "overhead_pps_ratio_sample1": dig(w, "udp64", "txtop_sample1", "ratio", "median"),
        "overhead_pps_ratio_always": dig(w, "udp64", "txtop_always", "ratio", "median"),
        "overhead_pps_ratio_peer": dig(w, "udp64", "peer", "ratio", "median"),
        "overhead_always_vs_peer": dig(w, "udp64", "txtop_always_vs_peer", "median"),
        "overhead_vs_peer": dig(w, "udp64", "txtop_vs_peer", "median"),
        "overhead_pps_ratio_netqtop": dig(w, "udp64", "netqtop", "ratio", "median"),
        "bpf_ns_per_packet": dig(ov, "bpf_stats", "txtop", "bpf_ns_per_packet"),
        "bpf_ns_per_packet_always": dig(ov, "bpf_stats", "txtop_always", "bpf_ns_per_packet"),
        "bpf_ns_per_packet_peer": dig(ov, "bpf_stats", "peer", "bpf_ns_per_packet"),
        "bpf_ns_per_packet_floor": dig(ov, "bpf_stats", "floor", "bpf_ns_per_packet"),
        **waterfall_flood.pick(res.get("waterfall", {})),
        "flood_pps_A": dig(w, "udp64", "A", "median"),
        "foreign_tracing_programs_max": max(
            (n for x in w.values() for r in x.get("foreign_tracing_programs", []) for n in r),
            default=None,
        ),
        "drain_limited_by": dr.get("limited_by"),
        "drain_overload_lost": dig(dr, "dashboard_overload", "lost_shown"),
        "drain_overload_key_latency_s": dig(
            dr, "dashboard_overload", "key_latency_under_flood_s", "median"
        ),
        "ui_cpu_pct_80x24_10hz": ui.ui_pick(u, "16x16", "80x24", 0.1),
        "ui_cpu_pct_200x60_10hz": ui.ui_pick(u, "16x16", "200x60", 0.1),
        "ui_cpu_pct_max": max((r["cpu_pct"] for r in u.get("runs", [])), default=None),
        "probes_ready_cold_s": dig(st, "cold", "probes_ready_s", "median"),
        "first_frame_cold_s": dig(st, "cold", "first_frame_s", "median"),
        "rss_slope_mb_per_min": mem.get("slope_mb_per_min"),
        "memory_s": mem.get("seconds"),
        "netqtop": ov.get("netqtop"),
        "quick": res.get("quick"),
        "kernel": res["machine"]["kernel"],
        "cpu_model": res["machine"]["cpu_model"],
        "cores": res["machine"]["cores"],
        "date": res["machine"]["date"],
        "elapsed_s": res.get("elapsed_s"),
        **exporter.pick(res.get("exporter", {})),
    }
    out["goals_met"] = check_goals(out)
    return out


def render_markdown(res: dict[str, Any]) -> str:
    """bench/RESULTS.md tables from a --out file (``bench/run --report FILE``)."""
    m = res["machine"]
    out = [
        f"Run {m['date']}, {'quick' if res.get('quick') else 'full'}, commit {m['commit']}: "
        f"kernel {m['kernel']}, {m['cpu_model']}, {m['cores']} cores, {m['mem_gb']} GB, "
        f"Python {m['python']}, bcc {m['bcc']}, Textual {m.get('textual')}; load average at "
        f"start {m['load_avg_at_start']}; lab qdisc {res.get('qdisc')}; "
        f"{res.get('elapsed_s')} s.",
        "",
    ]
    for section in SECTIONS:
        out += REPORTS[section](res.get(section, {}))
    for section in SECTIONS:
        if isinstance(res.get(section), dict) and "error" in res[section]:
            out.append(f"\n{section} failed: {res[section]['error']}")
    return "\n".join(out) + "\n"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="bench/run",
        description="Reproduce every txtop benchmark (root; builds its own veth lab). "
        "The last line of output is one JSON object.",
        epilog=(
            "Goals: overhead_pps_ratio >= 0.97 (--trace-duty 100: >= 0.90); BPF <= 120 ns "
            "per packet with every hook attached; >= 100 sampled packets/s reach the output "
            "under a 64-byte flood, 0 lost; drain >= 50k records/s; UI <= 5% of one core "
            "at 1 s, <= 15% at 10 Hz 200x60; first frame < 1 s; probes ready < 2 s; a 64x128 metrics scrape "
            "< 50 ms and < 2% of a core at a 15 s interval. See bench/README.md."
        ),
    )
    ap.add_argument("--quick", action="store_true", help="short version (about 4 minutes)")
    ap.add_argument(
        "--only", default=",".join(SECTIONS), help=f"comma list of {', '.join(SECTIONS)}"
    )
    ap.add_argument("--rounds", type=int, default=None, help="overhead A/B rounds (8; quick 3)")
    ap.add_argument("--seconds", type=float, default=None, help="seconds per flood (3; quick 2)")
    ap.add_argument("--memory-s", type=float, default=None, help="memory run (600; quick 25)")
    ap.add_argument("--ui-s", type=float, default=None, help="UI CPU window (10; quick 3)")
    ap.add_argument(
        "--qdisc",
        choices=("mq", "noqueue"),
        default="mq",
        help="lab qdisc: mq with pfifo_fast children (default: every stage fires) or noqueue",
    )
    ap.add_argument("--out", help="also write the full results (every round) to this JSON file")
    ap.add_argument(
        "--report", metavar="FILE", help="print RESULTS.md tables from an --out FILE, run nothing"
    )
    ns = ap.parse_args(argv)
    ns.only = [s.strip() for s in ns.only.split(",") if s.strip()]
    bad = [s for s in ns.only if s not in SECTIONS]
    if bad:
        ap.error(f"unknown section(s) {bad}; choose from {SECTIONS}")
    q = ns.quick
    ns.rounds = ns.rounds or (3 if q else 8)
    ns.seconds = ns.seconds or (2.0 if q else 3.0)
    ns.memory_s = ns.memory_s or (25.0 if q else 600.0)
    ns.ui_s = ns.ui_s or (3.0 if q else 10.0)
    if not 1 <= ns.rounds <= 50 or not 1 <= ns.seconds <= 30 or not 5 <= ns.memory_s <= 3600:
        ap.error("--rounds 1..50, --seconds 1..30, --memory-s 5..3600")
    return ns


def run_all(ns: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    res: dict[str, Any] = {"machine": machine_info(), "quick": ns.quick, "qdisc": ns.qdisc}
    log(f"txtop bench ({'quick' if ns.quick else 'full'}) on {res['machine']}")
    with lab_traffic(ns.qdisc) as traffic:
        log(f"lab: {traffic.dev} -> {traffic.peer_ip} ({ns.qdisc})")
        for section in SECTIONS:
            if section not in ns.only:
                continue
            log(f"[{section}]")
            t = time.monotonic()
            try:
                res[section] = RUNNERS[section](traffic, ns)
            except Exception as exc:  # one failed section must not lose the others' figures
                res[section] = {"error": f"{type(exc).__name__}: {exc}"}
                log(f"  {section} failed: {exc}")
            res.setdefault("section_s", {})[section] = round(time.monotonic() - t, 1)
    res["elapsed_s"] = round(time.monotonic() - started, 1)
    return res


def _terminate(sig: int, _frame: object) -> None:
    raise SystemExit(128 + sig)  # unwinds: labs, tmux sessions and floods are removed


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["_tcp"] and len(args) == 4:
        tcp_sender(args[1], int(args[2]), float(args[3]))
        return 0
    if args[:1] == ["_ui-load"] and len(args) >= 3 and args[2] == "--":
        ui.ui_load_main(int(args[1]), args[3:])
        return 0
    if args[:2] == ["_cold-exec", "--"] and len(args) > 2:
        startup.cold_exec_main(args[2:])
        return 0
    ns = parse_args(args)
    if ns.report:
        print(render_markdown(json.loads(Path(ns.report).read_text())), end="")
        return 0
    if os.geteuid() != 0:
        print("bench/run: needs root (BPF, network namespaces)", file=sys.stderr)
        return 2
    for tool in ("gcc", "tmux", "bpftrace", "bpftool", "unshare"):
        if shutil.which(tool) is None:
            print(f"bench/run: {tool} is needed", file=sys.stderr)
            return 2
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    res = run_all(ns)
    flat = flat_result(res)
    res["summary"] = flat
    if ns.out:
        fd = os.open(ns.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(res, f, indent=1)
    print(json.dumps(flat, separators=(",", ":")), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
