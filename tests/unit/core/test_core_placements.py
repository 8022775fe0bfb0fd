"""The placement ledger: which identical placements may claim a reconciled order."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hbtrio._core.placements import PlacementLedger

SLACK = 2.0


def test_identical_placements_in_flight_are_rivals() -> None:
    ledger = PlacementLedger(SLACK)
    a = ledger.begin("k", 100.0)
    b = ledger.begin("k", 100.5)
    other = ledger.begin("other", 100.5)
    assert ledger.rivals(a, 100.0, 101.0) == 1
    assert ledger.rivals(b, 100.5, 101.0) == 1
    assert ledger.rivals(other, 100.5, 101.0) == 0


def test_a_settled_placement_is_no_rival() -> None:
    ledger = PlacementLedger(SLACK)
    a = ledger.begin("k", 100.0)
    b = ledger.begin("k", 100.1)
    ledger.settle(b)
    assert ledger.rivals(a, 100.0, 101.0) == 0
    assert len(ledger) == 1


def test_an_unknown_outcome_rivals_overlapping_later_placements_only() -> None:
    ledger = PlacementLedger(SLACK)
    a = ledger.begin("k", 100.0)
    ledger.leave_unknown(a, 101.0)
    near = ledger.begin("k", 104.0)  # within twice the slack of a's end
    assert ledger.rivals(near, 104.0, 105.0) == 1
    ledger.settle(near)
    far = ledger.begin("k", 106.0)  # a ended more than 2 x slack before: forgotten
    assert ledger.rivals(far, 106.0, 107.0) == 0
    assert len(ledger) == 1


def test_unknown_outcomes_are_kept_while_an_old_placement_is_in_flight() -> None:
    ledger = PlacementLedger(SLACK)
    slow = ledger.begin("k", 100.0)
    quick = ledger.begin("k", 101.0)
    ledger.leave_unknown(quick, 102.0)
    ledger.begin("x", 500.0)  # much later: expiry runs, but `slow` still needs it
    assert ledger.rivals(slow, 100.0, 500.0) == 1
    ledger.settle(slow)
    ledger.begin("x", 501.0)
    assert len(ledger) == 2  # the two "x" placements; the unknown one expired


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["begin", "settle", "unknown"]),
            st.sampled_from(["k1", "k2"]),
            st.floats(min_value=0.0, max_value=5.0),
        ),
        max_size=60,
    )
)
def test_rivals_are_exactly_the_overlapping_identical_placements(
    steps: list[tuple[str, str, float]],
) -> None:
    """Against a model that never forgets: expiry never hides a rival."""
    ledger = PlacementLedger(SLACK)
    now = 1000.0
    live: list[tuple[object, str, float, list[float | None]]] = []  # (record, key, start, [end])
    for action, key, step in steps:
        now += step
        if action == "begin":
            live.append((ledger.begin(key, now), key, now, [None]))
            continue
        open_ = [entry for entry in live if entry[3][0] is None and entry[1] == key]
        if not open_:
            continue
        record, _, _, end = open_[0]
        if action == "settle":
            ledger.settle(record)  # type: ignore[arg-type]
            live.remove(open_[0])
        else:
            ledger.leave_unknown(record, now)  # type: ignore[arg-type]
            end[0] = now
    for record, key, start, end in live:
        if end[0] is not None:
            continue
        expected = sum(
            1
            for other, okey, ostart, oend in live
            if other is not record
            and okey == key
            and ostart <= now + 2 * SLACK
            and (oend[0] is None or oend[0] >= start - 2 * SLACK)
        )
        assert ledger.rivals(record, start, now) == expected  # type: ignore[arg-type]
