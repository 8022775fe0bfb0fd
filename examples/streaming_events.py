"""Stream order books and trades, and watch every event the client publishes."""

from __future__ import annotations

from decimal import Decimal

import trio

import hbtrio


async def main(seconds: float = 3.0) -> None:
    config = hbtrio.ClientConfig.from_env()
    async with hbtrio.open_client(config) as client:

        async def books() -> None:
            async with client.subscribe_order_book("binance", "BTC-USDT", depth=3) as stream:
                async for book in stream:
                    print(f"book  bid={book.bids[0].price} ask={book.asks[0].price}")

        async def trades() -> None:
            async with client.subscribe_trades("binance", "BTC-USDT") as stream:
                async for trade in stream:
                    print(f"trade {trade.side.value} {trade.amount} @ {trade.price}")

        async def order_events() -> None:
            async with client.events() as events:
                async for event in events:
                    if isinstance(event, hbtrio.OrderUpdate):
                        print(f"order {event.order.order_id} -> {event.order.status.value}")
                    elif isinstance(event, hbtrio.TradeEvent):
                        print(f"fill  {event.trade.amount} @ {event.trade.price}")

        with trio.move_on_after(seconds):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(books)
                nursery.start_soon(trades)
                nursery.start_soon(order_events)
                await trio.sleep(0.5)
                # A market order: its OrderUpdate and TradeEvent arrive through events().
                await client.place_market_order(
                    "binance", "BTC-USDT", hbtrio.Side.BUY, amount=Decimal("0.001")
                )


if __name__ == "__main__":
    trio.run(main)
