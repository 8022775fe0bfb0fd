"""An in-memory fake WebSocket peer for actor tests (no sockets, so autojump_clock works).

The fake reacts inline to what the client sends: a greeting on connect (or the
authentication failure), pongs to pings, acks to subscribe/unsubscribe, each of
which a test can switch off. Tests push data with :meth:`FakeSession.push` and
break links with :meth:`FakeSession.close`.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import trio

from hbtrio._actors.transport import Dialer, TransportClosed, WsTransport
from hbtrio._errors import ConnectionFailed

_CLOSE = object()


class FakeSession:
    """The server side of one fake connection."""

    def __init__(self, peer: FakePeer, index: int) -> None:
        self.peer = peer
        self.index = index
        self.sent: list[dict[str, Any]] = []
        self.opened_at = trio.current_time()
        self.closed_with: int | None = None
        self._send, self._recv = trio.open_memory_channel[object](math.inf)

    # -- server actions -----------------------------------------------------------

    def push(self, message: dict[str, Any] | str | bytes) -> None:
        """Queue a message for the client."""
        if isinstance(message, dict):
            message = msgspec.json.encode(message).decode()
        self._send.send_nowait(message)

    def close(self, code: int = 1006, reason: str | None = None) -> None:
        """Close the connection from the server side."""
        self.closed_with = code
        self._send.send_nowait((_CLOSE, code, reason))

    def actions(self, action: str) -> list[dict[str, Any]]:
        """Client actions of one kind received on this session."""
        return [m for m in self.sent if m.get("action") == action]

    # -- transport side -----------------------------------------------------------

    async def receive(self) -> str | bytes:
        if self.closed_with is not None and self._recv.statistics().current_buffer_used == 0:
            raise TransportClosed(self.closed_with)
        item = await self._recv.receive()
        if isinstance(item, tuple) and item and item[0] is _CLOSE:
            raise TransportClosed(item[1], item[2])
        assert isinstance(item, str | bytes)
        return item

    async def send(self, message: str | bytes) -> None:
        if self.closed_with is not None:
            raise TransportClosed(self.closed_with)
        if self.peer.stall_sends:
            await trio.sleep_forever()  # the client's writes never complete
        await trio.lowlevel.checkpoint()
        decoded = msgspec.json.decode(message)
        self.sent.append(decoded)
        self.peer.on_action(self, decoded)


class FakePeer:
    """A fake server: every dial opens a new :class:`FakeSession`.

    Attributes:
        refuse: Number of upcoming dials to refuse with a retryable ConnectionFailed.
        auth_ok: When False, sessions answer the authentication failure and close 4001.
        greet: When False, sessions never send the ``connected`` greeting.
        auto_pong / auto_ack: React to pings / (un)subscribes.
        stall_sends: When True, the client's writes block forever (a stuck socket).
        dial_times: Clock time of each dial.
    """

    def __init__(self) -> None:
        self.refuse = 0
        self.refuse_with: Callable[[], BaseException] = lambda: ConnectionFailed(
            "refused", retryable=True
        )
        self.auth_ok = True
        self.greet = True
        self.auto_pong = True
        self.auto_ack = True
        self.stall_sends = False
        self.sessions: list[FakeSession] = []
        self.dial_times: list[float] = []
        self._session_event = trio.Event()
        self.on_subscribe: Callable[[FakeSession, dict[str, Any]], None] | None = None

    @property
    def current(self) -> FakeSession:
        """The newest session."""
        return self.sessions[-1]

    def on_action(self, session: FakeSession, action: dict[str, Any]) -> None:
        kind = action.get("action")
        if kind == "ping" and self.auto_pong:
            session.push({"type": "pong", "timestamp": trio.current_time()})
        elif kind == "subscribe" and self.auto_ack:
            sid = subscription_id(action)
            session.push({"type": "subscribed", "subscription_id": sid})
            if self.on_subscribe is not None:
                self.on_subscribe(session, action)
        elif kind == "unsubscribe" and self.auto_ack:
            session.push({"type": "unsubscribed", "subscription_id": action["subscription_id"]})

    async def wait_sessions(self, count: int) -> FakeSession:
        """Wait until ``count`` sessions were opened; return the newest."""
        while len(self.sessions) < count:
            await self._session_event.wait()
        return self.sessions[count - 1]

    def dialer(self) -> Dialer:
        @asynccontextmanager
        async def dial() -> AsyncIterator[WsTransport]:
            await trio.lowlevel.checkpoint()
            self.dial_times.append(trio.current_time())
            if self.refuse > 0:
                self.refuse -= 1
                raise self.refuse_with()
            session = FakeSession(self, len(self.sessions))
            self.sessions.append(session)
            self._session_event.set()
            self._session_event = trio.Event()
            if not self.auth_ok:
                session.push({"type": "error", "message": "Authentication failed"})
                session.close(4001, "Authentication failed")
            elif self.greet:
                session.push(
                    {"type": "connected", "connection_id": f"c{session.index:07d}", "timestamp": 1}
                )
            try:
                yield session
            finally:
                if session.closed_with is None:
                    session.closed_with = 1000

        return dial


def subscription_id(action: dict[str, Any]) -> str:
    """The server's deterministic id of a subscribe action."""
    kind = action["type"]
    base = f"{kind}_{action['connector']}_{action['trading_pair']}"
    return f"{base}_{action['interval']}" if kind == "candles" else base
