"""hbtrio from a blocking script or dashboard (``hbtrio.sync``): no async anywhere.

The client runs Trio in a background thread owned by the ``with`` block; every
method blocks, streams are plain iterators, and several threads may share it.
"""

from __future__ import annotations

import threading
from decimal import Decimal

import hbtrio
import hbtrio.sync

EXCHANGE, MARKET = "binance", "BTC-USDT"


def main() -> None:
    config = hbtrio.ClientConfig.from_env()
    with hbtrio.sync.open_client(config) as client:
        book = client.get_order_book(EXCHANGE, MARKET, depth=3)
        print(f"best bid {book.bids[0].price} / best ask {book.asks[0].price}")

        # A dashboard refreshing panels from several threads at once.
        tickers: list[hbtrio.Ticker] = []
        panels = [
            threading.Thread(target=lambda: tickers.append(client.get_ticker(EXCHANGE, MARKET)))
            for _ in range(4)
        ]
        for panel in panels:
            panel.start()
        for panel in panels:
            panel.join()
        print(f"panels refreshed: {len(tickers)}")

        # A stream is a context manager yielding a blocking iterator.
        with client.subscribe_order_book(EXCHANGE, MARKET, depth=1) as books:
            for n, snapshot in enumerate(books, start=1):
                print(f"snapshot {n}: mid {(snapshot.bids[0].price + snapshot.asks[0].price) / 2}")
                if n == 2:
                    break

        # Orders, and their events.
        price = (book.bids[0].price * Decimal("0.9")).quantize(Decimal("0.01"))
        with client.events(hbtrio.OrderUpdate) as updates:
            order = client.place_limit_order(
                EXCHANGE, MARKET, hbtrio.Side.BUY, price=price, amount=Decimal("0.001")
            )
            client.cancel_order(order.order_id, exchange=EXCHANGE, market=MARKET)
            for update in updates:
                assert isinstance(update, hbtrio.OrderUpdate)
                if update.order.order_id == order.order_id and update.order.status in (
                    hbtrio.OrderStatus.CANCELLED,
                    hbtrio.OrderStatus.FAILED,
                ):
                    print(f"order {order.order_id}: {update.order.status.name}")
                    break
        try:
            client.cancel_order("no-such-order", exchange=EXCHANGE, market=MARKET)
        except hbtrio.OrderNotFound as exc:
            print(f"typed error: {type(exc).__name__}")
    print("closed:", client.state.name)


if __name__ == "__main__":
    main()
