"""Pure decoding of what the kernel side hands over: ring-buffer records and tracefs formats.

``decode_record`` unpacks one ``struct txtop_record`` (probes/bpf/txtop.bpf.c; the layout and
codes are in abi.py) into a ``RawRecord``; ``to_packet_trace`` turns it into the snapshot's
``PacketTrace`` (with its ``flow`` from the headers and its ``owner``) with the help of lookups
passed in (drop-reason names, a kernel-symbol resolver, name -> ifindex, cgroup id -> path), so
both stay testable on captured bytes without a kernel.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import compress
from typing import NamedTuple

from txtop.core.filters import PROTOCOLS
from txtop.core.model import FlowInfo, PacketOwner, PacketTrace
from txtop.probes.bpf.abi import (
    END_KINDS,
    EXIT_RECORD,
    EXIT_RECORD_SIZE,
    F_QMAP,
    F_QUEUE,
    F_RC,
    F_REASON,
    F_TXQ_STATE,
    FL_ENCAP,
    FL_FRAG,
    FL_ICMP,
    FL_L3,
    FL_PORTS,
    FL_TCP,
    FL_VLAN,
    FREE_KINDS,
    N_STAGES,
    RECORD,
    RECORD_SIZE,
    ST_FREE,
    STAGE_ORDER,
    SYSCALLS,
    VIA_NONE,
    VIA_SYSCALL,
    VIAS,
)
from txtop.probes.bpf.ifnames import own_netns_inode

ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
L3_NAMES = {value: name for name, (kind, value) in PROTOCOLS.items() if kind == "eth"}


class DecodeError(ValueError):
    """A record that is not a txtop_record of this version."""


class RawRecord(NamedTuple):
    """One txtop_record, field for field (kernel pointers kept as integers). A named tuple, not
    a frozen dataclass: building one of 36 fields from the unpacked tuple is a single C call
    (``tuple.__new__``) instead of 36 ``object.__setattr__`` (2.2 -> 0.3 us a record)."""

    skbaddr: int
    first_ns: int
    ts: tuple[int, ...]
    sys_exit_ns: int
    txq_state: int
    location: int
    tgid: int
    tid: int
    len: int
    ifindex: int
    xmit_rc: int
    drop_reason: int
    sample_every: int
    sample_max_per_s: int
    cpu: tuple[int, ...]
    queue: int
    gso_segs: int
    protocol: int
    dport: int
    end: int
    free_kind: int
    syscall: int
    flags: int
    comm: str
    dev: str
    # identity (issue 12); defaults let tests build records of the fields they care about
    cgroup_id: int = 0
    owner_ns: int = 0
    saddr: bytes = bytes(16)
    daddr: bytes = bytes(16)
    sport: int = 0
    vlan: int = 0
    l3_proto: int = 0
    l4_proto: int = 0
    tcp_flags: int = 0
    via: int = VIA_NONE
    flow_flags: int = 0
    netns: int = 0  # the device's network namespace inode (net->ns.inum); 0 = not read

    @property
    def key(self) -> tuple[int, int]:
        """The sample's identity: address reuse gives a new first_ns."""
        return (self.skbaddr, self.first_ns)


@dataclass(frozen=True, slots=True)
class ExitRecord:
    """A tied send syscall that returned after its packet's record was sent."""

    skbaddr: int
    first_ns: int
    sys_exit_ns: int
    tid: int

    @property
    def key(self) -> tuple[int, int]:
        return (self.skbaddr, self.first_ns)


def c_string(raw: bytes) -> str:
    """A NUL-padded char[] (comm, a device name) as a str."""
    return bytes(raw).split(b"\0", 1)[0].decode("utf-8", "replace")


class _Cache(dict[bytes, str]):
    """raw bytes -> text, for the few distinct comms, device names and addresses a run sees:
    a dict hit instead of a split+decode or an ipaddress object per record. Bounded: cleared
    when it grows past ``limit`` (a scan of many addresses only costs the misses)."""

    def __init__(self, convert: Callable[[bytes], str], limit: int = 4096) -> None:
        super().__init__()
        self._convert = convert
        self._limit = limit

    def __missing__(self, raw: bytes) -> str:
        if len(self) >= self._limit:
            self.clear()
        text = self[raw] = self._convert(raw)
        return text


_C_STRINGS = _Cache(c_string)
_IPV4 = _Cache(lambda raw: str(ipaddress.IPv4Address(raw[:4])))
_IPV6 = _Cache(lambda raw: str(ipaddress.IPv6Address(raw)))

# Index of each field group in RECORD.unpack()'s flat tuple (layout: abi.RECORD_FIELDS).
_N = N_STAGES
_I_TS = 2
_I_MID = _I_TS + _N  # sys_exit_ns .. sample_max_per_s, saddr, daddr
_I_CPU = _I_MID + 15
_I_TAIL = _I_CPU + _N  # queue .. dev
_N_END, _N_FREE, _N_SYS, _N_VIA = len(END_KINDS), len(FREE_KINDS), len(SYSCALLS), len(VIAS)
_unpack_record = RECORD.unpack
_new_record = tuple.__new__


def decode_record(buf: bytes) -> RawRecord:
    """Unpack one ring-buffer record (or a track read from the map). Raises DecodeError."""
    if len(buf) != RECORD_SIZE:
        raise DecodeError(f"record of {len(buf)} bytes, expected {RECORD_SIZE}")
    f = _unpack_record(buf)
    (sys_exit_ns, txq_state, location, cgroup_id, owner_ns, tgid, tid, length, ifindex, xmit_rc,
     reason, every, max_per_s, saddr, daddr) = f[_I_MID:_I_CPU]  # fmt: skip
    (queue, gso_segs, protocol, dport, sport, vlan, l3_proto, l4_proto, tcp_flags, end,
     free_kind, syscall, flags, via, flow_flags, comm, dev, netns) = f[_I_TAIL:]  # fmt: skip
    if end >= _N_END or free_kind >= _N_FREE or syscall >= _N_SYS:
        raise DecodeError(f"record with unknown end/free/syscall code {end}/{free_kind}/{syscall}")
    if via >= _N_VIA:
        raise DecodeError(f"record with unknown owner code {via}")
    # In RawRecord's field order, straight into the tuple (no generated __new__ call).
    return _new_record(RawRecord, (
        f[0], f[1], f[_I_TS:_I_MID], sys_exit_ns, txq_state, location, tgid, tid, length,
        ifindex, xmit_rc, reason, every, max_per_s, f[_I_CPU:_I_TAIL], queue, gso_segs,
        protocol, dport, end, free_kind, syscall, flags, _C_STRINGS[comm], _C_STRINGS[dev],
        cgroup_id, owner_ns, saddr, daddr, sport, vlan, l3_proto, l4_proto, tcp_flags, via,
        flow_flags, netns,
    ))  # fmt: skip


def decode_exit(buf: bytes) -> ExitRecord:
    if len(buf) != EXIT_RECORD_SIZE:
        raise DecodeError(f"exit record of {len(buf)} bytes, expected {EXIT_RECORD_SIZE}")
    skbaddr, first_ns, exit_ns, tid = EXIT_RECORD.unpack(buf)
    return ExitRecord(skbaddr, first_ns, exit_ns, tid)


def decode_any(buf: bytes) -> RawRecord | ExitRecord:
    """Ring-buffer records come in two sizes; dispatch on it."""
    if len(buf) == EXIT_RECORD_SIZE:
        return decode_exit(buf)
    return decode_record(buf)


def l3_name(ethertype: int) -> str:
    """How FlowInfo.l3 names a network header: "ipv4", "ipv6", "arp", ... or "0x88cc"."""
    return L3_NAMES.get(ethertype, f"0x{ethertype:04x}")


def flow_of(rec: RawRecord) -> FlowInfo | None:
    """The flow the headers gave (None when they could not be read)."""
    ff = rec.flow_flags
    if not ff & FL_L3:
        return None
    # FlowInfo is immutable: packets of one flow (same headers) share one object.
    key = (ff, rec.l3_proto, rec.saddr, rec.daddr, rec.l4_proto, rec.sport, rec.dport,
           rec.tcp_flags, rec.vlan)  # fmt: skip
    flow = _FLOWS.get(key)
    if flow is None:
        if len(_FLOWS) >= _FLOWS_MAX:
            _FLOWS.clear()
        flow = _FLOWS[key] = _flow(rec)
    return flow


_FLOWS: dict[tuple[object, ...], FlowInfo] = {}
_FLOWS_MAX = 4096


def _flow(rec: RawRecord) -> FlowInfo:
    ff = rec.flow_flags
    ip = rec.l3_proto in (ETH_P_IP, ETH_P_IPV6)
    saddr = daddr = None
    if rec.l3_proto == ETH_P_IP:
        saddr, daddr = _IPV4[rec.saddr], _IPV4[rec.daddr]
    elif rec.l3_proto == ETH_P_IPV6:
        saddr, daddr = _IPV6[rec.saddr], _IPV6[rec.daddr]
    ports = bool(ff & FL_PORTS)
    icmp = bool(ff & FL_ICMP)
    return FlowInfo(
        l3=l3_name(rec.l3_proto),
        saddr=saddr,
        daddr=daddr,
        l4_proto=rec.l4_proto if ip else None,
        sport=rec.sport if ports else None,
        dport=rec.dport if ports else None,
        tcp_flags=rec.tcp_flags if ff & FL_TCP else None,
        vlan=rec.vlan & 0xFFF if ff & FL_VLAN else None,
        encap=bool(ff & FL_ENCAP),
        icmp_type=rec.sport if icmp else None,
        icmp_code=rec.dport if icmp else None,
        fragment=bool(ff & FL_FRAG),
    )


def owner_of(
    rec: RawRecord, resolve_cgroup: Callable[[int], str | None] | None = None
) -> PacketOwner | None:
    """Who sent it and how that was found (None: unknown, i.e. no identity and no tie)."""
    via = rec.via or (VIA_SYSCALL if rec.syscall else VIA_NONE)
    if via == VIA_NONE:
        return None
    cgroup = None
    if rec.cgroup_id and resolve_cgroup is not None:
        cgroup = resolve_cgroup(rec.cgroup_id)
    # PacketOwner is immutable: a sender's packets share one object.
    key = (rec.tgid, rec.tid, rec.comm, cgroup, via, rec.cgroup_id)
    owner = _OWNERS.get(key)
    if owner is None:
        if len(_OWNERS) >= _OWNERS_MAX:
            _OWNERS.clear()
        owner = _OWNERS[key] = PacketOwner(
            pid=rec.tgid,
            tid=rec.tid,
            comm=rec.comm,
            cgroup=cgroup,
            via=VIAS[via],
            cgroup_id=rec.cgroup_id or None,
        )
    return owner


_OWNERS: dict[tuple[object, ...], PacketOwner] = {}
_OWNERS_MAX = 4096


def _ports_unread(flow: FlowInfo | None) -> bool:
    """The headers did not say the ports (unread, or an IP fragment), and could have had them."""
    if flow is None:
        return True
    return flow.l3 in ("ipv4", "ipv6") and flow.icmp_type is None and flow.sport is None


def to_packet_trace(
    rec: RawRecord,
    *,
    sys_exit_ns: int | None = None,
    drop_reasons: Mapping[int, str] | None = None,
    resolve_location: Callable[[int], str | None] | None = None,
    ifindex_of: Callable[[str], int | None] | None = None,
    name_of: Callable[[int], str | None] | None = None,
    resolve_cgroup: Callable[[int], str | None] | None = None,
    end: str | None = None,
    own_netns: int | None = None,
) -> PacketTrace:
    """The snapshot form of a record. ``sys_exit_ns`` comes from a separate ExitRecord when the
    syscall returned after the record was sent; ``end`` overrides the record's own end kind
    (user-space aging reads live tracks from the map). ``pid``/``tid``/``comm`` are the owner's,
    ``l4_proto``/``sport``/``dport`` the flow's (the JSON keeps both forms).

    ``ifindex_of``/``name_of`` look names up in txtop's own network namespace (``own_netns``,
    its inode; None: this process's): a packet of a device in another namespace keeps the
    name and ifindex the kernel side read from its net_device and carries its namespace
    (``netns_inode``), since the same name or ifindex may be another device here."""
    ts = rec.ts
    stages = dict(compress(zip(STAGE_ORDER, ts, strict=True), ts))  # the stages seen (time != 0)
    cpus = dict(compress(zip(STAGE_ORDER, rec.cpu, strict=True), ts))
    dev = rec.dev
    ifindex = rec.ifindex
    own = own_netns_inode() if own_netns is None else own_netns
    foreign = rec.netns if rec.netns and own and rec.netns != own else 0
    if not dev and ifindex and name_of is not None and not foreign:
        dev = name_of(ifindex) or ""
    if not ifindex and dev and ifindex_of is not None and not foreign:
        ifindex = ifindex_of(dev) or 0
    reason: str | None = None
    if rec.flags & F_REASON:
        reason = (drop_reasons or {}).get(rec.drop_reason, str(rec.drop_reason))
    location: str | None = None
    if rec.location:
        location = resolve_location(rec.location) if resolve_location else None
        location = location or f"0x{rec.location:x}"
    tied = rec.syscall != 0  # set only with a syscall tie (via syscall)
    owner = owner_of(rec, resolve_cgroup)
    named = owner is not None and owner.pid != 0
    flow = flow_of(rec)
    dport = flow.dport if flow is not None and flow.dport is not None else None
    if dport is None and tied and rec.dport and _ports_unread(flow):
        dport = rec.dport  # no L4 header read: the port the sender's sendto() named
    return PacketTrace(
        pid=rec.tgid if named else 0,
        tid=rec.tid if named else 0,
        comm=rec.comm if named else "",
        dev=dev,
        ifindex=ifindex,
        queue=rec.queue if rec.flags & (F_QUEUE | F_QMAP) else None,
        len=rec.len,
        gso_segs=rec.gso_segs,
        stages=stages,
        cpus=cpus,
        track=end or END_KINDS[rec.end],
        protocol=rec.protocol if rec.flags & F_QUEUE else None,
        xmit_rc=rec.xmit_rc if rec.flags & F_RC else None,
        txq_state=rec.txq_state if rec.flags & F_TXQ_STATE else None,
        free_kind=FREE_KINDS[rec.free_kind] if rec.ts[ST_FREE] else None,
        drop_reason=reason,
        free_location=location,
        syscall=SYSCALLS[rec.syscall] if tied else None,
        syscall_exit_ns=(rec.sys_exit_ns or sys_exit_ns or None) if tied else None,
        l4_proto=flow.l4_proto if flow is not None else None,
        sport=flow.sport if flow is not None else None,
        dport=dport,
        sample_every=rec.sample_every or None,
        sample_max_per_s=rec.sample_max_per_s,
        flow=flow,
        owner=owner,
        netns_inode=foreign,
    )


# ---- tracefs format files ----------------------------------------------------------------------

_FIELD_RE = re.compile(r"^\s*field:(?P<decl>[^;]+);\s*offset:(?P<off>\d+);\s*size:(?P<size>\d+);")
_SYMBOLIC_RE = re.compile(r"\{\s*(\d+)\s*,\s*\"([A-Za-z0-9_]+)\"\s*\}")


def format_fields(text: str) -> dict[str, tuple[int, int]]:
    """Field name -> (offset, size) from a tracefs ``events/<cat>/<event>/format`` file."""
    out: dict[str, tuple[int, int]] = {}
    for line in text.splitlines():
        m = _FIELD_RE.match(line)
        if not m:
            continue
        decl = m.group("decl").strip()
        name = decl.split()[-1].split("[", 1)[0].lstrip("*")
        out[name] = (int(m.group("off")), int(m.group("size")))
    return out


def parse_drop_reasons(text: str) -> dict[int, str]:
    """skb:kfree_skb's ``__print_symbolic(REC->reason, {2, "NOT_SPECIFIED"}, ...)`` table."""
    head, sep, tail = text.partition("print fmt:")
    return {int(n): name for n, name in _SYMBOLIC_RE.findall(tail if sep else head)}
