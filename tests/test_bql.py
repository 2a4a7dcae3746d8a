"""BQL parsing and reading, against real (eth0) and constructed sysfs trees."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from txtop.core.model import BqlStats
from txtop.probes.readers.bql import BQL_FILES, parse_bql, read_bql


@pytest.fixture
def sysfs(data_dir: Path) -> Path:
    return data_dir / "sysfs"


def test_read_bql_real_eth0(sysfs: Path) -> None:
    # Real capture of virtio_net eth0 on the 6.18 VM: has the 6.10+ stall_* files.
    assert read_bql("eth0", 0, sysfs) == BqlStats(
        inflight=0,
        limit=2198,
        limit_min=0,
        limit_max=1879048192,
        hold_time=1000,
        stall_thrs=0,
        stall_cnt=0,
        stall_max=0,
    )


def test_read_bql_constructed_old_kernel_multiqueue(sysfs: Path) -> None:
    # Constructed from Documentation/ABI/testing/sysfs-class-net-queues, pre-6.10 kernel.
    for q in range(8):
        stats = read_bql("ens1f0", q, sysfs)
        assert stats == BqlStats(q * 1514, 30280 + q, 0, 1879048192, 1000, None, None, None)


def test_read_bql_absent_is_none(sysfs: Path) -> None:
    assert read_bql("lo", 0, sysfs) is None  # lo has no BQL
    assert read_bql("eth0", 5, sysfs) is None  # no such queue
    assert read_bql("gone0", 0, sysfs) is None


def test_parse_bql_requires_core_files() -> None:
    files = {"inflight": "1", "limit": "2", "limit_min": "0", "limit_max": "9", "hold_time": "1000"}
    assert parse_bql(files).stall_cnt is None
    for name in list(files):
        partial = {k: v for k, v in files.items() if k != name}
        with pytest.raises(ValueError, match=name):
            parse_bql(partial)


@pytest.mark.parametrize("bad", ["", "-1", "abc", "1e3", "0x10"])
def test_parse_bql_rejects_garbage(bad: str) -> None:
    files = dict.fromkeys(BQL_FILES, "0\n")
    files["stall_cnt"] = bad
    with pytest.raises(ValueError, match="stall_cnt"):
        parse_bql(files)


# Fuzz policy: parse_bql either returns BqlStats of non-negative ints or raises ValueError.
@given(
    st.dictionaries(
        st.sampled_from(BQL_FILES + ("junk",)),
        st.one_of(st.text(max_size=12), st.integers(0, 2**64).map(str)),
    )
)
def test_fuzz_parse_bql(files: dict[str, str]) -> None:
    try:
        stats = parse_bql(files)
    except ValueError:
        return
    assert stats.inflight >= 0 and stats.limit >= 0
