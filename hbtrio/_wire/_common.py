"""Shared helpers of the wire layer: guarded decoding and value conversion.

Everything that turns server bytes into Python values goes through here, so that
a malformed payload of any kind surfaces as exactly one exception type,
``MalformedResponse``, carrying a short excerpt of the payload.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import ParamSpec, Protocol, TypeVar

from .._errors import MalformedResponse
from ..models import Level, OrderStatus, OrderType, Side

__all__ = [
    "EXCERPT_CHARS",
    "PriceAmount",
    "book_levels",
    "decimal_value",
    "excerpt",
    "guarded",
    "malformed",
    "optional_decimal",
    "order_status",
    "order_type",
    "side",
    "timestamp",
]

P = ParamSpec("P")
R = TypeVar("R")

EXCERPT_CHARS = 200
"""Longest excerpt of a payload an error carries."""

# Decimals beyond this magnitude (adjusted exponent) are refused: no price, amount
# or rule value is that large or small, and such values make arithmetic explode.
_MAX_EXPONENT = 60
# Epoch seconds above this are read as milliseconds (1e11 s is the year 5138).
_MS_THRESHOLD = 1e11
# Times sent as text, already converted: the order tracker's polls list the same
# orders, with the same ISO-8601 times, again and again. Bounded (cleared when full).
_TEXT_TIMES: dict[str, float] = {}
_TEXT_TIMES_MAX = 8192


def excerpt(data: object) -> str:
    """Return a short, printable excerpt of a payload.

    Args:
        data: ``bytes``-like, ``str`` or any other value.

    Returns:
        At most ``EXCERPT_CHARS`` characters; undecodable bytes are replaced.
    """
    try:
        if isinstance(data, bytes | bytearray | memoryview):
            text = bytes(data[: EXCERPT_CHARS * 4]).decode("utf-8", "replace")
        elif isinstance(data, str):
            text = data[:EXCERPT_CHARS]
        else:
            text = repr(data)[:EXCERPT_CHARS]
    except Exception:  # pragma: no cover - repr of an exotic object failed
        text = "<unprintable>"
    return text[:EXCERPT_CHARS]


def malformed(what: str, data: object) -> MalformedResponse:
    """Build a ``MalformedResponse`` for a payload.

    Args:
        what: What was wrong (short, no payload text).
        data: The offending payload, excerpted.

    Returns:
        The exception (not raised).
    """
    return MalformedResponse(f"malformed server answer: {what}", excerpt=excerpt(data))


def guarded(what: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a parser so that any failure becomes ``MalformedResponse``.

    The first positional argument of the decorated function must be the payload;
    it is excerpted into the error.

    Args:
        what: Name of the payload for error messages, e.g. ``"order book"``.

    Returns:
        The decorator.
    """

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return fn(*args, **kwargs)
            except MalformedResponse:
                raise
            except Exception as exc:
                data = args[0] if args else None
                reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
                raise MalformedResponse(
                    f"malformed {what}: {reason}", excerpt=excerpt(data)
                ) from exc

        return wrapper

    return decorate


def decimal_value(value: Decimal, field: str) -> Decimal:
    """Check a decoded decimal: finite and of sane magnitude.

    Args:
        value: The decoded value.
        field: Field name for the error.

    Returns:
        The value.

    Raises:
        MalformedResponse: NaN, infinite, or absurdly large or small.
    """
    if not value.is_finite() or (value and abs(value.adjusted()) > _MAX_EXPONENT):
        raise malformed(f"{field} is not a finite number of sane magnitude", str(value))
    return value


class PriceAmount(Protocol):
    """A decoded book level sent as an object (``Level`` or a wire struct)."""

    @property
    def price(self) -> Decimal:
        """Level price."""
        ...

    @property
    def amount(self) -> Decimal:
        """Level amount."""
        ...


def book_levels(
    raw: Iterable[PriceAmount | tuple[Decimal, Decimal]], field: str
) -> tuple[Level, ...]:
    """Convert decoded book levels to ``Level`` values, checking each
    price and amount as ``decimal_value`` does.

    This runs for every level of every book (REST and stream), so the common case
    (finite values of sane magnitude) is checked inline; a decoded ``Level`` is
    reused as is.

    Args:
        raw: Levels as ``(price, amount)`` pairs or objects with ``price`` and
            ``amount``.
        field: Field name for the error (``"bids"`` or ``"asks"``).

    Returns:
        The levels, in order.

    Raises:
        MalformedResponse: A price or amount is NaN, infinite, or absurdly large
            or small.
    """
    out: list[Level] = []
    append = out.append
    top, bottom = _MAX_EXPONENT, -_MAX_EXPONENT
    for item in raw:
        if isinstance(item, tuple):
            price, amount = item
            level = Level(price, amount)
        else:
            price, amount = item.price, item.amount
            level = item if type(item) is Level else Level(price, amount)
        if not (
            price.is_finite()
            and amount.is_finite()
            and bottom <= price.adjusted() <= top
            and bottom <= amount.adjusted() <= top
        ):
            # Rare: the exact rules (zero of any exponent is fine) and the error.
            decimal_value(price, field)
            decimal_value(amount, field)
        append(level)
    return tuple(out)


def optional_decimal(value: Decimal | None, field: str) -> Decimal | None:
    """Like ``decimal_value`` but ``None`` passes through.

    Args:
        value: The decoded value or ``None``.
        field: Field name for the error.

    Returns:
        The value or ``None``.

    Raises:
        MalformedResponse: As ``decimal_value``.
    """
    return None if value is None else decimal_value(value, field)


def timestamp(value: float | str | None, field: str, default: float | None = None) -> float:
    """Convert a wire timestamp to float epoch seconds.

    Accepts float/int seconds (values above ``1e11`` are read as milliseconds),
    numeric strings, and ISO-8601 strings (naive ones are UTC).

    Args:
        value: The decoded value.
        field: Field name for the error.
        default: Returned for ``None``; when it is also ``None``, ``None`` is malformed.

    Returns:
        Epoch seconds.

    Raises:
        MalformedResponse: Not a valid, finite, non-negative time.
    """
    if value is None:
        if default is None:
            raise malformed(f"{field} is missing", value)
        return default
    seconds: float
    if isinstance(value, str):
        cached = _TEXT_TIMES.get(value)
        if cached is not None:
            return cached
        text = value.strip()
        if text[4:5] == "-" and text[:4].isdigit():
            # ISO-8601, the usual form: never a float, skip trying one.
            seconds = _iso_seconds(text, field, value)
        else:
            try:
                seconds = float(text)
            except ValueError:
                seconds = _iso_seconds(text, field, value)
        seconds = _checked_seconds(seconds, field, value)
        if len(_TEXT_TIMES) >= _TEXT_TIMES_MAX:
            _TEXT_TIMES.clear()
        _TEXT_TIMES[value] = seconds
        return seconds
    else:
        try:
            seconds = float(value)
        except OverflowError:  # an int too large for a float
            raise malformed(f"{field} is out of range", value) from None
    return _checked_seconds(seconds, field, value)


def _checked_seconds(seconds: float, field: str, value: object) -> float:
    if not math.isfinite(seconds) or seconds < 0:
        raise malformed(f"{field} is not a valid time", value)
    if seconds > _MS_THRESHOLD:
        seconds /= 1000.0
        if seconds > _MS_THRESHOLD:
            raise malformed(f"{field} is out of range", value)
    return seconds


def _iso_seconds(text: str, field: str, value: object) -> float:
    """Epoch seconds of an ISO-8601 text (naive ones are UTC)."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise malformed(f"{field} is not a timestamp", value) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.timestamp()
    except (OverflowError, ValueError, OSError):  # pragma: no cover - platform
        raise malformed(f"{field} is out of range", value) from None


_SIDES = {"BUY": Side.BUY, "SELL": Side.SELL}
_TYPES = {t.value: t for t in OrderType}
_STATUSES: dict[str, OrderStatus] = {s.value: s for s in OrderStatus} | {
    "CANCELED": OrderStatus.CANCELLED,
    "PENDING_CREATE": OrderStatus.SUBMITTED,
    "PENDING_APPROVAL": OrderStatus.SUBMITTED,
    "APPROVED": OrderStatus.SUBMITTED,
    "CREATED": OrderStatus.SUBMITTED,
    "COMPLETED": OrderStatus.FILLED,
}


def _norm(value: str) -> str:
    return value.strip().upper().replace(" ", "_").replace("-", "_")


def side(value: str, field: str = "trade_type") -> Side:
    """Convert ``BUY``/``SELL`` (any case) to ``Side``.

    Args:
        value: Wire value.
        field: Field name for the error.

    Returns:
        The side.

    Raises:
        MalformedResponse: Not a side.
    """
    found = _SIDES.get(value)  # the usual exact spelling first
    if found is None:
        found = _SIDES.get(_norm(value))
    if found is None:
        raise malformed(f"{field} is not BUY or SELL", value)
    return found


def order_type(value: str, field: str = "order_type") -> OrderType:
    """Convert an order type (any case) to ``OrderType``.

    Args:
        value: Wire value.
        field: Field name for the error.

    Returns:
        The order type.

    Raises:
        MalformedResponse: Unknown type.
    """
    found = _TYPES.get(value)  # the usual exact spelling first
    if found is None:
        found = _TYPES.get(_norm(value))
    if found is None:
        raise malformed(f"{field} is not a known order type", value)
    return found


def order_status(value: str, field: str = "status") -> OrderStatus:
    """Convert an order status (any case, ``CANCELED`` spelling too) to ``OrderStatus``.

    Args:
        value: Wire value.
        field: Field name for the error.

    Returns:
        The status.

    Raises:
        MalformedResponse: Unknown status.
    """
    found = _STATUSES.get(value)  # the usual exact spelling first
    if found is None:
        found = _STATUSES.get(_norm(value))
    if found is None:
        raise malformed(f"{field} is not a known order status", value)
    return found
