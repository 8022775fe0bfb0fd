"""OrderTracker: exactly-once, never-backwards order and fill events."""

from __future__ import annotations

import itertools
from decimal import Decimal

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from hbtrio._core.tracker import OrderTracker, status_rank
from hbtrio.models import Order, OrderStatus, OrderType, Side, Trade

S = OrderStatus


def order(oid: str, status: OrderStatus, filled: str = "0", updated: float = 0.0) -> Order:
    return Order(
        order_id=oid,
        account="master_account",
        exchange="binance",
        market="BTC-USDT",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        amount=Decimal("10"),
        price=Decimal("100"),
        status=status,
        filled_amount=Decimal(filled),
        updated_at=updated,
    )


def fill(tid: str, ts: float, oid: str = "o1") -> Trade:
    return Trade(
        trade_id=tid,
        order_id=oid,
        account="master_account",
        exchange="binance",
        market="BTC-USDT",
        side=Side.BUY,
        amount=Decimal("1"),
        price=Decimal("100"),
        fee_paid=Decimal("0.1"),
        fee_currency="USDT",
        timestamp=ts,
    )


def state(o: Order) -> tuple[OrderStatus, Decimal]:
    return (o.status, o.filled_amount)


def test_lifecycle_events_once_and_polling_speed() -> None:
    t = OrderTracker()
    assert t.poll_interval() == 2.0
    [ev] = t.track(order("o1", S.SUBMITTED), now=1.0)
    assert ev.order.status is S.SUBMITTED and ev.timestamp == 1.0
    assert t.poll_interval(active=0.05) == 0.05 and t.has_in_flight
    assert t.accepted("o1") is None and t.accepted("nope") is None
    assert t.apply_orders([order("o1", S.SUBMITTED)], 2.0) == []
    [ev] = t.apply_orders([order("o1", S.OPEN, updated=1), order("o1", S.OPEN, updated=1)], 3.0)
    assert ev.order.status is S.OPEN
    accepted = t.accepted("o1")
    assert accepted is not None and accepted.status is S.OPEN
    assert t.in_flight() == ["o1"]
    evs = t.apply_orders(
        [order("o1", S.PARTIALLY_FILLED, "4", 2), order("o1", S.FILLED, "10", 3)], 4.0
    )
    assert [state(e.order) for e in evs] == [
        (S.PARTIALLY_FILLED, Decimal(4)),
        (S.FILLED, Decimal(10)),
    ]
    assert t.apply_orders([order("o1", S.PARTIALLY_FILLED, "4", 2)], 5.0) == []  # stale
    assert t.poll_interval() == 2.0 and t.in_flight() == [] and len(t) == 1


def test_regressions_and_corrections() -> None:
    t = OrderTracker()
    t.apply_orders([order("a", S.PARTIALLY_FILLED, "5", 10)], 0)
    assert t.apply_orders([order("a", S.OPEN, "0", 20)], 0) == []  # fill went back
    assert t.apply_orders([order("a", S.SUBMITTED, "5", 20)], 0) == []  # rank went back
    [ev] = t.apply_orders([order("a", S.PENDING_CANCEL, "5", 11)], 0)  # same rank, newer
    assert t.apply_orders([order("a", S.PARTIALLY_FILLED, "5", 11)], 0) == []  # not newer
    [ev] = t.apply_orders([order("a", S.PARTIALLY_FILLED, "5", 12)], 0)  # cancel refused
    [ev] = t.apply_orders([order("a", S.CANCELLED, "5", 13)], 0)
    assert t.apply_orders([order("a", S.OPEN, "5", 99)], 0) == []  # terminal is final
    [ev] = t.apply_orders([order("a", S.FILLED, "10", 1)], 0)  # more fill is progress
    assert state(ev.order) == (S.FILLED, Decimal(10))
    # same state, fresher details: stored, no event
    details = msgspec.structs.replace(order("a", S.FILLED, "10", 50), fee_paid=Decimal("1"))
    assert t.apply_orders([details], 0) == []
    got = t.get("a")
    assert got is not None and got.fee_paid == Decimal(1)
    assert t.get("zz") is None
    assert [status_rank(s) for s in (S.SUBMITTED, S.OPEN, S.FAILED)] == [0, 1, 2]


def test_seed_learns_without_events() -> None:
    t = OrderTracker()
    t.seed([order("a", S.OPEN), order("b", S.CANCELLED)], 0)
    assert t.apply_orders([order("a", S.OPEN), order("b", S.CANCELLED)], 1) == []
    assert sorted(t.in_flight()) == ["a"]


def test_terminal_orders_pruned_by_age_and_count_and_never_resurrected() -> None:
    t = OrderTracker(terminal_ttl=10.0, max_terminal=2, max_tombstones=2)
    t.apply_orders([order("a", S.FILLED, "10", 1)], now=0.0)
    t.apply_orders([order("b", S.CANCELLED, "0", 1)], now=5.0)
    assert len(t) == 2
    t.prune(10.0)  # "a" is 10 s old
    assert t.get("a") is None and t.get("b") is not None
    assert t.apply_orders([order("a", S.FILLED, "10", 1)], 10.0) == []  # tombstoned
    t.apply_orders([order(x, S.FAILED, "0", 1) for x in "cde"], 11.0)  # count bound
    assert len(t) == 2 and t.get("b") is None
    assert t.apply_orders([order("d", S.FAILED, "0", 1)], 12.0) == []
    # tombstones are bounded too: the oldest ("a") was forgotten
    assert len(t.apply_orders([order("a", S.FILLED, "10", 1)], 13.0)) == 1


def test_fills_once_bounded_with_horizon() -> None:
    t = OrderTracker(max_fills=3, recent_fills=2)
    evs = t.apply_fills([fill("f1", 1), fill("f2", 2), fill("f1", 1)], now=5.0)
    assert [e.trade.trade_id for e in evs] == ["f1", "f2"] and evs[0].timestamp == 5.0
    assert t.apply_fills([fill("f2", 2)], 6.0) == []
    t.apply_fills([fill("f3", 3), fill("f4", 4)], 7.0)  # f1 forgotten, horizon 1
    assert [f.trade_id for f in t.fills] == ["f3", "f4"]
    assert t.apply_fills([fill("f1", 1), fill("f0", 0.5)], 8.0) == []  # behind the horizon
    assert len(t.apply_fills([fill("f5", 1.5)], 9.0)) == 1


# -- properties ---------------------------------------------------------------------------------

LIVE = [S.OPEN, S.PARTIALLY_FILLED, S.PENDING_CANCEL]


@st.composite
def histories(draw: st.DrawFn) -> list[Order]:
    """A plausible life of one order: (rank, filled) never decrease, updated_at increases."""
    oid = draw(st.sampled_from(["o1", "o2", "o3"]))
    status, filled, t = S.SUBMITTED, Decimal(0), 1.0
    versions = [order(oid, status, "0", t)]
    for _ in range(draw(st.integers(0, 6))):
        new_status = draw(st.sampled_from(LIVE))
        new_filled = filled + draw(st.sampled_from([Decimal(0), Decimal(1), Decimal(2)]))
        if new_filled > 8:
            break
        if (new_status, new_filled) == (status, filled):
            continue
        t += draw(st.sampled_from([0.5, 1.0]))
        status, filled = new_status, new_filled
        versions.append(order(oid, status, str(filled), t))
    end = draw(st.sampled_from([None, S.FILLED, S.CANCELLED, S.FAILED]))
    if end is not None:
        final = Decimal(10) if end is S.FILLED else filled
        versions.append(order(oid, end, str(final), t + 1))
    return versions


def history_index(versions: list[Order], o: Order) -> int:
    return next(i for i, v in enumerate(versions) if v.updated_at == o.updated_at)


@settings(max_examples=150)
@given(
    lives=st.lists(histories(), min_size=1, max_size=3, unique_by=lambda v: v[0].order_id),
    data=st.data(),
)
def test_any_snapshot_order_gives_forward_events_once(
    lives: list[list[Order]], data: st.DataObject
) -> None:
    t = OrderTracker()
    all_versions = [v for life in lives for v in life]
    # stale, reordered and repeated snapshots, in random batches ...
    noise = data.draw(st.lists(st.sampled_from(all_versions), max_size=30))
    events = []
    for start in range(0, len(noise), 4):
        events += t.apply_orders(noise[start : start + 4], now=float(start))
    # ... then a complete, ordered poll catches up
    events += t.apply_orders(all_versions, now=100.0)
    for life in lives:
        mine = [e.order for e in events if e.order.order_id == life[0].order_id]
        indices = [history_index(life, o) for o in mine]
        assert indices == sorted(set(indices)), "never backwards, never twice"
        assert all(state(a) != state(b) for a, b in itertools.pairwise(mine))
        assert state(mine[-1]) == state(life[-1])  # ends at the true final state
        # Orders learnt from polls (not placed by this client) never make it poll fast.
        assert t.poll_interval() == 2.0
        assert set(t.in_flight()) == {
            lf[0].order_id for lf in lives if not lf[-1].status.is_terminal
        }


@given(life=histories(), dups=st.lists(st.integers(0, 10), max_size=10))
def test_in_order_feed_emits_every_change_exactly_once(life: list[Order], dups: list[int]) -> None:
    t = OrderTracker()
    feed = list(life)
    for d in dups:  # repeat some snapshots right after themselves
        i = d % len(feed)
        feed.insert(i, feed[i])
    events = [e for o in feed for e in t.apply_orders([o], 0.0)]
    assert [e.order for e in events] == life


@given(
    ids=st.lists(st.integers(0, 20), max_size=60),
)
def test_each_fill_once(ids: list[int]) -> None:
    t = OrderTracker()
    events = []
    for start in range(0, len(ids), 5):
        batch = [fill(f"t{i}", float(i)) for i in ids[start : start + 5]]
        events += t.apply_fills(batch, 0.0)
    got = [e.trade.trade_id for e in events]
    assert sorted(got) == sorted({f"t{i}" for i in ids})
    assert len(got) == len(set(got))


def test_only_orders_this_client_placed_make_it_poll_fast() -> None:
    t = OrderTracker()
    t.apply_orders([order("theirs", S.OPEN, "0", 1.0)], now=1.0)
    assert t.poll_interval() == 2.0 and not t.has_in_flight
    t.track(order("mine", S.SUBMITTED, "0", 2.0), now=2.0)
    assert t.poll_interval() == 0.1 and t.has_in_flight
    t.apply_orders([order("mine", S.CANCELLED, "0", 3.0)], now=3.0)
    assert t.poll_interval() == 2.0 and t.in_flight() == ["theirs"]
    t.track(order("gone", S.SUBMITTED, "0", 4.0), now=4.0)
    assert t.abandon("gone") and t.poll_interval() == 2.0
