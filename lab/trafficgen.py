"""Bounded traffic generators for the demo lab and tests.

    python -m txtop.lab.trafficgen udp  --dst 10.253.1.2 --port 9000 --size 200 --pps 2000
    python -m txtop.lab.trafficgen tcp  --dst 10.253.1.2 --port 5201 --mbit 20 [--api write]
    python -m txtop.lab.trafficgen sink --port 5201 --udp-port 9000   (inside the lab netns)

Destinations are restricted to the lab range (10.253.0.0/16) and loopback: these programs
can never send anywhere else. Each stops after --duration seconds and when its parent dies.

The TCP sender writes with ``send()`` (a send syscall txtop ties packets to), ``write()`` or
``sendfile()`` (``--api``: no send syscall; txtop names their packets through the socket).
Each generator names itself (``--name``, the comm the dashboard shows; short, so that the
names stay apart in an 80-column waterfall: ``udpgen``, ``tcpsend``, ``tcpwrite``,
``tcpsendfile``, ``labsink``).
"""

from __future__ import annotations

import argparse
import ctypes
import ipaddress
import math
import os
import select
import signal
import socket
import sys
import time

LAB_NS_PREFIX = "txtop-lab-"  # lab/netns.py NS_PREFIX (not imported: keep this module standalone)
LAB_NET = ipaddress.ip_network("10.253.0.0/16")
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
TCP_APIS = ("send", "write", "sendfile")


def allowed_destination(addr: str) -> bool:
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    return ip in LAB_NET or ip in LOOPBACK


def _die_with_parent(parent_pid: int) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass
    if parent_pid and os.getppid() != parent_pid:  # parent died before prctl took effect
        sys.exit(0)


def set_name(name: str) -> None:
    """The process's comm (what txtop shows as the sender): at most 15 bytes."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_NAME, ctypes.c_char_p(name.encode()[:15]), 0, 0, 0)
    except (OSError, AttributeError):
        pass


def rate_at(t_s: float, base: float, swing: float, period_s: float) -> float:
    """A slowly varying rate (so the dashboard moves): base +/- swing, sinusoidal."""
    if period_s <= 0:
        return base
    return max(0.0, base + swing * math.sin(2 * math.pi * t_s / period_s))


def run_udp(args: argparse.Namespace) -> None:
    payload = os.urandom(max(1, min(args.size, 65000)))
    socks = []
    for i in range(max(1, args.flows)):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.connect((args.dst, args.port + i))  # one socket per flow: flows spread over TX queues
        socks.append(s)
    start = time.monotonic()
    end = start + args.duration
    sent = 0
    next_burst = start + args.burst_every if args.burst_every > 0 else math.inf
    while True:
        now = time.monotonic()
        if now >= end:
            break
        pps = rate_at(now - start, args.pps, args.swing, args.period)
        batch = max(1, int(pps / 100))  # send in 10 ms slices
        if now >= next_burst:
            batch += args.burst
            next_burst = now + args.burst_every
        for _ in range(batch):
            try:
                socks[sent % len(socks)].send(payload)
            except OSError:
                pass  # ENOBUFS / ECONNREFUSED from ICMP: keep the pace, never spin
            sent += 1
        time.sleep(max(0.0, 0.01 - (time.monotonic() - now)))


class _Writer:
    """Sends one chunk on a connected socket with the API asked for."""

    def __init__(self, api: str, chunk: bytes) -> None:
        self.api = api
        self.chunk = chunk
        self._file = None
        if api == "sendfile":
            import tempfile

            self._file = tempfile.TemporaryFile()
            self._file.write(chunk)
            self._file.flush()

    def send(self, s: socket.socket) -> None:
        if self.api == "write":
            view = memoryview(self.chunk)
            while view:
                view = view[os.write(s.fileno(), view) :]
        elif self.api == "sendfile" and self._file is not None:
            s.sendfile(self._file, 0, len(self.chunk))
        else:
            s.sendall(self.chunk)


def run_tcp(args: argparse.Namespace) -> None:
    chunk = os.urandom(max(1, min(args.chunk, 1 << 20)))
    writer = _Writer(args.api, chunk)
    start = time.monotonic()
    end = start + args.duration
    while time.monotonic() < end:
        try:
            s = socket.create_connection((args.dst, args.port), timeout=2)
            s.settimeout(None)  # blocking: os.write() on a socket with a timeout gets EAGAIN
            if len(chunk) < 16 * 1024:  # small writes: one segment each, not coalesced
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            time.sleep(0.5)  # the sink may not be up yet
            continue
        with s:
            sent_bytes = 0
            t0 = time.monotonic()
            try:
                while time.monotonic() < end:
                    now = time.monotonic()
                    mbit = rate_at(now - start, args.mbit, args.swing, args.period)
                    budget = mbit * 1e6 / 8 * (now - t0) - sent_bytes
                    if budget >= len(chunk):
                        writer.send(s)
                        sent_bytes += len(chunk)
                    else:
                        time.sleep(0.005)
            except OSError:
                time.sleep(0.2)


def inside_lab_netns(ns: str) -> bool:
    """True when this process runs in the lab namespace ``ns`` (ip netns keeps a handle to
    each named namespace under /run/netns; its inode is the namespace's identity)."""
    if not ns.startswith(LAB_NS_PREFIX) or "/" in ns or ns in (".", ".."):
        return False
    try:
        here = os.stat("/proc/self/ns/net")
        lab = os.stat(f"/run/netns/{ns}")
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (lab.st_dev, lab.st_ino)


def run_sink(args: argparse.Namespace) -> None:
    """Accept TCP on --port and drain it; read (and drop) UDP on --udp-port..+flows.

    It binds every address of its namespace, so it runs only inside a lab namespace: a
    listener on a production host's real interfaces is exactly what txtop must never open.
    """
    if not inside_lab_netns(args.netns):
        raise SystemExit("trafficgen: the sink runs only inside a lab network namespace")
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind(("0.0.0.0", args.port))
    tcp.listen(16)
    tcp.setblocking(False)
    udps = []
    for i in range(args.flows if args.udp_port else 0):
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("0.0.0.0", args.udp_port + i))
        u.setblocking(False)
        udps.append(u)
    conns: list[socket.socket] = []
    end = time.monotonic() + args.duration
    while time.monotonic() < end:
        readable, _, _ = select.select([tcp, *udps, *conns], [], [], 0.5)
        for s in readable:
            if s is tcp:
                c, _ = tcp.accept()
                c.setblocking(False)
                conns.append(c)
                continue
            try:
                data = s.recv(256 * 1024)
            except OSError:
                data = b""
            if not data and s in conns:
                conns.remove(s)
                s.close()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="trafficgen")
    p.add_argument("mode", choices=("udp", "tcp", "sink"))
    p.add_argument("--dst", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9000)
    p.add_argument("--udp-port", type=int, default=0)
    p.add_argument("--flows", type=int, default=1)
    p.add_argument("--size", type=int, default=200)
    p.add_argument("--pps", type=float, default=1000.0)
    p.add_argument("--mbit", type=float, default=10.0)
    p.add_argument("--swing", type=float, default=0.0)
    p.add_argument("--period", type=float, default=20.0)
    p.add_argument("--burst", type=int, default=0)
    p.add_argument("--burst-every", type=float, default=0.0)
    p.add_argument("--duration", type=float, default=3600.0)
    p.add_argument("--parent-pid", type=int, default=0)
    p.add_argument("--netns", default="", help="sink: the lab namespace it must be running in")
    p.add_argument("--api", choices=TCP_APIS, default="send", help="tcp: how the data is sent")
    p.add_argument("--chunk", type=int, default=64 * 1024, help="tcp: bytes per send")
    p.add_argument("--name", default="", help="the process name (comm) to show")
    p.add_argument(
        "--cpu",
        type=int,
        default=-1,
        help="pin to this CPU (the lab maps CPUs to TX queues with XPS)",
    )
    args = p.parse_args(argv)
    if args.mode != "sink" and not allowed_destination(args.dst):
        p.error(f"destination {args.dst} is outside the lab (10.253.0.0/16) and loopback")
    if not 0 < args.duration <= 24 * 3600:
        p.error("--duration must be in (0, 86400]")
    if not 1 <= args.flows <= 64 or not 0 < args.port < 65536 - args.flows:
        p.error("bad --flows/--port")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    _die_with_parent(args.parent_pid)
    default = {"udp": "udpgen", "sink": "labsink"}.get(args.mode, f"tcp{args.api}")
    set_name(args.name or default)
    if args.cpu >= 0:
        try:
            os.sched_setaffinity(0, {args.cpu})
        except OSError:
            pass  # CPU gone or not allowed: run unpinned, the flows still hash onto queues
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        {"udp": run_udp, "tcp": run_tcp, "sink": run_sink}[args.mode](args)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
