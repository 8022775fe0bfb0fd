"""The simulator's ``--quirks real`` REST listing and life cycle (protocol-more.md 11, 12)."""

from __future__ import annotations

import argparse
import time
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
import trio

from hbtrio.sim import SimInfo
from hbtrio.sim.cli import add_arguments
from tests.integration.conftest import RawHTTP, start_sim
from tests.integration.test_sim_behaviour import order


async def _real(nursery: trio.Nursery, sim_cert_dir: Path, **kwargs: object) -> SimInfo:
    return await start_sim(nursery, cert_dir=sim_cert_dir, quirks="real", **kwargs)


def _stamp(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


async def _active(http: RawHTTP) -> dict[str, dict[str, object]]:
    page = (await http.post("/trading/orders/active", {"limit": 1000})).json()
    return {row["order_id"]: row for row in page["data"]}


async def test_real_finished_orders_vanish_from_active_at_once(
    nursery: trio.Nursery, sim_cert_dir: Path
) -> None:
    info = await _real(nursery, sim_cert_dir)
    http = RawHTTP(info)
    try:
        resting = (await http.post("/trading/orders", order(price="50000"))).json()["order_id"]
        rows = await _active(http)
        assert rows[resting]["status"] == "OPEN"
        # the listing's fill details are always null, created_at is the connector clock
        row = rows[resting]
        assert row["average_fill_price"] is None and row["fee_paid"] is None
        assert row["fee_currency"] is None and row["error_message"] is None
        assert _stamp(str(row["created_at"])) < time.time() - 60  # minutes behind
        cancel = f"/trading/master_account/binance/orders/{resting}/cancel"
        assert (await http.post(cancel)).status == 200
        assert resting not in await _active(http)  # no linger: gone in the same step
        assert (await http.post(cancel)).status == 404
        history = (await http.post("/trading/orders/search", {"limit": 10})).json()["data"]
        found = {r["order_id"]: r for r in history}[resting]
        assert found["status"] == "CANCELLED"
        assert abs(_stamp(found["created_at"]) - time.time()) < 30  # insert time, not the clock
    finally:
        await http.aclose()


async def test_real_filled_order_keeps_its_old_status_while_waiting_for_fills(
    nursery: trio.Nursery, sim_cert_dir: Path
) -> None:
    info = await _real(nursery, sim_cert_dir)
    http = RawHTTP(info)
    try:
        taker = (await http.post("/trading/orders", order(price="61000"))).json()["order_id"]
        market = (await http.post("/trading/orders", order(price=None))).json()["order_id"]
        assert info.state.engine.orders[taker].status == "FILLED"
        rows = await _active(http)
        for oid in (taker, market):
            assert rows[oid]["status"] in ("OPEN", "PARTIALLY_FILLED")
            assert Decimal(str(rows[oid]["filled_amount"])) == Decimal(str(rows[oid]["amount"]))
        # a MARKET order shows the server's price estimate (the best ask at placement)
        assert Decimal(str(rows[market]["price"])) > 0
        assert rows[market]["average_fill_price"] is None
        await trio.sleep(0.6)  # past the fill wait (0.5 s)
        rows = await _active(http)
        assert taker not in rows and market not in rows
    finally:
        await http.aclose()


async def test_real_unacknowledged_failure_has_a_detail_less_history_row(
    nursery: trio.Nursery, sim_cert_dir: Path
) -> None:
    info = await _real(nursery, sim_cert_dir)
    http = RawHTTP(info)
    try:
        failed = (await http.post("/trading/orders", order(price="20000"))).json()["order_id"]
        assert info.state.engine.orders[failed].status == "FAILED"
        assert failed not in await _active(http)
        rows = (await http.post("/trading/orders/search", {"limit": 10})).json()["data"]
        row = {r["order_id"]: r for r in rows}[failed]
        assert row["status"] == "FAILED"
        assert row["trading_pair"] == "UNKNOWN" and row["trade_type"] == "UNKNOWN"
        assert row["amount"] == 0 and row["price"] is None
        assert "outside the allowed range" in row["error_message"]
        narrowed = await http.post(
            "/trading/orders/search", {"limit": 10, "trading_pairs": ["BTC-USDT"]}
        )
        assert failed not in {r["order_id"] for r in narrowed.json()["data"]}
    finally:
        await http.aclose()


async def test_faithful_profile_keeps_the_kind_listing(sim: SimInfo, sim_http: RawHTTP) -> None:
    failed = (await sim_http.post("/trading/orders", order(price="20000"))).json()["order_id"]
    rows = await _active(sim_http)
    assert rows[failed]["status"] == "FAILED"  # lingers 1 s, with its details
    narrowed = await sim_http.post(
        "/trading/orders/search", {"limit": 10, "trading_pairs": ["BTC-USDT"]}
    )
    row = {r["order_id"]: r for r in narrowed.json()["data"]}[failed]
    assert row["trading_pair"] == "BTC-USDT"
    assert abs(_stamp(str(rows[failed]["created_at"])) - time.time()) < 30


@pytest.mark.parametrize("quirks", ["faithful", "real"])
async def test_account_without_credentials_gets_the_wrapped_500(
    nursery: trio.Nursery, sim_cert_dir: Path, quirks: str
) -> None:
    info = await start_sim(
        nursery,
        cert_dir=sim_cert_dir,
        quirks=quirks,
        no_credentials=[("master_account", "kucoin")],
    )
    http = RawHTTP(info)
    try:
        answer = await http.post("/trading/orders", order(connector_name="kucoin"))
        assert answer.status == 500
        detail = answer.json()["detail"]
        assert detail.startswith("Unexpected error placing trade: KucoinExchange.__init__()")
        assert "'kucoin_api_key' and 'kucoin_api_secret'" in detail
        stream = http._stream
        assert (await http.post("/trading/orders", order())).status == 201
        assert http._stream is stream  # a JSON error keeps the connection
        assert len(info.state.order_log) == 1
    finally:
        await http.aclose()


def test_cli_flags_of_the_rest_real_profile() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        ["--terminal-linger", "0", "--no-credentials", "a:binance,b:kucoin", "--no-credentials=c:x"]
    )
    assert args.terminal_linger == 0.0
    assert args.no_credentials == [("a", "binance"), ("b", "kucoin"), ("c", "x")]
    assert parser.parse_args([]).terminal_linger is None
    with pytest.raises(SystemExit):
        parser.parse_args(["--no-credentials", "nocolon"])
