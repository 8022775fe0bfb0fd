"""HTTP pool over real sockets: keep-alive, idle close, TLS, errors, timeouts."""

from __future__ import annotations

import base64
import socket
import ssl
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import trio
import trustme

from hbtrio import ClientConfig, ConfigError, ConnectionFailed, RequestTimeout
from hbtrio._actors.http import HttpPool, HttpResponse
from hbtrio._actors.tls import make_ssl_context
from tests.actors.test_http_server import BODY, HttpTestServer

KEY = "trader:s3cr3t-pass"
B64 = base64.b64encode(KEY.encode()).decode()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def server_context(ca: trustme.CA, *names: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*(names or ("127.0.0.1", "localhost"))).configure_cert(context)
    return context


Start = Callable[..., "trio.Nursery"]


@pytest.fixture
async def nursery() -> AsyncIterator[trio.Nursery]:
    async with trio.open_nursery() as n:
        yield n
        n.cancel_scope.cancel()


async def start(nursery: trio.Nursery, server: HttpTestServer) -> int:
    port: int = await nursery.start(server.serve)
    return port


def config(port: int, **kw: object) -> ClientConfig:
    values: dict[str, object] = {"host": "127.0.0.1", "port": port, "api_key": KEY}
    values.update(kw)
    return ClientConfig(**values)  # type: ignore[arg-type]


def no_secret(exc: BaseException) -> None:
    for text in (str(exc), repr(exc)):
        assert KEY not in text
        assert B64 not in text
        assert "s3cr3t" not in text


async def tls_setup(
    nursery: trio.Nursery, ca: trustme.CA, ca_file: str, **server_kw: object
) -> tuple[HttpTestServer, ClientConfig]:
    server = HttpTestServer(ssl_context=server_context(ca), **server_kw)  # type: ignore[arg-type]
    port = await start(nursery, server)
    return server, config(port, ca_file=ca_file)


async def test_keep_alive_reuse_and_fixed_headers(
    nursery: trio.Nursery, ca: trustme.CA, ca_file: str
) -> None:
    server, cfg = await tls_setup(nursery, ca, ca_file)
    pool = HttpPool(cfg)
    first = await pool.request("GET", "/", None, timeout=5)
    assert first == HttpResponse(200, "application/json", BODY)
    for _ in range(4):
        response = await pool.request("POST", "/trading/orders", b'{"a":1}', timeout=5)
        assert response.status == 200
    await pool.request("POST", "/trading/x/y/orders/z/cancel", None, timeout=5)
    assert server.connections == 1
    assert pool.stats.connections_opened == 1
    assert pool.stats.reused == 5
    get, post, bare = server.requests[0], server.requests[1], server.requests[-1]
    assert get.method == "GET" and get.target == "/"
    assert get.headers["authorization"] == f"Basic {B64}"
    assert get.headers["host"] == f"127.0.0.1:{cfg.port}"
    assert get.headers["user-agent"].startswith("hbtrio/")
    assert get.headers["accept"] == "application/json"
    assert "content-type" not in get.headers
    assert post.headers["content-type"] == "application/json"
    assert post.headers["content-length"] == "7"
    assert post.body == b'{"a":1}'
    assert bare.headers["content-length"] == "0"
    await pool.aclose()


async def test_server_idle_close_is_transparent(
    nursery: trio.Nursery, ca: trustme.CA, ca_file: str
) -> None:
    server, cfg = await tls_setup(nursery, ca, ca_file, idle_close=0.1)
    pool = HttpPool(cfg)
    assert (await pool.request("GET", "/", None, timeout=5)).status == 200
    await trio.sleep(0.3)  # the server has closed the idle connection by now
    assert (await pool.request("GET", "/", None, timeout=5)).status == 200
    assert pool.stats.discarded_stale == 1
    assert server.connections == 2
    await pool.aclose()


async def test_idle_connections_older_than_max_idle_are_not_reused(
    nursery: trio.Nursery, ca: trustme.CA, ca_file: str
) -> None:
    server, cfg = await tls_setup(nursery, ca, ca_file)
    pool = HttpPool(cfg, max_idle=0.05)
    await pool.request("GET", "/", None, timeout=5)
    await trio.sleep(0.1)
    await pool.request("GET", "/", None, timeout=5)
    assert pool.stats.discarded_idle == 1
    assert server.connections == 2
    await pool.aclose()


async def test_concurrent_requests_bounded_by_pool_size(
    nursery: trio.Nursery, ca: trustme.CA, ca_file: str
) -> None:
    server, cfg = await tls_setup(nursery, ca, ca_file)
    pool = HttpPool(cfg.replace(pool_size=2))
    results: list[int] = []

    async def one() -> None:
        results.append((await pool.request("GET", "/", None, timeout=5)).status)

    async with trio.open_nursery() as n:
        for _ in range(8):
            n.start_soon(one)
    assert results == [200] * 8
    assert server.connections <= 2
    assert pool.idle_connections == server.connections
    await pool.aclose()


async def test_chunked_and_connection_close_go_through_h11(
    nursery: trio.Nursery, ca: trustme.CA, ca_file: str
) -> None:
    server, cfg = await tls_setup(nursery, ca, ca_file, behaviour="chunked")
    pool = HttpPool(cfg)
    response = await pool.request("POST", "/x", b"{}", timeout=5)
    assert response == HttpResponse(200, "application/json", BODY)
    assert pool.stats.h11_fallbacks == 1
    assert pool.idle_connections == 1
    server.behaviour = "close"
    assert (await pool.request("GET", "/", None, timeout=5)).body == BODY
    assert pool.idle_connections == 0
    await pool.aclose()


async def test_non_json_error_body_is_returned_as_is(
    nursery: trio.Nursery, ca: trustme.CA, ca_file: str
) -> None:
    _, cfg = await tls_setup(nursery, ca, ca_file, behaviour="status:500")
    pool = HttpPool(cfg)
    response = await pool.request("POST", "/trading/orders", b"{}", timeout=5)
    assert response.status == 500
    assert response.content_type == "text/plain; charset=utf-8"
    assert response.body == b"Internal Server Error"
    await pool.aclose()


async def test_refused_connection_is_retryable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    pool = HttpPool(config(port, tls=False))
    with pytest.raises(ConnectionFailed) as info:
        await pool.request("GET", "/", None, timeout=5)
    assert info.value.retryable is True
    assert "cannot connect" in str(info.value)
    no_secret(info.value)


async def test_self_signed_without_ca_file_is_refused(
    nursery: trio.Nursery, ca: trustme.CA
) -> None:
    server = HttpTestServer(ssl_context=server_context(ca))
    port = await start(nursery, server)
    pool = HttpPool(config(port))  # system trust store: does not know the test CA
    with pytest.raises(ConnectionFailed) as info:
        await pool.request("GET", "/", None, timeout=5)
    assert "certificate" in str(info.value)
    assert "ca_file" in str(info.value)
    assert info.value.retryable is False
    assert server.requests == []
    no_secret(info.value)


async def test_hostname_mismatch_is_refused(
    nursery: trio.Nursery, ca: trustme.CA, ca_file: str
) -> None:
    server = HttpTestServer(ssl_context=server_context(ca, "example.org"))
    port = await start(nursery, server)
    pool = HttpPool(config(port, ca_file=ca_file))
    with pytest.raises(ConnectionFailed) as info:
        await pool.request("GET", "/", None, timeout=5)
    assert "could not be verified" in str(info.value)
    assert info.value.retryable is False
    assert server.requests == []


async def test_stalled_server_times_out_within_bound(
    nursery: trio.Nursery, ca: trustme.CA, ca_file: str
) -> None:
    _, cfg = await tls_setup(nursery, ca, ca_file, behaviour="stall")
    pool = HttpPool(cfg)
    began = time.monotonic()
    with pytest.raises(RequestTimeout) as info:
        await pool.request("GET", "/", None, timeout=0.3)
    elapsed = time.monotonic() - began
    assert 0.25 <= elapsed < 1.5
    assert isinstance(info.value, TimeoutError)
    assert info.value.retryable is False  # the request was written
    assert pool.idle_connections == 0
    no_secret(info.value)
    await pool.aclose()


async def test_timeout_waiting_for_a_slot_is_retryable(
    nursery: trio.Nursery, ca: trustme.CA, ca_file: str
) -> None:
    _, cfg = await tls_setup(nursery, ca, ca_file, behaviour="stall")
    pool = HttpPool(cfg.replace(pool_size=1))
    failures: list[ConnectionFailed] = []

    async def hog() -> None:
        try:
            await pool.request("GET", "/", None, timeout=None)
        except ConnectionFailed as exc:
            failures.append(exc)

    nursery.start_soon(hog)
    await trio.sleep(0.1)
    with pytest.raises(RequestTimeout) as info:
        await pool.request("GET", "/", None, timeout=0.2)
    assert info.value.retryable is True  # never written: provably not sent
    await pool.aclose()  # ends the stalled request too
    await trio.sleep(0.05)
    assert len(failures) == 1
    assert "closed" in str(failures[0])


@pytest.mark.parametrize("behaviour", ["drop_mid", "drop_before"])
async def test_drop_during_request_is_not_retryable(
    nursery: trio.Nursery, ca: trustme.CA, ca_file: str, behaviour: str
) -> None:
    server, cfg = await tls_setup(nursery, ca, ca_file, behaviour=behaviour)
    pool = HttpPool(cfg)
    with pytest.raises(ConnectionFailed) as info:
        await pool.request("POST", "/trading/orders", b"{}", timeout=5)
    assert info.value.retryable is False
    assert "closed the connection" in str(info.value)
    assert len(server.requests) == 1
    assert pool.idle_connections == 0
    no_secret(info.value)


async def test_plain_http_when_tls_is_off(nursery: trio.Nursery) -> None:
    server = HttpTestServer()
    port = await start(nursery, server)
    pool = HttpPool(config(port, tls=False))
    assert (await pool.request("GET", "/", None, timeout=None)).body == BODY
    conn = pool._idle[0]
    assert conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    assert conn.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    await pool.aclose()


async def test_closed_pool_refuses_requests() -> None:
    pool = HttpPool(config(9, tls=False))
    await pool.aclose()
    with pytest.raises(ConnectionFailed) as info:
        await pool.request("GET", "/", None, timeout=1)
    assert info.value.retryable is False


async def test_unsafe_target_is_refused_before_io() -> None:
    pool = HttpPool(config(9, tls=False))
    with pytest.raises(ValueError):
        await pool.request("GET", "/a b", None, timeout=1)
    with pytest.raises(ValueError):
        await pool.request("get\r\n", "/", None, timeout=1)


async def test_rate_limit_spaces_requests(nursery: trio.Nursery) -> None:
    server = HttpTestServer()
    port = await start(nursery, server)
    pool = HttpPool(config(port, tls=False, rate_limit=10))
    began = trio.current_time()
    for _ in range(13):  # a burst of 10, then one every 100 ms
        await pool.request("GET", "/", None, timeout=5)
    assert trio.current_time() - began >= 0.28
    assert len(server.requests) == 13
    await pool.aclose()


def test_bad_ca_file_is_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    with pytest.raises(ConfigError) as info:
        HttpPool(config(443, ca_file=str(bad)))
    assert info.value.field == "ca_file"


def test_ssl_context_settings(ca_file: str) -> None:
    assert make_ssl_context(config(443, tls=False)) is None
    context = make_ssl_context(config(443, ca_file=ca_file))
    assert context is not None
    assert context.check_hostname is True
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
