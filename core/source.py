"""Snapshot sources: live, replay and demo all hand the UI the same immutable snapshots.

A source runs its own background thread and calls ``sink(snapshot)`` from it once per tick.
The sink must be thread-safe (the Textual app passes ``app.post_message``-based callbacks).
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from txtop.core.controls import ReplayControls
from txtop.core.model import PacketTrace, ProbeStatus, Snapshot

Sink = Callable[[Snapshot], None]

MIN_INTERVAL_S = 0.1
MAX_INTERVAL_S = 60.0


@dataclass(frozen=True, slots=True)
class QueueCounters:
    """Cumulative per-(ifindex, queue) counters from the BPF per-CPU maps (summed over CPUs)."""

    packets: int = 0
    bytes: int = 0
    gso_segs: int = 0
    errors: int = 0  # net_dev_xmit rc != 0
    stopped: int = 0  # qdisc_dequeue with txq_state XOFF bits set


@dataclass(frozen=True, slots=True)
class CpuSoftirqCounters:
    """Cumulative per-CPU NET_TX/NET_RX softirq counters from irq:softirq_entry/exit (runs as
    the probes saw them, for auto duty; /proc/softirqs counts them for the panels)."""

    net_tx_runs: int = 0
    net_tx_ns: int = 0
    net_rx_runs: int = 0
    net_rx_ns: int = 0


@dataclass(frozen=True, slots=True)
class TracerReading:
    """What the BPF tracer hands the collector once per tick."""

    status: ProbeStatus
    packets: tuple[PacketTrace, ...] = ()  # traces finished since the last reading
    queues: Mapping[tuple[int, int], QueueCounters] = field(default_factory=dict)
    cpus: Mapping[int, CpuSoftirqCounters] = field(default_factory=dict)
    # Devices of other network namespaces (--netns): per (netns inode, ifindex, queue), apart
    # from ``queues`` because names and ifindexes repeat across namespaces.
    ns_queues: Mapping[tuple[int, int, int], QueueCounters] = field(default_factory=dict)
    # Cumulative seconds the probes were attached (probes/bpf/duty.py trace windows): the sampling
    # group (softirq runs/time start there) and the late group (per-queue counters).
    # Counters grow only while attached, so their rates are deltas over these, not over the
    # wall clock. None: the source does not window (always attached).
    traced_s: float | None = None
    traced_late_s: float | None = None


class SnapshotSource(ABC):
    """Base of every source. Subclasses implement ``_produce``; the base runs the tick loop.

    Every source satisfies core/controls.py ``Notices``: ``notice`` and ``damage`` are "" unless
    a subclass has something to say.
    """

    mode = "live"
    notice = ""  # one line for the user about where the data comes from
    damage = ""  # why the data ends early (a damaged recording)

    def __init__(self, interval_s: float = 1.0) -> None:
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._sink: Sink | None = None
        self._tick_now = False
        self.error: BaseException | None = None

    @property
    def interval_s(self) -> float:
        return self._interval_s

    def set_interval(self, seconds: float) -> None:
        self._interval_s = min(MAX_INTERVAL_S, max(MIN_INTERVAL_S, seconds))
        self._wake.set()  # apply now rather than after the old, possibly long, interval

    def request_tick(self) -> None:
        """Produce the next snapshot right away (e.g. after a replay seek or step)."""
        self._tick_now = True
        self._wake.set()

    def start(self, sink: Sink) -> None:
        self._sink = sink
        self._thread = threading.Thread(target=self._run, name=f"txtop-{self.mode}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 3.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self._close()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    @property
    def replay_controls(self) -> ReplayControls | None:
        """Pause, step, seek and speed when the source plays a recording; None otherwise."""
        return None

    def _run(self) -> None:
        try:
            self._prepare()
            deadline = time.monotonic() + self._interval_s
            while not self._stop.is_set():
                # Wait in short slices so a cancelled worker exits promptly; _poll lets
                # the tracer drain its ring buffer between ticks.
                while not self._stop.is_set():
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    if self._wake.is_set():
                        self._wake.clear()
                        if self._tick_now:
                            self._tick_now = False
                            deadline = time.monotonic()
                            break
                        deadline = min(deadline, time.monotonic() + self._interval_s)
                        continue
                    self._poll(min(left, 0.05))
                if self._stop.is_set():
                    break
                deadline += self._interval_s
                now = time.monotonic()
                if deadline < now:  # we fell behind (suspended, slow tick): do not burst
                    deadline = now + self._interval_s
                self._emit()
        except BaseException as exc:  # reported to the UI; the thread must not die silently
            self.error = exc
            if self._sink is not None:
                self._on_error(exc)
        finally:
            self._close()

    def _emit(self) -> None:
        """Produce a snapshot now and hand it to the sink (a tick, or a first picture at once)."""
        snap = self._produce()
        if snap is not None and self._sink is not None and not self._stop.is_set():
            self._sink(snap)

    def _prepare(self) -> None:
        """Runs on the worker thread before the first tick (e.g. compile the probes)."""

    def _poll(self, timeout_s: float) -> None:
        time.sleep(timeout_s)

    def _on_error(self, exc: BaseException) -> None:
        """Called on the worker thread when it dies; subclasses may post a last snapshot."""

    @abstractmethod
    def _produce(self) -> Snapshot | None:
        """Return the snapshot for the interval that just ended (None to skip a tick)."""

    def _close(self) -> None:
        """Release kernel state (BPF programs, labs). Must be idempotent."""


class FixedSource(SnapshotSource):
    """Plays a fixed list of snapshots, one per tick, then repeats the last one.

    Used by UI tests and benchmarks; needs neither root nor a kernel.
    """

    mode = "replay"

    def __init__(self, snapshots: list[Snapshot], interval_s: float = 1.0, loop: bool = False):
        super().__init__(interval_s)
        if not snapshots:
            raise ValueError("FixedSource needs at least one snapshot")
        self._snapshots = snapshots
        self._index = 0
        self._loop = loop

    def _produce(self) -> Snapshot:
        snap = self._snapshots[self._index]
        if self._index + 1 < len(self._snapshots):
            self._index += 1
        elif self._loop:
            self._index = 0
        return snap
