"""Hypercorn tuning for the simulator: one socket write per answer, a cheap idle timer.

Hypercorn's HTTP/1.1 protocol hands the response head and the body to the
transport as two separate writes: over TLS that is two records, two ``send``
system calls and, on the client, often two wake-ups per answer. This module
makes the simulator's hypercorn connections hold a final response's head back
until the next write of the same response (its body, or the empty end of
message that always follows it) and send both at once; the empty write that
ends a body framed by ``content-length`` is skipped.

Hypercorn's Trio worker also restarts a connection's keep-alive timer around
every request: it cancels the timer task when a request arrives and starts a new
task (``nursery.start``) when the answer is out, which costs more than the
simulator's request handling itself. Here each connection instead gets one
long-lived watcher task whose cancel-scope deadline is moved: ``now +
keep_alive_timeout`` when the connection becomes idle, never while a request is
in flight. Its behaviour is hypercorn's: an idle connection is closed after
``keep_alive_timeout`` seconds, or at once when the server shuts down.

The hooks are installed once on hypercorn's ``H11Protocol`` and ``TrioSingleTask``
and are active only for connections served with a ``SimConfig`` (any other
hypercorn server in the process behaves as before). They rely on hypercorn
internals (``H11Protocol._send_h11_event``, ``TrioSingleTask.restart/stop``,
``TCPServer._read_data`` and ``_initiate_server_close``); whatever a hypercorn version lacks is not
hooked, and the simulator still works, only slower.
"""

from __future__ import annotations

import math
from typing import Any

import h11
import trio
from hypercorn.config import Config

__all__ = ["SimConfig", "install_idle_watch", "install_response_coalescing"]

_INSTALLED_MARK = "_hbtrio_coalescing"


class SimConfig(Config):
    """A hypercorn ``Config`` whose HTTP/1.1 answers go out in one write."""

    hbtrio_lean_http1 = True


def install_response_coalescing() -> bool:
    """Install the coalescing hook on hypercorn's HTTP/1.1 protocol (idempotent).

    Returns:
        ``True`` when the hook is installed (now or before), ``False`` when this
        hypercorn version does not have the method it wraps.
    """
    try:
        from hypercorn.events import RawData
        from hypercorn.protocol.h11 import H11Protocol
    except ImportError:  # pragma: no cover - another hypercorn layout
        return False
    original = getattr(H11Protocol, "_send_h11_event", None)
    if original is None:  # pragma: no cover - another hypercorn version
        return False
    if getattr(original, _INSTALLED_MARK, False):
        return True

    async def _send_h11_event(self: Any, event: Any) -> None:
        if not getattr(self.config, "hbtrio_lean_http1", False):
            await original(self, event)
            return
        try:
            data = self.connection.send(event)
        except h11.LocalProtocolError:
            if self.connection.their_state != h11.ERROR:
                raise
            return
        if type(event) is h11.Response:
            # a final response is always followed by its body or end of message
            self.hbtrio_pending = getattr(self, "hbtrio_pending", b"") + data
            return
        pending: bytes = getattr(self, "hbtrio_pending", b"")
        if pending:
            self.hbtrio_pending = b""
            data = pending + data
        elif not data:
            # the end of a body framed by content-length: nothing to write
            return
        await self.send(RawData(data=data))

    setattr(_send_h11_event, _INSTALLED_MARK, True)
    _send_h11_event.__doc__ = original.__doc__
    H11Protocol._send_h11_event = _send_h11_event  # type: ignore[method-assign]
    return True


class _IdleWatch:
    """One connection's keep-alive timer: a single task whose deadline is moved.

    Args:
        server: hypercorn's ``TCPServer`` of the connection.
    """

    def __init__(self, server: Any) -> None:
        self._server = server
        self._timeout = float(server.config.keep_alive_timeout)
        self._scope = trio.CancelScope()
        self._armed = False
        self._ended = False
        self._idle_again = trio.Event()

    def arm(self) -> None:
        """The connection is idle: close it after the keep-alive timeout."""
        self._armed = True
        self._scope.deadline = trio.current_time() + self._timeout
        self._idle_again.set()

    def disarm(self) -> None:
        """A request is in flight: no timeout until ``arm``."""
        self._armed = False
        self._scope.deadline = math.inf

    def connection_ended(self) -> None:
        """The connection's read loop ended: stop at once unless the timer is running."""
        self._ended = True
        if not self._armed:
            self._scope.cancel()

    async def run(self) -> None:
        """Close the connection once idle too long, or idle while the server shuts down."""
        terminated = self._server.context.terminated
        with self._scope:
            while True:
                await terminated.wait()
                if self._armed:
                    break  # shutting down and idle: close now
                self._idle_again = trio.Event()
                await self._idle_again.wait()
        if self._ended and not self._armed:
            return  # ended during a request: hypercorn has no timer running then either
        with trio.CancelScope(shield=True):
            await self._server._initiate_server_close()


def install_idle_watch() -> bool:
    """Install the cheap keep-alive timer on hypercorn's Trio worker (idempotent).

    Returns:
        ``True`` when the hook is installed (now or before), ``False`` when this
        hypercorn version does not have what it wraps.
    """
    try:
        from hypercorn.trio.tcp_server import TCPServer
        from hypercorn.trio.worker_context import TrioSingleTask
    except ImportError:  # pragma: no cover - another hypercorn layout
        return False
    restart = getattr(TrioSingleTask, "restart", None)
    stop = getattr(TrioSingleTask, "stop", None)
    needed = ("_initiate_server_close", "_read_data")
    if restart is None or stop is None or not all(hasattr(TCPServer, n) for n in needed):
        return False  # pragma: no cover - another hypercorn version
    if getattr(restart, _INSTALLED_MARK, False):
        return True

    async def _restart(self: Any, task_group: Any, action: Any) -> None:
        watch: _IdleWatch | None = self.__dict__.get("hbtrio_watch")
        if watch is None:
            server = getattr(action, "__self__", None)
            config = getattr(server, "config", None)
            if not getattr(config, "hbtrio_lean_http1", False) or not isinstance(server, TCPServer):
                await restart(self, task_group, action)
                return
            watch = self.hbtrio_watch = _IdleWatch(server)
            # the first restart comes before the read loop: learn when that loop ends
            read_data = server._read_data

            async def _read_data() -> None:
                try:
                    await read_data()
                finally:
                    watch.connection_ended()

            server._read_data = _read_data  # type: ignore[method-assign]
            task_group._nursery.start_soon(watch.run)
        watch.arm()
        await trio.lowlevel.checkpoint()

    async def _stop(self: Any) -> None:
        watch: _IdleWatch | None = self.__dict__.get("hbtrio_watch")
        if watch is None:
            await stop(self)
            return
        watch.disarm()
        await trio.lowlevel.checkpoint()

    setattr(_restart, _INSTALLED_MARK, True)
    TrioSingleTask.restart = _restart  # type: ignore[method-assign]
    TrioSingleTask.stop = _stop  # type: ignore[method-assign]
    return True
