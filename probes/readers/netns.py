"""Devices of another network namespace (--netns NAME|PATH|PID): sysfs and rtnetlink read
from inside it.

What works, and why this way:
- rtnetlink answers for the namespace of the socket, fixed when the socket is made; a socket
  made by a thread that entered the namespace (setns(2), CLONE_NEWNET) dumps that namespace's
  qdiscs (pyroute2 makes its socket in the calling thread).
- sysfs does not follow setns: /sys/class/net lists the devices of the namespace that was
  current when that sysfs was *mounted*. The reading thread therefore also gets a private
  mount namespace (unshare(2) CLONE_NEWNS, "/" made a recursive slave so nothing propagates
  back) and mounts a fresh sysfs on /sys there, after entering the network namespace - what
  `ip netns exec` does for a process. Only that thread sees it; the mount goes when the thread
  ends. /proc/<pid>/root/sys would only work for a PID whose mount namespace has such a sysfs
  (a container's), never for a name made by `ip netns add`, and netlink alone has no BQL.
- procfs: what txtop reads there (/proc/softirqs, /proc/stat, softnet_stat) is per CPU, not per
  namespace: it is read once, in txtop's own namespace.

So each namespace gets one thread (``NetnsThread``) that entered it and runs the readers there
(the same parsers as txtop's own namespace: netdev.py, bql.py, qdisc.py). Root is needed
(setns and mount need CAP_SYS_ADMIN).

Not read there: BQL between refreshes (--bql-hz: one read per refresh, no peak) and the
device and queue configuration (ethtool, XPS...). The BPF probes' data comes from txtop's own
tracer, which keys devices by (namespace inode, ifindex): ``NetnsReader.ino`` is the inode
(core/nsprobes.py splits the tracer's reading by it).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import queue
import re
import stat
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from txtop.core.model import BqlStats
from txtop.core.readings import NetDevice, QdiscInfo
from txtop.core.text import exc_line
from txtop.probes.readers.bql import read_bql
from txtop.probes.readers.netdev import (
    SYSFS_NET,
    InterfaceError,
    read_device,
    resolve_interfaces,
)
from txtop.probes.readers.qdisc import QdiscReader

_T = TypeVar("_T")

NETNS_DIR = Path("/run/netns")  # where `ip netns add NAME` bind-mounts its namespaces
CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MS_REC = 0x4000
MS_SLAVE = 1 << 19
NS_GET_NSTYPE = 0xB703  # ioctl on a namespace file: its CLONE_NEW* type (Linux >= 4.11)
MAX_PID = 4_194_304
NAME_MAX = 255
CALL_TIMEOUT_S = 5.0
# `ip netns` names: no '/', not "." or "..", printable; labels shown as "<label>/<dev>".
_NAME_RE = re.compile(r"[A-Za-z0-9_.:@+=,-]{1,255}")


class NetnsError(ValueError):
    """A --netns that names no network namespace, or one txtop cannot enter; one line."""


@dataclass(frozen=True, slots=True)
class NetnsRef:
    """A network namespace named on the command line: the argument, the label its devices are
    shown under ("<label>/<dev>"), the file that holds it, and its identity (nsfs inode)."""

    arg: str
    label: str
    path: str
    ino: int
    dev: int


def netns_path(arg: str) -> tuple[str, str]:
    """(path of the namespace file, label) for a --netns argument; pure. Raises NetnsError for
    an argument that is not a NAME (`ip netns` name), an absolute PATH or a PID."""
    if not arg or "\0" in arg:
        raise NetnsError("--netns: empty namespace")
    if arg.isdigit() and arg.isascii():
        pid = int(arg)
        if not 1 <= pid <= MAX_PID:
            raise NetnsError(f"--netns {arg}: not a process id (1..{MAX_PID})")
        return f"/proc/{pid}/ns/net", f"pid{pid}"
    if "/" in arg:
        if not arg.startswith("/"):
            raise NetnsError(f"--netns {arg!r}: a path must be absolute")
        path = os.path.normpath(arg)
        parts = Path(path).parts
        if (
            len(parts) == 5
            and parts[1] == "proc"
            and parts[2].isdigit()
            and parts[3:] == ("ns", "net")
        ):
            return path, f"pid{parts[2]}"
        label = Path(path).name
        return path, label if _NAME_RE.fullmatch(label) and label not in (".", "..") else "netns"
    if arg in (".", "..") or not _NAME_RE.fullmatch(arg):
        raise NetnsError(f"--netns {arg!r}: not a namespace name (as `ip netns` makes them)")
    return str(NETNS_DIR / arg), arg


def open_netns(arg: str) -> tuple[NetnsRef, int]:
    """The namespace ``arg`` names and an open descriptor of it (the caller closes it).
    Raises NetnsError: no such namespace, or not a network namespace."""
    path, label = netns_path(arg)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        what = "no such process" if label.startswith("pid") and arg.isdigit() else "not found"
        raise NetnsError(f"--netns {arg}: no such network namespace ({path}: {what})") from None
    except OSError as exc:
        raise NetnsError(f"--netns {arg}: {path}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        nstype = fcntl.ioctl(fd, NS_GET_NSTYPE) if not stat.S_ISDIR(st.st_mode) else -1
    except OSError:
        nstype = -1
    if nstype != CLONE_NEWNET:
        os.close(fd)
        raise NetnsError(f"--netns {arg}: {path} is not a network namespace")
    return NetnsRef(arg, label, path, st.st_ino, st.st_dev), fd


def own_netns() -> tuple[int, int] | None:
    """(inode, device) of txtop's own network namespace."""
    try:
        st = os.stat("/proc/self/ns/net")
    except OSError:
        return None
    return st.st_ino, st.st_dev


def unique_labels(refs: Sequence[NetnsRef]) -> list[NetnsRef]:
    """The same namespace named twice is one; two namespaces with one label get "-2", "-3"."""
    out: list[NetnsRef] = []
    seen: set[tuple[int, int]] = set()
    labels: set[str] = set()
    for ref in refs:
        if (ref.ino, ref.dev) in seen:
            continue
        seen.add((ref.ino, ref.dev))
        label, n = ref.label, 1
        while label in labels:
            n += 1
            label = f"{ref.label}-{n}"
        labels.add(label)
        out.append(NetnsRef(ref.arg, label, ref.path, ref.ino, ref.dev))
    return out


# ---- a thread inside the namespace --------------------------------------------------------------


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def enter_netns(fd: int) -> None:
    """Move the calling thread into the network namespace ``fd`` with a private mount
    namespace in which /sys is a sysfs of that network namespace. Only this thread changes."""
    libc = _libc()
    _check(libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _check(libc.mount(b"none", b"/", None, MS_REC | MS_SLAVE, None), "mount --make-rslave /")
    _check(libc.setns(fd, CLONE_NEWNET), "setns(CLONE_NEWNET)")
    _check(libc.mount(b"sysfs", b"/sys", b"sysfs", 0, None), "mount sysfs")


class NetnsThread:
    """One thread that entered a network namespace (``enter_netns``) and runs what it is
    given there, one call at a time. ``start`` raises NetnsError when it cannot enter."""

    def __init__(self, ref: NetnsRef, fd: int) -> None:
        self.ref = ref
        self._fd = fd
        self._calls: queue.Queue[tuple[Callable[[], Any], Future[Any]] | None] = queue.Queue()
        self._ready: Future[None] = Future()
        self._thread = threading.Thread(
            target=self._run, name=f"txtop-netns-{ref.label}", daemon=True
        )

    def start(self, timeout_s: float = CALL_TIMEOUT_S) -> None:
        self._thread.start()
        try:
            self._ready.result(timeout_s)
        except OSError as exc:
            hint = " (needs root)" if exc.errno in (errno.EPERM, errno.EACCES) else ""
            raise NetnsError(
                f"--netns {self.ref.arg}: cannot enter it: {exc.strerror}{hint}"
            ) from None
        except TimeoutError:
            raise NetnsError(f"--netns {self.ref.arg}: entering it timed out") from None

    def _run(self) -> None:
        try:
            enter_netns(self._fd)
        except OSError as exc:
            self._ready.set_exception(exc)
            return
        finally:
            os.close(self._fd)
        self._ready.set_result(None)
        while True:
            item = self._calls.get()
            if item is None:
                return
            fn, future = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as exc:  # handed to the caller
                future.set_exception(exc)

    def call(self, fn: Callable[[], _T], timeout_s: float = CALL_TIMEOUT_S) -> _T:
        """``fn()`` run in the namespace. Raises what it raises, or TimeoutError."""
        future: Future[_T] = Future()
        self._calls.put((fn, future))
        return future.result(timeout_s)

    def close(self) -> None:
        self._calls.put(None)


# ---- the readings of one namespace --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NetnsReading:
    """One tick of a namespace: its devices, their BQL (per (name, queue)) and its qdiscs."""

    devices: tuple[NetDevice, ...] = ()
    bql: dict[tuple[str, int], BqlStats | None] = field(default_factory=dict)
    qdiscs: tuple[QdiscInfo, ...] = ()
    problems: dict[str, str] = field(default_factory=dict)


class NetnsReader:
    """The devices of one network namespace, read through a ``NetnsThread``: the named ones
    (checked at ``start``: InterfaceError names the namespace) or all with TX queues."""

    def __init__(self, ref: NetnsRef, fd: int, interfaces: Sequence[str] = ()) -> None:
        self.ref = ref
        self.label = ref.label
        self.ino = ref.ino  # the namespace's inode: net->ns.inum, how the probes key it
        self._thread = NetnsThread(ref, fd)
        self._wanted = list(interfaces)
        self._names: list[str] | None = None
        self._qdiscs: QdiscReader | None = None

    def start(self) -> None:
        """Enter the namespace and check the named interfaces there. Raises NetnsError or
        InterfaceError (one line each)."""
        self._thread.start()
        if self._wanted:
            try:
                self._names = self._thread.call(lambda: resolve_interfaces(self._wanted))
            except InterfaceError as exc:
                self.close()
                raise InterfaceError(f"netns {self.label}: {exc}") from None

    def read(self) -> NetnsReading:
        """One tick's devices, BQL and qdiscs, read in the namespace."""
        try:
            return self._thread.call(self._read_here)
        except Exception as exc:  # the namespace's numbers must not stop the others
            return NetnsReading(problems={f"netns {self.label}": exc_line(exc, typed=True)})

    def _read_here(self) -> NetnsReading:
        """In the namespace's thread."""
        from txtop.probes.readers.netdev import list_tx_interfaces

        problems: dict[str, str] = {}
        names = self._names if self._names is not None else list_tx_interfaces(SYSFS_NET)
        devices = []
        bql: dict[tuple[str, int], BqlStats | None] = {}
        for name in names:
            try:
                dev = read_device(name)
            except (OSError, ValueError) as exc:
                problems[f"netns {self.label}"] = f"{name}: {exc_line(exc, typed=True)}"
                continue
            if dev is None:
                continue
            devices.append(dev)
            for q in dev.tx_queues:
                try:
                    bql[dev.name, q] = read_bql(dev.name, q)
                except (OSError, ValueError):
                    bql[dev.name, q] = None
        if self._qdiscs is None:
            self._qdiscs = QdiscReader()  # its netlink socket is made here: in the namespace
        try:
            qdiscs = tuple(self._qdiscs.read())
        except Exception as exc:  # pyroute2's errors are bare Exceptions
            problems[f"netns {self.label}"] = f"qdisc dump: {exc_line(exc, typed=True)}"
            qdiscs = ()
        return NetnsReading(tuple(devices), bql, qdiscs, problems)

    def close(self) -> None:
        qdiscs, self._qdiscs = self._qdiscs, None
        if qdiscs is not None:
            try:
                self._thread.call(qdiscs.close, timeout_s=1.0)
            except Exception:
                pass  # closing: the thread ends anyway
        self._thread.close()


@dataclass(frozen=True, slots=True)
class Namespaces:
    """What --netns opened: a started reader per other namespace, and for txtop's own
    namespace when it was named too (``own``), the devices named after it (``own_names``;
    none: all of them)."""

    readers: list[NetnsReader]
    own: bool = False
    own_names: list[str] = field(default_factory=list)


def open_readers(netns: Sequence[str], interfaces: Sequence[tuple[str, str]] = ()) -> Namespaces:
    """Readers for the namespaces named by ``netns`` (each -i after a --netns names a device
    there: ``interfaces`` holds (netns argument, name)), started. A namespace that is txtop's
    own is not read apart: its devices are txtop's own, probes and all (``Namespaces.own``).
    Raises NetnsError or InterfaceError; nothing is left open then."""
    own = own_netns()
    entries: dict[tuple[int, int], tuple[NetnsRef, int]] = {}
    arg_key: dict[str, tuple[int, int]] = {}
    readers: list[NetnsReader] = []
    try:
        for arg in netns:
            ref, fd = open_netns(arg)
            key = (ref.ino, ref.dev)
            arg_key[arg] = key
            if key in entries or key == own:
                os.close(fd)
            else:
                entries[key] = (ref, fd)
        labelled = unique_labels([ref for ref, _ in entries.values()])
        for key, ref in zip(list(entries), labelled, strict=True):
            fd = entries.pop(key)[1]  # the reader's thread closes it
            names = [name for arg, name in interfaces if arg_key.get(arg) == key]
            reader = NetnsReader(ref, fd, names)
            readers.append(reader)
            reader.start()
    except BaseException:
        for _, fd in entries.values():
            os.close(fd)
        for reader in readers:
            reader.close()
        raise
    own_names = [name for arg, name in interfaces if arg_key.get(arg) == own]
    return Namespaces(readers, own in arg_key.values(), own_names)
