"""The hbtrio simulator: a Hummingbot-API-compatible server with a matching engine.

Start it in-process with ``serve`` (``info = await nursery.start(partial(serve, ...))``)
or from the command line with ``hbtrio sim``. Its dependencies live in the ``sim`` extra.
"""

from __future__ import annotations

from .engine import DEFAULT_BALANCES as DEFAULT_BALANCES
from .engine import DEFAULT_MARKETS as DEFAULT_MARKETS
from .engine import MAKER_ACCOUNT as MAKER_ACCOUNT
from .engine import Engine as Engine
from .engine import MarketSpec as MarketSpec
from .engine import TradingRule as TradingRule
from .server import SimInfo as SimInfo
from .server import serve as serve
from .state import OrderLogEntry as OrderLogEntry
from .state import SimSettings as SimSettings
from .state import SimState as SimState

__all__ = [
    "DEFAULT_BALANCES",
    "DEFAULT_MARKETS",
    "MAKER_ACCOUNT",
    "Engine",
    "MarketSpec",
    "OrderLogEntry",
    "SimInfo",
    "SimSettings",
    "SimState",
    "TradingRule",
    "serve",
]
