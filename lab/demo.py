"""The demo lab: a private veth with 4 TX queues, an mq root with one rate-limited queue, and
traffic that varies, so every panel shows something real within seconds.

Queue layout (mq root 1:, tx-N served by 1:N+1):
    tx-0 pfifo_fast   tx-1 tbf 12mbit (backlog and qdisc wait build here)
    tx-2 pfifo_fast   tx-3 tbf 40mbit burst-limited
XPS pins CPUs to queues (tx-1 <- the last CPU, the other queues <- the other CPUs) and the
bulk/burst sender runs on the last CPU, so the rate-limited queue reliably gets traffic.
Traffic: several UDP flows (different sizes, sinusoidal rates, periodic bursts), a TCP stream
sent with send() and two smaller ones sent with write() and sendfile() (named udpgen, tcpsend,
tcpwrite, tcpsendfile: the waterfall names the TCP senders through their sockets),
from this namespace to the lab peer. Everything is removed on stop, and a lab left behind by a
killed run is cleaned before a new one is built.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from txtop.lab import netns as labmod
from txtop.lab.netns import Lab, LabError
from txtop.probes.collector import Collector, LiveSource

# (kind, on the last CPU?, extra args) for each generator.
GENERATORS: tuple[tuple[str, bool, tuple[str, ...]], ...] = (
    (
        "udp",
        False,
        (
            "--port",
            "9000",
            "--flows",
            "4",
            "--size",
            "120",
            "--pps",
            "1500",
            "--swing",
            "1000",
            "--period",
            "17",
        ),
    ),
    (
        "udp",
        True,
        (
            "--port",
            "9100",
            "--flows",
            "4",
            "--size",
            "1200",
            "--pps",
            "800",
            "--swing",
            "600",
            "--period",
            "29",
            "--burst",
            "400",
            "--burst-every",
            "7",
        ),
    ),
    ("tcp", False, ("--port", "5201", "--mbit", "30", "--swing", "20", "--period", "23")),
    # write() and sendfile(): no send syscall to tie their packets to, named via the socket
    (
        "tcp",
        True,
        tuple("--port 5201 --mbit 6 --swing 3 --period 13 --api write --chunk 1400".split()),
    ),
    (
        "tcp",
        False,
        tuple("--port 5201 --mbit 4 --swing 2 --period 19 --api sendfile --chunk 1400".split()),
    ),
)


DEMO_SUBNET = 250  # the demo lab's link is 10.253.250.0/30 when that is free
SPARE_SUBNETS = range(220, 250)  # else one of these (tests' labs use 20..219)


def free_subnet() -> int:
    """The demo's link subnet: 10.253.250.0/30 when free, else one of the spares."""
    return labmod.free_subnet((DEMO_SUBNET, *SPARE_SUBNETS))


def lab_owner(tag: str) -> int | None:
    """pid of a running process that owns a lab with ``tag`` (None when there is none)."""
    for ns in labmod.list_lab_namespaces():
        m = re.match(rf"^{labmod.NS_PREFIX}{re.escape(tag)}-(\d+)$", ns)
        if m:
            pid = int(m.group(1))
            if pid != os.getpid() and Path(f"/proc/{pid}").exists():
                return pid
    return None


class DemoLab:
    def __init__(
        self, tag: str = "demo", duration_s: float = 24 * 3600, subnet: int | None = None
    ) -> None:
        self.lab = Lab(tag=tag, queues=4, subnet=DEMO_SUBNET if subnet is None else subnet)
        self._pick_subnet = subnet is None
        self.duration_s = duration_s
        self.procs: list[subprocess.Popen[bytes]] = []
        self.removed_stale: list[str] = []
        self._stop_lock = threading.Lock()
        self._started = False

    @property
    def dev(self) -> str:
        return self.lab.dev

    def start(self) -> None:
        """Build the lab and start the traffic. Raises LabError when another running process
        owns a lab of the same tag (building ours would tear down its interface)."""
        self.removed_stale = labmod.cleanup_stale()
        owner = lab_owner(self.lab.tag)
        if owner is not None:
            raise LabError(f"another txtop --demo (pid {owner}) is running its lab")
        if self._pick_subnet:
            self.lab = Lab(tag=self.lab.tag, queues=self.lab.queues, subnet=free_subnet())
        self._started = True
        self.lab.create()
        try:
            self.lab.set_mq()
            self.lab.set_tbf(rate="12mbit", burst="6k", limit="300k", parent="1:2")
            self.lab.set_tbf(rate="40mbit", burst="20k", limit="150k", parent="1:4")
            last_cpu = self._map_cpus_to_queues()
            py = sys.executable
            common = ("--duration", str(self.duration_s), "--parent-pid", str(os.getpid()))
            self._spawn(
                self.lab.ns_argv(
                    [
                        py,
                        "-m",
                        "txtop.lab.trafficgen",
                        "sink",
                        "--netns",
                        self.lab.ns,
                        "--port",
                        "5201",
                        "--udp-port",
                        "9000",
                        "--flows",
                        "4",
                        *common,
                    ]
                )
            )
            for kind, on_last, extra in GENERATORS:
                cpu = last_cpu if on_last else (0 if last_cpu > 0 else -1)
                self._spawn(
                    [
                        py,
                        "-m",
                        "txtop.lab.trafficgen",
                        kind,
                        "--cpu",
                        str(cpu),
                        "--dst",
                        self.lab.peer_ip,
                        *extra,
                        *common,
                    ]
                )
        except BaseException:
            self.stop()
            raise

    def _map_cpus_to_queues(self) -> int:
        """XPS: tx-1 served by the last CPU, the other queues by the others. Returns that CPU
        (-1 when there is a single CPU and XPS cannot separate anything)."""
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            return -1
        last = cpus[-1]
        others = sum(1 << c for c in cpus[:-1])
        base = f"/sys/class/net/{self.lab.dev}/queues"
        for n in range(self.lab.queues):
            mask = (1 << last) if n == 1 else others
            try:
                with open(f"{base}/tx-{n}/xps_cpus", "w") as f:
                    f.write(f"{mask:x}")
            except OSError:
                return -1  # no XPS in this kernel: flows still hash onto queues
        return last

    def _spawn(self, argv: list[str]) -> None:
        self.procs.append(
            subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )

    def alive(self) -> bool:
        return bool(self.procs) and all(p.poll() is None for p in self.procs)

    def stop(self) -> None:
        """Stop the traffic and remove the lab. Idempotent; a second caller (signal path,
        source thread) waits until the first one is done."""
        with self._stop_lock:
            if self._started:
                self._stop()
                self._started = False

    def _stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        deadline = time.monotonic() + 2.0
        for p in self.procs:
            try:
                p.wait(max(0.05, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(1.0)
        self.procs.clear()
        self.lab.destroy()


def stale_notice(removed: list[str]) -> str:
    """One line saying what a start-up cleanup removed ("" when nothing)."""
    if not removed:
        return ""
    shown = ", ".join(removed[:4]) + (f" and {len(removed) - 4} more" if len(removed) > 4 else "")
    return f"demo: removed a stale lab left by a killed run ({shown})"


class DemoSource(LiveSource):
    """A LiveSource over the demo lab that owns the lab: closing the source (quit, signal,
    lost terminal, --duration, a failed source thread) also stops the traffic and removes
    the namespaces and links."""

    def __init__(self, demo: DemoLab, collector: Collector, interval_s: float = 1.0) -> None:
        super().__init__(collector, interval_s=interval_s, mode="demo")
        self.demo = demo
        self.notice = stale_notice(demo.removed_stale)
        self._demo_lock = threading.Lock()

    def _close(self) -> None:
        with self._demo_lock:  # a second caller waits until the lab is really gone
            try:
                super()._close()
            finally:
                self.demo.stop()
