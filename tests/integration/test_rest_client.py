"""The client's REST side against the simulator over real TLS sockets.

Every test runs twice: against the faithful simulator and with ``quirks="real"``
(the real server's known defects).
"""

from __future__ import annotations

import itertools
import os
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import trio

from hbtrio import (
    AuthenticationFailed,
    ClientConfig,
    ConnectionFailed,
    ConnectionState,
    InsufficientFunds,
    MinOrderSizeNotMet,
    OrderNotFound,
    OrderOutcomeUnknown,
    OrderStatus,
    OrderType,
    PositionAction,
    PriceOutOfRange,
    RequestTimeout,
    Side,
)
from hbtrio._client import Client, open_client
from hbtrio.sim import SimInfo
from tests.integration.conftest import RawHTTP, client_config, start_sim

EX, PAIR = "binance", "BTC-USDT"
PLACE = ("POST", "/trading/orders")
SEARCH = ("POST", "/trading/orders/search")
RULES = ("GET", "/connectors/{connector}/trading-rules")


@pytest.fixture(params=["faithful", "real"])
def quirks(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def sim_q(nursery: trio.Nursery, sim_cert_dir: Path, quirks: str) -> SimInfo:
    return await start_sim(nursery, cert_dir=sim_cert_dir, quirks=quirks, book_change_rate=0)


@pytest.fixture
async def client(sim_q: SimInfo) -> AsyncIterator[Client]:
    # REST only: these tests are about the request side (and stay fast).
    config = client_config(sim_q, timeout=3.0, retries=2)
    async with open_client(config, streaming=False) as c:
        yield c


async def mid(client: Client) -> Decimal:
    book = await client.get_order_book(EX, PAIR, depth=1)
    return (book.bids[0].price + book.asks[0].price) / 2


async def poll_until(
    fetch: Callable[[], Awaitable[Any]], done: Callable[[Any], bool], limit: float = 5.0
) -> Any:
    """Poll the server (a real one: no event to wait on) until ``done`` holds."""
    with trio.fail_after(limit):
        for delay in itertools.repeat(0.05):
            value = await fetch()
            if done(value):
                return value
            await trio.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def tick(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"))


def requests_since(sim: SimInfo, before: Counter[tuple[str, str]]) -> Counter[tuple[str, str]]:
    """The HTTP requests that reached the simulator since ``before`` was taken."""
    return Counter(sim.state.requests) - before


class DropProxy:
    """A pass-through TCP proxy that can drop the next server-to-client bytes.

    TLS stays end to end; arming ``drop_next`` on a warm (already handshaken)
    pooled connection loses exactly the next response after the server got it.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.drop_next = False
        self.drop_up_next = False
        self.drops = 0
        self.port = 0

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            task_status.started(self.port)
            await trio.serve_listeners(self._handle, listeners, handler_nursery=nursery)

    async def _handle(self, down: trio.SocketStream) -> None:
        try:
            up = await trio.open_tcp_stream("127.0.0.1", self.upstream_port)
        except BaseException:
            await trio.aclose_forcefully(down)
            raise
        try:
            async with trio.open_nursery() as nursery:

                async def pump(src: trio.SocketStream, dst: trio.SocketStream, drop: bool) -> None:
                    try:
                        while data := await src.receive_some(65536):
                            if drop and self.drop_next:
                                self.drop_next = False
                                self.drops += 1
                                break
                            if not drop and self.drop_up_next:
                                self.drop_up_next = False
                                self.drops += 1
                                break
                            await dst.send_all(data)
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        pass
                    nursery.cancel_scope.cancel()

                nursery.start_soon(pump, down, up, False)
                nursery.start_soon(pump, up, down, True)
        finally:
            await trio.aclose_forcefully(up)
            await trio.aclose_forcefully(down)


# -- every operation ------------------------------------------------------------------


async def test_reference_and_market_data(client: Client) -> None:
    info = await client.server_info()
    assert info.status == "running"
    assert "master_account" in await client.get_accounts()
    assert {"binance", "kucoin"} <= set(await client.get_exchanges())
    rules = await client.get_trading_rules(EX, markets=[PAIR, "ETH-USDT"])
    assert rules[PAIR].min_order_size == Decimal("0.00001")
    balances = await client.get_balances(exchange=EX, refresh=True)
    usdt = next(b for b in balances if b.asset == "USDT")
    assert usdt.total == Decimal(1_000_000) and usdt.available <= usdt.total
    book = await client.get_order_book(EX, PAIR, depth=5)
    assert 0 < len(book.bids) <= 5 and book.bids[0].price < book.asks[0].price
    ticker = await client.get_ticker(EX, PAIR)
    assert ticker.bid <= ticker.ask and ticker.last > 0 and ticker.volume >= 0
    assert ticker.timestamp > 0
    candles = await client.get_candles(EX, PAIR, interval="1m", limit=5)
    assert 0 < len(candles) <= 5
    now = time.time()
    history = await client.get_historical_candles(EX, PAIR, interval="1m", start=now - 600, end=now)
    assert all(now - 700 <= c.timestamp <= now + 60 for c in history)


async def test_order_lifecycle(client: Client, sim_q: SimInfo) -> None:
    price = tick(await mid(client) * Decimal("0.9"))
    order = await client.place_limit_order(
        EX, PAIR, Side.BUY, price=price, amount=Decimal("0.001"), wait_accepted=True
    )
    assert order.status is OrderStatus.OPEN
    assert order.price == price
    assert (await client.get_order(order.order_id)).order_id == order.order_id
    assert order.order_id in [o.order_id for o in await client.get_open_orders(EX, PAIR)]
    await client.cancel_order(order.order_id, exchange=EX, market=PAIR)
    await poll_until(
        lambda: client.get_order(order.order_id, EX, PAIR),
        lambda o: o.status is OrderStatus.CANCELLED,
    )
    maker = await client.place_order(
        EX,
        PAIR,
        Side.SELL,
        amount=Decimal("0.001"),
        order_type=OrderType.LIMIT_MAKER,
        price=tick(await mid(client) * Decimal("1.1")),
        wait_accepted=True,
    )
    second = await client.place_limit_order(
        EX, PAIR, "BUY", price=price, amount="0.002", wait_accepted=True
    )
    cancelled = await client.cancel_all_orders(exchange=EX, market=PAIR)
    assert set(cancelled) == {maker.order_id, second.order_id}
    filled = await client.place_market_order(EX, PAIR, "BUY", amount="0.001", wait_accepted=True)
    assert filled.status in (OrderStatus.FILLED, OrderStatus.PARTIALLY_FILLED, OrderStatus.OPEN)
    await poll_until(
        lambda: client.get_trades(start=time.time() - 60, market=PAIR), lambda p: bool(p.items)
    )
    fills = await client.get_trades(start=time.time() - 60, market=PAIR, exchange=EX)
    assert any(f.order_id == filled.order_id for f in fills.items)
    page = await client.get_order_history(start=time.time() - 60, market=PAIR, limit=2)
    assert len(page.items) == 2
    every = [o.order_id async for o in client.iter_order_history(start=time.time() - 60)]
    assert len(every) == len(set(every)) >= 4
    assert {order.order_id, maker.order_id, second.order_id, filled.order_id} <= set(every)
    assert len(sim_q.state.order_log) == 4


async def test_full_client_opens_streams_and_tracks_orders(sim_q: SimInfo) -> None:
    async with open_client(client_config(sim_q)) as client:
        assert client.state is ConnectionState.CONNECTED
        async with client.subscribe_order_book(EX, PAIR, depth=3) as books:
            with trio.fail_after(5):
                book = await books.__anext__()
        assert book.bids and book.asks
        price = tick(await mid(client) * Decimal("0.9"))
        order = await client.place_limit_order(
            EX, PAIR, "BUY", price=price, amount="0.001", wait_accepted=True
        )
        assert order.status is OrderStatus.OPEN
    assert client.state is ConnectionState.DISCONNECTED


# -- error paths ----------------------------------------------------------------------


async def test_insufficient_funds(client: Client) -> None:
    price = tick(await mid(client) * Decimal("0.95"))
    with pytest.raises(InsufficientFunds) as info:
        await client.place_limit_order(
            EX, PAIR, Side.BUY, price=price, amount=Decimal(1000), wait_accepted=True
        )
    assert info.value.order_id and info.value.reason
    assert info.value.request is not None and info.value.request.amount == Decimal(1000)


async def test_price_out_of_range(client: Client) -> None:
    price = tick(await mid(client) * Decimal("0.3"))
    with pytest.raises(PriceOutOfRange):
        await client.place_limit_order(
            EX, PAIR, Side.BUY, price=price, amount=Decimal("0.001"), wait_accepted=True
        )


async def test_below_min_size_sends_nothing(client: Client, sim_q: SimInfo) -> None:
    before = Counter(sim_q.state.requests)
    with pytest.raises(MinOrderSizeNotMet):
        await client.place_limit_order(EX, PAIR, "BUY", price="100", amount="0.000001")
    with pytest.raises(MinOrderSizeNotMet):  # notional 0.01 * 100 = 1 < 5
        await client.place_limit_order(EX, PAIR, "BUY", price="100", amount="0.01")
    sent = requests_since(sim_q, before)
    # No placement request reached the server (not even one it refused): only
    # the trading rules were fetched, once, to check the orders locally.
    assert sent == Counter({RULES: 1})
    assert sim_q.state.order_log == []
    # The counter does see placements: one valid order is one request.
    price = tick(await mid(client) * Decimal("0.9"))
    order = await client.place_limit_order(EX, PAIR, "BUY", price=price, amount="0.001")
    assert requests_since(sim_q, before)[PLACE] == 1
    assert [e.order_id for e in sim_q.state.order_log] == [order.order_id]


async def test_below_minimum_once_quantized_is_refused(client: Client, sim_q: SimInfo) -> None:
    # 0.0000839 BTC at 60,000 is a notional of 5.03 as written, but 0.00008 BTC (4.80)
    # once quantized to the amount step, which is what the server checks: the
    # client checks the same quantized values, so nothing is sent.
    before = Counter(sim_q.state.requests)
    with pytest.raises(MinOrderSizeNotMet):
        await client.place_limit_order(EX, PAIR, "BUY", price="60000", amount="0.0000839")
    assert requests_since(sim_q, before)[PLACE] == 0
    assert sim_q.state.order_log == []
    # the server refuses it on its own too (a client without the local check)
    http = RawHTTP(sim_q)
    try:
        answer = await http.post(
            "/trading/orders",
            {
                "account_name": "master_account",
                "connector_name": EX,
                "trading_pair": PAIR,
                "trade_type": "BUY",
                "amount": "0.0000839",
                "order_type": "LIMIT",
                "price": "60000",
            },
        )
    finally:
        await http.aclose()
    assert answer.status == 400
    assert answer.json()["detail"].startswith("Order notional value 4.80000 is below minimum")
    assert sim_q.state.order_log == []


async def place_resting(client: Client, count: int) -> list[str]:
    """Place ``count`` buys far below the mid (they rest); return their ids, oldest first."""
    price = tick(await mid(client) * Decimal("0.9"))
    ids = []
    for _ in range(count):
        order = await client.place_limit_order(EX, PAIR, "BUY", price=price, amount="0.001")
        ids.append(order.order_id)
    return ids


async def test_iter_order_history_small_pages(client: Client, sim_q: SimInfo, quirks: str) -> None:
    ids = await place_resting(client, 7)
    before = Counter(sim_q.state.requests)
    with trio.fail_after(5):  # the iteration ends even when the cursor never moves
        seen = [o.order_id async for o in client.iter_order_history(page_size=3)]
    searches = requests_since(sim_q, before)[SEARCH]
    assert len(seen) == len(set(seen))  # never an order twice
    newest_first = list(reversed(ids))
    if quirks == "faithful":
        assert seen == newest_first  # every order exactly once, over 3 pages
        assert searches == 3
    else:
        # The real server's defect: every next_cursor is "0:", page 2 repeats page 1;
        # the client then asks by time (created at or before the oldest order seen)
        # and still reaches every order exactly once: 3 new, repeat, 2 new, 2 new.
        assert seen == newest_first
        assert searches == 4


async def test_position_action_reaches_the_server(client: Client, sim_q: SimInfo) -> None:
    price = tick(await mid(client) * Decimal("1.1"))
    order = await client.place_order(
        EX,
        PAIR,
        Side.SELL,
        amount=Decimal("0.001"),
        order_type=OrderType.LIMIT,
        price=price,
        position_action=PositionAction.CLOSE,
        wait_accepted=True,
    )
    assert order.status is OrderStatus.OPEN
    entry = sim_q.state.order_log[-1]
    assert entry.order_id == order.order_id
    assert entry.request == {
        "account_name": "master_account",
        "connector_name": EX,
        "trading_pair": PAIR,
        "trade_type": "SELL",
        "amount": "0.001",
        "order_type": "LIMIT",
        "price": str(price),
        "position_action": "CLOSE",
    }
    default = await client.place_market_order(EX, PAIR, "BUY", amount="0.001")
    entry = sim_q.state.order_log[-1]
    assert entry.order_id == default.order_id
    assert entry.request["position_action"] == "OPEN" and "price" not in entry.request


async def test_unknown_order(client: Client) -> None:
    with pytest.raises(OrderNotFound):
        await client.cancel_order("HBOT-does-not-exist", exchange=EX)
    with pytest.raises(OrderNotFound):
        await client.get_order("HBOT-does-not-exist", EX, PAIR)


async def test_wrong_key(sim_q: SimInfo) -> None:
    began = time.monotonic()
    with pytest.raises(AuthenticationFailed) as info:
        async with open_client(client_config(sim_q, api_key="admin:wrong-pass")):
            pass  # pragma: no cover
    assert time.monotonic() - began < 2
    assert "wrong-pass" not in str(info.value)


async def test_self_signed_without_ca_file_is_refused(sim_q: SimInfo) -> None:
    with pytest.raises(ConnectionFailed) as info:
        async with open_client(client_config(sim_q, ca_file=None)):
            pass  # pragma: no cover
    assert "certificate" in str(info.value)
    assert info.value.retryable is False


async def test_stalled_server_times_out_within_bound(
    nursery: trio.Nursery, sim_cert_dir: Path, quirks: str
) -> None:
    info = await start_sim(nursery, cert_dir=sim_cert_dir, quirks=quirks, stall_rate=1.0)
    config = client_config(info, timeout=0.3, retries=1, reconnect_max=0.2)
    began = time.monotonic()
    with pytest.raises(RequestTimeout):
        async with open_client(config):
            pass  # pragma: no cover
    # timeout * (retries + 1) + backoff (<= 0.2), plus scheduling slack
    assert time.monotonic() - began < 0.3 * 2 + 0.2 + 0.5


async def test_drop_during_read_is_retried_transparently(
    nursery: trio.Nursery, sim_q: SimInfo
) -> None:
    proxy = DropProxy(sim_q.port)
    port = await nursery.start(proxy.serve)
    async with open_client(client_config(sim_q, port=port), streaming=False) as client:
        proxy.drop_next = True
        book = await client.get_order_book(EX, PAIR, depth=3)
        assert book.bids
        assert proxy.drops == 1


async def test_drop_during_placement_gives_one_reconciled_order(
    nursery: trio.Nursery, sim_q: SimInfo
) -> None:
    proxy = DropProxy(sim_q.port)
    port = await nursery.start(proxy.serve)
    async with open_client(client_config(sim_q, port=port), streaming=False) as client:
        price = tick(await mid(client) * Decimal("0.9"))
        await client.get_trading_rules(EX, [PAIR])
        proxy.drop_next = True
        # The server got the order and its answer was lost: the client must find
        # that one order (never send a second one).
        order = await client.place_limit_order(EX, PAIR, "BUY", price=price, amount="0.001")
        assert proxy.drops == 1
        assert [e.order_id for e in sim_q.state.order_log] == [order.order_id]
        assert [o.order_id for o in await client.get_open_orders(EX, PAIR)] == [order.order_id]


async def test_drop_before_the_server_read_the_order_is_outcome_unknown(
    nursery: trio.Nursery, sim_q: SimInfo
) -> None:
    proxy = DropProxy(sim_q.port)
    port = await nursery.start(proxy.serve)
    async with open_client(client_config(sim_q, port=port), streaming=False) as client:
        price = tick(await mid(client) * Decimal("0.9"))
        await client.get_trading_rules(EX, [PAIR])
        proxy.drop_up_next = True  # the request bytes never reach the server
        with pytest.raises(OrderOutcomeUnknown) as info:
            await client.place_limit_order(EX, PAIR, "BUY", price=price, amount="0.001")
        assert info.value.candidates == ()
        assert sim_q.state.order_log == []


@pytest.mark.skipif(
    not (os.environ.get("HBTRIO_REAL_URL") and os.environ.get("HBTRIO_REAL_API_KEY")),
    reason="set HBTRIO_REAL_URL and HBTRIO_REAL_API_KEY to smoke-test a real Hummingbot API",
)
@pytest.mark.real
async def test_real_server_smoke(quirks: str) -> None:  # pragma: no cover - needs a server
    if quirks != "faithful":
        pytest.skip("runs once")
    from urllib.parse import urlsplit

    url = urlsplit(os.environ["HBTRIO_REAL_URL"])
    options: dict[str, Any] = {
        "host": url.hostname,
        "port": url.port or (443 if url.scheme == "https" else 80),
        "api_key": os.environ["HBTRIO_REAL_API_KEY"],
        "tls": url.scheme == "https",
        "ca_file": os.environ.get("HBTRIO_REAL_CA_FILE") or None,
    }
    async with open_client(ClientConfig(**options)) as client:
        assert (await client.server_info()).status == "running"
        assert await client.get_accounts()
        assert isinstance(await client.get_exchanges(), list)
