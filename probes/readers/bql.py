"""Byte queue limits per TX queue: /sys/class/net/<dev>/queues/tx-<n>/byte_queue_limits/.

The files come from net/core/net-sysfs.c (bql_show_*), the values from lib/dynamic_queue_limits.c:
``inflight`` = bytes handed to the driver and not yet completed (dql num_queued - num_completed),
``limit`` = current dynamic limit, ``limit_min``/``limit_max`` its bounds, ``hold_time`` (ms),
and since Linux 6.10 ``stall_thrs``/``stall_max`` (ms) and ``stall_cnt``.
A device without BQL (veth, lo, most virtual devices) has no byte_queue_limits directory.
"""

from __future__ import annotations

import errno
from collections.abc import Mapping
from pathlib import Path

from txtop.core.model import BqlStats
from txtop.probes.readers.files import parse_counter, read_text
from txtop.probes.readers.netdev import SYSFS_NET, checked_ifname

REQUIRED_FILES = ("inflight", "limit", "limit_min", "limit_max", "hold_time")
OPTIONAL_FILES = ("stall_thrs", "stall_cnt", "stall_max")  # kernels >= 6.10
BQL_FILES = REQUIRED_FILES + OPTIONAL_FILES


def parse_bql(files: Mapping[str, str]) -> BqlStats:
    """BqlStats from file name -> file contents. Raises ValueError when a required file is
    missing or any present file is not a non-negative decimal integer (sysfs prints %u/%lu)."""
    values: dict[str, int | None] = {}
    for name in REQUIRED_FILES:
        if name not in files:
            raise ValueError(f"byte_queue_limits/{name} missing")
        values[name] = _value(name, files[name])
    for name in OPTIONAL_FILES:
        values[name] = _value(name, files[name]) if name in files else None
    return BqlStats(**values)  # type: ignore[arg-type]


def _value(name: str, text: str) -> int:
    try:
        return parse_counter(text)
    except ValueError as exc:
        raise ValueError(f"byte_queue_limits/{name}: {exc}") from None


def read_bql(dev: str, queue: int, sysfs_root: Path = SYSFS_NET) -> BqlStats | None:
    """BQL of one TX queue; None when the device has no BQL or vanished while we read.

    Raises InvalidInterfaceName (a ValueError) for a bad device name or a negative queue,
    ValueError for unparsable files and OSError for other read errors."""
    # The name becomes part of a path: validated (cached, so free on every later tick).
    checked_ifname(dev)
    if isinstance(queue, bool) or not isinstance(queue, int) or queue < 0:
        raise ValueError(f"bad TX queue index {queue!r}")
    # Plain string paths: this runs for every queue every tick, and pathlib's joins cost
    # more than the reads themselves at 128 queues.
    base = f"{sysfs_root}/{dev}/queues/tx-{queue}/byte_queue_limits/"
    files: dict[str, str] = {}
    for name in BQL_FILES:
        try:
            files[name] = read_text(base + name)
        except FileNotFoundError:
            if name in REQUIRED_FILES:
                return None  # no byte_queue_limits directory (or the device went away)
        except OSError as exc:
            if exc.errno == errno.ENODEV:  # the queue kobject outlived its device
                return None
            raise
    return parse_bql(files)
