"""Health state, Prometheus metrics and the /healthz + /metrics HTTP endpoint."""

from __future__ import annotations

import json

import msgspec
import trio
from prometheus_client.parser import text_string_to_metric_families

from hbtrio.daemon.http import serve_health
from hbtrio.daemon.metrics import DaemonMetrics
from hbtrio.models import ConnectionState


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Stats(msgspec.Struct):
    published: dict[str, int]
    conflated: dict[str, int]


def make() -> tuple[DaemonMetrics, Clock]:
    clock = Clock()
    return DaemonMetrics(stale_after=30.0, clock=clock, wall_clock=lambda: 1700000000.5), clock


def test_health_follows_the_connection_state() -> None:
    metrics, clock = make()
    assert metrics.health().healthy  # start: grace of stale_after
    clock.now += 30.0
    report = metrics.health()
    assert not report.healthy and report.state is ConnectionState.DISCONNECTED
    assert report.disconnected_for == 30.0
    metrics.set_state(ConnectionState.CONNECTED)
    clock.now += 3600
    assert metrics.health().healthy and metrics.health().disconnected_for == 0.0
    metrics.set_state(ConnectionState.DISCONNECTED)
    clock.now += 29.0
    assert metrics.health().healthy
    metrics.set_state(ConnectionState.CONNECTING)  # still counted from the drop
    clock.now += 1.0
    assert not metrics.health().healthy
    metrics.set_state(ConnectionState.CONNECTED)
    assert metrics.health().healthy


def test_counters() -> None:
    metrics, _ = make()
    metrics.set_state(ConnectionState.CONNECTED)
    metrics.set_state(ConnectionState.DISCONNECTED)
    metrics.set_state(ConnectionState.CONNECTED)
    metrics.set_state(ConnectionState.CONNECTED)  # no change
    metrics.event("OrderUpdate")
    metrics.event("OrderUpdate")
    metrics.event("TickerUpdate")
    metrics.written(3)
    metrics.error("ServerError")
    metrics.restart()
    metrics.observe_request("POST", "/portfolio/state", 0.004, "ok")
    metrics.observe_request("POST", "/portfolio/state", 0.2, "503")
    metrics.watch_engine(lambda: Stats({"TickerUpdate": 7}, {"TickerUpdate": 2}))
    assert metrics.counter_value("hbtrio_reconnects_total") == 1
    assert metrics.counter_value("hbtrio_events_received_total", type="OrderUpdate") == 2
    assert metrics.counter_value("hbtrio_sink_written_total") == 3
    assert metrics.counter_value("hbtrio_errors_total", kind="ServerError") == 1
    assert metrics.counter_value("hbtrio_restarts_total") == 1
    assert metrics.counter_value("hbtrio_connection_state", state="CONNECTED") == 1
    assert metrics.counter_value("hbtrio_connection_state", state="DISCONNECTED") == 0
    assert metrics.counter_value("hbtrio_events_published_total", type="TickerUpdate") == 7
    assert metrics.counter_value("hbtrio_events_conflated_total", type="TickerUpdate") == 2
    assert (
        metrics.counter_value(
            "hbtrio_request_latency_seconds_bucket",
            method="POST",
            endpoint="/portfolio/state",
            outcome="ok",
            le="0.005",
        )
        == 1
    )
    assert (
        metrics.counter_value(
            "hbtrio_request_latency_seconds_count",
            method="POST",
            endpoint="/portfolio/state",
            outcome="503",
        )
        == 1
    )
    assert metrics.counter_value("hbtrio_last_event_timestamp_seconds") == 1700000000.5
    assert metrics.counter_value("hbtrio_healthy") == 1
    health = metrics.health()
    assert (health.events, health.restarts, health.last_event) == (3, 1, 1700000000.5)


async def http_get(port: int, path: str, method: str = "GET", *, requests: int = 1) -> list[bytes]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    request = f"{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    await stream.send_all(request * requests)
    data = b""
    with trio.fail_after(5):
        while data.count(b"HTTP/1.1 ") < requests or not _complete(data, requests, method):
            chunk = await stream.receive_some(65536)
            if not chunk:
                break
            data += chunk
    await stream.aclose()
    return [b"HTTP/1.1 " + part for part in data.split(b"HTTP/1.1 ")[1:]]


def _complete(data: bytes, requests: int, method: str) -> bool:
    parts = data.split(b"HTTP/1.1 ")[1:]
    if len(parts) < requests:
        return False
    last = parts[-1]
    head, sep, body = last.partition(b"\r\n\r\n")
    if not sep:
        return False
    if method == "HEAD":
        return True
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def status_and_body(response: bytes) -> tuple[int, bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


async def test_http_endpoint() -> None:
    metrics, clock = make()
    metrics.event("OrderUpdate")
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_health, metrics, "127.0.0.1", 0)
        assert port > 0

        (response,) = await http_get(port, "/healthz")
        status, body = status_and_body(response)
        assert status == 200
        report = json.loads(body)
        assert report["healthy"] is True and report["state"] == "DISCONNECTED"
        assert report["last_event"] == 1700000000.5 and report["events"] == 1
        assert b"content-type: application/json" in response.lower()

        clock.now += 31
        (response,) = await http_get(port, "/healthz")
        assert status_and_body(response)[0] == 503

        (response,) = await http_get(port, "/metrics")
        status, body = status_and_body(response)
        assert status == 200
        assert b"text/plain; version=0.0.4" in response
        families = {f.name: f for f in text_string_to_metric_families(body.decode())}
        assert "hbtrio_events_received" in families
        assert "hbtrio_request_latency_seconds" in families
        assert "hbtrio_connection_state" in families

        (response,) = await http_get(port, "/nope")
        assert status_and_body(response)[0] == 404
        (response,) = await http_get(port, "/metrics", "POST")
        assert status_and_body(response)[0] == 405
        (response,) = await http_get(port, "/healthz", "HEAD")
        assert status_and_body(response) == (503, b"")

        # keep-alive: two requests on one connection
        responses = await http_get(port, "/healthz?verbose=1", requests=2)
        assert [status_and_body(r)[0] for r in responses] == [503, 503]

        # garbage does not kill the server
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(b"NOT HTTP\r\n\r\n")
        with trio.fail_after(5):
            reply = await stream.receive_some(1000)
        await stream.aclose()
        assert reply == b"" or reply.startswith(b"HTTP/1.1 4")
        (response,) = await http_get(port, "/healthz")
        assert status_and_body(response)[0] == 503
        nursery.cancel_scope.cancel()
