"""Findings in real labs (root, real BPF): each rule that a veth lab can induce fires there, and a
healthy lab stays quiet.

Every test runs the real collector (sysfs, netlink, procfs, the config readers and the BPF
tracer, restricted to the lab device) tick by tick and waits for the finding with a deadline -
the machine is a loaded 2-core VM, so nothing here sleeps and hopes. Traffic goes only to the
lab's peer namespace (tests/senders.py refuses anything else) and every sender stops by itself.

- a tbf with a tiny limit drops: ``qdisc_drops`` with the tbf and its limit;
- a saturated tbf (large limit) queues: ``qdisc_wait``;
- XPS maps both CPUs to tx-0 of four, a sender pinned to each CPU: ``tx_queue_concentration``;
- txqueuelen 5 and a root pfifo created after it (limit 5), flooded from both CPUs while the
  peer's GRO puts veth in NAPI mode (its ring fills, the queue stops, the pfifo overflows):
  ``txqueuelen_drops``;
- a one-page ring buffer and every packet sampled under a flood: ``probe_losses``.
Findings about CPUs are machine-wide (other engineers' labs run on the same VM), and so are
skipped probe runs (``probe_skipped``: other sessions' BPF programs nest with ours on this VM),
so the healthy lab checks the findings about its own device and the probes' losses only.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from senders import Sink, sender_argv

from txtop.core.finding import Finding
from txtop.core.model import Snapshot
from txtop.lab.netns import Lab, free_subnet
from txtop.probes.bpf.tracer import Tracer, probe_prerequisites
from txtop.probes.collector import Collector

PORT = 5315
TICK_S = 0.5
root = pytest.mark.root


def _skip_unless_probes() -> None:
    why = probe_prerequisites()
    if why:
        pytest.skip(f"probes cannot run here: {why}")


@pytest.fixture
def lab() -> Iterator[Lab]:
    tag = f"fl{os.getpid() % 100000}"
    with Lab(tag=tag, queues=4, subnet=free_subnet(range(20, 200), os.getpid() + 7)) as created:
        yield created


def _collector(lab: Lab, **tracer_kw: object) -> Collector:
    _skip_unless_probes()
    settings: dict[str, object] = {
        "sample_every": 1,
        "max_samples_per_s": 100_000,
        "trace_duty": 1.0,
    }
    settings.update(tracer_kw)
    tracer = Tracer([lab.ifindex], **settings)  # type: ignore[arg-type]
    collector = Collector([lab.dev], tracer=tracer)
    assert collector.start_tracer(), collector.probe_status.reason
    return collector


def watch(
    collector: Collector,
    done: Callable[[Snapshot], bool],
    deadline_s: float,
    what: str,
    keep: Callable[[], object] = lambda: None,
) -> Snapshot:
    """Tick the collector (TICK_S apart, draining the tracer in between) until ``done``."""
    end = time.monotonic() + deadline_s
    seen: list[str] = []
    while True:
        keep()
        collector.poll(TICK_S)
        snap = collector.collect()
        if done(snap):
            return snap
        seen = [f"{f.id}:{f.subject.label}:{f.state}" for f in snap.findings or ()]
        if time.monotonic() > end:
            raise AssertionError(f"no {what} within {deadline_s:.0f} s; findings: {seen}")


def active(snap: Snapshot, rule: str, dev: str | None = None) -> Finding | None:
    for f in snap.findings or ():
        if f.id == rule and f.active and (dev is None or f.subject.dev == dev):
            return f
    return None


class Senders:
    """Background senders to the lab peer, restarted when they finish (each is bounded)."""

    def __init__(self, lab: Lab, *args: str, cpus: tuple[int | None, ...] = (None,)) -> None:
        self.argv = sender_argv("udp", lab.peer_ip, str(PORT), *args, "--seconds", "20")
        self.cpus = cpus
        self.procs: list[subprocess.Popen[bytes]] = []

    def keep(self) -> None:
        """Start (again) any sender that is not running."""
        while len(self.procs) < len(self.cpus):
            self.procs.append(self._start(self.cpus[len(self.procs)]))
        for i, proc in enumerate(self.procs):
            if proc.poll() is not None:
                self.procs[i] = self._start(self.cpus[i])

    def _start(self, cpu: int | None) -> subprocess.Popen[bytes]:
        argv = self.argv if cpu is None else ["taskset", "-c", str(cpu), *self.argv]
        return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def __enter__(self) -> Senders:
        self.keep()
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)


def _two_cpus() -> tuple[int, int]:
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2 or shutil.which("taskset") is None:
        pytest.skip("needs two CPUs and taskset")
    return cpus[0], cpus[1]


def _tc(*args: str) -> None:
    subprocess.run(["tc", *args], check=True, capture_output=True, timeout=10)


# ---- the rules --------------------------------------------------------------------------------


@root
def test_tbf_with_a_tiny_limit_raises_qdisc_drops(lab: Lab) -> None:
    collector = _collector(lab)
    try:
        with Sink(lab.ns_argv([]), PORT):
            lab.set_tbf(rate="1mbit", burst="2k", limit="3k")
            with Senders(lab, "--count", "100000", "--size", "1000", "--gap-us", "500") as senders:
                snap = watch(
                    collector,
                    lambda s: active(s, "qdisc_drops", lab.dev) is not None,
                    40,
                    "qdisc_drops",
                    senders.keep,
                )
        f = active(snap, "qdisc_drops", lab.dev)
        assert f is not None and f.subject.kind == "device"  # a root tbf serves every queue
        assert f.evidence["qdisc"] == "tbf" and f.evidence["limit"] == 3 * 1024
        assert f.evidence["limit_unit"] == "bytes" and float(f.evidence["drops_per_s"] or 0) >= 1
        assert f.command == f"tc -s qdisc show dev {lab.dev} root"
    finally:
        collector.close()


@root
def test_saturated_tbf_raises_qdisc_wait(lab: Lab) -> None:
    collector = _collector(lab)
    try:
        with Sink(lab.ns_argv([]), PORT):
            lab.set_tbf(rate="2mbit", burst="4k", limit="2m")  # ~240 frames/s of 1042 bytes
            with Senders(lab, "--count", "100000", "--size", "1000", "--gap-us", "1500") as senders:
                snap = watch(
                    collector,
                    lambda s: active(s, "qdisc_wait", lab.dev) is not None,
                    45,
                    "qdisc_wait",
                    senders.keep,
                )
        f = active(snap, "qdisc_wait", lab.dev)
        assert f is not None and f.evidence["qdisc"] == "tbf" and "shaping" in f.summary
        assert int(f.evidence["qdisc_p99_ns"] or 0) >= 1_000_000
        assert float(f.evidence["share_pct"] or 0) >= 50
    finally:
        collector.close()


@root
def test_xps_pinning_every_sender_to_one_queue_raises_concentration(lab: Lab) -> None:
    cpu_a, cpu_b = _two_cpus()
    collector = _collector(lab)
    try:
        lab.set_mq("pfifo_fast")
        both = (1 << cpu_a) | (1 << cpu_b)
        for n in range(4):
            Path(f"/sys/class/net/{lab.dev}/queues/tx-{n}/xps_cpus").write_text(
                f"{both:x}" if n == 0 else "0"
            )
        with Sink(lab.ns_argv([]), PORT):
            cpus = (cpu_a, cpu_b)
            with Senders(
                lab, "--count", "50000", "--size", "64", "--gap-us", "1000", cpus=cpus
            ) as s:
                snap = watch(
                    collector,
                    lambda x: active(x, "tx_queue_concentration", lab.dev) is not None,
                    45,
                    "tx_queue_concentration",
                    s.keep,
                )
        f = active(snap, "tx_queue_concentration", lab.dev)
        assert f is not None and f.subject.queue == 0
        assert f"XPS maps CPUs {min(cpus)},{max(cpus)} all to tx-0" in f.summary
        assert float(f.evidence["share_pct"] or 0) >= 90
        assert "xps_cpus" in f.command
    finally:
        collector.close()


@root
def test_pfifo_with_a_short_txqueuelen_raises_txqueuelen_drops(lab: Lab) -> None:
    if shutil.which("ethtool") is None:
        pytest.skip("ethtool not installed (needed to turn on GRO on the lab peer)")
    cpu_a, cpu_b = _two_cpus()
    collector = _collector(lab)
    try:
        # GRO on the peer puts veth in NAPI mode: its ring fills under a flood, veth stops the
        # queue and the qdisc in front of it has to hold the burst (kernels >= 6.x).
        subprocess.run(
            lab.ns_argv(["ethtool", "-K", lab.peer, "gro", "on"]), check=True, capture_output=True
        )
        subprocess.run(["ip", "link", "set", "dev", lab.dev, "txqueuelen", "5"], check=True)
        _tc("qdisc", "replace", "dev", lab.dev, "root", "pfifo")  # takes limit = txqueuelen
        with Sink(lab.ns_argv([]), PORT, read=False):
            cpus = (cpu_a, cpu_b)
            with Senders(lab, "--count", "5000000", "--size", "64", cpus=cpus) as senders:
                snap = watch(
                    collector,
                    lambda s: active(s, "txqueuelen_drops", lab.dev) is not None,
                    60,
                    "txqueuelen_drops",
                    senders.keep,
                )
        f = active(snap, "txqueuelen_drops", lab.dev)
        assert f is not None and f.evidence["qdisc"] == "pfifo"
        assert f.evidence["txqueuelen"] == 5 and f.evidence["limit"] == 5
        assert f.command == f"tc qdisc replace dev {lab.dev} root pfifo limit 20"
        assert active(snap, "qdisc_drops", lab.dev) is None  # the same drops, one finding
    finally:
        collector.close()


@root
def test_a_tiny_ring_buffer_raises_probe_losses(lab: Lab) -> None:
    collector = _collector(lab, ringbuf_pages=1, max_samples_per_s=1_000_000)
    try:
        with Sink(lab.ns_argv([]), PORT):
            with Senders(lab, "--count", "5000000", "--size", "64") as senders:
                snap = watch(
                    collector,
                    lambda s: active(s, "probe_losses") is not None,
                    40,
                    "probe_losses",
                    senders.keep,
                )
        f = active(snap, "probe_losses")
        assert f is not None and f.subject.kind == "probes"
        assert float(f.evidence["lost_per_s"] or 0) >= 1 and f.command.startswith("txtop --sample")
    finally:
        collector.close()


@root
def test_a_healthy_lab_stays_quiet(lab: Lab) -> None:
    cpu_a, cpu_b = _two_cpus()
    collector = _collector(lab)
    try:
        lab.set_mq("pfifo_fast")
        for n in range(4):  # each sending CPU its own queue
            mask = 1 << cpu_a if n == 0 else 1 << cpu_b if n == 1 else 0
            Path(f"/sys/class/net/{lab.dev}/queues/tx-{n}/xps_cpus").write_text(f"{mask:x}")
        with Sink(lab.ns_argv([]), PORT):
            cpus = (cpu_a, cpu_b)
            with Senders(
                lab, "--count", "50000", "--size", "200", "--gap-us", "2000", cpus=cpus
            ) as s:
                ticks: list[Snapshot] = []

                def enough(snap: Snapshot) -> bool:
                    ticks.append(snap)
                    traced = sum(len(x.packets) for x in ticks)
                    return len(ticks) >= 24 and traced >= 200  # 12 s of ticks, traffic seen

                watch(collector, enough, 60, "12 s of healthy traffic", s.keep)
        mine = {
            (f.id, f.subject.label)
            for snap in ticks
            for f in snap.findings or ()
            if f.subject.dev == lab.dev or f.id == "probe_losses"
        }
        assert mine == set()
        # The knobs were read beside it: the XPS map as written, the qdisc and its limit.
        last = ticks[-1]
        tx0 = next(q for q in last.queues if q.queue == 0)
        assert tx0.config is not None and tx0.config.xps_cpus == str(cpu_a)
        assert tx0.config.qdisc is not None and tx0.config.qdisc.kind == "pfifo_fast"
    finally:
        collector.close()


@root
def test_once_json_carries_findings_and_config(lab: Lab) -> None:
    """``txtop --once --format json`` on a lab whose tbf drops: ``findings[]`` has the drops
    (one interval, no 2 s hold) and the rows carry their ``config``."""
    _skip_unless_probes()
    from test_cli import txtop

    with Sink(lab.ns_argv([]), PORT):
        lab.set_tbf(rate="1mbit", burst="2k", limit="3k")
        with Senders(lab, "--count", "100000", "--size", "1000", "--gap-us", "500") as senders:
            deadline = time.monotonic() + 120
            while True:
                senders.keep()
                res = txtop("-i", lab.dev, "--once", "--format", "json", "-d", "1", timeout=120)
                assert res.returncode == 0, res.stderr
                data = json.loads(res.stdout)
                drops = [f for f in data["findings"] if f["id"] == "qdisc_drops"]
                if drops or time.monotonic() > deadline:
                    break
    assert drops, data["findings"]
    assert drops[0]["subject"] == {"kind": "device", "dev": lab.dev, "queue": None, "cpu": None}
    assert drops[0]["evidence"]["limit"] == 3 * 1024 and drops[0]["state"] == "active"
    device = next(d for d in data["devices"] if d["dev"] == lab.dev)
    assert device["config"]["root_qdisc"]["kind"] == "tbf"
    assert device["config"]["sysctl"]["net.core.netdev_budget"].isdigit()
    assert all(q["config"] is not None for q in data["queues"] if q["dev"] == lab.dev)
