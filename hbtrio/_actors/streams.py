"""Streaming supervisor: the WebSocket side of a client.

``StreamingSupervisor`` runs, in one nursery, each started with
``nursery.start`` and each owning its bounded ``trio`` memory-channel inbox::

    publisher    <- events from every producer  -> EventEngine.publish
    correlation  <- requests (renewal, pinger), control messages (reader),
                    LinkUp/LinkDown (connection)
    renewal      <- Register/Unregister (consumers), DataSeen (router),
                    LinkUp/LinkDown (connection)
    tracker      -> publisher (awaiting sends: order/fill events never dropped)
    connection   the WebSocket: its reader routes control messages to
                 correlation, data pushes to the router below, and feeds the
                 liveness watchdog

The router (this module) is the data path, called by the reader: it hands
data to consumers and publishes it. It is what ``Client.subscribe_*``,
``Client.state`` and ``Client.events`` delegate to.

Delivery never blocks the reader: every consumer has its own bounded buffer with
a conflation policy. Order books and tickers keep only the latest value (a
snapshot supersedes the previous one); trades and candles keep the newest
``buffer`` items and drop the oldest when the consumer falls behind. Drops are
counted per consumer (``Subscription.dropped``). The same data is published
once to the event engine (``OrderBookUpdate``, ``MarketTrades``,
``CandleUpdate``, ``TickerUpdate``), whose own policy applies to its subscribers.

Consumers of the same stream share one server subscription (the order book at
the deepest depth any consumer asked for, each consumer truncated to its own);
the last one leaving unsubscribes.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from decimal import Decimal
from typing import Any, Generic, TypeVar

import trio

from .._config import ClientConfig
from .._core.subscriptions import (
    StreamKey,
    StreamParams,
    SubscriptionSet,
    candles_key,
    order_book_key,
    subscription_id,
    trades_key,
)
from .._errors import HbtrioError
from .._validation import (
    check_exchange,
    check_interval,
    check_market,
    check_range,
    check_seconds,
)
from .._wire.ws import (
    CandlesMessage,
    OrderBookMessage,
    TradesMessage,
    candle_from_update,
    candles_from_push,
    order_book_from_push,
    trades_from_push,
)
from ..events import (
    CandleUpdate,
    ErrorEvent,
    Event,
    EventEngine,
    EventSubscription,
    MarketTrades,
    OrderBookUpdate,
    TickerUpdate,
)
from ..models import Candle, ConnectionState, MarketTrade, OrderBook, Ticker
from .connection import ConnectionActor, DataPush
from .correlation import CorrelationActor
from .publisher import PublisherActor
from .renewal import REFUSALS_BEFORE_FAILING, Register, RenewalActor, Unregister
from .tracker import TrackerActor
from .transport import Dialer, exception_leaves, trio_websocket_dialer

__all__ = ["DEFAULT_BUFFER", "REFUSALS_BEFORE_FAILING", "StreamingSupervisor", "Subscription"]

T = TypeVar("T")

DEFAULT_BUFFER = 1000
"""Items a trades/candles consumer may fall behind before the oldest are dropped."""


class Subscription(Generic[T]):
    """The async iterator a ``subscribe_*`` block yields.

    Args:
        maxlen: Buffer size; ``1`` keeps only the latest item (conflation).

    Attributes:
        dropped: Items dropped (superseded or overflowed) because the consumer
            fell behind.
        delivered: Items handed to the consumer.
    """

    def __init__(self, maxlen: int) -> None:
        self._items: deque[T] = deque()
        self._maxlen = maxlen
        self._event = trio.Event()
        self._error: BaseException | None = None
        self._closed = False
        self.dropped = 0
        self.delivered = 0

    def offer(self, item: T) -> None:
        """Queue an item without blocking (dropping the oldest when full).

        Args:
            item: The item.
        """
        if self._closed:
            return
        if len(self._items) >= self._maxlen:
            self._items.popleft()
            self.dropped += 1
        self._items.append(item)
        self._event.set()

    def fail(self, error: BaseException) -> None:
        """End the iteration with ``error`` (after the queued items).

        Args:
            error: The exception the consumer gets.
        """
        self._error = error
        self._event.set()

    def close(self) -> None:
        """End the iteration (the consumer left)."""
        self._closed = True
        self._items.clear()
        self._event.set()

    def __aiter__(self) -> Subscription[T]:
        return self

    async def __anext__(self) -> T:
        while not self._items:
            if self._closed:
                raise StopAsyncIteration
            if self._error is not None:
                raise self._error
            self._event = trio.Event()
            await self._event.wait()
        self.delivered += 1
        return self._items.popleft()

    async def receive(self) -> T:
        """Return the next item (the same as ``await anext(subscription)``).

        Returns:
            The item.

        Raises:
            SubscriptionError: The server kept refusing the subscription.
            StopAsyncIteration: The subscription was closed.
        """
        return await self.__anext__()


class _TickerState:
    """Composes a ticker from the book top and the trades of one market."""

    def __init__(self, exchange: str, market: str, out: Subscription[Ticker]) -> None:
        self.exchange = exchange
        self.market = market
        self.out = out
        self.bid: Decimal | None = None
        self.ask: Decimal | None = None
        self.last: Decimal | None = None
        self.volume = Decimal(0)
        self.timestamp = 0.0

    def seed(self, ticker: Ticker) -> None:
        if self.last is None:
            self.last = ticker.last
        self.volume += ticker.volume

    def on_book(self, book: OrderBook) -> Ticker | None:
        best_bid, best_ask = book.best_bid, book.best_ask
        bid = best_bid.price if best_bid is not None else self.bid
        ask = best_ask.price if best_ask is not None else self.ask
        if bid == self.bid and ask == self.ask:
            return None
        self.bid, self.ask = bid, ask
        self.timestamp = max(self.timestamp, book.timestamp)
        return self._emit()

    def on_trades(self, trades: tuple[MarketTrade, ...]) -> Ticker | None:
        if not trades:
            return None
        for trade in trades:
            self.volume += trade.amount
            self.timestamp = max(self.timestamp, trade.timestamp)
        self.last = trades[-1].price
        return self._emit()

    def _emit(self) -> Ticker | None:
        if self.bid is None or self.ask is None or self.last is None:
            return None
        ticker = Ticker(
            exchange=self.exchange,
            market=self.market,
            bid=self.bid,
            ask=self.ask,
            last=self.last,
            volume=self.volume,
            timestamp=self.timestamp,
        )
        self.out.offer(ticker)
        return ticker


class _Sink:
    """What the router hands a push of one subscription to, per consumer."""

    def __init__(
        self,
        *,
        book: Subscription[OrderBook] | None = None,
        depth: int = 0,
        trades: Subscription[MarketTrade] | None = None,
        candles: Subscription[Candle] | None = None,
        ticker: _TickerState | None = None,
    ) -> None:
        self.book = book
        self.depth = depth
        self.trades = trades
        self.candles = candles
        self.ticker = ticker
        self.last_candle = -math.inf
        self.subscriptions: list[Subscription[Any]] = [
            s for s in (book, trades, candles, ticker.out if ticker else None) if s is not None
        ]


class StreamingSupervisor:
    """The streaming half of a client: connection, subscriptions, consumers.

    Args:
        config: Client configuration.
        publish: Non-blocking event sink (``EventEngine.publish``); the
            publisher actor calls it from its own task.
        dialer: Opens the WebSocket (default: trio-websocket over TLS per ``config``).
        ticker_seed: Optional ``async (exchange, market) -> Ticker`` used when a
            ticker subscription starts, for the initial last price and volume.
        extra_actors: Further actors started in the supervisor's nursery before
            the connection.
        engine: The event engine, for ``events`` (``publish`` is usually
            its ``publish``).
        tracker: The order tracker actor, started with the others; its events
            go through the publisher actor.

    Attributes:
        publisher: The event-publishing actor.
        correlation: The request-correlation actor.
        renewal: The subscription-renewal actor.
        connection: The connection actor.
    """

    def __init__(
        self,
        config: ClientConfig,
        publish: Callable[[Event], None],
        *,
        dialer: Dialer | None = None,
        ticker_seed: Callable[[str, str], Awaitable[Ticker]] | None = None,
        extra_actors: tuple[Callable[..., Awaitable[None]], ...] = (),
        engine: EventEngine | None = None,
        tracker: TrackerActor | None = None,
    ) -> None:
        self._config = config
        self.engine = engine
        self.tracker = tracker
        self._ticker_seed = ticker_seed
        self._extra_actors = extra_actors
        self.publisher = PublisherActor(publish)
        self._publish = self.publisher.publish_nowait
        if tracker is not None:
            tracker.connect_outbox(self.publisher)
        # The data router's own view of the consumers (the renewal actor has its own).
        self._sinks: dict[str, dict[int, _Sink]] = {}
        self._keys: dict[str, StreamKey] = {}
        self._tokens = itertools.count(1)
        self._last_candle_published: dict[str, float] = {}
        self.correlation = CorrelationActor(self._publish)
        self.renewal = RenewalActor(
            self._publish, self.correlation.inbox, ack_timeout=config.timeout or 10.0
        )
        self.connection = ConnectionActor(
            config,
            dialer if dialer is not None else trio_websocket_dialer(config),
            self._publish,
            route_data=self._on_push,
            correlation=self.correlation,
            link_watchers=(self.renewal.inbox,),
        )

    @property
    def state(self) -> ConnectionState:
        """The connection state."""
        return self.connection.state

    @property
    def subscriptions(self) -> SubscriptionSet:
        """The renewal actor's desired/active subscription set (read only)."""
        return self.renewal.subscriptions

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run every streaming actor; started once the WebSocket is connected.

        Args:
            task_status: Trio's start protocol.

        Raises:
            AuthenticationFailed: Wrong credentials (at start-up).
            ConnectionFailed: The server could not be reached (at start-up).
        """
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(self.publisher.run)
                await nursery.start(self.correlation.run)
                await nursery.start(self.renewal.run)
                if self.tracker is not None:
                    await nursery.start(self.tracker.run)
                for actor in self._extra_actors:
                    await nursery.start(actor)
                await nursery.start(self.connection.run)
                task_status.started()
        except BaseExceptionGroup as group:
            errors = exception_leaves(group)
            if len(errors) == 1:
                raise errors[0] from None
            raise

    def events(
        self, *types: type[Event], buffer: int = 1000
    ) -> AbstractAsyncContextManager[EventSubscription[Event]]:
        """Subscribe to the events the client publishes (all, or some types).

        Args:
            *types: Event classes to receive; none: every event.
            buffer: Events buffered for this subscriber (the engine's delivery
                policy applies when it falls behind).

        Returns:
            An async context manager yielding an async iterator of events.

        Raises:
            RuntimeError: The supervisor was built without an engine.
        """
        if self.engine is None:
            raise RuntimeError("no event engine")
        return self.engine.subscribe(*types, buffer=buffer)

    # -- the data router (called inline by the connection's reader; never blocks) -------

    def _on_push(self, message: DataPush, now: float) -> None:
        """Hand one data push to its consumers and publish it.

        Args:
            message: The push.
            now: Current (trio) time.

        Raises:
            MalformedResponse: The push could not be converted (reported by the caller).
        """
        sub_id = message.subscription_id
        consumers = self._sinks.get(sub_id)
        if not consumers:
            return
        self.renewal.mark_data(sub_id, now)
        key = self._keys[sub_id]
        exchange, market = key[1], key[2]
        sinks = consumers.values()  # nothing below awaits: no consumer comes or goes
        if isinstance(message, OrderBookMessage):
            book = order_book_from_push(message, exchange, market, now=time.time())
            self._publish(OrderBookUpdate(book=book))
            for sink in sinks:
                if sink.book is not None:
                    sink.book.offer(book.truncated(sink.depth))
                if sink.ticker is not None and (ticker := sink.ticker.on_book(book)):
                    self._publish(TickerUpdate(ticker=ticker))
        elif isinstance(message, TradesMessage):
            trades = trades_from_push(message, exchange, market, now=time.time())
            if not trades:
                return
            self._publish(MarketTrades(exchange=exchange, market=market, trades=trades))
            for sink in sinks:
                if sink.trades is not None:
                    for trade in trades:
                        sink.trades.offer(trade)
                if sink.ticker is not None and (ticker := sink.ticker.on_trades(trades)):
                    self._publish(TickerUpdate(ticker=ticker))
        else:
            if isinstance(message, CandlesMessage):
                candles = candles_from_push(message)
            else:
                candles = (candle_from_update(message),)
            self._deliver_candles(key, sub_id, candles, sinks)

    def _deliver_candles(
        self, key: StreamKey, sub_id: str, candles: tuple[Candle, ...], sinks: Iterable[_Sink]
    ) -> None:
        # A candles push repeats history (e.g. after a resubscribe): hand each
        # consumer only the candles not older than the newest it already has.
        newest = self._last_candle_published.get(sub_id, -math.inf)
        for candle in candles:
            if candle.timestamp >= newest:
                newest = candle.timestamp
                self._publish(
                    CandleUpdate(exchange=key[1], market=key[2], interval=key[3], candle=candle)
                )
        self._last_candle_published[sub_id] = newest
        for sink in sinks:
            if sink.candles is None:
                continue
            for candle in candles:
                if candle.timestamp >= sink.last_candle:
                    sink.last_candle = candle.timestamp
                    sink.candles.offer(candle)

    # -- consumers ----------------------------------------------------------------------

    @asynccontextmanager
    async def _consume(
        self, parts: list[tuple[StreamKey, StreamParams, _Sink]]
    ) -> AsyncIterator[None]:
        tokens: list[tuple[int, str]] = []
        try:
            for key, params, sink in parts:
                token = next(self._tokens)
                sub_id = subscription_id(key)
                self._keys[sub_id] = key
                self._sinks.setdefault(sub_id, {})[token] = sink
                tokens.append((token, sub_id))
                await self._tell_renewal(Register(token, key, params, sink.subscriptions))
            yield
        finally:
            for token, sub_id in tokens:
                consumers = self._sinks.get(sub_id, {})
                sink = consumers.pop(token)
                if not consumers:
                    self._sinks.pop(sub_id, None)
                    self._keys.pop(sub_id, None)
                for subscription in sink.subscriptions:
                    subscription.close()
            with trio.CancelScope(shield=True):
                for token, _ in tokens:
                    await self._tell_renewal(Unregister(token))

    async def _tell_renewal(self, command: Register | Unregister) -> None:
        # The renewal actor serves its inbox without blocking: this waits at most
        # a scheduler pass (also when shielded, on the way out).
        # A stopped supervisor has nothing to subscribe any more.
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await self.renewal.inbox.send(command)

    @asynccontextmanager
    async def subscribe_order_book(
        self, exchange: str, market: str, depth: int = 10, update_interval: float = 1.0
    ) -> AsyncIterator[Subscription[OrderBook]]:
        """Stream order-book snapshots of one market (latest only when behind).

        Args:
            exchange: Connector name.
            market: Trading pair.
            depth: Levels per side (1..1000).
            update_interval: Seconds between server pushes, 0 for as fast as the
                server sends (the server clamps it).

        Yields:
            An async iterator of ``OrderBook``.

        Raises:
            InputValidationError: An argument is invalid.
        """
        exchange, market = check_exchange(exchange), check_market(market)
        depth = check_range(depth, "depth", 1, 1000)
        interval = _check_update_interval(update_interval)
        out: Subscription[OrderBook] = Subscription(1)
        sink = _Sink(book=out, depth=depth)
        params = StreamParams(depth=depth, update_interval=interval)
        async with self._consume([(order_book_key(exchange, market), params, sink)]):
            yield out

    @asynccontextmanager
    async def subscribe_trades(
        self,
        exchange: str,
        market: str,
        update_interval: float = 1.0,
        buffer: int = DEFAULT_BUFFER,
    ) -> AsyncIterator[Subscription[MarketTrade]]:
        """Stream public trades of one market, one ``MarketTrade`` each.

        Args:
            exchange: Connector name.
            market: Trading pair.
            update_interval: Seconds between server pushes.
            buffer: Trades the consumer may fall behind before the oldest are dropped.

        Yields:
            An async iterator of ``MarketTrade``.

        Raises:
            InputValidationError: An argument is invalid.
        """
        exchange, market = check_exchange(exchange), check_market(market)
        interval = _check_update_interval(update_interval)
        out: Subscription[MarketTrade] = Subscription(check_range(buffer, "buffer", 1, 10**7))
        params = StreamParams(update_interval=interval)
        async with self._consume([(trades_key(exchange, market), params, _Sink(trades=out))]):
            yield out

    @asynccontextmanager
    async def subscribe_candles(
        self,
        exchange: str,
        market: str,
        interval: str = "1m",
        update_interval: float = 1.0,
        max_records: int = 100,
        buffer: int = DEFAULT_BUFFER,
    ) -> AsyncIterator[Subscription[Candle]]:
        """Stream candles of one market: recent history first, then live updates.

        Args:
            exchange: Connector name.
            market: Trading pair.
            interval: Candle interval, e.g. ``1m``.
            update_interval: Seconds between server pushes.
            max_records: Candles of history the server sends on subscribing.
            buffer: Candles the consumer may fall behind before the oldest are dropped.

        Yields:
            An async iterator of ``Candle`` (the live candle repeats
            with the same ``timestamp`` as it updates).

        Raises:
            InputValidationError: An argument is invalid.
        """
        exchange, market = check_exchange(exchange), check_market(market)
        interval = check_interval(interval)
        push_interval = _check_update_interval(update_interval)
        records = check_range(max_records, "max_records", 1, 1000)
        out: Subscription[Candle] = Subscription(check_range(buffer, "buffer", 1, 10**7))
        params = StreamParams(update_interval=push_interval, max_records=records)
        key = candles_key(exchange, market, interval)
        async with self._consume([(key, params, _Sink(candles=out))]):
            yield out

    @asynccontextmanager
    async def subscribe_ticker(
        self, exchange: str, market: str, update_interval: float = 1.0
    ) -> AsyncIterator[Subscription[Ticker]]:
        """Stream tickers of one market, composed by the client (latest only when behind).

        ``bid``/``ask`` come from the top of the order book stream, ``last`` from
        the latest public trade. ``volume`` starts from the server's ticker volume
        at subscription time (REST, when available; else 0) and adds the base
        amount of every public trade seen since. Until ``last`` is known (a trade,
        or the REST ticker), nothing is yielded.

        Args:
            exchange: Connector name.
            market: Trading pair.
            update_interval: Seconds between server pushes.

        Yields:
            An async iterator of ``Ticker``.

        Raises:
            InputValidationError: An argument is invalid.
        """
        exchange, market = check_exchange(exchange), check_market(market)
        interval = _check_update_interval(update_interval)
        out: Subscription[Ticker] = Subscription(1)
        state = _TickerState(exchange, market, out)
        if self._ticker_seed is not None:
            await self._seed_ticker(state)
        parts = [
            (order_book_key(exchange, market), StreamParams(depth=1, update_interval=interval)),
            (trades_key(exchange, market), StreamParams(update_interval=interval)),
        ]
        async with self._consume([(k, p, _Sink(ticker=state)) for k, p in parts]):
            yield out

    async def _seed_ticker(self, state: _TickerState) -> None:
        assert self._ticker_seed is not None
        bound = (self._config.timeout or 10.0) * (self._config.retries + 1)
        try:
            with trio.fail_after(bound):
                ticker = await self._ticker_seed(state.exchange, state.market)
        except (HbtrioError, trio.TooSlowError) as exc:
            self._publish(
                ErrorEvent(
                    error=f"initial ticker of {state.exchange} {state.market}: {exc}",
                    kind=type(exc).__name__,
                )
            )
            return
        state.seed(ticker)


def _check_update_interval(value: object) -> float:
    # 0 asks for every change, as fast as the server sends (the server clamps it).
    return check_seconds(value, "update_interval", 3600)
