"""The connection actor: exactly one WebSocket per client, kept alive and reconnected.

State machine (the connection-state table of the API contract)::

    DISCONNECTED --start / backoff elapsed--> CONNECTING
    CONNECTING   --"connected" greeting-----> CONNECTED
    CONNECTING   --refused/reset/timeout----> DISCONNECTED   (backoff follows)
    CONNECTING   --auth / certificate-------> ERROR          (slow retry at the backoff cap)
    CONNECTED    --drop or silence----------> DISCONNECTED   (backoff follows)
    ERROR        --slow retry---------------> CONNECTING
    any          --client closed------------> DISCONNECTED

While connected the actor runs three small tasks on the socket: a reader that
never blocks on user data (every frame is decoded and handed synchronously to a
:class:`SessionListener`, whose job is to be non-blocking), a pinger that sends
``{"action":"ping"}`` every ``ping_interval`` and declares the link dead when
nothing (not even the pong) came back within the pong deadline, and a watchdog
that declares it dead after ``heartbeat_timeout`` of silence.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import trio

from .._config import ClientConfig
from .._core.backoff import Backoff
from .._errors import AuthenticationFailed, ConnectionFailed, HbtrioError
from .._wire.ws import (
    ConnectedMessage,
    ErrorMessage,
    ServerMessage,
    decode_server_message,
    encode_ping,
)
from ..events import ConnectionStateChanged, ErrorEvent, Event
from ..models import ConnectionState
from .transport import AUTH_CLOSE_CODE, Dialer, TransportClosed, WsTransport

__all__ = ["ConnectionActor", "Link", "SessionListener"]

_AUTH_FAILED_TEXT = "authentication failed"


class Link(Protocol):
    """The send side of the current connection, given to the listener."""

    async def send(self, message: str) -> None:
        """Send one text frame.

        Args:
            message: The JSON text.

        Raises:
            TransportClosed: The connection is gone.
        """
        ...


class SessionListener(Protocol):
    """Receives the connection's life events and messages. Every method must be
    quick and must never block (the reader calls them inline)."""

    def connection_up(self, link: Link, now: float) -> None:
        """A connection is open and authenticated.

        Args:
            link: Where to send actions on this connection.
            now: Current time.
        """

    def message(self, message: ServerMessage, now: float) -> None:
        """A decoded message arrived (control messages included).

        Args:
            message: The message.
            now: Current time.
        """

    def connection_down(self, now: float) -> None:
        """The connection is gone (dropped, silent or closed).

        Args:
            now: Current time.
        """


class _NullListener:
    def connection_up(self, link: Link, now: float) -> None:
        pass

    def message(self, message: ServerMessage, now: float) -> None:
        pass

    def connection_down(self, now: float) -> None:
        pass


class _Dead(Exception):
    """Internal: the link is to be replaced (drop, silence, protocol error)."""


class ConnectionActor:
    """Owns the client's single WebSocket: connects, authenticates, keeps it alive
    and reconnects with backoff, publishing every state change.

    Args:
        config: The client configuration (timings and retries).
        dialer: Opens one WebSocket (see :func:`~hbtrio._actors.transport.trio_websocket_dialer`).
        publish: Non-blocking sink of events (``EventEngine.publish``).
        listener: Receives connection life events and messages.
        backoff: Reconnect backoff (default from ``config.reconnect_*``).
        pong_timeout: Seconds a ping may stay unanswered (default: ``config.timeout``,
            or ``heartbeat_timeout`` when ``timeout`` is 0).

    Attributes:
        state: The current :class:`~hbtrio.ConnectionState`.
        connections: Number of connections established so far.
    """

    def __init__(
        self,
        config: ClientConfig,
        dialer: Dialer,
        publish: Callable[[Event], None],
        listener: SessionListener | None = None,
        *,
        backoff: Backoff | None = None,
        pong_timeout: float | None = None,
    ) -> None:
        self._config = config
        self._dialer = dialer
        self._publish = publish
        self._listener: SessionListener = listener or _NullListener()
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
        self._last_rx = trio.current_time()
        self._listener.connection_up(link, self._last_rx)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._reader, transport)
                nursery.start_soon(self._pinger, transport)
                nursery.start_soon(self._watchdog)
        except BaseExceptionGroup as group:
            raise _unwrap(group) from None
        finally:
            link.closed = True
            self._listener.connection_down(trio.current_time())

    async def _reader(self, transport: WsTransport) -> None:
        while True:
            data = await transport.receive()
            now = trio.current_time()
            self._last_rx = now
            try:
                message = decode_server_message(data)
            except HbtrioError as exc:
                self._report(exc)
                continue
            if isinstance(message, ErrorMessage) and (_AUTH_FAILED_TEXT in message.message.lower()):
                raise _Dead("the server revoked the session: authentication failed")
            try:
                self._listener.message(message, now)
            except HbtrioError as exc:
                self._report(exc)

    async def _pinger(self, transport: WsTransport) -> None:
        ping = encode_ping()
        next_ping = trio.current_time() + self._config.ping_interval
        while True:
            await trio.sleep_until(next_ping)
            sent_at = trio.current_time()
            next_ping = sent_at + self._config.ping_interval
            await transport.send(ping)
            await trio.sleep(self._pong_timeout)
            if self._last_rx < sent_at:
                raise _Dead(f"no answer to a ping within {self._pong_timeout:g} s")

    async def _watchdog(self) -> None:
        limit = self._config.heartbeat_timeout
        while True:
            deadline = self._last_rx + limit
            if trio.current_time() >= deadline:
                raise _Dead(f"no traffic for {limit:g} s")
            await trio.sleep_until(deadline)


class _TransportLink:
    def __init__(self, transport: WsTransport) -> None:
        self._transport = transport
        self.closed = False

    async def send(self, message: str) -> None:
        if self.closed:
            raise TransportClosed(1006, "connection replaced")
        await self._transport.send(message)


def _unwrap(group: BaseExceptionGroup[BaseException]) -> BaseException:
    leaves: list[BaseException] = []
    stack: list[BaseException] = [group]
    while stack:
        exc = stack.pop()
        if isinstance(exc, BaseExceptionGroup):
            stack.extend(exc.exceptions)
        elif not isinstance(exc, trio.Cancelled):
            leaves.append(exc)
    if not leaves:
        return group
    for preferred in (AuthenticationFailed, _Dead, TransportClosed, ConnectionFailed):
        for leaf in leaves:
            if isinstance(leaf, preferred):
                return leaf
    return leaves[0]
