"""The simulator's ``/ws/market-data`` WebSocket over real TLS sockets."""

from __future__ import annotations

import base64
import json
import logging
import time
from typing import Any
from urllib.parse import quote

import pytest
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, open_websocket_url

from hbtrio.sim import SimInfo
from tests.integration.conftest import basic_auth, ssl_context_for, start_sim


async def recv(ws: WebSocketConnection) -> dict[str, Any]:
    with trio.fail_after(10):
        message = await ws.get_message()
    result: dict[str, Any] = json.loads(message)
    return result


async def recv_type(ws: WebSocketConnection, kind: str) -> dict[str, Any]:
    while True:
        message = await recv(ws)
        if message["type"] == kind:
            return message


async def expect_close(ws: WebSocketConnection, code: int) -> None:
    """Wait for the server's close, then close the transport.

    trio-websocket leaves the socket of a server-initiated close open (a
    ``ResourceWarning``); closing its stream here keeps the test suite clean.
    """
    with pytest.raises(ConnectionClosed) as info:
        await recv(ws)
    assert info.value.reason.code == code
    await ws._stream.aclose()


def ws_url(info: SimInfo, query: str = "") -> str:
    return info.ws_url + (f"?{query}" if query else "")


@pytest.mark.parametrize("form", ["header", "token", "userpass"])
async def test_three_auth_forms(sim: SimInfo, form: str, caplog: pytest.LogCaptureFixture) -> None:
    # The query forms put the credential in the URL on purpose (the server must
    # accept them); trio-websocket logs that URL at DEBUG: keep it out of the logs.
    caplog.set_level(logging.INFO, logger="trio-websocket")
    headers = [(b"authorization", basic_auth(sim.api_key))] if form == "header" else []
    token = base64.b64encode(sim.api_key.encode()).decode()
    query = {
        "header": "",
        "token": f"token={quote(token, safe='')}",
        "userpass": "username=admin&password=admin",
    }[form]
    async with open_websocket_url(
        ws_url(sim, query), ssl_context=ssl_context_for(sim), extra_headers=headers
    ) as ws:
        greeting = await recv(ws)
        assert greeting["type"] == "connected"
        assert len(greeting["connection_id"]) == 8
        assert isinstance(greeting["timestamp"], float)
        await ws.send_message('{"action":"ping"}')
        assert (await recv(ws))["type"] == "pong"


@pytest.mark.parametrize(
    "query", ["", "token=YWRtaW46d3Jvbmc%3D", "username=admin&password=nope", "token=%%%"]
)
async def test_auth_failure_closes_4001(
    sim: SimInfo, query: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A credential in the query on purpose; trio-websocket logs that URL at DEBUG
    # (whatever level an earlier test left): keep it out of the logs.
    caplog.set_level(logging.INFO, logger="trio-websocket")
    async with open_websocket_url(ws_url(sim, query), ssl_context=ssl_context_for(sim)) as ws:
        assert await recv(ws) == {"type": "error", "message": "Authentication failed"}
        await expect_close(ws, 4001)


async def connect(info: SimInfo) -> Any:
    return open_websocket_url(
        info.ws_url,
        ssl_context=ssl_context_for(info),
        extra_headers=[(b"authorization", basic_auth(info.api_key))],
    )


async def test_subscriptions_acks_pushes_and_errors(sim: SimInfo) -> None:
    async with await connect(sim) as ws:
        await recv_type(ws, "connected")
        await ws.send_message(
            json.dumps(
                {
                    "action": "subscribe",
                    "type": "order_book",
                    "connector": "binance",
                    "trading_pair": "BTC-USDT",
                    "depth": 3,
                    "update_interval": 0.25,
                }
            )
        )
        assert await recv(ws) == {
            "type": "subscribed",
            "subscription_id": "order_book_binance_BTC-USDT",
        }
        book = await recv_type(ws, "order_book")
        assert book["subscription_id"] == "order_book_binance_BTC-USDT"
        assert len(book["data"]["bids"]) == 3 and len(book["data"]["bids"][0]) == 2
        assert book["data"]["bids"][0][0] < book["data"]["asks"][0][0]

        await ws.send_message(
            json.dumps(
                {
                    "action": "subscribe",
                    "type": "candles",
                    "connector": "binance",
                    "trading_pair": "ETH-USDT",
                    "interval": "1m",
                    "max_records": 5,
                    "update_interval": 0.25,
                }
            )
        )
        candles = await recv_type(ws, "candles")
        assert candles["subscription_id"] == "candles_binance_ETH-USDT_1m"
        assert len(candles["data"]) == 5
        update = await recv_type(ws, "candle_update")
        assert update["data"]["timestamp"] == candles["data"][-1]["timestamp"]

        await ws.send_message(
            json.dumps({"action": "unsubscribe", "subscription_id": "candles_binance_ETH-USDT_1m"})
        )
        assert await recv_type(ws, "unsubscribed") == {
            "type": "unsubscribed",
            "subscription_id": "candles_binance_ETH-USDT_1m",
        }
        await ws.send_message('{"action":"dance"}')
        error = await recv_type(ws, "error")
        assert error["message"] == (
            "Unknown action: dance. Valid actions: subscribe, unsubscribe, ping"
        )
        await ws.send_message(
            json.dumps(
                {
                    "action": "subscribe",
                    "type": "news",
                    "connector": "binance",
                    "trading_pair": "BTC-USDT",
                }
            )
        )
        assert (await recv_type(ws, "error"))["message"] == "Invalid subscription type: news"
        await ws.send_message(
            json.dumps(
                {
                    "action": "subscribe",
                    "type": "trades",
                    "connector": "binance",
                    "trading_pair": "XRP-USDT",
                }
            )
        )
        assert "subscription_id" not in await recv_type(ws, "error")


async def test_trades_push_and_heartbeat(nursery: trio.Nursery, sim_cert_dir: Any) -> None:
    info = await start_sim(
        nursery,
        cert_dir=sim_cert_dir,
        heartbeat_interval=0.2,
        min_update_interval=0,
        book_change_rate=200,
    )
    async with await connect(info) as ws:
        await recv_type(ws, "connected")
        assert isinstance((await recv_type(ws, "heartbeat"))["timestamp"], float)
        await ws.send_message(
            json.dumps(
                {
                    "action": "subscribe",
                    "type": "trades",
                    "connector": "kucoin",
                    "trading_pair": "BTC-USDT",
                    "update_interval": 0,
                }
            )
        )
        trades = await recv_type(ws, "trades")
        assert trades["subscription_id"] == "trades_kucoin_BTC-USDT"
        assert {"timestamp", "price", "amount", "side"} == set(trades["data"][0])


async def test_update_interval_zero_streams_every_change(
    nursery: trio.Nursery, sim_cert_dir: Any
) -> None:
    info = await start_sim(
        nursery, cert_dir=sim_cert_dir, min_update_interval=0, book_change_rate=500
    )
    async with await connect(info) as ws:
        await recv_type(ws, "connected")
        await ws.send_message(
            json.dumps(
                {
                    "action": "subscribe",
                    "type": "order_book",
                    "connector": "binance",
                    "trading_pair": "BTC-USDT",
                    "depth": 5,
                    "update_interval": 0,
                }
            )
        )
        count = 0
        with trio.move_on_after(0.5):
            while True:
                if (await recv(ws))["type"] == "order_book":
                    count += 1
        assert count > 20  # far more than the 2 a 0.25 s floor would allow


async def test_drop_after_messages(nursery: trio.Nursery, sim_cert_dir: Any) -> None:
    info = await start_sim(nursery, cert_dir=sim_cert_dir, drop_ws_after_msgs=2)
    async with await connect(info) as ws:
        await recv_type(ws, "connected")
        await ws.send_message('{"action":"ping"}')
        assert (await recv(ws))["type"] == "pong"
        await expect_close(ws, 1001)


async def test_latency_delays_every_websocket_message_without_capping_the_rate(
    nursery: trio.Nursery, sim_cert_dir: Any
) -> None:
    latency = 0.2
    info = await start_sim(
        nursery,
        cert_dir=sim_cert_dir,
        latency_ms=latency * 1000,
        min_update_interval=0,
        book_change_rate=50,
    )
    began = trio.current_time()  # before connecting: the server stamps its greeting early
    async with await connect(info) as ws:
        await recv_type(ws, "connected")
        assert trio.current_time() - began >= latency  # the greeting

        asked = trio.current_time()
        for _ in range(5):
            await ws.send_message('{"action":"ping"}')
        arrivals: list[float] = []
        while len(arrivals) < 5:
            if (await recv(ws))["type"] == "pong":
                arrivals.append(trio.current_time() - asked)
        assert min(arrivals) >= latency  # every pong is delayed
        assert max(arrivals) < 2 * latency  # pipelined: not 5 x latency one after another

        asked = trio.current_time()
        await ws.send_message(
            json.dumps(
                {
                    "action": "subscribe",
                    "type": "order_book",
                    "connector": "binance",
                    "trading_pair": "BTC-USDT",
                    "depth": 3,
                    "update_interval": 0,
                }
            )
        )
        assert (await recv_type(ws, "subscribed"))[
            "subscription_id"
        ] == "order_book_binance_BTC-USDT"
        assert trio.current_time() - asked >= latency  # the ack
        push = await recv_type(ws, "order_book")
        assert time.time() - push["timestamp"] >= latency - 0.01  # stamped, then delayed
        count = 0
        with trio.move_on_after(0.5):
            while True:
                if (await recv(ws))["type"] == "order_book":
                    count += 1
        assert count > 10  # 50 changes/s keep flowing: the delay does not cap the rate

    began = trio.current_time()
    async with open_websocket_url(
        ws_url(info, "username=admin&password=nope"), ssl_context=ssl_context_for(info)
    ) as ws:
        assert await recv(ws) == {"type": "error", "message": "Authentication failed"}
        assert trio.current_time() - began >= latency
        await expect_close(ws, 4001)
