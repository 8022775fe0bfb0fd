"""The client facade: ``open_client`` and ``Client``.

This is the only module that knows every actor: the request side (the HTTP
pool and the REST actor) and the streaming side (the
``StreamingSupervisor`` with the WebSocket
connection, subscriptions and the order tracker actor), all started in one
nursery owned by ``open_client``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager, aclosing, asynccontextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

import msgspec
import trio

from ._actors.http import HttpPool
from ._actors.rest import (
    MATCH_SLACK,
    AmbiguousOutcome,
    RequestObserver,
    RestActor,
    Transport,
    match_order,
)
from ._actors.streams import DEFAULT_BUFFER, StreamingSupervisor
from ._actors.tracker import TrackerActor
from ._actors.transport import Dialer
from ._config import ClientConfig
from ._core.placements import Placement, PlacementLedger
from ._errors import (
    HbtrioError,
    InputValidationError,
    MalformedResponse,
    MinOrderSizeNotMet,
    NotFound,
    OrderNotFound,
    OrderOutcomeUnknown,
    RequestTimeout,
    SubscriptionError,
    lone_exception,
)
from ._validation import (
    check_account,
    check_enum,
    check_exchange,
    check_interval,
    check_market,
    check_markets,
    check_order_id,
    check_positive_decimal,
    check_range,
    check_time_range,
    to_millis,
)
from ._wire import rest as wire
from ._wire.errors import RejectionTable
from .events import Event, EventEngine
from .models import (
    Balance,
    Candle,
    ConnectionState,
    MarketTrade,
    Order,
    OrderBook,
    OrderRequest,
    OrderStatus,
    OrderType,
    Page,
    PositionAction,
    ServerInfo,
    Side,
    Ticker,
    Trade,
    TradingRule,
)

__all__ = ["Client", "open_client"]

logger = logging.getLogger("hbtrio")

T = TypeVar("T")

TimeArg = datetime | float | int | None

_MAX_LIST_PAGES = 50
"""Most pages fetched to list open orders (50 x 1000 orders)."""
_MAX_SEARCH_PAGES = 20
"""Most history pages scanned by ``get_order`` and reconciliation."""
_ACCEPT_POLL_FIRST = 0.02
_RECONCILE_PASSES = 2
_RECONCILE_PAUSE = 0.5


_MAX_PLACED_IDS = 10_000
"""Most returned order ids remembered for reconciliation (which looks back seconds)."""


class Client:
    """A connected Hummingbot API client (obtain one from ``open_client``).

    Every method validates its arguments before any I/O
    (``InputValidationError``), and returns or raises within
    ``timeout * (retries + 1)`` plus the backoff delays unless its docstring states
    a longer bound. Orders, history and fills are those of ``config.account``.

    Args:
        config: The client configuration.
        rest: The REST actor.
        engine: The event engine the client publishes to.

    Attributes:
        config: The configuration.
        engine: The event engine.
        rejections: Table mapping asynchronous rejection texts (``error_message``
            of ``FAILED`` orders) to exception types; extend it with
            ``client.rejections.add(pattern, exc_type, connector=None)``.
        streams: The streaming part, once attached (``None`` for a REST-only client).
        tracker: The order tracker actor, once attached (``None`` for a REST-only client).
    """

    def __init__(self, config: ClientConfig, rest: RestActor, engine: EventEngine) -> None:
        self.config = config
        self.engine = engine
        self._rest = rest
        self.rejections: RejectionTable = rest.rejections
        self.streams: StreamingSupervisor | None = None
        self.tracker: TrackerActor | None = None
        self._state = ConnectionState.DISCONNECTED
        self._rules: dict[tuple[str, str], TradingRule | None] = {}
        self._tickers_supported: dict[str, bool] = {}
        # Ids of orders this client returned (newest last, at most _MAX_PLACED_IDS):
        # reconciliation never hands out one of them for another request.
        self._placed_ids: dict[str, None] = {}
        # Identical placements in flight or left unknown: a lone match is returned
        # by reconciliation only when no rival could have created it.
        self._placements = PlacementLedger(MATCH_SLACK)

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        """The connection state (the WebSocket's once streams are attached)."""
        if self.streams is not None:
            return self.streams.state
        return self._state

    def attach_streams(
        self, streams: StreamingSupervisor, tracker: TrackerActor | None = None
    ) -> None:
        """Attach the streaming part (started by ``open_client``'s nursery).

        Args:
            streams: The streaming supervisor.
            tracker: The order tracker actor it runs, which then serves
                ``wait_accepted`` and learns of every order this client places.
        """
        self.streams = streams
        self.tracker = tracker

    def _streaming(self) -> StreamingSupervisor:
        if self.streams is None:
            raise SubscriptionError("this client was opened without streaming")
        return self.streams

    # -- streams -----------------------------------------------------------------------

    def subscribe_order_book(
        self, exchange: str, market: str, depth: int = 10, update_interval: float = 1.0
    ) -> AbstractAsyncContextManager[AsyncIterator[OrderBook]]:
        """Stream order-book snapshots (see ``StreamingSupervisor.subscribe_order_book``).

        Args:
            exchange: Connector name.
            market: Trading pair.
            depth: Levels per side (1..1000).
            update_interval: Seconds between server pushes, 0 for as fast as the
                server sends (the server clamps it).

        Returns:
            An async context manager yielding an async iterator of order books.

        Raises:
            SubscriptionError: The client was opened without streaming.
        """
        return self._streaming().subscribe_order_book(
            exchange, market, depth=depth, update_interval=update_interval
        )

    def subscribe_trades(
        self,
        exchange: str,
        market: str,
        update_interval: float = 1.0,
        *,
        buffer: int = DEFAULT_BUFFER,
    ) -> AbstractAsyncContextManager[AsyncIterator[MarketTrade]]:
        """Stream public trades (see ``StreamingSupervisor.subscribe_trades``).

        Args:
            exchange: Connector name.
            market: Trading pair.
            update_interval: Seconds between server pushes.
            buffer: Trades kept for a consumer that falls behind.

        Returns:
            An async context manager yielding an async iterator of public trades.

        Raises:
            SubscriptionError: The client was opened without streaming.
        """
        return self._streaming().subscribe_trades(
            exchange, market, update_interval=update_interval, buffer=buffer
        )

    def subscribe_ticker(
        self, exchange: str, market: str, update_interval: float = 1.0
    ) -> AbstractAsyncContextManager[AsyncIterator[Ticker]]:
        """Stream composed tickers (see ``StreamingSupervisor.subscribe_ticker``).

        Args:
            exchange: Connector name.
            market: Trading pair.
            update_interval: Seconds between server pushes.

        Returns:
            An async context manager yielding an async iterator of tickers.

        Raises:
            SubscriptionError: The client was opened without streaming.
        """
        return self._streaming().subscribe_ticker(exchange, market, update_interval=update_interval)

    def subscribe_candles(
        self,
        exchange: str,
        market: str,
        interval: str = "1m",
        *,
        update_interval: float = 1.0,
        max_records: int = 100,
        buffer: int = DEFAULT_BUFFER,
    ) -> AbstractAsyncContextManager[AsyncIterator[Candle]]:
        """Stream candles (see ``StreamingSupervisor.subscribe_candles``).

        Args:
            exchange: Connector name.
            market: Trading pair.
            interval: Candle interval, e.g. ``1m``.
            update_interval: Seconds between server pushes.
            max_records: Candles kept by the server's feed.
            buffer: Candles kept for a consumer that falls behind.

        Returns:
            An async context manager yielding an async iterator of candles.

        Raises:
            SubscriptionError: The client was opened without streaming.
        """
        return self._streaming().subscribe_candles(
            exchange,
            market,
            interval=interval,
            update_interval=update_interval,
            max_records=max_records,
            buffer=buffer,
        )

    def events(
        self, *types: type[Event], buffer: int = 1000
    ) -> AbstractAsyncContextManager[AsyncIterator[Event]]:
        """Subscribe to the events the client publishes (all, or some types).

        A REST-only client (``streaming=False``) subscribes to its event engine
        directly.

        Args:
            *types: Event classes to receive; none: every event.
            buffer: Events buffered for this subscriber.

        Returns:
            An async context manager yielding an async iterator of events.

        Raises:
            InputValidationError: ``buffer`` < 1, or a type that is not an ``Event``
                subclass (on entering the context).
        """
        if self.streams is None:
            return self.engine.subscribe(*types, buffer=buffer)
        return self.streams.events(*types, buffer=buffer)

    async def _probe(self) -> None:
        self._state = ConnectionState.CONNECTING
        try:
            await self.get_accounts()
        except BaseException:
            self._state = ConnectionState.ERROR
            raise
        self._state = ConnectionState.CONNECTED

    # -- helpers -----------------------------------------------------------------------

    @property
    def _account(self) -> str:
        return self.config.account

    # -- reference data ----------------------------------------------------------------

    async def server_info(self) -> ServerInfo:
        """Return what ``GET /`` says (name, version, status).

        Returns:
            The server info.

        Raises:
            HbtrioError: The request failed.
        """
        return await self._rest.call(wire.build_server_info(), wire.parse_server_info)

    async def get_accounts(self) -> list[str]:
        """Return the account names of the server.

        Returns:
            Account names.

        Raises:
            AuthenticationFailed: Wrong credentials.
            HbtrioError: The request failed.
        """
        return await self._rest.call(wire.build_accounts(), wire.parse_str_list)

    async def get_exchanges(self) -> list[str]:
        """Return the connector names the server knows.

        Returns:
            Connector names.

        Raises:
            HbtrioError: The request failed.
        """
        return await self._rest.call(wire.build_connectors(), wire.parse_str_list)

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
        rules = await self._rest.call(
            wire.build_trading_rules(exchange, pairs), wire.parse_trading_rules
        )
        for market, rule in rules.items():
            self._rules[(exchange, market)] = rule
        return rules

    async def _rule(self, exchange: str, market: str) -> TradingRule | None:
        key = (exchange, market)
        if key not in self._rules:
            rules = await self._rest.call(
                wire.build_trading_rules(exchange, [market]), wire.parse_trading_rules
            )
            for name, rule in rules.items():
                self._rules[(exchange, name)] = rule
            self._rules.setdefault(key, None)
        return self._rules[key]

    # -- orders ------------------------------------------------------------------------

    async def place_order(
        self,
        exchange: str,
        market: str,
        side: Side | str,
        *,
        amount: Decimal | int | float | str,
        order_type: OrderType | str = OrderType.LIMIT,
        price: Decimal | int | float | str | None = None,
        position_action: PositionAction | str = PositionAction.OPEN,
        wait_accepted: bool = False,
    ) -> Order:
        """Place an order (the general form).

        The order is first checked against the market's trading rules (fetched once
        per market and cached): an amount below ``min_order_size`` or a notional
        (``amount * price``) below ``min_notional_size`` raises
        ``MinOrderSizeNotMet`` without sending anything.

        Placement is never retried blindly. It is retried only when the request
        provably never reached the server (connection refused, TLS or pool wait
        failed before writing) or the server said it did not process it (429, 503).
        When the answer is lost after the request may have been sent (timeout,
        dropped connection, 504), the client reconciles: it looks for an order
        matching exchange, market, side, type, amount, price and a creation time
        inside the request window among open orders, then the order history and the
        fills. Exactly one match is returned; none or several raise
        ``OrderOutcomeUnknown`` (with the candidates). So does a lone
        match while another identical placement of this client overlapped in time
        (in flight, or itself left unknown): either may have created it, and one
        order is never returned to two calls.

        Time bound: the placement within ``timeout * (retries + 1)`` plus backoff;
        a reconciliation adds at most two passes of queries (each query bounded the
        same way) and a 0.5 s pause; ``wait_accepted`` adds at most
        ``max(10, timeout * (retries + 1))`` seconds.

        Args:
            exchange: Connector name.
            market: Trading pair.
            side: Buy or sell.
            amount: Base amount (``> 0``).
            order_type: ``LIMIT``, ``MARKET`` or ``LIMIT_MAKER``.
            price: Limit price (required for ``LIMIT`` and ``LIMIT_MAKER``).
            position_action: ``OPEN`` or ``CLOSE`` (derivatives).
            wait_accepted: Return only once the order is past ``SUBMITTED`` (open,
                filled or cancelled); raise the mapped error if it ``FAILED``.

        Returns:
            The order (``SUBMITTED`` unless ``wait_accepted``).

        Raises:
            InputValidationError: An argument is invalid.
            MinOrderSizeNotMet: Below the market's minimum size or notional.
            InsufficientFunds: Not enough balance (asynchronous, ``wait_accepted``).
            PriceOutOfRange: Price outside the allowed band (``wait_accepted``).
            InvalidOrder: Invalid parameters, or a post-only order would cross.
            OrderRejected: Any other rejection (raw reason kept).
            OrderOutcomeUnknown: The answer was lost and reconciliation could not
                tell whether the order exists.
            RequestTimeout: ``wait_accepted`` and the order stayed ``SUBMITTED``.
            HbtrioError: Any other failure.
        """
        request = self._order_request(
            exchange, market, side, amount, order_type, price, position_action
        )
        if not isinstance(wait_accepted, bool):
            raise InputValidationError("wait_accepted", "must be a bool")
        request = await self._check_rules(request)
        order = await self._send_order(request)
        if self.tracker is not None:
            self.tracker.track(order)
        if wait_accepted:
            order = await self._wait_accepted(order, request)
        return order

    async def place_limit_order(
        self,
        exchange: str,
        market: str,
        side: Side | str,
        *,
        price: Decimal | int | float | str,
        amount: Decimal | int | float | str,
        position_action: PositionAction | str = PositionAction.OPEN,
        wait_accepted: bool = False,
    ) -> Order:
        """Place a limit order (see ``place_order`` for semantics and bounds).

        Args:
            exchange: Connector name.
            market: Trading pair.
            side: Buy or sell.
            price: Limit price.
            amount: Base amount.
            position_action: ``OPEN`` or ``CLOSE``.
            wait_accepted: Wait until the order is past ``SUBMITTED``.

        Returns:
            The order.

        Raises:
            HbtrioError: As ``place_order``.
        """
        return await self.place_order(
            exchange,
            market,
            side,
            amount=amount,
            order_type=OrderType.LIMIT,
            price=price,
            position_action=position_action,
            wait_accepted=wait_accepted,
        )

    async def place_market_order(
        self,
        exchange: str,
        market: str,
        side: Side | str,
        *,
        amount: Decimal | int | float | str,
        position_action: PositionAction | str = PositionAction.OPEN,
        wait_accepted: bool = False,
    ) -> Order:
        """Place a market order (see ``place_order`` for semantics and bounds).

        Args:
            exchange: Connector name.
            market: Trading pair.
            side: Buy or sell.
            amount: Base amount.
            position_action: ``OPEN`` or ``CLOSE``.
            wait_accepted: Wait until the order is past ``SUBMITTED``.

        Returns:
            The order.

        Raises:
            HbtrioError: As ``place_order``.
        """
        return await self.place_order(
            exchange,
            market,
            side,
            amount=amount,
            order_type=OrderType.MARKET,
            position_action=position_action,
            wait_accepted=wait_accepted,
        )

    def _order_request(
        self,
        exchange: object,
        market: object,
        side: object,
        amount: object,
        order_type: object,
        price: object,
        position_action: object,
    ) -> OrderRequest:
        kind = check_enum(order_type, OrderType, "order_type")
        checked_price: Decimal | None = None
        if price is not None:
            checked_price = check_positive_decimal(price, "price")
        elif kind.needs_price:
            raise InputValidationError("price", f"is required for {kind.value} orders")
        return OrderRequest(
            account=check_account(self._account),
            exchange=check_exchange(exchange),
            market=check_market(market),
            side=check_enum(side, Side, "side"),
            order_type=kind,
            amount=check_positive_decimal(amount, "amount"),
            price=checked_price,
            position_action=check_enum(position_action, PositionAction, "position_action"),
        )

    async def _check_rules(self, request: OrderRequest) -> OrderRequest:
        """Check ``request`` against its market's rules; return it quantized.

        Amount and price are rounded down to the market's increments, as Hummingbot
        does when it places the order, so that what is sent is what the server keeps
        (and a lost answer can be reconciled by exact comparison). The minimum size
        and notional are checked on the rounded values, as the server checks them.
        """
        try:
            rule = await self._rule(request.exchange, request.market)
        except NotFound:
            return request  # unknown connector: the server will say so when placing
        if rule is None:
            return request
        amount = _round_down(request.amount, rule.min_base_amount_increment)
        price = request.price
        if price is not None:
            price = _round_down(price, rule.min_price_increment)
        if amount <= 0 or amount < rule.min_order_size:
            raise MinOrderSizeNotMet(
                f"order amount {request.amount} (rounded down to {amount}) is below the "
                f"minimum order size {rule.min_order_size} for {request.market}",
                request=request,
            )
        if price is not None and (
            price <= 0 or (rule.min_notional_size > 0 and amount * price < rule.min_notional_size)
        ):
            raise MinOrderSizeNotMet(
                f"order notional {amount * price} (amount {amount} x price {price}, rounded "
                f"down) is below the minimum notional size {rule.min_notional_size} "
                f"for {request.market}",
                request=request,
            )
        if amount == request.amount and price == request.price:
            return request
        return msgspec.structs.replace(request, amount=amount, price=price)

    async def _send_order(self, request: OrderRequest) -> Order:
        req = wire.build_place_order(request)
        entry = self._placements.begin(_placement_key(request), self._rest.clock())
        known = False  # whether the outcome is known (an order id, or nothing created)
        try:
            try:
                placed = await self._rest.call(req, wire.parse_place_order, order=request)
            except AmbiguousOutcome as lost:
                order = await self._reconcile(request, lost, entry)
                known = True
                return order
            known = True
        except OrderOutcomeUnknown:
            raise
        except HbtrioError:
            known = True  # rejected, never sent, or the server's error stands
            raise
        finally:
            if known:
                self._placements.settle(entry)
            else:  # unknown, or cancelled mid-request: a rival of identical placements
                self._placements.leave_unknown(entry, self._rest.clock())
        self._remember_placed(placed.order_id)
        now = self._rest.clock()
        return Order(
            order_id=placed.order_id,
            account=placed.account or request.account,
            exchange=placed.exchange or request.exchange,
            market=placed.market or request.market,
            side=placed.side,
            order_type=placed.order_type,
            amount=placed.amount,
            price=placed.price if placed.price is not None else request.price,
            status=OrderStatus.SUBMITTED,
            created_at=now,
            updated_at=now,
        )

    def _remember_placed(self, order_id: str) -> None:
        ids = self._placed_ids
        ids[order_id] = None
        if len(ids) > _MAX_PLACED_IDS:
            del ids[next(iter(ids))]

    async def _reconcile(
        self, request: OrderRequest, lost: AmbiguousOutcome, entry: Placement
    ) -> Order:
        """Find the order a lost placement may have created (see ``place_order``)."""
        logger.debug("placement answer lost (%s); reconciling", lost.cause)
        start = end = lost.sent_at
        matches: dict[str, Order] = {}
        unresolved_fills: set[str] = set()
        problem: HbtrioError | None = None
        passes = 1 if lost.answered else _RECONCILE_PASSES
        for attempt in range(passes):
            end = self._rest.clock()
            try:
                matches, unresolved_fills = await self._find_matches(request, start, end)
            except HbtrioError as exc:
                problem = exc
                matches, unresolved_fills = {}, set()
            if matches or unresolved_fills:
                break
            if attempt + 1 < passes:
                await trio.sleep(_RECONCILE_PAUSE)
        # Another call may have returned one of them while the search was running.
        placed = self._placed_ids
        matches = {oid: order for oid, order in matches.items() if oid not in placed}
        unresolved_fills.difference_update(placed)
        rivals = self._placements.rivals(entry, start, end)
        if len(matches) == 1 and not unresolved_fills and not rivals:
            order = next(iter(matches.values()))
            self._remember_placed(order.order_id)
            logger.debug("reconciled lost placement to order %s", order.order_id)
            return order
        candidates = tuple(matches.values())
        if self.tracker is not None:
            # Any of them may be ours: follow them closely, so that their changes
            # (and terminal states) are published like those of a returned order.
            for candidate in candidates:
                self.tracker.track(candidate)
        if lost.answered and not matches and not unresolved_fills and problem is None:
            # The server answered with an error and created nothing: its error stands.
            raise lost.cause
        if not matches and not unresolved_fills:
            why = "no matching order was found"
            if problem is not None:
                why = f"reconciliation failed ({problem})"
        elif len(matches) + len(unresolved_fills) > 1:
            why = f"{len(matches) + len(unresolved_fills)} orders match the request"
        else:
            why = (
                f"one order matches, but {rivals} identical placement(s) of this client "
                "overlapped in time and may have created it"
            )
        raise OrderOutcomeUnknown(
            f"the order was sent but its answer was lost ({lost.cause.message}); {why}",
            request=request,
            candidates=candidates,
            method="POST",
            path="/trading/orders",
        ) from lost.cause

    async def _find_matches(
        self, request: OrderRequest, start: float, end: float
    ) -> tuple[dict[str, Order], set[str]]:
        def ok(order: Order) -> bool:
            return order.order_id not in self._placed_ids and match_order(
                request, order, start=start, end=end
            )

        found: dict[str, Order] = {}
        for order in await self.get_open_orders(exchange=request.exchange, market=request.market):
            if ok(order):
                found[order.order_id] = order
        known: set[str] = set(found)
        pages = self._history(
            exchange=request.exchange,
            market=request.market,
            start=max(0.0, start - 5.0),
            end=None,
            status=None,
            page_size=1000,
            max_pages=_MAX_SEARCH_PAGES,
        )
        async with aclosing(pages):
            async for order in pages:
                known.add(order.order_id)
                if ok(order):
                    found.setdefault(order.order_id, order)
        unresolved: set[str] = set()
        if not found:
            fills = await self.get_trades(
                start=max(0.0, start - 5.0),
                market=request.market,
                exchange=request.exchange,
                limit=1000,
            )
            for fill in fills.items:
                if (
                    fill.side is request.side
                    and fill.order_id
                    and fill.order_id not in known
                    and fill.order_id not in self._placed_ids
                ):
                    unresolved.add(fill.order_id)
        return found, unresolved

    async def _wait_accepted(self, order: Order, request: OrderRequest) -> Order:
        """Poll until ``order`` is past ``SUBMITTED``; map ``FAILED``.

        Bounded by ``max(10, timeout * (retries + 1))`` seconds. With the streaming
        part attached the tracker actor's polling serves the wait; without it, this
        method polls ``orders/active`` then ``orders/search`` itself.
        """
        limit = max(10.0, (self.config.timeout or 10.0) * (self.config.retries + 1))
        current = order
        delay = _ACCEPT_POLL_FIRST
        with trio.move_on_after(limit):
            if self.tracker is not None and current.status is OrderStatus.SUBMITTED:
                current = await self.tracker.wait_accepted(order.order_id)
            while current.status is OrderStatus.SUBMITTED:
                await trio.sleep(delay)
                delay = min(delay * 2, self.config.poll_active * 5)
                latest = await self._lookup(order.order_id, order.exchange, order.market)
                if latest is not None:
                    current = latest
        if current.status is OrderStatus.SUBMITTED:
            raise RequestTimeout(
                f"order {order.order_id} was still SUBMITTED after {limit:g} s",
                detail={"order_id": order.order_id},
            )
        if current.status is OrderStatus.FAILED:
            raise self.rejections.error_for(
                current.error_message,
                connector=current.exchange,
                request=request,
                order_id=current.order_id,
            )
        return current

    async def _lookup(
        self, order_id: str, exchange: str | None, market: str | None
    ) -> Order | None:
        """Find an order among the open ones, then in the history (``None``: not found)."""
        for order in await self.get_open_orders(exchange=exchange, market=market):
            if order.order_id == order_id:
                return order
        pages = self._history(
            exchange=exchange,
            market=market,
            start=None,
            end=None,
            status=None,
            page_size=1000,
            max_pages=_MAX_SEARCH_PAGES,
        )
        async with aclosing(pages):
            async for order in pages:
                if order.order_id == order_id:
                    return order
        return None

    async def cancel_order(
        self, order_id: str, *, exchange: str | None = None, market: str | None = None
    ) -> None:
        """Ask the server to cancel an order (cancellation is asynchronous).

        Without ``exchange`` the order is looked up first (see ``get_order``).
        A cancel whose answer was lost is sent again; if that second attempt finds
        the order gone, the order's state decides (cancelled or pending cancel:
        success; otherwise ``OrderNotFound``).

        Args:
            order_id: The order id.
            exchange: The order's connector.
            market: The order's trading pair (narrows the lookup).

        Raises:
            InputValidationError: An argument is invalid.
            OrderNotFound: The order is not in flight (unknown, filled or done).
            HbtrioError: The request failed.
        """
        order_id = check_order_id(order_id)
        if market is not None:
            market = check_market(market)
        if exchange is None:
            exchange = (await self.get_order(order_id, market=market)).exchange
        exchange = check_exchange(exchange)
        req = wire.build_cancel_order(self._account, exchange, order_id)
        try:
            await self._rest.call(req, wire.parse_cancel)
            return
        except AmbiguousOutcome as lost:
            first = lost
        retry = wire.HttpRequest(req.method, req.path, req.body, True)
        try:
            await self._rest.call(retry, wire.parse_cancel)
        except OrderNotFound:
            order = await self._lookup(order_id, exchange, market)
            if order is not None and order.status in (
                OrderStatus.CANCELLED,
                OrderStatus.PENDING_CANCEL,
            ):
                return
            raise
        except HbtrioError as exc:
            raise exc from first.cause

    async def cancel_all_orders(
        self, *, exchange: str | None = None, market: str | None = None
    ) -> list[str]:
        """Cancel every open order of the account (optionally of one exchange/market).

        Cancels run concurrently (at most 8 at once); an order that finished in the
        meantime (404) is skipped. Bound: listing the open orders plus one cancel
        call per order, each within the usual per-call bound.

        Args:
            exchange: Only orders of this connector.
            market: Only orders of this trading pair.

        Returns:
            The ids of the orders whose cancellation was initiated.

        Raises:
            InputValidationError: An argument is invalid.
            HbtrioError: Listing or a cancel failed (other than 404).
        """
        orders = await self.get_open_orders(exchange=exchange, market=market)
        cancelled: list[str] = []
        errors: list[HbtrioError] = []
        limiter = trio.CapacityLimiter(8)

        async def cancel(order: Order) -> None:
            async with limiter:
                try:
                    await self.cancel_order(order.order_id, exchange=order.exchange)
                except OrderNotFound:
                    return
                except HbtrioError as exc:
                    errors.append(exc)
                    return
                cancelled.append(order.order_id)

        async with trio.open_nursery() as nursery:
            for order in orders:
                if not order.status.is_terminal:
                    nursery.start_soon(cancel, order)
        if errors:
            raise errors[0]
        return cancelled

    async def get_order(
        self, order_id: str, exchange: str | None = None, market: str | None = None
    ) -> Order:
        """Return one order by id.

        Cost: one ``orders/active`` listing (all its pages, usually one request);
        when the order is not open, the order history is scanned page by page
        (1000 orders a page, at most 20 pages), narrowed by ``exchange`` and
        ``market`` when given: pass them to keep the search cheap.

        Args:
            order_id: The order id.
            exchange: The order's connector, when known.
            market: The order's trading pair, when known.

        Returns:
            The order.

        Raises:
            InputValidationError: An argument is invalid.
            OrderNotFound: No such order.
            HbtrioError: A request failed.
        """
        order_id = check_order_id(order_id)
        if exchange is not None:
            exchange = check_exchange(exchange)
        if market is not None:
            market = check_market(market)
        order = await self._lookup(order_id, exchange, market)
        if order is None:
            raise OrderNotFound(f"order {order_id} not found", order_id=order_id)
        return order

    async def get_open_orders(
        self, exchange: str | None = None, market: str | None = None
    ) -> list[Order]:
        """Return every open (in-flight) order of the account.

        Follows pagination (at most 50 pages of 1000) and de-duplicates by id.

        Args:
            exchange: Only orders of this connector.
            market: Only orders of this trading pair.

        Returns:
            The open orders.

        Raises:
            InputValidationError: An argument is invalid.
            HbtrioError: A request failed.
        """
        exchanges = None if exchange is None else [check_exchange(exchange)]
        markets = None if market is None else [check_market(market)]
        out: dict[str, Order] = {}
        cursor: str | None = None
        for _ in range(_MAX_LIST_PAGES):
            page = await self._rest.call(
                wire.build_active_orders(
                    accounts=[self._account],
                    exchanges=exchanges,
                    markets=markets,
                    limit=1000,
                    cursor=cursor,
                ),
                wire.parse_orders_page,
            )
            new = 0
            for order in page.items:
                if order.order_id not in out:
                    out[order.order_id] = order
                    new += 1
            if not page.has_more or not page.next_cursor or page.next_cursor == cursor or not new:
                break
            cursor = page.next_cursor
        return list(out.values())

    async def get_order_history(
        self,
        start: TimeArg = None,
        end: TimeArg = None,
        market: str | None = None,
        status: OrderStatus | str | None = None,
        exchange: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[Order]:
        """Return one page of the account's order history.

        Args:
            start: Earliest creation time (aware ``datetime`` or epoch seconds).
            end: Latest creation time.
            market: Only this trading pair.
            status: Only this status.
            exchange: Only this connector.
            limit: Page size, 1..1000.
            cursor: Cursor from a previous page.

        Returns:
            The page.

        Raises:
            InputValidationError: An argument is invalid.
            HbtrioError: The request failed.
        """
        s, e = check_time_range(start, end)
        req = wire.build_order_search(
            accounts=[self._account],
            exchanges=None if exchange is None else [check_exchange(exchange)],
            markets=None if market is None else [check_market(market)],
            status=None if status is None else check_enum(status, OrderStatus, "status"),
            start_ms=to_millis(s),
            end_ms=to_millis(e),
            limit=check_range(limit, "limit"),
            cursor=_check_cursor(cursor),
        )
        return await self._rest.call(req, wire.parse_orders_page)

    def iter_order_history(
        self,
        start: TimeArg = None,
        end: TimeArg = None,
        market: str | None = None,
        status: OrderStatus | str | None = None,
        exchange: str | None = None,
        *,
        page_size: int = 100,
        max_pages: int = 1000,
    ) -> AsyncIterator[Order]:
        """Iterate over the account's order history, page by page.

        Orders are de-duplicated by id. Pages follow the server's cursor; when a
        cursor brings back only orders already seen (the real server repeats its
        first page: every ``next_cursor`` is ``"0:"``), the next pages are asked for
        by time instead (created at or before the oldest order seen on the last
        page), so every order is reached on that server too, at the cost of one
        repeated page. The iteration stops when a page brings nothing new, when the
        server says there is no more, or after ``max_pages`` pages (more than
        ``page_size`` orders created in the same millisecond cannot be paged past
        on the real server). Bound: each page is one call with the usual bound.

        Args:
            start: Earliest creation time.
            end: Latest creation time.
            market: Only this trading pair.
            status: Only this status.
            exchange: Only this connector.
            page_size: Orders per page, 1..1000.
            max_pages: Most pages fetched.

        Returns:
            An async iterator of orders.

        Raises:
            InputValidationError: An argument is invalid (raised at once).
        """
        s, e = check_time_range(start, end)
        return self._history(
            exchange=None if exchange is None else check_exchange(exchange),
            market=None if market is None else check_market(market),
            start=s,
            end=e,
            status=None if status is None else check_enum(status, OrderStatus, "status"),
            page_size=check_range(page_size, "page_size"),
            max_pages=check_range(max_pages, "max_pages", 1, 1_000_000),
        )

    async def _history(
        self,
        *,
        exchange: str | None,
        market: str | None,
        start: float | None,
        end: float | None,
        status: OrderStatus | None,
        page_size: int,
        max_pages: int,
    ) -> AsyncGenerator[Order, None]:
        # The server lists newest first. When a cursor brings back only orders already
        # seen (the real server's every cursor is "0:"), the cursor is given up and the
        # next page is asked for by time instead: created at or before the oldest
        # order of the last page (the boundary millisecond included, duplicates
        # dropped). The iteration ends when a page brings nothing new.
        seen: set[str] = set()
        cursor: str | None = None
        cursors_work = True
        end_ms = to_millis(end)
        for _ in range(max_pages):
            page = await self._rest.call(
                wire.build_order_search(
                    accounts=[self._account],
                    exchanges=None if exchange is None else [exchange],
                    markets=None if market is None else [market],
                    status=status,
                    start_ms=to_millis(start),
                    end_ms=end_ms,
                    limit=page_size,
                    cursor=cursor,
                ),
                wire.parse_orders_page,
            )
            new = [o for o in page.items if o.order_id not in seen]
            for order in new:
                seen.add(order.order_id)
                yield order
            if not page.has_more:
                return
            if new and cursors_work and page.next_cursor:
                cursor = page.next_cursor
                continue
            if not new and cursor is None:
                return  # asked by time and nothing new: nothing more to reach
            cursors_work = cursors_work and bool(new)
            oldest = min((o.created_at for o in page.items if o.created_at), default=None)
            if oldest is None:
                return
            boundary = math.ceil(oldest * 1000)
            end_ms = boundary if end_ms is None else min(end_ms, boundary)
            cursor = None

    async def get_trades(
        self,
        start: TimeArg = None,
        end: TimeArg = None,
        market: str | None = None,
        exchange: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[Trade]:
        """Return one page of the account's own fills.

        Args:
            start: Earliest fill time (aware ``datetime`` or epoch seconds).
            end: Latest fill time.
            market: Only this trading pair.
            exchange: Only this connector.
            limit: Page size, 1..1000.
            cursor: Cursor from a previous page.

        Returns:
            The page.

        Raises:
            InputValidationError: An argument is invalid.
            HbtrioError: The request failed.
        """
        s, e = check_time_range(start, end)
        req = wire.build_trades(
            accounts=[self._account],
            exchanges=None if exchange is None else [check_exchange(exchange)],
            markets=None if market is None else [check_market(market)],
            start_ms=to_millis(s),
            end_ms=to_millis(e),
            limit=check_range(limit, "limit"),
            cursor=_check_cursor(cursor),
        )
        return await self._rest.call(req, wire.parse_trades_page)

    # -- market data -------------------------------------------------------------------

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

        await _gather(book, prices, volume)
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
                f"no price data for {market} on {exchange}",
                method="POST",
                path="/market-data/prices",
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

    # -- account -----------------------------------------------------------------------

    async def get_balances(
        self, exchange: str | None = None, refresh: bool = False
    ) -> list[Balance]:
        """Return the account's balances (total and available per asset).

        Args:
            exchange: Only this connector.
            refresh: Ask the server to refresh from the exchanges (the real server
                otherwise answers from a cache refreshed every 5 minutes).

        Returns:
            The balances.

        Raises:
            InputValidationError: An argument is invalid.
            HbtrioError: The request failed.
        """
        if not isinstance(refresh, bool):
            raise InputValidationError("refresh", "must be a bool")
        exchanges = None if exchange is None else [check_exchange(exchange)]
        req = wire.build_portfolio_state(
            accounts=[self._account], exchanges=exchanges, refresh=refresh
        )
        balances = await self._rest.call(req, wire.parse_balances)
        return [
            b
            for b in balances
            if b.account == self._account and (exchange is None or b.exchange == exchange)
        ]


def _check_cursor(cursor: object) -> str | None:
    if cursor is None:
        return None
    if not isinstance(cursor, str) or len(cursor) > 256 or not cursor.isprintable():
        raise InputValidationError("cursor", "must be a cursor string from a previous page")
    return cursor


async def _gather(*fns: Callable[[], Any]) -> None:
    """Run ``fns`` concurrently; raise the first failure unwrapped."""
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


@asynccontextmanager
async def open_client(
    config: ClientConfig,
    engine: EventEngine | None = None,
    *,
    transport: Transport | None = None,
    rejections: RejectionTable | None = None,
    streaming: bool = True,
    dialer: Dialer | None = None,
    request_observer: RequestObserver | None = None,
) -> AsyncIterator[Client]:
    """Open a client: an async context manager owning a nursery with its actors.

    On entry the client checks that the server answers and accepts the
    credentials (``GET /accounts/``), then (with ``streaming``) opens the
    market-data WebSocket and returns once it is connected and authenticated.
    Wrong credentials raise ``AuthenticationFailed`` at once; an
    unreachable server raises ``ConnectionFailed`` after ``retries``
    further attempts. On exit every actor stops and every connection is closed.
    An exception from the ``async with`` body comes out as itself, not wrapped in
    an exception group.

    Args:
        config: The client configuration.
        engine: The event engine to publish to (default: a new one, run by the
            client). A caller-supplied engine is not run by the client.
        transport: HTTP transport to use instead of the TLS connection pool
            (tests, custom transports).
        rejections: Table mapping rejection texts to exception types (default: a
            fresh copy of the built-in table; extend ``client.rejections``).
        streaming: Start the WebSocket side (subscriptions, connection state, order
            tracker). ``False`` gives a REST-only client.
        dialer: WebSocket dialer to use instead of the TLS one (tests).
        request_observer: Called after every REST request attempt (orders,
            tracker polls, market data, the start-up check) with
            ``(method, endpoint, seconds, outcome)``: ``endpoint`` is the path
            template (``/trading/orders``, ``/connectors/{connector}/trading-rules``;
            never ids or query strings), ``outcome`` is ``"ok"``, the status code
            of another answer (``"503"``) or the exception class name when there
            was no answer (``"ConnectionFailed"``). It runs synchronously on the
            request path, so it must be quick; an exception it raises is logged
            and ignored. ``None`` (the default) costs nothing.

    Yields:
        The client.

    Raises:
        TypeError: ``config`` is not a ``ClientConfig``.
        ConfigError: The CA file is unusable.
        AuthenticationFailed: The server refused the credentials.
        ConnectionFailed: The server could not be reached.
    """
    if not isinstance(config, ClientConfig):
        raise TypeError("config must be a hbtrio.ClientConfig")
    own_engine = engine is None
    events = engine if engine is not None else EventEngine()
    pool: Transport = transport if transport is not None else HttpPool(config)
    rest = RestActor(config, pool, rejections=rejections, observer=request_observer)
    client = Client(config, rest, events)
    if streaming:
        tracker = TrackerActor(
            client,
            events.publish,
            poll_active=config.poll_active,
            poll_idle=config.poll_idle,
        )
        client.attach_streams(
            StreamingSupervisor(
                config,
                events.publish,
                dialer=dialer,
                ticker_seed=client.get_ticker,
                engine=events,
                tracker=tracker,
            ),
            tracker,
        )
    try:
        async with trio.open_nursery() as nursery:
            try:
                if own_engine:
                    await nursery.start(events.run)
                await client._probe()
                if client.streams is not None:
                    await nursery.start(client.streams.run)
                yield client
            finally:
                client._state = ConnectionState.DISCONNECTED
                nursery.cancel_scope.cancel()
                with trio.CancelScope(shield=True):
                    await pool.aclose()
    except BaseExceptionGroup as group:
        leaf = lone_exception(group)
        if leaf is group:
            raise
        raise leaf from leaf.__cause__


def _placement_key(request: OrderRequest) -> tuple[object, ...]:
    """What makes two placements indistinguishable to ``match_order``."""
    price = None if request.order_type is OrderType.MARKET else request.price
    return (
        request.account,
        request.exchange,
        request.market,
        request.side,
        request.order_type,
        request.amount,
        price,
    )


def _round_down(value: Decimal, increment: Decimal) -> Decimal:
    """``value`` rounded down to a multiple of ``increment`` (unchanged if it is 0)."""
    if increment <= 0:
        return value
    return (value // increment) * increment
