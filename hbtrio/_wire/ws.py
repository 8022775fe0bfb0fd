"""WebSocket ``/ws/market-data`` messages: decoding, encoding, conversion (sans-IO).

Server messages are a msgspec tagged union on ``type``; one decoder is built at
import. ``decode_server_message`` turns a frame into one of the message
structs below, an ``UnknownMessage`` for a ``type`` this version does not
know, or raises ``MalformedResponse`` for anything else (binary or
invalid UTF-8 frames, invalid JSON, wrong shapes, oversized frames).

Client actions are encoded by the ``encode_*`` functions as JSON text. Subscription
ids are deterministic (the server's own scheme), so acknowledgements are
correlated by id: ``order_book_subscription_id``, ``trades_subscription_id``,
``candles_subscription_id``.

Pushes become public models with ``order_book_from_push``,
``trades_from_push``, ``candles_from_push`` and ``candle_from_update``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TypeAlias, get_args

import msgspec

from .._errors import MalformedResponse
from ..models import Candle, MarketTrade, OrderBook
from ._common import book_levels, decimal_value, guarded, malformed, side, timestamp

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "CandleUpdateMessage",
    "CandlesMessage",
    "ConnectedMessage",
    "ErrorMessage",
    "HeartbeatMessage",
    "KnownMessage",
    "OrderBookMessage",
    "PongMessage",
    "ServerMessage",
    "SubscribedMessage",
    "TradesMessage",
    "UnknownMessage",
    "UnsubscribedMessage",
    "WireCandle",
    "WireLevel",
    "WirePushTrade",
    "candle_from_update",
    "candle_from_wire",
    "candles_from_push",
    "candles_subscription_id",
    "decode_server_message",
    "encode_ping",
    "encode_subscribe_candles",
    "encode_subscribe_order_book",
    "encode_subscribe_trades",
    "encode_unsubscribe",
    "order_book_from_push",
    "order_book_subscription_id",
    "trades_from_push",
    "trades_subscription_id",
]

DEFAULT_MAX_MESSAGE_SIZE = 4 * 1024 * 1024
"""Largest frame ``decode_server_message`` accepts by default (bytes)."""

_Time: TypeAlias = float | str | None


class _Msg(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Base of server messages (tagged by ``type``)."""


class ConnectedMessage(_Msg, frozen=True, tag="connected"):
    """``{"type":"connected","connection_id":...,"timestamp":...}`` after authentication.

    Attributes:
        connection_id: Server-side connection id.
        timestamp: Server time, when sent.
    """

    connection_id: str = ""
    timestamp: _Time = None


class HeartbeatMessage(_Msg, frozen=True, tag="heartbeat"):
    """Server heartbeat (every 30 s on the real server).

    Attributes:
        timestamp: Server time, when sent.
    """

    timestamp: _Time = None


class PongMessage(_Msg, frozen=True, tag="pong"):
    """Answer to ``{"action":"ping"}``.

    Attributes:
        timestamp: Server time, when sent.
    """

    timestamp: _Time = None


class SubscribedMessage(_Msg, frozen=True, tag="subscribed"):
    """Acknowledgement of a subscribe.

    Attributes:
        subscription_id: The deterministic subscription id.
    """

    subscription_id: str


class UnsubscribedMessage(_Msg, frozen=True, tag="unsubscribed"):
    """Acknowledgement of an unsubscribe.

    Attributes:
        subscription_id: The subscription id.
    """

    subscription_id: str


class ErrorMessage(_Msg, frozen=True, tag="error"):
    """``{"type":"error","message":...}`` (authentication failure, failed subscribe, ...).

    Attributes:
        message: The server's text.
        subscription_id: Present only if a server version adds it.
    """

    message: str = ""
    subscription_id: str | None = None


class WireLevel(msgspec.Struct, frozen=True):
    """An order book level sent as an object ``{"price":...,"amount":...}``.

    Attributes:
        price: Level price.
        amount: Level amount.
    """

    price: Decimal
    amount: Decimal


class _BookData(msgspec.Struct, frozen=True):
    bids: list[tuple[Decimal, Decimal] | WireLevel]
    asks: list[tuple[Decimal, Decimal] | WireLevel]
    timestamp: _Time = None


class OrderBookMessage(_Msg, frozen=True, tag="order_book"):
    """An order book snapshot push.

    Attributes:
        subscription_id: Subscription id.
        data: Bids and asks as ``[[price, amount], ...]`` (or level objects).
        timestamp: Push time.
    """

    subscription_id: str
    data: _BookData
    timestamp: _Time = None


class WirePushTrade(msgspec.Struct, frozen=True, kw_only=True):
    """One public trade of a ``trades`` push.

    Attributes:
        timestamp: Trade time.
        price: Trade price.
        amount: Base amount.
        side: ``buy`` or ``sell`` (taker side).
    """

    timestamp: _Time = None
    price: Decimal
    amount: Decimal
    side: str


class TradesMessage(_Msg, frozen=True, tag="trades"):
    """A batch of public trades.

    Attributes:
        subscription_id: Subscription id.
        data: The trades.
        timestamp: Push time.
    """

    subscription_id: str
    data: list[WirePushTrade]
    timestamp: _Time = None


class WireCandle(msgspec.Struct, frozen=True, kw_only=True):
    """A candle as the server sends it (extra columns are ignored).

    Attributes:
        timestamp: Open time.
        open: Open price.
        high: High price.
        low: Low price.
        close: Close price.
        volume: Base volume.
    """

    timestamp: float | str
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal = Decimal(0)


class CandlesMessage(_Msg, frozen=True, tag="candles"):
    """Candles push, sent when a new candle opens.

    Attributes:
        subscription_id: Subscription id.
        data: The candles, oldest first.
        timestamp: Push time.
    """

    subscription_id: str
    data: list[WireCandle]
    timestamp: _Time = None


class CandleUpdateMessage(_Msg, frozen=True, tag="candle_update"):
    """Update of the live (still open) candle.

    Attributes:
        subscription_id: Subscription id.
        data: The live candle.
        timestamp: Push time.
    """

    subscription_id: str
    data: WireCandle
    timestamp: _Time = None


class UnknownMessage(msgspec.Struct, frozen=True):
    """A well-formed message whose ``type`` this version does not know.

    Attributes:
        type: The unknown ``type`` value.
    """

    type: str


KnownMessage: TypeAlias = (
    ConnectedMessage
    | HeartbeatMessage
    | PongMessage
    | SubscribedMessage
    | UnsubscribedMessage
    | ErrorMessage
    | OrderBookMessage
    | TradesMessage
    | CandlesMessage
    | CandleUpdateMessage
)
ServerMessage: TypeAlias = KnownMessage | UnknownMessage

_KNOWN_TYPES: frozenset[str] = frozenset(
    str(cls.__struct_config__.tag) for cls in get_args(KnownMessage)
)
"""The ``type`` tags of ``KnownMessage`` (derived, so a new message type is known)."""


class _Envelope(msgspec.Struct, frozen=True):
    type: str


_DECODER: msgspec.json.Decoder[KnownMessage] = msgspec.json.Decoder(KnownMessage)
_ENVELOPE: msgspec.json.Decoder[_Envelope] = msgspec.json.Decoder(_Envelope)
_ENCODER = msgspec.json.Encoder()


def decode_server_message(
    data: bytes | str, *, max_size: int = DEFAULT_MAX_MESSAGE_SIZE
) -> ServerMessage:
    """Decode one WebSocket frame from the server.

    Args:
        data: The frame: ``str`` for text frames; ``bytes`` (binary frames, or
            text already encoded) must be valid UTF-8 JSON.
        max_size: Largest accepted frame, in bytes (characters for ``str``).

    Returns:
        The message struct, or ``UnknownMessage`` for an unknown ``type``.

    Raises:
        MalformedResponse: Oversized, not UTF-8, not JSON, or a known ``type``
            with the wrong shape.
    """
    if not isinstance(data, bytes | str):
        raise malformed("WebSocket frame is neither text nor bytes", data)
    if len(data) > max_size:
        raise MalformedResponse(
            f"WebSocket message too large ({len(data)} > {max_size})",
            excerpt=data[:200].decode("utf-8", "replace")
            if isinstance(data, bytes)
            else data[:200],
        )
    return _decode(data)


@guarded("WebSocket message")
def _decode(data: bytes | str) -> ServerMessage:
    if isinstance(data, bytes):
        # msgspec validates UTF-8 of the document structure but not of every
        # string, so check it up front.
        data.decode("utf-8")
    try:
        return _DECODER.decode(data)
    except msgspec.ValidationError:
        envelope = _ENVELOPE.decode(data)
        if envelope.type not in _KNOWN_TYPES:
            return UnknownMessage(type=envelope.type[:100])
        raise


# -- client actions ---------------------------------------------------------------


def order_book_subscription_id(exchange: str, market: str) -> str:
    """Return the server's subscription id of an order book stream.

    Args:
        exchange: Connector name.
        market: Trading pair.

    Returns:
        ``order_book_{exchange}_{market}``.
    """
    return f"order_book_{exchange}_{market}"


def trades_subscription_id(exchange: str, market: str) -> str:
    """Return the server's subscription id of a public trades stream.

    Args:
        exchange: Connector name.
        market: Trading pair.

    Returns:
        ``trades_{exchange}_{market}``.
    """
    return f"trades_{exchange}_{market}"


def candles_subscription_id(exchange: str, market: str, interval: str) -> str:
    """Return the server's subscription id of a candles stream.

    Args:
        exchange: Connector name.
        market: Trading pair.
        interval: Candle interval, e.g. ``1m``.

    Returns:
        ``candles_{exchange}_{market}_{interval}``.
    """
    return f"candles_{exchange}_{market}_{interval}"


def _encode(obj: dict[str, object]) -> str:
    return _ENCODER.encode(obj).decode("utf-8")


def encode_ping() -> str:
    """Return the ``ping`` action as a JSON text frame."""
    return '{"action":"ping"}'


def encode_subscribe_order_book(
    exchange: str, market: str, *, depth: int = 10, update_interval: float = 1.0
) -> str:
    """Encode an order book subscribe action.

    Args:
        exchange: Connector name.
        market: Trading pair.
        depth: Levels per side (validated by the caller).
        update_interval: Seconds between pushes (the server clamps it).

    Returns:
        The JSON text frame.
    """
    return _encode(
        {
            "action": "subscribe",
            "type": "order_book",
            "connector": exchange,
            "trading_pair": market,
            "depth": depth,
            "update_interval": float(update_interval),
        }
    )


def encode_subscribe_trades(exchange: str, market: str, *, update_interval: float = 1.0) -> str:
    """Encode a public trades subscribe action.

    Args:
        exchange: Connector name.
        market: Trading pair.
        update_interval: Seconds between pushes (the server clamps it).

    Returns:
        The JSON text frame.
    """
    return _encode(
        {
            "action": "subscribe",
            "type": "trades",
            "connector": exchange,
            "trading_pair": market,
            "update_interval": float(update_interval),
        }
    )


def encode_subscribe_candles(
    exchange: str,
    market: str,
    *,
    interval: str = "1m",
    max_records: int = 100,
    update_interval: float = 1.0,
) -> str:
    """Encode a candles subscribe action.

    Args:
        exchange: Connector name.
        market: Trading pair.
        interval: Candle interval, e.g. ``1m``.
        max_records: Candles kept by the server's feed.
        update_interval: Seconds between pushes (the server clamps it).

    Returns:
        The JSON text frame.
    """
    return _encode(
        {
            "action": "subscribe",
            "type": "candles",
            "connector": exchange,
            "trading_pair": market,
            "interval": interval,
            "max_records": max_records,
            "update_interval": float(update_interval),
        }
    )


def encode_unsubscribe(subscription_id: str) -> str:
    """Encode an unsubscribe action.

    Args:
        subscription_id: The id to drop.

    Returns:
        The JSON text frame.
    """
    return _encode({"action": "unsubscribe", "subscription_id": subscription_id})


# -- conversion to public models -------------------------------------------------


@guarded("order book push")
def order_book_from_push(
    message: OrderBookMessage, exchange: str, market: str, *, now: float = 0.0
) -> OrderBook:
    """Convert an order book push to an ``OrderBook``.

    Args:
        message: The decoded push.
        exchange: Connector of the subscription.
        market: Trading pair of the subscription.
        now: Timestamp to use when the push carries none.

    Returns:
        The snapshot (bids best first, asks best first, as the server sends them).

    Raises:
        MalformedResponse: A level or the timestamp is invalid.
    """
    ts = message.timestamp if message.timestamp is not None else message.data.timestamp
    return OrderBook(
        exchange=exchange,
        market=market,
        bids=book_levels(message.data.bids, "bids"),
        asks=book_levels(message.data.asks, "asks"),
        timestamp=timestamp(ts, "timestamp", default=now),
    )


@guarded("trades push")
def trades_from_push(
    message: TradesMessage, exchange: str, market: str, *, now: float = 0.0
) -> tuple[MarketTrade, ...]:
    """Convert a trades push to public trades.

    Args:
        message: The decoded push.
        exchange: Connector of the subscription.
        market: Trading pair of the subscription.
        now: Timestamp to use when neither trade nor push carries one.

    Returns:
        The trades in the order the server sent them.

    Raises:
        MalformedResponse: A trade has an invalid side, number or time.
    """
    fallback = timestamp(message.timestamp, "timestamp", default=now)
    return tuple(
        MarketTrade(
            exchange=exchange,
            market=market,
            side=side(t.side, "side"),
            amount=decimal_value(t.amount, "amount"),
            price=decimal_value(t.price, "price"),
            timestamp=timestamp(t.timestamp, "timestamp", default=fallback),
        )
        for t in message.data
    )


def candle_from_wire(candle: WireCandle) -> Candle:
    """Convert a wire candle to a ``Candle``.

    Args:
        candle: The decoded candle.

    Returns:
        The candle.

    Raises:
        MalformedResponse: A value is invalid.
    """
    return Candle(
        timestamp=timestamp(candle.timestamp, "timestamp"),
        open=decimal_value(candle.open, "open"),
        high=decimal_value(candle.high, "high"),
        low=decimal_value(candle.low, "low"),
        close=decimal_value(candle.close, "close"),
        volume=decimal_value(candle.volume, "volume"),
    )


@guarded("candles push")
def candles_from_push(message: CandlesMessage) -> tuple[Candle, ...]:
    """Convert a candles push to candles.

    Args:
        message: The decoded push.

    Returns:
        The candles, in the order sent (oldest first).

    Raises:
        MalformedResponse: A candle is invalid.
    """
    return tuple(candle_from_wire(c) for c in message.data)


@guarded("candle update")
def candle_from_update(message: CandleUpdateMessage) -> Candle:
    """Convert a ``candle_update`` push to the live candle.

    Args:
        message: The decoded push.

    Returns:
        The candle.

    Raises:
        MalformedResponse: The candle is invalid.
    """
    return candle_from_wire(message.data)
