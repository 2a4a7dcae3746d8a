"""txtop tracer overhead and ring-buffer drain capacity, on a veth lab (root only).

  overhead.py overhead [--rounds N] [--seconds S]   pps with the tracer / pps without
  overhead.py drain [--seconds S]                   sampled records/s the worker drains
  overhead.py floor [--rounds N] [--seconds S]      also no-op programs on the same hooks

overhead: a 64-byte-frame UDP flood (bench/udpflood.c, built here with gcc into a private
temporary directory) from the root namespace to the lab peer, in interleaved A/B rounds (the
order alternates each round so load from other processes hits both sides); each "B" round
starts a Tracer at default sampling, drains it from a thread like the collector does (poll
between 1 s reads), and closes it afterwards. Prints per-round pps, medians, the ratio, the
tracer's lost events and start time. drain: every packet eligible, the token bucket set to a
series of rates; reports delivered records/s and losses per rate. floor: a third side that
attaches programs doing nothing to the same tracepoints (same classic/raw kinds), which shows
how much of the cost is the hooks themselves.

Traffic goes only to the lab namespace this script creates, and every flood is bounded.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from senders import Sink, free_lab_subnet  # noqa: E402

from txtop.lab.netns import Lab  # noqa: E402
from txtop.probes.bpf.tracer import Tracer  # noqa: E402

PORT = 9
PAYLOAD_BYTES = 22  # 14 Ethernet + 20 IPv4 + 8 UDP + 22 = a 64-byte frame (without FCS)


def build_flooder(workdir: Path) -> Path:
    if shutil.which("gcc") is None:
        raise SystemExit("overhead.py: gcc is needed to build bench/udpflood.c")
    out = workdir / "udpflood"
    subprocess.run(  # noqa: S603 - fixed argv
        ["gcc", "-O2", "-Wall", "-o", str(out), str(HERE / "udpflood.c")], check=True
    )
    return out


def flood(binary: Path, dst: str, seconds: int) -> float:
    """Run one bounded flood; return packets/s the sender achieved."""
    res = subprocess.run(  # noqa: S603 - fixed argv, validated destination inside the C code
        [str(binary), dst, str(PORT), str(PAYLOAD_BYTES), "1000000000", str(seconds)],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
    )
    sent, elapsed = res.stdout.split()
    return int(sent) / float(elapsed)


class Drainer:
    """Does what the collector's worker does: poll the ring buffer, read once a second."""

    def __init__(self, tracer: Tracer) -> None:
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


def run_overhead(binary: Path, lab: Lab, rounds: int, seconds: int) -> None:
    base: list[float] = []
    traced: list[float] = []
    print(f"{'round':>5} {'without':>12} {'with':>12} {'ratio':>7} {'lost':>6} {'sampled':>8}")
    for r in range(rounds):
        row = {}
        order = ("A", "B") if r % 2 == 0 else ("B", "A")
        lost = sampled = 0
        for side in order:
            if side == "A":
                row["A"] = flood(binary, lab.peer_ip, seconds)
                continue
            tracer = Tracer()
            tracer.start()
            if not tracer.running:
                raise SystemExit(f"tracer did not start: {tracer.status.reason}")
            try:
                with Drainer(tracer) as d:
                    row["B"] = flood(binary, lab.peer_ip, seconds)
                lost = d.lost
                sampled = d.packets
                if d.breakdown:
                    print(f"      lost events in round {r}: {d.breakdown}")
            finally:
                tracer.close()
        base.append(row["A"])
        traced.append(row["B"])
        print(
            f"{r:>5} {row['A']:>12,.0f} {row['B']:>12,.0f} {row['B'] / row['A']:>7.3f} "
            f"{lost:>6} {sampled:>8}",
            flush=True,
        )
    a, b = statistics.median(base), statistics.median(traced)
    print(f"median without {a:,.0f} pps, with {b:,.0f} pps: ratio {b / a:.3f}")
    ratios = sorted(y / x for x, y in zip(base, traced, strict=True))
    print(
        f"per-round ratios: median {statistics.median(ratios):.3f}, {ratios[0]:.3f}..{ratios[-1]:.3f}"
    )


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


def run_floor(binary: Path, lab: Lab, rounds: int, seconds: int) -> None:
    from txtop.probes.bpf.headers import prepare_headers
    from txtop.probes.bpf.tracer import CFLAGS

    prepare_headers()
    from bcc import BPF

    sides = ("none", "nop", "txtop")
    pps: dict[str, list[float]] = {k: [] for k in sides}
    for r in range(rounds):
        for side in sides if r % 2 == 0 else sides[::-1]:
            if side == "none":
                pps[side].append(flood(binary, lab.peer_ip, seconds))
            elif side == "nop":
                nop = BPF(text=NOP_PROGRAMS, cflags=[*CFLAGS, "-w"])
                try:
                    pps[side].append(flood(binary, lab.peer_ip, seconds))
                finally:
                    nop.cleanup()
            else:
                tracer = Tracer()
                tracer.start()
                try:
                    with Drainer(tracer):
                        pps[side].append(flood(binary, lab.peer_ip, seconds))
                finally:
                    tracer.close()
        print(f"round {r}: " + ", ".join(f"{k} {v[-1]:,.0f}" for k, v in pps.items()), flush=True)
    for k in sides[1:]:
        ratios = [b / a for a, b in zip(pps["none"], pps[k], strict=True)]
        ns = [1e9 / b - 1e9 / a for a, b in zip(pps["none"], pps[k], strict=True)]
        print(
            f"{k}: median per-round ratio {statistics.median(ratios):.3f}, "
            f"{statistics.median(ns):.0f} ns per packet"
        )


def run_drain(binary: Path, lab: Lab, seconds: int) -> None:
    print(
        f"{'cap/s':>8} {'records/s':>10} {'ringbuf lost':>12} {'other lost':>10} "
        f"{'rate-limited':>12} {'flood pps':>10}"
    )
    for cap in (5_000, 10_000, 20_000, 40_000, 80_000):
        tracer = Tracer(sample_every=1, max_samples_per_s=cap, ringbuf_pages=1024)
        tracer.start()
        if not tracer.running:
            raise SystemExit(f"tracer did not start: {tracer.status.reason}")
        try:
            with Drainer(tracer) as d:
                t0 = time.monotonic()
                pps = flood(binary, lab.peer_ip, seconds)
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("mode", choices=("overhead", "drain", "floor"))
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--seconds", type=int, default=2)
    ns = ap.parse_args()
    if os.geteuid() != 0:
        print("overhead.py: needs root (BPF and a network namespace)", file=sys.stderr)
        return 2
    if not 1 <= ns.rounds <= 50 or not 1 <= ns.seconds <= 30:
        print("overhead.py: --rounds 1..50, --seconds 1..30", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="txtop-bench-") as tmp:
        binary = build_flooder(Path(tmp))
        with (
            Lab(tag="bench", queues=4, subnet=free_lab_subnet()) as lab,
            Sink(lab.ns_argv([]), PORT, seconds=ns.rounds * ns.seconds * 4 + 120, read=False),
        ):
            flood(binary, lab.peer_ip, 1)  # warm-up: ARP, caches
            if ns.mode == "overhead":
                run_overhead(binary, lab, ns.rounds, ns.seconds)
            elif ns.mode == "floor":
                run_floor(binary, lab, ns.rounds, ns.seconds)
            else:
                run_drain(binary, lab, ns.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
