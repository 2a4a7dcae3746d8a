"""Qdiscs over rtnetlink (RTM_GETQDISC dump via pyroute2; never the ``tc`` binary).

The kernel fills each RTM_NEWQDISC message in net/sched/sch_api.c tc_fill_qdisc: TCA_KIND, then
TCA_STATS2 (gnet_stats_copy_basic -> TCA_STATS_BASIC {bytes, packets}, gnet_stats_copy_queue ->
TCA_STATS_QUEUE {qlen, backlog, drops, requeues, overlimits}) and the legacy TCA_STATS
(struct tc_stats) for old readers. ``backlog`` is bytes; ``qlen`` is the packet backlog (tc prints
"backlog <backlog>b <qlen>p").

The decoded ``QdiscInfo`` is a core type (core/readings.py); which qdisc serves which TX queue
is decided in the pure merge (core/merge.py ``map_qdiscs_to_queues``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from txtop.core.readings import QdiscInfo


def _attrs(msg: Any) -> dict[str, Any]:
    """First value of each attribute of a pyroute2 nla (or its dict form), by name."""
    out: dict[str, Any] = {}
    raw = msg.get("attrs") if isinstance(msg, dict) else None
    if not isinstance(raw, (list, tuple)):
        return out
    for item in raw:
        if isinstance(item, (list, tuple)) and len(item) >= 2 and isinstance(item[0], str):
            out.setdefault(item[0], item[1])
        elif isinstance(getattr(item, "cell", None), tuple):  # pyroute2's lazy nla_slot
            name = item.name
            if isinstance(name, str) and name not in out:
                out[name] = item.value
    return out


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"qdisc message: {what} is not a non-negative integer: {value!r}")
    return value


def _field(nla: Any, name: str, what: str) -> int:
    try:
        value = nla.get(name) if hasattr(nla, "get") else None
    except (TypeError, AttributeError):
        value = None
    if value is None:
        raise ValueError(f"qdisc message: {what}.{name} missing")
    return _int(value, f"{what}.{name}")


def decode_qdisc(msg: Any) -> QdiscInfo:
    """One pyroute2 tcmsg (or the same structure as plain dicts) -> QdiscInfo.

    Stats come from TCA_STATS2 (TCA_STATS_BASIC + TCA_STATS_QUEUE); when either part is
    absent the legacy TCA_STATS supplies it (it has no requeue counter: 0 then).
    Raises ValueError when the message lacks what a qdisc dump always carries.
    """
    try:
        ifindex = _int(msg.get("index"), "index")
        handle = _int(msg.get("handle"), "handle") & 0xFFFFFFFF
        parent = _int(msg.get("parent"), "parent") & 0xFFFFFFFF
    except AttributeError:
        raise ValueError("qdisc message: not a tcmsg") from None
    attrs = _attrs(msg)
    kind = attrs.get("TCA_KIND")
    if not isinstance(kind, str) or not kind:
        raise ValueError("qdisc message: no TCA_KIND")
    stats2 = _attrs(attrs["TCA_STATS2"]) if attrs.get("TCA_STATS2") is not None else {}
    basic = stats2.get("TCA_STATS_BASIC")
    queue = stats2.get("TCA_STATS_QUEUE")
    legacy = attrs.get("TCA_STATS")
    if basic is not None:
        nbytes = _field(basic, "bytes", "TCA_STATS_BASIC")
        packets = _field(basic, "packets", "TCA_STATS_BASIC")
    elif legacy is not None:
        nbytes = _field(legacy, "bytes", "TCA_STATS")
        packets = _field(legacy, "packets", "TCA_STATS")
    else:
        raise ValueError(f"qdisc message: {kind} has no byte/packet counters")
    if queue is not None:
        qlen = _field(queue, "qlen", "TCA_STATS_QUEUE")
        backlog = _field(queue, "backlog", "TCA_STATS_QUEUE")
        drops = _field(queue, "drops", "TCA_STATS_QUEUE")
        requeues = _field(queue, "requeues", "TCA_STATS_QUEUE")
        overlimits = _field(queue, "overlimits", "TCA_STATS_QUEUE")
    elif legacy is not None:
        qlen = _field(legacy, "qlen", "TCA_STATS")
        backlog = _field(legacy, "backlog", "TCA_STATS")
        drops = _field(legacy, "drop", "TCA_STATS")
        requeues = 0
        overlimits = _field(legacy, "overlimits", "TCA_STATS")
    else:
        raise ValueError(f"qdisc message: {kind} has no queue counters")
    return QdiscInfo(
        ifindex, kind, handle, parent, qlen, backlog, drops, requeues, overlimits, nbytes, packets
    )


def decode_qdiscs(msgs: Iterable[Any], errors: list[str] | None = None) -> list[QdiscInfo]:
    """Decode a whole dump, skipping messages that are not RTM_NEWQDISC (errors, done).

    A malformed message raises ValueError, unless ``errors`` is given: then it is skipped and
    its reason appended there (one odd qdisc must not blank every device's qdisc rows).
    """
    out = []
    for msg in msgs:
        event = msg.get("event") if hasattr(msg, "get") else None
        if event is not None and event != "RTM_NEWQDISC":
            continue
        try:
            out.append(decode_qdisc(msg))
        except ValueError as exc:
            if errors is None:
                raise
            errors.append(str(exc))
    return out


def parse_qdisc_messages(data: bytes, errors: list[str] | None = None) -> list[QdiscInfo]:
    """Raw rtnetlink bytes (RTM_NEWQDISC messages back to back, as a dump delivers them)
    parsed with pyroute2's rtnetlink marshal, the same code the live socket uses.

    The only exception is ValueError: pyroute2 lets struct.error and its own decode errors
    escape on damaged input, and those are translated here. ``errors`` as in decode_qdiscs.
    """
    from pyroute2.netlink.rtnl.marshal import MarshalRtnl  # lazy, like the reader

    try:
        msgs = list(MarshalRtnl().parse(bytes(data)))
    except Exception as exc:  # third-party parser on untrusted bytes: any failure = malformed
        raise ValueError(f"undecodable netlink data: {type(exc).__name__}: {exc}") from None
    return decode_qdiscs(msgs, errors)


# ---- thin reader ------------------------------------------------------------------------------


class QdiscReader:
    """Dumps every qdisc of this network namespace, once per call, over one netlink socket.

    The socket is opened on first use (on the collector's worker thread) and kept open.
    Messages that do not decode are skipped; ``problem`` then says how many and why.
    """

    def __init__(self) -> None:
        self._ipr: Any = None
        self._lock = threading.Lock()
        self._closed = False
        self.problem = ""

    def read(self) -> list[QdiscInfo]:
        with self._lock:
            if self._closed:
                raise RuntimeError("qdisc reader is closed")
            if self._ipr is None:
                from pyroute2 import IPRoute  # imported lazily: tests of pure code skip it

                self._ipr = IPRoute()
            msgs = self._dump()
        errors: list[str] = []
        out = decode_qdiscs(msgs, errors)
        self.problem = f"{len(errors)} qdisc message(s) skipped: {errors[0]}" if errors else ""
        return out

    def _dump(self) -> list[Any]:
        from pyroute2.netlink.exceptions import NetlinkDumpInterrupted

        try:
            return list(self._ipr.get_qdiscs())
        except NetlinkDumpInterrupted:  # qdiscs changed during the dump: one clean retry
            return list(self._ipr.get_qdiscs())

    def close(self) -> None:
        with self._lock:
            self._closed = True
            ipr, self._ipr = self._ipr, None
        if ipr is not None:
            ipr.close()
