"""The streaming supervisor against the real simulator over TLS (real sockets)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from hbtrio import (
    AuthenticationFailed,
    ClientConfig,
    ConnectionState,
    ConnectionStateChanged,
    Event,
    EventEngine,
)
from hbtrio._actors.streams import StreamingSupervisor
from hbtrio.sim import SimInfo
from tests.integration.conftest import client_config, start_sim


@asynccontextmanager
async def supervisor(
    config: ClientConfig, engine: EventEngine | None = None
) -> AsyncIterator[StreamingSupervisor]:
    sup = StreamingSupervisor(config, (engine or EventEngine()).publish)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        yield sup
        nursery.cancel_scope.cancel()


async def test_streams_deliver_data(nursery: trio.Nursery, sim_cert_dir: Path) -> None:
    info = await start_sim(nursery, cert_dir=sim_cert_dir, min_update_interval=0.05)
    async with (
        supervisor(client_config(info)) as sup,
        sup.subscribe_order_book("binance", "BTC-USDT", depth=5, update_interval=0.1) as books,
        sup.subscribe_trades("binance", "BTC-USDT", update_interval=0.1) as trades,
        sup.subscribe_candles("binance", "BTC-USDT", "1m", update_interval=0.1) as candles,
    ):
        assert sup.state is ConnectionState.CONNECTED
        with trio.fail_after(10):
            book = await books.receive()
            trade = await trades.receive()
            candle = await candles.receive()
        assert 0 < len(book.bids) <= 5 and 0 < len(book.asks) <= 5
        assert book.bids[0].price < book.asks[0].price
        assert trade.market == "BTC-USDT" and trade.amount > 0
        assert candle.high >= candle.low
        assert sup.connection.connections == 1


async def test_wrong_credentials_raise_authentication_failed(sim: SimInfo) -> None:
    config = client_config(sim, api_key="admin:wrong")
    sup = StreamingSupervisor(config, EventEngine().publish)
    with pytest.raises(AuthenticationFailed) as info:
        await _start_fails(sup)
    assert "wrong" not in str(info.value)
    assert sup.connection.connections == 0


async def _start_fails(sup: StreamingSupervisor) -> None:
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
    except ExceptionGroup as group:
        assert len(group.exceptions) == 1
        raise group.exceptions[0] from None


async def test_untrusted_certificate_fails_at_once(sim: SimInfo, tmp_path: Path) -> None:
    # Verify against another CA: the system store does not know the simulator's CA.
    config = client_config(sim, ca_file=None, retries=5)
    sup = StreamingSupervisor(config, EventEngine().publish)
    t0 = trio.current_time()
    with pytest.raises(Exception) as info:
        await _start_fails(sup)
    assert "certificate" in str(info.value).lower()
    assert trio.current_time() - t0 < 2.0  # not retried


def _states(events: list[Event]) -> list[ConnectionState]:
    return [e.new for e in events if isinstance(e, ConnectionStateChanged)]


async def test_dropped_websockets_reconnect_and_resubscribe(
    nursery: trio.Nursery, sim_cert_dir: Path
) -> None:
    info = await start_sim(
        nursery, cert_dir=sim_cert_dir, min_update_interval=0.05, drop_ws_after_msgs=15
    )
    engine = EventEngine()
    seen: list[Event] = []
    async with (
        engine.subscribe(ConnectionStateChanged) as states,
        supervisor(client_config(info), engine) as sup,
        sup.subscribe_order_book("binance", "BTC-USDT", update_interval=0.05) as books,
        sup.subscribe_trades("binance", "ETH-USDT", update_interval=0.05) as trades,
    ):
        got_books = got_trades = 0
        with trio.fail_after(20):
            while sup.connection.connections < 4 or got_books < 30:
                book = await books.receive()
                assert book.market == "BTC-USDT"
                got_books += 1
                while trades._items:
                    await trades.receive()
                    got_trades += 1
        assert got_trades > 0
        while states.pending:
            seen.append(await states.__anext__())
    assert _states(seen).count(ConnectionState.CONNECTED) >= 3
    assert ConnectionState.DISCONNECTED in _states(seen)


async def test_recovers_after_simulator_restart_on_same_port(sim_process: Any) -> None:
    proc = await sim_process("--min-update-interval", "0.05")
    config = ClientConfig(
        host=proc.host, port=proc.port, api_key=proc.api_key, ca_file=proc.ca_path
    )
    async with (
        supervisor(config) as sup,
        sup.subscribe_order_book("binance", "BTC-USDT", update_interval=0.1) as books,
    ):
        with trio.fail_after(10):
            await books.receive()
        await proc.stop()
        with trio.fail_after(10):
            await sup.connection.wait_state(
                ConnectionState.DISCONNECTED, ConnectionState.CONNECTING
            )
        await trio.sleep(3.0)  # down for a while: backoff reaches its cap
        await proc.start()
        restarted = trio.current_time()
        with trio.fail_after(5.0):
            await sup.connection.wait_state(ConnectionState.CONNECTED)
            while books._items:
                await books.receive()
            await books.receive()  # fresh data after the restart
        assert trio.current_time() - restarted < 5.0
        assert sup.connection.connections == 2
