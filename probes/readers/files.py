"""Small kernel files (sysfs, procfs): one bounded read, and the decimal values sysfs prints.

Shared by the netdev, BQL and softirq readers, which used to reach into each other for these.
"""

from __future__ import annotations

import os
from pathlib import Path

# Upper bound for one sysfs/procfs read. The largest file we read, /proc/softirqs on an
# 8192-CPU machine, is ~1.2 MB; anything bigger is not the kernel file we expect.
MAX_READ_BYTES = 16 << 20


def parse_counter(text: str | bytes) -> int:
    """One decimal sysfs value (a counter or index). Raises ValueError on anything else."""
    value = text.strip()
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not value.isdigit() or not value.isascii():
        raise ValueError(f"not a non-negative decimal integer: {value[:32]!r}")
    return int(value)


def read_small(path: Path | str, limit: int = MAX_READ_BYTES) -> bytes:
    """Read a small sysfs/procfs file with one read() (4x cheaper than Path.read_text).

    O_NONBLOCK: kernel attribute files ignore it, but a FIFO planted where a file should be
    (a wrong ``--sysfs-root``, a fuzzed tree) then cannot hang the collector. More than
    ``limit`` bytes is a ValueError: it is not the file we meant to read.
    """
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        chunks = []
        size = 0
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                raise ValueError(f"{path}: larger than {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_text(path: Path | str) -> str:
    """``read_small`` as text: kernel files are ASCII; anything else becomes U+FFFD, which
    the parsers then reject with a ValueError naming the file's content."""
    return read_small(path).decode("ascii", "replace")
