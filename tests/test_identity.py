"""Identity prerequisites: the kernel struct offsets the flow and owner reads need, resolved from
BTF into -D options for the BPF compile, or a one-line reason when that cannot be done."""

from __future__ import annotations

from pathlib import Path

import pytest

from txtop.probes.bpf import prerequisites
from txtop.probes.bpf.btf import DEFAULT_BTF, Field, Offsets
from txtop.probes.bpf.prerequisites import IDENTITY_SIZES, identity_cflags

needs_kernel_btf = pytest.mark.skipif(not DEFAULT_BTF.exists(), reason=f"no {DEFAULT_BTF}")


def test_empty_btf_file_gives_the_reason(tmp_path: Path) -> None:
    empty = tmp_path / "vmlinux"
    empty.write_bytes(b"")
    ident = identity_cflags(empty)
    assert not ident.available and ident.cflags == ()
    assert ident.reason == f"identity unavailable: BTF file {empty} is empty"
    assert "\n" not in ident.reason


def test_missing_btf_file_gives_the_reason(tmp_path: Path) -> None:
    ident = identity_cflags(tmp_path / "nope")
    assert ident.reason.startswith("identity unavailable: no BTF at ")


@needs_kernel_btf
def test_running_kernel_gives_every_offset_the_program_reads() -> None:
    ident = identity_cflags()
    assert ident.available and ident.reason == "", ident.reason
    flags = set(ident.cflags)
    assert "-DTXTOP_BTF=1" in flags
    assert ident.offsets is not None
    for key, size in IDENTITY_SIZES.items():
        macro = key.replace(".", "_").upper()
        f = ident.offsets[key]
        assert f"-DTXTOP_OFF_{macro}={f.offset}" in flags
        assert f"-DTXTOP_SIZE_{macro}={size}" in flags
    # optional members: either resolved (with the bit position) or said to be absent
    for key in prerequisites.IDENTITY_BITS:
        macro = key.replace(".", "_").upper()
        if key in ident.offsets:
            assert f"-DTXTOP_SHIFT_{macro}={ident.offsets[key].shift}" in flags
        else:
            assert f"-DTXTOP_HAS_{macro}=0" in flags


def test_a_member_of_an_unexpected_size_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    fields = {key: Field(key, key, 8, size, "int", "u16") for key, size in IDENTITY_SIZES.items()}
    fields["sk_buff.network_header"] = Field(
        "sk_buff.network_header", "sk_buff.network_header", 180, 4, "int", "u32"
    )
    monkeypatch.setattr(prerequisites, "resolve_fields", lambda specs, path: Offsets(fields))
    ident = identity_cflags()
    assert not ident.available
    assert ident.reason == (
        "identity unavailable: sk_buff.network_header is u32 of 4 bytes, expected 2"
    )


# ---- the flow filter's kernel encoding (probes/bpf/settings.py) ---------------------------------


class _Leaf:
    """Stands in for bcc's ctypes leaf/key of txtop_flow_filter / txtop_host_key."""

    def __init__(self) -> None:
        self.l4_mask = [0, 0, 0, 0]
        self.l3_mask = self.any_proto = self.use_ports = self.use_hosts = 0
        self.prefixlen = 0
        self.data = [0] * 17


def test_flow_filter_encoding_protocols_ports_and_prefixes() -> None:
    import ipaddress

    from txtop.core.filters import FilterSpec
    from txtop.probes.bpf.abi import L3_ARP, L3_VLAN
    from txtop.probes.bpf.settings import check_flow, fill_flow_leaf, fill_host_key, port_words

    flow = FilterSpec.parse("proto=tcp,132,arp,vlan port=5201,6000-6130").flow
    leaf = _Leaf()
    fill_flow_leaf(leaf, flow)
    assert leaf.l4_mask == [1 << 6, 0, 1 << (132 - 128), 0]
    assert leaf.l3_mask == L3_ARP | L3_VLAN and leaf.any_proto == 0
    assert (leaf.use_ports, leaf.use_hosts) == (1, 0)
    words = port_words(flow.ports)
    wanted = {p for i, w in words.items() for p in range(i * 64, i * 64 + 64) if w >> (p % 64) & 1}
    assert wanted == {5201, *range(6000, 6131)}
    key = _Leaf()
    fill_host_key(key, ipaddress.ip_network("10.253.0.0/16"))
    assert key.prefixlen == 8 + 16 and key.data[:5] == [4, 10, 253, 0, 0]
    key6 = _Leaf()
    fill_host_key(key6, ipaddress.ip_network("fd00:253::/32"))
    assert key6.prefixlen == 40 and key6.data[:5] == [6, 0xFD, 0x00, 0x02, 0x53]
    assert check_flow(FilterSpec.parse("comm=x").flow) is None  # nothing for the kernel
    hosts_only = _Leaf()
    fill_flow_leaf(hosts_only, FilterSpec.parse("host=10.0.0.0/8").flow)
    assert (hosts_only.any_proto, hosts_only.use_ports, hosts_only.use_hosts) == (1, 0, 1)
