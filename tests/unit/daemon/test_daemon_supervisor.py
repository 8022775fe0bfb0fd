"""The daemon's supervisor and writer, against a fake client (autojump clock)."""

from __future__ import annotations

import dataclasses
import io
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import trio

from hbtrio import ClientConfig
from hbtrio._errors import AuthenticationFailed, ConnectionFailed, ServerError
from hbtrio.daemon.config import (
    DaemonConfig,
    HttpConfig,
    SinkConfig,
    SubscriptionSpec,
    SupervisorConfig,
)
from hbtrio.daemon.logs import setup_logging
from hbtrio.daemon.supervisor import EXIT_AUTH, EXIT_OK, Daemon
from hbtrio.events import (
    EVENT_DECODER,
    ConnectionStateChanged,
    Event,
    EventEngine,
    OrderBookUpdate,
)
from hbtrio.models import ConnectionState, Level, OrderBook

S = ConnectionState


class ListSink:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.flushed = 0
        self.closed = False
        self.written = 0

    def write(self, event: Event) -> None:
        assert not self.closed
        self.events.append(event)
        self.written += 1

    def flush(self) -> None:
        self.flushed += 1

    def close(self) -> None:
        self.closed = True


def book(i: int) -> OrderBook:
    return OrderBook(
        exchange="binance",
        market="BTC-USDT",
        bids=(Level(price=Decimal(100 + i), amount=Decimal(1)),),
        asks=(Level(price=Decimal(101 + i), amount=Decimal(1)),),
        timestamp=float(i),
    )


class FakeClient:
    def __init__(self, engine: EventEngine, server: FakeServer) -> None:
        self.engine = engine
        self.server = server

    async def server_info(self) -> dict[str, str]:
        self.server.probes += 1
        await trio.sleep(0.02)
        if self.server.probes == 2:
            raise ServerError("probe failed", status=503)
        return {"status": "running"}

    @asynccontextmanager
    async def subscribe_order_book(
        self, exchange: str, market: str, depth: int = 10
    ) -> AsyncIterator[AsyncIterator[OrderBook]]:
        self.server.subscribed.append(("order_book", exchange, market, depth))

        async def books() -> AsyncIterator[OrderBook]:
            for i in range(1000):
                await trio.sleep(0.1)
                update = book(i)
                self.engine.publish(OrderBookUpdate(book=update))
                yield update

        yield books()


class FakeServer:
    def __init__(self, failures: list[Exception], crash_after: float | None = None) -> None:
        self.failures = failures
        self.crash_after = crash_after
        self.attempts = 0
        self.subscribed: list[tuple[str, str, str, int]] = []
        self.probes = 0
        self.observers: list[Callable[[str, str, float, str], None]] = []

    @asynccontextmanager
    async def open_client(
        self,
        config: ClientConfig,
        *,
        engine: EventEngine,
        request_observer: Callable[[str, str, float, str], None],
    ) -> AsyncIterator[Any]:
        self.attempts += 1
        self.observers.append(request_observer)
        engine.publish(ConnectionStateChanged(old=S.DISCONNECTED, new=S.CONNECTING))
        await trio.sleep(0.01)
        if self.failures:
            engine.publish(ConnectionStateChanged(old=S.CONNECTING, new=S.DISCONNECTED))
            raise self.failures.pop(0)
        engine.publish(ConnectionStateChanged(old=S.CONNECTING, new=S.CONNECTED))
        try:
            async with trio.open_nursery() as nursery:
                if self.crash_after is not None:
                    crash_after = self.crash_after
                    self.crash_after = None

                    async def crash() -> None:
                        await trio.sleep(crash_after)
                        raise ServerError("tracker failed", status=500)

                    nursery.start_soon(crash)
                yield FakeClient(engine, self)
        finally:
            engine.publish(ConnectionStateChanged(old=S.CONNECTED, new=S.DISCONNECTED))


def make_config(**supervisor: Any) -> DaemonConfig:
    return DaemonConfig(
        client=ClientConfig(host="127.0.0.1", port=9, api_key="admin:admin", tls=False),
        subscriptions=(SubscriptionSpec("order_book", "binance", "BTC-USDT", depth=5),),
        http=HttpConfig(enabled=False),
        supervisor=SupervisorConfig(backoff_initial=0.5, backoff_max=4.0, **supervisor),
    )


def make_daemon(server: FakeServer, **supervisor: Any) -> tuple[Daemon, ListSink, io.StringIO]:
    stream = io.StringIO()
    logger = setup_logging("json", "debug", stream=stream, name="test.daemon")
    sink = ListSink()
    daemon = Daemon(
        make_config(**supervisor),
        logger,
        open_client=server.open_client,
        sink=sink,
        handle_signals=False,
    )
    return daemon, sink, stream


async def run_for(daemon: Daemon, seconds: float) -> int:
    result: list[int] = []
    async with trio.open_nursery() as nursery:

        async def runner() -> None:
            result.append(await daemon.run())

        nursery.start_soon(runner)
        await trio.sleep(seconds)
        daemon.request_stop()
    return result[0]


async def test_unreachable_at_start_is_retried_and_events_reach_the_sink(
    autojump_clock: trio.abc.Clock,
) -> None:
    server = FakeServer([ConnectionFailed("refused"), ConnectionFailed("refused")])
    daemon, sink, log = make_daemon(server)
    code = await run_for(daemon, 10.0)
    assert code == EXIT_OK
    assert server.attempts == 3
    assert daemon.metrics.restarts == 2
    assert server.subscribed == [("order_book", "binance", "BTC-USDT", 5)]
    books = [e for e in sink.events if isinstance(e, OrderBookUpdate)]
    assert len(books) > 50
    assert [e.book.timestamp for e in books] == [float(i) for i in range(len(books))]
    # every event received was written, the last one being the client's close
    assert daemon.received == len(sink.events)
    last = sink.events[-1]
    assert isinstance(last, ConnectionStateChanged) and last.new is S.DISCONNECTED
    assert sink.closed
    assert "server unreachable" in log.getvalue()
    assert server.probes == 1  # default interval 15 s: one probe in 10 s
    # every client the daemon opened reports its requests to the daemon's metrics
    assert server.observers == [daemon.metrics.observe_request] * 3
    assert f'"events_received":{daemon.received}' in log.getvalue()


async def test_authentication_failure_at_start_exits_3(autojump_clock: trio.abc.Clock) -> None:
    server = FakeServer([AuthenticationFailed("Incorrect username or password", status=401)])
    daemon, sink, log = make_daemon(server)
    with trio.fail_after(5):
        code = await daemon.run()
    assert code == EXIT_AUTH
    assert server.attempts == 1
    assert "authentication failed at start" in log.getvalue()
    assert sink.closed


async def test_failing_client_is_restarted_and_reported(autojump_clock: trio.abc.Clock) -> None:
    server = FakeServer([], crash_after=2.0)
    daemon, sink, log = make_daemon(server, probe_interval=1.0)
    code = await run_for(daemon, 10.0)
    assert code == EXIT_OK
    assert server.attempts == 2
    assert daemon.metrics.restarts == 1
    assert "client failed" in log.getvalue()
    assert server.probes >= 8  # every second, before and after the restart
    assert "probe failed" in log.getvalue()
    assert daemon.metrics.counter_value("hbtrio_errors_total", kind="ServerError") == 2
    states = [e.new for e in sink.events if isinstance(e, ConnectionStateChanged)]
    assert states.count(S.CONNECTED) == 2
    assert daemon.metrics.counter_value("hbtrio_reconnects_total") == 1


async def test_events_published_just_before_stop_are_flushed(
    autojump_clock: trio.abc.Clock,
) -> None:
    server = FakeServer([])
    daemon, sink, _ = make_daemon(server)
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        await trio.sleep(1.0)
        for i in range(500):
            daemon.engine.publish(OrderBookUpdate(book=book(10_000 + i)))
        daemon.request_stop()
    assert daemon.received == len(sink.events)
    timestamps = {e.book.timestamp for e in sink.events if isinstance(e, OrderBookUpdate)}
    assert {float(10_000 + i) for i in range(500)} <= timestamps


async def test_stop_is_bounded_when_the_client_hangs(autojump_clock: trio.abc.Clock) -> None:
    class Hanging(FakeServer):
        @asynccontextmanager
        async def open_client(
            self, config: ClientConfig, *, engine: EventEngine, request_observer: Any
        ) -> AsyncIterator[Any]:
            engine.publish(ConnectionStateChanged(old=S.CONNECTING, new=S.CONNECTED))
            try:
                yield FakeClient(engine, self)
            finally:
                with trio.CancelScope(shield=True):
                    await trio.sleep(100)  # a close that never ends in time

    server = Hanging([])
    daemon, sink, log = make_daemon(server, stop_timeout=2.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        await trio.sleep(1.0)
        daemon.request_stop()
        await trio.sleep(2.5)
        assert sink.closed  # flushed and closed at the stop deadline, not after the hang
    assert "stop took too long" in log.getvalue()
    assert daemon.received == len(sink.events) > 0


async def test_every_event_reaches_every_configured_sink(
    autojump_clock: trio.abc.Clock, tmp_path: Path
) -> None:
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    config = dataclasses.replace(
        make_config(),
        sinks=(
            SinkConfig(path=str(first), max_bytes=0),
            SinkConfig(path=str(second), max_bytes=0),
        ),
    )
    logger = setup_logging("json", "debug", stream=io.StringIO(), name="test.daemon")
    daemon = Daemon(config, logger, open_client=FakeServer([]).open_client, handle_signals=False)
    assert await run_for(daemon, 3.0) == EXIT_OK
    lines = first.read_bytes().splitlines()
    assert lines == second.read_bytes().splitlines()
    assert len(lines) == daemon.received > 20
    events = [EVENT_DECODER.decode(line) for line in lines]
    assert sum(isinstance(e, OrderBookUpdate) for e in events) > 20


@pytest.fixture(autouse=True)
def _quiet_root() -> None:
    logging.getLogger("test.daemon").handlers.clear()
