"""ProbeStatus as the tracer builds it from its counters (no BPF needed)."""

from __future__ import annotations

from txtop.probes.bpf import abi
from txtop.probes.bpf.counters import probe_status, queue_of_parent
from txtop.probes.bpf.tracer import Tracer
from txtop.probes.bpf.tracks import TrackCounts


def test_skipped_runs_are_reported_apart_from_pipeline_losses() -> None:
    """Runs the kernel skipped (another BPF program on that CPU) are shown, but they are not
    txtop's own losses: no setting of ours can remove them."""
    t = Tracer()
    stats = [0] * abi.N_STATS
    stats[abi.S_RB_FULL + abi.P_DEV_QUEUE] = 3  # ring buffer full in net_dev_queue
    stats[abi.S_TRACK_LOST] = 2
    status = probe_status(t.status, stats, TrackCounts(), {"skipped:qdisc_dequeue": 7})
    assert status.lost_events == 5
    assert status.skipped_runs == 7
    assert status.breakdown["skipped:qdisc_dequeue"] == 7
    assert status.breakdown["ringbuf_full:net_dev_queue"] == 3
    t.close()


def test_running_status_keeps_the_settings_and_adds_the_counters() -> None:
    t = Tracer([3], [42], sample_every=8, max_samples_per_s=100, trace_duty=0.5)
    stats = [0] * abi.N_STATS
    stats[abi.S_SAMPLED], stats[abi.S_RATE_LIMITED], stats[abi.S_DQL_STALL] = 11, 4, 2
    stats[abi.S_TRACK_AGED] = 1
    counts = TrackCounts(aged=2, cut=5, exit_missed=1, evicted=3, decode_errors=1)
    status = probe_status(t.status, stats, counts, {})
    assert status.state == "running" and status.reason == ""
    assert status.sampling == {
        "every": 8,
        "max_per_s": 100,
        "sampled": 11,
        "rate_limited": 4,
        "sys_exit_unmatched": 1,
        "window_cut": 5,  # cut tracks are not losses
    }
    assert list(status.sampling) == [  # the JSON's key order
        "every", "max_per_s", "sampled", "rate_limited", "sys_exit_unmatched", "window_cut"
    ]  # fmt: skip
    assert status.breakdown == {"track_aged": 3, "track_evicted": 3, "decode_errors": 1}
    assert status.lost_events == 7 and status.skipped_runs == 0
    assert status.filters == {"ifindexes": [3], "pids": [42]}
    assert (status.trace_mode, status.trace_duty_pct, status.bql_stalls) == ("fixed", 50.0, 2)
    t.close()


def test_status_before_start() -> None:
    t = Tracer()
    st = t.status
    assert (st.state, st.reason) == ("starting", "compiling probes...")
    assert st.sampling == {"every": 16, "max_per_s": 200, "sampled": 0, "rate_limited": 0}
    assert (st.trace_mode, st.trace_duty_pct) == ("auto", 100.0)
    assert t.read().status == st and t.xmit_errors_by_rc() == {}
    t.close()
    assert (t.status.state, t.status.reason) == ("off", "probes detached")


def test_queue_of_parent() -> None:
    assert queue_of_parent(0xFFFFFFFF) == 0  # root qdisc
    assert queue_of_parent(0x00010001) == 0  # mq class 1:1 -> tx-0
    assert queue_of_parent(0x00010004) == 3
    assert queue_of_parent(0x00010000) == 0  # a qdisc's own handle (minor 0)
