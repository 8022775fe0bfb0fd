"""The floor contender: the thinnest client that does the job.

Raw HTTP/1.1 written by hand on kept-alive TLS sockets (plain ``socket`` +
``ssl``, blocking I/O for sequential requests, one ``selectors`` loop over
non-blocking sockets for concurrent ones), a raw WebSocket client (RFC 6455
framing written by hand over the same kind of socket), and msgspec decoding of
every body into typed structs with ``Decimal`` money, i.e. the same work a real
client must do, with nothing else. It shows what the machine and the server allow.

It sends exactly the requests the other contenders send (see ``docs/benchmarks.md``).
"""

from __future__ import annotations

import base64
import os
import select
import selectors
import socket
import ssl
import time
from collections.abc import Callable
from decimal import Decimal
from functools import partial
from typing import Final

import msgspec

from ._drive import LIVE_STATUSES, SnapshotWindow, limit_price, time_calls
from .protocol import Target

__all__ = [
    "FloorContender",
    "HttpConnection",
    "HttpError",
    "WebSocketConnection",
    "parse_response_head",
]

_CRLF2: Final = b"\r\n\r\n"


# -- wire structs (only the fields the floor reads) -------------------------------------


class _Level(msgspec.Struct, frozen=True):
    price: Decimal
    amount: Decimal


class _Book(msgspec.Struct, frozen=True):
    trading_pair: str
    bids: list[_Level]
    asks: list[_Level]
    timestamp: float


class _Placed(msgspec.Struct, frozen=True):
    order_id: str
    trading_pair: str
    trade_type: str
    amount: Decimal
    price: Decimal | None
    status: str


class _Prices(msgspec.Struct, frozen=True):
    connector: str
    prices: dict[str, Decimal]
    timestamp: float


class _ActiveOrder(msgspec.Struct, frozen=True):
    order_id: str
    connector_name: str
    trading_pair: str
    status: str


class _Page(msgspec.Struct, frozen=True):
    data: list[_ActiveOrder]


class _WsLevel(msgspec.Struct, frozen=True, array_like=True):
    price: Decimal
    amount: Decimal


class _WsBook(msgspec.Struct, frozen=True):
    bids: list[_WsLevel]
    asks: list[_WsLevel]


class _WsMessage(msgspec.Struct, frozen=True):
    type: str
    subscription_id: str | None = None
    data: _WsBook | None = None
    message: str | None = None


_book_decoder: Final = msgspec.json.Decoder(_Book)
_placed_decoder: Final = msgspec.json.Decoder(_Placed)
_prices_decoder: Final = msgspec.json.Decoder(_Prices)
_page_decoder: Final = msgspec.json.Decoder(_Page)
_ws_decoder: Final = msgspec.json.Decoder(_WsMessage)
_encoder: Final = msgspec.json.Encoder()


class HttpError(Exception):
    """A non-2xx answer or a broken response.

    Args:
        status: HTTP status (0 when the response could not be read).
        message: What went wrong (the body's first bytes, never credentials).
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


def parse_response_head(head: bytes) -> tuple[int, int | None, bool, bool]:
    """Parse a response's status line and headers.

    Args:
        head: Bytes up to (not including) the blank line.

    Returns:
        ``(status, content_length, chunked, close)``: ``content_length`` is
        ``None`` when absent; ``close`` is true when the server will close.

    Raises:
        HttpError: The status line is malformed.
    """
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        raise HttpError(0, "malformed status line")
    try:
        status = int(parts[1])
    except ValueError:
        raise HttpError(0, "malformed status line") from None
    length: int | None = None
    chunked = False
    close = parts[0] == b"HTTP/1.0"
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            close = value.strip().lower() == b"close"
    return status, length, chunked, close


def _context(target: Target) -> ssl.SSLContext | None:
    if not target.tls:
        return None
    return ssl.create_default_context(cafile=target.ca_file)


def _auth(target: Target) -> bytes:
    token = base64.b64encode(target.api_key.encode()).decode()
    return f"Basic {token}".encode()


def _open_socket(target: Target, context: ssl.SSLContext | None) -> socket.socket:
    sock = socket.create_connection((target.host, target.port), timeout=30.0)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if context is not None:
        sock = context.wrap_socket(sock, server_hostname=target.host)
    sock.settimeout(None)  # plain blocking I/O: no poll() before every call
    return sock


class _Parser:
    """Incremental HTTP/1.1 response parser over a byte buffer."""

    __slots__ = ("buf", "close")

    def __init__(self) -> None:
        self.buf = bytearray()
        self.close = False

    def feed(self, data: bytes) -> None:
        self.buf += data

    def next_response(self) -> tuple[int, bytes] | None:
        """Pop one complete response from the buffer, or ``None`` if incomplete."""
        end = self.buf.find(_CRLF2)
        if end < 0:
            return None
        status, length, chunked, close = parse_response_head(bytes(self.buf[:end]))
        start = end + 4
        if chunked:
            body = bytearray()
            pos = start
            while True:
                line_end = self.buf.find(b"\r\n", pos)
                if line_end < 0:
                    return None
                size = int(bytes(self.buf[pos:line_end]).split(b";")[0], 16)
                chunk_start = line_end + 2
                if len(self.buf) < chunk_start + size + 2:
                    return None
                if size == 0:
                    trailer_end = self.buf.find(b"\r\n", chunk_start)
                    if trailer_end < 0:
                        return None
                    consumed = trailer_end + 2
                    break
                body += self.buf[chunk_start : chunk_start + size]
                pos = chunk_start + size + 2
            del self.buf[:consumed]
            self.close = close
            return status, bytes(body)
        if length is None:
            raise HttpError(status, "response without Content-Length (unsupported)")
        if len(self.buf) < start + length:
            return None
        body_bytes = bytes(self.buf[start : start + length])
        del self.buf[: start + length]
        self.close = close
        return status, body_bytes


class HttpConnection:
    """One kept-alive HTTP/1.1 connection with blocking I/O.

    Args:
        target: The server.
        context: TLS context (``None`` for plain TCP).
    """

    def __init__(self, target: Target, context: ssl.SSLContext | None) -> None:
        self._target = target
        self._context = context
        self._prefix_host = f"Host: {target.host}:{target.port}\r\n".encode()
        self._auth = b"Authorization: " + _auth(target) + b"\r\n"
        self._sock: socket.socket | None = None
        self._parser = _Parser()

    def build(self, method: str, path: str, body: bytes | None) -> bytes:
        """Build the bytes of one request.

        Args:
            method: ``GET`` or ``POST``.
            path: Path and query.
            body: JSON body or ``None``.

        Returns:
            The request bytes.
        """
        head = f"{method} {path} HTTP/1.1\r\n".encode() + self._prefix_host + self._auth
        if body is None:
            return head + b"Content-Length: 0\r\n\r\n"
        return (
            head
            + b"Content-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )

    def request(self, method: str, path: str, body: bytes | None = None) -> bytes:
        """Send one request and read its response.

        A request written to a connection the server had already closed (the
        keep-alive race) is sent again once on a fresh connection.

        Args:
            method: ``GET`` or ``POST``.
            path: Path and query.
            body: JSON body or ``None``.

        Returns:
            The response body.

        Raises:
            HttpError: Non-2xx answer or broken connection.
        """
        data = self.build(method, path, body)
        for attempt in (0, 1):
            if self._sock is None:
                self._sock = _open_socket(self._target, self._context)
                self._parser = _Parser()
            sock = self._sock
            try:
                sock.sendall(data)
                while True:
                    response = self._parser.next_response()
                    if response is not None:
                        break
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise ConnectionResetError("server closed the connection")
                    self._parser.feed(chunk)
            except (OSError, ssl.SSLError):
                self.close()
                if attempt == 0 and not self._parser.buf:
                    continue
                raise
            if self._parser.close:
                self.close()
            status, payload = response
            if not 200 <= status < 300:
                raise HttpError(status, payload[:200].decode("utf-8", "replace"))
            return payload
        raise HttpError(0, "unreachable")  # pragma: no cover

    def close(self) -> None:
        """Close the socket (a later request opens a new one)."""
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None


class WebSocketConnection:
    """A minimal RFC 6455 client over a blocking (TLS) socket.

    Args:
        target: The server.
        context: TLS context (``None`` for plain TCP).
        path: Request path.
    """

    def __init__(self, target: Target, context: ssl.SSLContext | None, path: str) -> None:
        self._sock = _open_socket(target, context)
        key = base64.b64encode(os.urandom(16))
        self._sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {target.host}:{target.port}\r\n".encode()
            + b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            + b"Sec-WebSocket-Key: "
            + key
            + b"\r\nAuthorization: "
            + _auth(target)
            + b"\r\n\r\n"
        )
        buf = bytearray()
        while (end := buf.find(_CRLF2)) < 0:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise HttpError(0, "connection closed during the WebSocket handshake")
            buf += chunk
        status, _, _, _ = parse_response_head(bytes(buf[:end]))
        if status != 101:
            raise HttpError(status, "WebSocket upgrade refused")
        self._buf = bytearray(buf[end + 4 :])
        self._pos = 0
        self._fragments: list[bytes] = []

    def send_text(self, payload: bytes) -> None:
        """Send one masked text frame.

        Args:
            payload: UTF-8 text.
        """
        self._send_frame(0x1, payload)

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        n = len(payload)
        if n < 126:
            head = bytes((0x80 | opcode, 0x80 | n))
        elif n < 65536:
            head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
        else:
            head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
        mask = os.urandom(4)
        if n:
            key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
            masked = (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big")
        else:
            masked = b""
        self._sock.sendall(head + mask + masked)

    def receive(self) -> bytes:
        """Receive the next complete text or binary message.

        Pings are answered; a close frame raises.

        Returns:
            The message payload.

        Raises:
            ConnectionError: The server closed the connection.
        """
        while True:
            frame = self._next_frame()
            if frame is None:
                chunk = self._sock.recv(262144)
                if not chunk:
                    raise ConnectionError("WebSocket closed by the server")
                if self._pos:
                    del self._buf[: self._pos]
                    self._pos = 0
                self._buf += chunk
                continue
            fin, opcode, payload = frame
            if opcode == 0x9:
                self._send_frame(0xA, payload)
            elif opcode == 0x8:
                raise ConnectionError("WebSocket closed by the server")
            elif opcode in (0x1, 0x2, 0x0):
                if fin and not self._fragments:
                    return payload
                self._fragments.append(payload)
                if fin:
                    message = b"".join(self._fragments)
                    self._fragments.clear()
                    return message

    def _next_frame(self) -> tuple[bool, int, bytes] | None:
        buf, pos = self._buf, self._pos
        avail = len(buf) - pos
        if avail < 2:
            return None
        b0, b1 = buf[pos], buf[pos + 1]
        length = b1 & 0x7F
        offset = 2
        if length == 126:
            if avail < 4:
                return None
            length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
            offset = 4
        elif length == 127:
            if avail < 10:
                return None
            length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
            offset = 10
        masked = b1 & 0x80
        if masked:
            offset += 4
        if avail < offset + length:
            return None
        start = pos + offset
        payload = bytes(buf[start : start + length])
        if masked:  # pragma: no cover - servers do not mask
            mask = buf[start - 4 : start]
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self._pos = start + length
        return bool(b0 & 0x80), b0 & 0x0F, payload

    def close(self) -> None:
        """Send a close frame (best effort) and close the socket."""
        try:
            self._send_frame(0x8, (1000).to_bytes(2, "big"))
        except OSError:
            pass
        finally:
            self._sock.close()


class FloorContender:
    """The floor: raw HTTP/1.1 and WebSocket over TLS, msgspec decoding."""

    name: Final = "floor"

    def __init__(self) -> None:
        self._target: Target | None = None
        self._context: ssl.SSLContext | None = None
        self._conn: HttpConnection | None = None

    @property
    def _http(self) -> HttpConnection:
        if self._conn is None:
            raise RuntimeError("setup() first")
        return self._conn

    @property
    def _t(self) -> Target:
        if self._target is None:
            raise RuntimeError("setup() first")
        return self._target

    def setup(self, target: Target) -> dict[str, str]:
        """Connect to the target.

        Args:
            target: The server.

        Returns:
            Versions of what the floor uses.
        """
        self._target = target
        self._context = _context(target)
        self._conn = HttpConnection(target, self._context)
        self._get_book(1)
        return {"msgspec": msgspec.__version__, "openssl": ssl.OPENSSL_VERSION}

    # -- requests --------------------------------------------------------------

    def _book_body(self, depth: int) -> bytes:
        t = self._t
        return _encoder.encode(
            {"connector_name": t.connector, "trading_pair": t.trading_pair, "depth": depth}
        )

    def _get_book(self, depth: int) -> _Book:
        body = self._http.request("POST", "/market-data/order-book", self._book_body(depth))
        return _book_decoder.decode(body)

    def _limit_price(self) -> Decimal:
        book = self._get_book(1)
        return limit_price(book.bids[0].price, book.asks[0].price, self._t.price_factor)

    def _place(self, price: Decimal) -> _Placed:
        t = self._t
        body = _encoder.encode(
            {
                "account_name": t.account,
                "connector_name": t.connector,
                "trading_pair": t.trading_pair,
                "trade_type": "BUY",
                "amount": t.order_amount,
                "order_type": "LIMIT",
                "price": price,
            }
        )
        return _placed_decoder.decode(self._http.request("POST", "/trading/orders", body))

    def _ticker(self) -> tuple[_Prices, _Book]:
        t = self._t
        prices_body = _encoder.encode(
            {"connector_name": t.connector, "trading_pairs": [t.trading_pair]}
        )
        prices = _prices_decoder.decode(
            self._http.request("POST", "/market-data/prices", prices_body)
        )
        return prices, self._get_book(1)

    def latency(self, scenario: str, n: int, warmup: int) -> list[float]:
        """Timed round trips of a latency scenario.

        Args:
            scenario: ``order_place``, ``order_book`` or ``ticker``.
            n: Timed samples.
            warmup: Untimed round trips first.

        Returns:
            Latencies in microseconds.

        Raises:
            ValueError: Unknown scenario.
        """
        call: Callable[[], object]
        if scenario == "order_place":
            price = self._limit_price()
            call = partial(self._place, price)
        elif scenario == "order_book":
            call = partial(self._get_book, self._t.book_depth)
        elif scenario == "ticker":
            call = self._ticker
        else:
            raise ValueError(f"unknown latency scenario {scenario!r}")
        return time_calls(call, n, warmup)

    def throughput(self, concurrency: int, duration: float) -> tuple[int, float, float]:
        """``concurrency`` kept-alive connections in one selectors loop, each
        sending ``order_book`` requests back to back for ``duration`` seconds.

        Args:
            concurrency: Number of connections (requests in flight).
            duration: Seconds.

        Returns:
            ``(requests, wall_s, cpu_s)``.
        """
        t = self._t
        depth = t.book_depth
        proto = HttpConnection(t, self._context)
        socks = [_open_socket(t, self._context) for _ in range(concurrency)]
        sel = selectors.DefaultSelector()
        parsers: dict[int, _Parser] = {}
        by_fd = {s.fileno(): s for s in socks}
        try:
            for s in socks:
                s.setblocking(False)
                parsers[s.fileno()] = _Parser()
                sel.register(s, selectors.EVENT_READ)
            done = 0
            cpu0, t0 = time.process_time(), time.perf_counter()
            deadline = t0 + duration
            for s in socks:
                _send_nonblocking(
                    s, proto.build("POST", "/market-data/order-book", self._book_body(depth))
                )
            in_flight = concurrency
            while in_flight:
                for key, _ in sel.select(timeout=5.0):
                    s = by_fd[key.fd]
                    parser = parsers[s.fileno()]
                    try:
                        while True:
                            chunk = s.recv(262144)
                            if not chunk:
                                raise HttpError(0, "server closed a throughput connection")
                            parser.feed(chunk)
                    except (ssl.SSLWantReadError, BlockingIOError):
                        pass
                    while (response := parser.next_response()) is not None:
                        status, body = response
                        if status != 200:
                            raise HttpError(status, body[:200].decode("utf-8", "replace"))
                        _book_decoder.decode(body)
                        done += 1
                        if time.perf_counter() < deadline:
                            _send_nonblocking(
                                s,
                                proto.build(
                                    "POST", "/market-data/order-book", self._book_body(depth)
                                ),
                            )
                        else:
                            in_flight -= 1
            wall = time.perf_counter() - t0
            cpu = time.process_time() - cpu0
        finally:
            sel.close()
            for s in socks:
                s.close()
        return done, wall, cpu

    def stream(self, duration: float, warmup: float) -> tuple[int, float, float]:
        """Count order-book snapshots decoded from one subscription.

        Args:
            duration: Counting window, seconds.
            warmup: Seconds of snapshots discarded first.

        Returns:
            ``(snapshots, wall_s, cpu_s)``.

        Raises:
            HttpError: The subscription was refused.
        """
        t = self._t
        ws = WebSocketConnection(t, self._context, "/ws/market-data")
        try:
            ws.send_text(
                _encoder.encode(
                    {
                        "action": "subscribe",
                        "type": "order_book",
                        "connector": t.connector,
                        "trading_pair": t.trading_pair,
                        "depth": t.stream_depth,
                        "update_interval": 0,
                    }
                )
            )
            window = SnapshotWindow(duration, warmup)
            while True:
                msg = _ws_decoder.decode(ws.receive())
                if msg.type == "order_book":
                    now = time.perf_counter()
                    if window.arrived(now):
                        return window.result(now)
                elif msg.type == "error":
                    raise HttpError(0, f"subscription refused: {msg.message}")
        finally:
            ws.close()

    def cleanup(self) -> int:
        """Cancel every live order of the account on the target market.

        Returns:
            How many cancellations were accepted.
        """
        t = self._t
        cancelled = 0
        for _ in range(50):
            body = _encoder.encode(
                {
                    "account_names": [t.account],
                    "connector_names": [t.connector],
                    "trading_pairs": [t.trading_pair],
                    "limit": 1000,
                }
            )
            page = _page_decoder.decode(self._http.request("POST", "/trading/orders/active", body))
            live = [o for o in page.data if o.status in LIVE_STATUSES]
            if not live:
                break
            progress = 0
            for o in live:
                path = f"/trading/{t.account}/{o.connector_name}/orders/{o.order_id}/cancel"
                try:
                    self._http.request("POST", path)
                except HttpError as exc:
                    if exc.status != 404:
                        raise
                else:
                    cancelled += 1
                    progress += 1
            if not progress:
                break
        return cancelled

    def close(self) -> None:
        """Close the kept-alive connection."""
        if self._conn is not None:
            self._conn.close()


def _send_nonblocking(sock: socket.socket, data: bytes) -> None:
    """Write all of ``data`` on a non-blocking socket (waits if the buffer is full)."""
    view = memoryview(data)
    while view:
        try:
            sent = sock.send(view)
        except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
            select.select([], [sock], [], 0.01)
            continue
        view = view[sent:]
