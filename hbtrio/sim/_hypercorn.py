"""Hypercorn tuning for the simulator: one socket send per HTTP/1.1 response.

Hypercorn's HTTP/1.1 protocol hands the response head and the body to the
transport as two separate writes: over TLS that is two records, two ``send``
system calls and, on the client, often two wake-ups per answer. This module
makes the simulator's hypercorn connections hold a final response's head back
until the next write of the same response (its body, or the empty end of
message that always follows it) and send both at once; the empty write that
ends a body framed by ``content-length`` is skipped.

The hook is installed once on hypercorn's ``H11Protocol`` and is active only for
connections served with a :class:`SimConfig` (any other hypercorn server in the
process behaves as before). It relies on hypercorn's internal
``H11Protocol._send_h11_event``; when a hypercorn version lacks it, nothing is
installed and the simulator still works, with two writes per answer.
"""

from __future__ import annotations

from typing import Any

import h11
from hypercorn.config import Config

__all__ = ["SimConfig", "install_response_coalescing"]

_INSTALLED_MARK = "_hbtrio_coalescing"


class SimConfig(Config):
    """A hypercorn :class:`~hypercorn.config.Config` whose HTTP/1.1 answers go out in one write."""

    hbtrio_coalesce_responses = True


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
        if not getattr(self.config, "hbtrio_coalesce_responses", False):
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
