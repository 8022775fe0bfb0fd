"""hbtrio for blocking programs: scripts, notebooks, dashboards.

```python
import hbtrio, hbtrio.sync

with hbtrio.sync.open_client(config) as client:
    book = client.get_order_book("binance", "BTC-USDT")
    with client.subscribe_order_book("binance", "BTC-USDT") as books:
        for book in books: ...
```

The context manager starts a background thread running Trio (``trio.run``) with
the Trio client in it, and stops it on exit. Every method of ``hbtrio.Client``
is here as a blocking method with the same arguments, results, exceptions and
time bounds (generated from ``Client``: see ``hbtrio/_sync_gen.py``); streams are
context managers yielding blocking iterators, with the Trio streams' buffering
and overflow policy. Any number of threads may call one client at once: each
call is a Trio task of its own.

Ctrl-C (``KeyboardInterrupt``) in a thread blocked in a call cancels the call on
the Trio side, waits for that to finish (at most 5 s, or until a second Ctrl-C)
and propagates: the client stays usable; leaving the ``with`` block closes it.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Iterator
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, TypeVar, overload

from ._bridge import EngineView, is_plain
from ._config import ClientConfig
from ._sync_methods import SyncClientMethods
from ._sync_portal import SyncPortal, SyncStream
from .events import Event, EventEngine
from .models import ConnectionState

__all__ = ["SyncClient", "SyncEventEngine", "open_client"]

E = TypeVar("E", bound=Event)


class SyncEventEngine(EngineView):
    """An ``EventEngine`` used from blocking code: subscriptions and publishing.

    ``subscribe`` has the engine's signature and delivery policy; the subscription
    is a blocking iterator. Handlers (``add_handler``) run as Trio tasks and are
    not offered here: iterate a subscription instead.

    Args:
        portal: The client's Trio side.
        engine: The engine.
    """

    @overload
    def subscribe(
        self,
        event_type: type[E],
        /,
        *,
        buffer: int = ...,
        grace: float | None = ...,
        overflow: int | None = ...,
        name: str | None = ...,
    ) -> AbstractContextManager[Iterator[E]]: ...

    @overload
    def subscribe(
        self,
        *types: type[Event],
        buffer: int = ...,
        grace: float | None = ...,
        overflow: int | None = ...,
        name: str | None = ...,
    ) -> AbstractContextManager[Iterator[Event]]: ...

    def subscribe(
        self,
        *types: type[Event],
        buffer: int = 1000,
        grace: float | None = None,
        overflow: int | None = None,
        name: str | None = None,
    ) -> AbstractContextManager[Iterator[Any]]:
        """Subscribe to events of some types (see ``EventEngine.subscribe``).

        Args:
            *types: Event classes to receive (subclasses included); none: all.
            buffer: Events buffered for this subscriber (``>= 1``).
            grace: Seconds its buffer may stay full of events that cannot be
                conflated before it is cut off (default: the engine's).
            overflow: Events it may hold beyond ``buffer`` meanwhile.
            name: Name in error messages.

        Returns:
            A context manager yielding a blocking iterator of events.
        """
        cm = self._engine.subscribe(
            *types, buffer=buffer, grace=grace, overflow=overflow, name=name
        )
        return SyncStream(self._portal, cm)

    def publish(self, event: Event) -> None:
        """Publish an event to every matching subscriber (in the Trio thread).

        Args:
            event: The event.

        Raises:
            InputValidationError: ``event`` is not an ``Event``.
        """
        self._portal.call(self._publisher(event))


class SyncClient(SyncClientMethods):
    """A connected blocking client (obtain one from ``hbtrio.sync.open_client``).

    Every public method of ``hbtrio.Client`` is a blocking method here (see the
    module's documentation); a method the Trio client gained after the blocking
    methods were last generated is still forwarded, untyped, and so are the
    methods of objects the client holds (``client.streams``, ...).

    Args:
        portal: The client's Trio thread (internal).

    Attributes:
        config: The configuration.
        engine: The event engine, as a ``SyncEventEngine``.
    """

    def __init__(self, portal: SyncPortal) -> None:
        assert portal.client is not None
        self._portal = portal
        self._client = portal.client
        self.config: ClientConfig = portal.client.config
        self.engine = SyncEventEngine(portal, portal.client.engine)

    @property
    def state(self) -> ConnectionState:
        """The connection state (the WebSocket's once connected)."""
        return self._client.state

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return _forward(self._portal, getattr(self._client, name))

    def __repr__(self) -> str:
        return f"<hbtrio.sync.SyncClient of {self._client!r}>"


def _forward(portal: SyncPortal, value: Any) -> Any:
    """An attribute of the Trio client (or of an object it holds), for blocking code."""
    if callable(value) and not isinstance(value, type):
        if inspect.iscoroutinefunction(value):
            return functools.wraps(value)(functools.partial(portal.call, value))

        @functools.wraps(value)
        def forwarded(*args: Any, **kwargs: Any) -> Any:
            return portal.adapt(value(*args, **kwargs))

        return forwarded
    if is_plain(value):
        return value
    return _Proxy(portal, value)


class _Proxy:
    """An object of the Trio client (a namespace of methods), seen from blocking code."""

    def __init__(self, portal: SyncPortal, target: Any) -> None:
        self._portal = portal
        self._target = target

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return _forward(self._portal, getattr(self._target, name))

    def __repr__(self) -> str:
        return f"<hbtrio.sync proxy of {self._target!r}>"


class _OpenClient:
    def __init__(self, config: ClientConfig, engine: EventEngine | None) -> None:
        if not isinstance(config, ClientConfig):
            raise TypeError("config must be a hbtrio.ClientConfig")
        if engine is not None and not isinstance(engine, EventEngine):
            raise TypeError("engine must be a hbtrio.EventEngine")
        self._portal = SyncPortal(config, engine)
        self._entered = False

    def __enter__(self) -> SyncClient:
        if self._entered:
            raise RuntimeError("this open_client() was already entered")
        self._entered = True
        self._portal.open()
        return SyncClient(self._portal)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        portal = self._portal
        portal.close()
        if portal.failure is not None:
            raise portal.failure


def open_client(
    config: ClientConfig, engine: EventEngine | None = None
) -> AbstractContextManager[SyncClient]:
    """Open a blocking client: a context manager owning a Trio thread.

    Entering starts the thread and opens ``hbtrio.open_client(config, engine)`` in
    it: it returns once the client is connected and authenticated and raises what
    ``hbtrio.open_client`` raises. Leaving closes the client and joins the thread.
    A failure of the client in the background is raised when the block is left
    (calls meanwhile raise ``ConnectionFailed``).

    Args:
        config: The client configuration.
        engine: The event engine to publish to (default: a new one).

    Returns:
        The context manager yielding a ``SyncClient``.

    Raises:
        TypeError: ``config`` is not a ``ClientConfig``, or ``engine`` not an
            ``EventEngine``.
    """
    return _OpenClient(config, engine)
