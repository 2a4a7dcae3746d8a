"""A small tmpfs for full-disk tests: mounted by the test (root only) and unmounted after it."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

CAN_MOUNT = os.geteuid() == 0 and shutil.which("mount") is not None
needs_mount = pytest.mark.skipif(not CAN_MOUNT, reason="mounting a tmpfs needs root")


@contextlib.contextmanager
def small_tmpfs(where: Path, size: str = "64k", mode: str = "0700") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on ``where`` (created), unmounted afterwards even when the
    test failed (lazily if something still holds it)."""
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode={mode}", "txtop-test-full", str(where)],
        check=True,
        timeout=30,
    )
    try:
        yield where
    finally:
        res = subprocess.run(["umount", str(where)], capture_output=True, timeout=30)
        if res.returncode != 0:
            subprocess.run(["umount", "-l", str(where)], capture_output=True, timeout=30)


def fill(directory: Path, name: str = "filler") -> Path:
    """Fill the filesystem of ``directory`` to the last byte with one file; return it."""
    path = directory / name
    with open(path, "wb", buffering=0) as f:
        chunk = b"\0" * 4096
        while True:
            try:
                if f.write(chunk) == 0:
                    break
            except OSError:
                break
    with contextlib.suppress(OSError):  # the last partial block too
        with open(path, "ab", buffering=0) as f:
            while f.write(b"\0"):
                pass
    return path
