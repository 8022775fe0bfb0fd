"""hbtrio: a Trio client for the Hummingbot API.

Everything public is importable from here. See the documentation for the
contract; ``hbtrio.sim`` holds the bundled simulator (``pip install hbtrio[sim]``).
"""

from __future__ import annotations

from ._client import Client as Client
from ._client import open_client as open_client
from ._config import ClientConfig as ClientConfig
from ._errors import AuthenticationFailed as AuthenticationFailed
from ._errors import ConfigError as ConfigError
from ._errors import ConnectionFailed as ConnectionFailed
from ._errors import HbtrioError as HbtrioError
from ._errors import InputValidationError as InputValidationError
from ._errors import InsufficientFunds as InsufficientFunds
from ._errors import InvalidOrder as InvalidOrder
from ._errors import MalformedResponse as MalformedResponse
from ._errors import MinOrderSizeNotMet as MinOrderSizeNotMet
from ._errors import NotFound as NotFound
from ._errors import OrderError as OrderError
from ._errors import OrderNotFound as OrderNotFound
from ._errors import OrderOutcomeUnknown as OrderOutcomeUnknown
from ._errors import OrderPending as OrderPending
from ._errors import OrderRejected as OrderRejected
from ._errors import PriceOutOfRange as PriceOutOfRange
from ._errors import RequestError as RequestError
from ._errors import RequestTimeout as RequestTimeout
from ._errors import ServerError as ServerError
from ._errors import SubscriptionError as SubscriptionError
from ._open_bus import open_bus as open_bus
from .events import CandleUpdate as CandleUpdate
from .events import ConnectionStateChanged as ConnectionStateChanged
from .events import ErrorEvent as ErrorEvent
from .events import Event as Event
from .events import EventEngine as EventEngine
from .events import MarketTrades as MarketTrades
from .events import OrderBookUpdate as OrderBookUpdate
from .events import OrderUpdate as OrderUpdate
from .events import TickerUpdate as TickerUpdate
from .events import TradeEvent as TradeEvent
from .models import Balance as Balance
from .models import Candle as Candle
from .models import ConnectionState as ConnectionState
from .models import Level as Level
from .models import MarketTrade as MarketTrade
from .models import Order as Order
from .models import OrderBook as OrderBook
from .models import OrderRequest as OrderRequest
from .models import OrderStatus as OrderStatus
from .models import OrderType as OrderType
from .models import Page as Page
from .models import PositionAction as PositionAction
from .models import ServerInfo as ServerInfo
from .models import Side as Side
from .models import Ticker as Ticker
from .models import Trade as Trade
from .models import TradingRule as TradingRule

__version__ = "0.1.0"

__all__ = [
    "AuthenticationFailed",
    "Balance",
    "Candle",
    "CandleUpdate",
    "Client",
    "ClientConfig",
    "ConfigError",
    "ConnectionFailed",
    "ConnectionState",
    "ConnectionStateChanged",
    "ErrorEvent",
    "Event",
    "EventEngine",
    "HbtrioError",
    "InputValidationError",
    "InsufficientFunds",
    "InvalidOrder",
    "Level",
    "MalformedResponse",
    "MarketTrade",
    "MarketTrades",
    "MinOrderSizeNotMet",
    "NotFound",
    "Order",
    "OrderBook",
    "OrderBookUpdate",
    "OrderError",
    "OrderNotFound",
    "OrderOutcomeUnknown",
    "OrderPending",
    "OrderRejected",
    "OrderRequest",
    "OrderStatus",
    "OrderType",
    "OrderUpdate",
    "Page",
    "PositionAction",
    "PriceOutOfRange",
    "RequestError",
    "RequestTimeout",
    "ServerError",
    "ServerInfo",
    "Side",
    "SubscriptionError",
    "Ticker",
    "TickerUpdate",
    "Trade",
    "TradeEvent",
    "TradingRule",
    "__version__",
    "open_bus",
    "open_client",
]
