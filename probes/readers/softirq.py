"""Per-CPU network softirq counters from procfs.

- /proc/softirqs (fs/proc/softirqs.c): NET_TX/NET_RX runs per *possible* CPU
  (kstat_softirqs_cpu, bumped in handle_softirqs for every vector that ran). The header names
  the CPU of each column, so sparse or offline CPUs are mapped correctly.
- /proc/net/softnet_stat (net/core/net-procfs.c softnet_seq_show): one row per *online* CPU,
  hex: processed (packets taken off the backlog/NAPI), dropped (netdev_max_backlog overflow),
  time_squeeze (net_rx_action ran out of budget or time). Kernels >= 5.10 print the CPU index
  in column 13; older ones do not, and their row number is only the CPU id when all are online.
- /proc/stat ``cpuN`` lines: the same per-CPU times psutil.cpu_times(percpu=True) returns, but
  keyed by CPU id (psutil's list is positional and shifts when a CPU is offline).

Parsers raise ValueError on input they cannot make sense of (never anything else); lines they
do not need are ignored. The readings (``SoftnetRow``, ``CpuTimes``) are core types
(core/readings.py); the softirq share of CPU time is computed in core/cpu_shares.py, for
the merge.
"""

from __future__ import annotations

from pathlib import Path

from txtop.core.config import parse_cpu_list
from txtop.core.readings import CpuTimes, SoftnetRow
from txtop.probes.readers.files import read_text

PROC = Path("/proc")
NET_TX = "NET_TX"
NET_RX = "NET_RX"
SOFTNET_CPU_COLUMN = 12  # 0-based index of the CPU id column (kernels >= 5.10)


def parse_proc_softirqs(text: str) -> dict[int, tuple[int, int]]:
    """cpu -> (NET_TX count, NET_RX count) for every CPU column /proc/softirqs prints."""
    lines = text.splitlines()
    header: list[int] | None = None
    rows: dict[str, list[str]] = {}
    for line in lines:
        tokens = line.split()
        if not tokens:
            continue
        if header is None:
            if not all(t.startswith("CPU") for t in tokens):
                raise ValueError("/proc/softirqs: no CPU header line")
            header = [_cpu_number(t[3:]) for t in tokens]
            if len(set(header)) != len(header):
                raise ValueError("/proc/softirqs: a CPU appears twice in the header")
            continue
        name, _, rest = line.partition(":")
        name = name.strip()
        if name in (NET_TX, NET_RX):
            rows[name] = rest.split()
    if header is None:
        raise ValueError("/proc/softirqs: empty")
    for name in (NET_TX, NET_RX):
        if name not in rows:
            raise ValueError(f"/proc/softirqs: no {name} line")
        if len(rows[name]) != len(header):
            raise ValueError(
                f"/proc/softirqs: {name} has {len(rows[name])} values for {len(header)} CPUs"
            )
    tx = [_dec(v) for v in rows[NET_TX]]
    rx = [_dec(v) for v in rows[NET_RX]]
    return {cpu: (tx[i], rx[i]) for i, cpu in enumerate(header)}


def parse_softnet_stat(text: str, online_cpus: list[int] | None = None) -> dict[int, SoftnetRow]:
    """cpu -> (processed, dropped, time_squeeze) from /proc/net/softnet_stat.

    The CPU id is column 13 when the kernel prints it; otherwise the n-th row belongs to the
    n-th online CPU (``online_cpus``, ascending) or, without that list, to CPU n.
    """
    out: dict[int, SoftnetRow] = {}
    row_number = 0
    for line in text.splitlines():
        cols = line.split()
        if not cols:
            continue
        if len(cols) < 3:
            raise ValueError(f"/proc/net/softnet_stat: row {row_number} has {len(cols)} columns")
        if len(cols) > SOFTNET_CPU_COLUMN:
            cpu = _hex(cols[SOFTNET_CPU_COLUMN])
        elif online_cpus is not None:
            if row_number >= len(online_cpus):
                raise ValueError("/proc/net/softnet_stat: more rows than online CPUs")
            cpu = online_cpus[row_number]
        else:
            cpu = row_number
        if cpu in out:
            raise ValueError(f"/proc/net/softnet_stat: CPU {cpu} appears twice")
        out[cpu] = SoftnetRow(_hex(cols[0]), _hex(cols[1]), _hex(cols[2]))
        row_number += 1
    return out


def parse_proc_stat_cpus(text: str) -> dict[int, CpuTimes]:
    """cpu -> CpuTimes from the ``cpuN`` lines of /proc/stat (the ``cpu`` total is skipped)."""
    out: dict[int, CpuTimes] = {}
    for line in text.splitlines():
        if not line.startswith("cpu") or line.startswith("cpu "):
            continue
        tokens = line.split()
        cpu = _cpu_number(tokens[0][3:])
        fields = [_dec(t) for t in tokens[1:11]]
        if len(fields) < 4:
            raise ValueError(f"/proc/stat: {tokens[0]} has {len(fields)} fields")
        out[cpu] = CpuTimes(*fields)
    return out


def _cpu_number(text: str) -> int:
    if not text.isdigit() or not text.isascii():
        raise ValueError(f"bad CPU number {text[:16]!r}")
    return int(text)


def _dec(text: str) -> int:
    if not text.isdigit() or not text.isascii():
        raise ValueError(f"not a decimal counter: {text[:24]!r}")
    return int(text)


def _hex(text: str) -> int:
    try:
        if not text.isascii() or text.startswith(("-", "+", "0x", "0X")) or "_" in text:
            raise ValueError
        return int(text, 16)
    except ValueError:
        raise ValueError(f"not a hex counter: {text[:24]!r}") from None


# ---- thin readers -----------------------------------------------------------------------------


def read_softirqs(proc_root: Path = PROC) -> dict[int, tuple[int, int]]:
    return parse_proc_softirqs(read_text(proc_root / "softirqs"))


def read_softnet_stat(
    proc_root: Path = PROC, online_cpus: list[int] | None = None
) -> dict[int, SoftnetRow]:
    return parse_softnet_stat(read_text(proc_root / "net" / "softnet_stat"), online_cpus)


def read_cpu_times(proc_root: Path = PROC) -> dict[int, CpuTimes]:
    return parse_proc_stat_cpus(read_text(proc_root / "stat"))


def read_online_cpus(path: Path = Path("/sys/devices/system/cpu/online")) -> list[int] | None:
    try:
        return sorted(parse_cpu_list(read_text(path)))
    except (OSError, ValueError):
        return None
