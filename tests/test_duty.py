"""Trace windows (probes/bpf/duty.py): geometry, the auto duty, and the state machine, on a fake
clock. The tracer side (what really gets attached) is tested in tests/test_tracer_lab.py."""

from __future__ import annotations

import pytest

from txtop.probes.bpf import duty
from txtop.probes.bpf.duty import CLOSED, DRAINING, OPEN, TraceWindows, auto_duty, window_geometry


def test_geometry_short_windows_at_low_duty() -> None:
    assert window_geometry(1.0) is None
    w, p = window_geometry(0.05)  # type: ignore[misc]
    assert w == pytest.approx(0.15) and p == pytest.approx(3.0)
    w, p = window_geometry(0.001)  # type: ignore[misc]  # clamped to MIN_DUTY
    assert w == pytest.approx(duty.MIN_WINDOW_S) and p == pytest.approx(20.0)


def test_geometry_leaves_room_for_detach_or_goes_continuous() -> None:
    for d in (0.05, 0.1, 0.2, 0.3, 0.5, 0.6):
        geom = window_geometry(d)
        assert geom is not None, d
        w, p = geom
        assert p - w >= duty.MIN_CLOSED_S - 1e-9 and w / p == pytest.approx(d)
    assert window_geometry(0.9) is None  # would need windows longer than MAX_LONG_WINDOW_S


def test_auto_duty_follows_the_packet_rate() -> None:
    assert auto_duty(0, 0) == 1.0
    assert auto_duty(10_000, 10_000) == 1.0  # a quiet box is traced all the time
    busy = auto_duty(1_200_000, 1_200_000)  # the reference flood: under 2%
    assert 0.01 < busy < 0.02
    cost = (1_200_000 * duty.COST_NS_PER_PACKET + 1_200_000 * duty.COST_NS_PER_SOFTIRQ) / 1e9
    geom = window_geometry(busy)
    assert geom is not None
    # traced time plus each window's detach tail fit the budget
    assert busy * cost * (1 + duty.DETACH_TAIL_S / geom[0]) == pytest.approx(duty.DEFAULT_BUDGET)
    assert auto_duty(1e9, 0) == duty.MIN_DUTY
    assert auto_duty(1_200_000, 0, budget=0.5) == 1.0


def test_bad_duty_and_budget_refused() -> None:
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError):
            TraceWindows(bad)
    with pytest.raises(ValueError):
        TraceWindows(None, budget=0)
    with pytest.raises(ValueError):
        TraceWindows().set_fixed(2.0)


def test_continuous_never_closes() -> None:
    w = TraceWindows(1.0)
    assert w.start(0.0).attach_sampling
    for t in range(1, 100):
        step = w.step(t / 10, live_tracks=0)
        assert step.state == OPEN and not step.detach_sampling
    assert w.totals(10.0) == (10.0, 10.0)


def test_fixed_duty_cycle_and_accounting() -> None:
    w = TraceWindows(0.1)  # 0.3 s every 3 s
    assert w.mode == "fixed" and window_geometry(0.1) == pytest.approx((0.3, 3.0))
    first = w.start(0.0)
    assert first.state == OPEN and first.attach_late and first.attach_sampling
    assert w.step(0.2, 0).state == OPEN
    drain = w.step(0.3, live_tracks=3)
    assert drain.state == DRAINING and drain.detach_sampling and not drain.detach_late
    assert w.step(0.4, live_tracks=1).state == DRAINING  # a track still in flight
    closed = w.step(0.45, live_tracks=0)
    assert closed.state == CLOSED and closed.detach_late and closed.window_ended
    assert w.step(1.0, 0).state == CLOSED
    # The next window waits for the detaches of the last one.
    assert w.step(3.0, 0, closing_busy=True).state == CLOSED
    reopen = w.step(3.05, 0)
    assert reopen.state == OPEN and reopen.attach_late and reopen.attach_sampling
    open_s, late_s = w.totals(3.15)
    assert open_s == pytest.approx(0.3 + 0.1) and late_s == pytest.approx(0.45 + 0.1)


def test_drain_gives_up_after_the_grace() -> None:
    w = TraceWindows(0.05)  # 0.15 s windows
    w.start(0.0)
    assert w.step(0.16, 5).state == DRAINING
    assert w.step(0.16 + duty.DRAIN_GRACE_S - 0.01, 5).state == DRAINING
    assert w.step(0.16 + duty.DRAIN_GRACE_S, 5).state == CLOSED


def test_auto_measures_then_windows_then_back_to_continuous() -> None:
    w = TraceWindows(None)
    assert w.mode == "auto" and w.duty == 1.0
    w.start(0.0)
    w.measured(packets=0, softirqs=0, seconds=0.01)  # too short to trust: no change
    assert w.duty == 1.0
    w.measured(packets=120_000, softirqs=120_000, seconds=0.1)  # 1.2 Mpps
    assert w.duty < 0.05
    step = w.step(0.2, 0)
    assert step.state == DRAINING  # the open window is over at once
    assert w.step(0.21, 0).state == CLOSED
    geom = window_geometry(w.duty)
    assert geom is not None
    t = 0.21
    while w.state == CLOSED and t < 20:
        t += 0.05
        w.step(t, 0)
    assert w.state == OPEN and t == pytest.approx(
        max(geom[1], 0.21 + duty.MIN_CLOSED_S / 2), abs=0.06
    )
    w.measured(packets=10, softirqs=10, seconds=0.1)  # the flood stopped
    assert w.duty == 1.0
    # continuous again: a draining window re-opens instead of closing
    w2 = TraceWindows(None)
    w2.start(0.0)
    w2.measured(packets=120_000, softirqs=0, seconds=0.1)
    assert w2.step(0.3, 4).state == DRAINING
    w2.measured(packets=0, softirqs=0, seconds=0.1)
    back = w2.step(0.31, 4)
    assert back.state == OPEN and back.attach_sampling


def test_fixed_ignores_measurements_and_set_fixed_switches() -> None:
    w = TraceWindows(0.2)
    w.measured(10**9, 10**9, 1.0)
    assert w.duty == 0.2
    w.set_fixed(None)
    assert w.mode == "auto" and w.duty == 1.0
    w.set_fixed(0.5)
    assert w.mode == "fixed" and w.duty == 0.5


def test_raw_hooks_have_no_detach_tail_and_windows_come_closer() -> None:
    # Every hook raw (probes/bpf/hooks.py): nothing keeps running after a detach, so auto
    # spends its whole budget inside windows, and high duties still get windows.
    cost_pps = 1_200_000
    classic = auto_duty(cost_pps, 0)
    raw = auto_duty(cost_pps, 0, detach=duty.RAW_DETACH)
    assert raw > classic
    assert window_geometry(0.8) is None  # classic: the closed part could not hold the detaches
    w, p = window_geometry(0.8, duty.RAW_DETACH)  # type: ignore[misc]
    assert p - w >= duty.RAW_DETACH.min_closed_s - 1e-9 and w / p == pytest.approx(0.8)
    windows = TraceWindows(None)
    windows.detach = duty.RAW_DETACH
    windows.measured(cost_pps, 0, 1.0)
    assert windows.duty == pytest.approx(raw)
    assert windows.geometry() == window_geometry(raw, duty.RAW_DETACH)


def test_sampling_duty_follows_windows_that_run_over() -> None:
    w = TraceWindows(0.05)
    w.detach = duty.RAW_DETACH
    assert w.sampling_duty() == pytest.approx(0.05)
    window, period = w.geometry()  # type: ignore[misc]
    t = 0.0
    w.start(t)
    for _ in range(12):  # every window closes at twice its planned length
        w.step(t + 2 * window, live_tracks=0)
        w.step(t + 2 * window + 0.01, live_tracks=0)  # drained: closed
        t += period
        w.step(t, live_tracks=0)  # the next one opens
    assert w.sampling_duty() == pytest.approx(0.1, rel=0.05)
    assert TraceWindows(1.0).sampling_duty() == 1.0


def test_the_shortest_raw_window_still_measures_and_returns_to_continuous() -> None:
    # The CI failure this guards: windows of exactly MIN_MEASURE_S measured 0.039 s and were
    # ignored, so auto stayed at the minimum duty after the traffic stopped.
    window, _ = window_geometry(duty.MIN_DUTY, duty.RAW_DETACH)  # type: ignore[misc]
    assert window >= 2 * duty.MIN_MEASURE_S
    w = TraceWindows(None)
    w.detach = duty.RAW_DETACH
    w.measured(5_000_000, 5_000_000, 0.1)
    assert w.duty == duty.MIN_DUTY
    w.measured(0, 0, window * 0.95)  # a window cut a little short by the step timing
    assert w.duty == 1.0
