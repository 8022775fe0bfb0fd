"""WebSocket request correlation (sans-IO).

The market-data WebSocket carries no request ids: an acknowledgement names the
deterministic subscription id, and a failed subscribe answers an ``error`` with
no id at all. The only way to attribute such an error is to keep **at most one**
subscribe/unsubscribe outstanding per connection; ``Correlator`` enforces
that, matches acks by ``(kind, subscription_id)`` (heartbeats and data may
arrive first and are simply not fed), and never matches an ack to a request it
does not name.

Pings have no id either: pongs are matched to the oldest outstanding ping.

The caller feeds decoded server messages as plain values
(``Correlator.feed_ack``, ``Correlator.feed_error``,
``Correlator.feed_pong``) and asks for expired deadlines with
``Correlator.expire`` / ``Correlator.expire_pings`` (or just test
with ``Correlator.ping_expired``).
"""

from __future__ import annotations

import enum
import itertools
from collections import deque
from dataclasses import dataclass

__all__ = ["Correlator", "CorrelatorBusy", "Match", "Pending", "Pong", "RequestKind"]


class RequestKind(enum.StrEnum):
    """Kinds of correlated WebSocket requests."""

    SUBSCRIBE = "subscribe"
    UNSUBSCRIBE = "unsubscribe"


class CorrelatorBusy(RuntimeError):
    """``Correlator.start`` was called while a request is outstanding."""


@dataclass(frozen=True, slots=True)
class Pending:
    """An outstanding subscribe/unsubscribe request.

    Attributes:
        token: Unique number of the request.
        kind: Subscribe or unsubscribe.
        subscription_id: The deterministic id the ack will name.
        started: When it was sent.
        deadline: When it expires.
    """

    token: int
    kind: RequestKind
    subscription_id: str
    started: float
    deadline: float


@dataclass(frozen=True, slots=True)
class Match:
    """The outcome of a request.

    Attributes:
        request: The request this outcome belongs to.
        ok: Whether the server acknowledged it.
        error: The server's error message, ``"timed out"`` or
            ``"connection reset"`` when not ok; ``None`` when ok.
        timed_out: Whether the request expired without an answer.
    """

    request: Pending
    ok: bool
    error: str | None = None
    timed_out: bool = False

    @property
    def token(self) -> int:
        """Token of the request."""
        return self.request.token


@dataclass(frozen=True, slots=True)
class Pong:
    """A pong matched to a ping.

    Attributes:
        token: Token of the ping.
        rtt: Round-trip time, seconds.
    """

    token: int
    rtt: float


@dataclass(slots=True)
class _Ping:
    token: int
    started: float
    deadline: float


class Correlator:
    """Correlates one connection's requests with the server's answers.

    At most one subscribe/unsubscribe may be outstanding; any number of pings.
    Call ``reset`` when the connection is replaced.
    """

    __slots__ = ("_pending", "_pings", "_tokens")

    def __init__(self) -> None:
        self._tokens = itertools.count(1)
        self._pending: Pending | None = None
        self._pings: deque[_Ping] = deque()

    # -- subscribe / unsubscribe ------------------------------------------------

    @property
    def busy(self) -> bool:
        """Whether a subscribe/unsubscribe is outstanding."""
        return self._pending is not None

    @property
    def pending(self) -> Pending | None:
        """The outstanding subscribe/unsubscribe, if any."""
        return self._pending

    def start(
        self, kind: RequestKind | str, subscription_id: str, now: float, deadline: float
    ) -> int:
        """Record that a subscribe/unsubscribe is being sent.

        Args:
            kind: ``"subscribe"`` or ``"unsubscribe"``.
            subscription_id: The id the server's ack will carry.
            now: Current time.
            deadline: Time after which ``expire`` fails the request.

        Returns:
            The request's token.

        Raises:
            CorrelatorBusy: Another request is outstanding.
            ValueError: ``kind`` is not a ``RequestKind``.
        """
        if self._pending is not None:
            raise CorrelatorBusy(
                f"a {self._pending.kind} of {self._pending.subscription_id!r} is outstanding"
            )
        token = next(self._tokens)
        self._pending = Pending(token, RequestKind(kind), subscription_id, now, deadline)
        return token

    def feed_ack(self, kind: RequestKind | str, subscription_id: str) -> Match | None:
        """Feed a ``subscribed``/``unsubscribed`` message.

        Args:
            kind: ``"subscribe"`` for ``subscribed``, ``"unsubscribe"`` for
                ``unsubscribed``.
            subscription_id: The id the message carries.

        Returns:
            The successful outcome when it acknowledges the outstanding
            request; ``None`` otherwise (a late or foreign ack is ignored).
        """
        request = self._pending
        if (
            request is None
            or request.subscription_id != subscription_id
            or request.kind != RequestKind(kind)
        ):
            return None
        self._pending = None
        return Match(request, True)

    def feed_error(self, message: str) -> Match | None:
        """Feed an id-less ``error`` message.

        Args:
            message: The server's error text.

        Returns:
            The failed outcome of the outstanding request, or ``None`` when no
            request is outstanding (the caller reports the error otherwise).
        """
        request = self._pending
        if request is None:
            return None
        self._pending = None
        return Match(request, False, message)

    def expire(self, now: float) -> list[Match]:
        """Fail the outstanding request when its deadline has passed.

        Args:
            now: Current time.

        Returns:
            The timed-out outcomes (zero or one).
        """
        request = self._pending
        if request is None or now < request.deadline:
            return []
        self._pending = None
        return [Match(request, False, "timed out", timed_out=True)]

    # -- pings ------------------------------------------------------------------

    def start_ping(self, now: float, deadline: float) -> int:
        """Record that a ping is being sent.

        Args:
            now: Current time.
            deadline: Time by which its pong must arrive.

        Returns:
            The ping's token.
        """
        token = next(self._tokens)
        self._pings.append(_Ping(token, now, deadline))
        return token

    @property
    def pings_outstanding(self) -> int:
        """Number of pings not answered yet."""
        return len(self._pings)

    def feed_pong(self, now: float) -> Pong | None:
        """Feed a ``pong`` message; it answers the oldest outstanding ping.

        Args:
            now: Current time.

        Returns:
            The matched ping and its round-trip time, or ``None`` for an
            unsolicited pong.
        """
        if not self._pings:
            return None
        ping = self._pings.popleft()
        return Pong(ping.token, max(0.0, now - ping.started))

    def expire_pings(self, now: float) -> list[int]:
        """Forget every outstanding ping whose deadline has passed.

        A pong arriving later answers the oldest ping still outstanding (it
        proves the link alive just as well).

        Args:
            now: Current time.

        Returns:
            The tokens of the expired pings, oldest first.
        """
        if not any(now >= ping.deadline for ping in self._pings):
            return []
        expired = [ping.token for ping in self._pings if now >= ping.deadline]
        self._pings = deque(ping for ping in self._pings if now < ping.deadline)
        return expired

    def ping_expired(self, now: float) -> bool:
        """Whether an outstanding ping is past its deadline (connection dead).

        Args:
            now: Current time.

        Returns:
            ``True`` when some ping's deadline has passed.
        """
        return any(now >= ping.deadline for ping in self._pings)

    # -- both -------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """The earliest deadline of anything outstanding.

        Returns:
            The time to wake up at, or ``None`` when nothing is outstanding.
        """
        deadlines = [ping.deadline for ping in self._pings]
        if self._pending is not None:
            deadlines.append(self._pending.deadline)
        return min(deadlines, default=None)

    def reset(self) -> list[Match]:
        """Forget everything outstanding because the connection was replaced.

        Returns:
            The failed outcome of the outstanding request, if any (pings are
            dropped silently: the connection they tested is gone).
        """
        self._pings.clear()
        request, self._pending = self._pending, None
        return [] if request is None else [Match(request, False, "connection reset")]
