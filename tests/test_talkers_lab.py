"""Top talkers against the truth (root, real BPF, real clients): per-flow rates set with
`iperf3 -b` and with a tbf rate, estimated by the real collector from samples thinned by all
three stages (1-in-N, the token bucket, trace windows), within 25%."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from test_identity_lab import IPERF_PORT, Iperf3Server, _skip_unless_iperf3, lab6  # noqa: F401
from test_tracer_lab import _skip_unless_probes

from txtop.core.model import Snapshot, Talker
from txtop.lab.netns import Lab
from txtop.probes.bpf.tracer import Tracer
from txtop.probes.collector import Collector

root = pytest.mark.root
UDP_FRAME = 1000 + 8 + 20 + 14  # -l 1000 datagrams as frames on the veth
TOLERANCE = 0.25


def collector_for(lab: Lab, **tracer_kw: object) -> Collector:
    _skip_unless_probes()
    tracer = Tracer([lab.ifindex], **tracer_kw)  # type: ignore[arg-type]
    collector = Collector([lab.dev], tracer=tracer)
    assert collector.start_tracer() and tracer.running, tracer.status.reason
    return collector


def ticks(collector: Collector, seconds: float) -> list[Snapshot]:
    """One snapshot per second for ``seconds``, the tracer drained in between (LiveSource's
    loop, without its thread)."""
    out = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        due = time.monotonic() + 1.0
        while (left := due - time.monotonic()) > 0:
            collector.poll_tracer(min(left, 0.1))
        out.append(collector.collect())
    return out


def talker(snapshot: Snapshot, dev: str, dport: int) -> Talker:
    found = [
        t
        for q in snapshot.queues
        if q.dev == dev
        for t in q.flows
        if t.flow is not None and t.flow.dport == dport
    ]
    assert found, [(q.queue, [t.name for t in q.flows]) for q in snapshot.queues]
    return max(found, key=lambda t: t.samples)


def start_client(dst: str, port: int, *args: str) -> subprocess.Popen:
    argv = ["iperf3", "-c", dst, "-p", str(port), "-J", *args]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err or out[-500:]
    return json.loads(out)


@root
def test_udp_rates_set_with_iperf3_b_are_estimated_within_25_percent(lab6: Lab) -> None:  # noqa: F811
    _skip_unless_iperf3()
    # 1 in 4, a cap the traffic exceeds (the bucket admits ~2/3), probes attached half the time
    collector = collector_for(lab6, sample_every=4, max_samples_per_s=150, trace_duty=0.5)
    try:
        with Iperf3Server(lab6, 5201), Iperf3Server(lab6, 5202):
            collector.collect()  # primes the rates
            fast = start_client(lab6.peer_ip, 5201, "-u", "-b", "12M", "-l", "1000", "-t", "14")
            slow = start_client(lab6.peer_ip, 5202, "-u", "-b", "3M", "-l", "1000", "-t", "14")
            try:
                snaps = ticks(collector, 12.5)
            finally:
                fast_result, slow_result = finish(fast), finish(slow)
        last = snaps[-1]
        sampling = last.probes.sampling
        assert sampling["rate_limited"] > 0.2 * sampling["sampled"], sampling  # the cap bit
        assert last.probes.trace_duty_pct == 50.0
        for port, result in ((5201, fast_result), (5202, slow_result)):
            end = result["end"]["sum"]
            truth_pps = end["packets"] / end["seconds"]
            est = talker(last, lab6.dev, port)
            print(f"\nport {port}: truth {truth_pps:.0f} pkt/s, estimate {est.packets_per_s:.0f}")
            assert est.estimated and est.samples >= 40, est
            assert est.packets_per_s == pytest.approx(truth_pps, rel=TOLERANCE), (port, est)
            assert est.bytes_per_s == pytest.approx(truth_pps * UDP_FRAME, rel=TOLERANCE)
            assert est.owner is not None and est.owner.comm == "iperf3"
    finally:
        collector.close()


@root
def test_a_tcp_flow_held_to_a_tbf_rate_is_estimated_within_25_percent(lab6: Lab) -> None:  # noqa: F811
    _skip_unless_iperf3()
    lab6.set_tbf(rate="16mbit", burst="32k", limit="200k")
    collector = collector_for(lab6, sample_every=1, max_samples_per_s=100_000, trace_duty=0.5)
    try:
        with Iperf3Server(lab6):
            collector.collect()
            client = start_client(lab6.peer_ip, IPERF_PORT, "-t", "14")
            try:
                time.sleep(1.0)  # past slow start: the tbf holds the flow to its rate
                tc0, t0 = tbf_bytes(lab6.dev), time.monotonic()
                snaps = ticks(collector, 11.0)
                tc1, t1 = tbf_bytes(lab6.dev), time.monotonic()
            finally:
                finish(client)
        truth = (tc1 - tc0) / (t1 - t0)  # bytes/s the tbf let through (L2 frames)
        assert truth == pytest.approx(2e6, rel=0.2)  # 16 Mbit/s
        est = talker(snaps[-1], lab6.dev, IPERF_PORT)
        print(
            f"\ntbf: truth {truth:.0f} B/s, estimate {est.bytes_per_s:.0f} ({est.samples} samples)"
        )
        assert est.bytes_per_s == pytest.approx(truth, rel=TOLERANCE), (est, truth)
        assert est.wait_p50_ns is not None and est.wait_p99_ns is not None
        assert est.wait_p99_ns >= est.wait_p50_ns > 0  # it waits in the tbf
    finally:
        collector.close()
        lab6.clear_qdisc()


def tbf_bytes(dev: str) -> int:
    out = subprocess.run(
        ["tc", "-s", "-j", "qdisc", "show", "dev", dev], capture_output=True, text=True, check=True
    ).stdout
    return sum(int(q["bytes"]) for q in json.loads(out) if q.get("kind") == "tbf")
