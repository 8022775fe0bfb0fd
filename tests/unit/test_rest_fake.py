"""An in-memory fake Hummingbot API for client unit tests (no sockets).

``FakeServer`` implements the endpoints the client uses over a tiny order
store; ``faults`` lets a test make the next matching request fail or answer
something else. ``FakeTransport`` is the transport handed to ``open_client``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import msgspec

from hbtrio._actors.http import HttpResponse

JSON = "application/json"
Fault = Callable[["Call"], HttpResponse | None]


@dataclass
class Call:
    """One request the fake saw."""

    method: str
    path: str
    body: Any
    timeout: float | None


def respond(status: int, payload: Any, content_type: str | None = JSON) -> HttpResponse:
    """Build a response with a JSON (or raw bytes) body."""
    body = payload if isinstance(payload, bytes) else msgspec.json.encode(payload)
    return HttpResponse(status, content_type, body)


def detail(status: int, text: str) -> HttpResponse:
    """A FastAPI ``HTTPException`` answer."""
    return respond(status, {"detail": text})


@dataclass
class FakeServer:
    """A small Hummingbot API in memory."""

    account: str = "master_account"
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    fills: list[dict[str, Any]] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    faults: list[tuple[str, Fault]] = field(default_factory=list)
    tickers_supported: bool = True
    repeat_search_cursor: bool = False
    accept_as: str = "OPEN"
    reject_reason: str | None = None
    page_size_cap: int | None = None
    seq: int = 0

    def add_fault(self, path_prefix: str, fault: Fault) -> None:
        """Answer (or raise) for the next request whose path starts with the prefix."""
        self.faults.append((path_prefix, fault))

    def add_order(self, **fields: Any) -> dict[str, Any]:
        """Put an order in the store."""
        self.seq += 1
        now = time.time()
        order = {
            "order_id": f"HBOT-{self.seq}",
            "account_name": self.account,
            "connector_name": "binance",
            "trading_pair": "BTC-USDT",
            "trade_type": "BUY",
            "order_type": "LIMIT",
            "amount": "0.01",
            "price": "100",
            "status": "OPEN",
            "filled_amount": "0",
            "created_at": now,
            "updated_at": now,
            "error_message": None,
        }
        order.update(fields)
        self.orders[order["order_id"]] = order
        return order

    # -- dispatch ---------------------------------------------------------------------

    def handle(self, call: Call) -> HttpResponse:
        for i, (prefix, fault) in enumerate(self.faults):
            if call.path.startswith(prefix):
                del self.faults[i]
                answer = fault(call)
                if answer is not None:
                    return answer
                break
        route = urlsplit(call.path).path
        body = call.body or {}
        if call.method == "GET":
            if route == "/":
                return respond(
                    200, {"name": "Hummingbot API", "version": "1.0.1", "status": "running"}
                )
            if route == "/accounts/":
                return respond(200, [self.account])
            if route == "/connectors/":
                return respond(200, ["binance", "kucoin"])
            if route == "/connectors/binance/trading-rules":
                pairs = parse_qs(urlsplit(call.path).query).get("trading_pairs", ["BTC-USDT"])
                rules = {
                    "BTC-USDT": {
                        "min_order_size": "0.001",
                        "max_order_size": "1e56",
                        "min_price_increment": "0.01",
                        "min_base_amount_increment": "0.0001",
                        "min_notional_size": "0.5",
                    }
                }
                return respond(
                    200,
                    {p: rules.get(p, {"error": f"Trading pair {p} not found"}) for p in pairs},
                )
            if route == "/market-data/tickers/binance":
                if not self.tickers_supported:
                    return detail(404, "Not Found")
                return respond(
                    200,
                    {
                        "connector": "binance",
                        "count": 1,
                        "tickers": {
                            "BTC-USDT": {"price": 100.5, "volume": "1234.5", "timestamp": 1000.0}
                        },
                    },
                )
        elif call.method == "POST":
            if route == "/trading/orders":
                return self._place(body)
            if route == "/trading/orders/active":
                live = [
                    o
                    for o in self.orders.values()
                    if o["status"] in ("SUBMITTED", "OPEN", "PARTIALLY_FILLED", "PENDING_CANCEL")
                ]
                return self._page(self._filter(live, body), body, repeat=False)
            if route == "/trading/orders/search":
                rows = self._filter(list(self.orders.values()), body)
                if body.get("status"):
                    rows = [o for o in rows if o["status"] == body["status"]]
                if body.get("end_time") is not None:  # milliseconds, inclusive
                    rows = [o for o in rows if o["created_at"] * 1000 <= body["end_time"]]
                if self.repeat_search_cursor:  # the real server: newest first
                    rows.sort(key=lambda o: o["created_at"], reverse=True)
                return self._page(rows, body, repeat=self.repeat_search_cursor)
            if route == "/trading/trades":
                return self._page(self._filter(self.fills, body), body, repeat=False)
            if route == "/portfolio/state":
                return respond(
                    200,
                    {
                        self.account: {
                            "binance": [
                                {"token": "USDT", "units": "1000", "available_units": "900"},
                                {"token": "BTC", "units": "1.5", "available_units": "1.5"},
                            ],
                            "kucoin": [{"token": "ETH", "units": "2"}],
                        },
                        "other_account": {"binance": [{"token": "USDT", "units": "5"}]},
                    },
                )
            if route == "/market-data/order-book":
                depth = body.get("depth", 10)
                bids = [{"price": 100 - i, "amount": 1} for i in range(depth)]
                asks = [{"price": 101 + i, "amount": 1} for i in range(depth)]
                return respond(
                    200,
                    {
                        "trading_pair": body["trading_pair"],
                        "bids": bids,
                        "asks": asks,
                        "timestamp": 1001.0,
                    },
                )
            if route == "/market-data/prices":
                return respond(
                    200,
                    {"connector": "binance", "prices": {"BTC-USDT": 100.25}, "timestamp": 1002.0},
                )
            if route in ("/market-data/candles", "/market-data/historical-candles"):
                count = body.get("max_records", 3)
                return respond(
                    200,
                    [
                        {
                            "timestamp": 900.0 + 60 * i,
                            "open": 1,
                            "high": 2,
                            "low": 0.5,
                            "close": 1.5,
                            "volume": "10",
                        }
                        for i in range(count)
                    ],
                )
            if route.startswith("/trading/") and route.endswith("/cancel"):
                order_id = route.split("/")[-2]
                order = self.orders.get(order_id)
                if order is None or order["status"] not in ("OPEN", "PARTIALLY_FILLED"):
                    return detail(404, f"Order {order_id} not found in in-flight orders")
                order["status"] = "CANCELLED"
                return respond(200, {"message": f"Order cancellation initiated for {order_id}"})
        return detail(404, "Not Found")

    def _place(self, body: dict[str, Any]) -> HttpResponse:
        if body.get("account_name") != self.account:
            return detail(404, f"Account '{body.get('account_name')}' not found")
        status = "SUBMITTED"
        order = self.add_order(
            connector_name=body["connector_name"],
            trading_pair=body["trading_pair"],
            trade_type=body["trade_type"],
            order_type=body["order_type"],
            amount=body["amount"],
            price=body.get("price"),
            status=status,
        )
        answer = {k: order[k] for k in ("order_id", "account_name", "connector_name")}
        answer.update(
            trading_pair=order["trading_pair"],
            trade_type=order["trade_type"],
            amount=order["amount"],
            order_type=order["order_type"],
            price=order["price"],
            status="submitted",
        )
        # Accepted (or rejected) "later": on the next listing.
        order["_pending"] = True
        return respond(201, answer)

    def _settle(self) -> None:
        for order in self.orders.values():
            if order.pop("_pending", False):
                if self.reject_reason is not None:
                    order["status"] = "FAILED"
                    order["error_message"] = self.reject_reason
                else:
                    order["status"] = self.accept_as

    def _filter(self, rows: list[dict[str, Any]], body: dict[str, Any]) -> list[dict[str, Any]]:
        if rows is not self.fills:
            pass
        out = []
        for row in rows:
            if body.get("account_names") and row.get("account_name") not in body["account_names"]:
                continue
            if (
                body.get("connector_names")
                and row.get("connector_name") not in body["connector_names"]
            ):
                continue
            if body.get("trading_pairs") and row["trading_pair"] not in body["trading_pairs"]:
                continue
            out.append({k: v for k, v in row.items() if not k.startswith("_")})
        return out

    def _page(self, rows: list[dict[str, Any]], body: dict[str, Any], *, repeat: bool) -> Any:
        limit = body.get("limit", 100)
        if self.page_size_cap:
            limit = min(limit, self.page_size_cap)
        start = 0 if repeat or not body.get("cursor") else int(body["cursor"])
        chunk = rows[start : start + limit]
        more = start + limit < len(rows)
        cursor = "0:" if repeat else (str(start + limit) if more else None)
        return respond(
            200,
            {
                "data": chunk,
                "pagination": {
                    "limit": limit,
                    "has_more": more,
                    "next_cursor": cursor,
                    "total_count": len(rows),
                },
            },
        )


@dataclass
class FakeTransport:
    """The transport seam: hands each request to a :class:`FakeServer`."""

    server: FakeServer
    closed: bool = False

    async def request(
        self,
        method: str,
        path: str,
        body: bytes | None,
        *,
        timeout: float | None,  # noqa: ASYNC109
    ) -> HttpResponse:
        import trio

        await trio.lowlevel.checkpoint()
        decoded = msgspec.json.decode(body) if body else None
        call = Call(method, path, decoded, timeout)
        self.server.calls.append(call)
        if path.startswith(("/trading/orders/active", "/trading/orders/search")):
            response = self.server.handle(call)
            self.server._settle()
            return response
        return self.server.handle(call)

    async def aclose(self) -> None:
        self.closed = True


def amounts(*values: str) -> list[Decimal]:
    """Decimals from strings (helper)."""
    return [Decimal(v) for v in values]
