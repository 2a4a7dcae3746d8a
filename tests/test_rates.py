"""Rate maths: deltas, resets, u32 wraps, appearing and vanishing keys, bad intervals."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from txtop.core.rates import counter_delta, rate, rates


def test_plain_delta_and_rate() -> None:
    assert counter_delta(100, 250) == 150
    assert rate(100, 250, 0.5) == 300.0


def test_reset_uses_current_value() -> None:
    # Device re-created / stats cleared: what was counted since the reset, never negative.
    assert counter_delta(1_000_000, 40) == 40
    assert rate(1_000_000, 40, 2.0) == 20.0
    assert counter_delta(10, 0) == 0


def test_u32_wrap_vs_reset() -> None:
    span = 1 << 32
    assert counter_delta(span - 10, 5, width_bits=32) == 15  # wrapped
    # A drop by more than half the range is a reset, not a wrap.
    assert counter_delta(span // 4, 7, width_bits=32) == 7
    # Values that do not fit the declared width cannot have wrapped at it.
    assert counter_delta(span + 5, 3, width_bits=32) == 3


def test_first_reading_and_bad_intervals() -> None:
    assert rate(None, 10, 1.0) == 0.0
    assert rate(1, 10, 0.0) == 0.0
    assert rate(1, 10, -1.0) == 0.0
    assert rate(1, 10, math.nan) == 0.0


def test_rates_keys_appear_and_vanish() -> None:
    prev = {"eth0": 100, "gone": 5, "veth0": 50}
    cur = {"eth0": 300, "veth0": 10, "new": 999_999}
    assert rates(prev, cur, 2.0) == {"eth0": 100.0, "veth0": 5.0, "new": 0.0}


@given(
    st.one_of(st.none(), st.integers(0, 2**64)),
    st.integers(0, 2**64),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([None, 32, 64]),
)
def test_fuzz_rate_never_negative(prev, cur, interval, width) -> None:
    r = rate(prev, cur, interval, width)
    assert r >= 0.0 and not math.isnan(r)
