"""The B sides of the overhead benchmark: things attached to the TX path while a flood runs.

- ``TxtopHeadless``: the real txtop as a user leaves it running (``txtop --headless -i DEV``);
- ``BpftraceFloor``: the cheapest observer, one tracepoint and a per-CPU count per queue;
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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from procs import TXTOP, bpf_prog_ids, perf_event_fds, proc_cpu_s, stop_process

FLOOR_PROGRAM = "tracepoint:net:net_dev_start_xmit { @[args->queue_mapping] = count(); }"
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

    def __init__(self, dev: str, extra: Sequence[str] = (), name: str = "txtop") -> None:
        super().__init__()
        self.name = name
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
            self.last = snap
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
                raise RuntimeError(f"txtop probes did not start: {state} {why}")

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


class BpftraceFloor(Observer):
    """The cheapest observer: one tracepoint, a per-CPU count per queue (bpftrace)."""

    name = "floor"

    def start(self) -> None:
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            ["bpftrace", "-e", FLOOR_PROGRAM],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # "Attaching 1 probe..." once attached
        if "Attaching" not in line:
            raise RuntimeError(f"bpftrace did not attach: {line!r}")
        # bpftrace prints that line before it loads and attaches: wait for the program and
        # its perf event (the attachment) to show up among its file descriptors.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if bpf_prog_ids(self.proc.pid) and perf_event_fds(self.proc.pid):
                break
            time.sleep(0.02)
        else:
            raise RuntimeError("bpftrace did not load its program within 15 s")
        time.sleep(0.05)
        self.ready_s = time.monotonic() - t0
        self.info["ready_s"] = round(self.ready_s, 3)

    def stop(self) -> None:
        self._stop(signal.SIGINT)
        if self.proc is not None and self.proc.stdout is not None:
            counts = re.findall(r"@\[(\d+)\]: (\d+)", self.proc.stdout.read())
            self.info["start_xmit_by_queue"] = {q: int(n) for q, n in counts}


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
