"""Client REST operations and error paths against an in-memory fake transport."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import trio

import hbtrio
from hbtrio import (
    AuthenticationFailed,
    ClientConfig,
    ConnectionFailed,
    InputValidationError,
    InsufficientFunds,
    InvalidOrder,
    MalformedResponse,
    MinOrderSizeNotMet,
    NotFound,
    OrderNotFound,
    OrderOutcomeUnknown,
    OrderRejected,
    OrderStatus,
    OrderType,
    PriceOutOfRange,
    RequestError,
    RequestTimeout,
    ServerError,
    Side,
)
from hbtrio._client import Client, open_client
from tests.unit.test_rest_fake import Call, FakeServer, FakeTransport, detail, respond

KEY = "admin:sup3r-secret"


def make_config(**kw: Any) -> ClientConfig:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 8000,
        "api_key": KEY,
        "tls": False,
        "timeout": 1.0,
        "retries": 2,
    }
    values.update(kw)
    return ClientConfig(**values)


@pytest.fixture
def server() -> FakeServer:
    return FakeServer()


@pytest.fixture
async def client(server: FakeServer) -> AsyncIterator[Client]:
    async with open_client(make_config(), transport=FakeTransport(server), streaming=False) as c:
        server.calls.clear()
        yield c


def paths(server: FakeServer) -> list[str]:
    return [c.path.split("?")[0] for c in server.calls]


def lose_answer(call: Call) -> None:
    """The request reached the server but the connection dropped before the answer."""
    raise ConnectionFailed("dropped", method=call.method, path=call.path, retryable=False)


# -- lifecycle --------------------------------------------------------------------------


async def test_open_probes_credentials_and_closes_transport(server: FakeServer) -> None:
    transport = FakeTransport(server)
    async with open_client(make_config(), transport=transport, streaming=False) as c:
        assert c.state is hbtrio.ConnectionState.CONNECTED
        assert paths(server) == ["/accounts/"]
    assert transport.closed
    assert c.state is hbtrio.ConnectionState.DISCONNECTED


async def test_wrong_key_raises_authentication_failed_at_once(server: FakeServer) -> None:
    server.add_fault("/accounts/", lambda call: detail(401, "Incorrect username or password"))
    with pytest.raises(AuthenticationFailed) as info:
        async with open_client(make_config(), transport=FakeTransport(server), streaming=False):
            pass  # pragma: no cover
    assert info.value.status == 401
    assert len(server.calls) == 1  # not retried


async def test_body_exception_is_not_wrapped(server: FakeServer) -> None:
    with pytest.raises(KeyError):
        async with open_client(make_config(), transport=FakeTransport(server), streaming=False):
            raise KeyError("x")


async def test_unreachable_server_retries_then_fails(
    server: FakeServer, autojump_clock: trio.abc.Clock
) -> None:
    def refuse(call: Call) -> None:
        raise ConnectionFailed("refused", retryable=True)

    for _ in range(3):
        server.add_fault("/accounts/", refuse)
    began = trio.current_time()
    with pytest.raises(ConnectionFailed):
        async with open_client(
            make_config(retries=2), transport=FakeTransport(server), streaming=False
        ):
            pass  # pragma: no cover
    assert len(server.calls) == 3
    assert trio.current_time() - began <= 2 * 2.0  # two backoff delays at most


# -- reference data ---------------------------------------------------------------------


async def test_reference_data(client: Client, server: FakeServer) -> None:
    info = await client.server_info()
    assert (info.name, info.version, info.status) == ("Hummingbot API", "1.0.1", "running")
    assert await client.get_accounts() == ["master_account"]
    assert await client.get_exchanges() == ["binance", "kucoin"]
    rules = await client.get_trading_rules("binance", markets=["BTC-USDT"])
    assert rules["BTC-USDT"].min_order_size == Decimal("0.001")
    assert rules["BTC-USDT"].max_order_size is None
    assert server.calls[-1].path == "/connectors/binance/trading-rules?trading_pairs=BTC-USDT"


async def test_balances_filter_account_and_exchange(client: Client, server: FakeServer) -> None:
    everything = await client.get_balances()
    assert {(b.exchange, b.asset) for b in everything} == {
        ("binance", "USDT"),
        ("binance", "BTC"),
        ("kucoin", "ETH"),
    }
    usdt = next(b for b in everything if b.asset == "USDT")
    assert (usdt.total, usdt.available) == (Decimal("1000"), Decimal("900"))
    only = await client.get_balances(exchange="binance", refresh=True)
    assert {b.asset for b in only} == {"USDT", "BTC"}
    assert server.calls[-1].body == {
        "account_names": ["master_account"],
        "connector_names": ["binance"],
        "skip_gateway": False,
        "refresh": True,
    }


# -- market data ------------------------------------------------------------------------


async def test_order_book_and_candles(client: Client, server: FakeServer) -> None:
    book = await client.get_order_book("binance", "BTC-USDT", depth=5)
    assert len(book.bids) == 5 and book.bids[0].price == Decimal(100)
    assert book.asks[0].price == Decimal(101)
    assert server.calls[-1].body["depth"] == 5
    candles = await client.get_candles("binance", "BTC-USDT", interval="5m", limit=4)
    assert len(candles) == 4 and candles[0].volume == Decimal(10)
    assert server.calls[-1].body["interval"] == "5m"
    start = datetime(2024, 1, 1, tzinfo=UTC)
    history = await client.get_historical_candles(
        "binance", "BTC-USDT", interval="1h", start=start, end=start.timestamp() + 3600
    )
    assert history
    assert server.calls[-1].body["start_time"] == int(start.timestamp() * 1000)
    assert server.calls[-1].body["end_time"] == int(start.timestamp() * 1000) + 3_600_000


async def test_ticker_composed_from_book_prices_and_tickers(
    client: Client, server: FakeServer
) -> None:
    ticker = await client.get_ticker("binance", "BTC-USDT")
    assert (ticker.bid, ticker.ask) == (Decimal(100), Decimal(101))
    assert ticker.last == Decimal("100.25")
    assert ticker.volume == Decimal("1234.5")
    assert ticker.timestamp == 1002.0
    assert "/market-data/candles" not in paths(server)


async def test_ticker_falls_back_to_candles_on_old_servers(
    client: Client, server: FakeServer
) -> None:
    server.tickers_supported = False
    ticker = await client.get_ticker("binance", "BTC-USDT")
    assert ticker.volume == Decimal(10) * 24
    assert "/market-data/candles" in paths(server)
    server.calls.clear()
    await client.get_ticker("binance", "BTC-USDT")
    assert "/market-data/tickers/binance" not in paths(server)  # remembered


# -- orders -----------------------------------------------------------------------------


async def test_place_limit_order_sends_exact_body(client: Client, server: FakeServer) -> None:
    order = await client.place_limit_order(
        "binance", "BTC-USDT", Side.BUY, price=Decimal("100.5"), amount=Decimal("0.01")
    )
    assert order.status is OrderStatus.SUBMITTED
    assert order.order_id in server.orders
    placed = [c for c in server.calls if c.path == "/trading/orders"]
    assert placed[0].body == {
        "account_name": "master_account",
        "connector_name": "binance",
        "trading_pair": "BTC-USDT",
        "trade_type": "BUY",
        "amount": "0.01",
        "order_type": "LIMIT",
        "price": "100.5",
        "position_action": "OPEN",
    }


async def test_rules_fetched_once_and_cached(client: Client, server: FakeServer) -> None:
    for _ in range(3):
        await client.place_limit_order("binance", "BTC-USDT", "buy", price=100, amount="0.01")
    assert paths(server).count("/connectors/binance/trading-rules") == 1


async def test_market_limit_maker_and_general_form(client: Client, server: FakeServer) -> None:
    await client.place_market_order("binance", "BTC-USDT", Side.SELL, amount="0.01")
    assert server.calls[-1].body["order_type"] == "MARKET"
    assert "price" not in server.calls[-1].body
    await client.place_order(
        "binance",
        "BTC-USDT",
        Side.BUY,
        amount=Decimal("0.01"),
        order_type=OrderType.LIMIT_MAKER,
        price=Decimal(99),
        position_action="CLOSE",
    )
    assert server.calls[-1].body["order_type"] == "LIMIT_MAKER"
    assert server.calls[-1].body["position_action"] == "CLOSE"


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"exchange": "bin ance"}, "exchange"),
        ({"market": "BTCUSDT"}, "market"),
        ({"side": "up"}, "side"),
        ({"amount": Decimal(0)}, "amount"),
        ({"amount": True}, "amount"),
        ({"price": None}, "price"),
        ({"price": Decimal("NaN")}, "price"),
        ({"order_type": "STOP"}, "order_type"),
        ({"position_action": "HOLD"}, "position_action"),
        ({"wait_accepted": "yes"}, "wait_accepted"),
    ],
)
async def test_place_validates_before_any_io(
    client: Client, server: FakeServer, kwargs: dict[str, Any], argument: str
) -> None:
    args: dict[str, Any] = {
        "exchange": "binance",
        "market": "BTC-USDT",
        "side": Side.BUY,
        "amount": Decimal("0.01"),
        "order_type": OrderType.LIMIT,
        "price": Decimal(100),
    }
    args.update(kwargs)
    with pytest.raises(InputValidationError) as info:
        await client.place_order(**args)
    assert info.value.argument == argument
    assert server.calls == []


@pytest.mark.parametrize(("amount", "price"), [("0.0001", "100"), ("0.002", "100")])
async def test_below_min_size_or_notional_sends_no_order(
    client: Client, server: FakeServer, amount: str, price: str
) -> None:
    with pytest.raises(MinOrderSizeNotMet) as info:
        await client.place_limit_order("binance", "BTC-USDT", "BUY", price=price, amount=amount)
    assert info.value.request is not None and info.value.request.amount == Decimal(amount)
    assert "/trading/orders" not in paths(server)


@pytest.mark.parametrize(
    ("text", "status", "exc_type"),
    [
        (
            "Order amount 0.001 is below minimum order size 0.01 for BTC-USDT",
            400,
            MinOrderSizeNotMet,
        ),
        ("Trading pair 'X-Y' not supported on binance. Available pairs: ...", 400, InvalidOrder),
        ("Price is required for LIMIT and LIMIT_MAKER orders", 400, InvalidOrder),
        ("Account 'master_account' not found", 404, NotFound),
        ("Failed to place trade: boom", 500, OrderOutcomeUnknown),
        ("Unexpected error placing trade: no keys", 500, OrderRejected),
    ],
)
async def test_synchronous_rejections_are_typed(
    client: Client, server: FakeServer, text: str, status: int, exc_type: type[Exception]
) -> None:
    server.add_fault("/trading/orders", lambda call: detail(status, text))
    with pytest.raises(exc_type) as info:
        await client.place_limit_order("binance", "BTC-USDT", "BUY", price=100, amount="0.01")
    assert paths(server).count("/trading/orders") == 1
    assert KEY not in str(info.value)


async def test_plain_text_500_is_a_clear_error(client: Client, server: FakeServer) -> None:
    server.add_fault(
        "/trading/orders",
        lambda call: respond(500, b"Internal Server Error", "text/plain; charset=utf-8"),
    )
    # The crash page may come after the order was created: reconciled, never "nothing".
    with pytest.raises(OrderOutcomeUnknown) as info:
        await client.place_market_order("binance", "BTC-USDT", "SELL", amount="0.01")
    cause = info.value.__cause__
    assert isinstance(cause, ServerError) and cause.status == 500
    assert "Internal Server Error" in str(info.value)


async def test_placement_retried_when_provably_not_sent(
    client: Client, server: FakeServer, autojump_clock: trio.abc.Clock
) -> None:
    await client.get_trading_rules("binance", ["BTC-USDT"])

    def refused(call: Call) -> None:
        raise ConnectionFailed("refused", retryable=True)

    server.add_fault("/trading/orders", refused)
    server.add_fault("/trading/orders", lambda call: detail(503, "Trading rules not yet loaded"))
    order = await client.place_limit_order("binance", "BTC-USDT", "BUY", price=100, amount="0.01")
    assert paths(server).count("/trading/orders") == 3
    assert len(server.orders) == 1 and order.order_id in server.orders


async def test_lost_answer_reconciled_to_the_one_order(client: Client, server: FakeServer) -> None:
    def created_then_lost(call: Call) -> None:
        server._place(call.body)
        raise RequestTimeout("no answer", retryable=False)

    server.add_fault("/trading/orders", created_then_lost)
    order = await client.place_limit_order("binance", "BTC-USDT", "BUY", price=100, amount="0.01")
    assert len(server.orders) == 1
    assert order.order_id in server.orders
    assert paths(server).count("/trading/orders") == 1  # never sent twice


async def test_500_after_the_order_was_created_returns_it(
    client: Client, server: FakeServer
) -> None:
    def created_then_500(call: Call) -> Any:
        server._place(call.body)
        return detail(500, "Internal server error (simulated fault)")

    server.add_fault("/trading/orders", created_then_500)
    order = await client.place_limit_order("binance", "BTC-USDT", "BUY", price=100, amount="0.01")
    assert list(server.orders) == [order.order_id]


async def test_lost_answer_with_no_order_is_outcome_unknown(
    client: Client, server: FakeServer, autojump_clock: trio.abc.Clock
) -> None:
    server.add_fault("/trading/orders", lose_answer)
    with pytest.raises(OrderOutcomeUnknown) as info:
        await client.place_limit_order("binance", "BTC-USDT", "BUY", price=100, amount="0.01")
    assert info.value.candidates == ()
    assert info.value.request is not None
    assert paths(server).count("/trading/orders") == 1
    assert "/trading/trades" in paths(server)


async def test_lost_answer_with_two_identical_orders_lists_candidates(
    client: Client, server: FakeServer
) -> None:
    def twice_then_lost(call: Call) -> None:
        server._place(call.body)
        server._place(call.body)
        raise ConnectionFailed("dropped", retryable=False)

    server.add_fault("/trading/orders", twice_then_lost)
    with pytest.raises(OrderOutcomeUnknown) as info:
        await client.place_limit_order("binance", "BTC-USDT", "BUY", price=100, amount="0.01")
    assert len(info.value.candidates) == 2


async def test_candidates_of_an_unknown_outcome_are_followed_by_the_tracker(
    client: Client, server: FakeServer
) -> None:
    from hbtrio._actors.tracker import TrackerActor

    published: list[object] = []
    client.tracker = TrackerActor(client, published.append)

    def twice_then_lost(call: Call) -> None:
        server._place(call.body)
        server._place(call.body)
        raise ConnectionFailed("dropped", retryable=False)

    server.add_fault("/trading/orders", twice_then_lost)
    with pytest.raises(OrderOutcomeUnknown) as info:
        await client.place_limit_order("binance", "BTC-USDT", "BUY", price=100, amount="0.01")
    ids = {o.order_id for o in info.value.candidates}
    assert len(ids) == 2
    assert set(client.tracker.tracker.in_flight()) == ids
    assert client.tracker.tracker.has_in_flight  # polled fast until they end


async def test_reconciliation_ignores_orders_the_client_already_returned(
    client: Client, server: FakeServer, autojump_clock: trio.abc.Clock
) -> None:
    first = await client.place_limit_order("binance", "BTC-USDT", "BUY", price=100, amount="0.01")
    server.add_fault("/trading/orders", lose_answer)
    with pytest.raises(OrderOutcomeUnknown) as info:
        await client.place_limit_order("binance", "BTC-USDT", "BUY", price=100, amount="0.01")
    assert first.order_id not in [o.order_id for o in info.value.candidates]


RECONCILIATION = ("/trading/orders/active", "/trading/orders/search", "/trading/trades")


def after_placement(server: FakeServer) -> list[str]:
    """The paths requested after the (last) placement request."""
    seen = paths(server)
    last = len(seen) - 1 - seen[::-1].index("/trading/orders")
    return seen[last + 1 :]


async def test_504_after_the_order_was_created_reconciles_to_it(
    client: Client, server: FakeServer
) -> None:
    # A gateway timeout says nothing about whether the server acted: the client
    # must look for the order, never send it again.
    def created_then_504(call: Call) -> Any:
        server._place(call.body)
        return detail(504, "Gateway Timeout")

    server.add_fault("/trading/orders", created_then_504)
    order = await client.place_limit_order("binance", "BTC-USDT", "BUY", price=100, amount="0.01")
    assert list(server.orders) == [order.order_id]
    assert paths(server).count("/trading/orders") == 1  # no blind retry
    assert after_placement(server)[0] == "/trading/orders/active"  # reconciliation ran


async def test_504_with_no_order_is_outcome_unknown(
    client: Client, server: FakeServer, autojump_clock: trio.abc.Clock
) -> None:
    server.add_fault("/trading/orders", lambda call: detail(504, "Gateway Timeout"))
    with pytest.raises(OrderOutcomeUnknown) as info:
        await client.place_limit_order("binance", "BTC-USDT", "BUY", price=100, amount="0.01")
    assert info.value.candidates == ()
    assert info.value.request is not None and info.value.request.amount == Decimal("0.01")
    assert "Gateway Timeout" in str(info.value) and "no matching order" in str(info.value)
    assert isinstance(info.value.__cause__, ServerError) and info.value.__cause__.status == 504
    assert server.orders == {}
    assert paths(server).count("/trading/orders") == 1  # never sent twice
    # open orders, history and fills were all searched (twice: a 504 is not an answer)
    looked = after_placement(server)
    assert set(looked) == set(RECONCILIATION)
    assert looked.count("/trading/orders/active") == 2


async def test_504_with_two_identical_orders_is_outcome_unknown_with_both(
    client: Client, server: FakeServer
) -> None:
    def twice_then_504(call: Call) -> Any:
        server._place(call.body)
        server._place(call.body)
        return detail(504, "Gateway Timeout")

    server.add_fault("/trading/orders", twice_then_504)
    with pytest.raises(OrderOutcomeUnknown) as info:
        await client.place_limit_order("binance", "BTC-USDT", "BUY", price=100, amount="0.01")
    assert {o.order_id for o in info.value.candidates} == set(server.orders)
    assert len(info.value.candidates) == 2  # never a guess


async def test_429_on_placement_is_retried_as_not_processed(
    client: Client, server: FakeServer, autojump_clock: trio.abc.Clock
) -> None:
    # Documented behaviour (docs/orders.md, rest.py): a 429 means the server (or
    # the rate limiter in front of it) refused the request without processing it,
    # so the placement is sent again after a backoff, with no reconciliation.
    await client.get_trading_rules("binance", ["BTC-USDT"])
    server.calls.clear()
    server.add_fault("/trading/orders", lambda call: detail(429, "Too Many Requests"))
    began = trio.current_time()
    order = await client.place_limit_order("binance", "BTC-USDT", "BUY", price=100, amount="0.01")
    assert paths(server) == ["/trading/orders", "/trading/orders"]
    assert list(server.orders) == [order.order_id]
    assert trio.current_time() > began  # waited a backoff delay before the second attempt


async def test_429_until_retries_run_out_raises_without_reconciling(
    client: Client, server: FakeServer, autojump_clock: trio.abc.Clock
) -> None:
    await client.get_trading_rules("binance", ["BTC-USDT"])
    server.calls.clear()
    for _ in range(3):  # retries=2: three attempts
        server.add_fault("/trading/orders", lambda call: detail(429, "Too Many Requests"))
    with pytest.raises(RequestError) as info:
        await client.place_limit_order("binance", "BTC-USDT", "BUY", price=100, amount="0.01")
    assert not isinstance(info.value, OrderOutcomeUnknown)
    assert info.value.status == 429 and info.value.retryable
    assert paths(server) == ["/trading/orders"] * 3  # no reconciliation queries
    assert server.orders == {}


async def test_reconciliation_finds_order_in_history(client: Client, server: FakeServer) -> None:
    def filled_then_lost(call: Call) -> None:
        server._place(call.body)
        order = list(server.orders.values())[-1]
        order.pop("_pending")
        order["status"] = "FILLED"
        raise ConnectionFailed("dropped", retryable=False)

    server.add_fault("/trading/orders", filled_then_lost)
    order = await client.place_market_order("binance", "BTC-USDT", "BUY", amount="0.01")
    assert order.status is OrderStatus.FILLED


async def test_wait_accepted_returns_open_order(
    client: Client, server: FakeServer, autojump_clock: trio.abc.Clock
) -> None:
    order = await client.place_limit_order(
        "binance", "BTC-USDT", "BUY", price=100, amount="0.01", wait_accepted=True
    )
    assert order.status is OrderStatus.OPEN


@pytest.mark.parametrize(
    ("reason", "exc_type"),
    [
        ("Insufficient balance: need 100 USDT", InsufficientFunds),
        ("Order price is outside the allowed range: 5%", PriceOutOfRange),
        ("Something unusual", OrderRejected),
    ],
)
async def test_wait_accepted_maps_failed_orders(
    client: Client,
    server: FakeServer,
    autojump_clock: trio.abc.Clock,
    reason: str,
    exc_type: type[Exception],
) -> None:
    server.reject_reason = reason
    with pytest.raises(exc_type) as info:
        await client.place_limit_order(
            "binance", "BTC-USDT", "BUY", price=100, amount="0.01", wait_accepted=True
        )
    assert info.value.reason == reason  # type: ignore[attr-defined]
    assert info.value.order_id in server.orders  # type: ignore[attr-defined]


async def test_rejection_table_is_extensible(
    client: Client, server: FakeServer, autojump_clock: trio.abc.Clock
) -> None:
    client.rejections.add(r"whale alert", PriceOutOfRange, connector="binance")
    server.reject_reason = "Whale alert: price moved"
    with pytest.raises(PriceOutOfRange):
        await client.place_limit_order(
            "binance", "BTC-USDT", "BUY", price=100, amount="0.01", wait_accepted=True
        )


async def test_wait_accepted_is_bounded(
    client: Client, server: FakeServer, autojump_clock: trio.abc.Clock
) -> None:
    server.accept_as = "SUBMITTED"
    began = trio.current_time()
    with pytest.raises(hbtrio.OrderPending) as info:
        await client.place_limit_order(
            "binance", "BTC-USDT", "BUY", price=100, amount="0.01", wait_accepted=True
        )
    assert trio.current_time() - began <= 10.0 + 1.0
    assert info.value.detail["order_id"] in server.orders
    # An OrderError carrying the order, not a TimeoutError (generic retry code).
    assert isinstance(info.value, hbtrio.OrderError)
    assert not isinstance(info.value, TimeoutError)
    assert info.value.order.order_id == info.value.order_id in server.orders
    assert info.value.order.status is OrderStatus.SUBMITTED


async def test_cancel_order(client: Client, server: FakeServer) -> None:
    order = server.add_order()
    await client.cancel_order(order["order_id"], exchange="binance", market="BTC-USDT")
    assert server.orders[order["order_id"]]["status"] == "CANCELLED"
    assert (
        server.calls[-1].path
        == f"/trading/master_account/binance/orders/{order['order_id']}/cancel"
    )
    assert server.calls[-1].body is None


async def test_cancel_without_exchange_looks_the_order_up(
    client: Client, server: FakeServer
) -> None:
    order = server.add_order()
    await client.cancel_order(order["order_id"])
    assert paths(server)[0] == "/trading/orders/active"
    assert server.orders[order["order_id"]]["status"] == "CANCELLED"


async def test_cancel_unknown_order(client: Client, server: FakeServer) -> None:
    with pytest.raises(OrderNotFound) as info:
        await client.cancel_order("nope-1", exchange="binance")
    assert info.value.order_id == "nope-1"


async def test_cancel_with_lost_answer_is_resolved(client: Client, server: FakeServer) -> None:
    order = server.add_order()

    def cancelled_then_lost(call: Call) -> None:
        server.orders[order["order_id"]]["status"] = "CANCELLED"
        raise ConnectionFailed("dropped", retryable=False)

    server.add_fault("/trading/master_account", cancelled_then_lost)
    await client.cancel_order(order["order_id"], exchange="binance")  # no error
    assert server.orders[order["order_id"]]["status"] == "CANCELLED"


async def test_cancel_all_orders(client: Client, server: FakeServer) -> None:
    a = server.add_order()
    b = server.add_order(trading_pair="ETH-USDT")
    server.add_order(status="FILLED")
    server.add_order(connector_name="kucoin")
    ids = await client.cancel_all_orders(exchange="binance")
    assert sorted(ids) == sorted([a["order_id"], b["order_id"]])
    only = server.add_order(trading_pair="ETH-USDT")
    assert await client.cancel_all_orders(market="ETH-USDT") == [only["order_id"]]


async def test_get_order_open_then_history_then_not_found(
    client: Client, server: FakeServer
) -> None:
    live = server.add_order()
    done = server.add_order(status="FILLED")
    assert (await client.get_order(live["order_id"])).status is OrderStatus.OPEN
    server.calls.clear()
    found = await client.get_order(done["order_id"], exchange="binance", market="BTC-USDT")
    assert found.status is OrderStatus.FILLED
    assert paths(server) == ["/trading/orders/active", "/trading/orders/search"]
    assert server.calls[-1].body["connector_names"] == ["binance"]
    with pytest.raises(OrderNotFound):
        await client.get_order("missing-1")


async def test_get_open_orders_follows_pages(client: Client, server: FakeServer) -> None:
    server.page_size_cap = 2
    for _ in range(5):
        server.add_order()
    orders = await client.get_open_orders(exchange="binance", market="BTC-USDT")
    assert len(orders) == 5
    assert paths(server).count("/trading/orders/active") == 3


async def test_order_history_page_and_filters(client: Client, server: FakeServer) -> None:
    for _ in range(3):
        server.add_order(status="FILLED")
    page = await client.get_order_history(
        start=1.5, end=datetime(2100, 1, 1, tzinfo=UTC), status="filled", limit=2
    )
    assert len(page.items) == 2 and page.has_more and page.next_cursor == "2"
    body = server.calls[-1].body
    assert body["start_time"] == 1500 and body["status"] == "FILLED" and body["limit"] == 2
    rest = await client.get_order_history(cursor=page.next_cursor, limit=2)
    assert len(rest.items) == 1


async def test_iter_order_history_dedups_repeated_cursor(
    client: Client, server: FakeServer
) -> None:
    server.repeat_search_cursor = True  # the real server: every next_cursor is "0:"
    for i in range(5):
        server.add_order(status="CANCELLED", created_at=1_700_000_000.0 + i * 0.0105)
    seen = [o.order_id async for o in client.iter_order_history(page_size=10)]
    assert len(seen) == len(set(seen)) == 5
    assert paths(server).count("/trading/orders/search") == 1
    server.page_size_cap = 2
    server.calls.clear()
    seen = [o.order_id async for o in client.iter_order_history(page_size=2)]
    # page 2 by cursor repeats page 1: the rest is asked for by time, each order once
    assert sorted(seen) == sorted(server.orders) and len(seen) == 5
    searches = [c.body for c in server.calls if c.path == "/trading/orders/search"]
    assert [b.get("cursor") for b in searches] == [None, "0:", None, None, None]
    assert searches[2]["end_time"] == 1_700_000_000_032  # oldest of page 1, ms rounded up


async def test_iter_order_history_follows_working_cursors(
    client: Client, server: FakeServer
) -> None:
    server.page_size_cap = 2
    for _ in range(5):
        server.add_order(status="FILLED")
    seen = [o.order_id async for o in client.iter_order_history(page_size=2)]
    assert len(seen) == 5


async def test_trades_page(client: Client, server: FakeServer) -> None:
    server.fills.append(
        {
            "trade_id": "t1",
            "order_id": "HBOT-1",
            "account_name": "master_account",
            "connector_name": "binance",
            "trading_pair": "BTC-USDT",
            "trade_type": "SELL",
            "amount": "0.5",
            "price": "101",
            "fee_paid": "0.01",
            "fee_currency": "USDT",
            "timestamp": "2024-01-01T00:00:00Z",
        }
    )
    page = await client.get_trades(start=0, market="BTC-USDT", exchange="binance", limit=10)
    assert page.items[0].amount == Decimal("0.5")
    assert page.items[0].timestamp == datetime(2024, 1, 1, tzinfo=UTC).timestamp()
    assert server.calls[-1].body["start_time"] == 0


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda c: c.get_order_book("binance", "BTC-USDT", depth=0), "depth"),
        (lambda c: c.get_candles("binance", "BTC-USDT", interval="1x"), "interval"),
        (lambda c: c.get_order("../etc"), "order_id"),
        (lambda c: c.get_trades(limit=5000), "limit"),
        (lambda c: c.get_order_history(start=10, end=5), "start"),
        (lambda c: c.get_order_history(start=datetime(2024, 1, 1)), "start"),
        (lambda c: c.get_balances(exchange="a b"), "exchange"),
        (lambda c: c.get_trading_rules("binance", markets="BTC-USDT"), "markets"),
        (lambda c: c.cancel_order("x", exchange="a/b/c"), "exchange"),
        (lambda c: c.get_open_orders(market="nope"), "market"),
    ],
)
async def test_inputs_validated_before_io(
    client: Client, server: FakeServer, call: Any, argument: str
) -> None:
    with pytest.raises(InputValidationError) as info:
        await call(client)
    assert info.value.argument == argument
    assert server.calls == []


# -- retries, time bounds, malformed answers --------------------------------------------


async def test_reads_retry_on_drops_and_503(
    client: Client, server: FakeServer, autojump_clock: trio.abc.Clock
) -> None:
    server.add_fault("/market-data/order-book", lose_answer)
    server.add_fault("/market-data/order-book", lambda call: detail(503, "not ready"))
    book = await client.get_order_book("binance", "BTC-USDT")
    assert book.bids
    assert paths(server).count("/market-data/order-book") == 3


async def test_reads_give_up_after_retries_within_bound(
    client: Client, server: FakeServer, autojump_clock: trio.abc.Clock
) -> None:
    def stall(call: Call) -> None:
        raise RequestTimeout("no answer", retryable=False)

    for _ in range(3):
        server.add_fault("/", stall)
    began = trio.current_time()
    with pytest.raises(RequestTimeout):
        await client.server_info()
    assert len(server.calls) == 3  # retries=2
    assert trio.current_time() - began <= 2 * 2.0


async def test_no_retry_on_4xx_or_plain_500(client: Client, server: FakeServer) -> None:
    server.add_fault("/accounts/", lambda call: respond(500, b"oops", "text/plain"))
    with pytest.raises(ServerError):
        await client.get_accounts()
    assert len(server.calls) == 1


async def test_malformed_answer(client: Client, server: FakeServer) -> None:
    server.add_fault("/market-data/order-book", lambda call: respond(200, b"<html>"))
    with pytest.raises(MalformedResponse) as info:
        await client.get_order_book("binance", "BTC-USDT")
    assert info.value.path == "/market-data/order-book"
    assert len(server.calls) == 1


async def test_validation_422_maps_to_input_error(client: Client, server: FakeServer) -> None:
    server.add_fault(
        "/market-data/candles",
        lambda call: respond(
            422,
            {"detail": [{"type": "x", "loc": ["body", "max_records"], "msg": "too big"}]},
        ),
    )
    with pytest.raises(InputValidationError) as info:
        await client.get_candles("binance", "BTC-USDT")
    assert info.value.status == 422


async def test_debug_log_redacts_key(
    client: Client, server: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    import base64

    with caplog.at_level(logging.DEBUG, logger="hbtrio"):
        await client.get_balances()
        server.add_fault("/accounts/", lambda call: detail(401, "Incorrect username or password"))
        with pytest.raises(AuthenticationFailed):
            await client.get_accounts()
    text = caplog.text
    assert "request POST /portfolio/state" in text
    assert "response POST /portfolio/state -> 200" in text
    assert KEY not in text
    assert base64.b64encode(KEY.encode()).decode() not in text
    assert "sup3r" not in text
