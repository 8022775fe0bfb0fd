"""The peer contender: the official ``hummingbot-api-client`` (asyncio, aiohttp).

It drives exactly the requests the other contenders send, through the official
client's own calls: ``trading.place_order`` (a LIMIT buy resting away from mid),
``market_data.get_order_book(depth=20)``, a ticker made of what the official
client offers (``market_data.get_prices`` then ``get_order_book(depth=1)``),
``get_order_book`` loops at concurrency 1/8/32, and ``ws.market_data()`` with
``subscribe_order_book(update_interval=0)``.

The official client builds its own ``aiohttp.ClientSession`` in ``init()`` with
no way to pass an SSL context, so the harness (not the package) substitutes the
session factory for the duration of ``init()`` to add
``aiohttp.TCPConnector(ssl=context)`` trusting the simulator's CA. Nothing else
of the client is touched.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from functools import partial
from importlib import metadata
from typing import Any, Final

from ._drive import LIVE_STATUSES, SnapshotWindow, limit_price, time_calls_async
from .protocol import Target

__all__ = ["PeerContender"]


class PeerContender:
    """The official asyncio client, driven as its documentation shows."""

    name: Final = "peer"

    def __init__(self) -> None:
        self._target: Target | None = None
        self._client: Any = None

    @property
    def _t(self) -> Target:
        if self._target is None:
            raise RuntimeError("setup() first")
        return self._target

    async def setup(self, target: Target) -> dict[str, str]:
        """Create and initialise the official client.

        Args:
            target: The server.

        Returns:
            Versions of the official client and aiohttp.
        """
        import aiohttp
        from hummingbot_api_client import (  # type: ignore[import-untyped,unused-ignore]
            HummingbotAPIClient,
        )

        self._target = target
        username, _, password = target.api_key.partition(":")
        scheme = "https" if target.tls else "http"
        client = HummingbotAPIClient(
            base_url=f"{scheme}://{target.host}:{target.port}",
            username=username,
            password=password,
        )
        if target.tls:
            context = ssl.create_default_context(cafile=target.ca_file)
            original = aiohttp.ClientSession

            def session_with_ca(*args: Any, **kwargs: Any) -> aiohttp.ClientSession:
                kwargs.setdefault("connector", aiohttp.TCPConnector(ssl=context))
                return original(*args, **kwargs)

            aiohttp.ClientSession = session_with_ca  # type: ignore[misc,assignment]
            try:
                await client.init()
            finally:
                aiohttp.ClientSession = original  # type: ignore[misc]
        else:
            await client.init()
        self._client = client
        await client.market_data.get_order_book(target.connector, target.trading_pair, depth=1)
        return {
            "hummingbot-api-client": metadata.version("hummingbot-api-client"),
            "aiohttp": aiohttp.__version__,
        }

    async def _limit_price(self) -> float:
        t = self._t
        book = await self._client.market_data.get_order_book(t.connector, t.trading_pair, depth=1)
        bid = Decimal(str(book["bids"][0]["price"]))
        ask = Decimal(str(book["asks"][0]["price"]))
        return float(limit_price(bid, ask, t.price_factor))

    async def _ticker(self) -> tuple[Any, Any]:
        t = self._t
        md = self._client.market_data
        prices = await md.get_prices(t.connector, [t.trading_pair])
        book = await md.get_order_book(t.connector, t.trading_pair, depth=1)
        return prices, book

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
        t = self._t
        call: Callable[[], Awaitable[object]]
        if scenario == "order_place":
            call = partial(
                self._client.trading.place_order,
                t.account,
                t.connector,
                t.trading_pair,
                "BUY",
                float(t.order_amount),
                order_type="LIMIT",
                price=await self._limit_price(),
            )
        elif scenario == "order_book":
            call = partial(
                self._client.market_data.get_order_book,
                t.connector,
                t.trading_pair,
                depth=t.book_depth,
            )
        elif scenario == "ticker":
            call = self._ticker
        else:
            raise ValueError(f"unknown latency scenario {scenario!r}")
        return await time_calls_async(call, n, warmup)

    async def throughput(self, concurrency: int, duration: float) -> tuple[int, float, float]:
        """``concurrency`` tasks calling ``get_order_book`` back to back.

        Args:
            concurrency: Number of concurrent tasks.
            duration: Seconds.

        Returns:
            ``(requests, wall_s, cpu_s)``.
        """
        t = self._t
        md = self._client.market_data
        done = 0
        cpu0, t0 = time.process_time(), time.perf_counter()
        deadline = t0 + duration

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                await md.get_order_book(t.connector, t.trading_pair, depth=t.book_depth)
                done += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done, time.perf_counter() - t0, time.process_time() - cpu0

    async def stream(self, duration: float, warmup: float) -> tuple[int, float, float]:
        """Count order-book snapshots from one subscription at ``update_interval`` 0.

        Args:
            duration: Counting window, seconds.
            warmup: Seconds of snapshots discarded first.

        Returns:
            ``(snapshots, wall_s, cpu_s)``.
        """
        t = self._t
        async with self._client.ws.market_data() as ws:
            await ws.subscribe_order_book(
                t.connector, t.trading_pair, depth=t.stream_depth, update_interval=0
            )
            window = SnapshotWindow(duration, warmup)
            while True:
                msg = await ws.receive()
                if msg.get("type") != "order_book":
                    continue
                now = time.perf_counter()
                if window.arrived(now):
                    return window.result(now)

    async def cleanup(self) -> int:
        """Cancel every live order of the account on the target market.

        Returns:
            How many cancellations were accepted.
        """
        t = self._t
        trading = self._client.trading
        page = await trading.get_active_orders(
            account_names=[t.account],
            connector_names=[t.connector],
            trading_pairs=[t.trading_pair],
            limit=1000,
        )
        cancelled = 0
        for order in page.get("data", []):
            if order.get("status") in LIVE_STATUSES:
                try:
                    await trading.cancel_order(t.account, t.connector, order["order_id"])
                except Exception:  # the official client raises aiohttp errors
                    continue
                cancelled += 1
        return cancelled

    async def extra(self, scenario: str, n: int) -> tuple[list[float], dict[str, float]]:
        """The official client has no event machinery: hbtrio-only scenarios.

        Args:
            scenario: The scenario asked for.
            n: Samples asked for.

        Raises:
            NotImplementedError: Always.
        """
        raise NotImplementedError(f"{scenario} is an hbtrio-only scenario")

    async def close(self) -> None:
        """Close the official client's session."""
        if self._client is not None:
            await self._client.close()
            self._client = None
