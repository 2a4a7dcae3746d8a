"""The sysfs and procfs knobs of the TX path (read-only): per TX queue and per device.

Per queue, /sys/class/net/<dev>/queues/tx-<n>/ (net/core/net-sysfs.c):
- ``xps_cpus``: the CPUs whose senders XPS steers to this queue, a hex mask in 32-bit words
  (``00000000,00000003``). Reading it fails with ENOENT on a single-queue device (XPS is not
  used there) and on a device with traffic classes but no map for this queue's class;
- ``xps_rxqs``: the same for receive queues (XPS by RX queue, Documentation/networking/scaling.rst);
- ``tx_maxrate``: a per-queue rate limit in Mbit/s set through the driver (0: none);
- ``traffic_class``: the mqprio class of the queue (ENOENT when the device has none);
- ``byte_queue_limits/{limit_min,limit_max,hold_time}``: BQL's bounds and hold time.
Per device: ``tx_queue_len`` (txqueuelen), ``mtu``, the driver (``device/driver`` link).
System-wide: the net.core sysctls that budget the NET_RX/NET_TX softirqs (/proc/sys/net/core).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from pathlib import Path

from txtop.core.config import SYSCTLS, QueueConfig, format_cpu_list
from txtop.probes.readers.files import parse_counter, read_text
from txtop.probes.readers.netdev import SYSFS_NET, checked_ifname

PROC = Path("/proc")
MAX_MASK_WORDS = 512  # 16384 CPUs


def parse_mask(text: str) -> str:
    """A sysfs bitmap ("00000000,00000003": 32-bit hex words, most significant first) as a
    list of its set bits ("0-1"). Raises ValueError on anything else."""
    words = text.strip().split(",")
    if not words or len(words) > MAX_MASK_WORDS:
        raise ValueError(f"not a bitmap: {text[:40]!r}")
    bits: list[int] = []
    for index, word in enumerate(reversed(words)):
        if not word or len(word) > 8 or any(c not in "0123456789abcdefABCDEF" for c in word):
            raise ValueError(f"not a bitmap: {text[:40]!r}")
        value = int(word, 16)
        bits.extend(index * 32 + b for b in range(32) if value >> b & 1)
    return format_cpu_list(bits)


def _why(exc: OSError, what: str, single_queue: bool) -> str:
    if exc.errno == errno.ENOENT:
        if what == "xps_cpus" and single_queue:
            return "single TX queue: XPS is not used"
        if what == "traffic_class":
            return "no traffic classes on this device (no mqprio)"
        return "not in this kernel, or not for this device"
    return f"{errno.errorcode.get(exc.errno or 0, 'error')}: {os.strerror(exc.errno or 0)}"


def read_queue_config(
    dev: str, queue: int, n_queues: int, sysfs_root: Path = SYSFS_NET
) -> QueueConfig:
    """One TX queue's knobs. A file that cannot be read is None with its reason in
    ``unavailable``; only a bad device name or queue index raises (ValueError)."""
    checked_ifname(dev)
    if isinstance(queue, bool) or not isinstance(queue, int) or queue < 0:
        raise ValueError(f"bad TX queue index {queue!r}")
    base = f"{sysfs_root}/{dev}/queues/tx-{queue}/"
    unavailable: dict[str, str] = {}
    values: dict[str, str | int | None] = {}
    for name, parse in (
        ("xps_cpus", parse_mask),
        ("xps_rxqs", parse_mask),
        ("tx_maxrate", parse_counter),
        ("traffic_class", str.strip),
        ("byte_queue_limits/limit_min", parse_counter),
        ("byte_queue_limits/limit_max", parse_counter),
        ("byte_queue_limits/hold_time", parse_counter),
    ):
        key = name.replace("byte_queue_limits/", "bql_")
        try:
            values[key] = parse(read_text(base + name))
        except FileNotFoundError as exc:
            if name.startswith("byte_queue_limits/"):
                unavailable["bql"] = "no BQL on this device"
            else:
                unavailable[key] = _why(exc, key, n_queues <= 1)
            values[key] = None
        except OSError as exc:
            unavailable[key] = _why(exc, key, n_queues <= 1)
            values[key] = None
        except ValueError as exc:
            unavailable[key] = str(exc)
            values[key] = None
    return QueueConfig(
        xps_cpus=_str(values["xps_cpus"]),
        xps_rxqs=_str(values["xps_rxqs"]),
        tx_maxrate=_int(values["tx_maxrate"]),
        traffic_class=_str(values["traffic_class"]),
        bql_limit_min=_int(values["bql_limit_min"]),
        bql_limit_max=_int(values["bql_limit_max"]),
        bql_hold_time=_int(values["bql_hold_time"]),
        unavailable=unavailable,
    )


def _str(value: str | int | None) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: str | int | None) -> int | None:
    return value if isinstance(value, int) else None


def read_device_values(dev: str, sysfs_root: Path = SYSFS_NET) -> dict[str, int | str | None]:
    """txqueuelen, mtu and the driver's name (the ``device/driver`` link) of a device."""
    base = sysfs_root / checked_ifname(dev)
    out: dict[str, int | str | None] = {}
    for key, name in (("txqueuelen", "tx_queue_len"), ("mtu", "mtu")):
        try:
            out[key] = parse_counter(read_text(base / name))
        except (OSError, ValueError):
            out[key] = None
    try:
        out["driver"] = os.path.basename(os.readlink(base / "device" / "driver"))
    except OSError:
        out["driver"] = None
    return out


def read_sysctls(proc_root: Path = PROC, names: Sequence[str] = SYSCTLS) -> dict[str, str]:
    """net.core values as read (a name missing in this kernel or namespace is left out)."""
    out = {}
    for name in names:
        parts = name.split(".")
        if not all(p.replace("_", "").isalnum() for p in parts):
            continue  # only sysctl names of our own table ever reach a path
        try:
            out[name] = read_text(proc_root / "sys" / Path(*parts)).strip()
        except (OSError, ValueError):
            continue
    return out
