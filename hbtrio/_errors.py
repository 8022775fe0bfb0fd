"""The hbtrio exception hierarchy.

Every exception carries a readable message and structured details where they
apply (``status``, ``detail``, ``method``, ``path``, ``retryable``; order errors
also carry the ``OrderRequest``). None of them ever contains
the API key: messages are built from server answers and request metadata only,
and the client scrubs any echo of the credential before raising.
"""

from __future__ import annotations

from typing import Any

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
    "OrderRejected",
    "PriceOutOfRange",
    "RequestError",
    "RequestTimeout",
    "ServerError",
    "SubscriptionError",
]


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
        super().__init__(message)
        self.message = message
        self.status = status
        self.detail = detail
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
        self.excerpt = excerpt

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
        self.reason = reason


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
