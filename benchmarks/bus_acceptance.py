"""The event bus end to end: daemon, broker, consumer and simulator in their own processes.

    python benchmarks/bus_acceptance.py [--orders 1000] [--broker-restarts 2]
                                        [--daemon-restarts 1] [--burst 20000]

1. A simulator (``hbtrio sim``), an MQTT broker without persistence (mosquitto where
   installed, else amqtt from PyPI), an ``open_bus`` consumer and the daemon
   (``[[sinks]]`` jsonl + mqtt) are started as separate processes.
2. ``--orders`` orders are placed, half market orders (filled), half resting limit
   orders then cancelled. The daemon does not yet publish orders placed by other
   programs (account-wide tracking), so the orders are placed through the daemon's
   own client, by a driver task inside the daemon process.
3. During the run the broker is killed (SIGKILL) and restarted, forgetting
   everything, ``--broker-restarts`` times, and the daemon is stopped and started
   again ``--daemon-restarts`` times (between two orders: the driver pauses).
4. At the end the consumer's order and fill events are compared with the daemon's
   JSON Lines sink (the same events, written locally): every one must be there,
   once, and each order's events in the same order.
5. ``--burst`` order events are then pushed through one sink, the broker and one
   consumer as fast as they go (the bus's throughput, not the orders' pace).

Prints counts, events/s and ``RESULT ok`` (exit 0) or ``RESULT FAILED`` (exit 1).
"""

# The processes coordinate through small files (progress, pause, ready): polled, on purpose.
# ruff: noqa: ASYNC110, ASYNC230, ASYNC240

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import trio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import hbtrio  # noqa: E402
from hbtrio.events import OrderUpdate, TradeEvent  # noqa: E402
from tests.mqtt_broker import Broker  # noqa: E402

API_KEY = "admin:admin"
EXCHANGE, MARKET = "binance", "BTC-USDT"


# -- the daemon process: the real daemon, with an order driver inside its client -------------


def _read_lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


async def _drive(
    client: Any, engine: hbtrio.EventEngine, work: Path, orders: int, conc: int, rate: float
) -> None:
    finished_path = work / "finished.txt"
    pause, idle = work / "pause", work / "idle"
    done = {int(i) for i in _read_lines(finished_path)}
    todo = iter([i for i in range(orders) if i not in done])
    terminal: dict[str, trio.Event] = {}
    statuses: dict[str, hbtrio.OrderStatus] = {}
    active = 0
    started = trio.current_time()
    issued = 0

    async def watch() -> None:
        async with engine.subscribe(OrderUpdate, buffer=100_000) as updates:
            async for update in updates:
                order = update.order
                statuses[order.order_id] = order.status
                if order.status.is_terminal and order.order_id in terminal:
                    terminal[order.order_id].set()

    async def wait_terminal(order_id: str) -> None:
        event = terminal.setdefault(order_id, trio.Event())
        if order_id in statuses and statuses[order_id].is_terminal:
            return
        with trio.fail_after(60):
            await event.wait()

    async def worker() -> None:
        nonlocal active
        book = await client.get_order_book(EXCHANGE, MARKET, depth=1)
        low = (book.best_bid.price * Decimal("0.9")).quantize(Decimal("0.01"))
        while True:
            while pause.exists():
                await trio.sleep(0.05)
            index = next(todo, None)
            if index is None:
                return
            nonlocal issued
            issued += 1
            active += 1  # from here on the driver is not idle
            try:
                await trio.sleep_until(started + issued / rate)  # the orders' pace
                if index % 2 == 0:
                    order = await client.place_market_order(
                        EXCHANGE, MARKET, "BUY", amount=Decimal("0.001"), wait_accepted=True
                    )
                else:
                    order = await client.place_limit_order(
                        EXCHANGE,
                        MARKET,
                        "BUY",
                        price=low,
                        amount=Decimal("0.001"),
                        wait_accepted=True,
                    )
                    await client.cancel_order(order.order_id, exchange=EXCHANGE, market=MARKET)
                await wait_terminal(order.order_id)
                with open(finished_path, "a") as handle:
                    handle.write(f"{index}\n")
            finally:
                active -= 1

    async def report_idle() -> None:
        while True:
            if pause.exists() and active == 0:
                idle.touch()
            await trio.sleep(0.05)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch)
        nursery.start_soon(report_idle)
        await trio.sleep(0.2)
        async with trio.open_nursery() as workers:
            for _ in range(conc):
                workers.start_soon(worker)
        await trio.sleep_forever()  # done: the daemon goes on until stopped


def run_daemon(config_path: str, work: str, orders: int, conc: int, rate: float) -> int:
    from hbtrio.daemon.config import load_config
    from hbtrio.daemon.supervisor import Daemon

    config = load_config(config_path)
    logging.basicConfig(
        filename=str(Path(work) / "daemon.log"),
        level=logging.INFO,
        format="%(asctime)s %(message)s",
    )

    @asynccontextmanager
    async def open_with_driver(client_config: Any, **kw: Any) -> AsyncIterator[Any]:
        async with hbtrio.open_client(client_config, **kw) as client, trio.open_nursery() as n:
            n.start_soon(_drive, client, kw["engine"], Path(work), orders, conc, rate)
            yield client
            n.cancel_scope.cancel()

    daemon = Daemon(config, logging.getLogger("hbtrio.daemon"), open_client=open_with_driver)
    return trio.run(daemon.run)


# -- the consumer process ----------------------------------------------------------------


def run_consumer(url: str, out: str) -> int:
    async def main() -> None:
        encoder = msgspec.json.Encoder()
        first = last = 0.0
        with open(out, "wb") as handle, trio.open_signal_receiver(signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:

                async def stop() -> None:
                    async for _ in signals:
                        nursery.cancel_scope.cancel()

                nursery.start_soon(stop)
                async with (
                    hbtrio.open_bus(url) as bus,
                    bus.subscribe(OrderUpdate, TradeEvent, buffer=100_000) as events,
                ):
                    with trio.fail_after(30):
                        while bus.stats.connects == 0:
                            await trio.sleep(0.02)
                    Path(out + ".ready").touch()
                    try:
                        async for event in events:
                            last = time.monotonic()
                            first = first or last
                            handle.write(encoder.encode(event) + b"\n")
                            if not events.pending:
                                handle.flush()
                    finally:
                        stats = msgspec.structs.asdict(bus.stats)
                        stats["seconds"] = last - first
                        Path(out + ".stats").write_bytes(encoder.encode(stats))

    trio.run(main)
    return 0


# -- the orchestrator ----------------------------------------------------------------------


def _key(event: dict[str, Any]) -> tuple[str, str, str]:
    if event["type"] == "OrderUpdate":
        o = event["order"]
        return (o["order_id"], "order", f"{o['status']}:{o['filled_amount']}")
    t = event["trade"]
    return (t["order_id"], "fill", t["trade_id"])


def _order_events(path: Path) -> list[tuple[str, str, str]]:
    keys = []
    if path.exists():
        for line in path.read_bytes().splitlines():
            event = json.loads(line)
            if event["type"] in ("OrderUpdate", "TradeEvent"):
                keys.append(_key(event))
    return keys


def _wait(predicate: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _start_sim(work: Path) -> tuple[subprocess.Popen[bytes], int]:
    sim = subprocess.Popen(
        [sys.executable, "-m", "hbtrio", "sim", "--host", "127.0.0.1", "--port", "0", "--no-tls"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ, HBTRIO_SIM_API_KEY=API_KEY),
    )
    assert sim.stdout is not None
    line = sim.stdout.readline().decode()
    url = line.split(" listening on ", 1)[1].split(" ", 1)[0]
    return sim, int(url.rsplit(":", 1)[1])


def _daemon_config(work: Path, sim_port: int, broker: Broker) -> Path:
    path = work / "daemon.toml"
    path.write_text(
        f"""[connection]
host = "127.0.0.1"
port = {sim_port}
tls = false
api_key_env = "BUS_BENCH_API_KEY"
poll_active = 0.05

[[sinks]]
type = "jsonl"
path = "{work / "events.jsonl"}"

[[sinks]]
type = "mqtt"
url = "{broker.url}"
spool_dir = "{work / "spool"}"
name = "bench"
fsync = false

[http]
enabled = false
"""
    )
    return path


def acceptance(
    orders: int = 1000,
    broker_restarts: int = 2,
    daemon_restarts: int = 1,
    concurrency: int = 8,
    rate: float = 25.0,
    work: Path | None = None,
) -> dict[str, Any]:
    """Run the acceptance scenario and return its figures (``ok`` says whether it passed)."""
    work = work or Path(tempfile.mkdtemp(prefix="hbtrio-bus-"))
    broker = Broker(work)
    broker.start()
    sim, sim_port = _start_sim(work)
    config = _daemon_config(work, sim_port, broker)
    me = [sys.executable, str(Path(__file__).resolve())]
    env = dict(os.environ, BUS_BENCH_API_KEY=API_KEY, PYTHONPATH=str(ROOT))
    out = work / "consumer.jsonl"
    consumer = subprocess.Popen([*me, "consumer", broker.url, str(out)], env=env)
    daemon: subprocess.Popen[bytes] | None = None
    finished_path = work / "finished.txt"
    started = time.monotonic()
    try:
        _wait(lambda: Path(str(out) + ".ready").exists(), 30, "the consumer")

        def start_daemon() -> subprocess.Popen[bytes]:
            args = ["daemon", str(config), str(work), str(orders), str(concurrency), str(rate)]
            return subprocess.Popen([*me, *args], env=env)

        daemon = start_daemon()
        events: list[tuple[float, str]] = []
        for k in range(broker_restarts):
            events.append(((k + 1) / (broker_restarts + 1), "broker"))
        for k in range(daemon_restarts):
            events.append(((k + 1.5) / (daemon_restarts + 2), "daemon"))
        events.sort()
        for fraction, what in events:
            _wait(lambda f=fraction: len(_read_lines(finished_path)) >= f * orders, 600, "progress")
            if what == "broker":
                broker.kill()  # SIGKILL: sessions, queues, retained messages gone
                time.sleep(0.5)
                broker.start()
            else:
                (work / "pause").touch()
                _wait(lambda: (work / "idle").exists(), 60, "the driver to pause")
                daemon.send_signal(signal.SIGTERM)
                daemon.wait(30)
                (work / "idle").unlink()
                daemon = start_daemon()
                (work / "pause").unlink()
        _wait(lambda: len(set(_read_lines(finished_path))) >= orders, 900, "every order")
        (work / "pause").touch()  # the driver is done; the daemon keeps publishing
        placed_s = time.monotonic() - started
        truth = _order_events(work / "events.jsonl")
        _wait(lambda: len(_order_events(out)) >= len(truth), 120, "the consumer to catch up")
        time.sleep(1.0)  # anything more would be a duplicate
    finally:
        for process in (consumer, daemon):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(30)
        sim.terminate()
        sim.wait(10)
        if sim.stdout is not None:
            sim.stdout.close()
        broker.stop()
    truth = _order_events(work / "events.jsonl")
    got = _order_events(out)
    stats = json.loads(Path(str(out) + ".stats").read_text())
    by_order_truth: dict[str, list[tuple[str, str]]] = defaultdict(list)
    by_order_got: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for order_id, kind, what in truth:
        by_order_truth[order_id].append((kind, what))
    for order_id, kind, what in got:
        by_order_got[order_id].append((kind, what))
    terminal = sum(
        any(k == "order" and w.split(":")[0] in ("FILLED", "CANCELLED") for k, w in evs)
        for evs in by_order_got.values()
    )
    missing = sum(len(v) for v in by_order_truth.values()) - sum(
        min(len(by_order_got[k]), len(v)) for k, v in by_order_truth.items()
    )
    duplicated = len(got) - len(set(got))
    out_of_order = sum(by_order_got[k] != v for k, v in by_order_truth.items())
    result = {
        "broker": broker.kind,
        "orders": orders,
        "orders_with_terminal_event": terminal,
        "daemon_events": len(truth),
        "consumer_events": len(got),
        "missing": missing,
        "duplicated": duplicated,
        "orders_out_of_order": out_of_order,
        "broker_restarts": broker_restarts,
        "daemon_restarts": daemon_restarts,
        "seconds": round(placed_s, 1),
        "rate_orders_per_s": rate,
        "events_per_s": round(len(got) / stats["seconds"], 1) if stats["seconds"] else 0.0,
        "consumer_stats": stats,
        "work": str(work),
    }
    result["ok"] = (
        terminal == orders
        and len(by_order_got) == orders
        and missing == 0
        and duplicated == 0
        and out_of_order == 0
        and len(got) == len(truth)
    )
    return result


def burst(count: int = 20_000, work: Path | None = None) -> dict[str, Any]:
    """Push ``count`` order events through one sink, the broker and ``open_bus``."""
    from hbtrio.bus import MqttSink, MqttSinkConfig
    from hbtrio.models import Order, OrderStatus, OrderType, Side

    work = work or Path(tempfile.mkdtemp(prefix="hbtrio-burst-"))
    broker = Broker(work)
    broker.start()
    template = Order(
        order_id="o",
        account="master_account",
        exchange=EXCHANGE,
        market=MARKET,
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        amount=Decimal("0.001"),
        price=Decimal("100"),
        status=OrderStatus.OPEN,
    )

    async def main() -> float:
        sink = MqttSink(MqttSinkConfig(url=broker.url, spool_dir=str(work / "spool"), fsync=False))
        async with trio.open_nursery() as nursery:
            async with (
                hbtrio.open_bus(broker.url) as bus,
                bus.subscribe(OrderUpdate, buffer=count + 1) as events,
            ):
                await nursery.start(sink.run)
                while not (sink.connected and bus.stats.connects):
                    await trio.sleep(0.02)
                t0 = time.perf_counter()
                for n in range(count):
                    sink.write(
                        OrderUpdate(order=msgspec.structs.replace(template, order_id=f"o{n}"))
                    )
                    if n % 500 == 499:
                        sink.flush()
                        await trio.lowlevel.checkpoint()
                sink.flush()
                got = 0
                with trio.fail_after(300):
                    async for _ in events:
                        got += 1
                        if got == count:
                            break
                elapsed = time.perf_counter() - t0
            nursery.cancel_scope.cancel()
        sink.close()
        return elapsed

    try:
        elapsed = trio.run(main)
    finally:
        broker.stop()
    return {
        "broker": broker.kind,
        "events": count,
        "seconds": round(elapsed, 2),
        "events_per_s": round(count / elapsed, 1),
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "daemon":
        return run_daemon(argv[1], argv[2], int(argv[3]), int(argv[4]), float(argv[5]))
    if argv and argv[0] == "consumer":
        return run_consumer(argv[1], argv[2])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--broker-restarts", type=int, default=2)
    parser.add_argument("--daemon-restarts", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rate", type=float, default=25.0, help="orders started per second")
    parser.add_argument("--burst", type=int, default=20_000)
    args = parser.parse_args(argv)
    result = acceptance(
        args.orders, args.broker_restarts, args.daemon_restarts, args.concurrency, args.rate
    )
    for key, value in result.items():
        print(f"{key}: {value}")
    ok = bool(result["ok"])
    if args.burst:
        figures = burst(args.burst)
        print(f"burst: {figures}")
    print("RESULT ok" if ok else "RESULT FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
