"""Scenario-driving code shared by every contender.

The contenders differ in how they talk to the server (raw sockets, the official
asyncio client, hbtrio); how a scenario is timed and counted is the same for
all of them, and lives here so that they measure exactly the same way.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from decimal import ROUND_DOWN, Decimal
from typing import Final

__all__ = [
    "LIVE_STATUSES",
    "SnapshotWindow",
    "limit_price",
    "time_calls",
    "time_calls_async",
]

_TICK: Final = Decimal("0.01")
#: Order statuses a cleanup still has to cancel.
LIVE_STATUSES: Final = frozenset({"SUBMITTED", "OPEN", "PARTIALLY_FILLED", "PENDING_CANCEL"})


def limit_price(bid: Decimal, ask: Decimal, factor: str) -> Decimal:
    """The benchmark orders' limit price: ``factor`` times mid, rounded down to a cent.

    Args:
        bid: Best bid.
        ask: Best ask.
        factor: Multiple of mid (a string Decimal, e.g. ``"0.9"``).

    Returns:
        The price.
    """
    mid = (bid + ask) / 2
    return (mid * Decimal(factor)).quantize(_TICK, rounding=ROUND_DOWN)


def time_calls(call: Callable[[], object], n: int, warmup: int) -> list[float]:
    """Time ``n`` calls of ``call`` after ``warmup`` untimed ones.

    Args:
        call: One round trip.
        n: Timed samples.
        warmup: Untimed round trips first.

    Returns:
        Latencies in microseconds.
    """
    clock = time.perf_counter_ns
    out: list[float] = []
    for i in range(warmup + n):
        t0 = clock()
        call()
        t1 = clock()
        if i >= warmup:
            out.append((t1 - t0) / 1000.0)
    return out


async def time_calls_async(
    call: Callable[[], Awaitable[object]], n: int, warmup: int
) -> list[float]:
    """Time ``n`` awaited calls of ``call`` after ``warmup`` untimed ones.

    Works under any event loop (it only awaits ``call()``).

    Args:
        call: One round trip.
        n: Timed samples.
        warmup: Untimed round trips first.

    Returns:
        Latencies in microseconds.
    """
    clock = time.perf_counter_ns
    out: list[float] = []
    for i in range(warmup + n):
        t0 = clock()
        await call()
        t1 = clock()
        if i >= warmup:
            out.append((t1 - t0) / 1000.0)
    return out


class SnapshotWindow:
    """Counts stream snapshots: ``warmup`` seconds discarded, then ``duration`` counted.

    The warm-up starts when the window is created. The first snapshot at or after
    its end opens the counting window (it is not counted itself); every later one
    is counted, and the first at or after the window's end closes it.

    Args:
        duration: Counting window, seconds.
        warmup: Seconds of snapshots discarded first.
    """

    def __init__(self, duration: float, warmup: float) -> None:
        self._duration = duration
        self._warm_end = time.perf_counter() + warmup
        self._counting = False
        self._t0 = 0.0
        self._cpu0 = 0.0
        self._end = math.inf
        self.count = 0
        """Snapshots counted so far."""

    def arrived(self, now: float) -> bool:
        """Record one snapshot.

        Args:
            now: ``time.perf_counter()`` at its arrival.

        Returns:
            Whether the counting window is over.
        """
        if self._counting:
            self.count += 1
            return now >= self._end
        if now >= self._warm_end:
            self._counting = True
            self._t0, self._cpu0, self._end = now, time.process_time(), now + self._duration
        return False

    def result(self, now: float) -> tuple[int, float, float]:
        """The measurement.

        Args:
            now: ``time.perf_counter()`` at the end.

        Returns:
            ``(snapshots, wall_s, cpu_s)`` of the counting window.
        """
        return self.count, now - self._t0, time.process_time() - self._cpu0
