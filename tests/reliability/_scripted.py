"""A scripted HTTP/WebSocket server for fuzzing the client (real sockets, plain TCP).

Every request path has a valid default answer (shaped like the Hummingbot API's);
a test replaces the answer of one path with arbitrary raw bytes (any status line,
headers, framing and body) and, on the WebSocket ``/ws/market-data``, queues
arbitrary raw frames to send after the subscription acknowledgement. Requests are
split with the fault proxy's :class:`~tests.faultproxy.HttpParser`, so a
malformed answer never depends on a library willing to produce it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

import trio

from tests.faultproxy import HttpParser, Mark

__all__ = ["DEFAULTS", "ScriptedServer", "frame", "response"]

ORDER_ITEM: dict[str, Any] = {
    "order_id": "ord-1",
    "account_name": "master_account",
    "connector_name": "binance",
    "trading_pair": "BTC-USDT",
    "trade_type": "BUY",
    "order_type": "LIMIT",
    "amount": "0.001",
    "price": "50000",
    "status": "OPEN",
    "filled_amount": "0",
    "average_fill_price": None,
    "fee_paid": "0",
    "fee_currency": None,
    "created_at": "2025-01-01T00:00:00+00:00",
    "updated_at": "2025-01-01T00:00:00+00:00",
    "exchange_order_id": None,
    "error_message": None,
}
TRADE_ITEM: dict[str, Any] = {
    "trade_id": "t-1",
    "order_id": "ord-1",
    "account_name": "master_account",
    "connector_name": "binance",
    "trading_pair": "BTC-USDT",
    "trade_type": "BUY",
    "amount": "0.001",
    "price": "50000",
    "fee_paid": "0.01",
    "fee_currency": "USDT",
    "timestamp": "2025-01-01T00:00:00+00:00",
}
PAGE = {"limit": 100, "has_more": False, "next_cursor": None, "total_count": 1}
CANDLE = {
    "timestamp": 1700000000,
    "open": 1,
    "high": 2,
    "low": 0.5,
    "close": 1.5,
    "volume": 10,
    "quote_asset_volume": 10,
    "n_trades": 3,
    "taker_buy_base_volume": 1,
    "taker_buy_quote_volume": 1,
}
RULE = {
    "min_order_size": 0.00001,
    "max_order_size": 1000,
    "min_price_increment": 0.01,
    "min_base_amount_increment": 0.00001,
    "min_quote_amount_increment": 0.01,
    "min_notional_size": 5,
    "min_order_value": 0,
    "max_price_significant_digits": 10,
    "supports_limit_orders": True,
    "supports_market_orders": True,
    "buy_order_collateral_token": "USDT",
    "sell_order_collateral_token": "BTC",
}
BOOK = {
    "trading_pair": "BTC-USDT",
    "bids": [{"price": 59999, "amount": 1}],
    "asks": [{"price": 60001, "amount": 1}],
    "timestamp": 1700000000.5,
}

DEFAULTS: dict[tuple[str, str], tuple[int, Any]] = {
    ("GET", "/"): (200, {"name": "Hummingbot API", "version": "1.0.1", "status": "running"}),
    ("GET", "/accounts/"): (200, ["master_account"]),
    ("GET", "/connectors/"): (200, ["binance"]),
    ("GET", "/connectors/binance/trading-rules"): (200, {"BTC-USDT": RULE}),
    ("GET", "/connectors/binance/order-types"): (
        200,
        {"connector": "binance", "supported_order_types": ["LIMIT", "LIMIT_MAKER", "MARKET"]},
    ),
    ("POST", "/trading/orders"): (
        201,
        {
            "order_id": "ord-1",
            "account_name": "master_account",
            "connector_name": "binance",
            "trading_pair": "BTC-USDT",
            "trade_type": "BUY",
            "amount": "0.001",
            "order_type": "LIMIT",
            "price": "50000",
            "status": "submitted",
        },
    ),
    ("POST", "/trading/orders/active"): (200, {"data": [ORDER_ITEM], "pagination": PAGE}),
    ("POST", "/trading/orders/search"): (200, {"data": [ORDER_ITEM], "pagination": PAGE}),
    ("POST", "/trading/trades"): (200, {"data": [TRADE_ITEM], "pagination": PAGE}),
    ("POST", "/trading/master_account/binance/orders/ord-1/cancel"): (
        200,
        {"message": "Order cancellation initiated for ord-1"},
    ),
    ("POST", "/portfolio/state"): (
        200,
        {
            "master_account": {
                "binance": [
                    {"token": "BTC", "units": 1, "price": 1, "value": 1, "available_units": 1}
                ]
            }
        },
    ),
    ("POST", "/market-data/prices"): (
        200,
        {"connector": "binance", "prices": {"BTC-USDT": 60000.0}, "timestamp": 1700000000.0},
    ),
    ("POST", "/market-data/order-book"): (200, BOOK),
    ("POST", "/market-data/candles"): (200, [CANDLE]),
    ("POST", "/market-data/historical-candles"): (200, [CANDLE]),
    ("GET", "/market-data/tickers/binance"): (
        200,
        {
            "connector": "binance",
            "count": 1,
            "tickers": {"BTC-USDT": {"price": 60000, "volume": 5, "timestamp": 1700000000}},
        },
    ),
}


def response(
    status: int,
    body: bytes,
    *,
    content_type: str | None = "application/json",
    framing: str = "length",
    reason: str = "X",
) -> bytes:
    """Raw bytes of an HTTP/1.1 response.

    Args:
        status: Status code (any int; written as is).
        body: Body bytes.
        content_type: ``Content-Type`` value, or ``None`` for none.
        framing: ``"length"`` (Content-Length), ``"chunked"``, ``"close"`` (no length;
            the connection closes after), ``"short"`` (Content-Length larger than the
            body; the connection closes after), ``"garbage"`` (no valid status line).
        reason: Reason phrase.

    Returns:
        The response bytes.
    """
    if framing == "garbage":
        return b"HTTP/1.1 " + body[:20] + b"\r\n\r\n"
    head = f"HTTP/1.1 {status} {reason}\r\n"
    if content_type is not None:
        head += f"Content-Type: {content_type}\r\n"
    if framing == "chunked":
        head += "Transfer-Encoding: chunked\r\n\r\n"
        data = (f"{len(body):x}\r\n".encode() + body + b"\r\n") if body else b""
        return head.encode() + data + b"0\r\n\r\n"
    if framing == "close":
        return (head + "Connection: close\r\n\r\n").encode() + body
    if framing == "short":
        return (head + f"Content-Length: {len(body) + 10}\r\n\r\n").encode() + body
    return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def frame(payload: bytes, opcode: int = 1, *, fin: bool = True, rsv: int = 0) -> bytes:
    """Raw bytes of an unmasked (server-to-client) WebSocket frame.

    Args:
        payload: Payload bytes (not checked: may be invalid UTF-8 in a text frame).
        opcode: Frame opcode (1 text, 2 binary, 9 ping, any other value as is).
        fin: FIN bit.
        rsv: RSV bits (0..7).

    Returns:
        The frame.
    """
    first = (0x80 if fin else 0) | (rsv & 7) << 4 | (opcode & 0x0F)
    n = len(payload)
    if n < 126:
        head = bytes([first, n])
    elif n < 65536:
        head = bytes([first, 126]) + struct.pack("!H", n)
    else:
        head = bytes([first, 127]) + struct.pack("!Q", n)
    return head + payload


def _encode(value: Any) -> bytes:
    return json.dumps(value).encode()


_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class ScriptedServer:
    """The server. Run with ``await nursery.start(server.run)``; ``port`` is set.

    Attributes:
        port: Listening port.
        script: Raw answer per ``(method, path)`` overriding the default.
        close_after: Paths after whose scripted answer the connection is closed.
        ws_frames: Raw frames sent on the first WebSocket session after its first
            subscription ack (then a valid push follows).
        requests: Requests seen, by ``(method, path)``.
        connections: TCP connections accepted.
        ws_sessions: WebSocket sessions accepted.
    """

    def __init__(self) -> None:
        self.port = 0
        self.script: dict[tuple[str, str], bytes] = {}
        self.close_after: set[tuple[str, str]] = set()
        self.ws_frames: list[bytes] = []
        self.requests: Counter[tuple[str, str]] = Counter()
        self.connections = 0
        self.ws_sessions = 0
        self.on_request: Callable[[str, str], None] | None = None

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled."""
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started(self.port)
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        pending: deque[tuple[str, str]] = deque()
        parser = HttpParser("request", pending)
        raw_head = bytearray()
        try:
            while True:
                data = await stream.receive_some(65536)
                if not data:
                    return
                for item in parser.feed(data):
                    if isinstance(item, bytes):
                        raw_head += item
                        continue
                    if not isinstance(item, Mark) or item.what != "end":
                        continue
                    key = (item.method, item.path)
                    self.requests[key] += 1
                    if self.on_request is not None:
                        self.on_request(*key)
                    if key == ("GET", "/ws/market-data"):
                        await self._websocket(stream, bytes(raw_head))
                        return
                    raw_head.clear()
                    answer = self.script.get(key)
                    if answer is None:
                        status, value = DEFAULTS.get(key, (404, {"detail": "Not Found"}))
                        answer = response(status, _encode(value))
                    await stream.send_all(answer)
                    if b"Connection: close" in answer[:300] or (
                        b"Content-Length: " not in (answer[:300]) and b"chunked" not in answer[:300]
                    ):
                        return
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return

    async def _websocket(self, stream: trio.SocketStream, head: bytes) -> None:
        self.ws_sessions += 1
        key = b""
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"sec-websocket-key":
                key = value.strip()
        accept = base64.b64encode(hashlib.sha1(key + _WS_GUID).digest())
        await stream.send_all(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        hello = {"type": "connected", "connection_id": "abcd1234", "timestamp": time.time()}
        await stream.send_all(frame(_encode(hello)))
        parser = HttpParser("request", deque())
        parser.switch_to_ws()
        fuzzed = self.ws_sessions > 1  # the raw frames go to the first session only
        while True:
            data = await stream.receive_some(65536)
            if not data:
                return
            for item in parser.feed(data):
                if isinstance(item, bytes | Mark):
                    continue
                opcode = item.opcode
                if opcode == 8:
                    await stream.send_all(frame(b"\x03\xe8", opcode=8))
                    return
                if opcode == 9:
                    await stream.send_all(frame(bytes(item.plain_payload()), opcode=10))
                    continue
                if opcode != 1:
                    continue
                try:
                    message = json.loads(item.plain_payload())
                except ValueError:
                    continue
                await self._ws_action(stream, message)
                if message.get("action") == "subscribe" and not fuzzed:
                    fuzzed = True
                    for raw in self.ws_frames:
                        await stream.send_all(raw)
                    await self._push_book(stream, message)

    async def _ws_action(self, stream: trio.SocketStream, message: dict[str, Any]) -> None:
        action = message.get("action")
        now = time.time()
        if action == "ping":
            await stream.send_all(frame(_encode({"type": "pong", "timestamp": now})))
        elif action == "subscribe":
            sub_id = _sub_id(message)
            await stream.send_all(frame(_encode({"type": "subscribed", "subscription_id": sub_id})))
            await self._push_book(stream, message)
        elif action == "unsubscribe":
            reply = {"type": "unsubscribed", "subscription_id": message.get("subscription_id")}
            await stream.send_all(frame(_encode(reply)))

    async def _push_book(self, stream: trio.SocketStream, message: dict[str, Any]) -> None:
        sub_id = _sub_id(message)
        now = time.time()
        kind = message.get("type")
        if kind == "order_book":
            data: Any = {"bids": [[59999, 1]], "asks": [[60001, 1]]}
        elif kind == "trades":
            data = [{"timestamp": now, "price": 60000, "amount": 0.1, "side": "buy"}]
        else:
            data = [dict(CANDLE, timestamp=now)]
        push = {"type": kind, "subscription_id": sub_id, "data": data, "timestamp": now}
        await stream.send_all(frame(_encode(push)))


def _sub_id(message: dict[str, Any]) -> str:
    kind = message.get("type")
    base = f"{kind}_{message.get('connector')}_{message.get('trading_pair')}"
    if kind == "candles":
        return f"{base}_{message.get('interval')}"
    return base
