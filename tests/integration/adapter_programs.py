"""Programs run by ``test_adapters.py`` in subprocesses (``-X dev -W error``).

``python adapter_programs.py MODE`` with the simulator in ``HBTRIO_*``:

* ``aio-sigint``: an asyncio program (``asyncio.run``) blocked in the middle of
  a stream, interrupted with SIGINT by the test.
* ``aio-cancel``: an asyncio program whose task is cancelled in the middle of a call.
* ``sync-sigint``: a blocking program interrupted by SIGINT during a blocking
  call (a stream's ``next``), which then makes another call (the client is still
  usable) and closes.
* ``sync-sigint-request``: the same in the middle of a request method.

Each prints ``ready`` when the test may interrupt it and ``clean`` when it ended
with no task left and the client closed; the test checks stderr stays empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time

import hbtrio
import hbtrio.aio
import hbtrio.sync

EX, PAIR = "binance", "BTC-USDT"


def _others() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]


async def aio_sigint() -> None:
    config = hbtrio.ClientConfig.from_env()
    client = None
    try:
        async with hbtrio.aio.open_client(config) as client:
            assert (await client.get_order_book(EX, PAIR, depth=1)).bids
            async with client.events(hbtrio.TradeEvent) as fills:
                print("ready")
                async for _fill in fills:  # no fill comes: blocked until SIGINT
                    pass
    finally:
        assert client is not None and client.state is hbtrio.ConnectionState.DISCONNECTED
        assert _others() == [], _others()
        print("closed")


async def aio_cancel() -> None:
    config = hbtrio.ClientConfig.from_env()
    async with hbtrio.aio.open_client(config) as client:
        print("ready")
        for _ in range(5):
            task = asyncio.create_task(client.get_ticker(EX, PAIR))
            await asyncio.sleep(0.002)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        assert (await client.get_order_book(EX, PAIR, depth=1)).bids

        # A task cancelled while it holds a stream open.
        async def stream() -> None:
            async with client.subscribe_order_book(EX, PAIR, depth=1) as books:
                async for _book in books:
                    pass

        streaming = asyncio.create_task(stream())
        await asyncio.sleep(0.3)
        streaming.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await streaming
    assert client.state is hbtrio.ConnectionState.DISCONNECTED
    assert _others() == [], _others()
    print("clean")


def sync_sigint() -> None:
    config = hbtrio.ClientConfig.from_env()
    with hbtrio.sync.open_client(config) as client:
        assert client.get_order_book(EX, PAIR, depth=1).bids
        try:
            with client.events(hbtrio.TradeEvent) as fills:
                print("ready")
                for _fill in fills:  # no fill comes: blocked until SIGINT
                    pass
        except KeyboardInterrupt:
            print("interrupted")
        assert client.get_order_book(EX, PAIR, depth=1).bids
        print("usable")
    assert client.state is hbtrio.ConnectionState.DISCONNECTED
    print("clean")


def sync_sigint_request() -> None:
    """Interrupted in the middle of a request (the simulator answers slowly)."""
    config = hbtrio.ClientConfig.from_env()
    with hbtrio.sync.open_client(config) as client:
        print("ready")
        started = time.monotonic()
        try:
            client.get_order_book(EX, PAIR, depth=1)
        except KeyboardInterrupt:
            print("interrupted")
            print(f"after {time.monotonic() - started:.2f} s")
        assert client.get_order_book(EX, PAIR, depth=1).bids
        print("usable")
    assert client.state is hbtrio.ConnectionState.DISCONNECTED
    print("clean")


def main(mode: str) -> int:
    if mode == "aio-sigint":
        try:
            asyncio.run(aio_sigint())
        except KeyboardInterrupt:
            print("clean")
            return 0
        return 1
    if mode == "aio-cancel":
        asyncio.run(aio_cancel())
        return 0
    if mode == "sync-sigint":
        sync_sigint()
        return 0
    if mode == "sync-sigint-request":
        sync_sigint_request()
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
