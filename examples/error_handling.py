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

        # 6. Request errors carry structured details: status, method, path, retryable.
        try:
            await client.get_trading_rules("no_such_exchange")
        except hbtrio.RequestError as exc:
            print(f"{type(exc).__name__}: {exc.status} {exc.method} {exc.path} {exc.retryable}")

        # 7. A lost answer to a placement: never re-send blindly (see docs/errors.md).
        try:
            await client.place_market_order(
                "binance", "BTC-USDT", hbtrio.Side.SELL, amount=Decimal("0.001")
            )
        except hbtrio.OrderOutcomeUnknown as exc:
            print("OrderOutcomeUnknown: look before re-sending; candidates:", exc.candidates)
        else:
            print("placed without ambiguity")

    # 8. Authentication: wrong credentials fail at once.
    try:
        async with hbtrio.open_client(config.replace(api_key="admin:wrong")):
            pass
    except hbtrio.AuthenticationFailed:
        print("AuthenticationFailed")

    # 9. An unreachable server fails within timeout x (retries + 1) plus backoff.
    try:
        async with hbtrio.open_client(config.replace(port=1, retries=0, timeout=1.0)):
            pass
    except hbtrio.ConnectionFailed as exc:
        print("ConnectionFailed:", type(exc).__name__)


if __name__ == "__main__":
    trio.run(main)
