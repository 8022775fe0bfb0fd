"""The client facade: ``open_client`` and ``Client``.

``Client`` combines the domain parts of ``hbtrio._domains`` (orders, market
data, account, streams); this is the only module that knows every part and every
actor: the request side (the HTTP pool and the REST actor) and the streaming side
(the ``StreamingSupervisor`` with the WebSocket connection, subscriptions and the
order tracker actor), all started in one nursery owned by ``open_client``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from ._actors.http import HttpPool
from ._actors.rest import RequestObserver, RestActor, Transport
from ._actors.streams import StreamingSupervisor
from ._actors.tracker import TrackerActor
from ._actors.transport import Dialer
from ._config import ClientConfig
from ._domains.account import AccountPart
from ._domains.market_data import MarketDataPart
from ._domains.orders import OrdersPart
from ._domains.streams import StreamsPart
from ._errors import lone_exception
from ._wire.errors import RejectionTable
from .events import EventEngine
from .models import ConnectionState

__all__ = ["Client", "open_client"]


class Client(OrdersPart, MarketDataPart, AccountPart, StreamsPart):
    """A connected Hummingbot API client (obtain one from ``open_client``).

    Every method validates its arguments before any I/O
    (``InputValidationError``), and returns or raises within
    ``timeout * (retries + 1)`` plus the backoff delays unless its docstring states
    a longer bound. Orders, history and fills are those of ``config.account``.

    Args:
        config: The client configuration.
        rest: The REST actor.
        engine: The event engine the client publishes to.

    Attributes:
        config: The configuration.
        engine: The event engine.
        rejections: Table mapping asynchronous rejection texts (``error_message``
            of ``FAILED`` orders) to exception types; extend it with
            ``client.rejections.add(pattern, exc_type, connector=None)``.
        streams: The streaming part, once attached (``None`` for a REST-only client).
        tracker: The order tracker actor, once attached (``None`` for a REST-only client).
    """

    def __init__(self, config: ClientConfig, rest: RestActor, engine: EventEngine) -> None:
        super().__init__(config, rest, engine)
        self._state = ConnectionState.DISCONNECTED

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        """The connection state (the WebSocket's once streams are attached)."""
        if self.streams is not None:
            return self.streams.state
        return self._state

    def attach_streams(
        self, streams: StreamingSupervisor, tracker: TrackerActor | None = None
    ) -> None:
        """Attach the streaming part (started by ``open_client``'s nursery).

        Args:
            streams: The streaming supervisor.
            tracker: The order tracker actor it runs, which then serves
                ``wait_accepted`` and learns of every order this client places.
        """
        self.streams = streams
        self.tracker = tracker

    async def _probe(self) -> None:
        self._state = ConnectionState.CONNECTING
        try:
            await self.get_accounts()
        except BaseException:
            self._state = ConnectionState.ERROR
            raise
        self._state = ConnectionState.CONNECTED


@asynccontextmanager
async def open_client(
    config: ClientConfig,
    engine: EventEngine | None = None,
    *,
    transport: Transport | None = None,
    rejections: RejectionTable | None = None,
    streaming: bool = True,
    dialer: Dialer | None = None,
    request_observer: RequestObserver | None = None,
) -> AsyncIterator[Client]:
    """Open a client: an async context manager owning a nursery with its actors.

    On entry the client checks that the server answers and accepts the
    credentials (``GET /accounts/``), then (with ``streaming``) opens the
    market-data WebSocket and returns once it is connected and authenticated.
    Wrong credentials raise ``AuthenticationFailed`` at once; an
    unreachable server raises ``ConnectionFailed`` after ``retries``
    further attempts. On exit every actor stops and every connection is closed.
    An exception from the ``async with`` body comes out as itself, not wrapped in
    an exception group.

    Args:
        config: The client configuration.
        engine: The event engine to publish to (default: a new one, run by the
            client). A caller-supplied engine is not run by the client.
        transport: HTTP transport to use instead of the TLS connection pool
            (tests, custom transports).
        rejections: Table mapping rejection texts to exception types (default: a
            fresh copy of the built-in table; extend ``client.rejections``).
        streaming: Start the WebSocket side (subscriptions, connection state, order
            tracker). ``False`` gives a REST-only client.
        dialer: WebSocket dialer to use instead of the TLS one (tests).
        request_observer: Called after every REST request attempt (orders,
            tracker polls, market data, the start-up check) with
            ``(method, endpoint, seconds, outcome)``: ``endpoint`` is the path
            template (``/trading/orders``, ``/connectors/{connector}/trading-rules``;
            never ids or query strings), ``outcome`` is ``"ok"``, the status code
            of another answer (``"503"``) or the exception class name when there
            was no answer (``"ConnectionFailed"``). It runs synchronously on the
            request path, so it must be quick; an exception it raises is logged
            and ignored. ``None`` (the default) costs nothing.

    Yields:
        The client.

    Raises:
        TypeError: ``config`` is not a ``ClientConfig``.
        ConfigError: The CA file is unusable.
        AuthenticationFailed: The server refused the credentials.
        ConnectionFailed: The server could not be reached.
    """
    if not isinstance(config, ClientConfig):
        raise TypeError("config must be a hbtrio.ClientConfig")
    own_engine = engine is None
    events = engine if engine is not None else EventEngine()
    pool: Transport = transport if transport is not None else HttpPool(config)
    rest = RestActor(config, pool, rejections=rejections, observer=request_observer)
    client = Client(config, rest, events)
    if streaming:
        tracker = TrackerActor(
            client,
            events.publish,
            poll_active=config.poll_active,
            poll_idle=config.poll_idle,
        )
        client.attach_streams(
            StreamingSupervisor(
                config,
                events.publish,
                dialer=dialer,
                ticker_seed=client.get_ticker,
                engine=events,
                tracker=tracker,
            ),
            tracker,
        )
    try:
        async with trio.open_nursery() as nursery:
            try:
                if own_engine:
                    await nursery.start(events.run)
                await client._probe()
                if client.streams is not None:
                    await nursery.start(client.streams.run)
                yield client
            finally:
                client._state = ConnectionState.DISCONNECTED
                nursery.cancel_scope.cancel()
                with trio.CancelScope(shield=True):
                    await pool.aclose()
    except BaseExceptionGroup as group:
        leaf = lone_exception(group)
        if leaf is group:
            raise
        raise leaf from leaf.__cause__
