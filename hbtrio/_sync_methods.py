"""The blocking client's methods, generated from ``hbtrio.Client``.

Do not edit: run ``python -m hbtrio._sync_gen`` (a test fails while it is stale).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from datetime import datetime
from decimal import Decimal

from hbtrio._client import Client
from hbtrio._domains._part import TimeArg
from hbtrio._sync_portal import SyncPortal
from hbtrio.events import Event
from hbtrio.models import (
    Balance,
    Candle,
    MarketTrade,
    Order,
    OrderBook,
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

__all__ = ["SyncClientMethods"]


class SyncClientMethods:
    """Every public method of ``hbtrio.Client``, blocking (see ``hbtrio.sync``)."""

    _client: Client
    _portal: SyncPortal

    def cancel_all_orders(
        self,
        *,
        exchange: str | None = None,
        market: str | None = None,
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
        return self._portal.call(self._client.cancel_all_orders, exchange=exchange, market=market)

    def cancel_order(
        self,
        order_id: str,
        *,
        exchange: str | None = None,
        market: str | None = None,
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
        return self._portal.call(
            self._client.cancel_order, order_id, exchange=exchange, market=market
        )

    def events(
        self,
        *types: type[Event],
        buffer: int = 1000,
    ) -> AbstractContextManager[Iterator[Event]]:
        """Subscribe to the events the client publishes (all, or some types).

        A REST-only client (``streaming=False``) subscribes to its event engine
        directly.

        Args:
            *types: Event classes to receive; none: every event.
            buffer: Events buffered for this subscriber.

        Returns:
            A context manager yielding an iterator of events.

        Raises:
            InputValidationError: ``buffer`` < 1, or a type that is not an ``Event``
                subclass (on entering the context).
        """
        return self._portal.stream(self._client.events, *types, buffer=buffer)

    def get_accounts(
        self,
    ) -> list[str]:
        """Return the account names of the server.

        Returns:
            Account names.

        Raises:
            AuthenticationFailed: Wrong credentials.
            HbtrioError: The request failed.
        """
        return self._portal.call(self._client.get_accounts)

    def get_balances(
        self,
        exchange: str | None = None,
        refresh: bool = False,
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
        return self._portal.call(self._client.get_balances, exchange, refresh)

    def get_candles(
        self,
        exchange: str,
        market: str,
        interval: str = "1m",
        limit: int = 100,
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
        return self._portal.call(self._client.get_candles, exchange, market, interval, limit)

    def get_exchanges(
        self,
    ) -> list[str]:
        """Return the connector names the server knows.

        Returns:
            Connector names.

        Raises:
            HbtrioError: The request failed.
        """
        return self._portal.call(self._client.get_exchanges)

    def get_historical_candles(
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
        return self._portal.call(
            self._client.get_historical_candles, exchange, market, interval, start=start, end=end
        )

    def get_open_orders(
        self,
        exchange: str | None = None,
        market: str | None = None,
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
        return self._portal.call(self._client.get_open_orders, exchange, market)

    def get_order(
        self,
        order_id: str,
        exchange: str | None = None,
        market: str | None = None,
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
        return self._portal.call(self._client.get_order, order_id, exchange, market)

    def get_order_book(
        self,
        exchange: str,
        market: str,
        depth: int = 20,
    ) -> OrderBook:
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
        return self._portal.call(self._client.get_order_book, exchange, market, depth)

    def get_order_history(
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
        return self._portal.call(
            self._client.get_order_history, start, end, market, status, exchange, limit, cursor
        )

    def get_ticker(
        self,
        exchange: str,
        market: str,
    ) -> Ticker:
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
        return self._portal.call(self._client.get_ticker, exchange, market)

    def get_trades(
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
        return self._portal.call(
            self._client.get_trades, start, end, market, exchange, limit, cursor
        )

    def get_trading_rules(
        self,
        exchange: str,
        markets: Iterable[str] | None = None,
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
        return self._portal.call(self._client.get_trading_rules, exchange, markets)

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
    ) -> Iterator[Order]:
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
            An iterator of orders.

        Raises:
            InputValidationError: An argument is invalid (raised at once).
        """
        return self._portal.iterate(
            self._client.iter_order_history,
            start,
            end,
            market,
            status,
            exchange,
            page_size=page_size,
            max_pages=max_pages,
        )

    def place_limit_order(
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
        return self._portal.call(
            self._client.place_limit_order,
            exchange,
            market,
            side,
            price=price,
            amount=amount,
            position_action=position_action,
            wait_accepted=wait_accepted,
        )

    def place_market_order(
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
        return self._portal.call(
            self._client.place_market_order,
            exchange,
            market,
            side,
            amount=amount,
            position_action=position_action,
            wait_accepted=wait_accepted,
        )

    def place_order(
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
        return self._portal.call(
            self._client.place_order,
            exchange,
            market,
            side,
            amount=amount,
            order_type=order_type,
            price=price,
            position_action=position_action,
            wait_accepted=wait_accepted,
        )

    def server_info(
        self,
    ) -> ServerInfo:
        """Return what ``GET /`` says (name, version, status).

        Returns:
            The server info.

        Raises:
            HbtrioError: The request failed.
        """
        return self._portal.call(self._client.server_info)

    def subscribe_candles(
        self,
        exchange: str,
        market: str,
        interval: str = "1m",
        *,
        update_interval: float = 1.0,
        max_records: int = 100,
        buffer: int = 1000,
    ) -> AbstractContextManager[Iterator[Candle]]:
        """Stream candles (see ``StreamingSupervisor.subscribe_candles``).

        Args:
            exchange: Connector name.
            market: Trading pair.
            interval: Candle interval, e.g. ``1m``.
            update_interval: Seconds between server pushes.
            max_records: Candles kept by the server's feed.
            buffer: Candles kept for a consumer that falls behind.

        Returns:
            A context manager yielding an iterator of candles.

        Raises:
            SubscriptionError: The client was opened without streaming.
        """
        return self._portal.stream(
            self._client.subscribe_candles,
            exchange,
            market,
            interval,
            update_interval=update_interval,
            max_records=max_records,
            buffer=buffer,
        )

    def subscribe_order_book(
        self,
        exchange: str,
        market: str,
        depth: int = 10,
        update_interval: float = 1.0,
    ) -> AbstractContextManager[Iterator[OrderBook]]:
        """Stream order-book snapshots (see ``StreamingSupervisor.subscribe_order_book``).

        Args:
            exchange: Connector name.
            market: Trading pair.
            depth: Levels per side (1..1000).
            update_interval: Seconds between server pushes, 0 for as fast as the
                server sends (the server clamps it).

        Returns:
            A context manager yielding an iterator of order books.

        Raises:
            SubscriptionError: The client was opened without streaming.
        """
        return self._portal.stream(
            self._client.subscribe_order_book, exchange, market, depth, update_interval
        )

    def subscribe_ticker(
        self,
        exchange: str,
        market: str,
        update_interval: float = 1.0,
    ) -> AbstractContextManager[Iterator[Ticker]]:
        """Stream composed tickers (see ``StreamingSupervisor.subscribe_ticker``).

        Args:
            exchange: Connector name.
            market: Trading pair.
            update_interval: Seconds between server pushes.

        Returns:
            A context manager yielding an iterator of tickers.

        Raises:
            SubscriptionError: The client was opened without streaming.
        """
        return self._portal.stream(self._client.subscribe_ticker, exchange, market, update_interval)

    def subscribe_trades(
        self,
        exchange: str,
        market: str,
        update_interval: float = 1.0,
        *,
        buffer: int = 1000,
    ) -> AbstractContextManager[Iterator[MarketTrade]]:
        """Stream public trades (see ``StreamingSupervisor.subscribe_trades``).

        Args:
            exchange: Connector name.
            market: Trading pair.
            update_interval: Seconds between server pushes.
            buffer: Trades kept for a consumer that falls behind.

        Returns:
            A context manager yielding an iterator of public trades.

        Raises:
            SubscriptionError: The client was opened without streaming.
        """
        return self._portal.stream(
            self._client.subscribe_trades, exchange, market, update_interval, buffer=buffer
        )
