"""The hbtrio contender, driven through the public API only (api.md).

This is the one place the suite touches hbtrio's client. It uses
``hbtrio.open_client``, ``client.place_limit_order``, ``client.place_market_order``,
``client.get_order_book(depth=20)``, ``client.get_ticker``,
``client.cancel_all_orders``, ``client.subscribe_order_book``, ``client.events()``
and ``hbtrio.EventEngine.subscribe``/``publish``. Should the client be
missing (an old or partial install) the runner skips this contender with a note
(see ``availability``).

Runs under Trio (the worker calls it from ``trio.run``).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from functools import partial
from typing import Any, Final

from ._drive import SnapshotWindow, limit_price, time_calls_async
from .protocol import Target

__all__ = ["HbtrioContender", "availability"]

#: Names of the public API this adapter needs.
REQUIRED_API: Final = ("open_client", "ClientConfig", "EventEngine", "Side", "TradeEvent")
#: Subscriptions held by the ``memory`` scenario.
MEMORY_SUBSCRIPTIONS: Final = 100
#: Subscribers of the ``fanout`` scenario.
FANOUT_SUBSCRIBERS: Final = 10


def availability() -> str | None:
    """Whether the hbtrio client can be benchmarked yet.

    Returns:
        ``None`` when it can, else a note saying what is missing.
    """
    try:
        import hbtrio
    except ImportError as exc:  # pragma: no cover - we are inside hbtrio
        return f"hbtrio cannot be imported: {exc}"
    missing = [name for name in REQUIRED_API if not hasattr(hbtrio, name)]
    if missing:
        return "hbtrio client not available yet (missing: " + ", ".join(missing) + ")"
    return None


class HbtrioContender:
    """hbtrio driven through its public API."""

    name: Final = "hbtrio"

    def __init__(self) -> None:
        self._target: Target | None = None
        self._client: Any = None
        self._stack = contextlib.AsyncExitStack()

    @property
    def _t(self) -> Target:
        if self._target is None:
            raise RuntimeError("setup() first")
        return self._target

    async def setup(self, target: Target) -> dict[str, str]:
        """Open the client (returns once connected and authenticated).

        Args:
            target: The server.

        Returns:
            hbtrio's version.
        """
        import hbtrio

        self._target = target
        config = hbtrio.ClientConfig(
            host=target.host,
            port=target.port,
            api_key=target.api_key,
            tls=target.tls,
            ca_file=target.ca_file,
            account=target.account,
            timeout=10.0,
        )
        self._client = await self._stack.enter_async_context(hbtrio.open_client(config))
        await self._client.get_order_book(target.connector, target.trading_pair, depth=1)
        return {"hbtrio": hbtrio.__version__}

    async def _limit_price(self) -> Decimal:
        t = self._t
        book = await self._client.get_order_book(t.connector, t.trading_pair, depth=1)
        return limit_price(book.bids[0].price, book.asks[0].price, t.price_factor)

    async def latency(self, scenario: str, n: int, warmup: int) -> list[float]:
        """Timed round trips of a latency scenario.

        Args:
            scenario: ``order_place``, ``order_book`` or ``ticker``.
            n: Timed samples.
            warmup: Untimed round trips first.

        Returns:
            Latencies in microseconds.

        Raises:
            ValueError: Unknown scenario.
        """
        import hbtrio

        t = self._t
        client = self._client
        call: Callable[[], Awaitable[object]]
        if scenario == "order_place":
            call = partial(
                client.place_limit_order,
                t.connector,
                t.trading_pair,
                hbtrio.Side.BUY,
                price=await self._limit_price(),
                amount=Decimal(t.order_amount),
            )
        elif scenario == "order_book":
            call = partial(client.get_order_book, t.connector, t.trading_pair, depth=t.book_depth)
        elif scenario == "ticker":
            call = partial(client.get_ticker, t.connector, t.trading_pair)
        else:
            raise ValueError(f"unknown latency scenario {scenario!r}")
        return await time_calls_async(call, n, warmup)

    async def throughput(self, concurrency: int, duration: float) -> tuple[int, float, float]:
        """``concurrency`` Trio tasks calling ``get_order_book`` back to back.

        Args:
            concurrency: Number of concurrent tasks.
            duration: Seconds.

        Returns:
            ``(requests, wall_s, cpu_s)``.
        """
        import trio

        t = self._t
        client = self._client
        done = 0
        cpu0, t0 = time.process_time(), time.perf_counter()
        deadline = t0 + duration

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                await client.get_order_book(t.connector, t.trading_pair, depth=t.book_depth)
                done += 1

        async with trio.open_nursery() as nursery:
            for _ in range(concurrency):
                nursery.start_soon(worker)
        return done, time.perf_counter() - t0, time.process_time() - cpu0

    def _subscribe_book(self, depth: int) -> Any:
        t = self._t
        return self._client.subscribe_order_book(
            t.connector, t.trading_pair, depth=depth, update_interval=0
        )

    async def stream(self, duration: float, warmup: float) -> tuple[int, float, float]:
        """Count order-book snapshots delivered by ``subscribe_order_book``.

        Args:
            duration: Counting window, seconds.
            warmup: Seconds of snapshots discarded first.

        Returns:
            ``(snapshots, wall_s, cpu_s)``.
        """
        t = self._t
        async with self._subscribe_book(t.stream_depth) as books:
            window = SnapshotWindow(duration, warmup)
            async for _book in books:
                if window.arrived(time.perf_counter()):
                    break
            return window.result(time.perf_counter())

    async def cleanup(self) -> int:
        """Cancel every open order of the target market with ``cancel_all_orders``.

        Returns:
            How many orders were cancelled.
        """
        t = self._t
        cancelled = await self._client.cancel_all_orders(
            exchange=t.connector, market=t.trading_pair
        )
        return len(cancelled)

    async def extra(self, scenario: str, n: int) -> tuple[list[float], dict[str, float]]:
        """Run an hbtrio-only scenario.

        Args:
            scenario: ``order_event``, ``fanout`` or ``memory``.
            n: Samples (events) for ``order_event`` and ``fanout``.

        Returns:
            ``(samples_us, values)``.

        Raises:
            ValueError: Unknown scenario.
        """
        if scenario == "order_event":
            return await self._order_event(n)
        if scenario == "fanout":
            return await self._fanout(n)
        if scenario == "memory":
            return [], await self._memory()
        raise ValueError(f"unknown scenario {scenario!r}")

    async def _order_event(self, n: int) -> tuple[list[float], dict[str, float]]:
        """Fill -> ``TradeEvent`` latency: market orders alternating buy/sell; each
        sample is the event's arrival (wall clock) minus the fill's server
        timestamp (same host, same clock)."""
        import trio

        import hbtrio

        t = self._t
        client = self._client
        amount = Decimal(t.order_amount)
        sides = (hbtrio.Side.BUY, hbtrio.Side.SELL)
        mine: set[str] = set()
        samples: list[float] = []
        all_in = trio.Event()

        async def collect(events: AsyncIterator[Any]) -> None:
            async for event in events:
                if isinstance(event, hbtrio.TradeEvent) and event.trade.order_id in mine:
                    samples.append((time.time() - event.trade.timestamp) * 1e6)
                    if len(samples) >= n:
                        all_in.set()
                        return

        async with client.events() as events, trio.open_nursery() as nursery:
            nursery.start_soon(collect, events)
            for i in range(n):
                order = await client.place_market_order(
                    t.connector, t.trading_pair, sides[i % 2], amount=amount
                )
                mine.add(order.order_id)
            with trio.move_on_after(10.0):
                await all_in.wait()
            nursery.cancel_scope.cancel()
        return samples, {"fills": float(len(samples)), "orders": float(n)}

    async def _fanout(self, n: int) -> tuple[list[float], dict[str, float]]:
        """Publish ``n`` events to 1 then to 10 subscribers of a private
        ``EventEngine``; a sample is publish -> delivery to the last subscriber.
        Samples returned are the 10-subscriber ones; ``values`` carry both
        distributions' p50/p99 and the added latency."""
        import trio

        import hbtrio

        from .stats import LatencyHistogram

        async def run(subscribers: int) -> list[float]:
            engine = hbtrio.EventEngine()
            samples: list[float] = []
            received = 0
            delivered = trio.Event()
            t0 = 0

            async def consume(stream: AsyncIterator[Any]) -> None:
                nonlocal received, delivered
                async for _event in stream:
                    received += 1
                    if received == subscribers:
                        samples.append((time.perf_counter_ns() - t0) / 1000.0)
                        delivered.set()

            async with contextlib.AsyncExitStack() as stack, trio.open_nursery() as nursery:
                for _ in range(subscribers):
                    stream = await stack.enter_async_context(
                        engine.subscribe(hbtrio.ErrorEvent, buffer=16)
                    )
                    nursery.start_soon(consume, stream)
                await trio.lowlevel.checkpoint()
                for i in range(n):
                    received = 0
                    delivered = trio.Event()
                    event = hbtrio.ErrorEvent(error=f"bench {i}", kind="Bench")
                    t0 = time.perf_counter_ns()
                    engine.publish(event)
                    await delivered.wait()
                nursery.cancel_scope.cancel()
            return samples

        one = LatencyHistogram(await run(1))
        many_samples = await run(FANOUT_SUBSCRIBERS)
        many = LatencyHistogram(many_samples)
        values = {
            "p50_1_us": one.percentile(50),
            "p99_1_us": one.percentile(99),
            "p50_10_us": many.percentile(50),
            "p99_10_us": many.percentile(99),
            "added_p50_us": many.percentile(50) - one.percentile(50),
            "added_p99_us": many.percentile(99) - one.percentile(99),
        }
        return many_samples, values

    async def _memory(self) -> dict[str, float]:
        """Resident memory of this process holding 100 stream subscriptions."""
        import psutil  # type: ignore[import-untyped,unused-ignore]
        import trio

        proc = psutil.Process(os.getpid())
        before = proc.memory_info().rss
        t = self._t
        client = self._client
        kinds = (
            lambda: self._subscribe_book(10),
            lambda: client.subscribe_trades(t.connector, t.trading_pair),
            lambda: client.subscribe_ticker(t.connector, t.trading_pair),
        )
        async with contextlib.AsyncExitStack() as stack:
            for i in range(MEMORY_SUBSCRIPTIONS):
                await stack.enter_async_context(kinds[i % len(kinds)]())
            await trio.sleep(1.0)
            held = proc.memory_info().rss
        return {
            "rss_mb": held / 2**20,
            "delta_mb": (held - before) / 2**20,
            "subscriptions": float(MEMORY_SUBSCRIPTIONS),
        }

    async def close(self) -> None:
        """Close the client."""
        await self._stack.aclose()
        self._client = None
