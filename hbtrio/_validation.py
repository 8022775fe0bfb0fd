"""Input validation of public call arguments, run before any I/O.

The identifier patterns are deliberately strict: they admit the names real
Hummingbot deployments use (``binance``, ``binance_perpetual``, ``jupiter/router``,
``BTC-USDT``, ``1000PEPE-USDT``, ``master_account``) and nothing that could be
injected into a URL path or a JSON body (no ``..``, whitespace, control
characters, quotes, ``%``, ``?``, ``#`` or other URL metacharacters).

=============  ===============================================================
argument       pattern
=============  ===============================================================
exchange       ``name`` or ``name/name``; ``name`` = a letter or digit, then
               letters, digits or ``_``; at most 64 characters
market         2-4 tokens joined by ``-``; a token is letters and digits, with
               single ``.`` or ``_`` inside; at most 64 characters
account        a letter or digit, then letters, digits, ``_`` or ``-``; 1-64
order_id       a letter or digit, then letters, digits, ``_ - . :``; 1-128;
               no ``..``
interval       a positive integer then one of ``s m h d w M`` (e.g. ``1m``)
=============  ===============================================================
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import TypeVar

from ._errors import InputValidationError

E = TypeVar("E", bound=Enum)

EXCHANGE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_]{0,62}(?:/[A-Za-z0-9][A-Za-z0-9_]{0,62})?")
_TOKEN = r"[A-Za-z0-9]+(?:[._][A-Za-z0-9]+)*"
MARKET_RE = re.compile(rf"{_TOKEN}(?:-{_TOKEN}){{1,3}}")
ACCOUNT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
ORDER_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
INTERVAL_RE = re.compile(r"[1-9][0-9]{0,3}[smhdwM]")

_MAX_DECIMAL = Decimal("1e30")


def check_exchange(value: object, argument: str = "exchange") -> str:
    """Validate a connector name.

    Args:
        value: The candidate.
        argument: Argument name used in the error.

    Returns:
        The value, unchanged.

    Raises:
        InputValidationError: It does not match the connector pattern.
    """
    if not isinstance(value, str) or len(value) > 64 or not EXCHANGE_RE.fullmatch(value):
        raise InputValidationError(
            argument,
            "must be a connector name like 'binance', 'binance_perpetual' or 'jupiter/router'",
        )
    return value


def check_market(value: object, argument: str = "market") -> str:
    """Validate a trading pair.

    Args:
        value: The candidate.
        argument: Argument name used in the error.

    Returns:
        The value, unchanged.

    Raises:
        InputValidationError: It does not match the trading-pair pattern.
    """
    if not isinstance(value, str) or len(value) > 64 or not MARKET_RE.fullmatch(value):
        raise InputValidationError(argument, "must be a trading pair like 'BTC-USDT'")
    return value


def check_account(value: object, argument: str = "account") -> str:
    """Validate an account name.

    Args:
        value: The candidate.
        argument: Argument name used in the error.

    Returns:
        The value, unchanged.

    Raises:
        InputValidationError: It does not match the account pattern.
    """
    if not isinstance(value, str) or not ACCOUNT_RE.fullmatch(value):
        raise InputValidationError(
            argument, "must be 1-64 letters, digits, '_' or '-', starting with a letter or digit"
        )
    return value


def check_order_id(value: object, argument: str = "order_id") -> str:
    """Validate an order id.

    Args:
        value: The candidate.
        argument: Argument name used in the error.

    Returns:
        The value, unchanged.

    Raises:
        InputValidationError: It does not match the order-id pattern.
    """
    if not isinstance(value, str) or not ORDER_ID_RE.fullmatch(value) or ".." in value:
        raise InputValidationError(
            argument, "must be 1-128 letters, digits, '_', '-', '.' or ':' (no '..')"
        )
    return value


def check_interval(value: object, argument: str = "interval") -> str:
    """Validate a candle interval such as ``1m``, ``15m``, ``1h`` or ``1d``.

    Args:
        value: The candidate.
        argument: Argument name used in the error.

    Returns:
        The value, unchanged.

    Raises:
        InputValidationError: It is not a positive count followed by s/m/h/d/w/M.
    """
    if not isinstance(value, str) or not INTERVAL_RE.fullmatch(value):
        raise InputValidationError(argument, "must be like '1m', '5m', '1h' or '1d'")
    return value


def check_positive_decimal(value: object, argument: str) -> Decimal:
    """Validate an amount or price: a finite number > 0.

    ``Decimal``, ``int`` and decimal strings are accepted; ``float`` is accepted
    and converted through its shortest ``repr`` (so ``0.1`` becomes ``Decimal('0.1')``).
    ``bool`` is refused.

    Args:
        value: The candidate.
        argument: Argument name used in the error.

    Returns:
        The value as a ``Decimal``.

    Raises:
        InputValidationError: It is not a finite number > 0 (or is absurdly large).
    """
    if isinstance(value, bool):
        raise InputValidationError(argument, "must be a number > 0, not a bool")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InputValidationError(argument, "must be finite")
        result = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise InputValidationError(argument, "must be a decimal number") from None
    else:
        raise InputValidationError(argument, "must be a Decimal, int, float or decimal string")
    if not result.is_finite():
        raise InputValidationError(argument, "must be finite")
    if result <= 0:
        raise InputValidationError(argument, "must be > 0")
    if result >= _MAX_DECIMAL:
        raise InputValidationError(argument, "must be < 1e30")
    return result


def check_range(value: object, argument: str, low: int = 1, high: int = 1000) -> int:
    """Validate an int within ``low..high`` (``depth``, ``limit``, ...).

    Args:
        value: The candidate.
        argument: Argument name used in the error.
        low: Smallest allowed value.
        high: Largest allowed value.

    Returns:
        The value.

    Raises:
        InputValidationError: It is not an int (bools refused) in the range.
    """
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InputValidationError(argument, f"must be an int in {low}..{high}")
    return value


def check_seconds(value: object, argument: str, high: float = math.inf) -> float:
    """Validate a duration: a finite number of seconds in ``0..high``.

    Args:
        value: The candidate (an int or a float; bools refused).
        argument: Argument name used in the error.
        high: Largest allowed value.

    Returns:
        The value as a float.

    Raises:
        InputValidationError: It is not a finite number of seconds in the range.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputValidationError(argument, "must be a number of seconds")
    try:
        seconds = float(value)
    except OverflowError:  # an int too large for a float
        seconds = math.inf
    if not math.isfinite(seconds) or not 0 <= seconds <= high:
        bound = f"<= {high:g}" if math.isfinite(high) else "finite"
        raise InputValidationError(argument, f"must be >= 0 and {bound} seconds")
    return seconds


def check_enum(value: object, enum_type: type[E], argument: str) -> E:
    """Validate an enum member, accepting its value or name case-insensitively.

    Args:
        value: A member of ``enum_type``, or its value or name as a string.
        enum_type: The enum class.
        argument: Argument name used in the error.

    Returns:
        The enum member.

    Raises:
        InputValidationError: It names no member.
    """
    if isinstance(value, enum_type):
        return value
    if isinstance(value, str):
        upper = value.strip().upper()
        for member in enum_type:
            if upper in (str(member.value).upper(), member.name):
                return member
    allowed = ", ".join(str(m.value) for m in enum_type)
    raise InputValidationError(argument, f"must be one of {allowed}")


_MAX_EPOCH_SECONDS = 32503680000.0  # 3000-01-01T00:00:00Z


def to_epoch_seconds(value: object, argument: str) -> float | None:
    """Convert a time argument to epoch seconds.

    Args:
        value: ``None``, an aware ``datetime``, or an int/float of epoch seconds.
        argument: Argument name used in the error.

    Returns:
        Epoch seconds, or ``None`` when ``value`` is ``None``.

    Raises:
        InputValidationError: A naive datetime, a bool, a non-finite or negative
            number, or another type.
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        try:
            offset = None if value.tzinfo is None else value.utcoffset()
            seconds = value.timestamp() if offset is not None else math.nan
        except Exception:  # a broken tzinfo, or a time before the epoch on some OSes
            raise InputValidationError(
                argument, "datetime must be timezone-aware and convertible"
            ) from None
        if offset is None:
            raise InputValidationError(argument, "datetime must be timezone-aware")
        if not 0 <= seconds <= _MAX_EPOCH_SECONDS:
            raise InputValidationError(argument, "must be a time between 1970 and 3000")
        return seconds
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputValidationError(argument, "must be an aware datetime or epoch seconds")
    try:
        seconds = float(value)
    except OverflowError:  # an int too large for a float
        seconds = math.inf
    if not math.isfinite(seconds) or seconds < 0 or seconds > _MAX_EPOCH_SECONDS:
        raise InputValidationError(argument, "must be epoch seconds between 1970 and 3000")
    return seconds


def check_time_range(start: object, end: object) -> tuple[float | None, float | None]:
    """Validate a ``start``/``end`` pair and convert both to epoch seconds.

    Args:
        start: Start of the range (see ``to_epoch_seconds``), or ``None``.
        end: End of the range, or ``None``.

    Returns:
        ``(start_seconds, end_seconds)``.

    Raises:
        InputValidationError: Either bound is invalid, or ``start > end``.
    """
    s = to_epoch_seconds(start, "start")
    e = to_epoch_seconds(end, "end")
    if s is not None and e is not None and s > e:
        raise InputValidationError("start", "must be <= end")
    return s, e


def to_millis(seconds: float | None) -> int | None:
    """Epoch seconds to the server's integer milliseconds (``None`` passes through).

    Args:
        seconds: Epoch seconds, or ``None``.

    Returns:
        Epoch milliseconds (truncated), or ``None``.
    """
    return None if seconds is None else int(seconds * 1000)


def check_markets(values: Iterable[object] | None, argument: str = "markets") -> list[str] | None:
    """Validate an optional list of trading pairs.

    Args:
        values: ``None`` or an iterable of trading pairs (not a bare string).
        argument: Argument name used in the error.

    Returns:
        The list, or ``None``.

    Raises:
        InputValidationError: A bare string was given or an item is invalid.
    """
    if values is None:
        return None
    if isinstance(values, str | bytes):
        raise InputValidationError(argument, "must be a list of trading pairs, not a string")
    if not isinstance(values, Iterable):
        raise InputValidationError(argument, "must be a list of trading pairs")
    return [check_market(v, argument) for v in values]
