"""Kernel symbol resolution (probes/bpf/kallsyms.py): a fake dump, and the real one as root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from txtop.probes.bpf.kallsyms import KernelSymbols, parse_kallsyms

DUMP = """\
ffffffff81000000 T _stext
ffffffff81000000 T _text
ffffffff81001000 t helper_local
ffffffff81002000 D some_data
ffffffff81003000 T consume_skb
ffffffff81003400 W weak_fn
ffffffffc0100000 t veth_xmit\t[veth]
ffffffffc0100800 t veth_poll\t[veth]
"""


def test_resolves_text_symbols_with_offsets() -> None:
    t = parse_kallsyms(DUMP)
    assert t.resolve(0xFFFFFFFF81003010) == "consume_skb+0x10"
    assert t.resolve(0xFFFFFFFF81003000) == "consume_skb+0x0"
    assert t.resolve(0xFFFFFFFF81001FFF) == "helper_local+0xfff"  # data symbols are skipped
    assert t.resolve(0xFFFFFFFF81003401) == "weak_fn+0x1"
    assert t.resolve(0xFFFFFFFFC0100042) == "veth_xmit+0x42 [veth]"
    assert t.resolve(0xFFFFFFFF81000004) in ("_stext+0x4", "_text+0x4")


def test_out_of_range_addresses() -> None:
    t = parse_kallsyms(DUMP)
    assert t.resolve(0x1000) is None
    assert t.resolve(0) is None
    assert t.resolve(0xFFFFFFFFC0100800 + 0x200000) is None  # far past the last symbol


def test_hidden_addresses_resolve_nothing(tmp_path: Path) -> None:
    p = tmp_path / "kallsyms"
    p.write_text("0000000000000000 T consume_skb\n0000000000000000 T kfree_skb\n")
    k = KernelSymbols(p)
    assert not k.available
    assert k.resolve(0xFFFFFFFF81003010) is None


def test_garbage_lines_are_ignored(tmp_path: Path) -> None:
    p = tmp_path / "kallsyms"
    p.write_text("not a line\nzzzz T bad_addr\nffffffff81003000 T consume_skb\n\n")
    k = KernelSymbols(p)
    assert k.resolve(0xFFFFFFFF81003008) == "consume_skb+0x8"
    assert k.resolve(0xFFFFFFFF81003008) == "consume_skb+0x8"  # memoised path


def test_missing_file_is_not_an_error(tmp_path: Path) -> None:
    k = KernelSymbols(tmp_path / "absent")
    assert k.resolve(0xFFFFFFFF81003008) is None and not k.available


@pytest.mark.root
def test_real_kallsyms_resolves_a_known_function() -> None:
    if os.geteuid() != 0:
        pytest.skip("kallsyms hides addresses from non-root")
    addr = None
    with open("/proc/kallsyms") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[2] == "consume_skb" and parts[1] in "tT":
                addr = int(parts[0], 16)
                break
    if not addr:
        pytest.skip("consume_skb not in kallsyms")
    k = KernelSymbols()
    assert k.available
    assert k.resolve(addr + 0x10) == "consume_skb+0x10"
