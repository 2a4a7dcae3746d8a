"""ProbeStatus as the tracer builds it from its counters (no BPF needed)."""

from __future__ import annotations


def test_skipped_runs_are_reported_apart_from_pipeline_losses(monkeypatch):
    """Runs the kernel skipped (another BPF program on that CPU) are shown, but they are not
    txtop's own losses: no setting of ours can remove them."""
    from txtop.probes.bpf import tracer as tr

    t = tr.Tracer()
    monkeypatch.setattr(t, "_recursion_misses", lambda: {"skipped:qdisc_dequeue": 7})
    stats = [0] * (tr.S_RB_FULL + len(tr.PROBE_IDS))
    stats[tr.S_RB_FULL + 1] = 3  # ring buffer full in the second probe
    stats[tr.S_TRACK_LOST] = 2
    status = t._status_from(stats)
    assert status.lost_events == 5
    assert status.skipped_runs == 7
    assert status.breakdown["skipped:qdisc_dequeue"] == 7
    assert status.breakdown[f"ringbuf_full:{tr.PROBE_IDS[1]}"] == 3
    t.close()
