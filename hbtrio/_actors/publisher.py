"""The event-publishing actor: the one task that calls ``EventEngine.publish``.

Producers hand events to the actor over its bounded inbox (a ``trio`` memory
channel it owns and closes); the actor's task delivers them to the engine, in
order, draining everything queued each time it runs (one scheduler pass per
batch, not per event).

Policy when the inbox is full (which needs more than ``capacity`` events from
producers that do not yield in between):

* ``PublisherActor.publish`` (awaiting; used by the order tracker) waits for
  room: order and fill events are never dropped.
* ``PublisherActor.publish_nowait`` (used by the WebSocket reader, the
  connection state machine and other synchronous producers) never blocks: the
  event goes to an ordered overflow queue that the task flushes right after the
  inbox. There market-data events (a non-``None`` ``key``)
  are conflated to the latest per key, counted in
  ``PublisherStats.conflated``; ``ErrorEvent`` beyond
  ``capacity`` queued in overflow are dropped and counted in
  ``PublisherStats.errors_dropped``; every other event is kept.

Order is preserved: while anything sits in overflow, new events queue behind it.
Before the task runs and after it stopped, events are delivered directly, so
the last state change of a closing client is still published.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import msgspec
import trio

from ..events import (
    ErrorEvent,
    Event,
    _Cell,  # the engine's conflation cell, reused for the overflow
)

__all__ = ["DEFAULT_CAPACITY", "PublisherActor", "PublisherStats"]

DEFAULT_CAPACITY = 1024
"""Events the inbox holds before the overflow policy applies."""


class PublisherStats(msgspec.Struct, frozen=True, kw_only=True):
    """Counters of a ``PublisherActor``.

    Attributes:
        delivered: Events handed to the sink.
        overflowed: Events that found the inbox full and went to overflow.
        conflated: Market-data events replaced in overflow by a newer one.
        errors_dropped: Error events dropped because overflow held too many.
        sink_errors: Exceptions raised by the sink (the actor goes on).
    """

    delivered: int
    overflowed: int
    conflated: int
    errors_dropped: int
    sink_errors: int


class _Barrier:
    """Queued by ``PublisherActor.flush``: set once everything before it is delivered."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = trio.Event()


class PublisherActor:
    """Delivers the client's events to the engine from a task of its own.

    Args:
        sink: Where events go (``EventEngine.publish``); called only by this
            actor's task (or directly while the task is not running).
        capacity: Size of the bounded inbox (``>= 1``).

    Raises:
        ValueError: ``capacity < 1``.
    """

    def __init__(self, sink: Callable[[Event], None], *, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self._sink = sink
        self._capacity = capacity
        self._send, self._receive = trio.open_memory_channel[Event | _Barrier](capacity)
        self._overflow: deque[Event | _Cell] = deque()
        self._latest: dict[tuple[str, str, str], _Cell] = {}
        self._overflow_errors = 0
        self._drained = trio.Event()
        self._running = False
        self._delivered = 0
        self._overflowed = 0
        self._conflated = 0
        self._errors_dropped = 0
        self._sink_errors = 0

    @property
    def stats(self) -> PublisherStats:
        """A snapshot of the counters."""
        return PublisherStats(
            delivered=self._delivered,
            overflowed=self._overflowed,
            conflated=self._conflated,
            errors_dropped=self._errors_dropped,
            sink_errors=self._sink_errors,
        )

    # -- producers --------------------------------------------------------------------

    def publish_nowait(self, event: Event) -> None:
        """Queue an event without ever blocking (see the module's overflow policy).

        Args:
            event: The event.
        """
        if not self._running:
            self._deliver(event)
            return
        if not self._overflow:
            try:
                self._send.send_nowait(event)
                return
            except trio.WouldBlock:
                pass
        self._spill(event)

    async def publish(self, event: Event) -> None:
        """Queue an event, waiting for room in the inbox (never drops it).

        When cancelled, the event was not queued.

        Args:
            event: The event.
        """
        while self._running and self._overflow:
            await self._drained.wait()
        if not self._running:
            self._deliver(event)
            await trio.lowlevel.cancel_shielded_checkpoint()
            return
        try:
            await self._send.send(event)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._deliver(event)  # the task stopped meanwhile (it drained first)

    async def flush(self) -> None:
        """Wait until every event queued so far has been delivered to the sink."""
        while self._running and self._overflow:
            await self._drained.wait()
        if not self._running:
            await trio.lowlevel.checkpoint()
            return
        barrier = _Barrier()
        try:
            await self._send.send(barrier)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return  # stopped meanwhile: it delivered everything on the way out
        await barrier.done.wait()

    def _spill(self, event: Event) -> None:
        self._overflowed += 1
        key = event.key
        if key is not None:
            cell = self._latest.get(key)
            if cell is not None:
                cell.event = event
                self._conflated += 1
                return
            cell = self._latest[key] = _Cell(key, event)
            self._overflow.append(cell)
            return
        if isinstance(event, ErrorEvent):
            if self._overflow_errors >= self._capacity:
                self._errors_dropped += 1
                return
            self._overflow_errors += 1
        self._overflow.append(event)

    # -- the task ---------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Deliver queued events until cancelled; started at once.

        On exit it delivers whatever is still queued, closes its inbox, and
        later events are delivered directly.

        Args:
            task_status: Trio's start protocol.

        Raises:
            RuntimeError: The actor ran before (its inbox is closed).
        """
        if self._running:
            raise RuntimeError("the publisher is already running")
        self._running = True
        receive = self._receive
        try:
            task_status.started()
            while True:
                self._take(await receive.receive())
                self._drain()
        finally:
            self._drain()
            self._running = False
            receive.close()
            self._send.close()

    def _drain(self) -> None:
        receive = self._receive
        while True:
            try:
                item = receive.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                break
            self._take(item)
        overflow = self._overflow
        if not overflow:
            return
        while overflow:
            entry = overflow.popleft()
            if type(entry) is _Cell:
                del self._latest[entry.key]
                self._deliver(entry.event)
            else:
                assert isinstance(entry, Event)
                self._deliver(entry)
        self._overflow_errors = 0
        drained, self._drained = self._drained, trio.Event()
        drained.set()

    def _take(self, item: Event | _Barrier) -> None:
        if type(item) is _Barrier:
            item.done.set()
        else:
            assert isinstance(item, Event)
            self._deliver(item)

    def _deliver(self, event: Event) -> None:
        try:
            self._sink(event)
        except Exception:  # a faulty sink must not stop the client's events
            self._sink_errors += 1
        else:
            self._delivered += 1
