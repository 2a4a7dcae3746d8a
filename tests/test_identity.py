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
