"""Matching-engine unit and property tests (no I/O)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hbtrio.sim.engine import (
    BTC_USDT_RULE,
    DEFAULT_BALANCES,
    Engine,
    MarketSpec,
    RequestRejected,
    quantize_down,
)
from hbtrio.sim.liquidity import Simulation

D = Decimal
SPEC = MarketSpec("binance", "BTC-USDT", D(60000), BTC_USDT_RULE, D(1))
ACCOUNTS = ("alice", "bob")


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        self.now += 0.001
        return self.now


def make_engine() -> Engine:
    return Engine([SPEC], accounts=ACCOUNTS, clock=Clock())


def totals(engine: Engine) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for account in ACCOUNTS:
        for token, (total, _) in engine.balances(account, "binance").items():
            out[token] = out.get(token, D(0)) + total
    return out


def test_quantize_down() -> None:
    assert quantize_down(D("0.123456"), D("0.00001")) == D("0.12345")
    assert quantize_down(D("60000.129"), D("0.01")) == D("60000.12")


def test_limit_rests_and_reserves() -> None:
    engine = make_engine()
    order = engine.place("alice", "binance", "BTC-USDT", "BUY", "LIMIT", D("0.5"), D("59000.019"))
    assert order.status == "OPEN"
    assert order.price == D("59000.01")
    total, available = engine.balances("alice", "binance")["USDT"]
    assert total == D(1_000_000)
    assert available == total - D("59000.01") * D("0.5") * D("1.001")
    engine.cancel("alice", "binance", order.order_id)
    assert order.status == "CANCELLED"
    assert engine.balances("alice", "binance")["USDT"] == (total, total)


def test_crossing_fills_at_maker_price_with_fees() -> None:
    engine = make_engine()
    ask = engine.place("alice", "binance", "BTC-USDT", "SELL", "LIMIT", D(1), D(60000))
    buy = engine.place("bob", "binance", "BTC-USDT", "BUY", "LIMIT", D("0.4"), D(61000))
    assert buy.status == "FILLED" and buy.average_fill_price == D(60000)
    assert ask.status == "PARTIALLY_FILLED" and ask.filled == D("0.4")
    assert buy.fee_paid == D("0.4") * 60000 * D("0.001")
    bob = engine.balances("bob", "binance")
    assert bob["BTC"] == (D("10.4"), D("10.4"))
    assert bob["USDT"][0] == D(1_000_000) - D(24000) - D(24)
    assert bob["USDT"][1] == bob["USDT"][0]  # reservation fully released
    assert engine.fills[-1].order_id == buy.order_id


def test_price_time_priority() -> None:
    engine = make_engine()
    first = engine.place("alice", "binance", "BTC-USDT", "SELL", "LIMIT", D("0.1"), D(60010))
    second = engine.place("bob", "binance", "BTC-USDT", "SELL", "LIMIT", D("0.1"), D(60010))
    better = engine.place("bob", "binance", "BTC-USDT", "SELL", "LIMIT", D("0.1"), D(60005))
    engine.place("alice", "binance", "BTC-USDT", "BUY", "MARKET", D("0.15"))
    assert better.status == "FILLED"
    assert first.filled == D("0.05") and second.filled == 0


def test_synchronous_rejections_have_exact_texts() -> None:
    engine = make_engine()
    with pytest.raises(RequestRejected) as info:
        engine.place("nobody", "binance", "BTC-USDT", "BUY", "LIMIT", D(1), D(1))
    assert (info.value.status, info.value.detail) == (404, "Account 'nobody' not found")
    with pytest.raises(RequestRejected) as info:
        engine.place("alice", "binance", "BTC-USDT", "BUY", "LIMIT", D(1), None)
    assert info.value.detail == "Price is required for LIMIT and LIMIT_MAKER orders"
    with pytest.raises(RequestRejected) as info:
        engine.place("alice", "binance", "DOGE-USDT", "BUY", "LIMIT", D(1), D(1))
    assert info.value.detail == (
        "Trading pair 'DOGE-USDT' not supported on binance. Available pairs: BTC-USDT"
    )
    with pytest.raises(RequestRejected) as info:
        engine.place("alice", "binance", "BTC-USDT", "BUY", "LIMIT", D("0.000001"), D(60000))
    # the real server quantizes first and shows the quantized amount
    assert info.value.detail == (
        "Order amount 0.00000 is below minimum order size 0.00001 for BTC-USDT"
    )
    with pytest.raises(RequestRejected) as info:
        engine.place("alice", "binance", "BTC-USDT", "BUY", "LIMIT", D("0.00002"), D(60000))
    assert info.value.status == 400
    assert info.value.detail == (
        "Order notional value 1.20000 is below minimum notional size 5 for BTC-USDT. "
        "Increase the amount or price to meet the minimum requirement."
    )


def test_minimums_are_checked_on_quantized_values() -> None:
    engine = make_engine()
    # 0.0000839 * 60000 = 5.034 >= 5, but it is quantized to 0.00008: notional 4.8 < 5
    with pytest.raises(RequestRejected) as info:
        engine.place("alice", "binance", "BTC-USDT", "BUY", "LIMIT", D("0.0000839"), D(60000))
    assert info.value.status == 400
    assert info.value.detail.startswith(
        "Order notional value 4.80000 is below minimum notional size 5 for BTC-USDT."
    )
    # the price is quantized too: 0.0001 * 49999.999 = 4.9999999 -> 49999.99 * 0.0001
    with pytest.raises(RequestRejected) as info:
        engine.place("alice", "binance", "BTC-USDT", "BUY", "LIMIT", D("0.0001"), D("49999.999"))
    assert info.value.detail.startswith("Order notional value 4.999999 is below")
    # the size: 0.0000199 is 0.00001 once quantized (accepted), 0.0000099 is 0.00000
    with pytest.raises(RequestRejected) as info:
        engine.place("alice", "binance", "BTC-USDT", "BUY", "LIMIT", D("0.0000099"), D(600000))
    assert info.value.detail.startswith("Order amount 0.00000 is below minimum order size")
    assert engine.order_list == []  # nothing was created
    # exactly at the minimum once quantized: accepted, and it rests with notional >= 5
    ok = engine.place("alice", "binance", "BTC-USDT", "BUY", "LIMIT", D("0.0000839"), D(62500))
    assert ok.status == "OPEN" and ok.amount == D("0.00008")
    assert ok.price is not None and ok.price * ok.amount >= BTC_USDT_RULE.min_notional_size


def test_market_order_notional_uses_best_bid() -> None:
    engine = make_engine()
    engine.place("bob", "binance", "BTC-USDT", "BUY", "LIMIT", D(1), D(50000))
    engine.place("bob", "binance", "BTC-USDT", "SELL", "LIMIT", D(1), D(70000))
    # mid 60000 would pass (0.00009 * 60000 = 5.4); Hummingbot prices it at the best bid
    with pytest.raises(RequestRejected) as info:
        engine.place("alice", "binance", "BTC-USDT", "SELL", "MARKET", D("0.00009"))
    assert info.value.detail.startswith("Order notional value 4.50000 is below")
    sold = engine.place("alice", "binance", "BTC-USDT", "SELL", "MARKET", D("0.0001"))
    assert sold.status == "FILLED"


@pytest.mark.parametrize("side", ["BUY", "SELL"])
def test_market_order_larger_than_the_book_fills_it_then_cancels_the_rest(side: str) -> None:
    engine = make_engine()
    maker_side = "SELL" if side == "BUY" else "BUY"
    for price, amount in ((D(60000), D("0.5")), (D(60010) if side == "BUY" else D(59990), D(1))):
        engine.place("bob", "binance", "BTC-USDT", maker_side, "LIMIT", amount, price)
    before = engine.balances("alice", "binance")
    order = engine.place("alice", "binance", "BTC-USDT", side, "MARKET", D(2))
    assert order.status == "CANCELLED"
    assert order.error_message is None
    assert order.filled == D("1.5") and order.amount == D(2)
    bids, asks = engine.market("binance", "BTC-USDT").book.levels(10)
    assert (asks if side == "BUY" else bids) == []  # the whole opposite side was taken
    after = engine.balances("alice", "binance")
    quote = D("0.5") * 60000 + (D(60010) if side == "BUY" else D(59990))
    fee = quote * D("0.001")
    sign = 1 if side == "BUY" else -1
    assert after["BTC"] == (before["BTC"][0] + sign * D("1.5"),) * 2
    assert after["USDT"] == (before["USDT"][0] - sign * quote - fee,) * 2
    assert [f.amount for f in engine.fills if f.order_id == order.order_id] == [D("0.5"), D(1)]


@pytest.mark.parametrize("side", ["BUY", "SELL"])
def test_market_order_into_an_empty_side_is_cancelled_unfilled(side: str) -> None:
    engine = make_engine()
    # one level on the *same* side gives a price for the notional check, none opposite
    engine.place("bob", "binance", "BTC-USDT", "BUY", "LIMIT", D(1), D(59000))
    if side == "SELL":
        engine.cancel_order(engine.order_list[-1])
        engine.place("bob", "binance", "BTC-USDT", "SELL", "LIMIT", D(1), D(61000))
    order = engine.place("alice", "binance", "BTC-USDT", side, "MARKET", D("0.01"))
    assert (order.status, order.filled, order.error_message) == ("CANCELLED", D(0), None)


def test_market_buy_beyond_balance_still_fails() -> None:
    engine = make_engine()
    engine.place("bob", "binance", "BTC-USDT", "SELL", "LIMIT", D(5), D(60000))
    engine.place("bob", "binance", "BTC-USDT", "BUY", "LIMIT", D(1), D(59990))
    # 5 BTC at 60000 = 300,000 USDT: fine; make alice poorer than that first
    engine.wallets[("alice", "binance")].total["USDT"] = D(100_000)
    order = engine.place("alice", "binance", "BTC-USDT", "BUY", "MARKET", D(10))
    assert order.status == "FAILED" and order.filled == 0
    assert order.error_message == (
        "Insufficient balance: BUY 10 BTC-USDT needs 300300 USDT, available 100000 USDT"
    )


def test_asynchronous_failures() -> None:
    engine = make_engine()
    poor = engine.place("alice", "binance", "BTC-USDT", "BUY", "LIMIT", D(100), D(59000))
    assert poor.status == "FAILED"
    assert poor.error_message is not None
    assert poor.error_message.startswith("Insufficient balance: ")
    engine.place("bob", "binance", "BTC-USDT", "SELL", "LIMIT", D(1), D(60000))
    engine.place("bob", "binance", "BTC-USDT", "BUY", "LIMIT", D(1), D(59990))
    low = engine.place("alice", "binance", "BTC-USDT", "BUY", "LIMIT", D("0.01"), D(20000))
    assert low.status == "FAILED"
    assert low.error_message is not None
    assert low.error_message.startswith("Order price is outside the allowed range: ")
    maker = engine.place("alice", "binance", "BTC-USDT", "BUY", "LIMIT_MAKER", D("0.1"), D(60000))
    assert maker.status == "FAILED"
    assert maker.error_message is not None and "LIMIT_MAKER" in maker.error_message
    assert all(o.order_id in engine.active for o in (poor, low, maker))
    assert engine.balances("alice", "binance") == {
        token: (amount, amount) for token, amount in DEFAULT_BALANCES.items()
    }


def test_cancel_unknown_or_finished_is_404() -> None:
    engine = make_engine()
    with pytest.raises(RequestRejected) as info:
        engine.cancel("alice", "binance", "buy-BTC-USDT-1")
    assert info.value.status == 404
    order = engine.place("alice", "binance", "BTC-USDT", "BUY", "LIMIT", D("0.01"), D(59000))
    engine.cancel("alice", "binance", order.order_id)
    with pytest.raises(RequestRejected):
        engine.cancel("alice", "binance", order.order_id)


def test_terminal_orders_linger_then_leave_active_list() -> None:
    engine = make_engine()
    order = engine.place("alice", "binance", "BTC-USDT", "BUY", "LIMIT", D("0.01"), D(59000))
    engine.cancel("alice", "binance", order.order_id)
    assert order in engine.active_orders()
    assert isinstance(engine.clock, Clock)
    engine.clock.now += engine.terminal_linger
    assert order not in engine.active_orders()


# ---------------------------------------------------------------- properties

order_strategy = st.tuples(
    st.sampled_from(ACCOUNTS),
    st.sampled_from(("BUY", "SELL")),
    st.sampled_from(("LIMIT", "LIMIT", "MARKET", "LIMIT_MAKER")),
    st.integers(min_value=10, max_value=300_000),  # amount in 1e-5 BTC
    st.integers(min_value=5_900_000, max_value=6_100_000),  # price in cents
    st.booleans(),  # cancel an earlier order afterwards
)


def run_orders(
    engine: Engine, orders: list[tuple[str, str, str, int, int, bool]]
) -> Iterator[None]:
    placed = []
    for account, side, order_type, amount, cents, cancel in orders:
        price = None if order_type == "MARKET" else D(cents) / 100
        try:
            order = engine.place(
                account, "binance", "BTC-USDT", side, order_type, D(amount) / 100_000, price
            )
        except RequestRejected:
            yield
            continue
        placed.append(order)
        if cancel and placed:
            victim = placed[len(placed) // 2]
            if not victim.is_terminal:
                engine.cancel(victim.account, "binance", victim.order_id)
        yield


@settings(max_examples=60, deadline=None)
@given(st.lists(order_strategy, max_size=40))
def test_balances_conserved_never_negative_no_overfill(orders: list) -> None:  # type: ignore[type-arg]
    engine = make_engine()
    start = totals(engine)
    for _ in run_orders(engine, orders):
        now = totals(engine)
        fees = engine.fees_collected
        for token in start:
            assert now[token] + fees.get(token, D(0)) == start[token]
        for account in ACCOUNTS:
            for total, available in engine.balances(account, "binance").values():
                assert total >= 0 and available >= 0
    for order in engine.order_list:
        assert 0 <= order.filled <= order.amount
        if order.is_terminal:
            assert order.reserved == 0
    # reservations are exactly those of the resting orders
    for account in ACCOUNTS:
        wallet = engine.wallets[(account, "binance")]
        for token in ("BTC", "USDT"):
            resting = sum(
                (
                    o.reserved
                    for o in engine.order_list
                    if o.account == account
                    and not o.is_terminal
                    and (token == "USDT") == (o.side == "BUY")
                ),
                D(0),
            )
            assert wallet.reserved.get(token, D(0)) == resting
    # every fill of an order sums to its filled amount
    for order in engine.order_list:
        assert sum((f.amount for f in engine.fills if f.order_id == order.order_id), D(0)) == (
            order.filled
        )


@settings(max_examples=60, deadline=None)
@given(st.lists(order_strategy, max_size=40))
def test_book_never_crossed_and_priority_kept(orders: list) -> None:  # type: ignore[type-arg]
    engine = make_engine()
    book = engine.market("binance", "BTC-USDT").book
    for _ in run_orders(engine, orders):
        bid, ask = book.best_bid(), book.best_ask()
        if bid is not None and ask is not None:
            assert bid < ask
        for levels in (book.bids, book.asks):
            for queue in levels.values():
                seqs = [o.seq for o in queue]
                assert seqs == sorted(seqs)
                assert all(o.remaining > 0 and not o.is_terminal for o in queue)


def snapshot(sim: Simulation) -> list[object]:
    out: list[object] = []
    for market in sim.engine.markets.values():
        bids, asks = market.book.levels(10)
        out.append((bids, asks, [(t.price, t.amount, t.side) for t in market.trades]))
    return out


def test_same_seed_same_book_changes_and_trades() -> None:
    runs = []
    for _ in range(2):
        sim = Simulation(seed=7, clock=Clock(), backfill_minutes=10)
        history = []
        for _ in range(300):
            sim.step()
            history.append(snapshot(sim))
        runs.append(history)
    assert runs[0] == runs[1]
    other = Simulation(seed=8, clock=Clock(), backfill_minutes=10)
    for _ in range(300):
        other.step()
    assert snapshot(other) != runs[0][-1]


def test_makers_keep_depth_near_mid() -> None:
    sim = Simulation(seed=3, clock=Clock(), backfill_minutes=0)
    engine = sim.engine
    for i in range(400):
        sim.step()
        if i % 50 == 0:
            engine.place("master_account", "binance", "BTC-USDT", "BUY", "MARKET", D(2))
            sim.replenish("binance", "BTC-USDT")
        for (connector, pair), market in engine.markets.items():
            mid = market.mid()
            need = market.spec.maker_size
            lo, hi = mid * D("0.999"), mid * D("1.001")
            assert market.book.depth_within("BUY", lo, mid) >= need, (connector, pair, i)
            assert market.book.depth_within("SELL", mid, hi) >= need, (connector, pair, i)
