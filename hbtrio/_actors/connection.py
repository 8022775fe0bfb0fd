"""The connection actor: exactly one WebSocket per client, kept alive and reconnected.

State machine (the connection-state table of the API contract)::

    DISCONNECTED --start / backoff elapsed--> CONNECTING
    CONNECTING   --"connected" greeting-----> CONNECTED
    CONNECTING   --refused/reset/timeout----> DISCONNECTED   (backoff follows)
    CONNECTING   --auth / certificate-------> ERROR          (slow retry at the backoff cap)
    CONNECTED    --drop or silence----------> DISCONNECTED   (backoff follows)
    ERROR        --slow retry---------------> CONNECTING
    any          --client closed------------> DISCONNECTED

While connected the actor runs three small tasks on the socket:

* a reader that never waits on anyone: it decodes each frame and routes it:
  control messages (``subscribed``, ``unsubscribed``, ``error``, ``pong``) go to
  the correlation actor's inbox with ``send_nowait`` (a full inbox is a
  bug-level condition: reported, and the connection is replaced), data pushes
  go to the non-blocking data router, and every frame (heartbeats included)
  feeds the liveness watchdog;
* a pinger that asks the correlation actor to ping every ``ping_interval`` and
  declares the link dead when nothing (not even the pong) came back within the
  pong deadline;
* a watchdog that declares it dead after ``heartbeat_timeout`` of silence.

Each connection is announced with ``LinkUp``
and its end with ``LinkDown``, first to the
correlation actor, then to every other link watcher (the renewal actor).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import TypeAlias

import trio

from .._config import ClientConfig
from .._core.backoff import Backoff
from .._errors import (
    AuthenticationFailed,
    ConnectionFailed,
    HbtrioError,
    MalformedResponse,
    RequestTimeout,
)
from .._wire.ws import (
    CandlesMessage,
    CandleUpdateMessage,
    ConnectedMessage,
    ErrorMessage,
    OrderBookMessage,
    PongMessage,
    SubscribedMessage,
    TradesMessage,
    UnknownMessage,
    UnsubscribedMessage,
    decode_server_message,
)
from ..events import ConnectionStateChanged, ErrorEvent, Event
from ..models import ConnectionState
from .correlation import (
    Control,
    CorrelationActor,
    Link,
    LinkDown,
    LinkEvent,
    LinkUp,
    PingRequest,
    Reply,
)
from .transport import (
    AUTH_CLOSE_CODE,
    Dialer,
    TransportClosed,
    WsTransport,
    exception_leaves,
)

__all__ = ["ConnectionActor", "DataPush", "DataRoute", "Link"]

_AUTH_FAILED_TEXT = "authentication failed"

DataPush: TypeAlias = OrderBookMessage | TradesMessage | CandlesMessage | CandleUpdateMessage
"""A market-data push of a subscription."""

DataRoute = Callable[[DataPush, float], None]
"""Where the reader hands data pushes, with the receive time: must never block."""

_DATA = (OrderBookMessage, TradesMessage, CandlesMessage, CandleUpdateMessage)
_CONTROL = (SubscribedMessage, UnsubscribedMessage, ErrorMessage, PongMessage)
_MAX_UNKNOWN_TYPES_REPORTED = 32  # per connection: a new message type is reported once


def _drop_data(message: DataPush, now: float) -> None:
    pass


class _Dead(Exception):
    """Internal: the link is to be replaced (drop, silence, protocol error)."""


class ConnectionActor:
    """Owns the client's single WebSocket: connects, authenticates, keeps it alive
    and reconnects with backoff, publishing every state change.

    Args:
        config: The client configuration (timings and retries).
        dialer: Opens one WebSocket (see ``trio_websocket_dialer``).
        publish: Non-blocking sink of events (the publisher actor's
            ``publish_nowait``, or ``EventEngine.publish``).
        route_data: Receives data pushes from the reader (never blocking);
            default: dropped.
        correlation: The correlation actor (run by the caller). Default: the
            actor makes and runs one of its own.
        link_watchers: Further inboxes told ``LinkUp`` / ``LinkDown``
            after the correlation actor (e.g. the renewal actor's).
        backoff: Reconnect backoff (default from ``config.reconnect_*``).
        pong_timeout: Seconds a ping may stay unanswered (default: ``config.timeout``,
            or ``heartbeat_timeout`` when ``timeout`` is 0).

    Attributes:
        state: The current ``ConnectionState``.
        connections: Number of connections established so far.
        correlation: The correlation actor used.
        control_overflows: Times the correlation inbox was full for a control
            message (a bug-level condition; the connection was replaced).
    """

    def __init__(
        self,
        config: ClientConfig,
        dialer: Dialer,
        publish: Callable[[Event], None],
        *,
        route_data: DataRoute | None = None,
        correlation: CorrelationActor | None = None,
        link_watchers: Sequence[trio.MemorySendChannel[LinkEvent]] = (),
        backoff: Backoff | None = None,
        pong_timeout: float | None = None,
    ) -> None:
        self._config = config
        self._dialer = dialer
        self._publish = publish
        self._route_data: DataRoute = route_data or _drop_data
        self._owns_correlation = correlation is None
        self.correlation = correlation if correlation is not None else CorrelationActor(publish)
        self._watchers: tuple[trio.MemorySendChannel[LinkEvent], ...] = (
            self.correlation.inbox,
            *link_watchers,
        )
        self.control_overflows = 0
        self._backoff = backoff or Backoff(
            config.reconnect_initial, config.reconnect_max, config.reconnect_reset_after
        )
        self._attempt_timeout = config.timeout or config.heartbeat_timeout
        self._pong_timeout = pong_timeout or config.timeout or config.heartbeat_timeout
        self.state = ConnectionState.DISCONNECTED
        self.connections = 0
        self._last_rx = 0.0
        self._state_changed = trio.Event()
        self.last_error: HbtrioError | None = None

    # -- state ---------------------------------------------------------------------

    def _set_state(self, new: ConnectionState) -> None:
        old = self.state
        if old is new:
            return
        self.state = new
        self._publish(ConnectionStateChanged(old=old, new=new))
        self._state_changed.set()
        self._state_changed = trio.Event()

    async def wait_state(self, *states: ConnectionState) -> ConnectionState:
        """Wait until the state is one of ``states`` and return it.

        Args:
            *states: The states to wait for.

        Returns:
            The state reached.
        """
        while self.state not in states:
            await self._state_changed.wait()
        return self.state

    def _report(self, error: HbtrioError) -> None:
        self.last_error = error
        self._publish(ErrorEvent(error=str(error), kind=type(error).__name__))

    # -- main loop -----------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Connect, then keep connected until cancelled.

        ``task_status.started()`` is called once the first connection is open and
        authenticated. Before that, wrong credentials raise at once, and
        ``config.retries`` further failed attempts raise.

        Args:
            task_status: Trio's start protocol.

        Raises:
            AuthenticationFailed: The server refused the credentials (startup only).
            ConnectionFailed: The server could not be reached after the retries,
                or its certificate failed verification (startup only).
        """
        if not self._owns_correlation:
            await self._run(task_status)
            return
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(self.correlation.run)
                await self._run(task_status)
        except BaseExceptionGroup as group:
            raise _unwrap(group) from None

    async def _run(self, task_status: trio.TaskStatus[None]) -> None:
        started = False
        startup_failures = 0
        try:
            while True:
                self._set_state(ConnectionState.CONNECTING)
                try:
                    async with self._dialer() as transport:
                        await self._handshake(transport)
                        now = trio.current_time()
                        self.connections += 1
                        self._backoff.on_connected(now)
                        self._set_state(ConnectionState.CONNECTED)
                        if not started:
                            started = True
                            task_status.started()
                        await self._serve(transport)
                except (AuthenticationFailed, ConnectionFailed) as exc:
                    fatal = isinstance(exc, AuthenticationFailed) or not exc.retryable
                    if fatal:
                        self._set_state(ConnectionState.ERROR)
                        if not started:
                            raise
                        self._report(exc)
                        self._backoff.on_disconnected(trio.current_time())
                        await trio.sleep(self._backoff.cap)
                        continue
                    self._set_state(ConnectionState.DISCONNECTED)
                    if not started:
                        startup_failures += 1
                        if startup_failures > self._config.retries:
                            raise ConnectionFailed(
                                f"cannot connect to {self._config.ws_url} after "
                                f"{startup_failures} attempts: {exc.message}",
                                retryable=True,
                            ) from exc
                    else:
                        self._report(exc)
                except (_Dead, TransportClosed) as exc:
                    self._set_state(ConnectionState.DISCONNECTED)
                    if started:
                        self._report(ConnectionFailed(f"connection lost: {exc}", retryable=True))
                self._backoff.on_disconnected(trio.current_time())
                await trio.sleep(self._backoff.next_delay())
        finally:
            self._set_state(ConnectionState.DISCONNECTED)

    async def _handshake(self, transport: WsTransport) -> None:
        """Wait for the ``connected`` greeting (or the authentication failure)."""
        where = self._config.ws_url
        try:
            with trio.fail_after(self._attempt_timeout):
                while True:
                    data = await transport.receive()
                    try:
                        message = decode_server_message(data)
                    except HbtrioError:
                        continue
                    if isinstance(message, ConnectedMessage):
                        return
                    if isinstance(message, ErrorMessage):
                        if _AUTH_FAILED_TEXT in message.message.lower():
                            raise AuthenticationFailed(
                                f"the server refused the credentials for {where}"
                            )
                        raise ConnectionFailed(
                            f"the server refused the WebSocket session: {message.message}",
                            retryable=True,
                        )
        except TransportClosed as exc:
            if exc.code == AUTH_CLOSE_CODE:
                raise AuthenticationFailed(
                    f"the server refused the credentials for {where} (close {exc.code})"
                ) from None
            raise ConnectionFailed(
                f"the server closed the WebSocket before the greeting: {exc}", retryable=True
            ) from None
        except trio.TooSlowError:
            raise ConnectionFailed(
                f"no greeting from {where} within {self._attempt_timeout:g} s", retryable=True
            ) from None

    async def _serve(self, transport: WsTransport) -> None:
        """Run the reader, pinger and watchdog until the link dies."""
        link = _TransportLink(transport)
        link_id = self.connections
        self._last_rx = trio.current_time()
        try:
            await self._announce(LinkUp(link, link_id))
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._reader, transport)
                nursery.start_soon(self._pinger, link_id)
                nursery.start_soon(self._watchdog)
        except BaseExceptionGroup as group:
            raise _unwrap(group) from None
        finally:
            link.close()
            with trio.CancelScope(shield=True):
                await self._announce(LinkDown(link_id))

    async def _announce(self, event: LinkEvent) -> None:
        # The watchers serve their inboxes without ever blocking, so this waits
        # at most a scheduler pass; a watcher that has stopped is skipped.
        for inbox in self._watchers:
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await inbox.send(event)

    async def _reader(self, transport: WsTransport) -> None:
        control = self.correlation.inbox
        route_data = self._route_data
        unknown_reported: set[str] = set()
        while True:
            data = await transport.receive()
            now = trio.current_time()
            self._last_rx = now
            try:
                message = decode_server_message(data)
            except HbtrioError as exc:
                self._report(exc)
                continue
            if isinstance(message, _DATA):
                try:
                    route_data(message, now)
                except HbtrioError as exc:
                    self._report(exc)
            elif isinstance(message, _CONTROL):
                if isinstance(message, ErrorMessage) and (
                    _AUTH_FAILED_TEXT in message.message.lower()
                ):
                    raise _Dead("the server revoked the session: authentication failed")
                try:
                    control.send_nowait(Control(message, now))
                except trio.WouldBlock:
                    # Cannot happen with one request outstanding at a time: a server
                    # flooding control messages, or a stalled correlation actor.
                    self.control_overflows += 1
                    raise _Dead("control inbox full (bug-level condition)") from None
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    raise _Dead("the correlation actor stopped") from None
            elif (
                isinstance(message, UnknownMessage)
                and message.type not in unknown_reported
                and len(unknown_reported) < _MAX_UNKNOWN_TYPES_REPORTED
            ):
                # Ignored (a newer server may send new kinds) but reported, once per
                # type and connection, so a protocol change does not pass unseen.
                unknown_reported.add(message.type)
                self._report(
                    MalformedResponse(
                        "unknown WebSocket message type (ignored; reported once per connection)",
                        excerpt=message.type,
                    )
                )
            # Heartbeats and greetings only feed the watchdog.

    async def _pinger(self, link_id: int) -> None:
        inbox = self.correlation.inbox
        next_ping = trio.current_time() + self._config.ping_interval
        while True:
            await trio.sleep_until(next_ping)
            sent_at = trio.current_time()
            next_ping = sent_at + self._config.ping_interval
            reply = Reply[float]()
            await inbox.send(PingRequest(sent_at + self._pong_timeout, link_id, reply))
            try:
                await reply.wait()
            except RequestTimeout:
                if self._last_rx < sent_at:
                    raise _Dead(f"no answer to a ping within {self._pong_timeout:g} s") from None
            except ConnectionFailed as exc:
                raise _Dead(exc.message) from None

    async def _watchdog(self) -> None:
        limit = self._config.heartbeat_timeout
        while True:
            deadline = self._last_rx + limit
            if trio.current_time() >= deadline:
                raise _Dead(f"no traffic for {limit:g} s")
            await trio.sleep_until(deadline)


class _TransportLink:
    """The write side of one connection, handed to the correlation actor.

    ``close`` also cancels writes in progress, so an actor stuck writing to
    a dead socket gets ``TransportClosed`` at once and goes on serving its
    inbox (the ``LinkDown`` that follows can never wait behind it).
    """

    def __init__(self, transport: WsTransport) -> None:
        self._transport = transport
        self._writes: set[trio.CancelScope] = set()
        self.closed = False

    async def send(self, message: str) -> None:
        if self.closed:
            raise TransportClosed(1006, "connection replaced")
        with trio.CancelScope() as scope:
            self._writes.add(scope)
            try:
                await self._transport.send(message)
            finally:
                self._writes.discard(scope)
        if scope.cancelled_caught:
            raise TransportClosed(1006, "connection closed during a write")

    def close(self) -> None:
        self.closed = True
        for scope in self._writes:
            scope.cancel()


def _unwrap(group: BaseExceptionGroup[BaseException]) -> BaseException:
    leaves = exception_leaves(group)
    if not leaves:
        return group
    for preferred in (AuthenticationFailed, _Dead, TransportClosed, ConnectionFailed):
        for leaf in leaves:
            if isinstance(leaf, preferred):
                return leaf
    return leaves[0]
