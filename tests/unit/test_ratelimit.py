"""Token bucket (sans-IO): waits, burst, ordering, long-run rate."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hbtrio._core.ratelimit import TokenBucket


def test_burst_then_spacing() -> None:
    bucket = TokenBucket(rate=10, burst=3)
    assert [bucket.acquire(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.acquire(0.0) == pytest.approx(0.1)
    assert bucket.acquire(0.0) == pytest.approx(0.2)  # queued behind the previous caller


def test_refill_is_capped_at_burst() -> None:
    bucket = TokenBucket(rate=2, burst=2)
    bucket.acquire(0.0)
    bucket.acquire(0.0)
    assert bucket.available(100.0) == 2.0
    assert bucket.acquire(100.0) == 0.0


def test_time_going_back_is_no_time() -> None:
    bucket = TokenBucket(rate=1)
    bucket.acquire(10.0)
    assert bucket.acquire(5.0) == pytest.approx(1.0)


def test_for_rate_burst_is_one_second() -> None:
    assert TokenBucket.for_rate(10).burst == 10
    assert TokenBucket.for_rate(0.5).burst == 1


@pytest.mark.parametrize(
    ("rate", "burst"), [(0, 1), (-1, 1), (math.inf, 1), (math.nan, 1), (1, 0.5), (1, math.inf)]
)
def test_invalid_parameters(rate: float, burst: float) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate, burst)


@settings(max_examples=200)
@given(
    rate=st.floats(min_value=0.1, max_value=1000),
    burst=st.integers(min_value=1, max_value=50),
    gaps=st.lists(st.floats(min_value=0, max_value=2), min_size=1, max_size=100),
)
def test_never_faster_than_rate_plus_burst(rate: float, burst: int, gaps: list[float]) -> None:
    """Over any run, the granted start times never exceed burst + rate * elapsed."""
    bucket = TokenBucket(rate, burst)
    now = 0.0
    starts: list[float] = []
    for gap in gaps:
        now += gap
        wait = bucket.acquire(now)
        assert wait >= 0
        starts.append(now + wait)
    # Starts are granted in request order.
    assert all(b >= a - 1e-9 for a, b in itertools.pairwise(starts))
    for i, start in enumerate(starts):
        # Requests 0..i all started by `start`: at most burst + rate * start of them.
        assert i + 1 <= burst + rate * start + 1e-6
