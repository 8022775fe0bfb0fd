"""Stream order books and trades, watch every event, and see the backpressure policy.

The client publishes everything it learns to an ``EventEngine``; here one engine is
shared with ``open_client(config, engine=...)``. A subscriber that never reads its
order events is cut off with ``SubscriptionError`` while everything else goes on.
"""

from __future__ import annotations

from decimal import Decimal

import trio

import hbtrio


async def main(seconds: float = 3.0) -> None:
    config = hbtrio.ClientConfig.from_env()
    engine = hbtrio.EventEngine(grace=0.5)
    async with hbtrio.open_client(config, engine=engine) as client:

        async def books() -> None:
            async with client.subscribe_order_book("binance", "BTC-USDT", depth=3) as stream:
                async for book in stream:
                    print(f"book  bid={book.bids[0].price} ask={book.asks[0].price}")

        async def trades() -> None:
            async with client.subscribe_trades("binance", "BTC-USDT") as stream:
                async for trade in stream:
                    print(f"trade {trade.side.value} {trade.amount} @ {trade.price}")

        async def order_events(ready: trio.Event) -> None:
            async with client.events() as events:
                ready.set()
                async for event in events:
                    if isinstance(event, hbtrio.OrderUpdate):
                        print(f"order {event.order.order_id} -> {event.order.status.value}")
                    elif isinstance(event, hbtrio.TradeEvent):
                        print(f"fill  {event.trade.amount} @ {event.trade.price}")

        async def stuck_subscriber(ready: trio.Event) -> None:
            # Buffers one order or fill event and never reads it in time: it is cut off
            # (after delivering what it had), and nobody else is.
            async with engine.subscribe(
                hbtrio.OrderUpdate, hbtrio.TradeEvent, buffer=1, overflow=0, name="stuck"
            ) as stuck:
                ready.set()
                await trio.sleep(seconds / 2)
                try:
                    async for _ in stuck:
                        pass
                except hbtrio.SubscriptionError as exc:
                    print("events subscriber cut off:", exc)

        with trio.move_on_after(seconds):
            async with trio.open_nursery() as nursery:
                events_ready, stuck_ready = trio.Event(), trio.Event()
                nursery.start_soon(books)
                nursery.start_soon(trades)
                nursery.start_soon(order_events, events_ready)
                nursery.start_soon(stuck_subscriber, stuck_ready)
                await events_ready.wait()
                await stuck_ready.wait()
                # A market order: its OrderUpdates and TradeEvent arrive through events().
                await client.place_market_order(
                    "binance", "BTC-USDT", hbtrio.Side.BUY, amount=Decimal("0.001")
                )
        print("engine stats:", engine.stats.cut_off, "cut off")


if __name__ == "__main__":
    trio.run(main)
