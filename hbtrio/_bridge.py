"""Running the Trio client's operations on behalf of code outside Trio.

Shared by ``hbtrio.aio`` (Trio as a guest on an asyncio loop) and ``hbtrio.sync``
(Trio in a background thread). The foreign side builds an ``Operation``, hands it to
the Trio side with ``TrioToken.run_sync_soon`` (the one way into a Trio run from
outside it; thread-safe) and learns its outcome through the ``settle`` callback the
operation calls once, on the Trio side. Cancelling an operation is asked the same
way (``run_sync_soon(operation.cancel)``).

An operation runs either in a task of its own (a request method), or inside a
``Session``: one Trio task that owns a context manager (a stream subscription)
or an async iterator from entry to exit, so that every step of it (enter, each
``__anext__``, exit) runs in the same Trio task, as it would in a Trio program.
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from ._errors import ConnectionFailed, InputValidationError
from .events import EngineStats, Event, EventEngine

logger = logging.getLogger("hbtrio")

__all__ = [
    "EngineView",
    "Operation",
    "Session",
    "closed_error",
    "is_plain",
    "kind_of",
    "start",
    "submit",
]

#: Settle callback: ``(error, value)``; ``error`` is ``None`` on success.
Settle = Callable[[BaseException | None, Any], None]


def closed_error() -> ConnectionFailed:
    """The error of an operation cut short because its client closed.

    Returns:
        A new ``ConnectionFailed``.
    """
    return ConnectionFailed("the client is closed")


class Operation:
    """One call of the Trio client, run on the Trio side.

    Args:
        fn: Returns the awaitable to run (called on the Trio side).
        settle: Called once with ``(error, value)`` when it ends. A cancelled or
            cut-short operation settles with ``closed_error()`` (the foreign
            side knows whether it asked for the cancellation).
    """

    __slots__ = ("_fn", "_scope", "_settle", "cancelled", "ended")

    def __init__(self, fn: Callable[[], Awaitable[Any]], settle: Settle) -> None:
        self._fn = fn
        self._settle = settle
        self._scope: trio.CancelScope | None = None
        self.cancelled = False
        """Whether cancellation was asked for."""
        self.ended = False
        """Whether ``settle`` was called."""

    def finish(self, error: BaseException | None, value: Any = None) -> None:
        """Settle the operation (once; later calls are ignored).

        Args:
            error: The failure, or ``None``.
            value: The result.
        """
        if not self.ended:
            self.ended = True
            self._settle(error, value)

    def cancel(self) -> None:
        """Cancel the operation (call on the Trio side)."""
        self.cancelled = True
        if self._scope is not None:
            self._scope.cancel()

    async def run(self) -> None:
        """Run it to its end and settle (never raises but ``trio.Cancelled``)."""
        try:
            with trio.CancelScope() as scope:
                self._scope = scope
                if self.cancelled:
                    scope.cancel()
                try:
                    value = await self._fn()
                except trio.Cancelled:
                    raise
                except Exception as exc:
                    self.finish(exc)
                else:
                    self.finish(None, value)
        finally:
            self._scope = None
            self.finish(closed_error())


class Session:
    """A Trio task owning one context manager or async iterator.

    Operations submitted with ``submit`` run one after the other in that task:
    ``enter`` (the context manager's ``__aenter__``), then any step (an
    ``__anext__`` of what it yielded), then ``leave`` (``__aexit__``, or the
    iterator's ``aclose``), all in the same task. When the client closes, the task
    is cancelled: what was entered is exited there, with the cancellation, and
    operations still queued settle with ``closed_error()``.

    Args:
        target: An async context manager, or an async iterator.
    """

    def __init__(self, target: Any) -> None:
        self._target = target
        self._send, self._receive = trio.open_memory_channel[Operation | None](math.inf)
        self._is_context = kind_of(target) == "context"
        self._open = not self._is_context  # an iterator is "entered" from the start
        self.closed = False
        """Whether the session ended (or was told to)."""

    def submit(self, operation: Operation) -> None:
        """Queue an operation (call on the Trio side).

        Args:
            operation: The operation; it settles with ``closed_error()`` at once if
                the session has ended (``StopAsyncIteration`` for an iterator's step).
        """
        if self.closed:
            operation.finish(closed_error() if self._is_context else StopAsyncIteration())
            return
        self._send.send_nowait(operation)

    def enter(self) -> Callable[[], Awaitable[Any]]:
        """The function of the first operation: enter the context manager.

        Returns:
            An async function returning what ``__aenter__`` returns.
        """

        async def enter_() -> Any:
            value = await self._target.__aenter__()
            self._open = True
            return value

        return enter_

    def leave(self, operation: Operation, exc: BaseException | None) -> None:
        """End the session: exit the context manager (or close the iterator).

        Call on the Trio side.

        Args:
            operation: Settles with the exit's outcome (``True`` when the context
                manager suppressed ``exc``).
            exc: The exception leaving the foreign ``with`` block; passed to
                ``__aexit__`` when it is an ``Exception`` (a foreign cancellation
                or interrupt is not the Trio side's business).
        """
        if self.closed:
            operation.finish(None, False)
            return
        self.closed = True
        info: tuple[Any, Any, Any] = (None, None, None)
        if isinstance(exc, Exception):
            info = (type(exc), exc, exc.__traceback__)

        async def exit_() -> bool:
            return await self._exit(*info)

        self._send.send_nowait(Operation(exit_, operation.finish))
        self._send.send_nowait(None)

    async def _exit(self, *info: Any) -> bool:
        if not self._open:
            return False
        self._open = False
        if self._is_context:
            return bool(await self._target.__aexit__(*info))
        aclose = getattr(self._target, "aclose", None)
        if aclose is not None:
            await aclose()
        return False

    async def run(self) -> None:
        """Serve operations until ``leave``; exit what was entered if cut short."""
        try:
            while (operation := await self._receive.receive()) is not None:
                await operation.run()
        except BaseException as exc:
            self._stop()
            try:
                suppressed = await self._exit(type(exc), exc, exc.__traceback__)
            except Exception:  # the exit failed on the way out: nobody waits for it
                logger.exception("hbtrio: closing a stream failed")
                raise exc from None
            if not suppressed:
                raise
        finally:
            self._stop()

    def _stop(self) -> None:
        self.closed = True
        self._send.close()
        while True:
            try:
                operation = self._receive.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                break
            if operation is not None:
                operation.finish(closed_error())


def start(
    nursery: trio.Nursery | None, operation: Operation, session: Session | None = None
) -> None:
    """Start an operation on the Trio side (call it there).

    Args:
        nursery: The client's nursery for calls (``None`` once it closed).
        operation: Runs in a task of its own, or as the first step of ``session``.
        session: A session to start, in a task of its own, with ``operation``.
    """
    if nursery is None:
        operation.finish(closed_error())
        return
    try:
        nursery.start_soon(operation.run if session is None else session.run)
    except RuntimeError:  # the nursery closed meanwhile
        operation.finish(closed_error())
        return
    if session is not None:
        session.submit(operation)


def submit(
    start_: Callable[..., None],
    send: Callable[..., None],
    operation: Operation,
    session: Session | None,
    first: bool,
) -> None:
    """Hand an operation to the Trio side: a call, a session's first step, or a step.

    Args:
        start_: The portal's starter (``start`` with its nursery), run on the Trio side.
        send: Runs a function on the Trio side (``TrioToken.run_sync_soon``, checked).
        operation: The operation.
        session: Its session, if any.
        first: Whether it starts the session.
    """
    if session is None:
        send(start_, operation)
    elif first:
        send(start_, operation, session)
    else:
        send(session.submit, operation)


class EngineView:
    """What the asyncio and blocking views of an ``EventEngine`` share.

    Args:
        portal: The client's Trio side.
        engine: The engine.
    """

    def __init__(self, portal: Any, engine: EventEngine) -> None:
        self._portal = portal
        self._engine = engine

    def _publisher(self, event: Event) -> Callable[[], Awaitable[None]]:
        """The step publishing ``event`` on the Trio side (checked here, at once)."""
        if not isinstance(event, Event):
            raise InputValidationError("event", "must be an hbtrio Event")
        engine = self._engine

        async def publish() -> None:
            engine.publish(event)

        return publish

    @property
    def stats(self) -> EngineStats:
        """A snapshot of the engine's counters."""
        return self._engine.stats

    @property
    def subscriber_count(self) -> int:
        """Number of open subscriptions."""
        return self._engine.subscriber_count


def kind_of(value: object) -> str:
    """How a foreign adapter must wrap a value returned by the Trio client.

    Args:
        value: The value.

    Returns:
        ``"coroutine"``, ``"context"`` (an async context manager), ``"iterator"``
        (an async iterator) or ``"value"`` (anything else, passed through).
    """
    if inspect.iscoroutine(value):
        return "coroutine"
    if hasattr(value, "__aenter__") and hasattr(value, "__aexit__"):
        return "context"
    if hasattr(value, "__anext__"):
        return "iterator"
    return "value"


def is_plain(value: object) -> bool:
    """Whether a value needs no wrapping: data, not an object with Trio methods.

    Args:
        value: An attribute of the Trio client (or of an object it holds).

    Returns:
        ``True`` for anything not defined by hbtrio, and for hbtrio's data types
        (msgspec Structs, enums, exceptions, the configuration).
    """
    import enum

    import msgspec

    module = type(value).__module__ or ""
    if not module.startswith("hbtrio"):
        return True
    return isinstance(value, msgspec.Struct | enum.Enum | BaseException)
