"""LatencyWindow: interval naming, percentiles, window eviction, per-queue grouping."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from txtop.core.latency import (
    INTERVAL_STAGES,
    INTERVALS,
    LatencyWindow,
    intervals_ns,
    percentile,
    summarize,
    summarize_packets,
)
from txtop.core.model import STAGES, PacketTrace

S = 1_000_000_000


def pkt(
    stages: dict[str, int],
    *,
    queue: int | None = 0,
    ifindex: int = 2,
    track: str = "complete",
) -> PacketTrace:
    return PacketTrace(
        pid=100,
        tid=100,
        comm="t",
        dev="eth0",
        ifindex=ifindex,
        queue=queue,
        len=100,
        gso_segs=1,
        stages=stages,
        cpus={},
        track=track,
    )


def full(t0: int, step: int = 1000, **over: int) -> dict[str, int]:
    stages = {s: t0 + i * step for i, s in enumerate(STAGES)}
    stages.update(over)
    return stages


def test_interval_names_are_the_public_contract() -> None:
    assert INTERVALS == ("stack", "enqueue", "qdisc", "dequeue", "driver", "completion", "total")
    # Adjacent stages, in TX order, cover the whole path.
    pairs = list(INTERVAL_STAGES.values())
    assert [a for a, _ in pairs] == list(STAGES[:-1])
    assert [b for _, b in pairs] == list(STAGES[1:])


def test_intervals_of_a_complete_packet() -> None:
    p = pkt({"sendto": 0, "dev_queue": 10, "qdisc_enqueue": 15, "qdisc_dequeue": 115,
             "start_xmit": 120, "xmit": 420, "free": 1420})  # fmt: skip
    assert intervals_ns(p) == {
        "stack": 10,
        "enqueue": 5,
        "qdisc": 100,
        "dequeue": 5,
        "driver": 300,
        "completion": 1000,
        "total": 1420,
    }


def test_missing_stages_are_not_invented() -> None:
    # noqueue device: no qdisc stages; dev_queue -> start_xmit is nobody's interval.
    p = pkt({"sendto": 0, "dev_queue": 10, "start_xmit": 30, "xmit": 50, "free": 60})
    assert intervals_ns(p) == {"stack": 10, "driver": 20, "completion": 10, "total": 60}


def test_lost_track_has_no_total_and_out_of_order_is_dropped() -> None:
    p = pkt({"sendto": 0, "dev_queue": 10}, track="lost")
    assert intervals_ns(p) == {"stack": 10}
    q = pkt({"sendto": 50, "dev_queue": 10, "qdisc_enqueue": 20}, track="aged")
    assert intervals_ns(q) == {"enqueue": 10}


def test_a_drop_is_not_a_completion() -> None:
    p = PacketTrace(**{**_fields(pkt(full(0, step=10))), "free_kind": "drop"})
    assert "completion" not in intervals_ns(p)
    assert intervals_ns(p)["total"] == 60
    assert intervals_ns(p)["driver"] == 10


def _fields(p: PacketTrace) -> dict[str, object]:
    return {f: getattr(p, f) for f in PacketTrace.__slots__}


def test_percentile_nearest_rank() -> None:
    values = list(range(1, 101))
    assert percentile(values, 50) == 50
    assert percentile(values, 90) == 90
    assert percentile(values, 99) == 99
    assert percentile([7], 99) == 7
    assert summarize([]) is None
    stats = summarize([5, 1, 3])
    assert stats is not None
    assert (stats.p50, stats.p90, stats.p99, stats.max, stats.count) == (3, 5, 5, 5, 3)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10**12), min_size=1, max_size=300))
def test_summary_properties(values: list[int]) -> None:
    stats = summarize(values)
    assert stats is not None
    assert stats.count == len(values)
    assert stats.max == max(values)
    assert min(values) <= stats.p50 <= stats.p90 <= stats.p99 <= stats.max
    for p in (stats.p50, stats.p90, stats.p99):
        assert p in values
    # Nearest rank: at least pct% of the samples are <= the reported value.
    ordered = sorted(values)
    assert ordered.index(stats.p99) + ordered.count(stats.p99) >= math.ceil(0.99 * len(values))


def test_window_evicts_old_ticks() -> None:
    w = LatencyWindow(window_s=10)
    w.add([pkt(full(0, step=100))], now_ns=1 * S)
    w.add([pkt(full(5 * S, step=200))], now_ns=6 * S)
    assert w.overall()["qdisc"].count == 2
    assert w.overall()["qdisc"].max == 200
    w.add([], now_ns=11 * S + 1)  # the first tick (added at 1 s) is now older than 10 s
    assert w.overall()["qdisc"].count == 1
    assert w.overall()["qdisc"].p50 == 200
    w.add([], now_ns=17 * S)
    assert w.overall() == {}
    assert len(w) == 0


def test_window_skips_packets_that_finished_before_it() -> None:
    w = LatencyWindow(window_s=1)
    w.add([pkt(full(0))], now_ns=5 * S)  # finished at ~6 us, window starts at 4 s
    assert len(w) == 0


def test_window_restarts_when_clock_goes_back() -> None:
    w = LatencyWindow(window_s=10)
    w.add([pkt(full(9 * S))], now_ns=10 * S)
    w.add([pkt(full(0, step=7))], now_ns=1 * S)
    assert w.overall()["qdisc"].count == 1
    assert w.overall()["qdisc"].max == 7


def test_window_is_bounded() -> None:
    w = LatencyWindow(window_s=10, max_samples=50)
    for tick in range(10):
        w.add([pkt(full(tick * S // 10, step=tick + 1)) for _ in range(20)], now_ns=S)
    assert len(w) == 50
    assert w.overall()["qdisc"].count == 50
    # Only the newest 50 survive: 10 of tick 7 (step 8), 20 each of ticks 8 and 9.
    assert (w.overall()["qdisc"].p50, w.overall()["qdisc"].max) == (9, 10)


def test_per_queue_groups_by_ifindex_and_queue() -> None:
    w = LatencyWindow()
    w.add(
        [
            pkt(full(0, step=10), queue=0),
            pkt(full(0, step=20), queue=1),
            pkt(full(0, step=30), queue=1),
            pkt(full(0, step=40), queue=0, ifindex=3),
            pkt({"sendto": 0, "dev_queue": 5, "free": 9}, queue=None),  # dropped pre-queue
        ],
        now_ns=S,
    )
    per = w.per_queue()
    assert list(per) == [(2, 0), (2, 1), (3, 0)]
    assert per[(2, 1)]["qdisc"].count == 2
    assert per[(2, 1)]["qdisc"].max == 30
    assert per[(3, 0)]["total"].p50 == 240
    assert w.overall()["stack"].count == 5
    assert list(w.overall()) == [n for n in INTERVALS if n in w.overall()]  # TX order


def test_cache_is_invalidated_by_add() -> None:
    w = LatencyWindow()
    w.add([pkt(full(0, step=10))], now_ns=S)
    first = w.overall()
    w.add([pkt(full(0, step=20))], now_ns=S)
    assert w.overall() is not first
    assert w.overall()["qdisc"].count == 2


def test_summarize_packets_matches_window() -> None:
    packets = [pkt(full(0, step=s)) for s in (1, 2, 3, 4)]
    w = LatencyWindow()
    w.add(packets, now_ns=S)
    assert summarize_packets(packets) == dict(w.overall())
