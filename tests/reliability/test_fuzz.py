"""Fuzzing the client with Hypothesis.

* Malformed HTTP answers (wrong types, missing fields, huge numbers, invalid
  UTF-8, bad framing, odd statuses) from a scripted server over real sockets:
  every call returns a well-typed value or raises an :class:`hbtrio.HbtrioError`
  (``MalformedResponse`` for bodies it cannot use), and the client keeps working.
* Malformed WebSocket frames (invalid JSON and UTF-8, wrong types, unknown
  message types, binary, oversized, reserved bits): the client survives, reports
  them as ``ErrorEvent`` (or reconnects for protocol violations), and the stream
  goes on. Malformed but JSON-shaped messages (a known type with the wrong shape
  or unusable values, no type, a type that is not a string) are each published
  as exactly one ``ErrorEvent`` on the same connection.
* Every public method fed generated arguments either works or raises
  :class:`hbtrio.InputValidationError` before any I/O (a counting transport in
  front of a real simulator's connection pool proves it; for the streams, a
  counting WebSocket dialer too). That includes ``subscribe_order_book``,
  ``subscribe_trades``, ``subscribe_ticker``, ``subscribe_candles`` and
  ``events()``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import msgspec
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hbtrio
from hbtrio._actors.http import HttpPool, HttpResponse
from hbtrio._actors.transport import Dialer, WsTransport, trio_websocket_dialer
from hbtrio.sim import SimInfo
from tests.reliability._scripted import DEFAULTS, ScriptedServer, frame, response
from tests.reliability._support import config_for, open_client

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# -- malformed HTTP answers ---------------------------------------------------------

JUNK: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.sampled_from(
        ["1e400", "NaN", "-Infinity", "", "BUY", "FILLED", "submitted", "0x10", "1_000", "-1"]
    ),
    st.just([]),
    st.just({}),
    st.just(10**400),
    st.just(-(10**30)),
    st.just(1e308),
)


@st.composite
def mutated(draw: st.DrawFn, value: Any) -> Any:
    """``value`` with some nodes removed, replaced by junk, or extended."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, child in value.items():
            choice = draw(st.integers(0, 9))
            if choice == 0:
                continue  # missing field
            out[key] = draw(JUNK) if choice == 1 else draw(mutated(child))
        if draw(st.integers(0, 9)) == 0:
            out[draw(st.text(max_size=5))] = draw(JUNK)
        return out
    if isinstance(value, list):
        if draw(st.integers(0, 9)) == 0:
            return draw(JUNK)
        items = [draw(mutated(child)) for child in value]
        if draw(st.integers(0, 6)) == 0:
            items.append(draw(JUNK))
        return items
    return draw(JUNK) if draw(st.integers(0, 3)) == 0 else value


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


def bodies(template: Any) -> st.SearchStrategy[bytes]:
    """Response bodies derived from a valid ``template`` or from nothing at all."""
    good = _json(template)
    return st.one_of(
        mutated(template).map(_json),
        mutated(template).map(_json),
        mutated(template).map(_json),
        st.binary(max_size=40),
        st.integers(0, len(good)).map(lambda n: good[:n]),
        st.sampled_from(
            [
                b"",
                b"Internal Server Error",
                b"\xff\xfe\x00{",
                good.replace(b'"', b"'"),
                b"[" * 50_000,
                _json(["x" * 1000] * 1000),
                _json({"detail": [{"type": "missing", "loc": ["body"], "msg": "x"}]}),
            ]
        ),
    )


Call = tuple[tuple[str, str], Callable[[Any], Awaitable[Any]], type | tuple[type, ...]]

CALLS: list[Call] = [
    (("GET", "/"), lambda c: c.server_info(), hbtrio.ServerInfo),
    (("GET", "/accounts/"), lambda c: c.get_accounts(), list),
    (("GET", "/connectors/"), lambda c: c.get_exchanges(), list),
    (
        ("POST", "/market-data/order-book"),
        lambda c: c.get_order_book("binance", "BTC-USDT", depth=5),
        hbtrio.OrderBook,
    ),
    (("POST", "/trading/orders/active"), lambda c: c.get_open_orders(), list),
    (("POST", "/trading/orders/search"), lambda c: c.get_order_history(limit=5), hbtrio.Page),
    (("POST", "/trading/trades"), lambda c: c.get_trades(limit=5), hbtrio.Page),
    (("POST", "/portfolio/state"), lambda c: c.get_balances(), list),
    (
        ("POST", "/market-data/candles"),
        lambda c: c.get_candles("binance", "BTC-USDT", interval="1m", limit=5),
        list,
    ),
    (
        ("POST", "/market-data/historical-candles"),
        lambda c: c.get_historical_candles(
            "binance", "BTC-USDT", interval="1h", start=time.time() - 7200
        ),
        list,
    ),
    (
        ("GET", "/connectors/binance/trading-rules"),
        lambda c: c.get_trading_rules("binance"),
        dict,
    ),
    (
        ("POST", "/trading/orders"),
        lambda c: c.place_limit_order(
            "binance", "BTC-USDT", "BUY", price=Decimal("50000"), amount=Decimal("0.001")
        ),
        hbtrio.Order,
    ),
    (
        ("POST", "/trading/master_account/binance/orders/ord-1/cancel"),
        lambda c: c.cancel_order("ord-1", exchange="binance", market="BTC-USDT"),
        type(None),
    ),
    (("POST", "/market-data/prices"), lambda c: c.get_ticker("binance", "BTC-USDT"), hbtrio.Ticker),
]

_MONEY = {"amount", "price", "filled_amount", "average_fill_price", "fee_paid", "total"}


def _check_value(value: Any) -> None:
    """Containers hold model objects; money fields are Decimal (never float)."""
    if isinstance(value, list | tuple):
        for item in value:
            _check_value(item)
    elif isinstance(value, dict):
        for item in value.values():
            _check_value(item)
    elif isinstance(value, hbtrio.Page):
        _check_value(value.items)
    elif isinstance(value, msgspec.Struct):
        for name in value.__struct_fields__:
            field = getattr(value, name)
            if name in _MONEY:
                assert field is None or isinstance(field, Decimal), (name, field)
                if isinstance(field, Decimal):
                    assert field.is_finite(), (name, field)
            elif isinstance(field, list | tuple | msgspec.Struct):
                _check_value(field)


HTTP_CASES = st.sampled_from(range(len(CALLS))).flatmap(
    lambda i: st.tuples(
        st.just(i),
        st.sampled_from([200, 200, 200, 201, 204, 302, 400, 401, 404, 422, 429, 500, 503, 504]),
        bodies(DEFAULTS[CALLS[i][0]][1]),
        st.sampled_from(["application/json"] * 4 + ["text/plain", None]),
        st.sampled_from(["length"] * 6 + ["chunked", "close", "short", "garbage"]),
    )
)


@settings(FUZZ, max_examples=50)
@given(case=HTTP_CASES)
async def test_fuzz_malformed_http_answers(
    case: tuple[int, int, bytes, str | None, str],
) -> None:
    index, status, body, content_type, framing = case
    key, call, expected = CALLS[index]
    server = ScriptedServer()
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        config = config_for(
            "127.0.0.1",
            server.port,
            None,
            tls=False,
            timeout=0.3,
            retries=1,
            reconnect_initial=0.01,
            reconnect_max=0.02,
        )
        with trio.fail_after(20):
            async with open_client(config) as client:
                server.script[key] = response(
                    status, body, content_type=content_type, framing=framing
                )
                if framing in ("close", "short", "garbage"):
                    server.close_after.add(key)
                try:
                    result = await call(client)
                except hbtrio.HbtrioError as exc:
                    assert str(exc)  # a readable message
                    if (
                        status in (200, 201)
                        and framing == "length"
                        and isinstance(exc, hbtrio.RequestError)
                        and not isinstance(exc, hbtrio.MalformedResponse | hbtrio.RequestTimeout)
                    ):
                        pytest.fail(f"a bad 2xx body should be MalformedResponse, got {exc!r}")
                else:
                    assert isinstance(result, expected), (type(result), expected)
                    _check_value(result)
                assert server.requests[key] >= 1
                # The client is still alive and well.
                del server.script[key]
                assert await client.get_accounts() == ["master_account"]
        nursery.cancel_scope.cancel()


# -- malformed WebSocket frames -----------------------------------------------------

_SUB = "order_book_binance_BTC-USDT"
WS_FRAMES: st.SearchStrategy[tuple[str, bytes]] = st.one_of(
    # JSON of the wrong shape for known types, unknown types, huge numbers.
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(
                [
                    "order_book",
                    "trades",
                    "candles",
                    "candle_update",
                    "pong",
                    "heartbeat",
                    "subscribed",
                    "error",
                    "nonsense",
                    "",
                ]
            ),
            "subscription_id": st.one_of(st.just(_SUB), JUNK),
            "data": st.one_of(
                mutated({"bids": [[59999, 1]], "asks": [[60001, 1]]}),
                mutated([{"timestamp": 1.0, "price": 1, "amount": 1, "side": "buy"}]),
                JUNK,
            ),
            "timestamp": JUNK,
        }
    ).map(lambda v: ("shaped", frame(_json(v)))),
    # Valid JSON that is not an object: never a server message.
    JUNK.filter(lambda v: not isinstance(v, dict)).map(lambda v: ("not_object", frame(_json(v)))),
    st.binary(max_size=30).map(lambda b: ("raw_text", frame(b))),  # often invalid UTF-8
    st.binary(max_size=30).map(lambda b: ("binary", frame(b, opcode=2))),
    st.just(("protocol", frame(b'{"type":"order_book"' + b" " * 2_000_000 + b"}"))),  # too big
    st.just(("protocol", frame(b"{}", rsv=2))),  # reserved bit
    st.just(("protocol", frame(b"{}", opcode=3))),  # reserved opcode
)


def _ws_fuzz_config(port: int) -> hbtrio.ClientConfig:
    """A plain-HTTP client of the scripted server, quick to notice a dead WebSocket."""
    return config_for(
        "127.0.0.1",
        port,
        None,
        tls=False,
        timeout=1.0,
        retries=1,
        reconnect_initial=0.01,
        reconnect_max=0.05,
        ping_interval=0.5,
        heartbeat_timeout=2.0,
    )


@FUZZ
@given(frames=st.lists(WS_FRAMES, min_size=1, max_size=4))
async def test_fuzz_malformed_websocket_frames(frames: list[tuple[str, bytes]]) -> None:
    server = ScriptedServer()
    server.ws_frames = [raw for _, raw in frames]
    errors: list[hbtrio.ErrorEvent] = []

    async def collect(events: Any) -> None:
        async for event in events:
            if isinstance(event, hbtrio.ErrorEvent):
                errors.append(event)

    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        config = _ws_fuzz_config(server.port)
        with trio.fail_after(20):
            async with (
                open_client(config) as client,
                client.events(hbtrio.ErrorEvent) as events,
                trio.open_nursery() as inner,
            ):
                inner.start_soon(collect, events)
                async with client.subscribe_order_book("binance", "BTC-USDT", depth=5) as books:
                    got = 0
                    async for book in books:
                        assert isinstance(book, hbtrio.OrderBook)
                        assert book.bids and isinstance(book.bids[0].price, Decimal)
                        got += 1
                        if got >= 2:
                            break  # the stream went on after the malformed frames
                kinds = {kind for kind, _ in frames}
                if kinds & {"not_object", "protocol"}:
                    # Reported as an ErrorEvent, or the connection was replaced.
                    with trio.move_on_after(3):
                        while not errors and server.ws_sessions < 2:  # noqa: ASYNC110
                            await trio.sleep(0.01)
                    assert errors or server.ws_sessions >= 2, kinds
                for event in errors:
                    assert event.error  # a readable description
                # Connected again (if it had to reconnect) and serving requests.
                with trio.fail_after(5):
                    while client.state is not hbtrio.ConnectionState.CONNECTED:  # noqa: ASYNC110
                        await trio.sleep(0.01)
                assert await client.get_accounts() == ["master_account"]
                inner.cancel_scope.cancel()
        nursery.cancel_scope.cancel()


def _not(kind: type | tuple[type, ...]) -> st.SearchStrategy[Any]:
    """Junk that is not of ``kind``."""
    return JUNK.filter(lambda v: not isinstance(v, kind))


_CANDLES_SUB = "candles_binance_BTC-USDT_1m"
_VALID_BOOK = {"bids": [[59999, 1]], "asks": [[60001, 1]]}
_BAD_LEVELS: st.SearchStrategy[Any] = st.one_of(
    _not(list),
    st.sampled_from(
        [
            [["abc", 1]],
            [[1]],
            [[None, 1]],
            [[1, 2, 3]],
            [{"price": "x", "amount": 1}],
            [{"amount": 1}],
            ["59999"],
        ]
    ),
)
MALFORMED_SHAPED: st.SearchStrategy[dict[str, Any]] = st.one_of(
    # A known data type with the wrong shape or unusable values.
    st.builds(
        lambda data: {"type": "order_book", "subscription_id": _SUB, "data": data}, _not(dict)
    ),
    st.builds(
        lambda levels, side: {
            "type": "order_book",
            "subscription_id": _SUB,
            "data": dict(_VALID_BOOK, **{side: levels}),
        },
        _BAD_LEVELS,
        st.sampled_from(["bids", "asks"]),
    ),
    st.builds(
        lambda sub: {"type": "order_book", "subscription_id": sub, "data": _VALID_BOOK},
        _not(str),
    ),
    st.builds(
        lambda data: {"type": "trades", "subscription_id": "trades_binance_BTC-USDT", "data": data},
        _not(list),
    ),
    st.builds(
        lambda data: {"type": "candles", "subscription_id": _CANDLES_SUB, "data": data},
        _not(list),
    ),
    # A known control type with the wrong shape.
    st.builds(lambda sub: {"type": "subscribed", "subscription_id": sub}, _not(str)),
    st.builds(lambda sub: {"type": "unsubscribed", "subscription_id": sub}, _not(str)),
    st.builds(lambda text: {"type": "error", "message": text}, _not(str)),
    # No type, or a type that is not a string.
    st.just({"subscription_id": _SUB, "data": _VALID_BOOK}),
    st.builds(lambda t: {"type": t, "subscription_id": _SUB, "data": _VALID_BOOK}, _not(str)),
)


@settings(FUZZ, max_examples=40)
@given(messages=st.lists(MALFORMED_SHAPED, min_size=1, max_size=4))
async def test_fuzz_malformed_json_messages_publish_one_error_event_each(
    messages: list[dict[str, Any]],
) -> None:
    server = ScriptedServer()
    server.ws_frames = [frame(_json(m)) for m in messages]
    seen: list[hbtrio.Event] = []

    async def collect(events: Any) -> None:
        async for event in events:
            seen.append(event)

    def errors() -> list[hbtrio.ErrorEvent]:
        return [e for e in seen if isinstance(e, hbtrio.ErrorEvent)]

    def books() -> int:
        return sum(isinstance(e, hbtrio.OrderBookUpdate) for e in seen)

    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        config = _ws_fuzz_config(server.port)
        with trio.fail_after(20):
            async with (
                open_client(config) as client,
                client.events(hbtrio.ErrorEvent, hbtrio.OrderBookUpdate) as events,
                trio.open_nursery() as inner,
            ):
                inner.start_soon(collect, events)
                async with client.subscribe_order_book("binance", "BTC-USDT", depth=5) as stream:
                    # The server pushes a book, the malformed messages, then a book.
                    for _ in range(2):
                        book = await anext(stream)
                        assert book.bids and isinstance(book.bids[0].price, Decimal)
                    with trio.move_on_after(3):
                        while len(errors()) < len(messages) or books() < 2:  # noqa: ASYNC110
                            await trio.sleep(0.01)
                    await trio.sleep(0.1)  # (time for a second report of the same message)
                    assert len(errors()) == len(messages), (messages, errors())
                    for event in errors():
                        assert event.kind == "MalformedResponse" and event.error, event
                # Not a protocol violation: the same connection goes on, the client works.
                assert server.ws_sessions == 1
                assert client.state is hbtrio.ConnectionState.CONNECTED
                assert await client.get_accounts() == ["master_account"]
                inner.cancel_scope.cancel()
        nursery.cancel_scope.cancel()


# -- generated arguments: InputValidationError before any I/O -----------------------


class CountingTransport:
    """A transport that counts requests before handing them to a real pool."""

    def __init__(self, inner: HttpPool) -> None:
        self.inner = inner
        self.count = 0

    async def request(
        self,
        method: str,
        path: str,
        body: bytes | None,
        *,
        timeout: float | None,  # noqa: ASYNC109
    ) -> HttpResponse:
        self.count += 1
        return await self.inner.request(method, path, body, timeout=timeout)

    async def aclose(self) -> None:
        await self.inner.aclose()


TIME_VALID = st.sampled_from(
    [time.time() - 3600, datetime.now(UTC) - timedelta(hours=1), int(time.time()) - 60]
)


def maybe(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly valid values, sometimes junk of any type."""
    return st.one_of(valid, valid, JUNK)


EXCHANGE = maybe(st.sampled_from(["binance", "kucoin"])) | st.sampled_from(
    ["", "bin ance", "binance\x00", "a" * 300, "../x", "BINANCE"]
)
MARKET = maybe(st.sampled_from(["BTC-USDT", "ETH-USDT"])) | st.sampled_from(
    ["", "btc-usdt", "BTCUSDT", "BTC-USDT-X", "BTC/USDT", "BTC-USDT?x=1"]
)
SIDE = maybe(st.sampled_from([hbtrio.Side.BUY, hbtrio.Side.SELL, "BUY", "sell"])) | st.just("UP")
AMOUNT = maybe(
    st.sampled_from([Decimal("0.001"), "0.002", Decimal("0.0005"), 1, 0.001])
) | st.sampled_from(
    [0, -1, Decimal("NaN"), Decimal("Infinity"), "abc", "1e400", Decimal("1E+100"), True, math.nan]
)
PRICE = maybe(st.sampled_from([Decimal("50000"), "49000.5", 45000])) | st.sampled_from(
    [0, -5, Decimal("sNaN"), "x", float("inf"), Decimal("-0")]
)
ORDER_TYPE = maybe(st.sampled_from([*list(hbtrio.OrderType), "LIMIT", "market"])) | st.just("STOP")
POSITION = maybe(st.sampled_from([*list(hbtrio.PositionAction), "OPEN"])) | st.just("HOLD")
ORDER_ID = maybe(st.sampled_from(["abc123", "ord-1"])) | st.sampled_from(
    ["", "a/b", "a?b", "../../etc", "x" * 500, "id\r\nX: y"]
)
INT = maybe(st.integers(1, 50)) | st.sampled_from([0, -1, 10**9, True, "5", 2.5])
TIME = st.one_of(TIME_VALID, TIME_VALID, JUNK) | st.sampled_from(
    [datetime(2024, 1, 1), -1.0, math.nan, "yesterday", 10**13]
)
INTERVAL = maybe(st.sampled_from(["1m", "1h", "5m"])) | st.sampled_from(["", "7x", "1M1", "m"])
STATUS = maybe(st.sampled_from([None, hbtrio.OrderStatus.OPEN, "FILLED"])) | st.just("DONE")
BOOL = maybe(st.booleans())


def OPT(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``None`` or a value of ``strategy``."""
    return st.one_of(st.none(), strategy)


METHODS: dict[str, st.SearchStrategy[tuple[tuple[Any, ...], dict[str, Any]]]] = {
    "place_order": st.tuples(
        st.tuples(EXCHANGE, MARKET, SIDE),
        st.fixed_dictionaries(
            {"amount": AMOUNT},
            optional={
                "order_type": ORDER_TYPE,
                "price": OPT(PRICE),
                "position_action": POSITION,
                "wait_accepted": st.sampled_from([False, "yes", 1]),
            },
        ),
    ),
    "place_limit_order": st.tuples(
        st.tuples(EXCHANGE, MARKET, SIDE),
        st.fixed_dictionaries({"price": PRICE, "amount": AMOUNT}),
    ),
    "place_market_order": st.tuples(
        st.tuples(EXCHANGE, MARKET, SIDE), st.fixed_dictionaries({"amount": AMOUNT})
    ),
    "cancel_order": st.tuples(
        st.tuples(ORDER_ID),
        st.fixed_dictionaries({}, optional={"exchange": OPT(EXCHANGE), "market": OPT(MARKET)}),
    ),
    "get_order": st.tuples(
        st.tuples(ORDER_ID),
        st.fixed_dictionaries({}, optional={"exchange": OPT(EXCHANGE), "market": OPT(MARKET)}),
    ),
    "get_open_orders": st.tuples(
        st.just(()),
        st.fixed_dictionaries({}, optional={"exchange": OPT(EXCHANGE), "market": OPT(MARKET)}),
    ),
    "get_order_history": st.tuples(
        st.just(()),
        st.fixed_dictionaries(
            {},
            optional={
                "start": OPT(TIME),
                "end": OPT(TIME),
                "market": OPT(MARKET),
                "status": STATUS,
                "exchange": OPT(EXCHANGE),
                "limit": INT,
                "cursor": OPT(maybe(st.just("abc"))),
            },
        ),
    ),
    "get_trades": st.tuples(
        st.just(()),
        st.fixed_dictionaries(
            {},
            optional={
                "start": OPT(TIME),
                "end": OPT(TIME),
                "market": OPT(MARKET),
                "exchange": OPT(EXCHANGE),
                "limit": INT,
            },
        ),
    ),
    "get_order_book": st.tuples(
        st.tuples(EXCHANGE, MARKET), st.fixed_dictionaries({}, optional={"depth": INT})
    ),
    "get_ticker": st.tuples(st.tuples(EXCHANGE, MARKET), st.just({})),
    "get_candles": st.tuples(
        st.tuples(EXCHANGE, MARKET),
        st.fixed_dictionaries({}, optional={"interval": INTERVAL, "limit": INT}),
    ),
    "get_historical_candles": st.tuples(
        st.tuples(EXCHANGE, MARKET),
        st.fixed_dictionaries({"start": TIME}, optional={"interval": INTERVAL, "end": OPT(TIME)}),
    ),
    "get_balances": st.tuples(
        st.just(()),
        st.fixed_dictionaries({}, optional={"exchange": OPT(EXCHANGE), "refresh": BOOL}),
    ),
    "get_trading_rules": st.tuples(
        st.tuples(EXCHANGE),
        st.fixed_dictionaries({}, optional={"markets": OPT(maybe(st.lists(MARKET, max_size=3)))}),
    ),
    "cancel_all_orders": st.tuples(
        st.just(()),
        st.fixed_dictionaries({}, optional={"exchange": OPT(EXCHANGE), "market": OPT(MARKET)}),
    ),
    "iter_order_history": st.tuples(
        st.just(()),
        st.fixed_dictionaries(
            {},
            optional={
                "start": OPT(TIME),
                "market": OPT(MARKET),
                "status": STATUS,
                "page_size": INT,
                "max_pages": INT,
            },
        ),
    ),
}

CALL_CASES = st.sampled_from(sorted(METHODS)).flatmap(
    lambda name: st.tuples(st.just(name), METHODS[name])
)


@settings(FUZZ, max_examples=100)
@given(case=CALL_CASES)
async def test_fuzz_public_methods_validate_before_io(
    thread_sim: SimInfo, case: tuple[str, tuple[tuple[Any, ...], dict[str, Any]]]
) -> None:
    name, (args, kwargs) = case
    config = config_for(thread_sim.host, thread_sim.port, thread_sim.ca_path, timeout=3.0)
    transport = CountingTransport(HttpPool(config))
    with trio.fail_after(30):
        async with open_client(config, transport=transport) as client:
            before = transport.count
            method = getattr(client, name)
            try:
                if name == "iter_order_history":
                    n = 0
                    async for order in method(*args, **kwargs):
                        assert isinstance(order, hbtrio.Order)
                        n += 1
                        if n >= 3:
                            break
                else:
                    result = await method(*args, **kwargs)
                    _check_value(result)
            except hbtrio.InputValidationError as exc:
                assert transport.count == before, f"{name} did I/O before rejecting: {exc}"
                assert exc.argument and str(exc)
            except hbtrio.HbtrioError as exc:
                # A well-formed request the server turned down (unknown pair, funds, ...).
                assert transport.count > before, f"{name} raised {exc!r} without I/O"
                assert not isinstance(exc, hbtrio.InputValidationError)


# -- generated arguments of the streams and events() ---------------------------------


class CountingDialer:
    """A WebSocket dialer counting the subscribe/unsubscribe messages the client sends."""

    def __init__(self, inner: Dialer) -> None:
        self.inner = inner
        self.sent = 0

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[WsTransport]:
        async with self.inner() as transport:
            yield _CountingWs(transport, self)


class _CountingWs:
    def __init__(self, inner: WsTransport, owner: CountingDialer) -> None:
        self.inner = inner
        self.owner = owner

    async def receive(self) -> str | bytes:
        return await self.inner.receive()

    async def send(self, message: str | bytes) -> None:
        text = message if isinstance(message, str) else message.decode("utf-8", "replace")
        if '"subscribe"' in text or '"unsubscribe"' in text:
            self.owner.sent += 1
        await self.inner.send(message)


UPDATE_INTERVAL = maybe(st.sampled_from([0, 0.05, 1, 2.5])) | st.sampled_from(
    [-1, math.nan, math.inf, 3601, True, "1", None, 10**400]
)
COUNT = maybe(st.integers(1, 50)) | st.sampled_from([0, -1, 1001, 10**8, True, "5", 2.5, None])
EVENT_TYPE = maybe(
    st.sampled_from(
        [
            hbtrio.Event,
            hbtrio.OrderUpdate,
            hbtrio.TradeEvent,
            hbtrio.ErrorEvent,
            hbtrio.TickerUpdate,
        ]
    )
) | st.sampled_from([int, object, hbtrio.Order, "OrderUpdate"])

STREAMS: dict[str, st.SearchStrategy[tuple[tuple[Any, ...], dict[str, Any]]]] = {
    "subscribe_order_book": st.tuples(
        st.tuples(EXCHANGE, MARKET),
        st.fixed_dictionaries({}, optional={"depth": COUNT, "update_interval": UPDATE_INTERVAL}),
    ),
    "subscribe_trades": st.tuples(
        st.tuples(EXCHANGE, MARKET),
        st.fixed_dictionaries({}, optional={"update_interval": UPDATE_INTERVAL, "buffer": COUNT}),
    ),
    "subscribe_ticker": st.tuples(
        st.tuples(EXCHANGE, MARKET),
        st.fixed_dictionaries({}, optional={"update_interval": UPDATE_INTERVAL}),
    ),
    "subscribe_candles": st.tuples(
        st.tuples(EXCHANGE, MARKET),
        st.fixed_dictionaries(
            {},
            optional={
                "interval": INTERVAL,
                "update_interval": UPDATE_INTERVAL,
                "max_records": COUNT,
                "buffer": COUNT,
            },
        ),
    ),
}
EVENTS_ARGS = st.tuples(
    st.lists(EVENT_TYPE, max_size=3).map(tuple),
    st.fixed_dictionaries({}, optional={"buffer": COUNT}),
)


async def _enter_and_leave(
    client: hbtrio.Client,
    name: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    transport: CountingTransport,
    dialer: CountingDialer,
) -> None:
    """Open one stream (or events()) with the arguments and leave it: it must work, or
    raise InputValidationError having sent nothing (HTTP or WebSocket)."""
    before = (transport.count, dialer.sent)
    try:
        async with getattr(client, name)(*args, **kwargs) as stream:
            assert hasattr(stream, "__anext__")
    except hbtrio.InputValidationError as exc:
        await trio.sleep(0.05)  # a subscription registered anyway would be sent now
        assert (transport.count, dialer.sent) == before, f"{name} did I/O before: {exc}"
        assert exc.argument and str(exc)
    except hbtrio.HbtrioError as exc:
        # Well-formed, and turned down by the server (the ticker's REST seed, ...).
        assert (transport.count, dialer.sent) != before, f"{name} raised {exc!r} without I/O"
        assert not isinstance(exc, hbtrio.InputValidationError)


@asynccontextmanager
async def _counting_client(info: SimInfo) -> AsyncIterator[Any]:
    config = config_for(info.host, info.port, info.ca_path, timeout=3.0)
    transport = CountingTransport(HttpPool(config))
    dialer = CountingDialer(trio_websocket_dialer(config))
    async with open_client(config, transport=transport, dialer=dialer) as client:
        yield client, transport, dialer


STREAM_CASES = st.sampled_from(sorted(STREAMS)).flatmap(
    lambda name: st.tuples(st.just(name), STREAMS[name])
)


@settings(FUZZ, max_examples=60)
@given(case=STREAM_CASES)
async def test_fuzz_stream_subscriptions_validate_before_io(
    thread_sim: SimInfo, case: tuple[str, tuple[tuple[Any, ...], dict[str, Any]]]
) -> None:
    name, (args, kwargs) = case
    with trio.fail_after(30):
        async with _counting_client(thread_sim) as (client, transport, dialer):
            await _enter_and_leave(client, name, args, kwargs, transport, dialer)


@settings(FUZZ, max_examples=40)
@given(case=EVENTS_ARGS)
async def test_fuzz_events_arguments_validate_before_io(
    thread_sim: SimInfo, case: tuple[tuple[Any, ...], dict[str, Any]]
) -> None:
    # Library bug (see the report): events() raises ValueError/TypeError, not
    # InputValidationError, for a bad buffer or a non-event type.
    types, kwargs = case
    with trio.fail_after(30):
        async with _counting_client(thread_sim) as (client, transport, dialer):
            await _enter_and_leave(client, "events", types, kwargs, transport, dialer)


# -- regressions found by the fuzzers ----------------------------------------------


async def test_huge_int_time_argument_is_an_input_validation_error(thread_sim: SimInfo) -> None:
    # Found by the argument fuzzer: float(10**400) raised OverflowError (fixed in 1078d2a).
    config = config_for(thread_sim.host, thread_sim.port, thread_sim.ca_path)
    transport = CountingTransport(HttpPool(config))
    async with open_client(config, transport=transport) as client:
        before = transport.count
        with pytest.raises(hbtrio.InputValidationError):
            await client.get_historical_candles("binance", "BTC-USDT", start=10**400)
        with pytest.raises(hbtrio.InputValidationError):
            await client.get_order_history(start=-(10**400))
        assert transport.count == before


async def test_events_bad_arguments_are_input_validation_errors(thread_sim: SimInfo) -> None:
    # Library bug (found by the fuzzer above): events() raises ValueError for a bad
    # buffer and TypeError for a non-event type; every public method must raise
    # InputValidationError for a bad argument.
    async with _counting_client(thread_sim) as (client, _, _):
        for types, kwargs in (((), {"buffer": 0}), ((int,), {}), (("OrderUpdate",), {})):
            with pytest.raises(hbtrio.InputValidationError):
                async with client.events(*types, **kwargs):
                    pass
