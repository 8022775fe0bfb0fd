"""Public domain types of hbtrio.

Every type here is an immutable ``msgspec.Struct``. Amounts and prices are
``decimal.Decimal``; timestamps are float seconds since the Unix epoch.
"""

from __future__ import annotations

import enum
from decimal import Decimal
from typing import Generic, TypeVar

import msgspec

__all__ = [
    "Balance",
    "Candle",
    "ConnectionState",
    "Level",
    "MarketTrade",
    "Order",
    "OrderBook",
    "OrderRequest",
    "OrderStatus",
    "OrderType",
    "Page",
    "PositionAction",
    "ServerInfo",
    "Side",
    "Ticker",
    "Trade",
    "TradingRule",
]

T = TypeVar("T")


class Side(enum.StrEnum):
    """The side of an order or trade (Hummingbot's ``trade_type``)."""

    BUY = "BUY"
    SELL = "SELL"


class OrderType(enum.StrEnum):
    """Order types understood by the Hummingbot API.

    ``LIMIT_MAKER`` is a post-only limit order. New types (``STOP``,
    ``STOP_LIMIT``) are added here as the server learns them.
    """

    LIMIT = "LIMIT"
    MARKET = "MARKET"
    LIMIT_MAKER = "LIMIT_MAKER"

    @property
    def needs_price(self) -> bool:
        """Whether an order of this type must carry a price."""
        return self is not OrderType.MARKET


class PositionAction(enum.StrEnum):
    """Position action for derivative connectors (ignored by spot connectors)."""

    OPEN = "OPEN"
    CLOSE = "CLOSE"


class OrderStatus(enum.StrEnum):
    """Lifecycle status of an order."""

    SUBMITTED = "SUBMITTED"
    OPEN = "OPEN"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    PENDING_CANCEL = "PENDING_CANCEL"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"

    @property
    def is_terminal(self) -> bool:
        """Whether no further change of this order can follow."""
        return self in _TERMINAL


_TERMINAL = frozenset({OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.FAILED})


class ConnectionState(enum.StrEnum):
    """State of a client's WebSocket connection (see the connection-state table)."""

    CONNECTING = "CONNECTING"
    CONNECTED = "CONNECTED"
    DISCONNECTED = "DISCONNECTED"
    ERROR = "ERROR"


class OrderRequest(msgspec.Struct, frozen=True, kw_only=True):
    """What a caller asked for when placing an order; carried by every ``OrderError``.

    Attributes:
        account: Hummingbot account name.
        exchange: Connector name, e.g. ``binance``.
        market: Trading pair, e.g. ``BTC-USDT``.
        side: Buy or sell.
        order_type: Limit, market or limit-maker.
        amount: Base-asset amount.
        price: Limit price; ``None`` for market orders.
        position_action: Open or close (derivatives).
    """

    account: str
    exchange: str
    market: str
    side: Side
    order_type: OrderType
    amount: Decimal
    price: Decimal | None = None
    position_action: PositionAction = PositionAction.OPEN


class Order(msgspec.Struct, frozen=True, kw_only=True):
    """An order as the server knows it.

    Attributes:
        order_id: The client order id the server generated.
        account: Account name.
        exchange: Connector name.
        market: Trading pair.
        side: Buy or sell.
        order_type: Order type.
        amount: Ordered base amount.
        price: Limit price (``None`` when the server reports none, e.g. market orders).
        status: Current status.
        filled_amount: Base amount filled so far.
        average_fill_price: Average fill price, ``None`` before any fill.
        fee_paid: Fees paid so far.
        fee_currency: Currency of ``fee_paid``, when known.
        created_at: Creation time, epoch seconds.
        updated_at: Time of the last change, epoch seconds.
        exchange_order_id: The exchange's own id, when known.
        error_message: Reason of a ``FAILED`` order.
    """

    order_id: str
    account: str
    exchange: str
    market: str
    side: Side
    order_type: OrderType
    amount: Decimal
    price: Decimal | None
    status: OrderStatus
    filled_amount: Decimal = Decimal(0)
    average_fill_price: Decimal | None = None
    fee_paid: Decimal = Decimal(0)
    fee_currency: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    exchange_order_id: str | None = None
    error_message: str | None = None


class Trade(msgspec.Struct, frozen=True, kw_only=True):
    """One fill of one of the account's own orders.

    Attributes:
        trade_id: Fill id.
        order_id: The order that was filled.
        account: Account name.
        exchange: Connector name.
        market: Trading pair.
        side: Buy or sell.
        amount: Filled base amount.
        price: Fill price.
        fee_paid: Fee of this fill.
        fee_currency: Currency of the fee.
        timestamp: Fill time, epoch seconds.
    """

    trade_id: str
    order_id: str
    account: str
    exchange: str
    market: str
    side: Side
    amount: Decimal
    price: Decimal
    fee_paid: Decimal
    fee_currency: str | None
    timestamp: float


class MarketTrade(msgspec.Struct, frozen=True, kw_only=True):
    """A public trade seen on a market.

    Attributes:
        exchange: Connector name.
        market: Trading pair.
        side: Taker side.
        amount: Base amount.
        price: Trade price.
        timestamp: Trade time, epoch seconds.
    """

    exchange: str
    market: str
    side: Side
    amount: Decimal
    price: Decimal
    timestamp: float


class Level(msgspec.Struct, frozen=True):
    """One price level of an order book.

    Attributes:
        price: Level price.
        amount: Base amount resting at that price.
    """

    price: Decimal
    amount: Decimal


class OrderBook(msgspec.Struct, frozen=True, kw_only=True):
    """An order book snapshot.

    Attributes:
        exchange: Connector name.
        market: Trading pair.
        bids: Bid levels, best (highest) first.
        asks: Ask levels, best (lowest) first.
        timestamp: Snapshot time, epoch seconds.
    """

    exchange: str
    market: str
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    timestamp: float

    @property
    def best_bid(self) -> Level | None:
        """The best bid level, or ``None`` when the bid side is empty."""
        return self.bids[0] if self.bids else None

    @property
    def best_ask(self) -> Level | None:
        """The best ask level, or ``None`` when the ask side is empty."""
        return self.asks[0] if self.asks else None

    def truncated(self, depth: int) -> OrderBook:
        """Return this book limited to ``depth`` levels per side.

        Args:
            depth: Maximum number of levels to keep on each side.

        Returns:
            The same book when it is already no deeper, else a truncated copy.
        """
        if len(self.bids) <= depth and len(self.asks) <= depth:
            return self
        return msgspec.structs.replace(self, bids=self.bids[:depth], asks=self.asks[:depth])


class Ticker(msgspec.Struct, frozen=True, kw_only=True):
    """Top-of-book and last-trade summary of a market.

    Attributes:
        exchange: Connector name.
        market: Trading pair.
        bid: Best bid price.
        ask: Best ask price.
        last: Last trade price.
        volume: Traded base volume (24 h where the server says so, else recent candles).
        timestamp: Time of the freshest input, epoch seconds.
    """

    exchange: str
    market: str
    bid: Decimal
    ask: Decimal
    last: Decimal
    volume: Decimal
    timestamp: float


class Balance(msgspec.Struct, frozen=True, kw_only=True):
    """Holdings of one asset on one exchange of one account.

    Attributes:
        account: Account name.
        exchange: Connector name.
        asset: Token symbol.
        total: Total units held.
        available: Units not reserved by resting orders.
    """

    account: str
    exchange: str
    asset: str
    total: Decimal
    available: Decimal


class Candle(msgspec.Struct, frozen=True, kw_only=True):
    """One OHLCV candle.

    Attributes:
        timestamp: Open time, epoch seconds.
        open: Open price.
        high: High price.
        low: Low price.
        close: Close price.
        volume: Base volume.
    """

    timestamp: float
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


class TradingRule(msgspec.Struct, frozen=True, kw_only=True):
    """Trading rules of one market on one connector.

    Attributes:
        market: Trading pair.
        min_order_size: Smallest base amount accepted.
        max_order_size: Largest base amount accepted (``None`` for no limit).
        min_price_increment: Price tick.
        min_base_amount_increment: Amount step.
        min_notional_size: Smallest ``amount * price`` accepted.
    """

    market: str
    min_order_size: Decimal
    max_order_size: Decimal | None
    min_price_increment: Decimal
    min_base_amount_increment: Decimal
    min_notional_size: Decimal


class ServerInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What ``GET /`` says about the server.

    Attributes:
        name: Server name.
        version: Server version.
        status: Server status, ``running`` when healthy.
    """

    name: str
    version: str
    status: str


class Page(msgspec.Struct, Generic[T], frozen=True, kw_only=True):
    """One page of a paginated listing.

    Attributes:
        items: The items of this page.
        next_cursor: Cursor for the next page, ``None`` on the last one.
        has_more: Whether the server says more items follow.
        total_count: Total number of matching items, when the server says.
    """

    items: tuple[T, ...]
    next_cursor: str | None = None
    has_more: bool = False
    total_count: int | None = None
