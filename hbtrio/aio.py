"""hbtrio for asyncio programs (and anyio programs on the asyncio backend).

```python
import hbtrio, hbtrio.aio

async with hbtrio.aio.open_client(config) as client:
    book = await client.get_order_book("binance", "BTC-USDT")
    async with client.subscribe_order_book("binance", "BTC-USDT") as books:
        async for book in books: ...
```

The Trio client runs as a *guest* on the running asyncio loop
(``trio.lowlevel.start_guest_run``): on the loop's own thread, without a second
event loop (Trio's guest mode waits for I/O in a helper thread and hands every
ready step back to the asyncio loop). Every client opened on one loop shares one
guest run, started by the first ``open_client`` and ended when the last client
closes: one Trio scheduler per loop whatever the number of clients, and no Trio
run left behind once the last block is left.

The client has the methods, streams, ``events()`` and exceptions of
``hbtrio.Client``, with the same time bounds: each call runs the Trio method in
a Trio task of the client. Cancelling the awaiting asyncio task cancels that Trio
task (and waits for it to end, so nothing of the call outlives it); whatever the
Trio side raises is raised in the awaiting task. A stream is an async context
manager yielding an async iterator; every step of it runs in one Trio task that
owns the subscription, so the buffering and overflow policy is the Trio stream's.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

import trio

from . import _client
from ._bridge import EngineView, Operation, Session, closed_error, is_plain, kind_of, start, submit
from ._config import ClientConfig
from ._errors import ConnectionFailed
from .events import Event, EventEngine

if TYPE_CHECKING:
    from ._client import Client as _ClientBase
else:
    _ClientBase = object

__all__ = ["AsyncClient", "AsyncEventEngine", "open_client"]

T = TypeVar("T")
E = TypeVar("E", bound=Event)

_hosts: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _GuestRun] = (
    weakref.WeakKeyDictionary()
)


# -- the guest run (one per loop) -----------------------------------------------------


class _GuestRun:
    """Trio running as a guest of one asyncio loop, for the clients opened on it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.users = 0
        self.token: trio.lowlevel.TrioToken | None = None
        self.nursery: trio.Nursery | None = None
        self.stopping = False
        self._stop: trio.Event | None = None
        self.ready: asyncio.Future[None] = loop.create_future()
        self.finished: asyncio.Future[None] = loop.create_future()

    def start(self) -> None:
        trio.lowlevel.start_guest_run(
            self._main,
            run_sync_soon_threadsafe=self.loop.call_soon_threadsafe,
            run_sync_soon_not_threadsafe=self.loop.call_soon,
            done_callback=self._done,
            host_uses_signal_set_wakeup_fd=True,
        )

    async def _main(self) -> None:
        self._stop = trio.Event()
        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            self.token = trio.lowlevel.current_trio_token()
            _settle(self.ready, None, None)
            await self._stop.wait()
            nursery.cancel_scope.cancel()

    def _done(self, outcome: Any) -> None:
        self.token = None
        self.nursery = None
        if _hosts.get(self.loop) is self:
            del _hosts[self.loop]
        error: BaseException | None = None
        try:
            outcome.unwrap()
        except BaseException as exc:
            error = exc
        # What the asyncio side sees: an interrupt is re-raised below, not stored.
        settled = error if error is None or isinstance(error, Exception) else closed_error()
        _settle(self.ready, settled or closed_error(), None)
        _settle(self.finished, settled, None)
        if isinstance(error, KeyboardInterrupt | SystemExit):
            raise error  # a Ctrl-C that reached Trio stops the loop, as in asyncio

    def submit(self, fn: Callable[..., object], *args: Any) -> None:
        """Run ``fn(*args)`` on the Trio side (soon, in order)."""
        token = self.token
        if token is None:
            raise closed_error()
        try:
            token.run_sync_soon(fn, *args)
        except trio.RunFinishedError:
            raise closed_error() from None

    def stop(self) -> None:
        self.stopping = True
        if _hosts.get(self.loop) is self:
            del _hosts[self.loop]
        if self._stop is not None and self.token is not None:
            self.submit(self._stop.set)


async def _join() -> _GuestRun:
    loop = asyncio.get_running_loop()
    host = _hosts.get(loop)
    fresh = host is None or host.stopping
    if host is None or host.stopping:
        host = _GuestRun(loop)
        _hosts[loop] = host
    host.users += 1
    try:
        if fresh:
            host.start()
        await _uncancellable(host.ready)
    except BaseException:
        await _leave(host)
        raise
    return host


async def _leave(host: _GuestRun) -> None:
    host.users -= 1
    if host.users == 0:
        host.stop()
        await _uncancellable(host.finished)


def _settle(future: asyncio.Future[Any], error: BaseException | None, value: Any) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


async def _uncancellable(future: asyncio.Future[T]) -> T:
    """Wait for ``future`` whatever happens; re-raise a cancellation afterwards."""
    cancelled = False
    while not future.done():
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError:
            if not future.done():
                cancelled = True
    if cancelled:
        future.exception()  # retrieved: a failure must not be reported as unhandled
        raise asyncio.CancelledError
    return future.result()


# -- one client's Trio side -----------------------------------------------------------


class _Portal:
    """The asyncio side's handle on one Trio client: runs its operations."""

    def __init__(self, host: _GuestRun) -> None:
        self.host = host
        self.loop = host.loop
        self.client: _client.Client | None = None
        self.calls: trio.Nursery | None = None
        self.scope: trio.CancelScope | None = None
        self.close_requested: trio.Event | None = None
        self.opened: asyncio.Future[None] = self.loop.create_future()
        self.ended: asyncio.Future[None] = self.loop.create_future()
        self.owner: asyncio.Task[Any] | None = None
        self.failure: BaseException | None = None
        self.closing = False

    # Trio side ------------------------------------------------------------------------

    async def _run(self, config: ClientConfig, engine: EventEngine | None) -> None:
        error: BaseException | None = None
        try:
            with trio.CancelScope() as scope:
                self.scope = scope
                self.close_requested = trio.Event()
                async with (
                    _client.open_client(config, engine) as client,
                    trio.open_nursery() as calls,
                ):
                    self.client = client
                    self.calls = calls
                    _settle(self.opened, None, None)
                    await self.close_requested.wait()
                    calls.cancel_scope.cancel()
        except trio.Cancelled:
            error = closed_error()
            raise
        except Exception as exc:
            error = exc
        finally:
            self.calls = None
            if error is None and not self.opened.done():
                error = closed_error()
            if not self.opened.done():
                _settle(self.opened, error, None)
            else:
                self._ended(error)

    def _ended(self, error: BaseException | None) -> None:
        if error is not None and not self.closing:
            # The client failed under the asyncio block: cancel it, as Trio would.
            self.failure = error
            if self.owner is not None and not self.owner.done():
                self.owner.cancel()
        _settle(self.ended, error, None)

    def _start(self, operation: Operation, session: Session | None = None) -> None:
        start(self.calls, operation, session)

    def _close(self) -> None:
        if self.close_requested is not None:
            self.close_requested.set()

    def _cancel_open(self) -> None:
        if self.scope is not None:
            self.scope.cancel()

    # asyncio side ---------------------------------------------------------------------

    async def start(self, config: ClientConfig, engine: EventEngine | None) -> None:
        self.host.submit(self._nursery_start, config, engine)
        try:
            await asyncio.shield(self.opened)
        except asyncio.CancelledError:
            if not self.opened.done():
                self.host.submit(self._cancel_open)
                await _uncancellable(self.opened)
            raise

    def _nursery_start(self, config: ClientConfig, engine: EventEngine | None) -> None:
        assert self.host.nursery is not None
        self.host.nursery.start_soon(self._run, config, engine, name="hbtrio.aio client")

    async def close(self) -> None:
        self.closing = True
        if not self.ended.done():
            with contextlib.suppress(ConnectionFailed):
                self.host.submit(self._close)
        await _uncancellable(self.ended)

    async def call(
        self,
        fn: Callable[[], Awaitable[T]],
        session: Session | None = None,
        *,
        first: bool = False,
    ) -> T:
        future: asyncio.Future[T] = self.loop.create_future()
        waiter: list[asyncio.Future[None]] = []

        def settle(error: BaseException | None, value: Any) -> None:
            _settle(future, error, value)
            for w in waiter:
                _settle(w, None, None)

        operation = Operation(fn, settle)
        submit(self._start, self.host.submit, operation, session, first)
        return await self._wait(operation, future, waiter)

    async def _wait(
        self,
        operation: Operation,
        future: asyncio.Future[T],
        waiter: list[asyncio.Future[None]],
    ) -> T:
        try:
            return await future
        except asyncio.CancelledError:
            if operation.ended:
                if future.done() and not future.cancelled():
                    future.exception()
                raise
            ended: asyncio.Future[None] = self.loop.create_future()
            waiter.append(ended)
            try:
                self.host.submit(operation.cancel)
            except ConnectionFailed:
                raise asyncio.CancelledError from None
            await _uncancellable(ended)
            raise

    async def session_leave(self, session: Session, exc: BaseException | None) -> bool:
        future: asyncio.Future[bool] = self.loop.create_future()
        operation = Operation(_never, lambda error, value: _settle(future, error, value))
        try:
            self.host.submit(session.leave, operation, exc)
        except ConnectionFailed:
            return False
        return await _uncancellable(future)


async def _never() -> Any:  # pragma: no cover - a placeholder never run
    raise AssertionError("not run")


# -- adapting what the Trio client returns --------------------------------------------


def _adapt(portal: _Portal, value: Any) -> Any:
    kind = kind_of(value)
    if kind == "context":
        return _AsyncStream(portal, value)
    if kind == "iterator":
        return _AsyncIterator(portal, Session(value), value, running=False)
    if kind == "coroutine":
        coro = value

        async def run() -> Any:
            return await coro

        return portal.call(run)
    if is_plain(value):
        return value
    return _Proxy(portal, value)


def _wrap_callable(portal: _Portal, fn: Callable[..., Any]) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        def method(*args: Any, **kwargs: Any) -> Awaitable[Any]:
            return portal.call(functools.partial(fn, *args, **kwargs))

        return method

    @functools.wraps(fn)
    def other(*args: Any, **kwargs: Any) -> Any:
        return _adapt(portal, fn(*args, **kwargs))

    return other


class _Proxy:
    """An object of the Trio client (a namespace of methods), seen from asyncio."""

    def __init__(self, portal: _Portal, target: Any) -> None:
        self._portal = portal
        self._target = target

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        value = getattr(self._target, name)
        if callable(value) and not isinstance(value, type):
            wrapped = _wrap_callable(self._portal, value)
            if not isinstance(inspect.getattr_static(type(self._target), name, None), property):
                self.__dict__[name] = wrapped
            return wrapped
        return _adapt(self._portal, value)

    def __repr__(self) -> str:
        return f"<hbtrio.aio proxy of {self._target!r}>"


class _AsyncIterator(Generic[T]):
    """An async iterator of the Trio client, driven from asyncio (one Trio task).

    Either what a stream yielded (its session already runs), or an iterator of its
    own (``iter_order_history``): its session starts with the first step.
    """

    def __init__(self, portal: _Portal, session: Session, target: Any, *, running: bool) -> None:
        self._portal = portal
        self._session = session
        self._target = target
        self._running = running
        self._own = not running

    def __aiter__(self) -> _AsyncIterator[T]:
        return self

    async def __anext__(self) -> T:
        target = self._target

        async def step() -> T:
            return await target.__anext__()  # type: ignore[no-any-return]

        first = not self._running
        self._running = True
        return await self._portal.call(step, self._session, first=first)

    async def aclose(self) -> None:
        """Close the iterator (its Trio side ends; a stream's iterator ends with it)."""
        if self._own and self._running:
            await self._portal.session_leave(self._session, None)


class _AsyncStream(Generic[T]):
    """An async context manager of the Trio client (a stream), used from asyncio."""

    def __init__(self, portal: _Portal, target: AbstractAsyncContextManager[Any]) -> None:
        self._portal = portal
        self._session = Session(target)
        self._entered = False

    async def __aenter__(self) -> Any:
        if self._entered:
            raise RuntimeError("this stream was already entered")
        self._entered = True
        value = await self._portal.call(self._session.enter(), self._session, first=True)
        if kind_of(value) == "iterator":
            return _AsyncIterator(self._portal, self._session, value, running=True)
        return _adapt(self._portal, value)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        return await self._portal.session_leave(self._session, exc)


# -- the public client ----------------------------------------------------------------


class AsyncEventEngine(EngineView):
    """An ``EventEngine`` used from asyncio: subscriptions and publishing.

    ``subscribe`` has the engine's signature and delivery policy (conflation of
    market data, cut-off with ``SubscriptionError`` for order events); the
    subscription is an asyncio async iterator. ``add_handler`` is not offered:
    handlers run as Trio tasks; consume a subscription instead.

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
    ) -> AbstractAsyncContextManager[AsyncIterator[E]]: ...

    @overload
    def subscribe(
        self,
        *types: type[Event],
        buffer: int = ...,
        grace: float | None = ...,
        overflow: int | None = ...,
        name: str | None = ...,
    ) -> AbstractAsyncContextManager[AsyncIterator[Event]]: ...

    def subscribe(
        self,
        *types: type[Event],
        buffer: int = 1000,
        grace: float | None = None,
        overflow: int | None = None,
        name: str | None = None,
    ) -> AbstractAsyncContextManager[AsyncIterator[Any]]:
        """Subscribe to events of some types (see ``EventEngine.subscribe``).

        Args:
            *types: Event classes to receive (subclasses included); none: all.
            buffer: Events buffered for this subscriber (``>= 1``).
            grace: Seconds its buffer may stay full of events that cannot be
                conflated before it is cut off (default: the engine's).
            overflow: Events it may hold beyond ``buffer`` meanwhile.
            name: Name in error messages.

        Returns:
            An async context manager yielding an async iterator of events.
        """
        cm = self._engine.subscribe(
            *types, buffer=buffer, grace=grace, overflow=overflow, name=name
        )
        return _AsyncStream(self._portal, cm)

    async def publish(self, event: Event) -> None:
        """Publish an event to every matching subscriber (on the Trio side).

        Args:
            event: The event.

        Raises:
            InputValidationError: ``event`` is not an ``Event``.
        """
        await self._portal.call(self._publisher(event))


class AsyncClient(_ClientBase):
    """A connected client for asyncio code (obtain one from ``hbtrio.aio.open_client``).

    It offers every method, stream and property of ``hbtrio.Client`` (and is typed
    as one): a coroutine method is awaited the same way, with the same arguments,
    results, exceptions and time bounds; ``subscribe_*`` and ``events()`` are async
    context managers yielding async iterators; ``iter_order_history`` is an async
    iterator. Methods the Trio client gains are available here at once: the client
    forwards by name.

    Args:
        portal: The client's Trio side (internal).

    Attributes:
        engine: The event engine, as an ``AsyncEventEngine``.
    """

    # The Trio client's engine, seen from asyncio (``await engine.publish(...)``).
    engine: AsyncEventEngine  # type: ignore[assignment]

    def __init__(self, portal: _Portal) -> None:
        assert portal.client is not None
        self.__dict__["_portal"] = portal
        self.__dict__["engine"] = AsyncEventEngine(portal, portal.client.engine)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        portal: _Portal = self.__dict__["_portal"]
        client = portal.client
        assert client is not None
        value = getattr(client, name)
        if callable(value) and not isinstance(value, type):
            wrapped = _wrap_callable(portal, value)
            self.__dict__[name] = wrapped
            return wrapped
        return _adapt(portal, value)

    def __repr__(self) -> str:
        portal: _Portal = self.__dict__["_portal"]
        return f"<hbtrio.aio.AsyncClient of {portal.client!r}>"


class _OpenClient:
    def __init__(self, config: ClientConfig, engine: EventEngine | None) -> None:
        if not isinstance(config, ClientConfig):
            raise TypeError("config must be a hbtrio.ClientConfig")
        if engine is not None and not isinstance(engine, EventEngine):
            raise TypeError("engine must be a hbtrio.EventEngine")
        self._config = config
        self._engine = engine
        self._portal: _Portal | None = None

    async def __aenter__(self) -> AsyncClient:
        if self._portal is not None:
            raise RuntimeError("this open_client() was already entered")
        host = await _join()
        portal = _Portal(host)
        try:
            await portal.start(self._config, self._engine)
        except BaseException:
            await _leave(host)
            raise
        portal.owner = asyncio.current_task()
        self._portal = portal
        return AsyncClient(portal)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        portal = self._portal
        assert portal is not None, "__aexit__ without __aenter__"
        try:
            try:
                await portal.close()
            except BaseException as error:
                if portal.failure is None:
                    raise
                if error is not portal.failure:
                    raise
        finally:
            await _leave(portal.host)
        failure = portal.failure
        if failure is not None:
            owner = portal.owner
            if isinstance(exc, asyncio.CancelledError) and owner is not None:
                owner.uncancel()
            raise failure
        return False


def open_client(
    config: ClientConfig, engine: EventEngine | None = None
) -> AbstractAsyncContextManager[AsyncClient]:
    """Open a client in an asyncio program: an async context manager.

    Entering starts (or joins) the loop's Trio guest run and opens
    ``hbtrio.open_client(config, engine)`` in it: it returns once the client is
    connected and authenticated, and raises what ``hbtrio.open_client`` raises.
    Leaving closes the client (every stream, the WebSocket, the connections) and,
    for the loop's last client, ends the guest run; it waits for both. A failure
    of the client while the block runs cancels the block's task and is raised
    when it leaves, as in Trio.

    Args:
        config: The client configuration.
        engine: The event engine to publish to (default: a new one per client);
            share one between clients to see all their events in one place.

    Returns:
        The async context manager yielding an ``AsyncClient``.

    Raises:
        TypeError: ``config`` is not a ``ClientConfig``, or ``engine`` not an
            ``EventEngine``.
    """
    return _OpenClient(config, engine)
