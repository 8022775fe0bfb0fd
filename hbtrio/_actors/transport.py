"""The WebSocket transport seam: a tiny interface and its trio-websocket implementation.

The connection actor talks to a ``WsTransport`` obtained from a ``Dialer``.
Production code dials with ``trio_websocket_dialer``; actor tests plug in an
in-memory fake peer so that ``autojump_clock`` can drive time.

Every transport error is translated here, in one place, into hbtrio's own
exceptions: ``TransportClosed`` for a closed WebSocket, ``ConnectionFailed``
(``retryable=True``) for a refused/reset/timed-out attempt,
``AuthenticationFailed`` for a handshake the server refused with 401/403, and
``ConnectionFailed`` with ``retryable=False`` for a certificate failure.
"""

from __future__ import annotations

import math
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

import trio
import trio_websocket

from .._config import ClientConfig
from .._errors import AuthenticationFailed, ConnectionFailed
from .._errors import exception_leaves as _leaves
from .tls import certificate_error, certificate_failure_text, make_ssl_context

__all__ = [
    "Dialer",
    "TransportClosed",
    "WsTransport",
    "exception_leaves",
    "make_ws_ssl_context",
    "trio_websocket_dialer",
]

WS_PATH = "/ws/market-data"
"""Resource path of the market-data WebSocket."""

AUTH_CLOSE_CODE = 4001
"""Close code the Hummingbot API uses for failed WebSocket authentication."""


class TransportClosed(Exception):
    """The WebSocket is closed (by the peer, by us, or because the link broke).

    Args:
        code: The WebSocket close code (1006 when the link broke without one).
        reason: The close reason text, when any.

    Attributes:
        code: The WebSocket close code.
        reason: The close reason text, or ``None``.
    """

    def __init__(self, code: int, reason: str | None = None) -> None:
        super().__init__(f"WebSocket closed (code {code}{': ' + reason if reason else ''})")
        self.code = code
        self.reason = reason


class WsTransport(Protocol):
    """One open WebSocket, as the connection actor sees it."""

    async def receive(self) -> str | bytes:
        """Return the next message.

        Raises:
            TransportClosed: The WebSocket is closed.
        """
        ...

    async def send(self, message: str | bytes) -> None:
        """Send one message.

        Args:
            message: The frame payload (text or bytes).

        Raises:
            TransportClosed: The WebSocket is closed.
        """
        ...


Dialer = Callable[[], AbstractAsyncContextManager[WsTransport]]
"""Opens one WebSocket; leaving the context closes it. Raises
``ConnectionFailed`` (or ``AuthenticationFailed``) when the attempt fails."""


def make_ws_ssl_context(config: ClientConfig) -> ssl.SSLContext:
    """Build the TLS context used to verify the server (REST and WebSocket alike).

    Args:
        config: The client configuration.

    Returns:
        A verifying client-side SSL context (from ``tls.make_ssl_context``, or a
        default context with ``config.ca_file`` when TLS is off in ``config``).
    """
    context = make_ssl_context(config)
    if context is None:
        return ssl.create_default_context(cafile=config.ca_file)
    return context


class _TrioWsTransport:
    """``WsTransport`` over a ``trio_websocket.WebSocketConnection``."""

    def __init__(self, ws: trio_websocket.WebSocketConnection) -> None:
        self._ws = ws

    async def receive(self) -> str | bytes:
        try:
            return await self._ws.get_message()
        except trio_websocket.ConnectionClosed as exc:
            raise _closed(exc) from None

    async def send(self, message: str | bytes) -> None:
        try:
            await self._ws.send_message(message)
        except trio_websocket.ConnectionClosed as exc:
            raise _closed(exc) from None


def _closed(exc: trio_websocket.ConnectionClosed) -> TransportClosed:
    reason = exc.reason
    if reason is None:
        return TransportClosed(1006)
    return TransportClosed(reason.code, reason.reason)


def exception_leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside a (nested) exception group, cancellations left out.

    Args:
        exc: An exception, or an exception group.

    Returns:
        The non-group exceptions other than ``trio.Cancelled``, depth first
        (``[exc]`` itself for a plain exception that is not a cancellation).
    """
    return _leaves(exc, ignore=trio.Cancelled)


def translate_dial_error(exc: BaseException, where: str) -> ConnectionFailed | None:
    """Map an exception raised while opening a WebSocket to an hbtrio exception.

    Args:
        exc: The exception (possibly an exception group).
        where: The URL being dialled, for the message (never carries credentials).

    Returns:
        The hbtrio exception to raise, or ``None`` when ``exc`` is not a transport
        error (e.g. a cancellation, which must propagate unchanged).
    """
    leaves = exception_leaves(exc)
    if not leaves:
        return None
    for leaf in leaves:
        if isinstance(leaf, ConnectionFailed):
            return leaf
        if isinstance(leaf, trio_websocket.ConnectionRejected):
            if leaf.status_code in (401, 403):
                return AuthenticationFailed(
                    f"the server refused the credentials for {where}", status=leaf.status_code
                )
            return ConnectionFailed(
                f"the server rejected the WebSocket handshake to {where}",
                status=leaf.status_code,
                retryable=True,
            )
        cert = certificate_error(leaf)
        if cert is not None:
            return ConnectionFailed(certificate_failure_text(where, cert), retryable=False)
        if isinstance(leaf, ssl.SSLError | OSError | trio.BrokenResourceError | trio.TooSlowError):
            text = "timed out" if isinstance(leaf, trio.TooSlowError) else str(leaf) or type(leaf)
            return ConnectionFailed(f"cannot connect to {where}: {text}", retryable=True)
        if isinstance(leaf, trio_websocket.HandshakeError | trio_websocket.ConnectionClosed):
            return ConnectionFailed(
                f"WebSocket handshake with {where} failed: {type(leaf).__name__}", retryable=True
            )
    return None


_CLOSE_SEND_S = 0.05
"""Seconds to let our close frame go out when closing under cancellation."""


def trio_websocket_dialer(
    config: ClientConfig,
    *,
    ssl_context: ssl.SSLContext | None = None,
    message_queue_size: int = 64,
    max_message_size: int = 16 * 1024 * 1024,
) -> Dialer:
    """Return a ``Dialer`` that opens the market-data WebSocket of ``config``.

    The TLS handshake is done before the WebSocket handshake so that certificate
    failures are told apart from other failures; each attempt is bounded by
    ``config.timeout`` (or ``config.heartbeat_timeout`` when ``timeout`` is 0).
    Credentials go in the ``Authorization`` header only, never in the URL.

    Args:
        config: The client configuration.
        ssl_context: TLS context to use (default: ``make_ws_ssl_context``).
        message_queue_size: trio-websocket's internal queue size. The connection
            actor reads continuously, so this never fills for long.
        max_message_size: Largest accepted message, bytes.

    Returns:
        The dialer.
    """
    host = config.host
    port = config.port
    host_header = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    where = config.ws_url
    attempt_timeout = config.timeout or config.heartbeat_timeout
    context = (ssl_context or make_ws_ssl_context(config)) if config.tls else None

    @asynccontextmanager
    async def dial() -> AsyncIterator[WsTransport]:
        headers = [(b"Authorization", config.authorization.encode("ascii"))]
        opened = False
        try:
            async with trio.open_nursery() as nursery:
                with trio.fail_after(attempt_timeout):
                    tcp = await trio.open_tcp_stream(host, port)
                    stream: trio.SocketStream | trio.SSLStream[trio.SocketStream] = tcp
                    if context is not None:
                        tls = trio.SSLStream(
                            tcp, context, server_hostname=host, https_compatible=True
                        )
                        try:
                            await tls.do_handshake()
                        except BaseException:
                            await trio.aclose_forcefully(tcp)
                            raise
                        stream = tls
                    try:
                        ws = await trio_websocket.wrap_client_stream(
                            nursery,
                            stream,
                            host_header,
                            WS_PATH,
                            extra_headers=headers,
                            message_queue_size=message_queue_size,
                            max_message_size=max_message_size,
                        )
                    except BaseException:
                        # A failed or timed-out upgrade leaves the socket to us.
                        await trio.aclose_forcefully(stream)
                        raise
                opened = True
                try:
                    yield _TrioWsTransport(ws)
                finally:
                    # When we are being cancelled, trio-websocket's reader task (in
                    # ``nursery``) is cancelled too and can never see the server's
                    # close reply: send our close frame, then do not wait for it.
                    cancelled = trio.current_effective_deadline() == -math.inf
                    with trio.move_on_after(_CLOSE_SEND_S if cancelled else 1.0) as scope:
                        scope.shield = True
                        await ws.aclose()
                    # trio-websocket leaves the socket open when the peer closed
                    # first: close it ourselves.
                    with trio.CancelScope(shield=True):
                        await trio.aclose_forcefully(stream)
                    nursery.cancel_scope.cancel()
        except BaseException as exc:
            leaves = exception_leaves(exc)
            if not leaves:
                raise
            if opened:
                # The body (the connection actor) or trio-websocket's reader failed:
                # re-raise the one real error, unwrapped from the nursery's group.
                first = leaves[0]
                if isinstance(first, TransportClosed | ConnectionFailed) or first is exc:
                    raise first from None
                mapped = translate_dial_error(first, where)
                if mapped is None:
                    raise first from None
                raise TransportClosed(1006, mapped.message) from None
            mapped = translate_dial_error(exc, where)
            if mapped is None:
                raise
            raise mapped from None

    return dial
