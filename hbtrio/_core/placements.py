"""Which order placements could have created the same order (sans-IO).

Reconciliation looks for the order a lost placement may have created by what was
sent (exchange, market, side, type, amount, price) and when. Two identical
placements whose lifetimes overlap cannot be told apart that way: if both answers
are lost, or one is lost while the other is still waiting for its answer, a lone
matching order may belong to either. The ledger remembers every placement that is
in flight, and every placement whose outcome stayed unknown, so that reconciliation
hands out a match only when no such rival exists (otherwise the caller gets
``OrderOutcomeUnknown``, never a guess).

A placement whose answer came back, or which certainly created nothing, is
*settled* and forgotten at once: the order it created (if any) is known by id and
excluded from every later search anyway.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable

__all__ = ["Placement", "PlacementLedger"]


class Placement:
    """One placement in the ledger.

    Args:
        key: What makes two placements indistinguishable to reconciliation.
        started: When it was sent (or about to be), epoch seconds.

    Attributes:
        key: As given.
        started: As given.
        ended: When its outcome was left unknown, ``None`` while in flight.
    """

    __slots__ = ("ended", "key", "started")

    def __init__(self, key: Hashable, started: float) -> None:
        self.key = key
        self.started = started
        self.ended: float | None = None


class PlacementLedger:
    """Placements in flight and placements whose outcome is unknown, by key.

    An unknown outcome is kept while it can still overlap the search window of a
    placement in flight or of a later one: until it ended more than twice the slack
    before both now and the start of the oldest placement in flight.

    Args:
        slack: Clock tolerance of the order matching, seconds: an order created at
            ``t`` by a placement may match a search window widened by ``slack`` on
            both sides, so lifetimes are compared with twice this margin.
    """

    def __init__(self, slack: float) -> None:
        self._slack = slack
        self._by_key: dict[Hashable, list[Placement]] = {}
        self._in_flight: set[Placement] = set()
        self._unknown: deque[Placement] = deque()

    def begin(self, key: Hashable, now: float) -> Placement:
        """Record a placement about to be sent.

        Args:
            key: Its reconciliation key (equal keys can match the same order).
            now: The current wall-clock time, epoch seconds.

        Returns:
            The record, to pass to ``settle`` or ``leave_unknown``.
        """
        self._expire(now)
        placement = Placement(key, now)
        self._by_key.setdefault(key, []).append(placement)
        self._in_flight.add(placement)
        return placement

    def settle(self, placement: Placement) -> None:
        """Forget a placement whose outcome is known.

        Args:
            placement: A record from ``begin``, still in flight.
        """
        if placement in self._in_flight:
            self._in_flight.remove(placement)
            self._forget(placement)

    def leave_unknown(self, placement: Placement, now: float) -> None:
        """Keep a placement whose outcome stayed unknown as a rival of later ones.

        Args:
            placement: A record from ``begin``, still in flight.
            now: The current wall-clock time, epoch seconds.
        """
        if placement in self._in_flight:
            self._in_flight.remove(placement)
            placement.ended = now
            self._unknown.append(placement)

    def rivals(self, placement: Placement, start: float, end: float) -> int:
        """Count other placements that may have created an order matching this one.

        Args:
            placement: The placement being reconciled.
            start: Start of its search window, epoch seconds.
            end: End of its search window, epoch seconds.

        Returns:
            How many other placements with the same key are in flight, or ended
            unknown, with a lifetime overlapping ``[start, end]`` widened by twice
            the slack.
        """
        low = start - 2 * self._slack
        high = end + 2 * self._slack
        count = 0
        for other in self._by_key.get(placement.key, ()):
            if other is placement:
                continue
            if other.started <= high and (other.ended is None or other.ended >= low):
                count += 1
        return count

    def __len__(self) -> int:
        return len(self._in_flight) + len(self._unknown)

    def _expire(self, now: float) -> None:
        oldest = min((p.started for p in self._in_flight), default=now)
        cutoff = min(now, oldest) - 2 * self._slack
        unknown = self._unknown
        while unknown and (unknown[0].ended or 0.0) < cutoff:
            self._forget(unknown.popleft())

    def _forget(self, placement: Placement) -> None:
        entries = self._by_key[placement.key]
        entries.remove(placement)
        if not entries:
            del self._by_key[placement.key]
