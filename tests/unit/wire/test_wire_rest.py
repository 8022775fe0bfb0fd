"""Tests of hbtrio._wire.rest: request builders against the OpenAPI schema, parsers."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hbtrio import MalformedResponse
from hbtrio._wire import rest
from hbtrio.models import (
    Balance,
    Level,
    OrderRequest,
    OrderStatus,
    OrderType,
    PositionAction,
    ServerInfo,
    Side,
)
from tests.openapi_schema import validate_request, validate_response

# -- builders -----------------------------------------------------------------------


def _body(req: rest.HttpRequest) -> Any:
    assert req.body is not None
    return json.loads(req.body)


def test_simple_gets() -> None:
    for req, path in [
        (rest.build_server_info(), "/"),
        (rest.build_accounts(), "/accounts/"),
        (rest.build_connectors(), "/connectors/"),
        (rest.build_order_types("binance"), "/connectors/binance/order-types"),
        (rest.build_tickers("binance"), "/market-data/tickers/binance"),
    ]:
        assert req == rest.HttpRequest("GET", path, None, True)
    validate_request("GET", "/", None)
    validate_request("GET", "/accounts/", None)
    validate_request("GET", "/connectors/{connector_name}/order-types", None)


def test_trading_rules_repeated_query() -> None:
    req = rest.build_trading_rules("binance", ["BTC-USDT", "ETH-USDT"])
    assert req.method == "GET" and req.idempotent and req.body is None
    assert req.path == (
        "/connectors/binance/trading-rules?trading_pairs=BTC-USDT&trading_pairs=ETH-USDT"
    )
    assert rest.build_trading_rules("binance").path == "/connectors/binance/trading-rules"
    assert rest.build_trading_rules("binance", []).path == "/connectors/binance/trading-rules"


def test_path_segments_are_percent_encoded() -> None:
    assert rest.build_trading_rules("jupiter/router", ["SOL-USDC"]).path == (
        "/connectors/jupiter%2Frouter/trading-rules?trading_pairs=SOL-USDC"
    )
    assert rest.build_order_types("jupiter/router").path == (
        "/connectors/jupiter%2Frouter/order-types"
    )
    assert rest.build_tickers("a/b").path == "/market-data/tickers/a%2Fb"
    req = rest.build_cancel_order("master_account", "jupiter/router", "ord:1.2")
    assert req.path == "/trading/master_account/jupiter%2Frouter/orders/ord%3A1.2/cancel"
    assert rest.quote_segment("a b?#%") == "a%20b%3F%23%25"
    assert rest.cancel_path("a", "b", "c") == "/trading/a/b/orders/c/cancel"


def _order(**kw: Any) -> OrderRequest:
    base: dict[str, Any] = {
        "account": "master_account",
        "exchange": "binance",
        "market": "BTC-USDT",
        "side": Side.BUY,
        "order_type": OrderType.LIMIT,
        "amount": Decimal("0.00001"),
        "price": Decimal("50000.10"),
    }
    base.update(kw)
    return OrderRequest(**base)


def test_place_order_limit() -> None:
    req = rest.build_place_order(_order())
    assert req.method == "POST" and req.path == "/trading/orders" and not req.idempotent
    body = _body(req)
    assert body == {
        "account_name": "master_account",
        "connector_name": "binance",
        "trading_pair": "BTC-USDT",
        "trade_type": "BUY",
        "amount": "0.00001",
        "order_type": "LIMIT",
        "price": "50000.10",
        "position_action": "OPEN",
    }
    validate_request("POST", "/trading/orders", body)


def test_place_order_market_without_price() -> None:
    req = rest.build_place_order(
        _order(
            side=Side.SELL,
            order_type=OrderType.MARKET,
            price=None,
            amount=Decimal("1E+2"),
            position_action=PositionAction.CLOSE,
        )
    )
    body = _body(req)
    assert "price" not in body
    assert body["amount"] == "100" and body["trade_type"] == "SELL"
    assert body["position_action"] == "CLOSE" and body["order_type"] == "MARKET"
    validate_request("POST", "/trading/orders", body)


def test_encode_decimal_plain() -> None:
    assert rest.encode_decimal(Decimal("1E-8")) == "0.00000001"
    assert rest.encode_decimal(Decimal("123.4500")) == "123.4500"


def test_cancel_has_no_body() -> None:
    req = rest.build_cancel_order("a", "binance", "x1")
    assert req.method == "POST" and req.body is None and not req.idempotent
    validate_request(
        "POST", "/trading/{account_name}/{connector_name}/orders/{client_order_id}/cancel", None
    )


def test_active_orders() -> None:
    req = rest.build_active_orders()
    assert req.idempotent and _body(req) == {"limit": 100}
    validate_request("POST", "/trading/orders/active", _body(req))
    req = rest.build_active_orders(
        accounts=["a"], exchanges=("binance",), markets=["BTC-USDT"], limit=5, cursor="c1"
    )
    body = _body(req)
    assert body == {
        "account_names": ["a"],
        "connector_names": ["binance"],
        "trading_pairs": ["BTC-USDT"],
        "limit": 5,
        "cursor": "c1",
    }
    validate_request("POST", "/trading/orders/active", body)


def test_order_search() -> None:
    req = rest.build_order_search(
        accounts=["a"],
        status=OrderStatus.FILLED,
        start_ms=1_700_000_000_000,
        end_ms=1_700_000_100_000,
        limit=1000,
    )
    body = _body(req)
    assert req.path == "/trading/orders/search" and req.idempotent
    assert body["status"] == "FILLED" and body["start_time"] == 1_700_000_000_000
    assert isinstance(body["end_time"], int) and "cursor" not in body
    validate_request("POST", "/trading/orders/search", body)


def test_trades() -> None:
    req = rest.build_trades(
        sides=[Side.BUY, Side.SELL], markets=["BTC-USDT"], start_ms=1, end_ms=2, cursor="x"
    )
    body = _body(req)
    assert body["trade_types"] == ["BUY", "SELL"] and body["start_time"] == 1
    assert req.path == "/trading/trades" and req.idempotent
    validate_request("POST", "/trading/trades", body)


def test_portfolio_state() -> None:
    req = rest.build_portfolio_state(accounts=["a"], exchanges=["binance"], refresh=True)
    body = _body(req)
    assert body == {
        "account_names": ["a"],
        "connector_names": ["binance"],
        "skip_gateway": False,
        "refresh": True,
    }
    validate_request("POST", "/portfolio/state", body)


def test_market_data_builders() -> None:
    cases = [
        (rest.build_prices("binance", ["BTC-USDT"]), "/market-data/prices"),
        (rest.build_order_book("binance", "BTC-USDT", depth=1000), "/market-data/order-book"),
        (rest.build_candles("binance", "BTC-USDT"), "/market-data/candles"),
    ]
    for req, path in cases:
        assert req.path == path and req.method == "POST" and req.idempotent
        validate_request("POST", path, _body(req))
    assert _body(cases[1][0])["depth"] == 1000
    assert _body(cases[2][0]) == {
        "connector_name": "binance",
        "trading_pair": "BTC-USDT",
        "interval": "1m",
        "max_records": 500,
    }
    hist = rest.build_historical_candles(
        "binance", "BTC-USDT", "1h", 1_700_000_000_000, 1_700_003_600_000
    )
    validate_request("POST", "/market-data/historical-candles", _body(hist))
    assert _body(hist)["end_time"] == 1_700_003_600_000


def test_builder_body_invalid_is_caught_by_schema() -> None:
    # Guard the guard: the schema helper does reject a wrong body.
    with pytest.raises(AssertionError):
        validate_request("POST", "/market-data/order-book", {"connector_name": "x"})


# -- parsers ------------------------------------------------------------------------

ORDER = {
    "order_id": "buy-BTC-USDT-1700000000123456",
    "account_name": "master_account",
    "connector_name": "binance",
    "trading_pair": "BTC-USDT",
    "trade_type": "BUY",
    "order_type": "LIMIT",
    "amount": 0.01,
    "price": "50000.5",
    "status": "PARTIALLY_FILLED",
    "filled_amount": 0.004,
    "average_fill_price": 50000.5,
    "fee_paid": 0.02,
    "fee_currency": "USDT",
    "created_at": "2024-01-01T00:00:00.123456+00:00",
    "updated_at": "2024-01-01T00:00:05",
    "exchange_order_id": "123456789",
    "error_message": None,
    "_cursor_id": "x",
}


def _enc(obj: object) -> bytes:
    return json.dumps(obj).encode()


def test_parse_server_info() -> None:
    body = b'{"name":"Hummingbot API","version":"1.0.1","status":"running"}'
    validate_response("GET", "/", 200, body)
    assert rest.parse_server_info(body) == ServerInfo(
        name="Hummingbot API", version="1.0.1", status="running"
    )


def test_parse_str_list() -> None:
    body = b'["master_account","other"]'
    validate_response("GET", "/accounts/", 200, body)
    assert rest.parse_str_list(body) == ["master_account", "other"]
    assert rest.parse_str_list("[]") == []


def test_parse_trading_rules() -> None:
    body = _enc(
        {
            "BTC-USDT": {
                "min_order_size": 0.00001,
                "max_order_size": 9000,
                "min_price_increment": 0.01,
                "min_base_amount_increment": "0.00001",
                "min_quote_amount_increment": 1e-8,
                "min_notional_size": 5.0,
                "min_order_value": 0,
                "max_price_significant_digits": 8,
                "supports_limit_orders": True,
                "supports_market_orders": True,
                "buy_order_collateral_token": "USDT",
                "sell_order_collateral_token": "USDT",
            },
            "ETH-USDT": {
                "min_order_size": "0.001",
                "max_order_size": 1e56,
                "min_price_increment": 1e-56,
                "min_base_amount_increment": 0.0001,
            },
            "NOPE-USDT": {"error": "Trading pair not found"},
        }
    )
    rules = rest.parse_trading_rules(body)
    assert set(rules) == {"BTC-USDT", "ETH-USDT"}
    btc = rules["BTC-USDT"]
    assert btc.min_order_size == Decimal("0.00001") and btc.max_order_size == Decimal(9000)
    assert btc.min_price_increment == Decimal("0.01")
    assert btc.min_notional_size == Decimal("5.0")
    eth = rules["ETH-USDT"]
    assert eth.max_order_size is None and eth.min_notional_size == 0
    assert eth.min_price_increment == Decimal("1e-56")
    with pytest.raises(MalformedResponse):
        rest.parse_trading_rules(b'{"X-Y":{"min_order_size":1}}')


def test_parse_order_types() -> None:
    body = b'{"connector":"binance","supported_order_types":["LIMIT","LIMIT_MAKER","MARKET"]}'
    assert rest.parse_order_types(body) == frozenset(OrderType)
    assert rest.parse_order_types(b'["limit","amm_swap"]') == frozenset({OrderType.LIMIT})


def test_parse_place_order() -> None:
    body = _enc(
        {
            "order_id": "buy-BTC-USDT-1",
            "account_name": "master_account",
            "connector_name": "binance",
            "trading_pair": "BTC-USDT",
            "trade_type": "BUY",
            "amount": "0.01",
            "order_type": "LIMIT",
            "price": "50000",
            "status": "submitted",
        }
    )
    validate_response("POST", "/trading/orders", 201, body)
    placed = rest.parse_place_order(body)
    assert placed == rest.PlacedOrder(
        order_id="buy-BTC-USDT-1",
        account="master_account",
        exchange="binance",
        market="BTC-USDT",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        amount=Decimal("0.01"),
        price=Decimal(50000),
        status="submitted",
    )
    market = json.loads(body)
    market.update(order_type="MARKET", price=None)
    assert rest.parse_place_order(_enc(market)).price is None
    market["order_id"] = ""
    with pytest.raises(MalformedResponse):
        rest.parse_place_order(_enc(market))


def test_parse_cancel() -> None:
    body = b'{"message":"Order cancellation initiated for x1"}'
    assert rest.parse_cancel(body) == "Order cancellation initiated for x1"
    assert rest.parse_cancel(b'"ok"') == "ok"


def test_parse_orders_page() -> None:
    failed = dict(ORDER, order_id="o2", status="failed", error_message="Insufficient balance: x")
    failed.update(fee_paid=None, filled_amount=0, average_fill_price=None, price=None)
    failed.update(created_at=1700000000.5, updated_at=None, order_type="limit_maker")
    body = _enc(
        {
            "data": [ORDER, failed],
            "pagination": {"limit": 100, "has_more": True, "next_cursor": "0:", "total_count": 7},
        }
    )
    validate_response("POST", "/trading/orders/search", 200, body)
    page = rest.parse_orders_page(body)
    assert page.has_more and page.next_cursor == "0:" and page.total_count == 7
    o = page.items[0]
    assert o.order_id == ORDER["order_id"] and o.side is Side.BUY
    assert o.status is OrderStatus.PARTIALLY_FILLED and o.order_type is OrderType.LIMIT
    assert o.amount == Decimal("0.01") and o.price == Decimal("50000.5")
    assert o.filled_amount == Decimal("0.004") and o.fee_paid == Decimal("0.02")
    assert o.created_at == pytest.approx(1704067200.123456)
    assert o.updated_at == 1704067205.0
    assert o.exchange_order_id == "123456789"
    f = page.items[1]
    assert f.status is OrderStatus.FAILED and f.error_message == "Insufficient balance: x"
    assert f.fee_paid == 0 and f.price is None and f.updated_at == f.created_at == 1700000000.5
    assert f.order_type is OrderType.LIMIT_MAKER


@pytest.mark.parametrize(
    ("wire", "status"),
    [
        ("open", OrderStatus.OPEN),
        ("Canceled", OrderStatus.CANCELLED),
        ("PENDING_CREATE", OrderStatus.SUBMITTED),
        ("pending cancel", OrderStatus.PENDING_CANCEL),
    ],
)
def test_order_status_spellings(wire: str, status: OrderStatus) -> None:
    page = rest.parse_orders_page(_enc({"data": [dict(ORDER, status=wire)], "pagination": {}}))
    assert page.items[0].status is status


def test_parse_trades_page() -> None:
    trade = {
        "trade_id": "t1",
        "order_id": "o1",
        "account_name": "master_account",
        "connector_name": "binance",
        "trading_pair": "BTC-USDT",
        "trade_type": "SELL",
        "amount": 0.5,
        "price": 50001.25,
        "fee_paid": 0.05,
        "fee_currency": "USDT",
        "timestamp": "2024-01-01T00:00:00",
    }
    orphan = dict(trade, trade_id="t2", order_id=None, account_name=None, connector_name=None)
    orphan["timestamp"] = 1700000000.25
    body = _enc(
        {
            "data": [trade, orphan],
            "pagination": {"limit": 2, "has_more": False, "next_cursor": None},
        }
    )
    validate_response("POST", "/trading/trades", 200, body)
    page = rest.parse_trades_page(body)
    t = page.items[0]
    assert t.side is Side.SELL and t.price == Decimal("50001.25") and t.timestamp == 1704067200.0
    assert t.fee_paid == Decimal("0.05") and t.fee_currency == "USDT"
    assert page.items[1].order_id == "" and page.items[1].timestamp == 1700000000.25
    assert not page.has_more and page.next_cursor is None


def test_parse_balances() -> None:
    body = _enc(
        {
            "master_account": {
                "binance": [
                    {
                        "token": "BTC",
                        "units": 1.5,
                        "price": 50000,
                        "value": 75000,
                        "available_units": 1.25,
                    },
                    {"token": "USDT", "units": "1000.5", "price": 1, "value": 1000.5},
                ],
                "kucoin": [],
            }
        }
    )
    validate_response("POST", "/portfolio/state", 200, body)
    assert rest.parse_balances(body) == [
        Balance(
            account="master_account",
            exchange="binance",
            asset="BTC",
            total=Decimal("1.5"),
            available=Decimal("1.25"),
        ),
        Balance(
            account="master_account",
            exchange="binance",
            asset="USDT",
            total=Decimal("1000.5"),
            available=Decimal("1000.5"),
        ),
    ]


def test_parse_prices() -> None:
    body = (
        b'{"connector":"binance","prices":{"BTC-USDT":50000.12,"ETH-USDT":3000},'
        b'"timestamp":1700000000.5}'
    )
    validate_response("POST", "/market-data/prices", 200, body)
    prices = rest.parse_prices(body)
    assert prices.exchange == "binance" and prices.timestamp == 1700000000.5
    assert prices.prices == {"BTC-USDT": Decimal("50000.12"), "ETH-USDT": Decimal(3000)}
    assert rest.parse_prices(b'{"prices":{"A-B":null}}').prices == {}


def test_parse_order_book() -> None:
    body = _enc(
        {
            "trading_pair": "BTC-USDT",
            "bids": [{"price": 50000.5, "amount": 0.1}, {"price": 50000, "amount": 2}],
            "asks": [{"price": 50001, "amount": 0.3}],
            "timestamp": 1700000000.75,
        }
    )
    validate_response("POST", "/market-data/order-book", 200, body)
    book = rest.parse_order_book(body, "binance", "BTC-USDT")
    assert book.best_bid == Level(Decimal("50000.5"), Decimal("0.1"))
    assert book.asks == (Level(Decimal(50001), Decimal("0.3")),)
    assert book.exchange == "binance" and book.timestamp == 1700000000.75
    pairs = rest.parse_order_book(b'{"bids":[["1","2"]],"asks":[]}', "x", "A-B")
    assert pairs.bids == (Level(Decimal(1), Decimal(2)),) and pairs.timestamp == 0.0


def test_parse_candles() -> None:
    candle = {
        "timestamp": 1700000040.0,
        "open": 1.5,
        "high": 2,
        "low": "1",
        "close": 1.75,
        "volume": 10,
        "quote_asset_volume": 15,
        "n_trades": 3,
        "taker_buy_base_volume": 5,
        "taker_buy_quote_volume": 7,
    }
    candles = rest.parse_candles(_enc([candle, dict(candle, timestamp=1700000100)]))
    assert [c.timestamp for c in candles] == [1700000040.0, 1700000100.0]
    assert candles[0].close == Decimal("1.75") and candles[0].volume == 10


def test_parse_tickers() -> None:
    body = (
        b'{"connector":"binance","count":2,"tickers":{"BTC-USDT":'
        b'{"price":50000,"volume":"12.5","timestamp":1700000000},"X-Y":{}}}'
    )
    t = rest.parse_tickers(body)
    assert t["BTC-USDT"] == rest.TickerStats(
        market="BTC-USDT", price=Decimal(50000), volume=Decimal("12.5"), timestamp=1700000000.0
    )
    assert t["X-Y"].price is None and t["X-Y"].timestamp == 0.0


# -- malformed bodies ---------------------------------------------------------------

PARSERS: dict[str, Callable[[bytes], object]] = {
    "server_info": rest.parse_server_info,
    "str_list": rest.parse_str_list,
    "trading_rules": rest.parse_trading_rules,
    "order_types": rest.parse_order_types,
    "place_order": rest.parse_place_order,
    "cancel": rest.parse_cancel,
    "orders": rest.parse_orders_page,
    "trades": rest.parse_trades_page,
    "balances": rest.parse_balances,
    "prices": rest.parse_prices,
    "order_book": lambda b: rest.parse_order_book(b, "x", "A-B"),
    "candles": rest.parse_candles,
    "tickers": rest.parse_tickers,
}


@pytest.mark.parametrize("name", sorted(PARSERS))
@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\xff\xfe\x00",
        b"Internal Server Error",
        b"{",
        b"null",
        b"1e999",
        b"NaN",
        b'{"detail":"Not Found"}',
        b'"\xff"',
        b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
    ],
)
def test_garbage_is_malformed(name: str, body: bytes) -> None:
    with pytest.raises(MalformedResponse) as info:
        PARSERS[name](body)
    assert len(info.value.excerpt) <= 200


def test_deep_nesting_is_malformed() -> None:
    body = b"[" * 100_000 + b"]" * 100_000
    for parse in PARSERS.values():
        with pytest.raises(MalformedResponse):
            parse(body)


@pytest.mark.parametrize(
    "mutation",
    [
        {"amount": "NaN"},
        {"amount": "Infinity"},
        {"amount": "1e999999"},
        {"amount": "1e-999999"},
        {"amount": True},
        {"price": [1]},
        {"status": "EXPLODED"},
        {"trade_type": "HOLD"},
        {"order_type": "STOP"},
        {"created_at": "not a time"},
        {"created_at": -1},
        {"created_at": 1e300},
        {"order_id": None},
        {"order_id": 5},
    ],
)
def test_order_field_mutations_are_malformed(mutation: dict[str, object]) -> None:
    body = _enc({"data": [dict(ORDER, **mutation)], "pagination": {}})
    with pytest.raises(MalformedResponse):
        rest.parse_orders_page(body)


def test_huge_json_number_is_malformed() -> None:
    body = (
        b'{"data":['
        + json.dumps(ORDER).replace('"amount": 0.01', '"amount": 1e400').encode()
        + b"]}"
    )
    with pytest.raises(MalformedResponse):
        rest.parse_orders_page(body)
    with pytest.raises(MalformedResponse):
        rest.parse_order_book(b'{"bids":[],"asks":[],"timestamp":1e400}', "x", "A-B")


def test_missing_required_fields_are_malformed() -> None:
    for key in ("order_id", "trading_pair", "trade_type", "amount", "status"):
        broken = {k: v for k, v in ORDER.items() if k != key}
        with pytest.raises(MalformedResponse):
            rest.parse_orders_page(_enc({"data": [broken]}))


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=10)
    | st.sampled_from(["NaN", "1e999999", "2024-01-01T00:00:00", "BUY", "open", "LIMIT"]),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=15,
)
_ORDER_KEYS = sorted(ORDER)


@st.composite
def _mutated_order(draw: st.DrawFn) -> dict[str, object]:
    order = dict(ORDER)
    for key in draw(st.lists(st.sampled_from(_ORDER_KEYS), max_size=3)):
        if draw(st.booleans()):
            order.pop(key, None)
        else:
            order[key] = draw(_json)
    return order


@settings(max_examples=200)
@given(st.sampled_from(sorted(PARSERS)), st.binary(max_size=100))
def test_random_bytes_only_malformed(name: str, data: bytes) -> None:
    try:
        PARSERS[name](data)
    except MalformedResponse as exc:
        assert len(exc.excerpt) <= 200


@settings(max_examples=300)
@given(st.sampled_from(sorted(PARSERS)), _json)
def test_random_json_only_malformed(name: str, value: object) -> None:
    with contextlib.suppress(MalformedResponse):
        PARSERS[name](msgspec.json.encode(value))


@settings(max_examples=300)
@given(_mutated_order())
def test_mutated_orders_only_malformed(order: dict[str, object]) -> None:
    body = msgspec.json.encode({"data": [order], "pagination": {"has_more": False}})
    try:
        page = rest.parse_orders_page(body)
    except MalformedResponse:
        return
    assert isinstance(page.items[0].amount, Decimal)
