"""Flow and sender identity against real traffic in a veth lab (root, real BPF, real clients).

Issue 12: every sampled packet says whose it is (owner: pid, tid, comm, cgroup, and how it was
found) and which flow it belongs to (addresses, ports, protocol, TCP flags, VLAN), from the
packet headers and the socket, with kernel struct offsets from the running kernel's BTF.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from senders import Sink
from test_tracer_lab import (
    PORT,
    _skip_unless_probes,
    collect,
    drain,
    run_sender,
    udp_of,
    warm_up,
)

from txtop.lab.netns import Lab
from txtop.probes.bpf.tracer import Tracer

root = pytest.mark.root


@root
def test_unreadable_btf_gives_the_reason_and_the_rest_runs(lab: Lab, tmp_path: Path) -> None:
    _skip_unless_probes()
    empty = tmp_path / "vmlinux"
    empty.write_bytes(b"")
    t = Tracer(
        [lab.ifindex], sample_every=1, max_samples_per_s=100_000, trace_duty=1.0, btf_path=empty
    )
    t.start()
    try:
        assert t.running, t.status.reason
        reason = f"identity unavailable: BTF file {empty} is empty"
        assert t.status.unavailable["identity"] == reason
        assert reason in t.status.notice  # the probe line shows the notice
        with Sink(lab.ns_argv([]), PORT):
            warm_up(lab)
            drain(t)
            pid = run_sender("udp", lab.peer_ip, str(PORT), "--count", "30", "--size", "64")
            packets, reading = collect(t, lambda ps: len(udp_of(ps, lab, pid)) >= 30)
        mine = udp_of(packets, lab, pid)
        assert len(mine) >= 30  # the syscall tie still names the sender
        assert all(p.syscall == "sendto" and p.dport == PORT for p in mine)
        assert reading.status.unavailable["identity"] == reason
    finally:
        t.close()
