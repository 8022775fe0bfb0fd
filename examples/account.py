"""Balances, order history with filters and pagination, and own fills."""

from __future__ import annotations

import time
from decimal import Decimal

import trio

import hbtrio


async def main() -> None:
    config = hbtrio.ClientConfig.from_env()
    async with hbtrio.open_client(config) as client:
        for b in await client.get_balances(exchange="binance"):
            print(f"{b.exchange:8} {b.asset:5} total={b.total} free={b.available}")

        await client.place_market_order(
            "binance", "BTC-USDT", hbtrio.Side.BUY, amount=Decimal("0.002"), wait_accepted=True
        )

        since = time.time() - 3600
        page = await client.get_order_history(start=since, market="BTC-USDT", limit=10)
        print(f"history page: {len(page.items)} orders, more={page.has_more}")

        count = 0
        async for order in client.iter_order_history(start=since, status=hbtrio.OrderStatus.FILLED):
            count += 1
            print(f"  {order.order_id} {order.status.value} {order.filled_amount}")
        print("filled orders in the last hour:", count)

        fills = await client.get_trades(start=since, exchange="binance", limit=5)
        for fill in fills.items:
            print(f"  fill {fill.trade_id}: {fill.side.value} {fill.amount} @ {fill.price}")


if __name__ == "__main__":
    trio.run(main)
