"""Desired versus active WebSocket subscriptions (sans-IO).

Stream keys name what a consumer wants::

    ("order_book", connector, pair)
    ("trades", connector, pair)
    ("candles", connector, pair, interval)

Each key maps to the server's deterministic subscription id
(``subscription_id``). Consumers share one server subscription per key;
the server subscription is made with the *most demanding* parameters of its
consumers (deepest book, shortest ``update_interval``, most candle records),
and each consumer gets its own view (the actor truncates books to the
consumer's depth).

``SubscriptionSet`` keeps the desired set (consumers) and the active set
(what the server acknowledged). ``SubscriptionSet.plan`` returns the
actions that turn desired into active and marks them in flight; the caller
sends them and reports each outcome with ``SubscriptionSet.on_ack`` or
``SubscriptionSet.on_failed``. A subscription whose required parameters
grow is subscribed again under the same id (the server replaces it); when its
last consumer leaves it is unsubscribed.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, TypeAlias

__all__ = [
    "STALE_FACTOR",
    "STALE_MIN",
    "Action",
    "StreamKey",
    "StreamParams",
    "Subscribe",
    "SubscriptionSet",
    "Unsubscribe",
    "candles_key",
    "order_book_key",
    "subscription_id",
    "trades_key",
]

StreamKey: TypeAlias = tuple[str, ...]
"""``("order_book"|"trades", C, P)`` or ``("candles", C, P, interval)``."""

STALE_FACTOR = 5.0
"""A stream is stale after ``STALE_FACTOR * update_interval`` seconds of silence..."""
STALE_MIN = 2.0
"""...but never after less than ``STALE_MIN`` seconds."""

_KINDS = frozenset({"order_book", "trades", "candles"})


def order_book_key(connector: str, pair: str) -> StreamKey:
    """Stream key of an order-book subscription.

    Args:
        connector: Connector name.
        pair: Trading pair.

    Returns:
        ``("order_book", connector, pair)``.
    """
    return ("order_book", connector, pair)


def trades_key(connector: str, pair: str) -> StreamKey:
    """Stream key of a public-trades subscription.

    Args:
        connector: Connector name.
        pair: Trading pair.

    Returns:
        ``("trades", connector, pair)``.
    """
    return ("trades", connector, pair)


def candles_key(connector: str, pair: str, interval: str) -> StreamKey:
    """Stream key of a candles subscription.

    Args:
        connector: Connector name.
        pair: Trading pair.
        interval: Candle interval, e.g. ``1m``.

    Returns:
        ``("candles", connector, pair, interval)``.
    """
    return ("candles", connector, pair, interval)


def subscription_id(key: StreamKey) -> str:
    """The server's deterministic subscription id of a stream key.

    Args:
        key: A stream key.

    Returns:
        ``order_book_{C}_{P}``, ``trades_{C}_{P}`` or ``candles_{C}_{P}_{interval}``.

    Raises:
        ValueError: The key is not a valid stream key.
    """
    if not key or key[0] not in _KINDS or len(key) != (4 if key[0] == "candles" else 3):
        raise ValueError(f"not a stream key: {key!r}")
    return "_".join(key)


@dataclass(frozen=True, slots=True)
class StreamParams:
    """What one consumer (or the server subscription) needs.

    Attributes:
        depth: Order-book levels per side (order books only).
        update_interval: Seconds between server pushes.
        max_records: Candles the server sends on subscription (candles only).
    """

    depth: int | None = None
    update_interval: float = 1.0
    max_records: int | None = None

    def covers(self, other: StreamParams) -> bool:
        """Whether a subscription made with these parameters serves ``other``.

        Args:
            other: Required parameters.

        Returns:
            ``True`` when at least as deep, as fast and as many records.
        """
        return (
            _ge(self.depth, other.depth)
            and self.update_interval <= other.update_interval
            and _ge(self.max_records, other.max_records)
        )

    @staticmethod
    def merge(params: Iterable[StreamParams]) -> StreamParams:
        """The most demanding combination of several consumers' parameters.

        Args:
            params: At least one set of parameters.

        Returns:
            Max depth, min update interval, max records.

        Raises:
            ValueError: ``params`` is empty.
        """
        items = list(params)
        if not items:
            raise ValueError("no parameters to merge")
        return StreamParams(
            depth=_max_opt(p.depth for p in items),
            update_interval=min(p.update_interval for p in items),
            max_records=_max_opt(p.max_records for p in items),
        )


def _ge(have: int | None, need: int | None) -> bool:
    return need is None or (have is not None and have >= need)


def _max_opt(values: Iterable[int | None]) -> int | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


@dataclass(frozen=True, slots=True)
class Subscribe:
    """Send a subscribe for ``key`` with ``params``.

    Attributes:
        key: Stream key.
        subscription_id: Its deterministic id.
        params: Parameters to subscribe with.
    """

    key: StreamKey
    subscription_id: str
    params: StreamParams


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """Send an unsubscribe of ``subscription_id``.

    Attributes:
        key: Stream key.
        subscription_id: Its deterministic id.
    """

    key: StreamKey
    subscription_id: str


Action: TypeAlias = Subscribe | Unsubscribe
"""What ``SubscriptionSet.plan`` asks the caller to send."""


@dataclass(slots=True)
class _Entry:
    key: StreamKey
    sub_id: str
    consumers: dict[int, StreamParams] = field(default_factory=dict)
    active: StreamParams | None = None
    inflight: Action | None = None
    last_data: float | None = None
    retry_at: float | None = None

    def desired(self) -> StreamParams | None:
        return StreamParams.merge(self.consumers.values()) if self.consumers else None

    def stale_at(self) -> float | None:
        """When a watched stream becomes stale; ``None`` when it is not watched."""
        if self.active is None or self.last_data is None or not self.consumers:
            return None
        return self.last_data + max(STALE_FACTOR * self.active.update_interval, STALE_MIN)


class SubscriptionSet:
    """Desired vs active subscriptions of one client.

    Consumer ids are unique for the life of the set (never reused).
    """

    __slots__ = ("_by_consumer", "_entries", "_ids")

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._by_consumer: dict[int, str] = {}
        self._ids = itertools.count(1)

    # -- consumers ----------------------------------------------------------------

    def register(self, key: StreamKey, params: StreamParams | None = None) -> int:
        """Add a consumer of a stream.

        Args:
            key: Stream key.
            params: What this consumer needs (default ``StreamParams``).

        Returns:
            The consumer id (for ``unregister``).

        Raises:
            ValueError: ``key`` is not a valid stream key.
        """
        sub_id = subscription_id(key)
        entry = self._entries.get(sub_id)
        if entry is None:
            entry = self._entries[sub_id] = _Entry(key, sub_id)
        consumer = next(self._ids)
        entry.consumers[consumer] = params if params is not None else StreamParams()
        entry.retry_at = None
        self._by_consumer[consumer] = sub_id
        return consumer

    def unregister(self, consumer: int) -> None:
        """Remove a consumer (unknown ids are ignored).

        Args:
            consumer: Id returned by ``register``.
        """
        sub_id = self._by_consumer.pop(consumer, None)
        if sub_id is None:
            return
        entry = self._entries[sub_id]
        del entry.consumers[consumer]
        self._drop_if_idle(entry)

    def consumers(self, sub_id: str) -> Mapping[int, StreamParams]:
        """The consumers of a subscription and what each needs.

        Args:
            sub_id: Server subscription id.

        Returns:
            Read-only mapping consumer id -> parameters (empty when unknown).
        """
        entry = self._entries.get(sub_id)
        return MappingProxyType(entry.consumers if entry is not None else {})

    def key_of(self, sub_id: str) -> StreamKey | None:
        """The stream key of a subscription id, when it is known.

        Args:
            sub_id: Server subscription id.

        Returns:
            The key, or ``None``.
        """
        entry = self._entries.get(sub_id)
        return entry.key if entry is not None else None

    def desired(self) -> dict[str, StreamParams]:
        """The subscriptions consumers want and their merged parameters.

        Returns:
            Subscription id -> parameters.
        """
        return {
            sid: params
            for sid, entry in self._entries.items()
            if (params := entry.desired()) is not None
        }

    def active(self) -> dict[str, StreamParams]:
        """The subscriptions the server acknowledged and their parameters.

        Returns:
            Subscription id -> parameters.
        """
        return {sid: e.active for sid, e in self._entries.items() if e.active is not None}

    # -- planning -----------------------------------------------------------------

    def plan(self, now: float | None = None) -> list[Action]:
        """Actions that bring the active set to the desired set.

        Each returned action is marked in flight: no further action is planned
        for its subscription until ``on_ack`` or ``on_failed``.

        Args:
            now: Current time; subscriptions held back by ``on_failed``
                until a later time are skipped. ``None`` ignores such holds.

        Returns:
            Subscribes (new subscription, or the same id again because the
            required parameters grew) and unsubscribes (last consumer left).
        """
        actions: list[Action] = []
        for entry in self._entries.values():
            if entry.inflight is not None:
                continue
            if now is not None and entry.retry_at is not None and now < entry.retry_at:
                continue
            desired = entry.desired()
            action: Action
            if desired is None:
                action = Unsubscribe(entry.key, entry.sub_id)
            elif entry.active is None or not entry.active.covers(desired):
                action = Subscribe(entry.key, entry.sub_id, desired)
            else:
                continue
            entry.inflight = action
            actions.append(action)
        return actions

    def next_retry(self) -> float | None:
        """The earliest time a held-back subscription may be planned again.

        Returns:
            That time, or ``None`` when nothing is held back.
        """
        return min(
            (e.retry_at for e in self._entries.values() if e.retry_at is not None),
            default=None,
        )

    def on_ack(self, sub_id: str, kind: Literal["subscribe", "unsubscribe"]) -> bool:
        """Report that the server acknowledged the in-flight action.

        Args:
            sub_id: Subscription id of the ack.
            kind: ``"subscribe"`` or ``"unsubscribe"``.

        Returns:
            ``True`` when it matched an in-flight action, else ``False``
            (ignored).
        """
        entry = self._entries.get(sub_id)
        if entry is None or entry.inflight is None:
            return False
        action = entry.inflight
        if kind == "subscribe" and isinstance(action, Subscribe):
            entry.active = action.params
        elif kind == "unsubscribe" and isinstance(action, Unsubscribe):
            entry.active = None
            entry.last_data = None
        else:
            return False
        entry.inflight = None
        entry.retry_at = None
        self._drop_if_idle(entry)
        return True

    def on_failed(self, sub_id: str, *, now: float | None = None, hold: float = 1.0) -> bool:
        """Report that the in-flight action failed (error answer or timeout).

        The action will be planned again; with ``now`` given, not before
        ``now + hold``.

        Args:
            sub_id: Subscription id of the failed action.
            now: Current time (``None``: retry at the next ``plan``).
            hold: Seconds to hold the subscription back.

        Returns:
            ``True`` when an in-flight action was cleared.
        """
        entry = self._entries.get(sub_id)
        if entry is None or entry.inflight is None:
            return False
        entry.inflight = None
        entry.retry_at = None if now is None else now + hold
        self._drop_if_idle(entry)
        return True

    def on_disconnected(self) -> None:
        """The connection dropped: nothing is active or in flight any more.

        Every desired subscription will be planned again.
        """
        for entry in list(self._entries.values()):
            entry.active = None
            entry.inflight = None
            entry.last_data = None
            entry.retry_at = None
            self._drop_if_idle(entry)

    # -- data and staleness ---------------------------------------------------------

    def on_data(self, sub_id: str, now: float) -> bool:
        """Record that data arrived for a subscription.

        Args:
            sub_id: Subscription id of the push.
            now: Current time.

        Returns:
            Whether the subscription has consumers (else drop the data).
        """
        entry = self._entries.get(sub_id)
        if entry is None:
            return False
        entry.last_data = now
        return bool(entry.consumers)

    def stale(self, now: float) -> list[StreamKey]:
        """Subscriptions that delivered data and then went silent.

        Silent means no data for longer than
        ``max(STALE_FACTOR * update_interval, STALE_MIN)`` seconds.

        Args:
            now: Current time.

        Returns:
            Their stream keys.
        """
        return [
            entry.key
            for entry in self._entries.values()
            if (at := entry.stale_at()) is not None and now > at
        ]

    def next_stale_check(self) -> float | None:
        """The earliest time a subscription may become stale.

        Returns:
            That time, or ``None`` when no subscription is being watched.
        """
        times = [at for entry in self._entries.values() if (at := entry.stale_at()) is not None]
        return min(times, default=None)

    def force_resubscribe(self, key: StreamKey) -> None:
        """Treat a (stale) subscription as inactive so ``plan`` renews it.

        Args:
            key: Stream key (unknown keys are ignored).
        """
        entry = self._entries.get(subscription_id(key))
        if entry is None or entry.inflight is not None or not entry.consumers:
            return
        entry.active = None
        entry.last_data = None

    # -- internals ------------------------------------------------------------------

    def _drop_if_idle(self, entry: _Entry) -> None:
        if not entry.consumers and entry.active is None and entry.inflight is None:
            del self._entries[entry.sub_id]
