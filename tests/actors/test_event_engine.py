"""EventEngine: delivery policy, handlers, lifecycle (autojump_clock, no sleeps for timing)."""

from __future__ import annotations

import time
from decimal import Decimal

import anyio
import pytest
import trio
import trio.lowlevel
import trio.testing

import hbtrio
from hbtrio import InputValidationError, SubscriptionError
from hbtrio.events import (
    CandleUpdate,
    ConnectionStateChanged,
    ErrorEvent,
    Event,
    EventEngine,
    MarketTrades,
    OrderBookUpdate,
    OrderUpdate,
    TickerUpdate,
)
from hbtrio.models import (
    Candle,
    ConnectionState,
    Level,
    MarketTrade,
    Order,
    OrderBook,
    OrderStatus,
    OrderType,
    Side,
    Ticker,
)

D1 = Decimal(1)


def order_event(i: int) -> OrderUpdate:
    order = Order(
        order_id=f"o{i}",
        account="master_account",
        exchange="binance",
        market="BTC-USDT",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        amount=Decimal("1"),
        price=Decimal("100"),
        status=OrderStatus.OPEN,
    )
    return OrderUpdate(order=order, timestamp=float(i))


def book_event(market: str, ts: float) -> OrderBookUpdate:
    book = OrderBook(
        exchange="binance",
        market=market,
        bids=(Level(Decimal("99"), Decimal("1")),),
        asks=(Level(Decimal("101"), Decimal("1")),),
        timestamp=ts,
    )
    return OrderBookUpdate(book=book, timestamp=ts)


def ticker_event(ts: float) -> TickerUpdate:
    one = Decimal(1)
    ticker = Ticker(
        exchange="binance", market="ETH-USDT", bid=one, ask=one, last=one, volume=one, timestamp=ts
    )
    return TickerUpdate(ticker=ticker, timestamp=ts)


def conn_event() -> ConnectionStateChanged:
    return ConnectionStateChanged(old=ConnectionState.CONNECTING, new=ConnectionState.CONNECTED)


def test_exported_from_package() -> None:
    assert hbtrio.EventEngine is EventEngine
    assert "EventEngine" in hbtrio.__all__


async def test_type_filtering_and_all() -> None:
    engine = EventEngine()
    async with (
        engine.subscribe(OrderUpdate) as orders,
        engine.subscribe(OrderBookUpdate, ConnectionStateChanged) as mixed,
        engine.subscribe() as everything,
    ):
        candle = Candle(timestamp=0.0, open=D1, high=D1, low=D1, close=D1, volume=D1)
        engine.publish(CandleUpdate(exchange="x", market="A-B", interval="1m", candle=candle))
        events: list[Event] = [order_event(1), book_event("BTC-USDT", 1.0), conn_event()]
        for event in events:
            engine.publish(event)
        assert orders.pending == 1
        assert await orders.__anext__() == events[0]
        assert [await mixed.__anext__(), await mixed.__anext__()] == events[1:]
        assert everything.receive_nowait().key == ("candles:1m", "x", "A-B")
        assert [everything.receive_nowait() for _ in range(3)] == events
        with pytest.raises(trio.WouldBlock):
            everything.receive_nowait()
        assert everything.delivered == 4
    stats = engine.stats
    assert stats.published == {
        "CandleUpdate": 1,
        "OrderUpdate": 1,
        "OrderBookUpdate": 1,
        "ConnectionStateChanged": 1,
    }
    assert stats.subscribers == 0


async def test_leaving_context_unsubscribes() -> None:
    engine = EventEngine()
    async with engine.subscribe(OrderUpdate) as sub:
        assert engine.subscriber_count == 1
        assert not sub.closed
        engine.publish(order_event(1))
    assert engine.subscriber_count == 0
    assert sub.closed
    engine.publish(order_event(2))  # no subscriber: still fine
    assert sub.pending == 0
    with pytest.raises(trio.EndOfChannel):
        sub.receive_nowait()
    with pytest.raises(StopAsyncIteration):
        await sub.__anext__()


async def test_iterator_waits_and_ends_when_closed(autojump_clock: trio.testing.MockClock) -> None:
    engine = EventEngine()
    received: list[Event] = []
    async with (
        trio.open_nursery() as nursery,
        engine.subscribe(OrderUpdate, name="reader") as sub,
    ):
        assert "reader" in repr(sub)

        async def reader() -> None:
            async for event in sub:
                received.append(event)

        nursery.start_soon(reader)
        await trio.sleep(1)
        engine.publish(order_event(1))
        await trio.sleep(1)
        engine.publish(order_event(2))
        await trio.sleep(1)
        assert [e.order.order_id for e in received if isinstance(e, OrderUpdate)] == ["o1", "o2"]
        # leaving the block wakes the reader, which ends its loop
    assert len(received) == 2


async def test_slow_subscriber_conflates_market_data_per_key() -> None:
    engine = EventEngine()
    async with (
        engine.subscribe(OrderBookUpdate, TickerUpdate, buffer=2) as slow,
        engine.subscribe(OrderBookUpdate, buffer=100) as fast,
    ):
        engine.publish(book_event("BTC-USDT", 1))
        engine.publish(book_event("ETH-USDT", 2))
        # buffer full: later events replace the buffered one of the same key
        for ts in range(3, 10):
            engine.publish(book_event("BTC-USDT", ts))
        engine.publish(book_event("ETH-USDT", 10))
        engine.publish(ticker_event(11))  # a new key still gets its slot
        engine.publish(ticker_event(12))
        got = [slow.receive_nowait() for _ in range(slow.pending)]
        assert [e.timestamp for e in got] == [9, 10, 12]
        assert slow.conflated == {"OrderBookUpdate": 8, "TickerUpdate": 1}
        assert fast.pending == 10 and fast.conflated == {}
        # caught up: nothing conflated any more
        engine.publish(book_event("BTC-USDT", 13))
        engine.publish(book_event("BTC-USDT", 14))
        assert [slow.receive_nowait().timestamp for _ in range(2)] == [13, 14]
    assert engine.stats.conflated == {"OrderBookUpdate": 8, "TickerUpdate": 1}
    assert engine.stats.cut_off == 0


async def test_market_trades_conflation_counted() -> None:
    engine = EventEngine()
    trade = MarketTrade(
        exchange="x",
        market="A-B",
        side=Side.SELL,
        amount=Decimal(1),
        price=Decimal(2),
        timestamp=0.0,
    )
    async with engine.subscribe(MarketTrades, buffer=1) as sub:
        for i in range(5):
            engine.publish(MarketTrades(exchange="x", market="A-B", trades=(trade,), timestamp=i))
        assert sub.pending == 1
        assert sub.receive_nowait().timestamp == 4
        assert sub.conflated == {"MarketTrades": 4}


async def test_stuck_order_subscriber_cut_off_after_grace(
    autojump_clock: trio.testing.MockClock,
) -> None:
    engine = EventEngine(grace=1.0)
    async with (
        engine.subscribe(OrderUpdate, buffer=3, name="stuck") as stuck,
        engine.subscribe(OrderUpdate, ErrorEvent, buffer=100) as healthy,
    ):
        for i in range(4):  # the 4th finds the buffer full: grace starts
            engine.publish(order_event(i))
        assert stuck.pending == 4 and not stuck.closed
        await trio.sleep(0.5)
        engine.publish(order_event(4))  # within grace: still kept
        assert stuck.pending == 5 and not stuck.closed
        await trio.sleep(0.6)
        engine.publish(order_event(5))  # full for 1.1 s > grace: cut off
        assert stuck.closed
        engine.publish(order_event(6))
        # the stuck one delivers what it had, then raises
        delivered = []
        with pytest.raises(SubscriptionError, match="fell behind"):
            async for event in stuck:
                delivered.append(event.order.order_id)
        assert delivered == ["o0", "o1", "o2", "o3", "o4"]
        # the healthy one got every order event and an ErrorEvent about the cut-off
        got = [healthy.receive_nowait() for _ in range(healthy.pending)]
        orders = [e.order.order_id for e in got if isinstance(e, OrderUpdate)]
        assert orders == [f"o{i}" for i in range(7)]
        errors = [e for e in got if isinstance(e, ErrorEvent)]
        assert len(errors) == 1 and "stuck" in errors[0].error
        assert errors[0].kind == "SubscriptionError"
    assert engine.stats.cut_off == 1


async def test_consumer_catching_up_resets_grace(autojump_clock: trio.testing.MockClock) -> None:
    engine = EventEngine(grace=1.0)
    async with engine.subscribe(OrderUpdate, buffer=2) as sub:
        for i in range(3):
            engine.publish(order_event(i))
        await trio.sleep(0.9)
        sub.receive_nowait()
        sub.receive_nowait()  # below the buffer again
        engine.publish(order_event(3))
        await trio.sleep(0.9)
        engine.publish(order_event(4))  # full again, a fresh grace period
        await trio.sleep(0.9)
        engine.publish(order_event(5))
        assert not sub.closed and sub.pending == 4


async def test_overflow_limit_cuts_off_without_waiting() -> None:
    engine = EventEngine(grace=100.0, overflow=2)
    async with engine.subscribe(ConnectionStateChanged, buffer=2) as sub:
        for _ in range(4):
            engine.publish(conn_event())
        assert not sub.closed and sub.pending == 4
        engine.publish(conn_event())
        assert (sub.closed, sub.pending) == (True, 4)
        for _ in range(4):
            sub.receive_nowait()
        with pytest.raises(SubscriptionError):
            sub.receive_nowait()


async def test_publish_outside_trio_uses_monotonic_clock() -> None:
    engine = EventEngine(grace=0.0, overflow=10)

    def publish_in_thread() -> None:
        engine.publish(order_event(1))

    async with engine.subscribe(OrderUpdate, buffer=1) as sub:
        engine.publish(order_event(0))
        await trio.to_thread.run_sync(publish_in_thread)  # full: grace starts off-Trio
        await trio.to_thread.run_sync(time.sleep, 0.001)
        await trio.to_thread.run_sync(publish_in_thread)  # full for > 0 s: cut off
        assert sub.closed


async def test_failing_handler_reported_and_kept(autojump_clock: trio.testing.MockClock) -> None:
    engine = EventEngine()
    seen: list[str] = []

    def bad(event: OrderUpdate) -> None:
        seen.append(event.order.order_id)
        if event.order.order_id == "o1":
            raise ValueError("boom")

    async def good(event: Event) -> None:
        await trio.lowlevel.checkpoint()
        seen.append(type(event).__name__)

    async with engine.subscribe(ErrorEvent) as errors, engine:
        assert engine.running
        handler = engine.add_handler(bad, OrderUpdate)
        engine.add_handler(good, ErrorEvent, name="good")
        for i in range(3):
            engine.publish(order_event(i))
        await trio.sleep(1)
        assert handler.calls == 3 and handler.errors == 1
        error = errors.receive_nowait()
        assert error.kind == "ValueError"
        assert "boom" in error.error and "bad" in error.error
        assert seen.count("ErrorEvent") == 1
        assert engine.stats.handler_errors == 1
        handler.remove()
        engine.publish(order_event(9))
        await trio.sleep(1)
        assert "o9" not in seen
    assert not engine.running


async def test_handler_failing_on_errors_is_not_fed_its_own(
    autojump_clock: trio.testing.MockClock,
) -> None:
    engine = EventEngine()
    calls: list[Event] = []

    def always_fails(event: Event) -> None:
        calls.append(event)
        raise RuntimeError("nope")

    async with engine.subscribe(ErrorEvent) as errors, engine:
        engine.add_handler(always_fails)  # every type, ErrorEvent included
        engine.publish(conn_event())
        await trio.sleep(1)
        assert len(calls) == 1  # no feedback loop through its own ErrorEvent
        assert errors.pending == 1


async def test_handlers_added_before_run_start_with_run(
    autojump_clock: trio.testing.MockClock,
) -> None:
    engine = EventEngine()
    got: list[Event] = []
    engine.add_handler(got.append, OrderUpdate)
    engine.publish(order_event(1))  # buffered until the engine runs
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        with pytest.raises(RuntimeError, match="already running"):
            await engine.run()
        await trio.sleep(1)
        assert [e.timestamp for e in got] == [1.0]
        nursery.cancel_scope.cancel()
    assert not engine.running


async def test_slow_handler_cut_off_is_reported(autojump_clock: trio.testing.MockClock) -> None:
    engine = EventEngine(grace=0.5)

    async def slow(event: Event) -> None:
        await trio.sleep(10)

    async with engine.subscribe(ErrorEvent) as errors, engine:
        handler = engine.add_handler(slow, OrderUpdate, buffer=1, name="slow")
        engine.publish(order_event(0))
        await trio.sleep(0.1)  # the handler took it and sleeps
        engine.publish(order_event(1))
        engine.publish(order_event(2))  # full: grace starts
        await trio.sleep(1)
        engine.publish(order_event(3))  # cut off
        assert handler.subscription.closed
        await trio.sleep(30)
        assert handler.calls == 3  # o0, then o1 and o2, which were buffered
        assert "slow" in errors.receive_nowait().error
        assert engine.stats.cut_off == 1


async def test_works_from_anyio_on_trio(autojump_clock: trio.testing.MockClock) -> None:
    engine = EventEngine()
    got: list[Event] = []
    async with anyio.create_task_group() as tg:
        await tg.start(engine.run)
        engine.add_handler(got.append)
        async with engine.subscribe(OrderUpdate) as sub:
            engine.publish(order_event(5))
            with anyio.fail_after(1):
                event = await sub.__anext__()
            assert event.timestamp == 5.0
        await anyio.sleep(1)
        tg.cancel_scope.cancel()
    assert got and got[0].timestamp == 5.0


async def test_bad_arguments() -> None:
    engine = EventEngine()
    with pytest.raises(InputValidationError, match="event"):
        engine.publish("not an event")  # type: ignore[arg-type]
    with pytest.raises(InputValidationError, match="buffer"):
        async with engine.subscribe(OrderUpdate, buffer=0):
            pass  # pragma: no cover
    with pytest.raises(InputValidationError, match="types"):
        async with engine.subscribe(int):  # type: ignore[type-var]
            pass  # pragma: no cover
    for bad_grace in (-1, float("nan"), float("inf"), "1", True):
        with pytest.raises(InputValidationError, match="grace"):
            async with engine.subscribe(OrderUpdate, grace=bad_grace):  # type: ignore[arg-type]
                pass  # pragma: no cover
    for bad_overflow in (-1, 1.5, "2"):
        with pytest.raises(InputValidationError, match="overflow"):
            async with engine.subscribe(OrderUpdate, overflow=bad_overflow):  # type: ignore[arg-type]
                pass  # pragma: no cover
    with pytest.raises(InputValidationError, match="callback"):
        engine.add_handler(42)  # type: ignore[arg-type]
    with pytest.raises(InputValidationError, match="grace"):
        EventEngine(grace=-1)
    with pytest.raises(InputValidationError, match="overflow"):
        EventEngine(overflow=-1)
    assert engine.subscriber_count == 0


async def test_cancelled_waiter_loses_nothing(autojump_clock: trio.testing.MockClock) -> None:
    engine = EventEngine()
    async with engine.subscribe(OrderUpdate) as sub:
        with trio.move_on_after(1):
            await sub.__anext__()
        engine.publish(order_event(1))
        assert (await sub.__anext__()).timestamp == 1.0


def test_fan_out_is_cheap() -> None:
    async def main() -> float:
        engine = EventEngine()
        async with (
            engine.subscribe(OrderBookUpdate, buffer=10) as s0,
            engine.subscribe(OrderBookUpdate, buffer=10) as s1,
            engine.subscribe(OrderBookUpdate, buffer=10) as s2,
            engine.subscribe(OrderBookUpdate, buffer=10) as s3,
            engine.subscribe(OrderBookUpdate, buffer=10) as s4,
            engine.subscribe(OrderBookUpdate, buffer=10) as s5,
            engine.subscribe(OrderBookUpdate, buffer=10) as s6,
            engine.subscribe(OrderBookUpdate, buffer=10) as s7,
            engine.subscribe(OrderBookUpdate, buffer=10) as s8,
            engine.subscribe(OrderBookUpdate, buffer=10) as s9,
        ):
            subs = (s0, s1, s2, s3, s4, s5, s6, s7, s8, s9)
            events = [book_event("BTC-USDT", float(i)) for i in range(2000)]
            start = time.perf_counter()
            for event in events:
                engine.publish(event)
            elapsed = (time.perf_counter() - start) / len(events)
            assert all(s.pending == 10 for s in subs)
            return elapsed

    per_event = trio.run(main)
    assert per_event < 200e-6  # generous bound for a loaded CI machine; typically ~5 us
