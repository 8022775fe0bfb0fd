"""Smoke tests of the simulator over real TLS sockets."""

from __future__ import annotations

from hbtrio.sim import SimInfo
from tests.integration.conftest import RawHTTP, client_config


async def test_root_and_auth(sim: SimInfo, sim_http: RawHTTP) -> None:
    root = await sim_http.get("/", auth=False)
    assert root.status == 200
    assert root.json() == {"name": "Hummingbot API", "version": "1.0.1", "status": "running"}
    missing = await sim_http.get("/accounts/", auth=False)
    assert missing.status == 401
    assert missing.json() == {"detail": "Not authenticated"}
    assert missing.headers["www-authenticate"] == "Basic"
    ok = await sim_http.get("/accounts/")
    assert ok.json() == ["master_account"]
    cfg = client_config(sim)
    assert cfg.port == sim.port and cfg.ca_file == sim.ca_path


async def test_order_listed_from_answer(sim: SimInfo, sim_http: RawHTTP) -> None:
    placed = await sim_http.post(
        "/trading/orders",
        {
            "account_name": "master_account",
            "connector_name": "binance",
            "trading_pair": "BTC-USDT",
            "trade_type": "BUY",
            "amount": 0.001,
            "order_type": "LIMIT",
            "price": 59000,
        },
    )
    assert placed.status == 201
    order_id = placed.json()["order_id"]
    active = await sim_http.post("/trading/orders/active", {})
    assert [o["order_id"] for o in active.json()["data"]] == [order_id]
    assert sim.state.order_log[0].order_id == order_id
