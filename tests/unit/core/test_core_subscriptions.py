"""SubscriptionSet: desired vs active, shared subscriptions, renewal, staleness."""

from __future__ import annotations

from typing import Literal

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from hbtrio._core.subscriptions import (
    STALE_MIN,
    Action,
    StreamKey,
    StreamParams,
    Subscribe,
    SubscriptionSet,
    Unsubscribe,
    candles_key,
    order_book_key,
    subscription_id,
    trades_key,
)

BOOK = order_book_key("binance", "BTC-USDT")
TRADES = trades_key("binance", "BTC-USDT")
CANDLES = candles_key("binance", "BTC-USDT", "1m")


def ack_all(subs: SubscriptionSet, actions: list[Action]) -> None:
    for action in actions:
        kind: Literal["subscribe", "unsubscribe"] = (
            "subscribe" if isinstance(action, Subscribe) else "unsubscribe"
        )
        assert subs.on_ack(action.subscription_id, kind)


def test_subscription_ids_are_the_servers() -> None:
    assert subscription_id(BOOK) == "order_book_binance_BTC-USDT"
    assert subscription_id(TRADES) == "trades_binance_BTC-USDT"
    assert subscription_id(CANDLES) == "candles_binance_BTC-USDT_1m"
    for bad in [(), ("order_book", "x"), ("candles", "x", "y"), ("ticker", "x", "y")]:
        with pytest.raises(ValueError):
            subscription_id(bad)


def test_params_merge_and_cover() -> None:
    a = StreamParams(depth=5, update_interval=1.0)
    b = StreamParams(depth=20, update_interval=2.0, max_records=50)
    merged = StreamParams.merge([a, b])
    assert merged == StreamParams(depth=20, update_interval=1.0, max_records=50)
    assert merged.covers(a) and merged.covers(b)
    assert not a.covers(b) and not StreamParams().covers(a)
    with pytest.raises(ValueError):
        StreamParams.merge([])


def test_shared_book_depth_grows_and_last_consumer_unsubscribes() -> None:
    subs = SubscriptionSet()
    sid = subscription_id(BOOK)
    c1 = subs.register(BOOK, StreamParams(depth=5))
    [action] = subs.plan()
    assert action == Subscribe(BOOK, sid, StreamParams(depth=5))
    assert subs.plan() == []  # in flight: nothing more planned
    ack_all(subs, [action])
    assert subs.active() == {sid: StreamParams(depth=5)}
    c2 = subs.register(BOOK, StreamParams(depth=3))
    assert subs.plan() == []  # depth 5 covers 3
    c3 = subs.register(BOOK, StreamParams(depth=20))
    [action] = subs.plan()  # re-subscribe with the same id at the new max
    assert action == Subscribe(BOOK, sid, StreamParams(depth=20))
    ack_all(subs, [action])
    assert dict(subs.consumers(sid)) == {
        c1: StreamParams(depth=5),
        c2: StreamParams(depth=3),
        c3: StreamParams(depth=20),
    }
    assert subs.key_of(sid) == BOOK
    subs.unregister(c3)
    subs.unregister(c1)
    assert subs.plan() == []  # shrinking needs no new subscription
    subs.unregister(c2)
    subs.unregister(c2)  # unknown: ignored
    [action] = subs.plan()
    assert action == Unsubscribe(BOOK, sid)
    ack_all(subs, [action])
    assert subs.active() == {} and subs.desired() == {}
    assert subs.key_of(sid) is None and dict(subs.consumers(sid)) == {}


def test_disconnect_resubscribes_everything_desired() -> None:
    subs = SubscriptionSet()
    subs.register(BOOK, StreamParams(depth=10))
    subs.register(TRADES)
    c = subs.register(CANDLES, StreamParams(max_records=100))
    ack_all(subs, subs.plan())
    subs.unregister(c)
    subs.on_disconnected()
    actions = subs.plan()
    assert {a.subscription_id for a in actions} == {subscription_id(BOOK), subscription_id(TRADES)}
    assert all(isinstance(a, Subscribe) for a in actions)


def test_ack_mismatches_are_ignored() -> None:
    subs = SubscriptionSet()
    sid = subscription_id(TRADES)
    assert not subs.on_ack(sid, "subscribe")
    subs.register(TRADES)
    assert not subs.on_ack(sid, "subscribe")  # nothing in flight yet
    subs.plan()
    assert not subs.on_ack(sid, "unsubscribe")  # wrong kind
    assert subs.on_ack(sid, "subscribe")
    assert not subs.on_failed(sid)
    assert not subs.on_failed("nope")


def test_failed_subscribe_is_held_back_then_retried() -> None:
    subs = SubscriptionSet()
    sid = subscription_id(TRADES)
    subs.register(TRADES)
    subs.plan(now=0.0)
    assert subs.on_failed(sid, now=10.0, hold=2.0)
    assert subs.next_retry() == 12.0
    assert subs.plan(now=11.0) == []
    [action] = subs.plan(now=12.0)
    assert isinstance(action, Subscribe)
    assert subs.on_failed(sid)  # without a time: retried at once
    assert subs.next_retry() is None
    assert len(subs.plan(now=0.0)) == 1


def test_consumer_leaving_during_subscribe() -> None:
    subs = SubscriptionSet()
    sid = subscription_id(TRADES)
    c = subs.register(TRADES)
    subs.plan()
    subs.unregister(c)
    ack_all(subs, [Subscribe(TRADES, sid, StreamParams())])
    [action] = subs.plan()
    assert action == Unsubscribe(TRADES, sid)
    # a failed subscribe with nobody left is forgotten
    c = subs.register(BOOK)
    subs.plan()
    subs.unregister(c)
    assert subs.on_failed(subscription_id(BOOK))
    assert subs.key_of(subscription_id(BOOK)) is None


def test_staleness_and_renewal() -> None:
    subs = SubscriptionSet()
    sid = subscription_id(BOOK)
    subs.register(BOOK, StreamParams(depth=5, update_interval=0.1))
    assert not subs.on_data("order_book_x_Y", 0.0)
    ack_all(subs, subs.plan())
    assert subs.stale(100.0) == []  # never delivered: not stale
    assert subs.next_stale_check() is None
    assert subs.on_data(sid, 10.0)
    assert subs.next_stale_check() == 10.0 + STALE_MIN  # max(5 * 0.1, 2.0)
    assert subs.stale(12.0) == []
    assert subs.stale(12.01) == [BOOK]
    subs.force_resubscribe(BOOK)
    assert subs.stale(100.0) == []
    [action] = subs.plan()
    assert action == Subscribe(BOOK, sid, StreamParams(depth=5, update_interval=0.1))
    subs.force_resubscribe(BOOK)  # in flight: ignored
    subs.force_resubscribe(TRADES)  # unknown: ignored
    ack_all(subs, [action])
    subs.on_data(sid, 0.0)
    slow = SubscriptionSet()
    slow.register(TRADES, StreamParams(update_interval=10.0))
    ack_all(slow, slow.plan())
    slow.on_data(subscription_id(TRADES), 0.0)
    assert slow.stale(49.0) == [] and slow.stale(50.5) == [TRADES]


def test_force_resubscribe_without_consumers_keeps_server_state() -> None:
    subs = SubscriptionSet()
    c = subs.register(TRADES)
    ack_all(subs, subs.plan())
    subs.unregister(c)
    subs.force_resubscribe(TRADES)
    assert subs.plan() == [Unsubscribe(TRADES, subscription_id(TRADES))]


KEYS = st.sampled_from([BOOK, TRADES, CANDLES, order_book_key("kucoin", "ETH-USDT")])
PARAMS = st.builds(
    StreamParams,
    depth=st.one_of(st.none(), st.integers(1, 50)),
    update_interval=st.sampled_from([0.1, 0.5, 1.0, 2.0]),
    max_records=st.one_of(st.none(), st.integers(1, 200)),
)


class SubscriptionMachine(RuleBasedStateMachine):
    """Random consumer changes, partial acks, failures and drops; plan() converges."""

    def __init__(self) -> None:
        super().__init__()
        self.subs = SubscriptionSet()
        self.consumers: dict[int, tuple[StreamKey, StreamParams]] = {}
        self.inflight: list[Action] = []

    @rule(key=KEYS, params=PARAMS)
    def register(self, key: StreamKey, params: StreamParams) -> None:
        self.consumers[self.subs.register(key, params)] = (key, params)

    @precondition(lambda self: self.consumers)
    @rule(data=st.data())
    def unregister(self, data: st.DataObject) -> None:
        consumer = data.draw(st.sampled_from(sorted(self.consumers)))
        del self.consumers[consumer]
        self.subs.unregister(consumer)

    @rule()
    def plan(self) -> None:
        actions = self.subs.plan()
        ids = [a.subscription_id for a in actions + self.inflight]
        assert len(ids) == len(set(ids)), "at most one action in flight per subscription"
        self.inflight.extend(actions)

    @precondition(lambda self: self.inflight)
    @rule(data=st.data(), fail=st.booleans())
    def answer(self, data: st.DataObject, fail: bool) -> None:
        action = data.draw(st.sampled_from(self.inflight))
        self.inflight.remove(action)
        if fail:
            assert self.subs.on_failed(action.subscription_id)
        else:
            kind: Literal["subscribe", "unsubscribe"] = (
                "subscribe" if isinstance(action, Subscribe) else "unsubscribe"
            )
            assert self.subs.on_ack(action.subscription_id, kind)

    @rule()
    def disconnect(self) -> None:
        self.subs.on_disconnected()
        self.inflight.clear()

    def expected(self) -> dict[str, StreamParams]:
        by_id: dict[str, list[StreamParams]] = {}
        for key, params in self.consumers.values():
            by_id.setdefault(subscription_id(key), []).append(params)
        return {sid: StreamParams.merge(ps) for sid, ps in by_id.items()}

    @invariant()
    def desired_matches_consumers(self) -> None:
        assert self.subs.desired() == self.expected()

    @invariant()
    def in_flight_subscriptions_are_tracked(self) -> None:
        for action in self.inflight:
            assert self.subs.key_of(action.subscription_id) == action.key

    def teardown(self) -> None:
        # plan() restores exactly the desired set, whatever happened before
        ack_all(self.subs, self.inflight)
        for _ in range(3):
            ack_all(self.subs, self.subs.plan())
        expected = self.expected()
        active = self.subs.active()
        assert set(active) == set(expected)
        for sid, params in expected.items():
            assert active[sid].covers(params)
        assert self.subs.plan() == []
        # after a drop, everything is resubscribed at exactly the merged parameters
        self.subs.on_disconnected()
        actions = self.subs.plan()
        assert {a.subscription_id: a.params for a in actions if isinstance(a, Subscribe)} == (
            expected
        )
        assert len(actions) == len(expected)


SubscriptionMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=40)
TestSubscriptions = SubscriptionMachine.TestCase
