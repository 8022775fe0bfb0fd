"""The order tracker actor: order and fill events derived by polling.

The Hummingbot API pushes nothing about orders or fills, so this actor polls
open orders, the order history (for tracked orders that left the open list) and
fills, every ``poll_active`` seconds while any known order is in flight and
every ``poll_idle`` seconds otherwise, and feeds the snapshots to the sans-IO
``OrderTracker``, which yields each
``OrderUpdate`` and ``TradeEvent`` exactly once.

Polling goes through the REST layer, not the WebSocket, so it is unaffected by
reconnections; an order that finished while a poll failed is found in the next
successful poll's history lookup, so no terminal state is missed. A failed poll
or a malformed answer is published as an ``ErrorEvent`` and the
actor goes on.

Inside a streaming supervisor the events go to the event-publishing actor
(``TrackerActor.connect_outbox``): a poll's events with awaiting sends, so
none is ever dropped when the publisher's inbox is full (the tracker can wait);
``TrackerActor.track``, which is synchronous, with its never-blocking path.
Alone, the tracker calls its ``publish`` sink directly.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import aclosing
from typing import Protocol

import trio

from .._core.tracker import OrderTracker
from .._errors import HbtrioError
from .._paging import PageRequest, Paging, walk
from ..events import ErrorEvent, Event
from ..models import Order, Page, Trade

__all__ = ["EventOutbox", "TrackerActor", "TrackerRest"]

_MAX_PAGES = 10


class TrackerRest(Protocol):
    """The REST calls the tracker needs (the client facade provides them)."""

    async def get_open_orders(self) -> list[Order]:
        """Return every open order of the account."""
        ...

    async def get_order_history(
        self,
        *,
        start: float | None = ...,
        end: float | None = ...,
        limit: int = ...,
        cursor: str | None = ...,
    ) -> Page[Order]:
        """Return a page of the order history created in ``[start, end]`` (epoch s)."""
        ...

    async def get_trades(
        self, *, start: float | None = ..., limit: int = ..., cursor: str | None = ...
    ) -> Page[Trade]:
        """Return a page of the account's fills from ``start`` (epoch seconds)."""
        ...


class EventOutbox(Protocol):
    """Where a supervised tracker sends its events (the publisher actor)."""

    def publish_nowait(self, event: Event) -> None:
        """Queue an event without blocking.

        Args:
            event: The event.
        """

    def publish(self, event: Event) -> Awaitable[None]:
        """Queue an event, waiting for room (never dropping it).

        Args:
            event: The event.

        Returns:
            An awaitable that completes once the event is queued.
        """
        ...

    def flush(self) -> Awaitable[None]:
        """Wait until every event queued so far was delivered.

        Returns:
            An awaitable that completes then.
        """
        ...


class TrackerActor:
    """Polls orders and fills and publishes their events exactly once.

    Args:
        rest: The REST calls (see ``TrackerRest``).
        publish: Non-blocking event sink.
        poll_active: Seconds between polls while an order is in flight.
        poll_idle: Seconds between polls otherwise.
        lookback: Seconds of overlap kept when asking for fills and history
            (absorbs clock differences and late rows; duplicates are dropped).
        fill_overlap: Seconds before the newest fill seen that the next poll of
            fills starts from (late rows; fills already seen are dropped by id).
        lost_after: Seconds an in-flight order may be missing from both the open
            orders and the history before it stops being polled fast (an
            ``ErrorEvent`` says so; should it be listed among the open orders
            again, its changes are published as usual, and its fills always are).
        tracker: The sans-IO tracker (default: a new one).
        clock: Wall clock for request windows (default ``time.time``).

    Attributes:
        polls: Successful polls so far.
        failures: Failed polls so far.
    """

    def __init__(
        self,
        rest: TrackerRest,
        publish: Callable[[Event], None],
        *,
        poll_active: float = 0.1,
        poll_idle: float = 2.0,
        lookback: float = 60.0,
        fill_overlap: float = 5.0,
        lost_after: float = 30.0,
        tracker: OrderTracker | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._rest = rest
        self._publish = publish
        self._outbox: EventOutbox | None = None
        self._poll_active = poll_active
        self._poll_idle = poll_idle
        self._lookback = lookback
        self._lost_after = lost_after
        self._fill_overlap = fill_overlap
        self._missing_since: dict[str, float] = {}
        # When this client placed each order it tracks (its own clock): the window
        # of the history lookup, never the server's created_at of orders/active
        # (the real server's connector clock there is minutes behind).
        self._placed_at: dict[str, float] = {}
        self.tracker = tracker if tracker is not None else OrderTracker()
        self._clock = clock
        self._wakeup = trio.Event()
        self._changed = trio.Event()
        self._fills_since: float | None = None
        self._seeded = False
        self.polls = 0
        self.failures = 0

    def connect_outbox(self, outbox: EventOutbox) -> None:
        """Send events to ``outbox`` (the publisher actor) instead of ``publish``.

        Args:
            outbox: The publisher actor.
        """
        self._outbox = outbox
        self._publish = outbox.publish_nowait

    # -- used by the client ---------------------------------------------------------

    def track(self, order: Order) -> None:
        """Start tracking an order the client just placed (polled fast from now on).

        The first order in flight wakes the tracker out of its idle wait; while
        orders are already in flight the tracker polls every ``poll_active``
        seconds anyway, so a burst of placements shares those polls instead of
        starting one poll per order.

        Args:
            order: The order as the placement answer described it.
        """
        was_active = self.tracker.has_in_flight
        now = self._clock()
        self._placed_at.setdefault(order.order_id, now)
        self._emit(self.tracker.track(order, now))
        if not was_active:
            self._wakeup.set()

    def get(self, order_id: str) -> Order | None:
        """The latest known state of an order, or ``None``.

        Args:
            order_id: Order id.

        Returns:
            The order, when tracked.
        """
        return self.tracker.get(order_id)

    async def wait_accepted(self, order_id: str) -> Order:
        """Wait until a tracked order left ``SUBMITTED`` (open, filled, cancelled
        or failed). The caller bounds the wait and maps ``FAILED`` to an error.

        Args:
            order_id: Order id (tracked with ``track``).

        Returns:
            The order in its first state past ``SUBMITTED``.
        """
        while True:
            order = self.tracker.accepted(order_id)
            if order is not None:
                return order
            changed = self._changed
            self._wakeup.set()
            await changed.wait()

    async def poll_now(self) -> None:
        """Poll once, right now (for tests and reconciliation).

        Raises:
            HbtrioError: The poll failed.
        """
        await self._poll()

    # -- the task -------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Poll until cancelled; started at once (the first poll seeds silently).

        Args:
            task_status: Trio's start protocol.
        """
        task_status.started()
        while True:
            self._wakeup = trio.Event()
            try:
                await self._poll()
            except Exception as exc:  # a poll must never kill the tracker
                self.failures += 1
                kind = type(exc).__name__
                text = str(exc) if isinstance(exc, HbtrioError) else f"{kind}: {exc}"
                self._publish(ErrorEvent(error=f"order tracking poll failed: {text}", kind=kind))
            interval = self.tracker.poll_interval(self._poll_active, self._poll_idle)
            with trio.move_on_after(interval):
                await self._wakeup.wait()

    async def _poll(self) -> None:
        rest = self._rest
        open_orders = await rest.get_open_orders()
        history: Sequence[Order] = ()
        open_ids = {order.order_id for order in open_orders}
        missing = [oid for oid in self.tracker.in_flight() if oid not in open_ids]
        if missing:
            start, end = self._history_window(missing)
            history = await _find_in_history(rest, set(missing), start, end)
        if self._fills_since is None:
            self._fills_since = self._clock() - self._lookback
        fills = await _all_fill_pages(rest, max(0.0, self._fills_since))
        now = self._clock()
        if not self._seeded:
            # State at start-up is learnt without events (only changes are news),
            # except for orders the client placed meanwhile.
            tracked = set(self.tracker.in_flight())
            snapshots = [*open_orders, *history]
            self.tracker.seed([o for o in snapshots if o.order_id not in tracked], now)
            events: list[Event] = list(
                self.tracker.apply_orders([o for o in snapshots if o.order_id in tracked], now)
            )
            new_fills = self.tracker.apply_fills(fills, now)
            events.extend(e for e in new_fills if e.trade.order_id in tracked)
            self._seeded = True
        else:
            events = [
                *self.tracker.apply_orders(open_orders, now),
                *self.tracker.apply_orders(history, now),
                *self.tracker.apply_fills(fills, now),
            ]
        self._watch_missing(missing, history, now)
        if fills:
            newest = max(trade.timestamp for trade in fills)
            self._fills_since = max(self._fills_since, newest - self._fill_overlap)
        self.polls += 1
        await self._emit_waiting(events)

    def _history_window(self, missing: list[str]) -> tuple[float | None, float | None]:
        """Creation-time window of the history lookup of ``missing`` orders.

        Orders this client placed: from their placement times, widened by
        ``lookback``. Any other order (placed elsewhere, found in the listing) has
        no reliable creation time (``created_at`` of ``orders/active`` may be minutes
        behind): no bound then, the lookup pages back from the newest order.
        """
        placed = [self._placed_at.get(oid) for oid in missing]
        known = [t for t in placed if t is not None]
        live = set(self.tracker.in_flight())
        for order_id in [oid for oid in self._placed_at if oid not in live]:
            del self._placed_at[order_id]
        if len(known) < len(placed):
            return None, None
        return max(0.0, min(known) - self._lookback), max(known) + self._lookback

    def _watch_missing(self, missing: list[str], found: Sequence[Order], now: float) -> None:
        """Give up fast polling for orders missing from every listing for too long."""
        still = set(missing).difference(o.order_id for o in found)
        since = self._missing_since
        for order_id in list(since):
            if order_id not in still:
                del since[order_id]
        for order_id in still:
            first = since.setdefault(order_id, now)
            if now - first >= self._lost_after and self.tracker.abandon(order_id):
                del since[order_id]
                self._publish(
                    ErrorEvent(
                        error=f"order {order_id} is neither open nor in the order history "
                        f"after {self._lost_after:g} s; it is no longer polled fast",
                        kind="OrderNotFound",
                    )
                )

    def _emit(self, events: Sequence[Event]) -> None:
        for event in events:
            self._publish(event)
        self._signal_changed()

    async def _emit_waiting(self, events: Sequence[Event]) -> None:
        # Queue the events, waiting for room rather than dropping any; wake
        # wait_accepted only once they are delivered (as when publishing inline).
        outbox = self._outbox
        if outbox is None or not events:
            self._emit(events)
            return
        try:
            for index, event in enumerate(events):
                try:
                    await outbox.publish(event)
                except BaseException:
                    # Cancelled before it was queued: hand it and the rest over
                    # without waiting, so the events of an applied poll are not lost.
                    for later in events[index:]:
                        outbox.publish_nowait(later)
                    raise
            await outbox.flush()
        finally:
            self._signal_changed()

    def _signal_changed(self) -> None:
        changed, self._changed = self._changed, trio.Event()
        changed.set()


async def _find_in_history(
    rest: TrackerRest, wanted: set[str], start: float | None, end: float | None
) -> list[Order]:
    """The orders of ``wanted`` found in the history created within ``[start, end]``.

    Pages through the one paging primitive (``hbtrio._paging``): the server's
    cursors, then by time when a cursor repeats (the real server's are all
    ``"0:"``), so an order behind more than a page of newer ones is found; stops
    once every wanted order is found, at the end, or after ``_MAX_PAGES`` pages.
    """
    found: dict[str, Order] = {}
    paging: Paging[Order] = Paging(
        key=lambda o: o.order_id,
        stamp=lambda o: o.created_at or None,
        end_ms=None if end is None else int(end * 1000),
        max_pages=_MAX_PAGES,
    )

    async def fetch(request: PageRequest) -> Page[Order]:
        # end_ms back to seconds (half a millisecond up, so it truncates to end_ms)
        until = None if request.end_ms is None else (request.end_ms + 0.5) / 1000
        return await rest.get_order_history(
            start=start, end=until, limit=1000, cursor=request.cursor
        )

    async with aclosing(walk(paging, fetch)) as orders:
        async for order in orders:
            if order.order_id in wanted:
                found[order.order_id] = order
                if len(found) == len(wanted):
                    break
    return list(found.values())


async def _all_fill_pages(rest: TrackerRest, start: float) -> list[Trade]:
    out: list[Trade] = []
    cursor: str | None = None
    for _ in range(_MAX_PAGES):
        page = await rest.get_trades(start=start, limit=1000, cursor=cursor)
        out.extend(page.items)
        if not page.has_more or not page.next_cursor or page.next_cursor == cursor:
            break
        cursor = page.next_cursor
    return out
