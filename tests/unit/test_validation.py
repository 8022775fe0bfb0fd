"""Input validators: accept real names, refuse anything injectable, only InputValidationError."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hbtrio import InputValidationError, OrderType, Side
from hbtrio import _validation as v

REAL_EXCHANGES = [
    "binance",
    "binance_perpetual",
    "kucoin",
    "gate_io",
    "jupiter/router",
    "uniswap/amm",
]
REAL_MARKETS = ["BTC-USDT", "1000PEPE-USDT", "ETH-USDC", "WETH.e-USDC", "BTC-USD-PERP", "SOL-USDT"]
INJECTIONS = [
    "",
    "..",
    "../etc",
    "binance/../x",
    "a b",
    "a\tb",
    "a\nb",
    "a\x00b",
    "a'b",
    'a"b',
    "a%2Fb",
    "a?b",
    "a#b",
    "a&b",
    "a;b",
    "a\\b",
    "a/b/c",
    "/binance",
    "binance/",
    "a" * 200,
]
ANY_JUNK = st.one_of(
    st.none(),
    st.integers(),
    st.floats(),
    st.text(),
    st.binary(),
    st.booleans(),
    st.lists(st.text()),
)


@pytest.mark.parametrize("name", REAL_EXCHANGES)
def test_real_exchange_names_pass(name: str) -> None:
    assert v.check_exchange(name) == name


@pytest.mark.parametrize("name", REAL_MARKETS)
def test_real_markets_pass(name: str) -> None:
    assert v.check_market(name) == name


@pytest.mark.parametrize("bad", INJECTIONS)
def test_injections_refused_everywhere(bad: str) -> None:
    for check in (v.check_market, v.check_account, v.check_order_id):
        with pytest.raises(InputValidationError):
            check(bad)


@pytest.mark.parametrize("bad", ["BTC", "BTC--USDT", "-BTC-USDT", "BTC-USDT-", "BTC..X-USDT"])
def test_malformed_pairs_refused(bad: str) -> None:
    with pytest.raises(InputValidationError, match="trading pair"):
        v.check_market(bad)


@pytest.mark.parametrize("bad", INJECTIONS)
def test_injections_refused_for_exchange(bad: str) -> None:
    with pytest.raises(InputValidationError) as info:
        v.check_exchange(bad)
    assert info.value.argument == "exchange"


_URL_META = set(" \t\r\n\x00'\"%?#&;\\<>`{}|^")


@given(st.text(max_size=80))
def test_accepted_identifiers_are_path_safe(text: str) -> None:
    for check in (v.check_exchange, v.check_market, v.check_account, v.check_order_id):
        try:
            check(text)
        except InputValidationError:
            continue
        assert ".." not in text
        assert not (_URL_META & set(text))
        assert all(c.isascii() for c in text)


@given(ANY_JUNK)
def test_validators_raise_only_input_validation_error(value: Any) -> None:
    checks = [
        v.check_exchange,
        v.check_market,
        v.check_account,
        v.check_order_id,
        v.check_interval,
        lambda x: v.check_positive_decimal(x, "amount"),
        lambda x: v.check_range(x, "depth"),
        lambda x: v.check_enum(x, Side, "side"),
        lambda x: v.to_epoch_seconds(x, "start"),
        lambda x: v.check_markets(x),
    ]
    for check in checks:
        try:
            check(value)
        except InputValidationError as exc:
            assert isinstance(exc, ValueError)
            assert exc.argument


@given(st.decimals(min_value=Decimal("1e-18"), max_value=Decimal("1e29"), allow_nan=False))
def test_positive_decimals_accepted(value: Decimal) -> None:
    assert v.check_positive_decimal(value, "price") == value
    assert v.check_positive_decimal(str(value), "price") == value


@pytest.mark.parametrize(
    "bad",
    [0, -1, Decimal("NaN"), Decimal("Infinity"), math.inf, math.nan, True, "abc", None, 1e31, [1]],
)
def test_bad_amounts_refused(bad: object) -> None:
    with pytest.raises(InputValidationError) as info:
        v.check_positive_decimal(bad, "amount")
    assert info.value.argument == "amount"


def test_float_amounts_use_shortest_repr() -> None:
    assert v.check_positive_decimal(0.1, "amount") == Decimal("0.1")
    assert v.check_positive_decimal(5, "amount") == Decimal(5)


@given(st.integers(1, 1000))
def test_range_accepts(n: int) -> None:
    assert v.check_range(n, "limit") == n


@pytest.mark.parametrize("bad", [0, 1001, -5, True, 1.0, "10", None])
def test_range_refuses(bad: object) -> None:
    with pytest.raises(InputValidationError, match="limit"):
        v.check_range(bad, "limit")


def test_enum_accepts_members_values_and_names() -> None:
    assert v.check_enum(Side.BUY, Side, "side") is Side.BUY
    assert v.check_enum("buy", Side, "side") is Side.BUY
    assert v.check_enum(" SELL ", Side, "side") is Side.SELL
    assert v.check_enum("limit_maker", OrderType, "order_type") is OrderType.LIMIT_MAKER
    with pytest.raises(InputValidationError, match="BUY, SELL"):
        v.check_enum("hold", Side, "side")


@pytest.mark.parametrize("good", ["1m", "5m", "15m", "1h", "4h", "1d", "1w", "1M", "30s"])
def test_intervals(good: str) -> None:
    assert v.check_interval(good) == good


@pytest.mark.parametrize("bad", ["0m", "m", "1y", "1 m", "01m", "1m;", 1])
def test_bad_intervals(bad: object) -> None:
    with pytest.raises(InputValidationError):
        v.check_interval(bad)


def test_time_conversion() -> None:
    moment = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert v.to_epoch_seconds(moment, "start") == moment.timestamp()
    other_zone = moment.astimezone(timezone(timedelta(hours=5)))
    assert v.to_epoch_seconds(other_zone, "start") == moment.timestamp()
    assert v.to_epoch_seconds(1700000000, "start") == 1700000000.0
    assert v.to_epoch_seconds(None, "start") is None
    assert v.to_millis(1.5) == 1500
    assert v.to_millis(None) is None
    with pytest.raises(InputValidationError, match="aware"):
        v.to_epoch_seconds(datetime(2024, 1, 1), "start")
    for bad in (-1, math.inf, True, "2024-01-01", 1e12, 10**400):
        with pytest.raises(InputValidationError):
            v.to_epoch_seconds(bad, "end")


@given(st.floats(0, 4e9), st.floats(0, 4e9))
def test_time_range_order(a: float, b: float) -> None:
    if a <= b:
        assert v.check_time_range(a, b) == (a, b)
    else:
        with pytest.raises(InputValidationError, match="start"):
            v.check_time_range(a, b)


def test_markets_list() -> None:
    assert v.check_markets(None) is None
    assert v.check_markets(("BTC-USDT",)) == ["BTC-USDT"]
    with pytest.raises(InputValidationError, match="not a string"):
        v.check_markets("BTC-USDT")
    with pytest.raises(InputValidationError):
        v.check_markets(["BTC-USDT", "bad pair"])


offsets = st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23))


@given(st.datetimes(timezones=st.builds(timezone, offsets)))
def test_any_aware_datetime_is_converted_in_range_or_refused(moment: datetime) -> None:
    try:
        seconds = v.to_epoch_seconds(moment, "start")
    except InputValidationError as exc:
        assert exc.argument == "start"
        assert not 0 <= moment.timestamp() <= 32503680000
    else:
        assert seconds == moment.timestamp()
        assert seconds is not None and 0 <= seconds <= 32503680000


def test_a_datetime_whose_tzinfo_fails_is_an_input_error() -> None:
    class Broken(tzinfo):
        def utcoffset(self, dt: datetime | None) -> timedelta:
            raise RuntimeError("broken zone")

    with pytest.raises(InputValidationError):
        v.to_epoch_seconds(datetime(2024, 1, 1, tzinfo=Broken()), "start")
