"""Packet filters: a pure spec, its text form, CLI form, matching, and the kernel-side part.

Text form (the `/` filter prompt): space-separated ``key=value`` terms; a value may list
alternatives with commas. Terms with different keys must all match (AND); alternatives of
one key are OR-ed. Bare protocol names are accepted as a shorthand::

    dev=eth0 comm=iperf3 port=5201
    dev=veth* udp port=5000-5010
    pid=1234,1240 proto=tcp,udp

Keys: ``dev`` (aliases ``iface``, ``i``; shell-style globs allowed), ``comm`` (globs allowed;
compared on the kernel's 15-character comm), ``pid`` (matches the sender's tgid or thread id),
``proto`` (``tcp udp icmp icmpv6 sctp`` or an IP protocol number, ``ipv4 ipv6 arp vlan`` for the
network header), ``port`` (source or destination, single or ``lo-hi``), ``host`` (source or
destination address in a CIDR prefix, IPv4 or IPv6; a bare address is a /32 or /128).

The sender (pid, comm) is the packet's owner and the protocol, ports and addresses come from its
own headers (``PacketTrace.owner`` / ``.flow``), so every key matches exactly what the tracer
saw. ``kernel_filter`` is the part BPF applies before sampling: interfaces and pids, and the
protocol/port/host part (``FlowFilter``) checked on the headers at the sampling decision.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from txtop.core.model import PacketTrace

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

TASK_COMM_LEN = 16  # the kernel keeps 15 characters of a task's name plus NUL

# Protocol name -> (field, value): "l4" is IPPROTO_*, "eth" is the host-order ethertype that
# net_dev_start_xmit records (ntohs(skb->protocol)).
PROTOCOLS: Mapping[str, tuple[str, int]] = {
    "tcp": ("l4", 6),
    "udp": ("l4", 17),
    "icmp": ("l4", 1),
    "icmpv6": ("l4", 58),
    "sctp": ("l4", 132),
    "udplite": ("l4", 136),
    "ipv4": ("eth", 0x0800),
    "ipv6": ("eth", 0x86DD),
    "arp": ("eth", 0x0806),
    "vlan": ("eth", 0x8100),
}
_PROTOCOL_ALIASES = {"ip": "ipv4", "ip4": "ipv4", "ip6": "ipv6", "icmp6": "icmpv6"}

_KEY_ALIASES = {
    "dev": "dev",
    "iface": "dev",
    "interface": "dev",
    "i": "dev",
    "comm": "comm",
    "pid": "pid",
    "proto": "proto",
    "protocol": "proto",
    "port": "port",
    "host": "host",
    "net": "host",
    "addr": "host",
}
KEYS_TEXT = "dev comm pid proto port host"
_GLOB_CHARS = frozenset("*?[")


class FilterError(ValueError):
    """A filter string or flag could not be understood; the message says why."""


@dataclass(frozen=True, slots=True)
class FlowFilter:
    """The protocol, port and host part of a filter, on a packet's own headers.

    Each part ORs its alternatives; the parts AND; an empty part does not restrict. ``l4`` are
    IP protocol numbers, ``l3`` network-header names ("ipv4", "ipv6", "arp", "vlan": a tagged
    packet) - a packet matches the protocol part when either names it."""

    l4: frozenset[int] = frozenset()
    l3: frozenset[str] = frozenset()
    ports: tuple[tuple[int, int], ...] = ()
    hosts: tuple[Network, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.l4 or self.l3 or self.ports or self.hosts)

    def matches(self, packet: PacketTrace) -> bool:
        if (self.l4 or self.l3) and not self._proto(packet):
            return False
        if self.ports:
            ports = [p for p in (packet.sport, packet.dport) if p is not None]
            if not any(lo <= port <= hi for port in ports for lo, hi in self.ports):
                return False
        if self.hosts:
            flow = packet.flow
            addrs = [a for a in ((flow.saddr, flow.daddr) if flow else ()) if a]
            if not any(_in_networks(a, self.hosts) for a in addrs):
                return False
        return True

    def _proto(self, packet: PacketTrace) -> bool:
        if packet.l4_proto is not None and packet.l4_proto in self.l4:
            return True
        return bool(self.l3) and not self.l3.isdisjoint(_l3_names(packet))


@dataclass(frozen=True, slots=True)
class KernelFilter:
    """The part of a filter the BPF program can apply (``tracer.set_filters``).

    ``None`` means "no restriction" for that field. Names that matched no interface are listed
    in ``unresolved``; they are not pushed down (user space still filters them out), so the
    kernel never ends up with an empty set that a tracer might read as "everything". ``flow``
    is checked on the packet headers at the sampling decision.
    """

    ifindexes: frozenset[int] | None = None
    pids: frozenset[int] | None = None
    unresolved: tuple[str, ...] = ()
    flow: FlowFilter | None = None


@dataclass(frozen=True, slots=True)
class FilterSpec:
    devs: tuple[str, ...] = ()
    comms: tuple[str, ...] = ()
    pids: tuple[int, ...] = ()
    protocols: tuple[str, ...] = ()  # canonical names from PROTOCOLS, or an IP protocol number
    ports: tuple[tuple[int, int], ...] = ()  # inclusive ranges
    hosts: tuple[str, ...] = ()  # CIDR prefixes, canonical ("10.0.0.0/8", "fd00::/8")

    # --- building -------------------------------------------------------------------------

    @classmethod
    def parse(cls, text: str) -> FilterSpec:
        """Parse the text form. Raises FilterError with a message fit for the user."""
        fields: dict[str, list[str]] = {
            "dev": [],
            "comm": [],
            "pid": [],
            "proto": [],
            "port": [],
            "host": [],
        }
        for term in text.split():
            key, sep, value = term.partition("=")
            if not sep:
                if _canonical_protocol(term, strict=False) is not None:
                    fields["proto"].append(term)
                    continue
                raise FilterError(f"{term!r}: expected key=value (keys: {KEYS_TEXT})")
            canon = _KEY_ALIASES.get(key.lower())
            if canon is None:
                raise FilterError(f"unknown filter key {key!r} (keys: {KEYS_TEXT})")
            values = [v for v in value.split(",") if v]
            if not values:
                raise FilterError(f"{key}= needs a value")
            fields[canon].extend(values)
        return cls.from_cli(
            iface=fields["dev"],
            comm=fields["comm"],
            pid=fields["pid"],
            proto=fields["proto"],
            port=fields["port"],
            host=fields["host"],
        )

    @classmethod
    def from_cli(
        cls,
        iface: Sequence[str] | str | None = None,
        pid: Sequence[int | str] | int | str | None = None,
        comm: Sequence[str] | str | None = None,
        port: Sequence[int | str] | int | str | None = None,
        proto: Sequence[str] | str | None = None,
        host: Sequence[str] | str | None = None,
    ) -> FilterSpec:
        """Build from command-line flags (``-i``, ``--pid``, ``--comm``, ``--port``, ``--proto``,
        ``--host``).

        Each flag may be a single value, a comma-separated string, or a list of those (argparse
        ``action="append"``). Raises FilterError on a bad value.
        """
        devs = _split(iface)
        for dev in devs:
            if "/" in dev or (len(dev) > 15 and not _is_glob(dev)):
                raise FilterError(f"bad interface name {dev!r}")
        pids = []
        for raw in _split(pid):
            value = _parse_int(raw, "pid")
            if value <= 0:
                raise FilterError(f"pid must be positive, got {raw!r}")
            pids.append(value)
        protocols = [_canonical_protocol(p, strict=True) or "" for p in _split(proto)]
        ports = [_parse_port_range(p) for p in _split(port)]
        hosts = [str(_parse_network(h)) for h in _split(host)]
        return cls(
            devs=_unique(devs),
            comms=_unique(c[: TASK_COMM_LEN - 1] for c in _split(comm)),
            pids=_unique(pids),
            protocols=_unique(protocols),
            ports=_unique(ports),
            hosts=_unique(hosts),
        )

    # --- reading --------------------------------------------------------------------------

    @property
    def empty(self) -> bool:
        return not (
            self.devs or self.comms or self.pids or self.protocols or self.ports or self.hosts
        )

    @property
    def flow(self) -> FlowFilter:
        """The protocol/port/host part, as the packet headers are matched."""
        l4: set[int] = set()
        l3: set[str] = set()
        for proto in self.protocols:
            known = PROTOCOLS.get(proto)
            if known is None:
                l4.add(int(proto))
            elif known[0] == "l4":
                l4.add(known[1])
            else:
                l3.add(proto)
        hosts = tuple(_parse_network(h) for h in self.hosts)
        return FlowFilter(frozenset(l4), frozenset(l3), self.ports, hosts)

    def matches(self, packet: PacketTrace) -> bool:
        if self.devs and not _name_matches(packet.dev, self.devs):
            return False
        if self.comms and not _name_matches(packet.comm, self.comms):
            return False
        if self.pids and packet.pid not in self.pids and packet.tid not in self.pids:
            return False
        if (self.protocols or self.ports or self.hosts) and not self.flow.matches(packet):
            return False
        return True

    def to_string(self) -> str:
        """The text form; ``FilterSpec.parse(spec.to_string()) == spec``."""
        terms = []
        if self.devs:
            terms.append("dev=" + ",".join(self.devs))
        if self.comms:
            terms.append("comm=" + ",".join(self.comms))
        if self.pids:
            terms.append("pid=" + ",".join(map(str, self.pids)))
        if self.protocols:
            terms.append("proto=" + ",".join(self.protocols))
        if self.ports:
            terms.append("port=" + ",".join(_port_text(r) for r in self.ports))
        if self.hosts:
            terms.append("host=" + ",".join(self.hosts))
        return " ".join(terms)

    def to_dict(self) -> dict[str, Any]:
        """JSON form for ProbeStatus.filters (only the fields in use)."""
        out: dict[str, Any] = {}
        if self.devs:
            out["dev"] = list(self.devs)
        if self.comms:
            out["comm"] = list(self.comms)
        if self.pids:
            out["pid"] = list(self.pids)
        if self.protocols:
            out["proto"] = list(self.protocols)
        if self.ports:
            out["port"] = [_port_text(r) for r in self.ports]
        if self.hosts:
            out["host"] = list(self.hosts)
        return out

    def kernel_filter(self, ifindex_by_name: Mapping[str, int]) -> KernelFilter:
        """What BPF can apply: interfaces (globs expanded against ``ifindex_by_name``), tgids
        (the syscall tie's, or the socket owner's), and the protocol/port/host part, checked on
        the packet headers at the sampling decision. comm stays in user space (a comm maps to
        changing pids)."""
        ifindexes: frozenset[int] | None = None
        unresolved: list[str] = []
        if self.devs:
            found = set()
            for pattern in self.devs:
                hits = [i for n, i in ifindex_by_name.items() if _one_name_matches(n, pattern)]
                if not hits:
                    unresolved.append(pattern)
                found.update(hits)
            ifindexes = frozenset(found) if found and not unresolved else None
            # With any name unresolved we push nothing: the missing device may appear later
            # (lab setup, hot-plug) and the kernel must not already be filtering it out.
        pids = frozenset(self.pids) if self.pids else None
        flow = self.flow
        return KernelFilter(
            ifindexes=ifindexes,
            pids=pids,
            unresolved=tuple(unresolved),
            flow=None if flow.empty else flow,
        )


EMPTY_FILTER = FilterSpec()


def _split(values: Iterable[Any] | str | int | None) -> list[str]:
    if values is None:
        return []
    if isinstance(values, (str, int)):
        values = [values]
    out: list[str] = []
    for value in values:
        out.extend(v.strip() for v in str(value).split(",") if v.strip())
    return out


def _unique(values: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(dict.fromkeys(values))


def _parse_int(raw: str, what: str) -> int:
    try:
        return int(raw, 0)
    except ValueError:
        raise FilterError(f"{what} must be a number, got {raw!r}") from None


def _parse_port_range(raw: str) -> tuple[int, int]:
    lo_text, sep, hi_text = raw.partition("-")
    lo = _parse_int(lo_text, "port")
    hi = _parse_int(hi_text, "port") if sep else lo
    if not (0 <= lo <= hi <= 65535):
        raise FilterError(f"port range {raw!r} is outside 0-65535 or reversed")
    return (lo, hi)


def _port_text(port_range: tuple[int, int]) -> str:
    lo, hi = port_range
    return str(lo) if lo == hi else f"{lo}-{hi}"


def _canonical_protocol(raw: str, strict: bool) -> str | None:
    name = raw.lower()
    name = _PROTOCOL_ALIASES.get(name, name)
    if name in PROTOCOLS:
        return name
    if name.isdigit() and 0 <= int(name) <= 255:
        return str(int(name))
    if strict:
        known = " ".join(PROTOCOLS)
        raise FilterError(f"unknown protocol {raw!r} (known: {known}, or 0-255)")
    return None


def _parse_network(raw: str) -> Network:
    try:
        return ipaddress.ip_network(raw.strip(), strict=False)
    except ValueError:
        raise FilterError(f"host must be an address or CIDR prefix, got {raw!r}") from None


def _in_networks(addr: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    return any(ip.version == net.version and ip in net for net in networks)


_ETH_NAMES = {value: name for name, (kind, value) in PROTOCOLS.items() if kind == "eth"}


def _l3_names(packet: PacketTrace) -> set[str]:
    """The network-header names a packet answers to: its flow's l3, the ethertype the driver
    saw, and "vlan" when tagged."""
    names = set()
    if packet.flow is not None:
        names.add(packet.flow.l3)
        if packet.flow.vlan is not None:
            names.add("vlan")
    if packet.protocol is not None and packet.protocol in _ETH_NAMES:
        names.add(_ETH_NAMES[packet.protocol])
    return names


def _is_glob(pattern: str) -> bool:
    return not _GLOB_CHARS.isdisjoint(pattern)


def _one_name_matches(name: str, pattern: str) -> bool:
    return fnmatch.fnmatchcase(name, pattern) if _is_glob(pattern) else name == pattern


def _name_matches(name: str, patterns: Sequence[str]) -> bool:
    return any(_one_name_matches(name, p) for p in patterns)
