"""cgroup v2 id -> path, for the owner of a sampled packet.

``bpf_get_current_cgroup_id()`` returns the id of the sender's cgroup in the v2 hierarchy, which
is the inode number of that cgroup's directory in cgroupfs. This resolves it to the path a user
knows (``/system.slice/nginx.service``, ``/user.slice/...``) by walking the cgroup2 mount
(``/sys/fs/cgroup``, or ``/sys/fs/cgroup/unified`` on a hybrid v1/v2 system: the first cgroup2
mount in /proc/self/mounts).

Caching with care: an id is never reused for another cgroup (kernfs node ids are 64-bit and
increase), so a resolved id keeps its path; cgroups appear all the time, so an unknown id makes
the walk run again, at most once per ``RESCAN_INTERVAL_S`` (a miss in between answers None and
is asked again later). The cache is bounded. Not thread-safe: the tracer calls it under its lock.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

CGROUP2_ROOT = Path("/sys/fs/cgroup")
MOUNTS = Path("/proc/self/mounts")
RESCAN_INTERVAL_S = 2.0
MAX_CACHED = 4096
MAX_WALK = 20_000  # directories visited per walk at most (a runaway hierarchy stays cheap)


def is_cgroup2(root: Path) -> bool:
    """A cgroup v2 mount has cgroup.controllers at its root."""
    return (root / "cgroup.controllers").exists()


def cgroup2_root(mounts: Path = MOUNTS) -> Path | None:
    """Where the cgroup v2 hierarchy is mounted, or None (a v1-only system)."""
    try:
        text = mounts.read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[2] == "cgroup2":
            return Path(parts[1].replace("\\040", " "))
    return CGROUP2_ROOT if is_cgroup2(CGROUP2_ROOT) else None


class CgroupPaths:
    """Resolves cgroup v2 ids to paths relative to the cgroup2 mount ("/" for the root)."""

    def __init__(
        self,
        root: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
        rescan_interval_s: float = RESCAN_INTERVAL_S,
    ) -> None:
        """``root``: the cgroup2 mount (None: found in /proc/self/mounts)."""
        found = root if root is not None else cgroup2_root()
        self._root = found if found is not None else CGROUP2_ROOT
        self._clock = clock
        self._interval = rescan_interval_s
        self._paths: OrderedDict[int, str] = OrderedDict()
        self._last_walk: float | None = None
        self.walks = 0  # how many times the hierarchy was walked (tests, diagnostics)
        self.available = found is not None and is_cgroup2(found)

    def __call__(self, cgroup_id: int) -> str | None:
        return self.resolve(cgroup_id)

    def resolve(self, cgroup_id: int) -> str | None:
        if not cgroup_id or not self.available:
            return None
        path = self._paths.get(cgroup_id)
        if path is not None:
            self._paths.move_to_end(cgroup_id)
            return path
        now = self._clock()
        if self._last_walk is not None and now - self._last_walk < self._interval:
            return None
        self._last_walk = now
        self._walk()
        return self._paths.get(cgroup_id)

    def _walk(self) -> None:
        self.walks += 1
        found: dict[int, str] = {}
        stack = [(self._root, "/")]
        visited = 0
        while stack and visited < MAX_WALK:
            path, rel = stack.pop()
            visited += 1
            try:
                found[os.stat(path).st_ino] = rel
                with os.scandir(path) as it:
                    for entry in it:
                        if entry.is_dir(follow_symlinks=False):
                            child = rel.rstrip("/") + "/" + entry.name
                            stack.append((Path(entry.path), child))
            except OSError:
                continue  # removed while walking, or unreadable: skip it
        for ino, rel in found.items():
            self._paths[ino] = rel
            self._paths.move_to_end(ino)
        while len(self._paths) > MAX_CACHED:
            self._paths.popitem(last=False)
