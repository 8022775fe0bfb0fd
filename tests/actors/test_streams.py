"""Streaming supervisor and renewal actor against the fake peer (autojump_clock)."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import pytest
import trio
import trio.lowlevel

from hbtrio import (
    ClientConfig,
    ConnectionState,
    ErrorEvent,
    Event,
    InputValidationError,
    MarketTrades,
    OrderBookUpdate,
    SubscriptionError,
    Ticker,
    TickerUpdate,
)
from hbtrio._actors.streams import StreamingSupervisor
from hbtrio._core.backoff import Backoff
from tests.actors.fake_ws import FakePeer, FakeSession

BOOK_ID = "order_book_sim_BTC-USDT"
TRADES_ID = "trades_sim_BTC-USDT"


def make_config(**kw: Any) -> ClientConfig:
    values: dict[str, Any] = {"host": "127.0.0.1", "port": 8000, "api_key": "u:p"}
    values.update(kw)
    return ClientConfig(**values)


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


def book(n: int, depth: int = 20) -> dict[str, Any]:
    bids = [[str(100 + n - i), "1"] for i in range(depth)]
    asks = [[str(101 + n + i), "2"] for i in range(depth)]
    return {
        "type": "order_book",
        "subscription_id": BOOK_ID,
        "data": {"bids": bids, "asks": asks},
        "timestamp": 1000.0 + n,
    }


def trades(*prices: int, ts: float = 1.0) -> dict[str, Any]:
    data = [{"timestamp": ts, "price": str(p), "amount": "0.5", "side": "buy"} for p in prices]
    return {"type": "trades", "subscription_id": TRADES_ID, "data": data, "timestamp": ts}


@asynccontextmanager
async def running(
    peer: FakePeer, rec: Recorder, config: ClientConfig | None = None, **kw: Any
) -> AsyncIterator[StreamingSupervisor]:
    sup = StreamingSupervisor(config or make_config(), rec, dialer=peer.dialer(), **kw)
    sup.connection._backoff = Backoff(0.1, 2.0, 10.0, rng=random.Random(1))
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        yield sup
        nursery.cancel_scope.cancel()


async def until(predicate: Any, step: float = 0.01, limit: float = 60.0) -> None:
    with trio.fail_after(limit):
        while not predicate():  # noqa: ASYNC110 - polling is exact under autojump_clock
            await trio.sleep(step)


def subscribes(session: FakeSession, sub_id: str | None = None) -> list[dict[str, Any]]:
    out = session.actions("subscribe")
    if sub_id is not None:
        out = [a for a in out if f"{a['type']}_{a['connector']}_{a['trading_pair']}" == sub_id]
    return out


async def test_consumers_share_one_subscription_at_max_depth(
    autojump_clock: trio.abc.Clock,
) -> None:
    peer, rec = FakePeer(), Recorder()
    async with (
        running(peer, rec) as sup,
        sup.subscribe_order_book("sim", "BTC-USDT", depth=5) as shallow,
    ):
        await until(lambda: len(subscribes(peer.current)) == 1)
        assert subscribes(peer.current)[0]["depth"] == 5
        async with sup.subscribe_order_book("sim", "BTC-USDT", depth=20) as deep:
            await until(lambda: len(subscribes(peer.current)) == 2)
            assert subscribes(peer.current)[1]["depth"] == 20  # same id, replaced deeper
            peer.current.push(book(1))
            first_shallow = await shallow.receive()
            first_deep = await deep.receive()
            assert len(first_shallow.bids) == 5 and len(first_shallow.asks) == 5
            assert len(first_deep.bids) == 20
            assert first_deep.bids[0].price == Decimal("101")
            assert first_shallow.exchange == "sim" and first_shallow.market == "BTC-USDT"
        await trio.sleep(1.0)
        assert peer.current.actions("unsubscribe") == []  # one consumer is still there
    await trio.lowlevel.checkpoint()
    assert len(rec.of(OrderBookUpdate)) == 1
    assert len(rec.of(OrderBookUpdate)[0].book.bids) == 20


async def test_last_consumer_leaving_unsubscribes(autojump_clock: trio.abc.Clock) -> None:
    peer, rec = FakePeer(), Recorder()
    async with running(peer, rec) as sup:
        async with sup.subscribe_trades("sim", "BTC-USDT") as stream:
            await until(lambda: len(subscribes(peer.current)) == 1)
            peer.current.push(trades(10, 11))
            got = [await stream.receive(), await stream.receive()]
            assert [t.price for t in got] == [Decimal(10), Decimal(11)]
        await until(lambda: len(peer.current.actions("unsubscribe")) == 1)
        assert peer.current.actions("unsubscribe")[0]["subscription_id"] == TRADES_ID
        assert sup.subscriptions.desired() == {}
        await trio.sleep(1.0)
        assert sup.subscriptions.active() == {}
        # Nothing about the stream is kept once nobody wants it.
        assert sup._sinks == {} and sup._keys == {} and sup.renewal._watched == set()


async def test_resubscribes_after_reconnect_without_user_action(
    autojump_clock: trio.abc.Clock,
) -> None:
    peer, rec = FakePeer(), Recorder()
    async with (
        running(peer, rec) as sup,
        sup.subscribe_order_book("sim", "BTC-USDT", depth=3) as books,
        sup.subscribe_trades("sim", "BTC-USDT") as trade_stream,
    ):
        await until(lambda: len(subscribes(peer.current)) == 2)
        peer.current.push(book(1))
        assert (await books.receive()).timestamp == 1001.0
        peer.current.close(1006)
        await until(lambda: len(peer.sessions) == 2 and len(subscribes(peer.current)) == 2)
        assert sup.state is ConnectionState.CONNECTED
        assert {a["type"] for a in subscribes(peer.current)} == {"order_book", "trades"}
        peer.current.push(book(2))
        peer.current.push(trades(7))
        assert (await books.receive()).timestamp == 1002.0
        assert (await trade_stream.receive()).price == Decimal(7)
    kinds = [e.new for e in rec.events if hasattr(e, "new")]
    assert kinds.count(ConnectionState.CONNECTED) == 2


async def test_stale_stream_is_renewed(autojump_clock: trio.abc.Clock) -> None:
    peer, rec = FakePeer(), Recorder()
    async with (
        running(peer, rec, make_config(heartbeat_timeout=600.0)) as sup,
        sup.subscribe_order_book("sim", "BTC-USDT", update_interval=1.0) as books,
    ):
        await until(lambda: len(subscribes(peer.current)) == 1)
        # Not stale before delivering data, however long it waits.
        await trio.sleep(30.0)
        assert len(subscribes(peer.current)) == 1
        peer.current.push(book(1))
        await books.receive()
        delivered_at = trio.current_time()
        await until(lambda: len(subscribes(peer.current)) == 2)
        # max(5 * 1.0, 2.0) = 5 s of silence after the last data.
        assert trio.current_time() - delivered_at == pytest.approx(5.0, abs=0.05)
        assert sup.renewal.renewed == 1
        assert len(peer.sessions) == 1  # renewed on the same connection
        # Data keeps the renewed stream fresh.
        for n in range(2, 12):
            peer.current.push(book(n))
            await trio.sleep(1.0)
        assert len(subscribes(peer.current)) == 2
    assert any("went silent" in e.error for e in rec.of(ErrorEvent))


async def test_stale_min_two_seconds_for_fast_streams(autojump_clock: trio.abc.Clock) -> None:
    peer, rec = FakePeer(), Recorder()
    async with (
        running(peer, rec) as sup,
        sup.subscribe_trades("sim", "BTC-USDT", update_interval=0.1) as stream,
    ):
        await until(lambda: len(subscribes(peer.current)) == 1)
        peer.current.push(trades(1))
        await stream.receive()
        t0 = trio.current_time()
        await until(lambda: len(subscribes(peer.current)) == 2)
        assert trio.current_time() - t0 == pytest.approx(2.0, abs=0.05)


async def test_slow_subscriber_is_conflated_and_control_traffic_goes_on(
    autojump_clock: trio.abc.Clock,
) -> None:
    peer, rec = FakePeer(), Recorder()
    config = make_config(ping_interval=1.0, timeout=0.5)
    async with (
        running(peer, rec, config) as sup,
        sup.subscribe_order_book("sim", "BTC-USDT") as books,
        sup.subscribe_trades("sim", "BTC-USDT", buffer=10) as trade_stream,
    ):
        await until(lambda: len(subscribes(peer.current)) == 2)
        # The consumer does not read for 30 s while data floods in.
        for n in range(300):
            peer.current.push(book(n))
            peer.current.push(trades(n))
            await trio.sleep(0.1)
        # Pings were sent and answered all along: still the first connection.
        assert len(peer.sessions) == 1
        assert len(peer.current.actions("ping")) >= 25
        latest = await books.receive()
        assert latest.timestamp == 1000.0 + 299  # only the newest snapshot kept
        assert books.dropped == 299
        kept = [await trade_stream.receive() for _ in range(10)]
        assert [t.price for t in kept] == [Decimal(n) for n in range(290, 300)]
        assert trade_stream.dropped == 290
        assert sup.state is ConnectionState.CONNECTED


async def test_refused_subscription_fails_its_consumer_only(
    autojump_clock: trio.abc.Clock,
) -> None:
    peer, rec = FakePeer(), Recorder()

    def refuse_trades(session: FakeSession, action: dict[str, Any]) -> None:
        pass

    peer.auto_ack = False
    async with running(peer, rec) as sup:

        def answer(session: FakeSession, action: dict[str, Any]) -> None:
            if action.get("action") != "subscribe":
                return
            if action["type"] == "trades":
                session.push({"type": "error", "message": "Trading pair not found"})
            else:
                session.push({"type": "subscribed", "subscription_id": BOOK_ID})

        original = peer.on_action
        peer.on_action = lambda s, a: (original(s, a), answer(s, a))  # type: ignore[method-assign]
        async with (
            sup.subscribe_order_book("sim", "BTC-USDT") as books,
            sup.subscribe_trades("sim", "BTC-USDT") as trade_stream,
        ):
            with pytest.raises(SubscriptionError, match="Trading pair not found"):
                await trade_stream.receive()
            refusals = [a for a in subscribes(peer.current) if a["type"] == "trades"]
            assert len(refusals) == 3
            peer.current.push(book(5))
            assert (await books.receive()).timestamp == 1005.0
    errors = [e for e in rec.of(ErrorEvent) if e.kind == "SubscriptionError"]
    assert len(errors) >= 3


async def test_unanswered_subscribe_is_retried(autojump_clock: trio.abc.Clock) -> None:
    peer, rec = FakePeer(), Recorder()
    peer.auto_ack = False
    async with (
        running(peer, rec, make_config(timeout=2.0)) as sup,
        sup.subscribe_trades("sim", "BTC-USDT"),
    ):
        await until(lambda: len(subscribes(peer.current)) == 1)
        t0 = trio.current_time()
        await until(lambda: len(subscribes(peer.current)) == 2)
        # ack timeout 2 s, then held back 1 s
        assert trio.current_time() - t0 == pytest.approx(3.0, abs=0.05)
    assert any("no answer to subscribe" in e.error for e in rec.of(ErrorEvent))


async def test_malformed_push_is_reported_and_stream_goes_on(
    autojump_clock: trio.abc.Clock,
) -> None:
    peer, rec = FakePeer(), Recorder()
    async with (
        running(peer, rec) as sup,
        sup.subscribe_trades("sim", "BTC-USDT") as stream,
    ):
        await until(lambda: len(subscribes(peer.current)) == 1)
        bad = trades(1)
        bad["data"][0]["side"] = "sideways"
        peer.current.push(bad)
        peer.current.push({"type": "trades", "subscription_id": TRADES_ID, "data": "nope"})
        peer.current.push(trades(2))
        assert (await stream.receive()).price == Decimal(2)
        assert len(peer.sessions) == 1
    assert len([e for e in rec.of(ErrorEvent) if e.kind == "MalformedResponse"]) == 2
    assert len(rec.of(MarketTrades)) == 1


async def test_ticker_is_composed_from_book_and_trades(autojump_clock: trio.abc.Clock) -> None:
    peer, rec = FakePeer(), Recorder()

    async def seed(exchange: str, market: str) -> Ticker:
        return Ticker(
            exchange=exchange,
            market=market,
            bid=Decimal(1),
            ask=Decimal(2),
            last=Decimal("99.5"),
            volume=Decimal(100),
            timestamp=1.0,
        )

    async with (
        running(peer, rec, ticker_seed=seed) as sup,
        sup.subscribe_ticker("sim", "BTC-USDT") as tickers,
    ):
        await until(lambda: len(subscribes(peer.current)) == 2)
        peer.current.push(book(0))
        first = await tickers.receive()
        assert (first.bid, first.ask, first.last, first.volume) == (
            Decimal(100),
            Decimal(101),
            Decimal("99.5"),
            Decimal(100),
        )
        peer.current.push(trades(100, 101))
        second = await tickers.receive()
        assert second.last == Decimal(101)
        assert second.volume == Decimal(101)  # 100 + 2 * 0.5
    assert len(rec.of(TickerUpdate)) == 2


async def test_candles_are_not_repeated_after_resubscribe(autojump_clock: trio.abc.Clock) -> None:
    peer, rec = FakePeer(), Recorder()
    cid = "candles_sim_BTC-USDT_1m"

    def candle(ts: float, close: str) -> dict[str, Any]:
        return {"timestamp": ts, "open": "1", "high": "2", "low": "1", "close": close, "volume": 3}

    history = {
        "type": "candles",
        "subscription_id": cid,
        "data": [candle(60, "1"), candle(120, "2")],
    }
    async with (
        running(peer, rec) as sup,
        sup.subscribe_candles("sim", "BTC-USDT", interval="1m") as candles,
    ):
        await until(lambda: len(subscribes(peer.current)) == 1)
        assert subscribes(peer.current)[0]["interval"] == "1m"
        peer.current.push(history)
        peer.current.push(
            {"type": "candle_update", "subscription_id": cid, "data": candle(120, "5")}
        )
        got = [await candles.receive() for _ in range(3)]
        assert [(c.timestamp, c.close) for c in got] == [
            (60, Decimal(1)),
            (120, Decimal(2)),
            (120, Decimal(5)),
        ]
        peer.current.close(1006)
        await until(lambda: len(peer.sessions) == 2 and len(subscribes(peer.current)) == 1)
        peer.current.push(
            {
                "type": "candles",
                "subscription_id": cid,
                "data": [candle(120, "6"), candle(180, "7")],
            }
        )
        got = [await candles.receive() for _ in range(2)]
        assert [(c.timestamp, c.close) for c in got] == [(120, Decimal(6)), (180, Decimal(7))]


async def test_invalid_arguments_raise_before_io(autojump_clock: trio.abc.Clock) -> None:
    peer, rec = FakePeer(), Recorder()
    async with running(peer, rec) as sup:
        with pytest.raises(InputValidationError):
            async with sup.subscribe_order_book("sim", "BTC-USDT", depth=0):
                pass
        with pytest.raises(InputValidationError):
            async with sup.subscribe_trades("sim", "not a market"):
                pass
        with pytest.raises(InputValidationError):
            async with sup.subscribe_candles("sim", "BTC-USDT", update_interval=-1):
                pass
        await trio.sleep(1.0)
        assert subscribes(peer.current) == []
