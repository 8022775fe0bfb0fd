"""The simulator's matching engine: pure, synchronous, no I/O.

One ``Engine`` holds every market (a ``(connector, trading pair)`` book with
price-time priority), every account's balances with reservations, every order
the users placed and every fill. It knows nothing about HTTP: the ASGI app turns
its answers into JSON, the liquidity model drives it with simulated market makers.

Rules, as on the real Hummingbot API (protocol.md sections 2 and 5):

* Synchronous rejections (``RequestRejected``) carry the HTTP status and the
  exact ``detail`` text of the real server: unknown account, unsupported pair,
  missing price, size or notional below the trading rule.
* Price and amount are quantized *down* to the rule's increments, not rejected;
  the minimum size and notional are then checked on the quantized values, as
  the real server does (see ``Engine.check_request``).
* Exchange-side failures are asynchronous: the order is accepted, then ends
  ``FAILED`` with ``error_message`` (``Insufficient balance: ...``,
  ``Order price is outside the allowed range: ...``, or, for a ``LIMIT_MAKER``
  that would cross, ``Order would immediately match and take: ...``).
* A ``MARKET`` order fills against the book up to its amount; what the book
  cannot fill is cancelled (``CANCELLED`` with ``filled_amount < amount``, like
  an immediate-or-cancel order), on both sides. Its balance check is for the
  most it can take out of the wallet: a sell needs its amount of base, a buy the
  cost (fee included) of what the asks can fill.
* Fees: a flat rate on the quote amount of every fill, paid in the quote token
  by both maker and taker (default 0.1 %).
* Reservations: a resting ``BUY`` reserves ``price * amount * (1 + fee)`` quote,
  a resting ``SELL`` reserves ``amount`` base; fills release their share,
  cancellation and failure release the rest.
"""

from __future__ import annotations

import bisect
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any, Final

__all__ = [
    "BUY",
    "DEFAULT_BALANCES",
    "DEFAULT_FEE_RATE",
    "DEFAULT_MARKETS",
    "MAKER_ACCOUNT",
    "SELL",
    "TERMINAL_STATUSES",
    "Book",
    "CandleSeries",
    "Engine",
    "Fill",
    "Market",
    "MarketSpec",
    "PublicTrade",
    "RequestRejected",
    "SimOrder",
    "TradingRule",
    "quantize_down",
]

BUY: Final = "BUY"
SELL: Final = "SELL"
LIMIT: Final = "LIMIT"
MARKET: Final = "MARKET"
LIMIT_MAKER: Final = "LIMIT_MAKER"
ORDER_TYPES: Final = (LIMIT, LIMIT_MAKER, MARKET)

SUBMITTED: Final = "SUBMITTED"
OPEN: Final = "OPEN"
PARTIALLY_FILLED: Final = "PARTIALLY_FILLED"
FILLED: Final = "FILLED"
CANCELLED: Final = "CANCELLED"
FAILED: Final = "FAILED"
TERMINAL_STATUSES: Final = frozenset({FILLED, CANCELLED, FAILED})

#: The account of the simulated market makers: hidden from every user-facing answer.
MAKER_ACCOUNT: Final = "__market_makers__"
#: Fee rate on the quote amount of every fill, for maker and taker alike.
DEFAULT_FEE_RATE: Final = Decimal("0.001")
#: Balances of every user account on every connector at start.
DEFAULT_BALANCES: Final[Mapping[str, Decimal]] = {
    "BTC": Decimal(10),
    "ETH": Decimal(100),
    "USDT": Decimal(1_000_000),
}
_HUGE: Final = Decimal("1E56")  # Hummingbot's "no limit" in trading rules
_ZERO: Final = Decimal(0)
_ONE: Final = Decimal(1)


class RequestRejected(Exception):
    """A synchronous rejection: the request is answered with an HTTP error.

    Args:
        status: HTTP status code of the answer.
        detail: The exact ``detail`` text of the real server.
    """

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def quantize_down(value: Decimal, increment: Decimal) -> Decimal:
    """Round ``value`` down to a multiple of ``increment`` (as Hummingbot does).

    Args:
        value: A non-negative amount or price.
        increment: The rule's increment (> 0).

    Returns:
        The largest multiple of ``increment`` not above ``value``.
    """
    steps = (value / increment).to_integral_value(rounding=ROUND_DOWN)
    return steps * increment


@dataclass(frozen=True, slots=True)
class TradingRule:
    """The trading rule of one pair, as the trading-rules endpoint serves it.

    Attributes:
        min_order_size: Minimum base amount.
        min_notional_size: Minimum ``amount * price`` in quote.
        min_price_increment: Price tick.
        min_base_amount_increment: Amount step.
        max_order_size: Maximum base amount (Hummingbot's 1e56 means none).
        min_quote_amount_increment: Quote step (informational).
        min_order_value: Minimum order value (informational).
        max_price_significant_digits: Price significant digits (1e56: no limit).
        supports_limit_orders: Whether LIMIT orders are accepted.
        supports_market_orders: Whether MARKET orders are accepted.
    """

    min_order_size: Decimal
    min_notional_size: Decimal
    min_price_increment: Decimal
    min_base_amount_increment: Decimal
    max_order_size: Decimal = _HUGE
    min_quote_amount_increment: Decimal = Decimal("1E-56")
    min_order_value: Decimal = _ZERO
    max_price_significant_digits: Decimal = _HUGE
    supports_limit_orders: bool = True
    supports_market_orders: bool = True


@dataclass(frozen=True, slots=True)
class MarketSpec:
    """Static description of one simulated market.

    Attributes:
        connector: Connector name, e.g. ``binance``.
        trading_pair: ``BASE-QUOTE``.
        start_mid: Mid price at start.
        rule: Trading rule of the pair.
        maker_size: Typical size of one market-maker level (base units); the
            makers keep at least ``maker_size`` within 0.1 % of mid on each side.
    """

    connector: str
    trading_pair: str
    start_mid: Decimal
    rule: TradingRule
    maker_size: Decimal

    @property
    def base(self) -> str:
        """The base token."""
        return self.trading_pair.split("-", 1)[0]

    @property
    def quote(self) -> str:
        """The quote token."""
        return self.trading_pair.split("-", 1)[1]


BTC_USDT_RULE: Final = TradingRule(
    min_order_size=Decimal("0.00001"),
    min_notional_size=Decimal(5),
    min_price_increment=Decimal("0.01"),
    min_base_amount_increment=Decimal("0.00001"),
)
ETH_USDT_RULE: Final = TradingRule(
    min_order_size=Decimal("0.0001"),
    min_notional_size=Decimal(5),
    min_price_increment=Decimal("0.01"),
    min_base_amount_increment=Decimal("0.0001"),
)
#: The documented default markets.
DEFAULT_MARKETS: Final[tuple[MarketSpec, ...]] = (
    MarketSpec("binance", "BTC-USDT", Decimal(60_000), BTC_USDT_RULE, Decimal(1)),
    MarketSpec("binance", "ETH-USDT", Decimal(3_000), ETH_USDT_RULE, Decimal(10)),
    MarketSpec("kucoin", "BTC-USDT", Decimal(60_000), BTC_USDT_RULE, Decimal(1)),
)


@dataclass(slots=True, eq=False)
class SimOrder:
    """One order, resting or not. Mutable: the engine updates it in place.

    Attributes:
        order_id: Client order id generated by the server.
        account: Account name.
        connector: Connector name.
        trading_pair: Trading pair.
        side: ``BUY`` or ``SELL``.
        order_type: ``LIMIT``, ``MARKET`` or ``LIMIT_MAKER``.
        amount: Quantized base amount.
        price: Quantized limit price (``None`` for market orders).
        status: Current status.
        created_at: Creation time, epoch seconds.
        updated_at: Time of the last change, epoch seconds.
        seq: Creation sequence number (time priority).
        filled: Base amount filled so far.
        quote_filled: Quote amount filled so far (for the average price).
        fee_paid: Fees paid so far (quote token).
        fee_currency: The fee token.
        reserved: What this order still holds reserved (quote for buys, base for sells).
        exchange_order_id: The simulated exchange id, once accepted.
        error_message: Reason of a ``FAILED`` order.
        internal: Whether the order belongs to the simulated market makers.
        status_before: The last live status of a finished order (``None`` while live).
    """

    order_id: str
    account: str
    connector: str
    trading_pair: str
    side: str
    order_type: str
    amount: Decimal
    price: Decimal | None
    status: str
    created_at: float
    updated_at: float
    seq: int
    filled: Decimal = _ZERO
    quote_filled: Decimal = _ZERO
    fee_paid: Decimal = _ZERO
    fee_currency: str | None = None
    reserved: Decimal = _ZERO
    exchange_order_id: str | None = None
    error_message: str | None = None
    internal: bool = False
    status_before: str | None = None

    @property
    def remaining(self) -> Decimal:
        """Base amount not filled yet."""
        return self.amount - self.filled

    @property
    def is_terminal(self) -> bool:
        """Whether the order is filled, cancelled or failed."""
        return self.status in TERMINAL_STATUSES

    @property
    def average_fill_price(self) -> Decimal | None:
        """Average fill price, ``None`` before the first fill."""
        if not self.filled:
            return None
        return self.quote_filled / self.filled


@dataclass(frozen=True, slots=True)
class Fill:
    """One fill of a user order.

    Attributes:
        trade_id: Unique fill id.
        order_id: The filled order.
        account: Account name.
        connector: Connector name.
        trading_pair: Trading pair.
        side: Side of the filled order.
        amount: Base amount.
        price: Fill price.
        fee_paid: Fee of this fill.
        fee_currency: Fee token.
        timestamp: Epoch seconds.
        seq: Sequence number (newest is highest).
    """

    trade_id: str
    order_id: str
    account: str
    connector: str
    trading_pair: str
    side: str
    amount: Decimal
    price: Decimal
    fee_paid: Decimal
    fee_currency: str
    timestamp: float
    seq: int


@dataclass(frozen=True, slots=True)
class PublicTrade:
    """One public trade of a market (every match, makers' and users' alike).

    Attributes:
        seq: Per-market sequence number, from 1.
        timestamp: Epoch seconds.
        price: Trade price.
        amount: Base amount.
        side: Taker side, lower case (``buy`` or ``sell``).
    """

    seq: int
    timestamp: float
    price: Decimal
    amount: Decimal
    side: str


class CandleSeries:
    """OHLCV candles of one bucket width, built from trades.

    Buckets without trades are filled with flat candles at the previous close,
    so that a series has no holes.

    Args:
        width: Bucket width in seconds.
        maxlen: Candles kept.
    """

    __slots__ = ("candles", "width")

    def __init__(self, width: int, maxlen: int) -> None:
        self.width = width
        # [open_ts, open, high, low, close, volume, quote_volume, n, taker_buy_base, taker_buy_q]
        self.candles: deque[list[Any]] = deque(maxlen=maxlen)

    def _roll_to(self, bucket: float, price: Decimal) -> list[Any]:
        if self.candles:
            last = self.candles[-1]
            if last[0] == bucket:
                return last
            if last[0] > bucket:  # late trade: fold it into the current candle
                return last
            close = last[4]
            ts = last[0] + self.width
            # fill holes, but never more than the series can keep
            gap = int((bucket - ts) // self.width)
            if gap > (self.candles.maxlen or 0):
                ts = bucket - (self.candles.maxlen or 0) * self.width
            while ts < bucket:
                self.candles.append([ts, close, close, close, close, _ZERO, _ZERO, 0, _ZERO, _ZERO])
                ts += self.width
        else:
            close = price
        candle = [bucket, close, close, close, close, _ZERO, _ZERO, 0, _ZERO, _ZERO]
        self.candles.append(candle)
        return candle

    def add(self, timestamp: float, price: Decimal, amount: Decimal, taker_buy: bool) -> None:
        """Fold one trade into the series.

        Args:
            timestamp: Trade time, epoch seconds.
            price: Trade price.
            amount: Base amount.
            taker_buy: Whether the taker bought.
        """
        bucket = float(math.floor(timestamp / self.width) * self.width)
        candle = self._roll_to(bucket, price)
        if candle[7] == 0 and candle[5] == _ZERO:
            candle[1] = candle[2] = candle[3] = price
        candle[2] = max(candle[2], price)
        candle[3] = min(candle[3], price)
        candle[4] = price
        quote = price * amount
        candle[5] += amount
        candle[6] += quote
        candle[7] += 1
        if taker_buy:
            candle[8] += amount
            candle[9] += quote

    def extend_to(self, timestamp: float, price: Decimal) -> None:
        """Make sure the series has a (possibly flat) candle for ``timestamp``.

        Args:
            timestamp: Epoch seconds.
            price: Price of a flat candle if the series is empty.
        """
        bucket = float(math.floor(timestamp / self.width) * self.width)
        self._roll_to(bucket, price)


class Book:
    """One side-pair order book with price-time priority.

    Bids and asks are kept as ``price -> deque[SimOrder]`` plus a sorted list of
    prices (ascending for both sides: the best bid is the last, the best ask the
    first). ``version`` increases with every change.
    """

    __slots__ = ("ask_prices", "asks", "bid_prices", "bids", "version")

    def __init__(self) -> None:
        self.bids: dict[Decimal, deque[SimOrder]] = {}
        self.asks: dict[Decimal, deque[SimOrder]] = {}
        self.bid_prices: list[Decimal] = []
        self.ask_prices: list[Decimal] = []
        self.version = 0

    def add(self, order: SimOrder) -> None:
        """Rest an order at the end of its price level.

        Args:
            order: A limit order with a price.
        """
        assert order.price is not None
        levels, prices = (
            (self.bids, self.bid_prices) if order.side == BUY else (self.asks, self.ask_prices)
        )
        queue = levels.get(order.price)
        if queue is None:
            queue = levels[order.price] = deque()
            bisect.insort(prices, order.price)
        queue.append(order)
        self.version += 1

    def remove(self, order: SimOrder) -> None:
        """Take a resting order out of the book (no-op if it is not there).

        Args:
            order: The order.
        """
        assert order.price is not None
        levels, prices = (
            (self.bids, self.bid_prices) if order.side == BUY else (self.asks, self.ask_prices)
        )
        queue = levels.get(order.price)
        if queue is None:
            return
        try:
            queue.remove(order)
        except ValueError:
            return
        if not queue:
            del levels[order.price]
            index = bisect.bisect_left(prices, order.price)
            del prices[index]
        self.version += 1

    def best_bid(self) -> Decimal | None:
        """The best bid price, or ``None``."""
        return self.bid_prices[-1] if self.bid_prices else None

    def best_ask(self) -> Decimal | None:
        """The best ask price, or ``None``."""
        return self.ask_prices[0] if self.ask_prices else None

    def iter_side(self, side: str) -> Iterator[SimOrder]:
        """Iterate resting orders of one side in priority order.

        Args:
            side: ``BUY`` for bids, ``SELL`` for asks.

        Yields:
            Orders, best price first, oldest first within a price.
        """
        if side == BUY:
            for price in reversed(self.bid_prices):
                yield from self.bids[price]
        else:
            for price in self.ask_prices:
                yield from self.asks[price]

    def levels(
        self, depth: int
    ) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        """Aggregate the top ``depth`` levels of each side.

        Args:
            depth: Levels per side.

        Returns:
            ``(bids, asks)``: lists of ``(price, amount)``, best first.
        """
        bids = [
            (p, sum((o.remaining for o in self.bids[p]), _ZERO))
            for p in self.bid_prices[: -depth - 1 : -1]
        ]
        asks = [
            (p, sum((o.remaining for o in self.asks[p]), _ZERO)) for p in self.ask_prices[:depth]
        ]
        return bids, asks

    def depth_within(self, side: str, lo: Decimal, hi: Decimal) -> Decimal:
        """Base amount resting on one side at prices in ``[lo, hi]``.

        Args:
            side: ``BUY`` or ``SELL``.
            lo: Lowest price included.
            hi: Highest price included.

        Returns:
            The summed remaining amounts.
        """
        levels, prices = (
            (self.bids, self.bid_prices) if side == BUY else (self.asks, self.ask_prices)
        )
        start = bisect.bisect_left(prices, lo)
        end = bisect.bisect_right(prices, hi)
        total = _ZERO
        for p in prices[start:end]:
            for o in levels[p]:
                total += o.remaining
        return total


class Market:
    """The live state of one market: book, public trades, candles.

    Args:
        spec: The market's static description.
    """

    __slots__ = ("book", "candles_1m", "candles_1s", "last_price", "spec", "trade_seq", "trades")

    def __init__(self, spec: MarketSpec) -> None:
        self.spec = spec
        self.book = Book()
        self.trades: deque[PublicTrade] = deque(maxlen=10_000)
        self.trade_seq = 0
        self.last_price: Decimal = spec.start_mid
        self.candles_1s = CandleSeries(1, 3_600)
        self.candles_1m = CandleSeries(60, 5_000)

    def mid(self) -> Decimal:
        """Mid price of the book (last trade price when a side is empty)."""
        bid, ask = self.book.best_bid(), self.book.best_ask()
        if bid is not None and ask is not None:
            return (bid + ask) / 2
        return self.last_price

    def record_trade(
        self, timestamp: float, price: Decimal, amount: Decimal, taker_side: str
    ) -> None:
        """Record a public trade and fold it into the candles.

        Args:
            timestamp: Epoch seconds.
            price: Trade price.
            amount: Base amount.
            taker_side: ``BUY`` or ``SELL``.
        """
        self.trade_seq += 1
        side = "buy" if taker_side == BUY else "sell"
        self.trades.append(PublicTrade(self.trade_seq, timestamp, price, amount, side))
        self.last_price = price
        taker_buy = taker_side == BUY
        self.candles_1s.add(timestamp, price, amount, taker_buy)
        self.candles_1m.add(timestamp, price, amount, taker_buy)


@dataclass(slots=True)
class _Wallet:
    total: dict[str, Decimal] = field(default_factory=dict)
    reserved: dict[str, Decimal] = field(default_factory=dict)


class Engine:
    """Every market, account, order and fill of the simulator.

    Args:
        markets: Markets to simulate (default ``DEFAULT_MARKETS``).
        accounts: User account names (default ``("master_account",)``).
        balances: Starting balances of every user account on every connector.
        fee_rate: Fee rate on the quote amount of every fill.
        price_band: ``(low, high)`` multiples of mid: a limit buy below
            ``low * mid`` or a limit sell above ``high * mid`` fails as outside the
            allowed range.
        clock: Wall clock, epoch seconds.
        terminal_linger: Seconds a finished order stays listed among the active orders.
        fill_wait: Seconds a ``FILLED`` order stays listed among the active orders
            at least, still showing its status before the last fill (the real
            server waits for the fill events before it drops a filled order).
    """

    def __init__(
        self,
        markets: Iterable[MarketSpec] = DEFAULT_MARKETS,
        *,
        accounts: Iterable[str] = ("master_account",),
        balances: Mapping[str, Decimal] = DEFAULT_BALANCES,
        fee_rate: Decimal = DEFAULT_FEE_RATE,
        price_band: tuple[Decimal, Decimal] = (Decimal("0.5"), Decimal("1.5")),
        clock: Callable[[], float] = time.time,
        terminal_linger: float = 1.0,
        fill_wait: float = 0.0,
    ) -> None:
        self.clock = clock
        self.fill_wait = fill_wait
        self.fee_rate = fee_rate
        self.price_band = price_band
        self.terminal_linger = terminal_linger
        self.markets: dict[tuple[str, str], Market] = {}
        self.pairs_by_connector: dict[str, list[str]] = {}
        for spec in markets:
            self.markets[(spec.connector, spec.trading_pair)] = Market(spec)
            self.pairs_by_connector.setdefault(spec.connector, []).append(spec.trading_pair)
        self.accounts: list[str] = list(accounts)
        self.wallets: dict[tuple[str, str], _Wallet] = {}
        for account in self.accounts:
            for connector in self.pairs_by_connector:
                self.wallets[(account, connector)] = _Wallet(total=dict(balances))
        huge = {
            t: Decimal("1E15") for s in self.markets.values() for t in (s.spec.base, s.spec.quote)
        }
        for connector in self.pairs_by_connector:
            self.wallets[(MAKER_ACCOUNT, connector)] = _Wallet(total=dict(huge))
        self.fees_collected: dict[str, Decimal] = {}
        #: Every user order, by id.
        self.orders: dict[str, SimOrder] = {}
        #: Every user order, in creation order.
        self.order_list: list[SimOrder] = []
        #: Orders listed by ``orders/active``: live ones and recently finished ones.
        self.active: dict[str, SimOrder] = {}
        #: Every fill of a user order, oldest first.
        self.fills: list[Fill] = []
        #: Called with the market after every change of its book or trades.
        self.listeners: list[Callable[[Market], None]] = []
        self._seq = 0
        self._last_id_ns = 0
        self._fill_seq = 0

    # ------------------------------------------------------------------ queries

    def market(self, connector: str, trading_pair: str) -> Market:
        """Look a market up.

        Args:
            connector: Connector name.
            trading_pair: Trading pair.

        Returns:
            The market.

        Raises:
            KeyError: No such market.
        """
        return self.markets[(connector, trading_pair)]

    def balances(self, account: str, connector: str) -> dict[str, tuple[Decimal, Decimal]]:
        """Balances of one account on one connector.

        Args:
            account: Account name.
            connector: Connector name.

        Returns:
            ``token -> (total, available)``.

        Raises:
            KeyError: Unknown account or connector.
        """
        wallet = self.wallets[(account, connector)]
        return {
            token: (total, total - wallet.reserved.get(token, _ZERO))
            for token, total in wallet.total.items()
        }

    def active_orders(self) -> list[SimOrder]:
        """Orders listed by ``orders/active``, pruning finished ones past their linger time.

        Returns:
            The listed orders, in creation order.
        """
        now = self.clock()
        linger = self.terminal_linger
        filled_linger = max(linger, self.fill_wait)
        stale = [
            oid
            for oid, o in self.active.items()
            if o.is_terminal
            and now - o.updated_at >= (filled_linger if o.status == FILLED else linger)
        ]
        for oid in stale:
            del self.active[oid]
        return list(self.active.values())

    # ----------------------------------------------------------------- commands

    def _new_id(self, side: str, trading_pair: str) -> str:
        now_ns = int(self.clock() * 1e9)
        self._last_id_ns = max(self._last_id_ns + 1, now_ns)
        return f"{side.lower()}-{trading_pair}-{self._last_id_ns}"

    def check_request(
        self,
        account: str,
        connector: str,
        trading_pair: str,
        order_type: str,
        amount: Decimal,
        price: Decimal | None,
    ) -> tuple[Market, Decimal, Decimal | None]:
        """Run the synchronous checks of ``POST /trading/orders``.

        As the real server does, the amount and price are quantized down to the
        rule's increments *first*; the minimum order size is then checked on the
        quantized amount, and the minimum notional on quantized price times
        quantized amount (for a market order: the best bid, Hummingbot's
        ``get_price(pair, is_buy=False)``, times the quantized amount; the last
        trade price when there is no bid). So ``0.0000839`` BTC at ``60000`` is
        refused: it would be ``0.00008`` BTC, a notional of ``4.8`` below ``5``.

        Args:
            account: Account name.
            connector: Connector name.
            trading_pair: Trading pair.
            order_type: Order type.
            amount: Requested base amount.
            price: Requested price.

        Returns:
            ``(market, quantized amount, quantized price)``; the price is ``None``
            for market orders.

        Raises:
            RequestRejected: With the real server's status and text.
        """
        if account not in self.accounts:
            raise RequestRejected(404, f"Account '{account}' not found")
        pairs = self.pairs_by_connector.get(connector)
        if pairs is None:
            raise RequestRejected(404, f"Connector '{connector}' not found for account '{account}'")
        if order_type in (LIMIT, LIMIT_MAKER) and price is None:
            raise RequestRejected(400, "Price is required for LIMIT and LIMIT_MAKER orders")
        market = self.markets.get((connector, trading_pair))
        if market is None:
            raise RequestRejected(
                400,
                f"Trading pair '{trading_pair}' not supported on {connector}. "
                f"Available pairs: {', '.join(pairs)}",
            )
        if order_type not in ORDER_TYPES:
            raise RequestRejected(
                400,
                f"Order type '{order_type}' not supported. "
                f"Supported types: {', '.join(ORDER_TYPES)}",
            )
        rule = market.spec.rule
        q_amount = quantize_down(amount, rule.min_base_amount_increment)
        if q_amount < rule.min_order_size:
            raise RequestRejected(
                400,
                f"Order amount {q_amount:f} is below minimum order size "
                f"{rule.min_order_size} for {trading_pair}",
            )
        q_price: Decimal | None
        if order_type == MARKET or price is None:
            q_price = None
            best_bid = market.book.best_bid()
            ref = best_bid if best_bid is not None else market.last_price
        else:
            q_price = ref = quantize_down(price, rule.min_price_increment)
        notional = ref * q_amount
        if notional < rule.min_notional_size:
            raise RequestRejected(
                400,
                f"Order notional value {notional:f} is below minimum notional size "
                f"{rule.min_notional_size} for {trading_pair}. "
                "Increase the amount or price to meet the minimum requirement.",
            )
        return market, q_amount, q_price

    def place(
        self,
        account: str,
        connector: str,
        trading_pair: str,
        side: str,
        order_type: str,
        amount: Decimal,
        price: Decimal | None = None,
    ) -> SimOrder:
        """Place an order: synchronous checks, then matching and resting.

        The returned order may already be ``FILLED`` or ``FAILED`` (an
        asynchronous rejection, with ``error_message``).

        Args:
            account: Account name (``MAKER_ACCOUNT`` for the market makers).
            connector: Connector name.
            trading_pair: Trading pair.
            side: ``BUY`` or ``SELL``.
            order_type: ``LIMIT``, ``MARKET`` or ``LIMIT_MAKER``.
            amount: Base amount (quantized down to the amount increment).
            price: Limit price (quantized down to the price increment); ignored
                for market orders.

        Returns:
            The order.

        Raises:
            RequestRejected: A synchronous rejection.
        """
        internal = account == MAKER_ACCOUNT
        q_price: Decimal | None
        if internal:
            market = self.markets[(connector, trading_pair)]
            rule = market.spec.rule
            q_amount = quantize_down(amount, rule.min_base_amount_increment)
            q_price = (
                None
                if order_type == MARKET or price is None
                else quantize_down(price, rule.min_price_increment)
            )
        else:
            market, q_amount, q_price = self.check_request(
                account, connector, trading_pair, order_type, amount, price
            )
        now = self.clock()
        self._seq += 1
        order = SimOrder(
            order_id=self._new_id(side, trading_pair) if not internal else f"mm-{self._seq}",
            account=account,
            connector=connector,
            trading_pair=trading_pair,
            side=side,
            order_type=order_type,
            amount=q_amount,
            price=q_price,
            status=SUBMITTED,
            created_at=now,
            updated_at=now,
            seq=self._seq,
            fee_currency=market.spec.quote,
            internal=internal,
        )
        if not internal:
            self.orders[order.order_id] = order
            self.order_list.append(order)
            self.active[order.order_id] = order
        failure = self._exchange_check(market, order)
        if failure is not None:
            order.status = FAILED
            order.error_message = failure
            return order
        order.exchange_order_id = f"SIM{self._seq:012d}"
        order.status = OPEN
        self._reserve(market, order)
        changed = self._match(market, order)
        if not order.is_terminal:
            if order.order_type == MARKET:
                # the book ran dry: the rest of a market order is cancelled
                self._finish(order, CANCELLED)
            else:
                market.book.add(order)
                changed = True
        if changed:
            self._notify(market)
        return order

    def cancel(self, account: str, connector: str, order_id: str) -> SimOrder:
        """Cancel an order in flight.

        Args:
            account: Account name.
            connector: Connector name.
            order_id: The client order id.

        Returns:
            The cancelled order.

        Raises:
            RequestRejected: 404 when the account is unknown or the order is not in flight.
        """
        if account not in self.accounts and account != MAKER_ACCOUNT:
            raise RequestRejected(404, f"Account '{account}' not found")
        order = self.orders.get(order_id) if account != MAKER_ACCOUNT else None
        if (
            order is None
            or order.account != account
            or order.connector != connector
            or order.is_terminal
        ):
            raise RequestRejected(404, f"Order '{order_id}' not found or not in flight")
        self.cancel_order(order)
        return order

    def cancel_order(self, order: SimOrder) -> None:
        """Cancel a resting order object (used by the market makers too).

        Args:
            order: The order; nothing happens when it is already finished.
        """
        if order.is_terminal:
            return
        market = self.markets[(order.connector, order.trading_pair)]
        market.book.remove(order)
        self._finish(order, CANCELLED)
        self._notify(market)

    # ----------------------------------------------------------------- internals

    def _notify(self, market: Market) -> None:
        for listener in self.listeners:
            listener(market)

    def _exchange_check(self, market: Market, order: SimOrder) -> str | None:
        pair = order.trading_pair
        if order.internal:
            return None
        mid = market.mid()
        if order.price is not None:
            low, high = self.price_band
            if order.side == BUY and order.price < mid * low:
                return (
                    f"Order price is outside the allowed range: {order.price} is below "
                    f"{(mid * low).normalize():f} ({low} x mid {mid}) for {pair}"
                )
            if order.side == SELL and order.price > mid * high:
                return (
                    f"Order price is outside the allowed range: {order.price} is above "
                    f"{(mid * high).normalize():f} ({high} x mid {mid}) for {pair}"
                )
        if order.order_type == LIMIT_MAKER and order.price is not None:
            best = market.book.best_ask() if order.side == BUY else market.book.best_bid()
            if best is not None and (
                (order.side == BUY and order.price >= best)
                or (order.side == SELL and order.price <= best)
            ):
                other = "ask" if order.side == BUY else "bid"
                return (
                    "Order would immediately match and take: LIMIT_MAKER (post-only) "
                    f"{order.side} at {order.price} crosses the best {other} {best} on {pair}"
                )
        wallet = self.wallets[(order.account, order.connector)]
        spec = market.spec
        if order.side == BUY:
            need = self._buy_cost(market, order)
            token = spec.quote
        else:
            need = order.amount
            token = spec.base
        available = wallet.total.get(token, _ZERO) - wallet.reserved.get(token, _ZERO)
        if need > available:
            return (
                f"Insufficient balance: {order.side} {order.amount} {pair} needs "
                f"{need.normalize():f} {token}, available {available.normalize():f} {token}"
            )
        return None

    def _buy_cost(self, market: Market, order: SimOrder) -> Decimal:
        """Quote a buy can spend at most, fee included.

        A limit buy: ``price * amount`` plus fee. A market buy: the cost of what
        the asks can fill of it, plus fee. A market order larger than the book
        fills what the book holds and the rest is cancelled, on both sides; so
        a market buy, like a market sell (which needs its whole amount of base),
        needs the most it can take out of the wallet.
        """
        if order.price is not None:
            return order.price * order.amount * (_ONE + self.fee_rate)
        remaining = order.amount
        cost = _ZERO
        for maker in market.book.iter_side(SELL):
            assert maker.price is not None
            qty = min(remaining, maker.remaining)
            cost += qty * maker.price
            remaining -= qty
            if not remaining:
                break
        return cost * (_ONE + self.fee_rate)

    def _reserve(self, market: Market, order: SimOrder) -> None:
        if order.order_type == MARKET:
            return
        assert order.price is not None
        if order.side == BUY:
            amount = order.price * order.amount * (_ONE + self.fee_rate)
            token = market.spec.quote
        else:
            amount = order.amount
            token = market.spec.base
        order.reserved = amount
        wallet = self.wallets[(order.account, order.connector)]
        wallet.reserved[token] = wallet.reserved.get(token, _ZERO) + amount

    def _release(self, order: SimOrder, amount: Decimal) -> None:
        amount = min(amount, order.reserved)
        if not amount:
            return
        market = self.markets[(order.connector, order.trading_pair)]
        token = market.spec.quote if order.side == BUY else market.spec.base
        wallet = self.wallets[(order.account, order.connector)]
        order.reserved -= amount
        wallet.reserved[token] -= amount

    def _finish(self, order: SimOrder, status: str) -> None:
        order.status_before = order.status
        order.status = status
        order.updated_at = self.clock()
        self._release(order, order.reserved)

    def _match(self, market: Market, taker: SimOrder) -> bool:
        """Match ``taker`` against the opposite side; return whether anything traded."""
        book = market.book
        if taker.side == BUY:
            levels, prices = book.asks, book.ask_prices
        else:
            levels, prices = book.bids, book.bid_prices
        traded = False
        limit = taker.price
        while taker.remaining > 0 and prices:
            best = prices[0] if taker.side == BUY else prices[-1]
            if limit is not None and (
                (taker.side == BUY and best > limit) or (taker.side == SELL and best < limit)
            ):
                break
            queue = levels[best]
            maker = queue[0]
            qty = min(taker.remaining, maker.remaining)
            self._fill(market, maker, qty, best)
            self._fill(market, taker, qty, best)
            market.record_trade(self.clock(), best, qty, taker.side)
            traded = True
            if maker.remaining == 0:
                queue.popleft()
                if not queue:
                    del levels[best]
                    if taker.side == BUY:
                        del prices[0]
                    else:
                        del prices[-1]
            book.version += 1
        return traded

    def _fill(self, market: Market, order: SimOrder, qty: Decimal, price: Decimal) -> None:
        spec = market.spec
        quote = qty * price
        fee = quote * self.fee_rate
        wallet = self.wallets[(order.account, order.connector)]
        total = wallet.total
        if order.side == BUY:
            if order.price is not None:
                self._release(order, order.price * qty * (_ONE + self.fee_rate))
            total[spec.quote] = total.get(spec.quote, _ZERO) - quote - fee
            total[spec.base] = total.get(spec.base, _ZERO) + qty
        else:
            self._release(order, qty)
            total[spec.base] = total.get(spec.base, _ZERO) - qty
            total[spec.quote] = total.get(spec.quote, _ZERO) + quote - fee
        self.fees_collected[spec.quote] = self.fees_collected.get(spec.quote, _ZERO) + fee
        order.filled += qty
        order.quote_filled += quote
        order.fee_paid += fee
        now = self.clock()
        order.updated_at = now
        if order.remaining == 0:
            self._finish(order, FILLED)
        else:
            order.status = PARTIALLY_FILLED
        if not order.internal:
            self._fill_seq += 1
            self.fills.append(
                Fill(
                    trade_id=f"{order.exchange_order_id}-{self._fill_seq}",
                    order_id=order.order_id,
                    account=order.account,
                    connector=order.connector,
                    trading_pair=order.trading_pair,
                    side=order.side,
                    amount=qty,
                    price=price,
                    fee_paid=fee,
                    fee_currency=spec.quote,
                    timestamp=now,
                    seq=self._fill_seq,
                )
            )
