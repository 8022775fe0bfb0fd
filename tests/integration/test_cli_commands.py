"""Operator commands against the simulator over TLS (the real client, real sockets).

Each command runs through :func:`hbtrio.cli.main` in a worker thread (its own
``trio.run``) while the simulator serves in the test's event loop; a few run as
real subprocesses to check exit codes and output end to end.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import trio

from hbtrio.cli import main
from hbtrio.sim import SimInfo

KEY_FILE_MODE = 0o600


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, sim: SimInfo) -> SimInfo:
    monkeypatch.setenv("HBTRIO_API_KEY", sim.api_key)
    monkeypatch.setenv("HBTRIO_HOST", sim.host)
    monkeypatch.setenv("HBTRIO_PORT", str(sim.port))
    assert sim.ca_path is not None
    monkeypatch.setenv("HBTRIO_CA_FILE", sim.ca_path)
    monkeypatch.delenv("HBTRIO_TLS", raising=False)
    monkeypatch.setenv("HBTRIO_TIMEOUT", "3")
    monkeypatch.setenv("HBTRIO_RETRIES", "1")
    return sim


async def hb(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = await trio.to_thread.run_sync(main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


async def test_balances_and_book(env: SimInfo, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = await hb(capsys, "balances", "--exchange", "binance")
    assert (code, err) == (0, "")
    rows = {line.split()[2]: line.split() for line in out.splitlines()[2:]}
    assert rows["BTC"][3] == "10" and rows["USDT"][3] == "1000000"

    code, out, _ = await hb(capsys, "balances", "--json")
    assert code == 0
    assert {(b["exchange"], b["asset"]) for b in json.loads(out)} >= {("binance", "BTC")}

    code, out, err = await hb(capsys, "book", "binance", "BTC-USDT", "--depth", "3")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("binance BTC-USDT")
    assert len(lines) == 2 + 3 + 1  # title, header, rule, 3 levels
    bid, ask = lines[3].split()[1], lines[3].split()[2]
    assert float(bid) < float(ask)

    code, out, _ = await hb(capsys, "book", "binance", "BTC-USDT", "--json", "-d", "2")
    book = json.loads(out)
    assert code == 0 and len(book["bids"]) == 2 and len(book["asks"]) == 2


async def test_place_list_cancel(env: SimInfo, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = await hb(
        capsys, "place", "binance", "BTC-USDT", "buy", "0.01", "--price", "50000", "--json"
    )
    assert code == 0, err
    order = json.loads(out)
    order_id = order["order_id"]
    assert order["price"] == "50000" and order["side"] == "BUY"
    assert [entry.order_id for entry in env.state.order_log] == [order_id]

    code, out, _ = await hb(capsys, "orders", "--market", "BTC-USDT")
    assert code == 0 and order_id in out

    code, out, _ = await hb(
        capsys, "cancel", order_id, "--exchange", "binance", "--market", "BTC-USDT"
    )
    assert code == 0 and out.strip() == f"cancel requested: {order_id}"

    for _ in range(3):
        await hb(capsys, "place", "binance", "BTC-USDT", "sell", "0.01", "-p", "65000")
    code, out, _ = await hb(capsys, "cancel", "--all", "--exchange", "binance", "--json")
    assert code == 0 and len(json.loads(out)["cancelled"]) == 3

    code, out, _ = await hb(capsys, "orders", "--history", "--json")
    assert code == 0
    history = json.loads(out)
    assert order_id in {o["order_id"] for o in history}
    assert len(history) == 4


async def test_market_order_and_rejections(
    env: SimInfo, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = await hb(capsys, "place", "binance", "BTC-USDT", "buy", "0.01", "--wait")
    assert code == 0, err
    assert "MARKET" in out

    code, out, err = await hb(
        capsys, "place", "binance", "BTC-USDT", "buy", "1000", "-p", "59000", "--wait"
    )
    assert code == 1 and out == ""
    assert err.startswith("hbtrio place: ") and "nsufficient" in err
    assert len(err.splitlines()) == 1

    code, _, err = await hb(capsys, "place", "binance", "NOPE-USDT", "buy", "1", "-p", "1")
    assert code in (1, 2) and err.startswith("hbtrio place: ") and len(err.splitlines()) == 1

    code, _, err = await hb(capsys, "cancel", "no-such-order", "-e", "binance", "-m", "BTC-USDT")
    assert code == 1 and err.startswith("hbtrio cancel: ")


@pytest.mark.parametrize(
    ("argv", "code", "error"),
    [
        # refused by the client before any request (exit 2)
        (
            ["book", "binance", "BTCUSDT"],
            2,
            "hbtrio book: error: argument MARKET: 'BTCUSDT': "
            "must be a trading pair like 'BTC-USDT'",
        ),
        (
            ["book", "binance", "BTC-USDT", "--depth", "5000"],
            2,
            "hbtrio book: invalid argument 'depth': must be an int in 1..1000",
        ),
        (
            ["orders", "--market", "nope"],
            2,
            "hbtrio orders: error: argument --market/-m: 'nope': "
            "must be a trading pair like 'BTC-USDT'",
        ),
        (
            ["orders", "--exchange", "bin ance"],
            2,
            "hbtrio orders: error: argument --exchange/-e: 'bin ance': ",
        ),
        (
            ["balances", "--exchange", "bin ance"],
            2,
            "hbtrio balances: error: argument --exchange/-e: 'bin ance': ",
        ),
        (
            ["balances", "--account", "gh ost"],
            2,
            "hbtrio balances: error: argument --account: 'gh ost': ",
        ),
        # refused by the server (exit 1)
        (
            ["book", "binance", "DOGE-USDT"],
            1,
            "hbtrio book: not found: Trading pair 'DOGE-USDT' not found on binance. "
            "Available pairs: BTC-USDT, ETH-USDT [HTTP 404]",
        ),
        (
            ["book", "nosuch", "BTC-USDT"],
            1,
            "hbtrio book: not found: Connector 'nosuch' not found [HTTP 404]",
        ),
    ],
)
async def test_read_commands_with_bad_arguments(
    env: SimInfo, capsys: pytest.CaptureFixture[str], argv: list[str], code: int, error: str
) -> None:
    before = Counter(env.state.requests)
    got, out, err = await hb(capsys, *argv)
    assert (got, out) == (code, "")
    assert len(err.splitlines()) == 1 and err.endswith("\n")
    assert err.startswith(error)
    assert "Traceback" not in err and env.api_key not in err
    sent = Counter(env.state.requests) - before
    # An invalid argument never reaches the server, a refused one did, once. (The
    # client's order tracker polls orders/active at start: no marker for "orders".)
    operation = {
        "book": ("POST", "/market-data/order-book"),
        "balances": ("POST", "/portfolio/state"),
    }.get(argv[0])
    if operation is not None:
        assert sent[operation] == (0 if code == 2 else 1)


async def test_wrong_credentials_exit_3(
    env: SimInfo, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HBTRIO_API_KEY", "admin:not-the-password")
    code, out, err = await hb(capsys, "balances")
    assert code == 3 and out == ""
    assert err.startswith("hbtrio balances: ") and len(err.splitlines()) == 1
    assert "not-the-password" not in err


async def test_key_file(
    env: SimInfo,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.delenv("HBTRIO_API_KEY")
    key = tmp_path / "key"
    key.write_text(env.api_key + "\n")
    os.chmod(key, KEY_FILE_MODE)
    code, _, err = await hb(capsys, "balances", "--api-key-file", str(key))
    assert code == 0, err


async def test_untrusted_certificate_fails(
    env: SimInfo, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HBTRIO_CA_FILE")
    code, _, err = await hb(capsys, "balances", "--retries", "0")
    assert code == 4
    assert err.startswith("hbtrio balances: ") and len(err.splitlines()) == 1


async def test_unreachable_server_fails_within_the_bound(
    env: SimInfo, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    start = time.monotonic()
    code, _, err = await hb(
        capsys, "balances", "--port", str(port), "--timeout", "1", "--retries", "1"
    )
    elapsed = time.monotonic() - start
    assert code == 4
    assert err.startswith("hbtrio balances: ") and len(err.splitlines()) == 1
    assert elapsed < 2 * 1 * 2 + 2.0 * 1 + 1.0 + 1.0


async def test_as_a_subprocess(env: SimInfo) -> None:
    result = await trio.run_process(
        [sys.executable, "-m", "hbtrio", "book", "binance", "ETH-USDT", "--depth", "2", "--json"],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["market"] == "ETH-USDT"
    result = await trio.run_process(
        [sys.executable, "-m", "hbtrio", "balances", "--api-key", env.api_key],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    assert result.returncode == 2 and env.api_key.encode() not in result.stderr


async def test_demo_runs_and_exits_0() -> None:
    start = time.monotonic()
    result = await trio.run_process(
        [sys.executable, "-m", "hbtrio", "demo", "--seconds", "3"],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    elapsed = time.monotonic() - start
    out = result.stdout.decode()
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    for marker in (
        "== balances",
        "== order book binance BTC-USDT",
        "cancel requested",
        "book ",
        "demo finished",
    ):
        assert marker in out
    assert "order " in out or "fill " in out
    assert elapsed < 30
