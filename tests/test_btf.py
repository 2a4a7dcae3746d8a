"""probes/bpf/btf.py: struct member offsets from BTF through libbpf.

Three kinds of witness:
- a small raw BTF blob built here by hand (known layout, both bitfield encodings, anonymous
  members, qualifiers): runs anywhere libbpf is installed;
- the running kernel's BTF, checked against gcc compiling ``bpftool btf dump ... format c``
  (offsetof/sizeof, and a bit scan for bitfields): an independent layout computation;
- a real BPF program (root): a raw tracepoint reading skb->len, skb->dev and dev->ifindex at the
  resolved offsets agrees with the classic tracepoint and the lab interface.
"""

from __future__ import annotations

import shutil
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest

from txtop.lab.netns import Lab
from txtop.probes.bpf import btf as btf_mod
from txtop.probes.bpf.btf import (
    DEFAULT_BTF,
    DEFAULT_FIELDS,
    Btf,
    BtfUnavailable,
    Field,
    FieldNotFound,
    FieldSpec,
    Offsets,
    resolve_fields,
    unavailable_reason,
)
from txtop.probes.bpf.prerequisites import IDENTITY_FIELDS

HAVE_LIBBPF = btf_mod._find_libbpf() is not None
needs_libbpf = pytest.mark.skipif(not HAVE_LIBBPF, reason="libbpf (libbpf1) is not installed")
needs_kernel_btf = pytest.mark.skipif(
    not DEFAULT_BTF.exists(),
    reason=f"no {DEFAULT_BTF}: kernel built without CONFIG_DEBUG_INFO_BTF",
)

# Bitfields and nested members of the running kernel checked on top of DEFAULT_FIELDS.
EXTRA_FIELDS = (
    FieldSpec("sk_buff.pkt_type"),  # __u8 :3 inside sk_buff's anonymous headers group
    FieldSpec("sk_buff.ip_summed"),  # __u8 :2, not at bit 0 of its byte
    FieldSpec("sk_buff.cloned"),  # __u8 :1 before the headers group
    FieldSpec("sk_buff.headers.protocol"),  # the named twin of the struct_group
    FieldSpec("sock.__sk_common.skc_v6_daddr.in6_u.u6_addr8"),  # 4 levels, a union, an array
    FieldSpec("sock_common.skc_dport"),  # anonymous union -> anonymous struct
)


# ---- a hand-built BTF blob ----------------------------------------------------------------------


class _BlobBuilder:
    """Writes raw BTF (linux/btf.h layout) so the walker can be tested on a known layout."""

    def __init__(self) -> None:
        self.strings = b"\0"
        self.types: list[bytes] = []

    def name(self, s: str) -> int:
        if not s:
            return 0
        off = len(self.strings)
        self.strings += s.encode() + b"\0"
        return off

    def add(
        self, name: str, kind: int, vlen: int, kflag: int, size_or_type: int, extra: bytes
    ) -> int:
        info = (kflag << 31) | (kind << 24) | vlen
        self.types.append(struct.pack("<III", self.name(name), info, size_or_type) + extra)
        return len(self.types)  # type ids start at 1 (0 is void)

    def int_(self, name: str, size: int, bits: int, bit_off: int = 0) -> int:
        return self.add(name, 1, 0, 0, size, struct.pack("<I", (bit_off << 16) | bits))

    def ref(self, kind: int, target: int, name: str = "") -> int:
        return self.add(name, kind, 0, 0, target, b"")

    def composite(
        self, kind: int, name: str, size: int, members: list[tuple[str, int, int, int]], kflag: int
    ) -> int:
        extra = b""
        for mname, mtype, bit_off, bits in members:
            off = (bits << 24 | bit_off) if kflag else bit_off
            extra += struct.pack("<III", self.name(mname), mtype, off)
        return self.add(name, kind, len(members), kflag, size, extra)

    def blob(self) -> bytes:
        types = b"".join(self.types)
        hdr = struct.pack(
            "<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(self.strings)
        )
        return hdr + types + self.strings


@pytest.fixture(scope="module")
def blob_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    b = _BlobBuilder()
    u32 = b.int_("unsigned int", 4, 32)
    u8 = b.int_("unsigned char", 1, 8)
    u8_t = b.ref(8, u8, "u8")  # typedef
    const_u8 = b.ref(10, u8_t)  # const u8
    anon_s = b.composite(4, "", 4, [("x", u32, 0, 0)], kflag=0)
    anon_u = b.composite(5, "", 4, [("", anon_s, 0, 0), ("y", u32, 0, 0)], kflag=0)
    # struct kf { u8 a:3; u8 b:5; u16 c:12 at bit 12; union { struct { u32 x; }; u32 y; };
    #             const u8 d; }  (kind_flag encoding)
    kf = b.composite(
        4,
        "kf",
        12,
        [
            ("a", u8_t, 0, 3),
            ("b", u8_t, 3, 5),
            ("c", u32, 12, 12),
            ("", anon_u, 32, 0),
            ("d", const_u8, 64, 0),
        ],
        kflag=1,
    )
    # Pre-kind_flag encoding: the width lives in the int type, optionally with an int offset.
    u32_5 = b.int_("unsigned int", 4, 5)
    u32_3_off2 = b.int_("unsigned int", 4, 3, bit_off=2)
    b.composite(4, "old", 4, [("f", u32_5, 4, 0), ("g", u32_3_off2, 9, 0)], kflag=0)
    ptr_kf = b.ref(2, kf)
    b.composite(4, "holder", 24, [("p", ptr_kf, 0, 0), ("kf", kf, 64, 0)], kflag=0)
    path = tmp_path_factory.mktemp("btf") / "sample.btf"
    path.write_bytes(b.blob())
    return path


@needs_libbpf
def test_blob_kind_flag_bitfields_anonymous_and_qualifiers(blob_path: Path) -> None:
    with Btf(blob_path) as b:
        a, bb, c = b.field("kf.a"), b.field("kf.b"), b.field("kf.c")
        x, y, d = b.field("kf.x"), b.field("kf.y"), b.field("kf.d")
        assert (a.offset, a.size, a.bit_offset, a.bit_size, a.shift) == (0, 1, 0, 3, 0)
        assert (bb.offset, bb.size, bb.bit_offset, bb.bit_size) == (0, 1, 3, 5)
        # 12 bits from bit 12: byte 1, bit 4, needs a 2-byte window
        assert (c.offset, c.size, c.bit_offset, c.bit_size) == (1, 2, 4, 12)
        assert (x.offset, x.size, x.is_bitfield) == (4, 4, False)  # through union -> struct
        assert (y.offset, y.size) == (4, 4)
        assert (d.offset, d.size, d.kind, d.type_name) == (8, 1, "int", "const u8")
        assert a.type_name == "u8" and a.kind == "int"
        nested = b.field("holder.kf.c")
        assert (nested.offset, nested.size, nested.bit_offset) == (9, 2, 4)
        p = b.field("holder.p")
        assert (p.offset, p.size, p.kind, p.type_name) == (0, 8, "ptr", "struct kf *")
        assert b.sizeof("holder") == 24


@needs_libbpf
def test_blob_old_style_int_bitfields(blob_path: Path) -> None:
    with Btf(blob_path) as b:
        f, g = b.field("old.f"), b.field("old.g")
    assert (f.offset, f.bit_offset, f.bit_size, f.size) == (0, 4, 5, 2)  # bits 4..8: 2 bytes
    assert (g.offset, g.bit_offset, g.bit_size, g.size) == (1, 3, 3, 1)  # 9 + int offset 2


@needs_libbpf
def test_blob_errors_are_one_line_and_name_the_culprit(blob_path: Path) -> None:
    with Btf(blob_path) as b:
        with pytest.raises(FieldNotFound, match=r"no struct nosuch in .*sample\.btf"):
            b.field("nosuch.x")
        with pytest.raises(FieldNotFound, match=r"struct kf \(holder\.kf\) has no member zz"):
            b.field("holder.kf.zz")
        with pytest.raises(
            FieldNotFound, match=r"holder\.p is struct kf \*.*do not follow pointers"
        ):
            b.field("holder.p.a")
        with pytest.raises(FieldNotFound, match=r"kf\.d is const u8, not a struct or union$"):
            b.field("kf.d.e")


@needs_libbpf
def test_resolve_optional_missing_and_cflags(blob_path: Path) -> None:
    specs = [
        FieldSpec("kf.c"),
        FieldSpec("holder.kf.x", key="hx"),
        FieldSpec("kf.nope", optional=True),
    ]
    offs = resolve_fields(specs, btf_path=blob_path)
    assert set(offs) == {"kf.c", "hx"} and len(offs) == 2
    assert offs["hx"].offset == 12 and offs["hx"].path == "holder.kf.x"
    assert "no member nope" in offs.missing["kf.nope"]
    flags = offs.cflags()
    assert flags[0] == "-DTXTOP_BTF=1"
    for f in (
        "-DTXTOP_HAS_KF_C=1",
        "-DTXTOP_OFF_KF_C=1",
        "-DTXTOP_SIZE_KF_C=2",
        "-DTXTOP_SHIFT_KF_C=4",
        "-DTXTOP_BITS_KF_C=12",
        "-DTXTOP_OFF_HX=12",
        "-DTXTOP_SIZE_HX=4",
        "-DTXTOP_HAS_KF_NOPE=0",
    ):
        assert f in flags
    assert not any(f.startswith(("-DTXTOP_BITS_HX", "-DTXTOP_OFF_KF_NOPE")) for f in flags)
    with pytest.raises(FieldNotFound, match="has no member nope"):
        resolve_fields([FieldSpec("kf.nope")], btf_path=blob_path)


def test_spec_validation() -> None:
    with pytest.raises(ValueError, match="struct.member"):
        FieldSpec("sk_buff")
    with pytest.raises(ValueError, match="struct.member"):
        FieldSpec("sk_buff.len; rm")
    with pytest.raises(ValueError, match="key"):
        FieldSpec("sk_buff.len", key="a b")
    assert FieldSpec("sk_buff.sk").macro == "SK_BUFF_SK"
    with pytest.raises(ValueError, match="same macro"):
        resolve_fields([FieldSpec("a.b_c"), FieldSpec("a_b.c")], btf_path=Path("/nonexistent"))


# ---- unusable BTF or libbpf ---------------------------------------------------------------------


@needs_libbpf
@pytest.mark.parametrize(
    ("name", "content", "expect"),
    [
        ("absent.btf", None, r"^no BTF at .*/absent\.btf$"),
        ("empty.btf", b"", r"^BTF file .*/empty\.btf is empty$"),
        ("junk.btf", b"not btf at all\n" * 4, r"^libbpf cannot load .*/junk\.btf: .+"),
        ("adir", "dir", r"^cannot read BTF .*/adir: Is a directory$"),
    ],
    ids=["nonexistent", "empty", "junk", "directory"],
)
def test_unusable_btf_gives_one_line_reason(
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    name: str,
    content: bytes | str | None,
    expect: str,
) -> None:
    path = tmp_path / name
    if content == "dir":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    with pytest.raises(BtfUnavailable, match=expect) as info:
        resolve_fields(btf_path=path)
    reason = unavailable_reason(info.value)
    assert reason.startswith("identity unavailable: ") and "\n" not in reason
    assert capfd.readouterr().err == ""  # libbpf's own warnings are kept off the terminal


@needs_libbpf
def test_libbpf_printer_is_restored(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    # Silencing is per call: bcc (same libbpf) keeps its messages afterwards.
    junk = tmp_path / "junk.btf"
    junk.write_bytes(b"junk" * 8)
    with pytest.raises(BtfUnavailable):
        resolve_fields(btf_path=junk)
    assert capfd.readouterr().err == ""
    assert btf_mod._libbpf().btf__parse(bytes(junk), None) is None
    assert "libbpf:" in capfd.readouterr().err


@needs_libbpf
def test_btf_without_types(tmp_path: Path) -> None:
    path = tmp_path / "none.btf"
    path.write_bytes(_BlobBuilder().blob())
    with pytest.raises(BtfUnavailable, match=r"none\.btf holds no types"):
        resolve_fields(btf_path=path)


def test_missing_libbpf(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(btf_mod, "_lib", None)
    monkeypatch.setattr(btf_mod, "_find_libbpf", lambda: None)
    with pytest.raises(BtfUnavailable, match=r"^libbpf not found \(install libbpf1\)$"):
        resolve_fields()


def test_default_path_hint() -> None:
    # Only the kernel's own path gets the CONFIG hint; a user-given path is just "no BTF at".
    with pytest.raises(BtfUnavailable) as info:
        btf_mod._precheck(Path("/nonexistent/vmlinux"))
    assert "CONFIG_DEBUG_INFO_BTF" not in str(info.value)


# ---- the running kernel, against gcc + bpftool --------------------------------------------------

_WITNESS_PRELUDE = r"""
#include "vmlinux.h"
extern int printf(const char *, ...);
/* first set bit and number of set bits of an object, bits numbered as the compiler lays out
   bitfields on this (little-endian) target */
static void bits(const char *name, const unsigned char *p, unsigned long n) {
    long first = -1, count = 0;
    for (unsigned long i = 0; i < n * 8; i++)
        if (p[i / 8] >> (i % 8) & 1) { if (first < 0) first = (long)i; count++; }
    printf("bits %s %ld %ld\n", name, first, count);
}
#define OFF(T, M, KEY) printf("off %s %lu %lu\n", KEY, \
    (unsigned long)__builtin_offsetof(struct T, M), (unsigned long)sizeof(((struct T *)0)->M));
#define BITS(T, M, KEY) { static struct T s; s.M = ~0ULL; \
    bits(KEY, (const unsigned char *)&s, sizeof(s)); }
int main(void) {
"""


def _witness_source(fields: list[Field]) -> str:
    lines = [_WITNESS_PRELUDE]
    for f in fields:
        root, member = f.path.split(".", 1)
        macro = "BITS" if f.is_bitfield else "OFF"
        lines.append(f'    {macro}({root}, {member}, "{f.key}")')
    lines.append("    return 0;\n}\n")
    return "\n".join(lines)


@pytest.fixture(scope="module")
def kernel_offsets() -> Offsets:
    if not DEFAULT_BTF.exists():
        pytest.skip(f"no {DEFAULT_BTF}: kernel built without CONFIG_DEBUG_INFO_BTF")
    if not HAVE_LIBBPF:
        pytest.skip("libbpf (libbpf1) is not installed")
    # ... and every member txtop.bpf.c reads (the raw hooks' arguments: netdev_queue, Qdisc,
    # net_device.name/nd_net, net.ns.inum, pt_regs), so the witness checks them all.
    keys = {f.key for f in DEFAULT_FIELDS + EXTRA_FIELDS}
    used = tuple(f for f in IDENTITY_FIELDS if f.key not in keys)
    return resolve_fields(DEFAULT_FIELDS + EXTRA_FIELDS + used)


@needs_kernel_btf
@needs_libbpf
def test_kernel_fields_match_gcc_on_bpftool_dump(kernel_offsets: Offsets, tmp_path: Path) -> None:
    bpftool, gcc = shutil.which("bpftool"), shutil.which("gcc")
    if not bpftool or not gcc:
        pytest.skip("needs bpftool and gcc to build the independent witness")
    header = subprocess.run(
        [bpftool, "btf", "dump", "file", str(DEFAULT_BTF), "format", "c"],
        capture_output=True,
        timeout=120,
        check=True,
    ).stdout
    (tmp_path / "vmlinux.h").write_bytes(header)
    fields = list(kernel_offsets.values())
    (tmp_path / "witness.c").write_text(_witness_source(fields))
    res = subprocess.run(
        [gcc, "-w", "-O0", "-o", str(tmp_path / "witness"), str(tmp_path / "witness.c")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    out = subprocess.run(
        [str(tmp_path / "witness")], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    seen: dict[str, tuple[str, int, int]] = {}
    for line in out.splitlines():
        what, key, first, second = line.split()
        seen[key] = (what, int(first), int(second))
    assert set(seen) == set(kernel_offsets)
    for key, f in kernel_offsets.items():
        what, a, b = seen[key]
        if f.is_bitfield:
            assert f.bit_offset is not None and f.bit_size is not None
            assert what == "bits" and (f.offset * 8 + f.bit_offset, f.bit_size) == (a, b), key
            assert f.bit_offset + f.bit_size <= f.size * 8
        else:
            assert what == "off" and (f.offset, f.size) == (a, b), key
    # the witness covered what the brief asks for
    assert kernel_offsets["sk_buff.pkt_type"].is_bitfield
    assert kernel_offsets["sk_buff.ip_summed"].is_bitfield
    assert kernel_offsets["sk_buff.dev"].kind == "ptr"  # inside anonymous union/struct/union
    for key in ("netdev_queue.state", "Qdisc.parent", "net_device.name", "net.ns.inum"):
        assert key in kernel_offsets  # the raw hooks' reads are witnessed too
    proto, twin = kernel_offsets["sk_buff.protocol"], kernel_offsets["sk_buff.headers.protocol"]
    assert (proto.offset, proto.size) == (twin.offset, twin.size)


@needs_kernel_btf
@needs_libbpf
def test_kernel_defaults_all_resolve_and_cost(kernel_offsets: Offsets) -> None:
    optional = {f.key for f in IDENTITY_FIELDS if f.optional}
    assert set(kernel_offsets.missing) <= optional, kernel_offsets.missing
    t0 = time.perf_counter()
    offs = resolve_fields()
    total_ms = (time.perf_counter() - t0) * 1e3
    assert set(offs) == {s.key for s in DEFAULT_FIELDS}
    print(
        f"\nBTF load {offs.load_ms:.1f} ms, resolve {len(offs)} fields {offs.resolve_ms:.1f} ms, "
        f"total {total_ms:.1f} ms"
    )
    assert total_ms < 2000  # generous: a loaded 2-core CI box; ~16 ms when quiet
    # libbpf's own vmlinux search finds the same BTF
    assert dict(resolve_fields(btf_path=None)) == dict(offs)
    sizes = {k: f.size for k, f in offs.items()}
    assert sizes["sk_buff.len"] == 4 and sizes["net_device.ifindex"] == 4
    assert sizes["sock.skc_daddr"] == 4 and sizes["sock.skc_v6_daddr"] == 16


# ---- the offsets in a real BPF program ----------------------------------------------------------

_BPF_CFLAGS = [  # as the tracer compiles: the fallback headers warn about things we never use
    "-Wno-ignored-attributes",
    "-Wno-duplicate-decl-specifier",
    "-Wno-address-of-packed-member",
    "-Wno-unknown-warning-option",
]

# Deliberately no kernel struct types: every field access goes through the BTF offsets.
# skb addresses are recycled from packet to packet, so each hook emits an event in one ring
# buffer and user space pairs, per skb address, a classic event with the raw one right after it
# (both fire from the same trace call, classic first: it was attached first).
_BPF_TEXT = r"""
struct ev {
    u64 skb;
    u64 len;
    u64 ifindex;      /* raw: dev (raw arg 1) -> ifindex */
    u64 skb_ifindex;  /* raw: skb -> dev -> ifindex */
    u32 raw;          /* 1: raw tracepoint, 0: classic */
    u32 pad;
};
BPF_RINGBUF_OUTPUT(events, 64);

static __always_inline u64 rd(u64 base, u64 off, u32 size) {
    u64 v = 0;  /* little-endian: a short read fills the low bytes */
    bpf_probe_read_kernel(&v, size & 7 ? size : 8, (void *)(base + off));
    return v;
}

int txtop_test_raw(struct bpf_raw_tracepoint_args *ctx) {
    u64 skb = ctx->args[0], dev = ctx->args[1];
    struct ev e = {.skb = skb, .raw = 1};
    e.len = rd(skb, TXTOP_OFF_SK_BUFF_LEN, TXTOP_SIZE_SK_BUFF_LEN);
    e.ifindex = rd(dev, TXTOP_OFF_NET_DEVICE_IFINDEX, TXTOP_SIZE_NET_DEVICE_IFINDEX);
    u64 skb_dev = rd(skb, TXTOP_OFF_SK_BUFF_DEV, TXTOP_SIZE_SK_BUFF_DEV);
    e.skb_ifindex = rd(skb_dev, TXTOP_OFF_NET_DEVICE_IFINDEX, TXTOP_SIZE_NET_DEVICE_IFINDEX);
    events.ringbuf_output(&e, sizeof(e), 0);
    return 0;
}

TRACEPOINT_PROBE(net, net_dev_start_xmit) {
    struct ev e = {.skb = (u64)args->skbaddr, .len = args->len};
    events.ringbuf_output(&e, sizeof(e), 0);
    return 0;
}
"""


def _pairs(events: list[tuple[int, int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """(classic len, raw len, raw ifindex, raw skb->dev ifindex) per transmitted skb."""
    last_classic: dict[int, int] = {}
    out = []
    for skb, length, ifindex, skb_ifindex, raw in events:
        if not raw:
            last_classic[skb] = length
        elif skb in last_classic:
            out.append((last_classic.pop(skb), length, ifindex, skb_ifindex))
    return out


def _tracefs_ready() -> bool:
    for root in (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing")):
        if (root / "events").is_dir():
            return True
    res = subprocess.run(
        ["mount", "-t", "tracefs", "nodev", "/sys/kernel/tracing"], capture_output=True, timeout=10
    )
    return res.returncode == 0 and Path("/sys/kernel/tracing/events").is_dir()


@pytest.mark.root
@needs_kernel_btf
@needs_libbpf
def test_offsets_in_raw_tracepoint_match_classic_tracepoint(lab: Lab) -> None:
    from txtop.probes.bpf.headers import HeadersError, kernel_source_env, prepare_headers

    try:
        from bcc import BPF
    except Exception as exc:  # noqa: BLE001 - any broken bcc install means: cannot test here
        pytest.skip(f"bcc not importable: {exc}")
    if not _tracefs_ready():
        pytest.skip("no tracefs")
    try:
        plan, _notice = prepare_headers()
    except HeadersError as exc:
        pytest.skip(f"no kernel headers for bcc: {exc}")
    offs = resolve_fields(
        [FieldSpec("sk_buff.len"), FieldSpec("sk_buff.dev"), FieldSpec("net_device.ifindex")]
    )
    with kernel_source_env(plan):
        bpf = BPF(text=_BPF_TEXT.encode(), cflags=_BPF_CFLAGS + offs.cflags())
    events: list[tuple[int, int, int, int, int]] = []

    def on_event(_ctx: object, data: object, _size: int) -> None:
        e = bpf[b"events"].event(data)
        events.append((e.skb, e.len, e.ifindex, e.skb_ifindex, e.raw))

    try:
        bpf[b"events"].open_ring_buffer(on_event)
        bpf.attach_raw_tracepoint(tp=b"net_dev_start_xmit", fn_name=b"txtop_test_raw")
        payloads = [100, 101, 102, 103, 104]

        def lab_lengths() -> set[int]:
            return {raw for _, raw, ifindex, _ in _pairs(events) if ifindex == lab.ifindex}

        # Poll until every datagram was seen by both programs; resend what is missing (the
        # ring is shared with every packet of a busy machine and may drop some).
        deadline = time.monotonic() + 30
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            while (missing := {n for n in payloads if n + 42 not in lab_lengths()}) and (
                time.monotonic() < deadline
            ):
                for n in sorted(missing):  # into the lab namespace only
                    sock.sendto(b"x" * n, (lab.peer_ip, 9))
                bpf.ring_buffer_poll(200)
    finally:
        bpf.cleanup()
    pairs = _pairs(events)
    assert pairs, f"no skb seen by both the raw and the classic tracepoint ({len(events)} events)"
    # every packet on the machine: the BTF offset reads what the kernel's own tracepoint says
    assert all(tp_len == raw_len for tp_len, raw_len, _, _ in pairs), pairs
    assert all(ifindex == skb_ifindex for _, _, ifindex, skb_ifindex in pairs), pairs
    lab_lens = sorted(raw_len for _, raw_len, ifindex, _ in pairs if ifindex == lab.ifindex)
    # UDP 8 + IPv4 20 + Ethernet 14 bytes of headers at start_xmit on a veth
    assert {n + 42 for n in payloads} <= set(lab_lens), (lab_lens, lab.ifindex)
    print(
        f"\n{len(pairs)} skbs checked, {len(lab_lens)} on {lab.dev} (ifindex {lab.ifindex}): "
        f"lengths {lab_lens}"
    )
