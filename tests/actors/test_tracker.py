"""Order tracker actor against a fake REST layer (autojump_clock), with the EventEngine."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec
import pytest
import trio

from hbtrio import (
    ErrorEvent,
    Event,
    EventEngine,
    MalformedResponse,
    Order,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Page,
    RequestTimeout,
    Side,
    SubscriptionError,
    Trade,
    TradeEvent,
)
from hbtrio._actors.tracker import TrackerActor


def order(oid: str, status: OrderStatus, filled: str = "0", created: float = 100.0) -> Order:
    return Order(
        order_id=oid,
        account="master_account",
        exchange="sim",
        market="BTC-USDT",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        amount=Decimal(1),
        price=Decimal(100),
        status=status,
        filled_amount=Decimal(filled),
        created_at=created,
        updated_at=trio.current_time(),
    )


def fill(tid: str, oid: str, amount: str, ts: float) -> Trade:
    return Trade(
        trade_id=tid,
        order_id=oid,
        account="master_account",
        exchange="sim",
        market="BTC-USDT",
        side=Side.BUY,
        amount=Decimal(amount),
        price=Decimal(100),
        fee_paid=Decimal(0),
        fee_currency="USDT",
        timestamp=ts,
    )


class FakeRest:
    """Open orders, history and fills of a fake exchange, with injectable faults."""

    def __init__(self) -> None:
        self.orders: dict[str, Order] = {}
        self.fills: list[Trade] = []
        self.calls: list[tuple[str, float]] = []
        self.faults: list[BaseException] = []

    def set(self, o: Order) -> None:
        self.orders[o.order_id] = o

    def _fault(self) -> None:
        if self.faults:
            raise self.faults.pop(0)

    async def get_open_orders(self) -> list[Order]:
        self.calls.append(("open", trio.current_time()))
        await trio.lowlevel.checkpoint()
        self._fault()
        return [o for o in self.orders.values() if not o.status.is_terminal]

    async def get_order_history(
        self,
        *,
        start: float | None = None,
        end: float | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[Order]:
        self.calls.append(("history", trio.current_time()))
        await trio.lowlevel.checkpoint()
        self._fault()
        # Newest first, ``limit`` a page, the cursor an offset.
        items = sorted(
            (
                o
                for o in self.orders.values()
                if (start is None or o.created_at >= start) and (end is None or o.created_at <= end)
            ),
            key=lambda o: o.created_at,
            reverse=True,
        )
        offset = int(cursor or 0)
        page = items[offset : offset + limit]
        more = offset + limit < len(items)
        return Page(
            items=tuple(page), has_more=more, next_cursor=str(offset + limit) if more else None
        )

    async def get_trades(
        self, *, start: float | None = None, limit: int = 100, cursor: str | None = None
    ) -> Page[Trade]:
        self.calls.append(("trades", trio.current_time()))
        await trio.lowlevel.checkpoint()
        self._fault()
        return Page(items=tuple(t for t in self.fills if start is None or t.timestamp >= start))

    def polls_between(self, a: float, b: float) -> int:
        return sum(1 for kind, t in self.calls if kind == "open" and a <= t < b)


def now() -> float:
    return trio.current_time()


async def test_order_lifecycle_events_exactly_once(autojump_clock: trio.abc.Clock) -> None:
    rest, events = FakeRest(), list[Event]()
    rest.set(order("old", OrderStatus.FILLED, "1"))  # before start: no event
    rest.fills.append(fill("f0", "old", "1", 0.5))
    actor = TrackerActor(rest, events.append, clock=now)
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        await trio.sleep(5.0)
        assert actor.polls == 3  # at 0, 2 and 4 s
        # Idle: one poll every 2 s.
        assert rest.polls_between(1.0, 5.0) == 2

        placed = order("o1", OrderStatus.SUBMITTED, created=now())
        actor.track(placed)
        rest.set(placed)
        await trio.sleep(0.35)
        rest.set(order("o1", OrderStatus.OPEN, created=placed.created_at))
        accepted = await actor.wait_accepted("o1")
        assert accepted.status is OrderStatus.OPEN
        t_active = now()
        await trio.sleep(1.0)
        # In flight: one poll every 0.1 s.
        assert rest.polls_between(t_active, t_active + 1.0) == pytest.approx(10, abs=1)

        rest.set(order("o1", OrderStatus.PARTIALLY_FILLED, "0.4", created=placed.created_at))
        rest.fills.append(fill("f1", "o1", "0.4", now()))
        await trio.sleep(0.5)
        rest.set(order("o1", OrderStatus.CANCELLED, "0.4", created=placed.created_at))
        await trio.sleep(0.5)
        t_idle = now()
        await trio.sleep(10.0)
        assert rest.polls_between(t_idle + 0.2, t_idle + 10.0) <= 5  # back to idle
        nursery.cancel_scope.cancel()

    updates = [(e.order.order_id, e.order.status) for e in events if isinstance(e, OrderUpdate)]
    assert updates == [
        ("o1", OrderStatus.SUBMITTED),
        ("o1", OrderStatus.OPEN),
        ("o1", OrderStatus.PARTIALLY_FILLED),
        ("o1", OrderStatus.CANCELLED),
    ]
    trades = [e.trade.trade_id for e in events if isinstance(e, TradeEvent)]
    assert trades == ["f1"]
    assert not [e for e in events if isinstance(e, ErrorEvent)]


async def test_failed_and_malformed_polls_never_kill_it_and_miss_nothing(
    autojump_clock: trio.abc.Clock,
) -> None:
    rest, events = FakeRest(), list[Event]()
    actor = TrackerActor(rest, events.append, clock=now)
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        placed = order("o2", OrderStatus.SUBMITTED, created=now())
        rest.set(order("o2", OrderStatus.OPEN, created=placed.created_at))
        actor.track(placed)
        await trio.sleep(0.5)
        # The server misbehaves for a while, and meanwhile the order fills and ends.
        rest.faults = [
            MalformedResponse("unexpected body", excerpt="<html>"),
            RequestTimeout("timed out"),
            msgspec.ValidationError("Expected `str`, got `int`"),
            ValueError("weird"),
        ] * 5
        rest.set(order("o2", OrderStatus.FILLED, "1", created=placed.created_at))
        rest.fills.append(fill("f2", "o2", "1", now()))
        await trio.sleep(10.0)
        assert actor.failures == 20
        assert actor.tracker.get("o2") is not None
        nursery.cancel_scope.cancel()
    errors = [e for e in events if isinstance(e, ErrorEvent)]
    assert len(errors) == 20
    assert {e.kind for e in errors} == {
        "MalformedResponse",
        "RequestTimeout",
        "ValidationError",
        "ValueError",
    }
    statuses = [e.order.status for e in events if isinstance(e, OrderUpdate)]
    assert statuses == [OrderStatus.SUBMITTED, OrderStatus.OPEN, OrderStatus.FILLED]
    assert [e.trade.trade_id for e in events if isinstance(e, TradeEvent)] == ["f2"]


async def test_terminal_state_found_in_history_after_leaving_open_orders(
    autojump_clock: trio.abc.Clock,
) -> None:
    rest, events = FakeRest(), list[Event]()
    actor = TrackerActor(rest, events.append, clock=now)
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        placed = order("o3", OrderStatus.SUBMITTED, created=now())
        # Filled at once: it never shows up among the open orders.
        rest.set(order("o3", OrderStatus.FILLED, "1", created=placed.created_at))
        actor.track(placed)
        accepted = await actor.wait_accepted("o3")
        assert accepted.status is OrderStatus.FILLED
        nursery.cancel_scope.cancel()
    assert any(kind == "history" for kind, _ in rest.calls)


async def test_stuck_order_subscriber_is_cut_off_while_others_go_on(
    autojump_clock: trio.abc.Clock,
) -> None:
    engine = EventEngine(grace=1.0)
    rest = FakeRest()
    actor = TrackerActor(rest, engine.publish, clock=now)
    received: list[Event] = []

    async def reader(sub: Any) -> None:
        async for event in sub:
            received.append(event)

    async with (
        engine.subscribe(OrderUpdate, buffer=3, name="stuck") as stuck,
        engine.subscribe(OrderUpdate, TradeEvent, ErrorEvent) as healthy,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(reader, healthy)
        await nursery.start(actor.run)
        for i in range(20):
            oid = f"s{i}"
            placed = order(oid, OrderStatus.SUBMITTED, created=now())
            rest.set(order(oid, OrderStatus.OPEN, created=placed.created_at))
            actor.track(placed)
            await trio.sleep(0.3)
        await trio.sleep(1.0)
        # The stuck one gets what it had buffered, then SubscriptionError.
        with pytest.raises(SubscriptionError, match="fell behind"):
            async for _ in stuck:
                pass
        nursery.cancel_scope.cancel()
    updates = [e for e in received if isinstance(e, OrderUpdate)]
    assert len(updates) == 40  # SUBMITTED and OPEN of each, none lost
    assert any(isinstance(e, ErrorEvent) and "stuck" in e.error for e in received)
    assert engine.stats.cut_off == 1


async def test_failing_subscriber_is_isolated(autojump_clock: trio.abc.Clock) -> None:
    engine = EventEngine()
    rest = FakeRest()
    actor = TrackerActor(rest, engine.publish, clock=now)
    calls: list[str] = []

    def bad_handler(event: OrderUpdate) -> None:
        calls.append(event.order.order_id)
        raise RuntimeError("handler bug")

    engine.add_handler(bad_handler, OrderUpdate)
    async with engine, engine.subscribe() as everything, trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        for i in range(3):
            placed = order(f"h{i}", OrderStatus.SUBMITTED, created=now())
            actor.track(placed)
            await trio.sleep(0.5)
        seen: list[Event] = []
        while (n := everything.pending) > 0:
            for _ in range(n):
                seen.append(await everything.__anext__())
        nursery.cancel_scope.cancel()
    assert calls == ["h0", "h1", "h2"]  # kept being called
    errors = [e for e in seen if isinstance(e, ErrorEvent)]
    assert len(errors) == 3 and all("handler bug" in e.error for e in errors)
    assert len([e for e in seen if isinstance(e, OrderUpdate)]) == 3


async def test_an_order_missing_from_every_listing_stops_fast_polling(
    autojump_clock: trio.abc.Clock,
) -> None:
    rest, events = FakeRest(), list[Event]()
    actor = TrackerActor(rest, events.append, clock=now, lost_after=5.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        # Tracked, but the server never lists it (e.g. deep history truncated).
        actor.track(order("ghost", OrderStatus.SUBMITTED, created=now()))
        await trio.sleep(1.0)
        assert rest.polls_between(now() - 0.5, now()) == pytest.approx(5, abs=1)  # fast
        await trio.sleep(5.0)
        t_idle = now()
        await trio.sleep(10.0)
        assert rest.polls_between(t_idle, t_idle + 10.0) <= 6  # back to the idle interval
        # If it shows up among the open orders later after all, its change is published.
        rest.set(order("ghost", OrderStatus.PARTIALLY_FILLED, "0.5", created=0.0))
        await trio.sleep(2.5)
        nursery.cancel_scope.cancel()
    lost = [e for e in events if isinstance(e, ErrorEvent) and e.kind == "OrderNotFound"]
    assert len(lost) == 1 and "ghost" in lost[0].error
    statuses = [e.order.status for e in events if isinstance(e, OrderUpdate)]
    assert statuses == [OrderStatus.SUBMITTED, OrderStatus.PARTIALLY_FILLED]


async def test_an_old_order_is_found_beyond_the_first_history_page(
    autojump_clock: trio.abc.Clock,
) -> None:
    rest, events = FakeRest(), list[Event]()
    actor = TrackerActor(rest, events.append, clock=now)
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        old = order("old-one", OrderStatus.SUBMITTED, created=now())
        actor.track(old)
        rest.set(order("old-one", OrderStatus.OPEN, created=old.created_at))
        await trio.sleep(0.5)
        # 2,500 newer orders bury it deep in the history (1,000 a page)...
        for i in range(2500):
            rest.set(order(f"new-{i}", OrderStatus.CANCELLED, created=old.created_at + 1 + i / 100))
        # ... and then it ends, leaving the open orders.
        rest.set(order("old-one", OrderStatus.CANCELLED, created=old.created_at))
        await trio.sleep(0.5)
        nursery.cancel_scope.cancel()
    statuses = [e.order.status for e in events if isinstance(e, OrderUpdate)]
    assert statuses == [OrderStatus.SUBMITTED, OrderStatus.OPEN, OrderStatus.CANCELLED]
