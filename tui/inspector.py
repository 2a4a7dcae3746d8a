"""The packet inspector: every stage of one sampled packet, with all the decoded fields: its
sender (owner, how it was found, cgroup) and its flow (addresses, ports, protocol, TCP flags,
VLAN, tunnel), read from the packet's own headers.

``inspect_packet`` is pure (tested without a screen); ``InspectorScreen`` only lays it out.
"""

from __future__ import annotations

import errno
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rich import box
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from txtop.core.filters import PROTOCOLS
from txtop.core.model import STAGES, PacketTrace
from txtop.core.text import format_ns

from .waterfall.bars import interval_name
from .waterfall.endings import SEGMENTED_TEXT, segmented_at_qdisc
from .waterfall.flows import flow_forms, owner_line, owner_text, proto_name, tcp_flags_text

TRACEPOINTS = {
    # The send syscall's own tracepoint is named per packet (syscall_tracepoint); a packet
    # tied to no syscall shows the ones txtop attaches.
    "sendto": "syscalls:sys_enter_sendto|sendmsg|sendmmsg",
    "dev_queue": "net:net_dev_queue",
    "qdisc_enqueue": "qdisc:qdisc_enqueue",
    "qdisc_dequeue": "qdisc:qdisc_dequeue",
    "start_xmit": "net:net_dev_start_xmit",
    "xmit": "net:net_dev_xmit",
    "free": "skb:consume_skb / skb:kfree_skb",
}
ETHERTYPES = {v: k for k, (f, v) in PROTOCOLS.items() if f == "eth"}
IP_PROTOCOLS = {v: k for k, (f, v) in PROTOCOLS.items() if f == "l4"}
# include/linux/netdevice.h: enum netdev_queue_state_t bit numbers.
TXQ_STATE_BITS = ("DRV_XOFF", "STACK_XOFF", "FROZEN")
# ndo_start_xmit return codes (netdev_tx_t) and the qdisc-layer NET_XMIT_* values.
XMIT_RC = {0x00: "NETDEV_TX_OK", 0x10: "NETDEV_TX_BUSY", 0x01: "NET_XMIT_DROP", 0x02: "NET_XMIT_CN"}


def _track_meaning(packet: PacketTrace) -> str:
    if segmented_at_qdisc(packet):
        return SEGMENTED_TEXT
    if packet.track == "complete" and "free" not in packet.stages and "xmit" in packet.stages:
        return TRACK_MEANING["handed_on"]
    return TRACK_MEANING.get(packet.track, "")


TRACK_MEANING = {
    "complete": "every stage up to the free was seen for this skb",
    # On devices without TX completion (veth, lo) the track ends when the driver hands the
    # skb on at net_dev_xmit; the free happens on the receiving side and is not this packet's.
    "handed_on": "every stage up to the hand-off was seen; this device has no TX completion "
    "(the skb went on to the receiver at xmit)",
    "lost": "the skb was replaced before its next stage (software GSO segments or a copy); "
    "later stages are not shown because they belong to other skbs",
    "aged": "no further stage was seen before the tracer gave up on it "
    "(still queued, or freed where no probe fires)",
}


def format_wall(wall_s: float, digits: int = 6) -> str:
    """Local wall-clock time of day with ``digits`` fractional second digits."""
    whole = int(wall_s // 1)
    frac = int(round((wall_s - whole) * 10**digits))
    if frac >= 10**digits:  # rounding carried into the next second
        whole, frac = whole + 1, 0
    clock = time.strftime("%H:%M:%S", time.localtime(whole))
    return f"{clock}.{frac:0{digits}d}" if digits else clock


def describe_txq_state(state: int | None) -> str:
    if state is None:
        return "not seen (no qdisc_dequeue)"
    names = [n for i, n in enumerate(TXQ_STATE_BITS) if state & (1 << i)]
    return f"{state:#x} " + ("(" + " ".join(names) + ")" if names else "(running)")


def describe_xmit_rc(rc: int | None) -> str:
    if rc is None:
        return "not seen (no net_dev_xmit)"
    if rc < 0:
        return f"{rc} ({errno.errorcode.get(-rc, 'errno')})"
    return f"{rc:#x} ({XMIT_RC.get(rc, 'driver-specific')})"


def describe_completion(has_bql: bool | None) -> str:
    if has_bql is True:
        return (
            "free = the driver freeing the skb after the NIC reported it sent "
            "(TX completion; may be deferred and batched)"
        )
    if has_bql is False:
        return (
            "device without BQL (a software device such as veth or lo): net_dev_xmit hands "
            "the skb on and 'free' is the receiver freeing it"
        )
    return "free = TX completion on a real NIC; on veth/lo the receiver freeing the skb"


@dataclass(frozen=True, slots=True)
class StageRow:
    stage: str
    tracepoint: str
    seen: bool
    mono_ns: int | None = None
    wall: str = ""
    cpu: int | None = None
    delta_prev_ns: int | None = None
    interval: str = ""  # name of the interval that ends here ("gap" when stages were skipped)
    delta_origin_ns: int | None = None


@dataclass(frozen=True, slots=True)
class Inspection:
    title: str
    origin: str  # "syscall" or the first stage's name: what delta_origin_ns counts from
    stages: tuple[StageRow, ...]
    fields: tuple[tuple[str, str], ...]


def inspect_packet(
    packet: PacketTrace,
    wall_offset_s: float,
    has_bql: bool | None = None,
    ascii: bool = False,
    hooks: Mapping[str, str] | None = None,
) -> Inspection:
    """Decode one packet. ``wall_offset_s``: wall time minus CLOCK_MONOTONIC, in seconds.
    ``hooks``: the probes' hook forms (ProbeStatus.hooks): with the raw raw_syscalls:sys_enter
    the send stage comes from it, and without sys_exit the send's end from
    sock:sock_send_length (empty: a recording, or probes that do not say)."""
    hooks = hooks or {}
    stages = packet.stages
    origin_ns = stages.get("sendto", packet.first_ns)
    origin = "syscall" if "sendto" in stages else f"first stage ({_first_stage(packet)})"
    rows: list[StageRow] = []
    prev: tuple[str, int] | None = None
    for stage in STAGES:
        tracepoint = TRACEPOINTS[stage]
        if stage == "sendto":
            tracepoint = syscall_tracepoint(packet, hooks)
        elif stage == "free" and packet.free_kind in ("consume", "drop"):
            tracepoint = "skb:kfree_skb" if packet.free_kind == "drop" else "skb:consume_skb"
        t = stages.get(stage)
        if t is None:
            rows.append(StageRow(stage, tracepoint, seen=False))
            continue
        interval = ""
        delta_prev = None
        if prev is not None:
            delta_prev = t - prev[1]
            interval = interval_name(prev[0], stage)
            if stage == "free" and packet.free_kind == "drop":
                interval = "drop" if interval == "gap" else f"{interval}, drop"
        rows.append(
            StageRow(
                stage,
                tracepoint,
                seen=True,
                mono_ns=t,
                wall=format_wall(t / 1e9 + wall_offset_s),
                cpu=packet.cpus.get(stage),
                delta_prev_ns=delta_prev,
                interval=interval,
                delta_origin_ns=t - origin_ns,
            )
        )
        prev = (stage, t)

    who = owner_text(packet)
    queue = "?" if packet.queue is None else str(packet.queue)
    fields: list[tuple[str, str]] = [
        ("sender", owner_line(packet.owner, packet)),
        *_cgroup(packet),
        *_flow_fields(packet),
        ("device", f"{packet.dev} (ifindex {packet.ifindex}), TX queue {queue}"),
        ("length", f"{packet.len} bytes" + _gso(packet)),
        ("protocol", _protocol(packet)),
        ("track", f"{packet.track}: {_track_meaning(packet)}"),
        ("total", _total(packet, ascii)),
        ("txq_state", describe_txq_state(packet.txq_state)),
        ("xmit rc", describe_xmit_rc(packet.xmit_rc)),
        ("free", _free(packet)),
        ("drop reason", packet.drop_reason or ("-" if packet.free_kind != "drop" else "unknown")),
        ("free location", packet.free_location or "-"),
        ("completion", describe_completion(has_bql)),
        ("sampling", _sampling(packet)),
    ]
    if packet.syscall_exit_ns is not None and "sendto" in stages:
        returned = format_ns(packet.syscall_exit_ns - stages["sendto"], ascii)
        name = packet.syscall or "?"
        if RAW_EXIT not in hooks and RAW_SEND_END in hooks:  # txtop.bpf.c TXTOP_EXIT_AT_SEND
            said = f"{name}() left the socket layer after {returned} ({RAW_SEND_END})"
        else:
            said = f"{name}() returned after {returned}"
        fields.insert(1, ("syscall", said))
    elif packet.syscall:
        fields.insert(1, ("syscall", f"{packet.syscall}()"))
    title = f"{who} {packet.dev}:{queue} {packet.len} bytes"
    return Inspection(title=title, origin=origin, stages=tuple(rows), fields=tuple(fields))


RAW_ENTER, RAW_EXIT = "raw_syscalls:sys_enter", "raw_syscalls:sys_exit"
RAW_SEND_END = "sock:sock_send_length"


def syscall_tracepoint(packet: PacketTrace, hooks: Mapping[str, str] | None = None) -> str:
    """The tracepoint of the packet's send syscall (``syscalls:sys_enter_sendto``, ...), or
    ``raw_syscalls:sys_enter (sendto)`` where the probes use the raw entry for all three."""
    if hooks and RAW_ENTER in hooks:
        return f"{RAW_ENTER} ({packet.syscall or 'sendto|sendmsg|sendmmsg'})"
    if packet.syscall:
        return f"syscalls:sys_enter_{packet.syscall}"
    return TRACEPOINTS["sendto"]


def _first_stage(packet: PacketTrace) -> str:
    return next((s for s in STAGES if s in packet.stages), "-")


def _cgroup(packet: PacketTrace) -> list[tuple[str, str]]:
    owner = packet.owner
    if owner is None or owner.via == "kernel":
        return []
    if owner.cgroup:
        return [("cgroup", owner.cgroup)]
    if owner.cgroup_id:
        return [("cgroup", f"id {owner.cgroup_id} (no cgroup v2 path found)")]
    return []


def _flow_fields(packet: PacketTrace) -> list[tuple[str, str]]:
    """The flow as read from the packet's headers at net_dev_queue."""
    flow = packet.flow
    if flow is None:
        return [("flow", "headers not read (identity unavailable, or an older recording)")]
    out = [("flow", next(flow_forms(flow)))]
    if flow.saddr is not None:
        out.append(("addresses", f"{flow.saddr} -> {flow.daddr} ({flow.l3})"))
    if flow.sport is not None or flow.dport is not None:
        out.append(("ports", f"{flow.sport} -> {flow.dport} ({proto_name(flow.l4_proto)})"))
    if flow.icmp_type is not None:
        icmp = f"type {flow.icmp_type} code {flow.icmp_code}"
        out.append(("icmp", f"{proto_name(flow.l4_proto)} {icmp}"))
    if flow.tcp_flags is not None:
        named = tcp_flags_text(flow.tcp_flags, long=True) or "none"
        out.append(("tcp flags", f"{named} ({flow.tcp_flags:#04x})"))
    if flow.vlan is not None:
        out.append(("vlan", f"802.1Q VLAN {flow.vlan}"))
    if flow.fragment:
        out.append(("fragment", "an IP fragment after the first: no L4 header, no ports"))
    if flow.encap:
        out.append(("tunnel", "these are the outer headers of an encapsulated packet"))
    return out


def _gso(packet: PacketTrace) -> str:
    if packet.gso_segs > 1:
        return f", GSO super-packet of {packet.gso_segs} segments"
    if packet.gso_segs == 0 and "start_xmit" not in packet.stages:
        return ", segments unknown (never reached start_xmit)"
    return ""


def _protocol(packet: PacketTrace) -> str:
    parts = []
    if packet.protocol is not None:
        parts.append(ETHERTYPES.get(packet.protocol, f"ethertype {packet.protocol:#06x}"))
    if packet.l4_proto is not None:
        parts.append(IP_PROTOCOLS.get(packet.l4_proto, f"IP protocol {packet.l4_proto}"))
    if packet.sport is not None or packet.dport is not None:
        parts.append(f"port {packet.sport if packet.sport is not None else '?'}")
        parts.append(f"-> {packet.dport if packet.dport is not None else '?'}")
    return " ".join(parts) or "unknown"


def _total(packet: PacketTrace, ascii: bool) -> str:
    if len(packet.stages) < 2:
        return "-"
    span: str = format_ns(packet.total_ns, ascii)
    if packet.track != "complete":
        return f"at least {span} (track {packet.track})"
    return span


def _free(packet: PacketTrace) -> str:
    if packet.free_kind is None:
        return "not seen"
    if packet.free_kind == "drop":
        return "drop (skb:kfree_skb)"
    return f"{packet.free_kind} (skb:consume_skb)"


def _sampling(packet: PacketTrace) -> str:
    if packet.sample_every is None and packet.sample_max_per_s is None:
        return "not recorded"
    every = f"1 packet in {packet.sample_every}" if packet.sample_every else "every packet"
    cap = f", at most {packet.sample_max_per_s}/s" if packet.sample_max_per_s else ""
    return every + cap


def stage_table(inspection: Inspection, ascii: bool = False, wide: bool = True) -> Table:
    """The stage rows; ``wide`` adds the tracepoint column (needs about 110 columns)."""
    table = Table(
        box=box.ASCII if ascii else box.SIMPLE_HEAD,
        expand=False,
        pad_edge=False,
        show_edge=False,
    )
    columns = [("stage", "left"), ("tracepoint", "left")] if wide else [("stage", "left")]
    columns += [
        ("time", "left"),
        ("CPU", "right"),
        ("+prev", "right"),
        ("interval", "left"),
        (f"+{inspection.origin.split(' ')[0]}", "right"),
    ]
    for header, justify in columns:
        table.add_column(header, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for row in inspection.stages:
        lead = [row.stage, row.tracepoint] if wide else [row.stage]
        if not row.seen:
            table.add_row(*lead, Text("not observed", style="dim"))
            continue
        table.add_row(
            *lead,
            row.wall,
            "-" if row.cpu is None else str(row.cpu),
            "" if row.delta_prev_ns is None else format_ns(row.delta_prev_ns, ascii),
            row.interval,
            format_ns(row.delta_origin_ns or 0, ascii),
        )
    return table


def field_table(inspection: Inspection, ascii: bool = False) -> Table:
    table = Table(box=None, show_header=False, pad_edge=False, expand=False)
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value")
    for name, value in inspection.fields:
        table.add_row(name, value)
    return table


class InspectorScreen(ModalScreen[None]):
    """Shows one packet; up/down step to the newer/older packet of the list it came from."""

    DEFAULT_CSS = """
    InspectorScreen {
        align: center middle;
    }
    InspectorScreen > Vertical {
        width: 96%;
        max-width: 130;
        height: 90%;
        border: round $primary;
        background: $surface;
        padding: 0 1;
    }
    InspectorScreen #inspector-title {
        text-style: bold;
        width: 1fr;
    }
    InspectorScreen #inspector-hint {
        color: $text-muted;
    }
    """
    BINDINGS = [
        Binding("escape", "close", "Close"),
        Binding("enter", "close", "Close", show=False),
        Binding("up", "step(-1)", "Newer", show=False),
        Binding("down", "step(1)", "Older", show=False),
        Binding("pageup", "scroll(-1)", "Scroll up", show=False),
        Binding("pagedown", "scroll(1)", "Scroll down", show=False),
    ]

    def __init__(
        self,
        packets: Sequence[tuple[PacketTrace, float]],
        index: int,
        has_bql: dict[str, bool] | None = None,
        ascii: bool = False,
        hooks: Mapping[str, str] | None = None,
    ) -> None:
        """``packets``: (packet, wall_offset_s) newest first; ``has_bql``: per device name;
        ``hooks``: the probes' hook forms (ProbeStatus.hooks), to name the real tracepoints."""
        super().__init__()
        self._packets = packets
        self._index = index
        self._has_bql = has_bql or {}
        self._ascii = ascii
        self._hooks = hooks or {}

    @property
    def packet(self) -> PacketTrace:
        return self._packets[self._index][0]

    @property
    def inspection(self) -> Inspection:
        packet, offset = self._packets[self._index]
        return inspect_packet(
            packet, offset, self._has_bql.get(packet.dev), self._ascii, hooks=self._hooks
        )

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("", id="inspector-title")
            with VerticalScroll():
                yield Static("", id="inspector-stages")
                yield Static("", id="inspector-fields")
            yield Label(
                "Esc/Enter close   up/down newer/older packet   PgUp/PgDn scroll",
                id="inspector-hint",
                markup=False,
            )

    def on_mount(self) -> None:
        self._show()

    def _show(self) -> None:
        ins = self.inspection
        n = len(self._packets)
        self.query_one("#inspector-title", Label).update(
            Text(f"Packet {self._index + 1}/{n} (1 = newest): {ins.title}")
        )
        wide = self.app.size.width >= 110
        self.query_one("#inspector-stages", Static).update(stage_table(ins, self._ascii, wide))
        self.query_one("#inspector-fields", Static).update(field_table(ins, self._ascii))

    def on_resize(self) -> None:
        self._show()

    def action_step(self, delta: int) -> None:
        index = self._index + delta
        if 0 <= index < len(self._packets):
            self._index = index
            self._show()

    def action_scroll(self, direction: int) -> None:
        body = self.query_one(VerticalScroll)
        if direction > 0:
            body.scroll_page_down(animate=False)
        else:
            body.scroll_page_up(animate=False)

    def action_close(self) -> None:
        self.dismiss(None)
