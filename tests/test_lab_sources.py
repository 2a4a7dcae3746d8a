"""The data sources against the real kernel, in a private veth lab (root only).

Traffic goes only to the lab peer (inside a namespace the test created); every sender is
bounded in packets and time and is stopped when the test ends.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from txtop.core.model import QueueRow, Snapshot
from txtop.lab.netns import Lab
from txtop.probes.collector import Collector
from txtop.probes.readers.bql import BQL_FILES

pytestmark = pytest.mark.root

SYSFS = Path("/sys/class/net")


class UdpSender(threading.Thread):
    """Blocking UDP sends to the lab peer: at most ``max_packets`` and ``max_s`` seconds."""

    def __init__(self, dst: str, payload: int = 1000, max_packets: int = 5000, max_s: float = 20.0,
                 ports: int = 16) -> None:  # fmt: skip
        super().__init__(daemon=True, name="lab-udp")
        self.dst, self.payload, self.ports = dst, payload, ports
        self.max_packets, self.max_s = max_packets, max_s
        self.stop_event = threading.Event()
        self.sent = 0

    def run(self) -> None:
        deadline = time.monotonic() + self.max_s
        data = b"t" * self.payload
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(0.2)  # a full qdisc blocks sendto; wake up to check the stop flag
            while (
                not self.stop_event.is_set()
                and self.sent < self.max_packets
                and time.monotonic() < deadline
            ):
                try:
                    sock.sendto(data, (self.dst, 9000 + self.sent % self.ports))
                    self.sent += 1
                except (TimeoutError, BlockingIOError):
                    continue

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=5)


@pytest.fixture
def sender(lab: Lab) -> Iterator[Callable[..., UdpSender]]:
    started: list[UdpSender] = []

    def start(**kw) -> UdpSender:
        s = UdpSender(lab.peer_ip, **kw)
        s.start()
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


def tc_qdiscs(dev: str) -> list[dict]:
    out = subprocess.run(
        ["tc", "-s", "-j", "qdisc", "show", "dev", dev],
        check=True, capture_output=True, text=True, timeout=10,
    ).stdout  # fmt: skip
    return json.loads(out)


def wait_for(cond: Callable[[], bool], timeout_s: float = 10.0, step_s: float = 0.05) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        time.sleep(step_s)


def queues_of(snap: Snapshot, dev: str) -> list[QueueRow]:
    return [q for q in snap.queues if q.dev == dev]


def test_mq_children_map_to_their_queues(lab: Lab) -> None:
    lab.set_mq()
    collector = Collector([lab.dev])
    try:
        collector.collect()
        # Spread a bounded burst over many flows so several queues carry packets.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for i in range(400):
                sock.sendto(b"m" * 200, (lab.peer_ip, 10000 + i % 64))
        time.sleep(0.05)  # an interval to measure a rate over, not a wait for a condition
        snap = collector.collect()
        shown = tc_qdiscs(lab.dev)
    finally:
        collector.close()
    children = {q["parent"]: q for q in shown if not q.get("root")}
    rows = queues_of(snap, lab.dev)
    assert [r.queue for r in rows] == [0, 1, 2, 3]
    for row in rows:
        assert row.qdisc is not None and row.qdisc.per_queue
        parent = f"1:{row.queue + 1:x}"
        assert row.qdisc.parent == parent
        assert row.qdisc.handle == children[parent]["handle"]
        assert row.qdisc.kind == "pfifo_fast"
        assert row.tx is not None and row.tx.source == "qdisc"
        assert row.tx.packets == children[parent]["packets"]
    assert sum(r.tx.packets for r in rows if r.tx) >= 400
    assert sum(r.tx.pps for r in rows if r.tx) > 0
    (device,) = [d for d in snap.devices if d.dev == lab.dev]
    assert device.root_qdisc == "mq" and device.tx_queues == 4 and not device.has_bql


def test_saturated_tbf_backlog_matches_tc(lab: Lab, sender) -> None:
    lab.set_tbf(rate="1mbit", burst="4k", limit="1mb")
    flood = sender(payload=1000)
    wait_for(lambda: tc_qdiscs(lab.dev)[0]["qlen"] >= 20)  # the qdisc is really backlogged
    collector = Collector([lab.dev])
    try:
        for _ in range(5):
            before = tc_qdiscs(lab.dev)[0]
            snap = collector.collect()
            after = tc_qdiscs(lab.dev)[0]
            rows = queues_of(snap, lab.dev)
            assert len(rows) == 4
            for row in rows:  # a single root tbf serves every TX queue
                q = row.qdisc
                assert q is not None and q.kind == "tbf" and q.parent == "root"
                assert not q.per_queue and row.tx is None
                slack_pkts = 3
                lo_p, hi_p = sorted((before["qlen"], after["qlen"]))
                assert lo_p - slack_pkts <= q.backlog_pkts <= hi_p + slack_pkts
                lo_b, hi_b = sorted((before["backlog"], after["backlog"]))
                per_pkt = max(1, after["backlog"] // max(1, after["qlen"]))
                assert lo_b - slack_pkts * per_pkt <= q.backlog_bytes <= hi_b + slack_pkts * per_pkt
                assert before["packets"] <= q.packets <= after["packets"]
                assert q.overlimits >= before["overlimits"]
            assert rows[0].qdisc is not None and rows[0].qdisc.backlog_pkts >= 10
    finally:
        collector.close()
        flood.stop()
    assert flood.sent <= flood.max_packets


def test_softirq_rates_positive_under_lab_traffic(lab: Lab, sender) -> None:
    # tbf's watchdog (qdisc_watchdog -> __netif_schedule) raises NET_TX; veth hands each packet
    # to the peer's backlog (netif_rx -> enqueue_to_backlog), which raises NET_RX.
    lab.set_tbf(rate="1mbit", burst="4k", limit="1mb")
    flood = sender(payload=500)
    collector = Collector([lab.dev])
    try:
        collector.collect()
        seen: dict[str, float] = {}

        def positive() -> bool:
            snap = collector.collect()
            seen["tx"] = sum(c.net_tx_per_s for c in snap.cpus)
            seen["rx"] = sum(c.net_rx_per_s for c in snap.cpus)
            seen["processed"] = sum(c.softnet_processed_per_s for c in snap.cpus)
            return seen["tx"] > 0 and seen["rx"] > 0 and seen["processed"] > 0

        wait_for(positive, timeout_s=10, step_s=0.3)
    finally:
        collector.close()
        flood.stop()
    assert all(v >= 0 for v in seen.values())


def test_bql_eth0_agrees_with_sysfs() -> None:
    if not (SYSFS / "eth0" / "queues" / "tx-0" / "byte_queue_limits").is_dir():
        pytest.skip("eth0 has no BQL here")

    def direct() -> dict[str, int]:
        base = SYSFS / "eth0" / "queues" / "tx-0" / "byte_queue_limits"
        return {n: int((base / n).read_text()) for n in BQL_FILES if (base / n).exists()}

    collector = Collector(["eth0"])
    try:
        before = direct()
        snap = collector.collect()
        after = direct()
    finally:
        collector.close()
    (row,) = [q for q in snap.queues if q.dev == "eth0" and q.queue == 0]
    assert row.bql is not None
    for name, value_before in before.items():
        got = getattr(row.bql, name)
        lo, hi = sorted((value_before, after[name]))
        assert lo <= got <= hi, name
    assert snap.devices[0].has_bql


def test_deleted_veth_disappears_between_ticks() -> None:
    tag = f"v{os.getpid() % 10000}"
    gone = Lab(tag=tag, queues=2, subnet=(os.getpid() + 97) % 200 + 20)
    gone.create()
    try:
        listing = Collector(None)
        fixed = Collector([gone.dev, "lo"])
        try:
            assert gone.dev in listing.collect().interfaces
            assert fixed.collect().interfaces == (gone.dev, "lo")
            gone.destroy()
            wait_for(lambda: not (SYSFS / gone.dev).exists(), timeout_s=5)
            after = listing.collect()
            assert gone.dev not in after.interfaces
            assert all(q.dev != gone.dev for q in after.queues)
            assert fixed.collect().interfaces == ("lo",)
        finally:
            listing.close()
            fixed.close()
    finally:
        gone.destroy()


def test_tick_cost_eth0_lo_lab(lab: Lab) -> None:
    lab.set_mq()
    collector = Collector(["eth0", "lo", lab.dev])
    try:
        collector.collect()
        runs = 50
        t0 = time.perf_counter()
        for _ in range(runs):
            snap = collector.collect()
        per_tick_ms = (time.perf_counter() - t0) / runs * 1e3
    finally:
        collector.close()
    assert len(snap.queues) == 1 + 1 + 4
    print(f"collect() eth0+lo+lab(4 queues): {per_tick_ms:.2f} ms/tick")
    assert per_tick_ms < 25  # 10 Hz must leave the CPU almost idle
