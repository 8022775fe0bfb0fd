"""Every simulator answer of protocol.md section 3 validates against the OpenAPI schema.

Where the schema is loose (``{}`` or ``additionalProperties``), the shapes of
protocol.md are checked field by field.
"""

from __future__ import annotations

import time
from typing import Any

from hbtrio.sim import SimInfo
from tests.integration.conftest import RawHTTP
from tests.openapi_schema import validate_request, validate_response

ORDER_FIELDS = {
    "order_id",
    "account_name",
    "connector_name",
    "trading_pair",
    "trade_type",
    "order_type",
    "amount",
    "price",
    "status",
    "filled_amount",
    "average_fill_price",
    "fee_paid",
    "fee_currency",
    "created_at",
    "updated_at",
    "exchange_order_id",
    "error_message",
}
TRADE_FIELDS = {
    "trade_id",
    "order_id",
    "account_name",
    "connector_name",
    "trading_pair",
    "trade_type",
    "amount",
    "price",
    "fee_paid",
    "fee_currency",
    "timestamp",
}
RULE_FIELDS = {
    "min_order_size",
    "max_order_size",
    "min_price_increment",
    "min_base_amount_increment",
    "min_quote_amount_increment",
    "min_notional_size",
    "min_order_value",
    "max_price_significant_digits",
    "supports_limit_orders",
    "supports_market_orders",
    "buy_order_collateral_token",
    "sell_order_collateral_token",
}
CANDLE_FIELDS = {
    "timestamp",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "quote_asset_volume",
    "n_trades",
    "taker_buy_base_volume",
    "taker_buy_quote_volume",
}
STATUSES = {
    "SUBMITTED",
    "OPEN",
    "PARTIALLY_FILLED",
    "PENDING_CANCEL",
    "FILLED",
    "CANCELLED",
    "FAILED",
}


async def call(
    http: RawHTTP, method: str, path: str, template: str, body: Any = None, status: int = 200
) -> Any:
    if body is not None:
        validate_request(method, template, body)
    answer = await http.request(method, path, body)
    assert answer.status == status, answer.body
    assert answer.headers["content-type"] == "application/json"
    payload = answer.json()
    validate_response(method, template, status, payload)
    return payload


def check_page(page: dict[str, Any], fields: set[str]) -> None:
    assert set(page["pagination"]) == {"limit", "has_more", "next_cursor", "total_count"}
    for item in page["data"]:
        assert set(item) == fields


def check_order(order: dict[str, Any]) -> None:
    assert order["status"] in STATUSES
    assert order["trade_type"] in ("BUY", "SELL")
    assert order["order_type"] in ("LIMIT", "MARKET", "LIMIT_MAKER")
    assert order["created_at"].endswith("+00:00")


async def test_every_endpoint_validates(sim: SimInfo, sim_http: RawHTTP) -> None:
    root = await call(sim_http, "GET", "/", "/")
    assert root == {"name": "Hummingbot API", "version": "1.0.1", "status": "running"}
    assert await call(sim_http, "GET", "/accounts/", "/accounts/") == ["master_account"]
    assert await call(sim_http, "GET", "/connectors/", "/connectors/") == ["binance", "kucoin"]

    rules = await call(
        sim_http,
        "GET",
        "/connectors/binance/trading-rules?trading_pairs=BTC-USDT&trading_pairs=ETH-USDT",
        "/connectors/{connector_name}/trading-rules",
    )
    assert set(rules) == {"BTC-USDT", "ETH-USDT"}
    assert all(set(rule) == RULE_FIELDS for rule in rules.values())
    assert rules["ETH-USDT"]["min_base_amount_increment"] == 0.0001
    types = await call(
        sim_http,
        "GET",
        "/connectors/kucoin/order-types",
        "/connectors/{connector_name}/order-types",
    )
    assert types == {
        "connector": "kucoin",
        "supported_order_types": ["LIMIT", "LIMIT_MAKER", "MARKET"],
    }

    order_ids = []
    for side, order_type, price in (
        ("BUY", "LIMIT", "59000"),
        ("SELL", "LIMIT_MAKER", "61000"),
        ("BUY", "MARKET", None),
        ("SELL", "LIMIT", "95000"),  # outside the allowed range: FAILED
    ):
        request: dict[str, Any] = {
            "account_name": "master_account",
            "connector_name": "binance",
            "trading_pair": "BTC-USDT",
            "trade_type": side,
            "amount": "0.001",
            "order_type": order_type,
        }
        if price is not None:
            request["price"] = price
        placed = await call(sim_http, "POST", "/trading/orders", "/trading/orders", request, 201)
        assert placed["status"] == "submitted" and placed["amount"] == "0.001"
        order_ids.append(placed["order_id"])

    active = await call(
        sim_http, "POST", "/trading/orders/active", "/trading/orders/active", {"limit": 10}
    )
    check_page(active, ORDER_FIELDS)
    for order in active["data"]:
        check_order(order)
    cancel_path = f"/trading/master_account/binance/orders/{order_ids[0]}/cancel"
    cancelled = await call(
        sim_http,
        "POST",
        cancel_path,
        "/trading/{account_name}/{connector_name}/orders/{client_order_id}/cancel",
    )
    assert cancelled == {"message": f"Order cancellation initiated for {order_ids[0]}"}

    history = await call(
        sim_http, "POST", "/trading/orders/search", "/trading/orders/search", {"limit": 100}
    )
    check_page(history, ORDER_FIELDS)
    by_id = {o["order_id"]: o for o in history["data"]}
    assert [by_id[i]["status"] for i in order_ids] == ["CANCELLED", "OPEN", "FILLED", "FAILED"]
    assert by_id[order_ids[3]]["error_message"].startswith(
        "Order price is outside the allowed range: "
    )
    for order in history["data"]:
        check_order(order)

    fills = await call(sim_http, "POST", "/trading/trades", "/trading/trades", {"limit": 100})
    check_page(fills, TRADE_FIELDS)
    assert {f["order_id"] for f in fills["data"]} == {order_ids[2]}

    portfolio = await call(sim_http, "POST", "/portfolio/state", "/portfolio/state", {})
    rows = portfolio["master_account"]["binance"]
    assert {r["token"] for r in rows} == {"BTC", "ETH", "USDT"}
    assert all(set(r) == {"token", "units", "price", "value", "available_units"} for r in rows)

    prices = await call(
        sim_http,
        "POST",
        "/market-data/prices",
        "/market-data/prices",
        {"connector_name": "binance", "trading_pairs": ["BTC-USDT"]},
    )
    assert 30_000 < prices["prices"]["BTC-USDT"] < 90_000
    book = await call(
        sim_http,
        "POST",
        "/market-data/order-book",
        "/market-data/order-book",
        {"connector_name": "binance", "trading_pair": "ETH-USDT", "depth": 3},
    )
    assert len(book["bids"]) == 3
    assert [lv["price"] for lv in book["bids"]] == sorted(
        (lv["price"] for lv in book["bids"]), reverse=True
    )
    assert [lv["price"] for lv in book["asks"]] == sorted(lv["price"] for lv in book["asks"])
    candles = await call(
        sim_http,
        "POST",
        "/market-data/candles",
        "/market-data/candles",
        {
            "connector_name": "binance",
            "trading_pair": "BTC-USDT",
            "interval": "5m",
            "max_records": 7,
        },
    )
    assert len(candles) == 7 and all(set(c) == CANDLE_FIELDS for c in candles)
    assert candles[1]["timestamp"] - candles[0]["timestamp"] == 300
    now_ms = int(time.time() * 1000)
    hist = await call(
        sim_http,
        "POST",
        "/market-data/historical-candles",
        "/market-data/historical-candles",
        {
            "connector_name": "binance",
            "trading_pair": "BTC-USDT",
            "interval": "1m",
            "start_time": now_ms - 3_600_000,
            "end_time": now_ms,
        },
    )
    assert 59 <= len(hist) <= 61


async def test_error_answers_validate(sim: SimInfo, sim_http: RawHTTP) -> None:
    bad = await sim_http.post("/trading/orders", {"account_name": "master_account"})
    assert bad.status == 422
    validate_response("POST", "/trading/orders", 422, bad.json())
    missing = {e["loc"][1] for e in bad.json()["detail"]}
    assert missing == {"connector_name", "trading_pair", "trade_type", "amount"}
    limit = await sim_http.post("/trading/orders/active", {"limit": 5000})
    assert limit.status == 422
    validate_response("POST", "/trading/orders/active", 422, limit.json())
    assert limit.json()["detail"][0]["type"] == "less_than_equal"


async def test_tickers_shape(sim: SimInfo, sim_http: RawHTTP) -> None:
    # Not in the reference OpenAPI document (1.0.1 predates the endpoint): the shape
    # is protocol.md's {connector, count, tickers: {pair: {price, volume, timestamp}}}.
    before = await sim_http.get("/market-data/tickers/binance")
    assert before.status == 200 and before.headers["content-type"] == "application/json"
    body = before.json()
    assert set(body) == {"connector", "count", "tickers"}
    assert body["connector"] == "binance"
    assert body["count"] == len(body["tickers"]) == 2
    assert set(body["tickers"]) == {"BTC-USDT", "ETH-USDT"}
    now = time.time()
    for pair, ticker in body["tickers"].items():
        assert set(ticker) == {"price", "volume", "timestamp"}, pair
        assert all(type(ticker[key]) is float for key in ticker), ticker  # JSON numbers
        assert ticker["price"] > 0 and ticker["volume"] >= 0
        assert abs(ticker["timestamp"] - now) < 5  # float seconds, like all market data
        last = float(sim.state.engine.market("binance", pair).last_price)
        assert abs(ticker["price"] - last) / last < 0.01  # the last trade price
    assert 30_000 < body["tickers"]["BTC-USDT"]["price"] < 90_000
    assert 1_500 < body["tickers"]["ETH-USDT"]["price"] < 4_500

    # volume is the traded base amount (24 h): a user trade adds to it
    bought = await sim_http.post(
        "/trading/orders",
        {
            "account_name": "master_account",
            "connector_name": "binance",
            "trading_pair": "BTC-USDT",
            "trade_type": "BUY",
            "amount": "0.5",
            "order_type": "MARKET",
        },
    )
    assert bought.status == 201
    after = (await sim_http.get("/market-data/tickers/binance")).json()
    grown = after["tickers"]["BTC-USDT"]["volume"] - body["tickers"]["BTC-USDT"]["volume"]
    assert grown >= 0.5 - 1e-9

    kucoin = (await sim_http.get("/market-data/tickers/kucoin")).json()
    assert (kucoin["connector"], kucoin["count"], set(kucoin["tickers"])) == (
        "kucoin",
        1,
        {"BTC-USDT"},
    )
    unknown = await sim_http.get("/market-data/tickers/nosuch")
    assert (unknown.status, unknown.json()) == (404, {"detail": "Connector 'nosuch' not found"})
    wrong_method = await sim_http.post("/market-data/tickers/binance", {})
    assert wrong_method.status == 405
