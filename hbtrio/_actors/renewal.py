"""The subscription-renewal actor: turns the desired subscriptions into active ones.

It owns the sans-IO ``SubscriptionSet``. Its
bounded inbox (a ``trio`` memory channel it owns and closes) carries consumer
``Register`` / ``Unregister`` commands from the streaming supervisor,
``DataSeen`` marks from the data router (for the stale-stream watchdog) and
``LinkUp`` / ``LinkDown`` from the connection
actor. One task applies them; another plans and asks the correlation actor to
execute **one** action at a time (the server's ``error`` answers carry no id)
over the correlation actor's inbox, with a ``Reply``
that wakes it. After a reconnect everything desired is subscribed again; a
stream that delivered data and then went silent is subscribed again.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypeAlias

import trio

from .._core.correlator import RequestKind
from .._core.subscriptions import (
    Action,
    StreamKey,
    StreamParams,
    Subscribe,
    SubscriptionSet,
    subscription_id,
)
from .._errors import ConnectionFailed, RequestTimeout, SubscriptionError
from .._wire.ws import (
    encode_subscribe_candles,
    encode_subscribe_order_book,
    encode_subscribe_trades,
    encode_unsubscribe,
)
from ..events import ErrorEvent, Event
from .correlation import LinkDown, LinkUp, Reply, SubscriptionRequest

__all__ = [
    "REFUSALS_BEFORE_FAILING",
    "RENEWAL_CAPACITY",
    "DataSeen",
    "Failable",
    "Register",
    "RenewalActor",
    "RenewalMessage",
    "Unregister",
    "encode_action",
]

_MIN_NAP = 0.01

RENEWAL_CAPACITY = 1024
"""Size of the renewal inbox."""

REFUSALS_BEFORE_FAILING = 3
"""Consecutive refusals of a subscribe after which its consumers get SubscriptionError."""


def encode_action(action: Action) -> str:
    """Encode a planned action as the client's JSON text frame.

    Args:
        action: A ``Subscribe`` or ``Unsubscribe`` from the plan.

    Returns:
        The frame.
    """
    if not isinstance(action, Subscribe):
        return encode_unsubscribe(action.subscription_id)
    kind, connector, pair = action.key[0], action.key[1], action.key[2]
    params = action.params
    if kind == "order_book":
        return encode_subscribe_order_book(
            connector, pair, depth=params.depth or 10, update_interval=params.update_interval
        )
    if kind == "trades":
        return encode_subscribe_trades(connector, pair, update_interval=params.update_interval)
    return encode_subscribe_candles(
        connector,
        pair,
        interval=action.key[3],
        max_records=params.max_records or 100,
        update_interval=params.update_interval,
    )


class Failable(Protocol):
    """A consumer's end that can be told its subscription failed."""

    def fail(self, error: BaseException) -> None:
        """End the consumer's iteration with ``error``.

        Args:
            error: The exception the consumer gets.
        """


@dataclass(frozen=True, slots=True)
class Register:
    """A consumer wants a stream.

    Attributes:
        token: The consumer's number (chosen by the sender, unique).
        key: Stream key.
        params: What the consumer needs.
        endpoints: Told when the server keeps refusing the subscription.
    """

    token: int
    key: StreamKey
    params: StreamParams
    endpoints: Sequence[Failable] = ()


@dataclass(frozen=True, slots=True)
class Unregister:
    """A consumer left.

    Attributes:
        token: The number it registered with.
    """

    token: int


@dataclass(frozen=True, slots=True)
class DataSeen:
    """Data arrived for a subscription (feeds the stale-stream watchdog).

    Attributes:
        subscription_id: The subscription.
        at: When (trio clock).
    """

    subscription_id: str
    at: float


RenewalMessage: TypeAlias = Register | Unregister | DataSeen | LinkUp | LinkDown
"""Everything the renewal actor's inbox carries."""


@dataclass(slots=True)
class _Outstanding:
    action: Action
    kind: RequestKind
    generation: int
    reply: Reply[None]


class RenewalActor:
    """Keeps the server's subscriptions equal to what consumers want.

    Args:
        publish: Non-blocking event sink.
        requests: The correlation actor's inbox.
        ack_timeout: Seconds to wait for an ack before retrying.
        retry_hold: Seconds to hold a refused or timed-out subscription back.
        capacity: Inbox size.

    Attributes:
        inbox: The send side of the actor's inbox (the actor closes it on exit).
        subscriptions: The desired/active subscription set (read it, do not change it).
        sent: Number of actions sent.
        renewed: Number of stale streams renewed.
        marks_dropped: ``DataSeen`` marks dropped because the inbox was full.
    """

    def __init__(
        self,
        publish: Callable[[Event], None],
        requests: trio.MemorySendChannel[SubscriptionRequest],
        *,
        ack_timeout: float = 10.0,
        retry_hold: float = 1.0,
        capacity: int = RENEWAL_CAPACITY,
    ) -> None:
        self._publish = publish
        self._requests = requests
        self._ack_timeout = ack_timeout
        self._retry_hold = retry_hold
        self.inbox, self._receive = trio.open_memory_channel[RenewalMessage](capacity)
        self.subscriptions = SubscriptionSet()
        self._consumers: dict[int, tuple[int, str, Sequence[Failable]]] = {}
        self._refusals: dict[str, int] = {}
        self._link_id: int | None = None
        self._generation = 0
        self._queue: deque[Action] = deque()
        self._outstanding: _Outstanding | None = None
        self._watched: set[str] = set()
        self._changed = trio.Event()
        self.sent = 0
        self.renewed = 0
        self.marks_dropped = 0

    def mark_data(self, subscription_id: str, now: float) -> None:
        """Send a ``DataSeen`` mark without blocking (the data router's path).

        A mark that finds the inbox full is dropped and counted: the next push
        marks the stream again.

        Args:
            subscription_id: The subscription.
            now: Current (trio) time.
        """
        try:
            self.inbox.send_nowait(DataSeen(subscription_id, now))
        except trio.WouldBlock:
            self.marks_dropped += 1
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    # -- the task --------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run until cancelled; started once its inbox is being served.

        Args:
            task_status: Trio's start protocol.
        """
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(self._serve_inbox)
                nursery.start_soon(self._execute)
                task_status.started()
        finally:
            self._receive.close()
            self.inbox.close()

    def _poke(self) -> None:
        self._changed.set()

    async def _serve_inbox(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        receive = self._receive
        task_status.started()
        while True:
            self._apply(await receive.receive())
            while True:
                try:
                    message = receive.receive_nowait()
                except trio.WouldBlock:
                    break
                self._apply(message)

    def _apply(self, message: RenewalMessage) -> None:
        subs = self.subscriptions
        if isinstance(message, DataSeen):
            sub_id = message.subscription_id
            if subs.on_data(sub_id, message.at) and sub_id not in self._watched:
                self._watched.add(sub_id)  # first data: its silence is watched from now
                self._poke()
            return
        if isinstance(message, Register):
            consumer = subs.register(message.key, message.params)
            sub_id = subscription_id(message.key)
            self._consumers[message.token] = (consumer, sub_id, message.endpoints)
        elif isinstance(message, Unregister):
            entry = self._consumers.pop(message.token, None)
            if entry is not None:
                subs.unregister(entry[0])
                if not subs.consumers(entry[1]):
                    self._watched.discard(entry[1])  # watched again from its next first data
        elif isinstance(message, LinkUp):
            self._reset()
            self._link_id = message.link_id
        elif message.link_id == self._link_id:
            self._reset()
            self._link_id = None
        self._poke()

    def _reset(self) -> None:
        self._generation += 1
        self._watched.clear()
        self._queue.clear()
        self.subscriptions.on_disconnected()

    async def _execute(self) -> None:
        while True:
            self._changed = trio.Event()
            now = trio.current_time()
            outstanding = self._outstanding
            if outstanding is not None and outstanding.reply.done:
                self._outstanding = None
                self._settle(outstanding, now)
                outstanding = None
            self._check_stale(now)
            if outstanding is None and self._link_id is not None and await self._submit(now):
                continue
            subs = self.subscriptions
            wake_at = min(
                (t for t in (subs.next_retry(), subs.next_stale_check()) if t is not None),
                default=math.inf,
            )
            # Never spin: a deadline already past (e.g. a stale stream whose renewal
            # is in flight) is looked at again a little later.
            wake_at = max(wake_at, trio.current_time() + _MIN_NAP)
            with trio.move_on_at(wake_at):
                await self._changed.wait()

    async def _submit(self, now: float) -> bool:
        link_id = self._link_id
        assert link_id is not None
        if not self._queue:
            self._queue.extend(self.subscriptions.plan(now))
        if not self._queue:
            return False
        action = self._queue.popleft()
        kind = RequestKind.SUBSCRIBE if isinstance(action, Subscribe) else RequestKind.UNSUBSCRIBE
        reply = Reply[None](self._poke)
        self._outstanding = _Outstanding(action, kind, self._generation, reply)
        self.sent += 1
        request = SubscriptionRequest(
            kind=kind,
            subscription_id=action.subscription_id,
            frame=encode_action(action),
            deadline=now + self._ack_timeout,
            link_id=link_id,
            reply=reply,
        )
        try:
            await self._requests.send(request)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            reply.set_error(ConnectionFailed("the correlation actor stopped"))
        return True

    def _settle(self, done: _Outstanding, now: float) -> None:
        if done.generation != self._generation:
            return  # answered on a connection that is gone: already reset
        sub_id = done.action.subscription_id
        try:
            done.reply.result()
        except SubscriptionError as exc:
            self.subscriptions.on_failed(sub_id, now=now, hold=self._retry_hold)
            self._publish(ErrorEvent(error=str(exc), kind=SubscriptionError.__name__))
            if done.kind is RequestKind.SUBSCRIBE:
                self._refused(sub_id, str(exc.detail or exc))
        except RequestTimeout:
            self.subscriptions.on_failed(sub_id, now=now, hold=self._retry_hold)
            self._publish(
                ErrorEvent(
                    error=f"no answer to {done.kind} {sub_id!r} "
                    f"within {self._ack_timeout:g} s; retrying",
                    kind=SubscriptionError.__name__,
                )
            )
        except ConnectionFailed:
            pass  # the connection actor reports it; LinkDown resets everything
        else:
            ack: Literal["subscribe", "unsubscribe"] = (
                "subscribe" if done.kind is RequestKind.SUBSCRIBE else "unsubscribe"
            )
            self.subscriptions.on_ack(sub_id, ack)
            if done.kind is RequestKind.SUBSCRIBE:
                self._refusals.pop(sub_id, None)

    def _refused(self, sub_id: str, message: str) -> None:
        count = self._refusals[sub_id] = self._refusals.get(sub_id, 0) + 1
        if count < REFUSALS_BEFORE_FAILING:
            return
        self._refusals.pop(sub_id, None)
        error = SubscriptionError(f"the server refused the subscription {sub_id!r}: {message}")
        for _, consumer_sub_id, endpoints in self._consumers.values():
            if consumer_sub_id == sub_id:
                for endpoint in endpoints:
                    endpoint.fail(error)

    def _check_stale(self, now: float) -> None:
        subs = self.subscriptions
        for key in subs.stale(now):
            sub_id = subscription_id(key)
            subs.force_resubscribe(key)
            if sub_id in subs.active():
                continue  # a (re)subscribe is already in flight
            self._watched.discard(sub_id)
            self.renewed += 1
            self._publish(
                ErrorEvent(
                    error=f"stream {sub_id!r} went silent; renewing it",
                    kind=SubscriptionError.__name__,
                )
            )
