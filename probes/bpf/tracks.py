"""Track reconstruction: ring-buffer records and live map entries -> PacketTrace.

The kernel side keeps one track per sampled skb in the ``tracks`` LRU hash and hands it over,
once, as a ring-buffer record when it ends. User space completes the picture:
  - a record whose send syscall had not returned yet waits (EXIT_WAIT_S) for the separate exit
    record the syscall's return sends, and is joined to it by (skbaddr, first_ns);
  - entries nobody touched for the track timeout are aged out of ``tracks`` and ``sys_pending``
    here (the kernel only ages a track at its next touch);
  - entries the LRU maps evicted are noticed from the ``gate`` counters (created - ended -
    removed here - live), when the difference persists across scans;
  - when a trace window closes, every track still live is cut: ended as "aged" and counted
    apart from losses (``window_cut``), since its later stages can no longer be seen.

Only ``items()`` and ``del`` of the maps are used, so the tests drive this with dicts of bytes
(tests/test_tracks.py); the tracer hands it bcc's tables (``TrackMaps.of_bpf``).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from txtop.core.model import PacketTrace
from txtop.probes.bpf.abi import END_AGED, F_PARKED, GATE, PENDING
from txtop.probes.bpf.decode import (
    DecodeError,
    ExitRecord,
    RawRecord,
    decode_any,
    decode_record,
    to_packet_trace,
)

AGE_SCAN_INTERVAL_S = 1.0
EXIT_WAIT_S = 1.0  # how long a tied record waits for its syscall's separate exit record
EXIT_KEEP_S = 10.0  # how long an unmatched exit record is kept
# A decode batch (tens of thousands of records at a tick) gives the GIL away every this many
# records (~1 ms). A thread that waits for the GIL gets it only after the switch interval
# (5 ms) while this one computes; the UI thread, which releases it at every I/O, waits that
# long each time. time.sleep(0) is a real sleep (~80 us here): long enough for a waiting
# thread to wake and take the GIL, which a shorter release would not be.
YIELD_EVERY = 256


class TrackMap(Protocol):
    """What is used of a BPF hash: its entries (leaves convertible to bytes), and delete."""

    def items(self) -> Iterable[tuple[Any, Any]]: ...

    def __delitem__(self, key: Any) -> None: ...


@dataclass(frozen=True, slots=True)
class TrackMaps:
    """The maps of txtop.bpf.c that hold live tracks."""

    tracks: TrackMap  # skb address -> struct txtop_record
    pending: TrackMap  # thread id -> struct txtop_pending (a tied syscall awaiting its return)
    gate: Callable[[], bytes]  # struct txtop_gate: entries created and ended by the kernel

    @classmethod
    def of_bpf(cls, bpf: Any) -> TrackMaps:
        table = bpf[b"gate"]
        return cls(bpf[b"tracks"], bpf[b"sys_pending"], lambda: bytes(table[ctypes.c_int(0)]))


@dataclass(slots=True)
class TrackCounts:
    """What user space ended or could not decode (cumulative)."""

    ended: int = 0  # entries removed here (aged, cut, missed exits, evicted): config.user_ended
    aged: int = 0
    cut: int = 0  # tracks ended because their window closed (not a loss)
    exit_missed: int = 0  # a tied thread never returned (or its return was missed)
    evicted: int = 0
    decode_errors: int = 0
    parked: int = 0  # records the ring refused that the scan found parked in their maps


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """The cyclic garbage collector paused for a decode batch. Decoding makes only acyclic
    objects (tuples, dicts, frozen dataclasses), ~6 per record, and each 700 allocations start
    a young-generation collection, each 10 of those an older one, and a full one scans the
    whole heap (the dashboard's snapshots and widgets): a third of the decode time at 50k
    records/s, and pauses that hold the GIL from the ring buffer's drain thread. Paused, the
    batch is scanned once, by the first collection after it."""
    if not gc.isenabled():  # someone else paused it: leave it to them
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class Tracks:
    """Turns what the kernel side delivered into PacketTraces. Not thread-safe: the tracer
    calls it under its lock. ``publish`` is called after every scan, so the kernel side learns
    ``counts.ended`` (config.user_ended)."""

    def __init__(
        self,
        maps: TrackMaps,
        timeout_ns: int,
        *,
        counts: TrackCounts | None = None,
        publish: Callable[[], None] | None = None,
        drop_reasons: Mapping[int, str] | None = None,
        resolve_location: Callable[[int], str | None] | None = None,
        ifindex_of: Callable[[str], int | None] | None = None,
        name_of: Callable[[int], str | None] | None = None,
        resolve_cgroup: Callable[[int], str | None] | None = None,
        clock_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self._maps = maps
        self._timeout_ns = timeout_ns
        self.counts = counts if counts is not None else TrackCounts()
        self._publish = publish
        self._drop_reasons = drop_reasons or {}
        self._resolve_location = resolve_location
        self._ifindex_of = ifindex_of
        self._name_of = name_of
        self._resolve_cgroup = resolve_cgroup
        self._clock_ns = clock_ns
        self._records: list[bytes] = []
        self._waiting: list[tuple[float, RawRecord]] = []  # tied, awaiting their exit record
        self._exits: dict[tuple[int, int], tuple[int, float]] = {}  # key -> (exit_ns, seen)
        self._cut_out: list[PacketTrace] = []  # cut tracks, handed out by the next collect()
        self._evict_suspect = 0
        self._last_scan: float | None = None

    def _now_s(self) -> float:
        return self._clock_ns() / 1e9

    def add(self, buf: bytes) -> None:
        """A ring-buffer record, decoded at the next collect()."""
        self._records.append(buf)

    def add_many(self, bufs: list[bytes]) -> None:
        """Ring-buffer records in the order they were committed, decoded at the next collect()."""
        self._records.extend(bufs)

    def live(self) -> int:
        """Entries in tracks + sys_pending now (as the kernel side's gate counts them)."""
        created, ended = GATE.unpack(self._maps.gate())
        return int(created) - int(ended) - self.counts.ended

    def collect(self) -> list[PacketTrace]:
        """Everything finished since the last call: the records delivered, joined with late
        syscall returns; once a second the tracks aged out; the tracks a window cut."""
        with _no_gc():
            packets = self._decode_pending()
        now = self._now_s()
        if self._last_scan is None or now - self._last_scan >= AGE_SCAN_INTERVAL_S:
            self._last_scan = now
            packets.extend(self.scan())
        # After the scan: it may have found exits the ring refused (parked in sys_pending)
        # for records that would otherwise stop waiting now.
        packets.extend(self._join_exits(now))
        packets.extend(self._cut_out)
        self._cut_out = []
        return packets

    def cut(self) -> None:
        """A trace window closed: every live track ends now (handed out by collect())."""
        self._cut_out.extend(self.scan(cut=True))

    def _trace(
        self, rec: RawRecord, end: str | None = None, sys_exit_ns: int | None = None
    ) -> PacketTrace:
        return to_packet_trace(
            rec,
            sys_exit_ns=sys_exit_ns,
            drop_reasons=self._drop_reasons,
            resolve_location=self._resolve_location,
            ifindex_of=self._ifindex_of,
            name_of=self._name_of,
            resolve_cgroup=self._resolve_cgroup,
            end=end,
        )

    def _decode_pending(self) -> list[PacketTrace]:
        """Decode what the ring buffer delivered (collect joins records with late syscall
        returns after its scan)."""
        records, self._records = self._records, []
        now = self._now_s()
        out = []
        exits, waiting = self._exits, self._waiting
        for i in range(0, len(records), YIELD_EVERY):
            if i:
                time.sleep(0)  # the GIL to the UI and the drain thread (YIELD_EVERY)
            for buf in records[i : i + YIELD_EVERY]:
                try:
                    rec = decode_any(buf)
                except DecodeError:
                    self.counts.decode_errors += 1
                    continue
                if isinstance(rec, ExitRecord):
                    exits[rec.key] = (rec.sys_exit_ns, now)
                elif rec.syscall and not rec.sys_exit_ns:
                    waiting.append((now, rec))
                else:
                    out.append(self._trace(rec))
        return out

    def _join_exits(self, now: float) -> list[PacketTrace]:
        out = []
        still = []
        pop = self._exits.pop
        for i, (seen, rec) in enumerate(self._waiting):
            if i and not i % YIELD_EVERY:
                time.sleep(0)
            hit = pop(rec.key, None)
            if hit is not None:
                out.append(self._trace(rec, sys_exit_ns=hit[0]))
            elif now - seen >= EXIT_WAIT_S:
                out.append(self._trace(rec))  # still inside a long syscall: report without
            else:
                still.append((seen, rec))
        self._waiting = still
        if self._exits:
            self._exits = {k: v for k, v in self._exits.items() if now - v[1] < EXIT_KEEP_S}
        return out

    def scan(self, cut: bool = False) -> list[PacketTrace]:
        """Age out entries nobody touched (the user-space side of the timeout), and notice
        entries the LRU maps evicted: created - ended - live, when it persists across scans.
        ``cut``: a trace window just closed, so every track still live ends now (its later
        stages can no longer be seen); reported as aged, counted apart from losses."""
        counts = self.counts
        created, ended = GATE.unpack(self._maps.gate())
        now_ns = self._clock_ns()
        out: list[PacketTrace] = []
        live = 0
        tracks = self._maps.tracks
        for key, leaf in list(tracks.items()):
            try:
                rec = decode_record(bytes(leaf))
            except DecodeError:
                counts.decode_errors += 1
                continue
            if rec.flags & F_PARKED:  # ended, its record refused by the ring: report it now
                try:
                    del tracks[key]
                except KeyError:
                    continue  # the kernel's retry got it through meanwhile
                counts.ended += 1
                counts.parked += 1
                rec = rec._replace(flags=rec.flags & ~F_PARKED)
                if rec.syscall and not rec.sys_exit_ns:
                    self._waiting.append((self._now_s(), rec))
                else:
                    out.append(self._trace(rec))
                continue
            if not cut and now_ns - rec.first_ns <= self._timeout_ns:
                live += 1
                continue
            try:
                del tracks[key]
            except KeyError:
                continue  # the kernel ended it meanwhile and reports it
            counts.ended += 1
            if cut:
                counts.cut += 1
            else:
                counts.aged += 1
            rec = rec._replace(end=END_AGED)
            if rec.syscall and not rec.sys_exit_ns:
                self._waiting.append((self._now_s(), rec))  # its return may still come
            else:
                out.append(self._trace(rec, end="aged"))
        pending = self._maps.pending
        for key, leaf in list(pending.items()):
            skbaddr, first_ns, exit_ns = PENDING.unpack(bytes(leaf))
            if not exit_ns and now_ns - first_ns <= self._timeout_ns:
                live += 1
                continue
            try:
                del pending[key]
            except KeyError:
                continue
            counts.ended += 1
            if exit_ns:  # the send ended, the ring refused its exit record: join it here
                counts.parked += 1
                self._exits[(skbaddr, first_ns)] = (exit_ns, self._now_s())
            else:
                counts.exit_missed += 1  # the thread never returned (or we missed it)
        unexplained = created - ended - counts.ended - live
        # Concurrent ends make one scan overestimate; an eviction persists. Take the smaller.
        evicted = min(unexplained, self._evict_suspect)
        self._evict_suspect = max(0, unexplained)
        if evicted > 0:
            counts.evicted += evicted
            counts.ended += evicted
            self._evict_suspect -= evicted
        if self._publish is not None:
            self._publish()
        return out
