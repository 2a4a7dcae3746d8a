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
DEV = "txlp9869a"


def load(name: str) -> bytes:
    return (RINGBUF / f"{name}.bin").read_bytes()


def rec(name: str) -> RawRecord:
    r = decode_any(load(name))
    assert isinstance(r, RawRecord)
    return r


# ---- captured records ------------------------------------------------------------------------


def test_udp_sendto_on_noqueue_veth() -> None:
    r = rec("udp-05")
    assert (r.comm, r.dev, r.syscall, r.dport, r.len) == ("python", DEV, 1, 5301, 106)
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


def test_arp_request_tied_to_the_first_sendto_and_the_held_back_packet_untied() -> None:
    arp = to_packet_trace(rec("udp-00"))
    assert arp.protocol == 0x0806 and arp.len == 42 and arp.pid > 0
    held = to_packet_trace(rec("udp-01"))
    assert held.pid == 0 and held.tid == 0 and held.comm == "" and held.syscall is None
    assert "sendto" not in held.stages and held.dport is None


def test_tbf_records_have_qdisc_stages_and_growing_waits() -> None:
    first, later = rec("tbf-00"), rec("tbf-05")
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
        "ffffffff81eb60a0 T __dev_queue_xmit\nffffffff81eb70b0 T __pfx_kick_defer_list_purge\n"
    )
    p = to_packet_trace(r, drop_reasons=reasons, resolve_location=syms.resolve)
    assert p.free_kind == "drop" and p.drop_reason == "QDISC_DROP"
    assert p.free_location == "__dev_queue_xmit+0xdd1"
    assert "start_xmit" not in p.stages and p.queue is None
    # Without a resolver or a reasons table the raw values still show.
    bare = to_packet_trace(r)
    assert bare.free_location == "0xffffffff81eb6e71" and bare.drop_reason == "64"


def test_tso_skb_counts_its_segments() -> None:
    p = to_packet_trace(rec("tcp-08"))
    assert p.gso_segs == 11 and p.len > 15000 and p.syscall == "sendto"
    assert p.dport is None  # send() on a connected socket names no address


def test_exit_records_join_by_sample_identity() -> None:
    for name in ("udp-12", "tbf-12", "drop-12", "tcp-12"):
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
        "tgid": 42,
        "tid": 43,
        "len": 100,
        "ifindex": 0,
        "xmit_rc": 0,
        "drop_reason": 0,
        "sample_every": 64,
        "sample_max_per_s": 200,
        "cpu": (1, 1, 0, 0, 1, 1, 0),
        "queue": 2,
        "gso_segs": 0,
        "protocol": 0x86DD,
        "dport": 53,
        "end": 0,
        "free_kind": 1,
        "syscall": 2,
        "flags": abi.F_QUEUE | abi.F_RC,
        "comm": b"dig",
        "dev": b"eth0",
    }
    fields.update(over)
    f = fields
    return RECORD.pack(
        f["skbaddr"], f["first_ns"], *f["ts"], f["sys_exit_ns"], f["txq_state"], f["location"],
        f["tgid"], f["tid"], f["len"], f["ifindex"], f["xmit_rc"], f["drop_reason"],
        f["sample_every"], f["sample_max_per_s"], *f["cpu"], f["queue"], f["gso_segs"],
        f["protocol"], f["dport"], f["end"], f["free_kind"], f["syscall"], f["flags"],
        f["comm"], f["dev"],
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


def test_unknown_codes_and_wrong_sizes_are_decode_errors() -> None:
    with pytest.raises(DecodeError, match="expected 192"):
        decode_record(b"\0" * 100)
    with pytest.raises(DecodeError, match="unknown end"):
        decode_record(build(end=9))
    with pytest.raises(DecodeError, match="unknown end"):
        decode_record(build(syscall=7))
    with pytest.raises(DecodeError):
        decode_any(b"\0" * 33)
    with pytest.raises(DecodeError):
        decode.decode_exit(b"\0" * 31)


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
