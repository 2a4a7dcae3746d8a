"""Issue 17 against the kernel (root, a veth lab): the TX queue rows count packets in the
unit of the device's own counters and GSO segments apart, checked against `ip -s link` and
`tc -s qdisc` around an iperf3 TCP run; and packets that bypass an idle pfifo_fast are counted
as such, so p99q says "bypass" instead of "-".

The collector runs in this process with the real tracer, always attached (exact counters)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from test_identity_lab import Iperf3Server
from test_tracer_lab import _skip_unless_probes

from txtop.core.model import Snapshot
from txtop.lab.netns import Lab
from txtop.probes.bpf.tracer import Tracer
from txtop.probes.collector import Collector

pytestmark = pytest.mark.root


@pytest.fixture
def collector(lab: Lab) -> Iterator[Collector]:
    _skip_unless_probes()
    lab.set_mq("pfifo_fast")
    tracer = Tracer([lab.ifindex], sample_every=1, max_samples_per_s=100_000, trace_duty=1.0)
    c = Collector([lab.dev], tracer=tracer, bql_hz=0)
    try:
        assert c.start_tracer(), c.probe_status
        yield c
    finally:
        c.close()


def link_tx(dev: str) -> tuple[int, int]:
    out = subprocess.run(["ip", "-j", "-s", "link", "show", "dev", dev], capture_output=True,
                         text=True, check=True)  # fmt: skip
    tx = json.loads(out.stdout)[0]["stats64"]["tx"]
    return int(tx["packets"]), int(tx["bytes"])


def qdisc_packets(dev: str) -> dict[str, int]:
    """tc -s: packets sent per mq child (by parent), as tc counts them."""
    out = subprocess.run(["tc", "-j", "-s", "qdisc", "show", "dev", dev], capture_output=True,
                         text=True, check=True)  # fmt: skip
    return {q["parent"]: int(q["packets"]) for q in json.loads(out.stdout) if q["kind"] != "mq"}


def tick(c: Collector) -> Snapshot:
    c.poll(0.2)  # the tracer drains its ring buffer
    return c.collect()


def test_tcp_packets_in_the_device_counters_unit_and_segments_as_tc_counts(
    lab: Lab, collector: Collector
) -> None:
    if shutil.which("iperf3") is None:
        pytest.skip("iperf3 not installed")
    with Iperf3Server(lab):
        tick(collector)  # primes the rates
        dev0, tc0 = link_tx(lab.dev)[0], qdisc_packets(lab.dev)
        first = tick(collector)
        client = subprocess.run(
            ["iperf3", "-c", lab.peer_ip, "-t", "3", "-b", "400M", "-J"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert client.returncode == 0, client.stdout[-500:]
        second = tick(collector)
        dev1, tc1 = link_tx(lab.dev)[0], qdisc_packets(lab.dev)
    queues0 = {q.queue: q for q in first.queues if q.dev == lab.dev}
    queues1 = {q.queue: q for q in second.queues if q.dev == lab.dev}
    skbs = sum(q.tx.packets - queues0[n].tx.packets for n, q in queues1.items() if q.tx)
    segs = sum(
        (q.tx.gso_segs or 0) - (queues0[n].tx.gso_segs or 0) for n, q in queues1.items() if q.tx
    )
    device = next(d for d in second.devices if d.dev == lab.dev)
    device0 = next(d for d in first.devices if d.dev == lab.dev)
    dev_packets = device.tx_packets - device0.tx_packets
    tc_packets = sum(tc1.values()) - sum(tc0.values())
    # TSO over veth: far fewer packets handed to the driver than segments.
    assert segs > 3 * skbs > 0, (segs, skbs)
    # Packets: the probes' count is the device counters' (within the packets in flight
    # between the reads); segments: the qdiscs' count, as tc shows it.
    assert abs(skbs - dev_packets) <= 0.02 * dev_packets + 20, (skbs, dev_packets, dev1 - dev0)
    assert abs(segs - tc_packets) <= 0.02 * tc_packets + 50, (segs, tc_packets)
    # The columns: a device row and its queue rows in one unit; segments apart.
    rate_skbs = sum(q.tx.skbs_per_s or 0 for q in queues1.values() if q.tx)
    rate_segs = sum(q.tx.segs_per_s or 0 for q in queues1.values() if q.tx)
    assert all(q.tx and q.tx.packet_unit == "skb" for q in queues1.values())
    assert abs(rate_skbs - device.tx_pps) <= 0.05 * device.tx_pps + 20, (rate_skbs, device.tx_pps)
    assert rate_segs > 3 * rate_skbs


def test_idle_pfifo_fast_is_bypassed_and_p99q_says_so(lab: Lab, collector: Collector) -> None:
    from txtop.core.history import QueueTarget
    from txtop.tui.panels.format import line_text
    from txtop.tui.panels.queues import queue_view

    tick(collector)
    code = (
        "import socket,sys,time\n"
        "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
        "for i in range(40):\n"
        "    s.sendto(b'x'*100,(sys.argv[1],9)); time.sleep(0.02)\n"
    )
    subprocess.run([sys.executable, "-c", code, lab.peer_ip], check=True, timeout=30)
    deadline = time.monotonic() + 20
    snap = tick(collector)
    while sum(q.bypass.bypassed for q in snap.queues if q.bypass) < 30:
        assert time.monotonic() < deadline, [q.bypass for q in snap.queues]
        snap = tick(collector)
    rows = [q for q in snap.queues if q.dev == lab.dev and q.bypass and q.bypass.bypassed]
    assert rows and all(q.qdisc and q.qdisc.kind == "pfifo_fast" for q in rows)
    busy = max(rows, key=lambda q: q.bypass.bypassed if q.bypass else 0)
    assert busy.bypass is not None and busy.bypass.bypassed == busy.bypass.sampled
    assert "qdisc" not in busy.latency_ns  # no wait to sample: never enqueued
    view = queue_view(snap, 200)
    line = line_text(view.body[view.targets.index(QueueTarget(lab.dev, busy.queue))])
    assert "bypass" in line and "100%" in line, line
