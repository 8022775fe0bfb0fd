"""Events the client publishes, and the in-process ``EventEngine``.

Every event is an immutable ``msgspec.Struct`` subclass of ``Event``,
which carries ``timestamp`` (epoch seconds when the client produced the event).
Events are tagged (``type`` in their JSON form), so a sink can write them with
``msgspec.json.encode`` and read them back with ``EVENT_DECODER``.
"""

from __future__ import annotations

import inspect
import itertools
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from types import TracebackType
from typing import Any, Generic, TypeVar, overload

import msgspec
import trio

from ._errors import InputValidationError, SubscriptionError, scrub
from ._validation import check_range, check_seconds
from .models import (
    Candle,
    ConnectionState,
    MarketTrade,
    Order,
    OrderBook,
    Ticker,
    Trade,
)

__all__ = [
    "CandleUpdate",
    "ConnectionStateChanged",
    "EngineStats",
    "ErrorEvent",
    "Event",
    "EventEngine",
    "EventHandler",
    "EventSubscription",
    "MarketTrades",
    "OrderBookUpdate",
    "OrderUpdate",
    "TickerUpdate",
    "TradeEvent",
]

_MAX_INT = 2**62  # largest overflow allowance accepted


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag=True):
    """Base class of every event.

    Attributes:
        timestamp: When the client produced the event, epoch seconds.
    """

    timestamp: float = msgspec.field(default_factory=time.time)

    @property
    def key(self) -> tuple[str, str, str] | None:
        """Conflation key ``(type, exchange, market)`` of a market-data event.

        ``None`` for events that must never be conflated (orders, fills,
        connection changes, errors).
        """
        return None


class OrderUpdate(Event, frozen=True):
    """An order of the account changed (status or filled amount).

    Attributes:
        order: The order as it is now.
    """

    order: Order


class TradeEvent(Event, frozen=True):
    """One of the account's orders was (partly) filled.

    Attributes:
        trade: The fill.
    """

    trade: Trade


class OrderBookUpdate(Event, frozen=True):
    """A new order-book snapshot of a subscribed market.

    Attributes:
        book: The snapshot.
    """

    book: OrderBook

    @property
    def key(self) -> tuple[str, str, str]:
        """Conflation key ``(type, exchange, market)``."""
        return ("order_book", self.book.exchange, self.book.market)


class MarketTrades(Event, frozen=True):
    """A batch of public trades of a subscribed market.

    Attributes:
        exchange: Connector name.
        market: Trading pair.
        trades: The trades, oldest first.
    """

    exchange: str
    market: str
    trades: tuple[MarketTrade, ...]

    @property
    def key(self) -> tuple[str, str, str]:
        """Conflation key ``(type, exchange, market)``."""
        return ("trades", self.exchange, self.market)


class TickerUpdate(Event, frozen=True):
    """A new ticker of a subscribed market.

    Attributes:
        ticker: The ticker.
    """

    ticker: Ticker

    @property
    def key(self) -> tuple[str, str, str]:
        """Conflation key ``(type, exchange, market)``."""
        return ("ticker", self.ticker.exchange, self.ticker.market)


class CandleUpdate(Event, frozen=True):
    """A new or updated candle of a subscribed market.

    Attributes:
        exchange: Connector name.
        market: Trading pair.
        interval: Candle interval, e.g. ``1m``.
        candle: The candle.
    """

    exchange: str
    market: str
    interval: str
    candle: Candle

    @property
    def key(self) -> tuple[str, str, str]:
        """Conflation key ``(type, exchange, market)`` (interval folded into type)."""
        return (f"candles:{self.interval}", self.exchange, self.market)


class ConnectionStateChanged(Event, frozen=True):
    """The client's connection state changed.

    Attributes:
        old: Previous state.
        new: New state.
    """

    old: ConnectionState
    new: ConnectionState


class ErrorEvent(Event, frozen=True):
    """Something went wrong in the background (a malformed message, a failing
    subscriber, a refused subscription).

    Attributes:
        error: Description of the error (never containing the API key).
        kind: Exception class name of the error, e.g. ``MalformedResponse``.
    """

    error: str
    kind: str = "HbtrioError"

    def __post_init__(self) -> None:
        # Server texts reach events (a WebSocket error, a failed poll): never the key.
        clean = scrub(self.error)
        if clean != self.error:
            msgspec.structs.force_setattr(self, "error", clean)


AnyEvent = (
    OrderUpdate
    | TradeEvent
    | OrderBookUpdate
    | MarketTrades
    | TickerUpdate
    | CandleUpdate
    | ConnectionStateChanged
    | ErrorEvent
)
"""Union of every concrete event type."""

EVENT_DECODER: msgspec.json.Decoder[AnyEvent] = msgspec.json.Decoder(AnyEvent)
"""Decoder of the JSON form of any event (as written by ``msgspec.json.encode``)."""


# -- the event engine ------------------------------------------------------------------

E = TypeVar("E", bound=Event)

_DEFAULT_BUFFER = 1000
_DEFAULT_GRACE = 1.0


def _now() -> float:
    try:
        return trio.current_time()
    except RuntimeError:  # published from outside a Trio run
        return time.monotonic()


class _Cell:
    """A queued market-data event that later events of the same key may replace."""

    __slots__ = ("event", "key")

    def __init__(self, key: tuple[str, str, str], event: Event) -> None:
        self.key = key
        self.event = event


class EventSubscription(Generic[E]):
    """One subscriber's view of an ``EventEngine``: an async iterator of events.

    Obtained from ``EventEngine.subscribe``; do not create it directly.
    Iteration ends when the subscription is closed and raises
    ``SubscriptionError`` (after delivering what was buffered)
    when the subscriber fell behind on events that are never dropped.

    Attributes:
        types: Event types delivered (empty: all).
        buffer: Buffer size.
        name: Name used in error messages.
        delivered: Events handed to the subscriber so far.
        conflated: Market-data events replaced by a newer one before delivery,
            per event type name.
    """

    __slots__ = (
        "_closed",
        "_engine",
        "_error",
        "_full_since",
        "_grace",
        "_latest",
        "_limit",
        "_lot",
        "_queue",
        "buffer",
        "conflated",
        "delivered",
        "name",
        "types",
    )

    def __init__(
        self,
        engine: EventEngine,
        types: tuple[type[Event], ...],
        *,
        buffer: int,
        grace: float,
        overflow: int,
        name: str,
    ) -> None:
        self._engine = engine
        self.types = types
        self.buffer = buffer
        self.name = name
        self._grace = grace
        self._limit = buffer + overflow
        self._queue: deque[Event | _Cell] = deque()
        self._latest: dict[tuple[str, str, str], _Cell] = {}
        self._lot = trio.lowlevel.ParkingLot()
        self._full_since: float | None = None
        self._error: SubscriptionError | None = None
        self._closed = False
        self.delivered = 0
        self.conflated: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"<EventSubscription {self.name} pending={len(self._queue)}>"

    @property
    def pending(self) -> int:
        """Number of events buffered and not yet delivered."""
        return len(self._queue)

    @property
    def closed(self) -> bool:
        """Whether the subscription was closed or cut off."""
        return self._closed or self._error is not None

    # -- publisher side ---------------------------------------------------------------

    def _offer(self, event: Event, key: tuple[str, str, str] | None) -> SubscriptionError | None:
        """Buffer ``event``; return the error when this subscriber must be cut off."""
        queue = self._queue
        size = len(queue)
        if key is not None:
            if size >= self.buffer:
                cell = self._latest.get(key)
                if cell is not None:
                    cell.event = event
                    name = type(event).__name__
                    self.conflated[name] = self.conflated.get(name, 0) + 1
                    self._engine._conflated[name] = self._engine._conflated.get(name, 0) + 1
                    return None
            cell = _Cell(key, event)
            self._latest[key] = cell
            queue.append(cell)
        else:
            if size >= self.buffer:
                now = _now()
                if self._full_since is None:
                    self._full_since = now
                full_for = now - self._full_since
                if full_for > self._grace or size >= self._limit:
                    return self._cut_off(size, full_for)
            queue.append(event)
        if self._lot:
            self._lot.unpark_all()
        return None

    def _cut_off(self, size: int, full_for: float) -> SubscriptionError:
        error = SubscriptionError(
            f"event subscriber {self.name} fell behind: {size} events buffered "
            f"(buffer {self.buffer}), full for {full_for:.3f} s; cut off"
        )
        self._error = error
        self._lot.unpark_all()
        return error

    def _close(self) -> None:
        self._closed = True
        self._queue.clear()
        self._latest.clear()
        self._lot.unpark_all()

    # -- subscriber side --------------------------------------------------------------

    def _pop(self) -> E:
        item = self._queue.popleft()
        if type(item) is _Cell:
            event = item.event
            if self._latest.get(item.key) is item:
                del self._latest[item.key]
        else:
            event = item  # type: ignore[assignment]
        if self._full_since is not None and len(self._queue) < self.buffer:
            self._full_since = None
        self.delivered += 1
        return event  # type: ignore[return-value]

    def receive_nowait(self) -> E:
        """Return the next buffered event without waiting.

        Returns:
            The event.

        Raises:
            trio.WouldBlock: Nothing is buffered.
            trio.EndOfChannel: The subscription was closed.
            SubscriptionError: The subscriber was cut off (buffer drained).
        """
        if self._queue:
            return self._pop()
        if self._error is not None:
            raise self._error
        if self._closed:
            raise trio.EndOfChannel
        raise trio.WouldBlock

    def __aiter__(self) -> EventSubscription[E]:
        return self

    async def __anext__(self) -> E:
        """Wait for the next event.

        Returns:
            The event.

        Raises:
            StopAsyncIteration: The subscription was closed.
            SubscriptionError: The subscriber fell behind and was cut off.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            if self._queue:
                event = self._pop()
                await trio.lowlevel.cancel_shielded_checkpoint()
                return event
            if self._error is not None:
                raise self._error
            if self._closed:
                raise StopAsyncIteration
            await self._lot.park()


class EventHandler:
    """A callback registered with ``EventEngine.add_handler``.

    Attributes:
        callback: The function (sync or async) called with each event.
        name: Its name in error reports.
        calls: Number of times it was called.
        errors: Number of times it raised.
    """

    __slots__ = ("_engine", "_running", "_subscription", "callback", "calls", "errors", "name")

    def __init__(
        self,
        engine: EventEngine,
        callback: Callable[[Any], object],
        subscription: EventSubscription[Event],
    ) -> None:
        self._engine = engine
        self.callback = callback
        self._subscription = subscription
        self._running = False
        self.name = subscription.name
        self.calls = 0
        self.errors = 0

    @property
    def subscription(self) -> EventSubscription[Event]:
        """The subscription feeding the handler."""
        return self._subscription

    def remove(self) -> None:
        """Stop calling the handler (events buffered for it are discarded)."""
        self._engine._remove_handler(self)


class EngineStats(msgspec.Struct, frozen=True, kw_only=True):
    """Counters of an ``EventEngine``.

    Attributes:
        published: Events published, per event type name.
        conflated: Market-data events replaced before delivery, per type name
            (summed over subscribers).
        cut_off: Subscribers cut off because they fell behind.
        handler_errors: Exceptions raised by handlers.
        subscribers: Subscriptions currently open (handlers included).
    """

    published: dict[str, int]
    conflated: dict[str, int]
    cut_off: int
    handler_errors: int
    subscribers: int


class EventEngine:
    """In-process publish/subscribe of hbtrio events.

    ``publish`` is synchronous, cheap and never blocks or raises because of a
    subscriber. Each subscriber has a bounded buffer and this delivery policy:

    * Market-data events (those with a non-``None`` ``Event.key``) are
      conflated for a subscriber whose buffer is full: a newer event replaces
      the buffered one of the same key (counted in
      ``EventSubscription.conflated`` and ``stats``). Memory stays
      bounded by the buffer plus one event per key.
    * Order, fill, connection and error events are never dropped silently. A
      subscriber whose buffer stays full for longer than ``grace`` seconds, or
      that has ``buffer + overflow`` events buffered, is cut off: its iterator
      delivers what it had, then raises ``SubscriptionError``
      ("fell behind"), and an ``ErrorEvent`` tells the other subscribers.
      Everyone else, and the publisher, go on.

    Handlers (``add_handler``) are called by the engine in tasks of its
    own, which run while ``run`` runs (or inside ``async with engine:``);
    a handler that raises is reported as an ``ErrorEvent`` to every
    other subscriber and keeps being called with later events.

    Works under Trio and under anyio on the Trio backend; not thread-safe.

    Args:
        grace: Default seconds a subscriber's buffer may stay full of events
            that cannot be conflated before it is cut off.
        overflow: Default number of events a subscriber may hold beyond its
            buffer during the grace period (default: the buffer size).

    Raises:
        InputValidationError: ``grace`` or ``overflow`` is negative or not a number.
    """

    def __init__(self, *, grace: float = _DEFAULT_GRACE, overflow: int | None = None) -> None:
        self.grace = check_seconds(grace, "grace")
        self.overflow = None if overflow is None else check_range(overflow, "overflow", 0, _MAX_INT)
        self._subscriptions: list[EventSubscription[Any]] = []
        self._routes: dict[type[Event], tuple[EventSubscription[Any], ...]] = {}
        self._published: dict[type[Event], int] = {}
        self._conflated: dict[str, int] = {}
        self._cut_off = 0
        self._handler_errors = 0
        self._handlers: list[EventHandler] = []
        self._nursery: trio.Nursery | None = None
        self._stack: AsyncExitStack | None = None
        self._names = itertools.count(1)

    # -- publishing ---------------------------------------------------------------------

    def publish(self, event: Event) -> None:
        """Deliver an event to every matching subscriber, without blocking.

        Args:
            event: The event.

        Raises:
            InputValidationError: ``event`` is not an ``Event`` (a caller bug; no
                subscriber can make this method raise).
        """
        if not isinstance(event, Event):
            raise InputValidationError("event", "must be an hbtrio Event")
        self._publish(event, None)

    def _publish(self, event: Event, exclude: EventSubscription[Any] | None) -> None:
        cls = type(event)
        self._published[cls] = self._published.get(cls, 0) + 1
        subscribers = self._routes.get(cls)
        if subscribers is None:
            subscribers = self._route(cls)
        if not subscribers:
            return
        key = event.key
        failed: list[tuple[EventSubscription[Any], SubscriptionError]] | None = None
        for subscriber in subscribers:
            if subscriber is exclude:
                continue
            error = subscriber._offer(event, key)
            if error is not None:
                if failed is None:
                    failed = []
                failed.append((subscriber, error))
        if failed is not None:
            for subscriber, _ in failed:
                self._detach(subscriber)
                self._cut_off += 1
            for subscriber, error in failed:
                self._publish(ErrorEvent(error=str(error), kind="SubscriptionError"), subscriber)

    def _route(self, cls: type[Event]) -> tuple[EventSubscription[Any], ...]:
        route = tuple(s for s in self._subscriptions if not s.types or issubclass(cls, s.types))
        self._routes[cls] = route
        return route

    # -- subscriptions ------------------------------------------------------------------

    def _attach(
        self,
        types: tuple[type[Event], ...],
        buffer: int,
        grace: float | None,
        overflow: int | None,
        name: str | None,
    ) -> EventSubscription[Any]:
        if isinstance(buffer, bool) or not isinstance(buffer, int) or buffer < 1:
            raise InputValidationError("buffer", "must be an int >= 1")
        for t in types:
            if not (isinstance(t, type) and issubclass(t, Event)):
                raise InputValidationError("types", "each must be an Event subclass")
        grace = self.grace if grace is None else check_seconds(grace, "grace")
        if overflow is None:
            overflow = self.overflow if self.overflow is not None else buffer
        else:
            overflow = check_range(overflow, "overflow", 0, _MAX_INT)
        if name is not None and not isinstance(name, str):
            raise InputValidationError("name", "must be a string")
        subscription: EventSubscription[Any] = EventSubscription(
            self,
            types,
            buffer=buffer,
            grace=grace,
            overflow=overflow,
            name=name if name is not None else f"#{next(self._names)}",
        )
        self._subscriptions.append(subscription)
        self._routes.clear()
        return subscription

    def _detach(self, subscription: EventSubscription[Any]) -> None:
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)
            self._routes.clear()

    @overload
    def subscribe(
        self,
        event_type: type[E],
        /,
        *,
        buffer: int = ...,
        grace: float | None = ...,
        overflow: int | None = ...,
        name: str | None = ...,
    ) -> AbstractAsyncContextManager[EventSubscription[E]]: ...

    @overload
    def subscribe(
        self,
        *types: type[Event],
        buffer: int = ...,
        grace: float | None = ...,
        overflow: int | None = ...,
        name: str | None = ...,
    ) -> AbstractAsyncContextManager[EventSubscription[Event]]: ...

    @asynccontextmanager
    async def subscribe(
        self,
        *types: type[Event],
        buffer: int = _DEFAULT_BUFFER,
        grace: float | None = None,
        overflow: int | None = None,
        name: str | None = None,
    ) -> AsyncIterator[EventSubscription[Any]]:
        """Subscribe to events of some types for the duration of a ``with`` block.

        Args:
            *types: Event classes to receive (subclasses included); none: all.
            buffer: Events buffered for this subscriber (``>= 1``).
            grace: Seconds its buffer may stay full of events that cannot be
                conflated before it is cut off (default: the engine's).
            overflow: Events it may hold beyond ``buffer`` meanwhile
                (default: the engine's, else ``buffer``).
            name: Name in error messages (default: a number).

        Yields:
            The subscription, an async iterator of events.

        Raises:
            InputValidationError: ``buffer`` < 1, a negative or non-numeric
                ``grace``/``overflow``, or a type that is not an ``Event`` subclass
                (before anything is attached).
        """
        subscription = self._attach(types, buffer, grace, overflow, name)
        try:
            yield subscription
        finally:
            self._detach(subscription)
            subscription._close()

    # -- handlers -----------------------------------------------------------------------

    def add_handler(
        self,
        callback: Callable[[Any], object],
        *types: type[Event],
        buffer: int = _DEFAULT_BUFFER,
        name: str | None = None,
    ) -> EventHandler:
        """Call ``callback`` with every event of the given types.

        The callback (a function, or an async function) runs in a task of the
        engine while ``run`` runs; events published meanwhile are buffered
        under the usual delivery policy. An exception it raises is reported as
        an ``ErrorEvent`` (not sent to this handler) and the handler
        keeps being called.

        Args:
            callback: Called with each event; may return an awaitable.
            *types: Event classes to receive; none: all.
            buffer: Events buffered for the handler.
            name: Name in error reports (default: the callback's qualified name).

        Returns:
            The registration; call ``EventHandler.remove`` to stop it.

        Raises:
            InputValidationError: ``buffer`` < 1, ``callback`` is not callable, or a
                type is not an event type.
        """
        if not callable(callback):
            raise InputValidationError("callback", "must be callable")
        if name is None:
            name = getattr(callback, "__qualname__", None) or repr(callback)
        subscription = self._attach(types, buffer, None, None, f"handler {name}")
        handler = EventHandler(self, callback, subscription)
        self._handlers.append(handler)
        if self._nursery is not None:
            self._start_handler(self._nursery, handler)
        return handler

    def _remove_handler(self, handler: EventHandler) -> None:
        if handler in self._handlers:
            self._handlers.remove(handler)
        self._detach(handler._subscription)
        handler._subscription._close()

    def _start_handler(self, nursery: trio.Nursery, handler: EventHandler) -> None:
        handler._running = True
        nursery.start_soon(self._run_handler, handler, name=f"hbtrio {handler.name}")

    async def _run_handler(self, handler: EventHandler) -> None:
        subscription = handler._subscription
        try:
            async for event in subscription:
                handler.calls += 1
                try:
                    result = handler.callback(event)
                    if inspect.isawaitable(result):
                        await result
                except Exception as exc:
                    handler.errors += 1
                    self._handler_errors += 1
                    self._publish(
                        ErrorEvent(
                            error=f"event {handler.name} raised {type(exc).__name__}: {exc}",
                            kind=type(exc).__name__,
                        ),
                        subscription,
                    )
        except SubscriptionError:
            # Cut off for falling behind: already counted and reported.
            if handler in self._handlers:
                self._handlers.remove(handler)
        finally:
            handler._running = False

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether handler tasks are being run."""
        return self._nursery is not None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the handlers until cancelled.

        Use with ``nursery.start(engine.run)``: it reports started once the
        handlers are running. Publishing and subscriptions work without it.

        Args:
            task_status: Set by ``nursery.start``.

        Raises:
            RuntimeError: The engine is already running.
        """
        if self._nursery is not None:
            raise RuntimeError("the event engine is already running")
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                for handler in self._handlers:
                    if not handler._running:
                        self._start_handler(nursery, handler)
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._nursery = None

    async def __aenter__(self) -> EventEngine:
        """Start running handlers in a nursery of the engine's own.

        Returns:
            The engine.
        """
        stack = AsyncExitStack()
        nursery = await stack.enter_async_context(trio.open_nursery())
        await nursery.start(self.run)
        self._stack = stack
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        """Stop running handlers.

        Args:
            exc_type: Exception type leaving the block, if any.
            exc: The exception, if any.
            tb: Its traceback.

        Returns:
            Whatever the nursery's exit returns.
        """
        stack, self._stack = self._stack, None
        assert stack is not None, "__aexit__ without __aenter__"
        nursery = self._nursery
        if nursery is not None:
            nursery.cancel_scope.cancel()
        return await stack.__aexit__(exc_type, exc, tb)

    # -- metrics ------------------------------------------------------------------------

    @property
    def stats(self) -> EngineStats:
        """A snapshot of the engine's counters."""
        return EngineStats(
            published={cls.__name__: n for cls, n in self._published.items()},
            conflated=dict(self._conflated),
            cut_off=self._cut_off,
            handler_errors=self._handler_errors,
            subscribers=len(self._subscriptions),
        )

    @property
    def subscriber_count(self) -> int:
        """Number of open subscriptions (handlers included)."""
        return len(self._subscriptions)
