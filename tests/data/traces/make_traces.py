"""Write tests/data/traces/waterfall.json: CONSTRUCTED PacketTrace records (not a capture).

Each record follows what the TX tracepoints report (see README.md here); the cases cover what
the waterfall must draw: complete UDP/TCP sends, GSO super-packets, a qdisc drop, a receiver
drop on veth, a noqueue device (no qdisc stages), a lost and an aged track, a kernel-originated
ARP (no syscall), NETDEV_TX_BUSY, a stopped TX queue, IPv6, and a slow-stack outlier.

Run from the repo root: ``.venv/bin/python tests/data/traces/make_traces.py``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MONO_END_NS = 5_000_000_000_000  # CLOCK_MONOTONIC at the snapshot's end (~83 min uptime)
WALL_END_S = 1_750_000_000.0  # its wall time: 2025-06-15 15:06:40 UTC
STAGES = ("sendto", "dev_queue", "qdisc_enqueue", "qdisc_dequeue", "start_xmit", "xmit", "free")
ETH_P_IP, ETH_P_IPV6, ETH_P_ARP = 0x0800, 0x86DD, 0x0806
TCP, UDP, ICMP = 6, 17, 1
NETDEV_TX_BUSY = 0x10
QUEUE_STATE_DRV_XOFF = 1 << 0  # include/linux/netdevice.h __QUEUE_STATE_DRV_XOFF


def trace(
    start_ns: int,
    deltas_ns: dict[str, int],
    cpu: int = 0,
    free_cpu: int | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A record whose stages are ``start_ns`` + the running sum of ``deltas_ns`` (stage order)."""
    stages: dict[str, int] = {}
    t = start_ns
    for stage in STAGES:
        if stage in deltas_ns:
            t += deltas_ns[stage]
            stages[stage] = t
    cpus = {s: cpu for s in stages}
    if "free" in cpus and free_cpu is not None:
        cpus["free"] = free_cpu
    record: dict[str, Any] = {
        "pid": 0,
        "tid": 0,
        "comm": "",
        "dev": "eth0",
        "ifindex": 2,
        "queue": 0,
        "len": 0,
        "gso_segs": 0,  # skb_shinfo(skb)->gso_segs: 0 for a packet that is not GSO
        "stages": stages,
        "cpus": cpus,
        "track": "complete",
        "protocol": ETH_P_IP,
        "xmit_rc": 0 if "xmit" in stages else None,
        "txq_state": 0 if "qdisc_dequeue" in stages else None,
        "free_kind": "consume" if "free" in stages else None,
        "drop_reason": None,
        "free_location": None,
        "syscall": "sendto" if "sendto" in stages else None,
        "syscall_exit_ns": None,
        "l4_proto": None,
        "sport": None,
        "dport": None,
        "sample_every": 100,
        "sample_max_per_s": 1000,
    }
    record.update(fields)
    if record["syscall"] and "sendto" in stages and "syscall_exit_ns" not in fields:
        # The syscall returns once the skb is handed on (qdisc or driver), before the free.
        last_in_call = max(t for s, t in stages.items() if s != "free")
        record["syscall_exit_ns"] = last_in_call + 900
    return record


def build() -> list[dict[str, Any]]:
    t0 = MONO_END_NS - 900_000_000  # the oldest packet starts 0.9 s before the snapshot end
    ms = 1_000_000
    # The tracer knows the destination port only from sendto()'s sockaddr (unconnected UDP);
    # it cannot read the L4 protocol or source port (no kernel struct access in BPF here).
    iperf_udp = dict(pid=4242, tid=4242, comm="iperf3", dport=5201)
    iperf_tcp = dict(pid=4300, tid=4301, comm="iperf3", syscall="sendmsg")
    veth = dict(dev="txl0", ifindex=7)
    return [
        # 1. UDP over veth, every stage; the free is the receiver's (peer netns, other CPU).
        trace(t0, {"sendto": 0, "dev_queue": 4_100, "qdisc_enqueue": 600, "qdisc_dequeue": 900,
                   "start_xmit": 400, "xmit": 2_300, "free": 11_000},
              free_cpu=1, queue=2, len=1442, free_location="skb_consume_udp+0x3e",
              **veth, **iperf_udp),
        # 2. TCP TSO super-packet on a BQL NIC: 45 segments; completion is the TX-completion
        #    NAPI poll freeing it much later (deferred free).
        trace(t0 + 40 * ms, {"sendto": 0, "dev_queue": 18_000, "qdisc_enqueue": 500,
                             "qdisc_dequeue": 35_000, "start_xmit": 300, "xmit": 4_000,
                             "free": 180_000},
              free_cpu=1, len=65226, gso_segs=45, syscall="sendmsg",
              free_location="napi_consume_skb+0x4c", pid=812, tid=815, comm="nginx"),
        # 3. DNS query, small UDP.
        trace(t0 + 95 * ms, {"sendto": 0, "dev_queue": 5_200, "qdisc_enqueue": 450,
                             "qdisc_dequeue": 300, "start_xmit": 350, "xmit": 1_900,
                             "free": 95_000},
              queue=1, len=74, free_location="napi_consume_skb+0x4c", pid=355, tid=355,
              comm="systemd-resolve", dport=53),
        # 4. Dropped by a full qdisc: qdisc_enqueue never fired (it only fires on success), no
        #    start_xmit so no queue_mapping was recorded.
        trace(t0 + 130 * ms, {"sendto": 0, "dev_queue": 3_900, "free": 1_200},
              queue=None, len=1442, free_kind="drop", drop_reason="QDISC_DROP",
              free_location="__dev_queue_xmit+0x7b1", **iperf_udp),
        # 5. Software GSO on veth: new segment skbs are allocated between net_dev_queue and
        #    net_dev_start_xmit, so the sampled skb's track is lost after dev_queue; gso_segs
        #    is unknown (0) because start_xmit never saw this skb.
        trace(t0 + 180 * ms, {"sendto": 0, "dev_queue": 22_000},
              track="lost", queue=None, len=14546, gso_segs=0,
              **veth, **iperf_tcp),
        # 6. Stuck behind a stopped queue: enqueued, never dequeued before the tracer aged it.
        trace(t0 + 230 * ms, {"sendto": 0, "dev_queue": 6_000, "qdisc_enqueue": 700},
              track="aged", queue=3, len=1514, **iperf_tcp),
        # 7. ARP request from the kernel (neighbour timer): no syscall, pid 0.
        trace(t0 + 300 * ms, {"dev_queue": 0, "qdisc_enqueue": 800, "qdisc_dequeue": 600,
                              "start_xmit": 300, "xmit": 1_500, "free": 60_000},
              cpu=1, len=42, protocol=ETH_P_ARP,
              free_location="napi_consume_skb+0x4c"),
        # 8. ping over lo: noqueue, so no qdisc stages; "free" is the receiver consuming it.
        trace(t0 + 350 * ms, {"sendto": 0, "dev_queue": 3_100, "start_xmit": 700,
                              "xmit": 1_800, "free": 7_500},
              dev="lo", ifindex=1, len=98, pid=9001, tid=9001, comm="ping",
              free_location="icmp_rcv+0x1a8"),
        # 9. Driver said NETDEV_TX_BUSY; the skb was requeued and freed after its retry.
        trace(t0 + 420 * ms, {"sendto": 0, "dev_queue": 4_800, "qdisc_enqueue": 500,
                              "qdisc_dequeue": 1_200, "start_xmit": 400, "xmit": 900,
                              "free": 140_000},
              queue=2, len=1514, xmit_rc=NETDEV_TX_BUSY, txq_state=QUEUE_STATE_DRV_XOFF,
              free_location="napi_consume_skb+0x4c", **iperf_tcp),
        # 10. Long qdisc wait behind a BQL-limited queue, dequeued with the queue stopped.
        trace(t0 + 480 * ms, {"sendto": 0, "dev_queue": 7_000, "qdisc_enqueue": 600,
                              "qdisc_dequeue": 2_100_000, "start_xmit": 500, "xmit": 3_000,
                              "free": 210_000},
              free_cpu=1, queue=3, len=2962, gso_segs=2, txq_state=QUEUE_STATE_DRV_XOFF,
              free_location="napi_consume_skb+0x4c", **iperf_tcp),
        # 11. NTP over IPv6.
        trace(t0 + 540 * ms, {"sendto": 0, "dev_queue": 6_400, "qdisc_enqueue": 400,
                              "qdisc_dequeue": 350, "start_xmit": 300, "xmit": 2_100,
                              "free": 88_000},
              len=90, protocol=ETH_P_IPV6, pid=640, tid=640, comm="chronyd", free_location="napi_consume_skb+0x4c"),
        # 12. veth peer's backlog full: dropped by the receiver after a successful xmit.
        trace(t0 + 600 * ms, {"sendto": 0, "dev_queue": 4_000, "qdisc_enqueue": 500,
                              "qdisc_dequeue": 700, "start_xmit": 300, "xmit": 2_600,
                              "free": 3_100},
              free_cpu=0, queue=1, len=1442, free_kind="drop", drop_reason="CPU_BACKLOG",
              free_location="enqueue_to_backlog+0x2d6", **veth, **iperf_udp),
        # 13. Slow stack: the sender waited on its socket lock (stack outlier for log scale).
        trace(t0 + 650 * ms, {"sendto": 0, "dev_queue": 1_800_000, "qdisc_enqueue": 600,
                              "qdisc_dequeue": 400, "start_xmit": 300, "xmit": 2_500,
                              "free": 120_000},
              queue=1, len=7306, gso_segs=5, syscall="sendmsg", pid=2100, tid=2100,
              comm="postgres",
              free_location="napi_consume_skb+0x4c"),
        # 14-18. Ordinary traffic spread over queues.
        trace(t0 + 700 * ms, {"sendto": 0, "dev_queue": 9_000, "qdisc_enqueue": 500,
                              "qdisc_dequeue": 600, "start_xmit": 300, "xmit": 2_200,
                              "free": 75_000},
              queue=2, len=210, syscall="sendmsg", pid=700, tid=700, comm="sshd", free_location="napi_consume_skb+0x4c"),
        trace(t0 + 760 * ms, {"sendto": 0, "dev_queue": 8_100, "qdisc_enqueue": 400,
                              "qdisc_dequeue": 9_000, "start_xmit": 400, "xmit": 2_700,
                              "free": 66_000},
              queue=0, len=4410, gso_segs=3, syscall="sendmsg", pid=1500, tid=1502,
              comm="redis-server",
              free_location="napi_consume_skb+0x4c"),
        # 16. veth hand-off: the tracer ends the track at net_dev_xmit (complete, no free
        #     seen: the receiver frees it later, if at all, as a different event).
        trace(t0 + 800 * ms, {"sendto": 0, "dev_queue": 3_900, "qdisc_enqueue": 500,
                              "qdisc_dequeue": 800, "start_xmit": 400, "xmit": 2_200},
              queue=0, len=1442, **veth, **iperf_udp),
        trace(t0 + 840 * ms, {"sendto": 0, "dev_queue": 4_300, "qdisc_enqueue": 550,
                              "qdisc_dequeue": 45_000, "start_xmit": 350, "xmit": 2_400,
                              "free": 9_800},
              free_cpu=1, queue=3, len=1442, free_location="skb_consume_udp+0x3e",
              **veth, **iperf_udp),
        trace(t0 + 880 * ms, {"sendto": 0, "dev_queue": 15_000, "qdisc_enqueue": 500,
                              "qdisc_dequeue": 700, "start_xmit": 300, "xmit": 3_900,
                              "free": 150_000},
              queue=2, len=65226, gso_segs=45, syscall="sendmsg", pid=812, tid=816,
              comm="nginx",
              free_location="napi_consume_skb+0x4c"),
        # 19. TCP GSO over veth sent but never freed in time: the transmitted skb is a clone,
        #     the original waits in the socket for its ACK; the tracer ages the track.
        trace(t0 + 820 * ms, {"sendto": 0, "dev_queue": 1_500, "qdisc_enqueue": 300,
                              "qdisc_dequeue": 400, "start_xmit": 200, "xmit": 300},
              track="aged", queue=0, len=16450, gso_segs=12, **veth, **iperf_tcp),
        # 20. TCP sent from softirq (ACK-clocked): no syscall is tied to it, so pid 0, no comm.
        trace(t0 + 860 * ms, {"dev_queue": 0, "qdisc_enqueue": 400, "qdisc_dequeue": 12_000,
                              "start_xmit": 300, "xmit": 3_600, "free": 160_000},
              cpu=1, queue=1, len=65226, gso_segs=45, free_location="napi_consume_skb+0x4c"),
    ]  # fmt: skip


def main() -> None:
    doc = {
        "comment": "CONSTRUCTED from tracepoint semantics, not captured; see README.md",
        "time": WALL_END_S,
        "mono_ns": MONO_END_NS,
        "sampling": {"every": 100, "max_per_s": 1000},
        "packets": build(),
    }
    dest = HERE / "waterfall.json"
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with os.fdopen(fd, "w") as fh:
        json.dump(doc, fh, indent=1)
        fh.write("\n")


if __name__ == "__main__":
    main()
