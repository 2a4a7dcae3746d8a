"""The BPF TX-path tracer: compiles probes/bpf/txtop.bpf.c with bcc, attaches it, and reads it.

The collector owns one ``Tracer`` and calls it from its worker thread: ``start()`` (compile and
attach; never raises, the status says why not), ``poll()`` between ticks (drains the ring
buffer), ``read()`` once per tick, ``close()`` from any thread, ``set_sampling()`` and
``set_filters()`` from any thread (a lock serialises them with poll/read; poll holds it for at
most 0.1 s). Attachments are file descriptors of this process, so the kernel also removes them
when the process dies, however it dies.

While bcc compiles (about half a second), file descriptor 2 goes to a private temporary file:
clang's warnings would otherwise land on the dashboard's terminal; the first error line becomes
the one-line reason when compiling fails.
"""

from __future__ import annotations

import atexit
import ctypes
import dataclasses
import importlib.util
import os
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from txtop.core.model import PacketTrace, ProbeStatus
from txtop.core.source import CpuSoftirqCounters, QueueCounters, TracerReading
from txtop.core.text import one_line
from txtop.probes.bpf import decode
from txtop.probes.bpf import headers as headers_mod
from txtop.probes.bpf.duty import (
    CLOSED,
    CONTINUOUS_MEASURE_S,
    DEFAULT_BUDGET,
    OPEN,
    Step,
    TraceWindows,
)
from txtop.probes.bpf.headers import DEFAULT_CACHE_ROOT, HeadersError, current_plan, prepare_headers
from txtop.probes.bpf.kallsyms import KernelSymbols

DEFAULT_SAMPLE_EVERY = 16  # 1-in-N at net_dev_queue, then at most the cap per second
DEFAULT_MAX_SAMPLES_PER_S = 200
DEFAULT_RINGBUF_PAGES = 64  # 256 KiB: ~1360 records of 192 bytes
TRACK_TIMEOUT_S = 2.0
MAX_SAMPLE_EVERY = 1_000_000
MAX_SAMPLES_PER_S = 1_000_000
TC_H_ROOT = 0xFFFFFFFF
AGE_SCAN_INTERVAL_S = 1.0
DEVICE_SCAN_INTERVAL_S = 5.0
SYS_CLASS_NET = Path("/sys/class/net")
EXIT_WAIT_S = 1.0  # how long a tied record waits for its syscall's separate exit record
EXIT_KEEP_S = 10.0  # how long an unmatched exit record is kept

SRC = Path(__file__).with_name("txtop.bpf.c")
TRACEFS_CANDIDATES = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))

# Probe ids of the per-probe ring-buffer loss counters (enum P_* in txtop.bpf.c).
PROBE_IDS = (
    "sys_exit",
    "net_dev_queue",
    "qdisc_enqueue",
    "qdisc_dequeue",
    "net_dev_start_xmit",
    "net_dev_xmit",
    "consume_skb",
    "kfree_skb",
)
# enum S_* in txtop.bpf.c
(
    S_SAMPLED,
    S_RATE_LIMITED,
    S_EMITTED,
    S_TRACK_FULL,
    S_TRACK_LOST,
    S_TRACK_AGED,
    S_DQL_STALL,
    S_COUNTER_FULL,
    S_XMIT_PACKETS,
    S_RB_FULL,
) = range(10)


# Hook groups (see probes/bpf/duty.py): "always" stays attached; between trace windows the
# "sampling" group (where tracks and softirq timings start) is detached first, the "late"
# group (later stages, syscall returns, per-queue counters) once the window's tracks ended.
ALWAYS, LATE, SAMPLING = "always", "late", "sampling"


@dataclass(frozen=True, slots=True)
class Probe:
    """One tracepoint the program uses, and what is lost without it."""

    category: str
    event: str
    define: str  # -D symbol that compiles it in
    raw_fn: str | None = None  # a raw tracepoint program (else the classic TRACEPOINT_PROBE)
    feature: str = ""  # stage or counter name reported in status.unavailable
    group: str = LATE

    @property
    def name(self) -> str:
        return f"{self.category}:{self.event}"


PROBES: tuple[Probe, ...] = (
    Probe("syscalls", "sys_enter_sendto", "TXTOP_HAVE_SYS_SENDTO", None, "sendto", SAMPLING),
    Probe("syscalls", "sys_enter_sendmsg", "TXTOP_HAVE_SYS_SENDMSG", None, "sendmsg", SAMPLING),
    Probe("syscalls", "sys_enter_sendmmsg", "TXTOP_HAVE_SYS_SENDMMSG", None, "sendmmsg", SAMPLING),
    # the send syscalls' return, for all three (raw: see txtop.bpf.c)
    Probe("raw_syscalls", "sys_exit", "TXTOP_HAVE_SYS_EXIT", "txtop_raw_sys_exit", "syscall_exit"),
    # raw or classic, chosen at run time (_dev_queue_classic)
    Probe(
        "net", "net_dev_queue", "TXTOP_HAVE_DEV_QUEUE", "txtop_raw_dev_queue", "dev_queue", SAMPLING
    ),
    Probe("qdisc", "qdisc_enqueue", "TXTOP_HAVE_QDISC_ENQUEUE", feature="qdisc_enqueue"),
    Probe("qdisc", "qdisc_dequeue", "TXTOP_HAVE_QDISC_DEQUEUE", feature="qdisc_dequeue"),
    Probe("net", "net_dev_start_xmit", "TXTOP_HAVE_START_XMIT", feature="start_xmit"),
    Probe("net", "net_dev_xmit", "TXTOP_HAVE_XMIT", "txtop_raw_xmit", feature="xmit"),
    Probe("skb", "consume_skb", "TXTOP_HAVE_CONSUME_SKB", "txtop_raw_consume_skb", "free"),
    Probe("skb", "kfree_skb", "TXTOP_HAVE_KFREE_SKB", "txtop_raw_kfree_skb", "free"),
    Probe("napi", "dql_stall_detected", "TXTOP_HAVE_DQL_STALL", None, "bql_stall", ALWAYS),
    Probe(
        "irq", "softirq_raise", "TXTOP_HAVE_SOFTIRQ", "txtop_raw_softirq_raise", "softirq", SAMPLING
    ),
    Probe(
        "irq", "softirq_entry", "TXTOP_HAVE_SOFTIRQ", "txtop_raw_softirq_entry", "softirq", SAMPLING
    ),
    Probe("irq", "softirq_exit", "TXTOP_HAVE_SOFTIRQ", "txtop_raw_softirq_exit", "softirq"),
)
# What the kernel side calls the classic form of a probe (bcc's TRACEPOINT_PROBE naming).
CLASSIC_DEV_QUEUE = "net:net_dev_queue"


@dataclass(frozen=True, slots=True)
class Hook:
    """One attachment: ("classic", b"cat:event") or ("raw", b"event"), and its program."""

    kind: str
    tp: bytes
    fn: bytes
    group: str
    feature: str


CFLAGS = [
    "-Wno-ignored-attributes",
    "-Wno-duplicate-decl-specifier",
    "-Wno-address-of-packed-member",
    "-Wno-unknown-warning-option",
]


class TracerError(RuntimeError):
    """A one-line reason the probes cannot run."""



def tracefs_root() -> Path | None:
    """The mounted tracefs (events/ present), or None."""
    for p in TRACEFS_CANDIDATES:
        if (p / "events").is_dir():
            return p
    return None


def probe_prerequisites() -> str | None:
    """Why the probes cannot run here, in one line (with the fix), or None. Cheap: no compile."""
    if os.geteuid() != 0:
        return "BPF probes need root (run txtop with sudo)"
    if importlib.util.find_spec("bcc") is None:
        return (
            "bcc is not importable: apt-get install python3-bpfcc "
            "(and create the virtualenv with --system-site-packages)"
        )
    if tracefs_root() is None and not TRACEFS_CANDIDATES[0].is_dir():
        return "no tracefs: this kernel has no /sys/kernel/tracing (CONFIG_FTRACE off?)"
    if headers_mod.user_kernel_source():
        return None  # the user's own header tree; prepare_headers checks it
    try:
        plan = current_plan()
    except OSError as exc:
        return f"cannot look for kernel headers: {exc}"
    if plan.kind == "none":
        return f"{plan.reason}; fix: {plan.fix}"
    return None


def _mount_tracefs() -> Path:
    root = tracefs_root()
    if root is not None:
        return root
    target = TRACEFS_CANDIDATES[0]
    res = subprocess.run(  # noqa: S603 - fixed argv, no shell
        ["mount", "-t", "tracefs", "nodev", str(target)],
        capture_output=True,
        text=True,
        timeout=10,
    )
    if res.returncode != 0 or tracefs_root() is None:
        raise TracerError(f"cannot mount tracefs on {target}: {one_line(res.stderr) or 'failed'}")
    return target


@contextmanager
def _stderr_captured() -> Iterator[Any]:
    """Send fd 2 to a private temporary file while bcc compiles: clang's warnings would
    otherwise land on the dashboard's terminal. Yields the file for error extraction."""
    with tempfile.TemporaryFile(mode="w+", errors="replace") as tmp:
        saved = os.dup(2)
        try:
            os.dup2(tmp.fileno(), 2)
            yield tmp
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _first_error(captured: Any) -> str:
    try:
        captured.seek(0)
        lines = captured.read().splitlines()
    except OSError:
        return ""
    for line in lines:
        if "error:" in line:
            return one_line(line)
    return ""


def _power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def _check_int(name: str, value: int, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValueError(f"{name} must be an integer in {lo}..{hi}, got {value!r}")
    return value


def _burst(max_per_s: int) -> int:
    """Token bucket depth: a tenth of a second of samples, at least one."""
    return max(1, max_per_s // 10)


def _queue_of_parent(parent: int) -> int:
    """The TX queue a qdisc_dequeue ran for: an mq-style child's parent class minor is queue+1
    (mq_init: TC_H_MAKE(handle, ntx + 1)); a root qdisc is dequeued for queue 0."""
    if parent == TC_H_ROOT or parent & 0xFFFF == 0:
        return 0
    return (parent & 0xFFFF) - 1


class _Names:
    """Interface name <-> ifindex in txtop's namespace, cached; misses retried after a while."""

    RETRY_S = 2.0

    def __init__(self) -> None:
        self._idx: dict[str, tuple[int | None, float]] = {}
        self._name: dict[int, tuple[str | None, float]] = {}

    def ifindex(self, name: str) -> int | None:
        hit = self._idx.get(name)
        now = time.monotonic()
        if hit is not None and (hit[0] is not None or now - hit[1] < self.RETRY_S):
            return hit[0]
        try:
            idx: int | None = socket.if_nametoindex(name)
        except OSError:
            idx = None
        self._idx[name] = (idx, now)
        return idx

    def name(self, ifindex: int) -> str | None:
        hit = self._name.get(ifindex)
        now = time.monotonic()
        if hit is not None and now - hit[1] < self.RETRY_S:
            return hit[0]
        try:
            name: str | None = socket.if_indextoname(ifindex)
        except OSError:
            name = None
        self._name[ifindex] = (name, now)
        return name


class Tracer:
    """Owns the bcc object. See the module docstring for the threading contract."""

    def __init__(
        self,
        ifindexes: Sequence[int] | None = None,
        pids: Sequence[int] | None = None,
        sample_every: int = DEFAULT_SAMPLE_EVERY,
        max_samples_per_s: int = DEFAULT_MAX_SAMPLES_PER_S,
        ringbuf_pages: int = DEFAULT_RINGBUF_PAGES,
        *,
        track_timeout_s: float = TRACK_TIMEOUT_S,
        header_cache: Path = DEFAULT_CACHE_ROOT,
        trace_duty: float | None = None,
        trace_budget: float = DEFAULT_BUDGET,
    ) -> None:
        _check_int("sample_every", sample_every, 1, MAX_SAMPLE_EVERY)
        _check_int("max_samples_per_s", max_samples_per_s, 0, MAX_SAMPLES_PER_S)
        _check_int("ringbuf_pages", ringbuf_pages, 1, 1 << 16)
        if not _power_of_two(ringbuf_pages):
            raise ValueError(f"ringbuf_pages must be a power of two, got {ringbuf_pages}")
        if not 0.05 <= track_timeout_s <= 60:
            raise ValueError("track_timeout_s must be within 0.05..60")
        self._ifindexes = self._check_ifindexes(ifindexes)
        self._pids = self._check_pids(pids)
        self._every = sample_every
        self._max_per_s = max_samples_per_s
        self._pages = ringbuf_pages
        self._timeout_ns = int(track_timeout_s * 1e9)
        self._header_cache = header_cache
        # Share of the time the per-packet probes are attached: None = auto (probes/bpf/duty.py).
        self._windows = TraceWindows(trace_duty, trace_budget)

        self._lock = threading.RLock()  # guards the bcc object and everything below
        self._bpf: Any = None
        self._closed = False
        self._state = "starting"
        self._reason = "compiling probes..."
        self._notice = ""
        self._unavailable: dict[str, str] = {}
        self._hooks: list[Hook] = []  # every attachment the compiled program offers
        self._attached: set[tuple[str, bytes]] = set()
        self._closer = _Closer()  # classic detaches in progress
        self._generation = 0  # config.generation: bumped as each trace window opens
        self._measure_base: tuple[float, int, int] | None = None  # (late_s, packets, runs)
        self._measure_last = 0.0
        self._defines: set[str] = set()
        self._raw_dev_queue_ok = True
        self._records: list[bytes] = []
        self._waiting: list[tuple[float, decode.RawRecord]] = []  # tied, awaiting sys_exit
        self._exits: dict[tuple[int, int], tuple[int, float]] = {}  # key -> (exit_ns, seen)
        self._user_ended = 0
        self._user_aged = 0
        self._window_cut = 0  # tracks ended because their window closed (not a loss)
        self._cut_out: list[PacketTrace] = []  # their traces, handed out by the next read()
        self._user_exit_missed = 0
        self._evicted = 0
        self._evict_suspect = 0
        self._last_scan = 0.0
        self._last_dev_scan = 0.0
        self._completion_devs: set[str] = set()
        self._decode_errors = 0
        self._drop_reasons: dict[int, str] = {}
        self._ksyms = KernelSymbols()
        self._names = _Names()
        self.start_s: float | None = None  # how long start() took
        # Called with each raw ring-buffer record (tests capture them as decode fixtures).
        self.record_tap: Callable[[bytes], None] | None = None
        self.dql_stalls = 0

    # ---- validation ---------------------------------------------------------------------------

    @staticmethod
    def _check_ifindexes(ifindexes: Sequence[int] | None) -> tuple[int, ...]:
        out = []
        for i in ifindexes or ():
            out.append(_check_int("ifindex", i, 1, 2**31 - 1))
        return tuple(sorted(set(out)))

    @staticmethod
    def _check_pids(pids: Sequence[int] | None) -> tuple[int, ...]:
        return tuple(sorted({_check_int("pid", p, 1, 2**22) for p in pids or ()}))

    # ---- status ---------------------------------------------------------------------------------

    @property
    def status(self) -> ProbeStatus:
        return ProbeStatus(
            state=self._state,
            reason=self._reason,
            sampling=self._sampling(),
            unavailable=dict(self._unavailable),
            notice=self._notice,
            filters=self._filters(),
            trace_mode=self._windows.mode,
            trace_duty_pct=round(100.0 * self._windows.duty, 2),
        )

    @property
    def running(self) -> bool:
        return self._state == "running"

    def _sampling(self, sampled: int = 0, limited: int = 0) -> dict[str, int]:
        return {
            "every": self._every,
            "max_per_s": self._max_per_s,
            "sampled": sampled,
            "rate_limited": limited,
        }

    def _filters(self) -> dict[str, Any]:
        return {"ifindexes": list(self._ifindexes), "pids": list(self._pids)}

    def _fail(self, reason: str) -> None:
        self._state = "unavailable"
        self._reason = one_line(reason)

    # ---- start ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Compile and attach. Never raises: on failure the status is "unavailable"."""
        t0 = time.monotonic()
        try:
            self._start()
        except Exception as exc:  # any failure must leave the dashboard running
            self._fail(str(exc) or type(exc).__name__)
            self._cleanup_bpf()
        finally:
            self.start_s = time.monotonic() - t0

    def _start(self) -> None:
        if self._closed:
            raise TracerError("tracer closed before it started")
        why = probe_prerequisites()
        if why:
            raise TracerError(why)
        root = _mount_tracefs()
        try:
            plan, self._notice = prepare_headers(self._header_cache)
        except HeadersError as exc:
            raise TracerError(str(exc)) from None
        defines, formats = self._probe_defines(root)
        self._defines = set(defines)
        kfree = formats.get("skb:kfree_skb", "")
        self._drop_reasons = decode.parse_drop_reasons(kfree)

        try:  # deferred: importing bcc costs time and needs root to be useful
            from bcc import BPF
        except Exception as exc:  # a broken install raises anything from ImportError to OSError
            raise TracerError(
                f"bcc is installed but fails to import ({str(exc)[:80] or type(exc).__name__}); "
                "fix: apt-get install --reinstall python3-bpfcc, then ./setup.sh"
            ) from None

        text = SRC.read_bytes()
        cflags = CFLAGS + [f"-D{d}" for d in defines]
        with _stderr_captured() as err, headers_mod.kernel_source_env(plan):
            try:
                bpf = BPF(text=text, cflags=cflags)
            except Exception as exc:
                raise TracerError(f"BPF compile/load failed: {_first_error(err) or exc}") from None
            with self._lock:
                if self._closed:
                    bpf.cleanup()
                    raise TracerError("tracer closed while starting")
                self._bpf = bpf
                # bcc attached every classic TRACEPOINT_PROBE while loading; from here on
                # _reconcile decides what is attached.
                self._attached = {("classic", tp) for tp in bpf.tracepoint_fds}
                self._hooks = self._hook_table()
                self._write_filters()
                self._update_completion_devs()
                bpf[b"events"].open_ring_buffer(self._on_record)
                # Until the config is written (sample_every 0) every program returns at
                # once: no track starts before all of its stages are attached.
                self._apply_step(self._windows.start(time.monotonic()))
        self._state = "running"
        self._reason = ""
        atexit.register(self.close)

    def _probe_defines(self, root: Path) -> tuple[list[str], dict[str, str]]:
        """-D options for the tracepoints this kernel has; records what is unavailable."""
        defines: set[str] = {
            f"TXTOP_RINGBUF_PAGES={self._pages}",
        }
        formats: dict[str, str] = {}
        missing: dict[str, list[str]] = {}
        for p in PROBES:
            try:
                formats[p.name] = (root / "events" / p.category / p.event / "format").read_text()
            except OSError:
                missing.setdefault(p.define, []).append(p.name)
        for p in PROBES:
            if p.define in missing:
                self._unavailable[p.feature] = (
                    f"tracepoint {', '.join(missing[p.define])} not in this kernel"
                )
            else:
                defines.add(p.define)
        if "TXTOP_HAVE_KFREE_SKB" in defines:
            if "reason" in decode.format_fields(formats["skb:kfree_skb"]):
                defines.add("TXTOP_KFREE_REASON")
            else:
                self._unavailable["drop_reason"] = "skb:kfree_skb has no reason field"
        if "TXTOP_HAVE_CONSUME_SKB" in defines:
            if "location" in decode.format_fields(formats["skb:consume_skb"]):
                defines.add("TXTOP_CONSUME_LOCATION")
        return sorted(defines), formats

    # ---- attachments and trace windows -------------------------------------------------------

    def _hook_table(self) -> list[Hook]:
        hooks = []
        for p in PROBES:
            if p.define not in self._defines:
                continue  # this kernel lacks the tracepoint: not compiled in
            if p.raw_fn is not None:
                hooks.append(Hook("raw", p.event.encode(), p.raw_fn.encode(), p.group, p.feature))
            if p.raw_fn is None or p.name == CLASSIC_DEV_QUEUE:
                fn = f"tracepoint__{p.category}__{p.event}".encode()
                hooks.append(Hook("classic", p.name.encode(), fn, p.group, p.feature))
        return hooks

    def _dev_queue_classic(self) -> bool:
        """Classic net_dev_queue when filtering by interface (it carries the name, so the
        filter acts before any per-packet work), else the cheaper raw one."""
        return bool(self._ifindexes) or not self._raw_dev_queue_ok

    def _wanted(self, hook: Hook, late: bool, sampling: bool) -> bool:
        if hook.tp in (b"net_dev_queue", CLASSIC_DEV_QUEUE.encode()):
            if (hook.kind == "classic") != self._dev_queue_classic():
                return False
        if hook.group == ALWAYS:
            return True
        return late if hook.group == LATE else sampling

    def _reconcile(self, late: bool, sampling: bool) -> None:
        """Attach/detach so that exactly the wanted groups are attached. Detach before
        attach (a packet must never be seen by both forms of net_dev_queue); sampling hooks
        go first and come last, so a track never starts without its later stages."""
        order = {SAMPLING: 0, LATE: 1, ALWAYS: 2}
        for hook in sorted(self._hooks, key=lambda h: order[h.group]):
            if (hook.kind, hook.tp) in self._attached and not self._wanted(hook, late, sampling):
                self._detach(hook)
        for hook in sorted(self._hooks, key=lambda h: -order[h.group]):
            if (hook.kind, hook.tp) not in self._attached and self._wanted(hook, late, sampling):
                self._attach(hook)

    def _attach(self, hook: Hook) -> None:
        bpf = self._bpf
        try:
            if hook.kind == "raw":
                bpf.attach_raw_tracepoint(tp=hook.tp, fn_name=hook.fn)
            else:
                # the kernel refuses a program attached twice to one tracepoint
                self._closer.wait_for(hook.tp, 5.0)
                bpf.attach_tracepoint(tp=hook.tp, fn_name=hook.fn)
        except Exception as exc:
            self._hooks.remove(hook)  # not retried every window
            if hook.tp == b"net_dev_queue":  # no raw tracepoints: the classic form does it
                self._raw_dev_queue_ok = False
                return
            self._unavailable[hook.feature] = one_line(
                f"{hook.kind} tracepoint {hook.tp.decode()}: {exc}"
            )
            return
        self._attached.add((hook.kind, hook.tp))

    def _detach(self, hook: Hook) -> None:
        bpf = self._bpf
        self._attached.discard((hook.kind, hook.tp))
        if hook.kind == "raw":
            if hook.tp in bpf.raw_tracepoint_fds:
                bpf.detach_raw_tracepoint(tp=hook.tp)
            return
        fd = bpf.tracepoint_fds.pop(hook.tp, None)
        if fd is None:
            return
        self._closer.close(hook.tp, fd)

    def _closing_busy(self) -> bool:
        return self._closer.busy()

    def _live_tracks(self) -> int:
        g = self._bpf[b"gate"][ctypes.c_int(0)]
        return int(g.created) - int(g.ended) - self._user_ended

    def _wants(self) -> tuple[bool, bool]:
        """(late, sampling) groups attached in the current window state."""
        state = self._windows.state
        return state != CLOSED, state == OPEN

    def _apply_step(self, step: Step) -> None:
        if step.detach_sampling:
            # Sampling off first, in the map: a detached classic tracepoint (net_dev_queue
            # with -i) keeps running until its close completes, a few hundred ms later.
            self._write_config()
        self._reconcile(*self._wants())
        if step.detach_late and self._live_tracks() > 0:
            # Tracks the drain grace did not see end (a packet held in a shaping qdisc): end
            # them here rather than let them age into "lost" two seconds from now.
            self._cut_out.extend(self._scan_tracks(cut=True))
        if step.attach_sampling:
            self._generation += 1  # syscalls entered before this window are never tied
            self._write_config()
        if self._windows.fixed is not None:
            return  # only auto measures the rates
        if step.attach_late:  # a window opens: measure the rates it sees from here
            self._measure_base = self._measure_point()
            self._measure_last = time.monotonic()
        if step.window_ended:
            self._measure()

    def _measure_point(self) -> tuple[float, int, int]:
        """(late-group seconds attached, packets counted, NET softirq runs counted)."""
        _, late_s = self._windows.totals(time.monotonic())
        # two per-CPU array reads: cheap enough for every 0.05 s (a walk of the per-queue
        # hash would cost milliseconds on a many-queue NIC)
        packets = sum(int(v) for v in self._bpf[b"stats"].getvalue(ctypes.c_int(S_XMIT_PACKETS)))
        runs = 0
        if "softirq" not in self._unavailable:
            for v in self._bpf[b"softirq"].getvalue(ctypes.c_int(0)):
                runs += int(v.runs[0]) + int(v.runs[1])
        return late_s, packets, runs

    def _measure(self) -> None:
        """Auto duty: the packet and softirq rates seen since the last measurement."""
        base, point = self._measure_base, self._measure_point()
        self._measure_base = point
        if base is not None:
            self._windows.measured(point[1] - base[1], point[2] - base[2], point[0] - base[0])

    def _step_windows(self) -> float:
        """Advance the trace windows; returns seconds until the next thing to do."""
        now = time.monotonic()
        step = self._windows.step(now, self._live_tracks(), self._closing_busy())
        if step.attach_late or step.attach_sampling or step.detach_sampling or step.detach_late:
            self._apply_step(step)
        elif (
            step.state == OPEN
            and self._windows.fixed is None
            and now - self._measure_last >= CONTINUOUS_MEASURE_S
        ):
            self._measure_last = now  # continuous tracing: a flood must be seen at once
            self._measure()
        deadline = self._windows.next_deadline(now)
        return 0.1 if deadline is None else max(0.0, deadline - now)

    # ---- run-time settings ---------------------------------------------------------------------

    def _write_config(self) -> None:
        table = self._bpf[b"config"]
        cfg = table.Leaf()
        # 0 = no new tracks: outside the open part of a trace window (txtop.bpf.c checks it
        # in net_dev_queue and the send syscalls)
        cfg.sample_every = self._every if self._windows.state == OPEN else 0
        cfg.max_per_s = self._max_per_s
        cfg.burst = _burst(self._max_per_s)
        cfg.filter_dev = 1 if self._ifindexes else 0
        cfg.filter_pid = 1 if self._pids else 0
        cfg.track_timeout_ns = self._timeout_ns
        cfg.user_ended = self._user_ended
        cfg.generation = self._generation & 0xFFFFFFFF
        table[ctypes.c_int(0)] = cfg

    def _write_filters(self) -> None:
        bpf = self._bpf
        one = ctypes.c_uint8(1)
        names = bpf[b"dev_filter"]
        names.clear()
        idx = bpf[b"ifindex_filter"]
        idx.clear()
        for i in self._ifindexes:
            name = self._names.name(i)
            if name is None:
                continue  # gone: nothing of it can be traced
            key = names.Key()
            key.name = name.encode()
            names[key] = one
            idx[ctypes.c_int(i)] = one
        pids = bpf[b"pid_filter"]
        pids.clear()
        for p in self._pids:
            pids[ctypes.c_uint(p)] = one

    def _update_completion_devs(self) -> None:
        """Tell the kernel side which devices free skbs after sending (NICs: they have a
        parent device in sysfs); on all others a track ends at net_dev_xmit."""
        self._last_dev_scan = time.monotonic()
        try:
            names = {d.name for d in SYS_CLASS_NET.iterdir() if (d / "device").exists()}
        except OSError:
            return
        if names == self._completion_devs:
            return
        table = self._bpf[b"tx_completion"]
        for name in self._completion_devs - names:
            key = table.Key()
            key.name = name.encode()
            try:
                del table[key]
            except KeyError:
                pass
        for name in names - self._completion_devs:
            key = table.Key()
            key.name = name.encode()
            table[key] = ctypes.c_uint8(1)
        self._completion_devs = names

    def set_sampling(self, every: int, max_per_s: int) -> None:
        """Change 1-in-N and the samples-per-second cap at run time."""
        _check_int("sample_every", every, 1, MAX_SAMPLE_EVERY)
        _check_int("max_samples_per_s", max_per_s, 0, MAX_SAMPLES_PER_S)
        with self._lock:
            self._every, self._max_per_s = every, max_per_s
            if self._bpf is not None:
                self._write_config()

    def set_trace_duty(self, duty: float | None) -> None:
        """A fixed share of the time with the per-packet probes attached (0 < duty <= 1), or
        None for auto (probes/bpf/duty.py)."""
        with self._lock:
            self._windows.set_fixed(duty)

    @property
    def trace_state(self) -> str:
        """The trace window's state: open, draining or closed (probes/bpf/duty.py)."""
        return self._windows.state

    def set_filters(
        self, ifindexes: Sequence[int] | None = None, pids: Sequence[int] | None = None
    ) -> None:
        """Replace the interface and pid filters (empty/None = everything)."""
        ifs, ps = self._check_ifindexes(ifindexes), self._check_pids(pids)
        with self._lock:
            self._ifindexes, self._pids = ifs, ps
            if self._bpf is not None:
                # Filters first, then the flags that enable them, then the attach mode.
                self._write_filters()
                self._write_config()
                self._reconcile(*self._wants())  # the net_dev_queue form may change

    # ---- the worker's calls ----------------------------------------------------------------------

    def _on_record(self, _ctx: Any, data: Any, size: int) -> int:
        buf = ctypes.string_at(data, size)
        self._records.append(buf)
        if self.record_tap is not None:
            self.record_tap(buf)
        return 0

    def poll(self, timeout_s: float) -> None:
        """Drain the ring buffer for up to ``timeout_s`` (capped at 0.1 s); sleep if not running."""
        timeout_s = max(0.0, min(timeout_s, 0.1))
        if self._state == "running":
            with self._lock:
                if self._bpf is not None:
                    due = self._step_windows()
                    self._bpf.ring_buffer_poll(max(1, int(min(timeout_s, due) * 1000)))
                    return
        time.sleep(timeout_s)  # never return at once: the caller's loop must not spin

    def read(self) -> TracerReading:
        """Everything since the last read: finished packets, cumulative counters, status."""
        with self._lock:
            bpf = self._bpf
            if bpf is None or self._state != "running":
                return TracerReading(status=self.status)
            self._step_windows()
            bpf.ring_buffer_consume()
            packets = self._decode_pending()
            now = time.monotonic()
            traced_s, traced_late_s = self._windows.totals(now)
            if now - self._last_dev_scan >= DEVICE_SCAN_INTERVAL_S:
                self._update_completion_devs()
            if now - self._last_scan >= AGE_SCAN_INTERVAL_S:
                self._last_scan = now
                packets.extend(self._scan_tracks())
            packets.extend(self._cut_out)
            self._cut_out = []
            stats = self._sum_stats()
            queues = self._read_queues()
            cpus = self._read_softirq()
            status = self._status_from(stats)
        packets.sort(key=lambda p: p.first_ns)
        return TracerReading(
            status=status,
            packets=tuple(packets),
            queues=queues,
            cpus=cpus,
            traced_s=traced_s,
            traced_late_s=traced_late_s,
        )

    # ---- decoding ------------------------------------------------------------------------------

    def _trace(
        self, rec: decode.RawRecord, end: str | None = None, sys_exit_ns: int | None = None
    ) -> PacketTrace:
        return decode.to_packet_trace(
            rec,
            sys_exit_ns=sys_exit_ns,
            drop_reasons=self._drop_reasons,
            resolve_location=self._ksyms.resolve,
            ifindex_of=self._names.ifindex,
            name_of=self._names.name,
            end=end,
        )

    def _decode_pending(self) -> list[PacketTrace]:
        """Decode what the ring buffer delivered; join records with late syscall returns."""
        records, self._records = self._records, []
        now = time.monotonic()
        out = []
        for buf in records:
            try:
                rec = decode.decode_any(buf)
            except decode.DecodeError:
                self._decode_errors += 1
                continue
            if isinstance(rec, decode.ExitRecord):
                self._exits[rec.key] = (rec.sys_exit_ns, now)
            elif rec.syscall and not rec.sys_exit_ns:
                self._waiting.append((now, rec))
            else:
                out.append(self._trace(rec))
        out.extend(self._join_exits(now))
        return out

    def _join_exits(self, now: float, flush: bool = False) -> list[PacketTrace]:
        out = []
        still = []
        for seen, rec in self._waiting:
            hit = self._exits.pop(rec.key, None)
            if hit is not None:
                out.append(self._trace(rec, sys_exit_ns=hit[0]))
            elif flush or now - seen >= EXIT_WAIT_S:
                out.append(self._trace(rec))  # still inside a long syscall: report without
            else:
                still.append((seen, rec))
        self._waiting = still
        if self._exits:
            self._exits = {k: v for k, v in self._exits.items() if now - v[1] < EXIT_KEEP_S}
        return out

    def _scan_tracks(self, cut: bool = False) -> list[PacketTrace]:
        """Age out entries nobody touched (the user-space side of the timeout), and notice
        entries the LRU maps evicted: created - ended - live, when it persists across scans.
        ``cut``: a trace window just closed, so every track still live ends now (its later
        stages can no longer be seen); reported as aged, counted apart from losses."""
        bpf = self._bpf
        g = bpf[b"gate"][ctypes.c_int(0)]
        created, ended = int(g.created), int(g.ended)
        now_ns = time.monotonic_ns()
        out: list[PacketTrace] = []
        live = 0
        tracks = bpf[b"tracks"]
        for key, leaf in list(tracks.items()):
            try:
                rec = decode.decode_record(bytes(leaf))
            except decode.DecodeError:
                self._decode_errors += 1
                continue
            if not cut and now_ns - rec.first_ns <= self._timeout_ns:
                live += 1
                continue
            try:
                del tracks[key]
            except KeyError:
                continue  # the kernel ended it meanwhile and reports it
            self._user_ended += 1
            if cut:
                self._window_cut += 1
            else:
                self._user_aged += 1
            rec = dataclasses.replace(rec, end=decode.END_AGED)
            if rec.syscall and not rec.sys_exit_ns:
                self._waiting.append((time.monotonic(), rec))  # its return may still come
            else:
                out.append(self._trace(rec, end="aged"))
        pending = bpf[b"sys_pending"]
        for key, leaf in list(pending.items()):
            if now_ns - int(leaf.first_ns) <= self._timeout_ns:
                live += 1
                continue
            try:
                del pending[key]
            except KeyError:
                continue
            self._user_ended += 1
            self._user_exit_missed += 1  # the thread never returned (or we missed it)
        unexplained = created - ended - self._user_ended - live
        # Concurrent ends make one scan overestimate; an eviction persists. Take the smaller.
        evicted = min(unexplained, self._evict_suspect)
        self._evict_suspect = max(0, unexplained)
        if evicted > 0:
            self._evicted += evicted
            self._user_ended += evicted
            self._evict_suspect -= evicted
        self._write_config()  # publishes user_ended to the gate
        return out

    # ---- counters ------------------------------------------------------------------------------

    def _sum_stats(self) -> list[int]:
        table = self._bpf[b"stats"]
        n = S_RB_FULL + len(PROBE_IDS)
        return [sum(int(v) for v in table.getvalue(ctypes.c_int(i))) for i in range(n)]

    def _read_queues(self) -> dict[tuple[int, int], QueueCounters]:
        acc: dict[tuple[int, int], list[int]] = {}

        def slot(dev: bytes | str, queue: int) -> list[int] | None:
            name = dev.decode(errors="replace") if isinstance(dev, bytes) else dev
            ifindex = self._names.ifindex(name) if name else None
            if ifindex is None:
                return None  # a device of another network namespace
            return acc.setdefault((ifindex, queue), [0, 0, 0, 0, 0])

        bpf = self._bpf
        for k, per_cpu in bpf[b"txq_stats"].items():
            s = slot(bytes(k.dev).split(b"\0", 1)[0], int(k.queue))
            if s is not None:
                s[0] += sum(int(v.packets) for v in per_cpu)
                s[1] += sum(int(v.bytes) for v in per_cpu)
                s[2] += sum(int(v.gso_segs) for v in per_cpu)
        for k, per_cpu in bpf[b"xmit_errors"].items():
            s = slot(bytes(k.dev).split(b"\0", 1)[0], int(k.queue))
            if s is not None:
                s[3] += sum(int(v) for v in per_cpu)
        for k, per_cpu in bpf[b"txq_stopped"].items():
            key = (int(k.ifindex), _queue_of_parent(int(k.parent)))
            acc.setdefault(key, [0, 0, 0, 0, 0])[4] += sum(int(v) for v in per_cpu)
        return {
            key: QueueCounters(packets=v[0], bytes=v[1], gso_segs=v[2], errors=v[3], stopped=v[4])
            for key, v in acc.items()
        }

    def xmit_errors_by_rc(self) -> dict[tuple[int, int, int], int]:
        """net_dev_xmit failures by (ifindex, queue, rc), cumulative."""
        out: dict[tuple[int, int, int], int] = {}
        with self._lock:
            if self._bpf is None:
                return out
            for k, per_cpu in self._bpf[b"xmit_errors"].items():
                idx = self._names.ifindex(bytes(k.dev).split(b"\0", 1)[0].decode(errors="replace"))
                if idx is not None:
                    key = (idx, int(k.queue), int(k.rc))
                    out[key] = out.get(key, 0) + sum(int(v) for v in per_cpu)
        return out

    def _read_softirq(self) -> dict[int, CpuSoftirqCounters]:
        if "softirq" in self._unavailable:
            return {}
        per_cpu = self._bpf[b"softirq"].getvalue(ctypes.c_int(0))
        online = _online_cpus()
        out = {}
        for cpu, v in enumerate(per_cpu):
            if online is not None and cpu not in online:
                continue
            out[cpu] = CpuSoftirqCounters(
                net_tx_raises=int(v.raises[0]),
                net_tx_runs=int(v.runs[0]),
                net_tx_ns=int(v.ns[0]),  # estimated from 1 run in 8, see txtop.bpf.c
                net_rx_raises=int(v.raises[1]),
                net_rx_runs=int(v.runs[1]),
                net_rx_ns=int(v.ns[1]),
            )
        return out

    def _recursion_misses(self) -> dict[str, int]:
        """Runs the kernel skipped because another BPF program was active on that CPU
        (bpf_prog_info.recursion_misses, shown in /proc/self/fdinfo of each program)."""
        out: dict[str, int] = {}
        for name, fn in list(self._bpf.funcs.items()):
            try:
                text = Path(f"/proc/self/fdinfo/{int(fn.fd)}").read_text()
            except (OSError, ValueError):
                continue
            for line in text.splitlines():
                if line.startswith("recursion_misses:"):
                    n = int(line.split()[1])
                    if n:
                        label = name.decode() if isinstance(name, bytes) else str(name)
                        out[f"skipped:{label}"] = n
        return out

    def _status_from(self, stats: list[int]) -> ProbeStatus:
        breakdown: dict[str, int] = {}
        for i, probe in enumerate(PROBE_IDS):
            if stats[S_RB_FULL + i]:
                breakdown[f"ringbuf_full:{probe}"] = stats[S_RB_FULL + i]
        extra = {
            "track_full": stats[S_TRACK_FULL],
            "counter_map_full": stats[S_COUNTER_FULL],
            "track_lost": stats[S_TRACK_LOST],
            "track_aged": stats[S_TRACK_AGED] + self._user_aged,
            "track_evicted": self._evicted,
            "decode_errors": self._decode_errors,
        }
        breakdown.update({k: v for k, v in extra.items() if v})
        # Loss in txtop's own pipeline (full ring buffer or track table, dropped tracks) is
        # kept apart from runs the kernel skipped because another BPF program was active on
        # that CPU: those are real blind spots too, but no setting of ours can remove them.
        lost = sum(breakdown.values())
        skipped = self._recursion_misses()
        breakdown.update(skipped)
        self.dql_stalls = stats[S_DQL_STALL]
        return ProbeStatus(
            state="running",
            lost_events=lost,
            skipped_runs=sum(skipped.values()),
            breakdown=breakdown,
            sampling={
                **self._sampling(stats[S_SAMPLED], stats[S_RATE_LIMITED]),
                "sys_exit_unmatched": self._user_exit_missed,
                "window_cut": self._window_cut,
            },
            unavailable=dict(self._unavailable),
            notice=self._notice,
            filters=self._filters(),
            trace_mode=self._windows.mode,
            trace_duty_pct=round(100.0 * self._windows.duty, 2),
            bql_stalls=None if "bql_stall" in self._unavailable else stats[S_DQL_STALL],
        )

    # ---- shutdown ------------------------------------------------------------------------------

    def _cleanup_bpf(self) -> None:
        with self._lock:
            bpf, self._bpf = self._bpf, None
            if bpf is not None:
                # Classic tracepoints first, all at once: one by one, bcc's cleanup would
                # wait for each one's RCU grace periods in turn (~70 ms each here).
                fds = list(bpf.tracepoint_fds.values())
                bpf.tracepoint_fds.clear()
                threads = [
                    threading.Thread(target=_close_fd, args=(fd,), daemon=True) for fd in fds
                ]
                for th in threads:
                    th.start()
                for th in threads:
                    th.join(5.0)
                self._closer.wait_for(None, 5.0)
                try:
                    bpf.cleanup()  # detaches every other program, frees the ring buffer
                except Exception:  # noqa: S110 - closing fds; the kernel drops the rest on exit
                    pass

    def close(self) -> None:
        """Detach everything. Idempotent; safe from any thread (waits for a poll in flight)."""
        self._closed = True
        self._cleanup_bpf()
        if self._state in ("running", "starting"):
            self._state = "off"
            self._reason = "probes detached"
        try:
            atexit.unregister(self.close)
        except Exception:  # noqa: S110
            pass


class _Closer:
    """Closes the perf events of detached classic tracepoints, one at a time, on a thread.

    Closing one waits for RCU grace periods in the kernel (~70 ms here), so it must not hold
    up the drain. One at a time, because closing the syscalls:* events together made the
    traced sender stall for 0.2 s at the end of each window (bench/RESULTS.md, "trace
    windows"); in turn they cost nothing measurable."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: list[tuple[bytes, int]] = []
        self._active: bytes | None = None
        self._thread: threading.Thread | None = None

    def close(self, tp: bytes, fd: int) -> None:
        with self._cond:
            self._queue.append((tp, fd))
            if self._thread is None:  # the thread clears it, under the lock, as it ends
                self._thread = threading.Thread(target=self._run, name="txtop-detach", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._queue:
                    self._thread = None
                    return
                # A tracepoint costs every packet until its close completes: the ones most
                # packets pass go first.
                i = min(range(len(self._queue)), key=lambda j: _close_rank(self._queue[j][0]))
                self._active, fd = self._queue.pop(i)
            _close_fd(fd)
            with self._cond:
                self._active = None
                self._cond.notify_all()

    def busy(self) -> bool:
        with self._cond:
            return bool(self._queue) or self._active is not None

    def wait_for(self, tp: bytes | None, timeout_s: float) -> None:
        """Until ``tp`` (None: everything) is closed, or the timeout."""
        deadline = time.monotonic() + timeout_s

        def pending() -> bool:
            if tp is None:
                return bool(self._queue) or self._active is not None
            return self._active == tp or any(t == tp for t, _ in self._queue)

        with self._cond:
            while pending():
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._cond.wait(min(left, 0.05))


# Classic tracepoints in the order their detach is worth most: every packet passes the
# first ones; a send syscall only of its kind.
CLOSE_ORDER = (
    b"net:net_dev_start_xmit",
    b"net:net_dev_queue",
    b"qdisc:qdisc_dequeue",
    b"syscalls:sys_enter_sendto",
    b"qdisc:qdisc_enqueue",
    b"syscalls:sys_enter_sendmsg",
    b"syscalls:sys_enter_sendmmsg",
)


def _close_rank(tp: bytes) -> int:
    return CLOSE_ORDER.index(tp) if tp in CLOSE_ORDER else len(CLOSE_ORDER)


def _close_fd(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def _online_cpus() -> set[int] | None:
    try:
        text = Path("/sys/devices/system/cpu/online").read_text().strip()
    except OSError:
        return None
    out: set[int] = set()
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-", 1)
            out.update(range(int(a), int(b) + 1))
        elif part:
            out.add(int(part))
    return out
