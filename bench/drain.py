"""The drain benchmark (``bench/run --only drain``).

The collector's real worker (Collector + LiveSource, in this process) with every packet
eligible and the token bucket at a series of caps, under the 64-byte flood: ring-buffer
records/s delivered, and losses; the highest loss-free rate is the drain capacity. The probes
stay attached (trace duty 1): under auto duty the flood gets short trace windows, so the
records/s averaged over the flood would be a fraction of what the drain handles inside a
window, and the cap would not set the rate. Then the dashboard itself, in tmux, beyond that
rate (auto duty, as users run it): lost events shown, key latency.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

from procs import TXTOP, TmuxRun, log, proc_cpu_s, stop_process
from stats import summary
from traffic import Traffic


def drain_one(traffic: Traffic, cap: int, seconds: float, pages: int | None) -> dict[str, Any]:
    """The dashboard's worker (Collector + LiveSource at 1 s) with every packet eligible and
    the token bucket at ``cap``/s, under a UDP flood. The worker drains the ring buffer
    between ticks and decodes at each tick; losses happen when it is busy for longer than the
    ring takes to fill. Counts ring-buffer records delivered (tap), and reads the loss
    counters once the worker has caught up after the flood."""
    from txtop.probes.bpf.tracer import Tracer
    from txtop.probes.collector import Collector, LiveSource

    kwargs: dict[str, Any] = {"sample_every": 1, "max_samples_per_s": cap, "trace_duty": 1.0}
    if pages:
        kwargs["ringbuf_pages"] = pages
    tracer = Tracer(**kwargs)
    records = [0]

    def tap(_buf: bytes) -> None:
        records[0] += 1

    tracer.record_tap = tap
    collector = Collector([traffic.dev], tracer=tracer)
    source = LiveSource(collector, interval_s=1.0)
    seen: list[tuple[float, Any, int]] = []  # (arrival, ProbeStatus, packets)
    ready = threading.Event()

    def sink(snap: Any) -> None:
        seen.append((time.monotonic(), snap.probes, len(snap.packets)))
        if snap.probes.state == "running":
            ready.set()

    source.start(sink)
    caught_up_s: float | None = None
    try:
        if not ready.wait(60):
            raise RuntimeError(f"tracer did not start: {tracer.status.reason}")
        time.sleep(0.5)
        first = len(seen)
        rec0 = records[0]
        pps = traffic.udp(64, seconds)
        flood_end = time.monotonic()
        # Caught up: a tick that started after the flood ended has been delivered.
        deadline = flood_end + 30
        while time.monotonic() < deadline:
            if sum(1 for t, _, _ in seen if t > flood_end) >= 2:
                caught_up_s = seen[-1][0] - flood_end - 1.0
                break
            time.sleep(0.05)
        rec1 = records[0]
        delivered = sum(n for _, _, n in seen[first:])
    finally:
        source.stop()
    status = seen[-1][1]
    rb = sum(v for k, v in status.breakdown.items() if k.startswith("ringbuf_full:"))
    return {
        "cap_per_s": cap,
        "ringbuf_pages": pages or default_pages(),
        "records_per_s": round((rec1 - rec0) / seconds),
        "traces_per_s": round(delivered / seconds),
        "ringbuf_lost": rb,
        "other_lost": status.lost_events - rb,
        "breakdown": dict(status.breakdown),
        "sampled": status.sampling.get("sampled", 0),
        "rate_limited": status.sampling.get("rate_limited", 0),
        "flood_pps": round(pps),
        "catch_up_s": None if caught_up_s is None else round(max(0.0, caught_up_s), 2),
    }


def default_pages() -> int:
    from txtop.probes.bpf.settings import DEFAULT_RINGBUF_PAGES

    return DEFAULT_RINGBUF_PAGES


def run_drain(traffic: Traffic, quick: bool, seconds: float) -> dict[str, Any]:
    default = default_pages()
    # Each traced packet of the flood is two records on veth (the track, and the sendto()'s
    # late return), so a cap of C traces/s gives at least 2C records/s (here 1.0-1.7 C traces/s
    # were delivered at caps of 20k-50k). 20k-25k is about 50k records/s.
    if quick:
        plan = [(c, default) for c in (2_000, 10_000, 20_000, 25_000, 50_000)]
    else:
        caps = (2_000, 5_000, 10_000, 20_000, 25_000, 50_000, 1_000_000)
        plan = [(c, default) for c in caps]
        plan += [(c, p) for p in (64, 256, 1024) if p != default for c in (25_000, 50_000)]
    rows = []
    for cap, pages in plan:
        row = drain_one(traffic, cap, seconds, pages)
        rows.append(row)
        log(
            f"  cap {cap:>9,}/s, ring {pages:>4} pages: {row['records_per_s']:>8,} records/s "
            f"({row['traces_per_s']:,} traces/s)  ringbuf lost {row['ringbuf_lost']:>8,}  other "
            f"{row['other_lost']:>5,}  flood {row['flood_pps']:,} pps  caught up "
            f"{row['catch_up_s']}s after"
        )

    def best(pages: int) -> int:
        clean = [r["records_per_s"] for r in rows if r["ringbuf_pages"] == pages
                 and r["ringbuf_lost"] == 0]  # fmt: skip
        return max(clean, default=0)

    default_rows = [r for r in rows if r["ringbuf_pages"] == default]
    out: dict[str, Any] = {
        "sweep": rows,
        "capacity_records_per_s": best(default),
        "default_ringbuf_pages": default,
        "capacity_records_per_s_1024_pages": best(1024) if not quick else None,
        # When even the highest cap lost nothing, the sender (not the worker) was the limit.
        "limited_by": "sender" if default_rows[-1]["ringbuf_lost"] == 0 else "worker",
    }
    # At it: the dashboard itself at the 25k traces/s cap (~50k records/s), probes always
    # attached: keys must stay answered while it drains that.
    try:
        out["dashboard_at_capacity"] = dashboard_overload(
            traffic, 4 if quick else 10, cap=25_000, duty="100"
        )
        log(f"  dashboard at 25k traces/s under flood: {out['dashboard_at_capacity']}")
    except (RuntimeError, OSError) as exc:
        out["dashboard_at_capacity"] = {"error": str(exc)}
    # Beyond it: the dashboard itself, uncapped, under the flood: losses shown, keys answered.
    try:
        out["dashboard_overload"] = dashboard_overload(traffic, 4 if quick else 15)
        log(f"  dashboard uncapped under flood: {out['dashboard_overload']}")
    except (RuntimeError, OSError) as exc:
        out["dashboard_overload"] = {"error": str(exc)}
    return out


def dashboard_overload(
    traffic: Traffic, seconds: float, cap: int = 1_000_000, duty: str | None = None
) -> dict[str, Any]:
    argv = [str(TXTOP), "-i", traffic.dev, "--sample", "1", "--max-samples-per-s", str(cap)]
    if duty is not None:
        argv += ["--trace-duty", duty]
    with TmuxRun(argv, (200, 60), "drain") as run:
        if run.wait_text("probes: running", 30) is None:
            raise RuntimeError("probes did not start: " + run.pane()[-300:])
        time.sleep(1.0)
        idle_key = run.key_latency("?", "this help", "Escape")
        flood = traffic.udp_background(64, seconds + 5)
        try:
            time.sleep(2.0)
            cpu0, t0 = proc_cpu_s(run.pid), time.monotonic()
            lat = []
            while time.monotonic() - t0 < seconds:
                lat.append(run.key_latency("?", "this help", "Escape"))
                time.sleep(0.5)
            cpu = 100 * (proc_cpu_s(run.pid) - cpu0) / (time.monotonic() - t0)
            lost_during = shown_lost(run.pane())
        finally:
            stop_process(flood)
        # The worker decodes its backlog after the flood; wait for the count to settle.
        end = time.monotonic()
        lost, settled = lost_during, None
        while time.monotonic() - end < 30:
            time.sleep(1.0)
            now_lost = shown_lost(run.pane())
            if now_lost is not None and now_lost == lost and (lost or 0) > 0:
                settled = round(time.monotonic() - end - 1.0, 1)
                break
            lost = now_lost
    return {
        "key_latency_idle_s": round(idle_key, 3),
        "key_latency_under_flood_s": summary(lat, 3),
        "lost_shown_during": lost_during,
        "lost_shown": lost,
        "lost_settled_after_s": settled,
        "cpu_pct": round(cpu, 1),
    }


def shown_lost(pane: str) -> int | None:
    """The lost-events count on the dashboard's probe line."""
    m = re.search(r"probes: running.*?lost (\d+)", pane)
    return int(m.group(1)) if m else None


def report(dr: dict[str, Any]) -> list[str]:
    """The drain sweep table of bench/RESULTS.md, and the overload line."""
    if "sweep" not in dr:
        return []
    out = ["| cap/s | ring pages | records/s delivered | traces/s | ring-buffer lost | "
           "other lost | flood pps |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in dr["sweep"]:
        out.append(
            f"| {r['cap_per_s']:,} | {r['ringbuf_pages']} | {r['records_per_s']:,} | "
            f"{r['traces_per_s']:,} | {r['ringbuf_lost']:,} | {r['other_lost']:,} | "
            f"{r['flood_pps']:,} |"
        )
    c = dr.get("dashboard_at_capacity", {})
    o = dr.get("dashboard_overload", {})
    out += ["", f"Dashboard at a 25k traces/s cap (~50k records/s), trace duty 100%: {c}", ""]
    out += [f"Dashboard uncapped under the flood: {o}", ""]
    return out
