"""Reconnection and retry backoff (sans-IO).

Full-jitter exponential backoff: the ``n``-th delay (``n`` counted from 0) is
drawn uniformly from ``[0, min(cap, initial * 2**n)]``, then raised to a floor
so that a reconnect loop can never spin: the floor is ``min(initial, 0.01)``
seconds (10 ms unless ``initial`` is smaller). The attempt count resets when a
connection had stayed up for at least ``reset_after`` seconds.
"""

from __future__ import annotations

import random

__all__ = ["MIN_DELAY", "Backoff", "retry_delays"]

MIN_DELAY = 0.01
"""Floor of every delay, seconds (lowered to ``initial`` when that is smaller)."""

_MAX_EXPONENT = 64


def _check(initial: float, cap: float) -> None:
    if not initial > 0:
        raise ValueError("initial must be > 0")
    if not cap >= initial:
        raise ValueError("cap must be >= initial")


class Backoff:
    """Full-jitter exponential backoff with a floor and a stability reset.

    Args:
        initial: Upper bound of the first delay, seconds (``> 0``).
        cap: Largest upper bound of any delay, seconds (``>= initial``).
        reset_after: Seconds a connection must stay up before the attempt
            count starts again from zero.
        rng: Random source (default: a fresh ``random.Random``); pass a
            seeded one for reproducible delays.

    Raises:
        ValueError: ``initial <= 0``, ``cap < initial`` or ``reset_after < 0``.
    """

    __slots__ = ("_attempts", "_connected_at", "_rng", "cap", "floor", "initial", "reset_after")

    def __init__(
        self,
        initial: float = 0.1,
        cap: float = 2.0,
        reset_after: float = 10.0,
        rng: random.Random | None = None,
    ) -> None:
        _check(initial, cap)
        if not reset_after >= 0:
            raise ValueError("reset_after must be >= 0")
        self.initial = float(initial)
        self.cap = float(cap)
        self.reset_after = float(reset_after)
        self.floor = min(self.initial, MIN_DELAY)
        self._rng = rng if rng is not None else random.Random()
        self._attempts = 0
        self._connected_at: float | None = None

    @property
    def attempts(self) -> int:
        """Number of delays handed out since the last reset."""
        return self._attempts

    def upper_bound(self, attempt: int | None = None) -> float:
        """Upper bound of the jitter range for an attempt.

        Args:
            attempt: Attempt number (default: the next one).

        Returns:
            ``min(cap, initial * 2**attempt)``.
        """
        n = self._attempts if attempt is None else attempt
        return min(self.cap, self.initial * 2.0 ** min(n, _MAX_EXPONENT))

    def next_delay(self) -> float:
        """Draw the delay before the next attempt and count the attempt.

        Returns:
            A delay in ``[floor, min(cap, initial * 2**attempts)]`` seconds.
        """
        upper = self.upper_bound()
        self._attempts += 1
        return max(self.floor, self._rng.uniform(0.0, upper))

    def reset(self) -> None:
        """Start again from the first attempt."""
        self._attempts = 0

    def on_connected(self, now: float) -> None:
        """Record that a connection was established.

        Args:
            now: Current time, seconds (any monotonic clock).
        """
        self._connected_at = now

    def on_disconnected(self, now: float) -> None:
        """Record that the connection was lost.

        Resets the attempt count when the connection had been up for at least
        ``reset_after`` seconds, so a long-lived connection that drops
        reconnects quickly, while a flapping one keeps backing off.

        Args:
            now: Current time, same clock as ``on_connected``.
        """
        if self._connected_at is not None and now - self._connected_at >= self.reset_after:
            self._attempts = 0
        self._connected_at = None


def retry_delays(
    retries: int,
    initial: float = 0.1,
    cap: float = 2.0,
    rng: random.Random | None = None,
) -> list[float]:
    """Delays to wait before each retry of a REST request.

    Args:
        retries: Number of retries (``>= 0``).
        initial: Upper bound of the first delay, seconds.
        cap: Largest upper bound of any delay, seconds.
        rng: Random source (default: a fresh ``random.Random``).

    Returns:
        ``retries`` full-jitter delays, element ``i`` to wait before retry ``i+1``.

    Raises:
        ValueError: ``retries < 0`` or invalid ``initial``/``cap``.
    """
    if retries < 0:
        raise ValueError("retries must be >= 0")
    backoff = Backoff(initial, cap, rng=rng)
    return [backoff.next_delay() for _ in range(retries)]
