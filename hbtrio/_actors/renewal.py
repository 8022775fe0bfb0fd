"""The renewal actor: turns the desired subscriptions into active ones.

It drives the sans-IO :class:`~hbtrio._core.subscriptions.SubscriptionSet` and
:class:`~hbtrio._core.correlator.Correlator`: on every wake-up it expires overdue
requests, renews streams that went silent after having delivered data, plans
what to (un)subscribe and sends **one** action at a time (the server's
``error`` answers carry no id, so only one request may be outstanding). After a
reconnect everything desired is subscribed again. Acks are fed in by the
message router (:meth:`RenewalActor.on_ack`, :meth:`RenewalActor.on_error`)
from the reader task, which never waits for this actor.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import Literal

import trio

from .._core.correlator import Correlator, RequestKind
from .._core.subscriptions import Action, Subscribe, SubscriptionSet
from .._errors import SubscriptionError
from .._wire.ws import (
    encode_subscribe_candles,
    encode_subscribe_order_book,
    encode_subscribe_trades,
    encode_unsubscribe,
)
from ..events import ErrorEvent, Event
from .connection import Link
from .transport import TransportClosed

__all__ = ["RenewalActor", "encode_action"]

_MIN_NAP = 0.01


def encode_action(action: Action) -> str:
    """Encode a planned action as the client's JSON text frame.

    Args:
        action: A :class:`Subscribe` or :class:`Unsubscribe` from the plan.

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


class RenewalActor:
    """Keeps the server's subscriptions equal to what consumers want.

    Args:
        subscriptions: The desired/active subscription set (shared with the router).
        publish: Non-blocking event sink.
        ack_timeout: Seconds to wait for an ack before retrying.
        retry_hold: Seconds to hold a refused or timed-out subscription back.
        on_refused: Called with ``(subscription_id, message)`` when the server
            refuses a subscribe.

    Attributes:
        sent: Number of actions sent.
        renewed: Number of stale streams renewed.
    """

    def __init__(
        self,
        subscriptions: SubscriptionSet,
        publish: Callable[[Event], None],
        *,
        ack_timeout: float = 10.0,
        retry_hold: float = 1.0,
        on_refused: Callable[[str, str], None] | None = None,
    ) -> None:
        self._subs = subscriptions
        self._publish = publish
        self._correlator = Correlator()
        self._ack_timeout = ack_timeout
        self._retry_hold = retry_hold
        self._on_refused = on_refused
        self._link: Link | None = None
        self._queue: deque[Action] = deque()
        self._wakeup = trio.Event()
        self._watched: set[str] = set()
        self.sent = 0
        self.renewed = 0

    # -- called inline by the router (never blocking) ---------------------------------

    def wake(self) -> None:
        """Ask the actor to look at the subscription set again."""
        self._wakeup.set()

    def note_data(self, subscription_id: str) -> None:
        """Data arrived for a subscription: watch it for silence from now on.

        Args:
            subscription_id: The subscription.
        """
        if subscription_id not in self._watched:
            self._watched.add(subscription_id)
            self.wake()

    def link_up(self, link: Link) -> None:
        """A new connection is up: (re)subscribe everything desired.

        Args:
            link: Where to send actions.
        """
        self._reset()
        self._link = link
        self.wake()

    def link_down(self) -> None:
        """The connection is gone: nothing is active or outstanding any more."""
        self._link = None
        self._reset()
        self.wake()

    def _reset(self) -> None:
        self._watched.clear()
        self._queue.clear()
        self._correlator.reset()
        self._subs.on_disconnected()

    def on_ack(self, kind: RequestKind, subscription_id: str) -> None:
        """Feed a ``subscribed``/``unsubscribed`` message.

        Args:
            kind: Subscribe or unsubscribe.
            subscription_id: The id it names.
        """
        match = self._correlator.feed_ack(kind, subscription_id)
        if match is not None:
            ack: Literal["subscribe", "unsubscribe"] = (
                "subscribe" if kind is RequestKind.SUBSCRIBE else "unsubscribe"
            )
            self._subs.on_ack(subscription_id, ack)
            self.wake()

    def on_error(self, message: str, now: float) -> bool:
        """Feed an id-less ``error`` message.

        Args:
            message: The server's text.
            now: Current time.

        Returns:
            Whether it answered the outstanding request (else the caller reports it).
        """
        match = self._correlator.feed_error(message)
        if match is None:
            return False
        sub_id = match.request.subscription_id
        self._subs.on_failed(sub_id, now=now, hold=self._retry_hold)
        self._publish(
            ErrorEvent(
                error=f"the server refused {match.request.kind} {sub_id!r}: {message}",
                kind=SubscriptionError.__name__,
            )
        )
        if self._on_refused is not None and match.request.kind is RequestKind.SUBSCRIBE:
            self._on_refused(sub_id, message)
        self.wake()
        return True

    # -- the task --------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run until cancelled.

        Args:
            task_status: Trio's start protocol (started at once).
        """
        task_status.started()
        while True:
            self._wakeup = trio.Event()
            await self._step(trio.current_time())
            wake_at = min(
                (
                    t
                    for t in (
                        self._correlator.next_deadline(),
                        self._subs.next_retry(),
                        self._subs.next_stale_check(),
                    )
                    if t is not None
                ),
                default=math.inf,
            )
            # Never spin: a deadline already past (e.g. a stale stream whose renewal
            # is in flight) is looked at again a little later.
            wake_at = max(wake_at, trio.current_time() + _MIN_NAP)
            with trio.move_on_at(wake_at):
                await self._wakeup.wait()

    async def _step(self, now: float) -> None:
        for match in self._correlator.expire(now):
            sub_id = match.request.subscription_id
            self._subs.on_failed(sub_id, now=now, hold=self._retry_hold)
            self._publish(
                ErrorEvent(
                    error=f"no answer to {match.request.kind} {sub_id!r} "
                    f"within {self._ack_timeout:g} s; retrying",
                    kind=SubscriptionError.__name__,
                )
            )
        for key in self._subs.stale(now):
            sub_id = "_".join(key)
            self._subs.force_resubscribe(key)
            if sub_id in self._subs.active():
                continue  # a (re)subscribe is already in flight
            self._watched.discard(sub_id)
            self.renewed += 1
            self._publish(
                ErrorEvent(
                    error=f"stream {'_'.join(key)!r} went silent; renewing it",
                    kind=SubscriptionError.__name__,
                )
            )
        link = self._link
        if link is None or self._correlator.busy:
            return
        if not self._queue:
            self._queue.extend(self._subs.plan(now))
        if not self._queue:
            return
        action = self._queue.popleft()
        kind = RequestKind.SUBSCRIBE if isinstance(action, Subscribe) else RequestKind.UNSUBSCRIBE
        self._correlator.start(kind, action.subscription_id, now, now + self._ack_timeout)
        self.sent += 1
        try:
            await link.send(encode_action(action))
        except TransportClosed:
            return  # the connection actor reports it and calls link_down
