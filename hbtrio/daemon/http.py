"""A tiny HTTP/1.1 server (trio + h11) for ``/healthz`` and ``/metrics``.

``GET /healthz`` answers 200 with a JSON ``HealthReport``
while healthy, else 503 with the same body. ``GET /metrics`` answers the
Prometheus text format. Anything else is 404 (405 for other methods).
"""

from __future__ import annotations

from typing import Any

import h11
import msgspec
import trio

from .metrics import DaemonMetrics

__all__ = ["serve_health"]

_READ_SIZE = 16384
_IDLE_TIMEOUT = 10.0
_MAX_REQUESTS = 100
_PROMETHEUS_TYPE = b"text/plain; version=0.0.4; charset=utf-8"


def _route(metrics: DaemonMetrics, method: bytes, target: bytes) -> tuple[int, bytes, bytes]:
    path = target.partition(b"?")[0]
    if path not in (b"/healthz", b"/metrics"):
        return 404, b"text/plain; charset=utf-8", b"not found\n"
    if method not in (b"GET", b"HEAD"):
        return 405, b"text/plain; charset=utf-8", b"method not allowed\n"
    if path == b"/metrics":
        return 200, _PROMETHEUS_TYPE, metrics.render()
    report = metrics.health()
    body = msgspec.json.encode(report) + b"\n"
    return (200 if report.healthy else 503), b"application/json", body


async def _handle(stream: trio.SocketStream, metrics: DaemonMetrics) -> None:
    conn = h11.Connection(h11.SERVER)
    try:
        for _ in range(_MAX_REQUESTS):
            event: Any = None
            with trio.move_on_after(_IDLE_TIMEOUT):
                while True:
                    event = conn.next_event()
                    if event is h11.NEED_DATA:
                        conn.receive_data(await stream.receive_some(_READ_SIZE))
                        continue
                    break
            if not isinstance(event, h11.Request):
                return
            while True:  # skip a request body, if any (only GET and HEAD are served)
                rest = conn.next_event()
                if rest is h11.NEED_DATA or isinstance(
                    rest, h11.EndOfMessage | h11.ConnectionClosed
                ):
                    break
            status, content_type, body = _route(metrics, event.method, event.target)
            headers = [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
            ]
            await stream.send_all(conn.send(h11.Response(status_code=status, headers=headers)))
            if event.method != b"HEAD":
                await stream.send_all(conn.send(h11.Data(data=body)))
            await stream.send_all(conn.send(h11.EndOfMessage()))
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return
            conn.start_next_cycle()
    except (h11.RemoteProtocolError, trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        await trio.aclose_forcefully(stream)


async def serve_health(
    metrics: DaemonMetrics,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``/healthz`` and ``/metrics`` until cancelled.

    Args:
        metrics: Where the answers come from.
        host: Address to bind.
        port: Port to bind (``0`` for any free port).
        task_status: Receives the bound port once listening.

    Raises:
        OSError: The address cannot be bound.
    """
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound = listeners[0].socket.getsockname()[1]

    async def handler(stream: trio.SocketStream) -> None:
        await _handle(stream, metrics)

    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, handler, listeners)
        task_status.started(bound)
