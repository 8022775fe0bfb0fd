"""The event-publishing actor: order, overflow policy, shutdown (autojump_clock)."""

from __future__ import annotations

import pytest
import trio

from hbtrio import (
    ConnectionState,
    ConnectionStateChanged,
    ErrorEvent,
    Event,
    OrderBook,
    OrderBookUpdate,
)
from hbtrio._actors.publisher import PublisherActor


def book(market: str, n: int) -> OrderBookUpdate:
    return OrderBookUpdate(
        book=OrderBook(exchange="sim", market=market, bids=(), asks=(), timestamp=float(n))
    )


def state(n: int) -> ConnectionStateChanged:
    return ConnectionStateChanged(
        old=ConnectionState.CONNECTING, new=ConnectionState.CONNECTED, timestamp=float(n)
    )


def label(event: Event) -> str:
    if isinstance(event, OrderBookUpdate):
        return f"{event.book.market}{int(event.book.timestamp)}"
    if isinstance(event, ErrorEvent):
        return event.error
    return f"state{int(event.timestamp)}"


async def test_delivers_in_order_from_its_task(autojump_clock: trio.abc.Clock) -> None:
    got: list[Event] = []
    publisher = PublisherActor(got.append, capacity=8)
    async with trio.open_nursery() as nursery:
        await nursery.start(publisher.run)
        for n in range(5):
            publisher.publish_nowait(book("A", n))
        assert got == []  # nothing delivered inline: the actor's task does it
        await publisher.flush()
        assert [label(e) for e in got] == ["A0", "A1", "A2", "A3", "A4"]
        nursery.cancel_scope.cancel()
    assert publisher.stats.delivered == 5
    assert publisher.stats.overflowed == 0


async def test_full_inbox_conflates_market_data_keeps_the_rest_in_order(
    autojump_clock: trio.abc.Clock,
) -> None:
    got: list[Event] = []
    publisher = PublisherActor(got.append, capacity=2)
    async with trio.open_nursery() as nursery:
        await nursery.start(publisher.run)
        # A producer that never yields (like the reader within one frame). The
        # first event goes straight to the waiting task, the next two fill the inbox.
        publisher.publish_nowait(book("A", 0))
        publisher.publish_nowait(state(1))
        publisher.publish_nowait(book("A", 2))
        publisher.publish_nowait(state(3))  # overflow from here on
        publisher.publish_nowait(book("A", 4))
        publisher.publish_nowait(book("B", 5))
        publisher.publish_nowait(book("A", 6))  # replaces A4 in overflow
        publisher.publish_nowait(book("B", 7))  # replaces B5
        publisher.publish_nowait(state(8))
        await publisher.flush()
        nursery.cancel_scope.cancel()
    assert [label(e) for e in got] == ["A0", "state1", "A2", "state3", "A6", "B7", "state8"]
    stats = publisher.stats
    assert (stats.overflowed, stats.conflated, stats.errors_dropped) == (6, 2, 0)


async def test_error_flood_in_overflow_is_capped_and_counted(
    autojump_clock: trio.abc.Clock,
) -> None:
    got: list[Event] = []
    publisher = PublisherActor(got.append, capacity=3)
    async with trio.open_nursery() as nursery:
        await nursery.start(publisher.run)
        for n in range(10):
            publisher.publish_nowait(ErrorEvent(error=f"e{n}"))
        publisher.publish_nowait(state(1))  # never dropped
        await publisher.flush()
        nursery.cancel_scope.cancel()
    # e0 handed to the task, e1-e3 in the inbox, e4-e6 in overflow (capped at 3).
    assert [label(e) for e in got] == ["e0", "e1", "e2", "e3", "e4", "e5", "e6", "state1"]
    assert publisher.stats.errors_dropped == 3


async def test_awaiting_publish_waits_for_room_and_never_overtakes(
    autojump_clock: trio.abc.Clock,
) -> None:
    got: list[Event] = []
    publisher = PublisherActor(got.append, capacity=2)
    async with trio.open_nursery() as nursery:
        await nursery.start(publisher.run)
        for n in range(4):
            publisher.publish_nowait(state(n))  # the last one spills to overflow
        # The awaiting path (the tracker's) queues behind the overflow, not before it.
        for n in range(20):
            await publisher.publish(state(100 + n))
        await publisher.flush()
        nursery.cancel_scope.cancel()
    assert [int(e.timestamp) for e in got] == [0, 1, 2, 3, *range(100, 120)]
    assert publisher.stats.overflowed == 1


async def test_events_are_not_lost_when_it_stops(autojump_clock: trio.abc.Clock) -> None:
    got: list[Event] = []
    publisher = PublisherActor(got.append, capacity=4)
    publisher.publish_nowait(state(0))  # before it runs: delivered directly
    assert len(got) == 1
    async with trio.open_nursery() as nursery:
        await nursery.start(publisher.run)
        for n in range(1, 7):
            publisher.publish_nowait(state(n))
        nursery.cancel_scope.cancel()  # before its task ran: it drains on the way out
    assert [int(e.timestamp) for e in got] == list(range(7))
    publisher.publish_nowait(state(7))  # after it stopped: delivered directly
    await publisher.publish(state(8))
    await publisher.flush()
    assert [int(e.timestamp) for e in got] == list(range(9))


async def test_a_failing_sink_does_not_stop_it(autojump_clock: trio.abc.Clock) -> None:
    got: list[Event] = []

    def sink(event: Event) -> None:
        if isinstance(event, ErrorEvent):
            raise RuntimeError("sink bug")
        got.append(event)

    publisher = PublisherActor(sink)
    async with trio.open_nursery() as nursery:
        await nursery.start(publisher.run)
        publisher.publish_nowait(ErrorEvent(error="x"))
        publisher.publish_nowait(state(1))
        await publisher.flush()
        nursery.cancel_scope.cancel()
    assert [int(e.timestamp) for e in got] == [1]
    assert publisher.stats.sink_errors == 1


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity"):
        PublisherActor(lambda event: None, capacity=0)


async def test_hop_takes_at_most_one_scheduler_pass(autojump_clock: trio.abc.Clock) -> None:
    """An event is delivered within the next scheduler pass (no timer, no batching
    delay): trio may run the producer or the publisher first in that pass, so the
    producer sees it delivered after at most two of its own yields."""
    got: list[Event] = []
    publisher = PublisherActor(got.append)
    async with trio.open_nursery() as nursery:
        await nursery.start(publisher.run)
        start = trio.current_time()
        for n in range(50):
            publisher.publish_nowait(book("A", n))
            await trio.lowlevel.cancel_shielded_checkpoint()
            await trio.lowlevel.cancel_shielded_checkpoint()
            assert len(got) == n + 1
        assert trio.current_time() == start  # no clock time passed at all
        nursery.cancel_scope.cancel()
    assert label(got[-1]) == "A49"
