"""probes/bpf/decode.py on captured ring-buffer records (tests/data/ringbuf) and built ones.
The layout itself is checked against the C source in tests/test_abi.py."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from txtop.probes.bpf import abi, decode
from txtop.probes.bpf.abi import EXIT_RECORD, RECORD
from txtop.probes.bpf.decode import (
    DecodeError,
    ExitRecord,
    RawRecord,
    decode_any,
    decode_record,
    format_fields,
    parse_drop_reasons,
    to_packet_trace,
)
from txtop.probes.bpf.kallsyms import parse_kallsyms

RINGBUF = Path(__file__).parent / "data" / "ringbuf"
DEV = "txltr"  # the lab's TX end (the name's tail is the capturing test's pid)


def lab_addrs(name: str) -> tuple[str, str]:
    """The lab link's (local, peer) addresses in a captured record (10.253.<n>.1 and .2)."""
    f = to_packet_trace(rec(name)).flow
    assert f is not None and f.saddr is not None and f.daddr is not None
    assert f.saddr.startswith("10.253.") and f.saddr.endswith(".1")
    assert f.daddr == f.saddr[:-1] + "2"
    return f.saddr, f.daddr


def load(name: str) -> bytes:
    return (RINGBUF / f"{name}.bin").read_bytes()


def rec(name: str) -> RawRecord:
    r = decode_any(load(name))
    assert isinstance(r, RawRecord)
    return r


# ---- captured records ------------------------------------------------------------------------


def test_udp_sendto_on_noqueue_veth() -> None:
    r = rec("udp-05")
    assert r.via == abi.VIA_SYSCALL and r.flow_flags == abi.FL_L3 | abi.FL_PORTS
    assert (r.comm, r.syscall, r.dport, r.len) == ("python", 1, 5301, 106)
    assert r.dev.startswith(DEV)
    local, peer = lab_addrs("udp-05")
    assert r.protocol == 0x0800 and r.flags & abi.F_QUEUE and r.flags & abi.F_RC
    assert r.end == abi.END_COMPLETE and r.tid == r.tgid > 0
    p = to_packet_trace(r)
    assert list(p.stages) == ["sendto", "dev_queue", "start_xmit", "xmit"]
    assert p.stages["dev_queue"] == r.first_ns
    assert p.first_ns == p.stages["sendto"] and p.last_ns == p.stages["xmit"]
    assert list(p.stages.values()) == sorted(p.stages.values())
    assert set(p.cpus) == set(p.stages)
    assert p.pid == r.tgid and p.syscall == "sendto" and p.xmit_rc == 0 and p.queue == r.queue
    assert p.free_kind is None and p.free_location is None and p.txq_state is None
    assert p.sample_every == 1 and p.sample_max_per_s == 200_000
    # its flow from the headers, its owner from the syscall tie (the JSON keeps both forms)
    f, o = p.flow, p.owner
    assert f is not None and o is not None
    assert (f.l3, f.saddr, f.daddr, f.l4_proto, f.dport) == ("ipv4", local, peer, 17, 5301)
    assert f.sport is not None and f.sport > 1024 and f.tcp_flags is None and f.vlan is None
    assert not f.encap and not f.fragment and f.icmp_type is None
    assert (p.l4_proto, p.sport, p.dport) == (17, f.sport, 5301)
    assert (o.pid, o.tid, o.comm, o.via) == (r.tgid, r.tid, "python", "syscall")
    assert o.cgroup_id == r.cgroup_id > 0 and o.cgroup is None  # no resolver given
    cg = to_packet_trace(r, resolve_cgroup={r.cgroup_id: "/lab.slice"}.get).owner
    assert cg is not None and cg.cgroup == "/lab.slice"


def test_arp_request_tied_to_the_first_sendto_and_the_held_back_packet_untied() -> None:
    arp = to_packet_trace(rec("udp-00"))
    assert arp.protocol == 0x0806 and arp.len == 42 and arp.pid > 0
    assert arp.flow is not None and arp.flow.l3 == "arp" and arp.flow.saddr is None
    assert arp.l4_proto is None and arp.sport is None and arp.dport is None
    # The datagram the ARP held back left from softirq before its sender was ever seen on the
    # socket (sock_send_length fires after sendto returns): named "kernel", no pid.
    held = to_packet_trace(rec("udp-01"))
    _, peer = lab_addrs("udp-01")
    assert held.pid == 0 and held.tid == 0 and held.comm == "" and held.syscall is None
    assert held.owner is not None and held.owner.via == "kernel" and held.owner.pid == 0
    assert "sendto" not in held.stages
    assert held.flow is not None and (held.flow.daddr, held.flow.dport) == (peer, 5301)
    assert held.dport == 5301  # from the header now, not the syscall


def test_ipv6_multicast_listener_report_walks_the_hop_by_hop_header() -> None:
    p = to_packet_trace(rec("udp-03"))  # MLDv2 report: IPv6, hop-by-hop option, ICMPv6 143
    f = p.flow
    assert f is not None and f.l3 == "ipv6" and f.daddr == "ff02::16"
    assert f.l4_proto == 58 and f.icmp_type == 143 and f.icmp_code == 0
    assert f.sport is None and f.dport is None and p.sport is None and p.dport is None
    assert p.owner is not None and p.owner.via == "kernel" and p.pid == 0


def test_tcp_segments_named_by_their_socket() -> None:
    syn = to_packet_trace(rec("tcp-03"))  # connect()'s SYN (sock:inet_sock_set_state)
    assert syn.flow is not None and syn.flow.tcp_flags == 0x02 and syn.flow.dport == 5301
    assert syn.owner is not None and syn.owner.via == "socket" and syn.syscall is None
    assert syn.pid == syn.owner.pid > 0 and syn.comm == "python"
    untied = to_packet_trace(rec("tcp-06"))  # a TSO skb not left inside a send syscall
    assert untied.owner is not None and untied.owner.via == "socket"
    assert untied.pid == syn.pid and untied.gso_segs == 5
    assert untied.flow is not None and untied.flow.tcp_flags == 0x18  # PSH ACK
    assert untied.flow.sport == syn.flow.sport and untied.l4_proto == 6


def test_tbf_records_have_qdisc_stages_and_growing_waits() -> None:
    first, later = rec("tbf-00"), rec("tbf-08")
    waits = []
    for r in (first, later):
        p = to_packet_trace(r)
        s = p.stages
        assert s["dev_queue"] <= s["qdisc_enqueue"] <= s["qdisc_dequeue"] <= s["start_xmit"]
        assert p.txq_state is not None and p.ifindex > 0
        waits.append(s["qdisc_dequeue"] - s["qdisc_enqueue"])
    assert waits[1] > 10 * waits[0] and waits[1] > 15_000_000  # ~4 ms per queued packet


def test_qdisc_drop_with_reason_and_call_site() -> None:
    reasons = parse_drop_reasons((RINGBUF / "kfree_skb.format").read_text())
    r = rec("drop-01")
    assert r.free_kind == 2 and r.drop_reason == 64 and r.flags & abi.F_REASON
    syms = parse_kallsyms(
        "ffffffff81eb63e0 T __dev_queue_xmit\nffffffff81eb73f0 T __pfx_kick_defer_list_purge\n"
    )
    p = to_packet_trace(r, drop_reasons=reasons, resolve_location=syms.resolve)
    assert p.free_kind == "drop" and p.drop_reason == "QDISC_DROP"
    assert p.free_location == "__dev_queue_xmit+0xdd1"
    # dropped before the driver, yet its TX queue is known (skb->queue_mapping at dev_queue)
    assert "start_xmit" not in p.stages and p.queue == r.queue and r.flags & abi.F_QMAP
    # Without a resolver or a reasons table the raw values still show.
    bare = to_packet_trace(r)
    assert bare.free_location == "0xffffffff81eb71b1" and bare.drop_reason == "64"


def test_tso_skb_counts_its_segments() -> None:
    p = to_packet_trace(rec("tcp-08"))
    assert p.gso_segs == 11 and p.len > 15000 and p.syscall == "sendto"
    # send() on a connected socket names no address: the port comes from the TCP header
    assert p.dport == 5301 and p.owner is not None and p.owner.via == "syscall"


def test_exit_records_join_by_sample_identity() -> None:
    for name in ("udp-12", "tbf-12", "drop-12", "tcp-12"):  # noqa: B007
        e = decode_any(load(name))
        assert isinstance(e, ExitRecord)
        assert e.sys_exit_ns > e.first_ns and e.tid > 0 and e.skbaddr
    e = decode_any(load("udp-12"))
    assert isinstance(e, ExitRecord)
    r = rec("udp-05")
    joined = to_packet_trace(r, sys_exit_ns=12345)
    assert joined.syscall_exit_ns == 12345
    untied = to_packet_trace(rec("udp-01"), sys_exit_ns=12345)
    assert untied.syscall_exit_ns is None  # no syscall, no return


# ---- built records and bad input ---------------------------------------------------------------


def build(**over: object) -> bytes:
    fields: dict[str, object] = {
        "skbaddr": 0xFFFF888100000000,
        "first_ns": 1_000,
        "ts": (900, 1_000, 0, 0, 1_500, 1_600, 2_000),
        "sys_exit_ns": 1_700,
        "txq_state": 0,
        "location": 0,
        "cgroup_id": 0,
        "owner_ns": 0,
        "tgid": 42,
        "tid": 43,
        "len": 100,
        "ifindex": 0,
        "xmit_rc": 0,
        "drop_reason": 0,
        "sample_every": 64,
        "sample_max_per_s": 200,
        "saddr": bytes(16),
        "daddr": bytes(16),
        "cpu": (1, 1, 0, 0, 1, 1, 0),
        "queue": 2,
        "gso_segs": 0,
        "protocol": 0x86DD,
        "dport": 53,
        "sport": 0,
        "vlan": 0,
        "l3_proto": 0,
        "l4_proto": 0,
        "tcp_flags": 0,
        "end": 0,
        "free_kind": 1,
        "syscall": 2,
        "flags": abi.F_QUEUE | abi.F_RC,
        "via": abi.VIA_SYSCALL,
        "flow_flags": 0,
        "comm": b"dig",
        "dev": b"eth0",
        "netns": 0,
    }
    fields.update(over)
    f = fields
    return RECORD.pack(
        f["skbaddr"], f["first_ns"], *f["ts"], f["sys_exit_ns"], f["txq_state"], f["location"],
        f["cgroup_id"], f["owner_ns"], f["tgid"], f["tid"], f["len"], f["ifindex"],
        f["xmit_rc"], f["drop_reason"], f["sample_every"], f["sample_max_per_s"], f["saddr"],
        f["daddr"], *f["cpu"], f["queue"], f["gso_segs"], f["protocol"], f["dport"], f["sport"],
        f["vlan"], f["l3_proto"], f["l4_proto"], f["tcp_flags"], f["end"], f["free_kind"],
        f["syscall"], f["flags"], f["via"], f["flow_flags"], f["comm"], f["dev"], f["netns"],
    )  # fmt: skip


def test_built_record_round_trip_and_lookups() -> None:
    r = decode_record(build())
    assert r.key == (0xFFFF888100000000, 1_000)
    p = to_packet_trace(r, ifindex_of={"eth0": 2}.get)
    assert p.ifindex == 2 and p.dev == "eth0" and p.comm == "dig" and p.syscall == "sendmsg"
    assert p.stages == {"sendto": 900, "dev_queue": 1_000, "start_xmit": 1_500, "xmit": 1_600,
                        "free": 2_000}  # fmt: skip
    assert p.cpus["free"] == 0 and p.free_kind == "consume" and p.total_ns == 1_100
    assert p.protocol == 0x86DD and p.dport == 53 and p.syscall_exit_ns == 1_700
    # A record with only an ifindex (dropped before start_xmit) gets its name looked up.
    q = to_packet_trace(decode_record(build(dev=b"", ifindex=7)), name_of={7: "ens5"}.get)
    assert q.dev == "ens5" and q.ifindex == 7
    assert to_packet_trace(r, end="aged").track == "aged"
    assert r.netns == 0 and decode_record(build(netns=4026531840)).netns == 4026531840


def test_unknown_codes_and_wrong_sizes_are_decode_errors() -> None:
    with pytest.raises(DecodeError, match="expected 248"):
        decode_record(b"\0" * 100)
    with pytest.raises(DecodeError, match="unknown end"):
        decode_record(build(end=9))
    with pytest.raises(DecodeError, match="unknown end"):
        decode_record(build(syscall=7))
    with pytest.raises(DecodeError, match="unknown owner"):
        decode_record(build(via=9))
    with pytest.raises(DecodeError):
        decode_any(b"\0" * 33)
    with pytest.raises(DecodeError):
        decode.decode_exit(b"\0" * 31)


def test_built_flows_ipv6_vlan_encap_fragment_and_other_l3() -> None:
    v6 = bytes.fromhex("fd000000000000000000000000000001")
    f = to_packet_trace(decode_record(build(
        saddr=v6, daddr=v6[:-1] + b"\x02", sport=43512, dport=5201, l3_proto=0x86DD, l4_proto=6,
        tcp_flags=0x12, vlan=0x2064, via=abi.VIA_SOCKET, syscall=0,
        flow_flags=abi.FL_L3 | abi.FL_PORTS | abi.FL_TCP | abi.FL_VLAN | abi.FL_ENCAP,
    )))  # fmt: skip
    assert f.flow is not None and f.owner is not None
    assert (f.flow.saddr, f.flow.daddr) == ("fd00::1", "fd00::2")
    assert (f.flow.sport, f.flow.dport, f.flow.tcp_flags) == (43512, 5201, 0x12)
    assert f.flow.vlan == 100 and f.flow.encap  # TCI 0x2064: priority 1, VLAN 100
    assert f.owner.via == "socket" and f.syscall is None and f.pid == 42
    frag = to_packet_trace(decode_record(build(
        l3_proto=0x0800, l4_proto=17, flow_flags=abi.FL_L3 | abi.FL_FRAG,
    )))  # fmt: skip
    assert frag.flow is not None and frag.flow.fragment and frag.flow.sport is None
    assert frag.dport == 53  # no header port: the syscall's sockaddr still names it
    lldp = to_packet_trace(decode_record(build(l3_proto=0x88CC, flow_flags=abi.FL_L3)))
    assert lldp.flow is not None and lldp.flow.l3 == "0x88cc" and lldp.flow.l4_proto is None
    assert to_packet_trace(decode_record(build(flow_flags=0))).flow is None
    # no identity (no BTF) and no tie: the owner is unknown, not "kernel"
    anon = to_packet_trace(decode_record(build(syscall=0, via=abi.VIA_NONE)))
    assert anon.owner is None and anon.pid == 0 and anon.comm == ""


def test_non_utf8_comm_does_not_break_decoding() -> None:
    r = decode_record(build(comm=b"\xff\xfebad\0junk"))
    assert r.comm == "\ufffd\ufffdbad"


# ---- tracefs format parsing --------------------------------------------------------------------


def test_format_fields_from_the_captured_kfree_skb_format() -> None:
    fields = format_fields((RINGBUF / "kfree_skb.format").read_text())
    assert fields["skbaddr"] == (8, 8)
    assert fields["location"] == (16, 8)
    assert fields["reason"] == (36, 4)
    assert "common_pid" in fields


def test_format_fields_handles_arrays_and_data_loc() -> None:
    text = (
        "\tfield:__data_loc char[] name;\toffset:8;\tsize:4;\tsigned:0;\n"
        "\tfield:unsigned long hist[4];\toffset:40;\tsize:32;\tsigned:0;\n"
        "\tfield:const void * skbaddr;\toffset:16;\tsize:8;\tsigned:0;\n"
    )
    assert format_fields(text) == {"name": (8, 4), "hist": (40, 32), "skbaddr": (16, 8)}


def test_drop_reason_table() -> None:
    reasons = parse_drop_reasons((RINGBUF / "kfree_skb.format").read_text())
    assert reasons[2] == "NOT_SPECIFIED" and reasons[64] == "QDISC_DROP"
    assert len(reasons) > 100
    assert parse_drop_reasons("no table here") == {}


def test_exit_record_pack_round_trip() -> None:
    buf = EXIT_RECORD.pack(1, 2, 3, 4)
    assert decode_any(buf) == ExitRecord(1, 2, 3, 4)
    assert struct.calcsize("<QQQI4x") == len(buf)


def test_every_field_lands_where_the_layout_puts_it() -> None:
    """decode_record builds RawRecord positionally from the unpacked tuple: each field, given a
    value no other field has, must come back under its own name."""
    values: dict[str, object] = {}
    n = 1
    for name, fmt in abi.RECORD_FIELDS:
        if fmt.endswith("x"):
            continue
        if name in ("comm", "dev"):
            values[name] = f"{name}{n}".encode()
        elif fmt.endswith("s"):
            values[name] = bytes(range(n, n + 16))
        elif fmt[:-1]:
            values[name] = tuple(range(n, n + int(fmt[:-1])))
            n += int(fmt[:-1]) - 1
        else:
            values[name] = n
        n += 1
    # Codes within their tables, so the record is valid.
    values.update(end=1, free_kind=2, syscall=3, via=2)
    r = decode_record(build(**values))
    for name, want in values.items():
        got = getattr(r, name)
        assert got == (want.decode() if name in ("comm", "dev") else want), name  # type: ignore[union-attr]


def test_flows_and_owners_are_shared_and_the_caches_stay_bounded() -> None:
    a = to_packet_trace(rec("udp-05"))
    b = to_packet_trace(rec("udp-05"))
    assert a.flow is b.flow and a.owner is b.owner  # immutable: one object per flow / sender
    for i in range(decode._FLOWS_MAX + 10):  # a scan of many ports: bounded, still right
        ip4 = bytes([10, 0, i >> 8 & 0xFF, i & 0xFF]) + bytes(12)
        f = to_packet_trace(decode_record(build(
            l3_proto=0x0800, saddr=ip4, flow_flags=abi.FL_L3 | abi.FL_PORTS, sport=i & 0xFFFF
        ))).flow  # fmt: skip
        assert f is not None and f.sport == i & 0xFFFF
        assert f.saddr == f"10.0.{i >> 8 & 0xFF}.{i & 0xFF}"
    assert len(decode._FLOWS) <= decode._FLOWS_MAX
    assert len(decode._IPV4) <= 4096
