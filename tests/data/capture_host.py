"""Copy this machine's real sysfs/procfs files that txtop parses into tests/data.

Run from the repo root: ``.venv/bin/python tests/data/capture_host.py``. It reads (never
writes) /sys/class/net/{eth0,lo} and /proc/{softirqs,stat,net/softnet_stat}, and writes
copies under tests/data/sysfs and tests/data/proc keeping the kernel's directory layout, plus
tests/data/capture_host.json recording when, where and from which kernel they were taken.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEVICES = ("eth0", "lo")
NET_FILES = (
    "ifindex",
    "operstate",
    "statistics/tx_packets",
    "statistics/tx_bytes",
    "statistics/tx_dropped",
    "statistics/tx_errors",
)
QUEUE_FILES = ("tx_timeout",)
PROC_FILES = ("softirqs", "stat", "net/softnet_stat")


def _write(dest: Path, data: bytes) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _copy(src: Path, dest: Path, copied: list[str]) -> None:
    try:
        data = src.read_bytes()
    except FileNotFoundError:
        return
    _write(dest, data)
    copied.append(str(src))


def main() -> None:
    copied: list[str] = []
    sys_net = Path("/sys/class/net")
    for dev in DEVICES:
        for rel in NET_FILES:
            _copy(sys_net / dev / rel, HERE / "sysfs" / dev / rel, copied)
        for qdir in sorted((sys_net / dev / "queues").glob("tx-*")):
            for rel in QUEUE_FILES:
                _copy(qdir / rel, HERE / "sysfs" / dev / "queues" / qdir.name / rel, copied)
            bql = qdir / "byte_queue_limits"
            if bql.is_dir():
                for f in sorted(bql.iterdir()):
                    _copy(
                        f, HERE / "sysfs" / dev / "queues" / qdir.name / bql.name / f.name, copied
                    )
    for rel in PROC_FILES:
        _copy(Path("/proc") / rel, HERE / "proc" / rel, copied)
    meta = {
        "captured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "kernel": platform.release(),
        "cpus_online": os.cpu_count(),
        "how": "tests/data/capture_host.py: byte-for-byte copies of the files listed",
        "files": copied,
    }
    _write(HERE / "capture_host.json", (json.dumps(meta, indent=2) + "\n").encode())
    print(f"copied {len(copied)} files")


if __name__ == "__main__":
    main()
