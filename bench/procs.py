"""Processes, terminals and the machine, for every benchmark: CPU and memory of a process from
/proc, stopping a process, one command in a private tmux server (``TmuxRun``), terminal sizes,
and the machine facts a run records. Nothing here imports bcc or Textual."""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import re
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TXTOP = REPO / ".venv" / "bin" / "txtop"
HARNESS = HERE / "harness.py"  # its hidden modes (_tcp, _ui-load, _cold-exec) run in children
CLK_TCK = os.sysconf("SC_CLK_TCK")
WARMUP_S = 2.0  # before a CPU window of the dashboard opens
_SIZE_RE = re.compile(r"^(\d{2,3})x(\d{2,3})$")


def log(msg: str) -> None:
    print(msg, flush=True)


def parse_size(text: str) -> tuple[int, int]:
    """A terminal size ``COLSxROWS`` (argparse type)."""
    match = _SIZE_RE.match(text.lower())
    if not match:
        raise argparse.ArgumentTypeError(f"expected COLSxROWS, got {text!r}")
    return int(match.group(1)), int(match.group(2))


# ---- one process, from /proc ------------------------------------------------------------------


def proc_cpu_s(pid: int) -> float:
    """utime + stime of ``pid`` (all its threads), in seconds."""
    # Fields after the ")" of comm: state is field 3, utime 14, stime 15 (1-based).
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_mem_mb(pid: int, key: str = "VmRSS") -> float | None:
    """A memory line of /proc/PID/status (VmRSS, VmHWM...) in MB; None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def alive(pid: int) -> bool:
    """True while the process runs; a zombie (exited, not yet reaped) counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


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


def stop_process(
    proc: subprocess.Popen[Any], sig: int = signal.SIGTERM, wait_s: float = 10
) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(wait_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


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
        # argv after "--" runs without a shell, so the pane's pid is the command; -P prints it.
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

    def key_latency(self, key: str, needle: str, back: str, timeout: float = 10) -> float:
        """Seconds from pressing ``key`` until ``needle`` is drawn (inf when it never is);
        then ``back`` is pressed and its disappearance awaited."""
        t0 = time.monotonic()
        self.keys(key)
        got = self.wait_text(needle, timeout, since=t0)
        self.keys(back)
        self.wait_gone(needle, timeout)
        return float("inf") if got is None else got

    def alive(self) -> bool:
        return alive(self.pid)

    def quit(self) -> float | None:
        """Press q, wait (10 s at most) for the command to exit, then remove the private
        server; returns how long the exit took (None when nothing ran)."""
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


# ---- the machine ------------------------------------------------------------------------------


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
