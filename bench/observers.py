"""The B sides of the overhead benchmark: things attached to the TX path while a flood runs.

- ``TxtopHeadless``: the real txtop as a user leaves it running (``txtop --headless -i DEV``);
- ``BpftraceFloor``: the cheapest observer, one tracepoint and a per-CPU count per queue;
- ``BpftracePeer``: what a user would write by hand with bpftrace to follow every packet
  through the same stages (a map per stage keyed by skb address, deleted at the free);
- ``Netqtop``: bcc's netqtop, with the header tree txtop itself uses.

Each is a context manager whose ``start`` returns once its probes are attached; on exit it is
stopped and ``info`` holds what it reported (CPU seconds, losses...).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from procs import TXTOP, bpf_prog_ids, perf_event_fds, proc_cpu_s, stop_process

FLOOR_PROGRAM = "tracepoint:net:net_dev_start_xmit { @[args->queue_mapping] = count(); }"
# The peer: every stage per packet, by hand (BpftracePeer), for one device (as txtop -i DEV).
# The later probes fire for every skb of the machine; their predicate keeps them to the
# packets net_dev_queue took.
_FORGET = "".join(
    f" delete(@{m}[args->skbaddr]);"
    for m in ("queued", "enqueued", "dequeued", "started", "xmitted")
)
DEV_RE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")  # a device name as it may reach a script
PEER_TEMPLATE = """
tracepoint:net:net_dev_queue /str(args->name) == "DEV"/ { @queued[args->skbaddr] = nsecs; }
tracepoint:qdisc:qdisc_enqueue /@queued[args->skbaddr]/ { @enqueued[args->skbaddr] = nsecs; }
tracepoint:qdisc:qdisc_dequeue /@queued[args->skbaddr]/ { @dequeued[args->skbaddr] = nsecs; }
tracepoint:net:net_dev_start_xmit /@queued[args->skbaddr]/ { @started[args->skbaddr] = nsecs; }
tracepoint:net:net_dev_xmit /@queued[args->skbaddr]/ {
  @queue_to_xmit_ns = hist(nsecs - @queued[args->skbaddr]);
  @xmitted[args->skbaddr] = nsecs;
}
tracepoint:skb:consume_skb /@queued[args->skbaddr]/ { FORGET @freed = count(); }
tracepoint:skb:kfree_skb /@queued[args->skbaddr]/ { FORGET @dropped = count(); }
"""


def peer_program(dev: str) -> str:
    """The peer's script for device ``dev`` (a validated name: it is pasted into the script)."""
    if not DEV_RE.match(dev):
        raise ValueError(f"bad device name {dev!r}")
    return PEER_TEMPLATE.replace("FORGET", _FORGET).replace("DEV", dev)


NETQTOP = Path("/usr/sbin/netqtop-bpfcc")


class Observer:
    """Something attached to the TX path while a flood runs. ``start`` returns once attached."""

    name = "none"

    def __init__(self) -> None:
        self.proc: subprocess.Popen[Any] | None = None
        self.ready_s: float | None = None
        self.cpu0 = 0.0
        self.info: dict[str, Any] = {}

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> None:  # pragma: no cover - overridden
        pass

    def _stop(self, sig: int = signal.SIGTERM) -> None:
        """Record the CPU time the observer used since it attached, then stop it with sig."""
        if self.proc is not None:
            with contextlib.suppress(OSError, IndexError, ValueError):
                self.info["cpu_s"] = round(proc_cpu_s(self.proc.pid) - self.cpu0, 3)
            stop_process(self.proc, sig)

    def stop(self) -> None:
        self._stop()

    def __enter__(self) -> Observer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        if self.proc is not None:
            self.cpu0 = proc_cpu_s(self.proc.pid)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class TxtopHeadless(Observer):
    """The real txtop as a user leaves it running: ``txtop --headless -i DEV [extra]``, JSON
    lines on stdout (read and kept: the last one has the loss counters)."""

    def __init__(
        self,
        dev: str,
        extra: Sequence[str] = (),
        name: str = "txtop",
        on_line: Callable[[float, dict[str, Any]], None] | None = None,
    ) -> None:
        super().__init__()
        self.name = name
        self.on_line = on_line  # called with (monotonic time, snapshot) for every JSON line
        self.argv = [str(TXTOP), "--headless", "-i", dev, *extra]
        self.last: dict[str, Any] | None = None
        self._running = threading.Event()
        self._reader: threading.Thread | None = None
        self._err = tempfile.TemporaryFile()
        self._t0 = 0.0

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        t0 = self._t0
        for line in self.proc.stdout:
            try:
                snap = json.loads(line)
            except ValueError:
                continue
            if not isinstance(snap, dict):
                continue
            self.last = snap
            if self.on_line is not None:
                self.on_line(time.monotonic(), snap)
            if snap.get("probes", {}).get("state") == "running" and not self._running.is_set():
                self.ready_s = time.monotonic() - t0
                self._running.set()

    def start(self) -> None:
        self._t0 = time.monotonic()
        self.proc = subprocess.Popen(
            self.argv, stdout=subprocess.PIPE, stderr=self._err, text=True, bufsize=1
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + 60
        while not self._running.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self._err.seek(0)
                why = self._err.read().decode(errors="replace").strip()[-400:]
                state = (self.last or {}).get("probes", {})
                rc = self.proc.poll()
                how = "still running" if rc is None else f"exit status {rc}"
                took = time.monotonic() - self._t0
                raise RuntimeError(
                    f"txtop probes did not start ({how} after {took:.1f}s): {state} {why}"
                )

    def stop(self) -> None:
        self._stop()
        if self._reader is not None:
            self._reader.join(5)
        probes = (self.last or {}).get("probes", {})
        self.info.update(
            lost_events=probes.get("lost_events"),
            breakdown=probes.get("breakdown"),
            sampling=probes.get("sampling"),
            ready_s=None if self.ready_s is None else round(self.ready_s, 3),
        )


class Bpftrace(Observer):
    """A bpftrace script as an observer. ``start`` returns once bpftrace printed "Attaching N
    probes" and holds N programs and N perf events (the attachments), within a deadline; stop
    is SIGINT (bpftrace prints its maps and exits), the output kept in ``text``."""

    name = "bpftrace"
    program = ""
    probes = 1
    START_S = 20.0

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self._attaching = threading.Event()
        self._reader: threading.Thread | None = None
        self._err = tempfile.TemporaryFile()

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            if line.startswith("Attaching"):
                self._attaching.set()

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def _why(self) -> str:
        self._err.seek(0)
        return self._err.read().decode(errors="replace").strip()[-300:]

    def start(self) -> None:
        t0 = time.monotonic()
        deadline = t0 + self.START_S
        self.proc = subprocess.Popen(
            ["bpftrace", "-e", self.program],
            stdout=subprocess.PIPE,
            stderr=self._err,
            text=True,
            bufsize=1,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        while not self._attaching.wait(0.02):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: bpftrace did not attach: {self._why()!r}")
        # bpftrace prints that line before it loads and attaches: wait for every program and
        # its perf event (the attachment) among its file descriptors. bpftrace also holds one
        # perf event per online CPU for its output buffer (opened first): N + CPUs in all.
        # Should a bpftrace not open those, N programs and N events held for 3 s will do.
        want = self.probes + (os.sysconf("SC_NPROCESSORS_ONLN") or 1)
        since: float | None = None
        while time.monotonic() < deadline:
            pid = self.proc.pid
            progs, events = len(bpf_prog_ids(pid)), perf_event_fds(pid)
            if progs >= self.probes and events >= want:
                break
            if progs >= self.probes and events >= self.probes:
                since = since or time.monotonic()
                if time.monotonic() - since > 3.0:
                    break
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name}: bpftrace exited: {self._why()!r}")
            time.sleep(0.02)
        else:
            raise RuntimeError(f"{self.name}: {self.probes} probes not attached in time")
        time.sleep(0.05)
        self.ready_s = time.monotonic() - t0
        self.info["ready_s"] = round(self.ready_s, 3)

    def stop(self) -> None:
        self._stop(signal.SIGINT)
        if self._reader is not None:
            self._reader.join(10)
        self.parse(self.text)

    def parse(self, text: str) -> None:  # pragma: no cover - overridden
        pass


class BpftraceFloor(Bpftrace):
    """The cheapest observer: one tracepoint, a per-CPU count per queue (bpftrace)."""

    name = "floor"
    program = FLOOR_PROGRAM

    def parse(self, text: str) -> None:
        counts = re.findall(r"@\[(\d+)\]: (\d+)", text)
        self.info["start_xmit_by_queue"] = {q: int(n) for q, n in counts}


class BpftracePeer(Bpftrace):
    """What a user would write by hand to follow every packet through the same stages as
    txtop: classic tracepoints, a map per stage keyed by skb address holding its timestamp,
    every entry deleted at the free, a histogram of net_dev_queue -> net_dev_xmit."""

    name = "peer"
    probes = 7

    def __init__(self, dev: str) -> None:
        super().__init__()
        self.program = peer_program(dev)

    def parse(self, text: str) -> None:
        for key in ("freed", "dropped"):
            m = re.search(rf"^@{key}: (\d+)", text, re.M)
            self.info[key] = int(m.group(1)) if m else 0
        hist = re.findall(r"^\[(\d+)([KMG]?), (\d+)([KMG]?)\)\s+(\d+)", text, re.M)
        self.info["queue_to_xmit_hist"] = [
            (f"[{a}{ua}, {b}{ub})", int(n)) for a, ua, b, ub, n in hist
        ]


class Netqtop(Observer):
    """bcc's netqtop (bpfcc-tools), with the header tree txtop itself uses."""

    name = "netqtop"

    def __init__(self, dev: str, tree: str | None) -> None:
        super().__init__()
        self.dev = dev
        self.tree = tree
        self._out = tempfile.TemporaryFile()

    def _output(self) -> str:
        self._out.seek(0)
        return self._out.read().decode(errors="replace")

    def start(self) -> None:
        env = dict(os.environ)
        if self.tree:
            env["BCC_KERNEL_SOURCE"] = self.tree
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [str(NETQTOP), "-n", self.dev, "-i", "1"],
            stdout=self._out,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = t0 + 30
        while time.monotonic() < deadline:
            if "QueueID" in self._output():
                self.ready_s = time.monotonic() - t0
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        text = self._output()
        errors = [ln.strip() for ln in text.splitlines() if "error" in ln.lower()]
        raise RuntimeError(
            f"netqtop did not start: {len(errors)} error lines, first: "
            f"{errors[0] if errors else text.strip()[-200:]!r}"
        )


def header_tree() -> str | None:
    """The kernel header tree txtop compiles its probes against (for netqtop)."""
    from txtop.probes.bpf.headers import current_plan

    plan = current_plan()
    return str(plan.tree) if plan.tree is not None else None
