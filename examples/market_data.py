"""Read an order book, a ticker and candles."""

from __future__ import annotations

import trio

import hbtrio


async def main() -> None:
    config = hbtrio.ClientConfig.from_env()
    async with hbtrio.open_client(config) as client:
        book = await client.get_order_book("binance", "ETH-USDT", depth=5)
        print(f"ETH-USDT book at {book.timestamp:.3f}")
        for bid, ask in zip(book.bids, book.asks, strict=False):
            print(f"  {bid.amount:>12} {bid.price:>10} | {ask.price:<10} {ask.amount}")

        ticker = await client.get_ticker("binance", "BTC-USDT")
        print(f"BTC-USDT bid={ticker.bid} ask={ticker.ask} last={ticker.last} vol={ticker.volume}")

        candles = await client.get_candles("binance", "BTC-USDT", interval="1m", limit=5)
        for candle in candles:
            print(f"  {candle.timestamp:.0f} o={candle.open} h={candle.high} c={candle.close}")

        rules = await client.get_trading_rules("binance", markets=["BTC-USDT"])
        print("BTC-USDT min order size:", rules["BTC-USDT"].min_order_size)


if __name__ == "__main__":
    trio.run(main)
