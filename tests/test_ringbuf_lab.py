"""The ring buffer read through mmap (probes/bpf/ringbuf.py) against the real kernel: the real
tracer in a veth lab, traffic from a bounded sender, records counted at the tap.

The drain runs on its own thread: while the sender runs, nothing calls ``read()`` (nobody
decodes), yet a burst many times the ring's size must arrive whole."""

from __future__ import annotations

import mmap
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from senders import Sink, free_lab_subnet, sender_argv

from txtop.core.model import PacketTrace
from txtop.core.source import TracerReading
from txtop.lab.netns import Lab
from txtop.probes.bpf import abi
from txtop.probes.bpf.tracer import Tracer, probe_prerequisites

PORT = 5309
PAGES = 64  # 256 KiB, the default before issue 13: a small ring makes the drain thread work
UDP_FRAME = 14 + 20 + 8 + 64

root = pytest.mark.root


@pytest.fixture
def lab() -> Iterator[Lab]:
    tag = f"rb{os.getpid() % 100000}"
    with Lab(tag=tag, queues=4, subnet=free_lab_subnet()) as created:
        yield created


def _tracer(lab: Lab, pages: int) -> Tracer:
    why = probe_prerequisites()
    if why:
        pytest.skip(f"probes cannot run here: {why}")
    # Every packet of this lab's device, the probes attached all the time.
    t = Tracer(
        [lab.ifindex],
        sample_every=1,
        max_samples_per_s=1_000_000,
        trace_duty=1.0,
        ringbuf_pages=pages,
    )
    t.start()
    assert t.running, t.status.reason
    return t


def send_udp(lab: Lab, count: int, gap_us: int) -> tuple[int, int]:
    """(pid, datagrams the kernel accepted) of one bounded sender run."""
    argv = sender_argv("udp", lab.peer_ip, str(PORT), "--count", str(count), "--size", "64")
    argv += ["--gap-us", str(gap_us)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    words = proc.stdout.split()  # "sent N pid P"
    return int(words[3]), int(words[1])


def ring_losses(reading: TracerReading) -> int:
    return sum(v for k, v in reading.status.breakdown.items() if k.startswith("ringbuf_full:"))


def read_until(
    t: Tracer, done: Callable[[list[PacketTrace]], bool], timeout_s: float = 20.0
) -> tuple[list[PacketTrace], TracerReading]:
    packets: list[PacketTrace] = []
    deadline = time.monotonic() + timeout_s
    while True:
        reading = t.read()
        packets.extend(reading.packets)
        if done(packets) or time.monotonic() > deadline:
            return packets, reading
        t.poll(0.05)


@root
def test_a_burst_far_beyond_the_ring_arrives_whole_without_a_read(lab: Lab) -> None:
    t = _tracer(lab, PAGES)
    taps: list[bytes] = []
    try:
        with Sink(lab.ns_argv([]), PORT):
            send_udp(lab, 2, 0)  # the peer's MAC first: the measured packets do not wait on ARP
            _, before = read_until(t, lambda ps: len(ps) >= 2, 5.0)
            t.record_tap = taps.append
            # ~2 records per datagram (the track, the syscall's late return): ~10,000 records,
            # several times what the ring holds; no read() meanwhile.
            pid, sent = send_udp(lab, 5000, 50)
            mine = lambda ps: [p for p in ps if p.pid == pid and p.len == UDP_FRAME]  # noqa: E731
            packets, reading = read_until(t, lambda ps: len(mine(ps)) >= sent)
        assert len(mine(packets)) == sent
        assert ring_losses(reading) == ring_losses(before), reading.status.breakdown
        sizes = {len(b) for b in taps}
        assert sizes <= {abi.RECORD_SIZE, abi.EXIT_RECORD_SIZE}
        assert len(taps) >= sent
        # What went through the ring: several times what it holds at once.
        through = sum((len(b) + 8 + 7) & ~7 for b in taps)
        assert through > 4 * PAGES * mmap.PAGESIZE
    finally:
        t.close()
    assert not [th for th in threading.enumerate() if th.name == "txtop-ringbuf"]


@root
def test_records_the_ring_refuses_are_retried_not_lost(lab: Lab) -> None:
    """A 1-page ring whose drain thread is held (what a stalled drain looks like to the
    kernel) refuses most records: each refusal is counted (sampling.ringbuf_retried) and the
    track stays parked in its map (txtop.bpf.c end_track), to be reported by a later touch or
    the user-space scan. One whose skb address the sender's next datagram reuses before that
    is replaced and counted lost (ringbuf_full:net_dev_queue). Nothing goes missing uncounted:
    every datagram is either reported, complete, or counted in that loss."""
    why = probe_prerequisites()
    if why:
        pytest.skip(f"probes cannot run here: {why}")
    t = Tracer(
        [lab.ifindex], sample_every=1, max_samples_per_s=1_000_000, ringbuf_pages=1, trace_duty=1.0
    )
    t.start()
    try:
        assert t.running, t.status.reason
        ring = t._ring
        assert ring is not None
        with Sink(lab.ns_argv([]), PORT):
            send_udp(lab, 2, 0)
            with ring._drain_lock:  # what a stalled drain looks like to the kernel
                pid, sent = send_udp(lab, 500, 0)
            mine = lambda ps: [p for p in ps if p.pid == pid and p.len == UDP_FRAME]  # noqa: E731
            replaced = lambda r: r.status.breakdown.get("ringbuf_full:net_dev_queue", 0)  # noqa: E731
            packets: list[PacketTrace] = []
            deadline = time.monotonic() + 20.0
            while True:  # every read's packets kept: its status says how many were replaced
                reading = t.read()
                packets.extend(reading.packets)
                if len(mine(packets)) + replaced(reading) >= sent:
                    break
                if time.monotonic() > deadline:
                    break
                t.poll(0.05)
        # A 4 KiB ring holds 16 records: of ~1000 records most were refused at first.
        retried = reading.status.sampling.get("ringbuf_retried", 0)
        assert retried > sent // 2, reading.status.sampling
        assert len(mine(packets)) > 0 and replaced(reading) > 0, reading.status.breakdown
        assert len(mine(packets)) + replaced(reading) == sent, reading.status.breakdown
        assert all(p.track == "complete" and "xmit" in p.stages for p in mine(packets))
    finally:
        t.close()
