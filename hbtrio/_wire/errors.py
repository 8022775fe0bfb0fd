"""Map server error answers and exchange rejection texts to typed exceptions (sans-IO).

``error_from_response`` turns any non-2xx REST answer into the narrowest
``HbtrioError`` subclass (protocol section 2); it never fails,
whatever the body (JSON ``detail`` string, 422 list, ``text/plain``, binary).

``RejectionTable`` classifies the *asynchronous* rejection texts of
``FAILED`` orders (``error_message``) and the few synchronous 400 texts, with
default patterns for every connector, per-connector additions (Binance, KuCoin,
OKX, ...) and user extensions via ``RejectionTable.add``. Unknown reasons
become ``OrderRejected`` keeping the raw text.

Messages carry the server's ``detail`` text (shortened), status, method and
path, never a request body.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from .._errors import (
    AuthenticationFailed,
    HbtrioError,
    InputValidationError,
    InsufficientFunds,
    InvalidOrder,
    MinOrderSizeNotMet,
    NotFound,
    OrderError,
    OrderNotFound,
    OrderRejected,
    PriceOutOfRange,
    RequestError,
    ServerError,
)
from ..models import OrderRequest

__all__ = [
    "DEFAULT_REJECTIONS",
    "RejectionTable",
    "error_from_response",
    "extract_detail",
]

_DETAIL_CHARS = 300

# (pattern, exception) pairs every connector gets; the simulator's texts included.
_GENERIC: tuple[tuple[str, type[OrderError]], ...] = (
    (r"insufficient (balance|funds|margin)", InsufficientFunds),
    (r"balance (is )?(insufficient|not enough)", InsufficientFunds),
    (r"not enough (balance|funds|margin)", InsufficientFunds),
    (r"price is outside (of )?the allowed range", PriceOutOfRange),
    (
        r"price (is )?(out of|not within|outside) (the )?(allowed |valid )?(price )?"
        r"(range|band|limit)",
        PriceOutOfRange,
    ),
    (r"post[- _]?only|would (immediately )?(cross|match|take|trade)", InvalidOrder),
    (r"below (the )?minimum (order )?(size|notional|amount|value|quantity)", MinOrderSizeNotMet),
    (r"price is required", InvalidOrder),
    (r"trading pair .* not supported|order type .* not supported", InvalidOrder),
)

# Per-connector additions; a key also covers ``key_*`` connectors (``binance_perpetual``).
_PER_CONNECTOR: dict[str, tuple[tuple[str, type[OrderError]], ...]] = {
    "binance": (
        (r"filter failure: (price_filter|percent_price(_by_side)?)", PriceOutOfRange),
        (r"filter failure: (lot_size|market_lot_size|min_notional|notional)", MinOrderSizeNotMet),
        (r"order would immediately match and take", InvalidOrder),
        (r"account has insufficient balance", InsufficientFunds),
    ),
    "kucoin": (
        (r"balance insufficient", InsufficientFunds),
        (r"(order )?(size|funds) (is )?(below|less than) (the )?minimum", MinOrderSizeNotMet),
        (r"price (is )?(too high|too low|exceeds)", PriceOutOfRange),
    ),
    "okx": (
        (r"order price is not within the price limit", PriceOutOfRange),
        (r"order (amount|quantity|size) .* (less|lower) than .* minimum", MinOrderSizeNotMet),
    ),
    "bybit": (
        (r"ab not enough for new order", InsufficientFunds),
        (r"order price .* (is )?(out of|exceeds) .*(range|limit)", PriceOutOfRange),
        (r"order (quantity|qty|value) .* (lower|less) than .* minimum", MinOrderSizeNotMet),
    ),
    "gate_io": (
        (r"balance_not_enough", InsufficientFunds),
        (r"invalid_price|price_too_deviated", PriceOutOfRange),
        (r"too_small|amount_too_little", MinOrderSizeNotMet),
    ),
}


class RejectionTable:
    """Classify order rejection texts into exception types.

    Rules are regular expressions searched (case-insensitively when given as
    strings) in the reason text. Rules for the order's connector are tried
    before rules for every connector; within each group the most recently added
    rule wins, so user rules override the defaults.

    Args:
        defaults: Start with the built-in rules (simulator texts plus common
            exchange texts).
    """

    def __init__(self, *, defaults: bool = True) -> None:
        self._generic: list[tuple[re.Pattern[str], type[OrderError]]] = []
        self._per_connector: dict[str, list[tuple[re.Pattern[str], type[OrderError]]]] = {}
        if defaults:
            for pattern, exc_type in _GENERIC:
                self.add(pattern, exc_type)
            for connector, rules in _PER_CONNECTOR.items():
                for pattern, exc_type in rules:
                    self.add(pattern, exc_type, connector=connector)

    def add(
        self,
        pattern: str | re.Pattern[str],
        exc_type: type[OrderError],
        connector: str | None = None,
    ) -> None:
        """Add a rule; it takes precedence over earlier rules of the same scope.

        Args:
            pattern: Regular expression (strings compile case-insensitively).
            exc_type: Exception type to raise when it matches (an ``OrderError``).
            connector: Restrict to this connector (and ``connector_*`` variants);
                ``None`` for every connector.

        Raises:
            TypeError: ``exc_type`` is not an ``OrderError`` subclass.
            re.error: ``pattern`` is not a valid regular expression.
        """
        if not (isinstance(exc_type, type) and issubclass(exc_type, OrderError)):
            raise TypeError("exc_type must be a subclass of hbtrio.OrderError")
        compiled = pattern if isinstance(pattern, re.Pattern) else re.compile(pattern, re.I)
        rules = (
            self._generic
            if connector is None
            else self._per_connector.setdefault(connector.lower(), [])
        )
        rules.insert(0, (compiled, exc_type))

    def _scopes(
        self, connector: str | None
    ) -> list[list[tuple[re.Pattern[str], type[OrderError]]]]:
        scopes = []
        if connector:
            name = connector.lower()
            for key, rules in self._per_connector.items():
                if name == key or name.startswith(key + "_") or name.startswith(key + "/"):
                    scopes.append(rules)
        scopes.append(self._generic)
        return scopes

    def classify(self, reason: str | None, connector: str | None = None) -> type[OrderError]:
        """Return the exception type of a rejection reason.

        Args:
            reason: The raw reason text (``None`` or empty: unknown).
            connector: The order's connector, for connector-specific rules.

        Returns:
            The matching type, or ``OrderRejected`` when none matches.
        """
        if reason:
            text = reason[:2000]
            for rules in self._scopes(connector):
                for compiled, exc_type in rules:
                    if compiled.search(text):
                        return exc_type
        return OrderRejected

    def error_for(
        self,
        reason: str | None,
        *,
        connector: str | None = None,
        request: OrderRequest | None = None,
        order_id: str | None = None,
        **kw: Any,
    ) -> OrderError:
        """Build the exception for a rejected order.

        Args:
            reason: The raw reason (e.g. the order's ``error_message``).
            connector: The order's connector (defaults to ``request.exchange``).
            request: The order request, when known.
            order_id: The order id, when known.
            **kw: Structured details for ``HbtrioError`` (``status``,
                ``detail``, ``method``, ``path``, ``retryable``).

        Returns:
            The exception (not raised), ``reason`` kept verbatim.
        """
        if connector is None and request is not None:
            connector = request.exchange
        exc_type = self.classify(reason, connector)
        text = _short(reason) if reason else "no reason given"
        label = f"order {order_id} rejected" if order_id else "order rejected"
        return exc_type(f"{label}: {text}", request=request, order_id=order_id, reason=reason, **kw)


DEFAULT_REJECTIONS = RejectionTable()
"""The shared default table (extend a copy, or pass your own, to customise)."""


def _short(text: str) -> str:
    one_line = " ".join(text.split())
    if len(one_line) > _DETAIL_CHARS:
        return one_line[: _DETAIL_CHARS - 3] + "..."
    return one_line


class _DetailBody(msgspec.Struct):
    detail: Any = None


_D_DETAIL = msgspec.json.Decoder(_DetailBody)


def extract_detail(content_type: str | None, body: bytes) -> Any:
    """Extract the ``detail`` of an error body, whatever its shape.

    Args:
        content_type: The response's ``Content-Type`` header, if any.
        body: The raw body.

    Returns:
        The ``detail`` value of a JSON object body (string or list), else the
        body's text (shortened, undecodable bytes replaced); ``None`` for an
        empty body.
    """
    raw = bytes(body[:65536]) if isinstance(body, bytes | bytearray | memoryview) else b""
    if not raw.strip():
        return None
    looks_json = raw.lstrip()[:1] in (b"{", b"[") or (
        content_type is not None and "json" in content_type.lower()
    )
    if looks_json:
        try:
            raw.decode("utf-8")
            decoded = _D_DETAIL.decode(raw)
        except Exception:
            pass
        else:
            if decoded.detail is not None:
                return decoded.detail
    return _short(raw.decode("utf-8", "replace"))


_PUBLIC_NAMES = {
    "trading_pair": "market",
    "trading_pairs": "markets",
    "connector_name": "exchange",
    "connector_names": "exchanges",
    "account_name": "account",
    "account_names": "accounts",
    "trade_type": "side",
    "trade_types": "sides",
    "client_order_id": "order_id",
}
_LOC_PREFIXES = {"body", "query", "path", "header", "cookie"}


def _validation_error(detail: Any, **kw: Any) -> InputValidationError:
    argument = "request"
    rules: list[str] = []
    items = detail if isinstance(detail, list) else [detail]
    for item in items[:5]:
        if isinstance(item, dict):
            loc = item.get("loc")
            names = (
                [str(p) for p in loc if isinstance(p, str) and p not in _LOC_PREFIXES]
                if isinstance(loc, list)
                else []
            )
            if names and argument == "request":
                argument = _PUBLIC_NAMES.get(names[-1], names[-1])
            msg = item.get("msg")
            where = ".".join(names)
            if isinstance(msg, str):
                rules.append(f"{where}: {msg}" if where else msg)
        elif isinstance(item, str):
            rules.append(item)
    rule = _short("; ".join(rules)) if rules else "rejected by the server (422)"
    return InputValidationError(argument, rule, detail=detail, **kw)


_CANCEL_RE = re.compile(r"^/trading/([^/]+)/([^/]+)/orders/([^/]+)/cancel$")
_ACCOUNT_NOT_FOUND = re.compile(r"account\s+'[^']*'\s+not found", re.I)


def error_from_response(
    status: int,
    content_type: str | None,
    body: bytes,
    *,
    method: str,
    path: str,
    request: OrderRequest | None = None,
    rejections: RejectionTable | None = None,
) -> HbtrioError:
    """Map a non-2xx REST answer to its typed exception (never raises).

    ==========  =================================================================
    status      exception
    ==========  =================================================================
    401, 403    ``AuthenticationFailed``
    404         ``OrderNotFound`` for the cancel path or an order
                detail; ``NotFound`` otherwise (unknown account,
                unknown path, tickers on an old server)
    400         order texts via the rejection table (``MinOrderSizeNotMet``,
                ``InvalidOrder``, ...); other 400s of an order request
                ``InvalidOrder``; else ``RequestError``
    422         ``InputValidationError`` (argument from ``loc``)
    429         ``RequestError``, retryable
    503, 504    ``ServerError``, retryable
    other 5xx   ``ServerError``, not retryable
    other       ``RequestError``
    ==========  =================================================================

    Args:
        status: HTTP status code.
        content_type: ``Content-Type`` of the answer, if any.
        body: Raw answer body.
        method: Request method.
        path: Request path (no credentials).
        request: The order request, for order endpoints.
        rejections: Table for order texts (default ``DEFAULT_REJECTIONS``).

    Returns:
        The exception (not raised), with ``status``, ``detail``, ``method``,
        ``path``, ``retryable`` and, for order errors, ``request``.
    """
    try:
        return _map(status, content_type, body, method, path, request, rejections)
    except Exception:  # pragma: no cover - defensive: mapping must never fail
        return RequestError(
            f"unexpected answer: HTTP {status}", status=status, method=method, path=path
        )


def _map(
    status: int,
    content_type: str | None,
    body: bytes,
    method: str,
    path: str,
    request: OrderRequest | None,
    rejections: RejectionTable | None,
) -> HbtrioError:
    detail = extract_detail(content_type, body)
    text = detail if isinstance(detail, str) else None
    shown = _short(text) if text else (f"HTTP {status}" if detail is None else "see detail")
    common: dict[str, Any] = {"status": status, "detail": detail, "method": method, "path": path}
    table = rejections if rejections is not None else DEFAULT_REJECTIONS
    cancel = _CANCEL_RE.match(path.split("?", 1)[0])
    is_order_path = path.startswith("/trading/orders") and not path.startswith(
        ("/trading/orders/active", "/trading/orders/search")
    )

    if status in (401, 403):
        return AuthenticationFailed(f"authentication failed: {shown}", **common)
    if status == 404:
        if text and _ACCOUNT_NOT_FOUND.search(text):
            return NotFound(f"not found: {shown}", **common)
        if cancel is not None or (text and re.search(r"\border\b", text, re.I)):
            order_id = cancel.group(3) if cancel is not None else None
            return OrderNotFound(
                f"order not found: {shown}",
                request=request,
                order_id=order_id,
                reason=text,
                **common,
            )
        return NotFound(f"not found: {shown}", **common)
    if status == 422:
        return _validation_error(detail, status=status, method=method, path=path)
    if status == 400:
        if request is not None or is_order_path or cancel is not None:
            exc_type = table.classify(text, request.exchange if request else None)
            if exc_type is OrderRejected:
                exc_type = InvalidOrder
            return exc_type(f"order refused: {shown}", request=request, reason=text, **common)
        return RequestError(f"bad request: {shown}", **common)
    if status == 429:
        return RequestError(f"rate limited: {shown}", retryable=True, **common)
    if status in (503, 504):
        return ServerError(f"server not ready: {shown}", retryable=True, **common)
    if 500 <= status <= 599:
        return ServerError(f"server error: {shown}", **common)
    return RequestError(f"unexpected answer: {shown}", **common)
