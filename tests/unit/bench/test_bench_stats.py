"""Properties of the bench suite's HDR-style latency histogram."""

from __future__ import annotations

import math

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hbtrio.bench.stats import (
    PERCENTILES,
    RELATIVE_ERROR,
    LatencyHistogram,
    exact_percentile,
)

latency = st.floats(min_value=0.0, max_value=1e9, allow_nan=False, allow_infinity=False)
samples_st = st.lists(latency, min_size=1, max_size=300)
percentile_st = st.sampled_from([*PERCENTILES, 0.1, 1.0, 25.0, 75.0, 99.99, 100.0])


def _close(reported: float, exact: float) -> bool:
    return abs(reported - exact) <= exact * RELATIVE_ERROR * (1 + 1e-9) + 1e-12


@settings(max_examples=200)
@given(samples_st, percentile_st)
def test_percentile_within_error_bound_of_exact_nearest_rank(
    samples: list[float], p: float
) -> None:
    hist = LatencyHistogram(samples)
    assert _close(hist.percentile(p), exact_percentile(samples, p))


@settings(max_examples=200)
@given(samples_st)
def test_percentiles_monotone_and_exact_extremes(samples: list[float]) -> None:
    hist = LatencyHistogram(samples)
    s = hist.summary()
    chain = [s.min_us, s.p50_us, s.p90_us, s.p99_us, s.p999_us, s.max_us]
    assert chain == sorted(chain)
    assert s.min_us == min(samples)
    assert s.max_us == max(samples)
    assert s.count == len(samples)
    assert math.isclose(s.mean_us, math.fsum(samples) / len(samples), rel_tol=1e-9, abs_tol=1e-9)
    assert hist.percentile(100.0) == max(samples)


@settings(max_examples=150)
@given(samples_st, samples_st)
def test_merge_equals_union(a: list[float], b: list[float]) -> None:
    merged = LatencyHistogram(a)
    merged.merge(LatencyHistogram(b))
    union = LatencyHistogram(a + b)
    assert merged.buckets() == union.buckets()
    assert merged.count == union.count
    assert merged.min == union.min
    assert merged.max == union.max
    for p in PERCENTILES:
        assert merged.percentile(p) == union.percentile(p)


@settings(max_examples=100)
@given(samples_st)
def test_dict_round_trip_through_json(samples: list[float]) -> None:
    hist = LatencyHistogram(samples)
    data = msgspec.json.decode(msgspec.json.encode(hist.to_dict()))
    back = LatencyHistogram.from_dict(data)
    assert back.buckets() == hist.buckets()
    assert back.summary() == hist.summary()


def test_known_distribution() -> None:
    hist = LatencyHistogram(float(v) for v in range(1, 10_001))
    assert _close(hist.percentile(50), 5000)
    assert _close(hist.percentile(99), 9900)
    assert _close(hist.percentile(99.9), 9990)
    assert hist.max == 10_000
    assert hist.min == 1


def test_empty_histogram_gives_nan() -> None:
    hist = LatencyHistogram()
    assert math.isnan(hist.percentile(50))
    assert math.isnan(hist.summary().mean_us)
    assert hist.buckets() == []


def test_zero_and_negative_samples_report_zero() -> None:
    hist = LatencyHistogram([0.0, -3.0, 0.0, 10.0])
    assert hist.percentile(50) == 0.0
    assert hist.min == -3.0


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_sample_rejected(bad: float) -> None:
    with pytest.raises(ValueError):
        LatencyHistogram().record(bad)


@pytest.mark.parametrize("p", [0.0, -1.0, 100.5])
def test_percentile_out_of_range_rejected(p: float) -> None:
    with pytest.raises(ValueError):
        LatencyHistogram([1.0]).percentile(p)
    with pytest.raises(ValueError):
        exact_percentile([1.0], p)


def test_from_dict_rejects_other_layout() -> None:
    data = LatencyHistogram([1.0]).to_dict()
    data["sub_buckets"] = 8
    with pytest.raises(ValueError):
        LatencyHistogram.from_dict(data)
