"""Which of the program's tracepoint hooks are attached, and the trace windows that decide it.

``PROBES`` lists every tracepoint txtop.bpf.c uses and its hook group (see probes/bpf/duty.py):
"always" stays attached; between trace windows the "sampling" group (where tracks and softirq
timings start) is detached first, the "late" group (later stages, syscall returns, per-queue
counters) once the window's tracks ended. ``Hooks`` attaches and detaches by difference with
what is wanted; ``TraceWindowDriver`` carries out the window state machine of duty.py on them.

Detaching a classic tracepoint waits for RCU grace periods in the kernel, so it runs on a
background thread (``Closer``), one at a time, the busiest tracepoint first; raw tracepoints
detach at once.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from txtop.core.text import one_line
from txtop.probes.bpf.duty import CLOSED, CONTINUOUS_MEASURE_S, OPEN, Step, TraceWindows

if TYPE_CHECKING:
    from txtop.probes.bpf.counters import Counters
    from txtop.probes.bpf.settings import ConfigMaps
    from txtop.probes.bpf.tracks import Tracks

ALWAYS, LATE, SAMPLING = "always", "late", "sampling"
SYS_ENTER_DEFINE = "TXTOP_HAVE_SYS_ENTER"
SYS_EXIT_DEFINE = "TXTOP_HAVE_SYS_EXIT"
SOCK_SEND_DEFINE = "TXTOP_HAVE_SOCK_SEND"
EXIT_AT_SEND = "TXTOP_EXIT_AT_SEND"
CLASSIC_SYSCALL_DEFINES = frozenset(
    {"TXTOP_HAVE_SYS_SENDTO", "TXTOP_HAVE_SYS_SENDMSG", "TXTOP_HAVE_SYS_SENDMMSG"}
)
# x86_64's numbers of the send syscalls (arch/x86/entry/syscalls/syscall_64.tbl), for the raw
# raw_syscalls:sys_enter (which sees numbers, not names); its argument registers (pt_regs
# si, r8) are x86_64's too. Other architectures keep the classic syscalls:sys_enter_*.
X86_64_SEND_NRS = {"TXTOP_NR_SENDTO": 44, "TXTOP_NR_SENDMSG": 46, "TXTOP_NR_SENDMMSG": 307}
OWNER_SEND = "owner_send"  # the feature name of sock:sock_send_length (its fallback is said)


@dataclass(frozen=True, slots=True)
class Probe:
    """One tracepoint the program uses, and what is lost without it."""

    category: str
    event: str
    define: str  # -D symbol that compiles it in
    raw_fn: str | None = None  # a raw tracepoint program (else the classic TRACEPOINT_PROBE)
    feature: str = ""  # stage or counter name reported in status.unavailable
    group: str = LATE
    # The raw form reads its arguments' struct members (BTF offsets): without them the
    # classic form (whose record carries the fields) is compiled instead.
    raw_needs_btf: bool = False

    @property
    def name(self) -> str:
        return f"{self.category}:{self.event}"


PROBES: tuple[Probe, ...] = (
    # the send syscalls' entry: one raw raw_syscalls:sys_enter where it can read the user's
    # registers (see raw_syscalls()), else the three classic tracepoints
    Probe(
        "raw_syscalls",
        "sys_enter",
        SYS_ENTER_DEFINE,
        "txtop_raw_sys_enter",
        "sendto",
        SAMPLING,
        raw_needs_btf=True,
    ),  # fmt: skip
    Probe("syscalls", "sys_enter_sendto", "TXTOP_HAVE_SYS_SENDTO", None, "sendto", SAMPLING),
    Probe("syscalls", "sys_enter_sendmsg", "TXTOP_HAVE_SYS_SENDMSG", None, "sendmsg", SAMPLING),
    Probe("syscalls", "sys_enter_sendmmsg", "TXTOP_HAVE_SYS_SENDMMSG", None, "sendmmsg", SAMPLING),
    # the send syscalls' return, for all three (raw: see txtop.bpf.c)
    Probe("raw_syscalls", "sys_exit", "TXTOP_HAVE_SYS_EXIT", "txtop_raw_sys_exit", "syscall_exit"),
    # raw or classic, chosen at run time (Hooks.dev_queue_classic)
    Probe(
        "net", "net_dev_queue", "TXTOP_HAVE_DEV_QUEUE", "txtop_raw_dev_queue", "dev_queue", SAMPLING
    ),
    Probe(
        "qdisc",
        "qdisc_enqueue",
        "TXTOP_HAVE_QDISC_ENQUEUE",
        "txtop_raw_qdisc_enqueue",
        "qdisc_enqueue",
        raw_needs_btf=True,
    ),  # fmt: skip
    Probe(
        "qdisc",
        "qdisc_dequeue",
        "TXTOP_HAVE_QDISC_DEQUEUE",
        "txtop_raw_qdisc_dequeue",
        "qdisc_dequeue",
        raw_needs_btf=True,
    ),  # fmt: skip
    Probe(
        "net",
        "net_dev_start_xmit",
        "TXTOP_HAVE_START_XMIT",
        "txtop_raw_start_xmit",
        "start_xmit",
        raw_needs_btf=True,
    ),  # fmt: skip
    Probe("net", "net_dev_xmit", "TXTOP_HAVE_XMIT", "txtop_raw_xmit", feature="xmit"),
    Probe("skb", "consume_skb", "TXTOP_HAVE_CONSUME_SKB", "txtop_raw_consume_skb", "free"),
    Probe("skb", "kfree_skb", "TXTOP_HAVE_KFREE_SKB", "txtop_raw_kfree_skb", "free"),
    Probe(
        "napi",
        "dql_stall_detected",
        "TXTOP_HAVE_DQL_STALL",
        "txtop_raw_dql_stall",
        "bql_stall",
        ALWAYS,
    ),  # fmt: skip
    Probe(
        "irq", "softirq_entry", "TXTOP_HAVE_SOFTIRQ", "txtop_raw_softirq_entry", "softirq", SAMPLING
    ),
    Probe("irq", "softirq_exit", "TXTOP_HAVE_SOFTIRQ", "txtop_raw_softirq_exit", "softirq"),
    # Socket owners (identity: compiled only with BTF offsets): who sends on which socket, noted
    # in process context so that a packet sent later from softirq is still named.
    Probe(
        "sock",
        "sock_send_length",
        "TXTOP_HAVE_SOCK_SEND",
        "txtop_raw_sock_send",
        OWNER_SEND,
        SAMPLING,
    ),
    Probe(
        "tcp",
        "tcp_sendmsg_locked",
        "TXTOP_HAVE_TCP_SENDMSG",
        "txtop_raw_tcp_sendmsg",
        "owner_tcp",
        SAMPLING,
    ),
    Probe(
        "sock",
        "inet_sock_set_state",
        "TXTOP_HAVE_SOCK_STATE",
        "txtop_raw_sock_state",
        "owner_connect",
        SAMPLING,
    ),
)
# The probes that need the identity offsets (txtop.bpf.c compiles them only with TXTOP_BTF).
IDENTITY_DEFINES = frozenset(
    {"TXTOP_HAVE_SOCK_SEND", "TXTOP_HAVE_TCP_SENDMSG", "TXTOP_HAVE_SOCK_STATE"}
)
# What the kernel side calls the classic form of a probe (bcc's TRACEPOINT_PROBE naming).
CLASSIC_DEV_QUEUE = "net:net_dev_queue"
# A raw tracepoint is attached by event name alone: its category, for reports.
RAW_NAMES = {p.event.encode(): p.name for p in PROBES if p.raw_fn is not None}

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


@dataclass(frozen=True, slots=True)
class Hook:
    """One attachment: ("classic", b"cat:event") or ("raw", b"event"), and its program."""

    kind: str
    tp: bytes
    fn: bytes
    group: str
    feature: str


def raw_syscalls(defines: set[str], btf: bool, offsets: Iterable[str], machine: str) -> list[str]:
    """Choose the send syscalls' entry hook in ``defines`` (changed in place): the raw
    raw_syscalls:sys_enter with BTF offsets, pt_regs' argument registers and x86_64's syscall
    numbers, else the classic syscalls:sys_enter_* tracepoints. Returns the extra -D options.
    With the raw entry and sock:sock_send_length, the latter ends the send instead of
    raw_syscalls:sys_exit, which would run for every syscall of the machine (txtop.bpf.c
    TXTOP_EXIT_AT_SEND): sys_exit is then left out."""
    have = set(offsets)
    if (
        btf
        and machine == "x86_64"
        and {"pt_regs.si", "pt_regs.r8"} <= have
        and (SYS_ENTER_DEFINE in defines)
    ):
        defines -= CLASSIC_SYSCALL_DEFINES
        nrs = [f"{k}={v}" for k, v in X86_64_SEND_NRS.items()]
        if SOCK_SEND_DEFINE in defines:
            defines.discard(SYS_EXIT_DEFINE)
            nrs.append(EXIT_AT_SEND)
        return nrs
    defines.discard(SYS_ENTER_DEFINE)
    return []


def hook_table(probes: Iterable[Probe], defines: Iterable[str], btf: bool = False) -> list[Hook]:
    """Every attachment the compiled program offers (probes whose -D symbol was passed).
    ``btf``: the kernel struct offsets were resolved, so the raw forms that read their
    arguments' members are compiled (txtop.bpf.c: TXTOP_BTF), not the classic ones; the raw
    net_dev_queue then filters by interface itself, without it the classic one does."""
    compiled = set(defines)
    hooks = []
    for p in probes:
        if p.define not in compiled:
            continue  # this kernel lacks the tracepoint: not compiled in
        raw = p.raw_fn is not None and (btf or not p.raw_needs_btf)
        if raw and p.raw_fn is not None:
            hooks.append(Hook("raw", p.event.encode(), p.raw_fn.encode(), p.group, p.feature))
        if not raw or (p.name == CLASSIC_DEV_QUEUE and not btf):
            fn = f"tracepoint__{p.category}__{p.event}".encode()
            hooks.append(Hook("classic", p.name.encode(), fn, p.group, p.feature))
    return hooks


def hook_forms(hooks: Iterable[Hook]) -> dict[str, str]:
    """tracepoint ("category:event") -> "raw" or "classic": the form each per-packet hook is
    compiled in (both for net_dev_queue without BTF offsets: classic with -i, else raw)."""
    out: dict[str, str] = {}
    for h in hooks:
        name = h.tp.decode() if h.kind == "classic" else RAW_NAMES.get(h.tp, h.tp.decode())
        out[name] = "raw+classic" if name in out and out[name] != h.kind else h.kind
    return out


class Hooks:
    """Attaches and detaches the loaded program's hooks so that exactly the wanted groups are
    attached. A hook that fails to attach is reported in ``unavailable`` and not retried."""

    def __init__(self, bpf: Any, hooks: Sequence[Hook], unavailable: dict[str, str]) -> None:
        self._bpf = bpf
        self._hooks = list(hooks)
        self._unavailable = unavailable
        # bcc attached every classic TRACEPOINT_PROBE while loading; from here on reconcile()
        # decides what is attached.
        self._attached: set[tuple[str, bytes]] = {("classic", tp) for tp in bpf.tracepoint_fds}
        self._closer = Closer()  # classic detaches in progress
        self._raw_dev_queue_ok = True
        classic = CLASSIC_DEV_QUEUE.encode()
        self._has_classic_dev_queue = any(h.tp == classic for h in self._hooks)

    def dev_queue_classic(self, filter_dev: bool) -> bool:
        """Classic net_dev_queue when filtering by interface (it carries the name, so the
        filter acts before any per-packet work), else the cheaper raw one. Where the classic
        form is not compiled (BTF offsets: the raw form reads skb->dev->ifindex), always raw."""
        if not self._has_classic_dev_queue:
            return False
        return filter_dev or not self._raw_dev_queue_ok

    def _wanted(self, hook: Hook, late: bool, sampling: bool, filter_dev: bool) -> bool:
        if hook.tp in (b"net_dev_queue", CLASSIC_DEV_QUEUE.encode()):
            if (hook.kind == "classic") != self.dev_queue_classic(filter_dev):
                return False
        if hook.group == ALWAYS:
            return True
        return late if hook.group == LATE else sampling

    def reconcile(self, late: bool, sampling: bool, filter_dev: bool) -> None:
        """Attach/detach so that exactly the wanted groups are attached. Detach before
        attach (a packet must never be seen by both forms of net_dev_queue); sampling hooks
        go first and come last, so a track never starts without its later stages."""
        order = {SAMPLING: 0, LATE: 1, ALWAYS: 2}
        for hook in sorted(self._hooks, key=lambda h: order[h.group]):
            wanted = self._wanted(hook, late, sampling, filter_dev)
            if (hook.kind, hook.tp) in self._attached and not wanted:
                self._detach(hook)
        for hook in sorted(self._hooks, key=lambda h: -order[h.group]):
            wanted = self._wanted(hook, late, sampling, filter_dev)
            if (hook.kind, hook.tp) not in self._attached and wanted:
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

    def closing_busy(self) -> bool:
        """Detaches of classic tracepoints still running in the kernel."""
        return self._closer.busy()

    def detach_all(self) -> None:
        """Detach everything and free the program (the ring buffer with it)."""
        bpf = self._bpf
        # Classic tracepoints first, all at once: one by one, bcc's cleanup would wait for
        # each one's RCU grace periods in turn (~70 ms each here).
        fds = list(bpf.tracepoint_fds.values())
        bpf.tracepoint_fds.clear()
        threads = [threading.Thread(target=_close_fd, args=(fd,), daemon=True) for fd in fds]
        for th in threads:
            th.start()
        for th in threads:
            th.join(5.0)
        self._closer.wait_for(None, 5.0)
        try:
            bpf.cleanup()  # detaches every other program, frees the ring buffer
        except Exception:  # noqa: S110 - closing fds; the kernel drops the rest on exit
            pass


class Closer:
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
                i = min(range(len(self._queue)), key=lambda j: close_rank(self._queue[j][0]))
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


def close_rank(tp: bytes) -> int:
    return CLOSE_ORDER.index(tp) if tp in CLOSE_ORDER else len(CLOSE_ORDER)


def _close_fd(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


class TraceWindowDriver:
    """Carries out the trace windows (duty.TraceWindows) on the loaded program: attaches and
    detaches the hook groups, switches sampling in the config map, ends the tracks a closing
    window leaves behind, and (auto duty) feeds the measured rates back."""

    def __init__(
        self,
        windows: TraceWindows,
        hooks: Hooks,
        tracks: Tracks,
        config: ConfigMaps,
        counters: Counters,
    ) -> None:
        self._windows = windows
        self._hooks = hooks
        self._tracks = tracks
        self._config = config
        self._counters = counters
        self._measure_base: tuple[float, int, int] | None = None  # (late_s, packets, runs)
        self._measure_last = 0.0

    def reconcile(self) -> None:
        """Attach exactly the groups the window's state wants (and the net_dev_queue form the
        filters want)."""
        state = self._windows.state
        self._hooks.reconcile(state != CLOSED, state == OPEN, self._config.filter_dev)

    def start(self, now: float) -> None:
        """Open the first window. Until the config is written (sample_every 0) every program
        returns at once: no track starts before all of its stages are attached."""
        self._apply(self._windows.start(now))

    def step(self) -> float:
        """Advance the trace windows; returns seconds until the next thing to do."""
        now = time.monotonic()
        step = self._windows.step(now, self._tracks.live(), self._hooks.closing_busy())
        if step.attach_late or step.attach_sampling or step.detach_sampling or step.detach_late:
            self._apply(step)
        elif (
            step.state == OPEN
            and self._windows.fixed is None
            and now - self._measure_last >= CONTINUOUS_MEASURE_S
        ):
            self._measure_last = now  # continuous tracing: a flood must be seen at once
            self._measure()
        deadline = self._windows.next_deadline(now)
        return 0.1 if deadline is None else max(0.0, deadline - now)

    def _apply(self, step: Step) -> None:
        if step.detach_sampling:
            # Sampling off first, in the map: a detached classic tracepoint (net_dev_queue
            # with -i) keeps running until its close completes, a few hundred ms later.
            self._config.write()
        self.reconcile()
        if step.detach_late and self._tracks.live() > 0:
            # Tracks the drain grace did not see end (a packet held in a shaping qdisc): end
            # them here rather than let them age into "lost" two seconds from now.
            self._tracks.cut()
        if step.attach_sampling:
            self._config.generation += 1  # syscalls entered before this window are never tied
            self._config.write()
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
        packets, runs = self._counters.packets_and_softirq_runs()
        return late_s, packets, runs

    def _measure(self) -> None:
        """Auto duty: the packet and softirq rates seen since the last measurement."""
        base, point = self._measure_base, self._measure_point()
        self._measure_base = point
        if base is not None:
            self._windows.measured(point[1] - base[1], point[2] - base[2], point[0] - base[0])
