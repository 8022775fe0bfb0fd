"""The hbtrio exception hierarchy.

Every exception carries a readable message and structured details where they
apply (``status``, ``detail``, ``method``, ``path``, ``retryable``; order errors
also carry the ``OrderRequest``). None of them ever contains
the API key: messages are built from server answers and request metadata only,
and every text an exception carries (message, ``detail``, ``reason``, excerpt) is
scrubbed on construction of the credential pair of every open client, its base64
forms and any ``Basic ...`` value (``scrub``); so are ``ErrorEvent`` texts and the
lines of the ``hbtrio`` logger.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
import weakref
from collections import Counter
from typing import Any
from urllib.parse import quote

from .models import Order, OrderRequest

__all__ = [
    "AuthenticationFailed",
    "ConfigError",
    "ConnectionFailed",
    "HbtrioError",
    "InputValidationError",
    "InsufficientFunds",
    "InvalidOrder",
    "MalformedResponse",
    "MinOrderSizeNotMet",
    "NotFound",
    "OrderError",
    "OrderNotFound",
    "OrderOutcomeUnknown",
    "OrderPending",
    "OrderRejected",
    "PriceOutOfRange",
    "RequestError",
    "RequestTimeout",
    "ServerError",
    "SubscriptionError",
    "register_secret",
    "scrub",
    "scrub_text",
]

REDACTED = "[redacted]"
# "Basic <token>": any token but a plain lower-case word ("Basic authentication")
_BASIC = re.compile(r"\b[Bb][Aa][Ss][Ii][Cc]\s+(?![a-z]+\b)[A-Za-z0-9+/=._~%-]+")


class _Secrets:
    """The credential pairs of the open clients and the pattern that finds them."""

    def __init__(self) -> None:
        # Reentrant: the finalizer calling ``remove`` can run inside ``add`` (a garbage
        # collection during ``re.compile``) in the same thread; a plain Lock deadlocks.
        self._lock = threading.RLock()
        self._counts: Counter[str] = Counter()
        self._pattern: re.Pattern[str] | None = None

    @staticmethod
    def _forms(secret: str) -> set[str]:
        raw = secret.encode()
        forms = {secret, quote(secret, safe="")}
        for encoded in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
            text = encoded.decode()
            forms.update({text, text.rstrip("="), quote(text, safe="")})
        return {f for f in forms if len(f) >= 3}

    def add(self, secret: str) -> None:
        with self._lock:
            self._counts[secret] += 1
            self._rebuild()

    def remove(self, secret: str) -> None:
        with self._lock:
            self._counts[secret] -= 1
            if self._counts[secret] <= 0:
                del self._counts[secret]
            self._rebuild()

    def _rebuild(self) -> None:
        forms: set[str] = set()
        for secret in self._counts:
            forms |= self._forms(secret)
        if not forms:
            self._pattern = None
            return
        ordered = sorted(forms, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(f) for f in ordered))

    def scrub(self, text: str) -> str:
        text = _BASIC.sub(f"Basic {REDACTED}", text)
        pattern = self._pattern
        return pattern.sub(REDACTED, text) if pattern is not None else text


_SECRETS = _Secrets()


def register_secret(owner: object, secret: str) -> None:
    """Scrub ``secret`` (a credential pair) from every text while ``owner`` lives.

    Args:
        owner: The object holding the secret (a REST actor); when it is garbage
            collected the secret is forgotten (unless another owner holds it).
        secret: The credential pair ``user:password``.
    """
    _SECRETS.add(secret)
    weakref.finalize(owner, _SECRETS.remove, secret)


def scrub_text(text: str) -> str:
    """``scrub`` for one string.

    Args:
        text: Any text (a server answer, a log line).

    Returns:
        The text without any credential of an open client.
    """
    return _SECRETS.scrub(text)


def scrub(value: Any) -> Any:
    """Remove every credential of an open client from a text (or nested JSON value).

    Replaces the credential pair, its base64 forms (padded or not, URL-safe or
    percent-encoded) and any ``Basic ...`` value with ``[redacted]``.

    Args:
        value: A string, or a list/dict of them (a 422 ``detail``); other values
            are returned as they are.

    Returns:
        The scrubbed value.
    """
    if isinstance(value, str):
        return _SECRETS.scrub(value)
    if isinstance(value, list):
        return [scrub(v) for v in value]
    if isinstance(value, tuple):
        return tuple(scrub(v) for v in value)
    if isinstance(value, dict):
        return {scrub(k): scrub(v) for k, v in value.items()}
    return value


class _ScrubFilter(logging.Filter):
    """Scrubs every record of the ``hbtrio`` logger (message and arguments)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = _SECRETS.scrub(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


logging.getLogger("hbtrio").addFilter(_ScrubFilter())


class HbtrioError(Exception):
    """Base class of every exception hbtrio raises.

    Args:
        message: Human-readable description.
        status: HTTP status code, when a server answer caused the error.
        detail: The server's ``detail`` (a string, or the list of a 422), when any.
        method: HTTP method of the request involved, when any.
        path: Request path (never with credentials), when any.
        retryable: Whether trying the same call again may succeed.

    Attributes:
        message: Human-readable description.
        status: HTTP status code or ``None``.
        detail: Server detail or ``None``.
        method: HTTP method or ``None``.
        path: Request path or ``None``.
        retryable: Whether a retry may succeed.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        detail: Any = None,
        method: str | None = None,
        path: str | None = None,
        retryable: bool = False,
    ) -> None:
        message = _SECRETS.scrub(message)
        super().__init__(message)
        self.message = message
        self.status = status
        self.detail = scrub(detail)
        self.method = method
        self.path = path
        self.retryable = retryable

    def __str__(self) -> str:
        where = f" ({self.method} {self.path})" if self.method and self.path else ""
        status = f" [HTTP {self.status}]" if self.status is not None else ""
        return f"{self.message}{status}{where}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status={self.status!r})"


class ConfigError(HbtrioError, ValueError):
    """A ``ClientConfig`` value is invalid.

    Args:
        field: Name of the offending configuration field.
        rule: The rule it broke (never quoting a secret value).

    Attributes:
        field: Name of the offending field.
        rule: The rule it broke.
    """

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"invalid configuration: {field}: {rule}")
        self.field = field
        self.rule = rule


class InputValidationError(HbtrioError, ValueError):
    """An argument of a public call is invalid; raised before any I/O.

    Args:
        argument: Name of the offending argument.
        rule: The rule it broke.
        detail: Structured details (e.g. a server's 422 list), when any.
        **kw: Further structured details as for ``HbtrioError``.

    Attributes:
        argument: Name of the offending argument.
        rule: The rule it broke.
    """

    def __init__(self, argument: str, rule: str, *, detail: Any = None, **kw: Any) -> None:
        super().__init__(f"invalid argument {argument!r}: {rule}", detail=detail, **kw)
        self.argument = argument
        self.rule = rule


class ConnectionFailed(HbtrioError):
    """The server could not be reached, TLS failed, or the connection dropped."""


class AuthenticationFailed(ConnectionFailed):
    """The server refused the credentials (HTTP 401 or WebSocket close 4001)."""


class RequestError(HbtrioError):
    """A request reached the server (or tried to) and did not succeed."""


class RequestTimeout(RequestError, TimeoutError):
    """A request attempt did not complete within its deadline."""


class ServerError(RequestError):
    """The server answered with a 5xx status."""


class MalformedResponse(RequestError):
    """The server's answer could not be parsed or had an unexpected shape.

    Args:
        message: What was wrong.
        excerpt: A short excerpt of the offending payload.
        **kw: Structured details as for ``HbtrioError``.

    Attributes:
        excerpt: A short excerpt of the offending payload.
    """

    def __init__(self, message: str, *, excerpt: str = "", **kw: Any) -> None:
        super().__init__(message, **kw)
        self.excerpt = _SECRETS.scrub(excerpt)

    def __str__(self) -> str:
        base = super().__str__()
        return f"{base}: {self.excerpt!r}" if self.excerpt else base


class NotFound(RequestError):
    """The server answered 404: an unknown account, order or path."""


class OrderError(HbtrioError):
    """An order could not be placed, found or cancelled.

    Args:
        message: What went wrong.
        request: The order the caller asked for, when known.
        order_id: The order id involved, when known.
        reason: The raw reason the server or exchange gave, when any.
        **kw: Structured details as for ``HbtrioError``.

    Attributes:
        request: The order request, or ``None``.
        order_id: The order id, or ``None``.
        reason: Raw server/exchange reason, or ``None``.
    """

    def __init__(
        self,
        message: str,
        *,
        request: OrderRequest | None = None,
        order_id: str | None = None,
        reason: str | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(message, **kw)
        self.request = request
        self.order_id = order_id
        self.reason = None if reason is None else _SECRETS.scrub(reason)


class InsufficientFunds(OrderError):
    """The account does not hold enough of the asset the order needs."""


class InvalidOrder(OrderError):
    """The order's parameters are invalid (missing price, unsupported pair or type,
    post-only order that would cross)."""


class PriceOutOfRange(OrderError):
    """The order's price is outside the band the exchange allows."""


class MinOrderSizeNotMet(OrderError):
    """The order's size or notional value is below the market's minimum."""


class OrderNotFound(OrderError, NotFound):
    """The order is unknown to the server (or no longer in flight)."""


class OrderRejected(OrderError):
    """The exchange rejected the order for a reason not mapped to a narrower type;
    ``reason`` keeps its raw text."""


class OrderPending(OrderError):
    """The order was placed and still ``SUBMITTED`` when ``wait_accepted`` gave up.

    Not a ``TimeoutError``: the order exists, so retrying the placement would
    duplicate it. Keep following it (``OrderUpdate`` events, ``get_order``).

    Args:
        message: What is known.
        order: The order as last seen.
        **kw: The order details (``request``, ``reason``) and the structured
            details as for ``OrderError``.

    Attributes:
        order: The order as last seen (``SUBMITTED``).
    """

    def __init__(self, message: str, *, order: Order, **kw: Any) -> None:
        kw.setdefault("order_id", order.order_id)
        super().__init__(message, **kw)
        self.order = order


class OrderOutcomeUnknown(OrderError):
    """The order was sent, its answer was lost, and reconciliation could not tell
    whether it was created.

    Args:
        message: What is known of the outcome.
        candidates: Orders that matched the request during reconciliation.
        **kw: The order details (``request``, ``order_id``, ``reason``) and the
            structured details as for ``OrderError``.

    Attributes:
        candidates: Orders that matched the request during reconciliation (empty
            when none did; more than one when identical orders were in flight).
    """

    def __init__(self, message: str, *, candidates: tuple[Order, ...] = (), **kw: Any) -> None:
        super().__init__(message, **kw)
        self.candidates = candidates


class SubscriptionError(HbtrioError):
    """A subscription failed, was refused, or its consumer fell behind."""


def lone_exception(exc: BaseException) -> BaseException:
    """Unwrap an exception group that holds exactly one exception, however nested.

    Args:
        exc: An exception, or an exception group.

    Returns:
        The single leaf when every level of the group holds one exception;
        otherwise the innermost group that holds several (``exc`` itself when it
        is a plain exception or a group of several).
    """
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def exception_leaves(
    exc: BaseException, *, ignore: type[BaseException] | tuple[type[BaseException], ...] = ()
) -> list[BaseException]:
    """The plain exceptions inside a (nested) exception group, depth first.

    Args:
        exc: An exception, or an exception group.
        ignore: Exception types to leave out (e.g. ``trio.Cancelled``).

    Returns:
        The non-group exceptions that are not instances of ``ignore``
        (``[exc]`` itself for a plain exception that is not ignored).
    """
    if isinstance(exc, BaseExceptionGroup):
        out: list[BaseException] = []
        for sub in exc.exceptions:
            out.extend(exception_leaves(sub, ignore=ignore))
        return out
    return [] if isinstance(exc, ignore) else [exc]
