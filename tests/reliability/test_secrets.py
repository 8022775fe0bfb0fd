"""Secret hygiene: the API key never shows in logs, reprs, exception texts or URLs.

Client operations (successful, failing and reconciling after faults) run with
DEBUG logging captured for the ``hbtrio`` logger and the root logger, through a
TLS-terminating fault proxy that also records every request target sent on the
wire. The distinctive key, its password part and its base64 forms must appear
nowhere.
"""

from __future__ import annotations

import logging
import traceback
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import trio

import hbtrio
from tests.faultproxy import Fault, FaultKind, FaultPlan, Trigger, open_fault_proxy
from tests.reliability._support import (
    SECRET_FORMS,
    SECRET_KEY,
    config_for,
    find_secret,
    open_client,
    start_sim,
    upstream_context,
)

WRONG_KEY = "soak-user:Wr0ng-S3cr3t-77"
FAST: dict[str, Any] = {
    "timeout": 1.0,
    "retries": 1,
    "reconnect_initial": 0.01,
    "reconnect_max": 0.05,
}


def _exception_texts(exc: BaseException) -> list[str]:
    texts = [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    texts += [repr(a) for a in exc.args]
    for name in ("detail", "path", "message", "excerpt", "reason", "request", "candidates"):
        if hasattr(exc, name):
            texts.append(repr(getattr(exc, name)))
    seen = {id(exc)}
    nxt = exc.__cause__ or exc.__context__
    while nxt is not None and id(nxt) not in seen:
        seen.add(id(nxt))
        texts += [str(nxt), repr(nxt)]
        nxt = nxt.__cause__ or nxt.__context__
    return texts


def _assert_clean(texts: list[str], where: str) -> None:
    for text in texts:
        found = find_secret(text)
        assert found is None, f"secret form {found!r} leaked in {where}: {text[:300]!r}"


async def test_no_secret_in_logs_reprs_errors_or_urls(
    nursery: trio.Nursery, cert_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="hbtrio")
    info = await start_sim(nursery, cert_dir, error_rate=0.05, seed=3)
    plan = FaultPlan(
        Fault(
            FaultKind.RESET,
            Trigger.REQUEST_SENT,
            method="POST",
            path="/trading/orders",
            wait_response=True,
            every=2,
        ),
        Fault(FaultKind.RESET, Trigger.RESPONSE_PARTIAL, path="/portfolio/state", limit=1),
    )
    errors: list[BaseException] = []
    objects: list[object] = []
    async with open_fault_proxy(
        info.host,
        info.port,
        tls_terminate=True,
        upstream_ssl=upstream_context(info),
        seed=11,
        plan=plan,
    ) as proxy:
        assert proxy.ca_path is not None
        config = config_for("127.0.0.1", proxy.port, proxy.ca_path, **FAST)
        objects += [config, config.base_url, config.ws_url, config.authorization[:6]]
        assert config.authorization[:6] == "Basic "  # the secret is only in this property

        async def attempt(fn: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                result = await fn(*args, **kwargs)
            except hbtrio.HbtrioError as exc:
                errors.append(exc)
                return None
            objects.append(result)
            return result

        async with open_client(config) as client:
            objects.append(client)
            await attempt(client.server_info)
            await attempt(client.get_accounts)
            await attempt(client.get_exchanges)
            await attempt(client.get_balances)
            await attempt(client.get_balances, refresh=True)
            await attempt(client.get_trading_rules, "binance")
            await attempt(client.get_order_book, "binance", "BTC-USDT", depth=5)
            await attempt(client.get_ticker, "binance", "BTC-USDT")
            await attempt(client.get_candles, "binance", "BTC-USDT", interval="1m", limit=5)
            placed = []
            for i in range(6):
                order = await attempt(
                    client.place_limit_order,
                    "binance",
                    "BTC-USDT",
                    hbtrio.Side.BUY,
                    price=Decimal("50000") + i,
                    amount=Decimal("0.001"),
                )
                if order is not None:
                    placed.append(order)
            for order in placed:
                await attempt(
                    client.cancel_order, order.order_id, exchange="binance", market="BTC-USDT"
                )
            await attempt(
                client.cancel_order, "no-such-order", exchange="binance", market="BTC-USDT"
            )
            await attempt(client.get_order, "no-such-order")
            await attempt(client.get_open_orders)
            await attempt(client.get_order_history, limit=5)
            await attempt(client.get_trades, limit=5)
            await attempt(client.place_limit_order, "binance", "BTC-USDT", "UP", price=1, amount=1)
            await attempt(client.place_market_order, "binance", "NOPE-PAIR", "BUY", amount=1)
            await attempt(client.get_order_book, "nosuchexchange", "BTC-USDT")
            if hasattr(client, "subscribe_order_book"):
                async with client.subscribe_order_book("binance", "BTC-USDT", depth=5) as books:
                    with trio.fail_after(10):
                        objects.append(await books.__anext__())
        objects.append(client)

        # Wrong credentials, unreachable server and an untrusted certificate.
        for bad in (
            config_for("127.0.0.1", proxy.port, proxy.ca_path, api_key=WRONG_KEY, **FAST),
            config_for("127.0.0.1", 1, proxy.ca_path, **FAST),
            config_for(info.host, info.port, None, **FAST),
        ):
            with trio.fail_after(15):
                try:
                    async with open_client(bad):
                        pass
                except hbtrio.HbtrioError as exc:
                    errors.append(exc)
            objects.append(bad)
        # The secret never travelled in a URL (query or path).
        _assert_clean([f"{m} {p}" for m, p in proxy.requests], "request targets")
        assert proxy.requests[("POST", "/trading/orders")] >= 6

    # Invalid configurations name the field, not the value.
    good = config_for("127.0.0.1", 8000, None)
    for bad_kwargs in ({"port": 0}, {"timeout": -1}, {"host": "http://x/"}, {"nope": 1}):
        try:
            good.replace(**bad_kwargs)
        except hbtrio.ConfigError as exc:
            errors.append(exc)
    try:
        hbtrio.ClientConfig(host="127.0.0.1", port=8000, api_key=SECRET_KEY + "\n")
    except hbtrio.ConfigError as exc:
        errors.append(exc)

    error_types = {type(e).__name__ for e in errors}
    assert {"AuthenticationFailed", "ConnectionFailed", "ConfigError"} <= error_types, error_types
    assert any(isinstance(e, hbtrio.OrderError) for e in errors), error_types
    for error in errors:
        _assert_clean(_exception_texts(error), f"exception {type(error).__name__}")
    for obj in objects:
        _assert_clean([repr(obj), str(obj)], f"repr of {type(obj).__name__}")
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    assert caplog.records, "expected DEBUG records from hbtrio"
    assert any(r.name.startswith("hbtrio") for r in caplog.records)
    for record in caplog.records:
        texts = [record.getMessage(), formatter.format(record), repr(record.args)]
        _assert_clean(texts, f"log record of {record.name}")
    # Sanity: the check itself can see the secret where it is expected.
    assert find_secret(SECRET_KEY) == SECRET_FORMS[0]
    assert find_secret(config.authorization) is not None
