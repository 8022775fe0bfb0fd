"""Driving the streaming side with anyio's API (task groups, timeouts) on the Trio backend."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import anyio

from hbtrio import ConnectionState, ConnectionStateChanged, EventEngine, OrderBookUpdate
from hbtrio._actors.streams import StreamingSupervisor
from hbtrio.sim import SimInfo, serve
from tests.integration.conftest import client_config


def test_anyio_task_groups_drive_streams(sim_cert_dir: Path) -> None:
    results: dict[str, object] = {}

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            info: SimInfo = await tg.start(
                partial(serve, cert_dir=sim_cert_dir, min_update_interval=0.05)
            )
            engine = EventEngine()
            sup = StreamingSupervisor(client_config(info), engine.publish, engine=engine)
            async with sup.events(OrderBookUpdate, ConnectionStateChanged) as events:
                await tg.start(sup.run)
                results["state"] = sup.state
                books_seen: list[int] = []

                async def consume(market: str) -> None:
                    async with sup.subscribe_order_book(
                        "binance", market, update_interval=0.1
                    ) as s:
                        with anyio.fail_after(10):
                            async for book in s:
                                books_seen.append(len(book.bids))
                                if len(books_seen) >= 6:
                                    return

                async with anyio.create_task_group() as consumers:
                    consumers.start_soon(consume, "BTC-USDT")
                    consumers.start_soon(consume, "ETH-USDT")
                results["books"] = len(books_seen)
                with anyio.fail_after(5):
                    first = await events.__anext__()
                results["first_event"] = first
            tg.cancel_scope.cancel()

    anyio.run(main, backend="trio")
    assert results["state"] is ConnectionState.CONNECTED
    assert isinstance(results["books"], int) and results["books"] >= 6
    first = results["first_event"]
    assert isinstance(first, ConnectionStateChanged)
    assert first.new is ConnectionState.CONNECTING
