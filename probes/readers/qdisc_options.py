"""Qdisc parameters (the limit that decides when a qdisc drops) from an RTM_GETQDISC dump.

The per-tick qdisc reader (qdisc.py) keeps the counters; this one, run only when the
configuration is read, decodes each qdisc's TCA_OPTIONS (net/sched/sch_*.c ``*_dump``) for the
kinds whose limit txtop explains: the FIFOs (struct tc_fifo_qopt: the limit in packets, or bytes
for bfifo), pfifo_fast (its limit is the device's txqueuelen), tbf (struct tc_tbf_qopt: limit in
bytes, rate, bucket), htb (direct_qlen), fq_codel, fq, codel, pie, fq_pie (a *_LIMIT attribute,
packets), sfq and netem (their qopt structs). Other kinds keep their name only.

The dump goes over a plain NETLINK_ROUTE socket and is parsed here (``parse_dump``: raw bytes
in, so tests feed captured dumps from tests/data/config/); nothing but GET requests is sent.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass

from txtop.core.config import QdiscConfig
from txtop.core.readings import format_handle, format_parent

NLMSG_HDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
RTM_NEWQDISC = 36
RTM_GETQDISC = 38
TCMSG = struct.Struct("=BxxxiIII")  # family, pad, ifindex, handle, parent, info
NLA_HDR = struct.Struct("=HH")
NLA_TYPE_MASK = 0x3FFF  # without NLA_F_NESTED / NLA_F_NET_BYTEORDER
TCA_KIND = 1
TCA_OPTIONS = 2
MAX_DUMP_BYTES = 64 << 20
# RTMGRP_LINK | RTMGRP_TC: link changes (txqueuelen, MTU, features, up/down) and qdisc changes.
RTMGRP_LINK = 0x1
RTMGRP_TC = 0x8

# Attribute numbers inside TCA_OPTIONS (include/uapi/linux/pkt_sched.h).
TCA_TBF_PARMS, TCA_TBF_RATE64 = 1, 4
TCA_HTB_INIT, TCA_HTB_DIRECT_QLEN = 2, 4
LIMIT_ATTR: Mapping[str, int] = {
    "fq_codel": 2,  # TCA_FQ_CODEL_LIMIT
    "fq": 1,  # TCA_FQ_PLIMIT
    "codel": 2,  # TCA_CODEL_LIMIT
    "pie": 2,  # TCA_PIE_LIMIT
    "fq_pie": 1,  # TCA_FQ_PIE_LIMIT
}
PSCHED_SHIFT = 6  # a psched tick is 64 ns (include/net/pkt_sched.h)


@dataclass(frozen=True, slots=True)
class QdiscOptions:
    """One qdisc of a dump with its decoded parameters."""

    ifindex: int
    handle: int
    parent: int
    config: QdiscConfig


def attrs(data: bytes, offset: int = 0, end: int | None = None) -> Iterator[tuple[int, bytes]]:
    """(type, payload) of each netlink attribute in ``data[offset:end]`` (4-byte aligned)."""
    end = len(data) if end is None else end
    while offset + NLA_HDR.size <= end:
        length, kind = NLA_HDR.unpack_from(data, offset)
        if length < NLA_HDR.size or offset + length > end:
            raise ValueError(f"bad netlink attribute length {length} at {offset}")
        yield kind & NLA_TYPE_MASK, data[offset + NLA_HDR.size : offset + length]
        offset += (length + 3) & ~3


def _u32(payload: bytes, offset: int = 0) -> int | None:
    return struct.unpack_from("=I", payload, offset)[0] if len(payload) >= offset + 4 else None


def _rate(bytes_per_s: int) -> str:
    bits = bytes_per_s * 8
    for unit, div in (("Gbit", 10**9), ("Mbit", 10**6), ("Kbit", 10**3)):
        if bits >= div:
            value = bits / div
            return f"{value:.0f}{unit}" if value == int(value) else f"{value:.1f}{unit}"
    return f"{bits}bit"


def decode_options(kind: str, options: bytes | None, txqueuelen: int | None = None) -> QdiscConfig:
    """The limit and a summary of ``kind``'s TCA_OPTIONS payload (handle/parent left empty:
    ``parse_dump`` fills them). An unknown kind or absent options give the kind alone."""
    raw = options or b""
    limit: int | None = None
    unit = ""
    params = ""
    if kind in ("pfifo", "pfifo_head_drop", "bfifo") and len(raw) >= 4:
        limit = _u32(raw)
        unit = "bytes" if kind == "bfifo" else "packets"
        params = f"limit {limit}{'b' if kind == 'bfifo' else 'p'}"
    elif kind == "pfifo_fast":
        limit, unit = txqueuelen, "packets" if txqueuelen is not None else ""
        params = "limit = txqueuelen" + (f" ({txqueuelen}p)" if txqueuelen is not None else "")
    elif kind == "tbf":
        found = dict(attrs(raw))
        parms = found.get(TCA_TBF_PARMS, b"")
        if len(parms) >= 36:
            rate = _u32(parms, 8) or 0
            rate64 = found.get(TCA_TBF_RATE64)
            if rate64 is not None and len(rate64) >= 8:
                rate = struct.unpack_from("=Q", rate64)[0]
            limit, unit = _u32(parms, 24), "bytes"
            buffer_ns = (_u32(parms, 28) or 0) << PSCHED_SHIFT
            burst = buffer_ns * rate // 10**9
            params = f"rate {_rate(rate)} burst {burst}b limit {limit}b"
    elif kind == "htb":
        found = dict(attrs(raw))
        qlen = _u32(found.get(TCA_HTB_DIRECT_QLEN, b""))
        init = found.get(TCA_HTB_INIT, b"")
        default = _u32(init, 8) if len(init) >= 12 else None
        parts = [f"default {default:#x}" if default is not None else "", ""]
        parts[1] = f"direct_qlen {qlen}" if qlen is not None else ""
        params = " ".join(p for p in parts if p)
    elif kind in LIMIT_ATTR:
        found = dict(attrs(raw))
        limit = _u32(found.get(LIMIT_ATTR[kind], b""))
        unit = "packets" if limit is not None else ""
        params = f"limit {limit}p" if limit is not None else ""
    elif kind == "sfq" and len(raw) >= 12:
        limit, unit = _u32(raw, 8), "packets"
        params = f"limit {limit}p"
    elif kind == "netem" and len(raw) >= 8:
        limit, unit = _u32(raw, 4), "packets"
        params = f"limit {limit}"
    return QdiscConfig(kind=kind, handle="", parent="", limit=limit, limit_unit=unit, params=params)


def messages(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(type, body) of each netlink message in ``data``."""
    offset = 0
    while offset + NLMSG_HDR.size <= len(data):
        length, kind, _, _, _ = NLMSG_HDR.unpack_from(data, offset)
        if length < NLMSG_HDR.size or offset + length > len(data):
            raise ValueError(f"bad netlink message length {length} at {offset}")
        yield kind, data[offset + NLMSG_HDR.size : offset + length]
        offset += (length + 3) & ~3
    if len(data) - offset >= 4:
        raise ValueError(f"truncated netlink message at {offset}")


def parse_dump(data: bytes, txqueuelen: Mapping[int, int] | None = None) -> list[QdiscOptions]:
    """Every RTM_NEWQDISC in a dump, with its options decoded. ``txqueuelen`` (ifindex ->
    packets) gives pfifo_fast its limit. Raises ValueError on malformed data."""
    out = []
    for kind, body in messages(data):
        if kind == NLMSG_ERROR:
            (err,) = struct.unpack_from("=i", body) if len(body) >= 4 else (0,)
            if err:
                raise OSError(-err, os.strerror(-err))
            continue
        if kind != RTM_NEWQDISC or len(body) < TCMSG.size:
            continue
        _, ifindex, handle, parent, _ = TCMSG.unpack_from(body)
        found: dict[int, bytes] = {}
        for attr, payload in attrs(body, TCMSG.size):
            found.setdefault(attr, payload)
        name = found.get(TCA_KIND, b"").split(b"\0", 1)[0].decode("ascii", "replace")
        if not name:
            continue
        config = decode_options(name, found.get(TCA_OPTIONS), (txqueuelen or {}).get(ifindex))
        handle &= 0xFFFFFFFF
        parent &= 0xFFFFFFFF
        config = QdiscConfig(
            kind=config.kind,
            handle=format_handle(handle),
            parent=format_parent(parent),
            limit=config.limit,
            limit_unit=config.limit_unit,
            params=config.params,
        )
        out.append(QdiscOptions(ifindex, handle, parent, config))
    return out


# ---- thin I/O ---------------------------------------------------------------------------------


def dump_request(seq: int = 1) -> bytes:
    body = TCMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
    return (
        NLMSG_HDR.pack(NLMSG_HDR.size + len(body), RTM_GETQDISC, NLM_F_REQUEST | NLM_F_DUMP, seq, 0)
        + body
    )


def dump_qdiscs(timeout_s: float = 2.0) -> bytes:
    """The raw RTM_GETQDISC dump of this network namespace (every message up to NLMSG_DONE)."""
    with socket.socket(
        socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE
    ) as sock:
        sock.settimeout(timeout_s)
        sock.bind((0, 0))
        sock.send(dump_request())
        chunks = []
        total = 0
        while True:
            data = sock.recv(1 << 16)
            if not data:
                break
            chunks.append(data)
            total += len(data)
            if total > MAX_DUMP_BYTES:
                raise ValueError("qdisc dump larger than 64 MiB")
            if any(kind in (NLMSG_DONE, NLMSG_ERROR) for kind, _ in messages(data)):
                break
        return b"".join(chunks)


def _concerns(data: bytes, ifindexes: Collection[int] | None) -> bool:
    try:
        for _, body in messages(data):
            if ifindexes is None or (
                len(body) >= 8 and struct.unpack_from("=i", body, 4)[0] in ifindexes
            ):
                return True
    except ValueError:
        return True
    return False


class ChangeWatch:
    """A NETLINK_ROUTE socket subscribed to link and qdisc changes, polled without blocking:
    ``changed()`` says whether any notification arrived since the last call. When it cannot
    be opened (no permission, an odd sandbox) ``changed()`` is always False and ``problem``
    says why: the slow periodic re-read still picks changes up."""

    def __init__(self) -> None:
        self.problem = ""
        self._sock: socket.socket | None = None
        try:
            sock = socket.socket(
                socket.AF_NETLINK,
                socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
                socket.NETLINK_ROUTE,
            )
            sock.bind((0, RTMGRP_LINK | RTMGRP_TC))
        except OSError as exc:
            self.problem = f"no netlink change events: {exc}"
            return
        self._sock = sock

    def changed(self, ifindexes: Collection[int] | None = None) -> bool:
        """Whether a notification arrived since the last call: about one of ``ifindexes``
        (None: any device). Link and qdisc messages both carry the ifindex at offset 4."""
        sock = self._sock
        if sock is None:
            return False
        seen = False
        for _ in range(10_000):  # bounded: a storm of events must not hold the tick
            try:
                data = sock.recv(1 << 16)
            except BlockingIOError:
                break
            except OSError:  # ENOBUFS: some were missed; assume one was ours
                return True
            if not data:
                break
            if not seen:
                seen = _concerns(data, ifindexes)
        return seen

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
