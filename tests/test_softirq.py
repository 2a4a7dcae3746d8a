"""/proc/softirqs, /proc/net/softnet_stat and /proc/stat parsing (real and constructed files)."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest
from hypothesis import given
from hypothesis import strategies as st

from txtop.core.config import parse_cpu_list
from txtop.core.cpu_shares import softirq_time_pct
from txtop.core.readings import CpuTimes, SoftnetRow
from txtop.probes.readers.softirq import (
    parse_proc_softirqs,
    parse_proc_stat_cpus,
    parse_softnet_stat,
    read_cpu_times,
    read_softirqs,
    read_softnet_stat,
)


def test_real_capture(data_dir: Path) -> None:
    proc = data_dir / "proc"  # this 2-CPU VM, kernel 6.18 (15-column softnet_stat)
    assert read_softirqs(proc) == {0: (9, 2114752), 1: (6, 6106629)}
    assert read_softnet_stat(proc) == {
        0: SoftnetRow(0x203CB8, 0, 0),
        1: SoftnetRow(0x60428B, 0, 0),
    }
    assert read_cpu_times(proc) == {
        0: CpuTimes(1260, 0, 579, 53234, 23, 0, 136, 4, 0, 0),
        1: CpuTimes(3621, 0, 1131, 49752, 455, 0, 233, 4, 0, 0),
    }


def test_constructed_64_cpus(data_dir: Path) -> None:
    proc = data_dir / "proc64"
    softirqs = read_softirqs(proc)
    assert sorted(softirqs) == list(range(64))
    assert softirqs[63] == (1063, 50000 + 7 * 63)
    softnet = read_softnet_stat(proc)
    assert softnet[37] == SoftnetRow(0x10000 + 37, 37 % 3, 37 % 5)
    assert len(read_cpu_times(proc)) == 64


def test_constructed_256_possible_200_online(data_dir: Path) -> None:
    proc = data_dir / "proc256"
    softirqs = read_softirqs(proc)
    assert len(softirqs) == 256  # possible CPUs, offline ones included
    assert softirqs[255] == (1255, 50000 + 7 * 255)
    # Line width: 12 + 1 + 256 * 11 characters; nothing is cut.
    assert max(len(line) for line in (proc / "softirqs").read_text().splitlines()) > 2800
    softnet = read_softnet_stat(proc)
    assert sorted(softnet) == list(range(200))  # CPU index column 13
    assert softnet[199] == SoftnetRow(0x10000 + 199, 199 % 3, 199 % 5)


def test_old_softnet_without_cpu_column(data_dir: Path) -> None:
    text = (data_dir / "proc_old" / "net" / "softnet_stat").read_text()
    # CPU 2 of 4 offline: with the online list the third row is CPU 3...
    assert parse_softnet_stat(text, online_cpus=[0, 1, 3]) == {
        0: SoftnetRow(0x10000, 0, 0),
        1: SoftnetRow(0x10001, 1, 1),
        3: SoftnetRow(0x10003, 0, 3),
    }
    # ...without it, the row number is the best guess.
    assert sorted(parse_softnet_stat(text)) == [0, 1, 2]
    with pytest.raises(ValueError):
        parse_softnet_stat(text, online_cpus=[0, 1])


def test_softirqs_sparse_header() -> None:
    text = (
        "                    CPU0       CPU2       CPU5       \n"
        "      NET_TX:          1          2          3\n"
        "      NET_RX:         10         20         30\n"
    )
    assert parse_proc_softirqs(text) == {0: (1, 10), 2: (2, 20), 5: (3, 30)}


@pytest.mark.parametrize(
    "text",
    [
        "",
        "      NET_TX: 1\n      NET_RX: 2\n",
        "   CPU0 CPU1\n      NET_TX: 1 2\n",  # no NET_RX
        "   CPU0 CPU1\n      NET_TX: 1 2\n      NET_RX: 3\n",  # short row
        "   CPU0 CPU1\n      NET_TX: 1 -2\n      NET_RX: 3 4\n",
        "   CPU0 CPU0\n      NET_TX: 1 2\n      NET_RX: 3 4\n",
    ],
)
def test_softirqs_malformed(text: str) -> None:
    with pytest.raises(ValueError):
        parse_proc_softirqs(text)


def test_softnet_malformed() -> None:
    for text in ("zz 00 00\n", "00 01\n", "0x1 0 0\n"):
        with pytest.raises(ValueError):
            parse_softnet_stat(text)
    dup = "0 0 0 0 0 0 0 0 0 0 0 0 00000001\n0 0 0 0 0 0 0 0 0 0 0 0 00000001\n"
    with pytest.raises(ValueError):
        parse_softnet_stat(dup)


def test_cpu_list() -> None:
    assert parse_cpu_list("0-3,8,10-11\n") == {0, 1, 2, 3, 8, 10, 11}
    assert parse_cpu_list("0\n") == {0}
    for bad in ("3-1", "a", "1-", "-1"):
        with pytest.raises(ValueError):
            parse_cpu_list(bad)


def test_softirq_time_pct() -> None:
    prev = {0: CpuTimes(100, 0, 50, 800, 0, 0, 50), 1: CpuTimes(1, 1, 1, 1)}
    cur = {
        0: CpuTimes(150, 0, 50, 950, 0, 0, 100, 0, 20, 0),  # guest is inside user: not added
        1: CpuTimes(1, 1, 1, 1),  # no time passed
        2: CpuTimes(5, 0, 0, 5, 0, 0, 5),  # appeared (hot-plugged)
    }
    assert softirq_time_pct(prev, cur) == {0: 20.0, 1: 0.0, 2: 0.0}
    # Time going backwards (CPU re-plugged) never yields a negative share.
    assert softirq_time_pct(cur, prev)[0] == 0.0


def test_softirq_time_pct_accepts_psutil_tuples() -> None:
    a = dict(enumerate(psutil.cpu_times(percpu=True)))
    b = dict(enumerate(psutil.cpu_times(percpu=True)))
    pct = softirq_time_pct(a, b)
    assert set(pct) == set(b)
    assert all(0.0 <= v <= 100.0 for v in pct.values())


# Fuzz policy for every procfs parser: garbage raises ValueError and nothing else; whatever
# parses yields non-negative integers.
_lines = st.lists(
    st.one_of(
        st.text(alphabet=" 0123456789abcdefCPU:NET_RXT\t-x", max_size=60),
        st.text(max_size=30),
    ),
    max_size=8,
).map("\n".join)


@given(_lines)
def test_fuzz_softirqs(text: str) -> None:
    try:
        out = parse_proc_softirqs(text)
    except ValueError:
        return
    assert all(tx >= 0 and rx >= 0 for tx, rx in out.values())


@given(_lines, st.one_of(st.none(), st.lists(st.integers(0, 300), max_size=5)))
def test_fuzz_softnet(text: str, online: list[int] | None) -> None:
    try:
        out = parse_softnet_stat(text, online)
    except ValueError:
        return
    assert all(min(row) >= 0 for row in out.values())


@given(_lines)
def test_fuzz_proc_stat_and_cpu_list(text: str) -> None:
    try:
        parse_proc_stat_cpus("cpu0 " + text)
    except ValueError:
        pass
    try:
        assert all(c >= 0 for c in parse_cpu_list(text))
    except ValueError:
        pass
