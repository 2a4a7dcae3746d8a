"""A private network lab: a veth pair whose TX end lives in txtop's own namespace.

The TX end (``dev``) stays in the current namespace so txtop's sysfs/netlink readers see it
like any other interface; its peer lives in a network namespace this module creates. Traffic
sent to ``peer_ip`` crosses the veth into that namespace and nowhere else: no routes other than
the /30 on the lab link are added, and nothing is forwarded. ``ipv6=True`` also puts unique local
addresses on the link (``local_ip6``/``peer_ip6`` in fd00:253:0:<subnet>::/64, no DAD delay):
again only the link's own prefix, no other route.

Everything a lab creates carries the ``txtop-`` / ``txl`` prefix so a lab left behind by a
killed process can be found and removed (``cleanup_stale``). Root is required.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

NS_PREFIX = "txtop-lab-"
DEV_PREFIX = "txl"
_TAG_RE = re.compile(r"[a-z0-9]{1,8}")
# tc size/rate words ("8mbit", "4k", "200k") and class ids ("1:2"): nothing else reaches tc.
_TC_WORD_RE = re.compile(r"[0-9]+(\.[0-9]+)?[a-zA-Z]{0,5}")
_TC_PARENT_RE = re.compile(r"[0-9a-f]{1,4}:[0-9a-f]{0,4}")


class LabError(RuntimeError):
    pass


def _ip(*args: str, check: bool = True, ns: str | None = None) -> subprocess.CompletedProcess[str]:
    argv = ["ip"]
    if ns is not None:
        argv += ["-n", ns]
    argv += list(args)
    res = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    if check and res.returncode != 0:
        raise LabError(f"{' '.join(argv)}: {res.stderr.strip() or res.returncode}")
    return res


def _tc(*args: str, ns: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    argv = ["tc"] + (["-n", ns] if ns else []) + list(args)
    res = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    if check and res.returncode != 0:
        raise LabError(f"{' '.join(argv)}: {res.stderr.strip() or res.returncode}")
    return res


def list_lab_namespaces() -> list[str]:
    res = _ip("netns", "list", check=False)
    names = [line.split()[0] for line in res.stdout.splitlines() if line.strip()]
    return [n for n in names if n.startswith(NS_PREFIX)]


def list_lab_links() -> list[str]:
    return sorted(p.name for p in Path("/sys/class/net").iterdir() if p.name.startswith(DEV_PREFIX))


def used_subnets() -> set[int]:
    """Third octets of the 10.253.<n>.0/30 lab links configured on this machine right now."""
    res = subprocess.run(
        ["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True, timeout=10
    )
    return {int(m) for m in re.findall(r"inet 10\.253\.(\d+)\.", res.stdout)}


def free_subnet(candidates: Sequence[int], start: int = 0) -> int:
    """A third octet for a lab link that no interface uses yet, trying ``candidates`` from
    position ``start`` on (callers spread by pid). Several labs (tests, demo, benchmarks, other
    sessions) run at once, and two links in one /30 would route one lab's traffic into another.
    """
    used = used_subnets()
    for i in range(len(candidates)):
        n = candidates[(start + i) % len(candidates)]
        if n not in used:
            return n
    raise LabError("no free 10.253.x.0/30 lab subnet")


def cleanup_stale(owner_alive: bool = True) -> list[str]:
    """Remove labs whose creating process is gone. Returns what was removed.

    Namespaces are named ``txtop-lab-<tag>-<pid>``; a lab whose pid is still running is left
    alone (another txtop, or a test, owns it) unless ``owner_alive`` is False.
    """
    removed = []
    for ns in list_lab_namespaces():
        m = re.fullmatch(rf"{NS_PREFIX}[a-z0-9]+-(\d+)", ns)
        pid = int(m.group(1)) if m else 0
        if owner_alive and pid and pid != os.getpid() and Path(f"/proc/{pid}").exists():
            continue
        _ip("netns", "del", ns, check=False)
        removed.append(ns)
    # A TX end whose peer namespace is gone is normally deleted with it; remove any leftover.
    live_tags = {_ns_tag(ns) for ns in list_lab_namespaces()}
    for dev in list_lab_links():
        if dev[len(DEV_PREFIX) : -1] not in live_tags:
            _ip("link", "del", dev, check=False)
            removed.append(dev)
    return removed


def _ns_tag(ns: str) -> str:
    m = re.fullmatch(rf"{NS_PREFIX}([a-z0-9]+)-\d+", ns)
    return m.group(1) if m else ""


@dataclass
class Lab:
    """One veth lab. Use as a context manager, or call ``create``/``destroy``."""

    tag: str = "t"
    queues: int = 4
    subnet: int = 1  # lab link is 10.253.<subnet>.0/30
    ipv6: bool = False  # also fd00:253:0:<subnet>::1 and ::2 /64 on the link
    ns: str = field(init=False)
    dev: str = field(init=False)
    peer: str = field(init=False)
    local_ip: str = field(init=False)
    peer_ip: str = field(init=False)
    local_ip6: str = field(init=False)
    peer_ip6: str = field(init=False)
    created: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        if not _TAG_RE.fullmatch(self.tag):
            raise LabError(f"invalid lab tag {self.tag!r}: use 1-8 of [a-z0-9]")
        if not 1 <= self.queues <= 64:
            raise LabError("queues must be 1..64")
        if not 0 <= self.subnet <= 255:
            raise LabError("subnet must be 0..255")
        self.ns = f"{NS_PREFIX}{self.tag}-{os.getpid()}"
        self.dev = f"{DEV_PREFIX}{self.tag}a"
        self.peer = f"{DEV_PREFIX}{self.tag}b"
        self.local_ip = f"10.253.{self.subnet}.1"
        self.peer_ip = f"10.253.{self.subnet}.2"
        self.local_ip6 = f"fd00:253:0:{self.subnet:x}::1"
        self.peer_ip6 = f"fd00:253:0:{self.subnet:x}::2"

    def __enter__(self) -> Lab:
        self.create()
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    def create(self) -> None:
        if os.geteuid() != 0:
            raise LabError("the lab needs root (network namespaces and veth)")
        self.destroy()  # a previous run with the same pid/tag may have been killed
        _ip("link", "del", self.dev, check=False)
        _ip("netns", "add", self.ns)
        self.created = True
        try:
            q = str(self.queues)
            _ip(
                "link",
                "add",
                self.dev,
                "numtxqueues",
                q,
                "numrxqueues",
                q,
                "type",
                "veth",
                "peer",
                "name",
                self.peer,
                "numtxqueues",
                q,
                "numrxqueues",
                q,
                "netns",
                self.ns,
            )
            _ip("addr", "add", f"{self.local_ip}/30", "dev", self.dev)
            _ip("link", "set", self.dev, "up")
            _ip("addr", "add", f"{self.peer_ip}/30", "dev", self.peer, ns=self.ns)
            _ip("link", "set", self.peer, "up", ns=self.ns)
            _ip("link", "set", "lo", "up", ns=self.ns)
            if self.ipv6:
                self._add_ipv6()
        except BaseException:
            self.destroy()
            raise

    def _add_ipv6(self) -> None:
        """ULA addresses on both ends, usable at once (nodad: no duplicate-address wait)."""
        _ip("-6", "addr", "add", f"{self.local_ip6}/64", "dev", self.dev, "nodad")
        _ip("-6", "addr", "add", f"{self.peer_ip6}/64", "dev", self.peer, "nodad", ns=self.ns)

    def destroy(self) -> None:
        # Deleting the namespace destroys the peer, and with it our end of the veth.
        _ip("netns", "del", self.ns, check=False)
        _ip("link", "del", self.dev, check=False)
        self.created = False

    @property
    def ifindex(self) -> int:
        return int(Path(f"/sys/class/net/{self.dev}/ifindex").read_text())

    # --- qdisc set-ups used by tests and the demo -------------------------------------------
    def set_mq(self, child: str = "pfifo_fast") -> None:
        """mq root (handle 1:) with one ``child`` qdisc per TX queue (parent 1:N+1 -> tx-N)."""
        if not re.fullmatch(r"[a-z_]{1,16}", child):
            raise LabError(f"invalid qdisc kind {child!r}")
        _tc("qdisc", "replace", "dev", self.dev, "root", "handle", "1:", "mq")
        for n in range(self.queues):
            _tc("qdisc", "replace", "dev", self.dev, "parent", f"1:{n + 1:x}", child)

    def set_tbf(
        self, rate: str = "8mbit", burst: str = "4k", limit: str = "200k", parent: str | None = None
    ) -> None:
        """A rate-limited tbf, at root or under ``parent`` (e.g. "1:1" for tx-0 under mq)."""
        for word in (rate, burst, limit):
            if not _TC_WORD_RE.fullmatch(word):
                raise LabError(f"invalid tbf parameter {word!r}")
        if parent is not None and not _TC_PARENT_RE.fullmatch(parent):
            raise LabError(f"invalid qdisc parent {parent!r}")
        where = ["parent", parent] if parent else ["root"]
        _tc(
            "qdisc",
            "replace",
            "dev",
            self.dev,
            *where,
            "tbf",
            "rate",
            rate,
            "burst",
            burst,
            "limit",
            limit,
        )

    def clear_qdisc(self) -> None:
        _tc("qdisc", "del", "dev", self.dev, "root", check=False)

    def ns_argv(self, argv: Sequence[str]) -> list[str]:
        """argv that runs a command inside the lab namespace."""
        return ["ip", "netns", "exec", self.ns, *argv]
