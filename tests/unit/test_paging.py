"""The one paging primitive (``hbtrio._paging``) against model listings."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from hbtrio._paging import PageRequest, Paging, walk
from hbtrio.models import Page


@dataclass(frozen=True)
class Row:
    key: str
    ms: int


class Listing:
    """A newest-first listing with a limit, an inclusive ``end`` filter and cursors.

    ``broken``: every cursor is ``"0:"`` and ignored (the real order search).
    """

    def __init__(self, stamps: list[int], limit: int, broken: bool) -> None:
        rows = [Row(f"o{i}", ms) for i, ms in enumerate(stamps)]
        self.rows = sorted(rows, key=lambda r: (r.ms, r.key), reverse=True)
        self.limit = limit
        self.broken = broken
        self.requests: list[PageRequest] = []

    async def fetch(self, request: PageRequest) -> Page[Row]:
        self.requests.append(request)
        await trio.lowlevel.checkpoint()
        rows = [r for r in self.rows if request.end_ms is None or r.ms <= request.end_ms]
        if request.cursor and not self.broken:
            rows = rows[int(request.cursor) :]
        page = rows[: self.limit]
        more = len(rows) > self.limit
        offset = 0 if self.broken or not request.cursor else int(request.cursor)
        cursor = ("0:" if self.broken else str(offset + self.limit)) if more else None
        return Page(items=tuple(page), next_cursor=cursor, has_more=more)


def _paging(**kwargs: object) -> Paging[Row]:
    return Paging(key=lambda r: r.key, stamp=lambda r: r.ms / 1000, **kwargs)  # type: ignore[arg-type]


async def _collect(listing: Listing, paging: Paging[Row]) -> list[Row]:
    return [row async for row in walk(paging, listing.fetch)]


@settings(max_examples=150, deadline=None)
@given(
    stamps=st.lists(st.integers(1_000, 1_040), max_size=60),
    limit=st.integers(1, 12),
    broken=st.booleans(),
)
async def test_every_row_once_when_no_millisecond_fills_a_page(
    stamps: list[int], limit: int, broken: bool
) -> None:
    listing = Listing(stamps, limit, broken)
    paging = _paging()
    got = await _collect(listing, paging)
    keys = [r.key for r in got]
    assert len(keys) == len(set(keys))  # de-duplicated
    crowded = max((stamps.count(ms) for ms in set(stamps)), default=0)
    if crowded < limit:  # time paging can always get past a millisecond
        assert sorted(keys) == sorted(r.key for r in listing.rows)
        assert not paging.truncated
    # bounded: every page but the last two brings something new
    assert paging.pages <= len(stamps) + 2
    assert paging.done


@settings(max_examples=100, deadline=None)
@given(
    stamps=st.lists(st.integers(1_000, 1_100), min_size=1, max_size=60),
    limit=st.integers(1, 8),
    broken=st.booleans(),
    max_pages=st.integers(1, 5),
)
async def test_page_bound(stamps: list[int], limit: int, broken: bool, max_pages: int) -> None:
    listing = Listing(stamps, limit, broken)
    paging = _paging(max_pages=max_pages)
    got = await _collect(listing, paging)
    assert len(listing.requests) == paging.pages <= max_pages
    if not paging.truncated:
        crowded = max(stamps.count(ms) for ms in set(stamps))
        if crowded < limit:
            assert len(got) == len(stamps)
    else:
        assert len(got) < len(stamps) or paging.pages == max_pages


async def test_repeated_cursor_switches_to_time_paging_and_is_learnt() -> None:
    listing = Listing(list(range(1_000, 1_025)), 10, broken=True)
    paging = _paging()
    got = await _collect(listing, paging)
    assert len(got) == 25 and paging.cursors_broken
    # page 2 (cursor "0:") repeated page 1; from then on by time
    assert listing.requests[1] == PageRequest("0:", None)
    assert listing.requests[2].cursor is None and listing.requests[2].end_ms == 1_015
    # a walk that knows the cursors are broken skips the wasted page
    again = Listing(list(range(1_000, 1_025)), 10, broken=True)
    learnt = _paging(cursors_broken=True)
    assert len(await _collect(again, learnt)) == 25
    assert len(again.requests) == len(listing.requests) - 1


async def test_working_cursors_are_followed_without_time_paging() -> None:
    listing = Listing([1_000] * 25, 10, broken=False)  # one millisecond: time paging can't
    paging = _paging()
    assert len(await _collect(listing, paging)) == 25
    assert [r.cursor for r in listing.requests] == [None, "10", "20"]
    assert not paging.cursors_broken


async def test_without_time_paging_a_repeated_cursor_ends_the_walk() -> None:
    listing = Listing(list(range(1_000, 1_025)), 10, broken=True)
    paging = _paging(time_paging=False)
    assert len(await _collect(listing, paging)) == 10
    assert paging.pages == 2 and paging.done


async def test_deadline_stops_between_pages(autojump_clock: trio.testing.MockClock) -> None:
    class Slow(Listing):
        async def fetch(self, request: PageRequest) -> Page[Row]:
            await trio.sleep(1)
            return await super().fetch(request)

    listing = Slow(list(range(1_000, 1_050)), 5, broken=False)
    paging = _paging()
    got = await _collect_with_deadline(listing, paging, trio.current_time() + 2.5)
    assert len(got) == 15 and paging.truncated and paging.pages == 3


async def _collect_with_deadline(
    listing: Listing, paging: Paging[Row], deadline: float
) -> list[Row]:
    return [row async for row in walk(paging, listing.fetch, deadline=deadline)]


def test_bad_max_pages() -> None:
    with pytest.raises(ValueError):
        _paging(max_pages=0)
