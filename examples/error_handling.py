"""Each family of errors, and how to handle it."""

from __future__ import annotations

from decimal import Decimal

import trio

import hbtrio


async def main() -> None:
    config = hbtrio.ClientConfig.from_env()

    # 1. Configuration errors: raised on construction.
    try:
        config.replace(retries=-1)
    except hbtrio.ConfigError as exc:
        print("ConfigError:", exc.field)

    async with hbtrio.open_client(config) as client:
        # 2. Input validation: raised before anything is sent.
        try:
            await client.get_order_book("binance", "BTC/USDT?x=1", depth=5)
        except hbtrio.InputValidationError as exc:
            print("InputValidationError:", exc.argument)

        # 3. Below the market's minimum: checked against cached trading rules.
        try:
            await client.place_limit_order(
                "binance",
                "BTC-USDT",
                hbtrio.Side.BUY,
                price=Decimal("100"),
                amount=Decimal("0.001"),
            )
        except hbtrio.MinOrderSizeNotMet as exc:
            print("MinOrderSizeNotMet:", exc.request.amount if exc.request else None)

        # 4. Exchange-side rejections, reported when the order is confirmed.
        try:
            await client.place_limit_order(
                "binance",
                "BTC-USDT",
                hbtrio.Side.BUY,
                price=Decimal("50000"),
                amount=Decimal("1000"),
                wait_accepted=True,
            )
        except hbtrio.InsufficientFunds as exc:
            print("InsufficientFunds:", exc.reason)
        try:
            await client.place_limit_order(
                "binance",
                "BTC-USDT",
                hbtrio.Side.BUY,
                price=Decimal("1000"),
                amount=Decimal("0.01"),
                wait_accepted=True,
            )
        except hbtrio.PriceOutOfRange as exc:
            print("PriceOutOfRange:", exc.reason)

        # 5. Unknown orders.
        try:
            await client.cancel_order("no-such-order", exchange="binance", market="BTC-USDT")
        except hbtrio.OrderNotFound as exc:
            print("OrderNotFound:", exc.order_id)

    # 6. Authentication: wrong credentials fail at once.
    try:
        async with hbtrio.open_client(config.replace(api_key="admin:wrong")):
            pass
    except hbtrio.AuthenticationFailed:
        print("AuthenticationFailed")

    # 7. An unreachable server fails within timeout x (retries + 1) plus backoff.
    try:
        async with hbtrio.open_client(config.replace(port=1, retries=0, timeout=1.0)):
            pass
    except hbtrio.ConnectionFailed as exc:
        print("ConnectionFailed:", type(exc).__name__)


if __name__ == "__main__":
    trio.run(main)
