"""Pure decoding of what the kernel side hands over: ring-buffer records and tracefs formats.

``decode_record`` unpacks one ``struct txtop_record`` (probes/bpf/txtop.bpf.c; the layout and
codes are in abi.py) into a ``RawRecord``; ``to_packet_trace`` turns it into the snapshot's
``PacketTrace`` with the help of lookups passed in (drop-reason names, a kernel-symbol resolver,
name -> ifindex), so both stay testable on captured bytes without a kernel.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from txtop.core.model import PacketTrace
from txtop.probes.bpf.abi import (
    END_KINDS,
    EXIT_RECORD,
    EXIT_RECORD_SIZE,
    F_QUEUE,
    F_RC,
    F_REASON,
    F_TXQ_STATE,
    FREE_KINDS,
    N_STAGES,
    RECORD,
    RECORD_SIZE,
    ST_FREE,
    STAGE_ORDER,
    SYSCALLS,
)


class DecodeError(ValueError):
    """A record that is not a txtop_record of this version."""


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One txtop_record, field for field (kernel pointers kept as integers)."""

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


def decode_record(buf: bytes) -> RawRecord:
    """Unpack one ring-buffer record (or a track read from the map). Raises DecodeError."""
    if len(buf) != RECORD_SIZE:
        raise DecodeError(f"record of {len(buf)} bytes, expected {RECORD_SIZE}")
    f = RECORD.unpack(buf)
    n = N_STAGES
    ts = tuple(f[2 : 2 + n])
    i = 2 + n
    sys_exit_ns, txq_state, location = f[i : i + 3]
    i += 3
    tgid, tid, length, ifindex, xmit_rc, reason, every, max_per_s = f[i : i + 8]
    i += 8
    cpu = tuple(f[i : i + n])
    i += n
    queue, gso_segs, protocol, dport, end, free_kind, syscall, flags, comm, dev = f[i : i + 10]
    if end >= len(END_KINDS) or free_kind >= len(FREE_KINDS) or syscall >= len(SYSCALLS):
        raise DecodeError(f"record with unknown end/free/syscall code {end}/{free_kind}/{syscall}")
    return RawRecord(
        skbaddr=f[0],
        first_ns=f[1],
        ts=ts,
        sys_exit_ns=sys_exit_ns,
        txq_state=txq_state,
        location=location,
        tgid=tgid,
        tid=tid,
        len=length,
        ifindex=ifindex,
        xmit_rc=xmit_rc,
        drop_reason=reason,
        sample_every=every,
        sample_max_per_s=max_per_s,
        cpu=cpu,
        queue=queue,
        gso_segs=gso_segs,
        protocol=protocol,
        dport=dport,
        end=end,
        free_kind=free_kind,
        syscall=syscall,
        flags=flags,
        comm=c_string(comm),
        dev=c_string(dev),
    )


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


def to_packet_trace(
    rec: RawRecord,
    *,
    sys_exit_ns: int | None = None,
    drop_reasons: Mapping[int, str] | None = None,
    resolve_location: Callable[[int], str | None] | None = None,
    ifindex_of: Callable[[str], int | None] | None = None,
    name_of: Callable[[int], str | None] | None = None,
    end: str | None = None,
) -> PacketTrace:
    """The snapshot form of a record. ``sys_exit_ns`` comes from a separate ExitRecord when the
    syscall returned after the record was sent; ``end`` overrides the record's own end kind
    (user-space aging reads live tracks from the map)."""
    stages = {name: t for name, t in zip(STAGE_ORDER, rec.ts, strict=True) if t}
    cpus = {name: c for name, c, t in zip(STAGE_ORDER, rec.cpu, rec.ts, strict=True) if t}
    dev = rec.dev
    ifindex = rec.ifindex
    if not dev and ifindex and name_of is not None:
        dev = name_of(ifindex) or ""
    if not ifindex and dev and ifindex_of is not None:
        ifindex = ifindex_of(dev) or 0
    reason: str | None = None
    if rec.flags & F_REASON:
        reason = (drop_reasons or {}).get(rec.drop_reason, str(rec.drop_reason))
    location: str | None = None
    if rec.location:
        location = resolve_location(rec.location) if resolve_location else None
        location = location or f"0x{rec.location:x}"
    tied = rec.syscall != 0
    return PacketTrace(
        pid=rec.tgid if tied else 0,
        tid=rec.tid if tied else 0,
        comm=rec.comm if tied else "",
        dev=dev,
        ifindex=ifindex,
        queue=rec.queue if rec.flags & F_QUEUE else None,
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
        syscall=SYSCALLS[rec.syscall],
        syscall_exit_ns=(rec.sys_exit_ns or sys_exit_ns or None) if tied else None,
        dport=rec.dport or None,
        sample_every=rec.sample_every or None,
        sample_max_per_s=rec.sample_max_per_s,
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
