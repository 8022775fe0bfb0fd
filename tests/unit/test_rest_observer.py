"""The REST actor's request observer: every attempt reported, templated, free when unset."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio

from hbtrio import ClientConfig, ConnectionFailed, Side
from hbtrio._actors import rest as rest_module
from hbtrio._actors.rest import RestActor, endpoint_of
from hbtrio._client import open_client
from hbtrio._wire import rest as wire
from tests.unit.test_rest_fake import Call, FakeServer, FakeTransport, detail
from tests.unit.test_rest_unit import make_config as make_base_config

KEY = "admin:observer-secret-1"


def make_config(**kw: Any) -> ClientConfig:
    return make_base_config(**{"api_key": KEY, **kw})


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, float, str]] = []

    def __call__(self, method: str, endpoint: str, seconds: float, outcome: str) -> None:
        self.seen.append((method, endpoint, seconds, outcome))

    def calls(self) -> list[tuple[str, str, str]]:
        return [(m, e, o) for m, e, _, o in self.seen]


@pytest.mark.parametrize(
    ("request_", "template"),
    [
        (wire.build_server_info(), "/"),
        (wire.build_accounts(), "/accounts/"),
        (wire.build_connectors(), "/connectors/"),
        (
            wire.build_trading_rules("binance", ["BTC-USDT", "ETH-USDT"]),
            "/connectors/{connector}/trading-rules",
        ),
        (wire.build_trading_rules("jupiter/router"), "/connectors/{connector}/trading-rules"),
        (wire.build_order_types("kucoin"), "/connectors/{connector}/order-types"),
        (
            wire.build_cancel_order("acct_1", "binance", "HBOT-42"),
            "/trading/{account}/{connector}/orders/{order_id}/cancel",
        ),
        (wire.build_tickers("binance"), "/market-data/tickers/{connector}"),
        (wire.build_active_orders(), "/trading/orders/active"),
        (wire.build_portfolio_state(accounts=["a"]), "/portfolio/state"),
        (wire.build_order_book("binance", "BTC-USDT", 5), "/market-data/order-book"),
    ],
)
def test_endpoint_of_names_templates_without_ids(request_: Any, template: str) -> None:
    assert endpoint_of(request_.path) == template


async def test_every_request_of_the_client_is_observed() -> None:
    server = FakeServer()
    seen = Recorder()
    config = make_config()
    transport = FakeTransport(server)
    async with open_client(
        config, transport=transport, streaming=False, request_observer=seen
    ) as client:
        assert seen.calls() == [("GET", "/accounts/", "ok")]  # the start-up check
        order = await client.place_limit_order(
            "binance", "BTC-USDT", Side.BUY, price=100, amount="0.01"
        )
        await client.get_balances()
        await client.get_order_book("binance", "BTC-USDT", depth=5)
        await client.get_open_orders()
        await client.cancel_order(order.order_id, exchange="binance", market="BTC-USDT")
    calls = seen.calls()
    assert calls[1:] == [
        ("GET", "/connectors/{connector}/trading-rules", "ok"),
        ("POST", "/trading/orders", "ok"),
        ("POST", "/portfolio/state", "ok"),
        ("POST", "/market-data/order-book", "ok"),
        ("POST", "/trading/orders/active", "ok"),
        ("POST", "/trading/{account}/{connector}/orders/{order_id}/cancel", "ok"),
    ]
    # one observation per request the server saw, in order
    assert [(m, e) for m, e, _ in calls] == [(c.method, endpoint_of(c.path)) for c in server.calls]
    assert all(0.0 <= seconds < 1.0 for _, _, seconds, _ in seen.seen)
    assert not any(order.order_id in endpoint for _, endpoint, _, _ in seen.seen)


async def test_each_attempt_is_observed_with_its_outcome(autojump_clock: trio.abc.Clock) -> None:
    server = FakeServer()
    seen = Recorder()

    def refuse(call: Call) -> None:
        raise ConnectionFailed("refused", method=call.method, path=call.path, retryable=True)

    server.add_fault("/portfolio/state", lambda call: detail(503, "busy"))
    server.add_fault("/portfolio/state", refuse)
    async with open_client(
        make_config(), transport=FakeTransport(server), streaming=False, request_observer=seen
    ) as client:
        await client.get_balances()
        server.add_fault("/market-data/order-book", lambda call: detail(404, "no such market"))
        with pytest.raises(Exception, match="no such market"):
            await client.get_order_book("binance", "NOPE-USDT")
    assert seen.calls()[1:] == [
        ("POST", "/portfolio/state", "503"),
        ("POST", "/portfolio/state", "ConnectionFailed"),
        ("POST", "/portfolio/state", "ok"),
        ("POST", "/market-data/order-book", "404"),
    ]


async def test_a_failing_observer_does_not_fail_the_request(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(method: str, endpoint: str, seconds: float, outcome: str) -> None:
        raise RuntimeError("metrics bug")

    server = FakeServer()
    async with open_client(
        make_config(), transport=FakeTransport(server), streaming=False, request_observer=broken
    ) as client:
        order = await client.place_limit_order("binance", "BTC-USDT", "buy", price=100, amount=1)
    assert order.order_id in server.orders
    assert "request observer failed" in caplog.text


async def test_without_observer_no_clock_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_clock() -> float:
        raise AssertionError("perf_counter read without an observer")

    hbtrio_logger = logging.getLogger("hbtrio")
    monkeypatch.setattr(hbtrio_logger, "level", logging.INFO)  # the DEBUG path times itself
    hbtrio_logger.manager._clear_cache()  # type: ignore[attr-defined]
    actor = RestActor(make_config(), FakeTransport(FakeServer()))
    assert actor.observer is None
    monkeypatch.setattr(rest_module.time, "perf_counter", no_clock)
    assert await actor.call(wire.build_accounts(), wire.parse_str_list) == ["master_account"]
