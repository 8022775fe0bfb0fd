"""What every domain part of ``Client`` shares."""

from __future__ import annotations

from datetime import datetime

from .._actors.rest import RestActor
from .._actors.streams import StreamingSupervisor
from .._actors.tracker import TrackerActor
from .._config import ClientConfig
from .._errors import InputValidationError
from .._wire.errors import RejectionTable
from ..events import EventEngine
from .rules import TradingRules

__all__ = ["Part", "TimeArg", "check_cursor"]

TimeArg = datetime | float | int | None


class Part:
    """The state the domain parts share: configuration, REST actor, tracker.

    Args:
        config: The client configuration.
        rest: The REST actor.
        engine: The event engine the client publishes to.
    """

    def __init__(self, config: ClientConfig, rest: RestActor, engine: EventEngine) -> None:
        self.config = config
        self.engine = engine
        self._rest = rest
        self.rejections: RejectionTable = rest.rejections
        self.streams: StreamingSupervisor | None = None
        self.tracker: TrackerActor | None = None
        self._trading_rules = TradingRules(rest)

    @property
    def _account(self) -> str:
        return self.config.account


def check_cursor(cursor: object) -> str | None:
    """Return a page cursor from a previous page, or ``None``.

    Args:
        cursor: The cursor given by the caller.

    Returns:
        The cursor.

    Raises:
        InputValidationError: Not a cursor string.
    """
    if cursor is None:
        return None
    if not isinstance(cursor, str) or len(cursor) > 256 or not cursor.isprintable():
        raise InputValidationError("cursor", "must be a cursor string from a previous page")
    return cursor
