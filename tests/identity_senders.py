"""Bounded senders for the identity tests: TCP through write() and socket.sendfile(), over IPv4
or IPv6, optionally from a cgroup of their own and lingering after the last send.

Run as a script, one process per sender (its pid is the sender's):
  identity_senders.py write    DST PORT --bytes N [--chunk B] [--linger S] [--cgroup DIR]
  identity_senders.py sendfile DST PORT --bytes N [--linger S] [--cgroup DIR]
  identity_senders.py sink     ANY PORT [--seconds S] [--rcvbuf B] [--read-delay S]
The senders print ``sent <bytes> pid <pid> done_ns <CLOCK_MONOTONIC ns when the last send
returned> lport <local port>``, then ``closed_ns <when the socket was closed>``; the sink (TCP and UDP on IPv4 and IPv6, run inside the lab namespace) "ready".
Destinations: loopback, the lab's 10.253.0.0/16 and its IPv6 ULA range fd00:253::/32 only
(lab/netns.py): nothing leaves the machine. Every mode stops by itself.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import select
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from senders import ReadyProcess  # the tests' directory: beside this file

HERE = Path(__file__).resolve()
ALLOWED = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("10.253.0.0/16"),
    ipaddress.ip_network("::1/128"),
    ipaddress.ip_network("fd00:253::/32"),
)
MAX_SECONDS = 120.0


def check_dst(dst: str) -> str:
    try:
        addr = ipaddress.ip_address(dst)
    except ValueError:
        raise SystemExit(f"identity_senders: not an IP address: {dst!r}") from None
    if not any(addr.version == net.version and addr in net for net in ALLOWED):
        raise SystemExit(f"identity_senders: refusing {dst}: lab and loopback addresses only")
    return dst


def join_cgroup(path: str) -> None:
    """Move this process into the cgroup v2 directory ``path`` before sending."""
    Path(path, "cgroup.procs").write_text(f"{os.getpid()}\n")


def connect(dst: str, port: int, seconds: float) -> socket.socket:
    family = socket.AF_INET6 if ":" in dst else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(min(seconds, 10))
    s.connect((dst, port))
    s.settimeout(None)  # blocking again: os.write() on a socket with a timeout gets EAGAIN
    return s


def send_write(s: socket.socket, total: int, chunk: int, deadline: float) -> int:
    """write(2) on the socket's fd (not send/sendto: no send syscall to tie the packets to)."""
    buf = b"w" * chunk
    sent = 0
    while sent < total and time.monotonic() < deadline:
        sent += os.write(s.fileno(), buf[: min(chunk, total - sent)])
    return sent


def send_file(s: socket.socket, total: int) -> int:
    """socket.sendfile(): sendfile(2) from a temporary file of ``total`` bytes."""
    with tempfile.TemporaryFile() as f:
        f.write(b"f" * total)
        f.flush()
        f.seek(0)
        return s.sendfile(f)


def sink(port: int, seconds: float) -> None:
    """Receive TCP and UDP on ``port``, IPv4 and IPv6 alike, until the time is up."""
    t = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    t.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    t.bind(("::", port))
    t.listen(16)
    u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    u.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    u.bind(("::", port))
    print("ready", flush=True)
    deadline = time.monotonic() + seconds
    conns: list[socket.socket] = []
    while time.monotonic() < deadline:
        ready, _, _ = select.select([t, u, *conns], [], [], 0.2)
        for s in ready:
            if s is t:
                conns.append(t.accept()[0])
            elif s is u:
                u.recv(65536)
            elif not s.recv(1 << 20):
                conns.remove(s)
                s.close()


class Sink(ReadyProcess):
    """The sink inside a lab namespace (``ns_argv``: Lab.ns_argv([])); always stopped."""

    ready_timeout_s = 15.0

    def __init__(self, ns_argv: Sequence[str], port: int, seconds: float = 60) -> None:
        argv = [*ns_argv, *argv_for("sink", "any", str(port), "--seconds", str(seconds))]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)  # noqa: S603


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="identity_senders.py")
    ap.add_argument("mode", choices=("write", "sendfile", "sink"))
    ap.add_argument("dst")
    ap.add_argument("port", type=int)
    ap.add_argument("--bytes", type=int, default=1)
    ap.add_argument("--chunk", type=int, default=16384)
    ap.add_argument("--linger", type=float, default=0.0, help="sleep before closing")
    ap.add_argument("--cgroup", help="cgroup v2 directory to join first")
    ap.add_argument("--seconds", type=float, default=30)
    ns = ap.parse_args(argv)
    if not 1 <= ns.port <= 65535 or not 0 < ns.bytes <= 1 << 30 or not 0 < ns.chunk <= 1 << 20:
        raise SystemExit("identity_senders: port 1..65535, bytes 1..1GiB, chunk 1..1MiB")
    seconds = min(max(ns.seconds, 0.1), MAX_SECONDS)
    linger = min(max(ns.linger, 0.0), 10.0)
    if ns.mode == "sink":
        sink(ns.port, seconds)
        return 0
    dst = check_dst(ns.dst)
    if ns.cgroup:
        join_cgroup(ns.cgroup)
    s = connect(dst, ns.port, seconds)
    if ns.mode == "write":
        sent = send_write(s, ns.bytes, ns.chunk, time.monotonic() + seconds)
    else:
        sent = send_file(s, ns.bytes)
    done_ns = time.monotonic_ns()
    lport = s.getsockname()[1]
    print(f"sent {sent} pid {os.getpid()} done_ns {done_ns} lport {lport}", flush=True)
    time.sleep(linger)
    s.close()
    # after close the kernel ends the connection alone (the last ACK from TIME_WAIT): not ours
    print(f"closed_ns {time.monotonic_ns()}", flush=True)
    return 0


def argv_for(mode: str, *args: str) -> list[str]:
    """argv running this file as a sender in a fresh process."""
    return [sys.executable, str(HERE), mode, *args]


if __name__ == "__main__":
    sys.exit(main())
