"""A fault-injecting TCP/TLS proxy for reliability tests.

The proxy listens on ``127.0.0.1`` and forwards every accepted connection to one
upstream server, injecting faults on the way:

* ``DROP``: close both sides (FIN, no TLS close_notify);
* ``RESET``: abort both sides with a TCP RST (``SO_LINGER`` 0);
* ``STALL``: stop forwarding (for ``duration`` seconds, or until faults stop);
* ``SLOW``: read and forward in ``chunk``-byte pieces with ``delay`` between them;
* ``CORRUPT``: corrupt a WebSocket frame (or, at a byte offset, flip a byte).

Two modes:

* pass-through (``tls_terminate=False``): bytes are forwarded untouched, so an
  end-to-end TLS session survives; only connection-level triggers apply
  (``CONNECT``, ``BYTES_UP``, ``BYTES_DOWN``, ``TIMER``). With
  ``inspect_http=True`` a plain-HTTP stream is parsed as in the other mode.
* TLS-terminating (``tls_terminate=True``): the proxy presents a certificate from
  its own test CA (``proxy.ca_path``, made with ``trustme``), parses HTTP/1.1
  requests and responses (request line, message boundaries, ``101`` upgrades) and
  WebSocket frames, and connects upstream with TLS (``upstream_ssl``) or plain.

Faults are chosen by a :class:`FaultPlan`: a list of :class:`Fault` rules, each
firing at a trigger point, on a schedule (``skip``/``every``/``limit``) and/or at
random (``probability``, drawn from a generator seeded by ``seed``). Every fault
injected is counted by kind (and by rule ``name``) in ``proxy.counts``.
``proxy.fault_all(kind)`` resets, drops or stalls every live connection at once
(optionally only the WebSocket or only the HTTP ones), and
``proxy.connection_bytes()`` tells how many bytes each live connection forwarded
(to aim a ``BYTES_*`` fault into the middle of an exchange measured before).

Example::

    plan = FaultPlan(
        Fault(FaultKind.RESET, Trigger.REQUEST_SENT, method="POST",
              path="/trading/orders", wait_response=True, name="reset_mid_order"),
        Fault(FaultKind.CORRUPT, Trigger.WS_FRAME_DOWN, probability=0.01),
    )
    async with open_fault_proxy("127.0.0.1", sim.port, tls_terminate=True,
                                upstream_ssl=ctx, seed=7, plan=plan) as proxy:
        config = ClientConfig(host="127.0.0.1", port=proxy.port, ca_file=proxy.ca_path, ...)
"""

from __future__ import annotations

import enum
import os
import random
import re
import shutil
import socket
import ssl
import struct
import tempfile
import time
from collections import Counter, deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Literal

import trio

__all__ = [
    "CorruptMode",
    "Fault",
    "FaultKind",
    "FaultPlan",
    "FaultProxy",
    "FaultRecord",
    "HttpParser",
    "Mark",
    "Trigger",
    "WsFrame",
    "open_fault_proxy",
]


class FaultKind(enum.StrEnum):
    """What a fault does to a connection."""

    DROP = "drop"
    RESET = "reset"
    STALL = "stall"
    SLOW = "slow"
    CORRUPT = "corrupt"


class Trigger(enum.StrEnum):
    """Where in a connection's life a rule is considered.

    ``CONNECT``: a client connection was accepted (before connecting upstream).
    ``BYTES_UP`` / ``BYTES_DOWN``: decided on connect; fires once ``nbytes`` bytes
    went client→server / server→client (plaintext bytes in TLS-terminating mode).
    ``REQUEST_PARTIAL``: a matching request started; fires after half of it was
    forwarded (mid-request). ``REQUEST_SENT``: a matching request was forwarded
    completely; fires then, or with ``wait_response=True`` when its response
    starts to arrive, before any byte of it reaches the client (the server did
    act on it; the client never learns the outcome). ``RESPONSE_PARTIAL``: a
    response to a matching request started; fires after half of it reached the
    client (mid-response). ``WS_FRAME_DOWN`` / ``WS_FRAME_UP``: each WebSocket
    data frame server→client / client→server. ``TIMER``: every ``interval``
    seconds on one live connection picked at random.
    """

    CONNECT = "connect"
    BYTES_UP = "bytes_up"
    BYTES_DOWN = "bytes_down"
    REQUEST_PARTIAL = "request_partial"
    REQUEST_SENT = "request_sent"
    RESPONSE_PARTIAL = "response_partial"
    WS_FRAME_DOWN = "ws_frame_down"
    WS_FRAME_UP = "ws_frame_up"
    TIMER = "timer"


class CorruptMode(enum.StrEnum):
    """How ``CORRUPT`` damages a WebSocket data frame.

    ``GARBLE``: overwrite the start of the payload with ``#`` (invalid JSON, valid
    UTF-8). ``BAD_UTF8``: put a ``0xFF`` byte in the payload. ``BAD_OPCODE``: use
    the reserved opcode 3. ``RSV``: set the RSV2 bit (no extension defines it).
    ``TRUNCATE_JSON``: keep the frame valid but cut the JSON text (pad with spaces).
    """

    GARBLE = "garble"
    BAD_UTF8 = "bad_utf8"
    BAD_OPCODE = "bad_opcode"
    RSV = "rsv"
    TRUNCATE_JSON = "truncate_json"


_HTTP_TRIGGERS = frozenset(
    {Trigger.REQUEST_PARTIAL, Trigger.REQUEST_SENT, Trigger.RESPONSE_PARTIAL}
)
_WS_TRIGGERS = frozenset({Trigger.WS_FRAME_DOWN, Trigger.WS_FRAME_UP})


@dataclass(frozen=True)
class Fault:
    """One rule of a :class:`FaultPlan`.

    Args:
        kind: What to do.
        at: Where the rule is considered.
        method: For HTTP triggers: request method to match (``None``: any).
        path: For HTTP triggers: regular expression the request path (without
            query) must match in full (``None``: any).
        nbytes: For ``BYTES_*``: the byte offset at which the fault fires.
        probability: Chance that an eligible occurrence fires (seeded generator).
        skip: Matching occurrences to let pass first.
        every: Fire on every ``every``-th matching occurrence after ``skip``.
        limit: Maximum number of injections by this rule (``None``: unlimited).
        duration: ``STALL``/``SLOW``: seconds it lasts (``None``: until faults stop
            or the connection ends).
        chunk: ``SLOW``: bytes forwarded per step.
        delay: ``SLOW``: seconds between steps.
        direction: ``SLOW`` and ``TIMER``: which direction slows (``"down"``:
            server→client, ``"up"``, or ``"both"``).
        wait_response: ``REQUEST_SENT``: fire when the response starts instead of
            right after the request was forwarded.
        corrupt: ``CORRUPT``: how to damage a WebSocket frame.
        interval: ``TIMER``: seconds between occurrences.
        target: ``TIMER``: which connections are eligible (``"any"``, ``"ws"``
            for upgraded ones, ``"http"`` for the others; the last two need
            parsing).
        name: Extra counter key for the injections of this rule.
    """

    kind: FaultKind
    at: Trigger
    method: str | None = None
    path: str | None = None
    nbytes: int = 0
    probability: float = 1.0
    skip: int = 0
    every: int = 1
    limit: int | None = None
    duration: float | None = None
    chunk: int = 16
    delay: float = 0.01
    direction: Literal["up", "down", "both"] = "down"
    wait_response: bool = False
    corrupt: CorruptMode = CorruptMode.GARBLE
    interval: float = 1.0
    target: Literal["any", "ws", "http"] = "any"
    name: str | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError("probability must be in [0, 1]")
        if self.every < 1 or self.skip < 0 or self.nbytes < 0:
            raise ValueError("every must be >= 1; skip and nbytes >= 0")
        if self.at is Trigger.TIMER and self.interval <= 0:
            raise ValueError("interval must be > 0")
        if self.kind is FaultKind.SLOW and (self.chunk < 1 or self.delay < 0):
            raise ValueError("chunk must be >= 1 and delay >= 0")

    def matches_request(self, method: str, path: str) -> bool:
        """Whether an HTTP request matches this rule's ``method`` and ``path``.

        Args:
            method: Request method.
            path: Request path without query.

        Returns:
            True when both filters accept it.
        """
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.path is None or re.fullmatch(self.path, path) is not None


class FaultPlan:
    """An ordered set of :class:`Fault` rules; the first rule that fires wins.

    Args:
        *rules: The rules.
    """

    def __init__(self, *rules: Fault) -> None:
        self.rules: tuple[Fault, ...] = tuple(rules)

    def __repr__(self) -> str:
        return f"FaultPlan({', '.join(map(repr, self.rules))})"


@dataclass(frozen=True)
class FaultRecord:
    """One injected fault, for diagnostics.

    Attributes:
        time: ``time.monotonic()`` when it was injected.
        kind: What was done.
        at: The trigger point.
        name: The rule's name, if any.
        conn_id: Connection number (1-based, in accept order).
        detail: Free text (request line, frame info, ...).
    """

    time: float
    kind: FaultKind
    at: Trigger
    name: str | None
    conn_id: int
    detail: str


class _RuleState:
    """Per-rule schedule bookkeeping (matches seen, injections made)."""

    __slots__ = ("fired", "matches", "rule")

    def __init__(self, rule: Fault) -> None:
        self.rule = rule
        self.matches = 0
        self.fired = 0


class _Decider:
    """Sans-IO rule engine: decides, on each occurrence, whether a rule fires."""

    def __init__(self, plan: FaultPlan, seed: int | None) -> None:
        self.rng = random.Random(seed)
        self.enabled = True
        self.set_plan(plan)

    def set_plan(self, plan: FaultPlan) -> None:
        self.plan = plan
        self.states = [_RuleState(rule) for rule in plan.rules]

    def try_fire(self, state: _RuleState) -> bool:
        """Count one eligible occurrence for ``state``'s rule; return whether it fires."""
        rule = state.rule
        state.matches += 1
        if state.matches <= rule.skip or (state.matches - rule.skip - 1) % rule.every:
            return False
        if rule.limit is not None and state.fired >= rule.limit:
            return False
        if rule.probability < 1.0 and self.rng.random() >= rule.probability:
            return False
        state.fired += 1
        return True

    def decide(
        self,
        at: Trigger,
        *,
        method: str | None = None,
        path: str | None = None,
    ) -> Fault | None:
        """Return the first rule for ``at`` that fires on this occurrence, if any."""
        if not self.enabled:
            return None
        for state in self.states:
            rule = state.rule
            if rule.at is not at:
                continue
            if at in _HTTP_TRIGGERS and not rule.matches_request(method or "", path or ""):
                continue
            if self.try_fire(state):
                return rule
        return None


# --------------------------------------------------------------------------------------
# Minimal incremental HTTP/1.1 and WebSocket framing (sans-IO)
# --------------------------------------------------------------------------------------


@dataclass
class Mark:
    """A boundary in a parsed byte stream.

    Attributes:
        what: ``"start"`` (a message head is complete; its bytes follow) or
            ``"end"`` (the message's last byte was just passed).
        method: Request method (for responses: of the request answered).
        path: Request path without query (for responses: of the request answered).
        status: Response status code (``None`` for requests).
        length: Total bytes of the message (head + body) when known up front.
        head_length: Bytes of the head.
    """

    what: Literal["start", "end"]
    method: str
    path: str
    status: int | None = None
    length: int | None = None
    head_length: int = 0
    decided: bool = field(default=False, repr=False)
    rule: Fault | None = field(default=None, repr=False)


@dataclass
class WsFrame:
    """A complete WebSocket frame, mutable so it can be corrupted before forwarding.

    Attributes:
        header: Header bytes (including extended length and mask key).
        payload: Payload bytes as on the wire (masked if the frame is masked).
    """

    header: bytearray
    payload: bytearray

    @property
    def opcode(self) -> int:
        """The frame's opcode."""
        return self.header[0] & 0x0F

    @property
    def is_data(self) -> bool:
        """Whether it is a text, binary or continuation frame."""
        return self.opcode in (0, 1, 2)

    @property
    def mask(self) -> bytes | None:
        """The masking key, if the frame is masked."""
        if not self.header[1] & 0x80:
            return None
        return bytes(self.header[-4:])

    def plain_payload(self) -> bytearray:
        """The payload unmasked."""
        mask = self.mask
        if mask is None:
            return bytearray(self.payload)
        return bytearray(b ^ mask[i % 4] for i, b in enumerate(self.payload))

    def set_plain_payload(self, data: bytes) -> None:
        """Replace the payload (same length), masking it again if needed.

        Args:
            data: The new unmasked payload, as long as the old one.
        """
        assert len(data) == len(self.payload)
        mask = self.mask
        if mask is None:
            self.payload = bytearray(data)
        else:
            self.payload = bytearray(b ^ mask[i % 4] for i, b in enumerate(data))

    def corrupt(self, mode: CorruptMode) -> str:
        """Damage the frame in place.

        Args:
            mode: How.

        Returns:
            A short description of what was done.
        """
        plain = self.plain_payload()
        if mode in (CorruptMode.GARBLE, CorruptMode.BAD_UTF8, CorruptMode.TRUNCATE_JSON) and (
            not plain
        ):
            mode = CorruptMode.BAD_OPCODE
        if mode is CorruptMode.GARBLE:
            n = min(len(plain), 4)
            plain[:n] = b"#" * n
            self.set_plain_payload(bytes(plain))
        elif mode is CorruptMode.BAD_UTF8:
            plain[len(plain) // 2] = 0xFF
            self.set_plain_payload(bytes(plain))
        elif mode is CorruptMode.TRUNCATE_JSON:
            keep = len(plain) // 2
            plain[keep:] = b" " * (len(plain) - keep)
            self.set_plain_payload(bytes(plain))
        elif mode is CorruptMode.BAD_OPCODE:
            self.header[0] = (self.header[0] & 0xF0) | 0x03
        else:
            self.header[0] |= 0x20
        return f"ws opcode={self.opcode} len={len(self.payload)} {mode.value}"

    def to_bytes(self) -> bytes:
        """The frame as wire bytes."""
        return bytes(self.header) + bytes(self.payload)


_Item = bytes | Mark | WsFrame

_MAX_HEAD = 256 * 1024


class HttpParser:
    """Incremental splitter of one direction of an HTTP/1.1 connection.

    ``feed(data)`` returns the same bytes, split into pieces with :class:`Mark`
    boundaries between messages, or (after a ``101 Switching Protocols``)
    :class:`WsFrame` items. Anything it cannot parse is passed through as bytes
    (the parser then stops interpreting the stream).

    Args:
        role: ``"request"`` (client→server) or ``"response"`` (server→client).
        pending: Shared queue of ``(method, path)`` of requests awaiting a
            response (the request side appends, the response side pops).
    """

    def __init__(
        self, role: Literal["request", "response"], pending: deque[tuple[str, str]]
    ) -> None:
        self.role = role
        self.pending = pending
        self.buf = bytearray()
        self.state: Literal[
            "head", "length", "chunk_size", "chunk_data", "trailer", "eof", "ws", "opaque"
        ] = "head"
        self.remaining = 0
        self.current: tuple[str, str] = ("", "")
        self.status: int | None = None
        self.upgraded = False  # set by the connection when a 101 passed
        self.ws_mode = False

    def switch_to_ws(self) -> None:
        """Interpret the rest of the stream as WebSocket frames."""
        self.ws_mode = True
        if self.state == "head":
            self.state = "ws"

    def feed(self, data: bytes) -> list[_Item]:
        """Split ``data`` (possibly empty, to flush) into items.

        Args:
            data: The next bytes of the stream.

        Returns:
            Bytes, marks and frames, in stream order; the bytes of all items
            concatenated equal the bytes fed (frames via ``to_bytes``).
        """
        self.buf += data
        out: list[_Item] = []
        while self.buf:
            before = len(self.buf), self.state
            if self.state == "opaque" or self.state == "eof":
                out.append(bytes(self.buf))
                self.buf.clear()
            elif self.state == "ws":
                frame = self._take_frame()
                if frame is None:
                    break
                out.append(frame)
            elif self.state == "head":
                if not self._take_head(out):
                    break
            elif self.state == "length":
                n = min(self.remaining, len(self.buf))
                out.append(bytes(self.buf[:n]))
                del self.buf[:n]
                self.remaining -= n
                if self.remaining == 0:
                    self._end(out)
            elif self.state == "chunk_size":
                idx = self.buf.find(b"\r\n")
                if idx < 0:
                    if len(self.buf) > 1024:
                        self._give_up(out)
                    break
                line = bytes(self.buf[:idx])
                try:
                    size = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    self._give_up(out)
                    continue
                out.append(bytes(self.buf[: idx + 2]))
                del self.buf[: idx + 2]
                if size == 0:
                    self.state = "trailer"
                else:
                    self.state = "chunk_data"
                    self.remaining = size + 2
            elif self.state == "chunk_data":
                n = min(self.remaining, len(self.buf))
                out.append(bytes(self.buf[:n]))
                del self.buf[:n]
                self.remaining -= n
                if self.remaining == 0:
                    self.state = "chunk_size"
            elif self.state == "trailer":
                idx = self.buf.find(b"\r\n")
                if idx < 0:
                    break
                out.append(bytes(self.buf[: idx + 2]))
                del self.buf[: idx + 2]
                if idx == 0:
                    self._end(out)
            if (len(self.buf), self.state) == before and self.buf:
                break  # no progress: wait for more data
        return out

    def _give_up(self, out: list[_Item]) -> None:
        self.state = "opaque"
        out.append(bytes(self.buf))
        self.buf.clear()

    def _end(self, out: list[_Item]) -> None:
        method, path = self.current
        out.append(Mark("end", method, path, status=self.status))
        if self.role == "response" and self.status == 101:
            self.switch_to_ws()
            self.state = "ws"
        else:
            self.state = "ws" if self.ws_mode else "head"

    def _take_head(self, out: list[_Item]) -> bool:
        idx = self.buf.find(b"\r\n\r\n")
        if idx < 0:
            if len(self.buf) > _MAX_HEAD:
                self._give_up(out)
                return True
            return False
        head = bytes(self.buf[: idx + 4])
        del self.buf[: idx + 4]
        lines = head.decode("latin-1").split("\r\n")
        first = lines[0].split(" ")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        body: int | None
        if self.role == "request":
            if len(first) < 3:
                out.append(head)
                self._give_up(out)
                return True
            method, target = first[0], first[1]
            path = target.split("?", 1)[0]
            self.current = (method, path)
            self.status = None
            self.pending.append((method, path))
            body = self._body_length(headers, None, method)
        else:
            try:
                status = int(first[1])
            except (IndexError, ValueError):
                out.append(head)
                self._give_up(out)
                return True
            self.status = status
            if 100 <= status < 200 and status != 101:
                self.current = self.pending[0] if self.pending else ("", "")
            else:
                self.current = self.pending.popleft() if self.pending else ("", "")
            body = self._body_length(headers, status, self.current[0])
        method, path = self.current
        length = None if body is None or body < 0 else len(head) + body
        out.append(Mark("start", method, path, self.status, length, len(head)))
        out.append(head)
        if body is None:  # chunked
            self.state = "chunk_size"
        elif body < 0:  # until close
            self.state = "eof"
            out.append(bytes(self.buf))
            self.buf.clear()
        elif body == 0:
            self._end(out)
        else:
            self.state = "length"
            self.remaining = body
        return True

    def _body_length(self, headers: dict[str, str], status: int | None, method: str) -> int | None:
        """Body length: ``None`` for chunked, ``-1`` for until-close."""
        if status is not None and (
            status < 200 or status in (204, 304) or method.upper() == "HEAD"
        ):
            return 0
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return None
        if "content-length" in headers:
            try:
                return max(0, int(headers["content-length"]))
            except ValueError:
                return -1
        return 0 if status is None else -1

    def _take_frame(self) -> WsFrame | None:
        buf = self.buf
        if len(buf) < 2:
            return None
        n = buf[1] & 0x7F
        pos = 2
        if n == 126:
            if len(buf) < 4:
                return None
            n = struct.unpack_from("!H", buf, 2)[0]
            pos = 4
        elif n == 127:
            if len(buf) < 10:
                return None
            n = struct.unpack_from("!Q", buf, 2)[0]
            pos = 10
        if buf[1] & 0x80:
            pos += 4
        if len(buf) < pos + n:
            return None
        frame = WsFrame(bytearray(buf[:pos]), bytearray(buf[pos : pos + n]))
        del buf[: pos + n]
        return frame


# --------------------------------------------------------------------------------------
# The proxy
# --------------------------------------------------------------------------------------

_LINGER_RST = struct.pack("ii", 1, 0)
_SOCKET_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, OSError, ssl.SSLError)


def _reset_socket(stream: trio.SocketStream | None) -> None:
    if stream is None:
        return
    with suppress(OSError):
        stream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
    stream.socket.close()


def _close_socket(stream: trio.SocketStream | None) -> None:
    if stream is not None:
        stream.socket.close()


class _Direction:
    """Per-direction state of one proxied connection."""

    def __init__(self, name: Literal["up", "down"]) -> None:
        self.name = name
        self.forwarded = 0
        # Armed faults: (byte offset at which to fire, rule, trigger, detail).
        self.armed: list[tuple[int, Fault, Trigger, str]] = []
        self.slow: tuple[int, float, float | None] | None = None  # chunk, delay, until
        self.fire_on_next_start: list[tuple[Fault, str]] = []


class _Conn:
    """One proxied connection: two pumps and the fault actions on them."""

    def __init__(self, proxy: FaultProxy, conn_id: int, client_raw: trio.SocketStream) -> None:
        self.proxy = proxy
        self.id = conn_id
        self.client_raw = client_raw
        self.upstream_raw: trio.SocketStream | None = None
        self.client: trio.abc.Stream = client_raw
        self.upstream: trio.abc.Stream | None = None
        self.cancel_scope = trio.CancelScope()
        self.stall_release = trio.Event()
        self.stalled = False
        self.stall_until: float | None = None
        self.closed = False
        self.up = _Direction("up")
        self.down = _Direction("down")
        self.pending: deque[tuple[str, str]] = deque()
        self.up_parser: HttpParser | None = None
        self.down_parser: HttpParser | None = None
        self.upgraded = False

    # -- fault actions -------------------------------------------------------------

    def record(self, rule: Fault, at: Trigger, detail: str) -> None:
        self.proxy._record(rule, at, self.id, detail)

    async def apply(self, rule: Fault, at: Trigger, detail: str) -> None:
        """Carry out ``rule`` on this connection now (counted)."""
        if not self.proxy._decider.enabled or self.closed:
            return
        kind = rule.kind
        if kind is FaultKind.RESET:
            self.record(rule, at, detail)
            self.abort(reset=True)
            await trio.lowlevel.checkpoint()
        elif kind is FaultKind.DROP:
            self.record(rule, at, detail)
            self.abort(reset=False)
            await trio.lowlevel.checkpoint()
        elif kind is FaultKind.STALL:
            self.record(rule, at, detail)
            self.stall(rule.duration)
        elif kind is FaultKind.SLOW:
            self.record(rule, at, detail)
            until = None if rule.duration is None else trio.current_time() + rule.duration
            for d in self._directions(rule.direction):
                d.slow = (rule.chunk, rule.delay, until)
        # CORRUPT is applied by the pump on the bytes/frame at hand.

    def _directions(self, which: str) -> list[_Direction]:
        if which == "both":
            return [self.up, self.down]
        return [self.up if which == "up" else self.down]

    def abort(self, *, reset: bool) -> None:
        """Close both sides, with a RST if ``reset``."""
        if self.closed:
            return
        self.closed = True
        if reset:
            _reset_socket(self.client_raw)
            _reset_socket(self.upstream_raw)
        else:
            _close_socket(self.client_raw)
            _close_socket(self.upstream_raw)
        self.cancel_scope.cancel()

    def stall(self, duration: float | None) -> None:
        """Stop forwarding for ``duration`` seconds (``None``: until released)."""
        self.stalled = True
        self.stall_until = None if duration is None else trio.current_time() + duration

    def release(self) -> None:
        """End stalls and slow modes (faults stopped)."""
        self.stalled = False
        self.stall_release.set()
        self.stall_release = trio.Event()
        self.up.slow = self.down.slow = None

    async def wait_unstalled(self) -> None:
        while self.stalled:
            if self.stall_until is None:
                await self.stall_release.wait()
            else:
                with trio.move_on_at(self.stall_until):
                    await self.stall_release.wait()
                if self.stall_until is not None and trio.current_time() >= self.stall_until:
                    self.stalled = False

    # -- pumps -----------------------------------------------------------------------

    async def pump(self, direction: _Direction) -> None:
        src, dst = (
            (self.client, self.upstream) if direction.name == "up" else (self.upstream, self.client)
        )
        assert src is not None and dst is not None
        parser = self.up_parser if direction.name == "up" else self.down_parser
        while True:
            max_bytes = 65536
            slow = direction.slow
            if slow is not None and slow[2] is not None and trio.current_time() >= slow[2]:
                direction.slow = slow = None
            if slow is not None:
                max_bytes = slow[0]
            data = bytes(await src.receive_some(max_bytes))
            if not data:
                if parser is not None:
                    for item in parser.feed(b""):
                        await self._handle(direction, dst, item)
                return
            items: list[_Item] = parser.feed(data) if parser is not None else [data]
            for i, item in enumerate(items):
                if direction.name == "up" and i + 1 < len(items):
                    nxt = items[i + 1]
                    if isinstance(nxt, Mark) and nxt.what == "end":
                        self._decide_request_sent(nxt)
                await self._handle(direction, dst, item)
            if slow is not None:
                await trio.sleep(slow[1])

    def _decide_request_sent(self, mark: Mark) -> None:
        """Decide ``REQUEST_SENT`` for a request before its last bytes are forwarded, so
        a held response cannot race past the decision."""
        if mark.decided:
            return
        mark.decided = True
        mark.rule = self.proxy._decider.decide(
            Trigger.REQUEST_SENT, method=mark.method, path=mark.path
        )
        if mark.rule is not None and mark.rule.wait_response:
            detail = f"{mark.method} {mark.path} forwarded, response held"
            self.down.fire_on_next_start.append((mark.rule, detail))

    async def _handle(self, direction: _Direction, dst: trio.abc.Stream, item: _Item) -> None:
        proxy = self.proxy
        decider = proxy._decider
        rule: Fault | None
        if isinstance(item, Mark):
            if item.what == "start":
                if direction.name == "down" and direction.fire_on_next_start:
                    rule, detail = direction.fire_on_next_start.pop(0)
                    await self.apply(rule, Trigger.REQUEST_SENT, detail)
                    return
                if direction.name == "up":
                    proxy.requests[(item.method, item.path)] += 1
                    rule = decider.decide(
                        Trigger.REQUEST_PARTIAL, method=item.method, path=item.path
                    )
                    at = Trigger.REQUEST_PARTIAL
                else:
                    rule = decider.decide(
                        Trigger.RESPONSE_PARTIAL, method=item.method, path=item.path
                    )
                    at = Trigger.RESPONSE_PARTIAL
                if rule is not None:
                    total = item.length if item.length is not None else item.head_length
                    offset = direction.forwarded + max(1, total // 2)
                    detail = f"{item.method} {item.path} after {total // 2}/{total} bytes"
                    direction.armed.append((offset, rule, at, detail))
            else:
                if direction.name == "down" and item.status == 101:
                    self.upgraded = True
                    if self.up_parser is not None:
                        self.up_parser.switch_to_ws()
                if direction.name == "up":
                    self._decide_request_sent(item)
                    if item.rule is not None and not item.rule.wait_response:
                        detail = f"{item.method} {item.path} forwarded"
                        await self.apply(item.rule, Trigger.REQUEST_SENT, detail)
            return
        if isinstance(item, WsFrame):
            if item.is_data:
                at = Trigger.WS_FRAME_UP if direction.name == "up" else Trigger.WS_FRAME_DOWN
                rule = decider.decide(at)
                if rule is not None:
                    if rule.kind is FaultKind.CORRUPT:
                        detail = item.corrupt(rule.corrupt)
                        self.record(rule, at, detail)
                    else:
                        await self.apply(rule, at, f"ws frame len={len(item.payload)}")
                        if self.closed:
                            return
            await self._send(direction, dst, item.to_bytes())
            return
        await self._send(direction, dst, item)

    async def _send(self, direction: _Direction, dst: trio.abc.Stream, data: bytes) -> None:
        while data:
            if self.stalled:
                await self.wait_unstalled()
            if self.closed:
                return
            if direction.armed:
                direction.armed.sort(key=lambda a: a[0])
                offset, rule, at, detail = direction.armed[0]
                room = offset - direction.forwarded
                if room <= 0:
                    direction.armed.pop(0)
                    if rule.kind is FaultKind.CORRUPT:
                        if self.proxy._decider.enabled:
                            flipped = bytearray(data)
                            flipped[0] ^= 0xFF
                            data = bytes(flipped)
                            self.record(rule, at, detail + " (byte flipped)")
                    else:
                        await self.apply(rule, at, detail)
                    continue
                if room < len(data):
                    # Counted as forwarded once handed over (the peer may see the
                    # bytes before this task runs again).
                    direction.forwarded += room
                    await dst.send_all(data[:room])
                    data = data[room:]
                    continue
            direction.forwarded += len(data)
            await dst.send_all(data)
            data = b""

    async def run(self) -> None:
        proxy = self.proxy
        with self.cancel_scope:
            try:
                rule = proxy._decider.decide(Trigger.CONNECT)
                if rule is not None:
                    await self.apply(rule, Trigger.CONNECT, "on connect")
                    if self.closed:
                        return
                if proxy.tls_terminate:
                    assert proxy._server_ctx is not None
                    tls = trio.SSLStream(
                        self.client_raw, proxy._server_ctx, server_side=True, https_compatible=True
                    )
                    try:
                        with trio.fail_after(10):
                            await tls.do_handshake()
                    except (*_SOCKET_ERRORS, trio.TooSlowError):
                        proxy.tls_failures += 1
                        return
                    self.client = tls
                self.upstream_raw = await trio.open_tcp_stream(
                    proxy.upstream_host, proxy.upstream_port
                )
                if proxy.upstream_ssl is not None:
                    up_tls = trio.SSLStream(
                        self.upstream_raw,
                        proxy.upstream_ssl,
                        server_hostname=proxy.upstream_server_hostname,
                        https_compatible=True,
                    )
                    await up_tls.do_handshake()
                    self.upstream = up_tls
                else:
                    self.upstream = self.upstream_raw
                if proxy.inspect_http:
                    self.up_parser = HttpParser("request", self.pending)
                    self.down_parser = HttpParser("response", self.pending)
                for at, d in ((Trigger.BYTES_UP, self.up), (Trigger.BYTES_DOWN, self.down)):
                    rule = proxy._decider.decide(at)
                    if rule is not None:
                        d.armed.append(
                            (rule.nbytes, rule, at, f"after {rule.nbytes} bytes {d.name}")
                        )
                async with trio.open_nursery() as nursery:

                    async def pump(d: _Direction) -> None:
                        with suppress(*_SOCKET_ERRORS):
                            await self.pump(d)
                        nursery.cancel_scope.cancel()

                    nursery.start_soon(pump, self.up)
                    nursery.start_soon(pump, self.down)
            except _SOCKET_ERRORS:
                pass
        if not self.closed:
            self.closed = True
            _close_socket(self.client_raw)
            _close_socket(self.upstream_raw)


class FaultProxy:
    """A running fault-injecting proxy (made by :func:`open_fault_proxy`).

    Attributes:
        host: Listening address (``127.0.0.1``).
        port: Listening port.
        ca_path: PEM file of the proxy's CA (TLS-terminating mode), else ``None``.
        counts: Faults injected, by kind value and by rule name.
        records: Every injected fault, in order.
        requests: HTTP requests seen, by ``(method, path)`` (parsing modes only).
        connections: Client connections accepted so far.
        tls_failures: Client TLS handshakes that failed (TLS-terminating mode).
    """

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        *,
        tls_terminate: bool,
        upstream_ssl: ssl.SSLContext | None,
        upstream_server_hostname: str | None,
        inspect_http: bool,
        seed: int | None,
        plan: FaultPlan,
    ) -> None:
        self.host = "127.0.0.1"
        self.port = 0
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.tls_terminate = tls_terminate
        self.upstream_ssl = upstream_ssl
        self.upstream_server_hostname = upstream_server_hostname or upstream_host
        self.inspect_http = inspect_http
        self.ca_path: str | None = None
        self.counts: Counter[str] = Counter()
        self.records: list[FaultRecord] = []
        self.requests: Counter[tuple[str, str]] = Counter()
        self.connections = 0
        self.tls_failures = 0
        self._decider = _Decider(plan, seed)
        self._conns: dict[int, _Conn] = {}
        self._server_ctx: ssl.SSLContext | None = None
        self._timer_scope: trio.CancelScope | None = None
        self._nursery: trio.Nursery | None = None

    # -- public control ---------------------------------------------------------------

    @property
    def total(self) -> int:
        """Total faults injected (all kinds)."""
        return sum(self.counts[k.value] for k in FaultKind)

    @property
    def live_connections(self) -> int:
        """Connections currently open."""
        return len(self._conns)

    @property
    def faults_enabled(self) -> bool:
        """Whether new faults are injected."""
        return self._decider.enabled

    def set_plan(self, plan: FaultPlan) -> None:
        """Replace the plan (schedules restart) and enable faults.

        Args:
            plan: The new plan.
        """
        self._decider.set_plan(plan)
        self._decider.enabled = True
        self._restart_timers()

    def stop_faults(self) -> None:
        """Stop injecting faults: nothing new fires, armed faults are dropped, and
        stalled or slowed connections resume normal forwarding."""
        self._decider.enabled = False
        for conn in list(self._conns.values()):
            conn.up.armed.clear()
            conn.down.armed.clear()
            conn.down.fire_on_next_start.clear()
            conn.release()
        if self._timer_scope is not None:
            self._timer_scope.cancel()

    def resume_faults(self) -> None:
        """Inject faults again with the current plan (schedules continue)."""
        self._decider.enabled = True
        self._restart_timers()

    def reset_all(self, kind: FaultKind = FaultKind.RESET) -> int:
        """Reset (or drop) every live connection now; each counts as a fault.

        Args:
            kind: ``RESET`` or ``DROP``.

        Returns:
            The number of connections closed.
        """
        return self.fault_all(kind)

    def fault_all(
        self,
        kind: FaultKind,
        *,
        target: Literal["any", "ws", "http"] = "any",
        duration: float | None = None,
        name: str = "manual",
    ) -> int:
        """Reset, drop or stall every live connection now; each counts as a fault
        (by kind and under ``name``). Works while faults are stopped too.

        Args:
            kind: ``RESET``, ``DROP`` or ``STALL``.
            target: Which connections: ``"any"``, ``"ws"`` (upgraded) or ``"http"``
                (the others; both need parsing, i.e. TLS-terminating mode or
                ``inspect_http``).
            duration: ``STALL``: seconds it lasts (``None``: until
                :meth:`stop_faults` or the connection ends).
            name: Counter key of these injections.

        Returns:
            The number of connections affected.

        Raises:
            ValueError: Another kind.
        """
        if kind not in (FaultKind.RESET, FaultKind.DROP, FaultKind.STALL):
            raise ValueError("fault_all takes RESET, DROP or STALL")
        rule = Fault(kind, Trigger.TIMER, duration=duration, target=target, name=name)
        conns = [
            c
            for c in self._conns.values()
            if not c.closed and (target == "any" or (target == "ws") == c.upgraded)
        ]
        for conn in conns:
            conn.record(rule, Trigger.TIMER, name)
            if kind is FaultKind.STALL:
                conn.stall(duration)
            else:
                conn.abort(reset=kind is FaultKind.RESET)
        return len(conns)

    def connection_bytes(self) -> dict[int, tuple[int, int]]:
        """Bytes forwarded so far on each live connection, by connection number.

        In pass-through mode these are the bytes on the wire (TLS records
        included), so a test can measure a request/answer exchange once and aim a
        ``BYTES_UP``/``BYTES_DOWN`` fault into the middle of the next one.

        Returns:
            ``{conn_id: (client→server bytes, server→client bytes)}``.
        """
        return {
            cid: (c.up.forwarded, c.down.forwarded)
            for cid, c in self._conns.items()
            if not c.closed
        }

    # -- internals ---------------------------------------------------------------------

    def _record(self, rule: Fault, at: Trigger, conn_id: int, detail: str) -> None:
        self.counts[rule.kind.value] += 1
        if rule.name:
            self.counts[rule.name] += 1
        self.records.append(
            FaultRecord(time.monotonic(), rule.kind, at, rule.name, conn_id, detail)
        )

    async def _handle(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        conn = _Conn(self, self.connections, stream)
        self._conns[conn.id] = conn
        try:
            await conn.run()
        finally:
            del self._conns[conn.id]

    def _restart_timers(self) -> None:
        if self._nursery is None:
            return
        if self._timer_scope is not None:
            self._timer_scope.cancel()
        rules = [s for s in self._decider.states if s.rule.at is Trigger.TIMER]
        if not rules or not self._decider.enabled:
            self._timer_scope = None
            return
        scope = trio.CancelScope()
        self._timer_scope = scope

        async def timers() -> None:
            with scope:
                async with trio.open_nursery() as nursery:
                    for rule in rules:
                        nursery.start_soon(self._timer, rule)

        self._nursery.start_soon(timers)

    async def _timer(self, state: _RuleState) -> None:
        rule = state.rule
        while True:
            await trio.sleep(rule.interval)
            candidates = [
                c
                for c in self._conns.values()
                if not c.closed
                and c.upstream is not None
                and (rule.target == "any" or (rule.target == "ws") == c.upgraded)
            ]
            if not candidates:
                continue
            if not self._decider.enabled or not self._decider.try_fire(state):
                continue
            conn = self._decider.rng.choice(candidates)
            await conn.apply(rule, Trigger.TIMER, f"timer, {'ws' if conn.upgraded else 'conn'}")


def _make_ca_files(
    hostnames: tuple[str, ...], ca: object | None
) -> tuple[ssl.SSLContext, str, str]:
    import trustme

    the_ca = ca if isinstance(ca, trustme.CA) else trustme.CA()
    cert = the_ca.issue_cert(*hostnames)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    tmpdir = tempfile.mkdtemp(prefix="faultproxy-")
    ca_path = os.path.join(tmpdir, "proxy-ca.pem")
    the_ca.cert_pem.write_to_path(ca_path)
    return ctx, ca_path, tmpdir


@asynccontextmanager
async def open_fault_proxy(
    upstream_host: str,
    upstream_port: int,
    *,
    tls_terminate: bool = False,
    upstream_ssl: ssl.SSLContext | None = None,
    upstream_server_hostname: str | None = None,
    inspect_http: bool | None = None,
    seed: int | None = 0,
    plan: FaultPlan | None = None,
    cert_hostnames: tuple[str, ...] = ("127.0.0.1", "localhost"),
    ca: object | None = None,
) -> AsyncIterator[FaultProxy]:
    """Run a fault-injecting proxy on ``127.0.0.1`` for the duration of the block.

    Args:
        upstream_host: Server to forward to.
        upstream_port: Its port.
        tls_terminate: Terminate the client's TLS with the proxy's own test CA and
            parse HTTP and WebSocket traffic.
        upstream_ssl: Client TLS context for the upstream connection (``None``:
            plain TCP upstream). With ``tls_terminate=False`` leave it ``None``
            (TLS, if any, passes through end to end).
        upstream_server_hostname: SNI/verification name for the upstream
            (default ``upstream_host``).
        inspect_http: Parse HTTP/WebSocket (default: ``tls_terminate``; set it in
            pass-through mode only for a plain-HTTP upstream).
        seed: Seed of the fault generator (``None``: unseeded).
        plan: The fault plan (default: no faults).
        cert_hostnames: Names the proxy's certificate is issued for.
        ca: A ``trustme.CA`` to issue the proxy's certificate from (default: new).

    Yields:
        The running :class:`FaultProxy`.
    """
    proxy = FaultProxy(
        upstream_host,
        upstream_port,
        tls_terminate=tls_terminate,
        upstream_ssl=upstream_ssl,
        upstream_server_hostname=upstream_server_hostname,
        inspect_http=tls_terminate if inspect_http is None else inspect_http,
        seed=seed,
        plan=plan or FaultPlan(),
    )
    tmpdir: str | None = None
    if tls_terminate:
        proxy._server_ctx, proxy.ca_path, tmpdir = _make_ca_files(cert_hostnames, ca)
    try:
        async with trio.open_nursery() as nursery:
            listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
            proxy.port = listeners[0].socket.getsockname()[1]
            proxy._nursery = nursery
            nursery.start_soon(trio.serve_listeners, proxy._handle, listeners)
            proxy._restart_timers()
            try:
                yield proxy
            finally:
                proxy._decider.enabled = False
                for conn in list(proxy._conns.values()):
                    conn.abort(reset=False)
                nursery.cancel_scope.cancel()
    finally:
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)
