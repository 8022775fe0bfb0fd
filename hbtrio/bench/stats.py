"""HDR-style latency statistics.

``LatencyHistogram`` records latencies in microseconds into logarithmic
buckets: every power-of-two range ``[2**e, 2**(e+1))`` is split into
``SUB_BUCKETS`` equal sub-buckets, so a bucket is at most ``1/1024`` of its
lower bound wide. A percentile is reported as the midpoint of the bucket that
holds the exact nearest-rank sample, clamped to the exact ``[min, max]``, hence:

    ``|reported - exact| <= exact / 2048``  (relative error below 0.049 %,
    i.e. at least three significant digits),

where *exact* is the nearest-rank percentile of the recorded samples (the
smallest sample such that at least ``p`` % of the samples are ``<=`` it).
``count``, ``min``, ``max`` and ``mean`` are exact. Zero and negative samples
(clock quirks) are kept in a bucket of their own whose value is exactly ``0``.

Histograms merge losslessly (bucket counts add), so the merge of two histograms
equals the histogram of the union of their samples.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Final

import msgspec

__all__ = [
    "PERCENTILES",
    "RELATIVE_ERROR",
    "SUB_BUCKETS",
    "LatencyHistogram",
    "LatencySummary",
    "exact_percentile",
]

#: Sub-buckets per power of two.
SUB_BUCKETS: Final = 1024
#: Bound of the relative error of a reported percentile.
RELATIVE_ERROR: Final = 1.0 / (2 * SUB_BUCKETS)
#: The percentiles every summary reports.
PERCENTILES: Final = (50.0, 90.0, 99.0, 99.9)

_ZERO_KEY: Final = -(2**62)  # bucket of samples <= 0


def _key(value: float) -> int:
    """Bucket key of a positive sample: ``exponent * SUB_BUCKETS + sub``."""
    mantissa, exponent = math.frexp(value)  # value = mantissa * 2**exponent, 0.5 <= mantissa < 1
    sub = int((mantissa * 2.0 - 1.0) * SUB_BUCKETS)
    if sub >= SUB_BUCKETS:  # pragma: no cover - float rounding guard
        sub = SUB_BUCKETS - 1
    return (exponent - 1) * SUB_BUCKETS + sub


def _midpoint(key: int) -> float:
    """Value reported for a bucket: the midpoint of its range."""
    if key == _ZERO_KEY:
        return 0.0
    exponent, sub = divmod(key, SUB_BUCKETS)
    return math.ldexp(1.0 + (sub + 0.5) / SUB_BUCKETS, exponent)


def exact_percentile(samples: Iterable[float], percentile: float) -> float:
    """Exact nearest-rank percentile, the reference the histogram approximates.

    Args:
        samples: The samples (not necessarily sorted); at least one.
        percentile: In ``(0, 100]``.

    Returns:
        The smallest sample ``x`` such that at least ``percentile`` % of the
        samples are ``<= x``.

    Raises:
        ValueError: No samples, or ``percentile`` out of range.
    """
    ordered = sorted(samples)
    if not ordered:
        raise ValueError("no samples")
    if not 0.0 < percentile <= 100.0:
        raise ValueError("percentile must be in (0, 100]")
    rank = max(1, math.ceil(percentile / 100.0 * len(ordered) - 1e-9))
    return ordered[rank - 1]


class LatencySummary(msgspec.Struct, frozen=True, kw_only=True):
    """The figures of one histogram, in microseconds.

    Attributes:
        count: Number of samples.
        mean_us: Exact mean.
        min_us: Exact minimum.
        p50_us: Median (within ``RELATIVE_ERROR``).
        p90_us: 90th percentile.
        p99_us: 99th percentile.
        p999_us: 99.9th percentile.
        max_us: Exact maximum.
    """

    count: int
    mean_us: float
    min_us: float
    p50_us: float
    p90_us: float
    p99_us: float
    p999_us: float
    max_us: float


class LatencyHistogram:
    """A log-bucketed latency histogram with a bounded relative error.

    Args:
        samples: Optional samples (microseconds) to record at once.
    """

    __slots__ = ("_counts", "_max", "_min", "_sum", "count")

    def __init__(self, samples: Iterable[float] = ()) -> None:
        self._counts: dict[int, int] = {}
        self.count = 0
        self._sum = 0.0
        self._min = math.inf
        self._max = -math.inf
        self.record_many(samples)

    def record(self, value_us: float) -> None:
        """Record one sample.

        Args:
            value_us: Latency in microseconds (finite).

        Raises:
            ValueError: ``value_us`` is NaN or infinite.
        """
        if not math.isfinite(value_us):
            raise ValueError("a latency sample must be finite")
        key = _key(value_us) if value_us > 0.0 else _ZERO_KEY
        self._counts[key] = self._counts.get(key, 0) + 1
        self.count += 1
        self._sum += value_us
        if value_us < self._min:
            self._min = value_us
        if value_us > self._max:
            self._max = value_us

    def record_many(self, values_us: Iterable[float]) -> None:
        """Record several samples.

        Args:
            values_us: Latencies in microseconds.

        Raises:
            ValueError: A sample is NaN or infinite.
        """
        for value in values_us:
            self.record(value)

    def merge(self, other: LatencyHistogram) -> None:
        """Add every sample of ``other`` to this histogram (in place).

        Args:
            other: Another histogram; left unchanged.
        """
        for key, n in other._counts.items():
            self._counts[key] = self._counts.get(key, 0) + n
        self.count += other.count
        self._sum += other._sum
        self._min = min(self._min, other._min)
        self._max = max(self._max, other._max)

    @property
    def min(self) -> float:
        """Exact minimum (``nan`` when empty)."""
        return self._min if self.count else math.nan

    @property
    def max(self) -> float:
        """Exact maximum (``nan`` when empty)."""
        return self._max if self.count else math.nan

    @property
    def mean(self) -> float:
        """Exact mean (``nan`` when empty)."""
        return self._sum / self.count if self.count else math.nan

    def percentile(self, percentile: float) -> float:
        """Nearest-rank percentile within ``RELATIVE_ERROR``.

        Args:
            percentile: In ``(0, 100]``.

        Returns:
            The percentile in microseconds (``nan`` when empty).

        Raises:
            ValueError: ``percentile`` out of range.
        """
        if not 0.0 < percentile <= 100.0:
            raise ValueError("percentile must be in (0, 100]")
        if not self.count:
            return math.nan
        rank = max(1, math.ceil(percentile / 100.0 * self.count - 1e-9))
        if rank >= self.count:
            return self._max
        seen = 0
        for key in sorted(self._counts):
            seen += self._counts[key]
            if seen >= rank:
                return min(max(_midpoint(key), self._min), self._max)
        return self._max  # pragma: no cover - counts always add up to count

    def percentiles(self, percentiles: Iterable[float] = PERCENTILES) -> dict[float, float]:
        """Several percentiles in one pass over the buckets.

        Args:
            percentiles: Each in ``(0, 100]``.

        Returns:
            ``{percentile: value_us}``.
        """
        return {p: self.percentile(p) for p in percentiles}

    def summary(self) -> LatencySummary:
        """The standard figures.

        Returns:
            A ``LatencySummary`` (``nan`` figures when empty).
        """
        p = self.percentiles()
        return LatencySummary(
            count=self.count,
            mean_us=self.mean,
            min_us=self.min,
            p50_us=p[50.0],
            p90_us=p[90.0],
            p99_us=p[99.0],
            p999_us=p[99.9],
            max_us=self.max,
        )

    def buckets(self) -> list[tuple[float, int]]:
        """The non-empty buckets, for plots and the JSON file.

        Returns:
            ``[(bucket_midpoint_us, count), ...]`` in increasing order.
        """
        return [(_midpoint(k), self._counts[k]) for k in sorted(self._counts)]

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready, lossless form (see ``from_dict``).

        Returns:
            ``{"count", "sum", "min", "max", "sub_buckets", "counts": {key: n}}``.
        """
        return {
            "count": self.count,
            "sum": self._sum,
            "min": self.min if self.count else None,
            "max": self.max if self.count else None,
            "sub_buckets": SUB_BUCKETS,
            "counts": {str(k): n for k, n in sorted(self._counts.items())},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> LatencyHistogram:
        """Rebuild a histogram written by ``to_dict``.

        Args:
            data: The dict.

        Returns:
            The histogram.

        Raises:
            ValueError: The dict was written with another bucket layout or is malformed.
        """
        if data.get("sub_buckets") != SUB_BUCKETS:
            raise ValueError("histogram written with another bucket layout")
        counts = data.get("counts")
        if not isinstance(counts, Mapping):
            raise ValueError("histogram without counts")
        hist = cls()
        hist._counts = {int(k): int(v) for k, v in counts.items()}
        hist.count = sum(hist._counts.values())
        total = data.get("sum")
        hist._sum = float(total) if isinstance(total, int | float) else 0.0
        lo, hi = data.get("min"), data.get("max")
        if hist.count:
            if not isinstance(lo, int | float) or not isinstance(hi, int | float):
                raise ValueError("histogram without min/max")
            hist._min, hist._max = float(lo), float(hi)
        return hist
