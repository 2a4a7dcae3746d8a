"""Bounded traffic helpers for the tracer tests (and bench/traffic.py).

Run as a script, each mode is one process with a known pid:
  senders.py udp  DST PORT --count N [--size B] [--gap-us U]   UDP sendto() from the root ns
  senders.py tcp  DST PORT --bytes N [--chunk B]               one TCP stream
  senders.py sink PORT [--seconds S] [--no-read]               UDP + TCP sink (in the lab ns)
Every mode stops by itself (count/bytes and a time limit). Destinations are limited to
loopback and the lab range 10.253.0.0/16 that lab/netns.py uses: nothing leaves the machine.

From Python, ``Sink`` starts a sink inside a lab namespace and waits until it is listening.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from txtop.lab.netns import free_subnet

HERE = Path(__file__).resolve()
ALLOWED = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("10.253.0.0/16"))
MAX_SECONDS = 120.0


def check_dst(dst: str) -> str:
    try:
        addr = ipaddress.ip_address(dst)
    except ValueError:
        raise SystemExit(f"senders: not an IP address: {dst!r}") from None
    if not any(addr in net for net in ALLOWED):
        raise SystemExit(f"senders: refusing {dst}: only 127/8 and the lab range 10.253/16")
    return dst


def udp(dst: str, port: int, count: int, size: int, gap_us: int, seconds: float) -> int:
    """sendto() ``count`` datagrams; returns how many the kernel accepted."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    payload = b"t" * size
    deadline = time.monotonic() + seconds
    sent = 0
    for _ in range(count):
        try:
            s.sendto(payload, (dst, port))
            sent += 1
        except (BlockingIOError, ConnectionRefusedError):
            pass
        if gap_us:
            time.sleep(gap_us / 1e6)
        if time.monotonic() > deadline:
            break
    s.close()
    return sent


def tcp(dst: str, port: int, total: int, chunk: int, seconds: float) -> int:
    """Stream ``total`` bytes over one connection; returns bytes sent."""
    s = socket.create_connection((dst, port), timeout=min(seconds, 10))
    buf = b"s" * chunk
    deadline = time.monotonic() + seconds
    sent = 0
    while sent < total and time.monotonic() < deadline:
        sent += s.send(buf[: min(chunk, total - sent)])
    s.shutdown(socket.SHUT_WR)
    s.close()
    return sent


def sink(port: int, seconds: float, read: bool) -> None:
    """Receive UDP and TCP on ``port`` until the time is up. Prints "ready" once bound."""
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("0.0.0.0", port))
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    t.bind(("0.0.0.0", port))
    t.listen(8)
    print("ready", flush=True)
    deadline = time.monotonic() + seconds
    conns: list[socket.socket] = []
    while time.monotonic() < deadline:
        watch = [t, *conns] + ([u] if read else [])
        ready, _, _ = select.select(watch, [], [], 0.2)
        for s in ready:
            if s is t:
                c, _ = t.accept()
                conns.append(c)
            elif s is u:
                u.recv(65536)
            elif not s.recv(1 << 20):
                conns.remove(s)
                s.close()


def stop_process(proc: subprocess.Popen) -> None:  # type: ignore[type-arg]
    """Terminate a child and reap it (killed if it does not go within 5 s)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class ReadyProcess:
    """A child (``self.proc``, started by the subclass) that prints "ready" on its stdout once
    it serves; a context manager that waits for that and always stops it."""

    proc: subprocess.Popen  # type: ignore[type-arg]
    ready_timeout_s = 10.0

    def __enter__(self) -> ReadyProcess:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], self.ready_timeout_s)
        line = self.proc.stdout.readline() if ready else ""
        if line.strip() != "ready":
            self.stop()
            raise RuntimeError(f"sink did not start (got {line!r})")
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        stop_process(self.proc)


class Sink(ReadyProcess):
    """A sink process inside a lab's namespace; a context manager that always stops it."""

    def __init__(self, ns_argv: Sequence[str], port: int, seconds: float = 60, read: bool = True):
        argv = [sys.executable, str(HERE), "sink", str(port), "--seconds", str(seconds)]
        if not read:
            argv.append("--no-read")
        self.proc = subprocess.Popen(  # noqa: S603 - fixed argv built from validated parts
            list(ns_argv) + argv, stdout=subprocess.PIPE, text=True
        )


def free_lab_subnet(candidates: range = range(200, 220)) -> int:
    """A free 10.253.<n>.0/30 for a tracer test or benchmark lab (lab/netns.py free_subnet)."""
    return free_subnet(candidates, start=os.getpid())


def sender_argv(mode: str, *args: str) -> list[str]:
    """argv running this file as a sender in a fresh process (its pid is the sender's)."""
    return [sys.executable, str(HERE), mode, *args]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="senders.py")
    sub = ap.add_subparsers(dest="mode", required=True)
    a = sub.add_parser("udp")
    a.add_argument("dst")
    a.add_argument("port", type=int)
    a.add_argument("--count", type=int, required=True)
    a.add_argument("--size", type=int, default=64)
    a.add_argument("--gap-us", type=int, default=0)
    a.add_argument("--seconds", type=float, default=30)
    b = sub.add_parser("tcp")
    b.add_argument("dst")
    b.add_argument("port", type=int)
    b.add_argument("--bytes", type=int, required=True)
    b.add_argument("--chunk", type=int, default=16384)
    b.add_argument("--seconds", type=float, default=30)
    c = sub.add_parser("sink")
    c.add_argument("port", type=int)
    c.add_argument("--seconds", type=float, default=60)
    c.add_argument("--no-read", action="store_true")
    ns = ap.parse_args(argv)
    seconds = min(max(ns.seconds, 0.1), MAX_SECONDS)
    if not 1 <= ns.port <= 65535:
        raise SystemExit("senders: port must be 1..65535")
    if ns.mode == "udp":
        if not 0 <= ns.count <= 10_000_000 or not 0 <= ns.size <= 65000:
            raise SystemExit("senders: count 0..1e7, size 0..65000")
        sent = udp(check_dst(ns.dst), ns.port, ns.count, ns.size, ns.gap_us, seconds)
        print(f"sent {sent} pid {os.getpid()}", flush=True)
    elif ns.mode == "tcp":
        if not 0 < ns.bytes <= 1 << 32 or not 0 < ns.chunk <= 1 << 20:
            raise SystemExit("senders: bytes 1..4GiB, chunk 1..1MiB")
        sent = tcp(check_dst(ns.dst), ns.port, ns.bytes, ns.chunk, seconds)
        print(f"sent {sent} pid {os.getpid()}", flush=True)
    else:
        sink(ns.port, seconds, not ns.no_read)
    return 0


if __name__ == "__main__":
    sys.exit(main())
