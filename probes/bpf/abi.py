"""The interface between probes/bpf/txtop.bpf.c and user space, in one place.

Everything the kernel side and the Python side must agree on: the byte layout of the records
and map values user space decodes, the probe ids that index the per-probe loss counters, the
slots of the ``stats`` array, and the index order of the per-stage arrays. decode.py and the
tracer's parts take these constants from here only.

Two checks keep the C file and this module in step:
  - at compile time, ``compile_defines()`` hands every size, field offset and constant below to
    the compiler as ``-D TXTOP_ABI=...``; txtop.bpf.c turns them into ``_Static_assert``s, so a
    layout changed on one side only fails to load (with the name of what differs);
  - tests/test_abi.py parses the C enums and structs and compares them with this module, field
    by field and name by name, without a compiler.

The stage *names* are canonical in ``txtop.core.model.STAGES``; this module only fixes their
index order (enum ST_* in C). The core never imports this module.
"""

from __future__ import annotations

import struct

from txtop.core.model import STAGES, TRACK_KINDS

# ---- stages: index order of txtop_record.ts[] / cpu[] (enum ST_*) ------------------------------

STAGE_ORDER: tuple[str, ...] = STAGES
N_STAGES = len(STAGE_ORDER)
# Unpacking fails at import if model.STAGES gains or loses a stage without this list following.
(
    ST_SENDTO,
    ST_DEV_QUEUE,
    ST_QDISC_ENQUEUE,
    ST_QDISC_DEQUEUE,
    ST_START_XMIT,
    ST_XMIT,
    ST_FREE,
) = range(N_STAGES)

# ---- record codes -----------------------------------------------------------------------------

END_KINDS: tuple[str, ...] = TRACK_KINDS  # enum END_* -> PacketTrace.track
END_COMPLETE, END_AGED, END_LOST = range(len(END_KINDS))
FREE_KINDS = (None, "consume", "drop")  # enum FREE_*
FREE_NONE, FREE_CONSUME, FREE_DROP = range(len(FREE_KINDS))
SYSCALLS = (None, "sendto", "sendmsg", "sendmmsg")  # enum SYS_*
SYS_NONE, SYS_SENDTO, SYS_SENDMSG, SYS_SENDMMSG = range(len(SYSCALLS))

# txtop_record.flags (#define F_* in C)
F_QUEUE = 0x1  # queue, gso_segs, protocol set (net_dev_start_xmit seen)
F_RC = 0x2  # xmit_rc set (net_dev_xmit seen)
F_TXQ_STATE = 0x4  # txq_state set (qdisc_dequeue seen)
F_REASON = 0x8  # drop_reason set (kfree_skb with a reason field)
F_HANDED_ON = 0x10  # the skb went on to another dev_queue (stacked device)
F_QMAP = 0x20  # queue set at net_dev_queue from skb->queue_mapping (before the qdisc)
F_PARKED = 0x40  # the ring refused its record: left in tracks, ended (end), for a retry

# txtop_record.via (enum VIA_*): how the owner fields were found. "" = none recorded (no BTF:
# only a syscall tie can name a sender, and an untied packet's owner is unknown).
VIAS: tuple[str, ...] = ("", "syscall", "socket", "kernel")
VIA_NONE, VIA_SYSCALL, VIA_SOCKET, VIA_KERNEL = range(len(VIAS))

# txtop_record.flow_flags (#define FL_* in C): what the packet headers gave at net_dev_queue
FL_L3 = 0x1  # l3_proto set; with an IP l3, saddr/daddr/l4_proto too
FL_PORTS = 0x2  # sport/dport from a TCP/UDP/UDP-Lite/SCTP header
FL_ICMP = 0x4  # sport/dport hold the ICMP/ICMPv6 type/code
FL_TCP = 0x8  # tcp_flags set
FL_VLAN = 0x10  # vlan holds the 802.1Q TCI
FL_ENCAP = 0x20  # the outer headers of a tunnel
FL_FRAG = 0x40  # an IP fragment without its L4 header
# txtop_flow_filter.l3_mask (#define L3_* in C): network headers the flow filter wants
L3_IPV4, L3_IPV6, L3_ARP, L3_VLAN = 0x1, 0x2, 0x4, 0x8
L3_BITS = {"ipv4": L3_IPV4, "ipv6": L3_IPV6, "arp": L3_ARP, "vlan": L3_VLAN}

# ---- probe ids (enum P_*): index of each probe's ring-buffer loss counter ---------------------

# The names are what the status breakdown calls them ("ringbuf_full:<name>").
PROBE_IDS: tuple[str, ...] = (
    "sys_exit",
    "net_dev_queue",
    "qdisc_enqueue",
    "qdisc_dequeue",
    "net_dev_start_xmit",
    "net_dev_xmit",
    "consume_skb",
    "kfree_skb",
)
N_PROBES = len(PROBE_IDS)
(
    P_SYS_EXIT,
    P_DEV_QUEUE,
    P_QDISC_ENQUEUE,
    P_QDISC_DEQUEUE,
    P_START_XMIT,
    P_XMIT,
    P_CONSUME_SKB,
    P_KFREE_SKB,
) = range(N_PROBES)

# ---- slots of the per-CPU "stats" array (enum S_*) --------------------------------------------

(
    S_SAMPLED,  # tracks started
    S_RATE_LIMITED,  # picked by 1-in-N, refused by the token bucket
    S_EMITTED,  # records submitted to the ring buffer
    S_TRACK_FULL,  # track insert failed
    S_TRACK_LOST,  # address seen again at dev_queue before its free
    S_TRACK_AGED,  # found too old at a later touch
    S_DQL_STALL,  # napi:dql_stall_detected
    S_COUNTER_FULL,  # a per-queue counter map was full
    S_XMIT_PACKETS,  # net_dev_start_xmit runs, all devices (auto duty's packet rate)
    S_NO_FLOW,  # sampled, but its network header could not be read
    S_FLOW_FILTERED,  # refused at the sampling decision by the flow filter
    S_RB_PARKED,  # a record the ring refused, kept in its map for a retry (not a loss)
    S_RB_FULL,  # + probe id: ring-buffer reservation failed in that probe (a loss)
) = range(13)
N_STATS = S_RB_FULL + N_PROBES

# ---- byte layouts (little endian, explicit padding: no implicit padding on either side) ------

# (field, struct format) in C declaration order; names as in the C struct.
RECORD_FIELDS: tuple[tuple[str, str], ...] = (  # struct txtop_record
    ("skbaddr", "Q"),
    ("first_ns", "Q"),
    ("ts", f"{N_STAGES}Q"),
    ("sys_exit_ns", "Q"),
    ("txq_state", "Q"),
    ("location", "Q"),
    ("cgroup_id", "Q"),
    ("owner_ns", "Q"),
    ("tgid", "I"),
    ("tid", "I"),
    ("len", "I"),
    ("ifindex", "i"),
    ("xmit_rc", "i"),
    ("drop_reason", "I"),
    ("sample_every", "I"),
    ("sample_max_per_s", "I"),
    ("saddr", "16s"),  # network order; IPv4 in the first 4 bytes
    ("daddr", "16s"),
    ("cpu", f"{N_STAGES}H"),
    ("queue", "H"),
    ("gso_segs", "H"),
    ("protocol", "H"),
    ("dport", "H"),
    ("sport", "H"),
    ("vlan", "H"),
    ("l3_proto", "H"),
    ("l4_proto", "B"),
    ("tcp_flags", "B"),
    ("end", "B"),
    ("free_kind", "B"),
    ("syscall", "B"),
    ("flags", "B"),
    ("via", "B"),
    ("flow_flags", "B"),
    ("comm", "16s"),  # TASK_COMM_LEN
    ("dev", "16s"),  # IFNAMSIZ
    ("netns", "I"),
)
# A tied send syscall that returned after its packet's record was sent.
EXIT_RECORD_FIELDS: tuple[tuple[str, str], ...] = (  # struct txtop_exit_record
    ("skbaddr", "Q"),
    ("first_ns", "Q"),
    ("sys_exit_ns", "Q"),
    ("tid", "I"),
    ("pad", "4x"),
)
# Map values user space reads as bytes (track reconstruction, probes/bpf/tracks.py).
PENDING_FIELDS: tuple[tuple[str, str], ...] = (  # struct txtop_pending (map sys_pending)
    ("skbaddr", "Q"),
    ("first_ns", "Q"),
    ("exit_ns", "Q"),  # the send ended, its exit record refused by the ring: report it
)
GATE_FIELDS: tuple[tuple[str, str], ...] = (  # struct txtop_gate (map gate)
    ("created", "Q"),
    ("ended", "Q"),
)

LAYOUTS: dict[str, tuple[tuple[str, str], ...]] = {
    "txtop_record": RECORD_FIELDS,
    "txtop_exit_record": EXIT_RECORD_FIELDS,
    "txtop_pending": PENDING_FIELDS,
    "txtop_gate": GATE_FIELDS,
}


def layout(fields: tuple[tuple[str, str], ...]) -> struct.Struct:
    return struct.Struct("<" + "".join(fmt for _, fmt in fields))


def offsets(fields: tuple[tuple[str, str], ...]) -> dict[str, int]:
    """Byte offset of each field (padding included)."""
    out = {}
    fmt = "<"
    for name, f in fields:
        out[name] = struct.calcsize(fmt)
        fmt += f
    return out


# Per-queue counters by slot (raw net_dev_start_xmit): queue q of the device in slot s is entry
# s * SLOT_QUEUES + q of the per-CPU array txq_counts (the device -> slot map is dev_slots).
SLOT_QUEUES = 64

RECORD = layout(RECORD_FIELDS)
RECORD_SIZE = RECORD.size  # 248
EXIT_RECORD = layout(EXIT_RECORD_FIELDS)
EXIT_RECORD_SIZE = EXIT_RECORD.size  # 32
PENDING = layout(PENDING_FIELDS)
GATE = layout(GATE_FIELDS)

# ---- the compile-time check ---------------------------------------------------------------------

# Constants txtop.bpf.c must define with these values (enumerators and #defines alike).
VALUES: dict[str, int] = {
    **{f"ST_{name.upper()}": i for i, name in enumerate(STAGE_ORDER)},
    "N_STAGES": N_STAGES,
    **{f"END_{kind.upper()}": i for i, kind in enumerate(END_KINDS)},
    "FREE_NONE": FREE_NONE,
    "FREE_CONSUME": FREE_CONSUME,
    "FREE_DROP": FREE_DROP,
    "SYS_NONE": SYS_NONE,
    "SYS_SENDTO": SYS_SENDTO,
    "SYS_SENDMSG": SYS_SENDMSG,
    "SYS_SENDMMSG": SYS_SENDMMSG,
    "F_QUEUE": F_QUEUE,
    "F_RC": F_RC,
    "F_TXQ_STATE": F_TXQ_STATE,
    "F_REASON": F_REASON,
    "F_HANDED_ON": F_HANDED_ON,
    "F_QMAP": F_QMAP,
    "F_PARKED": F_PARKED,
    **{f"VIA_{(via or 'none').upper()}": i for i, via in enumerate(VIAS)},
    "FL_L3": FL_L3,
    "FL_PORTS": FL_PORTS,
    "FL_ICMP": FL_ICMP,
    "FL_TCP": FL_TCP,
    "FL_VLAN": FL_VLAN,
    "FL_ENCAP": FL_ENCAP,
    "FL_FRAG": FL_FRAG,
    "L3_IPV4": L3_IPV4,
    "L3_IPV6": L3_IPV6,
    "L3_ARP": L3_ARP,
    "L3_VLAN": L3_VLAN,
    "P_SYS_EXIT": P_SYS_EXIT,
    "P_DEV_QUEUE": P_DEV_QUEUE,
    "P_QDISC_ENQUEUE": P_QDISC_ENQUEUE,
    "P_QDISC_DEQUEUE": P_QDISC_DEQUEUE,
    "P_START_XMIT": P_START_XMIT,
    "P_XMIT": P_XMIT,
    "P_CONSUME_SKB": P_CONSUME_SKB,
    "P_KFREE_SKB": P_KFREE_SKB,
    "N_PROBES": N_PROBES,
    "S_SAMPLED": S_SAMPLED,
    "S_RATE_LIMITED": S_RATE_LIMITED,
    "S_EMITTED": S_EMITTED,
    "S_TRACK_FULL": S_TRACK_FULL,
    "S_TRACK_LOST": S_TRACK_LOST,
    "S_TRACK_AGED": S_TRACK_AGED,
    "S_DQL_STALL": S_DQL_STALL,
    "S_COUNTER_FULL": S_COUNTER_FULL,
    "S_XMIT_PACKETS": S_XMIT_PACKETS,
    "S_NO_FLOW": S_NO_FLOW,
    "S_FLOW_FILTERED": S_FLOW_FILTERED,
    "S_RB_PARKED": S_RB_PARKED,
    "S_RB_FULL": S_RB_FULL,
    "N_STATS": N_STATS,
    "SLOT_QUEUES": SLOT_QUEUES,
}


def compile_defines() -> list[str]:
    """``-D`` options that make txtop.bpf.c assert this module's layouts and constants: one
    define, ``TXTOP_ABI``, a list of TXTOP_ABI_SIZE / _OFFSET / _VALUE(...) the C side expands
    into ``_Static_assert``s (padding fields are covered by the offsets around them)."""
    checks = []
    for struct_name, fields in LAYOUTS.items():
        checks.append(f"TXTOP_ABI_SIZE({struct_name},{layout(fields).size})")
        for field, off in offsets(fields).items():
            if not field.startswith("pad"):
                checks.append(f"TXTOP_ABI_OFFSET({struct_name},{field},{off})")
    checks += [f"TXTOP_ABI_VALUE({name},{value})" for name, value in VALUES.items()]
    return ["TXTOP_ABI=" + " ".join(checks)]
