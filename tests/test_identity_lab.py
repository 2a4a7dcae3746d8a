"""Flow and sender identity against real traffic in a veth lab (root, real BPF, real clients).

Issue 12: every sampled packet says whose it is (owner: pid, tid, comm, cgroup, and how it was
found) and which flow it belongs to (addresses, ports, protocol, TCP flags), read from the
packet headers and the socket with kernel struct offsets from the running kernel's BTF. The
clients are real: iperf3 (TCP -P 2 and UDP), Python senders using write() and sendfile().
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from identity_senders import Sink as DualSink
from identity_senders import argv_for
from senders import Sink, free_lab_subnet, stop_process
from test_cli import TXTOP
from test_tracer_lab import (
    PORT,
    _renamed,
    _skip_unless_probes,
    collect,
    drain,
    run_sender,
    udp_of,
    warm_up,
)

from txtop.core.model import PacketTrace
from txtop.lab.netns import Lab
from txtop.probes.bpf import hooks
from txtop.probes.bpf.cgroups import cgroup2_root
from txtop.probes.bpf.tracer import OWNER_FALLBACK, Tracer

root = pytest.mark.root
IPERF_PORT = 5201
TCP_PORT = 5303


def _skip_unless_iperf3() -> None:
    if shutil.which("iperf3") is None:
        pytest.skip("iperf3 not installed (./setup.sh test installs it)")


@pytest.fixture
def lab6() -> Iterator[Lab]:
    """A 4-queue veth lab with IPv4 and IPv6 (ULA) addresses, on a /30 of its own."""
    tag = f"id{os.getpid() % 100000}"
    with Lab(tag=tag, queues=4, subnet=free_lab_subnet(), ipv6=True) as created:
        yield created


def make_tracer(lab: Lab, **kw: object) -> Tracer:
    """Every packet of the lab device eligible, probes attached the whole time (exact)."""
    _skip_unless_probes()
    opts: dict[str, object] = {
        "sample_every": 1,
        "max_samples_per_s": 200_000,
        "ringbuf_pages": 512,
        "trace_duty": 1.0,
    }
    opts.update(kw)
    t = Tracer([lab.ifindex], **opts)  # type: ignore[arg-type]
    t.start()
    assert t.running, t.status.reason
    return t


@pytest.fixture
def tracer(lab6: Lab) -> Iterator[Tracer]:
    t = make_tracer(lab6)
    try:
        yield t
    finally:
        t.close()


# ---- real clients -------------------------------------------------------------------------------


class Iperf3Server:
    """``iperf3 -s`` inside the lab namespace, serving one client (-1); always stopped."""

    def __init__(self, lab: Lab, port: int = IPERF_PORT) -> None:
        argv = lab.ns_argv(["iperf3", "-s", "-1", "-p", str(port), "--forceflush"])
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )

    def __enter__(self) -> Iperf3Server:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()  # raw reads: select() cannot see a TextIO's buffer
        seen = b""
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                seen += os.read(fd, 4096)
                if b"listening" in seen:
                    return self
            assert self.proc.poll() is None, f"iperf3 -s exited: {seen!r}"
        self.stop()
        raise RuntimeError(f"iperf3 -s did not start listening: {seen!r}")

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        stop_process(self.proc)


@dataclass
class Client:
    pid: int
    result: dict
    ports: set[int]  # the data streams' local ports


def run_iperf3(
    t: Tracer, dst: str, *args: str, port: int = IPERF_PORT
) -> tuple[Client, list[PacketTrace]]:
    """Run an iperf3 client to completion while draining the tracer; its packets and result."""
    argv = ["iperf3", "-c", dst, "-p", str(port), "-J", *args]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    packets: list[PacketTrace] = []
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        t.poll(0.05)
        packets.extend(t.read().packets)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err or out[-500:]
    result = json.loads(out)
    more, _ = collect(t, lambda ps: False, timeout_s=0.5)  # the tracks still ending
    packets.extend(more)
    ports = {int(c["local_port"]) for c in result["start"]["connected"]}
    return Client(proc.pid, result, ports), packets


def run_identity_sender(mode: str, *args: str) -> dict[str, int]:
    """Run identity_senders.py to completion; its "sent/pid/done_ns/lport/closed_ns" numbers."""
    proc = subprocess.run(argv_for(mode, *args), capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr
    words = proc.stdout.split()
    out = {words[i]: int(words[i + 1]) for i in range(0, len(words) - 1, 2)}
    assert out["sent"] > 0 and out["pid"] > 0, proc.stdout
    return out


def of_flow(packets: list[PacketTrace], lab: Lab, dport: int) -> list[PacketTrace]:
    return [p for p in packets if p.dev == lab.dev and p.flow and p.flow.dport == dport]


def named_share(
    packets: list[PacketTrace], ok: Callable[[PacketTrace], bool]
) -> tuple[float, list[PacketTrace]]:
    bad = [p for p in packets if not ok(p)]
    return (1 - len(bad) / len(packets)) if packets else 0.0, bad


def describe(packets: list[PacketTrace]) -> str:
    return "; ".join(
        f"{p.owner and (p.owner.via, p.owner.comm, p.owner.pid)} "
        f"{p.flow and (p.flow.l3, p.flow.sport, p.flow.dport, p.flow.l4_proto)}"
        for p in packets[:8]
    )


# ---- tests ---------------------------------------------------------------------------------------


@root
def test_iperf3_tcp_two_streams_are_named_with_pid_and_ports(tracer: Tracer, lab6: Lab) -> None:
    _skip_unless_iperf3()
    with Iperf3Server(lab6):
        drain(tracer)
        client, packets = run_iperf3(tracer, lab6.peer_ip, "-P", "2", "-t", "2", "-b", "40M")
    lab = [p for p in packets if p.dev == lab6.dev]
    assert len(lab) >= 200, f"only {len(lab)} lab packets sampled"
    assert len(client.ports) == 2

    def ok(p: PacketTrace) -> bool:
        return (
            p.owner is not None
            and (p.owner.comm, p.owner.pid, p.pid, p.comm)
            == ("iperf3", client.pid, client.pid, "iperf3")
            and p.owner.via in ("syscall", "socket")
            and p.flow is not None
            and (p.flow.l3, p.flow.saddr, p.flow.daddr) == ("ipv4", lab6.local_ip, lab6.peer_ip)
            and p.flow.l4_proto == 6 == p.l4_proto
            and p.flow.dport == IPERF_PORT == p.dport
            and p.flow.sport in client.ports
            and p.sport == p.flow.sport
        )

    share, bad = named_share(lab, ok)
    assert share >= 0.9, f"{share:.1%} named; not: {describe(bad)}"
    # Both streams, and segments sent outside the sender's syscalls (ACK clocking, TSQ).
    assert {p.flow.sport for p in lab if ok(p) and p.flow} == client.ports
    assert any(p.owner and p.owner.via == "socket" for p in lab if ok(p))
    assert all(p.flow and p.flow.tcp_flags is not None for p in lab if ok(p))


@root
def test_iperf3_udp_is_named_with_pid_and_ports(tracer: Tracer, lab6: Lab) -> None:
    _skip_unless_iperf3()
    with Iperf3Server(lab6):
        drain(tracer)
        client, packets = run_iperf3(
            tracer, lab6.peer_ip, "-u", "-b", "8M", "-l", "1000", "-t", "2"
        )
    lab = [p for p in packets if p.dev == lab6.dev]
    udp = [p for p in lab if p.flow and p.flow.l4_proto == 17]
    assert len(udp) >= 500, f"only {len(udp)} UDP packets sampled of {len(lab)}"

    def ok(p: PacketTrace) -> bool:
        return (
            p.owner is not None
            and (p.owner.comm, p.owner.pid) == ("iperf3", client.pid)
            and p.flow is not None
            and (p.flow.l4_proto, p.flow.dport) == (17, IPERF_PORT)
            and p.flow.sport in client.ports
        )

    share, bad = named_share(lab, ok)
    assert share >= 0.9, f"{share:.1%} named; not: {describe(bad)}"
    # iperf3 sends UDP with write() on a connected socket: named by the socket
    assert sum(1 for p in udp if p.owner and p.owner.via == "socket") >= 0.9 * len(udp)


@root
@pytest.mark.parametrize("mode", ["write", "sendfile"])
def test_python_write_and_sendfile_senders_are_named(tracer: Tracer, lab6: Lab, mode: str) -> None:
    with DualSink(lab6.ns_argv([]), TCP_PORT):
        drain(tracer)
        out = run_identity_sender(mode, lab6.peer_ip, str(TCP_PORT), "--bytes", str(3 << 20))
        packets, _ = collect(
            tracer,
            lambda ps: (
                sum(
                    1
                    for p in of_flow(ps, lab6, TCP_PORT)
                    if p.flow and p.flow.tcp_flags and p.flow.tcp_flags & 1
                )
                >= 1
            ),
            timeout_s=10,
        )
    mine = [p for p in of_flow(packets, lab6, TCP_PORT) if p.flow and p.flow.sport == out["lport"]]
    assert len(mine) >= 10, describe(of_flow(packets, lab6, TCP_PORT))

    def ok(p: PacketTrace) -> bool:
        return (
            p.owner is not None
            and p.owner.pid == out["pid"] == p.pid
            and p.owner.comm.startswith("python")
            and p.owner.via == "socket"  # write() and sendfile() are no tied send syscalls
            and p.syscall is None
        )

    share, bad = named_share(mine, ok)
    assert share >= 0.9, f"{mode}: {share:.1%} named; not: {describe(bad)}"


@root
def test_tcp_segments_sent_from_softirq_are_named_by_their_socket(
    tracer: Tracer, lab6: Lab
) -> None:
    # 1.5 MB through a 16 Mbit/s tbf: write() returns once the data is in the socket buffer,
    # then the sender sleeps; what leaves after that is pushed by ACKs and TCP small queues in
    # softirq, never inside a syscall of the sender.
    lab6.set_tbf(rate="16mbit", burst="16k", limit="300k")
    try:
        with DualSink(lab6.ns_argv([]), TCP_PORT):
            drain(tracer)
            out = run_identity_sender(
                "write", lab6.peer_ip, str(TCP_PORT), "--bytes", str(1_500_000), "--linger", "1.5"
            )
            packets, _ = collect(tracer, lambda ps: False, timeout_s=1.0)
    finally:
        lab6.clear_qdisc()
    mine = [p for p in of_flow(packets, lab6, TCP_PORT) if p.flow and p.flow.sport == out["lport"]]
    # after write() returned and before close(): the sender sleeps, so not from its syscalls
    late = [p for p in mine if out["done_ns"] < p.stages["dev_queue"] < out["closed_ns"]]
    assert len(late) >= 5, f"{len(late)} of {len(mine)} segments left after write() returned"
    for p in late:
        assert p.owner is not None and p.owner.via == "socket", describe([p])
        assert p.owner.pid == out["pid"] == p.pid and p.syscall is None


@root
def test_ipv6_udp_and_tcp_flows_and_owners(tracer: Tracer, lab6: Lab) -> None:
    import socket

    with DualSink(lab6.ns_argv([]), TCP_PORT):
        drain(tracer)
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        try:
            for _ in range(40):
                s.sendto(b"6" * 100, (lab6.peer_ip6, TCP_PORT))
        finally:
            s.close()
        out = run_identity_sender("write", lab6.peer_ip6, str(TCP_PORT), "--bytes", str(1 << 20))
        packets, _ = collect(
            tracer,
            lambda ps: (
                sum(1 for p in ps if p.flow and p.flow.l3 == "ipv6" and p.flow.l4_proto == 6) >= 10
            ),
            timeout_s=10,
        )
    v6 = [p for p in of_flow(packets, lab6, TCP_PORT) if p.flow and p.flow.l3 == "ipv6"]
    udp = [p for p in v6 if p.flow and p.flow.l4_proto == 17]
    tcp = [p for p in v6 if p.flow and p.flow.l4_proto == 6 and p.flow.sport == out["lport"]]
    assert len(udp) >= 38 and len(tcp) >= 10, describe(v6)
    for p in udp + tcp:
        assert p.flow is not None and (p.flow.saddr, p.flow.daddr) == (
            lab6.local_ip6,
            lab6.peer_ip6,
        )
        assert p.protocol == 0x86DD
    # the first datagram may wait for neighbour discovery and leave from softirq, unnamed
    tied = [p for p in udp if p.syscall == "sendto"]
    assert len(tied) >= 38, describe(udp)
    assert all(p.pid == os.getpid() and p.owner and p.owner.via == "syscall" for p in tied)
    share, bad = named_share(tcp, lambda p: p.pid == out["pid"] and p.owner is not None)
    assert share >= 0.9, describe(bad)


@root
def test_owner_cgroup_is_resolved_to_its_path(tracer: Tracer, lab6: Lab) -> None:
    base = cgroup2_root()
    if base is None:
        pytest.skip("no cgroup v2 hierarchy mounted")
    group = base / f"txtop-test-{os.getpid()}"
    try:
        group.mkdir()
    except OSError as exc:
        pytest.skip(f"cannot create a cgroup here: {exc}")
    ino = group.stat().st_ino  # the id bpf_get_current_cgroup_id() returns for it
    try:
        with DualSink(lab6.ns_argv([]), TCP_PORT):
            drain(tracer)
            out = run_identity_sender(
                "write",
                lab6.peer_ip,
                str(TCP_PORT),
                "--bytes",
                str(1 << 20),
                "--cgroup",
                str(group),
            )
            packets, _ = collect(tracer, lambda ps: False, timeout_s=1.0)
    finally:
        deadline = time.monotonic() + 10
        while group.exists():
            try:
                group.rmdir()
            except OSError:
                assert time.monotonic() < deadline, "the test cgroup stayed busy"
                time.sleep(0.05)
    mine = [p for p in of_flow(packets, lab6, TCP_PORT) if p.flow and p.flow.sport == out["lport"]]
    assert len(mine) >= 5
    for p in mine:
        assert p.owner is not None and p.owner.pid == out["pid"], describe([p])
        assert (p.owner.cgroup, p.owner.cgroup_id) == (f"/{group.name}", ino)


@root
def test_unreadable_btf_gives_the_reason_and_the_rest_runs(lab: Lab, tmp_path: Path) -> None:
    empty = tmp_path / "vmlinux"
    empty.write_bytes(b"")
    t = make_tracer(lab, sample_every=1, max_samples_per_s=100_000, btf_path=empty)
    try:
        reason = f"identity unavailable: BTF file {empty} is empty"
        assert t.status.unavailable["identity"] == reason
        assert reason in t.status.notice  # the probe line shows the notice
        # the socket-owner hooks need the offsets: not compiled, not reported one by one
        assert not {"owner_send", "owner_tcp", "owner_connect"} & set(t.status.unavailable)
        with Sink(lab.ns_argv([]), PORT):
            warm_up(lab)
            drain(t)
            pid = run_sender("udp", lab.peer_ip, str(PORT), "--count", "30", "--size", "64")
            packets, reading = collect(t, lambda ps: len(udp_of(ps, lab, pid)) >= 30)
        mine = udp_of(packets, lab, pid)
        assert len(mine) >= 30  # the syscall tie still names the sender
        assert all(p.syscall == "sendto" and p.dport == PORT for p in mine)
        assert all(p.flow is None and p.owner and p.owner.via == "syscall" for p in mine)
        assert all(p.owner is None for p in packets if not p.syscall)  # unknown, not "kernel"
        assert reading.status.unavailable["identity"] == reason
        # Without the offsets the hooks that read their arguments are the classic ones, and
        # what they carry still works: the driver stage, its queue, the per-queue counters.
        forms = reading.status.hooks
        for tp in ("qdisc:qdisc_dequeue", "net:net_dev_start_xmit", "syscalls:sys_enter_sendto"):
            assert forms[tp] == "classic", forms
        assert "raw_syscalls:sys_enter" not in forms
        assert all("start_xmit" in p.stages and p.dev == lab.dev for p in mine)
        sent = sum(c.packets for (i, _q), c in reading.queues.items() if i == lab.ifindex)
        assert sent >= 30, reading.queues
    finally:
        t.close()


@root
def test_without_sock_send_length_the_fallback_is_said_and_tcp_still_named(
    lab6: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    probes = tuple(
        p if p.event != "sock_send_length" else _renamed(p, "txtop_missing_send_length")
        for p in hooks.PROBES
    )
    monkeypatch.setattr(hooks, "PROBES", probes)
    t = make_tracer(lab6)
    try:
        assert t.status.unavailable["owner_send"] == OWNER_FALLBACK
        with DualSink(lab6.ns_argv([]), TCP_PORT):
            drain(t)
            out = run_identity_sender("write", lab6.peer_ip, str(TCP_PORT), "--bytes", str(1 << 20))
            packets, _ = collect(t, lambda ps: False, timeout_s=1.0)
        mine = [
            p for p in of_flow(packets, lab6, TCP_PORT) if p.flow and p.flow.sport == out["lport"]
        ]
        assert len(mine) >= 5
        share, bad = named_share(mine, lambda p: p.pid == out["pid"])
        assert share >= 0.9, describe(bad)  # tcp:tcp_sendmsg_locked and connect() name them
    finally:
        t.close()


def _udp_to(dst: str, port: int, count: int) -> None:
    import socket

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for _ in range(count):
            s.sendto(b"u" * 200, (dst, port))
    finally:
        s.close()


@root
def test_proto_tcp_port_5201_yields_only_that_flow(lab6: Lab) -> None:
    """The flow filter is checked in the kernel at the sampling decision: UDP to the same port,
    TCP to another port and the kernel's own packets are never sampled."""
    _skip_unless_iperf3()
    from txtop.core.filters import FilterSpec

    t = make_tracer(lab6, flow=FilterSpec.parse("proto=tcp port=5201").flow)
    try:
        assert t.status.filters["proto"] == ["6"] and t.status.filters["port"] == ["5201"]
        with Iperf3Server(lab6), DualSink(lab6.ns_argv([]), TCP_PORT):
            drain(t)
            _udp_to(lab6.peer_ip, IPERF_PORT, 200)  # UDP to the port: refused (protocol)
            other = run_identity_sender(  # TCP to another port: refused (port)
                "write", lab6.peer_ip, str(TCP_PORT), "--bytes", str(1 << 20)
            )
            client, packets = run_iperf3(t, lab6.peer_ip, "-t", "1", "-b", "20M")
            _udp_to(lab6.peer_ip, IPERF_PORT, 200)
            more, reading = collect(t, lambda ps: False, timeout_s=0.5)
        packets += more
        lab = [p for p in packets if p.dev == lab6.dev]
        assert len(lab) >= 50
        for p in lab:
            assert p.flow is not None and p.flow.l4_proto == 6, describe([p])
            assert IPERF_PORT in (p.flow.sport, p.flow.dport), describe([p])
        assert {p.pid for p in lab} <= {client.pid, 0} and other["pid"] not in {p.pid for p in lab}
        assert reading.status.sampling["flow_filtered"] >= 400  # refused in the kernel
    finally:
        t.close()


@root
def test_once_json_with_proto_and_port_flags(lab6: Lab) -> None:
    """The command line as a user types it: `txtop --once --format json -i DEV --proto tcp
    --port 5201` while iperf3 runs; every packet in the JSON is that flow, with flow and owner."""
    _skip_unless_probes()
    _skip_unless_iperf3()
    with Iperf3Server(lab6):
        client = subprocess.Popen(
            ["iperf3", "-c", lab6.peer_ip, "-t", "20", "-b", "20M", "-J"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            argv = [*TXTOP, "--once", "--format", "json", "-i", lab6.dev, "-d", "1"]
            argv += ["--sample", "1", "--proto", "tcp", "--port", "5201", "--trace-duty", "100"]
            out = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        finally:
            client.terminate()
            client.wait(10)
    assert out.returncode == 0, out.stderr[-2000:]
    snap = json.loads(out.stdout)
    assert snap["probes"]["filters"]["proto"] == ["6"]
    packets = snap["packets"]
    assert packets, snap["probes"]
    for p in packets:
        flow, owner = p["flow"], p["owner"]
        assert flow["l4_proto"] == 6 == p["l4_proto"] and 5201 in (flow["sport"], flow["dport"])
        assert (p["sport"], p["dport"]) == (flow["sport"], flow["dport"])
        assert set(flow) >= {"l3", "saddr", "daddr", "sport", "dport", "tcp_flags", "vlan"}
        assert set(owner) >= {"pid", "tid", "comm", "cgroup", "via"}
        if owner["pid"]:
            assert (owner["comm"], p["comm"], p["pid"]) == ("iperf3", "iperf3", owner["pid"])
