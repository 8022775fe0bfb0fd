"""A tiny scriptable HTTP/1.1 test server (trio + h11, optional TLS via trustme).

Each connection reads requests with h11 and answers according to ``behaviour``:

* ``"ok"``: 200 JSON with ``Content-Length``, kept alive;
* ``"chunked"``: 200 JSON with chunked transfer encoding;
* ``"close"``: 200 JSON with ``Connection: close``, then closes;
* ``"stall"``: read the request, never answer;
* ``"drop_mid"``: send the head and half the body, then close;
* ``"drop_before"``: read the request, close without answering;
* ``"status:<n>"``: answer with status ``n`` and a text/plain body.

``idle_close`` closes a kept-alive connection after that many idle seconds, as
uvicorn and hypercorn do.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field

import h11
import trio

BODY = b'{"name":"Hummingbot API","version":"1.0.1","status":"running"}'


@dataclass
class Seen:
    """One request as the server saw it."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes


@dataclass
class HttpTestServer:
    """The server's settings and what it saw."""

    behaviour: str = "ok"
    idle_close: float | None = None
    ssl_context: ssl.SSLContext | None = None
    port: int = 0
    connections: int = 0
    requests: list[Seen] = field(default_factory=list)

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen on 127.0.0.1 (a free port) until cancelled."""
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            task_status.started(self.port)
            await trio.serve_listeners(self._handle, listeners, handler_nursery=nursery)

    async def _handle(self, tcp: trio.SocketStream) -> None:
        self.connections += 1
        stream: trio.abc.Stream = tcp
        try:
            if self.ssl_context is not None:
                tls = trio.SSLStream(tcp, self.ssl_context, server_side=True)
                await tls.do_handshake()
                stream = tls
            await self._serve_connection(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
            pass
        finally:
            await trio.aclose_forcefully(stream)

    async def _serve_connection(self, stream: trio.abc.Stream) -> None:
        conn = h11.Connection(h11.SERVER)
        while True:
            method = target = ""
            headers: dict[str, str] = {}
            body = b""
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    first = conn.their_state is h11.IDLE and not conn.trailing_data[0]
                    if first and self.idle_close is not None:
                        with trio.move_on_after(self.idle_close) as scope:
                            data = await stream.receive_some(65536)
                        if scope.cancelled_caught:
                            return
                    else:
                        data = await stream.receive_some(65536)
                    if not data:
                        return
                    conn.receive_data(data)
                    continue
                if isinstance(event, h11.Request):
                    method = event.method.decode()
                    target = event.target.decode()
                    headers = {k.decode(): v.decode() for k, v in event.headers}
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    break
                else:
                    return
            self.requests.append(Seen(method, target, headers, body))
            if not await self._answer(conn, stream):
                return
            conn.start_next_cycle()

    async def _answer(self, conn: h11.Connection, stream: trio.abc.Stream) -> bool:
        behaviour = self.behaviour
        json = [(b"content-type", b"application/json")]
        if behaviour == "stall":
            await trio.sleep_forever()
        if behaviour == "drop_before":
            return False
        if behaviour == "drop_mid":
            head = conn.send(
                h11.Response(
                    status_code=200,
                    headers=[*json, (b"content-length", b"%d" % len(BODY))],
                )
            )
            await stream.send_all((head or b"") + BODY[: len(BODY) // 2])
            return False
        if behaviour.startswith("status:"):
            status = int(behaviour.partition(":")[2])
            text = b"Internal Server Error"
            head = conn.send(
                h11.Response(
                    status_code=status,
                    headers=[
                        (b"content-type", b"text/plain; charset=utf-8"),
                        (b"content-length", b"%d" % len(text)),
                    ],
                )
            )
            await stream.send_all(
                (head or b"")
                + (conn.send(h11.Data(data=text)) or b"")
                + (conn.send(h11.EndOfMessage()) or b"")
            )
            return True
        if behaviour == "chunked":
            headers = [*json, (b"transfer-encoding", b"chunked")]
        elif behaviour == "close":
            headers = [*json, (b"content-length", b"%d" % len(BODY)), (b"connection", b"close")]
        else:
            headers = [*json, (b"content-length", b"%d" % len(BODY))]
        out = conn.send(h11.Response(status_code=200, headers=headers)) or b""
        if behaviour == "chunked":
            out += conn.send(h11.Data(data=BODY[:10])) or b""
            await stream.send_all(out)
            out = b""
            await trio.sleep(0.01)
            out += conn.send(h11.Data(data=BODY[10:])) or b""
        else:
            out += conn.send(h11.Data(data=BODY)) or b""
        out += conn.send(h11.EndOfMessage()) or b""
        await stream.send_all(out)
        return conn.our_state is h11.DONE and behaviour != "close"
