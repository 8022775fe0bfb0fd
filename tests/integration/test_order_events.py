"""Order and fill events derived by the tracker, against the simulator over TLS.

Until the client facade lands, the tracker's REST calls go through a small
adapter built on the wire layer's request builders and parsers and the
integration conftest's raw HTTP/1.1 client (real sockets, TLS).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import trio

from hbtrio import (
    ConnectionStateChanged,
    Event,
    EventEngine,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Page,
    Side,
    Trade,
    TradeEvent,
)
from hbtrio._actors.streams import StreamingSupervisor
from hbtrio._actors.tracker import TrackerActor
from hbtrio._wire import rest as wire
from hbtrio.sim import SimInfo
from tests.integration.conftest import RawHTTP, client_config, start_sim


class RawRest:
    """TrackerRest over RawHTTP (one kept-alive connection, serialised)."""

    def __init__(self, info: SimInfo) -> None:
        self.http = RawHTTP(info)
        self.lock = trio.Lock()

    async def call(self, request: wire.HttpRequest) -> bytes:
        async with self.lock:
            response = await self.http.request(
                request.method,
                request.path,
                body=request.body or b"",
                headers=[("content-type", "application/json")] if request.body else None,
            )
        assert response.status < 300, (response.status, response.body[:200])
        return response.body

    async def get_open_orders(self) -> list[Order]:
        body = await self.call(wire.build_active_orders(limit=1000))
        return list(wire.parse_orders_page(body).items)

    async def get_order_history(
        self,
        *,
        start: float | None = None,
        end: float | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[Order]:
        start_ms = None if start is None else int(start * 1000)
        end_ms = None if end is None else int(end * 1000)
        return wire.parse_orders_page(
            await self.call(
                wire.build_order_search(
                    start_ms=start_ms, end_ms=end_ms, limit=limit, cursor=cursor
                )
            )
        )

    async def get_trades(
        self, *, start: float | None = None, limit: int = 100, cursor: str | None = None
    ) -> Page[Trade]:
        start_ms = None if start is None else int(start * 1000)
        return wire.parse_trades_page(
            await self.call(wire.build_trades(start_ms=start_ms, limit=limit, cursor=cursor))
        )

    async def place(self, request: OrderRequest) -> Order:
        placed = wire.parse_place_order(await self.call(wire.build_place_order(request)))
        return Order(
            order_id=placed.order_id,
            account=placed.account,
            exchange=placed.exchange,
            market=placed.market,
            side=placed.side,
            order_type=placed.order_type,
            amount=placed.amount,
            price=placed.price,
            status=OrderStatus.SUBMITTED,
            created_at=time.time(),
        )

    async def cancel(self, order: Order) -> None:
        await self.call(wire.build_cancel_order(order.account, order.exchange, order.order_id))


def request(side: Side, kind: OrderType, amount: str, price: Decimal | None) -> OrderRequest:
    return OrderRequest(
        account="master_account",
        exchange="binance",
        market="BTC-USDT",
        side=side,
        order_type=kind,
        amount=Decimal(amount),
        price=price,
    )


async def until_order(
    tracker: TrackerActor, order_id: str, predicate: Callable[[Order], bool]
) -> None:
    with trio.fail_after(10):
        while (o := tracker.get(order_id)) is None or not predicate(o):  # noqa: ASYNC110
            await trio.sleep(0.05)


async def scenario(info: SimInfo, drop: bool) -> tuple[list[Event], str]:
    rest = RawRest(info)
    engine = EventEngine()
    tracker = TrackerActor(rest, engine.publish, poll_active=0.05, poll_idle=0.5)
    sup = StreamingSupervisor(client_config(info), engine.publish, engine=engine, tracker=tracker)
    events: list[Event] = []
    async with trio.open_nursery() as nursery, sup.events() as stream:

        async def collect() -> None:
            async for event in stream:
                events.append(event)

        nursery.start_soon(collect)
        await nursery.start(sup.run)
        async with sup.subscribe_order_book("binance", "BTC-USDT", update_interval=0.05) as books:
            with trio.fail_after(10):
                book = await books.receive()
            assert book.best_bid is not None and book.best_ask is not None
            # A resting buy just above the best bid, then our own market sell partly fills it.
            price = book.best_bid.price + Decimal("0.01")
            if price >= book.best_ask.price:
                price = book.best_bid.price
            # Large enough that the simulated liquidity does not fill it all before the cancel.
            mine = await rest.place(request(Side.BUY, OrderType.LIMIT, "0.5", price))
            tracker.track(mine)
            with trio.fail_after(10):
                accepted = await tracker.wait_accepted(mine.order_id)
            assert accepted.status in (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED)
            taker = await rest.place(request(Side.SELL, OrderType.MARKET, "0.004", None))
            tracker.track(taker)
            await until_order(tracker, mine.order_id, lambda o: o.filled_amount > 0)
            await rest.cancel(mine)
            await until_order(tracker, mine.order_id, lambda o: o.status.is_terminal)
            await until_order(tracker, taker.order_id, lambda o: o.status.is_terminal)
            await trio.sleep(1.0)  # later polls must not repeat anything
            if drop:
                assert sup.connection.connections >= 2
        nursery.cancel_scope.cancel()
    await rest.http.aclose()
    return events, mine.order_id


def check(events: list[Event], order_id: str) -> None:
    updates = [
        e.order for e in events if isinstance(e, OrderUpdate) and e.order.order_id == order_id
    ]
    states = [(o.status, o.filled_amount) for o in updates]
    assert len(states) == len(set(states)), states  # each change exactly once
    assert states[0][0] is OrderStatus.SUBMITTED
    assert states[-1][0] is OrderStatus.CANCELLED
    assert OrderStatus.OPEN in [s for s, _ in states]
    assert any(s is OrderStatus.PARTIALLY_FILLED for s, _ in states)
    assert [f for _, f in states] == sorted(f for _, f in states)  # never backwards
    fills = [e.trade for e in events if isinstance(e, TradeEvent)]
    assert len({f.trade_id for f in fills}) == len(fills)  # each fill exactly once
    mine = [f for f in fills if f.order_id == order_id]
    assert mine and sum(f.amount for f in mine) == updates[-1].filled_amount


async def test_order_events_exactly_once(nursery: trio.Nursery, sim_cert_dir: Path) -> None:
    info = await start_sim(nursery, cert_dir=sim_cert_dir, min_update_interval=0.05)
    events, order_id = await scenario(info, drop=False)
    check(events, order_id)


async def test_order_events_exactly_once_across_connection_drops(
    nursery: trio.Nursery, sim_cert_dir: Path
) -> None:
    info = await start_sim(
        nursery, cert_dir=sim_cert_dir, min_update_interval=0.05, drop_ws_after_msgs=10
    )
    events, order_id = await scenario(info, drop=True)
    check(events, order_id)
    assert any(isinstance(e, ConnectionStateChanged) for e in events)
