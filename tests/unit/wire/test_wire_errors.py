"""Tests of hbtrio._wire.errors: HTTP error mapping and the rejection table."""

from __future__ import annotations

import json
import re
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hbtrio import (
    AuthenticationFailed,
    HbtrioError,
    InputValidationError,
    InsufficientFunds,
    InvalidOrder,
    MinOrderSizeNotMet,
    NotFound,
    OrderError,
    OrderNotFound,
    OrderRejected,
    PriceOutOfRange,
    RequestError,
    ServerError,
)
from hbtrio._wire.errors import (
    DEFAULT_REJECTIONS,
    RejectionTable,
    error_from_response,
    extract_detail,
)
from hbtrio.models import OrderRequest, OrderType, Side

JSON = "application/json"
PLACE = ("POST", "/trading/orders")
REQ = OrderRequest(
    account="master_account",
    exchange="binance",
    market="BTC-USDT",
    side=Side.BUY,
    order_type=OrderType.LIMIT,
    amount=Decimal("0.00001"),
    price=Decimal(50000),
)


def _detail(text: str) -> bytes:
    return json.dumps({"detail": text}).encode()


def _place(status: int, text: str) -> HbtrioError:
    return error_from_response(
        status, JSON, _detail(text), method="POST", path="/trading/orders", request=REQ
    )


@pytest.mark.parametrize(
    ("text", "exc_type"),
    [
        ("Price is required for LIMIT and LIMIT_MAKER orders", InvalidOrder),
        (
            "Trading pair 'FOO-BAR' not supported on binance. Available pairs: BTC-USDT, ...",
            InvalidOrder,
        ),
        ("Order type 'STOP' not supported. Supported types: LIMIT, MARKET", InvalidOrder),
        (
            "Order amount 0.000001 is below minimum order size 0.00001 for BTC-USDT",
            MinOrderSizeNotMet,
        ),
        (
            "Order notional value 1.5 is below minimum notional size 5 for BTC-USDT. "
            "Increase the amount or price to meet the minimum requirement.",
            MinOrderSizeNotMet,
        ),
        ("Post-only order would cross the book", InvalidOrder),
        ("Something else entirely", InvalidOrder),
    ],
)
def test_place_order_400_texts(text: str, exc_type: type[OrderError]) -> None:
    exc = _place(400, text)
    assert type(exc) is exc_type
    assert isinstance(exc, OrderError)
    assert exc.status == 400 and exc.detail == text and exc.reason == text
    assert exc.method == "POST" and exc.path == "/trading/orders" and not exc.retryable
    assert exc.request is REQ
    assert text[:40] in str(exc)
    assert "0.00001" not in str(exc).replace(text, "")  # no request body echoed


def test_account_not_found_is_not_found() -> None:
    exc = _place(404, "Account 'ghost' not found")
    assert type(exc) is NotFound and exc.status == 404


def test_cancel_404_is_order_not_found() -> None:
    path = "/trading/master_account/binance/orders/buy-1/cancel"
    exc = error_from_response(404, JSON, _detail("Order buy-1 not found"), method="POST", path=path)
    assert isinstance(exc, OrderNotFound) and isinstance(exc, NotFound)
    assert exc.order_id == "buy-1" and exc.status == 404
    plain = error_from_response(404, JSON, b'{"detail":"Not Found"}', method="POST", path=path)
    assert isinstance(plain, OrderNotFound)


def test_unknown_path_404() -> None:
    exc = error_from_response(
        404, JSON, b'{"detail":"Not Found"}', method="GET", path="/market-data/tickers/binance"
    )
    assert type(exc) is NotFound and "Not Found" in str(exc)
    order = error_from_response(404, JSON, _detail("Order x not found"), method="GET", path="/x")
    assert isinstance(order, OrderNotFound)


@pytest.mark.parametrize("text", ["Not authenticated", "Incorrect username or password"])
def test_401(text: str) -> None:
    exc = error_from_response(401, JSON, _detail(text), method="GET", path="/accounts/")
    assert isinstance(exc, AuthenticationFailed) and exc.status == 401 and text in str(exc)
    assert not exc.retryable


def test_422_validation() -> None:
    detail = [
        {
            "type": "greater_than",
            "loc": ["body", "amount"],
            "msg": "Input should be greater than 0",
            "input": -1,
            "ctx": {"gt": 0},
        },
        {
            "type": "missing",
            "loc": ["body", "trading_pair"],
            "msg": "Field required",
            "input": {"secret_field": "xyz"},
        },
    ]
    exc = error_from_response(
        422, JSON, json.dumps({"detail": detail}).encode(), method="POST", path="/trading/orders"
    )
    assert isinstance(exc, InputValidationError)
    assert exc.argument == "amount" and exc.detail == detail and exc.status == 422
    assert "greater than 0" in exc.rule and "trading_pair: Field required" in exc.rule
    assert "xyz" not in str(exc)


def test_422_maps_wire_names_and_odd_shapes() -> None:
    body = json.dumps({"detail": [{"loc": ["query", "trading_pair"], "msg": "bad"}]}).encode()
    exc = error_from_response(422, JSON, body, method="GET", path="/x")
    assert isinstance(exc, InputValidationError) and exc.argument == "market"
    odd = error_from_response(422, JSON, b'{"detail":"weird"}', method="GET", path="/x")
    assert isinstance(odd, InputValidationError) and odd.rule == "weird"
    empty = error_from_response(422, JSON, b"", method="GET", path="/x")
    assert isinstance(empty, InputValidationError) and empty.argument == "request"
    listy = error_from_response(422, JSON, b'{"detail":[1, {"loc":"x"}]}', method="GET", path="/x")
    assert isinstance(listy, InputValidationError)


def test_503_504_retryable() -> None:
    exc = _place(503, "Trading rules not yet loaded for binance. Please try again in a moment.")
    assert type(exc) is ServerError and exc.retryable and exc.status == 503
    feed = error_from_response(504, JSON, _detail("feed not ready"), method="POST", path="/p")
    assert type(feed) is ServerError and feed.retryable


@pytest.mark.parametrize(
    "text", ["Unexpected error placing trade: boom", "Failed to place trade: exchange down"]
)
def test_500_texts(text: str) -> None:
    exc = _place(500, text)
    assert type(exc) is ServerError and not exc.retryable
    assert exc.detail == text and text in str(exc)


def test_500_text_plain() -> None:
    exc = error_from_response(
        500,
        "text/plain; charset=utf-8",
        b"Internal Server Error",
        **dict(zip(("method", "path"), PLACE, strict=True)),
    )
    assert type(exc) is ServerError and exc.status == 500
    assert exc.detail == "Internal Server Error" and "Internal Server Error" in str(exc)


def test_other_statuses() -> None:
    limited = error_from_response(429, None, b"", method="GET", path="/")
    assert type(limited) is RequestError and limited.retryable and "HTTP 429" in str(limited)
    bad = error_from_response(
        400, JSON, _detail("Invalid cursor 'x'"), method="POST", path="/trading/orders/search"
    )
    assert type(bad) is RequestError and not isinstance(bad, OrderError)
    teapot = error_from_response(418, JSON, b"{}", method="GET", path="/")
    assert type(teapot) is RequestError
    gateway = error_from_response(
        502, "text/html", b"<html>bad gateway</html>", method="GET", path="/"
    )
    assert type(gateway) is ServerError and not gateway.retryable
    forbidden = error_from_response(403, JSON, _detail("Forbidden"), method="GET", path="/")
    assert isinstance(forbidden, AuthenticationFailed)


def test_cancel_400_is_order_error() -> None:
    exc = error_from_response(
        400, JSON, _detail("nope"), method="POST", path="/trading/a/binance/orders/x/cancel"
    )
    assert isinstance(exc, InvalidOrder)


def test_extract_detail() -> None:
    assert extract_detail(JSON, b'{"detail":"x"}') == "x"
    assert extract_detail(None, b'{"detail":[{"a":1}]}') == [{"a": 1}]
    assert extract_detail(JSON, b"") is None
    assert extract_detail(JSON, b"{broken") == "{broken"
    assert extract_detail(JSON, b'{"other":1}') == '{"other":1}'
    assert extract_detail("text/plain", b"a\xffb") == "a\ufffdb"
    assert len(extract_detail(None, b"x" * 10_000)) <= 300


@settings(max_examples=300)
@given(
    st.integers(min_value=100, max_value=599),
    st.one_of(st.none(), st.sampled_from([JSON, "text/plain", "text/html", ""])),
    st.one_of(
        st.binary(max_size=200),
        st.builds(
            lambda d: json.dumps({"detail": d}).encode(),
            st.recursive(
                st.none() | st.text() | st.integers(),
                lambda c: (
                    st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3)
                ),
                max_leaves=10,
            ),
        ),
    ),
    st.sampled_from(["/trading/orders", "/trading/a/b/orders/c/cancel", "/accounts/", "/"]),
    st.booleans(),
)
def test_never_crashes(
    status: int, content_type: str | None, body: bytes, path: str, with_request: bool
) -> None:
    exc = error_from_response(
        status,
        content_type,
        body,
        method="POST",
        path=path,
        request=REQ if with_request else None,
    )
    assert isinstance(exc, HbtrioError)
    assert exc.status == status and exc.path == path and exc.method == "POST"
    assert len(str(exc)) < 1000


# -- rejection table ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("connector", "reason", "exc_type"),
    [
        ("sim", "Insufficient balance: need 100 USDT, have 5", InsufficientFunds),
        ("sim", "Order price is outside the allowed range: 1 not in [90, 110]", PriceOutOfRange),
        ("sim", "LIMIT_MAKER order would cross the book", InvalidOrder),
        ("binance", "Account has insufficient balance for requested action.", InsufficientFunds),
        ("binance", "Filter failure: PRICE_FILTER", PriceOutOfRange),
        ("binance", "Filter failure: PERCENT_PRICE_BY_SIDE", PriceOutOfRange),
        ("binance", "Filter failure: LOT_SIZE", MinOrderSizeNotMet),
        ("binance", "Filter failure: MIN_NOTIONAL", MinOrderSizeNotMet),
        ("binance_perpetual", "Filter failure: NOTIONAL", MinOrderSizeNotMet),
        ("binance", "Order would immediately match and take.", InvalidOrder),
        ("kucoin", "Balance insufficient!", InsufficientFunds),
        ("kucoin", "Order size below the minimum requirement.", MinOrderSizeNotMet),
        ("okx", "Order price is not within the price limit", PriceOutOfRange),
        ("bybit", "ab not enough for new order", InsufficientFunds),
        ("gate_io", "BALANCE_NOT_ENOUGH", InsufficientFunds),
        ("binance", "Something unheard of", OrderRejected),
        ("sim", "", OrderRejected),
        ("sim", None, OrderRejected),
    ],
)
def test_default_rejections(connector: str, reason: str | None, exc_type: type) -> None:
    assert DEFAULT_REJECTIONS.classify(reason, connector) is exc_type


def test_connector_rules_do_not_leak() -> None:
    # A Binance-only text is unknown elsewhere.
    assert DEFAULT_REJECTIONS.classify("Filter failure: LOT_SIZE", "kucoin") is OrderRejected
    assert DEFAULT_REJECTIONS.classify("Filter failure: LOT_SIZE", None) is OrderRejected


def test_error_for_keeps_reason_and_request() -> None:
    exc = DEFAULT_REJECTIONS.error_for(
        "Insufficient balance: need 100 USDT", request=REQ, order_id="o1", status=None
    )
    assert isinstance(exc, InsufficientFunds)
    assert exc.reason == "Insufficient balance: need 100 USDT" and exc.request is REQ
    assert exc.order_id == "o1" and "o1" in str(exc)
    unknown = DEFAULT_REJECTIONS.error_for("x" * 1000)
    assert type(unknown) is OrderRejected and unknown.reason == "x" * 1000
    assert len(str(unknown)) < 400
    assert "no reason" in str(DEFAULT_REJECTIONS.error_for(None))


def test_user_extension() -> None:
    table = RejectionTable()
    assert table.classify("MAGIC-42", "myex") is OrderRejected
    table.add(r"magic-\d+", PriceOutOfRange, connector="myex")
    assert table.classify("MAGIC-42", "myex") is PriceOutOfRange
    assert table.classify("MAGIC-42", "myex_perpetual") is PriceOutOfRange
    assert table.classify("MAGIC-42", "other") is OrderRejected
    # User rules override defaults.
    table.add("insufficient balance", InvalidOrder)
    assert table.classify("Insufficient balance: x", "sim") is InvalidOrder
    table.add(re.compile("CaseSensitive"), InsufficientFunds)
    assert table.classify("casesensitive", None) is OrderRejected
    assert table.classify("CaseSensitive", None) is InsufficientFunds
    with pytest.raises(TypeError):
        table.add("x", ValueError)  # type: ignore[arg-type]
    # The shared default table was not changed.
    assert DEFAULT_REJECTIONS.classify("MAGIC-42", "myex") is OrderRejected


def test_empty_table() -> None:
    table = RejectionTable(defaults=False)
    assert table.classify("Insufficient balance", "sim") is OrderRejected


def test_custom_table_in_error_from_response() -> None:
    table = RejectionTable(defaults=False)
    table.add("weird", PriceOutOfRange)
    exc = error_from_response(
        400,
        JSON,
        _detail("weird thing"),
        method="POST",
        path="/trading/orders",
        request=REQ,
        rejections=table,
    )
    assert isinstance(exc, PriceOutOfRange)
