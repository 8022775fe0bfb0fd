"""The bus's topic tree and payloads, shared by the sink and ``open_bus`` (docs/bus.md)."""

from __future__ import annotations

import re

import msgspec

from ..events import (
    CandleUpdate,
    ConnectionStateChanged,
    ErrorEvent,
    Event,
    MarketTrades,
    OrderBookUpdate,
    OrderUpdate,
    TickerUpdate,
    TradeEvent,
)

__all__ = [
    "Envelope",
    "ReplayBatch",
    "ReplayDone",
    "ReplayRequest",
    "Route",
    "Status",
    "encode_event",
    "route",
    "safe_level",
]

NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
"""Daemon names, consumer ids and topic prefixes (one topic level each)."""

_UNSAFE = re.compile(r"[/+#\x00\s]")
_ENCODER = msgspec.json.Encoder()


def safe_level(value: str) -> str:
    """One topic level made of a name: ``/``, ``+``, ``#`` and blanks become ``_``.

    Args:
        value: The name (an exchange, a market, an account).

    Returns:
        The level.
    """
    return _UNSAFE.sub("_", value) or "_"


class Route(msgspec.Struct, frozen=True):
    """Where and how one event is published.

    Attributes:
        topic: The topic.
        qos: 0 or 1.
        retain: Whether the broker keeps it as the topic's latest value.
        journaled: Whether it is order-class (sequence number, journal, spool).
    """

    topic: str
    qos: int
    retain: bool
    journaled: bool


def route(prefix: str, daemon: str, event: Event) -> Route:
    """The topic, QoS and retention of an event.

    Args:
        prefix: The topic prefix (``hbtrio``).
        daemon: The daemon's name.
        event: The event.

    Returns:
        Its route.
    """
    if isinstance(event, OrderUpdate):
        o = event.order
        parts = (safe_level(o.account), "orders", safe_level(o.exchange), safe_level(o.market))
        return Route(f"{prefix}/{'/'.join(parts)}", 1, False, True)
    if isinstance(event, TradeEvent):
        t = event.trade
        parts = (safe_level(t.account), "fills", safe_level(t.exchange), safe_level(t.market))
        return Route(f"{prefix}/{'/'.join(parts)}", 1, False, True)
    if isinstance(event, OrderBookUpdate):
        b = event.book
        return Route(f"{prefix}/market/{_market(b.exchange, b.market)}/book", 0, True, False)
    if isinstance(event, MarketTrades):
        return Route(
            f"{prefix}/market/{_market(event.exchange, event.market)}/trades", 0, True, False
        )
    if isinstance(event, TickerUpdate):
        k = event.ticker
        return Route(f"{prefix}/market/{_market(k.exchange, k.market)}/ticker", 0, True, False)
    if isinstance(event, CandleUpdate):
        where = _market(event.exchange, event.market)
        level = safe_level(event.interval)
        return Route(f"{prefix}/market/{where}/candles/{level}", 0, True, False)
    if isinstance(event, ConnectionStateChanged):
        return Route(f"{prefix}/daemon/{daemon}/connection", 0, True, False)
    if isinstance(event, ErrorEvent):
        return Route(f"{prefix}/daemon/{daemon}/errors", 0, False, False)
    # any later order-class event (positions, executors): journaled, QoS 1
    tag = safe_level(str(type(event).__struct_config__.tag))
    return Route(f"{prefix}/daemon/{daemon}/events/{tag}", 1, False, True)


def _market(exchange: str, market: str) -> str:
    return f"{safe_level(exchange)}/{safe_level(market)}"


def encode_event(event: Event, event_id: str, source: str, seq: int | None) -> bytes:
    """The JSONL sink's encoding of an event, with the bus's fields in front.

    Args:
        event: The event.
        event_id: Its id (``<daemon>-<seq>`` for order-class events).
        source: The daemon's name.
        seq: Its sequence number (order-class events), else ``None``.

    Returns:
        ``{"event_id": ..., "source": ..., ["seq": ...,] "type": ..., ...}``.
    """
    body = _ENCODER.encode(event)
    head = b'{"event_id":%s,"source":%s,' % (_ENCODER.encode(event_id), _ENCODER.encode(source))
    if seq is not None:
        head += b'"seq":%d,' % seq
    return head + body[1:]


class Envelope(msgspec.Struct, frozen=True):
    """The bus's fields of a payload (the rest is the event).

    Attributes:
        event_id: Unique id of the event.
        source: The daemon that published it.
        seq: Its sequence number (order-class events only).
    """

    event_id: str
    source: str = ""
    seq: int | None = None


class ReplayRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A consumer's request, on ``<prefix>/replay/<daemon>/request``.

    Attributes:
        consumer: The consumer's id (the answer goes to
            ``<prefix>/replay/<daemon>/response/<consumer>``).
        request_id: Echoed in the answer.
        from_seq: Replay from this sequence number...
        from_time: ... or from this time (epoch seconds); neither: from the oldest kept.
    """

    consumer: str
    request_id: str
    from_seq: int | None = None
    from_time: float | None = None


class ReplayBatch(msgspec.Struct, frozen=True):
    """Part of an answer: journaled payloads in sequence order.

    Attributes:
        request_id: The request answered.
        events: The payloads, each as published live.
    """

    request_id: str
    events: list[msgspec.Raw]


class ReplayDone(msgspec.Struct, frozen=True):
    """The end of an answer.

    Attributes:
        request_id: The request answered.
        done: Always true.
        last: The last sequence number replayed (``head`` of the daemon when asked).
        oldest: The oldest sequence number the journal still held.
    """

    request_id: str
    done: bool
    last: int
    oldest: int


class Status(msgspec.Struct, frozen=True):
    """The daemon's retained status on ``<prefix>/status/<daemon>`` (also its Last Will).

    Attributes:
        daemon: Its name.
        state: ``online`` or ``offline``.
        head: Every event up to this sequence number reached the broker (online only).
        oldest: The oldest sequence number its journal holds (online only).
        time: When it was published, epoch seconds.
    """

    daemon: str
    state: str
    head: int | None = None
    oldest: int | None = None
    time: float = 0.0
