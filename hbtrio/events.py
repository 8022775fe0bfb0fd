"""Events the client publishes, and the in-process :class:`EventEngine`.

Every event is an immutable :class:`msgspec.Struct` subclass of :class:`Event`,
which carries ``timestamp`` (epoch seconds when the client produced the event).
Events are tagged (``type`` in their JSON form), so a sink can write them with
``msgspec.json.encode`` and read them back with :data:`EVENT_DECODER`.
"""

from __future__ import annotations

import time

import msgspec

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
    "ErrorEvent",
    "Event",
    "MarketTrades",
    "OrderBookUpdate",
    "OrderUpdate",
    "TickerUpdate",
    "TradeEvent",
]


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
