"""The blocking client's Trio side: a Trio run in a background thread.

``SyncPortal`` owns the thread (``trio.run``), the Trio client and a nursery for
the calls; any thread hands it an operation through ``TrioToken.run_sync_soon``
and blocks on a ``concurrent.futures.Future`` until the operation settles.

A ``KeyboardInterrupt`` (Ctrl-C) while a thread blocks cancels the operation on
the Trio side, waits (at most ``CANCEL_WAIT`` seconds, or until a second Ctrl-C)
for it to end, then propagates: the client stays usable.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from types import TracebackType
from typing import Any, Final, Generic, ParamSpec, TypeVar

import trio

from . import _client
from ._bridge import Operation, Session, closed_error, kind_of, start, submit
from ._config import ClientConfig
from .events import EventEngine

__all__ = ["CANCEL_WAIT", "CLOSE_WAIT", "SyncPortal"]

T = TypeVar("T")
P = ParamSpec("P")

CANCEL_WAIT: Final = 5.0
"""Seconds an interrupted call waits for its Trio side to end before propagating."""
CLOSE_WAIT: Final = 30.0
"""Seconds closing waits for the Trio thread after an interrupt."""


def _wait(future: concurrent.futures.Future[Any], timeout: float | None = None) -> None:
    """Block until ``future`` is done (interruptible by Ctrl-C in the main thread)."""
    future.exception(timeout)


class SyncPortal:
    """The Trio thread of one blocking client.

    Args:
        config: The client configuration.
        engine: The event engine (``None``: a new one).
    """

    def __init__(self, config: ClientConfig, engine: EventEngine | None) -> None:
        self._config = config
        self._engine = engine
        self.client: _client.Client | None = None
        self.token: trio.lowlevel.TrioToken | None = None
        self._calls: trio.Nursery | None = None
        self._scope: trio.CancelScope | None = None
        self._close_requested: trio.Event | None = None
        self._started: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._ended: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._token_ready = threading.Event()
        self.failure: BaseException | None = None
        self._closing = False
        self._thread = threading.Thread(target=self._thread_main, name="hbtrio.sync", daemon=True)

    # -- the Trio thread ----------------------------------------------------------------

    def _thread_main(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as exc:  # reported through the futures below
            error: BaseException | None = exc
        else:
            error = None
        finally:
            self.token = None
            self._token_ready.set()
        if not self._started.done():
            self._started.set_exception(error or closed_error())
        if error is not None and not self._closing:
            self.failure = error
        if error is not None:
            self._ended.set_exception(error)
        else:
            self._ended.set_result(None)

    async def _main(self) -> None:
        self.token = trio.lowlevel.current_trio_token()
        self._close_requested = trio.Event()
        with trio.CancelScope() as scope:
            self._scope = scope
            self._token_ready.set()
            async with (
                _client.open_client(self._config, self._engine) as client,
                trio.open_nursery() as calls,
            ):
                self.client = client
                self._calls = calls
                self._started.set_result(None)
                await self._close_requested.wait()
                calls.cancel_scope.cancel()
        self._calls = None

    def _start(self, operation: Operation, session: Session | None = None) -> None:
        start(self._calls, operation, session)

    # -- the calling threads ------------------------------------------------------------

    def _submit(self, fn: Callable[..., object], *args: Any) -> None:
        token = self.token
        if token is None:
            raise closed_error()
        if threading.current_thread() is self._thread:
            raise RuntimeError("a blocking hbtrio call from the client's own Trio thread")
        try:
            token.run_sync_soon(fn, *args)
        except trio.RunFinishedError:
            raise closed_error() from None

    def open(self) -> None:
        """Start the thread and open the client (blocks until connected)."""
        self._thread.start()
        try:
            _wait(self._started)
        except BaseException:  # Ctrl-C while opening
            self._token_ready.wait(CANCEL_WAIT)
            self._abort()
            raise
        self._started.result()

    def _abort(self) -> None:
        """Cancel everything on the Trio side and wait (bounded) for the thread."""
        token, scope = self.token, self._scope
        if token is not None and scope is not None:
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(scope.cancel)
        self._thread.join(CLOSE_WAIT)

    def close(self) -> None:
        """Close the client and end the thread (blocks until both are done)."""
        self._closing = self.failure is None
        event = self._close_requested
        if event is not None and self.token is not None:
            with contextlib.suppress(Exception):  # already ended
                self._submit(event.set)
        try:
            self._thread.join()
        except BaseException:  # Ctrl-C while closing
            self._abort()
            raise
        if self.failure is None:
            self._ended.result()

    def _run(self, operation: Operation, future: concurrent.futures.Future[T]) -> T:
        try:
            _wait(future)
        except BaseException:
            if not future.done():
                try:
                    self._submit(operation.cancel)
                    _wait(future, CANCEL_WAIT)
                except BaseException:  # a second Ctrl-C, or the run is gone: stop waiting
                    pass
            raise
        return future.result()

    def _operation(self, fn: Callable[[], Awaitable[T]]) -> tuple[Operation, Any]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def settle(error: BaseException | None, value: Any) -> None:
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(value)

        return Operation(fn, settle), future

    def run(
        self,
        fn: Callable[[], Awaitable[T]],
        session: Session | None = None,
        *,
        first: bool = False,
    ) -> T:
        """Run an async function on the Trio side and block for its result.

        Args:
            fn: The function: a call in a task of its own, or a step of ``session``.
            session: The session the step belongs to.
            first: Whether the step starts the session (and its task).

        Returns:
            What ``fn`` returns.
        """
        operation, future = self._operation(fn)
        submit(self._start, self._submit, operation, session, first)
        return self._run(operation, future)  # type: ignore[no-any-return]

    def call(self, fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a coroutine method of the Trio client and block for its result.

        Args:
            fn: The method.
            *args: Its positional arguments.
            **kwargs: Its keyword arguments.

        Returns:
            What it returns.
        """

        async def run() -> T:
            return await fn(*args, **kwargs)

        return self.run(run)

    def session_leave(self, session: Session, exc: BaseException | None) -> bool:
        """End a session (exit its context manager) and block until it did.

        Args:
            session: The session.
            exc: The exception leaving the ``with`` block.

        Returns:
            Whether the context manager suppressed ``exc``.
        """

        async def never() -> bool:  # pragma: no cover - leave() builds its own step
            return False

        operation, future = self._operation(never)
        try:
            self._submit(session.leave, operation, exc)
        except Exception:
            return False
        try:
            _wait(future)
        except BaseException:
            with contextlib.suppress(BaseException):  # a second Ctrl-C: stop waiting
                _wait(future, CANCEL_WAIT)
            raise
        return bool(future.result())

    def stream(
        self,
        fn: Callable[P, AbstractAsyncContextManager[AsyncIterator[T]]],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> AbstractContextManager[Iterator[T]]:
        """A stream of the Trio client as a context manager of a blocking iterator.

        Args:
            fn: The stream method (returns an async context manager).
            *args: Its positional arguments.
            **kwargs: Its keyword arguments.

        Returns:
            The context manager.
        """
        return SyncStream(self, fn(*args, **kwargs))

    def iterate(
        self, fn: Callable[P, AsyncIterator[T]], *args: P.args, **kwargs: P.kwargs
    ) -> Iterator[T]:
        """An async iterator of the Trio client as a blocking iterator.

        Args:
            fn: The method (returns an async iterator).
            *args: Its positional arguments.
            **kwargs: Its keyword arguments.

        Returns:
            The iterator.
        """
        target = fn(*args, **kwargs)
        return SyncIterator(self, Session(target), target, running=False)

    def adapt(self, value: Any) -> Any:
        """Wrap what a non-coroutine method of the Trio client returned.

        Args:
            value: The value.

        Returns:
            A blocking stream or iterator, or the value itself.
        """
        kind = kind_of(value)
        if kind == "context":
            return SyncStream(self, value)
        if kind == "iterator":
            return SyncIterator(self, Session(value), value, running=False)
        if kind == "coroutine":
            coro = value

            async def run() -> Any:
                return await coro

            return self.run(run)
        return value


class SyncIterator(Generic[T]):
    """A blocking iterator over an async iterator of the Trio client.

    Every step runs in the one Trio task owning it. Close it (``close()``) to end
    it early; it is closed with its stream, or when the client closes.

    Args:
        portal: The client's Trio side.
        session: The session owning the iterator.
        target: The async iterator.
        running: Whether the session already runs (a stream's iterator).
    """

    def __init__(self, portal: SyncPortal, session: Session, target: Any, *, running: bool) -> None:
        self._portal = portal
        self._session = session
        self._target = target
        self._running = running
        self._own = not running

    def __iter__(self) -> SyncIterator[T]:
        return self

    def __next__(self) -> T:
        target = self._target

        async def step() -> T:
            return await target.__anext__()  # type: ignore[no-any-return]

        first = not self._running
        self._running = True
        try:
            return self._portal.run(step, self._session, first=first)
        except StopAsyncIteration:
            raise StopIteration from None

    def close(self) -> None:
        """End the iteration (its Trio side is closed)."""
        if self._own and self._running:
            self._portal.session_leave(self._session, None)


class SyncStream(Generic[T]):
    """A stream of the Trio client as a context manager yielding a blocking iterator.

    Args:
        portal: The client's Trio side.
        target: The Trio client's async context manager.
    """

    def __init__(self, portal: SyncPortal, target: AbstractAsyncContextManager[Any]) -> None:
        self._portal = portal
        self._session = Session(target)
        self._entered = False

    def __enter__(self) -> Any:
        if self._entered:
            raise RuntimeError("this stream was already entered")
        self._entered = True
        value = self._portal.run(self._session.enter(), self._session, first=True)
        if kind_of(value) == "iterator":
            return SyncIterator(self._portal, self._session, value, running=True)
        return self._portal.adapt(value)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        return self._portal.session_leave(self._session, exc)
