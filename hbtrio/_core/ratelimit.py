"""Client-side request rate limit: a sans-IO token bucket.

The bucket holds up to ``burst`` tokens and refills at ``rate`` tokens per second.
``TokenBucket.acquire`` takes one token *now* and returns how long the caller
must wait before using it. The balance may go negative: a caller that gets a wait
has reserved its slot, so callers are served in the order they asked and nothing
is ever dropped. Time is passed in (``now``, any monotonic clock in seconds), so
the class is deterministic and needs no event loop.
"""

from __future__ import annotations

import math

__all__ = ["TokenBucket"]


class TokenBucket:
    """A token bucket that hands out waits instead of refusals.

    Args:
        rate: Tokens added per second (``> 0``): the sustained request rate.
        burst: Bucket capacity (``>= 1``): how many requests may go at once
            after a quiet period (see ``for_rate`` for hbtrio's choice).

    Raises:
        ValueError: ``rate`` is not a positive finite number or ``burst < 1``.
    """

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float = 1.0) -> None:
        if not (isinstance(rate, int | float) and math.isfinite(rate) and rate > 0):
            raise ValueError("rate must be a finite number > 0")
        if not (isinstance(burst, int | float) and math.isfinite(burst) and burst >= 1):
            raise ValueError("burst must be a finite number >= 1")
        self.rate = float(rate)
        self.burst = float(burst)
        self._tokens = self.burst
        self._last: float | None = None

    @classmethod
    def for_rate(cls, rate: float) -> TokenBucket:
        """Build the bucket hbtrio uses for ``ClientConfig.rate_limit``.

        The burst is one second's worth of requests (at least one), so a limit of
        10 req/s lets 10 requests go at once after a quiet second, then one every
        100 ms.

        Args:
            rate: Requests per second (``> 0``).

        Returns:
            The bucket.

        Raises:
            ValueError: ``rate`` is invalid.
        """
        return cls(rate, max(1.0, float(rate)) if math.isfinite(rate) else 1.0)

    def _refill(self, now: float) -> None:
        if self._last is None:
            self._last = now
            return
        elapsed = now - self._last
        if elapsed > 0:
            self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
            self._last = now

    def acquire(self, now: float) -> float:
        """Take one token and say how long to wait before using it.

        Args:
            now: Current time, seconds on a monotonic clock (never going back;
                an earlier value than a previous call is treated as no time passed).

        Returns:
            Seconds to wait (``0.0`` when a token was available).
        """
        self._refill(now)
        self._tokens -= 1.0
        if self._tokens >= 0:
            return 0.0
        return -self._tokens / self.rate

    def available(self, now: float) -> float:
        """Tokens available at ``now`` (negative while callers are queued).

        Args:
            now: Current time, seconds on the same clock as ``acquire``.

        Returns:
            The token balance.
        """
        self._refill(now)
        return self._tokens
