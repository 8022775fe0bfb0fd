"""The orders part of ``Client``: where an order is placed, cancelled and looked up.

Placement checks the market's trading rules, registers the request in the
placement ledger and, when the answer is lost, reconciles (open orders, history,
fills). Cancels, ``get_order``, open orders, the order history and the
account's fills live here too.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from decimal import Decimal

import msgspec
import trio

from .._actors.rest import MATCH_SLACK, AmbiguousOutcome, RestActor, match_order
from .._config import ClientConfig
from .._core.placements import Placement, PlacementLedger
from .._errors import (
    HbtrioError,
    InputValidationError,
    MinOrderSizeNotMet,
    NotFound,
    OrderNotFound,
    OrderOutcomeUnknown,
    OrderPending,
)
from .._paging import PageRequest, Paging, walk
from .._validation import (
    check_account,
    check_enum,
    check_exchange,
    check_market,
    check_order_id,
    check_positive_decimal,
    check_range,
    check_time_range,
    to_millis,
)
from .._wire import rest as wire
from ..events import EventEngine
from ..models import (
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    Page,
    PositionAction,
    Side,
    Trade,
)
from ._part import Part, TimeArg, check_cursor

__all__ = ["OrdersPart"]

logger = logging.getLogger("hbtrio")

_MAX_LIST_PAGES = 50
"""Most pages fetched to list open orders (50 x 1000 orders)."""
_MAX_SEARCH_PAGES = 20
"""Most history pages scanned by ``get_order`` and reconciliation."""
_ACCEPT_POLL_FIRST = 0.02
_RECONCILE_PASSES = 2
_RECONCILE_PAUSE = 0.5


_MAX_PLACED_IDS = 10_000
"""Most returned order ids remembered for reconciliation (which looks back seconds)."""


class OrdersPart(Part):
    """Placement, reconciliation, cancels, order lookups, history and fills.

    Args:
        config: The client configuration.
        rest: The REST actor.
        engine: The event engine the client publishes to.
    """

    def __init__(self, config: ClientConfig, rest: RestActor, engine: EventEngine) -> None:
        super().__init__(config, rest, engine)
        # Ids of orders this client returned (newest last, at most _MAX_PLACED_IDS):
        # reconciliation never hands out one of them for another request.
        self._placed_ids: dict[str, Order | None] = {}
        # Whether the order search's cursors were found to repeat (the real server):
        # later walks page by time at once (see hbtrio._paging).
        self._search_cursors_broken = False
        # Identical placements in flight or left unknown: a lone match is returned
        # by reconciliation only when no rival could have created it.
        self._placements = PlacementLedger(MATCH_SLACK)

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
            OrderPending: ``wait_accepted`` gave up while the order stayed
                ``SUBMITTED`` (it exists: the exception carries it).
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
            rule = await self._trading_rules.rule(request.exchange, request.market)
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
        now = self._rest.clock()
        order = Order(
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
        self._remember_placed(order.order_id, order)
        return order

    def _remember_placed(self, order_id: str, order: Order | None = None) -> None:
        ids = self._placed_ids
        ids[order_id] = order
        if len(ids) > _MAX_PLACED_IDS:
            del ids[next(iter(ids))]

    def _known_order(self, order_id: str) -> Order | None:
        """An order this client placed or tracks (completes detail-less history rows)."""
        if self.tracker is not None:
            order = self.tracker.get(order_id)
            if order is not None:
                return order
        return self._placed_ids.get(order_id)

    def _parse_orders(self, body: bytes) -> Page[Order]:
        return wire.parse_orders_page(body, self._known_order)

    async def _reconcile(
        self, request: OrderRequest, lost: AmbiguousOutcome, entry: Placement
    ) -> Order:
        """Find the order a lost placement may have created (see ``place_order``)."""
        logger.debug("placement answer lost (%s); reconciling", lost.cause)
        start = end = lost.sent_at
        matches: dict[str, Order] = {}
        unresolved_fills: set[str] = set()
        problem: HbtrioError | None = None
        # A 5xx or an unreadable 2xx gets the passes of a lost answer: the order may
        # show only later (the real server lists it once the exchange acknowledged).
        for attempt in range(_RECONCILE_PASSES):
            end = self._rest.clock()
            try:
                matches, unresolved_fills = await self._find_matches(request, start, end)
            except HbtrioError as exc:
                problem = exc
                matches, unresolved_fills = {}, set()
            if matches or unresolved_fills:
                break
            if attempt + 1 < _RECONCILE_PASSES:
                await trio.sleep(_RECONCILE_PAUSE)
        # Another call may have returned one of them while the search was running.
        placed = self._placed_ids
        matches = {oid: order for oid, order in matches.items() if oid not in placed}
        unresolved_fills.difference_update(placed)
        rivals = self._placements.rivals(entry, start, end)
        if len(matches) == 1 and not unresolved_fills and not rivals:
            order = next(iter(matches.values()))
            self._remember_placed(order.order_id, order)
            logger.debug("reconciled lost placement to order %s", order.order_id)
            return order
        candidates = tuple(matches.values())
        if self.tracker is not None:
            # Any of them may be ours: follow them closely, so that their changes
            # (and terminal states) are published like those of a returned order.
            for candidate in candidates:
                self.tracker.track(candidate)
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
            # Not a timeout: the order exists; placing it again would duplicate it.
            raise OrderPending(
                f"order {order.order_id} was placed and still SUBMITTED after {limit:g} s",
                order=current,
                request=request,
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
        # No trading-pair filter: the real server's row of an order rejected before
        # acknowledgement has trading_pair "UNKNOWN", which such a filter hides.
        pages = self._history(
            exchange=exchange,
            market=None,
            start=None,
            end=None,
            status=None,
            page_size=1000,
            max_pages=_MAX_SEARCH_PAGES,
        )
        async with aclosing(pages):
            async for order in pages:
                if order.order_id == order_id and (market is None or order.market == market):
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
        paging: Paging[Order] = Paging(
            key=_order_id, stamp=_created, max_pages=_MAX_LIST_PAGES, time_paging=False
        )

        async def fetch(request: PageRequest) -> Page[Order]:
            return await self._rest.call(
                wire.build_active_orders(
                    accounts=[self._account],
                    exchanges=exchanges,
                    markets=markets,
                    limit=1000,
                    cursor=request.cursor,
                ),
                self._parse_orders,
            )

        async with aclosing(walk(paging, fetch)) as orders:
            return [order async for order in orders]

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
            cursor=check_cursor(cursor),
        )
        return await self._rest.call(req, self._parse_orders)

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
        # The one paging primitive: the server's cursors while they bring something
        # new, then by time (the real server's every cursor is "0:"); see _paging.
        paging: Paging[Order] = Paging(
            key=_order_id,
            stamp=_created,
            end_ms=to_millis(end),
            max_pages=max_pages,
            cursors_broken=self._search_cursors_broken,
        )

        async def fetch(request: PageRequest) -> Page[Order]:
            return await self._rest.call(
                wire.build_order_search(
                    accounts=[self._account],
                    exchanges=None if exchange is None else [exchange],
                    markets=None if market is None else [market],
                    status=status,
                    start_ms=to_millis(start),
                    end_ms=request.end_ms,
                    limit=page_size,
                    cursor=request.cursor,
                ),
                self._parse_orders,
            )

        try:
            async with aclosing(walk(paging, fetch)) as orders:
                async for order in orders:
                    yield order
        finally:
            if paging.cursors_broken:
                self._search_cursors_broken = True

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
            cursor=check_cursor(cursor),
        )
        return await self._rest.call(req, wire.parse_trades_page)


def _order_id(order: Order) -> str:
    return order.order_id


def _created(order: Order) -> float | None:
    return order.created_at or None


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
