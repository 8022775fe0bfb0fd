"""Driving hbtrio from anyio (on the Trio backend)."""

from __future__ import annotations

import anyio

import hbtrio


async def main() -> None:
    config = hbtrio.ClientConfig.from_env()
    async with hbtrio.open_client(config) as client:
        seen: list[hbtrio.OrderBook] = []

        async def watch() -> None:
            async with client.subscribe_order_book("binance", "BTC-USDT", depth=2) as books:
                async for book in books:
                    seen.append(book)

        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            ticker = await client.get_ticker("binance", "BTC-USDT")
            print(f"ticker bid={ticker.bid} ask={ticker.ask}")
            await anyio.sleep(2)
            tg.cancel_scope.cancel()
        print("books received:", len(seen))


if __name__ == "__main__":
    anyio.run(main, backend="trio")
