"""Write the CONSTRUCTED test files (not captures) into tests/data, deterministically.

They follow the kernel's print formats so parsers meet shapes this 2-CPU VM cannot produce:
- /proc/softirqs (fs/proc/softirqs.c show_softirqs): a header of "CPU%-8d" per *possible* CPU
  after 20 spaces, then one "%12s:" row per softirq with " %10u" per possible CPU.
- /proc/net/softnet_stat (net/core/net-procfs.c softnet_seq_show): one row per *online* CPU of
  "%08x" columns: processed, dropped, time_squeeze, 0, 0,0,0,0, 0 (was cpu_collision),
  received_rps, flow_limit_count; 5.10+ add backlog length and the CPU index (column 13);
  newer kernels (this 6.18 VM) add input_qlen and process_qlen (15 columns).
- /proc/stat (fs/proc/stat.c): "cpu" total then "cpu%d" per online CPU with user nice system
  idle iowait irq softirq steal guest guest_nice in USER_HZ ticks.
- byte_queue_limits (Documentation/ABI/testing/sysfs-class-net-queues) of an 8-queue NIC on a
  kernel older than 6.10, i.e. without stall_thrs/stall_cnt/stall_max.

Run from the repo root: ``.venv/bin/python tests/data/make_constructed.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOFTIRQ_NAMES = (
    "HI", "TIMER", "NET_TX", "NET_RX", "BLOCK", "IRQ_POLL", "TASKLET", "SCHED", "HRTIMER", "RCU",
)  # fmt: skip


def _write(rel: str, text: str) -> None:
    dest = HERE / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def softirq_value(vec: int, cpu: int) -> int:
    """Deterministic per-(softirq, cpu) count; NET_TX=2, NET_RX=3 get recognisable values."""
    if vec == 2:
        return 1000 + cpu
    if vec == 3:
        return 50000 + 7 * cpu
    return vec * 100 + cpu


def proc_softirqs(possible: range) -> str:
    lines = [" " * 20 + "".join(f"CPU{cpu:<8d}" for cpu in possible)]
    for vec, name in enumerate(SOFTIRQ_NAMES):
        row = "".join(f" {softirq_value(vec, cpu):10d}" for cpu in possible)
        lines.append(f"{name:>12s}:{row}")
    return "\n".join(lines) + "\n"


def softnet_row(cpu: int, columns: int) -> str:
    processed = 0x10000 + cpu
    dropped = cpu % 3
    squeeze = cpu % 5
    cols = [processed, dropped, squeeze, 0, 0, 0, 0, 0, 0, cpu * 2, 0]
    if columns >= 13:
        cols += [cpu % 4, cpu]  # backlog length, CPU index (column 13)
    if columns >= 15:
        cols += [cpu % 4, 0]  # input_qlen, process_qlen
    return " ".join(f"{v:08x}" for v in cols)


def proc_softnet(online: list[int], columns: int) -> str:
    return "".join(softnet_row(cpu, columns) + "\n" for cpu in online)


def stat_times(cpu: int) -> list[int]:
    # user nice system idle iowait irq softirq steal guest guest_nice
    return [100 + cpu, 0, 50, 10000, 3, 1, 20 + cpu, 0, 0, 0]


def proc_stat(online: list[int]) -> str:
    rows = [stat_times(c) for c in online]
    total = [sum(col) for col in zip(*rows, strict=True)]
    lines = ["cpu  " + " ".join(map(str, total))]
    lines += [f"cpu{c} " + " ".join(map(str, r)) for c, r in zip(online, rows, strict=True)]
    lines += ["intr 0", "ctxt 12345", "btime 1700000000", "processes 100", "procs_running 1",
              "procs_blocked 0", "softirq 0 0 0 0 0 0 0 0 0 0 0"]  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    # 64 CPUs, all online, 15-column softnet_stat (current kernels).
    cpus64 = list(range(64))
    _write("proc64/softirqs", proc_softirqs(range(64)))
    _write("proc64/net/softnet_stat", proc_softnet(cpus64, 15))
    _write("proc64/stat", proc_stat(cpus64))
    # 256 possible CPUs, 200..255 offline: softirqs still has their columns, softnet_stat and
    # stat have no rows for them; 13-column softnet_stat (5.10 .. 6.x).
    online256 = list(range(200))
    _write("proc256/softirqs", proc_softirqs(range(256)))
    _write("proc256/net/softnet_stat", proc_softnet(online256, 13))
    _write("proc256/stat", proc_stat(online256))
    # A pre-5.10 kernel: 11 columns and no CPU index; CPU 2 of 4 offline, so row 2 is CPU 3.
    online_old = [0, 1, 3]
    _write("proc_old/softirqs", proc_softirqs(range(4)))
    _write("proc_old/net/softnet_stat", proc_softnet(online_old, 11))
    _write("proc_old/stat", proc_stat(online_old))
    # An 8-queue NIC with BQL on a kernel older than 6.10 (no stall_* files).
    base = "sysfs/ens1f0"
    _write(f"{base}/ifindex", "7\n")
    _write(f"{base}/operstate", "up\n")
    for name, value in (("tx_packets", 123456789), ("tx_bytes", 98765432100),
                        ("tx_dropped", 3), ("tx_errors", 1)):  # fmt: skip
        _write(f"{base}/statistics/{name}", f"{value}\n")
    for q in range(8):
        bql = f"{base}/queues/tx-{q}/byte_queue_limits"
        _write(f"{bql}/inflight", f"{q * 1514}\n")
        _write(f"{bql}/limit", f"{30280 + q}\n")
        _write(f"{bql}/limit_min", "0\n")
        _write(f"{bql}/limit_max", "1879048192\n")
        _write(f"{bql}/hold_time", "1000\n")
        _write(f"{base}/queues/rx-{q}/rps_cpus", "00\n")


if __name__ == "__main__":
    main()
