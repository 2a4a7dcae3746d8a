"""Rates from two readings of cumulative kernel counters (pure functions).

Policy, the same everywhere in txtop:
- interval <= 0 (first reading, clock trouble): every rate is 0.0.
- a key present now but not before (new device, queue, CPU): 0.0 - we do not know when its
  counting started, and a re-created device may start with a large value.
- a key that vanished: simply absent from the result.
- current < previous: for a counter of known width (``width_bits``, e.g. 32 for the u32 columns
  of /proc/softirqs and softnet_stat) a wrap is assumed when the wrapped delta is under half the
  range; otherwise it is a reset (device re-created, stats cleared) and the delta is the current
  value - what was counted since the reset, a lower bound. Never negative.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import TypeVar

K = TypeVar("K", bound=Hashable)


def counter_delta(prev: int | None, cur: int, width_bits: int | None = None) -> int:
    """How much a cumulative counter advanced from ``prev`` to ``cur`` (see module policy)."""
    if prev is None or cur < 0:
        return 0
    if cur >= prev:
        return cur - prev
    if width_bits:
        span = 1 << width_bits
        if 0 <= prev < span and cur < span:
            wrapped = cur + span - prev
            if wrapped < span // 2:
                return wrapped
    return cur  # reset: counted since it restarted from zero


def rate(prev: int | None, cur: int, interval_s: float, width_bits: int | None = None) -> float:
    """Per-second rate of one counter; 0.0 without a previous value or a positive interval."""
    if prev is None or not interval_s > 0:  # also catches NaN
        return 0.0
    return counter_delta(prev, cur, width_bits) / interval_s


def rates(
    prev: Mapping[K, int],
    cur: Mapping[K, int],
    interval_s: float,
    width_bits: int | None = None,
) -> dict[K, float]:
    """Per-key rates for the keys of ``cur`` (new keys 0.0, vanished keys dropped)."""
    return {k: rate(prev.get(k), v, interval_s, width_bits) for k, v in cur.items()}
