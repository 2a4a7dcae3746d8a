"""txtop's benchmark harness: every number in bench/RESULTS.md comes from here (via bench/run).

Sections (``--only`` picks some):
  overhead  pps of a bounded UDP flood (64- and 1400-byte frames) and throughput of one TCP
            stream over a veth lab, without any observer (A) and with observers (B): the real
            ``txtop --headless -i <lab dev>`` at default settings and with ``--sample 1``, the
            cheapest possible observer (a bpftrace one-liner counting net_dev_start_xmit per
            queue) and bcc's netqtop where it runs. A and the Bs are interleaved, the order
            rotating each round; ratios are per round (B / A of the same round), reported as
            median with min/max. One extra round per observer runs with
            kernel.bpf_stats_enabled=1 and reads run_time_ns/run_cnt of each of its programs
            (bpftool), the most precise overhead figure on a noisy machine.
  drain     the collector's real worker (Collector + LiveSource, in this process) with every
            packet eligible and the token bucket at a series of caps: ring-buffer records/s
            delivered, and losses; the highest loss-free rate is the drain capacity. Then the
            dashboard itself, in tmux, beyond that rate: lost events counted, key latency.
  ui        CPU of the dashboard process in tmux (a real pty; tmux's CPU not counted) at 80x24
            and 200x60, 1 s and 0.1 s refresh, synthetic sources of 16x16, 64x64 and 128x256
            (queues x CPUs) with 1000 sampled packets/s.
  startup   time to first frame and to "probes: running" of ``txtop -i <lab dev>`` in tmux,
            with the header tree cached (warm) and without it (cold: an empty private tmpfs
            over the cache directory, in a private mount namespace; nothing else sees it).
  memory    RSS of the dashboard watching the lab under a UDP flood for 10 min (--quick: 25 s),
            sampled every second; the slope after the first third says whether it is flat.

Traffic only goes from this namespace to the peer of a veth lab this harness creates
(lab/netns.py); every flood is bounded in time. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
VENV_PY = REPO / ".venv" / "bin" / "python"
TXTOP = REPO / ".venv" / "bin" / "txtop"
UDP_PORT = 9
TCP_PORT = 5001
CLK_TCK = os.sysconf("SC_CLK_TCK")
FRAME_OVERHEAD = 42  # Ethernet 14 + IPv4 20 + UDP 8: payload = frame - 42
FLOOR_PROGRAM = "tracepoint:net:net_dev_start_xmit { @[args->queue_mapping] = count(); }"
NETQTOP = Path("/usr/sbin/netqtop-bpfcc")
HEADER_CACHE_DIR = Path("/var/cache/txtop")  # probes/bpf/headers.py DEFAULT_CACHE_ROOT's parent
BPF_STATS = Path("/proc/sys/kernel/bpf_stats_enabled")
GOALS = {
    "overhead_pps_ratio": (">=", 0.95),
    "ui_cpu_pct_80x24": ("<=", 5.0),
    "ui_cpu_pct_200x60": ("<=", 5.0),
    "ui_cpu_pct_200x60_10hz": ("<=", 15.0),
    "first_frame_s": ("<", 1.0),
    "probes_ready_s": ("<", 2.0),
}
SECTIONS = ("overhead", "drain", "ui", "startup", "memory")


def log(msg: str) -> None:
    print(msg, flush=True)


# ---- statistics and parsing (pure; tests/test_bench.py checks them) ---------------------------


def summary(values: Sequence[float], digits: int = 4) -> dict[str, Any]:
    """Median, min and max of ``values`` (empty -> None fields)."""
    vals = [float(v) for v in values]
    if not vals:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {
        "median": round(statistics.median(vals), digits),
        "min": round(min(vals), digits),
        "max": round(max(vals), digits),
        "n": len(vals),
    }


def round_ratios(base: Sequence[float], other: Sequence[float]) -> list[float]:
    """Per-round ratios other[i] / base[i]; rounds where either side is missing are skipped."""
    out = []
    for a, b in zip(base, other, strict=True):
        if a and b is not None and a > 0:
            out.append(b / a)
    return out


def slope_per_min(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, value) points, in value per minute."""
    if len(points) < 3:
        return None
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    return 60.0 * sxy / sxx


def last_json_line(text: str) -> dict[str, Any] | None:
    """The last line of ``text`` that is a JSON object (what bench/run ends with)."""
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                return obj
    return None


def rotate(sides: Sequence[str], round_no: int) -> list[str]:
    """The order of the sides in round ``round_no``: rotated so each goes first in turn."""
    k = round_no % len(sides)
    return list(sides[k:]) + list(sides[:k])


def check_goals(result: dict[str, Any]) -> dict[str, bool | None]:
    """Each goal -> met (True/False), or None when the figure is missing."""
    out: dict[str, bool | None] = {}
    for key, (op, bound) in GOALS.items():
        v = result.get(key)
        if v is None:
            out[key] = None
        elif op == ">=":
            out[key] = v >= bound
        elif op == "<=":
            out[key] = v <= bound
        else:
            out[key] = v < bound
    return out


def parse_fdinfo(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


def bpf_prog_ids(pid: int) -> list[int]:
    """Ids of the BPF programs process ``pid`` holds file descriptors for (from fdinfo: this
    bpftool has no pid column, and other people's probes carry the same names)."""
    ids = set()
    base = Path(f"/proc/{pid}/fdinfo")
    try:
        fds = list(base.iterdir())
    except OSError:
        return []
    for fd in fds:
        try:
            info = parse_fdinfo(fd.read_text())
        except OSError:
            continue
        if "prog_id" in info and "prog_type" in info:
            ids.add(int(info["prog_id"]))
    return sorted(ids)


def perf_event_fds(pid: int) -> int:
    """How many perf events ``pid`` holds (a classic tracepoint attachment is one)."""
    n = 0
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                n += os.readlink(fd) == "anon_inode:[perf_event]"
    return n


def machine_info() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gb = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_gb = round(int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024, 1)
    versions = {}
    for mod in ("textual", "psutil", "pyroute2"):
        with contextlib.suppress(Exception):
            from importlib.metadata import version

            versions[mod] = version(mod)
    bcc = ""
    with contextlib.suppress(Exception):
        res = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Version}", "python3-bpfcc"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        bcc = res.stdout.strip()
    commit = ""
    with contextlib.suppress(Exception):
        commit = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "kernel": platform.release(),
        "cpu_model": cpu,
        "cores": os.cpu_count(),
        "mem_gb": mem_gb,
        "python": platform.python_version(),
        "bcc": bcc,
        "commit": commit,
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
        **versions,
    }


# ---- processes --------------------------------------------------------------------------------


def proc_cpu_s(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_mem_mb(pid: int, key: str = "VmRSS") -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM, wait_s: float = 10) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(wait_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


# ---- traffic ----------------------------------------------------------------------------------


@dataclasses.dataclass
class Traffic:
    """The lab and the two senders: udpflood (bench/udpflood.c, built by overhead.py's
    build_flooder) and a TCP stream (this file's ``_tcp`` mode)."""

    flooder: Path
    peer_ip: str
    dev: str
    sinks: Sinks | None = None

    def ready(self) -> None:
        """Before every flood: the sinks must be listening (each lives at most 120 s)."""
        if self.sinks is not None:
            self.sinks.ensure()

    def udp(self, frame_bytes: int, seconds: float) -> float:
        """One bounded UDP flood of ``frame_bytes`` frames; returns packets/s sent."""
        self.ready()
        payload = max(0, frame_bytes - FRAME_OVERHEAD)
        secs = max(1, round(seconds))
        res = subprocess.run(
            [str(self.flooder), self.peer_ip, str(UDP_PORT), str(payload), "1000000000", str(secs)],
            capture_output=True,
            text=True,
            timeout=secs + 30,
            check=True,
        )
        sent, elapsed = res.stdout.split()
        return int(sent) / float(elapsed)

    def udp_background(self, frame_bytes: int, seconds: float) -> subprocess.Popen:
        self.ready()
        payload = max(0, frame_bytes - FRAME_OVERHEAD)
        return subprocess.Popen(
            [str(self.flooder), self.peer_ip, str(UDP_PORT), str(payload), "1000000000",
             str(max(1, min(600, round(seconds))))],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip

    def tcp(self, seconds: float) -> float:
        """One bounded TCP stream; returns bytes/s."""
        self.ready()
        res = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "_tcp", self.peer_ip, str(TCP_PORT),
             str(seconds)],
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


def tcp_sender(dst: str, port: int, seconds: float) -> None:
    """``_tcp`` mode: stream 64 KiB writes for ``seconds``; prints "<bytes> <seconds>"."""
    sys.path.insert(0, str(REPO / "tests"))
    from senders import check_dst

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
    sys.path.insert(0, str(REPO / "tests"))
    sys.path.insert(0, str(HERE))
    from overhead import build_flooder
    from senders import Sink, free_lab_subnet

    from txtop.lab.netns import Lab

    with tempfile.TemporaryDirectory(prefix="txtop-bench-") as tmp:
        flooder = build_flooder(Path(tmp))
        # A tag of our own: Lab.create() first deletes any link of the same name, so a shared
        # tag (overhead.py uses "bench") would let another run delete this lab's veth.
        tag = f"h{os.getpid() % 10_000_000}"
        with Lab(tag=tag, queues=4, subnet=free_lab_subnet()) as lab:
            if qdisc == "mq":
                lab.set_mq()
            with Sinks(Sink, lab.ns_argv([])) as sinks:
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


# ---- observers (the B sides) ------------------------------------------------------------------


class Observer:
    """Something attached to the TX path while a flood runs. ``start`` returns once attached."""

    name = "none"

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.ready_s: float | None = None
        self.cpu0 = 0.0
        self.info: dict[str, Any] = {}

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> None:  # pragma: no cover - overridden
        pass

    def stop(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(OSError, IndexError, ValueError):
                self.info["cpu_s"] = round(proc_cpu_s(self.proc.pid) - self.cpu0, 3)
            stop_process(self.proc)

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
        super().stop()
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
        if self.proc is not None:
            with contextlib.suppress(OSError, IndexError, ValueError):
                self.info["cpu_s"] = round(proc_cpu_s(self.proc.pid) - self.cpu0, 3)
            stop_process(self.proc, signal.SIGINT)
            if self.proc.stdout is not None:
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
            self._out.seek(0)
            text = self._out.read().decode(errors="replace")
            if "QueueID" in text:
                self.ready_s = time.monotonic() - t0
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self._out.seek(0)
        text = self._out.read().decode(errors="replace")
        errors = [ln.strip() for ln in text.splitlines() if "error" in ln.lower()]
        raise RuntimeError(
            f"netqtop did not start: {len(errors)} error lines, first: "
            f"{errors[0] if errors else text.strip()[-200:]!r}"
        )


def header_tree() -> str | None:
    from txtop.probes.bpf.headers import current_plan

    plan = current_plan()
    return str(plan.tree) if plan.tree is not None else None


# ---- BPF run-time statistics ------------------------------------------------------------------


def bpftool_prog(prog_id: int) -> dict[str, Any]:
    res = subprocess.run(
        ["bpftool", "-j", "prog", "show", "id", str(prog_id)],
        capture_output=True,
        text=True,
        timeout=10,
    )
    if res.returncode != 0:
        return {}
    try:
        return json.loads(res.stdout)
    except ValueError:
        return {}


TRACING_TYPES = {"tracepoint", "raw_tracepoint", "tracing", "kprobe", "perf_event"}


def tracing_programs() -> dict[int, str]:
    """id -> name of every tracing BPF program loaded on the machine now. Other people's
    probes slow the A side too: a round during which this set changed is re-run."""
    res = subprocess.run(
        ["bpftool", "-j", "prog", "show"], capture_output=True, text=True, timeout=10
    )
    try:
        progs = json.loads(res.stdout or "[]")
    except ValueError:
        return {}
    return {int(p["id"]): p.get("name", "?") for p in progs if p.get("type") in TRACING_TYPES}


def prog_stats(ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    out = {}
    for i in ids:
        p = bpftool_prog(i)
        if p:
            out[i] = {
                "name": p.get("name", "?"),
                "run_time_ns": int(p.get("run_time_ns", 0)),
                "run_cnt": int(p.get("run_cnt", 0)),
            }
    return out


@contextlib.contextmanager
def bpf_stats_enabled() -> Iterator[None]:
    """kernel.bpf_stats_enabled=1 for the duration, restored after (it is system-wide: keep
    it short; it adds two clock reads to every BPF program run while on)."""
    old = BPF_STATS.read_text().strip()
    BPF_STATS.write_text("1\n")
    try:
        yield
    finally:
        BPF_STATS.write_text(f"{old}\n")


def stats_round(traffic: Traffic, make: Callable[[], Observer], seconds: float) -> dict[str, Any]:
    """One flood with ``make()`` attached and BPF stats on: per-program ns/run and ns/packet."""
    with bpf_stats_enabled(), make() as obs:
        assert obs.pid is not None
        ids = bpf_prog_ids(obs.pid)
        before = prog_stats(ids)
        t0 = time.monotonic()
        pps = traffic.udp(64, seconds)
        elapsed = time.monotonic() - t0
        after = prog_stats(ids)
    packets = pps * round(seconds)
    progs = []
    total_ns = 0
    for i, a in after.items():
        b = before.get(i, {"run_time_ns": 0, "run_cnt": 0})
        dt, dc = a["run_time_ns"] - b["run_time_ns"], a["run_cnt"] - b["run_cnt"]
        total_ns += dt
        if dc:
            progs.append({
                "name": a["name"], "runs": dc, "ns_per_run": round(dt / dc, 1),
                "runs_per_packet": round(dc / packets, 3) if packets else None,
                "ns_per_packet": round(dt / packets, 1) if packets else None,
            })  # fmt: skip
    progs.sort(key=lambda p: -(p["ns_per_packet"] or 0))
    return {
        "observer": obs.name,
        "pps": round(pps),
        "programs": progs,
        "bpf_ns_per_packet": round(total_ns / packets, 1) if packets else None,
        "bpf_cpu_pct_of_packet_time": round(100 * total_ns / 1e9 / elapsed, 2),
        "observer_cpu_s": obs.info.get("cpu_s"),
    }


# ---- 1. overhead ------------------------------------------------------------------------------


def run_overhead(traffic: Traffic, quick: bool, rounds: int, seconds: float) -> dict[str, Any]:
    dev = traffic.dev
    makers: dict[str, Callable[[], Observer]] = {
        "txtop": lambda: TxtopHeadless(dev),
        "txtop_sample1": lambda: TxtopHeadless(dev, ["--sample", "1"], name="txtop_sample1"),
        # the probes always attached (no trace windows): what the windows save
        "txtop_always": lambda: TxtopHeadless(dev, ["--trace-duty", "100"], name="txtop_always"),
        "floor": BpftraceFloor,
    }
    netqtop_status = "not installed"
    if NETQTOP.exists():
        tree = header_tree()
        try:
            with Netqtop(dev, tree) as probe:
                netqtop_status = f"runs (BCC_KERNEL_SOURCE={tree}, ready {probe.ready_s:.1f}s)"
            makers["netqtop"] = lambda: Netqtop(dev, tree)
        except RuntimeError as exc:
            netqtop_status = f"fails with BCC_KERNEL_SOURCE={tree}: {exc}"
    log(f"  netqtop: {netqtop_status}")

    plans: list[tuple[str, list[str], int]]
    if quick:
        plans = [("udp64", ["A", "txtop", "floor"], rounds)]
    else:
        udp_sides = ["A", "txtop", "txtop_always", "txtop_sample1", "floor"] + (
            ["netqtop"] if "netqtop" in makers else []
        )
        plans = [
            ("udp64", udp_sides, rounds),
            ("udp1400", ["A", "txtop"], max(3, rounds * 3 // 4)),
            ("tcp", ["A", "txtop"], max(3, rounds * 3 // 4)),
        ]
    out: dict[str, Any] = {"netqtop": netqtop_status, "workloads": {}}
    ready: list[float] = []
    lost = 0
    for workload, sides, n in plans:
        per: dict[str, list[float]] = {s: [] for s in sides}
        foreign: list[list[int]] = []
        stable: list[int] = []  # rounds in which that count did not change
        extra: dict[str, list[dict[str, Any]]] = {s: [] for s in sides if s != "A"}
        unit = "bytes/s" if workload == "tcp" else "pps"
        log(f"  {workload}: {n} rounds x {len(sides)} sides x {seconds:g}s ({unit})")
        for r in range(n):
            row: dict[str, float] = {}
            seen: list[int] = []  # other people's tracing programs, before each side
            for side in rotate(sides, r):
                seen.append(len(tracing_programs()))
                if side == "A":
                    row[side] = traffic.run(workload, seconds)
                    continue
                with makers[side]() as obs:
                    row[side] = traffic.run(workload, seconds)
                extra[side].append(obs.info)
                if side == "txtop":
                    if obs.ready_s is not None:
                        ready.append(obs.ready_s)
                    lost += int(obs.info.get("lost_events") or 0)
            for side in sides:
                per[side].append(row[side])
            foreign.append(seen)
            if len(set(seen)) == 1:
                stable.append(r)
            log(
                f"    round {r} (foreign tracing programs {'/'.join(map(str, seen))}): "
                + "  ".join(
                    f"{s} {row[s]:,.0f}" + ("" if s == "A" else f" ({row[s] / row['A']:.3f})")
                    for s in sides
                )
            )
        w: dict[str, Any] = {
            "unit": unit,
            "A": summary(per["A"], 1),
            "foreign_tracing_programs": foreign,
            "stable_rounds": stable,
        }
        for side in sides:
            if side == "A":
                continue
            w[side] = {
                "value": summary(per[side], 1),
                "ratio": summary(round_ratios(per["A"], per[side])),
                "ratio_stable_rounds": summary(
                    round_ratios([per["A"][i] for i in stable], [per[side][i] for i in stable])
                ),
                "observer": extra[side],
            }
        if "floor" in sides:
            w["txtop_vs_floor"] = summary(round_ratios(per["floor"], per["txtop"]))
        out["workloads"][workload] = w
        log(
            f"    {workload}: "
            + "  ".join(
                f"{s} ratio {w[s]['ratio']['median']} [{w[s]['ratio']['min']}..{w[s]['ratio']['max']}]"
                for s in sides
                if s != "A"
            )
        )
    # Precise figure: per-program BPF run time, one round per observer with stats on.
    stats_sides = (
        ["txtop", "floor"] if quick else ["txtop", "txtop_always", "txtop_sample1", "floor"]
    )
    out["bpf_stats"] = {}
    for side in stats_sides:
        try:
            s = stats_round(traffic, makers[side], seconds)
        except (OSError, RuntimeError) as exc:
            s = {"error": str(exc)}
        out["bpf_stats"][side] = s
        log(
            f"  bpf_stats {side}: {s.get('bpf_ns_per_packet')} ns of BPF per packet "
            f"({s.get('bpf_cpu_pct_of_packet_time')}% of the sender's time)"
        )
    out["probes_ready_headless_s"] = summary(ready, 3)
    out["lost_events_default"] = lost
    return out


# ---- 2. drain capacity ------------------------------------------------------------------------


def drain_one(traffic: Traffic, cap: int, seconds: float, pages: int | None) -> dict[str, Any]:
    """The dashboard's worker (Collector + LiveSource at 1 s) with every packet eligible and
    the token bucket at ``cap``/s, under a UDP flood. The worker drains the ring buffer
    between ticks and decodes at each tick; losses happen when it is busy for longer than the
    ring takes to fill. Counts ring-buffer records delivered (tap), and reads the loss
    counters once the worker has caught up after the flood."""
    from txtop.probes.bpf.tracer import Tracer
    from txtop.probes.collector import Collector, LiveSource

    kwargs: dict[str, Any] = {"sample_every": 1, "max_samples_per_s": cap}
    if pages:
        kwargs["ringbuf_pages"] = pages
    tracer = Tracer(**kwargs)
    records = [0]

    def tap(_buf: bytes) -> None:
        records[0] += 1

    tracer.record_tap = tap
    collector = Collector([traffic.dev], tracer=tracer)
    source = LiveSource(collector, interval_s=1.0)
    seen: list[tuple[float, Any, int]] = []  # (arrival, ProbeStatus, packets)
    ready = threading.Event()

    def sink(snap: Any) -> None:
        seen.append((time.monotonic(), snap.probes, len(snap.packets)))
        if snap.probes.state == "running":
            ready.set()

    source.start(sink)
    caught_up_s: float | None = None
    try:
        if not ready.wait(60):
            raise RuntimeError(f"tracer did not start: {tracer.status.reason}")
        time.sleep(0.5)
        first = len(seen)
        rec0 = records[0]
        pps = traffic.udp(64, seconds)
        flood_end = time.monotonic()
        # Caught up: a tick that started after the flood ended has been delivered.
        deadline = flood_end + 30
        while time.monotonic() < deadline:
            if sum(1 for t, _, _ in seen if t > flood_end) >= 2:
                caught_up_s = seen[-1][0] - flood_end - 1.0
                break
            time.sleep(0.05)
        rec1 = records[0]
        delivered = sum(n for _, _, n in seen[first:])
    finally:
        source.stop()
    status = seen[-1][1]
    rb = sum(v for k, v in status.breakdown.items() if k.startswith("ringbuf_full:"))
    return {
        "cap_per_s": cap,
        "ringbuf_pages": pages or 64,
        "records_per_s": round((rec1 - rec0) / seconds),
        "traces_per_s": round(delivered / seconds),
        "ringbuf_lost": rb,
        "other_lost": status.lost_events - rb,
        "breakdown": dict(status.breakdown),
        "sampled": status.sampling.get("sampled", 0),
        "rate_limited": status.sampling.get("rate_limited", 0),
        "flood_pps": round(pps),
        "catch_up_s": None if caught_up_s is None else round(max(0.0, caught_up_s), 2),
    }


def key_latency(run: TmuxRun, key: str, needle: str, back: str, timeout: float = 10) -> float:
    t0 = time.monotonic()
    run.keys(key)
    got = run.wait_text(needle, timeout, since=t0)
    run.keys(back)
    run.wait_gone(needle, timeout)
    return float("inf") if got is None else got


def run_drain(traffic: Traffic, quick: bool, seconds: float) -> dict[str, Any]:
    if quick:
        plan = [(2_000, 64), (10_000, 64)]
    else:
        plan = [(c, 64) for c in (2_000, 5_000, 10_000, 20_000, 50_000, 1_000_000)]
        plan += [(c, 1024) for c in (20_000, 50_000, 1_000_000)]
    rows = []
    for cap, pages in plan:
        row = drain_one(traffic, cap, seconds, pages)
        rows.append(row)
        log(
            f"  cap {cap:>9,}/s, ring {pages:>4} pages: {row['records_per_s']:>8,} records/s "
            f"({row['traces_per_s']:,} traces/s)  ringbuf lost {row['ringbuf_lost']:>8,}  other "
            f"{row['other_lost']:>5,}  flood {row['flood_pps']:,} pps  caught up "
            f"{row['catch_up_s']}s after"
        )

    def best(pages: int) -> int:
        clean = [r["records_per_s"] for r in rows if r["ringbuf_pages"] == pages
                 and r["ringbuf_lost"] == 0]  # fmt: skip
        return max(clean, default=0)

    default_rows = [r for r in rows if r["ringbuf_pages"] == 64]
    out: dict[str, Any] = {
        "sweep": rows,
        "capacity_records_per_s": best(64),
        "capacity_records_per_s_1024_pages": best(1024) if not quick else None,
        # When even the highest cap lost nothing, the sender (not the worker) was the limit.
        "limited_by": "sender" if default_rows[-1]["ringbuf_lost"] == 0 else "worker",
    }
    # Beyond it: the dashboard itself, uncapped, under the flood: losses shown, keys answered.
    try:
        out["dashboard_overload"] = dashboard_overload(traffic, 4 if quick else 15)
        log(f"  dashboard uncapped under flood: {out['dashboard_overload']}")
    except (RuntimeError, OSError) as exc:
        out["dashboard_overload"] = {"error": str(exc)}
    return out


def dashboard_overload(traffic: Traffic, seconds: float) -> dict[str, Any]:
    argv = [str(TXTOP), "-i", traffic.dev, "--sample", "1", "--max-samples-per-s", "1000000"]
    with TmuxRun(argv, (200, 60), "drain") as run:
        if run.wait_text("probes: running", 30) is None:
            raise RuntimeError("probes did not start: " + run.pane()[-300:])
        time.sleep(1.0)
        idle_key = key_latency(run, "?", "this help", "Escape")
        flood = traffic.udp_background(64, seconds + 5)
        try:
            time.sleep(2.0)
            cpu0, t0 = proc_cpu_s(run.pid), time.monotonic()
            lat = []
            while time.monotonic() - t0 < seconds:
                lat.append(key_latency(run, "?", "this help", "Escape"))
                time.sleep(0.5)
            cpu = 100 * (proc_cpu_s(run.pid) - cpu0) / (time.monotonic() - t0)
            lost_during = shown_lost(run.pane())
        finally:
            stop_process(flood)
        # The worker decodes its backlog after the flood; wait for the count to settle.
        end = time.monotonic()
        lost, settled = lost_during, None
        while time.monotonic() - end < 30:
            time.sleep(1.0)
            now_lost = shown_lost(run.pane())
            if now_lost is not None and now_lost == lost and (lost or 0) > 0:
                settled = round(time.monotonic() - end - 1.0, 1)
                break
            lost = now_lost
    return {
        "key_latency_idle_s": round(idle_key, 3),
        "key_latency_under_flood_s": summary(lat, 3),
        "lost_shown_during": lost_during,
        "lost_shown": lost,
        "lost_settled_after_s": settled,
        "cpu_pct": round(cpu, 1),
    }


def shown_lost(pane: str) -> int | None:
    """The lost-events count on the dashboard's probe line."""
    m = re.search(r"probes: running.*?lost (\d+)", pane)
    return int(m.group(1)) if m else None


# ---- tmux -------------------------------------------------------------------------------------


class TmuxRun:
    """One command as the only pane of a detached tmux session on a private tmux server (our
    own socket: other people's sessions are never touched); the pane's pid is the command."""

    def __init__(self, argv: Sequence[str], size: tuple[int, int], tag: str) -> None:
        self.argv = list(argv)
        self.size = size
        self.socket = f"txtop-bench-{os.getpid()}"
        self.session = f"{tag}{os.getpid()}"
        self.pid = 0
        self.t0 = 0.0

    def tmux(self, *args: str, check: bool = True) -> str:
        res = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=10
        )
        if check and res.returncode != 0:
            raise RuntimeError(f"tmux {' '.join(args)}: {res.stderr.strip()}")
        return res.stdout

    def __enter__(self) -> TmuxRun:
        cols, rows = self.size
        self.t0 = time.monotonic()
        out = self.tmux(
            "new-session", "-d", "-P", "-F", "#{pane_pid}", "-s", self.session,
            "-x", str(cols), "-y", str(rows), "--", *self.argv,
        )  # fmt: skip
        self.pid = int(out.strip())
        return self

    def __exit__(self, *exc: object) -> None:
        self.quit()

    def pane(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", self.session, check=False)

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", self.session, *keys, check=False)

    def wait_text(self, needle: str, timeout: float, since: float | None = None) -> float | None:
        """Seconds from spawn (or ``since``) until ``needle`` is on screen; None on timeout."""
        start = self.t0 if since is None else since
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.pane():
                return time.monotonic() - start
            time.sleep(0.01)
        return None

    def wait_gone(self, needle: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and needle in self.pane():
            time.sleep(0.01)

    def alive(self) -> bool:
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return False
        return stat[stat.rindex(")") + 2] != "Z"

    def quit(self) -> float | None:
        if not self.pid:
            return None
        t = time.monotonic()
        self.keys("q")
        while self.alive() and time.monotonic() < t + 10:
            time.sleep(0.01)
        took = time.monotonic() - t
        self.tmux("kill-server", check=False)  # our private server: nothing else lives there
        tmpdir = Path(os.environ.get("TMUX_TMPDIR") or "/tmp") / f"tmux-{os.getuid()}"
        (tmpdir / self.socket).unlink(missing_ok=True)
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        self.pid = 0
        return took


# ---- 4. UI cost -------------------------------------------------------------------------------


def ui_load_packets(template: Any, n: int, mono_ns: int, n_queues: int, n_cpus: int, seed: int):
    """``n`` sampled packets with varied stages ending before ``mono_ns`` (for ``_ui-load``)."""
    from txtop.core.model import STAGES

    rng = random.Random(seed)
    out = []
    for i in range(n):
        at = mono_ns - rng.randint(1_000_000, 900_000_000)
        stages = {}
        for stage in STAGES:
            stages[stage] = at
            at += int(rng.lognormvariate(8.0, 1.0))
        out.append(
            dataclasses.replace(
                template,
                tid=template.pid + i % 7,
                queue=rng.randrange(n_queues),
                len=rng.choice((90, 590, 1514)),
                stages=stages,
                cpus={s: (i + k) % n_cpus for k, s in enumerate(stages)},
                sport=40000 + i % 1000,
            )
        )
    return tuple(out)


def ui_load_maker(rate: int) -> Callable[..., Any]:
    """txtop's synthetic make_snapshot, with ``rate`` sampled packets per second instead of
    its 12 per tick."""
    from txtop.lab import synthetic

    original = synthetic.make_snapshot

    def make(n_queues: int, n_cpus: int, tick: int, interval_s: float = 1.0, seed: int = 1):
        snap = original(n_queues, n_cpus, tick, interval_s, seed)
        n = max(1, round(rate * interval_s))
        pkts = ui_load_packets(snap.packets[0], n, snap.mono_ns, n_queues, n_cpus, tick)
        return dataclasses.replace(snap, packets=pkts)

    return make


def ui_load_main(rate: int, argv: list[str]) -> None:
    """``_ui-load`` mode: txtop's own CLI with its --synthetic source made to deliver ``rate``
    sampled packets per second (the stock synthetic source makes 12 per tick)."""
    from txtop.lab import synthetic
    from txtop.tui import cli

    synthetic.make_snapshot = ui_load_maker(rate)
    cli.main(argv)


def ui_source_cost(shape: str, interval: float, rate: int) -> float:
    """% of one core the source itself (making the snapshots, in the measured process) costs
    at this shape and refresh: part of the UI figures, and not the dashboard's cost (in live
    mode the collector takes its place)."""
    from txtop.lab.synthetic import parse_shape

    q, c = parse_shape(shape)
    make = ui_load_maker(rate)
    ticks = max(3, round(2 / interval))
    t0 = time.process_time()
    for tick in range(ticks):
        make(q, c, tick + 1, interval)
    per_tick = (time.process_time() - t0) / ticks
    return round(100 * per_tick / interval, 2)


def ui_measure(
    shape: str, size: tuple[int, int], interval: str, seconds: float, rate: int
) -> dict[str, Any]:
    argv = [sys.executable, str(Path(__file__).resolve()), "_ui-load", str(rate), "--",
            "--synthetic", shape, "-d", interval]  # fmt: skip
    with TmuxRun(argv, size, "ui") as run:
        frame = run.wait_text("TX queues", 30)
        data = run.wait_text("syn0", 30)
        if frame is None or data is None:
            raise RuntimeError("no frame: " + run.pane()[-300:])
        time.sleep(2.0)  # warm-up
        cpu0, t0 = proc_cpu_s(run.pid), time.monotonic()
        time.sleep(seconds)
        cpu1, t1 = proc_cpu_s(run.pid), time.monotonic()
        hwm = proc_mem_mb(run.pid, "VmHWM")
        exit_s = run.quit()
    return {
        "shape": shape,
        "size": f"{size[0]}x{size[1]}",
        "interval_s": float(interval),
        "samples_per_s": rate,
        "cpu_pct": round(100 * (cpu1 - cpu0) / (t1 - t0), 2),
        "first_frame_s": round(frame, 3),
        "peak_rss_mb": None if hwm is None else round(hwm, 1),
        "exit_s": None if exit_s is None else round(exit_s, 3),
    }


def run_ui(quick: bool, seconds: float, repeats: int) -> dict[str, Any]:
    rate = 1000
    if quick:
        matrix = [("16x16", (80, 24), "1"), ("16x16", (200, 60), "1"), ("16x16", (200, 60), "0.1")]
    else:
        matrix = [
            (shape, size, interval)
            for shape in ("16x16", "64x64", "128x256")
            for interval in ("1", "0.1")
            for size in ((80, 24), (200, 60))
        ]
    rows = []
    for shape, size, interval in matrix:
        cpu = []
        last: dict[str, Any] = {}
        for _ in range(repeats):
            last = ui_measure(shape, size, interval, seconds, rate)
            cpu.append(last["cpu_pct"])
        last["cpu_pct_runs"] = summary(cpu, 2)
        last["cpu_pct"] = last["cpu_pct_runs"]["median"]
        last["source_cpu_pct"] = ui_source_cost(shape, float(interval), rate)
        last["cpu_pct_without_source"] = round(last["cpu_pct"] - last["source_cpu_pct"], 2)
        rows.append(last)
        log(
            f"  {shape:>7} {last['size']:>6} every {interval:>3}s, {rate} samples/s: CPU "
            f"{last['cpu_pct']:.2f}% [{last['cpu_pct_runs']['min']}..{last['cpu_pct_runs']['max']}]"
            f" (source {last['source_cpu_pct']}%)"
            f"  first frame {last['first_frame_s']:.2f}s  peak RSS {last['peak_rss_mb']} MB"
        )
    return {"runs": rows}


def ui_pick(ui: dict[str, Any], shape: str, size: str, interval: float) -> float | None:
    for r in ui.get("runs", []):
        if r["shape"] == shape and r["size"] == size and r["interval_s"] == interval:
            return r["cpu_pct"]
    return None


# ---- 5. start-up ------------------------------------------------------------------------------


def cold_exec_main(argv: list[str]) -> None:
    """``_cold-exec`` mode, run under ``unshare --mount``: an empty private tmpfs over txtop's
    header cache (only this mount namespace sees it), then exec ``argv``."""
    subprocess.run(["mount", "--make-rprivate", "/"], check=True, capture_output=True, timeout=10)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "mode=0700,size=64m", "txtop-bench-cold",
         str(HEADER_CACHE_DIR)],
        check=True, capture_output=True, timeout=10,
    )  # fmt: skip
    os.execv(argv[0], argv)


def startup_once(dev: str, cold: bool) -> dict[str, Any]:
    argv = [str(TXTOP), "-i", dev]
    if cold:
        argv = ["unshare", "--mount", "--propagation", "private", "--", sys.executable,
                str(Path(__file__).resolve()), "_cold-exec", "--", *argv]  # fmt: skip
    with TmuxRun(argv, (80, 24), "start") as run:
        frame = run.wait_text("TX queues", 30)
        ready = run.wait_text("probes: running", 30)
        pane = run.pane()
        exit_s = run.quit()
    if frame is None or ready is None:
        raise RuntimeError("no frame or probes did not start: " + pane[-400:])
    return {
        "first_frame_s": round(frame, 3),
        "probes_ready_s": round(ready, 3),
        "exit_s": None if exit_s is None else round(exit_s, 3),
    }


def run_startup(traffic: Traffic, quick: bool) -> dict[str, Any]:
    if not HEADER_CACHE_DIR.is_dir():
        startup_once(traffic.dev, cold=False)  # builds the cache once
    out: dict[str, Any] = {}
    for kind, n in (("warm", 2 if quick else 5), ("cold", 1 if quick else 3)):
        rows = []
        for _ in range(n):
            try:
                rows.append(startup_once(traffic.dev, cold=kind == "cold"))
            except (RuntimeError, subprocess.CalledProcessError) as exc:
                rows.append({"error": str(exc)})
        ok = [r for r in rows if "error" not in r]
        out[kind] = {
            "first_frame_s": summary([r["first_frame_s"] for r in ok], 3),
            "probes_ready_s": summary([r["probes_ready_s"] for r in ok], 3),
            "exit_s": summary([r["exit_s"] for r in ok if r["exit_s"] is not None], 3),
            "errors": [r["error"] for r in rows if "error" in r],
        }
        log(
            f"  {kind}: first frame {out[kind]['first_frame_s']['median']}s "
            f"[{out[kind]['first_frame_s']['min']}..{out[kind]['first_frame_s']['max']}]  "
            f"probes ready {out[kind]['probes_ready_s']['median']}s "
            f"[{out[kind]['probes_ready_s']['min']}..{out[kind]['probes_ready_s']['max']}]"
            + (f"  errors: {out[kind]['errors']}" if out[kind]["errors"] else "")
        )
    return out


# ---- 6. memory --------------------------------------------------------------------------------


def run_memory(traffic: Traffic, seconds: float) -> dict[str, Any]:
    """The dashboard at 200x60 watching the lab under a UDP flood (restarted in bounded
    chunks): RSS every second; slope over the last two thirds."""
    argv = [str(TXTOP), "-i", traffic.dev]
    points: list[tuple[float, float]] = []
    with TmuxRun(argv, (200, 60), "mem") as run:
        if run.wait_text("probes: running", 30) is None:
            raise RuntimeError("probes did not start: " + run.pane()[-300:])
        flood: subprocess.Popen | None = None
        t0 = time.monotonic()
        cpu0 = proc_cpu_s(run.pid)
        try:
            while (now := time.monotonic()) - t0 < seconds:
                if flood is None or flood.poll() is not None:
                    chunk = min(60.0, seconds - (now - t0) + 1)
                    flood = traffic.udp_background(64, chunk)
                rss = proc_mem_mb(run.pid)
                if rss is None:
                    raise RuntimeError("txtop exited during the memory run: " + run.pane()[-300:])
                points.append((now - t0, rss))
                time.sleep(1.0)
            cpu = 100 * (proc_cpu_s(run.pid) - cpu0) / (time.monotonic() - t0)
            m = re.search(r"lost (\d+)", run.pane())
        finally:
            if flood is not None:
                stop_process(flood)
    third = len(points) // 3
    tail = points[third:]
    return {
        "seconds": round(points[-1][0], 1) if points else 0,
        "rss_start_mb": round(points[0][1], 1) if points else None,
        "rss_after_warmup_mb": round(tail[0][1], 1) if tail else None,
        "rss_end_mb": round(points[-1][1], 1) if points else None,
        "rss_max_mb": round(max(p[1] for p in points), 1) if points else None,
        "slope_mb_per_min": None if (s := slope_per_min(tail)) is None else round(s, 3),
        "slope_all_mb_per_min": None if (s := slope_per_min(points)) is None else round(s, 3),
        "cpu_pct_under_flood": round(cpu, 2),
        "lost_shown": int(m.group(1)) if m else None,
        "samples": [(round(t, 1), round(v, 2)) for t, v in points[:: max(1, len(points) // 60)]],
    }


# ---- main -------------------------------------------------------------------------------------


def flat_result(res: dict[str, Any]) -> dict[str, Any]:
    """The one-line summary: the keys bench/run promises, then a few more."""
    ov = res.get("overhead", {})
    w = ov.get("workloads", {})

    def med(d: dict[str, Any] | None, *path: str) -> Any:
        for p in path:
            if not isinstance(d, dict):
                return None
            d = d.get(p)
        return d

    ui = res.get("ui", {})
    st = res.get("startup", {})
    mem = res.get("memory", {})
    dr = res.get("drain", {})
    out = {
        "overhead_pps_ratio": med(w, "udp64", "txtop", "ratio", "median"),
        "overhead_pps_ratio_floor": med(w, "udp64", "floor", "ratio", "median"),
        "drain_events_per_s": dr.get("capacity_records_per_s"),
        "lost_events": ov.get("lost_events_default"),
        "ui_cpu_pct_80x24": ui_pick(ui, "16x16", "80x24", 1.0),
        "ui_cpu_pct_200x60": ui_pick(ui, "16x16", "200x60", 1.0),
        "first_frame_s": med(st, "warm", "first_frame_s", "median"),
        "probes_ready_s": med(st, "warm", "probes_ready_s", "median"),
        "rss_mb": mem.get("rss_end_mb"),
        # more
        "overhead_pps_ratio_min": med(w, "udp64", "txtop", "ratio", "min"),
        "overhead_pps_ratio_max": med(w, "udp64", "txtop", "ratio", "max"),
        "overhead_vs_floor": med(w, "udp64", "txtop_vs_floor", "median"),
        "overhead_pps_ratio_1400": med(w, "udp1400", "txtop", "ratio", "median"),
        "overhead_tcp_ratio": med(w, "tcp", "txtop", "ratio", "median"),
        "overhead_pps_ratio_sample1": med(w, "udp64", "txtop_sample1", "ratio", "median"),
        "overhead_pps_ratio_always": med(w, "udp64", "txtop_always", "ratio", "median"),
        "overhead_pps_ratio_netqtop": med(w, "udp64", "netqtop", "ratio", "median"),
        "bpf_ns_per_packet": med(ov, "bpf_stats", "txtop", "bpf_ns_per_packet"),
        "bpf_ns_per_packet_floor": med(ov, "bpf_stats", "floor", "bpf_ns_per_packet"),
        "flood_pps_A": med(w, "udp64", "A", "median"),
        "foreign_tracing_programs_max": max(
            (n for x in w.values() for r in x.get("foreign_tracing_programs", []) for n in r),
            default=None,
        ),
        "drain_limited_by": dr.get("limited_by"),
        "drain_overload_lost": med(dr, "dashboard_overload", "lost_shown"),
        "drain_overload_key_latency_s": med(
            dr, "dashboard_overload", "key_latency_under_flood_s", "median"
        ),
        "ui_cpu_pct_80x24_10hz": ui_pick(ui, "16x16", "80x24", 0.1),
        "ui_cpu_pct_200x60_10hz": ui_pick(ui, "16x16", "200x60", 0.1),
        "ui_cpu_pct_max": max((r["cpu_pct"] for r in ui.get("runs", [])), default=None),
        "probes_ready_cold_s": med(st, "cold", "probes_ready_s", "median"),
        "first_frame_cold_s": med(st, "cold", "first_frame_s", "median"),
        "rss_slope_mb_per_min": mem.get("slope_mb_per_min"),
        "memory_s": mem.get("seconds"),
        "netqtop": ov.get("netqtop"),
        "quick": res.get("quick"),
        "kernel": res["machine"]["kernel"],
        "cpu_model": res["machine"]["cpu_model"],
        "cores": res["machine"]["cores"],
        "date": res["machine"]["date"],
        "elapsed_s": res.get("elapsed_s"),
    }
    out["goals_met"] = check_goals(out)
    return out


def _r(d: dict[str, Any] | None, digits: int = 3) -> str:
    """'median [min..max]' of a summary() dict."""
    if not d or d.get("median") is None:
        return "n/a"
    f = f"{{:.{digits}f}}"
    return f"{f.format(d['median'])} [{f.format(d['min'])}..{f.format(d['max'])}] (n={d['n']})"


def render_markdown(res: dict[str, Any]) -> str:
    """bench/RESULTS.md tables from a --out file (``bench/run --report FILE``)."""
    m = res["machine"]
    out = [
        f"Run {m['date']}, {'quick' if res.get('quick') else 'full'}, commit {m['commit']}: "
        f"kernel {m['kernel']}, {m['cpu_model']}, {m['cores']} cores, {m['mem_gb']} GB, "
        f"Python {m['python']}, bcc {m['bcc']}, Textual {m.get('textual')}; load average at "
        f"start {m['load_avg_at_start']}; lab qdisc {res.get('qdisc')}; "
        f"{res.get('elapsed_s')} s.",
        "",
    ]
    ov = res.get("overhead", {})
    if "workloads" in ov:
        out += ["| workload | A (no observer) | observer | B / A per round | stable rounds only |",
                "|---|---|---|---|---|"]  # fmt: skip
        for wname, w in ov["workloads"].items():
            for side, v in w.items():
                if not isinstance(v, dict) or "ratio" not in v:
                    continue
                out.append(
                    f"| {wname} ({w['unit']}) | {_r(w['A'], 0)} | {side} | {_r(v['ratio'])} "
                    f"| {_r(v.get('ratio_stable_rounds'))} |"
                )
            if "txtop_vs_floor" in w:
                out.append(f"| {wname} | | txtop / floor | {_r(w['txtop_vs_floor'])} | |")
        out += ["", f"netqtop: {ov.get('netqtop')}", ""]
        out += [
            "| observer | program | runs/packet | ns/run | ns/packet |",
            "|---|---|---|---|---|",
        ]
        for side, st in ov.get("bpf_stats", {}).items():
            for prog in st.get("programs", []):
                out.append(
                    f"| {side} | {prog['name']} | {prog['runs_per_packet']} | "
                    f"{prog['ns_per_run']} | {prog['ns_per_packet']} |"
                )
            out.append(
                f"| **{side}** | **total** (flood {st.get('pps'):,} pps with stats on) | | | "
                f"**{st.get('bpf_ns_per_packet')}** |"
            )
        out.append("")
    dr = res.get("drain", {})
    if "sweep" in dr:
        out += ["| cap/s | ring pages | records/s delivered | traces/s | ring-buffer lost | "
                "other lost | flood pps |", "|---|---|---|---|---|---|---|"]  # fmt: skip
        for r in dr["sweep"]:
            out.append(
                f"| {r['cap_per_s']:,} | {r['ringbuf_pages']} | {r['records_per_s']:,} | "
                f"{r['traces_per_s']:,} | {r['ringbuf_lost']:,} | {r['other_lost']:,} | "
                f"{r['flood_pps']:,} |"
            )
        o = dr.get("dashboard_overload", {})
        out += ["", f"Dashboard uncapped under the flood: {o}", ""]
    ui = res.get("ui", {})
    if "runs" in ui:
        out += ["| source QxC | size | refresh | CPU % of one core | of which the source | "
                "first frame s | peak RSS MB |", "|---|---|---|---|---|---|---|"]  # fmt: skip
        for r in ui["runs"]:
            out.append(
                f"| {r['shape']} | {r['size']} | {r['interval_s']:g} s | "
                f"{_r(r.get('cpu_pct_runs'), 2)} | {r.get('source_cpu_pct', 'n/a')} | "
                f"{r['first_frame_s']} | {r['peak_rss_mb']} |"
            )
        out += ["", "(1000 sampled packets/s. The source makes its snapshots inside the measured "
                "process: its cost, measured apart, is included in the CPU column.)", ""]  # fmt: skip
    st = res.get("startup", {})
    if "warm" in st:
        out += ["| start | first frame s | probes ready s | exit after q s |", "|---|---|---|---|"]
        for kind in ("warm", "cold"):
            k = st.get(kind, {})
            out.append(
                f"| {kind} | {_r(k.get('first_frame_s'))} | {_r(k.get('probes_ready_s'))} | "
                f"{_r(k.get('exit_s'))} |"
            )
        out.append("")
    mem = res.get("memory", {})
    if "rss_end_mb" in mem:
        out.append(
            f"Memory: RSS {mem['rss_start_mb']} MB at start, {mem['rss_after_warmup_mb']} after "
            f"the first third, {mem['rss_end_mb']} at the end of {mem['seconds']} s (max "
            f"{mem['rss_max_mb']}); slope over the last two thirds {mem['slope_mb_per_min']} "
            f"MB/min; CPU {mem['cpu_pct_under_flood']}% of a core; lost shown {mem['lost_shown']}."
        )
    for section in SECTIONS:
        if isinstance(res.get(section), dict) and "error" in res[section]:
            out.append(f"\n{section} failed: {res[section]['error']}")
    return "\n".join(out) + "\n"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="bench/run",
        description="Reproduce every txtop benchmark (root; builds its own veth lab). "
        "The last line of output is one JSON object.",
        epilog=(
            "Goals: overhead_pps_ratio >= 0.95; UI <= 5% of one core at 1 s, <= 15% at "
            "10 Hz 200x60; first frame < 1 s; probes ready < 2 s. See bench/README.md."
        ),
    )
    ap.add_argument("--quick", action="store_true", help="short version (under 2 minutes)")
    ap.add_argument(
        "--only", default=",".join(SECTIONS), help=f"comma list of {', '.join(SECTIONS)}"
    )
    ap.add_argument("--rounds", type=int, default=None, help="overhead A/B rounds (8; quick 3)")
    ap.add_argument("--seconds", type=float, default=None, help="seconds per flood (3; quick 2)")
    ap.add_argument("--memory-s", type=float, default=None, help="memory run (600; quick 25)")
    ap.add_argument("--ui-s", type=float, default=None, help="UI CPU window (10; quick 3)")
    ap.add_argument(
        "--qdisc",
        choices=("mq", "noqueue"),
        default="mq",
        help="lab qdisc: mq with pfifo_fast children (default: every stage fires) or noqueue",
    )
    ap.add_argument("--out", help="also write the full results (every round) to this JSON file")
    ap.add_argument(
        "--report", metavar="FILE", help="print RESULTS.md tables from an --out FILE, run nothing"
    )
    ns = ap.parse_args(argv)
    ns.only = [s.strip() for s in ns.only.split(",") if s.strip()]
    bad = [s for s in ns.only if s not in SECTIONS]
    if bad:
        ap.error(f"unknown section(s) {bad}; choose from {SECTIONS}")
    q = ns.quick
    ns.rounds = ns.rounds or (3 if q else 8)
    ns.seconds = ns.seconds or (2.0 if q else 3.0)
    ns.memory_s = ns.memory_s or (25.0 if q else 600.0)
    ns.ui_s = ns.ui_s or (3.0 if q else 10.0)
    if not 1 <= ns.rounds <= 50 or not 1 <= ns.seconds <= 30 or not 5 <= ns.memory_s <= 3600:
        ap.error("--rounds 1..50, --seconds 1..30, --memory-s 5..3600")
    return ns


def run_all(ns: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    res: dict[str, Any] = {"machine": machine_info(), "quick": ns.quick, "qdisc": ns.qdisc}
    log(f"txtop bench ({'quick' if ns.quick else 'full'}) on {res['machine']}")
    with lab_traffic(ns.qdisc) as traffic:
        log(f"lab: {traffic.dev} -> {traffic.peer_ip} ({ns.qdisc})")
        for section in SECTIONS:
            if section not in ns.only:
                continue
            log(f"[{section}]")
            t = time.monotonic()
            try:
                if section == "overhead":
                    res[section] = run_overhead(traffic, ns.quick, ns.rounds, ns.seconds)
                elif section == "drain":
                    res[section] = run_drain(traffic, ns.quick, ns.seconds)
                elif section == "ui":
                    res[section] = run_ui(ns.quick, ns.ui_s, 1 if ns.quick else 2)
                elif section == "startup":
                    res[section] = run_startup(traffic, ns.quick)
                elif section == "memory":
                    res[section] = run_memory(traffic, ns.memory_s)
                    m = res[section]
                    log(
                        f"  RSS {m['rss_start_mb']} -> {m['rss_end_mb']} MB over {m['seconds']}s"
                        f" (max {m['rss_max_mb']}), slope {m['slope_mb_per_min']} MB/min after "
                        f"warm-up, CPU {m['cpu_pct_under_flood']}%"
                    )
            except Exception as exc:  # one failed section must not lose the others' figures
                res[section] = {"error": f"{type(exc).__name__}: {exc}"}
                log(f"  {section} failed: {exc}")
            res.setdefault("section_s", {})[section] = round(time.monotonic() - t, 1)
    res["elapsed_s"] = round(time.monotonic() - started, 1)
    return res


def _terminate(sig: int, _frame: object) -> None:
    raise SystemExit(128 + sig)  # unwinds: labs, tmux sessions and floods are removed


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["_tcp"] and len(args) == 4:
        tcp_sender(args[1], int(args[2]), float(args[3]))
        return 0
    if args[:1] == ["_ui-load"] and len(args) >= 3 and args[2] == "--":
        ui_load_main(int(args[1]), args[3:])
        return 0
    if args[:2] == ["_cold-exec", "--"] and len(args) > 2:
        cold_exec_main(args[2:])
        return 0
    ns = parse_args(args)
    if ns.report:
        print(render_markdown(json.loads(Path(ns.report).read_text())), end="")
        return 0
    if os.geteuid() != 0:
        print("bench/run: needs root (BPF, network namespaces)", file=sys.stderr)
        return 2
    for tool in ("gcc", "tmux", "bpftrace", "bpftool", "unshare"):
        if shutil.which(tool) is None:
            print(f"bench/run: {tool} is needed", file=sys.stderr)
            return 2
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    res = run_all(ns)
    flat = flat_result(res)
    res["summary"] = flat
    if ns.out:
        fd = os.open(ns.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(res, f, indent=1)
    print(json.dumps(flat, separators=(",", ":")), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
