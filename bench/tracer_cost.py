"""txtop's Tracer in this process, against no tracer, on a veth lab (root only). A diagnostic
beside bench/run, which measures the real txtop process instead.

  tracer_cost.py overhead [--rounds N] [--seconds S]   pps with the tracer / pps without
  tracer_cost.py drain [--seconds S]                   sampled records/s the worker drains
  tracer_cost.py floor [--rounds N] [--seconds S]      also no-op programs on the same hooks

overhead: a 64-byte-frame UDP flood (bench/traffic.py: udpflood into the lab of this process)
in interleaved A/B rounds (the order rotating each round so load from other processes hits
both sides); each "B" round starts a Tracer at default sampling, drains it from a thread like
the collector does (poll between 1 s reads), and closes it afterwards. Prints per-round pps,
the per-round ratio (median, min..max), the tracer's lost events. drain: every packet eligible,
the token bucket set to a series of rates; delivered records/s and losses per rate. floor: a
third side that attaches programs doing nothing to the same tracepoints (same classic/raw
kinds), which shows how much of the cost is the hooks themselves.

Traffic goes only to the lab namespace this script creates, and every flood is bounded.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from stats import ratio_summary, rotate
from traffic import Traffic, lab_traffic


class Drainer:
    """Does what the collector's worker does: poll the ring buffer, read once a second."""

    def __init__(self, tracer: Any) -> None:
        self.tracer = tracer
        self.stop = threading.Event()
        self.packets = 0
        self.lost = 0
        self.breakdown: dict[str, int] = {}
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        next_read = time.monotonic() + 1.0
        while not self.stop.is_set():
            self.tracer.poll(0.05)
            if time.monotonic() >= next_read:
                next_read += 1.0
                self.collect()

    def collect(self) -> None:
        r = self.tracer.read()
        self.packets += len(r.packets)
        self.lost = r.status.lost_events
        self.breakdown = dict(r.status.breakdown)

    def __enter__(self) -> Drainer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)
        self.collect()


def started_tracer(**kwargs: Any) -> Any:
    from txtop.probes.bpf.tracer import Tracer

    tracer = Tracer(**kwargs)
    tracer.start()
    if not tracer.running:
        tracer.close()
        raise SystemExit(f"tracer did not start: {tracer.status.reason}")
    return tracer


def traced_flood(traffic: Traffic, seconds: int) -> tuple[float, Drainer]:
    """One 64-byte flood with a default Tracer attached and drained."""
    tracer = started_tracer()
    try:
        with Drainer(tracer) as d:
            pps = traffic.udp(64, seconds)
    finally:
        tracer.close()
    return pps, d


def print_ratios(pps: dict[str, list[float]], base: str = "none") -> None:
    for k, v in pps.items():
        if k == base:
            continue
        r = ratio_summary(pps[base], v)
        ns = [1e9 / b - 1e9 / a for a, b in zip(pps[base], v, strict=True)]
        print(
            f"{k}: median per-round ratio {r['median']:.3f} [{r['min']:.3f}..{r['max']:.3f}], "
            f"{statistics.median(ns):.0f} ns per packet"
        )


def tracer_overhead(traffic: Traffic, rounds: int, seconds: int) -> None:
    pps: dict[str, list[float]] = {"none": [], "txtop": []}
    print(f"{'round':>5} {'without':>12} {'with':>12} {'ratio':>7} {'lost':>6} {'sampled':>8}")
    for r in range(rounds):
        lost = sampled = 0
        for side in rotate(list(pps), r):
            if side == "none":
                pps[side].append(traffic.udp(64, seconds))
                continue
            b, d = traced_flood(traffic, seconds)
            pps[side].append(b)
            lost, sampled = d.lost, d.packets
            if d.breakdown:
                print(f"      lost events in round {r}: {d.breakdown}")
        a, b = pps["none"][-1], pps["txtop"][-1]
        print(f"{r:>5} {a:>12,.0f} {b:>12,.0f} {b / a:>7.3f} {lost:>6} {sampled:>8}", flush=True)
    print_ratios(pps)


NOP_PROGRAMS = b"""
enum skb_drop_reason { TXTOP_NOP };
TRACEPOINT_PROBE(syscalls, sys_enter_sendto) { return 0; }
TRACEPOINT_PROBE(syscalls, sys_exit_sendto) { return 0; }
TRACEPOINT_PROBE(syscalls, sys_enter_sendmsg) { return 0; }
TRACEPOINT_PROBE(syscalls, sys_exit_sendmsg) { return 0; }
TRACEPOINT_PROBE(syscalls, sys_enter_sendmmsg) { return 0; }
TRACEPOINT_PROBE(syscalls, sys_exit_sendmmsg) { return 0; }
TRACEPOINT_PROBE(qdisc, qdisc_enqueue) { return 0; }
TRACEPOINT_PROBE(qdisc, qdisc_dequeue) { return 0; }
TRACEPOINT_PROBE(net, net_dev_start_xmit) { return 0; }
TRACEPOINT_PROBE(skb, kfree_skb) { return 0; }
RAW_TRACEPOINT_PROBE(net_dev_queue) { return 0; }
RAW_TRACEPOINT_PROBE(net_dev_xmit) { return 0; }
RAW_TRACEPOINT_PROBE(consume_skb) { return 0; }
RAW_TRACEPOINT_PROBE(softirq_raise) { return 0; }
RAW_TRACEPOINT_PROBE(softirq_entry) { return 0; }
RAW_TRACEPOINT_PROBE(softirq_exit) { return 0; }
"""


def tracer_floor(traffic: Traffic, rounds: int, seconds: int) -> None:
    from txtop.probes.bpf.headers import prepare_headers
    from txtop.probes.bpf.tracer import CFLAGS

    prepare_headers()
    from bcc import BPF

    pps: dict[str, list[float]] = {"none": [], "nop": [], "txtop": []}
    for r in range(rounds):
        for side in rotate(list(pps), r):
            if side == "none":
                pps[side].append(traffic.udp(64, seconds))
            elif side == "nop":
                nop = BPF(text=NOP_PROGRAMS, cflags=[*CFLAGS, "-w"])
                try:
                    pps[side].append(traffic.udp(64, seconds))
                finally:
                    nop.cleanup()
            else:
                pps[side].append(traced_flood(traffic, seconds)[0])
        print(f"round {r}: " + ", ".join(f"{k} {v[-1]:,.0f}" for k, v in pps.items()), flush=True)
    print_ratios(pps)


def tracer_drain(traffic: Traffic, seconds: int) -> None:
    print(
        f"{'cap/s':>8} {'records/s':>10} {'ringbuf lost':>12} {'other lost':>10} "
        f"{'rate-limited':>12} {'flood pps':>10}"
    )
    for cap in (5_000, 10_000, 20_000, 40_000, 80_000):
        tracer = started_tracer(sample_every=1, max_samples_per_s=cap, ringbuf_pages=1024)
        try:
            with Drainer(tracer) as d:
                t0 = time.monotonic()
                pps = traffic.udp(64, seconds)
                elapsed = time.monotonic() - t0
            st = tracer.read().status
        finally:
            tracer.close()
        rb = sum(v for k, v in st.breakdown.items() if k.startswith("ringbuf_full:"))
        print(
            f"{cap:>8} {d.packets / elapsed:>10,.0f} {rb:>12} {st.lost_events - rb:>10} "
            f"{st.sampling.get('rate_limited', 0):>12} {pps:>10,.0f}",
            flush=True,
        )
        if st.lost_events - rb:
            print(f"         other: {dict(st.breakdown)}")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("mode", choices=("overhead", "drain", "floor"))
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--seconds", type=int, default=2)
    ap.add_argument("--qdisc", choices=("noqueue", "mq"), default="noqueue", help="lab qdisc")
    ns = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("tracer_cost.py: needs root (BPF and a network namespace)", file=sys.stderr)
        return 2
    if not 1 <= ns.rounds <= 50 or not 1 <= ns.seconds <= 30:
        print("tracer_cost.py: --rounds 1..50, --seconds 1..30", file=sys.stderr)
        return 2
    with lab_traffic(ns.qdisc) as traffic:
        if ns.mode == "overhead":
            tracer_overhead(traffic, ns.rounds, ns.seconds)
        elif ns.mode == "floor":
            tracer_floor(traffic, ns.rounds, ns.seconds)
        else:
            tracer_drain(traffic, ns.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
