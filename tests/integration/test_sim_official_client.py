"""The official asyncio client (``hummingbot-api-client``) runs unmodified against the simulator.

The client is run in a subprocess (its own asyncio loop) with ``SSL_CERT_FILE``
pointing at the simulator's CA, so that its default TLS verification trusts it.
"""

from __future__ import annotations

import json
import os
import sys

import trio

from hbtrio.sim import SimInfo

SCRIPT = r"""
import asyncio, json, os, sys
from hummingbot_api_client import HummingbotAPIClient

async def main():
    client = HummingbotAPIClient(base_url=os.environ["SIM_URL"], username="admin", password="admin")
    await client.init()
    out = {}
    try:
        out["connectors"] = await client.connectors.list_connectors()
        out["rules"] = await client.connectors.get_trading_rules("binance", ["BTC-USDT"])
        out["order_types"] = await client.connectors.get_supported_order_types("binance")
        out["limit"] = await client.trading.place_order(
            "master_account", "binance", "BTC-USDT", "BUY", 0.001, "LIMIT", 59000.0)
        out["active"] = await client.trading.get_active_orders()
        out["state_reserved"] = await client.portfolio.get_state(refresh=True)
        out["cancel"] = await client.trading.cancel_order(
            "master_account", "binance", out["limit"]["order_id"])
        out["market"] = await client.trading.place_order(
            "master_account", "binance", "BTC-USDT", "SELL", 0.001, "MARKET")
        out["search"] = await client.trading.search_orders()
        out["trades"] = await client.trading.get_trades()
        out["portfolio"] = await client.portfolio.get_state()
        out["book"] = await client.market_data.get_order_book("binance", "BTC-USDT", depth=5)
        out["prices"] = await client.market_data.get_prices("binance", ["BTC-USDT", "ETH-USDT"])
        out["candles"] = await client.market_data.get_candles("binance", "BTC-USDT", "1m", 10)
        async with client.ws.market_data() as ws:
            out["connection_id"] = ws.connection_id
            out["sub_trades"] = await ws.subscribe_trades(
                "binance", "BTC-USDT", update_interval=1.0)
            out["sub_book"] = await ws.subscribe_order_book(
                "binance", "BTC-USDT", depth=5, update_interval=1.0)
            seen = {}
            async def collect():
                async for msg in ws:
                    seen.setdefault(msg["type"], msg)
                    if "order_book" in seen and "trades" in seen:
                        return
            await asyncio.wait_for(collect(), 15)
            out["ws"] = seen
    finally:
        await client.close()
    json.dump(out, sys.stdout)

asyncio.run(main())
"""


async def test_official_client_end_to_end(sim: SimInfo) -> None:
    assert sim.ca_path is not None
    env = dict(os.environ, SSL_CERT_FILE=sim.ca_path, SIM_URL=sim.url)
    with trio.fail_after(60):
        result = await trio.run_process(
            [sys.executable, "-c", SCRIPT],
            env=env,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    out = json.loads(result.stdout)

    assert out["connectors"] == ["binance", "kucoin"]
    assert out["rules"]["BTC-USDT"]["min_order_size"] == 0.00001
    assert out["order_types"]["supported_order_types"] == ["LIMIT", "LIMIT_MAKER", "MARKET"]

    limit = out["limit"]
    assert limit["status"] == "submitted"
    assert limit["order_id"].startswith("buy-BTC-USDT-")
    assert [o["order_id"] for o in out["active"]["data"]] == [limit["order_id"]]
    assert out["active"]["data"][0]["status"] == "OPEN"
    usdt = {r["token"]: r for r in out["state_reserved"]["master_account"]["binance"]}["USDT"]
    assert usdt["available_units"] < usdt["units"]  # the resting buy reserves quote
    assert out["cancel"] == {"message": f"Order cancellation initiated for {limit['order_id']}"}

    market_id = out["market"]["order_id"]
    statuses = {o["order_id"]: o["status"] for o in out["search"]["data"]}
    assert statuses == {limit["order_id"]: "CANCELLED", market_id: "FILLED"}
    fills = out["trades"]["data"]
    assert fills and {f["order_id"] for f in fills} == {market_id}
    assert sum(f["amount"] for f in fills) == 0.001

    btc = {r["token"]: r for r in out["portfolio"]["master_account"]["binance"]}["BTC"]
    assert btc["units"] == 10 - 0.001

    book = out["book"]
    assert len(book["bids"]) == 5 and len(book["asks"]) == 5
    assert book["bids"][0]["price"] < book["asks"][0]["price"]
    assert set(out["prices"]["prices"]) == {"BTC-USDT", "ETH-USDT"}
    assert len(out["candles"]) == 10

    assert len(out["connection_id"]) == 8
    assert out["sub_trades"] == "trades_binance_BTC-USDT"
    assert out["sub_book"] == "order_book_binance_BTC-USDT"
    ws_book = out["ws"]["order_book"]["data"]
    assert ws_book["bids"] and ws_book["asks"]
    trade = out["ws"]["trades"]["data"][0]
    assert trade["side"] in ("buy", "sell") and trade["amount"] > 0
