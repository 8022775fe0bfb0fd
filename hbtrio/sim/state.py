"""Settings and live state of one running simulator.

``SimSettings`` is what ``serve()`` was asked for; ``SimState`` is what
the server shares between its HTTP handlers, its WebSocket sessions and the
liquidity driver. Tests reach it as ``SimInfo.state``: ``state.order_log`` lists
every order the simulator accepted (id and request), ``state.requests`` counts
every HTTP request that reached the server (by method and route), and
``state.engine`` is the matching engine with every order, fill and balance.
"""

from __future__ import annotations

import base64
import hmac
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from .engine import Engine, Market
from .liquidity import Simulation

__all__ = ["OrderLogEntry", "SimSettings", "SimState"]

Quirks = Literal["faithful", "real"]


@dataclass(frozen=True, slots=True, repr=False)
class SimSettings:
    """What one simulator was started with.

    Attributes:
        api_key: The credential pair ``user:password`` (never shown by ``repr``).
        seed: Random seed of liquidity and fault injection.
        quirks: ``"faithful"`` (a correct server) or ``"real"`` (the real server's
            known defects of protocol.md section 6).
        heartbeat_interval: Seconds between WebSocket heartbeats.
        min_update_interval: Lowest WebSocket ``update_interval`` (clamp), seconds.
        max_update_interval: Highest WebSocket ``update_interval`` (clamp), seconds.
        book_change_rate: Book changes per second per market.
        latency_ms: Milliseconds added before every answer: REST responses and
            every WebSocket message (not the handshakes).
        error_rate: Share of REST answers replaced by a 500 or 503.
        drop_ws_after_s: Close every WebSocket this many seconds after it opened.
        drop_ws_after_msgs: Close every WebSocket after it sent this many messages.
        stall_rate: Share of REST answers never sent.
        portfolio_cache_s: Age after which ``--quirks real`` refreshes its cached portfolio.
        accounts: User account names; each holds the default balances on every connector.
        terminal_linger: Seconds a finished order stays listed by ``orders/active``
            (``--quirks real``: 0, it vanishes at once).
        fill_wait: Seconds a ``FILLED`` order stays listed by ``orders/active`` with
            its previous status and ``filled_amount == amount`` (``--quirks real``).
        connector_clock_refresh: Seconds between refreshes of the connector clock
            that stamps ``created_at`` in ``orders/active`` (``--quirks real``: 300;
            0: the exact time).
        no_credentials: ``(account, connector)`` pairs configured without exchange
            credentials: placing there answers 500 ``Unexpected error placing trade: ...``.
    """

    api_key: str = "admin:admin"
    seed: int = 0
    quirks: Quirks = "faithful"
    heartbeat_interval: float = 30.0
    min_update_interval: float = 0.25
    max_update_interval: float = 60.0
    book_change_rate: float = 10.0
    latency_ms: float = 0.0
    error_rate: float = 0.0
    drop_ws_after_s: float | None = None
    drop_ws_after_msgs: int | None = None
    stall_rate: float = 0.0
    portfolio_cache_s: float = 300.0
    accounts: tuple[str, ...] = ("master_account",)
    terminal_linger: float = 1.0
    fill_wait: float = 0.0
    connector_clock_refresh: float = 0.0
    no_credentials: frozenset[tuple[str, str]] = frozenset()

    def __repr__(self) -> str:
        return (
            f"SimSettings(seed={self.seed}, quirks={self.quirks!r}, "
            f"heartbeat_interval={self.heartbeat_interval}, "
            f"min_update_interval={self.min_update_interval}, "
            f"book_change_rate={self.book_change_rate}, latency_ms={self.latency_ms}, "
            f"error_rate={self.error_rate}, drop_ws_after_s={self.drop_ws_after_s}, "
            f"drop_ws_after_msgs={self.drop_ws_after_msgs}, stall_rate={self.stall_rate}, "
            f"accounts={self.accounts!r}, terminal_linger={self.terminal_linger}, "
            f"fill_wait={self.fill_wait}, "
            f"connector_clock_refresh={self.connector_clock_refresh}, "
            f"no_credentials={sorted(self.no_credentials)!r})"
        )


@dataclass(frozen=True, slots=True)
class OrderLogEntry:
    """One order the simulator accepted (answered ``201``).

    Attributes:
        order_id: The client order id it generated.
        request: The decoded JSON request body, as received.
        accepted_at: Epoch seconds of acceptance.
    """

    order_id: str
    request: dict[str, Any]
    accepted_at: float


@dataclass(eq=False)
class SimState:
    """Everything one running simulator shares between its tasks.

    Attributes:
        settings: The settings.
        simulation: Engine plus liquidity models.
        order_log: Every order accepted by ``POST /trading/orders``, oldest first.
        requests: Every HTTP request that reached the server, counted by
            ``(method, route)``: the route is the path for fixed paths (e.g.
            ``("POST", "/trading/orders")``), the template for paths with
            parameters (``/connectors/{connector}/trading-rules``,
            ``/trading/{account}/{connector}/orders/{order_id}/cancel``,
            ``/market-data/tickers/{connector}``) and ``"(no route)"`` for any
            other path. Requests refused (401, 422, injected faults) count too;
            WebSocket handshakes do not.
        fault_rng: Random source of fault injection (seeded).
        ws_closers: Callables closing each live WebSocket session (shutdown uses them).
        portfolio_cache: ``(time, state)`` of the ``--quirks real`` portfolio cache.
        change_hooks: Per-market callbacks run after every book or trade change.
        started_at: Epoch seconds at which the simulator started.
        price_estimates: The price a ``--quirks real`` server shows for each
            ``MARKET`` order in ``orders/active`` (its estimate at placement).
    """

    settings: SimSettings
    simulation: Simulation
    order_log: list[OrderLogEntry] = field(default_factory=list)
    requests: Counter[tuple[str, str]] = field(default_factory=Counter)
    fault_rng: random.Random = field(default_factory=random.Random)
    ws_closers: set[Callable[[int], None]] = field(default_factory=set)
    portfolio_cache: tuple[float, dict[str, Any]] | None = None
    change_hooks: list[Callable[[Market], None]] = field(default_factory=list)
    started_at: float = field(default_factory=time.time)
    price_estimates: dict[str, Decimal] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.fault_rng = random.Random(f"{self.settings.seed}:faults")
        user, _, password = self.settings.api_key.partition(":")
        self._user = user.encode()
        self._password = password.encode()
        self._basic = base64.b64encode(self.settings.api_key.encode())

    @property
    def engine(self) -> Engine:
        """The matching engine."""
        return self.simulation.engine

    #: How far behind the connector clock is when the simulator starts (a server
    #: running for a while: its connectors were created minutes before).
    CONNECTOR_CLOCK_LAG_AT_START = 240.0

    def connector_clock(self, when: float) -> float:
        """The connector clock at epoch second ``when``: its last refresh.

        The real server stamps ``created_at`` of ``orders/active`` with its
        connector's clock, which moves only when the connector is created and at
        each refresh (every 5 minutes), so it is minutes behind. The simulator's
        clock was last set ``CONNECTOR_CLOCK_LAG_AT_START`` seconds before it started.

        Args:
            when: Epoch seconds.

        Returns:
            The clock's reading then (``when`` itself when refreshes are off).
        """
        period = self.settings.connector_clock_refresh
        if period <= 0:
            return when
        origin = self.started_at - min(self.CONNECTOR_CLOCK_LAG_AT_START, period)
        return origin + period * ((when - origin) // period)

    def check_basic(self, token: bytes) -> bool:
        """Compare a Basic token (base64 of ``user:password``) in constant time.

        Args:
            token: The base64 text after ``Basic``.

        Returns:
            Whether it is the configured credential pair.
        """
        return hmac.compare_digest(token.strip(), self._basic)

    def check_pair(self, user: str, password: str) -> bool:
        """Compare a user name and password in constant time (both are compared).

        Args:
            user: User name.
            password: Password.

        Returns:
            Whether both match.
        """
        ok_user = hmac.compare_digest(user.encode(), self._user)
        ok_password = hmac.compare_digest(password.encode(), self._password)
        return ok_user and ok_password
