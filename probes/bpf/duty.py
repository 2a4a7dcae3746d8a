"""Trace windows: how much of the time the per-packet probes are attached.

An attached tracepoint costs every packet that passes it, whether or not the packet is sampled:
on this project's reference flood (64-byte UDP over veth, bench/RESULTS.md) the kernel's
dispatch of one classic tracepoint (``perf_trace_<event>`` building the record, then
``trace_call_bpf``) costs more than the program body, and all of txtop's per-packet probes
together cost about a third of the sender's time. Sampling 1 in N cannot remove that: the
1-in-N decision is itself made in a probe.

So on a busy box the probes are attached only part of the time: a *window* of W seconds in
every P, with W / P = the duty. Between windows no per-packet program is attached at all and
the traffic runs at full speed. Counts and times measured inside windows are divided by the
time the windows were open, which makes them rates over the whole interval (an unbiased
estimate when the traffic is steady over a period). With ``duty = 1`` nothing changes: the
probes stay attached and every counter is exact.

``auto`` (the default) picks the duty from the packet rate the last window saw, so that the
estimated cost of the probes stays under a budget (a share of one CPU): quiet machines and
labs are traced continuously, a flood gets short windows.

This module is pure (no kernel access): the tracer feeds it the clock, the packet rates and
the number of live tracks, and carries out what it says (attach / detach hook groups).
"""

from __future__ import annotations

from dataclasses import dataclass

# Estimated cost of the attached probes per event while tracing, measured on the reference
# flood (64-byte UDP over veth; bench/RESULTS.md, "raw hooks"): with every hook a raw
# tracepoint, about 450 ns of the sender's time per packet, most of it the kernel's dispatch
# of ~9 raw tracepoints (empty programs on the same tracepoints cost nearly as much on this
# retpoline VM), of which the two NET_RX softirq programs run once per packet on veth. Real
# NICs raise far fewer softirqs.
COST_NS_PER_PACKET = 370.0
COST_NS_PER_SOFTIRQ = 80.0
DEFAULT_BUDGET = 0.01  # auto keeps the probes under ~1% of one CPU
MIN_DUTY = 0.005  # at least 100 ms traced every 20 s, however busy
MIN_WINDOW_S = 0.1
MAX_WINDOW_S = 0.3
WINDOW_PER_DUTY_S = 3.0  # window = duty x this, within the bounds above
# A classic tracepoint keeps costing every packet until its detach completes (closes run one
# after the other, ~70-100 ms each, the busiest first): on the reference flood the sender lost
# about as much in the 0.4 s after each window as in 80 ms fully traced. Auto counts it.
DETACH_TAIL_S = 0.08
# Detaching a classic tracepoint waits for RCU grace periods in the kernel (~70 ms each,
# ~0.75 s for all of txtop's, closed one after the other on a background thread): the closed
# part of a period must leave room for that, so long windows are used above this.
MIN_CLOSED_S = 1.0
MAX_LONG_WINDOW_S = 2.0
# When a window ends, the later-stage probes stay attached until the tracks begun in it end
# (or this long), so a sampled packet is seen to its free and not cut off at the window edge.
DRAIN_GRACE_S = 0.5
# Auto: a packet rate measured over less than this is not trusted to change the duty. (A
# flood shows thousands of packets in it; a quiet link few, and the duty then goes up: the
# safe direction.) Windows are never shorter than twice this, so each one measures.
MIN_MEASURE_S = 0.02
CONTINUOUS_MEASURE_S = 0.05  # continuous tracing re-checks the rate this often

OPEN, DRAINING, CLOSED = "open", "draining", "closed"


@dataclass(frozen=True, slots=True)
class Detach:
    """What closing a window costs, by the form of the hooks (probes/bpf/hooks.py), and the
    window shape that follows: classic tracepoints keep running until their perf events close
    (the tail) and need closed time for the RCU waits, so their windows are long and rare;
    raw ones attach and detach in well under a millisecond, so windows can be short and come
    about once a second, and the waterfall under a flood gets packets every second or two."""

    min_closed_s: float
    tail_s: float
    window_per_duty_s: float = WINDOW_PER_DUTY_S  # window = duty x this (= the period)...
    min_window_s: float = MIN_WINDOW_S  # ...within these bounds
    max_window_s: float = MAX_WINDOW_S


CLASSIC_DETACH = Detach(MIN_CLOSED_S, DETACH_TAIL_S)
RAW_DETACH = Detach(0.2, 0.0, window_per_duty_s=1.0, min_window_s=2 * MIN_MEASURE_S)


def window_geometry(duty: float, detach: Detach = CLASSIC_DETACH) -> tuple[float, float] | None:
    """(window_s, period_s) for a duty below 1, or None when the probes should stay attached.

    Short windows (100-300 ms, about every 1-20 s) at low duties; when that would leave too
    little closed time for the detach to finish, longer windows; above that, continuous."""
    if duty >= 1.0:
        return None
    duty = max(MIN_DUTY, duty)
    window = min(detach.max_window_s, max(detach.min_window_s, duty * detach.window_per_duty_s))
    if window / duty - window < detach.min_closed_s:
        window = detach.min_closed_s * duty / (1.0 - duty)
        if window > MAX_LONG_WINDOW_S:
            return None
    return window, window / duty


def auto_duty(
    packets_per_s: float,
    softirqs_per_s: float,
    budget: float = DEFAULT_BUDGET,
    detach: Detach = CLASSIC_DETACH,
) -> float:
    """The duty that keeps the probes' estimated cost within ``budget`` of one CPU: traced
    time plus each window's detach tail, cost * duty * (1 + tail / window) <= budget."""
    cost = (packets_per_s * COST_NS_PER_PACKET + softirqs_per_s * COST_NS_PER_SOFTIRQ) / 1e9
    if cost <= 0:
        return 1.0
    duty = budget / cost
    for _ in range(3):  # the window depends on the duty: a few rounds settle it
        geom = window_geometry(duty, detach)
        if duty >= 1.0 or geom is None:
            return 1.0
        duty = budget / (cost * (1.0 + detach.tail_s / geom[0]))
    return max(MIN_DUTY, min(duty, 1.0))


@dataclass(frozen=True, slots=True)
class Step:
    """What the tracer must do now: attach the late-stage group, the sampling group, both, or
    detach them. ``state`` is the state after the step."""

    state: str
    attach_late: bool = False
    attach_sampling: bool = False
    detach_sampling: bool = False
    detach_late: bool = False
    window_ended: bool = False  # a window just closed: its measurements are complete


class TraceWindows:
    """The open/draining/closed state machine. ``fixed`` is a duty in (0, 1], or None for
    auto. Times are seconds of a monotonic clock, given by the caller."""

    def __init__(self, fixed: float | None = None, budget: float = DEFAULT_BUDGET) -> None:
        if fixed is not None and not 0.0 < fixed <= 1.0:
            raise ValueError(f"trace duty must be in (0, 1], got {fixed!r}")
        if not 0.0 < budget <= 1.0:
            raise ValueError(f"trace budget must be in (0, 1], got {budget!r}")
        self.fixed = fixed
        self.budget = budget
        self.duty = 1.0 if fixed is None else fixed
        self.detach = CLASSIC_DETACH  # RAW_DETACH once the tracer knows every hook is raw
        self.state = CLOSED
        self.opened_at = 0.0
        self.drain_at = 0.0
        self.next_open = 0.0
        self.open_s = 0.0  # cumulative time in OPEN (sampling probes attached)
        self.late_s = 0.0  # cumulative time in OPEN or DRAINING (late probes attached)
        self._since = 0.0  # when open_s / late_s were last brought up to date
        self._overrun = 1.0  # recent windows' length / planned length (moving average)

    @property
    def mode(self) -> str:
        return "auto" if self.fixed is None else "fixed"

    def set_fixed(self, fixed: float | None) -> None:
        if fixed is not None and not 0.0 < fixed <= 1.0:
            raise ValueError(f"trace duty must be in (0, 1], got {fixed!r}")
        self.fixed = fixed
        self.duty = 1.0 if fixed is None else fixed

    def _account(self, now: float) -> None:
        dt = max(0.0, now - self._since)
        if self.state == OPEN:
            self.open_s += dt
            self.late_s += dt
        elif self.state == DRAINING:
            self.late_s += dt
        self._since = now

    def totals(self, now: float) -> tuple[float, float]:
        """(open_s, late_s) up to ``now``."""
        self._account(now)
        return self.open_s, self.late_s

    def measured(self, packets: int, softirqs: int, seconds: float) -> None:
        """Auto mode: the packets and softirq runs the probes counted over ``seconds`` of
        open time. Fixed mode ignores it."""
        if self.fixed is not None or seconds < MIN_MEASURE_S:
            return
        self.duty = auto_duty(packets / seconds, softirqs / seconds, self.budget, self.detach)

    def sampling_duty(self) -> float:
        """The share of the time new tracks may start, as the windows really run: the duty,
        stretched by how far recent windows ran over their planned length."""
        if self.geometry() is None:
            return 1.0
        return min(1.0, self.duty * self._overrun)

    def geometry(self) -> tuple[float, float] | None:
        """(window_s, period_s) at the duty in force, or None when continuous."""
        return window_geometry(self.duty, self.detach)

    def start(self, now: float) -> Step:
        """At attach time: open the first window (auto measures the rate in it)."""
        self._since = now
        self.state = OPEN
        self.opened_at = now
        return Step(OPEN, attach_late=True, attach_sampling=True)

    def next_deadline(self, now: float) -> float | None:
        """When ``step`` next has something to do (None: only on a measurement)."""
        geom = self.geometry()
        if self.state == OPEN:
            return None if geom is None else self.opened_at + geom[0]
        if self.state == DRAINING:
            return now  # checked every poll: it ends when the tracks do
        return self.next_open

    def step(self, now: float, live_tracks: int, closing_busy: bool = False) -> Step:
        """Advance to ``now``. ``live_tracks``: tracks begun and not yet ended;
        ``closing_busy``: detaches from the last window are still running in the kernel (a
        classic tracepoint cannot be attached again until they finish)."""
        self._account(now)
        geom = self.geometry()
        if self.state == OPEN:
            if geom is not None and now >= self.opened_at + geom[0]:
                # Windows end at the first step after their end (a poll, a tick): short ones
                # run over by a good part of themselves. Remembered, so that the sampling cap
                # divides by the share really traced (sampling_duty).
                over = (now - self.opened_at) / geom[0]
                self._overrun = 0.7 * self._overrun + 0.3 * min(over, 4.0)
                self.state = DRAINING
                self.drain_at = now
                self.next_open = self.opened_at + geom[1]
                return Step(DRAINING, detach_sampling=True)
            return Step(OPEN)
        if self.state == DRAINING:
            if geom is None:  # the duty went up to continuous meanwhile
                self.state = OPEN
                self.opened_at = now
                return Step(OPEN, attach_sampling=True)
            if live_tracks <= 0 or now >= self.drain_at + DRAIN_GRACE_S:
                self.state = CLOSED
                self.next_open = max(self.next_open, now + self.detach.min_closed_s / 2)
                return Step(CLOSED, detach_late=True, window_ended=True)
            return Step(DRAINING)
        # CLOSED
        if (geom is None or now >= self.next_open) and not closing_busy:
            self.state = OPEN
            self.opened_at = now
            return Step(OPEN, attach_late=True, attach_sampling=True)
        return Step(CLOSED)
