"""Tests of the fault-injecting proxy (tests/faultproxy.py) against trivial servers."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial

import h11
import pytest
import trio
import trustme
from trio_websocket import (
    ConnectionClosed,
    WebSocketRequest,
    open_websocket_url,
    serve_websocket,
    wrap_client_stream,
)

from tests.faultproxy import (
    CorruptMode,
    Fault,
    FaultKind,
    FaultPlan,
    FaultProxy,
    Trigger,
    open_fault_proxy,
)

Handler = Callable[[trio.SocketStream], Awaitable[None]]


@asynccontextmanager
async def tcp_server(handler: Handler) -> AsyncIterator[int]:
    """Serve ``handler`` on 127.0.0.1; yield the port."""
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
        yield listeners[0].socket.getsockname()[1]
        nursery.cancel_scope.cancel()


async def eventually(predicate: Callable[[], bool]) -> None:
    """Wait (polling) until ``predicate()`` holds; fail after 5 seconds."""
    with trio.fail_after(5):
        while not predicate():  # noqa: ASYNC110
            await trio.sleep(0.01)


_OPEN: list[trio.SocketStream] = []


async def connect(port: int) -> trio.SocketStream:
    """Open a client connection that is closed at the end of the test."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    _OPEN.append(stream)
    return stream


@pytest.fixture(autouse=True)
async def _close_client_streams() -> AsyncIterator[None]:
    yield
    while _OPEN:
        await _OPEN.pop().aclose()


async def echo(stream: trio.SocketStream) -> None:
    try:
        async for data in stream:
            await stream.send_all(data)
    except trio.BrokenResourceError:
        pass


PAYLOAD = bytes(range(256)) * 40  # 10240 bytes


async def push(stream: trio.SocketStream) -> None:
    try:
        await stream.send_all(PAYLOAD)
        await stream.aclose()
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass


async def read_all(stream: trio.abc.ReceiveStream) -> bytes:
    out = bytearray()
    async for data in stream:
        out += data
    return bytes(out)


async def test_passthrough_echo_counts_nothing() -> None:
    async with tcp_server(echo) as port, open_fault_proxy("127.0.0.1", port) as proxy:
        stream = await connect(proxy.port)
        await stream.send_all(b"hello")
        assert await stream.receive_some(100) == b"hello"
        await stream.aclose()
        assert proxy.total == 0
        assert proxy.connections == 1
        assert proxy.ca_path is None


async def test_reset_after_bytes_down_sends_rst() -> None:
    plan = FaultPlan(Fault(FaultKind.RESET, Trigger.BYTES_DOWN, nbytes=1000))
    async with tcp_server(push) as port, open_fault_proxy("127.0.0.1", port, plan=plan) as proxy:
        stream = await connect(proxy.port)
        got = bytearray()
        with pytest.raises(trio.BrokenResourceError) as info:
            while True:
                data = await stream.receive_some(65536)
                assert data, "expected a reset, not a clean EOF"
                got += data
        assert isinstance(info.value.__cause__, ConnectionResetError)
        assert bytes(got) == PAYLOAD[:1000]
        assert proxy.counts["reset"] == 1
        assert proxy.total == 1


async def test_reset_after_bytes_up() -> None:
    received = bytearray()

    async def sink(stream: trio.SocketStream) -> None:
        try:
            async for data in stream:
                received.extend(data)
        except trio.BrokenResourceError:
            pass

    plan = FaultPlan(Fault(FaultKind.RESET, Trigger.BYTES_UP, nbytes=5, name="up5"))
    async with tcp_server(sink) as port, open_fault_proxy("127.0.0.1", port, plan=plan) as proxy:
        stream = await connect(proxy.port)
        await stream.send_all(b"0123456789")
        with pytest.raises(trio.BrokenResourceError):
            await stream.receive_some(10)
        await eventually(lambda: proxy.live_connections == 0)
        assert bytes(received) == b"01234"
        assert proxy.counts["up5"] == 1


async def test_drop_on_connect_never_reaches_upstream() -> None:
    accepted = 0

    async def count(stream: trio.SocketStream) -> None:
        nonlocal accepted
        accepted += 1
        await push(stream)

    plan = FaultPlan(Fault(FaultKind.DROP, Trigger.CONNECT, limit=1))
    async with tcp_server(count) as port, open_fault_proxy("127.0.0.1", port, plan=plan) as proxy:
        first = await connect(proxy.port)
        assert await first.receive_some(10) == b""  # clean EOF
        second = await connect(proxy.port)
        assert await read_all(second) == PAYLOAD  # limit=1: the second passes
        assert proxy.counts["drop"] == 1
        assert accepted == 1


async def test_stall_for_duration_delays_data() -> None:
    plan = FaultPlan(Fault(FaultKind.STALL, Trigger.BYTES_DOWN, nbytes=100, duration=0.3))
    async with tcp_server(push) as port, open_fault_proxy("127.0.0.1", port, plan=plan) as proxy:
        stream = await connect(proxy.port)
        start = trio.current_time()
        first = await stream.receive_some(65536)
        assert first == PAYLOAD[: len(first)]
        assert trio.current_time() - start < 0.25
        rest = await read_all(stream)
        assert first + rest == PAYLOAD
        assert trio.current_time() - start >= 0.3
        assert proxy.counts["stall"] == 1


async def test_stop_faults_releases_an_endless_stall() -> None:
    plan = FaultPlan(Fault(FaultKind.STALL, Trigger.CONNECT))
    async with tcp_server(push) as port, open_fault_proxy("127.0.0.1", port, plan=plan) as proxy:
        stream = await connect(proxy.port)
        with trio.move_on_after(0.2) as scope:
            await stream.receive_some(10)
        assert scope.cancelled_caught, "stalled connection delivered data"
        proxy.stop_faults()
        assert not proxy.faults_enabled
        with trio.fail_after(5):
            assert await read_all(stream) == PAYLOAD
        assert proxy.counts["stall"] == 1


async def test_slow_read_takes_chunk_steps() -> None:
    plan = FaultPlan(Fault(FaultKind.SLOW, Trigger.CONNECT, chunk=1024, delay=0.02))
    async with tcp_server(push) as port, open_fault_proxy("127.0.0.1", port, plan=plan) as proxy:
        stream = await connect(proxy.port)
        start = trio.current_time()
        assert await read_all(stream) == PAYLOAD
        # 10 chunks of 1024 bytes with 20 ms between them.
        assert trio.current_time() - start >= 0.18
        assert proxy.counts["slow"] == 1


async def test_corrupt_at_byte_offset_flips_a_byte() -> None:
    plan = FaultPlan(Fault(FaultKind.CORRUPT, Trigger.BYTES_DOWN, nbytes=10))
    async with tcp_server(push) as port, open_fault_proxy("127.0.0.1", port, plan=plan) as proxy:
        stream = await connect(proxy.port)
        got = await read_all(stream)
        assert len(got) == len(PAYLOAD)
        assert got[:10] == PAYLOAD[:10] and got[11:] == PAYLOAD[11:]
        assert got[10] == PAYLOAD[10] ^ 0xFF
        assert proxy.counts["corrupt"] == 1


async def test_timer_resets_a_live_connection() -> None:
    plan = FaultPlan(Fault(FaultKind.RESET, Trigger.TIMER, interval=0.05, limit=1))
    async with tcp_server(echo) as port, open_fault_proxy("127.0.0.1", port, plan=plan) as proxy:
        stream = await connect(proxy.port)
        with trio.fail_after(5), pytest.raises(trio.BrokenResourceError):
            while True:
                await stream.send_all(b"x")
                assert await stream.receive_some(10) == b"x"
                await trio.sleep(0.01)
        assert proxy.counts["reset"] == 1


async def test_reset_all_counts_each_connection() -> None:
    async with tcp_server(echo) as port, open_fault_proxy("127.0.0.1", port) as proxy:
        streams = [await connect(proxy.port) for _ in range(3)]
        for s in streams:
            await s.send_all(b"a")
            assert await s.receive_some(1) == b"a"
        assert proxy.reset_all() == 3
        for s in streams:
            with pytest.raises(trio.BrokenResourceError):
                await s.receive_some(1)
        assert proxy.counts["reset"] == 3


# -- HTTP ------------------------------------------------------------------------------


class HttpServer:
    """An h11 server recording every complete request it got."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, bytes]] = []

    async def handle(self, stream: trio.abc.Stream) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = await stream.receive_some(65536)
                    conn.receive_data(data)
                    if not data and conn.their_state is not h11.DONE:
                        return
                    continue
                if isinstance(event, h11.Request):
                    method, target = event.method.decode(), event.target.decode()
                    body = bytearray()
                    while True:
                        ev = conn.next_event()
                        if ev is h11.NEED_DATA:
                            conn.receive_data(await stream.receive_some(65536))
                            continue
                        if isinstance(ev, h11.Data):
                            body += ev.data
                        elif isinstance(ev, h11.EndOfMessage):
                            break
                        else:
                            return
                    self.seen.append((method, target, bytes(body)))
                    payload = b'{"ok":true,"pad":"' + b"x" * 2000 + b'"}'
                    status = 201 if method == "POST" and target == "/trading/orders" else 200
                    headers = [
                        ("content-type", "application/json"),
                        ("content-length", str(len(payload))),
                    ]
                    await stream.send_all(
                        conn.send(h11.Response(status_code=status, headers=headers))
                    )
                    await stream.send_all(conn.send(h11.Data(data=payload)))
                    await stream.send_all(conn.send(h11.EndOfMessage()))
                    conn.start_next_cycle()
                else:
                    return
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.RemoteProtocolError):
            return


async def http_call(
    stream: trio.abc.Stream, method: str, path: str, body: bytes = b""
) -> tuple[int, bytes]:
    conn = h11.Connection(h11.CLIENT)
    headers = [("host", "test"), ("content-length", str(len(body)))]
    await stream.send_all(conn.send(h11.Request(method=method, target=path, headers=headers)))
    await stream.send_all(conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage()))
    status = 0
    out = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await stream.receive_some(65536)
            if not data:
                raise trio.BrokenResourceError("EOF")
            conn.receive_data(data)
        elif isinstance(event, h11.Response):
            status = event.status_code
        elif isinstance(event, h11.Data):
            out += event.data
        elif isinstance(event, h11.EndOfMessage):
            return status, bytes(out)


@asynccontextmanager
async def http_proxy(plan: FaultPlan, server: HttpServer) -> AsyncIterator[FaultProxy]:
    async with (
        tcp_server(server.handle) as port,
        open_fault_proxy("127.0.0.1", port, inspect_http=True, plan=plan) as proxy,
    ):
        yield proxy


ORDER = b'{"account_name":"master_account","amount":"1"}'


async def test_reset_after_order_forwarded_holds_the_response() -> None:
    server = HttpServer()
    plan = FaultPlan(
        Fault(
            FaultKind.RESET,
            Trigger.REQUEST_SENT,
            method="POST",
            path="/trading/orders",
            wait_response=True,
            name="reset_mid_order",
        )
    )
    async with http_proxy(plan, server) as proxy:
        stream = await connect(proxy.port)
        assert (await http_call(stream, "GET", "/"))[0] == 200
        assert (await http_call(stream, "POST", "/trading/orders/active", b"{}"))[0] == 200
        with pytest.raises(trio.BrokenResourceError):
            await http_call(stream, "POST", "/trading/orders", ORDER)
        # The server did get (and answer) the order: its outcome is lost to the client.
        assert ("POST", "/trading/orders", ORDER) in server.seen
        assert proxy.counts["reset_mid_order"] == 1
        assert proxy.counts["reset"] == 1
        assert proxy.requests[("POST", "/trading/orders")] == 1
        assert proxy.requests[("GET", "/")] == 1


async def test_reset_right_after_request_forwarded() -> None:
    server = HttpServer()
    plan = FaultPlan(Fault(FaultKind.RESET, Trigger.REQUEST_SENT, path="/trading/orders"))
    async with http_proxy(plan, server) as proxy:
        stream = await connect(proxy.port)
        with pytest.raises(trio.BrokenResourceError):
            await http_call(stream, "POST", "/trading/orders", ORDER)
        assert proxy.counts["reset"] == 1
        assert proxy.records[0].detail == "POST /trading/orders forwarded"


async def test_reset_mid_request_server_never_sees_it_complete() -> None:
    server = HttpServer()
    plan = FaultPlan(Fault(FaultKind.RESET, Trigger.REQUEST_PARTIAL, method="POST"))
    async with http_proxy(plan, server) as proxy:
        stream = await connect(proxy.port)
        with pytest.raises(trio.BrokenResourceError):
            await http_call(stream, "POST", "/trading/orders", ORDER)
        await trio.sleep(0.05)
        assert server.seen == []
        assert proxy.counts["reset"] == 1
        assert proxy.records[0].at is Trigger.REQUEST_PARTIAL


async def test_reset_mid_response_delivers_part() -> None:
    server = HttpServer()
    plan = FaultPlan(Fault(FaultKind.RESET, Trigger.RESPONSE_PARTIAL, path="/big"))
    async with http_proxy(plan, server) as proxy:
        stream = await connect(proxy.port)
        conn = h11.Connection(h11.CLIENT)
        await stream.send_all(
            conn.send(h11.Request(method="GET", target="/big", headers=[("host", "t")]))
            + conn.send(h11.EndOfMessage())
        )
        got = bytearray()
        with pytest.raises(trio.BrokenResourceError):
            while True:
                data = await stream.receive_some(65536)
                assert data
                got += data
        assert got.startswith(b"HTTP/1.1 200")
        assert 0 < len(got) < 2000
        assert server.seen[0][1] == "/big"
        assert proxy.counts["reset"] == 1


async def test_schedule_skip_every_limit_on_requests() -> None:
    server = HttpServer()
    plan = FaultPlan(
        Fault(FaultKind.DROP, Trigger.REQUEST_SENT, path="/x", skip=1, every=2, limit=2)
    )
    outcomes: list[bool] = []
    async with http_proxy(plan, server) as proxy:
        for _ in range(7):
            stream = await connect(proxy.port)
            try:
                await http_call(stream, "GET", "/x")
                outcomes.append(True)
            except trio.BrokenResourceError:
                outcomes.append(False)
            await stream.aclose()
        assert outcomes == [True, False, True, False, True, True, True]
        assert proxy.counts["drop"] == 2


async def test_tls_terminating_with_tls_upstream() -> None:
    server = HttpServer()
    server_ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    upstream_ctx = ssl.create_default_context()
    server_ca.configure_trust(upstream_ctx)

    async def tls_handler(raw: trio.SocketStream) -> None:
        stream = trio.SSLStream(raw, server_ctx, server_side=True, https_compatible=True)
        try:
            await stream.do_handshake()
        except trio.BrokenResourceError:
            return
        await server.handle(stream)

    plan = FaultPlan(
        Fault(FaultKind.RESET, Trigger.REQUEST_SENT, path="/trading/orders", wait_response=True)
    )
    async with (
        tcp_server(tls_handler) as port,
        open_fault_proxy(
            "127.0.0.1", port, tls_terminate=True, upstream_ssl=upstream_ctx, plan=plan
        ) as proxy,
    ):
        assert proxy.ca_path is not None
        client_ctx = ssl.create_default_context(cafile=proxy.ca_path)
        raw = await connect(proxy.port)
        stream = trio.SSLStream(raw, client_ctx, server_hostname="127.0.0.1")
        assert (await http_call(stream, "GET", "/"))[0] == 200
        with pytest.raises(trio.BrokenResourceError):
            await http_call(stream, "POST", "/trading/orders", ORDER)
        assert server.seen[-1][:2] == ("POST", "/trading/orders")
        assert proxy.counts["reset"] == 1

        # A client that does not trust the proxy's CA is refused.
        untrusting = trio.SSLStream(
            await connect(proxy.port),
            ssl.create_default_context(cafile=None),
            server_hostname="127.0.0.1",
        )
        with pytest.raises(trio.BrokenResourceError):
            await untrusting.do_handshake()
        await untrusting.transport_stream.aclose()
        await eventually(lambda: proxy.tls_failures == 1)


# -- WebSocket -------------------------------------------------------------------------

MESSAGES = [f'{{"type":"heartbeat","n":{i}}}' for i in range(5)]


async def ws_server_handler(request: WebSocketRequest) -> None:
    ws = await request.accept()
    try:
        for text in MESSAGES:
            await ws.send_message(text)
        await ws.get_message()  # wait for the client to go
    except ConnectionClosed:
        pass


@asynccontextmanager
async def ws_setup(plan: FaultPlan) -> AsyncIterator[FaultProxy]:
    async with trio.open_nursery() as nursery:
        server = await nursery.start(serve_websocket, ws_server_handler, "127.0.0.1", 0, None)
        async with open_fault_proxy(
            "127.0.0.1", server.port, inspect_http=True, plan=plan
        ) as proxy:
            yield proxy
        nursery.cancel_scope.cancel()


async def test_ws_frame_garbled_once() -> None:
    plan = FaultPlan(Fault(FaultKind.CORRUPT, Trigger.WS_FRAME_DOWN, skip=1, limit=1))
    async with ws_setup(plan) as proxy:
        async with open_websocket_url(f"ws://127.0.0.1:{proxy.port}/ws") as ws:
            got = [await ws.get_message() for _ in MESSAGES]
        assert got[0] == MESSAGES[0]
        assert got[1] == "####" + MESSAGES[1][4:]
        assert got[2:] == MESSAGES[2:]
        assert proxy.counts["corrupt"] == 1


async def test_ws_bad_utf8_closes_with_1007() -> None:
    plan = FaultPlan(
        Fault(FaultKind.CORRUPT, Trigger.WS_FRAME_DOWN, corrupt=CorruptMode.BAD_UTF8, limit=1)
    )
    async with ws_setup(plan) as proxy, trio.open_nursery() as nursery:
        stream = await connect(proxy.port)  # closed by the fixture (trio-websocket leaks it)
        ws = await wrap_client_stream(nursery, stream, "127.0.0.1", "/ws")
        with pytest.raises(ConnectionClosed) as info:
            for _ in MESSAGES:
                await ws.get_message()
        assert info.value.reason.code == 1007
        assert proxy.counts["corrupt"] == 1
        nursery.cancel_scope.cancel()


async def test_ws_client_frames_corrupted_upstream() -> None:
    received: list[str] = []

    async def collect(request: WebSocketRequest) -> None:
        ws = await request.accept()
        try:
            while True:
                received.append(str(await ws.get_message()))
        except ConnectionClosed:
            pass

    plan = FaultPlan(Fault(FaultKind.CORRUPT, Trigger.WS_FRAME_UP, skip=1, every=2))
    async with trio.open_nursery() as nursery:
        server = await nursery.start(serve_websocket, collect, "127.0.0.1", 0, None)
        async with open_fault_proxy("127.0.0.1", server.port, inspect_http=True, plan=plan) as p:
            async with open_websocket_url(f"ws://127.0.0.1:{p.port}/ws") as ws:
                for text in ["abcdef", "ghijkl", "mnopqr"]:
                    await ws.send_message(text)
                await trio.sleep(0.05)
            assert p.counts["corrupt"] == 1
        nursery.cancel_scope.cancel()
    assert received[:3] == ["abcdef", "####kl", "mnopqr"]


# -- manual faults on every live connection ---------------------------------------------


async def test_connection_bytes_counts_each_direction() -> None:
    async with tcp_server(echo) as port, open_fault_proxy("127.0.0.1", port) as proxy:
        first = await connect(proxy.port)
        await first.send_all(b"hello")
        assert await first.receive_some(100) == b"hello"
        second = await connect(proxy.port)
        await second.send_all(b"abc")
        assert await second.receive_some(100) == b"abc"
        # Counted when handed over, so exact as soon as the echo arrived.
        assert proxy.connection_bytes() == {1: (5, 5), 2: (3, 3)}
        await first.aclose()
        await eventually(lambda: list(proxy.connection_bytes()) == [2])


async def test_fault_all_stalls_every_connection_until_faults_stop() -> None:
    async with tcp_server(echo) as port, open_fault_proxy("127.0.0.1", port) as proxy:
        streams = [await connect(proxy.port) for _ in range(2)]
        for s in streams:
            await s.send_all(b"a")
            assert await s.receive_some(1) == b"a"
        assert proxy.fault_all(FaultKind.STALL, name="stall_all") == 2
        for s in streams:
            await s.send_all(b"b")
            with trio.move_on_after(0.2) as scope:
                await s.receive_some(1)
            assert scope.cancelled_caught, "a stalled connection forwarded data"
        assert (proxy.counts["stall"], proxy.counts["stall_all"], proxy.total) == (2, 2, 2)
        proxy.stop_faults()
        with trio.fail_after(5):
            for s in streams:
                assert await s.receive_some(1) == b"b"


async def test_fault_all_picks_http_or_websocket_connections() -> None:
    async with ws_setup(FaultPlan()) as proxy, trio.open_nursery() as nursery:
        stream = await connect(proxy.port)  # closed by the fixture (trio-websocket leaks it)
        ws = await wrap_client_stream(nursery, stream, "127.0.0.1", "/ws")
        assert await ws.get_message() == MESSAGES[0]
        idle = await connect(proxy.port)  # an HTTP connection that sent nothing yet
        await eventually(lambda: proxy.live_connections == 2)
        assert proxy.fault_all(FaultKind.RESET, target="http") == 1
        with pytest.raises(trio.BrokenResourceError):
            await idle.receive_some(1)
        # The WebSocket was not touched.
        assert [await ws.get_message() for _ in MESSAGES[1:]] == MESSAGES[1:]
        assert proxy.fault_all(FaultKind.DROP, target="ws") == 1
        with pytest.raises(ConnectionClosed):
            await ws.get_message()
        assert (proxy.counts["reset"], proxy.counts["drop"], proxy.counts["manual"]) == (1, 1, 2)
        nursery.cancel_scope.cancel()


async def test_fault_all_refuses_other_kinds() -> None:
    proxy = FaultProxy(
        "127.0.0.1",
        1,
        tls_terminate=False,
        upstream_ssl=None,
        upstream_server_hostname=None,
        inspect_http=False,
        seed=0,
        plan=FaultPlan(),
    )
    for kind in (FaultKind.SLOW, FaultKind.CORRUPT):
        with pytest.raises(ValueError, match="RESET, DROP or STALL"):
            proxy.fault_all(kind)
