"""The ``events`` ring buffer (BPF_MAP_TYPE_RINGBUF), read directly through mmap of its fd.

bcc's ``open_ring_buffer`` calls a Python ctypes callback per record, on the thread that polls;
that is ~1 us of Python per record before any decoding, and nothing drains while that thread
decodes. Here the map is mapped as libbpf's ``ring_buffer__add`` maps it (kernel/bpf/ringbuf.c,
``ringbuf_map_mmap``):
  - offset 0, one page, read-write: ``consumer_pos`` (the only thing user space writes);
  - offset page_size, read-only: one page with ``producer_pos``, then the data area, which the
    kernel maps twice in a row, so a record that wraps past the end reads contiguously.
Each record starts with an 8-byte header (u32 len with BPF_RINGBUF_BUSY_BIT while the producer
still writes it and BPF_RINGBUF_DISCARD_BIT when it was discarded, u32 pg_off) and records are
8-byte aligned. ``walk`` (pure, tested on constructed bytes in tests/test_ringbuf.py) finds the
committed records from the consumer position up to the first busy one; ``RingReader`` copies
them out in one slice, advances ``consumer_pos`` and queues the slice for the decode side.

Threading: ``RingReader.start`` runs the drain on its own thread, woken by epoll on the map fd
(the kernel's ``ringbuf_map_poll_kern`` reports EPOLLIN while data is available, and
``bpf_ringbuf_submit`` wakes the wait queue when the consumer had caught up). ``drain()`` may
also be called from another thread (the tracer's read, so a read sees everything committed
before it); a lock keeps one consumer at a time. ``take()`` hands the queued chunks over under
a second, short lock; the decode side never holds the drain up for longer than a list swap.

Open question (measured on this project's VM, kernel 6.18, 2 vCPUs, 50k records/s into a 4 MiB
ring read every 0.5 s): a few reservations per 200k records are refused (counted as
ringbuf_full, in sys_exit and net_dev_xmit alike) while the ring is less than half full, and
this reader's consumer_pos is never ahead of producer_pos. bcc's consumer (libbpf
``ring_buffer__poll``) in the same test had none in 6 x 200k, but there the process decoded
nothing (a confound: less CPU busy); this reader had more when it passed more often (no
batching: 10-30 a round, consumer_pos stored per record: 17-67; 2 ms batches: 2-10; 10 ms:
0-3, once 52). The cause is not found.
"""

from __future__ import annotations

import mmap
import select
import struct
import threading
from dataclasses import dataclass
from typing import Any

BPF_RINGBUF_BUSY_BIT = 1 << 31  # include/uapi/linux/bpf.h: record reserved, not committed
BPF_RINGBUF_DISCARD_BIT = 1 << 30  # committed with bpf_ringbuf_discard: skip it
BPF_RINGBUF_HDR_SZ = 8  # struct bpf_ringbuf_hdr {u32 len; u32 pg_off;}
_LEN_MASK = ~(BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT) & 0xFFFFFFFF

# Native formats on purpose: struct's native "Q"/"I" load and store with one memcpy of the
# whole word (a single aligned access), while the standard-size "<Q" packs byte by byte. The
# kernel reads consumer_pos concurrently (bpf_ringbuf_reserve): a torn, byte-wise store of it
# could read as a position far behind, i.e. a full ring, and records would be refused; a torn
# load of producer_pos could send the walk past the data.
_U32 = struct.Struct("I")
_U64 = struct.Struct("Q")

# The drain stops copying when this many records are queued and not yet taken by the decode
# side: the ring then fills and the kernel counts what it refuses (stats S_RB_FULL,
# ringbuf_full in the status). It bounds both the memory (~20 MB of track records) and the
# decode work of one tick (~0.4 s of one core here): beyond ~80k records/s at the default 1 s
# refresh the dashboard sheds load as counted losses instead of starving its own UI thread.
MAX_BACKLOG_RECORDS = 80_000
WAIT_S = 0.1  # the drain thread's longest sleep: how soon it notices close()
# After a pass that found records the drain thread lets more gather before the next one: each
# pass costs a syscall and a GIL hand-over whether it finds 1 record or 1000, and the fewer
# passes, the fewer refusals (module docstring). The wait is a quarter of the time the ring takes to fill
# at FILL_BYTES_PER_S (~200k records/s of txtop's mix), at most MAX_BATCH_S: 10 ms at the
# default 1024 pages, 2 ms at 64, nothing for a one-page test ring.
FILL_BYTES_PER_S = 30e6
MAX_BATCH_S = 0.01


@dataclass(frozen=True, slots=True)
class Chunk:
    """Committed records copied out of the ring in one slice: record i is
    ``data[offsets[i] : offsets[i] + lengths[i]]`` (headers and discarded records are skipped)."""

    data: bytes
    offsets: list[int]
    lengths: list[int]

    def records(self) -> list[bytes]:
        data = self.data
        return [data[o : o + n] for o, n in zip(self.offsets, self.lengths, strict=True)]


def walk(
    view: bytes | bytearray | memoryview | mmap.mmap, cons: int, prod: int, mask: int
) -> tuple[list[int], list[int], int]:
    """The committed records between the consumer and producer positions.

    ``view`` is the data area as mapped (twice in a row, 2 * (mask + 1) bytes); ``cons`` and
    ``prod`` are the free-running positions (only their low bits index the view). Returns
    (offsets of each committed record's data, relative to ``cons & mask``; their lengths; the
    new consumer position). Stops at the first busy record: records are committed out of order
    across CPUs, and the consumer may only pass a record once it is committed. Discarded
    records are passed over without being returned."""
    offsets: list[int] = []
    lengths: list[int] = []
    base = cons & mask
    pos = cons
    unpack = _U32.unpack_from
    while pos < prod:
        at = pos & mask
        (hdr,) = unpack(view, at)
        if hdr & BPF_RINGBUF_BUSY_BIT:
            break
        n = hdr & _LEN_MASK
        if not hdr & BPF_RINGBUF_DISCARD_BIT:
            off = at - base
            if off < 0:  # wrapped: the second mapping continues the first
                off += mask + 1
            offsets.append(off + BPF_RINGBUF_HDR_SZ)
            lengths.append(n)
        pos += (n + BPF_RINGBUF_HDR_SZ + 7) & ~7
    return offsets, lengths, pos


class RingReader:
    """Owns the two mmaps of one ring buffer map and the thread that drains it."""

    def __init__(self, map_fd: int, size: int, page_size: int = mmap.PAGESIZE) -> None:
        if size <= 0 or size & (size - 1) or size % page_size:
            raise ValueError(f"ring buffer size {size} is not a power-of-two multiple of pages")
        self._mask = size - 1
        self._page = page_size
        self._batch_s = min(MAX_BATCH_S, size / FILL_BYTES_PER_S / 4)
        self._cons_map = mmap.mmap(
            map_fd, page_size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE
        )
        try:
            self._prod_map = mmap.mmap(
                map_fd, page_size + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ, offset=page_size
            )
        except BaseException:
            self._cons_map.close()
            raise
        self._data = memoryview(self._prod_map)[page_size:]
        self._epoll = select.epoll()
        self._epoll.register(map_fd, select.EPOLLIN)
        self._drain_lock = threading.Lock()  # one consumer at a time
        self._inbox_lock = threading.Lock()  # the queued chunks, taken by the decode side
        self._inbox: list[Chunk] = []
        self._backlog = 0  # records queued, not yet taken
        self._room = threading.Event()  # set by take(): the backlog went down
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.records = 0  # committed records copied out (cumulative)
        self.peak_fill = 0  # the most bytes found waiting in the ring at one pass (a diagnostic)
        self.error: BaseException | None = None  # why the drain thread stopped, if it did

    # ---- consumer --------------------------------------------------------------------------

    def drain(self) -> int:
        """Copy out everything committed now; returns the number of records."""
        with self._drain_lock:
            if self._closed:
                return 0
            cons_map = self._cons_map
            (cons,) = _U64.unpack_from(cons_map, 0)
            # libbpf reads producer_pos and each header with load-acquire (the kernel publishes
            # them with smp_store_release). Python has no barrier: on x86-64 (TSO) every aligned
            # load already has acquire order, which is what this relies on.
            (prod,) = _U64.unpack_from(self._prod_map, 0)
            if prod == cons:
                return 0
            if prod - cons > self.peak_fill:
                self.peak_fill = prod - cons
            data = self._data
            offsets, lengths, new = walk(data, cons, prod, self._mask)
            if new == cons:
                return 0
            start = cons & self._mask
            # One copy for the whole span: the double mapping keeps it contiguous.
            span = bytes(data[start : start + (new - cons)])
            _U64.pack_into(cons_map, 0, new)  # the kernel may now reuse the space
            if offsets:
                with self._inbox_lock:
                    self._inbox.append(Chunk(span, offsets, lengths))
                    self._backlog += len(offsets)
                self.records += len(offsets)
            return len(offsets)

    def take(self) -> list[Chunk]:
        """The chunks drained since the last take, oldest first."""
        with self._inbox_lock:
            out, self._inbox = self._inbox, []
            self._backlog = 0
        self._room.set()
        return out

    @property
    def backlog(self) -> int:
        """Records queued, not yet taken."""
        return self._backlog

    # ---- the drain thread ------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None and not self._closed:
            self._thread = threading.Thread(target=self._run, name="txtop-ringbuf", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                if self._backlog >= MAX_BACKLOG_RECORDS:
                    self._room.clear()
                    if self._backlog >= MAX_BACKLOG_RECORDS:
                        self._room.wait(WAIT_S)
                    continue
                self._epoll.poll(WAIT_S)
                if self.drain() and self._batch_s > 0.0005:
                    self._stop.wait(self._batch_s)
        except Exception as exc:  # the owner's read() reports it (the tracer: unavailable)
            self.error = exc

    def close(self) -> None:
        """Stop the thread, then unmap. Idempotent."""
        self._stop.set()
        self._room.set()
        th, self._thread = self._thread, None
        if th is not None and th is not threading.current_thread():
            th.join(5.0)
        with self._drain_lock:
            if self._closed:
                return
            self._closed = True
            self._data.release()
            self._epoll.close()
            self._prod_map.close()
            self._cons_map.close()


def open_ring(table: Any, pages: int) -> RingReader:
    """A reader of bcc's ring buffer table (``bpf[b"events"]``). For BPF_MAP_TYPE_RINGBUF the
    map's max_entries is the data area's size in bytes."""
    size = int(getattr(table, "max_entries", 0) or pages * mmap.PAGESIZE)
    return RingReader(int(table.map_fd), size)
