"""Interface name <-> ifindex in txtop's network namespace, cached.

The kernel side keys some maps by device name (the classic tracepoints carry ``dev->name``) and
others by ifindex; the filters, the per-queue counters and decoded packets need both. A miss
(a device of another namespace, or one that is gone) is retried after a while, since a device
of that name may appear.
"""

from __future__ import annotations

import functools
import os
import socket
import time


class IfNames:
    RETRY_S = 2.0

    def __init__(self) -> None:
        self._idx: dict[str, tuple[int | None, float]] = {}
        self._name: dict[int, tuple[str | None, float]] = {}

    def ifindex(self, name: str) -> int | None:
        hit = self._idx.get(name)
        now = time.monotonic()
        if hit is not None and (hit[0] is not None or now - hit[1] < self.RETRY_S):
            return hit[0]
        try:
            idx: int | None = socket.if_nametoindex(name)
        except OSError:
            idx = None
        self._idx[name] = (idx, now)
        return idx

    def name(self, ifindex: int) -> str | None:
        hit = self._name.get(ifindex)
        now = time.monotonic()
        if hit is not None and now - hit[1] < self.RETRY_S:
            return hit[0]
        try:
            name: str | None = socket.if_indextoname(ifindex)
        except OSError:
            name = None
        self._name[ifindex] = (name, now)
        return name


def own_netns() -> int:
    """This process's network namespace inode (what the kernel side reads as net->ns.inum)."""
    try:
        return os.stat("/proc/self/ns/net").st_ino
    except OSError:
        return 0


@functools.cache
def own_netns_inode() -> int:
    """``own_netns()``, read once: the process keeps its namespace (the --netns reader
    threads enter others, but /proc/self/ns/net is the main thread's)."""
    return own_netns()
