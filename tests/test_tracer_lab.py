"""The BPF tracer against real traffic in a veth lab (root, real BPF, real kernel).

Every test sends a known, bounded amount of traffic from the root namespace to the lab peer
and checks what the tracer reports against the sender, the kernel's own counters, or an
independent bpftrace witness. Set TXTOP_CAPTURE_RINGBUF=<dir> to save the raw ring-buffer
records of the UDP, TCP and tbf tests as decode fixtures (see tests/data/ringbuf/README.md).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from senders import Sink, free_lab_subnet, sender_argv

from txtop.core.model import PacketTrace
from txtop.core.source import TracerReading
from txtop.lab.netns import Lab
from txtop.probes.bpf import hooks, prerequisites
from txtop.probes.bpf.duty import DRAIN_GRACE_S, MAX_WINDOW_S
from txtop.probes.bpf.headers import current_plan
from txtop.probes.bpf.tracer import Tracer, probe_prerequisites

PORT = 5301
UDP_PAYLOAD = 64
UDP_FRAME = 14 + 20 + 8 + UDP_PAYLOAD
ETH_P_IP = 0x0800
CAPTURE = os.environ.get("TXTOP_CAPTURE_RINGBUF")


# ---- helpers ----------------------------------------------------------------------------------


def _skip_unless_probes() -> None:
    why = probe_prerequisites()
    if why:
        pytest.skip(f"probes cannot run here: {why}")


def _route_dev(ip: str) -> str:
    out = subprocess.run(["ip", "-j", "route", "get", ip], capture_output=True, text=True)
    try:
        return str(json.loads(out.stdout)[0].get("dev", ""))
    except (ValueError, IndexError):
        return ""


@pytest.fixture
def lab() -> Iterator[Lab]:
    """A 4-queue veth lab on a /30 no other interface uses (other test sessions run labs at
    the same time; two links in one /30 would carry this test's packets elsewhere)."""
    tag = f"tr{os.getpid() % 100000}"
    for _ in range(5):
        with Lab(tag=tag, queues=4, subnet=free_lab_subnet()) as created:
            if _route_dev(created.peer_ip) == created.dev:
                yield created
                return
    pytest.fail("could not get a lab subnet of our own")


@pytest.fixture
def fresh(lab: Lab) -> Iterator[Tracer]:
    """A tracer for this test's lab device only (other processes on this machine send traffic
    too; it must not disturb loss counts): every packet eligible, a cap far above test rates."""
    _skip_unless_probes()
    t = Tracer(
        [lab.ifindex],
        sample_every=1,
        max_samples_per_s=200_000,
        ringbuf_pages=512,
        trace_duty=1.0,  # exact counts: the probes stay attached (windows: see below)
    )
    t.start()
    try:
        assert t.running, t.status.reason
        yield t
    finally:
        t.close()


def drain(t: Tracer) -> TracerReading:
    t.poll(0.01)
    return t.read()


def collect(
    t: Tracer,
    done: Callable[[list[PacketTrace]], bool],
    timeout_s: float = 10.0,
) -> tuple[list[PacketTrace], TracerReading]:
    """Poll and read until ``done(packets)`` or the deadline; the caller asserts."""
    packets: list[PacketTrace] = []
    deadline = time.monotonic() + timeout_s
    while True:
        t.poll(0.05)
        reading = t.read()
        packets.extend(reading.packets)
        if done(packets) or time.monotonic() > deadline:
            return packets, reading


def pipeline_losses(reading: TracerReading) -> int:
    """Lost events caused by the tracer's own pipeline (not kernel-skipped program runs)."""
    return sum(v for k, v in reading.status.breakdown.items() if not k.startswith("skipped:"))


def run_sender(*args: str, timeout: float = 60) -> int:
    """Run a bounded sender process to completion; return its pid."""
    proc = subprocess.run(sender_argv(*args), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr
    words = proc.stdout.split()
    assert words[0] == "sent" and int(words[1]) > 0, proc.stdout
    return int(words[3])


def udp_of(packets: list[PacketTrace], lab: Lab, pid: int | None = None) -> list[PacketTrace]:
    return [
        p
        for p in packets
        if p.dev == lab.dev
        and p.protocol == ETH_P_IP
        and p.len == UDP_FRAME
        and (pid is None or p.pid == pid)
    ]


def warm_up(lab: Lab) -> None:
    """Resolve the peer's MAC first so the measured packets do not wait behind ARP."""
    run_sender("udp", lab.peer_ip, str(PORT), "--count", "2", "--size", "1")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        out = subprocess.run(
            ["ip", "neigh", "show", lab.peer_ip, "dev", lab.dev], capture_output=True, text=True
        ).stdout
        if "REACHABLE" in out or "STALE" in out or "PERMANENT" in out:
            return
        time.sleep(0.02)


def tc_queue_packets(dev: str) -> dict[int, int]:
    """Per-TX-queue packets from the mq children (`tc -s -j qdisc`): parent 1:N is queue N-1."""
    out = subprocess.run(
        ["tc", "-s", "-j", "qdisc", "show", "dev", dev], capture_output=True, text=True, check=True
    ).stdout
    result = {}
    for q in json.loads(out):
        parent = q.get("parent", "")
        if parent.startswith("1:"):
            result[int(parent[2:], 16) - 1] = int(q["packets"])
    return result


def link_tx_packets(dev: str) -> int:
    out = subprocess.run(
        ["ip", "-s", "-j", "link", "show", "dev", dev], capture_output=True, text=True, check=True
    ).stdout
    return int(json.loads(out)[0]["stats64"]["tx"]["packets"])


class Capture:
    """Saves raw ring-buffer records (TXTOP_CAPTURE_RINGBUF) as decode fixtures."""

    def __init__(self, t: Tracer, name: str, limit: int = 12) -> None:
        self.t, self.name, self.limit = t, name, limit
        self.records: list[bytes] = []

    def __enter__(self) -> Capture:
        if CAPTURE:
            self.t.record_tap = self.records.append
        return self

    def __exit__(self, *exc: object) -> None:
        self.t.record_tap = None
        if not CAPTURE or not self.records:
            return
        out = Path(CAPTURE)
        out.mkdir(parents=True, exist_ok=True)
        # Keep a spread: the first records, and exit records if any.
        picked = [r for r in self.records if len(r) != 32][: self.limit]
        picked += [r for r in self.records if len(r) == 32][:2]
        for i, rec in enumerate(picked):
            path = out / f"{self.name}-{i:02d}.bin"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(rec)


# ---- tests ------------------------------------------------------------------------------------

root = pytest.mark.root


@root
def test_probes_ready_quickly(fresh: Tracer, lab: Lab) -> None:
    assert fresh.start_s is not None
    # The issue asks for 2 s; the bound leaves room for a loaded CI machine.
    assert fresh.start_s < 4.0, f"start took {fresh.start_s:.2f} s"
    st = fresh.status
    assert st.state == "running" and not st.unavailable
    if Path("/sys/kernel/btf/vmlinux").exists():  # every hook a raw tracepoint (issue 13)
        assert set(st.hooks.values()) == {"raw"}, st.hooks
        assert {"qdisc:qdisc_dequeue", "net:net_dev_start_xmit"} <= set(st.hooks)
    assert st.sampling["every"] == 1 and st.sampling["max_per_s"] == 200_000
    assert st.filters == {"ifindexes": [lab.ifindex], "pids": []}
    plan = current_plan()
    if plan.kind in ("build", "cached") and plan.common_dir is not None:
        assert "using linux-headers-" in st.notice and "BCC_KERNEL_SOURCE=" in st.notice


@root
def test_udp_packets_attributed_to_sender_with_ordered_stages(fresh: Tracer, lab: Lab) -> None:
    n = 300
    with Sink(lab.ns_argv([]), PORT), Capture(fresh, "udp"):
        warm_up(lab)
        drain(fresh)
        pid = run_sender("udp", lab.peer_ip, str(PORT), "--count", str(n), "--size", "64")
        packets, reading = collect(fresh, lambda ps: len(udp_of(ps, lab, pid)) >= n)
    mine = udp_of(packets, lab, pid)
    assert len(mine) >= n - 2, f"{len(mine)} of {n} traced with pid {pid}"
    assert pipeline_losses(reading) == 0, reading.status.breakdown
    for p in mine:
        s = p.stages
        assert p.tid == pid and p.syscall == "sendto" and p.dport == PORT
        assert s["sendto"] <= s["dev_queue"] <= s["start_xmit"] <= s["xmit"], s
        assert p.syscall_exit_ns is not None and s["xmit"] <= p.syscall_exit_ns
        assert p.queue is not None and 0 <= p.queue < 4
        assert p.ifindex == lab.ifindex and p.track == "complete"
        assert p.xmit_rc == 0
        assert p.sample_every == 1 and p.sample_max_per_s == 200_000
        # Stages veth does not have are absent: noqueue has no qdisc, and veth hands the
        # skb to the peer at net_dev_xmit (no TX completion, so no free stage).
        assert set(s) == {"sendto", "dev_queue", "start_xmit", "xmit"}, s


@root
def test_queue_counters_match_kernel_counters(fresh: Tracer, lab: Lab) -> None:
    lab.set_mq()
    with Sink(lab.ns_argv([]), PORT):
        warm_up(lab)
        drain(fresh)
        before = fresh.read().queues
        tc_before = tc_queue_packets(lab.dev)
        link_before = link_tx_packets(lab.dev)
        # Several sender processes: different sockets hash to different TX queues.
        for _ in range(6):
            run_sender("udp", lab.peer_ip, str(PORT), "--count", "150", "--size", "64")
        after = fresh.read().queues
        tc_after = tc_queue_packets(lab.dev)
        link_after = link_tx_packets(lab.dev)
    probe = {}
    for q in range(4):
        a = after.get((lab.ifindex, q))
        b = before.get((lab.ifindex, q))
        probe[q] = (a.packets if a else 0) - (b.packets if b else 0)
    kernel = {q: tc_after.get(q, 0) - tc_before.get(q, 0) for q in range(4)}
    assert sum(kernel.values()) >= 900
    for q in range(4):
        assert abs(probe[q] - kernel[q]) <= 2, (probe, kernel)
    assert abs(sum(probe.values()) - (link_after - link_before)) <= 3
    assert sum(1 for v in kernel.values() if v) >= 2, "traffic should use several queues"
    tx = after[(lab.ifindex, max(probe, key=probe.__getitem__))]
    assert tx.bytes >= tx.packets * UDP_FRAME * 0.5 and tx.gso_segs >= tx.packets


def _bpftrace_qdisc_waits(ifindex: int) -> subprocess.Popen:
    prog = (
        f"tracepoint:qdisc:qdisc_enqueue /args->ifindex == {ifindex}/ "
        "{ @s[args->skbaddr] = nsecs; } "
        f"tracepoint:qdisc:qdisc_dequeue /args->ifindex == {ifindex} && @s[args->skbaddr]/ "
        '{ printf("wait %lld %lld\\n", @s[args->skbaddr], nsecs - @s[args->skbaddr]); '
        "delete(@s[args->skbaddr]); }"
    )
    return subprocess.Popen(
        ["bpftrace", "-e", prog], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )


@root
def test_tbf_backlog_wait_grows_and_matches_bpftrace(fresh: Tracer, lab: Lab) -> None:
    if shutil.which("bpftrace") is None:
        pytest.skip("bpftrace not installed")
    n = 40
    with Sink(lab.ns_argv([]), PORT):
        warm_up(lab)
        # 2 Mbit/s: a 1042-byte frame leaves every ~4.2 ms, so 40 of them queue ~170 ms.
        lab.set_tbf(rate="2mbit", burst="2k", limit="200k")
        witness = _bpftrace_qdisc_waits(lab.ifindex)
        lines: list[str] = []
        try:
            assert witness.stdout is not None
            line = witness.stdout.readline()  # "Attaching N probes..." as it starts attaching
            assert "Attaching" in line, line
            reader = threading.Thread(target=lambda: lines.extend(witness.stdout), daemon=True)
            reader.start()
            if shutil.which("bpftool"):  # attached, as the kernel lists it (a loaded box is slow)
                deadline = time.monotonic() + 20
                while not {"qdisc_enqueue", "qdisc_dequeue"} <= _attached_names(witness.pid):
                    assert witness.poll() is None and time.monotonic() < deadline
                    time.sleep(0.05)
            drain(fresh)
            with Capture(fresh, "tbf"):
                pid = run_sender("udp", lab.peer_ip, str(PORT), "--count", str(n), "--size", "1000")
                packets, _ = collect(
                    fresh,
                    lambda ps: (
                        sum(1 for p in ps if p.pid == pid and "qdisc_dequeue" in p.stages) >= n
                    ),
                    timeout_s=20,
                )
            # Let the witness print what it saw (it reads its own buffer asynchronously).
            deadline = time.monotonic() + 20
            while sum(1 for w in list(lines) if w.startswith("wait ")) < n:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.05)
        finally:
            witness.send_signal(signal.SIGINT)
            witness.wait(20)
            lab.clear_qdisc()
    mine = sorted(
        (p for p in packets if p.pid == pid and "qdisc_dequeue" in p.stages),
        key=lambda p: p.stages["qdisc_enqueue"],
    )
    # A sender that migrates CPU inside sendto() before its packet is queued is not tied to
    # it (the tie is per CPU); under load that can hit a packet or two.
    assert len(mine) >= n - 2
    n = len(mine)
    waits = [p.stages["qdisc_dequeue"] - p.stages["qdisc_enqueue"] for p in mine]
    for p in mine:
        s = p.stages
        assert s["dev_queue"] <= s["qdisc_enqueue"] <= s["qdisc_dequeue"] <= s["start_xmit"]
        assert p.txq_state is not None
    # The backlog builds: later packets wait longer, and the last waits well over 100 ms.
    rising = sum(1 for a, b in zip(waits, waits[1:], strict=False) if b >= a)
    assert rising >= 0.9 * (n - 1), waits
    assert waits[-1] > 100_000_000 and waits[-1] > 10 * max(waits[0], 100_000), waits
    # An independent witness on the same tracepoints saw the same waits, packet by packet
    # (matched on the enqueue time; both read CLOCK_MONOTONIC a few microseconds apart).
    theirs = [tuple(map(int, w.split()[1:3])) for w in lines if w.startswith("wait ")]
    assert len(theirs) >= n - 2  # the witness may skip a run too (nested BPF programs)
    matched = 0
    for p, ours in zip(mine, waits, strict=True):
        enq, wait = min(theirs, key=lambda w: abs(w[0] - p.stages["qdisc_enqueue"]))
        if abs(enq - p.stages["qdisc_enqueue"]) < 200_000 and abs(wait - ours) < 200_000:
            matched += 1
    assert matched >= 0.9 * n, f"{matched}/{n} waits agree with bpftrace within 0.2 ms"


@root
def test_qdisc_drops_carry_reason_and_call_site(fresh: Tracer, lab: Lab) -> None:
    with Sink(lab.ns_argv([]), PORT):
        warm_up(lab)
        # A queue that holds about three 1 KB packets at a crawl: the rest of a burst drops.
        lab.set_tbf(rate="64kbit", burst="2k", limit="3k")
        try:
            drain(fresh)
            with Capture(fresh, "drop"):
                pid = run_sender("udp", lab.peer_ip, str(PORT), "--count", "30", "--size", "1000")
                packets, reading = collect(
                    fresh, lambda ps: sum(1 for p in ps if p.free_kind == "drop") >= 10
                )
        finally:
            lab.clear_qdisc()
    drops = [p for p in packets if p.pid == pid and p.free_kind == "drop"]
    assert len(drops) >= 10
    for p in drops:
        assert p.drop_reason is not None and p.drop_reason.startswith("QDISC_"), p.drop_reason
        assert p.free_location and "+0x" in p.free_location, p.free_location
        assert p.stages["dev_queue"] <= p.stages["free"] and "start_xmit" not in p.stages
        assert p.track == "complete"
    assert pipeline_losses(reading) == 0, reading.status.breakdown


@root
def test_tcp_stream_is_traced(fresh: Tracer, lab: Lab) -> None:
    with Sink(lab.ns_argv([]), PORT), Capture(fresh, "tcp"):
        warm_up(lab)
        drain(fresh)
        pid = run_sender("tcp", lab.peer_ip, str(PORT), "--bytes", str(4 << 20))
        packets, _ = collect(
            fresh, lambda ps: sum(1 for p in ps if p.pid == pid) >= 10, timeout_s=10
        )
    tcp = [p for p in packets if p.dev == lab.dev and p.protocol == ETH_P_IP]
    mine = [p for p in tcp if p.pid == pid]
    assert len(mine) >= 10, f"{len(mine)} TCP packets tied to the sender of {len(tcp)}"
    # send() is tied when its first segment leaves inside it; the rest is named by the socket
    for p in mine:
        assert p.owner is not None and p.owner.via in ("syscall", "socket"), p.owner
        assert p.syscall in (("sendto", "sendmsg") if p.owner.via == "syscall" else (None,))
    assert all(p.stages["dev_queue"] <= p.stages.get("xmit", p.stages["dev_queue"]) for p in mine)
    # TSO over veth: some skbs carry many segments (counted per queue as gso_segs).
    assert max(p.len for p in tcp) > 1500


@root
def test_no_lost_events_at_a_moderate_rate(fresh: Tracer, lab: Lab) -> None:
    with Sink(lab.ns_argv([]), PORT):
        warm_up(lab)
        before = drain(fresh)
        pid = run_sender(
            "udp", lab.peer_ip, str(PORT), "--count", "3000", "--size", "64", "--gap-us", "50"
        )
        packets, reading = collect(fresh, lambda ps: len(udp_of(ps, lab, pid)) >= 2990)
    assert len(udp_of(packets, lab, pid)) >= 2990
    # Nothing lost by the tracer itself: no ring-buffer overflow, no aged or evicted track.
    assert pipeline_losses(reading) == pipeline_losses(before), reading.status.breakdown
    # Runs the kernel skipped (a classic tracepoint program nested in another BPF program on
    # the CPU, ours or another tool's) are counted too; they stay rare.
    skipped = reading.status.lost_events - pipeline_losses(reading)
    assert skipped - (before.status.lost_events - pipeline_losses(before)) < 30


@root
def test_tiny_ring_buffer_parks_or_counts_every_record(lab: Lab) -> None:
    _skip_unless_probes()
    t = Tracer(
        [lab.ifindex], sample_every=1, max_samples_per_s=1_000_000, ringbuf_pages=1, trace_duty=1.0
    )
    t.start()
    try:
        assert t.running, t.status.reason
        with Sink(lab.ns_argv([]), PORT):
            warm_up(lab)
            # 2000 datagrams (~4000 records) into a 4 KiB ring (16 records): its drain thread
            # (probes/bpf/ringbuf.py) keeps part of them (measured: lost 683 to 3055 records),
            # nobody decodes meanwhile.
            pid = run_sender("udp", lab.peer_ip, str(PORT), "--count", "2000", "--size", "64")
            # A record the ring refuses is parked in its map (txtop.bpf.c end_track), reported
            # by a later touch or the scan, or counted lost when the next datagram reuses its
            # skb address first (ringbuf_full:net_dev_queue): every one is accounted for.
            packets: list[PacketTrace] = []
            reading = t.read()
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                packets.extend(reading.packets)
                replaced = reading.status.breakdown.get("ringbuf_full:net_dev_queue", 0)
                if len(udp_of(packets, lab, pid)) + replaced >= 2000:
                    break
                t.poll(0.05)
                reading = t.read()
        st = reading.status
        assert st.state == "running"
        assert st.sampling.get("ringbuf_retried", 0) > 100, st.sampling
        assert len(udp_of(packets, lab, pid)) + replaced == 2000, st.breakdown
    finally:
        t.close()


@root
def test_aged_tracks_are_reported(lab: Lab) -> None:
    _skip_unless_probes()
    t = Tracer(
        [lab.ifindex],
        sample_every=1,
        max_samples_per_s=100_000,
        track_timeout_s=0.3,
        trace_duty=1.0,
    )
    t.start()
    try:
        assert t.running, t.status.reason
        with Sink(lab.ns_argv([]), PORT):
            warm_up(lab)
            lab.set_tbf(rate="32kbit", burst="2k", limit="100k")  # ~0.25 s per 1 KB frame
            try:
                drain(t)
                pid = run_sender("udp", lab.peer_ip, str(PORT), "--count", "10", "--size", "1000")
                packets, reading = collect(
                    t, lambda ps: sum(1 for p in ps if p.pid == pid and p.track == "aged") >= 3
                )
            finally:
                lab.clear_qdisc()
        aged = [p for p in packets if p.pid == pid and p.track == "aged"]
        assert len(aged) >= 3
        assert all("qdisc_enqueue" in p.stages for p in aged)
        assert reading.status.breakdown.get("track_aged", 0) >= 3
        assert reading.status.lost_events >= 3
    finally:
        t.close()


@root
def test_runtime_sampling_and_filters(fresh: Tracer, lab: Lab) -> None:
    with Sink(lab.ns_argv([]), PORT):
        warm_up(lab)
        # Cap 0: nothing sampled.
        fresh.set_sampling(1, 0)
        drain(fresh)
        pid = run_sender("udp", lab.peer_ip, str(PORT), "--count", "100", "--size", "64")
        packets, _ = collect(fresh, lambda ps: False, timeout_s=0.5)
        assert not udp_of(packets, lab, pid)
        fresh.set_sampling(1, 200_000)
        # No interface filter (only this process, so that other processes' floods on this
        # machine cannot use up the sampling cap): the lab's packets are traced.
        fresh.set_filters(None, [os.getpid()])
        drain(fresh)
        _send_from_here(lab, 50)
        packets, _ = collect(fresh, lambda ps: len(udp_of(ps, lab, os.getpid())) >= 50)
        assert len(udp_of(packets, lab, os.getpid())) >= 50
        # Interface filter on another device: nothing of the lab's.
        fresh.set_filters([socket.if_nametoindex("lo")])
        drain(fresh)
        pid = run_sender("udp", lab.peer_ip, str(PORT), "--count", "100", "--size", "64")
        packets, reading = collect(fresh, lambda ps: False, timeout_s=0.5)
        assert not [p for p in packets if p.dev == lab.dev]
        assert reading.status.filters["ifindexes"] == [1]
        # ... and on the lab's device: everything of it, nothing else.
        fresh.set_filters([lab.ifindex])
        drain(fresh)
        pid = run_sender("udp", lab.peer_ip, str(PORT), "--count", "100", "--size", "64")
        packets, _ = collect(fresh, lambda ps: len(udp_of(ps, lab, pid)) >= 98)
        assert len(udp_of(packets, lab, pid)) >= 98
        assert {p.dev for p in packets} == {lab.dev}
        # Pid filter (and the lab filter): a process that is not listed is not sampled; a listed one is.
        fresh.set_filters([lab.ifindex], [os.getpid()])
        drain(fresh)
        other = run_sender("udp", lab.peer_ip, str(PORT), "--count", "50", "--size", "64")
        _send_from_here(lab, 50)
        packets, _ = collect(fresh, lambda ps: len(udp_of(ps, lab, os.getpid())) >= 50)
        assert len(udp_of(packets, lab, os.getpid())) >= 50
        assert not [p for p in packets if p.pid == other]
        assert {p.pid for p in packets} == {os.getpid()}


@root
def test_sendmsg_is_tied_and_its_destination_read(fresh: Tracer, lab: Lab) -> None:
    with Sink(lab.ns_argv([]), PORT):
        warm_up(lab)
        drain(fresh)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            for _ in range(20):
                s.sendmsg([b"g" * UDP_PAYLOAD], [], 0, (lab.peer_ip, PORT))
        finally:
            s.close()
        packets, _ = collect(fresh, lambda ps: len(udp_of(ps, lab, os.getpid())) >= 20)
    mine = udp_of(packets, lab, os.getpid())
    assert len(mine) >= 19
    assert all(p.syscall == "sendmsg" and p.dport == PORT for p in mine)
    assert all(p.tid == threading.get_native_id() for p in mine)


def _send_from_here(lab: Lab, count: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for _ in range(count):
            s.sendto(b"m" * UDP_PAYLOAD, (lab.peer_ip, PORT))
    finally:
        s.close()


@root
def test_softirq_counters_move(fresh: Tracer, lab: Lab) -> None:
    before = drain(fresh).cpus
    with Sink(lab.ns_argv([]), PORT):
        run_sender("udp", lab.peer_ip, str(PORT), "--count", "500", "--size", "64")
        # The receive side may run later, from ksoftirqd on a busy machine; the time is
        # measured on one run in 8.
        deadline = time.monotonic() + 20
        while True:
            after = drain(fresh).cpus
            assert set(after) == set(before) and after
            runs = sum(after[c].net_rx_runs - before[c].net_rx_runs for c in after)
            ns = sum(after[c].net_rx_ns - before[c].net_rx_ns for c in after)
            if (runs > 0 and ns > 0) or time.monotonic() > deadline:
                break
    assert runs > 0 and ns > 0
    assert ns < 10_000_000_000  # sane: below the wall time of the whole test


@root
def test_missing_tracepoint_is_reported_and_the_rest_runs(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    _skip_unless_probes()
    probes = tuple(
        Probe if Probe.event != "qdisc_enqueue" else _renamed(Probe, "txtop_missing_enqueue")
        for Probe in hooks.PROBES
    )
    monkeypatch.setattr(hooks, "PROBES", probes)
    # trace_duty 1: under auto, other floods on a shared machine (the duty reads the packet
    # rate of every device) can close the window on the 20 packets sent here.
    t = Tracer([lab.ifindex], sample_every=1, max_samples_per_s=100_000, trace_duty=1.0)
    t.start()
    try:
        assert t.running, t.status.reason
        assert "not in this kernel" in t.status.unavailable["qdisc_enqueue"]
        lab.set_tbf(rate="100mbit", burst="16k", limit="200k")
        with Sink(lab.ns_argv([]), PORT):
            warm_up(lab)
            drain(t)
            pid = run_sender("udp", lab.peer_ip, str(PORT), "--count", "20", "--size", "64")
            packets, reading = collect(t, lambda ps: len(udp_of(ps, lab, pid)) >= 20)
        mine = udp_of(packets, lab, pid)
        assert len(mine) >= 20
        assert all("qdisc_enqueue" not in p.stages and "qdisc_dequeue" in p.stages for p in mine)
        assert "qdisc_enqueue" in reading.status.unavailable
    finally:
        t.close()
        lab.clear_qdisc()


def _attached_names(pid: int) -> set[str]:
    """Tracepoints with a BPF program of ``pid`` attached, as the kernel lists them."""
    out = subprocess.run(["bpftool", "perf", "show", "-j"], capture_output=True, text=True)
    return {str(e.get("tracepoint")) for e in json.loads(out.stdout or "[]") if e.get("pid") == pid}


def _tx_packets(dev: str) -> int:
    return int(Path(f"/sys/class/net/{dev}/statistics/tx_packets").read_text())


PER_PACKET = {"net_dev_queue", "net_dev_start_xmit", "net_dev_xmit", "consume_skb", "kfree_skb"}


def _steady_sender(
    lab: Lab, *args: str, sending: Callable[[], bool] | None = None
) -> subprocess.Popen:
    """A UDP sender to the lab peer that runs until stopped (at most a minute), returned once
    ``sending()`` (default: the device counted 100 of its packets): a loaded machine may take
    seconds to start it, and that time must not fall inside a measurement."""
    if sending is None:
        kernel0 = _tx_packets(lab.dev)

        def sending() -> bool:
            return _tx_packets(lab.dev) >= kernel0 + 100

    argv = sender_argv("udp", lab.peer_ip, str(PORT), "--count", "10000000", "--seconds", "60")
    sender = subprocess.Popen([*argv, *args], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not sending():
        assert sender.poll() is None, f"the sender exited with {sender.returncode}"
        assert time.monotonic() < deadline, "the sender's packets never reached the device"
        time.sleep(0.02)
    return sender


def _stop(sender: subprocess.Popen | None) -> None:
    if sender is not None and sender.poll() is None:
        sender.terminate()
        try:
            sender.wait(10)
        except subprocess.TimeoutExpired:
            sender.kill()
            sender.wait(10)


@root
@pytest.mark.skipif(shutil.which("bpftool") is None, reason="bpftool not installed")
def test_trace_windows_detach_between_windows_and_rates_stay_right(lab: Lab) -> None:
    """--trace-duty 10: between 0.3 s windows no per-packet program is attached (bpftool is
    the witness); packets traced in windows are whole; the probe counters divided by the
    attached time give the sender's rate, as the kernel's own device counter does.

    Waits on conditions, not on the clock: a closed window is checked with bpftool until its
    detaches are done (they run on a thread; a window never reopens before they end), the
    windows must come back twice, and the rates are compared over at least 6 s of a sender
    that runs until the end of the measurement."""
    _skip_unless_probes()
    t = Tracer([lab.ifindex], trace_duty=0.1)
    t.start()
    sender = None
    try:
        assert t.running, t.status.reason
        assert PER_PACKET <= _attached_names(os.getpid())  # the first window is open
        with Sink(lab.ns_argv([]), PORT):
            warm_up(lab)
            sender = _steady_sender(lab, "--gap-us", "50")
            base = t.read()
            kernel0, wall0 = _tx_packets(lab.dev), time.monotonic()
            closed_clean = False
            states: list[str] = [t.trace_state]
            packets: list[PacketTrace] = []
            deadline = wall0 + 60.0
            while time.monotonic() < deadline:
                t.poll(0.05)
                packets.extend(t.read().packets)
                state = t.trace_state
                if states[-1] != state:
                    states.append(state)
                # The state only moves in poll/read, so it stays closed during the check.
                if not closed_clean and state == "closed":
                    closed_clean = not _attached_names(os.getpid()) & PER_PACKET
                if (
                    closed_clean
                    and states.count("open") >= 3  # the first window and two more
                    and time.monotonic() - wall0 >= 6.0
                ):
                    break
            end = t.read()
            kernel1, wall1 = _tx_packets(lab.dev), time.monotonic()
            _stop(sender)
        assert closed_clean, f"a per-packet program stayed attached while closed: {states}"
        assert states.count("open") >= 3, states  # windows came back
        mine = [p for p in packets if p.dev == lab.dev and p.pid == sender.pid]
        assert mine and all(p.track == "complete" for p in mine)
        assert pipeline_losses(end) == 0, end.status.breakdown  # window edges lose nothing
        assert end.status.trace_mode == "fixed" and end.status.trace_duty_pct == 10.0
        traced = end.traced_late_s - base.traced_late_s
        assert 0.03 * (wall1 - wall0) < traced < 0.3 * (wall1 - wall0)
        counted = sum(c.packets for c in end.queues.values()) - sum(
            c.packets for c in base.queues.values()
        )
        estimate = counted / traced
        kernel_rate = (kernel1 - kernel0) / (wall1 - wall0)
        assert 0.5 * kernel_rate < estimate < 1.5 * kernel_rate, (estimate, kernel_rate)
    finally:
        _stop(sender)
        t.close()


def _tbf_backlog_bytes(dev: str) -> int:
    out = subprocess.run(
        ["tc", "-s", "-j", "qdisc", "show", "dev", dev], capture_output=True, text=True, check=True
    ).stdout
    return sum(int(q.get("backlog", 0)) for q in json.loads(out) if q.get("kind") == "tbf")


@root
def test_packets_held_in_a_qdisc_when_a_window_closes_are_cut_not_lost(lab: Lab) -> None:
    """A window closes while sampled packets wait in a saturated tbf longer than the drain
    grace: their tracks end as partial ("aged", no driver stages) and are counted as
    window_cut, not as lost events.

    Nothing depends on when the windows fall relative to the sender (it failed that way under
    load: the sender started late and sent too slowly to fill the queue, and its 4 s were over
    before a window opened on a full queue). The sender now runs until a cut is seen; the tbf
    is slow enough (256 kbit/s, ~31 datagrams/s) that a sender slowed by a loaded machine
    still fills it; and its limit (48 kB, ~1.5 s of queue) keeps a queued datagram longer than
    a window plus the drain grace. The backlog is read from the qdisc itself."""
    _skip_unless_probes()
    t = Tracer([lab.ifindex], sample_every=1, max_samples_per_s=2_000, trace_duty=0.1)
    t.start()
    rate_bps = 256_000
    held_s = MAX_WINDOW_S + DRAIN_GRACE_S  # enqueued at a window's start, still queued after
    sender = None
    try:
        assert t.running, t.status.reason
        with Sink(lab.ns_argv([]), PORT):
            warm_up(lab)
            lab.set_tbf(rate="256kbit", burst="2k", limit="48k")
            try:
                sender = _steady_sender(
                    lab, "--size", "1000", "--gap-us", "2000",
                    sending=lambda: _tbf_backlog_bytes(lab.dev) > 0,
                )  # fmt: skip
                packets: list[PacketTrace] = []
                deepest_s = 0.0
                next_tc = 0.0
                deadline = time.monotonic() + 60.0
                while True:
                    t.poll(0.05)
                    reading = t.read()
                    packets.extend(reading.packets)
                    if time.monotonic() >= next_tc:  # a tc run costs; a few a second will do
                        next_tc = time.monotonic() + 0.25
                        backlog_s = 8 * _tbf_backlog_bytes(lab.dev) / rate_bps
                        deepest_s = max(deepest_s, backlog_s)
                    cut_seen = any(p.dev == lab.dev and p.track == "aged" for p in packets)
                    if cut_seen and reading.status.sampling.get("window_cut", 0) > 0:
                        break
                    if time.monotonic() > deadline:
                        break
            finally:
                _stop(sender)
                lab.clear_qdisc()
        assert deepest_s > held_s, f"the tbf queue never held {held_s} s ({deepest_s:.2f} s)"
        status = reading.status
        assert status.sampling["window_cut"] > 0, status.sampling
        cut = [p for p in packets if p.dev == lab.dev and p.track == "aged"]
        assert cut and all("qdisc_enqueue" in p.stages and "xmit" not in p.stages for p in cut)
        # Held in the qdisc: no driver stage. A packet dequeued in the instant between the late
        # group's detach and the cut may carry start_xmit (that classic tracepoint closes on a
        # thread, after the raw net_dev_xmit is gone), so not every one of them.
        held = [p for p in cut if "start_xmit" not in p.stages]
        assert len(held) >= len(cut) / 2, [sorted(p.stages) for p in cut]
        assert pipeline_losses(reading) == 0, reading.status.breakdown
    finally:
        _stop(sender)
        t.close()


@root
def test_auto_duty_windows_under_load_and_returns_to_continuous(lab: Lab) -> None:
    """auto: with a budget this sender exceeds, the duty drops below 100% while it sends and
    comes back to 100% (continuous) once the traffic stops."""
    _skip_unless_probes()
    t = Tracer([lab.ifindex], trace_budget=0.0005)
    t.start()
    sender = None
    try:
        assert t.running, t.status.reason
        assert t.status.trace_mode == "auto" and t.status.trace_duty_pct == 100.0
        with Sink(lab.ns_argv([]), PORT):
            warm_up(lab)
            sender = _steady_sender(lab)
            low = None
            deadline = time.monotonic() + 30.0
            while time.monotonic() < deadline and low is None:
                t.poll(0.05)
                duty = t.read().status.trace_duty_pct
                if duty is not None and duty < 100:
                    low = duty
            _stop(sender)
        assert low is not None and low < 50, low
        back = None
        deadline = time.monotonic() + 25.0
        while time.monotonic() < deadline and back is None:
            t.poll(0.05)
            # open again once the last window's detaches are done
            if t.read().status.trace_duty_pct == 100.0 and t.trace_state == "open":
                back = time.monotonic()
        assert back is not None, (t.status, t.trace_state)
    finally:
        _stop(sender)
        t.close()


def _renamed(p: hooks.Probe, event: str) -> hooks.Probe:
    import dataclasses

    return dataclasses.replace(p, event=event)


def _attached_count(pid: int) -> int:
    out = subprocess.run(["bpftool", "perf", "show"], capture_output=True, text=True).stdout
    return sum(1 for line in out.splitlines() if line.startswith(f"pid {pid} "))


@root
@pytest.mark.skipif(shutil.which("bpftool") is None, reason="bpftool not installed")
def test_close_from_another_thread_detaches_everything() -> None:
    _skip_unless_probes()
    base = _attached_count(os.getpid())
    t = Tracer()
    t.start()
    assert t.running, t.status.reason
    assert _attached_count(os.getpid()) >= base + 10
    stop = threading.Event()
    polling = threading.Event()

    def worker() -> None:
        while not stop.is_set():
            t.poll(0.05)
            polling.set()
            t.read()

    th = threading.Thread(target=worker)
    th.start()
    try:
        assert polling.wait(20)  # the worker is in its poll/read loop: close() races with it
        t.close()
        t.close()  # idempotent
        assert t.status.state == "off"
        assert _attached_count(os.getpid()) == base
    finally:
        stop.set()
        th.join(5)
    assert not th.is_alive()


CHILD = """
import signal, sys, time
from txtop.probes.bpf.tracer import Tracer
t = Tracer()
t.start()
print(t.status.state, flush=True)
time.sleep(60)
"""


@root
@pytest.mark.skipif(shutil.which("bpftool") is None, reason="bpftool not installed")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGKILL])
def test_programs_are_detached_when_the_process_dies(sig: signal.Signals) -> None:
    _skip_unless_probes()
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "running"
        assert _attached_count(child.pid) >= 10
        child.send_signal(sig)
        # SIGINT runs Python's exit and bcc's cleanup, which closes each classic tracepoint
        # (a tracepoint_synchronize_unregister per close): seconds when other tracers attach
        # and detach at the same time on a loaded machine. The point here is the detach.
        child.wait(90)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(5)
    assert _attached_count(child.pid) == 0


# ---- without root / bad input: one-line reasons, never a traceback --------------------------


def test_not_root_is_a_clear_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prerequisites.os, "geteuid", lambda: 1000)
    assert "root" in (probe_prerequisites() or "")
    t = Tracer()
    t.start()  # must not raise
    st = t.status
    assert st.state == "unavailable" and "root" in st.reason and "\n" not in st.reason
    t.poll(0.01)  # just sleeps
    assert t.read().status.state == "unavailable"
    t.close()
    t.close()


def test_missing_bcc_is_a_clear_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prerequisites.os, "geteuid", lambda: 0)
    monkeypatch.setattr(prerequisites.importlib.util, "find_spec", lambda name: None)
    why = probe_prerequisites() or ""
    assert "python3-bpfcc" in why


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sample_every": 0},
        {"max_samples_per_s": -1},
        {"ringbuf_pages": 3},
        {"ifindexes": [0]},
        {"pids": ["1"]},
        {"sample_every": True},
    ],
)
def test_bad_parameters_are_one_line_errors(kwargs: dict) -> None:
    with pytest.raises(ValueError) as exc:
        Tracer(**kwargs)
    assert "\n" not in str(exc.value)


def test_missing_headers_give_the_fix_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from txtop.probes.bpf.headers import HeaderPlan

    monkeypatch.setattr(prerequisites.os, "geteuid", lambda: 0)
    monkeypatch.setattr(prerequisites.importlib.util, "find_spec", lambda name: object())
    monkeypatch.setattr(prerequisites, "tracefs_root", lambda: Path("/sys/kernel/tracing"))
    plan = HeaderPlan(
        "none", "6.99.1-x", reason="no kernel headers for 6.99.1-x", fix="apt-get install x"
    )
    monkeypatch.setattr(prerequisites, "current_plan", lambda: plan)
    why = probe_prerequisites() or ""
    assert why == "no kernel headers for 6.99.1-x; fix: apt-get install x"


@root
def test_compile_error_is_one_line_and_stays_off_the_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    _skip_unless_probes()
    broken = tmp_path / "broken.bpf.c"
    broken.write_text("int this is not C;\n")
    monkeypatch.setattr(prerequisites, "SRC", broken)
    t = Tracer()
    t.start()
    st = t.status
    t.close()
    assert st.state == "unavailable"
    assert st.reason.startswith("BPF compile/load failed:") and "error:" in st.reason
    assert "\n" not in st.reason
    out, err = capfd.readouterr()
    assert "error" not in err and "warning" not in err  # clang's output was captured
