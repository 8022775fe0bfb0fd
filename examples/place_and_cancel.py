"""Place limit and market orders, wait for acceptance, cancel, and list open orders."""

from __future__ import annotations

from decimal import Decimal

import trio

import hbtrio


async def main() -> None:
    config = hbtrio.ClientConfig.from_env()
    async with hbtrio.open_client(config) as client:
        book = await client.get_order_book("binance", "BTC-USDT", depth=1)
        assert book.best_bid is not None
        # A bid 2% under the best bid rests on the book.
        price = (book.best_bid.price * Decimal("0.98")).quantize(Decimal("0.01"))
        order = await client.place_limit_order(
            "binance",
            "BTC-USDT",
            hbtrio.Side.BUY,
            price=price,
            amount=Decimal("0.001"),
            wait_accepted=True,
        )
        print(f"resting: {order.order_id} {order.side.value} {order.amount} @ {order.price}")

        open_orders = await client.get_open_orders(exchange="binance", market="BTC-USDT")
        print("open orders:", [o.order_id for o in open_orders])

        await client.cancel_order(order.order_id, exchange="binance", market="BTC-USDT")
        print("cancel requested")
        # Cancellation is asynchronous: the order's state says when it is done.
        with trio.fail_after(10):
            while True:
                order = await client.get_order(order.order_id, exchange="binance")
                if order.status.is_terminal:
                    break
                await trio.sleep(0.1)
        print(f"order {order.order_id}: {order.status.value}")

        market = await client.place_market_order(
            "binance", "BTC-USDT", hbtrio.Side.SELL, amount=Decimal("0.001"), wait_accepted=True
        )
        print(f"market order {market.order_id}: {market.status.value}")

        for offset in ("0.97", "0.96"):
            await client.place_limit_order(
                "binance",
                "BTC-USDT",
                hbtrio.Side.BUY,
                price=(book.best_bid.price * Decimal(offset)).quantize(Decimal("0.01")),
                amount=Decimal("0.001"),
                wait_accepted=True,
            )
        cancelled = await client.cancel_all_orders(exchange="binance", market="BTC-USDT")
        print("cancelled in bulk:", len(cancelled))


if __name__ == "__main__":
    trio.run(main)
