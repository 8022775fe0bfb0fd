"""Simulated liquidity: seeded market makers on a random walk, public trades, candles.

Every market gets one ``LiquidityModel``. Its makers keep a ladder of
``levels`` resting orders on each side around a reference mid that follows a
mean-reverting geometric random walk. Each ``LiquidityModel.step`` is one
*book change*: either the makers re-quote one ladder level on both sides at the
current reference mid (an order that now crosses trades, which is how user
orders near the mid get filled as the market moves), or a simulated taker sends
a small market order (a public trade). After every change, filled ladder levels
are replaced at once, so that at least ``maker_size`` (1 BTC, 10 ETH by default)
rests within 0.1 % of mid on each side at all times.

Everything random comes from ``random.Random(f"{seed}:{connector}:{pair}")``: for
a given seed (and the same user orders) the sequence of book changes and
trades is the same on every run.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterable, Mapping
from decimal import ROUND_UP, Decimal
from typing import Any, Final

from .engine import (
    BUY,
    DEFAULT_BALANCES,
    DEFAULT_MARKETS,
    LIMIT,
    MAKER_ACCOUNT,
    MARKET,
    SELL,
    Engine,
    Market,
    MarketSpec,
    SimOrder,
    quantize_down,
)

__all__ = ["INTERVALS", "LiquidityModel", "Simulation", "candle_records"]

#: Candle intervals the simulator serves, in seconds.
INTERVALS: Final[Mapping[str, int]] = {
    "1s": 1,
    "1m": 60,
    "3m": 180,
    "5m": 300,
    "15m": 900,
    "30m": 1800,
    "1h": 3600,
    "2h": 7200,
    "4h": 14400,
    "6h": 21600,
    "12h": 43200,
    "1d": 86400,
}
_BP: Final = 1e-4


class LiquidityModel:
    """The market makers and takers of one market.

    Args:
        engine: The engine.
        market: The market.
        seed: Random seed.
        levels: Ladder levels per side.
        spread_bp: Distance of the first level from mid, basis points.
        step_bp: Distance between ladder levels, basis points.
        vol_bp_per_s: Volatility of the reference mid, basis points per sqrt(second).
        rate: Book changes per second the model is stepped at (scales the walk).
        trade_prob: Share of steps that are a simulated taker trade.
    """

    def __init__(
        self,
        engine: Engine,
        market: Market,
        seed: int,
        *,
        levels: int = 10,
        spread_bp: float = 0.5,
        step_bp: float = 1.0,
        vol_bp_per_s: float = 2.0,
        rate: float = 10.0,
        trade_prob: float = 0.2,
    ) -> None:
        spec = market.spec
        self.engine = engine
        self.market = market
        self.rng = random.Random(f"{seed}:{spec.connector}:{spec.trading_pair}")
        self.levels = levels
        self.spread = spread_bp * _BP
        self.step_width = step_bp * _BP
        self.sigma = vol_bp_per_s * _BP / math.sqrt(max(rate, 1e-9))
        self.trade_prob = trade_prob
        self.anchor = float(spec.start_mid)
        self.mid = self.anchor
        self.bids: list[SimOrder | None] = [None] * levels
        self.asks: list[SimOrder | None] = [None] * levels
        self.cursor = 0
        self.steps = 0

    def _price(self, side: str, level: int) -> Decimal:
        rule = self.market.spec.rule
        offset = self.spread + level * self.step_width
        raw = self.mid * (1 - offset) if side == BUY else self.mid * (1 + offset)
        price = Decimal(repr(raw))
        if side == BUY:
            return quantize_down(price, rule.min_price_increment)
        steps = (price / rule.min_price_increment).to_integral_value(rounding=ROUND_UP)
        return steps * rule.min_price_increment

    def _size(self) -> Decimal:
        spec = self.market.spec
        raw = Decimal(repr(self.rng.uniform(0.2, 1.0))) * spec.maker_size
        return max(
            quantize_down(raw, spec.rule.min_base_amount_increment), spec.rule.min_order_size
        )

    def _quote(self, side: str, level: int) -> None:
        ladder = self.bids if side == BUY else self.asks
        old = ladder[level]
        if old is not None and not old.is_terminal:
            self.engine.cancel_order(old)
        spec = self.market.spec
        order = self.engine.place(
            MAKER_ACCOUNT,
            spec.connector,
            spec.trading_pair,
            side,
            LIMIT,
            self._size(),
            self._price(side, level),
        )
        ladder[level] = order

    def bootstrap(self) -> None:
        """Place the whole ladder on both sides."""
        for level in range(self.levels):
            self._quote(BUY, level)
            self._quote(SELL, level)

    def replenish(self, max_rounds: int = 4) -> None:
        """Re-place every ladder level whose order was filled.

        Args:
            max_rounds: Bound on re-quoting rounds (a re-placed level may trade again).
        """
        for _ in range(max_rounds):
            missing = [
                (side, i)
                for side, ladder in ((BUY, self.bids), (SELL, self.asks))
                for i, o in enumerate(ladder)
                if o is None or o.is_terminal
            ]
            if not missing:
                return
            for side, i in missing:
                self._quote(side, i)

    def step(self) -> None:
        """Make one book change: move the reference mid, then re-quote or trade."""
        self.steps += 1
        rng = self.rng
        drift = 0.001 * math.log(self.anchor / self.mid)
        self.mid *= math.exp(drift + rng.gauss(0.0, self.sigma))
        if rng.random() < self.trade_prob:
            spec = self.market.spec
            side = BUY if rng.random() < 0.5 else SELL
            raw = Decimal(repr(rng.uniform(0.01, 0.2))) * spec.maker_size
            amount = max(
                quantize_down(raw, spec.rule.min_base_amount_increment), spec.rule.min_order_size
            )
            self.engine.place(
                MAKER_ACCOUNT, spec.connector, spec.trading_pair, side, MARKET, amount
            )
        else:
            level = self.cursor
            self.cursor = (self.cursor + 1) % self.levels
            self._quote(BUY, level)
            self._quote(SELL, level)
        self.replenish()

    def backfill(self, now: float, minutes: int = 1_000) -> None:
        """Fill the 1-minute candles with a seeded history ending at the start mid.

        Args:
            now: Current epoch seconds.
            minutes: Number of past one-minute candles.
        """
        spec = self.market.spec
        rng = random.Random(f"{self.rng.random()}:history")
        series = self.market.candles_1m
        start_bucket = math.floor(now / 60) * 60 - minutes * 60
        price = float(spec.start_mid)
        # walk backwards from the start mid, then emit forwards
        closes = [price]
        for _ in range(minutes - 1):
            price /= math.exp(rng.gauss(0.0, 8e-4))
            closes.append(price)
        closes.reverse()
        inc = spec.rule.min_price_increment
        prev = closes[0]
        for i, close in enumerate(closes):
            o, c = prev, close
            hi = max(o, c) * (1 + abs(rng.gauss(0.0, 3e-4)))
            lo = min(o, c) * (1 - abs(rng.gauss(0.0, 3e-4)))
            volume = Decimal(repr(round(rng.uniform(0.5, 5.0), 5))) * spec.maker_size
            n = rng.randint(10, 200)
            dp = [quantize_down(Decimal(repr(x)), inc) for x in (o, hi, lo, c)]
            mean = (dp[0] + dp[3]) / 2
            buy_share = Decimal(repr(round(rng.uniform(0.3, 0.7), 4)))
            series.candles.append(
                [
                    float(start_bucket + i * 60),
                    dp[0],
                    dp[1],
                    dp[2],
                    dp[3],
                    volume,
                    volume * mean,
                    n,
                    volume * buy_share,
                    volume * buy_share * mean,
                ]
            )
            prev = close
        if closes:
            self.market.last_price = quantize_down(Decimal(repr(closes[-1])), inc)


class Simulation:
    """The engine plus one liquidity model per market.

    Args:
        seed: Random seed.
        markets: Markets to simulate.
        accounts: User account names.
        balances: Starting balances per user account and connector.
        book_change_rate: Book changes per second per market (drives the walk's scale).
        clock: Wall clock, epoch seconds.
        terminal_linger: Seconds a finished order stays listed among active orders.
        backfill_minutes: One-minute candles of synthetic history per market.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        markets: Iterable[MarketSpec] = DEFAULT_MARKETS,
        accounts: Iterable[str] = ("master_account",),
        balances: Mapping[str, Decimal] = DEFAULT_BALANCES,
        book_change_rate: float = 10.0,
        clock: Callable[[], float] = time.time,
        terminal_linger: float = 1.0,
        backfill_minutes: int = 1_000,
    ) -> None:
        self.seed = seed
        self.book_change_rate = book_change_rate
        self.engine = Engine(
            markets,
            accounts=accounts,
            balances=balances,
            clock=clock,
            terminal_linger=terminal_linger,
        )
        self.models: dict[tuple[str, str], LiquidityModel] = {}
        now = clock()
        for key, market in self.engine.markets.items():
            model = LiquidityModel(self.engine, market, seed, rate=book_change_rate)
            if backfill_minutes:
                model.backfill(now, backfill_minutes)
            model.bootstrap()
            self.models[key] = model

    def step(self) -> None:
        """One book change on every market."""
        for model in self.models.values():
            model.step()

    def replenish(self, connector: str, trading_pair: str) -> None:
        """Restore the makers' ladder of a market after a user order traded.

        Args:
            connector: Connector name.
            trading_pair: Trading pair.
        """
        model = self.models.get((connector, trading_pair))
        if model is not None:
            model.replenish()


def candle_records(
    market: Market,
    interval: str,
    now: float,
    *,
    max_records: int | None = None,
    start: float | None = None,
    end: float | None = None,
) -> list[dict[str, Any]]:
    """Candles of a market as the candles endpoints serve them.

    Args:
        market: The market.
        interval: One of ``INTERVALS``.
        now: Current epoch seconds (flat candles are added up to it).
        max_records: Keep only the newest ``max_records``.
        start: Earliest candle open time, epoch seconds (inclusive).
        end: Latest candle open time, epoch seconds (inclusive).

    Returns:
        Candle dicts, oldest first.

    Raises:
        KeyError: Unknown interval.
    """
    width = INTERVALS[interval]
    base = market.candles_1s if width < 60 else market.candles_1m
    base.extend_to(now, market.last_price)
    if width == base.width:
        rows = [list(c) for c in base.candles]
    else:
        rows = []
        for c in base.candles:
            bucket = math.floor(c[0] / width) * width
            if rows and rows[-1][0] == bucket:
                r = rows[-1]
                r[2] = max(r[2], c[2])
                r[3] = min(r[3], c[3])
                r[4] = c[4]
                for k in (5, 6, 7, 8, 9):
                    r[k] += c[k]
            else:
                rows.append([float(bucket), *c[1:]])
    if start is not None:
        rows = [r for r in rows if r[0] >= start]
    if end is not None:
        rows = [r for r in rows if r[0] <= end]
    if max_records is not None:
        rows = rows[-max_records:] if max_records > 0 else []
    return [
        {
            "timestamp": r[0],
            "open": float(r[1]),
            "high": float(r[2]),
            "low": float(r[3]),
            "close": float(r[4]),
            "volume": float(r[5]),
            "quote_asset_volume": float(r[6]),
            "n_trades": r[7],
            "taker_buy_base_volume": float(r[8]),
            "taker_buy_quote_volume": float(r[9]),
        }
        for r in rows
    ]
