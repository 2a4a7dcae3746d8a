"""The ring-buffer walk (probes/bpf/ringbuf.py ``walk``) on constructed bytes: a data area
mapped twice in a row as the kernel maps it, records with 8-byte headers, busy and discarded
records, a record wrapping past the end, both record sizes of txtop."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from txtop.probes.bpf import abi
from txtop.probes.bpf.ringbuf import (
    BPF_RINGBUF_BUSY_BIT,
    BPF_RINGBUF_DISCARD_BIT,
    BPF_RINGBUF_HDR_SZ,
    Chunk,
    walk,
)

SIZE = 4096
MASK = SIZE - 1
TRACK = abi.RECORD_SIZE  # 248
EXIT = abi.EXIT_RECORD_SIZE  # 32


class Ring:
    """A producer writing records as bpf_ringbuf_reserve/submit do, into one copy of the data
    area; ``view()`` is the area mapped twice (what user space sees)."""

    def __init__(self, start: int = 0) -> None:
        self.area = bytearray(SIZE)
        self.prod = start

    def put(self, payload: bytes, flags: int = 0) -> int:
        at = self.prod
        total = (len(payload) + BPF_RINGBUF_HDR_SZ + 7) & ~7
        blob = struct.pack("<II", len(payload) | flags, 0) + payload
        for i, b in enumerate(blob):
            self.area[(at + i) & MASK] = b
        self.prod += total
        return at

    def set_len(self, at: int, word: int) -> None:
        for i, b in enumerate(struct.pack("<I", word)):
            self.area[(at + i) & MASK] = b

    def view(self) -> bytes:
        return bytes(self.area) * 2


def payload(n: int, tag: int) -> bytes:
    return bytes((tag + i) & 0xFF for i in range(n))


def records(view: bytes, cons: int, offsets: list[int], lengths: list[int]) -> list[bytes]:
    base = cons & MASK
    return [view[base + o : base + o + n] for o, n in zip(offsets, lengths, strict=True)]


def test_committed_records_in_order_and_the_consumer_passes_them() -> None:
    ring = Ring()
    want = [payload(TRACK, 1), payload(EXIT, 2), payload(TRACK, 3)]
    for p in want:
        ring.put(p)
    offsets, lengths, new = walk(ring.view(), 0, ring.prod, MASK)
    assert records(ring.view(), 0, offsets, lengths) == want
    assert lengths == [TRACK, EXIT, TRACK]
    assert new == ring.prod == 256 + 40 + 256  # 8-byte header, 8-byte aligned


def test_stops_at_the_first_busy_record() -> None:
    ring = Ring()
    ring.put(payload(TRACK, 1))
    busy = ring.put(payload(EXIT, 2), flags=BPF_RINGBUF_BUSY_BIT)
    ring.put(payload(TRACK, 3))  # committed by another CPU, after the busy one
    offsets, lengths, new = walk(ring.view(), 0, ring.prod, MASK)
    assert lengths == [TRACK]
    assert new == busy  # the consumer must not pass an uncommitted record
    # Once it is committed, the rest follows from there.
    ring.set_len(busy, EXIT)
    offsets, lengths, new = walk(ring.view(), busy, ring.prod, MASK)
    assert records(ring.view(), busy, offsets, lengths) == [payload(EXIT, 2), payload(TRACK, 3)]
    assert new == ring.prod


def test_discarded_records_are_passed_over() -> None:
    ring = Ring()
    ring.put(payload(TRACK, 1), flags=BPF_RINGBUF_DISCARD_BIT)
    ring.put(payload(EXIT, 2))
    offsets, lengths, new = walk(ring.view(), 0, ring.prod, MASK)
    assert records(ring.view(), 0, offsets, lengths) == [payload(EXIT, 2)]
    assert new == ring.prod


def test_a_record_wrapping_past_the_end_reads_whole_through_the_second_mapping() -> None:
    start = 10 * SIZE + SIZE - 96  # free-running positions: only the low bits index
    ring = Ring(start)
    ring.put(payload(EXIT, 7))  # 40 bytes, ends 56 before the end
    ring.put(payload(TRACK, 9))  # header at -56, data wraps
    ring.put(payload(EXIT, 11))  # wholly past the end: offset relative to the start, > mask
    offsets, lengths, new = walk(ring.view(), start, ring.prod, MASK)
    got = records(ring.view(), start, offsets, lengths)
    assert got == [payload(EXIT, 7), payload(TRACK, 9), payload(EXIT, 11)]
    assert (start & MASK) + offsets[2] > SIZE  # past the first mapping's end, in the second
    assert new == ring.prod
    # The copy the reader makes: one slice from the consumer position.
    span = ring.view()[start & MASK : (start & MASK) + (new - start)]
    assert Chunk(span, offsets, lengths).records() == got


def test_nothing_to_read() -> None:
    ring = Ring(123 * 8)
    assert walk(ring.view(), ring.prod, ring.prod, MASK) == ([], [], ring.prod)


@given(
    st.integers(0, 1 << 20).map(lambda p: p * 8),
    st.lists(st.tuples(st.sampled_from([TRACK, EXIT, 1, 13, 64]), st.booleans()), max_size=12),
)
def test_any_sequence_round_trips(start: int, items: list[tuple[int, bool]]) -> None:
    ring = Ring(start)
    want = []
    for i, (n, discard) in enumerate(items):
        p = payload(n, i)
        if ring.prod + ((n + 15) & ~7) - start > SIZE:
            break  # the producer never overruns the consumer
        ring.put(p, BPF_RINGBUF_DISCARD_BIT if discard else 0)
        if not discard:
            want.append(p)
    offsets, lengths, new = walk(ring.view(), start, ring.prod, MASK)
    assert records(ring.view(), start, offsets, lengths) == want
    assert new == ring.prod
    assert all(o % 8 == 0 for o in offsets)
