"""How a packet's track ended, where the stamps alone mislead (pure).

A GSO skb larger than a shaping qdisc's burst is cut up by the qdisc itself: tbf's enqueue
(``tbf_segment``, net/sched/sch_tbf.c) calls ``skb_gso_segment``, enqueues the segments (new
skbs, which txtop does not track) to its child and frees the original with ``consume_skb``.
That skb's track then has ``dev_queue`` (and maybe ``qdisc_enqueue``), no dequeue, no driver
stage, and a consume at a qdisc's segmenting function: "complete", and an all-unseen bar,
unless it is named. netem (``netem_segment``), taprio (``taprio_enqueue_segmented``) and cake
(``cake_enqueue`` splits GSO skbs) do the same.
"""

from __future__ import annotations

from txtop.core.model import PacketTrace

SEGMENTED_TEXT = "segmented at the qdisc (the segments are new skbs; not traced)"
SEGMENTED_MARK = "segmented at qdisc"  # the row's label after its bar

# Functions that free a GSO skb after segmenting it inside a qdisc's enqueue.
SEGMENTING_FUNCTIONS = frozenset(
    {
        "tbf_segment",
        "netem_segment",
        "taprio_enqueue_segmented",
        "cake_enqueue",
        "skb_gso_segment",
        "__skb_gso_segment",
    }
)
# Stages a packet that went through its qdisc as one skb would have reached.
_LATER_STAGES = ("qdisc_dequeue", "start_xmit", "xmit")


def location_symbol(location: str | None) -> str:
    """``tbf_segment`` from ``tbf_segment+0x1c4 [sch_tbf]``; "" for none."""
    if not location:
        return ""
    return location.split("+", 1)[0].split(" ", 1)[0].strip()


def segmented_at_qdisc(packet: PacketTrace) -> bool:
    """True when the qdisc segmented this skb and freed it: it reached the qdisc
    (``dev_queue`` or ``qdisc_enqueue``), never left it as this skb (no dequeue, no driver
    stage), and was consumed (not dropped) at a segmenting function of a qdisc."""
    stages = packet.stages
    if packet.free_kind != "consume" or "free" not in stages:
        return False
    if "dev_queue" not in stages and "qdisc_enqueue" not in stages:
        return False
    if any(s in stages for s in _LATER_STAGES):
        return False
    return location_symbol(packet.free_location) in SEGMENTING_FUNCTIONS
