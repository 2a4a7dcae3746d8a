"""Network devices with TX queues, read from /sys/class/net (no netlink needed).

Pure helpers (name validation, ordering, queue-directory parsing) are separate from the thin
readers so tests can feed them captured trees through ``sysfs_root``. The readings
(``NetDevice``, ``TxCounters``) are core types (core/readings.py).
"""

from __future__ import annotations

import errno
import functools
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from txtop.core.readings import NetDevice, TxCounters
from txtop.probes.readers.files import parse_counter, read_small, read_text

SYSFS_NET = Path("/sys/class/net")

# include/uapi/linux/if.h: IFNAMSIZ is 16 bytes including the terminating NUL.
IFNAMSIZ = 16
# The bytes the kernel's isspace() accepts (lib/ctype.c marks 0xa0 as space too).
_KERNEL_SPACE_BYTES = frozenset(b" \t\n\v\f\r\xa0")

TX_COUNTERS = ("tx_packets", "tx_bytes", "tx_dropped", "tx_errors")
MAX_QUEUE_INDEX = 0xFFFF  # skb->queue_mapping is a u16


class InterfaceError(ValueError):
    """Bad interface selection; the message is one line, fit for the CLI (exit 2)."""


class InvalidInterfaceName(InterfaceError):
    """A name the kernel would never accept as an interface name."""


class UnknownInterface(InterfaceError):
    """Requested interfaces that do not exist (or have no TX queues)."""

    def __init__(self, unknown: Sequence[str], available: Sequence[str]) -> None:
        self.unknown = tuple(unknown)
        self.available = tuple(available)
        names = ", ".join(self.unknown)
        avail = ", ".join(self.available) or "none"
        noun = "interface" if len(self.unknown) == 1 else "interfaces"
        super().__init__(f"unknown {noun}: {names} (available: {avail})")


def validate_ifname(name: str) -> str:
    """Return ``name`` if the kernel's dev_valid_name() would accept it, else raise.

    Rules (net/core/dev.c dev_valid_name): not empty, at most IFNAMSIZ-1 bytes, not "." or
    "..", no '/', ':', NUL or whitespace. Checked on the UTF-8 bytes, as the kernel does.
    This also makes the name safe to join into a sysfs path.
    """
    if not isinstance(name, str):
        raise InvalidInterfaceName(f"invalid interface name {name!r}: not a string")
    try:
        raw = name.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInterfaceName(f"invalid interface name {name!r}: not UTF-8") from None
    if not raw:
        raise InvalidInterfaceName("invalid interface name '': empty")
    if len(raw) >= IFNAMSIZ:
        raise InvalidInterfaceName(
            f"invalid interface name {name!r}: longer than {IFNAMSIZ - 1} bytes"
        )
    if raw in (b".", b".."):
        raise InvalidInterfaceName(f"invalid interface name {name!r}")
    for byte in raw:
        if byte in (0x2F, 0x3A, 0x00) or byte in _KERNEL_SPACE_BYTES:  # '/', ':', NUL
            raise InvalidInterfaceName(f"invalid interface name {name!r}: contains {chr(byte)!r}")
    return name


@functools.lru_cache(maxsize=4096)  # bounded; names repeat every tick, so checks cost ~nothing
def checked_ifname(name: str) -> str:
    """``validate_ifname`` for the readers' hot paths: every name that is joined into a path
    goes through here first, so ``../x`` or ``a/b`` can never walk out of the sysfs root."""
    return validate_ifname(name)


def is_valid_ifname(name: str) -> bool:
    try:
        checked_ifname(name)
    except (InvalidInterfaceName, TypeError):  # TypeError: unhashable, i.e. not a str
        return False
    return True


def order_interfaces(names: Iterable[str]) -> list[str]:
    """Default display order: sorted by name, loopback last."""
    return sorted(set(names), key=lambda n: (n == "lo", n))


def parse_tx_queue_dirs(entries: Iterable[str]) -> tuple[int, ...]:
    """Queue indices from the entries of /sys/class/net/<dev>/queues (``tx-0``, ``rx-0``...).

    Only the kernel's own spelling counts ("tx-%u": no sign, no leading zero) and indices fit
    a u16 (skb->queue_mapping), so "tx-01" cannot duplicate tx-1 and a stray "tx-99999999"
    cannot make the collector build billions of rows.
    """
    out = set()
    for entry in entries:
        if entry.startswith("tx-"):
            num = entry[3:]
            if num.isdigit() and num.isascii() and (num == "0" or num[0] != "0"):
                index = int(num)
                if index <= MAX_QUEUE_INDEX:
                    out.add(index)
    return tuple(sorted(out))


# ---- thin readers -----------------------------------------------------------------------------


def tx_queue_indices(dev: str, sysfs_root: Path = SYSFS_NET) -> tuple[int, ...]:
    """TX queue indices of ``dev``; () when it has none or has vanished.

    Raises InvalidInterfaceName for a name that is not a kernel interface name."""
    checked_ifname(dev)
    try:
        return parse_tx_queue_dirs(os.listdir(sysfs_root / dev / "queues"))
    except (FileNotFoundError, NotADirectoryError):
        return ()


def list_tx_interfaces(sysfs_root: Path = SYSFS_NET) -> list[str]:
    """Every interface with at least one TX queue, in the default display order.

    Entries that are not valid interface names (only possible in a fake tree) are skipped."""
    try:
        names = os.listdir(sysfs_root)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return order_interfaces(
        n for n in names if is_valid_ifname(n) and tx_queue_indices(n, sysfs_root)
    )


def resolve_interfaces(requested: Sequence[str] | None, sysfs_root: Path = SYSFS_NET) -> list[str]:
    """Validate requested names (or list them all when None/empty), keeping the given order.

    Raises InvalidInterfaceName for a malformed name and UnknownInterface naming every
    requested interface that does not exist (or has no TX queues) and the available ones.
    """
    available = list_tx_interfaces(sysfs_root)
    if not requested:
        return available
    seen: list[str] = []
    for name in requested:
        validate_ifname(name)
        if name not in seen:
            seen.append(name)
    unknown = [n for n in seen if n not in available]
    if unknown:
        raise UnknownInterface(unknown, available)
    return seen


def read_tx_counters(dev: str, sysfs_root: Path = SYSFS_NET) -> TxCounters:
    stats = sysfs_root / checked_ifname(dev) / "statistics"
    values = [parse_counter(read_small(stats / name)) for name in TX_COUNTERS]
    return TxCounters(*values)


def read_device(dev: str, sysfs_root: Path = SYSFS_NET) -> NetDevice | None:
    """Everything txtop shows about one device; None when it vanished or has no TX queues.

    Raises InvalidInterfaceName for a bad name, ValueError for unparsable files and OSError
    for read errors other than the device going away."""
    base = sysfs_root / checked_ifname(dev)
    try:
        queues = tx_queue_indices(dev, sysfs_root)
        if not queues:
            return None
        ifindex = parse_counter(read_small(base / "ifindex"))
        try:
            oper_state = read_text(base / "operstate").strip()
        except FileNotFoundError:
            oper_state = "unknown"
        counters = read_tx_counters(dev, sysfs_root)
    except OSError as exc:
        # The device was unregistered between listing and reading (ENODEV from a stale
        # sysfs file, ENOENT for a removed directory).
        if exc.errno in (errno.ENOENT, errno.ENODEV, errno.ENOTDIR):
            return None
        raise
    return NetDevice(dev, ifindex, queues, oper_state or "unknown", counters)
