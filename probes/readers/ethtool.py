"""Ring sizes, channels, interrupt coalescing, offloads and the driver, through the ETHTOOL ioctl.

No ``ethtool`` binary: one ``SIOCETHTOOL`` ioctl per request (net/ethtool/ioctl.c dev_ethtool),
read-only ``ETHTOOL_G*`` commands only. The kernel fills a struct whose layout is fixed by
include/uapi/linux/ethtool.h; the pure decoders below take those reply bytes (tests feed them
captured replies from tests/data/config/), the thin ``EthtoolReader`` makes the calls.

A software device (lo, veth) answers EOPNOTSUPP to most of these: that is reported as the reason,
never as an error.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import socket
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from txtop.core.config import OFFLOADS
from txtop.probes.readers.netdev import checked_ifname

SIOCETHTOOL = 0x8946  # include/uapi/linux/sockios.h
ETHTOOL_GDRVINFO = 0x03
ETHTOOL_GCOALESCE = 0x0E
ETHTOOL_GRINGPARAM = 0x10
ETHTOOL_GSTRINGS = 0x1B
ETHTOOL_GSSET_INFO = 0x37
ETHTOOL_GFEATURES = 0x3A
ETHTOOL_GCHANNELS = 0x3C
ETH_SS_FEATURES = 4
ETH_GSTRING_LEN = 32
IFREQ_SIZE = 40  # struct ifreq on 64-bit: 16-byte name + 24-byte union (a pointer here)
MAX_FEATURES = 1024  # the kernel has ~70 feature bits; anything far above is not a reply

# struct ethtool_ringparam: cmd, rx_max_pending, rx_mini_max_pending, rx_jumbo_max_pending,
# tx_max_pending, rx_pending, rx_mini_pending, rx_jumbo_pending, tx_pending (all u32).
RINGPARAM = struct.Struct("=9I")
# struct ethtool_channels: cmd, max_rx, max_tx, max_other, max_combined, rx_count, tx_count,
# other_count, combined_count.
CHANNELS = struct.Struct("=9I")
CHANNEL_NAMES = ("max_rx", "max_tx", "max_other", "max_combined", "rx", "tx", "other", "combined")
# struct ethtool_coalesce: cmd and 22 u32, in this order.
COALESCE = struct.Struct("=23I")
COALESCE_FIELDS = (
    "rx_usecs",
    "rx_frames",
    "rx_usecs_irq",
    "rx_frames_irq",
    "tx_usecs",
    "tx_frames",
    "tx_usecs_irq",
    "tx_frames_irq",
    "stats_block_usecs",
    "adaptive_rx",
    "adaptive_tx",
    "pkt_rate_low",
    "rx_usecs_low",
    "rx_frames_low",
    "tx_usecs_low",
    "tx_frames_low",
    "pkt_rate_high",
    "rx_usecs_high",
    "rx_frames_high",
    "tx_usecs_high",
    "tx_frames_high",
    "rate_sample_interval",
)
# The ones shown: what decides how late a TX completion interrupt comes.
COALESCE_SHOWN = ("tx_usecs", "tx_frames", "rx_usecs", "rx_frames", "adaptive_rx", "adaptive_tx")
# struct ethtool_drvinfo: cmd, driver[32], version[32], fw_version[32], bus_info[32], ...
DRVINFO_SIZE = 196
SSET_INFO = struct.Struct("=IIQI")  # cmd, reserved, sset_mask, data[0] (one set asked)
GSTRINGS_HEAD = struct.Struct("=III")  # cmd, string_set, len
GFEATURES_HEAD = struct.Struct("=II")  # cmd, size (blocks)
FEATURE_BLOCK = struct.Struct("=IIII")  # available, requested, active, never_changed

# Which feature-bit names (net/ethtool/common.c netdev_features_strings) make up each legacy
# offload ``ethtool -k`` prints (net/ethtool/ioctl.c ethtool_get_feature_mask): the offload is
# on when any of its bits is active.
OFFLOAD_BITS: Mapping[str, tuple[str, ...]] = {
    "tcp-segmentation-offload": (
        "tx-tcp-segmentation",
        "tx-tcp-ecn-segmentation",
        "tx-tcp-mangleid-segmentation",
        "tx-tcp6-segmentation",
        "tx-tcp-accecn-segmentation",
    ),
    "generic-segmentation-offload": ("tx-generic-segmentation",),
    "generic-receive-offload": ("rx-gro",),
    "large-receive-offload": ("rx-lro",),
    "scatter-gather": ("tx-scatter-gather",),
    "tx-checksumming": ("tx-checksum-ipv4", "tx-checksum-ip-generic", "tx-checksum-ipv6"),
}
assert tuple(OFFLOAD_BITS) == OFFLOADS


# ---- pure decoders (reply bytes -> values) ----------------------------------------------------


def _reply(data: bytes, layout: struct.Struct, cmd: int, what: str) -> tuple[int, ...]:
    if len(data) < layout.size:
        raise ValueError(f"{what}: reply of {len(data)} bytes, expected {layout.size}")
    values: tuple[int, ...] = layout.unpack_from(data)
    if values[0] != cmd:
        raise ValueError(f"{what}: reply for command {values[0]:#x}, expected {cmd:#x}")
    return values


def decode_rings(data: bytes) -> dict[str, int]:
    """ETHTOOL_GRINGPARAM reply -> tx/rx ring sizes and maxima (descriptors)."""
    v = _reply(data, RINGPARAM, ETHTOOL_GRINGPARAM, "ETHTOOL_GRINGPARAM")
    return {"rx_max": v[1], "tx_max": v[4], "rx": v[5], "tx": v[8]}


def decode_channels(data: bytes) -> dict[str, int]:
    """ETHTOOL_GCHANNELS reply -> the non-zero counts and maxima."""
    v = _reply(data, CHANNELS, ETHTOOL_GCHANNELS, "ETHTOOL_GCHANNELS")
    return {name: value for name, value in zip(CHANNEL_NAMES, v[1:], strict=True) if value}


def decode_coalesce(data: bytes) -> dict[str, int]:
    """ETHTOOL_GCOALESCE reply -> every coalescing parameter by name."""
    v = _reply(data, COALESCE, ETHTOOL_GCOALESCE, "ETHTOOL_GCOALESCE")
    return dict(zip(COALESCE_FIELDS, v[1:], strict=True))


def _c_string(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("ascii", "replace")


def decode_drvinfo(data: bytes) -> tuple[str, str]:
    """ETHTOOL_GDRVINFO reply -> (driver, bus_info)."""
    if len(data) < DRVINFO_SIZE:
        raise ValueError(f"ETHTOOL_GDRVINFO: reply of {len(data)} bytes, expected {DRVINFO_SIZE}")
    (cmd,) = struct.unpack_from("=I", data)
    if cmd != ETHTOOL_GDRVINFO:
        raise ValueError(f"ETHTOOL_GDRVINFO: reply for command {cmd:#x}")
    return _c_string(data[4:36]), _c_string(data[100:132])


def decode_sset_count(data: bytes) -> int:
    """ETHTOOL_GSSET_INFO reply (one set asked) -> the number of strings in it."""
    cmd, _, mask, count = _reply(data, SSET_INFO, ETHTOOL_GSSET_INFO, "ETHTOOL_GSSET_INFO")
    if not mask & (1 << ETH_SS_FEATURES):
        raise ValueError("ETHTOOL_GSSET_INFO: the features string set is not supported")
    if count > MAX_FEATURES:
        raise ValueError(f"ETHTOOL_GSSET_INFO: {count} features")
    return int(count)


def decode_strings(data: bytes) -> list[str]:
    """ETHTOOL_GSTRINGS reply -> the strings (ETH_GSTRING_LEN bytes each, NUL-padded)."""
    cmd, _, count = _reply(data, GSTRINGS_HEAD, ETHTOOL_GSTRINGS, "ETHTOOL_GSTRINGS")
    if count > MAX_FEATURES or len(data) < GSTRINGS_HEAD.size + count * ETH_GSTRING_LEN:
        raise ValueError(f"ETHTOOL_GSTRINGS: {count} strings in {len(data)} bytes")
    base = GSTRINGS_HEAD.size
    return [
        _c_string(data[base + i * ETH_GSTRING_LEN : base + (i + 1) * ETH_GSTRING_LEN])
        for i in range(count)
    ]


def decode_features(data: bytes, names: Sequence[str]) -> dict[str, bool]:
    """ETHTOOL_GFEATURES reply + the feature names -> feature name -> active."""
    cmd, blocks = _reply(data, GFEATURES_HEAD, ETHTOOL_GFEATURES, "ETHTOOL_GFEATURES")
    if blocks * 32 < len(names) or len(data) < GFEATURES_HEAD.size + blocks * FEATURE_BLOCK.size:
        raise ValueError(f"ETHTOOL_GFEATURES: {blocks} blocks for {len(names)} features")
    out = {}
    for i, name in enumerate(names):
        block = FEATURE_BLOCK.unpack_from(
            data, GFEATURES_HEAD.size + (i // 32) * FEATURE_BLOCK.size
        )
        out[name] = bool(block[2] & (1 << (i % 32)))
    return out


def offloads(features: Mapping[str, bool]) -> dict[str, bool]:
    """The legacy offload names ``ethtool -k`` prints, from the feature bits."""
    return {
        name: any(features.get(bit, False) for bit in bits)
        for name, bits in OFFLOAD_BITS.items()
        if any(bit in features for bit in bits)
    }


# ---- requests ---------------------------------------------------------------------------------


def request(cmd: int, size: int, head: bytes = b"") -> bytes:
    """The request buffer of a G* command: ``cmd`` then ``head``, zero-filled to ``size``."""
    body = struct.pack("=I", cmd) + head
    return body + bytes(max(0, size - len(body)))


# ---- the thin reader --------------------------------------------------------------------------


@dataclass
class EthtoolInfo:
    """What the ioctls gave for one device; ``unavailable`` says why a part is missing."""

    driver: str | None = None
    bus_info: str | None = None
    rings: dict[str, int] = field(default_factory=dict)
    channels: dict[str, int] = field(default_factory=dict)
    coalesce: dict[str, int] = field(default_factory=dict)
    offloads: dict[str, bool] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    raw: dict[str, bytes] = field(default_factory=dict)  # replies, kept when asked (captures)


def _reason(exc: OSError) -> str:
    if exc.errno == errno.EOPNOTSUPP:
        return "not supported by the driver"
    if exc.errno == errno.ENODEV:
        return "no such device"
    if exc.errno == errno.EPERM:
        return "not permitted"
    return f"{errno.errorcode.get(exc.errno or 0, 'error')}: {os.strerror(exc.errno or 0)}"


class EthtoolReader:
    """SIOCETHTOOL calls on one AF_INET datagram socket (opened per read, closed after).
    ``keep_raw`` keeps every reply in ``EthtoolInfo.raw`` (tests/data/config/capture.py)."""

    def __init__(self, keep_raw: bool = False) -> None:
        self.keep_raw = keep_raw

    def read(self, dev: str) -> EthtoolInfo:
        """Everything above for ``dev`` (in this network namespace). Never raises for a
        device that lacks a part: ``unavailable`` says which and why."""
        checked_ifname(dev)  # the name goes to the kernel; never anything but an ifname
        info = EthtoolInfo()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            call = _Calls(sock, dev, info, self.keep_raw)
            drv = call.decode(
                "driver", call.ask("driver", ETHTOOL_GDRVINFO, DRVINFO_SIZE), decode_drvinfo
            )
            if drv is not None:
                info.driver, info.bus_info = drv[0] or None, drv[1] or None
            rings = call.ask("rings", ETHTOOL_GRINGPARAM, RINGPARAM.size)
            info.rings = call.decode("rings", rings, decode_rings) or {}
            chans = call.ask("channels", ETHTOOL_GCHANNELS, CHANNELS.size)
            info.channels = call.decode("channels", chans, decode_channels) or {}
            coal = call.ask("coalesce", ETHTOOL_GCOALESCE, COALESCE.size)
            coalesce = call.decode("coalesce", coal, decode_coalesce) or {}
            info.coalesce = {k: v for k, v in coalesce.items() if k in COALESCE_SHOWN}
            info.offloads = _read_offloads(call)
        return info


_T = TypeVar("_T")


@dataclass
class _Calls:
    """One device's ioctls: a failed call or an undecodable reply becomes a reason."""

    sock: socket.socket
    dev: str
    info: EthtoolInfo
    keep_raw: bool

    def ask(self, what: str, cmd: int, size: int, head: bytes = b"", key: str = "") -> bytes | None:
        reply = ctypes.create_string_buffer(request(cmd, size, head), size)
        ifreq = bytearray(IFREQ_SIZE)
        name = self.dev.encode()
        ifreq[: len(name)] = name
        struct.pack_into("P", ifreq, 16, ctypes.addressof(reply))
        try:
            fcntl.ioctl(self.sock.fileno(), SIOCETHTOOL, ifreq, True)
        except OSError as exc:
            self.info.unavailable[what] = _reason(exc)
            return None
        if self.keep_raw:
            self.info.raw[key or what] = reply.raw
        return reply.raw

    def decode(self, what: str, data: bytes | None, fn: Callable[[bytes], _T]) -> _T | None:
        if data is None:
            return None
        try:
            return fn(data)
        except ValueError as exc:
            self.info.unavailable[what] = str(exc)
            return None


def _read_offloads(call: _Calls) -> dict[str, bool]:
    """The feature names (string set ETH_SS_FEATURES), then their bits (ETHTOOL_GFEATURES)."""
    mask = struct.pack("=IQ", 0, 1 << ETH_SS_FEATURES)
    sset = call.ask("features", ETHTOOL_GSSET_INFO, SSET_INFO.size, mask, key="features_sset")
    count = call.decode("features", sset, decode_sset_count)
    if count is None:
        return {}
    head = struct.pack("=II", ETH_SS_FEATURES, count)
    size = GSTRINGS_HEAD.size + count * ETH_GSTRING_LEN
    strings = call.ask("features", ETHTOOL_GSTRINGS, size, head, key="features_strings")
    names = call.decode("features", strings, decode_strings)
    if names is None:
        return {}
    blocks = (count + 31) // 32
    size = GFEATURES_HEAD.size + blocks * FEATURE_BLOCK.size
    feats = call.ask("features", ETHTOOL_GFEATURES, size, struct.pack("=I", blocks))
    active = call.decode("features", feats, lambda data: decode_features(data, names))
    return offloads(active) if active is not None else {}
