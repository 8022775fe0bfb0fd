"""Correlator: one request at a time, acks matched by id, never to the wrong request."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from hbtrio._core.correlator import Correlator, CorrelatorBusy, Match, RequestKind

IDS = st.sampled_from(["order_book_x_A-B", "trades_x_A-B", "candles_x_A-B_1m", "order_book_y_C-D"])
KINDS = st.sampled_from(list(RequestKind))


def test_ack_after_heartbeats_and_foreign_acks() -> None:
    c = Correlator()
    token = c.start("subscribe", "trades_x_A-B", now=0.0, deadline=5.0)
    pending = c.pending
    assert pending is not None and pending.token == token
    assert c.feed_ack("subscribe", "order_book_x_A-B") is None  # foreign id
    assert c.feed_ack("unsubscribe", "trades_x_A-B") is None  # wrong kind
    match = c.feed_ack(RequestKind.SUBSCRIBE, "trades_x_A-B")
    assert match is not None
    assert match == Match(match.request, True) and match.token == token
    assert match.request.started == 0.0 and c.pending is None
    assert c.feed_ack("subscribe", "trades_x_A-B") is None  # duplicate ack ignored


def test_one_request_at_a_time() -> None:
    c = Correlator()
    c.start("unsubscribe", "a", 0.0, 1.0)
    with pytest.raises(CorrelatorBusy, match="outstanding"):
        c.start("subscribe", "b", 0.0, 1.0)
    with pytest.raises(ValueError):
        Correlator().start("ping", "a", 0.0, 1.0)


def test_error_fails_outstanding_request_only() -> None:
    c = Correlator()
    assert c.feed_error("Unknown action") is None
    c.start("subscribe", "a", 0.0, 1.0)
    match = c.feed_error("Connector not found")
    assert match is not None and not match.ok and match.error == "Connector not found"
    assert not c.busy


def test_expire() -> None:
    c = Correlator()
    assert c.expire(10.0) == []
    c.start("subscribe", "a", 0.0, 1.0)
    assert c.next_deadline() == 1.0
    assert c.expire(0.99) == []
    [match] = c.expire(1.0)
    assert match.timed_out and match.error == "timed out" and not c.busy
    assert c.next_deadline() is None


def test_pings_fifo_rtt_and_expiry() -> None:
    c = Correlator()
    assert c.feed_pong(1.0) is None
    t1 = c.start_ping(0.0, 5.0)
    t2 = c.start_ping(1.0, 6.0)
    assert c.pings_outstanding == 2 and c.next_deadline() == 5.0
    assert not c.ping_expired(4.9)
    assert c.ping_expired(5.0)
    pong = c.feed_pong(2.0)
    assert pong is not None and pong.token == t1 and pong.rtt == 2.0
    assert not c.ping_expired(5.5)
    pong = c.feed_pong(3.0)
    assert pong is not None and pong.token == t2 and pong.rtt == 2.0
    assert c.pings_outstanding == 0


def test_expire_pings_forgets_only_the_expired() -> None:
    c = Correlator()
    assert c.expire_pings(100.0) == []
    t1 = c.start_ping(0.0, 5.0)
    t2 = c.start_ping(1.0, 7.0)
    t3 = c.start_ping(2.0, 6.0)
    assert c.expire_pings(4.9) == [] and c.pings_outstanding == 3
    assert c.expire_pings(6.0) == [t1, t3]
    assert c.pings_outstanding == 1 and c.next_deadline() == 7.0
    pong = c.feed_pong(6.5)  # a late pong answers the ping still outstanding
    assert pong is not None and pong.token == t2 and pong.rtt == 5.5
    assert c.expire_pings(100.0) == [] and c.pings_outstanding == 0


def test_reset_fails_everything() -> None:
    c = Correlator()
    assert c.reset() == []
    c.start("subscribe", "a", 0.0, 1.0)
    c.start_ping(0.0, 1.0)
    [match] = c.reset()
    assert match.error == "connection reset" and not match.ok
    assert not c.busy and c.pings_outstanding == 0 and not c.ping_expired(100.0)


class CorrelatorMachine(RuleBasedStateMachine):
    """Random interleavings of requests, acks, errors, pongs, timeouts and resets."""

    def __init__(self) -> None:
        super().__init__()
        self.c = Correlator()
        self.now = 0.0
        self.outstanding: tuple[int, RequestKind, str, float] | None = None
        self.resolved: set[int] = set()
        self.pings: list[tuple[int, float]] = []

    @rule(dt=st.floats(min_value=0, max_value=3))
    def tick(self, dt: float) -> None:
        self.now += dt

    @precondition(lambda self: self.outstanding is None)
    @rule(kind=KINDS, sub_id=IDS, timeout=st.floats(min_value=0.1, max_value=5))
    def start(self, kind: RequestKind, sub_id: str, timeout: float) -> None:
        token = self.c.start(kind, sub_id, self.now, self.now + timeout)
        self.outstanding = (token, kind, sub_id, self.now + timeout)

    @precondition(lambda self: self.outstanding is not None)
    @rule(kind=KINDS, sub_id=IDS)
    def start_while_busy(self, kind: RequestKind, sub_id: str) -> None:
        with pytest.raises(CorrelatorBusy):
            self.c.start(kind, sub_id, self.now, self.now + 1)

    @rule(kind=KINDS, sub_id=IDS)
    def ack(self, kind: RequestKind, sub_id: str) -> None:
        match = self.c.feed_ack(kind, sub_id)
        expected = self.outstanding
        if expected is not None and expected[1:3] == (kind, sub_id):
            assert match is not None and match.ok
            assert match.token == expected[0]
            assert match.token not in self.resolved
            self.resolved.add(match.token)
            self.outstanding = None
        else:
            assert match is None  # never matched to the wrong request

    @rule(message=st.text(max_size=10))
    def error(self, message: str) -> None:
        match = self.c.feed_error(message)
        if self.outstanding is None:
            assert match is None
        else:
            assert match is not None and not match.ok and match.token == self.outstanding[0]
            self.resolved.add(match.token)
            self.outstanding = None

    @rule()
    def expire(self) -> None:
        matches = self.c.expire(self.now)
        if self.outstanding is not None and self.now >= self.outstanding[3]:
            assert [m.token for m in matches] == [self.outstanding[0]]
            assert matches[0].timed_out
            self.outstanding = None
        else:
            assert matches == []

    @rule(timeout=st.floats(min_value=0.1, max_value=5))
    def ping(self, timeout: float) -> None:
        self.pings.append((self.c.start_ping(self.now, self.now + timeout), self.now + timeout))

    @rule()
    def pong(self) -> None:
        pong = self.c.feed_pong(self.now)
        if self.pings:
            token, _ = self.pings.pop(0)
            assert pong is not None and pong.token == token and pong.rtt >= 0
        else:
            assert pong is None

    @rule()
    def expire_pings(self) -> None:
        tokens = self.c.expire_pings(self.now)
        assert tokens == [t for t, d in self.pings if self.now >= d]
        self.pings = [(t, d) for t, d in self.pings if self.now < d]

    @rule()
    def reset(self) -> None:
        matches = self.c.reset()
        assert [m.token for m in matches] == ([self.outstanding[0]] if self.outstanding else [])
        self.outstanding = None
        self.pings.clear()

    @invariant()
    def consistent(self) -> None:
        assert self.c.busy == (self.outstanding is not None)
        assert self.c.pings_outstanding == len(self.pings)
        assert self.c.ping_expired(self.now) == any(self.now >= d for _, d in self.pings)


CorrelatorMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=40)
TestCorrelator = CorrelatorMachine.TestCase
