"""The tracer's run-time settings, and the maps through which they reach the kernel side.

``Settings`` holds the validated values (sampling, filters, track timeout, ring-buffer size);
``ConfigMaps`` writes them into txtop.bpf.c's ``config`` array and filter maps, and keeps the
``tx_completion`` set (devices whose driver frees skbs after sending) up to date.

The flow filter (protocols, ports, hosts: ``core.filters.FlowFilter``) is checked by the kernel
side on the packet headers at the sampling decision: protocols as bitmaps in ``flow_filter``,
ports as a 65536-bit map (``port_filter``), prefixes in an LPM trie (``host_filter``), so any
number of ranges and prefixes is exact there; the tracer applies the same filter to what it
reads as well (``Settings.flow``), which costs nothing and keeps the two in step.
"""

from __future__ import annotations

import ctypes
import ipaddress
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from txtop.core.filters import FlowFilter
from txtop.probes.bpf.abi import L3_BITS
from txtop.probes.bpf.duty import OPEN, TraceWindows
from txtop.probes.bpf.ifnames import IfNames, own_netns
from txtop.probes.bpf.tracks import TrackCounts

DEFAULT_SAMPLE_EVERY = 16  # 1-in-N at net_dev_queue, then at most the cap per second
DEFAULT_MAX_SAMPLES_PER_S = 200
# 4 MiB: ~16,000 track records (248 bytes + the 8-byte header), ~28,000 with the sendto()
# exit records veth adds (40 bytes): ~0.5 s at 50k records/s. The drain thread (ringbuf.py)
# must get the GIL and a CPU before the ring fills. In bench/drain.py (the worker alone) 256
# pages were enough for 50k records/s; the dashboard itself (its UI in the same process) lost
# 15-36k records in 8 s at 256 pages and 2 at 1024 (64 pages: thousands even without the UI).
DEFAULT_RINGBUF_PAGES = 1024
TRACK_TIMEOUT_S = 2.0
MAX_SAMPLE_EVERY = 1_000_000
MAX_SAMPLES_PER_S = 1_000_000
DEVICE_SCAN_INTERVAL_S = 5.0
SYS_CLASS_NET = Path("/sys/class/net")


def check_int(name: str, value: int, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValueError(f"{name} must be an integer in {lo}..{hi}, got {value!r}")
    return value


def check_ifindexes(ifindexes: Sequence[int] | None) -> tuple[int, ...]:
    return tuple(sorted({check_int("ifindex", i, 1, 2**31 - 1) for i in ifindexes or ()}))


MAX_NETNS_INODE = 2**32 - 1  # net->ns.inum is an unsigned int


def check_devices(devices: Sequence[tuple[int, int]] | None) -> tuple[tuple[int, int], ...]:
    """Devices of other network namespaces: (namespace inode, ifindex) pairs, validated."""
    out = set()
    for pair in devices or ():
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise ValueError(f"a device of another namespace is (netns inode, ifindex): {pair!r}")
        ns, ifindex = pair
        ns = check_int("netns inode", ns, 1, MAX_NETNS_INODE)
        out.add((ns, check_int("ifindex", ifindex, 1, 2**31 - 1)))
    return tuple(sorted(out))


def check_namespaces(namespaces: Sequence[int] | None) -> tuple[int, ...]:
    checked = {check_int("netns inode", n, 1, MAX_NETNS_INODE) for n in namespaces or ()}
    return tuple(sorted(checked))


def check_pids(pids: Sequence[int] | None) -> tuple[int, ...]:
    return tuple(sorted({check_int("pid", p, 1, 2**22) for p in pids or ()}))


def check_filters(
    ifindexes: Sequence[int] | None, pids: Sequence[int] | None
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Interface and pid filters, validated, sorted, without repeats (empty = everything)."""
    return check_ifindexes(ifindexes), check_pids(pids)


PORT_WORDS = 1024  # port_filter: 65536 bits in u64 words
MAX_HOSTS = 1024  # host_filter entries (txtop.bpf.c)


def check_flow(flow: FlowFilter | None) -> FlowFilter | None:
    """A flow filter, or None for none (an empty one is none)."""
    if flow is None or flow.empty:
        return None
    if not isinstance(flow, FlowFilter):
        raise ValueError(f"flow filter must be a FlowFilter, got {type(flow).__name__}")
    unknown = [n for n in flow.l3 if n not in L3_BITS]
    if unknown or any(not 0 <= p <= 255 for p in flow.l4):
        raise ValueError(f"flow filter: unknown protocol {unknown or sorted(flow.l4)}")
    if len(flow.hosts) > MAX_HOSTS:
        raise ValueError(f"flow filter: at most {MAX_HOSTS} host prefixes")
    return flow


# The in-window cap never exceeds this (a short window at a small duty would otherwise ask the
# drain for a burst it cannot take: bench/run's drain_events_per_s).
MAX_WINDOW_SAMPLES_PER_S = 20_000


def burst(max_per_s: int) -> int:
    """Token bucket depth: 20 ms of samples, at least one. Small, so that a trace window's
    samples are spread over it rather than spent in its first milliseconds on whatever
    queue and CPU send first (the bucket fills up while the window is closed)."""
    return max(1, max_per_s // 50)


def window_rate(max_per_s: int, duty: float) -> int:
    """The token bucket's rate while a trace window is open: the samples-per-second cap
    divided by the share of the time windows are open, so that the cap holds on average over
    the windows and the closed time between them (a 5% duty with a cap of 200/s samples at
    4000/s inside its windows) and the waterfall keeps flowing under a flood."""
    if max_per_s <= 0:
        return 0
    if duty >= 1.0 or duty <= 0.0:
        return max_per_s
    return min(math.ceil(max_per_s / duty), max(max_per_s, MAX_WINDOW_SAMPLES_PER_S))


class Settings:
    """What the user chose, validated (ValueError with a one-line message otherwise)."""

    def __init__(
        self,
        ifindexes: Sequence[int] | None,
        pids: Sequence[int] | None,
        sample_every: int,
        max_samples_per_s: int,
        ringbuf_pages: int,
        track_timeout_s: float,
        devices: Sequence[tuple[int, int]] | None = None,
        namespaces: Sequence[int] | None = None,
    ) -> None:
        check_int("sample_every", sample_every, 1, MAX_SAMPLE_EVERY)
        check_int("max_samples_per_s", max_samples_per_s, 0, MAX_SAMPLES_PER_S)
        check_int("ringbuf_pages", ringbuf_pages, 1, 1 << 16)
        if ringbuf_pages & (ringbuf_pages - 1):
            raise ValueError(f"ringbuf_pages must be a power of two, got {ringbuf_pages}")
        if not 0.05 <= track_timeout_s <= 60:
            raise ValueError("track_timeout_s must be within 0.05..60")
        self.ifindexes, self.pids = check_filters(ifindexes, pids)
        # Devices of other network namespaces, by (netns inode, ifindex): in the interface
        # filter beside ``ifindexes`` (txtop's own); ``namespaces``: the other namespaces whose
        # devices' per-queue counters are read (those of ``devices`` always are).
        self.devices = check_devices(devices)
        self.namespaces = check_namespaces(namespaces)
        self.flow: FlowFilter | None = None  # set_filters(flow=...), checked by check_flow
        self.every = sample_every
        self.max_per_s = max_samples_per_s
        self.pages = ringbuf_pages
        self.timeout_ns = int(track_timeout_s * 1e9)

    def other_namespaces(self) -> set[int]:
        """The other namespaces whose devices are counted: ``namespaces`` and those of
        ``devices`` (their inodes)."""
        return {*self.namespaces, *(ns for ns, _ in self.devices)}

    @staticmethod
    def check_sampling(every: int, max_per_s: int) -> None:
        check_int("sample_every", every, 1, MAX_SAMPLE_EVERY)
        check_int("max_samples_per_s", max_per_s, 0, MAX_SAMPLES_PER_S)

    def sampling(self, sampled: int = 0, limited: int = 0) -> dict[str, int]:
        return {
            "every": self.every,
            "max_per_s": self.max_per_s,
            "sampled": sampled,
            "rate_limited": limited,
        }

    def filters(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ifindexes": list(self.ifindexes), "pids": list(self.pids)}
        if self.devices:  # only when set, as the flow keys below
            out["netns_devices"] = [f"{ns}:{i}" for ns, i in self.devices]
        flow = self.flow
        if flow is not None:  # the keys only when set: the JSON stays as it was without
            if flow.l4 or flow.l3:
                out["proto"] = sorted(flow.l3) + [str(p) for p in sorted(flow.l4)]
            if flow.ports:
                out["port"] = [f"{lo}-{hi}" if lo != hi else str(lo) for lo, hi in flow.ports]
            if flow.hosts:
                out["host"] = [str(h) for h in flow.hosts]
        return out


class ConfigMaps:
    """Writes the settings into the loaded program's maps. ``generation`` is bumped by the
    trace windows each time one opens; ``counts.ended`` (entries user space removed from the
    track maps) lets the kernel side tell whether anything is still tracked."""

    def __init__(
        self,
        bpf: Any,
        settings: Settings,
        names: IfNames,
        windows: TraceWindows,
        counts: TrackCounts,
    ) -> None:
        self._bpf = bpf
        self._settings = settings
        self._names = names
        self._windows = windows
        self._counts = counts
        self.generation = 0
        self.filter_gen = 1  # bumped by write_filters: per-CPU filter verdicts start again
        self._completion_devs: set[str] = set()
        self._port_words: set[int] = set()  # port_filter words set by the last flow filter
        self._last_dev_scan = 0.0
        self._netns = own_netns()

    @property
    def filter_dev(self) -> bool:
        return bool(self._settings.ifindexes or self._settings.devices)

    def write(self) -> None:
        s = self._settings
        table = self._bpf[b"config"]
        cfg = table.Leaf()
        # 0 = no new tracks: outside the open part of a trace window (txtop.bpf.c checks it
        # in net_dev_queue and the send syscalls)
        cfg.sample_every = s.every if self._windows.state == OPEN else 0
        rate = window_rate(s.max_per_s, self._windows.sampling_duty())
        cfg.max_per_s = rate
        cfg.burst = burst(rate)
        cfg.filter_dev = 1 if self.filter_dev else 0
        cfg.filter_pid = 1 if s.pids else 0
        cfg.filter_flow = 1 if s.flow is not None else 0
        cfg.filter_gen = self.filter_gen & 0xFFFFFFFF
        cfg.track_timeout_ns = s.timeout_ns
        cfg.user_ended = self._counts.ended
        cfg.generation = self.generation & 0xFFFFFFFF
        table[ctypes.c_int(0)] = cfg

    def write_filters(self) -> None:
        self.filter_gen += 1  # config.filter_gen (written by write(), which follows)
        bpf = self._bpf
        one = ctypes.c_uint8(1)
        names = bpf[b"dev_filter"]
        names.clear()
        idx = bpf[b"ifindex_filter"]
        idx.clear()
        for i in self._settings.ifindexes:
            name = self._names.name(i)
            if name is None:
                continue  # gone: nothing of it can be traced
            key = names.Key()
            key.name = name.encode()
            names[key] = one
            # (namespace, ifindex): ours where the kernel side reads it, 0 where it cannot
            for ns in {0, self._netns}:
                dk = idx.Key()
                dk.netns, dk.ifindex = ns, i
                idx[dk] = one
        # Devices of other namespaces: by (namespace, ifindex) only. Not by name (the classic
        # forms' key, which a device here may share), nor as namespace 0 (not known: ours).
        for ns, i in self._settings.devices:
            dk = idx.Key()
            dk.netns, dk.ifindex = ns, i
            idx[dk] = one
        pids = bpf[b"pid_filter"]
        pids.clear()
        for p in self._settings.pids:
            pids[ctypes.c_uint(p)] = one
        self.write_flow_filter()

    def write_flow_filter(self) -> None:
        """The flow filter's kernel part (see the module docstring): the port and host maps
        first, then the switches that use them."""
        bpf = self._bpf
        flow = self._settings.flow
        words = port_words(flow.ports) if flow is not None else {}
        ports = bpf[b"port_filter"]
        for i in set(words) | self._port_words:  # set the wanted words, clear the old ones
            ports[ctypes.c_int(i)] = ctypes.c_uint64(words.get(i, 0))
        self._port_words = set(words)
        hosts = bpf[b"host_filter"]
        hosts.clear()
        for net in flow.hosts if flow is not None else ():
            key = hosts.Key()
            fill_host_key(key, net)
            hosts[key] = ctypes.c_uint8(1)
        table = bpf[b"flow_filter"]
        leaf = table.Leaf()  # zeroed: nothing restricts
        if flow is not None:
            fill_flow_leaf(leaf, flow)
        table[ctypes.c_int(0)] = leaf

    def refresh_completion_devs(self, now: float) -> None:
        """``update_completion_devs`` at most every DEVICE_SCAN_INTERVAL_S."""
        if now - self._last_dev_scan >= DEVICE_SCAN_INTERVAL_S:
            self.update_completion_devs()

    def update_completion_devs(self) -> None:
        """Tell the kernel side which devices free skbs after sending (NICs: they have a
        parent device in sysfs); on all others a track ends at net_dev_xmit."""
        self._last_dev_scan = time.monotonic()
        try:
            names = {d.name for d in SYS_CLASS_NET.iterdir() if (d / "device").exists()}
        except OSError:
            return
        if names == self._completion_devs:
            return
        table = self._bpf[b"tx_completion"]
        for name in self._completion_devs - names:
            key = table.Key()
            key.name = name.encode()
            try:
                del table[key]
            except KeyError:
                pass
        for name in names - self._completion_devs:
            key = table.Key()
            key.name = name.encode()
            table[key] = ctypes.c_uint8(1)
        self._completion_devs = names


def fill_flow_leaf(leaf: Any, flow: FlowFilter) -> None:
    """Write ``flow``'s switches and protocol bitmaps into a zeroed struct txtop_flow_filter."""
    leaf.any_proto = 0 if (flow.l4 or flow.l3) else 1
    for proto in flow.l4:
        leaf.l4_mask[proto >> 6] |= 1 << (proto & 63)
    for name in flow.l3:
        leaf.l3_mask |= L3_BITS[name]
    leaf.use_ports = 1 if flow.ports else 0
    leaf.use_hosts = 1 if flow.hosts else 0


def port_words(ranges: Sequence[tuple[int, int]]) -> dict[int, int]:
    """The port ranges as port_filter's u64 words (index -> bits), only the non-zero ones."""
    words: dict[int, int] = {}
    for lo, hi in ranges:
        for port in range(lo, hi + 1):
            words[port >> 6] = words.get(port >> 6, 0) | 1 << (port & 63)
    return words


def fill_host_key(key: Any, net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> None:
    """A struct txtop_host_key for ``net``: the family byte, then the address prefix."""
    key.prefixlen = 8 + net.prefixlen
    key.data[0] = 4 if net.version == 4 else 6
    for i, byte in enumerate(net.network_address.packed):
        key.data[1 + i] = byte
