"""``hbtrio daemon`` as a real subprocess against the simulator.

The simulator runs in-process (stopped and restarted on the same port with the
same certificate directory); the daemon is ``python -m hbtrio daemon``.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import h11
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

import hbtrio
from hbtrio.daemon.config import DaemonConfig, HttpConfig, SinkConfig, SupervisorConfig
from hbtrio.daemon.logs import setup_logging
from hbtrio.daemon.supervisor import Daemon
from hbtrio.events import (
    EVENT_DECODER,
    ConnectionStateChanged,
    OrderBookUpdate,
    OrderUpdate,
    TickerUpdate,
)
from hbtrio.sim import SimInfo, serve
from tests.integration.conftest import RawHTTP, client_config

KEY_ENV = "HBTRIO_DAEMON_TEST_KEY"


class ControlledSim:
    """An in-process simulator that can be stopped and restarted on the same port."""

    def __init__(self, nursery: trio.Nursery, cert_dir: Path, api_key: str = "admin:admin") -> None:
        self.nursery = nursery
        self.cert_dir = cert_dir
        self.api_key = api_key
        self.port = 0
        self.info: SimInfo | None = None
        self._scope: trio.CancelScope | None = None
        self._done: trio.Event | None = None

    async def start(self) -> SimInfo:
        self._scope = trio.CancelScope()
        self._done = trio.Event()
        self.info = await self.nursery.start(self._run, self._scope, self._done)
        self.port = self.info.port
        return self.info

    async def _run(self, scope: trio.CancelScope, done: trio.Event, *, task_status: Any) -> None:
        try:
            with scope:
                await serve(
                    host="127.0.0.1",
                    port=self.port,
                    api_key=self.api_key,
                    cert_dir=self.cert_dir,
                    min_update_interval=0.1,
                    task_status=task_status,
                )
        finally:
            done.set()

    async def stop(self) -> None:
        assert self._scope is not None and self._done is not None
        self._scope.cancel()
        await self._done.wait()


class DaemonProcess:
    """``python -m hbtrio daemon`` with its JSON log lines collected."""

    def __init__(self, config: Path, env: dict[str, str]) -> None:
        self.config = config
        self.env = env
        self.logs: list[dict[str, Any]] = []
        self.raw_stderr = b""
        self.process: trio.Process | None = None
        self._changed = trio.Event()

    #: How to start ``hbtrio`` (before the ``daemon`` command and its options).
    launcher: tuple[str, ...] = ("-m", "hbtrio")

    async def start(self, nursery: trio.Nursery) -> None:
        self.process = await trio.lowlevel.open_process(
            [
                sys.executable,
                *self.launcher,
                "daemon",
                "--config",
                str(self.config),
                "--log-format",
                "json",
                "--log-level",
                "debug",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=self.env,
        )
        nursery.start_soon(self._read)

    async def _read(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        buffer = b""
        async for chunk in self.process.stderr:
            self.raw_stderr += chunk
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if line.strip():
                    try:
                        self.logs.append(json.loads(line))
                    except ValueError:
                        self.logs.append({"msg": line.decode(errors="replace")})
            self._changed.set()
            self._changed = trio.Event()

    async def wait_log(self, msg: str, nth: int = 1, **fields: Any) -> dict[str, Any]:
        with trio.fail_after(20):
            while True:
                found = [
                    r
                    for r in self.logs
                    if r.get("msg") == msg and all(r.get(k) == v for k, v in fields.items())
                ]
                if len(found) >= nth:
                    return found[nth - 1]
                if self.process is not None and self.process.returncode is not None:
                    raise AssertionError(f"daemon exited: {self.raw_stderr.decode()[-2000:]}")
                with trio.move_on_after(0.5):
                    await self._changed.wait()

    def count(self, msg: str) -> int:
        return sum(1 for r in self.logs if r.get("msg") == msg)

    async def wait(self) -> int:
        assert self.process is not None
        with trio.fail_after(15):
            return await self.process.wait()

    def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def write_config(tmp_path: Path, info_port: int, ca_path: str, sink: Path, **extra: str) -> Path:
    path = tmp_path / "daemon.toml"
    path.write_text(
        f"""
[connection]
host = "127.0.0.1"
port = {info_port}
ca_file = "{ca_path}"
api_key_env = "{KEY_ENV}"
timeout = 2.0
retries = 1
reconnect_initial = 0.05
reconnect_max = 0.5
heartbeat_timeout = 5.0
ping_interval = 1.0
poll_active = 0.1
poll_idle = 0.3

[[subscriptions]]
type = "order_book"
exchange = "binance"
market = "BTC-USDT"
depth = 5

[[subscriptions]]
type = "trades"
exchange = "binance"
market = "BTC-USDT"

[[subscriptions]]
type = "ticker"
exchange = "binance"
market = "ETH-USDT"

[[subscriptions]]
type = "candles"
exchange = "binance"
market = "BTC-USDT"
interval = "1m"

[[sinks]]
type = "jsonl"
path = "{sink}"
max_bytes = {extra.get("max_bytes", "0")}
backups = 3

[[sinks]]
type = "jsonl"
path = "{sink.parent / "mirror.jsonl"}"
max_bytes = 0

[http]
listen = "{extra.get("listen", "127.0.0.1:0")}"
stale_after = {extra.get("stale_after", "30")}

[supervisor]
backoff_initial = 0.1
backoff_max = 0.5
"""
    )
    return path


def sink_events(sink: Path) -> list[Any]:
    if not sink.exists():
        return []
    return [EVENT_DECODER.decode(line) for line in sink.read_bytes().splitlines() if line]


async def wait_for_events(sink: Path, predicate: Any) -> list[Any]:
    with trio.fail_after(15):
        while True:
            events = sink_events(sink)
            if predicate(events):
                return events
            await trio.sleep(0.1)


async def http_get(port: int, path: str) -> tuple[int, bytes]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    conn = h11.Connection(h11.CLIENT)
    await stream.send_all(
        conn.send(h11.Request(method="GET", target=path, headers=[("host", "x")]))
        + conn.send(h11.EndOfMessage())
    )
    status = 0
    body = b""
    with trio.fail_after(5):
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                body += bytes(event.data)
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                break
    await stream.aclose()
    return status, body


def count_books_after(events: list[Any], index: int) -> int:
    return sum(1 for e in events[index:] if isinstance(e, OrderBookUpdate))


async def test_daemon_end_to_end(nursery: trio.Nursery, tmp_path: Path, sim_cert_dir: Path) -> None:
    sim = ControlledSim(nursery, sim_cert_dir)
    info = await sim.start()
    await sim.stop()  # the daemon starts while the server is unreachable
    sink = tmp_path / "events.jsonl"
    assert info.ca_path is not None
    config = write_config(tmp_path, sim.port, info.ca_path, sink)
    env = dict(os.environ, **{KEY_ENV: info.api_key})
    daemon = DaemonProcess(config, env)
    await daemon.start(nursery)
    try:
        listening = await daemon.wait_log("health endpoint listening")
        health_port = listening["port"]
        await daemon.wait_log("server unreachable")

        # the server comes up: the daemon connects and market data reaches the sink
        await sim.start()
        await daemon.wait_log("connection state", new="CONNECTED")
        await wait_for_events(sink, lambda ev: sum(isinstance(e, OrderBookUpdate) for e in ev) >= 3)
        await wait_for_events(sink, lambda ev: any(isinstance(e, TickerUpdate) for e in ev))
        assert daemon.count("subscribed") == 4
        assert daemon.count("subscription failed") == 0
        status, body = await http_get(health_port, "/healthz")
        report = json.loads(body)
        assert status == 200 and report["state"] == "CONNECTED" and report["healthy"]
        assert report["last_event"] is not None

        # order-tracker events reach the sink: an order placed by someone else
        http = RawHTTP(sim.info)  # type: ignore[arg-type]
        placed = await http.post(
            "/trading/orders",
            {
                "account_name": "master_account",
                "connector_name": "binance",
                "trading_pair": "BTC-USDT",
                "trade_type": "BUY",
                "amount": 0.001,
                "order_type": "LIMIT",
                "price": 50000,
            },
        )
        await http.aclose()
        assert placed.status == 201
        order_id = placed.json()["order_id"]
        await wait_for_events(
            sink,
            lambda ev: any(isinstance(e, OrderUpdate) and e.order.order_id == order_id for e in ev),
        )

        # metrics
        status, body = await http_get(health_port, "/metrics")
        text = body.decode()
        assert status == 200
        assert 'hbtrio_events_received_total{type="OrderBookUpdate"}' in text
        assert 'hbtrio_connection_state{state="CONNECTED"} 1.0' in text
        assert "hbtrio_events_published_total" in text
        # the latency histogram times the client's own requests: start-up check, polls
        counts = latency_counts(text)
        assert counts[("GET", "/accounts/", "ok")] >= 1
        assert counts[("POST", "/trading/orders/active", "ok")] >= 1

        # the server goes away and comes back on the same port with the same cert
        before = len(sink_events(sink))
        await sim.stop()
        await daemon.wait_log("connection state", old="CONNECTED", new="DISCONNECTED")
        status, body = await http_get(health_port, "/healthz")
        assert status == 200  # disconnected for less than stale_after
        assert json.loads(body)["state"] != "CONNECTED"
        await trio.sleep(0.5)
        await sim.start()
        await daemon.wait_log("connection state", nth=2, new="CONNECTED")
        await wait_for_events(sink, lambda ev: count_books_after(ev, before) >= 3)
        status, body = await http_get(health_port, "/metrics")
        assert (
            "hbtrio_reconnects_total 1.0" in body.decode()
            or "hbtrio_reconnects_total 2.0" in body.decode()
        )

        # SIGTERM: exit 0 within 5 s, nothing received is missing from the sink
        assert daemon.process is not None
        start = trio.current_time()
        daemon.process.send_signal(signal.SIGTERM)
        code = await daemon.wait()
        elapsed = trio.current_time() - start
        assert code == 0, daemon.raw_stderr.decode()[-2000:]
        assert elapsed < 5.0
        stopped = await daemon.wait_log("daemon stopped")
        events = sink_events(sink)
        assert stopped["events_received"] == stopped["events_written"] == len(events)
        assert isinstance(events[-1], ConnectionStateChanged)
        # the second [[sinks]] table received every event too
        mirror = (tmp_path / "mirror.jsonl").read_bytes()
        assert mirror == sink.read_bytes()
        assert info.api_key not in daemon.raw_stderr.decode()
    finally:
        daemon.kill()


def latency_counts(metrics_text: str) -> dict[tuple[str, str, str], float]:
    """``hbtrio_request_latency_seconds_count`` by (method, endpoint, outcome)."""
    counts: dict[tuple[str, str, str], float] = {}
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == "hbtrio_request_latency_seconds_count":
                labels = sample.labels
                counts[(labels["method"], labels["endpoint"], labels["outcome"])] = sample.value
    return counts


async def test_latency_histogram_measures_the_clients_own_requests(
    nursery: trio.Nursery, tmp_path: Path, sim_cert_dir: Path
) -> None:
    """In-process daemon, real client and simulator: orders, reads and polls are timed."""
    sim = ControlledSim(nursery, sim_cert_dir)
    info = await sim.start()
    clients: list[hbtrio.Client] = []
    opened = trio.Event()

    @asynccontextmanager
    async def open_and_keep(config: hbtrio.ClientConfig, **kw: Any) -> AsyncIterator[Any]:
        async with hbtrio.open_client(config, **kw) as client:
            clients.append(client)
            opened.set()
            yield client

    config = DaemonConfig(
        client=client_config(info, poll_active=0.1, poll_idle=0.2),
        sinks=(SinkConfig(path=str(tmp_path / "events.jsonl")),),
        http=HttpConfig(port=0),
        supervisor=SupervisorConfig(probe_interval=0),
    )
    logger = setup_logging("json", "debug", stream=io.StringIO(), name="test.daemon.latency")
    daemon = Daemon(config, logger, open_client=open_and_keep, handle_signals=False)
    async with trio.open_nursery() as inner:
        await inner.start(daemon.run)
        with trio.fail_after(10):
            await opened.wait()
        client = clients[0]
        assert daemon.health_port is not None
        _, body = await http_get(daemon.health_port, "/metrics")
        before = latency_counts(body.decode())
        assert before.get(("GET", "/accounts/", "ok"), 0) >= 1  # the start-up check
        assert ("POST", "/trading/orders", "ok") not in before

        order = await client.place_limit_order(
            "binance", "BTC-USDT", "buy", price=50000, amount="0.001"
        )
        await client.get_balances()
        await client.get_order_book("binance", "BTC-USDT", depth=5)
        await client.cancel_order(order.order_id, exchange="binance", market="BTC-USDT")
        await trio.sleep(0.5)  # a few tracker polls
        _, body = await http_get(daemon.health_port, "/metrics")
        after = latency_counts(body.decode())
        daemon.request_stop()
    assert after[("POST", "/trading/orders", "ok")] == 1
    assert after[("POST", "/portfolio/state", "ok")] >= 1
    assert after[("POST", "/market-data/order-book", "ok")] >= 1
    cancel = ("POST", "/trading/{account}/{connector}/orders/{order_id}/cancel", "ok")
    assert after[cancel] == 1
    polls = ("POST", "/trading/orders/active", "ok")
    assert after[polls] > before.get(polls, 0)  # the order tracker's polls
    assert not any(order.order_id in endpoint for _, endpoint, _ in after)
    await sim.stop()


async def test_bad_configuration_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "daemon.toml"
    config.write_text('[connection]\nhost = "127.0.0.1"\nport = 99999\napi_key_env = "X"\n')
    result = await trio.run_process(
        [sys.executable, "-m", "hbtrio", "daemon", "--config", str(config)],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        env=dict(os.environ, X="admin:admin"),
    )
    assert result.returncode == 2
    lines = result.stderr.decode().splitlines()
    assert lines == [
        "hbtrio daemon: bad configuration: connection.port: must be an integer in 1..65535"
    ]


async def test_misspelt_key_exits_2_with_a_suggestion(tmp_path: Path) -> None:
    config = tmp_path / "daemon.toml"
    config.write_text(
        '[connection]\nhots = "127.0.0.1"\nport = 8000\napi_key_env = "X"\n'
        '[[sinks]]\ntype = "jsonl"\npath = "-"\n[[sinks]]\ntype = "jsonl"\npath = 3\n'
    )
    for check in ([], ["--check"]):
        result = await trio.run_process(
            [sys.executable, "-m", "hbtrio", "daemon", "--config", str(config), *check],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            env=dict(os.environ, X="admin:admin"),
        )
        assert result.returncode == 2
        [line] = result.stderr.decode().splitlines()
        assert line.startswith(
            'hbtrio daemon: bad configuration: connection.hots: unknown key; did you mean "host"?'
        )
    config.write_text(config.read_text().replace("hots", "host"))
    result = await trio.run_process(
        [sys.executable, "-m", "hbtrio", "daemon", "--config", str(config), "--check"],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        env=dict(os.environ, X="admin:admin"),
    )
    assert result.returncode == 2
    assert result.stderr.decode().splitlines() == [
        "hbtrio daemon: bad configuration: sinks[1].path: must be a non-empty string"
    ]


async def test_wrong_key_at_start_exits_3(
    nursery: trio.Nursery, tmp_path: Path, sim_cert_dir: Path
) -> None:
    sim = ControlledSim(nursery, sim_cert_dir)
    info = await sim.start()
    assert info.ca_path is not None
    config = write_config(tmp_path, info.port, info.ca_path, tmp_path / "e.jsonl")
    env = dict(os.environ, **{KEY_ENV: "admin:wrong-password"})
    daemon = DaemonProcess(config, env)
    await daemon.start(nursery)
    try:
        assert await daemon.wait() == 3
        await daemon.wait_log("authentication failed at start; check the API key")
        assert "wrong-password" not in daemon.raw_stderr.decode()
    finally:
        daemon.kill()
        await sim.stop()


def plain_config(tmp_path: Path, server_port: int, listen: str, **supervisor: float) -> Path:
    """A daemon configuration without TLS, subscriptions or CA file."""
    path = tmp_path / "daemon.toml"
    extra = "".join(f"{name} = {value}\n" for name, value in supervisor.items())
    path.write_text(
        f"""
[connection]
host = "127.0.0.1"
port = {server_port}
tls = false
api_key_env = "{KEY_ENV}"
timeout = 0.5
retries = 0

[[sinks]]
type = "jsonl"
path = "{tmp_path / "events.jsonl"}"

[http]
listen = "{listen}"

[supervisor]
backoff_initial = 0.1
backoff_max = 0.5
{extra}"""
    )
    return path


HANGING_CLIENT = """
import sys
from contextlib import asynccontextmanager

import trio

import hbtrio
from hbtrio.events import ConnectionStateChanged
from hbtrio.models import ConnectionState


class Client:
    async def server_info(self):
        return None


@asynccontextmanager
async def open_client(config, *, engine, request_observer=None):
    engine.publish(
        ConnectionStateChanged(old=ConnectionState.CONNECTING, new=ConnectionState.CONNECTED)
    )
    try:
        yield Client()
    finally:
        with trio.CancelScope(shield=True):
            await trio.sleep(60)  # a close that never ends


hbtrio.open_client = open_client
from hbtrio.cli import main

sys.exit(main(sys.argv[1:]))
"""
"""``hbtrio daemon`` (the real command) with a client whose close hangs."""


class HangingDaemon(DaemonProcess):
    """The real ``hbtrio daemon`` command, its client replaced by one that never closes."""

    launcher = ("-c", HANGING_CLIENT)


async def test_sigint_stops_with_exit_0(nursery: trio.Nursery, tmp_path: Path) -> None:
    config = plain_config(tmp_path, free_port(), "127.0.0.1:0")
    daemon = DaemonProcess(config, dict(os.environ, **{KEY_ENV: "admin:admin"}))
    await daemon.start(nursery)
    try:
        await daemon.wait_log("daemon started")
        await daemon.wait_log("server unreachable")  # the supervisor is retrying
        assert daemon.process is not None
        start = trio.current_time()
        daemon.process.send_signal(signal.SIGINT)
        code = await daemon.wait()
        assert code == 0, daemon.raw_stderr.decode()[-2000:]
        assert trio.current_time() - start < 5.0
        await daemon.wait_log("signal received; stopping", signal="SIGINT")
        stopped = await daemon.wait_log("daemon stopped")
        assert stopped["exit_code"] == 0
        assert b"Traceback" not in daemon.raw_stderr
    finally:
        daemon.kill()


async def test_health_port_in_use_exits_1(nursery: trio.Nursery, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = plain_config(tmp_path, free_port(), f"127.0.0.1:{port}")
        daemon = DaemonProcess(config, dict(os.environ, **{KEY_ENV: "admin:admin"}))
        await daemon.start(nursery)
        try:
            assert await daemon.wait() == 1
            failed = await daemon.wait_log("cannot listen for /healthz and /metrics")
            assert failed["listen"] == f"127.0.0.1:{port}"
            assert failed["level"] == "error"
            assert b"Traceback" not in daemon.raw_stderr
        finally:
            daemon.kill()


async def test_stop_overrunning_stop_timeout_still_exits_0_in_time(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    config = plain_config(tmp_path, free_port(), "127.0.0.1:0", stop_timeout=1.0)
    daemon = HangingDaemon(config, dict(os.environ, **{KEY_ENV: "admin:admin"}))
    await daemon.start(nursery)
    try:
        await daemon.wait_log("connection state", new="CONNECTED")
        assert daemon.process is not None
        start = trio.current_time()
        daemon.process.send_signal(signal.SIGTERM)
        code = await daemon.wait()
        elapsed = trio.current_time() - start
        assert code == 0, daemon.raw_stderr.decode()[-2000:]
        assert 1.0 <= elapsed < 2.5  # the client's close was abandoned at stop_timeout
        await daemon.wait_log("stop took too long; writing what was received and exiting")
        events = sink_events(tmp_path / "events.jsonl")
        assert any(isinstance(e, ConnectionStateChanged) for e in events)
    finally:
        daemon.kill()


@pytest.mark.parametrize(
    ("first", "second"), [(signal.SIGTERM, signal.SIGINT), (signal.SIGINT, signal.SIGTERM)]
)
async def test_second_signal_during_the_stop_exits_at_once(
    nursery: trio.Nursery, tmp_path: Path, first: signal.Signals, second: signal.Signals
) -> None:
    config = plain_config(tmp_path, free_port(), "127.0.0.1:0", stop_timeout=4.5)
    daemon = HangingDaemon(config, dict(os.environ, **{KEY_ENV: "admin:admin"}))
    await daemon.start(nursery)
    try:
        await daemon.wait_log("connection state", new="CONNECTED")
        assert daemon.process is not None
        start = trio.current_time()
        daemon.process.send_signal(first)
        await daemon.wait_log("stopping")  # the graceful stop is waiting for the client
        await trio.sleep(0.2)
        assert daemon.process.returncode is None
        second_at = trio.current_time()
        daemon.process.send_signal(second)
        code = await daemon.wait()
        now = trio.current_time()
        assert code == 1, daemon.raw_stderr.decode()[-2000:]
        assert now - second_at < 1.0  # at once, not after stop_timeout
        assert now - start < 4.5
        await daemon.wait_log("second signal; exiting at once", signal=second.name)
        # what was received before the stop was flushed to the sink
        events = sink_events(tmp_path / "events.jsonl")
        assert any(isinstance(e, ConnectionStateChanged) for e in events)
    finally:
        daemon.kill()


@pytest.fixture(autouse=True)
def _no_real_key_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
