"""The lab and its senders, for every benchmark that needs traffic.

``lab_traffic`` builds a veth lab of our own (lab/netns.py, a per-process tag), its sinks in
the lab namespace (tests/senders.py) and the UDP flooder (bench/udpflood.c, built with gcc into
a private temporary directory by ``build_flooder``), and yields a ``Traffic`` that runs bounded
floods: UDP of a given frame size (udpflood) or one TCP stream (``tcp_sender``, run as
``bench/harness.py _tcp``). Traffic only goes to the peer of that lab; every flood is bounded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from procs import HARNESS, HERE, REPO

UDP_PORT = 9
TCP_PORT = 5001
FRAME_OVERHEAD = 42  # Ethernet 14 + IPv4 20 + UDP 8: payload = frame - 42


def build_flooder(workdir: Path) -> Path:
    """bench/udpflood.c compiled into ``workdir`` (a private temporary directory)."""
    if shutil.which("gcc") is None:
        raise SystemExit("bench: gcc is needed to build bench/udpflood.c")
    out = workdir / "udpflood"
    subprocess.run(  # noqa: S603 - fixed argv
        ["gcc", "-O2", "-Wall", "-o", str(out), str(HERE / "udpflood.c")], check=True
    )
    return out


@dataclasses.dataclass
class Traffic:
    """The lab and the two senders: udpflood (``build_flooder``) and a TCP stream
    (``tcp_sender``)."""

    flooder: Path
    peer_ip: str
    dev: str
    sinks: Sinks | None = None

    def ready(self) -> None:
        """Before every flood: the sinks must be listening (each lives at most 120 s)."""
        if self.sinks is not None:
            self.sinks.ensure()

    def _udp_argv(self, frame_bytes: int, secs: int) -> list[str]:
        payload = max(0, frame_bytes - FRAME_OVERHEAD)
        return [str(self.flooder), self.peer_ip, str(UDP_PORT), str(payload), "1000000000",
                str(secs)]  # fmt: skip

    def udp(self, frame_bytes: int, seconds: float) -> float:
        """One bounded UDP flood of ``frame_bytes`` frames; returns packets/s sent."""
        self.ready()
        secs = max(1, round(seconds))
        res = subprocess.run(
            self._udp_argv(frame_bytes, secs),
            capture_output=True,
            text=True,
            timeout=secs + 30,
            check=True,
        )
        sent, elapsed = res.stdout.split()
        return int(sent) / float(elapsed)

    def udp_background(self, frame_bytes: int, seconds: float) -> subprocess.Popen[bytes]:
        """A bounded UDP flood (600 s at most) left running; stop it with stop_process."""
        self.ready()
        secs = max(1, min(600, round(seconds)))
        return subprocess.Popen(self._udp_argv(frame_bytes, secs), stdout=subprocess.DEVNULL)

    def udp_senders(
        self, frame_bytes: int, seconds: float, cpus: Sequence[int]
    ) -> list[subprocess.Popen[bytes]]:
        """One bounded UDP flood (600 s at most) per entry of ``cpus``, each pinned to that
        CPU (each its own socket, so the flows hash to their own TX queues); left running:
        stop each with stop_process."""
        self.ready()
        secs = max(1, min(600, round(seconds)))
        procs = []
        try:
            for cpu in cpus:
                proc = subprocess.Popen(
                    self._udp_argv(frame_bytes, secs), stdout=subprocess.DEVNULL
                )
                procs.append(proc)
                # pinned right after the spawn: at most its first few packets go elsewhere
                os.sched_setaffinity(proc.pid, {cpu})
        except BaseException:
            for proc in procs:
                proc.kill()
                proc.wait(5)
            raise
        return procs

    def tx_packets(self) -> int:
        """The lab device's own tx_packets counter (sysfs)."""
        return int(Path(f"/sys/class/net/{self.dev}/statistics/tx_packets").read_text())

    def tcp(self, seconds: float) -> float:
        """One bounded TCP stream; returns bytes/s."""
        self.ready()
        res = subprocess.run(
            [sys.executable, str(HARNESS), "_tcp", self.peer_ip, str(TCP_PORT), str(seconds)],
            capture_output=True, text=True, timeout=seconds + 30, check=True,
        )  # fmt: skip
        sent, elapsed = res.stdout.split()
        return int(sent) / float(elapsed)

    def run(self, workload: str, seconds: float) -> float:
        if workload == "udp64":
            return self.udp(64, seconds)
        if workload == "udp1400":
            return self.udp(1400, seconds)
        if workload == "tcp":
            return self.tcp(seconds)
        raise ValueError(workload)


def _senders() -> Any:
    """tests/senders.py: the sinks, the lab subnet picker and the destination check."""
    if str(REPO / "tests") not in sys.path:
        sys.path.insert(0, str(REPO / "tests"))
    import senders

    return senders


def tcp_sender(dst: str, port: int, seconds: float) -> None:
    """``_tcp`` mode: stream 64 KiB writes for ``seconds``; prints "<bytes> <seconds>"."""
    check_dst = _senders().check_dst

    seconds = min(max(seconds, 0.5), 120.0)
    s = socket.create_connection((check_dst(dst), port), timeout=10)
    s.settimeout(None)
    buf = b"t" * 65536
    sent = 0
    start = time.monotonic()
    end = start + seconds
    while True:
        sent += s.send(buf)
        if (sent & 0xFFFFF) < 65536 and time.monotonic() >= end:
            break
    elapsed = time.monotonic() - start
    s.close()
    print(f"{sent} {elapsed:.6f}")


@contextlib.contextmanager
def lab_traffic(qdisc: str) -> Iterator[Traffic]:
    """A lab (``qdisc`` "mq": mq root with pfifo_fast children; else the veth's noqueue), its
    sinks and the flooder, warmed up by a 1 s flood."""
    from txtop.lab.netns import Lab

    senders = _senders()

    with tempfile.TemporaryDirectory(prefix="txtop-bench-") as tmp:
        flooder = build_flooder(Path(tmp))
        # A tag of our own: Lab.create() first deletes any link of the same name, so a shared
        # tag would let another run delete this lab's veth.
        tag = f"h{os.getpid() % 10_000_000}"
        with Lab(tag=tag, queues=4, subnet=senders.free_lab_subnet()) as lab:
            if qdisc == "mq":
                lab.set_mq()
            with Sinks(senders.Sink, lab.ns_argv([])) as sinks:
                traffic = Traffic(flooder, lab.peer_ip, lab.dev, sinks)
                traffic.udp(64, 1)  # warm-up: ARP, caches
                yield traffic


class Sinks:
    """The UDP (not read: the receiver frees each datagram) and TCP (read) sinks inside the
    lab namespace (tests/senders.py). A sink stops by itself after at most 120 s, so
    ``ensure`` starts a new one before a flood when one has ended or is about to."""

    LIFETIME_S = 110.0  # senders.py caps a sink at 120 s

    def __init__(self, sink_cls: Any, ns_argv: list[str]) -> None:
        self.sink_cls = sink_cls
        self.ns_argv = ns_argv
        self.live: dict[int, tuple[Any, float]] = {}  # port -> (Sink, started)

    def ensure(self, margin_s: float = 65.0) -> None:
        now = time.monotonic()
        for port in (UDP_PORT, TCP_PORT):
            sink, started = self.live.get(port, (None, 0.0))
            if sink is not None and sink.proc.poll() is None:
                if now - started + margin_s < self.LIFETIME_S:
                    continue
                sink.stop()
            sink = self.sink_cls(self.ns_argv, port, seconds=120, read=False)
            sink.__enter__()  # waits until it listens
            self.live[port] = (sink, time.monotonic())

    def __enter__(self) -> Sinks:
        self.ensure()
        return self

    def __exit__(self, *exc: object) -> None:
        for sink, _ in self.live.values():
            sink.stop()
