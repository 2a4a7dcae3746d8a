"""Byte queue limits per TX queue: /sys/class/net/<dev>/queues/tx-<n>/byte_queue_limits/.

The files come from net/core/net-sysfs.c (bql_show_*), the values from lib/dynamic_queue_limits.c:
``inflight`` = bytes handed to the driver and not yet completed (dql num_queued - num_completed),
``limit`` = current dynamic limit, ``limit_min``/``limit_max`` its bounds, ``hold_time`` (ms),
and since Linux 6.10 ``stall_thrs``/``stall_max`` (ms) and ``stall_cnt``.
A device without BQL (veth, lo, most virtual devices) has no byte_queue_limits directory.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable, Mapping
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


# ---- sampling between ticks -------------------------------------------------------------------

SAMPLED_FILES = ("inflight", "limit")
_SAMPLE_READ = 32  # bytes: a u32/unsigned long in decimal and a newline


class BqlSampleFiles:
    """``inflight`` and ``limit`` of many TX queues, kept open and re-read with ``os.pread``.

    Reading a sysfs attribute at offset 0 runs its show function again, so one open file can
    be sampled many times a second for the cost of one pread each (no open, path walk or
    close). ``sync`` opens the files of the queues to sample (once per tick); ``sample``
    reads them all. A queue whose file stops being readable (its device went away: ENODEV,
    or garbage) is closed and left out until ``sync`` opens it again.
    """

    def __init__(self, sysfs_root: Path | str = SYSFS_NET) -> None:
        self.sysfs_root = str(sysfs_root)
        self._fds: dict[tuple[str, int], tuple[int, int]] = {}  # (dev, queue) -> (inflight, limit)

    def __len__(self) -> int:
        return len(self._fds)

    @property
    def queues(self) -> list[tuple[str, int]]:
        return list(self._fds)

    def sync(self, queues: Iterable[tuple[str, int]]) -> None:
        """Sample exactly ``queues`` from now on: open the new ones, close the others. A queue
        whose files cannot be opened (no BQL, gone) is skipped."""
        wanted = set(queues)
        for key in [k for k in self._fds if k not in wanted]:
            self._close(key)
        for dev, queue in sorted(wanted - self._fds.keys()):
            checked_ifname(dev)
            base = f"{self.sysfs_root}/{dev}/queues/tx-{queue}/byte_queue_limits/"
            fds: list[int] = []
            try:
                for name in SAMPLED_FILES:
                    fds.append(os.open(base + name, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK))
            except OSError:
                for fd in fds:
                    os.close(fd)
                continue
            self._fds[dev, queue] = (fds[0], fds[1])

    def sample(self) -> list[tuple[tuple[str, int], int, int]]:
        """One ``((dev, queue), inflight, limit)`` per open queue that could be read."""
        out = []
        failed = []
        pread = os.pread
        for key, (f_inflight, f_limit) in self._fds.items():
            try:
                inflight = int(pread(f_inflight, _SAMPLE_READ, 0))
                limit = int(pread(f_limit, _SAMPLE_READ, 0))
            except (OSError, ValueError):
                failed.append(key)
                continue
            if inflight < 0 or limit < 0:
                failed.append(key)
                continue
            out.append((key, inflight, limit))
        for key in failed:
            self._close(key)
        return out

    def _close(self, key: tuple[str, int]) -> None:
        for fd in self._fds.pop(key):
            try:
                os.close(fd)
            except OSError:
                pass

    def close(self) -> None:
        for key in list(self._fds):
            self._close(key)
