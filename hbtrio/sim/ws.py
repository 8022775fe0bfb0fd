"""The ``/ws/market-data`` WebSocket session of the simulator (protocol.md section 4).

The session accepts first, then authenticates like the real server: an
``Authorization: Basic`` header, else ``?token=<base64(user:pass)>``, else
``?username=&password=`` (query values decoded as Starlette decodes them, so an
unencoded ``+`` in a token becomes a space and fails). Failure sends
``{"type":"error","message":"Authentication failed"}`` and closes with 4001.

After the ``connected`` greeting it sends heartbeats, answers ``ping``, and runs
one push task per subscription (ids ``order_book_{C}_{P}``, ``trades_{C}_{P}``,
``candles_{C}_{P}_{interval}``; subscribing again with the same id replaces it).
``update_interval`` is clamped to the simulator's ``[min, max]``; at 0 an
order-book subscription sends a snapshot after every book change, as fast as
the connection takes them (changes that happen while a send is blocked are
coalesced into the next snapshot).

With ``latency_ms`` set, every message the server sends (the ``connected``
greeting, acks, pongs, heartbeats, pushes, errors, the authentication failure)
leaves that many milliseconds after it was produced (its ``timestamp`` is the
production time). Messages go through a per-session delay line, in order and
pipelined: the delay is added to each message, it does not cap the message
rate. The handshake itself and the closing frame are not delayed. At 0 (the
default, and what the stream benchmarks use) messages are sent directly.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Final
from urllib.parse import parse_qsl

import msgspec
import trio

from .app import Receive, Scope, Send
from .engine import Market
from .liquidity import INTERVALS, candle_records
from .state import SimState

__all__ = ["MarketSignals", "market_data_session"]

_encoder: Final = msgspec.json.Encoder()
_decoder: Final = msgspec.json.Decoder()
GOING_AWAY: Final = 1001
AUTH_FAILED: Final = 4001
#: Messages a session's delay line holds before producers wait (``latency_ms`` > 0).
DELAY_LINE_SIZE: Final = 1024


class MarketSignals:
    """Wakes the push tasks of a market when its book or trades change.

    Register an instance as an engine listener; push tasks ``await wait(key)``.
    """

    def __init__(self) -> None:
        self._events: dict[tuple[str, str], trio.Event] = {}

    def __call__(self, market: Market) -> None:
        """Signal a change of ``market`` (engine listener).

        Args:
            market: The market that changed.
        """
        key = (market.spec.connector, market.spec.trading_pair)
        event = self._events.pop(key, None)
        if event is not None:
            event.set()

    async def wait(self, key: tuple[str, str]) -> None:
        """Wait for the next change of a market.

        Args:
            key: ``(connector, trading_pair)``.
        """
        event = self._events.get(key)
        if event is None:
            event = self._events[key] = trio.Event()
        await event.wait()


def _authenticate(state: SimState, scope: Scope) -> bool:
    auth = ""
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            auth = value.decode("latin-1")
            break
    query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), True))
    try:
        if auth.startswith("Basic "):
            user, password = base64.b64decode(auth[6:]).decode("utf-8").split(":", 1)
        elif "token" in query:
            user, password = base64.b64decode(query["token"]).decode("utf-8").split(":", 1)
        else:
            user, password = query.get("username", ""), query.get("password", "")
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return False
    return state.check_pair(user, password)


class _Session:
    def __init__(self, state: SimState, signals: MarketSignals, send: Send) -> None:
        self.state = state
        self.settings = state.settings
        self.signals = signals
        self._send = send
        self._lock = trio.Lock()
        self.sent = 0
        self.close_code: int | None = None
        self.client_gone = False
        self.subs: dict[str, trio.CancelScope] = {}
        self.nursery: trio.Nursery | None = None
        self.delay = state.settings.latency_ms / 1000
        self._line_in, self._line_out = trio.open_memory_channel[tuple[float, str]](
            DELAY_LINE_SIZE if self.delay > 0 else 0
        )

    def request_close(self, code: int) -> None:
        if self.close_code is None:
            self.close_code = code
        if self.nursery is not None:
            self.nursery.cancel_scope.cancel()

    async def send(self, message: dict[str, Any]) -> None:
        if self.close_code is not None:
            await trio.lowlevel.checkpoint()
            return
        data = _encoder.encode(message).decode()
        if self.delay > 0:
            await self._line_in.send((trio.current_time() + self.delay, data))
            return
        await self._emit(data)

    async def delay_line(self) -> None:
        """Send each queued message once its delay (``latency_ms``) has passed."""
        async for due, data in self._line_out:
            await trio.sleep_until(due)
            if self.close_code is not None:
                return
            await self._emit(data)

    async def _emit(self, data: str) -> None:
        try:
            async with self._lock:
                await self._send({"type": "websocket.send", "text": data})
        except Exception:
            self.client_gone = True
            self.request_close(1006)
            return
        self.sent += 1
        limit = self.settings.drop_ws_after_msgs
        if limit is not None and self.sent >= limit:
            self.request_close(GOING_AWAY)

    async def error(self, message: str) -> None:
        await self.send({"type": "error", "message": message})

    # ------------------------------------------------------------- tasks

    async def heartbeat(self) -> None:
        while True:
            await trio.sleep(self.settings.heartbeat_interval)
            await self.send({"type": "heartbeat", "timestamp": time.time()})

    async def drop_timer(self, seconds: float) -> None:
        await trio.sleep(seconds)
        self.request_close(GOING_AWAY)

    async def reader(self, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                self.client_gone = True
                self.request_close(message.get("code", 1000))
                return
            if message["type"] != "websocket.receive":
                continue
            raw = message.get("text")
            if raw is None:
                raw = (message.get("bytes") or b"").decode("utf-8", "replace")
            try:
                msg = _decoder.decode(raw)
            except msgspec.DecodeError:
                await self.error("Invalid JSON message")
                continue
            action = msg.get("action") if isinstance(msg, dict) else None
            if action == "subscribe":
                await self.subscribe(msg)
            elif action == "unsubscribe":
                await self.unsubscribe(msg.get("subscription_id"))
            elif action == "ping":
                await self.send({"type": "pong", "timestamp": time.time()})
            else:
                await self.error(
                    f"Unknown action: {action}. Valid actions: subscribe, unsubscribe, ping"
                )

    # ------------------------------------------------------ subscriptions

    def _clamp(self, value: Any) -> float | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        number = float(value)
        if math.isnan(number):
            return None
        low, high = self.settings.min_update_interval, self.settings.max_update_interval
        return max(low, min(high, number))

    async def subscribe(self, msg: dict[str, Any]) -> None:
        sub_type = msg.get("type")
        connector = msg.get("connector")
        pair = msg.get("trading_pair")
        interval = self._clamp(msg.get("update_interval", 1.0))
        if sub_type not in ("candles", "order_book", "trades"):
            await self.error(f"Invalid subscription type: {sub_type}")
            return
        if not connector or not pair or not isinstance(connector, str) or not isinstance(pair, str):
            await self.error("connector and trading_pair are required")
            return
        if interval is None:
            await self.error("update_interval must be a number")
            return
        candle_interval = msg.get("interval", "1m")
        if sub_type == "candles":
            sub_id = f"candles_{connector}_{pair}_{candle_interval}"
        else:
            sub_id = f"{sub_type}_{connector}_{pair}"
        old = self.subs.pop(sub_id, None)
        if old is not None:
            old.cancel()
        market = self.state.engine.markets.get((connector, pair))
        if market is None:
            await self.error(
                f"Failed to start feed: trading pair '{pair}' is not available on '{connector}'"
            )
            return
        task: Callable[[trio.CancelScope], Awaitable[None]]
        if sub_type == "order_book":
            depth = msg.get("depth", 10)
            if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
                await self.error("depth must be a positive integer")
                return
            depth = min(depth, 1000)

            async def task(scope: trio.CancelScope) -> None:
                await self._push_book(scope, sub_id, market, depth, interval)

        elif sub_type == "trades":
            start_seq = market.trade_seq

            async def task(scope: trio.CancelScope) -> None:
                await self._push_trades(scope, sub_id, market, interval, start_seq)

        else:
            if candle_interval not in INTERVALS:
                await self.error(
                    f"Invalid interval '{candle_interval}'. Supported: {', '.join(INTERVALS)}"
                )
                return
            max_records = msg.get("max_records", 100)
            if isinstance(max_records, bool) or not isinstance(max_records, int):
                max_records = 100

            async def task(scope: trio.CancelScope) -> None:
                await self._push_candles(
                    scope, sub_id, market, candle_interval, max_records, interval
                )

        scope = trio.CancelScope()
        self.subs[sub_id] = scope
        await self.send({"type": "subscribed", "subscription_id": sub_id})
        assert self.nursery is not None
        self.nursery.start_soon(task, scope)

    async def unsubscribe(self, sub_id: Any) -> None:
        if not sub_id:
            await self.error("unsubscribe requires 'subscription_id'")
            return
        scope = self.subs.pop(sub_id, None) if isinstance(sub_id, str) else None
        if scope is None:
            await self.error(f"Subscription not found: {sub_id}")
            return
        scope.cancel()
        await self.send({"type": "unsubscribed", "subscription_id": sub_id})

    async def _tick(self, market: Market, interval: float) -> None:
        if interval > 0:
            await trio.sleep(interval)
        else:
            key = (market.spec.connector, market.spec.trading_pair)
            await self.signals.wait(key)

    async def _push_book(
        self, scope: trio.CancelScope, sub_id: str, market: Market, depth: int, interval: float
    ) -> None:
        with scope:
            book = market.book
            last = -1
            if interval > 0:
                await trio.sleep(interval)
            while True:
                if book.version == last:
                    await self._tick(market, interval)
                    continue
                last = book.version
                bids, asks = book.levels(depth)
                await self.send(
                    {
                        "type": "order_book",
                        "subscription_id": sub_id,
                        "data": {
                            "bids": [[float(p), float(a)] for p, a in bids],
                            "asks": [[float(p), float(a)] for p, a in asks],
                        },
                        "timestamp": time.time(),
                    }
                )
                if interval > 0:
                    await trio.sleep(interval)

    async def _push_trades(
        self,
        scope: trio.CancelScope,
        sub_id: str,
        market: Market,
        interval: float,
        last_seq: int,
    ) -> None:
        with scope:
            while True:
                await self._tick(market, interval)
                if market.trade_seq == last_seq:
                    continue
                batch = []
                for trade in reversed(market.trades):
                    if trade.seq <= last_seq:
                        break
                    batch.append(
                        {
                            "timestamp": trade.timestamp,
                            "price": float(trade.price),
                            "amount": float(trade.amount),
                            "side": trade.side,
                        }
                    )
                batch.reverse()
                last_seq = market.trade_seq
                await self.send(
                    {
                        "type": "trades",
                        "subscription_id": sub_id,
                        "data": batch,
                        "timestamp": time.time(),
                    }
                )

    async def _push_candles(
        self,
        scope: trio.CancelScope,
        sub_id: str,
        market: Market,
        candle_interval: str,
        max_records: int,
        interval: float,
    ) -> None:
        with scope:
            last_ts: float | None = None
            while True:
                await self._tick(market, interval)
                records = candle_records(
                    market, candle_interval, time.time(), max_records=max(max_records, 1)
                )
                if not records:
                    continue
                latest = records[-1]["timestamp"]
                if latest != last_ts:
                    last_ts = latest
                    await self.send(
                        {
                            "type": "candles",
                            "subscription_id": sub_id,
                            "data": records,
                            "timestamp": time.time(),
                        }
                    )
                else:
                    await self.send(
                        {
                            "type": "candle_update",
                            "subscription_id": sub_id,
                            "data": records[-1],
                            "timestamp": time.time(),
                        }
                    )


async def market_data_session(
    state: SimState, signals: MarketSignals, scope: Scope, receive: Receive, send: Send
) -> None:
    """Run one ``/ws/market-data`` session.

    Args:
        state: The simulator's shared state.
        signals: Market change signals (an engine listener).
        scope: ASGI websocket scope.
        receive: ASGI receive.
        send: ASGI send.
    """
    first = await receive()
    if first["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    if not _authenticate(state, scope):
        if state.settings.latency_ms > 0:
            await trio.sleep(state.settings.latency_ms / 1000)
        await send(
            {
                "type": "websocket.send",
                "text": '{"type":"error","message":"Authentication failed"}',
            }
        )
        await send(
            {"type": "websocket.close", "code": AUTH_FAILED, "reason": "Authentication failed"}
        )
        return
    session = _Session(state, signals, send)
    state.ws_closers.add(session.request_close)
    try:
        async with trio.open_nursery() as nursery:
            session.nursery = nursery
            if session.close_code is not None:
                nursery.cancel_scope.cancel()
            if session.delay > 0:
                nursery.start_soon(session.delay_line)
            await session.send(
                {
                    "type": "connected",
                    "connection_id": uuid.uuid4().hex[:8],
                    "timestamp": time.time(),
                }
            )
            nursery.start_soon(session.reader, receive)
            nursery.start_soon(session.heartbeat)
            if state.settings.drop_ws_after_s is not None:
                nursery.start_soon(session.drop_timer, state.settings.drop_ws_after_s)
    finally:
        state.ws_closers.discard(session.request_close)
    if not session.client_gone:
        code = session.close_code if session.close_code is not None else 1000
        with trio.move_on_after(1.0) as cleanup:
            cleanup.shield = True
            with contextlib.suppress(Exception):  # the peer may already be gone
                await send({"type": "websocket.close", "code": code})
