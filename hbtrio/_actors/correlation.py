"""The request-correlation actor: WebSocket requests in, matched answers out.

It owns the sans-IO ``Correlator`` and the write
side of the current connection. Its bounded inbox (a ``trio`` memory channel it
owns and closes) carries:

* ``LinkUp`` / ``LinkDown`` from the connection actor;
* ``Control`` messages (``subscribed``, ``unsubscribed``, ``error``,
  ``pong``) from the connection's reader, which never waits (it uses
  ``send_nowait``; a full inbox is a bug-level condition it reports and
  answers by replacing the connection);
* ``SubscriptionRequest`` from the renewal actor and ``PingRequest``
  from the connection's pinger, each with a one-shot ``Reply``.

It writes each request's frame, matches answers, enforces deadlines
(``RequestTimeout``), turns a refusal into
``SubscriptionError``, and fails everything outstanding with
``ConnectionFailed`` when the connection goes away. Only control
traffic goes through here, so it never waits behind user data.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeAlias, TypeVar

import trio

from .._core.correlator import Correlator, CorrelatorBusy, RequestKind
from .._errors import ConnectionFailed, RequestTimeout, SubscriptionError
from .._wire.ws import (
    ErrorMessage,
    PongMessage,
    SubscribedMessage,
    UnsubscribedMessage,
    encode_ping,
)
from ..events import ErrorEvent, Event
from .transport import TransportClosed

__all__ = [
    "CONTROL_CAPACITY",
    "Control",
    "CorrelationActor",
    "CorrelationMessage",
    "Link",
    "LinkDown",
    "LinkEvent",
    "LinkUp",
    "PingRequest",
    "Reply",
    "SubscriptionRequest",
]

CONTROL_CAPACITY = 256
"""Size of the correlation inbox. At most one subscribe/unsubscribe and one ping
are outstanding, so the server's answers can never come near it."""

T = TypeVar("T")


class Link(Protocol):
    """The send side of the current connection."""

    async def send(self, message: str) -> None:
        """Send one text frame.

        Args:
            message: The JSON text.

        Raises:
            TransportClosed: The connection is gone.
        """
        ...


class Reply(Generic[T]):
    """A one-shot answer slot (a ``trio.Event``-based future).

    Args:
        notify: Called (synchronously, by the resolver) once the reply is set;
            lets the requester wake on any of several things.
    """

    __slots__ = ("_done", "_error", "_notify", "_value")

    def __init__(self, notify: Callable[[], None] | None = None) -> None:
        self._done = trio.Event()
        self._value: T | None = None
        self._error: BaseException | None = None
        self._notify = notify

    @property
    def done(self) -> bool:
        """Whether the reply was set."""
        return self._done.is_set()

    def set_result(self, value: T) -> None:
        """Resolve with a value (later calls are ignored).

        Args:
            value: The result.
        """
        if not self._done.is_set():
            self._value = value
            self._resolve()

    def set_error(self, error: BaseException) -> None:
        """Resolve with an exception (later calls are ignored).

        Args:
            error: What ``result`` and ``wait`` raise.
        """
        if not self._done.is_set():
            self._error = error
            self._resolve()

    def _resolve(self) -> None:
        self._done.set()
        if self._notify is not None:
            self._notify()

    def result(self) -> T:
        """The value of a resolved reply.

        Returns:
            The value.

        Raises:
            BaseException: The error it was resolved with.
            RuntimeError: It is not resolved yet.
        """
        if not self._done.is_set():
            raise RuntimeError("reply not ready")
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]

    async def wait(self) -> T:
        """Wait for the reply.

        Returns:
            The value.

        Raises:
            BaseException: The error it was resolved with.
        """
        await self._done.wait()
        return self.result()


@dataclass(frozen=True, slots=True)
class LinkUp:
    """A connection is open and authenticated.

    Attributes:
        link: Where to write frames.
        link_id: Number of the connection (1, 2, ...).
    """

    link: Link
    link_id: int


@dataclass(frozen=True, slots=True)
class LinkDown:
    """The connection ``link_id`` is gone.

    Attributes:
        link_id: Number of the connection.
    """

    link_id: int


LinkEvent: TypeAlias = LinkUp | LinkDown
"""What the connection actor tells the actors that depend on the link."""


@dataclass(frozen=True, slots=True)
class Control:
    """A control message from the server.

    Attributes:
        message: The decoded message.
        received_at: When it arrived (trio clock).
    """

    message: SubscribedMessage | UnsubscribedMessage | ErrorMessage | PongMessage
    received_at: float


@dataclass(frozen=True, slots=True)
class SubscriptionRequest:
    """Send a subscribe/unsubscribe frame and report its outcome.

    The reply resolves to ``None`` on the ack, or fails with
    ``SubscriptionError`` (refused), ``RequestTimeout``
    (no answer by ``deadline``) or ``ConnectionFailed`` (the
    connection went away, or ``link_id`` is not the current one).

    Attributes:
        kind: Subscribe or unsubscribe.
        subscription_id: The id the ack will name.
        frame: The JSON text to send.
        deadline: When to give up (trio clock).
        link_id: The connection it is meant for.
        reply: Where the outcome goes.
    """

    kind: RequestKind
    subscription_id: str
    frame: str
    deadline: float
    link_id: int
    reply: Reply[None]


@dataclass(frozen=True, slots=True)
class PingRequest:
    """Send a ping; the reply resolves to the round-trip time in seconds.

    It fails with ``RequestTimeout`` when no pong came by
    ``deadline``, with ``TransportClosed`` when
    the frame could not be sent, or with ``ConnectionFailed``
    when the connection went away.

    Attributes:
        deadline: When to give up (trio clock).
        link_id: The connection it is meant for.
        reply: Where the outcome goes.
    """

    deadline: float
    link_id: int
    reply: Reply[float]


CorrelationMessage: TypeAlias = LinkUp | LinkDown | Control | SubscriptionRequest | PingRequest
"""Everything the correlation actor's inbox carries."""


class CorrelationActor:
    """Correlates the WebSocket's requests and answers (see the module docstring).

    Args:
        publish: Non-blocking event sink (unsolicited server errors).
        capacity: Inbox size.

    Attributes:
        inbox: The send side of the actor's inbox (the actor closes it on exit).
        rtt: Round-trip time of the last answered ping, seconds.
    """

    def __init__(
        self, publish: Callable[[Event], None], *, capacity: int = CONTROL_CAPACITY
    ) -> None:
        self._publish = publish
        self.inbox, self._receive = trio.open_memory_channel[CorrelationMessage](capacity)
        self._correlator = Correlator()
        self._link: Link | None = None
        self._link_id = 0
        self._request: tuple[int, Reply[None]] | None = None
        self._pings: dict[int, Reply[float]] = {}
        self.rtt: float | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve the inbox until cancelled; started at once.

        Args:
            task_status: Trio's start protocol.
        """
        receive = self._receive
        try:
            task_status.started()
            while True:
                message: CorrelationMessage | None = None
                with trio.move_on_at(_or_inf(self._correlator.next_deadline())):
                    message = await receive.receive()
                if message is not None:
                    await self._handle(message)
                    while True:  # serve everything queued before looking at deadlines
                        try:
                            message = receive.receive_nowait()
                        except trio.WouldBlock:
                            break
                        await self._handle(message)
                self._expire(trio.current_time())
        finally:
            self._reset("the client is closing")
            receive.close()
            self.inbox.close()

    # -- messages -----------------------------------------------------------------------

    async def _handle(self, message: CorrelationMessage) -> None:
        if isinstance(message, Control):
            self._on_control(message)
        elif isinstance(message, SubscriptionRequest):
            await self._on_request(message)
        elif isinstance(message, PingRequest):
            await self._on_ping(message)
        elif isinstance(message, LinkUp):
            self._reset("connection replaced")
            self._link, self._link_id = message.link, message.link_id
        elif message.link_id == self._link_id:
            self._reset("connection lost")
            self._link = None

    def _on_control(self, control: Control) -> None:
        message = control.message
        if isinstance(message, PongMessage):
            pong = self._correlator.feed_pong(control.received_at)
            reply = self._pings.pop(pong.token, None) if pong is not None else None
            if pong is not None and reply is not None:
                self.rtt = pong.rtt
                reply.set_result(pong.rtt)
            return
        if isinstance(message, ErrorMessage):
            match = self._correlator.feed_error(message.message)
            if match is None:
                self._publish(
                    ErrorEvent(error=f"server error: {message.message}", kind="ServerError")
                )
                return
            error = SubscriptionError(
                f"the server refused {match.request.kind} "
                f"{match.request.subscription_id!r}: {message.message}",
                detail=message.message,
            )
            self._finish(match.token, error)
            return
        kind = (
            RequestKind.SUBSCRIBE
            if isinstance(message, SubscribedMessage)
            else RequestKind.UNSUBSCRIBE
        )
        match = self._correlator.feed_ack(kind, message.subscription_id)
        if match is not None:
            self._finish(match.token, None)

    async def _on_request(self, request: SubscriptionRequest) -> None:
        link = self._link
        if link is None or request.link_id != self._link_id:
            request.reply.set_error(ConnectionFailed("not connected", retryable=True))
            return
        now = trio.current_time()
        try:
            token = self._correlator.start(
                request.kind, request.subscription_id, now, request.deadline
            )
        except CorrelatorBusy as exc:  # the renewal actor sends one at a time
            request.reply.set_error(SubscriptionError(f"request refused: {exc}"))
            return
        self._request = (token, request.reply)
        try:
            await link.send(request.frame)
        except TransportClosed as exc:
            self._reset(f"connection lost: {exc}")

    async def _on_ping(self, request: PingRequest) -> None:
        link = self._link
        if link is None or request.link_id != self._link_id:
            request.reply.set_error(ConnectionFailed("not connected", retryable=True))
            return
        now = trio.current_time()
        token = self._correlator.start_ping(now, request.deadline)
        self._pings[token] = request.reply
        try:
            await link.send(encode_ping())
        except TransportClosed as exc:
            request.reply.set_error(exc)
            self._reset(f"connection lost: {exc}")

    # -- outcomes -----------------------------------------------------------------------

    def _finish(self, token: int, error: BaseException | None) -> None:
        request, self._request = self._request, None
        if request is None or request[0] != token:
            return
        if error is None:
            request[1].set_result(None)
        else:
            request[1].set_error(error)

    def _expire(self, now: float) -> None:
        for match in self._correlator.expire(now):
            request = match.request
            self._finish(
                match.token,
                RequestTimeout(
                    f"no answer to {request.kind} {request.subscription_id!r} "
                    f"within {request.deadline - request.started:g} s"
                ),
            )
        # A late pong then answers the next ping, whose link it proves alive
        # just as well.
        for token in self._correlator.expire_pings(now):
            reply = self._pings.pop(token, None)
            if reply is not None:
                reply.set_error(RequestTimeout("no pong by the deadline"))

    def _reset(self, reason: str) -> None:
        self._correlator.reset()
        self._fail_all(ConnectionFailed(reason, retryable=True))

    def _fail_all(self, error: ConnectionFailed) -> None:
        request, self._request = self._request, None
        if request is not None:
            request[1].set_error(error)
        pings, self._pings = self._pings, {}
        for reply in pings.values():
            reply.set_error(error)


def _or_inf(deadline: float | None) -> float:
    return math.inf if deadline is None else deadline
