"""Issue 13 (REST part): one test per defect, against the in-memory fake server."""

from __future__ import annotations

import base64
import logging

import pytest
import trio

import hbtrio
from hbtrio import (
    ErrorEvent,
    MalformedResponse,
    OrderOutcomeUnknown,
    OrderRejected,
    ServerError,
)
from hbtrio._actors.http import HttpResponse
from hbtrio._client import Client
from tests.unit.test_rest_fake import Call, FakeServer, detail, respond
from tests.unit.test_rest_unit import KEY, client, server  # noqa: F401 - fixtures

B64 = base64.b64encode(KEY.encode()).decode()


def _no_secret(text: str) -> None:
    assert KEY not in text and B64 not in text and B64.rstrip("=") not in text
    assert "Basic " + B64[:8] not in text


# -- item 8: server texts are scrubbed of the credential ----------------------------------


async def test_item8_credential_echoed_by_the_server_is_scrubbed(
    client: Client,  # noqa: F811
    server: FakeServer,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    echo = f"bad header Authorization: Basic {B64} (user {KEY}, token={B64.rstrip('=')})"
    server.add_fault("/connectors/", lambda call: detail(500, echo))
    with caplog.at_level(logging.DEBUG, logger="hbtrio"), pytest.raises(ServerError) as info:
        await client.get_exchanges()
    exc = info.value
    for text in (str(exc), repr(exc), exc.message, str(exc.detail)):
        _no_secret(text)
    assert "[redacted]" in str(exc)
    for record in caplog.records:
        _no_secret(record.getMessage())
    event = ErrorEvent(error=f"server error: {echo}")
    _no_secret(event.error)
    _no_secret(str(hbtrio.OrderRejected("x", reason=echo).reason))


# -- item 3: an unparsable 2xx to a placement is reconciled, never "nothing created" ----


async def test_item3_unparsable_2xx_placement_is_reconciled_to_the_created_order(
    client: Client,  # noqa: F811
    server: FakeServer,  # noqa: F811
    autojump_clock: trio.abc.Clock,
) -> None:
    await client.get_trading_rules("binance", ["BTC-USDT"])
    created: list[str] = []

    def garbled(call: Call) -> HttpResponse:
        server.handle(call)  # the server creates the order (this fault is used up)
        created.append(next(iter(server.orders)))
        return respond(201, b"{not json", "application/json")

    server.add_fault("/trading/orders", garbled)
    order = await client.place_limit_order("binance", "BTC-USDT", "BUY", price=100, amount="0.01")
    assert created and order.order_id == created[0]  # the order the server created
    assert len(server.orders) == 1


async def test_item3_unparsable_2xx_and_nothing_found_is_outcome_unknown(
    client: Client,  # noqa: F811
    server: FakeServer,  # noqa: F811
    autojump_clock: trio.abc.Clock,
) -> None:
    await client.get_trading_rules("binance", ["BTC-USDT"])
    server.add_fault("/trading/orders", lambda call: respond(201, b"<html>", "text/html"))
    with pytest.raises(OrderOutcomeUnknown) as info:
        await client.place_limit_order("binance", "BTC-USDT", "BUY", price=100, amount="0.01")
    assert isinstance(info.value.__cause__, MalformedResponse)


# -- item 12: a 5xx after possible processing gets the passes of a lost answer ---------


async def test_item12_5xx_placement_gets_two_reconciliation_passes(
    client: Client,  # noqa: F811
    server: FakeServer,  # noqa: F811
    autojump_clock: trio.abc.Clock,
) -> None:
    await client.get_trading_rules("binance", ["BTC-USDT"])
    server.add_fault("/trading/orders", lambda call: detail(500, "Failed to place trade: boom"))
    server.calls.clear()
    with pytest.raises(OrderOutcomeUnknown) as info:
        await client.place_limit_order("binance", "BTC-USDT", "BUY", price=100, amount="0.01")
    assert isinstance(info.value.__cause__, ServerError)
    listed = [c.path for c in server.calls if c.path.startswith("/trading/orders/active")]
    assert len(listed) == 2  # two passes, as for a lost answer (was one)


# -- item 9: the wrapped connector failure is a rejection -----------------------------


async def test_item9_unexpected_error_placing_trade_is_order_rejected(
    client: Client,  # noqa: F811
    server: FakeServer,  # noqa: F811
) -> None:
    text = (
        "Unexpected error placing trade: BinanceExchange.__init__() missing 2 required "
        "positional arguments: 'binance_api_key' and 'binance_api_secret'"
    )
    server.add_fault("/trading/orders", lambda call: detail(500, text))
    with pytest.raises(OrderRejected) as info:
        await client.place_limit_order("binance", "BTC-USDT", "BUY", price=100, amount="0.01")
    assert info.value.reason == text
    assert info.value.status == 500 and info.value.request is not None
    assert [c.path for c in server.calls].count("/trading/orders") == 1  # not reconciled
    assert not any(c.path.startswith("/trading/orders/active") for c in server.calls)


# -- item 12: get_ticker errors name get_ticker; a trading-rules 404 is cached ----------


async def test_item12_get_ticker_error_names_the_call_made(
    client: Client,  # noqa: F811
    server: FakeServer,  # noqa: F811
) -> None:
    server.tickers_supported = False  # the volume comes from /market-data/candles
    server.add_fault("/market-data/candles", lambda call: detail(500, "candles broke"))
    with pytest.raises(ServerError) as info:
        await client.get_ticker("binance", "BTC-USDT")
    text = str(info.value)
    assert "get_ticker('binance', 'BTC-USDT')" in text and "candles broke" in text
    assert "/market-data/candles" not in text and info.value.path is None
    assert info.value.status == 500


async def test_item12_trading_rules_404_is_cached(
    client: Client,  # noqa: F811
    server: FakeServer,  # noqa: F811
) -> None:
    for _ in range(3):  # the fake has no rules for "nosuch" (404) but takes orders
        await client.place_limit_order("nosuch", "BTC-USDT", "BUY", price=100, amount="1")
    assert [c.path for c in server.calls].count("/trading/orders") == 3
    rules = [c for c in server.calls if "/trading-rules" in c.path]
    assert len(rules) == 1  # asked once, not before every placement
