"""The one paging primitive: every listing loop of the client goes through it.

The server pages its listings newest first with a ``cursor``; the real server's
order search builds every ``next_cursor`` as ``"0:"`` (protocol.md section 6), so
page 2 repeats page 1. ``Paging`` is the sans-IO state of one walk over a listing:

* it follows the server's cursor while cursors bring something new;
* when a cursor repeats (the same ``next_cursor`` again, or a page of nothing
  new), it pages **by time** instead, where the listing allows it: the next page
  is asked for with ``end`` = the oldest creation time on the last page (the
  boundary millisecond included, duplicates dropped), so every item is reached on
  that server too (more than a page of items created in one millisecond cannot
  be paged past there);
* every item is yielded once (de-duplicated by its key);
* it stops when the server has no more, when a page brings nothing new, after
  ``max_pages`` pages, or (``walk``) when a deadline passes; ``truncated`` then
  says that the walk stopped on a bound rather than at the end.

``walk`` drives a ``Paging`` with an async page fetcher.
"""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator, Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

import trio

from .models import Page

__all__ = ["PageRequest", "Paging", "walk"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PageRequest:
    """What to ask the server for next.

    Attributes:
        cursor: The cursor to send (``None``: none).
        end_ms: Upper bound of the creation time, integer milliseconds (``None``:
            the caller's own bound, if any).
    """

    cursor: str | None
    end_ms: int | None


class Paging(Generic[T]):
    """The state of one walk over a newest-first listing (sans-IO).

    Args:
        key: An item's identity (de-duplication), e.g. its order id.
        stamp: An item's creation time in epoch seconds (time paging), or
            ``None`` when it has none.
        end_ms: The caller's upper time bound, milliseconds (``None``: none).
        max_pages: Most pages fetched.
        time_paging: Whether the listing takes an ``end_time`` filter; without
            it, a repeated cursor ends the walk.
        cursors_broken: Start with time paging at once (the listing's cursors are
            known to repeat, e.g. learnt by an earlier walk).

    Attributes:
        pages: Pages fed so far.
        done: Whether the walk is over.
        truncated: Whether it stopped on ``max_pages`` (or a deadline, see
            ``stop``) while the server had more.
        cursors_broken: Whether the listing's cursors were found to repeat.
    """

    __slots__ = (
        "_cursor",
        "_end_ms",
        "_key",
        "_max_pages",
        "_seen",
        "_stamp",
        "_time_paging",
        "cursors_broken",
        "done",
        "pages",
        "truncated",
    )

    def __init__(
        self,
        *,
        key: Callable[[T], Hashable],
        stamp: Callable[[T], float | None],
        end_ms: int | None = None,
        max_pages: int = 1000,
        time_paging: bool = True,
        cursors_broken: bool = False,
    ) -> None:
        if max_pages < 1:
            raise ValueError("max_pages must be >= 1")
        self._key = key
        self._stamp = stamp
        self._end_ms = end_ms
        self._max_pages = max_pages
        self._time_paging = time_paging
        self._seen: set[Hashable] = set()
        self._cursor: str | None = None
        self.cursors_broken = cursors_broken and time_paging
        self.pages = 0
        self.done = False
        self.truncated = False

    def next_request(self) -> PageRequest | None:
        """The next page to ask for, or ``None`` when the walk is over.

        Returns:
            The request.
        """
        if self.done:
            return None
        return PageRequest(self._cursor, self._end_ms)

    def stop(self) -> None:
        """End the walk early on a bound (a deadline): ``truncated`` becomes true."""
        if not self.done:
            self.done = True
            self.truncated = True

    def feed(self, page: Page[T]) -> list[T]:
        """Take one page's answer and decide what comes next.

        Args:
            page: The page the last ``next_request`` asked for.

        Returns:
            Its items not seen before, in the server's order.
        """
        self.pages += 1
        seen = self._seen
        key = self._key
        new: list[T] = []
        for item in page.items:
            k = key(item)
            if k not in seen:
                seen.add(k)
                new.append(item)
        asked = self._cursor
        if not page.has_more or not page.items:
            self.done = True
        elif new and not self.cursors_broken and page.next_cursor and page.next_cursor != asked:
            self._cursor = page.next_cursor
        elif not self._time_paging or (not new and asked is None):
            # no other way on, or asked by time and nothing new: nothing more to reach
            self.done = True
        else:
            if asked is not None and (not new or page.next_cursor == asked):
                self.cursors_broken = True  # the cursor repeats: page by time from here
            stamps = [s for s in map(self._stamp, page.items) if s]
            if stamps:
                boundary = math.ceil(min(stamps) * 1000)
                end = self._end_ms
                self._end_ms = boundary if end is None else min(end, boundary)
                self._cursor = None
            else:
                self.done = True
        if not self.done and self.pages >= self._max_pages:
            self.done = True
            self.truncated = True
        return new


async def walk(
    paging: Paging[T],
    fetch: Callable[[PageRequest], Awaitable[Page[T]]],
    *,
    deadline: float | None = None,
) -> AsyncGenerator[T, None]:
    """Yield every new item of a listing, page by page, as ``paging`` directs.

    Args:
        paging: The walk's state (its ``truncated`` tells afterwards whether a
            bound ended it).
        fetch: Fetches one page (one bounded request).
        deadline: Trio time after which no further page is asked for.

    Yields:
        Each item once, newest first.
    """
    while (request := paging.next_request()) is not None:
        if deadline is not None and paging.pages and trio.current_time() >= deadline:
            paging.stop()
            return
        page = await fetch(request)
        for item in paging.feed(page):
            yield item
