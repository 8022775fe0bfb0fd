"""Operator commands against a fake client: output, --json, usage errors, error mapping."""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import trio

import hbtrio
from hbtrio import cli
from hbtrio._errors import (
    AuthenticationFailed,
    ConnectionFailed,
    InputValidationError,
    InsufficientFunds,
    OrderNotFound,
)
from hbtrio.models import (
    Balance,
    Level,
    Order,
    OrderBook,
    OrderRequest,
    OrderStatus,
    OrderType,
    Page,
    Side,
)

KEY = "operator:very-secret-password"
BASE = ["--host", "127.0.0.1", "--port", "8000", "--no-tls"]


def order(i: int, status: OrderStatus = OrderStatus.OPEN) -> Order:
    return Order(
        order_id=f"ord-{i}",
        account="master_account",
        exchange="binance",
        market="BTC-USDT",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        amount=Decimal("0.010"),
        price=Decimal("59000.50"),
        status=status,
        created_at=1700000000.0 + i,
    )


class FakeClient:
    def __init__(self, fail: BaseException | None = None) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.fail = fail

    def _record(self, name: str, *args: Any, **kwargs: Any) -> None:
        self.calls.append((name, args, kwargs))
        if self.fail is not None:
            raise self.fail

    async def get_balances(self, **kw: Any) -> list[Balance]:
        self._record("get_balances", **kw)
        return [
            Balance(
                account="master_account",
                exchange="binance",
                asset=asset,
                total=Decimal(total),
                available=Decimal(total),
            )
            for asset, total in (("USDT", "1000000"), ("BTC", "10.5"))
        ]

    async def get_order_book(self, exchange: str, market: str, depth: int = 20) -> OrderBook:
        self._record("get_order_book", exchange, market, depth=depth)
        return OrderBook(
            exchange=exchange,
            market=market,
            bids=tuple(Level(price=Decimal(100 - i), amount=Decimal("1.5")) for i in range(depth)),
            asks=tuple(Level(price=Decimal(101 + i), amount=Decimal("2")) for i in range(depth)),
            timestamp=1700000000.0,
        )

    async def get_open_orders(self, **kw: Any) -> list[Order]:
        self._record("get_open_orders", **kw)
        return [order(1), order(2)]

    async def get_order_history(self, **kw: Any) -> Page[Order]:
        self._record("get_order_history", **kw)
        if kw.get("cursor") is None:
            return Page(items=(order(1, OrderStatus.FILLED),), next_cursor="c2", has_more=True)
        return Page(items=(order(2, OrderStatus.CANCELLED),), next_cursor=None, has_more=False)

    async def place_order(self, exchange: str, market: str, side: Side, **kw: Any) -> Order:
        self._record("place_order", exchange, market, side, **kw)
        return order(9)

    async def cancel_order(self, order_id: str, **kw: Any) -> None:
        self._record("cancel_order", order_id, **kw)

    async def cancel_all_orders(self, **kw: Any) -> list[str]:
        self._record("cancel_all_orders", **kw)
        return ["ord-1", "ord-2"]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeClient:
    client = FakeClient()
    configs: list[hbtrio.ClientConfig] = []

    @asynccontextmanager
    async def open_client(config: hbtrio.ClientConfig) -> AsyncIterator[FakeClient]:
        configs.append(config)
        yield client

    monkeypatch.setattr(hbtrio, "open_client", open_client, raising=False)
    monkeypatch.setenv("HBTRIO_API_KEY", KEY)
    for name in ("HBTRIO_HOST", "HBTRIO_PORT", "HBTRIO_CA_FILE", "HBTRIO_TLS"):
        monkeypatch.delenv(name, raising=False)
    client.configs = configs  # type: ignore[attr-defined]
    return client


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_balances_table_and_json(fake: FakeClient, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "balances", *BASE, "--exchange", "binance")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == ["ACCOUNT", "EXCHANGE", "ASSET", "TOTAL", "AVAILABLE"]
    assert lines[2].split() == ["master_account", "binance", "BTC", "10.5", "10.5"]
    assert lines[3].split() == ["master_account", "binance", "USDT", "1000000", "1000000"]
    assert lines[2].endswith("10.5")  # numbers right-aligned
    assert fake.calls[0] == ("get_balances", (), {"exchange": "binance", "refresh": False})
    config = fake.configs[0]  # type: ignore[attr-defined]
    assert (config.host, config.port, config.tls, config.api_key) == ("127.0.0.1", 8000, False, KEY)

    code, out, _ = run(capsys, "balances", *BASE, "--json")
    data = json.loads(out)
    assert code == 0
    assert {b["asset"]: b["total"] for b in data} == {"BTC": "10.5", "USDT": "1000000"}


def test_book(fake: FakeClient, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "book", "binance", "BTC-USDT", "--depth", "3", *BASE)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("binance BTC-USDT  2023-11-14 22:13:20 UTC  spread 1")
    assert lines[1].split() == ["BID", "SIZE", "BID", "ASK", "ASK", "SIZE"]
    assert lines[3].split() == ["1.5", "100", "101", "2"]
    assert len(lines) == 6
    code, out, _ = run(capsys, "book", "binance", "BTC-USDT", "-d", "2", *BASE, "--json")
    data = json.loads(out)
    assert data["bids"] == [{"price": "100", "amount": "1.5"}, {"price": "99", "amount": "1.5"}]


def test_orders_open_and_history(fake: FakeClient, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "orders", *BASE, "--market", "BTC-USDT")
    assert code == 0
    assert out.splitlines()[0].split()[:3] == ["ORDER", "ID", "EXCHANGE"]
    assert "ord-1" in out and "ord-2" in out and "OPEN" in out
    assert fake.calls[-1] == ("get_open_orders", (), {"exchange": None, "market": "BTC-USDT"})

    code, out, _ = run(capsys, "orders", *BASE, "--history", "--status", "filled", "--json")
    assert code == 0
    data = json.loads(out)
    assert [o["order_id"] for o in data] == ["ord-1", "ord-2"]
    history_calls = [c for c in fake.calls if c[0] == "get_order_history"]
    assert history_calls[0][2]["status"] == "FILLED"
    assert history_calls[1][2]["cursor"] == "c2"

    code, _, err = run(capsys, "orders", *BASE, "--status", "OPEN")
    assert code == 2 and "needs --history" in err


def test_place(fake: FakeClient, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "place", "binance", "BTC-USDT", "buy", "0.01", "-p", "59000", *BASE)
    assert code == 0 and "ord-9" in out
    _, args, kwargs = fake.calls[-1]
    assert args == ("binance", "BTC-USDT", Side.BUY)
    assert kwargs["amount"] == Decimal("0.01") and kwargs["price"] == Decimal("59000")
    # waiting for acceptance is the default; --no-wait is fire-and-forget
    assert kwargs["order_type"] is OrderType.LIMIT and kwargs["wait_accepted"] is True
    code, _, _ = run(
        capsys, "place", "binance", "BTC-USDT", "buy", "0.01", "-p", "1", "--no-wait", *BASE
    )
    assert code == 0 and fake.calls[-1][2]["wait_accepted"] is False

    code, out, _ = run(capsys, "place", "binance", "BTC-USDT", "SELL", "1", *BASE, "--json")
    assert code == 0 and json.loads(out)["order_id"] == "ord-9"
    market_kwargs: dict[str, Any] = fake.calls[-1][2]
    assert market_kwargs["order_type"] is OrderType.MARKET
    assert fake.calls[-1][1][2] is Side.SELL

    code, _, _ = run(
        capsys,
        "place",
        "binance",
        "BTC-USDT",
        "buy",
        "1",
        "--type",
        "limit_maker",
        "-p",
        "5",
        "--wait",
        *BASE,
    )
    assert code == 0
    maker_kwargs: dict[str, Any] = fake.calls[-1][2]
    assert maker_kwargs["order_type"] is OrderType.LIMIT_MAKER
    assert maker_kwargs["wait_accepted"] is True


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["buy", "0.01", "--type", "limit"], "needs --price"),
        (["buy", "0.01", "--type", "market", "--price", "3"], "takes no --price"),
        (["buy", "-1"], "must be a number > 0"),
        (["buy", "abc"], "not a decimal number"),
        (["hold", "1"], "invalid choice"),
        (["buy", "1", "--type", "stop"], "invalid choice"),
        (["buy", "NaN"], "must be a number > 0"),
    ],
)
def test_place_usage_errors(
    fake: FakeClient, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, "place", "binance", "BTC-USDT", *argv, *BASE)
    assert code == 2
    assert message in err and out == ""
    assert "Traceback" not in err
    assert fake.calls == []


def test_cancel(fake: FakeClient, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "cancel", "ord-1", "-e", "binance", "-m", "BTC-USDT", *BASE)
    assert code == 0 and out.strip() == "cancel requested: ord-1"
    name, args, kwargs = fake.calls[-1]
    assert (name, args, kwargs) == (
        "cancel_order",
        ("ord-1",),
        {"exchange": "binance", "market": "BTC-USDT"},
    )
    # without --exchange/--market the client looks the order up
    code, out, _ = run(capsys, "cancel", "ord-1", *BASE)
    assert code == 0 and out.strip() == "cancel requested: ord-1"
    assert fake.calls[-1] == ("cancel_order", ("ord-1",), {"exchange": None, "market": None})
    code, out, _ = run(capsys, "cancel", "--all", "--exchange", "binance", *BASE, "--json")
    assert code == 0 and json.loads(out) == {"cancelled": ["ord-1", "ord-2"]}
    name, args, kwargs = fake.calls[-1]
    assert (name, args, kwargs) == (
        "cancel_all_orders",
        (),
        {"exchange": "binance", "market": None},
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "give ORDER_ID"),
        (["ord-1", "--all"], "not both"),
    ],
)
def test_cancel_usage_errors(
    fake: FakeClient, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, _, err = run(capsys, "cancel", *argv, *BASE)
    assert code == 2 and message in err
    assert fake.calls == []


REQUEST = OrderRequest(
    account="master_account",
    exchange="binance",
    market="BTC-USDT",
    side=Side.BUY,
    order_type=OrderType.MARKET,
    amount=Decimal(1),
)


@pytest.mark.parametrize(
    ("error", "code", "words"),
    [
        (AuthenticationFailed("Incorrect username or password", status=401), 3, "Incorrect"),
        (ConnectionFailed("cannot connect to 127.0.0.1:8000: refused"), 4, "cannot connect"),
        (
            InsufficientFunds("Insufficient balance: need 60000 USDT", request=REQUEST),
            1,
            "Insufficient balance",
        ),
        (OrderNotFound("order ord-7 not found", request=None), 1, "not found"),
        (InputValidationError("market", "must look like BASE-QUOTE"), 2, "BASE-QUOTE"),
        (RuntimeError(f"leaked {KEY}"), 1, "RuntimeError: leaked ***"),
    ],
)
def test_errors_are_one_line_with_an_exit_code(
    fake: FakeClient,
    capsys: pytest.CaptureFixture[str],
    error: BaseException,
    code: int,
    words: str,
) -> None:
    fake.fail = error
    got, out, err = run(capsys, "place", "binance", "BTC-USDT", "buy", "1", *BASE)
    assert got == code
    assert out == ""
    assert err.startswith("hbtrio place: ") and words in err
    assert len(err.splitlines()) == 1
    assert KEY not in err and "Traceback" not in err


def test_key_comes_from_env_or_a_private_file(
    fake: FakeClient,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.delenv("HBTRIO_API_KEY")
    code, _, err = run(capsys, "balances", *BASE)
    assert code == 2 and "HBTRIO_API_KEY" in err and "--api-key-file" in err

    key_file = tmp_path / "key"
    key_file.write_text("filed:key-from-file\n")
    os.chmod(key_file, 0o644)
    code, _, err = run(capsys, "balances", *BASE, "--api-key-file", str(key_file))
    assert code == 2 and "chmod 600" in err and "key-from-file" not in err

    os.chmod(key_file, 0o600)
    code, _, _ = run(capsys, "balances", *BASE, "--api-key-file", str(key_file))
    assert code == 0
    assert fake.configs[-1].api_key == "filed:key-from-file"  # type: ignore[attr-defined]

    for flag in (["--api-key", "x:flagged-secret"], ["--api-key=x:flagged-secret"], ["--api-key"]):
        code, _, err = run(capsys, "balances", *flag, *BASE)
        assert code == 2 and "never taken from the command line" in err
        assert "flagged-secret" not in err
    code, _, err = run(capsys, "balances", "--api-key-f", str(key_file), *BASE)
    assert code == 2 and "unrecognized arguments" in err  # no abbreviations


def test_config_from_environment(
    fake: FakeClient, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HBTRIO_HOST", "10.0.0.5")
    monkeypatch.setenv("HBTRIO_PORT", "8443")
    code, _, _ = run(capsys, "balances", "--timeout", "1.5", "--retries", "0")
    assert code == 0
    config = fake.configs[-1]  # type: ignore[attr-defined]
    assert (config.host, config.port, config.tls, config.timeout, config.retries) == (
        "10.0.0.5",
        8443,
        True,
        1.5,
        0,
    )
    monkeypatch.setenv("HBTRIO_PORT", "eighty")
    code, _, err = run(capsys, "balances")
    assert code == 2 and "HBTRIO_PORT" in err
    code, _, err = run(capsys, "balances", "--port", "70000")
    assert code == 2 and "1..65535" in err


def test_a_hanging_server_fails_within_the_time_bound(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    @asynccontextmanager
    async def open_client(config: hbtrio.ClientConfig) -> AsyncIterator[None]:
        await trio.sleep(3600)
        yield None

    monkeypatch.setattr(hbtrio, "open_client", open_client, raising=False)
    monkeypatch.setenv("HBTRIO_API_KEY", KEY)
    start = time.monotonic()
    code, _, err = run(capsys, "balances", *BASE, "--timeout", "0.05", "--retries", "0")
    elapsed = time.monotonic() - start
    assert code == 4
    assert err.strip() == "hbtrio balances: the server did not answer in time"
    assert elapsed < 5.0


@pytest.mark.parametrize(
    ("argv", "prefix", "message"),
    [
        (["book", "binance", "BTC-USDT", "--depth", "0"], "hbtrio book", "must be >= 1: 0"),
        (["book", "binance", "BTC-USDT", "-d", "ten"], "hbtrio book", "not an integer: 'ten'"),
        (["book", "binance"], "hbtrio book", "the following arguments are required: MARKET"),
        (["book"], "hbtrio book", "the following arguments are required: EXCHANGE, MARKET"),
        (["book", "binance", "BTC-USDT", "--port", "0"], "hbtrio book", "must be >= 1: 0"),
        (["orders", "--limit", "0"], "hbtrio orders", "must be >= 1: 0"),
        (["orders", "--limit", "-5"], "hbtrio orders", "must be >= 1: -5"),
        (["orders", "--history", "--status", "bogus"], "hbtrio orders", "invalid choice: 'BOGUS'"),
        (["orders", "--status", "open"], "hbtrio orders", "--status needs --history"),
        (["orders", "--timeout", "soon"], "hbtrio orders", "not a number: 'soon'"),
        (["balances", "--exchange"], "hbtrio balances", "expected one argument"),
        (["balances", "--timeout", "-1"], "hbtrio balances", "must be a finite number >= 0"),
        (["balances", "binance"], "hbtrio", "unrecognized arguments: binance"),
        (["balances", "--refresh=yes"], "hbtrio balances", "ignored explicit argument 'yes'"),
    ],
)
def test_read_commands_usage_errors(
    fake: FakeClient,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    prefix: str,
    message: str,
) -> None:
    code, out, err = run(capsys, *argv, *BASE)
    assert code == 2
    assert out == "" and "Traceback" not in err
    lines = err.splitlines()
    # one error line, naming the command; argparse may precede it with its usage block
    errors = [line for line in lines if line.startswith(prefix + ":")]
    assert len(errors) == 1 and errors[0] == lines[-1]
    assert message in errors[0]
    assert all(line.startswith(("usage:", " ")) for line in lines[:-1])
    assert fake.calls == []  # nothing was asked of the server


@pytest.mark.parametrize(
    "argv",
    [
        ["book", "binance", "BTC/USDT?x=1"],
        ["book", "bin ance", "BTC-USDT"],
        ["orders", "--market", "../etc"],
        ["orders", "--exchange", "a\x00b"],
        ["balances", "--exchange", "binance;rm"],
        ["place", "binance", "BTC-USDT'", "buy", "0.01"],
        ["cancel", "a b", "--exchange", "binance", "--market", "BTC-USDT"],
        ["cancel", "--all", "--exchange", "x/../y"],
        ["balances", "--account", "bad account"],
        ["book", "binance", "BTC-USDT", "--depth", "0"],
        ["nonsense"],
    ],
)
def test_bad_arguments_are_one_line_before_any_io(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # No server anywhere: a bad argument must be refused while parsing.
    monkeypatch.setenv("HBTRIO_HOST", "127.0.0.1")
    monkeypatch.setenv("HBTRIO_PORT", "1")
    monkeypatch.setenv("HBTRIO_API_KEY", "admin:never-used")
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    assert "error:" in err and "usage:" not in err and "Traceback" not in err
    assert "never-used" not in err
