"""Configurable user accounts of the simulator (no I/O)."""

from __future__ import annotations

import argparse
from decimal import Decimal

import pytest

from hbtrio.sim import DEFAULT_BALANCES, SimSettings
from hbtrio.sim.cli import add_arguments
from hbtrio.sim.liquidity import Simulation
from hbtrio.sim.server import check_accounts


def test_check_accounts_accepts_client_valid_names() -> None:
    assert check_accounts(["master_account"]) == ("master_account",)
    assert check_accounts(("bench_hbtrio", "bench-peer", "B9")) == (
        "bench_hbtrio",
        "bench-peer",
        "B9",
    )


@pytest.mark.parametrize(
    "bad", [[], ["a", "a"], ["bad name"], ["_lead"], ["x" * 65], ["__market_makers__"], "abc"]
)
def test_check_accounts_refuses(bad: list[str]) -> None:
    with pytest.raises(ValueError):
        check_accounts(bad)


def test_cli_option_parses_and_defaults() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert parser.parse_args([]).accounts == ("master_account",)
    assert parser.parse_args(["--accounts", "a, b"]).accounts == ("a", "b")
    with pytest.raises(SystemExit):
        parser.parse_args(["--accounts", "a,a"])


def test_settings_default_and_repr() -> None:
    assert SimSettings().accounts == ("master_account",)
    settings = SimSettings(api_key="u:secret", accounts=("a", "b"))
    assert "('a', 'b')" in repr(settings) and "secret" not in repr(settings)


def test_each_account_has_its_own_balances_and_orders() -> None:
    sim = Simulation(seed=1, accounts=("a", "b"), backfill_minutes=0)
    engine = sim.engine
    assert engine.accounts == ["a", "b"]
    for account in ("a", "b"):
        for connector in engine.pairs_by_connector:
            totals = {t: total for t, (total, _) in engine.balances(account, connector).items()}
            assert totals == dict(DEFAULT_BALANCES)
    order = engine.place(
        "a", "binance", "BTC-USDT", "BUY", "LIMIT", Decimal("0.001"), Decimal(40000)
    )
    assert order.account == "a"
    usdt_b = engine.balances("b", "binance")["USDT"]
    assert usdt_b[0] == usdt_b[1]  # nothing reserved on b
    assert engine.balances("a", "binance")["USDT"][1] < engine.balances("a", "binance")["USDT"][0]
    assert [o.account for o in engine.orders.values()] == ["a"]
