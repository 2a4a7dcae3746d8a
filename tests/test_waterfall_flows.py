"""The flow and owner text of the waterfall's columns, the inspector and the talkers view."""

from __future__ import annotations

import pytest

from txtop.core.model import FlowInfo, PacketOwner, PacketTrace
from txtop.tui.waterfall.flows import (
    flow_forms,
    flow_text,
    owner_line,
    owner_text,
    proto_name,
    tcp_flags_text,
)

TCP = FlowInfo("ipv4", "10.0.0.1", "10.0.0.2", 6, 43512, 5201, 0x18)


def pkt(**kw: object) -> PacketTrace:
    base: dict[str, object] = dict(
        pid=0, tid=0, comm="", dev="eth0", ifindex=2, queue=0, len=100, gso_segs=0,
        stages={"dev_queue": 1}, cpus={}, track="complete",
    )  # fmt: skip
    base.update(kw)
    return PacketTrace(**base)  # type: ignore[arg-type]


def test_the_issue_example_and_its_shortenings() -> None:
    assert flow_text(TCP, 80) == "10.0.0.1:43512>10.0.0.2:5201 tcp"
    assert flow_text(TCP, 24) == ":43512>10.0.0.2:5201 tcp"
    assert flow_text(TCP, 18) == ">10.0.0.2:5201 tcp"
    assert flow_text(TCP, 10) == ">:5201 tcp"  # the 80-column waterfall's column
    assert flow_text(TCP, 6) == "tcp"
    assert flow_text(FlowInfo("ipv6", "::1", "::2", 58, icmp_type=135), 6, "~") == "icmpv~"
    assert list(flow_forms(TCP)) == sorted(flow_forms(TCP), key=len, reverse=True)


@pytest.mark.parametrize(
    ("flow", "text"),
    [
        (FlowInfo("ipv6", "fd00::1", "fd00::2", 17, 40000, 53), "[fd00::1]:40000>[fd00::2]:53 udp"),
        (FlowInfo("ipv4", "10.0.0.1", "10.0.0.2", 1, icmp_type=8, icmp_code=0), "10.0.0.1>10.0.0.2 icmp/8"),
        (FlowInfo("ipv4", "10.0.0.1", "10.0.0.2", 6, 1, 2, tcp_flags=0x12), "10.0.0.1:1>10.0.0.2:2 tcp SA"),
        (FlowInfo("ipv4", "10.0.0.1", "10.0.0.2", 6, 1, 2, tcp_flags=0x11), "10.0.0.1:1>10.0.0.2:2 tcp FA"),
        (FlowInfo("ipv4", "1.1.1.1", "2.2.2.2", 17, 5, 4789, encap=True), "1.1.1.1:5>2.2.2.2:4789 udp^"),
        (FlowInfo("ipv4", "1.1.1.1", "2.2.2.2", 47, vlan=100), "v100 1.1.1.1>2.2.2.2 47"),
        (FlowInfo("ipv4", "1.1.1.1", "2.2.2.2", 17, fragment=True), "1.1.1.1>2.2.2.2 udp frag"),
        (FlowInfo("arp"), "arp"),
        (FlowInfo("0x88cc", vlan=5), "v5 0x88cc"),
    ],
)  # fmt: skip
def test_flow_forms(flow: FlowInfo, text: str) -> None:
    assert flow_text(flow, 60) == text
    assert flow_text(flow, 60).isascii()


def test_no_flow_and_names() -> None:
    assert flow_text(None, 10) == "-"
    assert proto_name(6) == "tcp" and proto_name(58) == "icmpv6" and proto_name(99) == "99"
    assert tcp_flags_text(0x12) == "SA" and tcp_flags_text(0x12, long=True) == "SYN ACK"
    assert tcp_flags_text(None) == ""


def test_owner_text_and_line() -> None:
    sock = PacketOwner(812, 813, "nginx", "/system.slice/nginx.service", "socket")
    named = pkt(pid=812, tid=813, comm="nginx", owner=sock)
    assert owner_text(named) == "nginx[812]"
    assert "via socket" in owner_line(sock, named) and "thread 813" in owner_line(sock, named)
    kernel = PacketOwner(0, 0, "", None, "kernel")
    assert owner_text(pkt(owner=kernel)) == "(kernel)"
    assert owner_line(kernel, pkt(owner=kernel)) == (
        "kernel: no socket sender seen (forwarded, kernel-generated or ARP)"
    )
    assert owner_text(pkt()) == "(not known)"  # no identity: only a tie could name it
    unknown = owner_line(None, pkt(comm="bash"))
    # Not known is not "the kernel sent it": nothing says who did.
    assert unknown.startswith("sender not known") and "kernel:" not in unknown
    assert unknown.endswith("bash was running on the CPU")
    old = pkt(pid=5, tid=6, comm="dig", syscall="sendmsg")  # recorded before owners existed
    assert owner_line(None, old) == "dig pid 5, thread 6"
