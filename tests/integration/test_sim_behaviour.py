"""Simulator behaviour over real sockets: pagination, time filters, quirks, faults, rules."""

from __future__ import annotations

import time
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import trio

from hbtrio.sim import SimInfo
from tests.integration.conftest import RawHTTP, start_sim


def order(side: str = "BUY", price: str | None = "59000", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "account_name": "master_account",
        "connector_name": "binance",
        "trading_pair": "BTC-USDT",
        "trade_type": side,
        "amount": "0.001",
        "order_type": "LIMIT" if price is not None else "MARKET",
    }
    if price is not None:
        body["price"] = price
    body.update(extra)
    return body


async def place_many(http: RawHTTP, n: int, **kwargs: Any) -> list[str]:
    ids = []
    for _ in range(n):
        answer = await http.post("/trading/orders", order(**kwargs))
        assert answer.status == 201, answer.body
        ids.append(answer.json()["order_id"])
    return ids


async def walk(http: RawHTTP, path: str, body: dict[str, Any], key: str) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor = None
    for _ in range(20):
        page = (await http.post(path, {**body, "cursor": cursor} if cursor else body)).json()
        pages.append([item[key] for item in page["data"]])
        cursor = page["pagination"]["next_cursor"]
        assert page["pagination"]["has_more"] is (cursor is not None)
        if cursor is None:
            break
    return pages


async def test_order_and_trade_pagination(sim: SimInfo, sim_http: RawHTTP) -> None:
    ids = await place_many(sim_http, 5)
    pages = await walk(sim_http, "/trading/orders/search", {"limit": 2}, "order_id")
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [i for p in pages for i in p] == list(reversed(ids))  # newest first, nothing repeated
    active = await walk(sim_http, "/trading/orders/active", {"limit": 2}, "order_id")
    assert sorted([i for p in active for i in p]) == sorted(ids)
    bad = await sim_http.post("/trading/orders/search", {"limit": 2, "cursor": "nonsense"})
    assert bad.status == 400

    market_ids = await place_many(sim_http, 3, side="SELL", price=None)
    trades = await walk(sim_http, "/trading/trades", {"limit": 1}, "order_id")
    flat = [i for p in trades for i in p]
    assert set(flat) == set(market_ids) and len(flat) >= 3
    buys = (await sim_http.post("/trading/trades", {"limit": 100, "trade_types": ["BUY"]})).json()
    assert buys["data"] == []


async def test_time_filters_are_milliseconds(sim: SimInfo, sim_http: RawHTTP) -> None:
    before_ms = int(time.time() * 1000)
    await trio.sleep(0.01)
    ids = await place_many(sim_http, 2)
    after_ms = int(time.time() * 1000) + 1
    window = {"limit": 100, "start_time": before_ms, "end_time": after_ms}
    found = (await sim_http.post("/trading/orders/search", window)).json()
    assert {o["order_id"] for o in found["data"]} == set(ids)
    # the official client's mistake: seconds where milliseconds are expected
    seconds = {"limit": 100, "start_time": before_ms // 1000}
    found = (await sim_http.post("/trading/orders/search", seconds)).json()
    assert len(found["data"]) == 2  # 1970-relative ms: everything is after it
    future = {"limit": 100, "start_time": after_ms + 60_000}
    assert (await sim_http.post("/trading/orders/search", future)).json()["data"] == []
    status = {"limit": 100, "status": "CANCELLED"}
    assert (await sim_http.post("/trading/orders/search", status)).json()["data"] == []


async def test_trades_time_filter_is_milliseconds(sim: SimInfo, sim_http: RawHTTP) -> None:
    def now_ms() -> int:
        return int(time.time() * 1000)

    start = now_ms()
    await trio.sleep(0.02)
    early = await place_many(sim_http, 2, side="SELL", price=None)  # market: fills at once
    await trio.sleep(0.02)
    middle = now_ms()
    await trio.sleep(0.02)
    late = await place_many(sim_http, 1, side="BUY", price=None)
    await trio.sleep(0.02)
    end = now_ms()

    async def fills(**window: int) -> list[dict[str, Any]]:
        answer = await sim_http.post("/trading/trades", {"limit": 1000, **window})
        assert answer.status == 200, answer.body
        data: list[dict[str, Any]] = answer.json()["data"]
        return data

    def orders(rows: list[dict[str, Any]]) -> set[str]:
        return {row["order_id"] for row in rows}

    everything = await fills(start_time=start, end_time=end)
    assert orders(everything) == set(early + late)
    for row in everything:  # ISO timestamps inside the window
        stamp = datetime.fromisoformat(row["timestamp"]).timestamp() * 1000
        assert start <= stamp <= end
    assert orders(await fills(start_time=start, end_time=middle)) == set(early)
    assert orders(await fills(start_time=middle, end_time=end)) == set(late)
    assert orders(await fills(start_time=middle)) == set(late)  # open-ended
    assert orders(await fills(end_time=middle)) == set(early)
    assert await fills(start_time=end + 1) == []
    assert await fills(end_time=start - 1) == []
    # seconds where milliseconds are expected (the official client's mistake): a
    # start in January 1970, so every fill; an end in 1970, so none
    assert orders(await fills(start_time=start // 1000)) == set(early + late)
    assert await fills(end_time=end // 1000) == []
    # the filter combines with the cursor: page through the early window one by one
    pages = await walk(
        sim_http,
        "/trading/trades",
        {"limit": 1, "start_time": start, "end_time": middle},
        "order_id",
    )
    assert {i for page in pages for i in page} == set(early)
    bad = await sim_http.post("/trading/trades", {"limit": 10, "start_time": "yesterday"})
    assert bad.status == 422


async def test_rules_quantize_and_reject(sim: SimInfo, sim_http: RawHTTP) -> None:
    placed = await sim_http.post("/trading/orders", order(price="59000.129", amount="0.0012345"))
    assert placed.status == 201
    oid = placed.json()["order_id"]
    listed = (await sim_http.post("/trading/orders/active", {})).json()["data"]
    item = next(o for o in listed if o["order_id"] == oid)
    assert (item["amount"], item["price"]) == (0.00123, 59000.12)
    small = await sim_http.post("/trading/orders", order(amount="0.000001"))
    assert small.status == 400
    assert small.json()["detail"] == (
        "Order amount 0.00000 is below minimum order size 0.00001 for BTC-USDT"
    )
    notional = await sim_http.post("/trading/orders", order(amount="0.00005", price="60000"))
    assert notional.json()["detail"].startswith("Order notional value 3.00000 is below minimum")
    # checked on the quantized values, as the real server does: 0.0000839 * 60000 is
    # 5.03, but the order would be 0.00008 BTC, a notional of 4.8 below the minimum 5
    quantized = await sim_http.post("/trading/orders", order(amount="0.0000839", price="60000"))
    assert quantized.status == 400
    assert quantized.json()["detail"].startswith("Order notional value 4.80000 is below minimum")
    assert [e.order_id for e in sim.state.order_log] == [oid]
    nobody = await sim_http.post("/trading/orders", order(account_name="ghost"))
    assert (nobody.status, nobody.json()) == (404, {"detail": "Account 'ghost' not found"})
    no_price = await sim_http.post("/trading/orders", order(order_type="LIMIT", price=None))
    assert no_price.json() == {"detail": "Price is required for LIMIT and LIMIT_MAKER orders"}
    cancel = await sim_http.post("/trading/master_account/binance/orders/nope/cancel")
    assert cancel.status == 404
    slash = await sim_http.get("/accounts")
    assert (slash.status, slash.json()) == (404, {"detail": "Not Found"})
    wrong = await sim_http.get("/accounts/", auth=b"Basic " + b"YWRtaW46eA==")
    assert wrong.json() == {"detail": "Incorrect username or password"}
    assert wrong.headers["www-authenticate"] == "Basic"
    tickers = await sim_http.get("/market-data/tickers/binance")
    assert tickers.status == 200 and tickers.json()["count"] == 2


async def test_market_orders_larger_than_the_book_fill_it_then_cancel(
    nursery: trio.Nursery, sim_cert_dir: Path
) -> None:
    # a still market (no book changes): the depth read is the depth the order meets
    info = await start_sim(nursery, cert_dir=sim_cert_dir, book_change_rate=0)
    http = RawHTTP(info)
    try:
        for side, opposite in (("BUY", "asks"), ("SELL", "bids")):
            book = (
                await http.post(
                    "/market-data/order-book",
                    {"connector_name": "binance", "trading_pair": "BTC-USDT", "depth": 1000},
                )
            ).json()
            depth = sum((Decimal(str(level["amount"])) for level in book[opposite]), Decimal(0))
            amount = depth + Decimal("0.5")
            placed = await http.post("/trading/orders", order(side, price=None, amount=str(amount)))
            assert placed.status == 201, placed.body
            oid = placed.json()["order_id"]
            history = (await http.post("/trading/orders/search", {"limit": 10})).json()["data"]
            item = next(o for o in history if o["order_id"] == oid)
            # the same on both sides: what the book holds fills, the rest is cancelled
            assert (item["status"], item["error_message"]) == ("CANCELLED", None), item
            assert Decimal(str(item["filled_amount"])) == depth
            assert Decimal(str(item["amount"])) == amount
            fills = (await http.post("/trading/trades", {"limit": 1000})).json()["data"]
            filled = sum(
                (Decimal(str(f["amount"])) for f in fills if f["order_id"] == oid), Decimal(0)
            )
            assert filled == depth
    finally:
        await http.aclose()


async def test_real_quirks(nursery: trio.Nursery, sim_cert_dir: Path) -> None:
    info = await start_sim(nursery, cert_dir=sim_cert_dir, quirks="real")
    http = RawHTTP(info)
    try:
        zero = await http.post("/trading/orders", order(amount=0))
        assert zero.status == 500
        assert zero.headers["content-type"].startswith("text/plain")
        assert zero.body == b"Internal Server Error"
        assert "connection" not in zero.headers  # no "Connection: close" ...
        assert http._stream is not None
        with trio.fail_after(5):  # ... but the server closes the connection
            try:
                leftover = await http._stream.receive_some(65536)
            except trio.BrokenResourceError:
                leftover = b""
        assert leftover == b""
        await http.aclose()
        await place_many(http, 3)
        first = (await http.post("/trading/orders/search", {"limit": 2})).json()
        assert first["pagination"]["next_cursor"] == "0:"
        again = (await http.post("/trading/orders/search", {"limit": 2, "cursor": "0:"})).json()
        assert again["data"] == first["data"]
        assert (await http.get("/market-data/tickers/binance")).status == 404
        cached = (await http.post("/portfolio/state", {})).json()
        await http.post("/trading/orders", order(side="SELL", price=None))
        stale = (await http.post("/portfolio/state", {})).json()
        assert stale == cached
        fresh = (await http.post("/portfolio/state", {"refresh": True})).json()
        btc = {r["token"]: r["units"] for r in fresh["master_account"]["binance"]}["BTC"]
        assert btc == 10 - 0.001
    finally:
        await http.aclose()


async def test_faults(nursery: trio.Nursery, sim_cert_dir: Path) -> None:
    errors = await start_sim(nursery, cert_dir=sim_cert_dir, error_rate=1.0, latency_ms=50)
    http = RawHTTP(errors)
    try:
        statuses = set()
        for _ in range(12):
            started = trio.current_time()
            answer = await http.post("/trading/orders", order())
            assert trio.current_time() - started >= 0.05
            statuses.add(answer.status)
        assert statuses == {500, 503}
        # a 500 is answered after processing, a 503 before: the log tells them apart
        assert 0 < len(errors.state.order_log) < 12
    finally:
        await http.aclose()

    stalls = await start_sim(nursery, cert_dir=sim_cert_dir, stall_rate=1.0)
    http = RawHTTP(stalls)
    try:
        with trio.move_on_after(0.3) as scope:
            await http.post("/trading/orders", order())
        assert scope.cancelled_caught
        assert len(stalls.state.order_log) == 1  # processed, answer never sent
    finally:
        await http.aclose()


async def test_plain_http_and_idle_close(nursery: trio.Nursery) -> None:
    info = await start_sim(nursery, tls=False, idle_timeout=0.2)
    assert info.ca_path is None and info.url.startswith("http://")
    http = RawHTTP(info)
    try:
        assert (await http.get("/")).status == 200
        assert http._stream is not None
        stream = http._stream
        await trio.sleep(0.5)
        with trio.fail_after(2):
            assert await stream.receive_some(10) == b""  # the server closed the idle connection
    finally:
        await http.aclose()
