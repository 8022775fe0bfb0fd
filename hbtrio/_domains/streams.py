"""The streaming part of ``Client``: subscriptions and events as the client offers them.

The work is done by the ``StreamingSupervisor`` (``hbtrio._actors.streams``);
this part hands each call to it, or to the event engine of a REST-only client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager

from .._actors.streams import DEFAULT_BUFFER, StreamingSupervisor
from .._errors import SubscriptionError
from ..events import Event
from ..models import Candle, MarketTrade, OrderBook, Ticker
from ._part import Part

__all__ = ["StreamsPart"]


class StreamsPart(Part):
    """Market-data subscriptions and the client's event stream."""

    def _streaming(self) -> StreamingSupervisor:
        if self.streams is None:
            raise SubscriptionError("this client was opened without streaming")
        return self.streams

    def subscribe_order_book(
        self, exchange: str, market: str, depth: int = 10, update_interval: float = 1.0
    ) -> AbstractAsyncContextManager[AsyncIterator[OrderBook]]:
        """Stream order-book snapshots (see ``StreamingSupervisor.subscribe_order_book``).

        Args:
            exchange: Connector name.
            market: Trading pair.
            depth: Levels per side (1..1000).
            update_interval: Seconds between server pushes, 0 for as fast as the
                server sends (the server clamps it).

        Returns:
            An async context manager yielding an async iterator of order books.

        Raises:
            SubscriptionError: The client was opened without streaming.
        """
        return self._streaming().subscribe_order_book(
            exchange, market, depth=depth, update_interval=update_interval
        )

    def subscribe_trades(
        self,
        exchange: str,
        market: str,
        update_interval: float = 1.0,
        *,
        buffer: int = DEFAULT_BUFFER,
    ) -> AbstractAsyncContextManager[AsyncIterator[MarketTrade]]:
        """Stream public trades (see ``StreamingSupervisor.subscribe_trades``).

        Args:
            exchange: Connector name.
            market: Trading pair.
            update_interval: Seconds between server pushes.
            buffer: Trades kept for a consumer that falls behind.

        Returns:
            An async context manager yielding an async iterator of public trades.

        Raises:
            SubscriptionError: The client was opened without streaming.
        """
        return self._streaming().subscribe_trades(
            exchange, market, update_interval=update_interval, buffer=buffer
        )

    def subscribe_ticker(
        self, exchange: str, market: str, update_interval: float = 1.0
    ) -> AbstractAsyncContextManager[AsyncIterator[Ticker]]:
        """Stream composed tickers (see ``StreamingSupervisor.subscribe_ticker``).

        Args:
            exchange: Connector name.
            market: Trading pair.
            update_interval: Seconds between server pushes.

        Returns:
            An async context manager yielding an async iterator of tickers.

        Raises:
            SubscriptionError: The client was opened without streaming.
        """
        return self._streaming().subscribe_ticker(exchange, market, update_interval=update_interval)

    def subscribe_candles(
        self,
        exchange: str,
        market: str,
        interval: str = "1m",
        *,
        update_interval: float = 1.0,
        max_records: int = 100,
        buffer: int = DEFAULT_BUFFER,
    ) -> AbstractAsyncContextManager[AsyncIterator[Candle]]:
        """Stream candles (see ``StreamingSupervisor.subscribe_candles``).

        Args:
            exchange: Connector name.
            market: Trading pair.
            interval: Candle interval, e.g. ``1m``.
            update_interval: Seconds between server pushes.
            max_records: Candles kept by the server's feed.
            buffer: Candles kept for a consumer that falls behind.

        Returns:
            An async context manager yielding an async iterator of candles.

        Raises:
            SubscriptionError: The client was opened without streaming.
        """
        return self._streaming().subscribe_candles(
            exchange,
            market,
            interval=interval,
            update_interval=update_interval,
            max_records=max_records,
            buffer=buffer,
        )

    def events(
        self, *types: type[Event], buffer: int = 1000
    ) -> AbstractAsyncContextManager[AsyncIterator[Event]]:
        """Subscribe to the events the client publishes (all, or some types).

        A REST-only client (``streaming=False``) subscribes to its event engine
        directly.

        Args:
            *types: Event classes to receive; none: every event.
            buffer: Events buffered for this subscriber.

        Returns:
            An async context manager yielding an async iterator of events.

        Raises:
            InputValidationError: ``buffer`` < 1, or a type that is not an ``Event``
                subclass (on entering the context).
        """
        if self.streams is None:
            return self.engine.subscribe(*types, buffer=buffer)
        return self.streams.events(*types, buffer=buffer)
