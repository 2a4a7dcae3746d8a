"""Re-make recordings/data/demo.txtop: the recording `txtop --demo` replays without root.

Runs the real thing as root - `txtop --demo --headless --record FILE --duration 30`: the demo
lab (private namespace, veth with 4 TX queues, mq with tbf on two of them, bounded UDP/TCP
generators that send only to the lab peer), the real collector and BPF probes - into a
temporary file, then keeps the frames from the first one with the probes running and traffic
flowing (the warm-up ticks show nothing) and writes them to the bundled file with the same
Recorder. Checks the size stays under the budget (the file ships in the package) and that the
packets carry their senders and flows (issue 12: the demo shows owners, flows, top talkers).

Usage (root):
    .venv/bin/python scripts/record_bundled.py [--duration 30] [--interval 1] [--sample 16]
                                               [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "recordings" / "data" / "demo.txtop"
MAX_BYTES = 1_500_000


def live(snap) -> bool:
    """Probes running and packets on the lab's queues: the dashboard has something to show."""
    moving = any(q.tx is not None and q.tx.pps > 0 for q in snap.queues)
    return snap.probes.state == "running" and moving and bool(snap.packets)


def identity_problem(frames) -> str:
    """Why the recording would not show whose packets they are ("" when it does)."""
    packets = [p for s in frames for p in s.packets]
    named = [p for p in packets if p.owner is not None and p.owner.pid]
    if not packets or len(named) < 0.9 * len(packets):
        return f"only {len(named)} of {len(packets)} packets have a named sender"
    if not any(p.flow is not None for p in packets):
        return "no packet has a flow (identity unavailable?)"
    if not any(q.flows for s in frames for q in s.queues):
        return "no queue has top talkers"
    return ""


def main() -> int:
    parser = argparse.ArgumentParser(description="re-make the bundled demo recording")
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--interval", default="1")
    parser.add_argument("--sample", default="16", help="trace one packet in N (txtop --sample)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("record_bundled: needs root (network namespace lab and BPF)", file=sys.stderr)
        return 2
    if not 5 <= args.duration <= 120:
        print("record_bundled: --duration must be 5..120 seconds", file=sys.stderr)
        return 2
    from txtop.recordings.recording import Recorder, read_recording

    txtop = shutil.which("txtop", path=str(Path(sys.executable).parent)) or "txtop"
    tmpdir = Path(tempfile.mkdtemp(prefix="txtop-bundle-"))
    try:
        raw = tmpdir / "raw.txtop"
        argv = [txtop, "--demo", "--headless", "--record", str(raw)]
        argv += ["--duration", str(args.duration), "-d", args.interval, "--sample", args.sample]
        started = time.monotonic()
        res = subprocess.run(argv, timeout=args.duration + 120, check=False)  # noqa: S603
        took = time.monotonic() - started
        if res.returncode != 0:
            print(f"record_bundled: txtop exited {res.returncode}", file=sys.stderr)
            return 1
        result = read_recording(raw)
        if result.damage:
            print(f"record_bundled: recording damaged: {result.damage}", file=sys.stderr)
            return 1
        frames = result.snapshots
        first = next((i for i, s in enumerate(frames) if live(s)), None)
        if first is None:
            print("record_bundled: no frame with running probes and traffic", file=sys.stderr)
            return 1
        kept = frames[first:]
        new = tmpdir / "demo.txtop"
        with Recorder(new) as rec:
            for snap in kept:
                rec.write(snap)
        why = identity_problem(kept)
        if why:
            print(f"record_bundled: {why}", file=sys.stderr)
            return 1
        size = new.stat().st_size
        if size > MAX_BYTES:
            print(f"record_bundled: {size} bytes is over {MAX_BYTES}", file=sys.stderr)
            return 1
        new.chmod(0o644)  # shipped in the package: readable by everyone
        args.out.parent.mkdir(parents=True, exist_ok=True)
        os.replace(new, args.out)
        span = kept[-1].time - kept[0].time + kept[0].interval_s
        print(
            f"{args.out}: {len(kept)} frames ({len(frames) - len(kept)} warm-up dropped), "
            f"{span:.1f} s, {sum(len(s.packets) for s in kept)} packets, {size} bytes; "
            f"recorded in {took:.1f} s"
        )
        senders: dict[str, int] = {}
        for p in (p for s in kept for p in s.packets):
            via = p.owner.via if p.owner is not None else "unknown"
            key = f"{p.comm or '-'} via {via}"
            senders[key] = senders.get(key, 0) + 1
        print("senders: " + ", ".join(f"{k}: {n}" for k, n in sorted(senders.items())))
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
