"""The ``hbtrio-aio`` and ``hbtrio-sync`` contenders: hbtrio through its other front doors.

They measure what each bridge costs beside the Trio client: ``hbtrio-aio`` drives
``hbtrio.aio.open_client`` from one persistent asyncio loop (Trio as a guest on it),
``hbtrio-sync`` drives ``hbtrio.sync.open_client`` from the worker's main thread
(Trio in the client's background thread). Both run only the ``order_place`` and
``order_book`` scenarios (``BRIDGE_SCENARIOS``), with the requests of the
``hbtrio`` contender, through the public API only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from decimal import Decimal
from functools import partial
from typing import Any, Final

from ._drive import limit_price, time_calls
from .contender_hbtrio import HbtrioContender
from .protocol import BRIDGE_SCENARIOS, Target

__all__ = ["AioContender", "SyncBridgeContender"]


def _config(target: Target) -> Any:
    import hbtrio

    return hbtrio.ClientConfig(
        host=target.host,
        port=target.port,
        api_key=target.api_key,
        tls=target.tls,
        ca_file=target.ca_file,
        account=target.account,
        timeout=10.0,
    )


def _unsupported(scenario: str) -> NotImplementedError:
    return NotImplementedError(
        f"{scenario}: the bridge contenders run {', '.join(BRIDGE_SCENARIOS)} only"
    )


class AioContender(HbtrioContender):
    """hbtrio from asyncio (``hbtrio.aio``); the scenarios are the ``hbtrio`` ones."""

    name: Final = "hbtrio-aio"  # type: ignore[misc]

    async def setup(self, target: Target) -> dict[str, str]:
        """Open the asyncio client (returns once connected and authenticated).

        Args:
            target: The server.

        Returns:
            hbtrio's version.
        """
        import hbtrio
        import hbtrio.aio

        self._target = target
        self._client = await self._stack.enter_async_context(
            hbtrio.aio.open_client(_config(target))
        )
        await self._client.get_order_book(target.connector, target.trading_pair, depth=1)
        return {"hbtrio": hbtrio.__version__}

    async def latency(self, scenario: str, n: int, warmup: int) -> list[float]:
        """Timed round trips of ``order_place`` or ``order_book``.

        Args:
            scenario: The scenario.
            n: Timed samples.
            warmup: Untimed round trips first.

        Returns:
            Latencies in microseconds.

        Raises:
            NotImplementedError: Another scenario.
        """
        if scenario not in BRIDGE_SCENARIOS:
            raise _unsupported(scenario)
        return await super().latency(scenario, n, warmup)

    async def throughput(self, concurrency: int, duration: float) -> tuple[int, float, float]:
        """Not run by this contender.

        Args:
            concurrency: Ignored.
            duration: Ignored.

        Raises:
            NotImplementedError: Always.
        """
        raise _unsupported("throughput")

    async def stream(self, duration: float, warmup: float) -> tuple[int, float, float]:
        """Not run by this contender.

        Args:
            duration: Ignored.
            warmup: Ignored.

        Raises:
            NotImplementedError: Always.
        """
        raise _unsupported("stream")

    async def extra(self, scenario: str, n: int) -> tuple[list[float], dict[str, float]]:
        """Not run by this contender.

        Args:
            scenario: Ignored.
            n: Ignored.

        Raises:
            NotImplementedError: Always.
        """
        raise _unsupported(scenario)


class SyncBridgeContender:
    """hbtrio from blocking code (``hbtrio.sync``)."""

    name: Final = "hbtrio-sync"

    def __init__(self) -> None:
        self._target: Target | None = None
        self._client: Any = None
        self._stack = contextlib.ExitStack()

    @property
    def _t(self) -> Target:
        if self._target is None:
            raise RuntimeError("setup() first")
        return self._target

    def setup(self, target: Target) -> dict[str, str]:
        """Open the blocking client (returns once connected and authenticated).

        Args:
            target: The server.

        Returns:
            hbtrio's version.
        """
        import hbtrio
        import hbtrio.sync

        self._target = target
        self._client = self._stack.enter_context(hbtrio.sync.open_client(_config(target)))
        self._client.get_order_book(target.connector, target.trading_pair, depth=1)
        return {"hbtrio": hbtrio.__version__}

    def latency(self, scenario: str, n: int, warmup: int) -> list[float]:
        """Timed round trips of ``order_place`` or ``order_book``.

        Args:
            scenario: The scenario.
            n: Timed samples.
            warmup: Untimed round trips first.

        Returns:
            Latencies in microseconds.

        Raises:
            NotImplementedError: Another scenario.
        """
        import hbtrio

        t = self._t
        client = self._client
        call: Callable[[], object]
        if scenario == "order_place":
            book = client.get_order_book(t.connector, t.trading_pair, depth=1)
            call = partial(
                client.place_limit_order,
                t.connector,
                t.trading_pair,
                hbtrio.Side.BUY,
                price=limit_price(book.bids[0].price, book.asks[0].price, t.price_factor),
                amount=Decimal(t.order_amount),
            )
        elif scenario == "order_book":
            call = partial(client.get_order_book, t.connector, t.trading_pair, depth=t.book_depth)
        else:
            raise _unsupported(scenario)
        return time_calls(call, n, warmup)

    def throughput(self, concurrency: int, duration: float) -> tuple[int, float, float]:
        """Not run by this contender.

        Args:
            concurrency: Ignored.
            duration: Ignored.

        Raises:
            NotImplementedError: Always.
        """
        raise _unsupported("throughput")

    def stream(self, duration: float, warmup: float) -> tuple[int, float, float]:
        """Not run by this contender.

        Args:
            duration: Ignored.
            warmup: Ignored.

        Raises:
            NotImplementedError: Always.
        """
        raise _unsupported("stream")

    def cleanup(self) -> int:
        """Cancel every open order of the target market with ``cancel_all_orders``.

        Returns:
            How many orders were cancelled.
        """
        t = self._t
        return len(self._client.cancel_all_orders(exchange=t.connector, market=t.trading_pair))

    def close(self) -> None:
        """Close the client (and its Trio thread)."""
        self._stack.close()
        self._client = None
