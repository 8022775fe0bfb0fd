"""Issue #5 streaming acceptance, through the public API (``hbtrio.open_client``).

Real sockets, real TLS, the real simulator: in-process (``start_sim``), and a
real subprocess for the stop/restart test. Everything is observed through what a
user sees: ``client.subscribe_*`` iterators, ``client.events()``, ``client.state``
and the order methods. Only the simulator's own state (its fills, its
credential check) is read behind the client's back, as the ground truth. The
order-events test also runs with the REST connections (which the order tracker
polls over) reset and dropped mid-life, through the TLS-terminating fault proxy.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest
import trio

import hbtrio
from hbtrio import (
    AuthenticationFailed,
    CandleUpdate,
    ConnectionState,
    ConnectionStateChanged,
    ErrorEvent,
    Event,
    MarketTrades,
    Order,
    OrderBookUpdate,
    OrderStatus,
    OrderUpdate,
    Side,
    TickerUpdate,
    TradeEvent,
)
from hbtrio.sim import SimInfo, serve
from tests.faultproxy import Fault, FaultKind, FaultPlan, FaultProxy, Trigger, open_fault_proxy
from tests.integration.conftest import client_config, ssl_context_for, start_sim

EX, BTC, ETH = "binance", "BTC-USDT", "ETH-USDT"


class Progress:
    """Wakes waiters whenever something was recorded."""

    def __init__(self) -> None:
        self._changed = trio.Event()

    def poke(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for(self, predicate: Callable[[], bool], limit: float = 10) -> None:
        """Wait (at most ``limit`` seconds) until ``predicate()`` holds."""
        with trio.fail_after(limit):
            while not predicate():
                await self._changed.wait()


class Recorder(Progress):
    """Collects every event of ``client.events()`` in a background task."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[Event] = []

    async def run(
        self,
        client: hbtrio.Client,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        async with client.events(buffer=100_000) as stream:
            task_status.started()
            async for event in stream:
                self.events.append(event)
                self.poke()

    def states(self) -> list[ConnectionState]:
        return [e.new for e in self.events if isinstance(e, ConnectionStateChanged)]

    def of(self, kind: type[Event]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


@asynccontextmanager
async def recorded_client(
    config: hbtrio.ClientConfig,
) -> AsyncIterator[tuple[hbtrio.Client, Recorder]]:
    """An open client plus a recorder of all its events (from right after start-up)."""
    recorder = Recorder()
    async with hbtrio.open_client(config) as client, trio.open_nursery() as nursery:
        await nursery.start(recorder.run, client)
        yield client, recorder
        nursery.cancel_scope.cancel()


def state_of(client: hbtrio.Client) -> ConnectionState:
    """``client.state`` (a call, so that mypy does not narrow it across awaits)."""
    return client.state


def connected_count(recorder: Recorder) -> int:
    return recorder.states().count(ConnectionState.CONNECTED)


# -- streams deliver data --------------------------------------------------------------


async def test_every_stream_delivers_data(nursery: trio.Nursery, sim_cert_dir: Path) -> None:
    info = await start_sim(nursery, cert_dir=sim_cert_dir, min_update_interval=0.05)
    async with (
        recorded_client(client_config(info)) as (client, recorder),
        client.subscribe_order_book(EX, BTC, depth=5, update_interval=0.05) as books,
        client.subscribe_trades(EX, BTC, update_interval=0.05) as trades,
        client.subscribe_ticker(EX, ETH, update_interval=0.05) as tickers,
        client.subscribe_candles(EX, BTC, "1m", update_interval=0.05) as candles,
    ):
        assert state_of(client) is ConnectionState.CONNECTED
        with trio.fail_after(10):
            book = await anext(books)
            trade = await anext(trades)
            ticker = await anext(tickers)
            candle = await anext(candles)
        assert book.exchange == EX and book.market == BTC
        assert 0 < len(book.bids) <= 5 and 0 < len(book.asks) <= 5
        assert book.bids[0].price < book.asks[0].price
        assert trade.market == BTC and trade.amount > 0 and trade.price > 0
        assert ticker.market == ETH and ticker.bid <= ticker.ask and ticker.last > 0
        assert candle.low <= min(candle.open, candle.close) <= candle.high
        # The same data is published as events.
        await recorder.wait_for(
            lambda: all(
                recorder.of(k) for k in (OrderBookUpdate, MarketTrades, TickerUpdate, CandleUpdate)
            )
        )
        assert {e.book.market for e in recorder.of(OrderBookUpdate)} >= {BTC}
        assert not recorder.of(ErrorEvent)
    assert state_of(client) is ConnectionState.DISCONNECTED


# -- dropped WebSockets: automatic reconnect and resubscribe ------------------------------


async def test_dropped_websockets_reconnect_resubscribe_and_keep_delivering(
    nursery: trio.Nursery, sim_cert_dir: Path
) -> None:
    info = await start_sim(
        nursery, cert_dir=sim_cert_dir, min_update_interval=0.05, drop_ws_after_msgs=20
    )
    got: dict[str, list[tuple[int, float]]] = {"book": [], "trade": [], "candle": []}
    progress = Progress()
    async with (
        recorded_client(client_config(info)) as (client, recorder),
        trio.open_nursery() as consumers,
    ):

        async def consume(name: str, cm: Any) -> None:
            async with cm as stream:
                async for _ in stream:
                    # Which connection it came on: CONNECTED events seen so far.
                    got[name].append((connected_count(recorder), trio.current_time()))
                    progress.poke()

        consumers.start_soon(
            consume, "book", client.subscribe_order_book(EX, BTC, update_interval=0.05)
        )
        consumers.start_soon(
            consume, "trade", client.subscribe_trades(EX, ETH, update_interval=0.05)
        )
        consumers.start_soon(
            consume, "candle", client.subscribe_candles(EX, BTC, "1m", update_interval=0.05)
        )
        # Data on at least three connections after the first drop, for every stream.
        await progress.wait_for(
            lambda: all(len({n for n, _ in got[k] if n >= 1}) >= 3 for k in got), limit=20
        )
        consumers.cancel_scope.cancel()
        states = recorder.states()
        assert states.count(ConnectionState.DISCONNECTED) >= 3
        assert states.count(ConnectionState.CONNECTED) >= 3
        assert ConnectionState.ERROR not in states
        # Every CONNECTED is preceded by CONNECTING (a proper state machine).
        for i, state in enumerate(states):
            if state is ConnectionState.CONNECTED and i > 0:
                assert states[i - 1] is ConnectionState.CONNECTING
        assert not [e for e in recorder.of(ErrorEvent) if "SubscriptionError" in e.kind]


# -- simulator stopped and restarted on the same port ------------------------------------


async def test_recovers_within_5s_of_a_simulator_restart(sim_process: Any) -> None:
    proc = await sim_process("--min-update-interval", "0.05")
    config = hbtrio.ClientConfig(
        host=proc.host, port=proc.port, api_key=proc.api_key, ca_file=proc.ca_path, timeout=2.0
    )
    async with (
        recorded_client(config) as (client, recorder),
        client.subscribe_order_book(EX, BTC, update_interval=0.05) as books,
    ):
        with trio.fail_after(10):
            await anext(books)
        await proc.stop()
        await recorder.wait_for(lambda: ConnectionState.DISCONNECTED in recorder.states())
        assert state_of(client) is not ConnectionState.CONNECTED
        await trio.sleep(3.0)  # down for a while: the backoff reaches its cap
        before = len(recorder.states())
        await proc.start()
        restarted, restarted_wall = trio.current_time(), time.time()
        with trio.fail_after(5.0):
            await recorder.wait_for(lambda: ConnectionState.CONNECTED in recorder.states()[before:])
            while (await anext(books)).timestamp < restarted_wall:
                pass  # a book queued before the stop; the next is fresh
            book = await client.get_order_book(EX, BTC, depth=3)  # REST recovered too
        assert trio.current_time() - restarted < 5.0
        assert state_of(client) is ConnectionState.CONNECTED
        assert book.bids and book.asks
        # One new connection, not a burst.
        assert recorder.states()[before:].count(ConnectionState.CONNECTED) == 1


# -- wrong credentials -------------------------------------------------------------------


async def test_wrong_credentials_raise_authentication_failed_once(sim: SimInfo) -> None:
    attempts: list[str] = []
    check = sim.state.check_pair

    def counting(user: str, password: str) -> bool:
        attempts.append(user)
        return check(user, password)

    sim.state.check_pair = counting  # type: ignore[method-assign]
    config = client_config(sim, api_key="admin:wrong-secret", retries=5, reconnect_max=0.1)
    t0 = trio.current_time()
    with pytest.raises(AuthenticationFailed) as caught:
        async with hbtrio.open_client(config):
            pytest.fail("opened with wrong credentials")
    assert trio.current_time() - t0 < 2.0
    assert attempts == ["admin"]  # asked once, not retried
    assert type(caught.value) is AuthenticationFailed  # not wrapped in a group
    assert "wrong-secret" not in str(caught.value) and "wrong-secret" not in repr(caught.value)


# -- orders: OrderUpdate sequence and TradeEvents exactly once ---------------------------

_RANK = {
    OrderStatus.SUBMITTED: 0,
    OrderStatus.OPEN: 1,
    OrderStatus.PARTIALLY_FILLED: 2,
    OrderStatus.PENDING_CANCEL: 3,
    OrderStatus.CANCELLED: 4,
    OrderStatus.FILLED: 4,
}


def _updates(recorder: Recorder, order_id: str) -> list[Order]:
    return [e.order for e in recorder.of(OrderUpdate) if e.order.order_id == order_id]


def _latest(recorder: Recorder, order_id: str) -> Order | None:
    updates = _updates(recorder, order_id)
    return updates[-1] if updates else None


async def _until(recorder: Recorder, order_id: str, predicate: Callable[[Order], bool]) -> Order:
    await recorder.wait_for(lambda: (o := _latest(recorder, order_id)) is not None and predicate(o))
    order = _latest(recorder, order_id)
    assert order is not None
    return order


async def _reconnect(recorder: Recorder) -> None:
    """Wait for the WebSocket to drop and come back."""
    before = len(recorder.states())
    await recorder.wait_for(
        lambda: (
            [ConnectionState.DISCONNECTED, ConnectionState.CONNECTING]
            in _pairs(recorder.states()[before:])
            and ConnectionState.CONNECTED in recorder.states()[before:]
        )
    )


def _pairs(states: list[ConnectionState]) -> list[list[ConnectionState]]:
    return [list(p) for p in itertools.pairwise(states)]


Disrupt = Callable[[Recorder], Awaitable[None]]


async def order_scenario(
    info: SimInfo,
    *,
    config: hbtrio.ClientConfig | None = None,
    disrupt: Disrupt | None = None,
) -> Recorder:
    """Place a resting buy, fill part of it with our own market sell, cancel the rest;
    ``disrupt`` (if any) runs between acceptance and the fill, and between the fill
    and the cancel. Checks every OrderUpdate and TradeEvent against the simulator."""
    if config is None:
        config = client_config(info, poll_active=0.05, poll_idle=0.3)
    async with (
        recorded_client(config) as (client, recorder),
        client.subscribe_order_book(EX, BTC, update_interval=0.05) as books,
    ):
        with trio.fail_after(10):
            book = await anext(books)
        assert book.best_bid is not None and book.best_ask is not None
        # A resting buy at the top of the bids, then our own market sell partly fills it.
        price = book.best_bid.price + Decimal("0.01")
        if price >= book.best_ask.price:
            price = book.best_bid.price
        mine = await client.place_limit_order(
            EX, BTC, Side.BUY, price=price, amount=Decimal("0.5"), wait_accepted=True
        )
        assert mine.status in (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED)
        if disrupt is not None:
            await disrupt(recorder)  # between acceptance and the fill
        taker = await client.place_market_order(EX, BTC, Side.SELL, amount=Decimal("0.004"))
        await _until(recorder, mine.order_id, lambda o: o.filled_amount > 0)
        if disrupt is not None:
            await disrupt(recorder)  # and between the fill and the cancel
        await client.cancel_order(mine.order_id, exchange=EX, market=BTC)
        final = await _until(recorder, mine.order_id, lambda o: o.status.is_terminal)
        await _until(recorder, taker.order_id, lambda o: o.status.is_terminal)
        seen = len(recorder.events)
        await trio.sleep(1.0)  # later polls (and reconnects) must not repeat anything
        late = [e for e in recorder.events[seen:] if isinstance(e, OrderUpdate | TradeEvent)]
        assert late == []

    assert final.status is OrderStatus.CANCELLED
    assert Decimal(0) < final.filled_amount < Decimal("0.5")
    updates = _updates(recorder, mine.order_id)
    states = [(o.status, o.filled_amount) for o in updates]
    assert len(states) == len(set(states)), states  # each change exactly once
    assert states[0][0] is OrderStatus.SUBMITTED
    assert OrderStatus.OPEN in [s for s, _ in states]
    assert OrderStatus.PARTIALLY_FILLED in [s for s, _ in states]
    assert states[-1][0] is OrderStatus.CANCELLED
    assert [s for s, _ in states if s.is_terminal] == [OrderStatus.CANCELLED]  # once
    assert [_RANK[s] for s, _ in states] == sorted(_RANK[s] for s, _ in states)
    assert [f for _, f in states] == sorted(f for _, f in states)  # never backwards

    fills = [e.trade for e in recorder.of(TradeEvent)]
    assert len({f.trade_id for f in fills}) == len(fills)  # each fill exactly once
    # ... and exactly the simulator's fills of these two orders.
    ids = {mine.order_id, taker.order_id}
    truth = {f.trade_id for f in info.state.engine.fills if f.order_id in ids}
    assert {f.trade_id for f in fills if f.order_id in ids} == truth
    for order_id in ids:
        last = _latest(recorder, order_id)
        assert last is not None
        own = [f for f in fills if f.order_id == order_id]
        assert own and sum(f.amount for f in own) == last.filled_amount
    taker_final = _latest(recorder, taker.order_id)
    assert taker_final is not None and taker_final.status is OrderStatus.FILLED
    taker_states = [o.status for o in _updates(recorder, taker.order_id)]
    assert [s for s in taker_states if s.is_terminal] == [OrderStatus.FILLED]  # once
    # WebSocket drops are reported (ConnectionFailed); nothing else went wrong (no
    # failed poll: lost poll answers were retried).
    errors = [e for e in recorder.of(ErrorEvent) if e.kind != "ConnectionFailed"]
    assert errors == []
    return recorder


async def test_order_update_sequence_and_fills_exactly_once(
    nursery: trio.Nursery, sim_cert_dir: Path
) -> None:
    # A slower market than the default, so that the makers rarely fill the rest before
    # the cancel; the fills may come from them and from our own market sell.
    info = await start_sim(
        nursery, cert_dir=sim_cert_dir, min_update_interval=0.05, book_change_rate=2
    )
    await order_scenario(info)


async def test_order_events_exactly_once_across_websocket_drops(
    nursery: trio.Nursery, sim_cert_dir: Path
) -> None:
    # A still market (no maker flow): the order waits out two reconnections unfilled
    # but for our own market sell, deterministically.
    info = await start_sim(
        nursery,
        cert_dir=sim_cert_dir,
        min_update_interval=0.05,
        book_change_rate=0,
        drop_ws_after_s=0.3,
    )
    recorder = await order_scenario(info, disrupt=_reconnect)
    assert connected_count(recorder) >= 2


# The order tracker's polls (open orders, history, fills) lose their answers in
# every way: reset after the server answered, cut halfway, dropped after the
# request; placements and cancels are left alone (their reconciliation has tests
# of its own).
_POLL_FAULTS = FaultPlan(
    Fault(
        FaultKind.RESET,
        Trigger.REQUEST_SENT,
        method="POST",
        path="/trading/orders/active",
        wait_response=True,
        every=3,
        name="poll_fault",
    ),
    Fault(
        FaultKind.RESET,
        Trigger.RESPONSE_PARTIAL,
        method="POST",
        path="/trading/trades",
        every=3,
        name="poll_fault",
    ),
    Fault(
        FaultKind.DROP,
        Trigger.REQUEST_SENT,
        method="POST",
        path="/trading/orders/search",
        every=2,
        name="poll_fault",
    ),
)


def _rest_drops(proxy: FaultProxy) -> Disrupt:
    """Reset (first time) or drop (then) every HTTP keep-alive connection, and wait
    until further poll answers were lost."""
    kinds = iter([FaultKind.RESET, FaultKind.DROP, FaultKind.RESET])

    async def disrupt(recorder: Recorder) -> None:
        before = proxy.counts["poll_fault"]
        assert proxy.fault_all(next(kinds), target="http", name="rest_drop") >= 1
        with trio.fail_after(10):
            while proxy.counts["poll_fault"] < before + 2:  # noqa: ASYNC110
                await trio.sleep(0.01)

    return disrupt


async def test_order_events_exactly_once_across_rest_connection_drops(
    nursery: trio.Nursery, sim_cert_dir: Path
) -> None:
    info = await start_sim(
        nursery, cert_dir=sim_cert_dir, min_update_interval=0.05, book_change_rate=0
    )
    async with open_fault_proxy(
        info.host,
        info.port,
        tls_terminate=True,
        upstream_ssl=ssl_context_for(info),
        plan=_POLL_FAULTS,
    ) as proxy:
        config = client_config(
            info, port=proxy.port, ca_file=proxy.ca_path, poll_active=0.05, poll_idle=0.3
        )
        recorder = await order_scenario(info, config=config, disrupt=_rest_drops(proxy))
    # REST connections were reset and dropped in the middle of the order's life, and
    # poll answers lost, while the WebSocket stayed up the whole time.
    assert proxy.counts["rest_drop"] >= 2
    assert proxy.counts["poll_fault"] >= 4
    assert proxy.counts["drop"] >= 1 and proxy.counts["reset"] >= 2
    assert connected_count(recorder) == 0
    assert ConnectionState.DISCONNECTED not in recorder.states()


# -- anyio drives the client -------------------------------------------------------------


def test_anyio_task_groups_drive_the_client(sim_cert_dir: Path) -> None:
    results: dict[str, Any] = {}

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            info: SimInfo = await tg.start(
                partial(serve, cert_dir=sim_cert_dir, min_update_interval=0.05)
            )
            async with hbtrio.open_client(client_config(info)) as client:
                results["state"] = client.state
                books: list[str] = []
                events: list[Event] = []
                placed = anyio.Event()

                async def consume_books(market: str) -> None:
                    async with client.subscribe_order_book(EX, market, update_interval=0.05) as s:
                        with anyio.move_on_after(10):
                            async for book in s:
                                books.append(book.market)
                                if books.count(market) >= 3:
                                    return

                async def consume_events() -> None:
                    async with client.events(OrderUpdate, TickerUpdate) as stream:
                        placed.set()
                        with anyio.move_on_after(10):
                            async for event in stream:
                                events.append(event)
                                if isinstance(event, OrderUpdate) and event.order.status is (
                                    OrderStatus.CANCELLED
                                ):
                                    return

                async with anyio.create_task_group() as consumers:
                    consumers.start_soon(consume_books, BTC)
                    consumers.start_soon(consume_books, ETH)
                    consumers.start_soon(consume_events)
                    async with client.subscribe_ticker(EX, BTC, update_interval=0.05) as tickers:
                        with anyio.fail_after(10):
                            results["ticker"] = await anext(tickers)
                    await placed.wait()
                    book = await client.get_order_book(EX, BTC, depth=1)
                    far = (book.bids[0].price * Decimal("0.9")).quantize(Decimal("0.01"))
                    order = await client.place_limit_order(
                        EX, BTC, Side.BUY, price=far, amount="0.001", wait_accepted=True
                    )
                    await client.cancel_order(order.order_id, exchange=EX, market=BTC)
                results["books"] = books
                results["events"] = events
                results["order_id"] = order.order_id
            tg.cancel_scope.cancel()

    anyio.run(main, backend="trio")
    assert results["state"] is ConnectionState.CONNECTED
    assert results["books"].count(BTC) >= 3 and results["books"].count(ETH) >= 3
    assert results["ticker"].market == BTC
    mine = [
        e.order.status
        for e in results["events"]
        if isinstance(e, OrderUpdate) and e.order.order_id == results["order_id"]
    ]
    assert mine[0] is OrderStatus.SUBMITTED and mine[-1] is OrderStatus.CANCELLED
    assert OrderStatus.OPEN in mine and len(mine) == len(set(mine))
