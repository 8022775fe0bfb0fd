"""The simulator's ASGI application: routing, authentication, JSON shapes, quirks.

A lean hand-written ASGI app (no web framework) so that the simulator is never
the bottleneck a client is measured against. It reproduces the real Hummingbot
API's answers for the endpoints of protocol.md section 3: slash-exact paths
(``404 {"detail":"Not Found"}`` otherwise), ``405`` on a wrong method, HTTP Basic
authentication checked before the body (``401`` with ``www-authenticate: Basic``),
pydantic-style ``422`` validation errors, and the exact ``detail`` texts.
"""

from __future__ import annotations

import base64
import binascii
import math
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final
from urllib.parse import parse_qsl

import msgspec
import trio

from .engine import FILLED, Fill, RequestRejected, SimOrder
from .liquidity import INTERVALS, candle_records
from .state import OrderLogEntry, SimState

__all__ = ["SimApp"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_encoder: Final = msgspec.json.Encoder(decimal_format="number")
_decoder: Final = msgspec.json.Decoder(float_hook=Decimal)
_JSON: Final = [(b"content-type", b"application/json")]
_SERVER_INFO: Final = {"name": "Hummingbot API", "version": "1.0.1", "status": "running"}
_ORDER_TYPES: Final = ("LIMIT", "MARKET", "LIMIT_MAKER")
_NOT_FOUND: Final = _encoder.encode({"detail": "Not Found"})
_NO_ROUTE: Final = "(no route)"


class HTTPError(Exception):
    """An error answer.

    Args:
        status: HTTP status.
        detail: The JSON ``detail`` (a string, or a list of validation errors).
        headers: Extra headers.
    """

    def __init__(
        self, status: int, detail: Any, headers: Iterable[tuple[bytes, bytes]] = ()
    ) -> None:
        super().__init__(status)
        self.status = status
        self.detail = detail
        self.headers = list(headers)


class PlainError(Exception):
    """A ``text/plain`` error answer (the real server's crash page).

    Args:
        status: HTTP status.
        text: Body text.
    """

    def __init__(self, status: int, text: str) -> None:
        super().__init__(status)
        self.status = status
        self.text = text


# ----------------------------------------------------------------- validation


class _Validator:
    """Pydantic-v2-style validation of a JSON body, collecting every error."""

    def __init__(self, body: Any) -> None:
        self.body = body
        self.errors: list[dict[str, Any]] = []
        self.data: dict[str, Any] = body if isinstance(body, dict) else {}

    def _err(self, etype: str, field: str, msg: str, value: Any, ctx: Any = None) -> None:
        error: dict[str, Any] = {"type": etype, "loc": ["body", field], "msg": msg, "input": value}
        if ctx is not None:
            error["ctx"] = ctx
        self.errors.append(error)

    def _missing(self, field: str) -> None:
        self._err("missing", field, "Field required", self.body)

    def string(self, field: str, *, required: bool = True, default: str | None = None) -> Any:
        if field not in self.data or (not required and self.data[field] is None):
            if required:
                self._missing(field)
            return default
        value = self.data[field]
        if not isinstance(value, str):
            self._err("string_type", field, "Input should be a valid string", value)
            return default
        return value

    def literal(self, field: str, choices: tuple[str, ...], default: str | None = None) -> Any:
        if field not in self.data:
            if default is None:
                self._missing(field)
            return default
        value = self.data[field]
        if value not in choices:
            quoted = [f"'{c}'" for c in choices]
            expected = " or ".join([", ".join(quoted[:-1]), quoted[-1]])
            self._err(
                "literal_error", field, f"Input should be {expected}", value, {"expected": expected}
            )
            return default
        return value

    def integer(
        self,
        field: str,
        *,
        default: int | None = None,
        ge: int | None = None,
        le: int | None = None,
        required: bool = False,
    ) -> Any:
        if field not in self.data or (not required and self.data[field] is None):
            if required:
                self._missing(field)
            return default
        value = self.data[field]
        parsed: int | None = None
        if isinstance(value, bool):
            parsed = None
        elif isinstance(value, int):
            parsed = value
        elif isinstance(value, Decimal) and value.is_finite() and value == value.to_integral():
            parsed = int(value)
        elif isinstance(value, str):
            try:
                parsed = int(value.strip())
            except ValueError:
                parsed = None
        if parsed is None:
            self._err(
                "int_parsing" if isinstance(value, str) else "int_type",
                field,
                "Input should be a valid integer"
                + (", unable to parse string as an integer" if isinstance(value, str) else ""),
                value,
            )
            return default
        if ge is not None and parsed < ge:
            self._err(
                "greater_than_equal",
                field,
                f"Input should be greater than or equal to {ge}",
                value,
                {"ge": ge},
            )
            return default
        if le is not None and parsed > le:
            self._err(
                "less_than_equal",
                field,
                f"Input should be less than or equal to {le}",
                value,
                {"le": le},
            )
            return default
        return parsed

    def boolean(self, field: str, default: bool = False) -> bool:
        if field not in self.data:
            return default
        value = self.data[field]
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        self._err("bool_parsing", field, "Input should be a valid boolean", value)
        return default

    def str_list(self, field: str) -> list[str] | None:
        value = self.data.get(field)
        if value is None:
            return None
        if not isinstance(value, list):
            self._err("list_type", field, "Input should be a valid list", value)
            return None
        for i, item in enumerate(value):
            if not isinstance(item, str):
                self.errors.append(
                    {
                        "type": "string_type",
                        "loc": ["body", field, i],
                        "msg": "Input should be a valid string",
                        "input": item,
                    }
                )
        return [v for v in value if isinstance(v, str)]

    def done(self) -> None:
        if self.errors:
            raise HTTPError(422, self.errors)


def _decode_body(body: bytes) -> Any:
    if not body:
        raise HTTPError(
            422, [{"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}]
        )
    try:
        value = _decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise HTTPError(
            422,
            [
                {
                    "type": "json_invalid",
                    "loc": ["body", 0],
                    "msg": "JSON decode error",
                    "input": {},
                    "ctx": {"error": str(exc)},
                }
            ],
        ) from None
    if not isinstance(value, dict):
        raise HTTPError(
            422,
            [
                {
                    "type": "model_attributes_type",
                    "loc": ["body"],
                    "msg": "Input should be a valid dictionary or object to extract fields from",
                    "input": value,
                }
            ],
        )
    return value


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def _order_json(o: SimOrder) -> dict[str, Any]:
    avg = o.average_fill_price
    return {
        "order_id": o.order_id,
        "account_name": o.account,
        "connector_name": o.connector,
        "trading_pair": o.trading_pair,
        "trade_type": o.side,
        "order_type": o.order_type,
        "amount": o.amount,
        "price": o.price if o.price is not None else avg,
        "status": o.status,
        "filled_amount": o.filled,
        "average_fill_price": avg,
        "fee_paid": o.fee_paid,
        "fee_currency": o.fee_currency,
        "created_at": _iso(o.created_at),
        "updated_at": _iso(o.updated_at),
        "exchange_order_id": o.exchange_order_id,
        "error_message": o.error_message,
    }


def _unknown_row(o: SimOrder) -> dict[str, Any]:
    """The history row of an order rejected before the exchange acknowledged it.

    The real server's recorder inserts a row only on acknowledgement; an order
    failing before that gets a row without its details (protocol-more.md section 12).
    """
    return {
        "order_id": o.order_id,
        "account_name": o.account,
        "connector_name": o.connector,
        "trading_pair": "UNKNOWN",
        "trade_type": "UNKNOWN",
        "order_type": "UNKNOWN",
        "amount": 0.0,
        "price": None,
        "status": o.status,
        "filled_amount": 0.0,
        "average_fill_price": None,
        "fee_paid": 0.0,
        "fee_currency": None,
        "created_at": _iso(o.created_at),
        "updated_at": _iso(o.updated_at),
        "exchange_order_id": None,
        "error_message": o.error_message,
    }


def _acknowledged(o: SimOrder) -> bool:
    return o.exchange_order_id is not None


def _fill_json(f: Fill) -> dict[str, Any]:
    return {
        "trade_id": f.trade_id,
        "order_id": f.order_id,
        "account_name": f.account,
        "connector_name": f.connector,
        "trading_pair": f.trading_pair,
        "trade_type": f.side,
        "amount": f.amount,
        "price": f.price,
        "fee_paid": f.fee_paid,
        "fee_currency": f.fee_currency,
        "timestamp": _iso(f.timestamp),
    }


def _page(data: list[Any], limit: int, has_more: bool, cursor: str | None, total: int) -> Any:
    return {
        "data": data,
        "pagination": {
            "limit": limit,
            "has_more": has_more,
            "next_cursor": cursor,
            "total_count": total,
        },
    }


def _bad_cursor(cursor: str, path: str) -> HTTPError:
    return HTTPError(
        400, f"Invalid cursor {cursor!r}: pass back the next_cursor of a previous {path} page"
    )


# ------------------------------------------------------------------------ app


Handler = Callable[["SimApp", dict[str, Any], bytes, dict[str, list[str]]], Awaitable[Any]]


class SimApp:
    """The ASGI application of one simulator.

    Args:
        state: The simulator's shared state.
        websocket: ASGI handler of ``/ws/market-data`` sessions.
    """

    def __init__(
        self,
        state: SimState,
        websocket: Callable[[Scope, Receive, Send], Awaitable[None]],
    ) -> None:
        self.state = state
        self.engine = state.engine
        self.settings = state.settings
        self.real = state.settings.quirks == "real"
        self._websocket = websocket
        self._static: dict[str, dict[str, tuple[Handler, bool, int]]] = {
            "/": {"GET": (SimApp._root, False, 200)},
            "/docs": {"GET": (SimApp._docs, False, 200)},
            "/openapi.json": {"GET": (SimApp._openapi, False, 200)},
            "/accounts/": {"GET": (SimApp._accounts, True, 200)},
            "/connectors/": {"GET": (SimApp._connectors, True, 200)},
            "/trading/orders": {"POST": (SimApp._place, True, 201)},
            "/trading/orders/active": {"POST": (SimApp._active, True, 200)},
            "/trading/orders/search": {"POST": (SimApp._search, True, 200)},
            "/trading/trades": {"POST": (SimApp._trades, True, 200)},
            "/portfolio/state": {"POST": (SimApp._portfolio, True, 200)},
            "/market-data/prices": {"POST": (SimApp._prices, True, 200)},
            "/market-data/order-book": {"POST": (SimApp._order_book, True, 200)},
            "/market-data/candles": {"POST": (SimApp._candles, True, 200)},
            "/market-data/historical-candles": {"POST": (SimApp._historical, True, 200)},
        }

    # ------------------------------------------------------------ ASGI entry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection scope.

        Args:
            scope: The ASGI scope.
            receive: ASGI receive.
            send: ASGI send.
        """
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            if scope["path"] == "/ws/market-data":
                await self._websocket(scope, receive, send)
            else:
                await receive()  # websocket.connect
                await send({"type": "websocket.close", "code": 1000})
        elif kind == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return

    def _match(
        self, path: str
    ) -> tuple[str, dict[str, tuple[Handler, bool, int]] | None, dict[str, str]]:
        """Find the route of ``path``: its name, its handlers by method and its parameters."""
        methods = self._static.get(path)
        params: dict[str, str] = {}
        if methods is not None:
            return path, methods, params
        parts = path.split("/")
        # /connectors/{c}/trading-rules, /connectors/{c}/order-types
        if len(parts) == 4 and parts[1] == "connectors" and parts[2]:
            params["connector"] = parts[2]
            if parts[3] == "trading-rules":
                return (
                    "/connectors/{connector}/trading-rules",
                    {"GET": (SimApp._trading_rules, True, 200)},
                    params,
                )
            if parts[3] == "order-types":
                return (
                    "/connectors/{connector}/order-types",
                    {"GET": (SimApp._order_types, True, 200)},
                    params,
                )
        # /trading/{a}/{c}/orders/{id}/cancel
        elif (
            len(parts) == 7
            and parts[1] == "trading"
            and parts[4] == "orders"
            and parts[6] == "cancel"
            and all(parts[i] for i in (2, 3, 5))
        ):
            params.update(account=parts[2], connector=parts[3], order_id=parts[5])
            return (
                "/trading/{account}/{connector}/orders/{order_id}/cancel",
                {"POST": (SimApp._cancel, True, 200)},
                params,
            )
        elif (
            len(parts) == 4
            and parts[1] == "market-data"
            and parts[2] == "tickers"
            and parts[3]
            and not self.real
        ):
            params["connector"] = parts[3]
            return (
                "/market-data/tickers/{connector}",
                {"GET": (SimApp._tickers, True, 200)},
                params,
            )
        return _NO_ROUTE, None, {}

    def _authenticate(self, headers: list[tuple[bytes, bytes]]) -> None:
        auth = b""
        for name, value in headers:
            if name == b"authorization":
                auth = value
                break
        scheme, _, token = auth.partition(b" ")
        basic = [(b"www-authenticate", b"Basic")]
        if not auth or scheme.lower() != b"basic":
            raise HTTPError(401, "Not authenticated", basic)
        try:
            decoded = base64.b64decode(token.strip(), validate=False).decode("ascii")
        except (binascii.Error, UnicodeDecodeError):
            raise HTTPError(401, "Invalid authentication credentials", basic) from None
        user, sep, password = decoded.partition(":")
        if not sep:
            raise HTTPError(401, "Invalid authentication credentials", basic)
        if not self.state.check_pair(user, password):
            raise HTTPError(401, "Incorrect username or password", basic)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        settings = self.settings
        rng = self.state.fault_rng
        fault: int | None = None
        if settings.error_rate and rng.random() < settings.error_rate:
            fault = 503 if rng.random() < 0.5 else 500
        stall = bool(settings.stall_rate) and rng.random() < settings.stall_rate

        status = 200
        headers: list[tuple[bytes, bytes]] = []
        content_type = b"application/json"
        crashed = False
        method = scope["method"]
        route, methods, params = self._match(scope["path"])
        self.state.requests[(method, route)] += 1
        try:
            if methods is None:
                raise HTTPError(404, "Not Found")
            entry = methods.get(method)
            if entry is None:
                allow = ", ".join(methods).encode()
                raise HTTPError(405, "Method Not Allowed", [(b"allow", allow)])
            handler, protected, status = entry
            if protected:
                self._authenticate(scope["headers"])
            if fault == 503:
                # the request is refused before it reaches the engine
                raise HTTPError(503, "Service temporarily unavailable (simulated fault)")
            query: dict[str, list[str]] = {}
            if scope.get("query_string"):
                for key, value in parse_qsl(scope["query_string"].decode("latin-1"), True):
                    query.setdefault(key, []).append(value)
            result = await handler(self, params, body, query)
            payload = _encoder.encode(result)
            if fault == 500:
                # the request was processed, but its answer is an error
                raise HTTPError(500, "Internal server error (simulated fault)")
        except HTTPError as exc:
            status = exc.status
            headers = exc.headers
            payload = (
                _NOT_FOUND if exc.detail == "Not Found" else _encoder.encode({"detail": exc.detail})
            )
        except PlainError as exc:
            status = exc.status
            content_type = b"text/plain; charset=utf-8"
            payload = exc.text.encode()
            crashed = True
        if settings.latency_ms:
            await trio.sleep(settings.latency_ms / 1000)
        if stall:
            # the answer is never sent: wait until the client gives up
            while (await receive())["type"] != "http.disconnect":
                pass
            return
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", content_type),
                    (b"content-length", str(len(payload)).encode()),
                    *headers,
                ],
            }
        )
        if crashed:
            # An unhandled exception on the real server: the 500 goes out (without
            # ``Connection: close``), then the TCP connection is closed. The answer is
            # complete (content-length) but never ended, so the server drops the
            # connection instead of keeping it alive.
            await send({"type": "http.response.body", "body": payload, "more_body": True})
            return
        await send({"type": "http.response.body", "body": payload})

    # ------------------------------------------------------------- handlers

    async def _root(self, params: dict[str, str], body: bytes, q: dict[str, list[str]]) -> Any:
        return _SERVER_INFO

    async def _docs(self, params: dict[str, str], body: bytes, q: dict[str, list[str]]) -> Any:
        return {"detail": "hbtrio simulator: see protocol.md for the endpoints it serves"}

    async def _openapi(self, params: dict[str, str], body: bytes, q: dict[str, list[str]]) -> Any:
        paths = sorted(self._static)
        return {
            "openapi": "3.1.0",
            "info": {"title": "Hummingbot API (hbtrio simulator)", "version": "1.0.1"},
            "paths": {p: {} for p in paths},
        }

    async def _accounts(self, params: dict[str, str], body: bytes, q: dict[str, list[str]]) -> Any:
        return list(self.engine.accounts)

    async def _connectors(
        self, params: dict[str, str], body: bytes, q: dict[str, list[str]]
    ) -> Any:
        return list(self.engine.pairs_by_connector)

    def _connector_pairs(self, connector: str) -> list[str]:
        pairs = self.engine.pairs_by_connector.get(connector)
        if pairs is None:
            raise HTTPError(404, f"Connector '{connector}' not found")
        return pairs

    async def _trading_rules(
        self, params: dict[str, str], body: bytes, q: dict[str, list[str]]
    ) -> Any:
        connector = params["connector"]
        pairs = self._connector_pairs(connector)
        wanted = q.get("trading_pairs")
        result: dict[str, Any] = {}
        for pair in pairs:
            if wanted and pair not in wanted:
                continue
            spec = self.engine.market(connector, pair).spec
            rule = spec.rule
            result[pair] = {
                "min_order_size": rule.min_order_size,
                "max_order_size": rule.max_order_size,
                "min_price_increment": rule.min_price_increment,
                "min_base_amount_increment": rule.min_base_amount_increment,
                "min_quote_amount_increment": rule.min_quote_amount_increment,
                "min_notional_size": rule.min_notional_size,
                "min_order_value": rule.min_order_value,
                "max_price_significant_digits": rule.max_price_significant_digits,
                "supports_limit_orders": rule.supports_limit_orders,
                "supports_market_orders": rule.supports_market_orders,
                "buy_order_collateral_token": spec.quote,
                "sell_order_collateral_token": spec.quote,
            }
        return result

    async def _order_types(
        self, params: dict[str, str], body: bytes, q: dict[str, list[str]]
    ) -> Any:
        connector = params["connector"]
        self._connector_pairs(connector)
        return {"connector": connector, "supported_order_types": ["LIMIT", "LIMIT_MAKER", "MARKET"]}

    # ------------------------------------------------------------- trading

    def _amount(self, v: _Validator) -> Decimal | None:
        data = v.data
        if "amount" not in data:
            v._missing("amount")
            return None
        value = data["amount"]
        amount: Decimal | None = None
        if isinstance(value, bool):
            amount = None
        elif isinstance(value, Decimal | int):
            amount = Decimal(value)
        elif isinstance(value, str):
            try:
                amount = Decimal(value.strip())
            except InvalidOperation:
                amount = None
            if amount is not None and not amount.is_finite():
                amount = None
        if amount is None:
            v.errors.append(
                {
                    "type": "float_type",
                    "loc": ["body", "amount", "float"],
                    "msg": "Input should be a valid number",
                    "input": value,
                }
            )
            v.errors.append(
                {
                    "type": "string_type",
                    "loc": ["body", "amount", "str"],
                    "msg": "Input should be a valid string",
                    "input": value,
                }
            )
            return None
        if amount <= 0:
            if self.real:
                raise PlainError(500, "Internal Server Error")
            v.errors.append(
                {
                    "type": "greater_than",
                    "loc": ["body", "amount", "float"],
                    "msg": "Input should be greater than 0",
                    "input": value,
                    "ctx": {"gt": 0.0},
                }
            )
            return None
        return amount

    def _price(self, v: _Validator) -> Decimal | None:
        value = v.data.get("price")
        if value is None:
            return None
        price: Decimal | None = None
        if isinstance(value, Decimal | int) and not isinstance(value, bool):
            price = Decimal(value)
        elif isinstance(value, str):
            try:
                price = Decimal(value.strip())
            except InvalidOperation:
                price = None
        if price is None or not price.is_finite() or price <= 0:
            v._err(
                "value_error",
                "price",
                "Value error, price must be a positive number",
                value,
                {"error": {}},
            )
            return None
        return price

    async def _place(self, params: dict[str, str], body: bytes, q: dict[str, list[str]]) -> Any:
        data = _decode_body(body)
        v = _Validator(data)
        account = v.string("account_name")
        connector = v.string("connector_name")
        pair = v.string("trading_pair")
        side = v.literal("trade_type", ("BUY", "SELL"))
        amount = self._amount(v)
        order_type = v.literal("order_type", _ORDER_TYPES, "LIMIT")
        price = self._price(v)
        position_action = v.literal("position_action", ("OPEN", "CLOSE"), "OPEN")
        v.done()
        del position_action
        assert amount is not None
        if (account, connector) in self.settings.no_credentials and account in self.engine.accounts:
            # The real server builds the account's connector before placing; without
            # credentials that fails, wrapped in a 500 (protocol-more.md section 12).
            cls = f"{connector.title().replace('_', '')}Exchange"
            raise HTTPError(
                500,
                f"Unexpected error placing trade: {cls}.__init__() missing 2 required "
                f"positional arguments: '{connector}_api_key' and '{connector}_api_secret'",
            )
        estimate = self._price_estimate(connector, pair, side) if order_type == "MARKET" else None
        try:
            order = self.engine.place(account, connector, pair, side, order_type, amount, price)
        except RequestRejected as exc:
            raise HTTPError(exc.status, exc.detail) from None
        if estimate is not None and self.real:
            self.state.price_estimates[order.order_id] = estimate
        self.state.order_log.append(OrderLogEntry(order.order_id, data, order.created_at))
        if order.filled or order.status != "FAILED":
            self.state.simulation.replenish(connector, pair)
        raw_price = data.get("price")
        return {
            "order_id": order.order_id,
            "account_name": account,
            "connector_name": connector,
            "trading_pair": pair,
            "trade_type": side,
            "amount": str(amount),
            "order_type": order_type,
            "price": None if raw_price is None else str(price),
            "status": "submitted",
        }

    def _price_estimate(self, connector: str, pair: str, side: str) -> Decimal:
        """What the real server passes to the connector as a MARKET order's price."""
        market = self.engine.markets.get((connector, pair))
        if market is None:
            return Decimal(1)
        best = market.book.best_ask() if side == "BUY" else market.book.best_bid()
        return best if best is not None else Decimal(1)

    async def _cancel(self, params: dict[str, str], body: bytes, q: dict[str, list[str]]) -> Any:
        try:
            order = self.engine.cancel(params["account"], params["connector"], params["order_id"])
        except RequestRejected as exc:
            raise HTTPError(exc.status, exc.detail) from None
        return {"message": f"Order cancellation initiated for {order.order_id}"}

    @staticmethod
    def _order_filter(v: _Validator) -> Callable[[SimOrder], bool]:
        accounts = v.str_list("account_names")
        connectors = v.str_list("connector_names")
        pairs = v.str_list("trading_pairs")

        def keep(o: SimOrder) -> bool:
            return (
                (not accounts or o.account in accounts)
                and (not connectors or o.connector in connectors)
                and (not pairs or o.trading_pair in pairs)
            )

        return keep

    async def _active(self, params: dict[str, str], body: bytes, q: dict[str, list[str]]) -> Any:
        v = _Validator(_decode_body(body))
        limit = v.integer("limit", default=100, ge=1, le=1000)
        cursor = v.string("cursor", required=False)
        keep = self._order_filter(v)
        v.done()
        orders = sorted(
            (o for o in self.engine.active_orders() if keep(o)), key=lambda o: o.order_id
        )
        total = len(orders)
        if cursor:
            orders = [o for o in orders if o.order_id > cursor]
        page = orders[:limit]
        has_more = len(orders) > limit
        return _page(
            [self._active_json(o) for o in page],
            limit,
            has_more,
            page[-1].order_id if has_more else None,
            total,
        )

    def _active_json(self, o: SimOrder) -> dict[str, Any]:
        row = _order_json(o)
        if not self.real:
            return row
        # The real server lists the connector's in-flight orders (protocol-more.md
        # section 12): fill details are always null, created_at is the connector's
        # clock (minutes behind), a MARKET order shows the price estimate, and a
        # FILLED order waiting for its fill events keeps its previous status.
        if (
            o.status == FILLED
            and o.status_before is not None
            and self.engine.clock() - o.updated_at < self.settings.fill_wait
        ):
            row["status"] = o.status_before
        row["average_fill_price"] = None
        row["fee_paid"] = None
        row["fee_currency"] = None
        row["error_message"] = None
        row["created_at"] = _iso(self.state.connector_clock(o.created_at))
        if o.price is None:
            row["price"] = self.state.price_estimates.get(o.order_id, Decimal(1))
        return row

    @staticmethod
    def _time_window(v: _Validator) -> tuple[float, float]:
        start = v.integer("start_time")
        end = v.integer("end_time")
        return (
            -math.inf if start is None else start / 1000,
            math.inf if end is None else end / 1000,
        )

    async def _search(self, params: dict[str, str], body: bytes, q: dict[str, list[str]]) -> Any:
        v = _Validator(_decode_body(body))
        limit = v.integer("limit", default=100, ge=1, le=1000)
        cursor = v.string("cursor", required=False)
        status = v.string("status", required=False)
        keep = self._order_filter(v)
        start, end = self._time_window(v)
        v.done()
        wanted = status.upper() if status else None
        pairs = v.data.get("trading_pairs")
        real = self.real
        matching = [
            o
            for o in reversed(self.engine.order_list)
            if keep(o)
            and start <= o.created_at <= end
            and (wanted is None or o.status == wanted)
            # the real server's detail-less row of an unacknowledged failure has
            # trading_pair "UNKNOWN": a trading_pairs filter hides it
            and not (real and pairs and not _acknowledged(o))
        ]
        total = len(matching)
        rows = matching
        if cursor and not self.real:
            stamp, sep, order_id = cursor.partition("|")
            anchor = self.engine.orders.get(order_id) if sep else None
            if anchor is None or stamp != _iso(anchor.created_at):
                raise _bad_cursor(cursor, "/trading/orders/search")
            rows = [o for o in matching if o.seq < anchor.seq]
        page = rows[:limit]
        has_more = len(rows) > limit
        if not has_more:
            next_cursor = None
        elif self.real:
            next_cursor = "0:"
        else:
            last = page[-1]
            next_cursor = f"{_iso(last.created_at)}|{last.order_id}"
        rows_json = [
            _order_json(o) if not real or _acknowledged(o) else _unknown_row(o) for o in page
        ]
        return _page(rows_json, limit, has_more, next_cursor, total)

    async def _trades(self, params: dict[str, str], body: bytes, q: dict[str, list[str]]) -> Any:
        v = _Validator(_decode_body(body))
        limit = v.integer("limit", default=100, ge=1, le=1000)
        cursor = v.string("cursor", required=False)
        accounts = v.str_list("account_names")
        connectors = v.str_list("connector_names")
        pairs = v.str_list("trading_pairs")
        sides = v.str_list("trade_types")
        start, end = self._time_window(v)
        v.done()
        wanted_sides = {s.upper() for s in sides} if sides else None
        fills = self.engine.fills
        matching = [
            f
            for f in reversed(fills)
            if (not accounts or f.account in accounts)
            and (not connectors or f.connector in connectors)
            and (not pairs or f.trading_pair in pairs)
            and (wanted_sides is None or f.side in wanted_sides)
            and start <= f.timestamp <= end
        ]
        total = len(matching)
        rows = matching
        if cursor:
            stamp, sep, trade_id = cursor.partition("|")
            _, _, seq_text = trade_id.rpartition("-")
            if not sep or not seq_text.isdigit() or not 1 <= int(seq_text) <= len(fills):
                raise _bad_cursor(cursor, "/trading/trades")
            anchor = fills[int(seq_text) - 1]
            if anchor.trade_id != trade_id or stamp != _iso(anchor.timestamp):
                raise _bad_cursor(cursor, "/trading/trades")
            rows = [f for f in matching if f.seq < anchor.seq]
        page = rows[:limit]
        has_more = len(rows) > limit
        next_cursor = f"{_iso(page[-1].timestamp)}|{page[-1].trade_id}" if has_more else None
        return _page([_fill_json(f) for f in page], limit, has_more, next_cursor, total)

    # ----------------------------------------------------------- portfolio

    def _token_price(self, connector: str, token: str) -> Decimal:
        if token in ("USDT", "USDC", "USD"):
            return Decimal(1)
        market = self.engine.markets.get((connector, f"{token}-USDT"))
        if market is None:
            for (_, pair), m in self.engine.markets.items():
                if pair == f"{token}-USDT":
                    market = m
                    break
        return market.mid() if market is not None else Decimal(0)

    def _portfolio_all(self) -> dict[str, Any]:
        engine = self.engine
        state: dict[str, Any] = {}
        for account in engine.accounts:
            per_connector: dict[str, Any] = {}
            for connector in engine.pairs_by_connector:
                rows = []
                for token, (total, available) in sorted(
                    engine.balances(account, connector).items()
                ):
                    price = self._token_price(connector, token)
                    rows.append(
                        {
                            "token": token,
                            "units": total,
                            "price": price,
                            "value": total * price,
                            "available_units": available,
                        }
                    )
                per_connector[connector] = rows
            state[account] = per_connector
        return state

    async def _portfolio(self, params: dict[str, str], body: bytes, q: dict[str, list[str]]) -> Any:
        v = _Validator(_decode_body(body))
        accounts = v.str_list("account_names")
        connectors = v.str_list("connector_names")
        v.boolean("skip_gateway")
        refresh = v.boolean("refresh")
        v.done()
        if self.real:
            now = time.monotonic()
            cache = self.state.portfolio_cache
            if refresh or cache is None or now - cache[0] >= self.settings.portfolio_cache_s:
                cache = (now, self._portfolio_all())
                self.state.portfolio_cache = cache
            full = cache[1]
        else:
            full = self._portfolio_all()
        return {
            account: {
                connector: rows
                for connector, rows in per.items()
                if not connectors or connector in connectors
            }
            for account, per in full.items()
            if not accounts or account in accounts
        }

    # --------------------------------------------------------- market data

    def _market(self, connector: Any, pair: Any) -> Any:
        pairs = self._connector_pairs(connector)
        if pair not in pairs:
            raise HTTPError(
                404,
                f"Trading pair '{pair}' not found on {connector}. Available pairs: "
                f"{', '.join(pairs)}",
            )
        return self.engine.market(connector, pair)

    async def _prices(self, params: dict[str, str], body: bytes, q: dict[str, list[str]]) -> Any:
        v = _Validator(_decode_body(body))
        connector = v.string("connector_name")
        pairs = v.str_list("trading_pairs")
        if pairs is None and "trading_pairs" not in v.data:
            v._missing("trading_pairs")
        v.done()
        known = self._connector_pairs(connector)
        prices = {
            pair: float(self.engine.market(connector, pair).mid())
            for pair in (pairs or [])
            if pair in known
        }
        return {"connector": connector, "prices": prices, "timestamp": time.time()}

    async def _order_book(
        self, params: dict[str, str], body: bytes, q: dict[str, list[str]]
    ) -> Any:
        v = _Validator(_decode_body(body))
        connector = v.string("connector_name")
        pair = v.string("trading_pair")
        depth = v.integer("depth", default=10, ge=1, le=1000)
        v.done()
        market = self._market(connector, pair)
        bids, asks = market.book.levels(depth)
        return {
            "trading_pair": pair,
            "bids": [{"price": p, "amount": a} for p, a in bids],
            "asks": [{"price": p, "amount": a} for p, a in asks],
            "timestamp": time.time(),
        }

    def _interval(self, v: _Validator, default: str | None) -> str | None:
        interval: str | None = v.string("interval", required=default is None, default=default)
        if interval is not None and interval not in INTERVALS:
            v._err(
                "value_error",
                "interval",
                f"Value error, unsupported interval '{interval}'. Supported: "
                f"{', '.join(INTERVALS)}",
                interval,
                {"error": {}},
            )
        return interval

    async def _candles(self, params: dict[str, str], body: bytes, q: dict[str, list[str]]) -> Any:
        v = _Validator(_decode_body(body))
        connector = v.string("connector_name")
        pair = v.string("trading_pair")
        interval = self._interval(v, "1m")
        max_records = v.integer("max_records", default=500, ge=1, le=100_000)
        v.done()
        assert interval is not None
        market = self._market(connector, pair)
        return candle_records(market, interval, time.time(), max_records=max_records)

    async def _historical(
        self, params: dict[str, str], body: bytes, q: dict[str, list[str]]
    ) -> Any:
        v = _Validator(_decode_body(body))
        connector = v.string("connector_name")
        pair = v.string("trading_pair")
        interval = self._interval(v, None)
        start = v.integer("start_time", required=True)
        end = v.integer("end_time", required=True)
        v.done()
        assert interval is not None and start is not None and end is not None
        market = self._market(connector, pair)
        # milliseconds like every time filter; values that can only be seconds are accepted too
        start_s = start / 1000 if start > 100_000_000_000 else float(start)
        end_s = end / 1000 if end > 100_000_000_000 else float(end)
        return candle_records(market, interval, time.time(), start=start_s, end=end_s)

    async def _tickers(self, params: dict[str, str], body: bytes, q: dict[str, list[str]]) -> Any:
        connector = params["connector"]
        pairs = self._connector_pairs(connector)
        now = time.time()
        tickers: dict[str, Any] = {}
        for pair in pairs:
            market = self.engine.market(connector, pair)
            market.candles_1m.extend_to(now, market.last_price)
            volume = sum((c[5] for c in list(market.candles_1m.candles)[-1440:]), Decimal(0))
            tickers[pair] = {
                "price": float(market.last_price),
                "volume": float(volume),
                "timestamp": now,
            }
        return {"connector": connector, "count": len(tickers), "tickers": tickers}
