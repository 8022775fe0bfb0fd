"""Per-attempt deadlines on pooled connections (the pool's watchdog), over real sockets."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
import trio
import trustme

from hbtrio import RequestTimeout
from hbtrio._actors.http import HttpPool
from tests.actors.test_http import ca, ca_file, tls_setup  # noqa: F401 - fixtures


@pytest.fixture
async def nursery() -> AsyncIterator[trio.Nursery]:
    async with trio.open_nursery() as n:
        yield n
        n.cancel_scope.cancel()


async def test_stall_on_a_reused_connection_times_out_within_bound(
    nursery: trio.Nursery,
    ca: trustme.CA,  # noqa: F811
    ca_file: str,  # noqa: F811
) -> None:
    server, cfg = await tls_setup(nursery, ca, ca_file)
    pool = HttpPool(cfg)
    assert (await pool.request("GET", "/", None, timeout=5)).status == 200
    assert pool.idle_connections == 1
    server.behaviour = "stall"
    began = time.monotonic()
    with pytest.raises(RequestTimeout) as info:
        await pool.request("GET", "/", None, timeout=0.3)
    elapsed = time.monotonic() - began
    assert 0.25 <= elapsed < 1.5
    assert pool.stats.reused == 1  # it went through the watched path
    assert info.value.retryable is False  # the request was written
    assert "within 0.3 s" in str(info.value)
    assert info.value.__cause__ is None
    assert pool.idle_connections == 0  # the timed-out connection is closed
    # The pool recovers: a fresh connection, and the watchdog bounds it again.
    server.behaviour = "ok"
    assert (await pool.request("GET", "/", None, timeout=5)).status == 200
    assert pool.stats.connections_opened == 2
    assert (await pool.request("GET", "/", None, timeout=0.2)).status == 200
    assert pool._watch_scope is not None
    await trio.sleep(0.3)  # past the last deadline with nothing in flight
    assert pool._watch_scope is None  # the watchdog has exited
    await pool.aclose()


async def test_concurrent_watched_attempts_expire_independently(
    nursery: trio.Nursery,
    ca: trustme.CA,  # noqa: F811
    ca_file: str,  # noqa: F811
) -> None:
    server, cfg = await tls_setup(nursery, ca, ca_file)
    pool = HttpPool(cfg)

    async def ok() -> None:
        assert (await pool.request("GET", "/", None, timeout=5)).status == 200

    async with trio.open_nursery() as inner:
        for _ in range(3):
            inner.start_soon(ok)
    assert pool.idle_connections == 3
    server.behaviour = "stall"
    outcomes: dict[float, float] = {}

    async def attempt(seconds: float) -> None:
        began = time.monotonic()
        with pytest.raises(RequestTimeout):
            await pool.request("GET", "/", None, timeout=seconds)
        outcomes[seconds] = time.monotonic() - began

    async with trio.open_nursery() as inner:
        # The longest first: the shorter deadlines move the watchdog's wake earlier.
        for timeout in (0.9, 0.5, 0.2):
            inner.start_soon(attempt, timeout)
    for timeout, elapsed in outcomes.items():
        assert timeout - 0.05 <= elapsed < timeout + 0.5
    assert len(outcomes) == 3
    await pool.aclose()
