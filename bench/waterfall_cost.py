"""CPU cost of the packet waterfall: a small app with only the Waterfall, fed a synthetic stream.

The budget (issue 4): 10 Hz updates with 1000 sampled packets/s cost under 15% of one core at
200x60 and under 8% at 80x24. This measures exactly that: the process's own CPU time
(``resource.getrusage``, user + system, all threads) over the measurement window, after a
warm-up. The snapshots are built before the clock starts, so the number is the UI's cost
(message handling, ``update_snapshot``, rendering, writing to the terminal), not the
generator's.

Modes:
  tmux      (default) the app runs in a detached tmux session of the given size, writing to
            a real pty, so terminal output encoding is included. tmux's own CPU is not counted
            (it plays the user's terminal).
  headless  Textual's headless driver: composes every frame but writes nothing (a lower bound).

Examples:
  .venv/bin/python bench/waterfall_cost.py                      # 80x24 and 200x60, tmux, 20 s
  .venv/bin/python bench/waterfall_cost.py --size 200x60 --mode headless --seconds 10
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from procs import TmuxRun, parse_size

BUDGET_PCT = {(80, 24): 8.0, (200, 60): 15.0}
WARMUP_S = 2.0


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def synthetic_packet(
    rng: random.Random, senders: list[tuple[str, int]], end_ns: int, tick_ns: int, rate_per_s: int
) -> Any:
    """One sampled packet of the tick ending at ``end_ns``: a random sender, stages and fate
    (2% dropped in the qdisc, 2% lost after the first stage)."""
    from txtop.core.model import PacketTrace

    comm, pid = rng.choice(senders)
    dev, ifindex = rng.choice((("eth0", 2), ("txl0", 7)))
    t = end_ns - rng.randrange(tick_ns)
    stages = {} if pid == 0 else {"sendto": t}
    deltas = (
        ("dev_queue", rng.lognormvariate(8.5, 0.6)),
        ("qdisc_enqueue", rng.lognormvariate(6.2, 0.3)),
        ("qdisc_dequeue", rng.lognormvariate(7.0, 1.5)),
        ("start_xmit", rng.lognormvariate(5.8, 0.3)),
        ("xmit", rng.lognormvariate(7.8, 0.4)),
        ("free", rng.lognormvariate(10.5 if dev == "eth0" else 9.0, 0.7)),
    )
    track, reason = "complete", None
    free_kind: str | None = "consume"
    roll = rng.random()
    cut = len(deltas)
    if roll < 0.02:
        cut, free_kind, reason = 1, "drop", "QDISC_DROP"
    elif roll < 0.04:
        cut, track, free_kind = 1, "lost", None
    for name, delta in deltas[:cut]:
        t += int(delta)
        stages[name] = t
    if free_kind == "drop":
        stages["free"] = t + int(rng.lognormvariate(7, 0.3))
    segs = rng.choice((1, 1, 1, 2, 45))
    return PacketTrace(
        pid=pid,
        tid=pid,
        comm=comm,
        dev=dev,
        ifindex=ifindex,
        queue=rng.randrange(4) if cut > 3 else None,
        len=1448 * segs + 66,
        gso_segs=segs,
        stages=stages,
        cpus=dict.fromkeys(stages, 0),
        track=track,
        protocol=0x0800,
        l4_proto=rng.choice((6, 17)),
        free_kind=free_kind,
        drop_reason=reason,
        xmit_rc=0,
        sport=rng.randrange(1024, 65535),
        dport=5201,
        sample_every=100,
        sample_max_per_s=rate_per_s,
    )


def synthetic_snapshots(n_ticks: int, rate_per_s: int, hz: float, seed: int = 1) -> list[Any]:
    """``n_ticks`` snapshots of ``rate_per_s / hz`` packets each, with varied stages."""
    from txtop.core.model import DeviceRow, ProbeStatus, Snapshot

    rng = random.Random(seed)
    per_tick = max(1, round(rate_per_s / hz))
    tick_ns = int(1e9 / hz)
    mono0 = 10_000_000_000_000
    wall0 = time.time()
    senders = [("iperf3", 4242), ("nginx", 812), ("redis-server", 1500), ("postgres", 2100),
               ("chronyd", 640), ("sshd", 700), ("swapper/0", 0)]  # fmt: skip
    devices = (
        DeviceRow("eth0", 2, 4, True, "up", "mq", 0, 0, 0, 0, 0.0, 0.0),
        DeviceRow("txl0", 7, 4, False, "up", "mq", 0, 0, 0, 0, 0.0, 0.0),
    )
    snaps = []
    for tick in range(n_ticks):
        end_ns = mono0 + (tick + 1) * tick_ns
        packets = [
            synthetic_packet(rng, senders, end_ns, tick_ns, rate_per_s) for _ in range(per_tick)
        ]
        snaps.append(
            Snapshot(
                host="bench",
                kernel="",
                time=wall0 + (tick + 1) / hz,
                mono_ns=end_ns,
                interval_s=1 / hz,
                mode="demo",
                interfaces=("eth0", "txl0"),
                devices=devices,
                queues=(),
                cpus=(),
                packets=tuple(packets),
                probes=ProbeStatus(
                    state="running", sampling={"every": 100, "max_per_s": rate_per_s}
                ),
            )  # fmt: skip
        )
    return snaps


def run_inner(args: argparse.Namespace) -> None:
    """The measured process: a one-widget app fed by a thread at ``hz``."""
    from textual.app import App, ComposeResult
    from textual.message import Message

    from txtop.tui.waterfall import Waterfall

    width, height = args.size
    n_ticks = int((WARMUP_S + args.seconds + 1) * args.hz)
    snaps = synthetic_snapshots(n_ticks, args.rate, args.hz)

    class Tick(Message):
        def __init__(self, snapshot: Any) -> None:
            super().__init__()
            self.snapshot = snapshot

    result: dict[str, Any] = {}

    class BenchApp(App[None]):
        def compose(self) -> ComposeResult:
            yield Waterfall(id="wf", ascii=args.ascii)

        def on_mount(self) -> None:
            wf = self.query_one(Waterfall)
            wf.focus()
            if args.scale:
                wf.set_scale(args.scale)
            if args.stats:
                wf.action_toggle_stats()
            threading.Thread(target=self.feed, daemon=True).start()

        def feed(self) -> None:
            period = 1.0 / args.hz
            start = time.monotonic()
            cpu0: float | None = None
            wall0 = 0.0
            ticks = 0
            for i, snap in enumerate(snaps):
                deadline = start + (i + 1) * period
                time.sleep(max(0.0, deadline - time.monotonic()))
                self.post_message(Tick(snap))
                now = time.monotonic()
                if cpu0 is None and now - start >= WARMUP_S:
                    cpu0, wall0 = _cpu_s(), now
                elif cpu0 is not None:
                    ticks += 1
                    if now - wall0 >= args.seconds:
                        cpu = _cpu_s() - cpu0
                        result.update(
                            cpu_s=cpu, wall_s=now - wall0, ticks=ticks,
                            cpu_pct=100.0 * cpu / (now - wall0),
                            shown=len(self.query_one(Waterfall).shown_packets()),
                        )  # fmt: skip
                        break
            self.call_from_thread(self.exit)

        def on_tick(self, message: Tick) -> None:
            self.query_one(Waterfall).update_snapshot(message.snapshot)

    app = BenchApp()
    if args.mode == "headless":
        app.run(headless=True, size=(width, height))
    else:
        app.run()
    result.update(
        size=f"{width}x{height}", mode=args.mode, rate_per_s=args.rate, hz=args.hz,
        scale=args.scale or "row", stats=args.stats, packets_per_tick=round(args.rate / args.hz),
        real_size=list(app.size) if app.size else None,
    )  # fmt: skip
    Path(args.out).write_text(json.dumps(result))


def inner_argv(args: argparse.Namespace, size: tuple[int, int], out: str) -> list[str]:
    """The measured process (``--inner``) with this run's options."""
    argv = [sys.executable, str(Path(__file__).resolve()), "--inner", "--out", out,
            "--size", f"{size[0]}x{size[1]}", "--seconds", str(args.seconds),
            "--rate", str(args.rate), "--hz", str(args.hz), "--mode", args.mode]  # fmt: skip
    if args.scale:
        argv += ["--scale", args.scale]
    if args.ascii:
        argv.append("--ascii")
    if args.stats:
        argv.append("--stats")
    return argv


def read_result(out: str) -> dict[str, Any]:
    res: dict[str, Any] = json.loads(Path(out).read_text())
    return res


def run_in_tmux(args: argparse.Namespace, size: tuple[int, int]) -> dict[str, Any]:
    if shutil.which("tmux") is None:
        raise SystemExit("tmux is not installed (use --mode headless)")
    fd, out = tempfile.mkstemp(prefix="wfcost-", suffix=".json")
    os.close(fd)
    os.unlink(out)
    deadline = time.monotonic() + args.seconds + WARMUP_S + 60
    try:
        with TmuxRun(inner_argv(args, size, out), size, "wfcost") as run:
            while not Path(out).exists():
                if time.monotonic() > deadline:
                    raise SystemExit(
                        f"no result from the tmux run within the deadline ({run.session})"
                    )
                time.sleep(0.2)
            time.sleep(0.1)  # the writer has finished: it writes the file once, at exit
            return read_result(out)
    finally:
        Path(out).unlink(missing_ok=True)


def run_headless(args: argparse.Namespace, size: tuple[int, int]) -> dict[str, Any]:
    fd, out = tempfile.mkstemp(prefix="wfcost-", suffix=".json")
    os.close(fd)
    try:
        subprocess.run(
            inner_argv(args, size, out), check=True, timeout=args.seconds + WARMUP_S + 60
        )
        return read_result(out)
    finally:
        Path(out).unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=parse_size, action="append", help="WxH; repeatable")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=int, default=1000, help="sampled packets per second")
    parser.add_argument("--hz", type=float, default=10.0, help="snapshots per second")
    parser.add_argument("--mode", choices=("tmux", "headless"), default="tmux")
    parser.add_argument("--scale", choices=("row", "linear", "log"), default=None)
    parser.add_argument("--ascii", action="store_true")
    parser.add_argument("--stats", action="store_true", help="show the percentile view (p)")
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:
        args.size = args.size[0]
        run_inner(args)
        return
    sizes = args.size or [(80, 24), (200, 60)]
    rows = []
    for size in sizes:
        res = run_in_tmux(args, size) if args.mode == "tmux" else run_headless(args, size)
        budget = BUDGET_PCT.get(size)
        res["budget_pct"] = budget
        res["ok"] = None if budget is None else res["cpu_pct"] < budget
        rows.append(res)
        verdict = "" if budget is None else (" OK" if res["ok"] else " OVER BUDGET")
        print(
            f"{res['size']:>7} {res['mode']:8} {res['rate_per_s']} pkt/s @ {res['hz']:g} Hz "
            f"scale={res['scale']}{' stats' if res['stats'] else ''}: "
            f"{res['cpu_pct']:.1f}% of one core "
            f"({res['cpu_s']:.2f} s CPU in {res['wall_s']:.1f} s, {res['ticks']} ticks)"
            + (f" budget {budget:g}%{verdict}" if budget is not None else "")
        )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
