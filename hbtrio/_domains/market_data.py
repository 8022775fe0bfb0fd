"""The market-data part of ``Client``: order books, tickers, candles, trading rules."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

import trio

from .._actors.rest import RestActor
from .._config import ClientConfig
from .._errors import (
    HbtrioError,
    InputValidationError,
    MalformedResponse,
    NotFound,
    lone_exception,
)
from .._validation import (
    check_exchange,
    check_interval,
    check_market,
    check_markets,
    check_range,
    check_time_range,
)
from .._wire import rest as wire
from ..events import EventEngine
from ..models import Candle, OrderBook, Ticker, TradingRule
from ._part import Part, TimeArg

__all__ = ["MarketDataPart"]


class MarketDataPart(Part):
    """Order books, composed tickers, candles and the connectors' trading rules.

    Args:
        config: The client configuration.
        rest: The REST actor.
        engine: The event engine the client publishes to.
    """

    def __init__(self, config: ClientConfig, rest: RestActor, engine: EventEngine) -> None:
        super().__init__(config, rest, engine)
        self._tickers_supported: dict[str, bool] = {}

    async def get_trading_rules(
        self, exchange: str, markets: Iterable[str] | None = None
    ) -> dict[str, TradingRule]:
        """Return the trading rules of a connector (and cache them for order checks).

        Args:
            exchange: Connector name.
            markets: Trading pairs to ask for; ``None`` for all.

        Returns:
            Trading rule per trading pair.

        Raises:
            InputValidationError: An argument is invalid.
            HbtrioError: The request failed.
        """
        exchange = check_exchange(exchange)
        pairs = check_markets(markets)
        return await self._trading_rules.fetch(exchange, pairs)

    async def get_order_book(self, exchange: str, market: str, depth: int = 20) -> OrderBook:
        """Return an order book snapshot.

        Args:
            exchange: Connector name.
            market: Trading pair.
            depth: Levels per side, 1..1000.

        Returns:
            The book (bids best first, asks best first).

        Raises:
            InputValidationError: An argument is invalid.
            HbtrioError: The request failed.
        """
        exchange = check_exchange(exchange)
        market = check_market(market)
        req = wire.build_order_book(exchange, market, check_range(depth, "depth"))
        return await self._rest.call(
            req, lambda body: wire.parse_order_book(body, exchange, market)
        )

    async def get_ticker(self, exchange: str, market: str) -> Ticker:
        """Return a ticker composed from several endpoints, every field filled.

        bid/ask from the top of the order book, last from ``market-data/prices``,
        volume from ``market-data/tickers`` (newer servers; on a 404 the client
        remembers the endpoint is missing and sums the last 24 one-hour candles
        instead). An empty book side falls back to the last price; a missing last
        price to the mid of the book. ``timestamp`` is the freshest input's.
        The requests run concurrently, so the bound is that of one call.

        Args:
            exchange: Connector name.
            market: Trading pair.

        Returns:
            The ticker.

        Raises:
            InputValidationError: An argument is invalid.
            MalformedResponse: The server has no price data for the market at all.
            HbtrioError: A request failed.
        """
        exchange = check_exchange(exchange)
        market = check_market(market)
        results: dict[str, Any] = {}

        async def book() -> None:
            results["book"] = await self._rest.call(
                wire.build_order_book(exchange, market, 1),
                lambda body: wire.parse_order_book(body, exchange, market),
            )

        async def prices() -> None:
            results["prices"] = await self._rest.call(
                wire.build_prices(exchange, [market]), wire.parse_prices
            )

        async def volume() -> None:
            results["volume"] = await self._volume(exchange, market)

        try:
            await gather(book, prices, volume)
        except HbtrioError as exc:
            # Name the call the user made, not one of the endpoints composing it.
            raise _named(exc, f"get_ticker({exchange!r}, {market!r})") from exc
        snapshot: OrderBook = results["book"]
        price_info: wire.Prices = results["prices"]
        vol, vol_ts = results["volume"]
        last = price_info.prices.get(market)
        bid = snapshot.bids[0].price if snapshot.bids else None
        ask = snapshot.asks[0].price if snapshot.asks else None
        if last is None and bid is not None and ask is not None:
            last = (bid + ask) / 2
        if last is None:
            last = bid if bid is not None else ask
        if last is None:
            raise MalformedResponse(
                f"get_ticker({exchange!r}, {market!r}): no price data for {market} on {exchange}"
            )
        stamps = [t for t in (snapshot.timestamp, price_info.timestamp, vol_ts) if t]
        return Ticker(
            exchange=exchange,
            market=market,
            bid=bid if bid is not None else last,
            ask=ask if ask is not None else last,
            last=last,
            volume=vol,
            timestamp=max(stamps) if stamps else self._rest.clock(),
        )

    async def _volume(self, exchange: str, market: str) -> tuple[Decimal, float]:
        if self._tickers_supported.get(exchange, True):
            try:
                stats = await self._rest.call(wire.build_tickers(exchange), wire.parse_tickers)
            except NotFound:
                self._tickers_supported[exchange] = False
            else:
                self._tickers_supported[exchange] = True
                entry = stats.get(market)
                if entry is not None and entry.volume is not None:
                    return entry.volume, entry.timestamp
        candles = await self._rest.call(
            wire.build_candles(exchange, market, "1h", 24), wire.parse_candles
        )
        total = sum((c.volume for c in candles), Decimal(0))
        return total, max((c.timestamp for c in candles), default=0.0)

    async def get_candles(
        self, exchange: str, market: str, interval: str = "1m", limit: int = 100
    ) -> list[Candle]:
        """Return recent candles.

        Args:
            exchange: Connector name.
            market: Trading pair.
            interval: Candle interval, e.g. ``1m``.
            limit: Number of candles, 1..1000.

        Returns:
            The candles, oldest first as the server sends them.

        Raises:
            InputValidationError: An argument is invalid.
            HbtrioError: The request failed.
        """
        req = wire.build_candles(
            check_exchange(exchange),
            check_market(market),
            check_interval(interval),
            check_range(limit, "limit"),
        )
        return await self._rest.call(req, wire.parse_candles)

    async def get_historical_candles(
        self,
        exchange: str,
        market: str,
        interval: str = "1h",
        *,
        start: datetime | float | int,
        end: TimeArg = None,
    ) -> list[Candle]:
        """Return candles of a past time range.

        Args:
            exchange: Connector name.
            market: Trading pair.
            interval: Candle interval, e.g. ``1h``.
            start: Range start (aware ``datetime`` or epoch seconds).
            end: Range end (default: now).

        Returns:
            The candles.

        Raises:
            InputValidationError: An argument is invalid.
            HbtrioError: The request failed.
        """
        exchange = check_exchange(exchange)
        market = check_market(market)
        interval = check_interval(interval)
        if start is None:
            raise InputValidationError("start", "is required")
        s, e = check_time_range(start, self._rest.clock() if end is None else end)
        assert s is not None and e is not None
        req = wire.build_historical_candles(
            exchange, market, interval, int(s * 1000), int(e * 1000)
        )
        return await self._rest.call(req, wire.parse_candles)


async def gather(*fns: Callable[[], Any]) -> None:
    """Run ``fns`` concurrently; raise the first failure unwrapped.

    Args:
        *fns: Async functions without arguments.

    Raises:
        HbtrioError: The first hbtrio error among the failures.
    """
    try:
        async with trio.open_nursery() as nursery:
            for fn in fns:
                nursery.start_soon(fn)
    except BaseExceptionGroup as group:
        leaves = [lone_exception(e) for e in group.exceptions]
        for leaf in leaves:
            if isinstance(leaf, HbtrioError):
                raise leaf from None
        raise


def _named(exc: HbtrioError, call: str) -> HbtrioError:
    """A copy of ``exc`` (same type and details) naming the public ``call``.

    The method and path of the inner request are dropped from the copy: the
    user did not make that request.
    """
    clone = copy.copy(exc)
    clone.message = f"{call} failed: {exc.message}"
    clone.args = (clone.message,)
    clone.method = clone.path = None
    return clone
