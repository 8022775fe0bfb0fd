"""The REST request path: retries, time bounds, error mapping, logging.

``RestActor`` sends ``HttpRequest`` values built by
``hbtrio._wire.rest`` over a ``Transport`` (the
``HttpPool`` in production, an in-memory fake in unit
tests), parses 2xx answers with the given parser and maps every other answer with
``hbtrio._wire.errors.error_from_response``.

Retry policy
------------
Every attempt is bounded by ``config.timeout`` (none when it is 0). A failed
attempt is retried, after a full-jitter exponential backoff delay
(``hbtrio._core.backoff.retry_delays``), at most ``config.retries`` times:

* idempotent requests (reads): on any connection failure except TLS certificate
  and authentication failures, on timeouts, and on retryable server answers (429,
  503, 504);
* non-idempotent requests (placing, cancelling): only when the request provably
  never reached the server (transport errors with ``retryable=True``) or the
  server said it did not process it (429, 503). Any other lost answer raises
  ``AmbiguousOutcome`` for the caller to reconcile: an order is never sent
  twice blindly. A plain 5xx answer to an order placement is also handed over as
  ``AmbiguousOutcome``: the server may have created the
  order before failing; so is an unparsable 2xx answer to it. The real server's
  500 ``Unexpected error placing trade: ...`` (a connector that could not be
  built, before the order was taken) is an ``OrderRejected`` with its text.

A call therefore returns or raises within ``timeout * (retries + 1)`` plus the
backoff delays (plus, with ``rate_limit``, the client-side rate-limit waits).

Logging: every request and answer is logged at DEBUG on the ``hbtrio`` logger
(method, path, body excerpt, status, duration). Headers are never logged, so
the ``Authorization`` value (the API key) cannot appear.

Observing: an optional ``RequestObserver`` is called after every attempt
with ``(method, endpoint, seconds, outcome)``, the endpoint being the path's
template (``endpoint_of``: no query string, no ids). Unset (the default), it
costs one attribute check per attempt: no clock read, no allocation.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

import trio

from .._config import ClientConfig
from .._core.backoff import retry_delays
from .._errors import (
    AuthenticationFailed,
    ConnectionFailed,
    HbtrioError,
    MalformedResponse,
    OrderRejected,
    RequestTimeout,
    ServerError,
    register_secret,
    scrub_text,
)
from .._wire.errors import RejectionTable, error_from_response
from .._wire.rest import HttpRequest
from ..models import Order, OrderRequest, OrderType
from .http import HttpResponse
from .tls import is_certificate_error

__all__ = [
    "MATCH_SLACK",
    "AmbiguousOutcome",
    "RequestObserver",
    "RestActor",
    "Transport",
    "endpoint_of",
    "is_certificate_error",
    "match_order",
]

T = TypeVar("T")

logger = logging.getLogger("hbtrio")

_EXCERPT = 500
_RETRY_STATUSES_UNSENT = frozenset({429, 503})

RequestObserver = Callable[[str, str, float, str], None]
"""Called after each HTTP attempt with ``(method, endpoint, seconds, outcome)``.

``endpoint`` is the path template (see ``endpoint_of``), ``seconds`` the
attempt's duration (monotonic clock), ``outcome`` ``"ok"`` for a success status,
the status code (``"404"``, ``"503"``) for another answer, or the exception's
class name (``"ConnectionFailed"``, ``"RequestTimeout"``) when there was none.
It runs synchronously on the request path: it must be quick. An exception it
raises is logged and otherwise ignored.
"""


def endpoint_of(path: str) -> str:
    """The template of a request path: no query string, variable segments named.

    Args:
        path: A path as sent, e.g. ``/connectors/binance/trading-rules?trading_pairs=X``.

    Returns:
        Its template, e.g. ``/connectors/{connector}/trading-rules``; a path with
        no variable segment is returned without its query string.
    """
    path = path.partition("?")[0]
    parts = path.split("/")
    if len(parts) == 4 and parts[1] == "connectors":
        return f"/connectors/{{connector}}/{parts[3]}"
    if len(parts) == 4 and parts[1] == "market-data" and parts[2] == "tickers":
        return "/market-data/tickers/{connector}"
    if len(parts) == 7 and parts[1] == "trading" and parts[4] == "orders":
        return f"/trading/{{account}}/{{connector}}/orders/{{order_id}}/{parts[6]}"
    return path


class Transport(Protocol):
    """What the REST actor needs from the HTTP layer (see ``HttpPool``)."""

    async def request(
        self,
        method: str,
        path: str,
        body: bytes | None,
        *,
        timeout: float | None,  # noqa: ASYNC109
    ) -> HttpResponse:
        """Send one request and return the complete response."""
        ...

    async def aclose(self) -> None:
        """Close the transport."""
        ...


class AmbiguousOutcome(Exception):
    """A non-idempotent request may have reached the server but its answer was lost.

    Args:
        cause: The transport error or answer that left the outcome open.
        sent_at: Wall-clock time (epoch seconds) just before the first attempt
            that may have been sent.

    Attributes:
        cause: The hbtrio exception describing what was lost.
        sent_at: Wall-clock time before the ambiguous attempt.
    """

    def __init__(self, cause: HbtrioError, sent_at: float) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.sent_at = sent_at


def _excerpt(body: bytes | None) -> str:
    if not body:
        return ""
    text = scrub_text(body[:_EXCERPT].decode("utf-8", "replace"))
    return text + ("..." if len(body) > _EXCERPT else "")


class RestActor:
    """Sends REST requests with retries, deadlines, error mapping and logging.

    Args:
        config: The client configuration (``timeout``, ``retries``).
        transport: The HTTP transport.
        rejections: Table mapping order rejection texts to exception types.
        rng: Random source of the backoff jitter.
        clock: Wall clock (epoch seconds) used to stamp request windows.
        observer: Called after every attempt (see ``RequestObserver``);
            ``None`` (the default) costs nothing.

    Attributes:
        observer: The request observer, or ``None``.
    """

    def __init__(
        self,
        config: ClientConfig,
        transport: Transport,
        *,
        rejections: RejectionTable | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
        observer: RequestObserver | None = None,
    ) -> None:
        self.config = config
        self.transport = transport
        self.rejections = rejections if rejections is not None else RejectionTable()
        self._rng = rng if rng is not None else random.Random()
        self._timeout = config.timeout or None
        self.clock = clock
        self.observer = observer
        # Server texts echoing the credential are scrubbed while this client lives.
        register_secret(self, config.api_key)

    @staticmethod
    def _observe(observer: RequestObserver, req: HttpRequest, began: float, outcome: str) -> None:
        """Report one attempt; only called when an observer is set."""
        seconds = time.perf_counter() - began
        try:
            observer(req.method, endpoint_of(req.path), seconds, outcome)
        except Exception:
            logger.exception("request observer failed")

    def delays(self) -> list[float]:
        """Backoff delays before each retry (fresh jitter per call).

        Returns:
            ``config.retries`` delays, seconds.
        """
        return retry_delays(
            self.config.retries,
            initial=self.config.reconnect_initial,
            cap=self.config.reconnect_max,
            rng=self._rng,
        )

    async def _attempt(self, req: HttpRequest) -> HttpResponse:
        debug = logger.isEnabledFor(logging.DEBUG)
        if debug:
            logger.debug("request %s %s %s", req.method, req.path, _excerpt(req.body))
            began = time.perf_counter()
        try:
            response = await self.transport.request(
                req.method, req.path, req.body, timeout=self._timeout
            )
        except HbtrioError as exc:
            if debug:
                logger.debug("request %s %s failed: %s", req.method, req.path, exc)
            raise
        if debug:
            logger.debug(
                "response %s %s -> %d in %.1f ms %s",
                req.method,
                req.path,
                response.status,
                (time.perf_counter() - began) * 1000,
                _excerpt(response.body),
            )
        return response

    def _retry_allowed(self, req: HttpRequest, exc: HbtrioError) -> bool:
        if isinstance(exc, AuthenticationFailed) or is_certificate_error(exc):
            return False
        if isinstance(exc, ConnectionFailed | RequestTimeout):
            return req.idempotent or exc.retryable
        if exc.status is not None:
            if req.idempotent:
                return exc.retryable
            return exc.status in _RETRY_STATUSES_UNSENT
        return False

    async def call(
        self,
        req: HttpRequest,
        parse: Callable[[bytes], T],
        *,
        order: OrderRequest | None = None,
        ok: Sequence[int] = (200, 201),
    ) -> T:
        """Send ``req`` (retrying as the policy allows) and parse the answer.

        Args:
            req: The request.
            parse: Parser of a successful body.
            order: The order request, attached to order errors.
            ok: Statuses that count as success.

        Returns:
            The parsed answer.

        Raises:
            AmbiguousOutcome: A non-idempotent request may have reached the server
                and its answer was lost (only for ``req.idempotent == False``).
            HbtrioError: The mapped error of the last attempt (see
                ``error_from_response``), a transport error,
                or ``MalformedResponse``.
        """
        # The jittered delays are drawn at the first retry: most calls never retry.
        delays: list[float] | None = None
        attempt = 0
        observer = self.observer
        while True:
            sent_at = self.clock()
            began = time.perf_counter() if observer is not None else 0.0
            try:
                if logger.isEnabledFor(logging.DEBUG):
                    response = await self._attempt(req)
                else:  # the usual case: no logging, one coroutine less per request
                    response = await self.transport.request(
                        req.method, req.path, req.body, timeout=self._timeout
                    )
            except HbtrioError as exc:
                if observer is not None:
                    self._observe(observer, req, began, type(exc).__name__)
                error: HbtrioError = exc
                if not req.idempotent and not self._retry_allowed(req, exc):
                    if is_certificate_error(exc) or isinstance(exc, AuthenticationFailed):
                        raise
                    raise AmbiguousOutcome(exc, sent_at) from exc
            else:
                if observer is not None:
                    outcome = "ok" if response.status in ok else str(response.status)
                    self._observe(observer, req, began, outcome)
                if response.status in ok:
                    try:
                        return parse(response.body)
                    except MalformedResponse as exc:
                        exc.method, exc.path, exc.status = req.method, req.path, response.status
                        if not req.idempotent and order is not None:
                            # The server took the placement (2xx) but its answer is
                            # unreadable: an order may exist, as after a lost answer.
                            raise AmbiguousOutcome(exc, sent_at) from exc
                        raise
                error = error_from_response(
                    response.status,
                    response.content_type,
                    response.body,
                    method=req.method,
                    path=req.path,
                    request=order,
                    rejections=self.rejections,
                )
                if order is not None and _is_connector_failure(response.status, error):
                    # 500 "Unexpected error placing trade: ...": raised before the
                    # connector took the order (e.g. no credentials for it).
                    raise OrderRejected(
                        f"order rejected: {error.detail}",
                        request=order,
                        reason=str(error.detail),
                        status=response.status,
                        detail=error.detail,
                        method=req.method,
                        path=req.path,
                    ) from error
                if not req.idempotent and response.status == 504:
                    # A gateway timeout says nothing about whether the server acted.
                    raise AmbiguousOutcome(error, sent_at) from error
                if (
                    not req.idempotent
                    and response.status >= 500
                    and response.status not in _RETRY_STATUSES_UNSENT
                    and order is not None
                    and type(error) is ServerError
                ):
                    # A 500 may come after the order was created: the caller checks.
                    raise AmbiguousOutcome(error, sent_at) from error
            if attempt >= self.config.retries or not self._retry_allowed(req, error):
                raise error
            if delays is None:
                delays = self.delays()
            logger.debug(
                "retrying %s %s after %s (attempt %d of %d)",
                req.method,
                req.path,
                type(error).__name__,
                attempt + 2,
                self.config.retries + 1,
            )
            await trio.sleep(delays[attempt])
            attempt += 1


_CONNECTOR_FAILURE = "Unexpected error placing trade:"


def _is_connector_failure(status: int, error: HbtrioError) -> bool:
    """Whether a placement answer is the server's wrapped connector failure.

    The real server answers 500 ``Unexpected error placing trade: <text>`` when
    building the (account, connector) connector failed, before the order was
    taken (protocol-more.md section 12): a rejection, nothing was created.
    """
    return (
        status == 500
        and isinstance(error.detail, str)
        and error.detail.startswith(_CONNECTOR_FAILURE)
    )


MATCH_SLACK = 2.0
"""Seconds of clock tolerance ``match_order`` allows on each side of a window."""


def match_order(
    request: OrderRequest,
    order: Order,
    *,
    start: float,
    end: float,
    slack: float = MATCH_SLACK,
) -> bool:
    """Whether ``order`` could be the one ``request`` created in ``[start, end]``.

    Matches account, exchange, market, side, type, amount, price (limit types) and
    a creation time inside the window widened by ``slack`` seconds on both sides
    (server and client clocks differ a little).

    Args:
        request: What was sent.
        order: A candidate order from the server.
        start: Wall-clock time before the request was sent, epoch seconds.
        end: Wall-clock time after its answer was lost, epoch seconds.
        slack: Seconds of clock tolerance.

    Returns:
        Whether it matches.
    """
    if (
        order.account != request.account
        or order.exchange != request.exchange
        or order.market != request.market
        or order.side is not request.side
        or order.order_type is not request.order_type
        or order.amount != request.amount
    ):
        return False
    if (
        request.order_type is not OrderType.MARKET
        and request.price is not None
        and order.price != request.price
    ):
        return False
    created = order.created_at
    return not created or start - slack <= created <= end + slack
