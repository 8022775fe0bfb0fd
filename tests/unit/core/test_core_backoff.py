"""Backoff: bounds, cap, floor, reset after a stable connection."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hbtrio._core.backoff import MIN_DELAY, Backoff, retry_delays

initials = st.floats(min_value=1e-4, max_value=5.0)
factors = st.floats(min_value=1.0, max_value=100.0)


@settings(max_examples=200)
@given(initial=initials, factor=factors, seed=st.integers(0, 2**32), n=st.integers(1, 80))
def test_delays_within_bounds_and_capped(initial: float, factor: float, seed: int, n: int) -> None:
    cap = initial * factor
    backoff = Backoff(initial, cap, rng=random.Random(seed))
    for attempt in range(n):
        upper = min(cap, initial * 2**attempt)
        delay = backoff.next_delay()
        assert backoff.floor <= delay <= upper
        assert delay <= cap
    assert backoff.attempts == n
    assert backoff.floor == min(initial, MIN_DELAY) > 0


def test_floor_prevents_busy_loop() -> None:
    class Zero(random.Random):
        def uniform(self, a: float, b: float) -> float:
            return 0.0

    backoff = Backoff(0.1, 2.0, rng=Zero())
    assert backoff.next_delay() == MIN_DELAY
    tiny = Backoff(0.001, 0.002, rng=Zero())
    assert tiny.next_delay() == 0.001


def test_upper_bound_grows_then_caps_without_overflow() -> None:
    backoff = Backoff(0.1, 2.0, rng=random.Random(1))
    assert [backoff.upper_bound(n) for n in range(6)] == pytest.approx(
        [0.1, 0.2, 0.4, 0.8, 1.6, 2.0]
    )
    assert backoff.upper_bound(10_000) == 2.0
    assert backoff.upper_bound() == 0.1


@given(
    up_for=st.floats(min_value=0, max_value=100),
    reset_after=st.floats(min_value=0, max_value=50),
    failures=st.integers(1, 20),
)
def test_reset_only_after_stable_connection(
    up_for: float, reset_after: float, failures: int
) -> None:
    backoff = Backoff(0.1, 2.0, reset_after=reset_after, rng=random.Random(0))
    for _ in range(failures):
        backoff.next_delay()
    backoff.on_connected(0.0)
    backoff.on_disconnected(up_for)
    assert backoff.attempts == (0 if up_for >= reset_after else failures)


def test_disconnect_without_connect_keeps_attempts() -> None:
    backoff = Backoff(reset_after=0.0)
    backoff.next_delay()
    backoff.on_disconnected(5.0)
    assert backoff.attempts == 1
    backoff.reset()
    assert backoff.attempts == 0


def test_invalid_parameters() -> None:
    with pytest.raises(ValueError):
        Backoff(0.0, 1.0)
    with pytest.raises(ValueError):
        Backoff(1.0, 0.5)
    with pytest.raises(ValueError):
        Backoff(0.1, 1.0, reset_after=-1)
    with pytest.raises(ValueError):
        retry_delays(-1)


@given(retries=st.integers(0, 30), seed=st.integers(0, 1000))
def test_retry_delays(retries: int, seed: int) -> None:
    delays = retry_delays(retries, 0.05, 1.0, random.Random(seed))
    assert len(delays) == retries
    assert all(MIN_DELAY <= d <= min(1.0, 0.05 * 2**i) for i, d in enumerate(delays))
    assert delays == retry_delays(retries, 0.05, 1.0, random.Random(seed))
