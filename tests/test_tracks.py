"""Track reconstruction (probes/bpf/tracks.py) on fake maps: dicts of bytes in the layouts of
abi.py stand in for the kernel side's ``tracks``, ``sys_pending`` and ``gate``; a fake clock."""

from __future__ import annotations

from typing import Any

import pytest

from txtop.probes.bpf import abi
from txtop.probes.bpf.tracks import (
    AGE_SCAN_INTERVAL_S,
    EXIT_KEEP_S,
    EXIT_WAIT_S,
    TrackMaps,
    Tracks,
)

MS = 1_000_000
S = 1_000 * MS
TIMEOUT = 2 * S
T0 = 100 * S


def record(**values: Any) -> bytes:
    """A struct txtop_record: fields by name (arrays as tuples), zero where not given."""
    flat: list[Any] = []
    for name, fmt in abi.RECORD_FIELDS:
        if fmt.endswith("x"):
            continue
        if fmt.endswith("s"):
            flat.append(values.get(name, b""))
        elif fmt[:-1]:  # an array
            flat.extend(values.get(name, (0,) * int(fmt[:-1])))
        else:
            flat.append(values.get(name, 0))
    return abi.RECORD.pack(*flat)


def stages(**at: int) -> tuple[int, ...]:
    return tuple(at.get(name, 0) for name in abi.STAGE_ORDER)


class FakeKernel:
    """The kernel side's bookkeeping: a track is created at net_dev_queue (gate.created) and
    ended once (gate.ended), by a probe that deletes it and emits its record."""

    def __init__(self) -> None:
        self.tracks: dict[int, bytes] = {}
        self.pending: dict[int, bytes] = {}
        self.created = 0
        self.ended = 0
        self.now = T0
        self.published: list[int] = []
        self.gate_read: bytes | None = None  # a gate read earlier, for the next scan

    def maps(self) -> TrackMaps:
        return TrackMaps(self.tracks, self.pending, self._gate)

    def _gate(self) -> bytes:
        earlier, self.gate_read = self.gate_read, None
        return earlier or abi.GATE.pack(self.created, self.ended)

    def tracker(self, timeout_ns: int = TIMEOUT) -> Tracks:
        tracks = Tracks(
            self.maps(),
            timeout_ns,
            publish=lambda: self.published.append(tracks.counts.ended),
            ifindex_of={"veth0": 7}.get,
            clock_ns=lambda: self.now,
        )
        return tracks

    def start(self, skb: int, first_ns: int | None = None, **values: Any) -> None:
        first = self.now if first_ns is None else first_ns
        values.setdefault("ts", stages(dev_queue=first))
        self.tracks[skb] = record(skbaddr=skb, first_ns=first, dev=b"veth0", **values)
        self.created += 1

    def end(self, skb: int, **values: Any) -> bytes:
        """The track ends in the kernel: deleted, emitted as a ring-buffer record."""
        old = self.tracks.pop(skb)
        self.ended += 1
        first = abi.RECORD.unpack(old)[1]
        values.setdefault("ts", stages(dev_queue=first, start_xmit=first + 1, xmit=first + 2))
        return record(skbaddr=skb, first_ns=first, dev=b"veth0", **values)

    def evict(self, skb: int) -> None:
        """The LRU map dropped the entry: nobody ends it, nothing is emitted."""
        del self.tracks[skb]


@pytest.fixture
def kernel() -> FakeKernel:
    return FakeKernel()


def test_an_ended_track_becomes_a_packet_trace(kernel: FakeKernel) -> None:
    t = kernel.tracker()
    kernel.start(0xA)
    assert t.live() == 1
    t.add(kernel.end(0xA, len=106, flags=abi.F_QUEUE | abi.F_RC, queue=2))
    assert t.live() == 0
    (p,) = t.collect()
    assert (p.track, p.dev, p.ifindex, p.len, p.queue) == ("complete", "veth0", 7, 106, 2)
    assert list(p.stages) == ["dev_queue", "start_xmit", "xmit"]
    assert t.collect() == []  # handed out once


def test_a_tied_record_waits_for_its_syscall_return(kernel: FakeKernel) -> None:
    t = kernel.tracker()
    kernel.start(0xB, syscall=abi.SYS_SENDTO, tgid=42, tid=42)
    t.add(kernel.end(0xB, syscall=abi.SYS_SENDTO, tgid=42, tid=42))
    assert t.collect() == []  # the syscall had not returned when the track ended
    kernel.now += 5 * MS
    t.add(abi.EXIT_RECORD.pack(0xB, T0, T0 + 4 * MS, 42))
    (p,) = t.collect()
    assert p.pid == 42 and p.syscall == "sendto" and p.syscall_exit_ns == T0 + 4 * MS


def test_an_exit_record_may_come_first(kernel: FakeKernel) -> None:
    t = kernel.tracker()
    kernel.start(0xB, syscall=abi.SYS_SENDMSG, tid=5)
    rec = kernel.end(0xB, syscall=abi.SYS_SENDMSG, tid=5)
    t.add(abi.EXIT_RECORD.pack(0xB, T0, T0 + 9, 5))
    assert t.collect() == []
    t.add(rec)
    (p,) = t.collect()
    assert p.syscall_exit_ns == T0 + 9


def test_a_tied_record_without_its_return_is_reported_after_the_wait(kernel: FakeKernel) -> None:
    t = kernel.tracker()
    kernel.start(0xC, syscall=abi.SYS_SENDTO)
    t.add(kernel.end(0xC, syscall=abi.SYS_SENDTO))
    assert t.collect() == []
    kernel.now += int(EXIT_WAIT_S * S) - 1
    assert t.collect() == []
    kernel.now += 1
    (p,) = t.collect()
    assert p.syscall == "sendto" and p.syscall_exit_ns is None


def test_unmatched_exit_records_are_kept_for_a_while_only(kernel: FakeKernel) -> None:
    t = kernel.tracker()
    t.add(abi.EXIT_RECORD.pack(0xD, T0, T0 + 1, 1))
    t.collect()
    kernel.now += int(EXIT_KEEP_S * S)
    t.collect()  # forgotten now
    kernel.start(0xD, first_ns=T0, syscall=abi.SYS_SENDTO)
    t.add(kernel.end(0xD, syscall=abi.SYS_SENDTO))
    assert t.collect() == []  # waits: the exit record it could have joined is gone
    kernel.now += int(EXIT_WAIT_S * S)
    (p,) = t.collect()
    assert p.syscall_exit_ns is None


def test_untouched_tracks_age_out_of_the_map(kernel: FakeKernel) -> None:
    t = kernel.tracker()
    t.collect()  # the first collect scans
    kernel.start(0x1, ts=stages(dev_queue=T0, qdisc_enqueue=T0 + MS))  # held in a qdisc
    kernel.now += TIMEOUT // 2
    kernel.start(0x2)
    kernel.now += TIMEOUT // 2 + 1  # 0x1 is now older than the timeout, 0x2 is not
    (p,) = t.collect()
    assert p.track == "aged" and list(p.stages) == ["dev_queue", "qdisc_enqueue"]
    assert set(kernel.tracks) == {0x2} and t.live() == 1
    assert (t.counts.aged, t.counts.ended, t.counts.cut) == (1, 1, 0)
    assert kernel.published[-1] == 1  # the kernel side learns what user space removed


def test_the_aging_scan_runs_once_a_second(kernel: FakeKernel) -> None:
    t = kernel.tracker()
    t.collect()
    kernel.start(0x1, first_ns=T0 - 2 * TIMEOUT)
    assert t.collect() == [] and 0x1 in kernel.tracks  # scanned less than a second ago
    kernel.now += int(AGE_SCAN_INTERVAL_S * S)
    assert [p.track for p in t.collect()] == ["aged"]
    assert len(kernel.published) == 2


def test_an_aged_tied_track_still_waits_for_its_return(kernel: FakeKernel) -> None:
    t = kernel.tracker()
    kernel.start(0x3, first_ns=T0 - 3 * S, syscall=abi.SYS_SENDTO, tid=9)
    assert t.collect() == []
    t.add(abi.EXIT_RECORD.pack(0x3, T0 - 3 * S, T0 + 5, 9))
    (p,) = t.collect()
    assert p.track == "aged" and p.syscall_exit_ns == T0 + 5


def test_a_window_cut_ends_every_live_track_and_is_not_a_loss(kernel: FakeKernel) -> None:
    t = kernel.tracker()
    t.collect()
    kernel.start(0x1)
    kernel.start(0x2)
    kernel.now += MS  # young: aging would keep them
    t.cut()
    assert kernel.tracks == {} and t.live() == 0
    assert (t.counts.cut, t.counts.aged, t.counts.ended) == (2, 0, 2)
    assert kernel.published[-1] == 2
    cut = t.collect()  # handed out by the next collect
    assert sorted(p.track for p in cut) == ["aged", "aged"]
    assert t.collect() == []


def test_syscalls_that_never_return_are_dropped_from_pending(kernel: FakeKernel) -> None:
    t = kernel.tracker()
    kernel.pending[77] = abi.PENDING.pack(0x9, T0 - TIMEOUT - 1, 0)
    kernel.pending[78] = abi.PENDING.pack(0x8, T0, 0)
    kernel.created += 2
    assert t.collect() == []  # not a packet of its own
    assert set(kernel.pending) == {78}
    assert (t.counts.exit_missed, t.counts.ended, t.live()) == (1, 1, 1)


def test_a_track_the_ring_refused_is_reported_from_the_map_not_lost(kernel: FakeKernel) -> None:
    # The kernel side ended it (xmit), the ring buffer refused the record: parked in the map
    # with its end, found by the next scan and reported as it ended, not as aged.
    t = kernel.tracker()
    kernel.start(0xB, ts=stages(dev_queue=T0, start_xmit=T0 + 1, xmit=T0 + 2))
    parked = abi.RECORD.unpack(kernel.tracks[0xB])
    kernel.tracks[0xB] = record(
        skbaddr=0xB, first_ns=T0, dev=b"veth0", ts=stages(dev_queue=T0, start_xmit=T0 + 1,
        xmit=T0 + 2), flags=abi.F_PARKED | abi.F_RC, end=0,
    )  # fmt: skip
    assert parked[1] == T0
    kernel.now += MS  # young: it would not age yet
    (p,) = t.collect()
    assert p.track == "complete" and list(p.stages) == ["dev_queue", "start_xmit", "xmit"]
    assert kernel.tracks == {} and t.counts.parked == 1 and t.counts.aged == 0
    assert t.live() == 0 and kernel.published[-1] == 1


def test_a_send_end_the_ring_refused_joins_its_record(kernel: FakeKernel) -> None:
    t = kernel.tracker()
    kernel.start(0xC, syscall=abi.SYS_SENDTO, ts=stages(sendto=T0 - 5, dev_queue=T0))
    t.add(kernel.end(0xC, syscall=abi.SYS_SENDTO))  # no sys_exit_ns: waits for its exit
    assert t.collect() == []
    kernel.pending[55] = abi.PENDING.pack(0xC, T0, T0 + 9)  # parked exit
    kernel.created += 1
    kernel.now += 2 * AGE_SCAN_INTERVAL_S * S
    (p,) = t.collect()
    assert p.syscall_exit_ns == T0 + 9 and kernel.pending == {}
    assert t.counts.parked == 1 and t.counts.exit_missed == 0


def test_an_eviction_is_counted_once_it_persists(kernel: FakeKernel) -> None:
    t = kernel.tracker()
    kernel.start(0x1)
    kernel.start(0x2)
    kernel.evict(0x1)
    t.scan()
    assert t.counts.evicted == 0  # one scan may see a concurrent end: not yet
    t.scan()
    assert t.counts.evicted == 1 and t.counts.ended == 1 and t.live() == 1
    t.scan()
    assert t.counts.evicted == 1  # counted once


def test_a_track_ended_between_gate_read_and_map_walk_is_not_an_eviction(
    kernel: FakeKernel,
) -> None:
    t = kernel.tracker()
    kernel.start(0x1)
    kernel.gate_read = abi.GATE.pack(kernel.created, kernel.ended)
    rec = kernel.end(0x1)  # ends after the gate was read: one scan sees created - ended = 1
    t.scan()
    t.add(rec)
    t.collect()
    t.scan()
    assert t.counts.evicted == 0


def test_a_track_the_kernel_ends_during_the_scan_is_left_to_the_kernel(
    kernel: FakeKernel,
) -> None:
    class Racing(dict[int, bytes]):
        def __delitem__(self, key: int) -> None:
            raise KeyError(key)  # the kernel deleted it first, and reports it

    kernel.tracks = Racing()
    t = kernel.tracker()
    kernel.start(0x1, first_ns=T0 - 2 * TIMEOUT)
    assert t.scan() == []
    assert (t.counts.aged, t.counts.ended) == (0, 0)


def test_records_that_do_not_decode_are_counted(kernel: FakeKernel) -> None:
    t = kernel.tracker()
    t.add(b"\0" * 100)
    t.add(record(end=9))
    kernel.tracks[0x5] = b"\0" * 10
    assert t.collect() == []
    assert t.counts.decode_errors == 3
