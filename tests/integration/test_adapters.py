"""``hbtrio.aio`` and ``hbtrio.sync`` against the simulator over TLS.

The simulator (and the fault proxy) run in the test's Trio loop; each asyncio or
blocking program runs in a worker thread (``trio.to_thread``), as a user's program
would run beside a server: real sockets, real TLS. The core scenarios run through
both adapters: place and cancel, an order book, a stream, order events, a
reconnect (the simulator drops every WebSocket after a few messages), and
``OrderOutcomeUnknown`` when the fault proxy drops a placement mid-request.
Ctrl-C and a cancelled task are tested in subprocesses (``adapter_programs.py``).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import anyio
import pytest
import trio

import hbtrio
import hbtrio.aio
import hbtrio.sync
from hbtrio import (
    ConnectionState,
    ConnectionStateChanged,
    OrderBook,
    OrderNotFound,
    OrderOutcomeUnknown,
    OrderStatus,
    OrderUpdate,
    Side,
)
from hbtrio.sim import SimInfo
from tests.faultproxy import Fault, FaultKind, FaultPlan, Trigger, open_fault_proxy
from tests.integration.conftest import client_config, ssl_context_for, start_sim

EX, PAIR = "binance", "BTC-USDT"
PROGRAMS = Path(__file__).with_name("adapter_programs.py")
T = TypeVar("T")


async def in_asyncio(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run an asyncio program (``asyncio.run``) in a worker thread."""
    return await trio.to_thread.run_sync(lambda: asyncio.run(main()))


async def in_thread(fn: Callable[[], T]) -> T:
    """Run a blocking program in a worker thread."""
    return await trio.to_thread.run_sync(fn)


def limit_price(book: OrderBook) -> Decimal:
    return (book.bids[0].price * Decimal("0.9")).quantize(Decimal("0.01"))


async def ws_sessions_end(sim: SimInfo) -> None:
    """The simulator sees no WebSocket left (each client closed its own)."""
    with trio.fail_after(10):
        while sim.state.ws_closers:  # noqa: ASYNC110 - the simulator's state has no event
            await trio.sleep(0.02)


# -- place and cancel, the order book, order events ------------------------------------


async def test_aio_place_cancel_book_and_order_events(sim: SimInfo) -> None:
    config = client_config(sim)

    async def main() -> tuple[list[OrderStatus], str]:
        async with hbtrio.aio.open_client(config) as client:
            assert client.state is ConnectionState.CONNECTED
            book = await client.get_order_book(EX, PAIR, depth=5)
            assert isinstance(book, OrderBook) and len(book.bids) == 5 and book.asks
            async with client.events(OrderUpdate) as events:
                order = await client.place_limit_order(
                    EX, PAIR, Side.BUY, price=limit_price(book), amount=Decimal("0.001")
                )
                assert [o.order_id for o in await client.get_open_orders(EX, PAIR)] == [
                    order.order_id
                ]
                await client.cancel_order(order.order_id, exchange=EX, market=PAIR)
                seen: list[OrderStatus] = []
                async for event in events:
                    assert isinstance(event, OrderUpdate)
                    if event.order.order_id == order.order_id:
                        seen.append(event.order.status)
                        if event.order.status is OrderStatus.CANCELLED:
                            break
            # A Trio-side failure is raised, as itself, in the awaiting task.
            with pytest.raises(OrderNotFound):
                await client.cancel_order("no-such-order", exchange=EX, market=PAIR)
            with pytest.raises(hbtrio.InputValidationError):
                await client.get_order_book(EX, "not a pair")
        assert client.state is ConnectionState.DISCONNECTED
        return seen, order.order_id

    seen, order_id = await in_asyncio(main)
    assert seen[-1] is OrderStatus.CANCELLED
    assert [e.order_id for e in sim.state.order_log] == [order_id]
    await ws_sessions_end(sim)


async def test_sync_place_cancel_book_and_order_events(sim: SimInfo) -> None:
    config = client_config(sim)

    def main() -> tuple[list[OrderStatus], str]:
        with hbtrio.sync.open_client(config) as client:
            assert client.state is ConnectionState.CONNECTED
            book = client.get_order_book(EX, PAIR, depth=5)
            assert isinstance(book, OrderBook) and len(book.bids) == 5 and book.asks
            with client.events(OrderUpdate) as events:
                order = client.place_limit_order(
                    EX, PAIR, Side.BUY, price=limit_price(book), amount=Decimal("0.001")
                )
                assert [o.order_id for o in client.get_open_orders(EX, PAIR)] == [order.order_id]
                client.cancel_order(order.order_id, exchange=EX, market=PAIR)
                seen: list[OrderStatus] = []
                for event in events:
                    assert isinstance(event, OrderUpdate)
                    if event.order.order_id == order.order_id:
                        seen.append(event.order.status)
                        if event.order.status is OrderStatus.CANCELLED:
                            break
            with pytest.raises(OrderNotFound):
                client.cancel_order("no-such-order", exchange=EX, market=PAIR)
            with pytest.raises(hbtrio.InputValidationError):
                client.get_order_book(EX, "not a pair")
            history = [o.order_id for o in client.iter_order_history(market=PAIR)]
            assert history == [order.order_id]
        assert client.state is ConnectionState.DISCONNECTED
        return seen, order.order_id

    seen, order_id = await in_thread(main)
    assert seen[-1] is OrderStatus.CANCELLED
    assert [e.order_id for e in sim.state.order_log] == [order_id]
    await ws_sessions_end(sim)


# -- a stream and a reconnect -----------------------------------------------------------


async def test_aio_stream_survives_reconnects(nursery: trio.Nursery, sim_cert_dir: Path) -> None:
    sim = await start_sim(
        nursery, cert_dir=sim_cert_dir, drop_ws_after_msgs=6, min_update_interval=0
    )
    config = client_config(sim)

    async def main() -> tuple[int, list[ConnectionState]]:
        states: list[ConnectionState] = []
        async with hbtrio.aio.open_client(config) as client:

            async def watch() -> None:
                async with client.events(ConnectionStateChanged) as changes:
                    ready.set()
                    async for event in changes:
                        assert isinstance(event, ConnectionStateChanged)
                        states.append(event.new)

            ready = asyncio.Event()
            watcher = asyncio.create_task(watch())
            await ready.wait()
            count = 0
            async with (
                asyncio.timeout(30),
                client.subscribe_order_book(EX, PAIR, depth=3, update_interval=0.05) as books,
            ):
                async for book in books:
                    assert book.market == PAIR and book.bids
                    count += 1
                    if states.count(ConnectionState.CONNECTED) >= 2 and count >= 20:
                        break
            watcher.cancel()
            with pytest.raises(asyncio.CancelledError):
                await watcher
        return count, states

    count, states = await in_asyncio(main)
    assert count >= 20
    # Dropped and reconnected (at least twice), the stream going on across.
    assert states.count(ConnectionState.DISCONNECTED) >= 2
    assert states.count(ConnectionState.CONNECTED) >= 2
    await ws_sessions_end(sim)


async def test_sync_stream_survives_reconnects(nursery: trio.Nursery, sim_cert_dir: Path) -> None:
    sim = await start_sim(
        nursery, cert_dir=sim_cert_dir, drop_ws_after_msgs=6, min_update_interval=0
    )
    config = client_config(sim)

    def main() -> tuple[int, list[ConnectionState]]:
        states: list[ConnectionState] = []
        with hbtrio.sync.open_client(config) as client:

            def watch() -> None:
                with client.events(ConnectionStateChanged) as changes:
                    ready.set()
                    for event in changes:
                        assert isinstance(event, ConnectionStateChanged)
                        states.append(event.new)
                        if states.count(ConnectionState.CONNECTED) >= 2:
                            return

            ready = threading.Event()
            watcher = threading.Thread(target=watch)
            watcher.start()
            assert ready.wait(10)
            count = 0
            with client.subscribe_order_book(EX, PAIR, depth=3, update_interval=0.05) as books:
                deadline = time.monotonic() + 30
                for book in books:
                    assert book.market == PAIR and book.bids
                    count += 1
                    if not watcher.is_alive() and count >= 20:
                        break
                    assert time.monotonic() < deadline, (count, states)
            watcher.join(10)
        return count, states

    count, states = await in_thread(main)
    assert count >= 20
    assert states.count(ConnectionState.DISCONNECTED) >= 2
    assert states.count(ConnectionState.CONNECTED) >= 2
    await ws_sessions_end(sim)


# -- OrderOutcomeUnknown under a dropped placement ---------------------------------------


def _drop_placement() -> FaultPlan:
    # Half the placement reaches the proxy's upstream side, then both sides drop:
    # the server never completes the request; the client cannot know.
    return FaultPlan(
        Fault(
            FaultKind.DROP,
            Trigger.REQUEST_PARTIAL,
            method="POST",
            path="/trading/orders",
            limit=1,
            name="placement",
        )
    )


@pytest.mark.parametrize("adapter", ["aio", "sync"])
async def test_dropped_placement_is_outcome_unknown(sim: SimInfo, adapter: str) -> None:
    async with open_fault_proxy(
        sim.host,
        sim.port,
        tls_terminate=True,
        upstream_ssl=ssl_context_for(sim),
        plan=FaultPlan(),
    ) as proxy:
        config = client_config(sim, port=proxy.port, ca_file=proxy.ca_path, retries=1)

        async def aio_main() -> OrderOutcomeUnknown:
            async with hbtrio.aio.open_client(config) as client:
                book = await client.get_order_book(EX, PAIR, depth=1)
                await client.get_trading_rules(EX, [PAIR])
                proxy.set_plan(_drop_placement())
                with pytest.raises(OrderOutcomeUnknown) as info:
                    await client.place_limit_order(
                        EX, PAIR, Side.BUY, price=limit_price(book), amount=Decimal("0.001")
                    )
                # The client goes on: the next call works.
                assert (await client.get_order_book(EX, PAIR, depth=1)).bids
                return info.value

        def sync_main() -> OrderOutcomeUnknown:
            with hbtrio.sync.open_client(config) as client:
                book = client.get_order_book(EX, PAIR, depth=1)
                client.get_trading_rules(EX, [PAIR])
                proxy.set_plan(_drop_placement())
                with pytest.raises(OrderOutcomeUnknown) as info:
                    client.place_limit_order(
                        EX, PAIR, Side.BUY, price=limit_price(book), amount=Decimal("0.001")
                    )
                assert client.get_order_book(EX, PAIR, depth=1).bids
                return info.value

        if adapter == "aio":
            unknown = await in_asyncio(aio_main)
        else:
            unknown = await in_thread(sync_main)
        assert proxy.counts["placement"] == 1
    assert unknown.candidates == ()
    assert sim.state.order_log == []  # nothing was created, nothing sent twice


# -- asyncio: anyio, a loop already running, several clients ----------------------------


async def test_anyio_on_the_asyncio_backend(sim: SimInfo) -> None:
    config = client_config(sim)

    async def main() -> tuple[int, bool]:
        async with hbtrio.aio.open_client(config) as client, anyio.create_task_group() as tg:
            books = 0
            two_books = anyio.Event()

            async def watch() -> None:
                nonlocal books
                async with client.subscribe_order_book(EX, PAIR, depth=2) as stream:
                    async for _book in stream:
                        books += 1
                        if books == 2:
                            two_books.set()

            tg.start_soon(watch)
            # An anyio cancel scope cancels a call in the middle (on the Trio side too).
            with anyio.move_on_after(0.001) as scope:
                await client.get_ticker(EX, PAIR)
            for _ in range(3):
                assert (await client.get_order_book(EX, PAIR, depth=1)).bids
            with anyio.fail_after(10):
                await two_books.wait()
            tg.cancel_scope.cancel()
        return books, scope.cancelled_caught

    books, cancelled = await in_thread(lambda: anyio.run(main, backend="asyncio"))
    assert books >= 2
    assert cancelled
    await ws_sessions_end(sim)


async def test_a_loop_running_before_open_client(sim: SimInfo) -> None:
    """As in a notebook: the loop runs first; cells are scheduled onto it."""
    config = client_config(sim)
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever)
    runner.start()
    try:

        async def cell() -> list[str]:
            async with hbtrio.aio.open_client(config) as client:
                return await client.get_accounts()

        def run_cell() -> list[str]:
            return asyncio.run_coroutine_threadsafe(cell(), loop).result(30)

        assert await in_thread(run_cell) == ["master_account"]
        assert await in_thread(run_cell) == ["master_account"]  # a second cell, a new run
    finally:
        loop.call_soon_threadsafe(loop.stop)
        await in_thread(runner.join)
        loop.close()
    await ws_sessions_end(sim)


async def test_several_clients_on_one_loop(sim: SimInfo) -> None:
    config = client_config(sim)

    async def use(client: hbtrio.aio.AsyncClient) -> int:
        books = [await client.get_order_book(EX, PAIR, depth=1) for _ in range(3)]
        return len(books)

    async def main() -> None:
        async with (
            hbtrio.aio.open_client(config) as first,
            hbtrio.aio.open_client(config, engine=hbtrio.EventEngine()) as second,
        ):
            assert await asyncio.gather(use(first), use(second)) == [3, 3]
            async with hbtrio.aio.open_client(config) as third:
                assert await use(third) == 3
            # Closing one client leaves the others working.
            assert await asyncio.gather(use(first), use(second)) == [3, 3]
        # All closed: the next client starts afresh.
        async with hbtrio.aio.open_client(config) as fourth:
            assert await use(fourth) == 3
        assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []

    await in_asyncio(main)
    await ws_sessions_end(sim)


async def test_aio_event_engine_subscribe_and_publish(sim: SimInfo) -> None:
    config = client_config(sim)

    async def main() -> list[str]:
        async with hbtrio.aio.open_client(config) as client:
            async with client.engine.subscribe(hbtrio.ErrorEvent) as events:
                for i in range(3):
                    await client.engine.publish(hbtrio.ErrorEvent(error=f"e{i}", kind="Test"))
                got = []
                async for event in events:
                    got.append(event.error)
                    if len(got) == 3:
                        break
            assert client.engine.subscriber_count >= 0
            assert client.streams.state is ConnectionState.CONNECTED  # held objects forwarded
            with pytest.raises(hbtrio.InputValidationError):
                await client.engine.publish("not an event")  # type: ignore[arg-type]
            return got

    assert await in_asyncio(main) == ["e0", "e1", "e2"]


async def test_aio_cancelled_call_cancels_the_trio_side(
    nursery: trio.Nursery, sim_cert_dir: Path
) -> None:
    sim = await start_sim(nursery, cert_dir=sim_cert_dir, latency_ms=2000)
    config = client_config(sim, timeout=5)

    async def main() -> float:
        async with hbtrio.aio.open_client(config) as client:
            task = asyncio.create_task(client.get_order_book(EX, PAIR, depth=1))
            await asyncio.sleep(0.1)
            t0 = time.monotonic()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            waited = time.monotonic() - t0
            assert (await client.get_order_book(EX, PAIR, depth=1)).bids  # still usable
            return waited

    waited = await in_asyncio(main)
    assert waited < 1.5  # the Trio side was cancelled, not waited out (2 s)


# -- blocking: several threads ----------------------------------------------------------


async def test_sync_client_from_several_threads(sim: SimInfo) -> None:
    config = client_config(sim)

    def main() -> list[str]:
        with hbtrio.sync.open_client(config) as client:
            price = limit_price(client.get_order_book(EX, PAIR, depth=1))
            placed: list[str] = []
            errors: list[BaseException] = []
            lock = threading.Lock()

            def work(i: int) -> None:
                try:
                    for _ in range(3):
                        assert client.get_order_book(EX, PAIR, depth=2).bids
                    order = client.place_limit_order(
                        EX,
                        PAIR,
                        Side.BUY,
                        price=price,
                        amount=Decimal("0.001") + i * Decimal("0.0001"),
                    )
                    with lock:
                        placed.append(order.order_id)
                except BaseException as exc:
                    errors.append(exc)

            threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            assert not errors, errors
            cancelled = client.cancel_all_orders(exchange=EX, market=PAIR)
            assert sorted(cancelled) == sorted(placed)
            return placed

    placed = await in_thread(main)
    assert len(set(placed)) == 8
    assert sorted(e.order_id for e in sim.state.order_log) == sorted(placed)


# -- Ctrl-C and cancellation in real programs -------------------------------------------


def _program_env(sim: SimInfo) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HBTRIO_")}
    assert sim.ca_path is not None
    env.update(
        HBTRIO_HOST=sim.host,
        HBTRIO_PORT=str(sim.port),
        HBTRIO_API_KEY=sim.api_key,
        HBTRIO_CA_FILE=sim.ca_path,
        PYTHONUNBUFFERED="1",
        PYTHONPATH=str(Path(__file__).resolve().parents[2]),
    )
    return env


async def _run_program(sim: SimInfo, mode: str, *, interrupt: bool) -> tuple[int, str, str, float]:
    """Run ``adapter_programs.py MODE``; with ``interrupt``, SIGINT once it says ready."""
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-X", "dev", "-W", "error", str(PROGRAMS), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_program_env(sim),
    )
    assert proc.stdout is not None and proc.stderr is not None
    out = bytearray()
    err = bytearray()
    interrupted_at = 0.0

    async def read(stream: Any, into: bytearray) -> None:
        while chunk := await stream.receive_some(65536):
            into.extend(chunk)

    with trio.fail_after(60):
        async with trio.open_nursery() as n:
            n.start_soon(read, proc.stderr, err)
            async with proc.stdout:
                while b"ready\n" not in out:
                    chunk = await proc.stdout.receive_some(65536)
                    if not chunk:
                        break
                    out.extend(chunk)
                if interrupt and b"ready\n" in out:
                    await trio.sleep(0.3)  # the call is blocked in the middle
                    interrupted_at = time.monotonic()
                    proc.send_signal(signal.SIGINT)
                await read(proc.stdout, out)
            await proc.wait()
    ended = time.monotonic() - interrupted_at if interrupt else 0.0
    return proc.returncode, out.decode(), err.decode(), ended


@pytest.mark.parametrize("mode", ["aio-sigint", "aio-cancel", "sync-sigint"])
async def test_programs_end_cleanly(sim: SimInfo, mode: str) -> None:
    code, out, err, took = await _run_program(sim, mode, interrupt=mode.endswith("sigint"))
    report = f"--- stdout\n{out}\n--- stderr\n{err}"
    assert code == 0, report
    assert err == "", report  # no warning, no ResourceWarning, no traceback
    assert "clean" in out.splitlines(), report
    if mode == "sync-sigint":
        assert "interrupted" in out.splitlines() and "usable" in out.splitlines(), report
    if mode.endswith("sigint"):
        assert took < 10, report
    await ws_sessions_end(sim)  # the program's WebSocket was closed


async def test_ctrl_c_in_the_middle_of_a_blocking_request(
    nursery: trio.Nursery, sim_cert_dir: Path
) -> None:
    # Every answer takes 3 s: the interrupt comes while the first request waits.
    sim = await start_sim(nursery, cert_dir=sim_cert_dir, latency_ms=3000)
    code, out, err, _ = await _run_program(sim, "sync-sigint-request", interrupt=True)
    report = f"--- stdout\n{out}\n--- stderr\n{err}"
    assert code == 0, report
    assert err == "", report
    lines = out.splitlines()
    assert lines[:2] == ["ready", "interrupted"], report
    # Interrupted (0.3 s in), not waited out: the answer would have taken 3 s.
    assert float(lines[2].split()[1]) < 2.5, report
    assert lines[-2:] == ["usable", "clean"], report
    await ws_sessions_end(sim)


# -- opening, closing, misuse --------------------------------------------------------------


async def test_aio_open_errors_are_the_trio_clients(sim: SimInfo) -> None:
    async def main() -> None:
        with pytest.raises(hbtrio.AuthenticationFailed):
            async with hbtrio.aio.open_client(client_config(sim, api_key="admin:wrong")):
                raise AssertionError("opened with a wrong password")
        with pytest.raises(TypeError):
            hbtrio.aio.open_client("not a config")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            hbtrio.aio.open_client(client_config(sim), engine="no")  # type: ignore[arg-type]
        # The failed open left nothing behind; the next client works.
        async with hbtrio.aio.open_client(client_config(sim)) as client:
            assert await client.get_accounts() == ["master_account"]
        assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []

    await in_asyncio(main)


async def test_sync_open_errors_are_the_trio_clients(sim: SimInfo) -> None:
    def main() -> None:
        with (
            pytest.raises(hbtrio.AuthenticationFailed),
            hbtrio.sync.open_client(client_config(sim, api_key="admin:wrong")),
        ):
            raise AssertionError("opened with a wrong password")
        with pytest.raises(TypeError):
            hbtrio.sync.open_client("not a config")  # type: ignore[arg-type]
        with hbtrio.sync.open_client(client_config(sim)) as client:
            assert client.get_accounts() == ["master_account"]

    await in_thread(main)
    # Every client's Trio thread ended with its block.
    assert [t for t in threading.enumerate() if t.name == "hbtrio.sync"] == []


async def test_aio_calls_after_close_and_streams_cut_by_close(sim: SimInfo) -> None:
    config = client_config(sim)

    async def main() -> None:
        entered = asyncio.Event()

        async def consume(client: hbtrio.aio.AsyncClient) -> None:
            async with client.events(hbtrio.TradeEvent) as fills:
                entered.set()
                async for _fill in fills:  # no fill: waits until the client closes
                    pass

        async with hbtrio.aio.open_client(config) as client:
            consumer = asyncio.create_task(consume(client))
            await entered.wait()
            await asyncio.sleep(0.05)
        # The block closed the client under the consumer: it ends with ConnectionFailed.
        with pytest.raises(hbtrio.ConnectionFailed):
            await consumer
        with pytest.raises(hbtrio.ConnectionFailed):
            await client.get_accounts()

    await in_asyncio(main)


async def test_sync_event_engine_and_calls_after_close(sim: SimInfo) -> None:
    config = client_config(sim)

    def main() -> list[str]:
        with hbtrio.sync.open_client(config) as client:
            with client.engine.subscribe(hbtrio.ErrorEvent) as events:
                for i in range(3):
                    client.engine.publish(hbtrio.ErrorEvent(error=f"e{i}", kind="Test"))
                got = [next(events).error for _ in range(3)]
            assert client.engine.stats.published["ErrorEvent"] >= 3
            with pytest.raises(hbtrio.InputValidationError):
                client.engine.publish("not an event")  # type: ignore[arg-type]
            assert client.config is config
            assert "SyncClient" in repr(client)
            # Objects the client holds are forwarded too.
            assert client.streams.state is ConnectionState.CONNECTED
            assert "proxy" in repr(client.streams)
        with pytest.raises(hbtrio.ConnectionFailed):
            client.get_accounts()
        return got

    assert await in_thread(main) == ["e0", "e1", "e2"]
