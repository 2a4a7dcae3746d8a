"""The BPF TX-path tracer: compiles probes/bpf/txtop.bpf.c with bcc, attaches it, and reads it.

The collector owns one ``Tracer`` and calls it from its worker thread: ``start()`` (compile and
attach; never raises, the status says why not), ``poll()`` between ticks (steps the trace
windows, waits), ``read()`` once per tick (decodes), ``close()`` from any thread,
``set_sampling()`` and ``set_filters()`` from any thread (a lock serialises them with
poll/read). The ring buffer drains on a thread of its own (ringbuf.py), which never takes that
lock, so a long decode does not stop the drain. Attachments are file descriptors of this
process, so the kernel also removes them when the process dies, however it dies.

``Tracer`` is a facade over parts with one job each:
  prerequisites.py  root, bcc, tracefs, headers, the tracepoints present; the compile
  hooks.py          hook groups, attach/detach by difference, the trace windows, close order
  abi.py            record layout, probe ids, stat slots, stage order (shared with the C side)
  ringbuf.py        the ``events`` ring buffer through mmap, drained on its own thread
  tracks.py         ring records and map entries -> PacketTrace (aging, window cuts)
  counters.py       per-queue and per-CPU counters, stats slots, lost and skipped -> status
  settings.py       the validated settings, written into the config and filter maps
  ifnames.py        interface name <-> ifindex, cached
  btf.py            kernel struct offsets from the running kernel's BTF (flow and owner identity;
                    prerequisites.identity_cflags turns them into -D flags, or one reason)
  cgroups.py        the owners' cgroup ids -> cgroup v2 paths, cached
"""

from __future__ import annotations

import atexit
import platform
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from txtop.core.filters import FlowFilter
from txtop.core.model import ProbeStatus
from txtop.core.source import TracerReading
from txtop.core.text import exc_line
from txtop.probes.bpf import abi, hooks
from txtop.probes.bpf.btf import DEFAULT_BTF
from txtop.probes.bpf.cgroups import CgroupPaths
from txtop.probes.bpf.counters import Counters
from txtop.probes.bpf.decode import parse_drop_reasons
from txtop.probes.bpf.duty import DEFAULT_BUDGET, RAW_DETACH, TraceWindows
from txtop.probes.bpf.headers import DEFAULT_CACHE_ROOT, HeadersError, prepare_headers
from txtop.probes.bpf.hooks import Hooks, TraceWindowDriver, hook_table
from txtop.probes.bpf.ifnames import IfNames
from txtop.probes.bpf.kallsyms import KernelSymbols
from txtop.probes.bpf.prerequisites import (
    CFLAGS,
    Identity,
    TracerError,
    compiled,
    identity_cflags,
    mount_tracefs,
    netns_unknown,
    probe_defines,
    probe_prerequisites,
)
from txtop.probes.bpf.ringbuf import RingReader, open_ring
from txtop.probes.bpf.settings import (
    DEFAULT_MAX_SAMPLES_PER_S,
    DEFAULT_RINGBUF_PAGES,
    DEFAULT_SAMPLE_EVERY,
    MAX_SAMPLE_EVERY,
    MAX_SAMPLES_PER_S,
    TRACK_TIMEOUT_S,
    ConfigMaps,
    Settings,
    check_devices,
    check_filters,
    check_flow,
)
from txtop.probes.bpf.tracks import TrackCounts, TrackMaps, Tracks

# Said when sock:sock_send_length is missing (kernels before 6.3): which fallback is active.
OWNER_FALLBACK = (
    "sock:sock_send_length not in this kernel; fallback: socket owners from "
    "tcp:tcp_sendmsg_locked, connect() and the sendto/sendmsg/sendmmsg ties "
    "(write()/sendfile() on UDP sockets stay unnamed: a write tracepoint would tax every file "
    "write of the machine)"
)

# What other modules import from here (the CLI, the collector, the lab, bench and tests).
__all__ = [
    "CFLAGS",
    "MAX_SAMPLES_PER_S",
    "MAX_SAMPLE_EVERY",
    "Tracer",
    "TracerError",
    "probe_prerequisites",
]


@dataclass(frozen=True, slots=True)
class _Loaded:
    """The compiled program and the parts that work on it (present while attached)."""

    bpf: Any
    hooks: Hooks
    tracks: Tracks
    counters: Counters
    config: ConfigMaps
    driver: TraceWindowDriver


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
        btf_path: Path | None = DEFAULT_BTF,
        flow: FlowFilter | None = None,
        devices: Sequence[tuple[int, int]] | None = None,
        namespaces: Sequence[int] | None = None,
    ) -> None:
        # devices: of other network namespaces, (netns inode, ifindex), filtered beside our
        # ifindexes; namespaces: other namespaces whose devices are counted (settings.py)
        self._settings = Settings(
            ifindexes, pids, sample_every, max_samples_per_s, ringbuf_pages, track_timeout_s,
            devices, namespaces,
        )  # fmt: skip
        self._settings.flow = check_flow(flow)  # protocols, ports, hosts (see settings.py)
        self._header_cache = header_cache
        self._btf_path = btf_path  # kernel struct offsets (flow and owner identity) come from it
        self.identity = Identity()  # what start() resolved
        # Share of the time the per-packet probes are attached: None = auto (probes/bpf/duty.py).
        self._windows = TraceWindows(trace_duty, trace_budget)

        self._lock = threading.RLock()  # guards the bcc object and everything below
        self._loaded: _Loaded | None = None
        self._closed = False
        self._state = "starting"
        self._reason = "compiling probes..."
        self._notice = ""
        self._unavailable: dict[str, str] = {}
        self._hook_forms: dict[str, str] = {}  # tracepoint -> "raw" | "classic" (hooks.py)
        self._ksyms = KernelSymbols()
        self._names = IfNames()
        self._cgroups = CgroupPaths()  # owner cgroup id -> cgroupfs path, cached
        self.start_s: float | None = None  # how long start() took
        # The ``events`` ring buffer, read through mmap on its own thread (probes/bpf/ringbuf.py);
        # set while running. Not under the lock: its hand-over to read() has its own short one.
        self._ring: RingReader | None = None
        # Called with each raw ring-buffer record, on the worker at read() (tests capture them
        # as decode fixtures; bench/drain.py counts them).
        self.record_tap: Callable[[bytes], None] | None = None
        self.dql_stalls = 0

    # ---- status ---------------------------------------------------------------------------------

    @property
    def status(self) -> ProbeStatus:
        return ProbeStatus(
            state=self._state,
            reason=self._reason,
            sampling=self._settings.sampling(),
            unavailable=dict(self._unavailable),
            notice=self._notice,
            filters=self._settings.filters(),
            trace_mode=self._windows.mode,
            trace_duty_pct=round(100.0 * self._windows.duty, 2),
            trace_period_s=self._trace_period_s(),
            hooks=dict(self._hook_forms),
        )

    def _trace_period_s(self) -> float | None:
        geom = self._windows.geometry()
        return None if geom is None else round(geom[1], 3)

    @property
    def running(self) -> bool:
        return self._state == "running"

    @property
    def trace_state(self) -> str:
        """The trace window's state: open, draining or closed (probes/bpf/duty.py)."""
        state: str = self._windows.state
        return state

    # ---- start ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Compile and attach. Never raises: on failure the status is "unavailable"."""
        t0 = time.monotonic()
        try:
            self._start()
        except Exception as exc:  # any failure must leave the dashboard running
            self._state = "unavailable"
            self._reason = exc_line(exc)
            self._release()
        finally:
            self.start_s = time.monotonic() - t0

    def _start(self) -> None:
        if self._closed:
            raise TracerError("tracer closed before it started")
        why = probe_prerequisites()
        if why:
            raise TracerError(why)
        root = mount_tracefs()
        try:
            plan, self._notice = prepare_headers(self._header_cache)
        except HeadersError as exc:
            raise TracerError(str(exc)) from None
        probes = hooks.PROBES  # read here, not at import: tests replace the table
        found = probe_defines(root, probes)
        self._unavailable.update(found.unavailable)
        # Kernel struct offsets from BTF (~10 ms): without them, no flow or owner identity,
        # and the one-line reason goes to the probe line (notice) and the JSON (unavailable).
        self.identity = identity = identity_cflags(self._btf_path)
        if not identity.available:
            self._unavailable["identity"] = identity.reason
            self._notice = "; ".join(n for n in (identity.reason, self._notice) if n)
            found.defines -= hooks.IDENTITY_DEFINES  # their programs need the offsets
            for p in probes:
                if p.define in hooks.IDENTITY_DEFINES:
                    self._unavailable.pop(p.feature, None)  # "identity" says it all
        elif "TXTOP_HAVE_SOCK_SEND" not in found.defines:
            self._unavailable[hooks.OWNER_SEND] = OWNER_FALLBACK
        if self._settings.devices or self._settings.namespaces:
            why = netns_unknown(identity)  # then every device looks like one of ours
            if why:
                self._unavailable["netns"] = why
        drop_reasons = parse_drop_reasons(found.formats.get("skb:kfree_skb", ""))
        # The send syscalls' entry: raw raw_syscalls:sys_enter or the classic sys_enter_*.
        offsets = identity.offsets if identity.offsets is not None else ()
        nrs = hooks.raw_syscalls(found.defines, identity.available, offsets, platform.machine())
        defines = sorted(found.defines | {f"TXTOP_RINGBUF_PAGES={self._settings.pages}"}) + nrs
        with (
            compiled(defines + abi.compile_defines(), plan, identity.cflags) as bpf,
            self._lock,
        ):
            if self._closed:
                bpf.cleanup()
                raise TracerError("tracer closed while starting")
            try:
                table = hook_table(probes, found.defines, identity.available)
                self._hook_forms = hooks.hook_forms(table)
                if set(self._hook_forms.values()) == {"raw"}:
                    self._windows.detach = RAW_DETACH  # no detach tail: windows come freely
                self._loaded = loaded = self._parts(bpf, table, drop_reasons)
            except BaseException:
                bpf.cleanup()
                raise
            loaded.config.write_filters()
            loaded.config.update_completion_devs()
            # The ring buffer is read through mmap on a thread of its own (not bcc's per-record
            # ctypes callback): it keeps draining while read() decodes (probes/bpf/ringbuf.py).
            self._ring = open_ring(bpf[b"events"], self._settings.pages)
            self._ring.start()
            loaded.driver.start(time.monotonic())
        self._reason = ""
        self._state = "running"
        atexit.register(self.close)

    def _parts(self, bpf: Any, table: list[hooks.Hook], drop_reasons: dict[int, str]) -> _Loaded:
        """The parts that work on the loaded program, wired together. bcc attached the classic
        tracepoints while loading; the window driver's first step reconciles that."""
        counts = TrackCounts()
        config = ConfigMaps(bpf, self._settings, self._names, self._windows, counts)
        tracks = Tracks(
            TrackMaps.of_bpf(bpf),
            self._settings.timeout_ns,
            counts=counts,
            publish=config.write,  # counts.ended reaches the kernel side as config.user_ended
            drop_reasons=drop_reasons,
            resolve_location=self._ksyms.resolve,
            ifindex_of=self._names.ifindex,
            name_of=self._names.name,
            resolve_cgroup=self._cgroups.resolve,
        )
        counters = Counters(bpf, self._names, self._unavailable, self._settings.other_namespaces)
        attach = Hooks(bpf, table, self._unavailable)
        driver = TraceWindowDriver(self._windows, attach, tracks, config, counters)
        return _Loaded(bpf, attach, tracks, counters, config, driver)

    # ---- run-time settings ---------------------------------------------------------------------

    def set_sampling(self, every: int, max_per_s: int) -> None:
        """Change 1-in-N and the samples-per-second cap at run time."""
        Settings.check_sampling(every, max_per_s)
        with self._lock:
            self._settings.every, self._settings.max_per_s = every, max_per_s
            if self._loaded is not None:
                self._loaded.config.write()

    def set_trace_duty(self, duty: float | None) -> None:
        """A fixed share of the time with the per-packet probes attached (0 < duty <= 1), or
        None for auto (probes/bpf/duty.py)."""
        with self._lock:
            self._windows.set_fixed(duty)

    def set_filters(
        self,
        ifindexes: Sequence[int] | None = None,
        pids: Sequence[int] | None = None,
        flow: FlowFilter | None = None,
        devices: Sequence[tuple[int, int]] | None = None,
    ) -> None:
        """Replace the interface, pid and flow (protocol/port/host) filters (empty/None =
        everything). The pid filter matches a packet's syscall tie or its socket's owner.
        ``devices`` (of other namespaces, (netns inode, ifindex)): None keeps them."""
        ifs, ps = check_filters(ifindexes, pids)
        checked = check_flow(flow)
        devs = check_devices(devices) if devices is not None else None
        with self._lock:
            self._settings.ifindexes, self._settings.pids = ifs, ps
            if devs is not None:
                self._settings.devices = devs
            self._settings.flow = checked
            if self._loaded is not None:
                # Filters first, then the flags that enable them, then the attach mode.
                self._loaded.config.write_filters()
                self._loaded.config.write()
                self._loaded.driver.reconcile()  # the net_dev_queue form may change

    # ---- the worker's calls ----------------------------------------------------------------------

    def poll(self, timeout_s: float) -> None:
        """Step the trace windows and wait up to ``timeout_s`` (capped at 0.1 s); the ring
        buffer drains on its own thread meanwhile. Never returns at once: the caller's loop
        must not spin."""
        timeout_s = max(0.0, min(timeout_s, 0.1))
        if self._state == "running":
            with self._lock:
                loaded = self._loaded
                due = loaded.driver.step() if loaded is not None else timeout_s
            timeout_s = max(0.001, min(timeout_s, due))
        time.sleep(timeout_s)

    def _take_records(self, tracks: Tracks) -> None:
        """Hand the drained records to the tracks (decoded by their collect()). Drains once
        more first, so a read right after a send sees every record committed before it."""
        ring = self._ring
        if ring is None:
            return
        if ring.error is not None:
            raise TracerError(f"ring buffer drain stopped: {exc_line(ring.error)}")
        ring.drain()
        tap = self.record_tap
        for chunk in ring.take():
            records = chunk.records()
            tracks.add_many(records)
            if tap is not None:
                for buf in records:
                    tap(buf)

    def read(self) -> TracerReading:
        """Everything since the last read: finished packets, cumulative counters, status."""
        with self._lock:
            loaded = self._loaded
            if loaded is None or self._state != "running":
                return TracerReading(status=self.status)
            loaded.driver.step()
            self._take_records(loaded.tracks)
            now = time.monotonic()
            traced_s, traced_late_s = self._windows.totals(now)
            loaded.config.refresh_completion_devs(now)
            packets = loaded.tracks.collect()
            flow = self._settings.flow
            if flow is not None:  # exact: what the kernel side could not hold is applied here
                packets = [p for p in packets if flow.matches(p)]
            stats = loaded.counters.stats()
            queues = loaded.counters.queues()
            ns_queues = loaded.counters.ns_queues  # other namespaces' (--netns), by inode
            cpus = loaded.counters.softirq()
            status = loaded.counters.status(self.status, stats, loaded.tracks.counts)
            self.dql_stalls = stats[abi.S_DQL_STALL]
        packets.sort(key=lambda p: p.first_ns)
        return TracerReading(
            status=status,
            packets=tuple(packets),
            queues=queues,
            ns_queues=ns_queues,
            cpus=cpus,
            traced_s=traced_s,
            traced_late_s=traced_late_s,
        )

    def xmit_errors_by_rc(self) -> dict[tuple[int, int, int], int]:
        """net_dev_xmit failures by (ifindex, queue, rc), cumulative."""
        with self._lock:
            errors: dict[tuple[int, int, int], int] = {}
            if self._loaded is not None:
                errors = self._loaded.counters.xmit_errors_by_rc()
            return errors

    # ---- shutdown ------------------------------------------------------------------------------

    def _release(self) -> None:
        with self._lock:
            loaded, self._loaded = self._loaded, None
            ring, self._ring = self._ring, None
            if ring is not None:
                ring.close()  # its thread stops and its mmaps go before the map is freed
            if loaded is not None:
                loaded.hooks.detach_all()

    def close(self) -> None:
        """Detach everything. Idempotent; safe from any thread (waits for a poll in flight)."""
        self._closed = True
        self._release()
        if self._state in ("running", "starting"):
            self._state = "off"
            self._reason = "probes detached"
        try:
            atexit.unregister(self.close)
        except Exception:  # noqa: S110
            pass
