"""The waterfall under a flood (``bench/run --only waterfall``): how many sampled packets reach
txtop's output per second, at defaults, while a 64-byte UDP flood runs (issue 13, goal c).

Several udpflood senders, each pinned to a CPU (round-robin over the CPUs this process may
use) and each with its own socket, so their flows hash to different TX queues of the lab's
veth. First a short count-only bpftrace run (``net_dev_start_xmit`` on the lab device, by
queue and CPU) records which (queue, CPU) pairs carry the flood; then the real txtop runs at
defaults (``txtop --headless -i DEV``: one JSON line a second) for the measured window. Lines
before the probes run, and the first line after they do (its interval began before), are not
counted. Per counted line: ``packets[]`` (each sampled packet once, de-duplicated across lines)
over ``interval_s``; the losses are ``probes.lost_events`` (cumulative since txtop started:
full ring buffer or track table, lost tracks) at the last line.
"""

from __future__ import annotations

import os
import re
import threading
import time
from typing import Any

from observers import DEV_RE, Bpftrace, TxtopHeadless
from procs import log, stop_process
from stats import dig, summary
from traffic import Traffic

SENDERS = 4  # the lab has 4 TX queues
CALIBRATE_S = 1.0
MIN_PAIR_SHARE = 0.01  # a (queue, CPU) pair "carries traffic" from this share of the packets
START_MARGIN_S = 30.0  # the senders outlive the window by this much (txtop's start, the count)


class QueueCpuCount(Bpftrace):
    """Count-only bpftrace: packets handed to the lab device's driver, by (queue, CPU)."""

    name = "queue_cpu_count"

    def __init__(self, dev: str) -> None:
        super().__init__()
        if not DEV_RE.match(dev):
            raise ValueError(f"bad device name {dev!r}")
        self.program = (
            f'tracepoint:net:net_dev_start_xmit /str(args->name) == "{dev}"/ '
            "{ @[args->queue_mapping, cpu] = count(); }"
        )

    def parse(self, text: str) -> None:
        pairs = re.findall(r"^@\[(\d+), (\d+)\]: (\d+)", text, re.M)
        self.info["pairs"] = {f"{q}/{c}": int(n) for q, c, n in pairs}


class Lines:
    """What the txtop side printed, reduced as it arrives (a flood's lines are large)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rows: list[dict[str, Any]] = []  # one per JSON line

    def add(self, t: float, snap: dict[str, Any]) -> None:
        probes = snap.get("probes") or {}
        packets = snap.get("packets") or []
        keys = []
        for p in packets:
            if not isinstance(p, dict):
                continue
            stages = p.get("stages") or {}
            cpus = p.get("cpus") or {}
            cpu = cpus.get("start_xmit", cpus.get("dev_queue"))
            first = min(stages.values()) if stages else None
            keys.append((p.get("pid"), p.get("queue"), first, cpu, p.get("track")))
        row = {
            "t": t,
            "state": probes.get("state"),
            "interval_s": snap.get("interval_s"),
            "lost_events": probes.get("lost_events"),
            "traced_pct": probes.get("traced_pct"),
            "sampling": probes.get("sampling"),
            "breakdown": probes.get("breakdown"),
            "packets": keys,
        }
        with self.lock:
            self.rows.append(row)

    def counted(self, n: int) -> list[dict[str, Any]]:
        """The first ``n`` lines after the first line with the probes running."""
        with self.lock:
            rows = list(self.rows)
        first = next((i for i, r in enumerate(rows) if r["state"] == "running"), None)
        if first is None:
            return []
        return rows[first + 1 : first + 1 + n]


def sender_cpus(n: int) -> list[int]:
    cpus = sorted(os.sched_getaffinity(0))
    return [cpus[i % len(cpus)] for i in range(n)]


def measure(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Rows per second, losses and (queue, CPU) coverage of the counted lines (pure)."""
    seen: set[tuple[Any, ...]] = set()
    per_s: list[float] = []
    total_s = 0.0
    tracks: dict[str, int] = {}
    pairs: dict[str, int] = {}
    for r in rows:
        fresh = 0
        for key in r["packets"]:
            if key in seen:
                continue
            seen.add(key)
            fresh += 1
            tracks[str(key[4])] = tracks.get(str(key[4]), 0) + 1
            pair = f"{key[1]}/{key[3]}"
            pairs[pair] = pairs.get(pair, 0) + 1
        secs = float(r["interval_s"] or 0.0)
        if secs > 0:
            per_s.append(fresh / secs)
            total_s += secs
    lost = [r["lost_events"] for r in rows if r["lost_events"] is not None]
    last = rows[-1] if rows else {}
    return {
        "lines": len(rows),
        "window_s": round(total_s, 2),
        "rows": len(seen),
        "rows_per_s": round(len(seen) / total_s, 1) if total_s else None,
        "rows_per_s_lines": summary(per_s, 1),
        "rows_per_s_min": round(min(per_s), 1) if per_s else None,
        "rows_per_s_by_line": [round(v, 1) for v in per_s],
        "lines_without_rows": sum(1 for v in per_s if v == 0),
        "tracks": tracks,
        "pairs_seen": pairs,
        "lost_events_end": lost[-1] if lost else None,
        "lost_events_in_window": (lost[-1] - lost[0]) if len(lost) > 1 else None,
        "traced_pct": summary([float(r["traced_pct"] or 0) for r in rows], 1),
        "sampling_end": last.get("sampling"),
        "breakdown_end": last.get("breakdown"),
    }


def run_waterfall(traffic: Traffic, quick: bool, seconds: float | None = None) -> dict[str, Any]:
    secs = int(seconds or (10 if quick else 30))
    cpus = sender_cpus(SENDERS)
    log(f"  {len(cpus)} senders of 64-byte UDP on CPUs {cpus}, txtop at defaults for {secs}s")
    out: dict[str, Any] = {"seconds": secs, "sender_cpus": cpus}
    lines = Lines()
    senders = traffic.udp_senders(64, secs + START_MARGIN_S, cpus)
    try:
        time.sleep(0.5)
        try:
            with QueueCpuCount(traffic.dev) as count:
                time.sleep(CALIBRATE_S)
            out["pairs_with_traffic"] = count.info.get("pairs", {})
        except RuntimeError as exc:  # the coverage goes unknown; the rows still count
            out["pairs_with_traffic"] = {}
            out["pairs_error"] = str(exc)
            log(f"  the (queue, CPU) count did not run: {exc}")
        with TxtopHeadless(traffic.dev, on_line=lines.add) as txtop:
            out["probes_ready_s"] = round(txtop.ready_s or 0.0, 3)
            deadline = time.monotonic() + secs + 15
            tx0, t0 = traffic.tx_packets(), time.monotonic()
            while len(lines.counted(secs)) < secs and time.monotonic() < deadline:
                time.sleep(0.1)
            tx1, t1 = traffic.tx_packets(), time.monotonic()
        out["txtop_cpu_s"] = txtop.info.get("cpu_s")
        out["lost_events_at_exit"] = txtop.info.get("lost_events")
        out["senders_alive_at_end"] = sum(1 for s in senders if s.poll() is None)
    finally:
        for s in senders:
            stop_process(s)
    out["flood_pps"] = round((tx1 - tx0) / (t1 - t0)) if t1 > t0 else None
    out.update(measure(lines.counted(secs)))
    # pairs carrying at least 1% of the counted packets (a sender's first packet may leave
    # before it is pinned)
    counts = out["pairs_with_traffic"]
    truth = {k for k, n in counts.items() if n >= MIN_PAIR_SHARE * sum(counts.values())}
    out["pairs_seen_n"] = len(set(out["pairs_seen"]))
    out["pairs_with_traffic_n"] = len(truth)
    out["pairs_with_traffic_seen_n"] = len(truth & set(out["pairs_seen"]))
    log(
        f"  waterfall under flood ({out['flood_pps']:,} pps): {out['rows_per_s']} rows/s "
        f"(min {out['rows_per_s_min']}/s over {out['lines']} lines), lost "
        f"{out['lost_events_end']}, tracks {out['tracks']}; (queue/cpu) pairs seen "
        f"{sorted(out['pairs_seen'])} of {sorted(truth)} with traffic"
    )
    return out


def pick(w: dict[str, Any]) -> dict[str, Any]:
    """The JSON-line keys of this section."""
    return {
        "waterfall_rows_per_s_flood": w.get("rows_per_s"),
        "waterfall_lost_flood": w.get("lost_events_end"),
        "waterfall_rows_per_s_flood_min": w.get("rows_per_s_min"),
        "waterfall_pairs_seen": w.get("pairs_with_traffic_seen_n"),
        "waterfall_pairs_with_traffic": w.get("pairs_with_traffic_n"),
    }


def report(w: dict[str, Any]) -> list[str]:
    """The waterfall-under-flood table of bench/RESULTS.md."""
    if "rows_per_s" not in w:
        return []
    return [
        "| flood (64 B) | senders (CPUs) | rows/s (mean) | rows/s per line | min | lost | "
        "tracks | (queue, CPU) pairs seen / with traffic |",
        "|---|---|---|---|---|---|---|---|",
        f"| {w.get('flood_pps') or 0:,} pps | {len(w['sender_cpus'])} ({w['sender_cpus']}) "
        f"| {w['rows_per_s']} | {dig(w, 'rows_per_s_lines', 'median')} "
        f"| {w['rows_per_s_min']} | {w['lost_events_end']} | {w['tracks']} "
        f"| {w['pairs_with_traffic_seen_n']} / {w['pairs_with_traffic_n']} |",
        "",
    ]
