"""Issue 13 acceptance: every public call, against a server that never answers,
returns or raises within its documented bound (Trio's mock clock, real sockets)."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from decimal import Decimal
from functools import partial
from typing import Any

import pytest
import trio

import hbtrio
from hbtrio._client import Client, open_client

TIMEOUT, RETRIES = 1.0, 2
# timeout x (retries + 1) plus the largest backoff delays (0.1 + 0.2 s)
B = TIMEOUT * (RETRIES + 1) + 0.1 + 0.2

Case = Callable[[Client], Awaitable[Any]]
CASES: dict[str, tuple[Case, float]] = {
    "server_info": (lambda c: c.server_info(), B),
    "get_accounts": (lambda c: c.get_accounts(), B),
    "get_exchanges": (lambda c: c.get_exchanges(), B),
    "get_balances": (lambda c: c.get_balances(), B),
    "get_trading_rules": (lambda c: c.get_trading_rules("binance"), B),
    "get_order_book": (lambda c: c.get_order_book("binance", "BTC-USDT"), B),
    "get_ticker": (lambda c: c.get_ticker("binance", "BTC-USDT"), B),
    "get_candles": (lambda c: c.get_candles("binance", "BTC-USDT"), B),
    "get_historical_candles": (
        lambda c: c.get_historical_candles("binance", "BTC-USDT", start=0, end=3600),
        B,
    ),
    "get_open_orders": (lambda c: c.get_open_orders(), B),
    "get_order_history": (lambda c: c.get_order_history(), B),
    "iter_order_history": (lambda c: _first(c.iter_order_history()), B),
    "get_trades": (lambda c: c.get_trades(), B),
    "get_order": (lambda c: c.get_order("HBOT-1", exchange="binance"), B),
    "cancel_order": (lambda c: c.cancel_order("HBOT-1", exchange="binance"), 2 * B),
    "cancel_all_orders": (lambda c: c.cancel_all_orders(), B),
    "place_order": (
        lambda c: c.place_order("binance", "BTC-USDT", "BUY", amount=Decimal(1), price=1),
        B,
    ),
    "place_limit_order": (
        lambda c: c.place_limit_order("binance", "BTC-USDT", "BUY", price=1, amount=1),
        B,
    ),
    "place_market_order": (
        lambda c: c.place_market_order("binance", "BTC-USDT", "BUY", amount=1),
        B,
    ),
}
NOT_SERVER_CALLS = {
    "attach_streams",  # wiring, no I/O
    "subscribe_order_book",  # streams: the WebSocket side's own bounds (rtws)
    "subscribe_trades",
    "subscribe_ticker",
    "subscribe_candles",
    "events",
}


async def _first(items: Any) -> Any:
    async for item in items:
        return item
    return None


def public_methods() -> set[str]:
    return {
        name
        for name, member in inspect.getmembers(Client)
        if not name.startswith("_") and inspect.isfunction(member)
    }


def test_every_public_method_has_a_case() -> None:
    assert public_methods() == set(CASES) | NOT_SERVER_CALLS


async def _peer(stream: trio.SocketStream, answered: list[int]) -> None:
    """Answers the client's start-up check, then never answers anything."""
    data = b""
    while True:
        chunk = await stream.receive_some(65536)
        if not chunk:
            return
        data += chunk
        if not answered and b"\r\n\r\n" in data:
            answered.append(1)
            body = b'["master_account"]'
            await stream.send_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\n\r\n%s" % (len(body), body)
            )


@pytest.mark.parametrize("name", sorted(CASES))
async def test_call_against_a_silent_server_ends_within_its_bound(
    name: str, autojump_clock: trio.abc.Clock
) -> None:
    case, bound = CASES[name]
    answered: list[int] = []
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            partial(trio.serve_tcp, lambda s: _peer(s, answered), 0, host="127.0.0.1")
        )
        port = listeners[0].socket.getsockname()[1]
        config = hbtrio.ClientConfig(
            host="127.0.0.1",
            port=port,
            api_key="admin:admin",
            tls=False,
            timeout=TIMEOUT,
            retries=RETRIES,
        )
        async with open_client(config, streaming=False) as client:
            began = trio.current_time()
            with pytest.raises(hbtrio.HbtrioError):
                await case(client)
            elapsed = trio.current_time() - began
        assert elapsed <= bound + 1e-6, f"{name}: {elapsed:.3f} s > {bound:.3f} s"
        print(f"{name}: {elapsed:.3f} s (bound {bound:.3f} s)")
        nursery.cancel_scope.cancel()


def test_every_server_call_is_in_the_time_bounds_table() -> None:
    from pathlib import Path

    page = (Path(__file__).parents[2] / "docs" / "time-bounds.md").read_text()
    for name in CASES:
        assert f"`{name}`" in page, name
