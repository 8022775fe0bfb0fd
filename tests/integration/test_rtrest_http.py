"""Item 4 of issue 13: no request is written to a connection the server closed."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import msgspec
import pytest
import trio

import hbtrio
from hbtrio._actors.http import HttpPool
from tests.integration.conftest import client_config, start_sim
from tests.integration.test_sim_behaviour import order


async def test_item4_connection_closed_after_a_crash_page_is_not_reused(
    nursery: trio.Nursery, sim_cert_dir: Path
) -> None:
    info = await start_sim(nursery, cert_dir=sim_cert_dir, quirks="real")
    pool = HttpPool(client_config(info))
    try:
        bad = msgspec.json.encode(order(amount=0))
        good = msgspec.json.encode(order())
        for _ in range(20):
            crash = await pool.request("POST", "/trading/orders", bad, timeout=5)
            assert crash.status == 500 and crash.body == b"Internal Server Error"
            # at once: the server is closing the connection the crash page came on
            placed = await pool.request("POST", "/trading/orders", good, timeout=5)
            assert placed.status == 201, placed.body
        assert len(info.state.order_log) == 20  # every placement reached the server once
        assert pool.stats.connections_opened == 21  # a fresh one after each crash page
    finally:
        await pool.aclose()


@pytest.mark.parametrize("quirks", ["faithful", "real"])
async def test_item9_connector_without_credentials_is_order_rejected(
    nursery: trio.Nursery, sim_cert_dir: Path, quirks: str
) -> None:
    info = await start_sim(
        nursery,
        cert_dir=sim_cert_dir,
        quirks=quirks,
        no_credentials=[("master_account", "kucoin")],
    )
    async with hbtrio.open_client(client_config(info), streaming=False) as client:
        with pytest.raises(hbtrio.OrderRejected) as caught:
            await client.place_limit_order(
                "kucoin", "BTC-USDT", "BUY", price=Decimal(50_000), amount=Decimal("0.001")
            )
    assert caught.value.reason is not None
    assert caught.value.reason.startswith("Unexpected error placing trade:")
    assert "kucoin_api_key" in caught.value.reason
    assert len(info.state.order_log) == 0  # nothing created, nothing reconciled
