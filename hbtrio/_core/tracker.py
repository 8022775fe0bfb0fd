"""The order tracker's snapshot diff (sans-IO).

The real server pushes nothing about orders or fills: the client polls open
orders, order history and fills, and ``OrderTracker`` turns those
snapshots into events:

* one ``OrderUpdate`` per change of ``(status,
  filled_amount)`` of an order, never a duplicate and never backwards, however
  snapshots are reordered or repeated;
* one ``TradeEvent`` per fill ``trade_id``.

A snapshot ``s`` replaces the known state ``k`` of an order when

1. ``s.filled_amount >= k.filled_amount`` (fills are monotonic), and
2. ``rank(s) >= rank(k)`` where the rank is 0 for ``SUBMITTED``, 1 for the
   other live statuses and 2 for terminal ones, and
3. it made progress (more filled or a higher rank), or, at equal rank and fill,
   it has a different status and a strictly newer ``updated_at`` (for example
   ``OPEN -> PENDING_CANCEL -> OPEN``, or a corrected terminal status).

Memory is bounded: terminal orders are kept for ``terminal_ttl`` seconds (and
at most ``max_terminal`` of them) to absorb late snapshots, then remembered as
ids only (at most ``max_tombstones``); snapshots of forgotten orders are
ignored. Fill ids are remembered up to ``max_fills``; after that, a fill not
newer than the newest forgotten one is taken as already seen.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass

from ..events import OrderUpdate, TradeEvent
from ..models import Order, OrderStatus, Trade

__all__ = ["OrderTracker", "status_rank"]

_RANK = {
    OrderStatus.SUBMITTED: 0,
    OrderStatus.OPEN: 1,
    OrderStatus.PARTIALLY_FILLED: 1,
    OrderStatus.PENDING_CANCEL: 1,
    OrderStatus.FILLED: 2,
    OrderStatus.CANCELLED: 2,
    OrderStatus.FAILED: 2,
}


def status_rank(status: OrderStatus) -> int:
    """Progress rank of a status: 0 submitted, 1 live, 2 terminal.

    Args:
        status: An order status.

    Returns:
        The rank.
    """
    return _RANK[status]


def _supersedes(new: Order, old: Order) -> bool:
    """Whether snapshot ``new`` is a forward change of the state ``old``."""
    if new.filled_amount < old.filled_amount:
        return False
    new_rank, old_rank = _RANK[new.status], _RANK[old.status]
    if new_rank < old_rank:
        return False
    if new.filled_amount > old.filled_amount or new_rank > old_rank:
        return True
    return new.status != old.status and new.updated_at > old.updated_at


@dataclass(slots=True)
class _Known:
    order: Order
    terminal_since: float | None = None


class OrderTracker:
    """Diff of polled order and fill snapshots into exactly-once events.

    Args:
        terminal_ttl: Seconds a terminal order is kept in full.
        max_terminal: Most terminal orders kept in full.
        max_tombstones: Most ids of forgotten orders remembered.
        max_fills: Most fill ids remembered for de-duplication.
        recent_fills: Most fills kept in ``fills``.
    """

    __slots__ = (
        "_fill_horizon",
        "_fills",
        "_live",
        "_mine",
        "_orders",
        "_seen_fills",
        "_terminal",
        "_tombstones",
        "max_fills",
        "max_terminal",
        "max_tombstones",
        "terminal_ttl",
    )

    def __init__(
        self,
        *,
        terminal_ttl: float = 30.0,
        max_terminal: int = 2_000,
        max_tombstones: int = 20_000,
        max_fills: int = 20_000,
        recent_fills: int = 1_000,
    ) -> None:
        self.terminal_ttl = terminal_ttl
        self.max_terminal = max_terminal
        self.max_tombstones = max_tombstones
        self.max_fills = max_fills
        self._orders: dict[str, _Known] = {}
        self._live: set[str] = set()
        self._mine: set[str] = set()  # live orders this client placed (via track)
        self._terminal: OrderedDict[str, None] = OrderedDict()
        self._tombstones: OrderedDict[str, None] = OrderedDict()
        self._seen_fills: OrderedDict[str, float] = OrderedDict()
        self._fill_horizon = float("-inf")
        self._fills: deque[Trade] = deque(maxlen=recent_fills)

    # -- orders -------------------------------------------------------------------

    def track(self, order: Order, now: float) -> list[OrderUpdate]:
        """Add an order the client just placed, so it is polled fast.

        Only orders added here count for ``has_in_flight`` and
        ``poll_interval``: other orders of the account (placed by other
        programs, possibly resting for days) are followed at the idle pace.

        Args:
            order: The order as the placement answer described it.
            now: Current time (event timestamps).

        Returns:
            Its first ``OrderUpdate`` (none if already known in this state).
        """
        events = self.apply_orders((order,), now)
        if order.order_id in self._live:
            self._mine.add(order.order_id)
        return events

    def apply_orders(self, orders: Iterable[Order], now: float) -> list[OrderUpdate]:
        """Feed order snapshots (open orders, history, single lookups).

        Args:
            orders: Snapshots, in any order, possibly repeated or stale.
            now: Current time (event timestamps, pruning).

        Returns:
            One event per forward change of ``(status, filled_amount)``.
        """
        events = [
            OrderUpdate(order=order, timestamp=now) for order in orders if self._apply(order, now)
        ]
        self.prune(now)
        return events

    def seed(self, orders: Iterable[Order], now: float) -> None:
        """Learn orders without publishing events (e.g. state at start-up).

        Args:
            orders: Snapshots.
            now: Current time.
        """
        for order in orders:
            self._apply(order, now)
        self.prune(now)

    def _apply(self, order: Order, now: float) -> bool:
        order_id = order.order_id
        known = self._orders.get(order_id)
        if known is None:
            if order_id in self._tombstones:
                return False
            known = self._orders[order_id] = _Known(order)
        elif _supersedes(order, known.order):
            known.order = order
        else:
            if (
                order.status == known.order.status
                and order.filled_amount == known.order.filled_amount
                and order.updated_at > known.order.updated_at
            ):
                known.order = order  # same state, fresher details: no event
            return False
        if order.status.is_terminal:
            self._live.discard(order_id)
            self._mine.discard(order_id)
            if known.terminal_since is None:
                known.terminal_since = now
            self._terminal[order_id] = None
            self._terminal.move_to_end(order_id)
        else:
            self._live.add(order_id)
        return True

    def get(self, order_id: str) -> Order | None:
        """The latest known state of an order.

        Args:
            order_id: Order id.

        Returns:
            The order, or ``None`` when unknown (or forgotten).
        """
        known = self._orders.get(order_id)
        return known.order if known is not None else None

    def accepted(self, order_id: str) -> Order | None:
        """For ``wait_accepted``: the order once it left ``SUBMITTED``.

        Args:
            order_id: Order id.

        Returns:
            The order when its status is ``OPEN``, partly or fully filled,
            pending cancel, cancelled or ``FAILED`` (the caller raises for
            ``FAILED``); ``None`` while it is unknown or still submitted.
        """
        order = self.get(order_id)
        if order is None or order.status is OrderStatus.SUBMITTED:
            return None
        return order

    def abandon(self, order_id: str) -> bool:
        """Stop counting a non-terminal order as in flight (it vanished from the
        server's listings). It stays known, so a later snapshot still yields events.

        Args:
            order_id: Order id.

        Returns:
            Whether the order was in flight.
        """
        if order_id not in self._live:
            return False
        self._live.discard(order_id)
        self._mine.discard(order_id)
        return True

    def in_flight(self) -> list[str]:
        """Ids of known orders that are not terminal.

        Returns:
            The ids (the caller looks up those missing from open orders).
        """
        return list(self._live)

    @property
    def has_in_flight(self) -> bool:
        """Whether any order this client placed (``track``) is not terminal."""
        return bool(self._mine)

    def poll_interval(self, active: float = 0.1, idle: float = 2.0) -> float:
        """How long to wait before the next poll.

        Args:
            active: Interval while orders are in flight.
            idle: Interval otherwise.

        Returns:
            ``active`` while any order this client placed is non-terminal, else
            ``idle``.
        """
        return active if self._mine else idle

    def prune(self, now: float) -> None:
        """Forget terminal orders older than ``terminal_ttl`` or beyond ``max_terminal``.

        Args:
            now: Current time.
        """
        terminal = self._terminal
        while terminal:
            order_id = next(iter(terminal))
            since = self._orders[order_id].terminal_since
            assert since is not None
            if len(terminal) <= self.max_terminal and now - since < self.terminal_ttl:
                break
            del terminal[order_id]
            del self._orders[order_id]
            self._tombstones[order_id] = None
            if len(self._tombstones) > self.max_tombstones:
                self._tombstones.popitem(last=False)

    def __len__(self) -> int:
        return len(self._orders)

    # -- fills --------------------------------------------------------------------

    def apply_fills(self, trades: Iterable[Trade], now: float) -> list[TradeEvent]:
        """Feed fills (pages of the trades listing).

        Args:
            trades: Fills, in any order, possibly repeated.
            now: Current time (event timestamps).

        Returns:
            One ``TradeEvent`` per fill not seen before.
        """
        events = []
        seen = self._seen_fills
        for trade in trades:
            if trade.trade_id in seen or trade.timestamp <= self._fill_horizon:
                continue
            seen[trade.trade_id] = trade.timestamp
            if len(seen) > self.max_fills:
                _, forgotten = seen.popitem(last=False)
                self._fill_horizon = max(self._fill_horizon, forgotten)
            self._fills.append(trade)
            events.append(TradeEvent(trade=trade, timestamp=now))
        return events

    @property
    def fills(self) -> tuple[Trade, ...]:
        """The most recent fills seen, oldest first, each once."""
        return tuple(self._fills)
