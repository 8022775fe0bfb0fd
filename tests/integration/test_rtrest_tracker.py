"""Issue 13 item 2: the tracker's history lookup on a busy account (real and faithful)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import trio

import hbtrio
from hbtrio import OrderStatus, OrderUpdate, Side
from tests.integration.conftest import client_config, start_sim

EX, PAIR = "binance", "BTC-USDT"


@pytest.mark.parametrize("quirks", ["faithful", "real"])
async def test_item2_terminal_event_once_behind_1500_newer_orders(
    nursery: trio.Nursery, sim_cert_dir: Path, quirks: str
) -> None:
    info = await start_sim(nursery, cert_dir=sim_cert_dir, quirks=quirks, book_change_rate=1)
    config = client_config(info, timeout=5.0, retries=1)
    async with (
        hbtrio.open_client(config) as client,
        client.events(OrderUpdate, buffer=20_000) as events,
    ):
        tracked = await client.place_limit_order(
            EX, PAIR, Side.BUY, price=Decimal(50_000), amount=Decimal("0.001")
        )
        started = trio.current_time()
        engine = info.state.engine
        for _ in range(1_500):  # other orders created on the account after it
            engine.place(
                "master_account", EX, PAIR, "BUY", "LIMIT", Decimal("0.001"), Decimal(45_000)
            )
        newer = [
            o
            for o in engine.order_list
            if o.created_at > engine.orders[tracked.order_id].created_at
        ]
        assert len(newer) >= 1_500
        assert trio.current_time() - started < 60
        await client.cancel_order(tracked.order_id, exchange=EX)
        terminal: list[hbtrio.Order] = []
        with trio.move_on_after(20):
            async for event in events:
                assert isinstance(event, OrderUpdate)
                if event.order.order_id == tracked.order_id and event.order.status.is_terminal:
                    terminal.append(event.order)
                    break
        assert [o.status for o in terminal] == [OrderStatus.CANCELLED]
        # and exactly once: a few more polls publish nothing further for it
        with trio.move_on_after(1.5):
            async for event in events:
                assert isinstance(event, OrderUpdate)
                assert event.order.order_id != tracked.order_id
