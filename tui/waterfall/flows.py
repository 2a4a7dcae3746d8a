"""A packet's flow and owner as short text (pure): the waterfall's flow and sender columns, the
inspector and the top-talkers view.

``flow_text`` gives the longest form that fits, from ``10.0.0.1:43512>10.0.0.2:5201 tcp`` down
to ``>:5201 tcp`` (the destination port and protocol: what tells flows apart at 80 columns).
IPv6 addresses are bracketed when a port follows; the outer header of a tunnel ends in ``^``;
a VLAN tag leads (``v100 ``) when there is room. Only ASCII, so ``--ascii`` needs nothing else.
"""

from __future__ import annotations

from collections.abc import Iterator

from txtop.core.filters import PROTOCOLS
from txtop.core.model import FlowInfo, PacketOwner, PacketTrace
from txtop.core.text import fit_text
from txtop.tui.glyphs import UNICODE

IP_PROTOCOLS = {v: k for k, (f, v) in PROTOCOLS.items() if f == "l4"}
TCP_FLAGS = "FSRPAUEC"  # FIN SYN RST PSH ACK URG ECE CWR, bit 0 first
TCP_FLAG_NAMES = ("FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR")


def proto_name(l4: int | None) -> str:
    if l4 is None:
        return "?"
    return IP_PROTOCOLS.get(l4, str(l4))


def tcp_flags_text(flags: int | None, long: bool = False) -> str:
    """``SA`` (or ``SYN ACK``) for the set bits; "" for none."""
    if flags is None:
        return ""
    names = TCP_FLAG_NAMES if long else tuple(TCP_FLAGS)
    return (" " if long else "").join(n for i, n in enumerate(names) if flags >> i & 1)


def _host(addr: str | None, port: int | None) -> str:
    if addr is None:
        return "" if port is None else f":{port}"
    if port is None:
        return addr
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def _proto(flow: FlowInfo) -> str:
    if flow.l4_proto is None:
        return flow.l3  # arp, 0x88cc, ...
    text = proto_name(flow.l4_proto)
    if flow.icmp_type is not None:
        text += f"/{flow.icmp_type}"
    elif flow.tcp_flags is not None and flow.tcp_flags & 0x07:  # SYN, FIN, RST stand out
        text += " " + tcp_flags_text(flow.tcp_flags & 0x17)
    if flow.fragment:
        text += " frag"
    return text + ("^" if flow.encap else "")


def flow_forms(flow: FlowInfo) -> Iterator[str]:
    """The flow's text forms, longest first."""
    proto = _proto(flow)
    vlan = f"v{flow.vlan} " if flow.vlan is not None else ""
    if flow.saddr is None and flow.daddr is None:
        yield vlan + proto
        yield proto
        return
    src, dst = _host(flow.saddr, flow.sport), _host(flow.daddr, flow.dport)
    sport = f":{flow.sport}" if flow.sport is not None else ""
    dport = f":{flow.dport}" if flow.dport is not None else ""
    yield f"{vlan}{src}>{dst} {proto}"
    yield f"{src}>{dst} {proto}"
    yield f"{sport}>{dst} {proto}"
    yield f">{dst} {proto}"
    if dport:
        yield f">{dport} {proto}"
    yield proto


def flow_text(flow: FlowInfo | None, width: int, ellipsis: str = UNICODE.ellipsis) -> str:
    """The longest form of ``flow`` that fits ``width`` cells, or the shortest one cut to it;
    "-" when no headers were read. Not padded."""
    if flow is None:
        return "-"
    last = ""
    for form in flow_forms(flow):
        last = form
        if len(form) <= width:
            return form
    return fit_text(last, width, ellipsis=ellipsis)


def owner_text(packet: PacketTrace) -> str:
    """``comm[pid]``, or what stands for no named sender."""
    if packet.pid:
        return f"{packet.comm or '?'}[{packet.pid}]"
    owner = packet.owner
    if owner is not None and owner.via == "kernel":
        return "(kernel)"  # forwarded, kernel-made, or a socket nobody was seen sending on
    return "(not known)"  # identity unavailable: only a syscall tie could have named one


KERNEL_SENDER = "kernel: no socket sender seen (forwarded, kernel-generated or ARP)"


def owner_line(owner: PacketOwner | None, packet: PacketTrace) -> str:
    """The inspector's sender line: who, and how that was found."""
    if owner is None and packet.pid:  # a recording made before owners: the syscall tie
        thread = f", thread {packet.tid}" if packet.tid and packet.tid != packet.pid else ""
        return f"{packet.comm} pid {packet.pid}{thread}"
    if owner is None:
        # Nothing was read that could name a sender: not the same as "the kernel sent it".
        running = f"; {packet.comm} was running on the CPU" if packet.comm else ""
        return (
            "sender not known (no send syscall tied to this skb, and its socket could not "
            "be read: kernel offsets unavailable, or an older recording)" + running
        )
    if owner.via == "kernel":
        return KERNEL_SENDER
    thread = f", thread {owner.tid}" if owner.tid and owner.tid != owner.pid else ""
    how = {
        "syscall": "left inside its send syscall",
        "socket": "the last process seen sending on its socket",
    }.get(owner.via, owner.via)
    return f"{owner.comm} pid {owner.pid}{thread} (via {owner.via}: {how})"
