"""REST request builders and response parsers, one pair per endpoint (sans-IO).

Builders take already-validated values (see ``hbtrio._validation``: public
enums, ``Decimal`` amounts, times as integer milliseconds) and return an
``HttpRequest``: method, the exact slash-exact path with every path segment
percent-encoded plus the query string, the JSON body, and whether sending it
twice is harmless (``idempotent``; only placing and cancelling orders are not).

Parsers take the raw response body and return public models of
``hbtrio.models``. They decode with msgspec decoders built once at import
into private wire structs, then convert: decimals arrive as JSON numbers or
strings and always become ``Decimal`` (never through ``float``); timestamps
arrive as float seconds or ISO-8601 strings and become float epoch seconds.
Any malformed body (invalid JSON or UTF-8, wrong types, missing fields, absurd
numbers) raises ``MalformedResponse``, never anything else; the
caller may set ``method``/``path`` on it.

============================  =====================================  ==========================
endpoint                      builder                                parser
============================  =====================================  ==========================
``GET /``                     ``build_server_info``              ``parse_server_info``
``GET /accounts/``            ``build_accounts``                 ``parse_str_list``
``GET /connectors/``          ``build_connectors``               ``parse_str_list``
trading rules                 ``build_trading_rules``            ``parse_trading_rules``
order types                   ``build_order_types``              ``parse_order_types``
place order                   ``build_place_order``              ``parse_place_order``
cancel                        ``build_cancel_order``             ``parse_cancel``
open orders                   ``build_active_orders``            ``parse_orders_page``
order history                 ``build_order_search``             ``parse_orders_page``
fills                         ``build_trades``                   ``parse_trades_page``
balances                      ``build_portfolio_state``          ``parse_balances``
prices                        ``build_prices``                   ``parse_prices``
order book                    ``build_order_book``               ``parse_order_book``
candles                       ``build_candles``                  ``parse_candles``
historical candles            ``build_historical_candles``       ``parse_candles``
tickers (newer servers)       ``build_tickers``                  ``parse_tickers``
============================  =====================================  ==========================
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlencode

import msgspec

from .._errors import MalformedResponse
from ..models import (
    Balance,
    Candle,
    Level,
    Order,
    OrderBook,
    OrderRequest,
    OrderStatus,
    OrderType,
    Page,
    ServerInfo,
    Side,
    Trade,
    TradingRule,
)
from ._common import (
    book_levels,
    decimal_value,
    guarded,
    malformed,
    optional_decimal,
    order_status,
    order_type,
    side,
    timestamp,
)
from .ws import WireCandle, candle_from_wire

__all__ = [
    "HttpRequest",
    "PlacedOrder",
    "Prices",
    "TickerStats",
    "build_accounts",
    "build_active_orders",
    "build_cancel_order",
    "build_candles",
    "build_connectors",
    "build_historical_candles",
    "build_order_book",
    "build_order_search",
    "build_order_types",
    "build_place_order",
    "build_portfolio_state",
    "build_prices",
    "build_server_info",
    "build_tickers",
    "build_trades",
    "build_trading_rules",
    "cancel_path",
    "encode_decimal",
    "parse_balances",
    "parse_cancel",
    "parse_candles",
    "parse_order_book",
    "parse_order_types",
    "parse_orders_page",
    "parse_place_order",
    "parse_prices",
    "parse_server_info",
    "parse_str_list",
    "parse_tickers",
    "parse_trades_page",
    "parse_trading_rules",
    "quote_segment",
]

_NO_LIMIT = Decimal("1e30")


class HttpRequest(msgspec.Struct, frozen=True):
    """One REST request, ready for the transport.

    Attributes:
        method: ``GET`` or ``POST``.
        path: Exact path (segments percent-encoded) plus query string, e.g.
            ``/connectors/jupiter%2Frouter/trading-rules?trading_pairs=SOL-USDC``.
        body: JSON body, or ``None`` for no body.
        idempotent: Whether sending it twice is harmless (safe to retry blindly).
    """

    method: str
    path: str
    body: bytes | None
    idempotent: bool


_ENCODER = msgspec.json.Encoder()
# Order-book requests by (exchange, market, depth): immutable, asked again and again.
_BOOK_REQUESTS: dict[tuple[str, str, int], HttpRequest] = {}
_BOOK_REQUESTS_MAX = 1024


def quote_segment(segment: str) -> str:
    """Percent-encode one path segment (``/`` included), e.g. ``jupiter/router``.

    Args:
        segment: The raw segment.

    Returns:
        The encoded segment.
    """
    return quote(segment, safe="")


def encode_decimal(value: Decimal) -> str:
    """Format a decimal for a request body: plain notation, no exponent.

    The server's models accept a number or a string for amounts and prices; a
    string keeps every digit exact.

    Args:
        value: A finite decimal.

    Returns:
        E.g. ``"0.00001"`` for ``Decimal("1E-5")``.
    """
    return format(value, "f")


def _json(obj: dict[str, Any]) -> bytes:
    return _ENCODER.encode({k: v for k, v in obj.items() if v is not None})


def _list(values: Sequence[str] | None) -> list[str] | None:
    return None if values is None else list(values)


# -- builders ---------------------------------------------------------------------


def build_server_info() -> HttpRequest:
    """``GET /`` (unauthenticated server info)."""
    return HttpRequest("GET", "/", None, True)


def build_accounts() -> HttpRequest:
    """``GET /accounts/`` (account names)."""
    return HttpRequest("GET", "/accounts/", None, True)


def build_connectors() -> HttpRequest:
    """``GET /connectors/`` (connector names)."""
    return HttpRequest("GET", "/connectors/", None, True)


def build_trading_rules(exchange: str, markets: Sequence[str] | None = None) -> HttpRequest:
    """``GET /connectors/{c}/trading-rules`` with a repeated ``trading_pairs`` query.

    Args:
        exchange: Connector name.
        markets: Trading pairs to ask for; ``None`` or empty for all.

    Returns:
        The request.
    """
    path = f"/connectors/{quote_segment(exchange)}/trading-rules"
    if markets:
        path += "?" + urlencode([("trading_pairs", m) for m in markets], quote_via=quote)
    return HttpRequest("GET", path, None, True)


def build_order_types(exchange: str) -> HttpRequest:
    """``GET /connectors/{c}/order-types``.

    Args:
        exchange: Connector name.

    Returns:
        The request.
    """
    return HttpRequest("GET", f"/connectors/{quote_segment(exchange)}/order-types", None, True)


def build_place_order(request: OrderRequest) -> HttpRequest:
    """``POST /trading/orders`` (answers 201). Not idempotent.

    Args:
        request: The validated order.

    Returns:
        The request.
    """
    fields: dict[str, Any] = {
        "account_name": request.account,
        "connector_name": request.exchange,
        "trading_pair": request.market,
        "trade_type": request.side.value,
        "amount": format(request.amount, "f"),
        "order_type": request.order_type.value,
    }
    if request.price is not None:
        fields["price"] = format(request.price, "f")
    fields["position_action"] = request.position_action.value
    return HttpRequest("POST", "/trading/orders", _ENCODER.encode(fields), False)


def cancel_path(account: str, exchange: str, order_id: str) -> str:
    """Return the cancel path of an order (segments percent-encoded).

    Args:
        account: Account name.
        exchange: Connector name.
        order_id: Client order id.

    Returns:
        ``/trading/{account}/{connector}/orders/{order_id}/cancel``.
    """
    return (
        f"/trading/{quote_segment(account)}/{quote_segment(exchange)}"
        f"/orders/{quote_segment(order_id)}/cancel"
    )


def build_cancel_order(account: str, exchange: str, order_id: str) -> HttpRequest:
    """``POST /trading/{account}/{connector}/orders/{order_id}/cancel`` (no body).

    Not idempotent in the transport sense (a retry after a lost answer may see
    404 because the first attempt worked); the caller reconciles.

    Args:
        account: Account name.
        exchange: Connector name.
        order_id: Client order id.

    Returns:
        The request.
    """
    return HttpRequest("POST", cancel_path(account, exchange, order_id), None, False)


def build_active_orders(
    *,
    accounts: Sequence[str] | None = None,
    exchanges: Sequence[str] | None = None,
    markets: Sequence[str] | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> HttpRequest:
    """``POST /trading/orders/active`` (one page of in-flight orders).

    Args:
        accounts: Account names to filter by.
        exchanges: Connector names to filter by.
        markets: Trading pairs to filter by.
        limit: Page size (1-1000).
        cursor: Cursor of the page to fetch.

    Returns:
        The request.
    """
    body = _json(
        {
            "account_names": _list(accounts),
            "connector_names": _list(exchanges),
            "trading_pairs": _list(markets),
            "limit": limit,
            "cursor": cursor,
        }
    )
    return HttpRequest("POST", "/trading/orders/active", body, True)


def build_order_search(
    *,
    accounts: Sequence[str] | None = None,
    exchanges: Sequence[str] | None = None,
    markets: Sequence[str] | None = None,
    status: OrderStatus | None = None,
    start_ms: int | None = None,
    end_ms: int | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> HttpRequest:
    """``POST /trading/orders/search`` (one page of order history).

    Args:
        accounts: Account names to filter by.
        exchanges: Connector names to filter by.
        markets: Trading pairs to filter by.
        status: Only orders in this status.
        start_ms: Earliest creation time, epoch milliseconds.
        end_ms: Latest creation time, epoch milliseconds.
        limit: Page size (1-1000).
        cursor: Cursor of the page to fetch.

    Returns:
        The request.
    """
    body = _json(
        {
            "account_names": _list(accounts),
            "connector_names": _list(exchanges),
            "trading_pairs": _list(markets),
            "status": None if status is None else status.value,
            "start_time": start_ms,
            "end_time": end_ms,
            "limit": limit,
            "cursor": cursor,
        }
    )
    return HttpRequest("POST", "/trading/orders/search", body, True)


def build_trades(
    *,
    accounts: Sequence[str] | None = None,
    exchanges: Sequence[str] | None = None,
    markets: Sequence[str] | None = None,
    sides: Sequence[Side] | None = None,
    start_ms: int | None = None,
    end_ms: int | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> HttpRequest:
    """``POST /trading/trades`` (one page of the account's fills).

    Args:
        accounts: Account names to filter by.
        exchanges: Connector names to filter by.
        markets: Trading pairs to filter by.
        sides: Only fills of these sides.
        start_ms: Earliest fill time, epoch milliseconds.
        end_ms: Latest fill time, epoch milliseconds.
        limit: Page size (1-1000).
        cursor: Cursor of the page to fetch.

    Returns:
        The request.
    """
    body = _json(
        {
            "account_names": _list(accounts),
            "connector_names": _list(exchanges),
            "trading_pairs": _list(markets),
            "trade_types": None if sides is None else [s.value for s in sides],
            "start_time": start_ms,
            "end_time": end_ms,
            "limit": limit,
            "cursor": cursor,
        }
    )
    return HttpRequest("POST", "/trading/trades", body, True)


def build_portfolio_state(
    *,
    accounts: Sequence[str] | None = None,
    exchanges: Sequence[str] | None = None,
    skip_gateway: bool = False,
    refresh: bool = False,
) -> HttpRequest:
    """``POST /portfolio/state`` (balances; cached by the server unless ``refresh``).

    Args:
        accounts: Account names to filter by.
        exchanges: Connector names to filter by.
        skip_gateway: Skip Gateway wallet updates (faster CEX-only queries).
        refresh: Ask the server to refresh balances from the exchanges.

    Returns:
        The request.
    """
    body = _json(
        {
            "account_names": _list(accounts),
            "connector_names": _list(exchanges),
            "skip_gateway": skip_gateway,
            "refresh": refresh,
        }
    )
    return HttpRequest("POST", "/portfolio/state", body, True)


def build_prices(exchange: str, markets: Sequence[str]) -> HttpRequest:
    """``POST /market-data/prices``.

    Args:
        exchange: Connector name.
        markets: Trading pairs.

    Returns:
        The request.
    """
    body = _json({"connector_name": exchange, "trading_pairs": list(markets)})
    return HttpRequest("POST", "/market-data/prices", body, True)


def build_order_book(exchange: str, market: str, depth: int = 10) -> HttpRequest:
    """``POST /market-data/order-book``.

    Args:
        exchange: Connector name.
        market: Trading pair.
        depth: Levels per side (1-1000).

    Returns:
        The request.
    """
    key = (exchange, market, depth)
    cacheable = type(depth) is int and type(exchange) is str and type(market) is str
    if cacheable:
        cached = _BOOK_REQUESTS.get(key)
        if cached is not None:
            return cached
    body = _json({"connector_name": exchange, "trading_pair": market, "depth": depth})
    req = HttpRequest("POST", "/market-data/order-book", body, True)
    if cacheable:
        if len(_BOOK_REQUESTS) >= _BOOK_REQUESTS_MAX:
            _BOOK_REQUESTS.clear()
        _BOOK_REQUESTS[key] = req
    return req


def build_candles(
    exchange: str, market: str, interval: str = "1m", max_records: int = 500
) -> HttpRequest:
    """``POST /market-data/candles`` (recent candles from the live feed).

    Args:
        exchange: Connector name.
        market: Trading pair.
        interval: Candle interval, e.g. ``1m``.
        max_records: Number of candles.

    Returns:
        The request.
    """
    body = _json(
        {
            "connector_name": exchange,
            "trading_pair": market,
            "interval": interval,
            "max_records": max_records,
        }
    )
    return HttpRequest("POST", "/market-data/candles", body, True)


def build_historical_candles(
    exchange: str, market: str, interval: str, start_ms: int, end_ms: int
) -> HttpRequest:
    """``POST /market-data/historical-candles``.

    Args:
        exchange: Connector name.
        market: Trading pair.
        interval: Candle interval.
        start_ms: Range start, epoch milliseconds.
        end_ms: Range end, epoch milliseconds.

    Returns:
        The request.
    """
    body = _json(
        {
            "connector_name": exchange,
            "trading_pair": market,
            "interval": interval,
            "start_time": start_ms,
            "end_time": end_ms,
        }
    )
    return HttpRequest("POST", "/market-data/historical-candles", body, True)


def build_tickers(exchange: str) -> HttpRequest:
    """``GET /market-data/tickers/{c}`` (newer servers only; older ones answer 404).

    Args:
        exchange: Connector name.

    Returns:
        The request.
    """
    return HttpRequest("GET", f"/market-data/tickers/{quote_segment(exchange)}", None, True)


# -- wire structs -----------------------------------------------------------------


class _ServerInfo(msgspec.Struct, frozen=True):
    name: str
    version: str
    status: str


class _RuleOrError(msgspec.Struct, frozen=True, kw_only=True):
    min_order_size: Decimal | None = None
    max_order_size: Decimal | None = None
    min_price_increment: Decimal | None = None
    min_base_amount_increment: Decimal | None = None
    min_notional_size: Decimal | None = None
    error: str | None = None


class _OrderTypes(msgspec.Struct, frozen=True):
    supported_order_types: list[str]
    connector: str | None = None


class _Placed(msgspec.Struct, frozen=True, kw_only=True):
    order_id: str
    account_name: str
    connector_name: str
    trading_pair: str
    trade_type: str
    amount: Decimal
    order_type: str
    price: Decimal | None = None
    status: str = "submitted"


class _Message(msgspec.Struct, frozen=True):
    message: str


class _Pagination(msgspec.Struct, frozen=True, kw_only=True):
    limit: int | None = None
    has_more: bool = False
    next_cursor: str | None = None
    total_count: int | None = None


class _Order(msgspec.Struct, frozen=True, kw_only=True):
    order_id: str
    account_name: str
    connector_name: str
    trading_pair: str
    trade_type: str
    order_type: str
    amount: Decimal
    price: Decimal | None = None
    status: str
    filled_amount: Decimal | None = None
    average_fill_price: Decimal | None = None
    fee_paid: Decimal | None = None
    fee_currency: str | None = None
    created_at: float | str | None = None
    updated_at: float | str | None = None
    exchange_order_id: str | None = None
    error_message: str | None = None


class _OrdersPage(msgspec.Struct, frozen=True):
    data: list[_Order]
    pagination: _Pagination = _Pagination()


class _Trade(msgspec.Struct, frozen=True, kw_only=True):
    trade_id: str
    order_id: str | None = None
    account_name: str | None = None
    connector_name: str | None = None
    trading_pair: str
    trade_type: str
    amount: Decimal
    price: Decimal
    fee_paid: Decimal | None = None
    fee_currency: str | None = None
    timestamp: float | str


class _TradesPage(msgspec.Struct, frozen=True):
    data: list[_Trade]
    pagination: _Pagination = _Pagination()


class _Holding(msgspec.Struct, frozen=True, kw_only=True):
    token: str
    units: Decimal
    available_units: Decimal | None = None


class _Prices(msgspec.Struct, frozen=True, kw_only=True):
    connector: str | None = None
    prices: dict[str, Decimal | None]
    timestamp: float | str | None = None


class _OrderBook(msgspec.Struct, frozen=True, kw_only=True):
    trading_pair: str | None = None
    # Level objects decode straight into the public type (no copy per level).
    bids: list[Level | tuple[Decimal, Decimal]]
    asks: list[Level | tuple[Decimal, Decimal]]
    timestamp: float | str | None = None


class _TickerEntry(msgspec.Struct, frozen=True, kw_only=True):
    price: Decimal | None = None
    volume: Decimal | None = None
    timestamp: float | str | None = None


class _Tickers(msgspec.Struct, frozen=True, kw_only=True):
    connector: str | None = None
    count: int | None = None
    tickers: dict[str, _TickerEntry]


_D_SERVER_INFO = msgspec.json.Decoder(_ServerInfo)
_D_STR_LIST = msgspec.json.Decoder(list[str])
_D_RULES = msgspec.json.Decoder(dict[str, _RuleOrError])
_D_ORDER_TYPES = msgspec.json.Decoder(_OrderTypes | list[str])
_D_PLACED = msgspec.json.Decoder(_Placed)
_D_MESSAGE = msgspec.json.Decoder(_Message | str)
_D_ORDERS = msgspec.json.Decoder(_OrdersPage)
_D_TRADES = msgspec.json.Decoder(_TradesPage)
_D_BALANCES = msgspec.json.Decoder(dict[str, dict[str, list[_Holding]]])
_D_PRICES = msgspec.json.Decoder(_Prices)
_D_ORDER_BOOK = msgspec.json.Decoder(_OrderBook)


class _OrderBookRaw(msgspec.Struct, frozen=True, kw_only=True):
    """An order book with each level left undecoded (the cached fast path)."""

    trading_pair: str | None = None
    bids: list[msgspec.Raw]
    asks: list[msgspec.Raw]
    timestamp: float | str | None = None


_D_ORDER_BOOK_RAW = msgspec.json.Decoder(_OrderBookRaw)
_D_LEVEL = msgspec.json.Decoder(Level | tuple[Decimal, Decimal])
# Checked levels by their exact JSON text. Successive snapshots of a book repeat
# most levels byte for byte, and decoding two Decimals is most of a book's cost.
# Levels are immutable, so sharing them is safe. Bounded (cleared when full).
_LEVELS: dict[bytes, Level] = {}
_LEVELS_MAX = 4096
_D_CANDLES = msgspec.json.Decoder(list[WireCandle])
_D_TICKERS = msgspec.json.Decoder(_Tickers)


def _utf8(body: bytes | str) -> bytes | str:
    """Refuse invalid UTF-8 up front (msgspec does not check skipped strings)."""
    if not isinstance(body, str):
        body = bytes(body)
        body.decode("utf-8")
    return body


# -- public parse results ----------------------------------------------------------


class PlacedOrder(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to ``POST /trading/orders``: the order was *submitted*.

    Attributes:
        order_id: Client order id the server generated.
        account: Account name.
        exchange: Connector name.
        market: Trading pair.
        side: Buy or sell.
        order_type: Order type.
        amount: Ordered amount.
        price: Limit price, ``None`` for market orders.
        status: The server's status text (``submitted``).
    """

    order_id: str
    account: str
    exchange: str
    market: str
    side: Side
    order_type: OrderType
    amount: Decimal
    price: Decimal | None
    status: str


class Prices(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to ``POST /market-data/prices``.

    Attributes:
        exchange: Connector name as the server reports it (``""`` if absent).
        prices: Price per trading pair (pairs without a price are left out).
        timestamp: Server time of the answer, epoch seconds (``0.0`` if absent).
    """

    exchange: str
    prices: dict[str, Decimal]
    timestamp: float


class TickerStats(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of ``GET /market-data/tickers/{c}``.

    Attributes:
        market: Trading pair.
        price: Last price, when known.
        volume: Traded volume, when known.
        timestamp: Time of the entry, epoch seconds (``0.0`` if absent).
    """

    market: str
    price: Decimal | None
    volume: Decimal | None
    timestamp: float


# -- parsers ----------------------------------------------------------------------


@guarded("server info")
def parse_server_info(body: bytes) -> ServerInfo:
    """Parse ``GET /``.

    Args:
        body: Response body.

    Returns:
        The server info.

    Raises:
        MalformedResponse: The body is malformed.
    """
    raw = _D_SERVER_INFO.decode(_utf8(body))
    return ServerInfo(name=raw.name, version=raw.version, status=raw.status)


@guarded("name list")
def parse_str_list(body: bytes) -> list[str]:
    """Parse a JSON list of strings (``GET /accounts/``, ``GET /connectors/``).

    Args:
        body: Response body.

    Returns:
        The names.

    Raises:
        MalformedResponse: The body is malformed.
    """
    return _D_STR_LIST.decode(_utf8(body))


@guarded("trading rules")
def parse_trading_rules(body: bytes) -> dict[str, TradingRule]:
    """Parse ``GET /connectors/{c}/trading-rules``.

    Entries the server reports as ``{"error": ...}`` (unknown pair) are left
    out. A ``max_order_size`` of 1e30 or more (Hummingbot's "no limit" is 1e56)
    becomes ``None``; a missing ``min_notional_size`` or ``min_order_size`` is 0.

    Args:
        body: Response body.

    Returns:
        Trading rule per trading pair.

    Raises:
        MalformedResponse: The body is malformed or a rule lacks its increments.
    """
    out: dict[str, TradingRule] = {}
    for market, raw in _D_RULES.decode(_utf8(body)).items():
        if raw.error is not None:
            continue
        if raw.min_price_increment is None or raw.min_base_amount_increment is None:
            raise malformed(f"trading rule of {market[:64]!r} lacks increments", body)
        max_size = optional_decimal(raw.max_order_size, "max_order_size")
        out[market] = TradingRule(
            market=market,
            min_order_size=decimal_value(raw.min_order_size or Decimal(0), "min_order_size"),
            max_order_size=None if max_size is None or max_size >= _NO_LIMIT else max_size,
            min_price_increment=decimal_value(raw.min_price_increment, "min_price_increment"),
            min_base_amount_increment=decimal_value(
                raw.min_base_amount_increment, "min_base_amount_increment"
            ),
            min_notional_size=decimal_value(
                raw.min_notional_size or Decimal(0), "min_notional_size"
            ),
        )
    return out


@guarded("order types")
def parse_order_types(body: bytes) -> frozenset[OrderType]:
    """Parse ``GET /connectors/{c}/order-types``.

    Accepts ``{"connector":..., "supported_order_types": [...]}`` and a bare list;
    spellings are case-insensitive; types hbtrio does not know are left out.

    Args:
        body: Response body.

    Returns:
        The supported order types hbtrio knows.

    Raises:
        MalformedResponse: The body is malformed.
    """
    raw = _D_ORDER_TYPES.decode(_utf8(body))
    names = raw if isinstance(raw, list) else raw.supported_order_types
    known = {t.value: t for t in OrderType}
    return frozenset(known[n.strip().upper()] for n in names if n.strip().upper() in known)


@guarded("place-order answer")
def parse_place_order(body: bytes) -> PlacedOrder:
    """Parse the 201 answer of ``POST /trading/orders``.

    Args:
        body: Response body.

    Returns:
        The submitted order.

    Raises:
        MalformedResponse: The body is malformed.
    """
    raw = _D_PLACED.decode(_utf8(body))
    if not raw.order_id:
        raise malformed("place-order answer has an empty order_id", body)
    return PlacedOrder(
        order_id=raw.order_id,
        account=raw.account_name,
        exchange=raw.connector_name,
        market=raw.trading_pair,
        side=side(raw.trade_type),
        order_type=order_type(raw.order_type),
        amount=decimal_value(raw.amount, "amount"),
        price=optional_decimal(raw.price, "price"),
        status=raw.status,
    )


@guarded("cancel answer")
def parse_cancel(body: bytes) -> str:
    """Parse the answer of the cancel endpoint.

    Args:
        body: Response body (``{"message": "Order cancellation initiated for <id>"}``).

    Returns:
        The server's message.

    Raises:
        MalformedResponse: The body is malformed.
    """
    raw = _D_MESSAGE.decode(_utf8(body))
    return raw if isinstance(raw, str) else raw.message


_UNKNOWN = "UNKNOWN"

KnownOrders = Callable[[str], Order | None]
"""Looks an order id up among the orders a client knows (placed or tracked)."""


def _order(raw: _Order, known: KnownOrders | None = None) -> Order | None:
    created = timestamp(raw.created_at, "created_at", default=0.0)
    if _UNKNOWN in (raw.trade_type, raw.order_type, raw.trading_pair):
        # The real server's history row of an order rejected before the exchange
        # acknowledged it: no pair, side, type or amount (protocol-more.md section
        # 12). Completed from what the client knows of the order; left out otherwise.
        base = known(raw.order_id) if known is not None else None
        if base is None:
            return None
        return msgspec.structs.replace(
            base,
            status=order_status(raw.status),
            created_at=created or base.created_at,
            updated_at=timestamp(raw.updated_at, "updated_at", default=created) or base.updated_at,
            exchange_order_id=raw.exchange_order_id or base.exchange_order_id,
            error_message=raw.error_message,
        )
    return Order(
        order_id=raw.order_id,
        account=raw.account_name,
        exchange=raw.connector_name,
        market=raw.trading_pair,
        side=side(raw.trade_type),
        order_type=order_type(raw.order_type),
        amount=decimal_value(raw.amount, "amount"),
        price=optional_decimal(raw.price, "price"),
        status=order_status(raw.status),
        filled_amount=decimal_value(raw.filled_amount or Decimal(0), "filled_amount"),
        average_fill_price=optional_decimal(raw.average_fill_price, "average_fill_price"),
        fee_paid=decimal_value(raw.fee_paid or Decimal(0), "fee_paid"),
        fee_currency=raw.fee_currency,
        created_at=created,
        updated_at=timestamp(raw.updated_at, "updated_at", default=created),
        exchange_order_id=raw.exchange_order_id,
        error_message=raw.error_message,
    )


@guarded("orders page")
def parse_orders_page(body: bytes, known: KnownOrders | None = None) -> Page[Order]:
    """Parse a page of ``POST /trading/orders/active`` or ``/trading/orders/search``.

    A detail-less history row (``trading_pair`` ``"UNKNOWN"``: the real server's
    row of an order that failed before the exchange acknowledged it) is completed
    from ``known`` (status, times, ``error_message`` from the row) or left out.

    Args:
        body: Response body.
        known: Looks up orders the client knows by id (placed or tracked).

    Returns:
        The page.

    Raises:
        MalformedResponse: The body is malformed.
    """
    raw = _D_ORDERS.decode(_utf8(body))
    items = [_order(o, known) for o in raw.data]
    return Page(
        items=tuple(o for o in items if o is not None),
        next_cursor=raw.pagination.next_cursor,
        has_more=raw.pagination.has_more,
        total_count=raw.pagination.total_count,
    )


def _trade(raw: _Trade) -> Trade:
    return Trade(
        trade_id=raw.trade_id,
        order_id=raw.order_id or "",
        account=raw.account_name or "",
        exchange=raw.connector_name or "",
        market=raw.trading_pair,
        side=side(raw.trade_type),
        amount=decimal_value(raw.amount, "amount"),
        price=decimal_value(raw.price, "price"),
        fee_paid=decimal_value(raw.fee_paid or Decimal(0), "fee_paid"),
        fee_currency=raw.fee_currency,
        timestamp=timestamp(raw.timestamp, "timestamp"),
    )


@guarded("trades page")
def parse_trades_page(body: bytes) -> Page[Trade]:
    """Parse a page of ``POST /trading/trades``.

    Missing ``order_id``/``account_name``/``connector_name`` (the server sends
    ``null`` when the order row is gone) become ``""``.

    Args:
        body: Response body.

    Returns:
        The page.

    Raises:
        MalformedResponse: The body is malformed.
    """
    raw = _D_TRADES.decode(_utf8(body))
    return Page(
        items=tuple(_trade(t) for t in raw.data),
        next_cursor=raw.pagination.next_cursor,
        has_more=raw.pagination.has_more,
        total_count=raw.pagination.total_count,
    )


@guarded("portfolio state")
def parse_balances(body: bytes) -> list[Balance]:
    """Parse ``POST /portfolio/state`` into one balance per (account, connector, token).

    ``units`` is the total; a missing ``available_units`` means all of it is available.

    Args:
        body: Response body.

    Returns:
        The balances, in the server's order.

    Raises:
        MalformedResponse: The body is malformed.
    """
    out: list[Balance] = []
    for account, connectors in _D_BALANCES.decode(_utf8(body)).items():
        for exchange, holdings in connectors.items():
            for h in holdings:
                total = decimal_value(h.units, "units")
                available = optional_decimal(h.available_units, "available_units")
                out.append(
                    Balance(
                        account=account,
                        exchange=exchange,
                        asset=h.token,
                        total=total,
                        available=total if available is None else available,
                    )
                )
    return out


@guarded("prices")
def parse_prices(body: bytes) -> Prices:
    """Parse ``POST /market-data/prices``.

    Args:
        body: Response body.

    Returns:
        The prices (pairs the server could not price are left out).

    Raises:
        MalformedResponse: The body is malformed.
    """
    raw = _D_PRICES.decode(_utf8(body))
    return Prices(
        exchange=raw.connector or "",
        prices={
            pair: decimal_value(price, "price")
            for pair, price in raw.prices.items()
            if price is not None
        },
        timestamp=timestamp(raw.timestamp, "timestamp", default=0.0),
    )


@guarded("order book")
def parse_order_book(body: bytes, exchange: str, market: str) -> OrderBook:
    """Parse ``POST /market-data/order-book``.

    Args:
        body: Response body.
        exchange: Connector asked for.
        market: Trading pair asked for.

    Returns:
        The snapshot (bids high to low, asks low to high, as sent).

    Raises:
        MalformedResponse: The body is malformed.
    """
    data = _utf8(body)
    try:
        fast = _D_ORDER_BOOK_RAW.decode(data)
        bids = _cached_levels(fast.bids, "bids")
        asks = _cached_levels(fast.asks, "asks")
        stamp = fast.timestamp
    except (msgspec.MsgspecError, MalformedResponse):
        # Anything odd: the full decoder, whose errors (and results) are the reference.
        raw = _D_ORDER_BOOK.decode(data)
        bids = book_levels(raw.bids, "bids")
        asks = book_levels(raw.asks, "asks")
        stamp = raw.timestamp
    return OrderBook(
        exchange=exchange,
        market=market,
        bids=bids,
        asks=asks,
        timestamp=timestamp(stamp, "timestamp", default=0.0),
    )


def _cached_levels(raws: list[msgspec.Raw], field: str) -> tuple[Level, ...]:
    """Levels from their JSON texts, decoding and checking only unseen texts.

    Raises:
        msgspec.MsgspecError: A level does not decode.
        MalformedResponse: A level's value is not finite or of sane magnitude.
    """
    cache = _LEVELS
    get = cache.get
    out: list[Level] = []
    append = out.append
    for item in raws:
        key = bytes(item)
        level = get(key)
        if level is None:
            level = book_levels((_D_LEVEL.decode(key),), field)[0]
            if len(cache) >= _LEVELS_MAX:
                cache.clear()
            cache[key] = level
        append(level)
    return tuple(out)


@guarded("candles")
def parse_candles(body: bytes) -> list[Candle]:
    """Parse ``POST /market-data/candles`` or ``/market-data/historical-candles``.

    Args:
        body: Response body (a list of candle objects; extra columns ignored).

    Returns:
        The candles, in the server's order.

    Raises:
        MalformedResponse: The body is malformed.
    """
    return [candle_from_wire(c) for c in _D_CANDLES.decode(_utf8(body))]


@guarded("tickers")
def parse_tickers(body: bytes) -> dict[str, TickerStats]:
    """Parse ``GET /market-data/tickers/{c}``.

    Args:
        body: Response body.

    Returns:
        Ticker statistics per trading pair.

    Raises:
        MalformedResponse: The body is malformed.
    """
    raw = _D_TICKERS.decode(_utf8(body))
    return {
        pair: TickerStats(
            market=pair,
            price=optional_decimal(t.price, "price"),
            volume=optional_decimal(t.volume, "volume"),
            timestamp=timestamp(t.timestamp, "timestamp", default=0.0),
        )
        for pair, t in raw.tickers.items()
    }
