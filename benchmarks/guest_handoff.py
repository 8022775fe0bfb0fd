"""The fixed cost of running Trio as a guest on an asyncio loop, without any I/O.

    python benchmarks/guest_handoff.py [--rounds 3000]

``hbtrio.aio`` runs the Trio client with ``trio.lowlevel.start_guest_run`` (the design
issue 16 asks for). This measures what that costs before any request is made, so the
``hbtrio-aio`` contender's overhead in ``hbtrio bench`` can be read against its floor:

- ``thread_roundtrip``: an asyncio task hands a future to a plain thread, which
  resolves it with ``call_soon_threadsafe`` (two thread hand-offs, the least any
  cross-thread bridge pays);
- ``guest_empty_op``: an asyncio task asks the guest Trio run (``TrioToken.run_sync_soon``)
  to start a task that only checkpoints and resolves the asyncio future; while Trio
  waits for I/O in its helper thread, this is what every call through the bridge pays
  before its own work (a request adds one more wait in that thread);
- the number of host callbacks (thread-safe and not) Trio asked for per operation.

Prints ``RESULT`` lines with p50/p99 in microseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import trio


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1e6


async def thread_roundtrip(rounds: int) -> list[float]:
    """Two hand-offs: asyncio -> plain thread -> asyncio."""
    loop = asyncio.get_running_loop()
    inbox: queue.SimpleQueue[asyncio.Future[int] | None] = queue.SimpleQueue()

    def worker() -> None:
        while (fut := inbox.get()) is not None:
            loop.call_soon_threadsafe(fut.set_result, 1)

    thread = threading.Thread(target=worker)
    thread.start()
    samples = []
    try:
        for _ in range(rounds):
            fut: asyncio.Future[int] = loop.create_future()
            start = time.perf_counter()
            inbox.put(fut)
            await fut
            samples.append(time.perf_counter() - start)
    finally:
        inbox.put(None)
        thread.join()
    return samples


async def guest_empty_op(rounds: int) -> tuple[list[float], dict[str, int]]:
    """An empty Trio task per operation, through a guest run on this loop."""
    loop = asyncio.get_running_loop()
    calls = {"threadsafe": 0, "not_threadsafe": 0}
    ready: asyncio.Future[tuple[trio.lowlevel.TrioToken, trio.Nursery]] = loop.create_future()
    finished: asyncio.Future[None] = loop.create_future()

    def threadsafe(fn: Callable[[], Any]) -> None:
        calls["threadsafe"] += 1
        loop.call_soon_threadsafe(fn)

    def not_threadsafe(fn: Callable[[], Any]) -> None:
        calls["not_threadsafe"] += 1
        loop.call_soon(fn)

    async def trio_main() -> None:
        async with trio.open_nursery() as nursery:
            ready.set_result((trio.lowlevel.current_trio_token(), nursery))
            await trio.sleep_forever()

    trio.lowlevel.start_guest_run(
        trio_main,
        run_sync_soon_threadsafe=threadsafe,
        run_sync_soon_not_threadsafe=not_threadsafe,
        done_callback=lambda outcome: finished.set_result(None),
        host_uses_signal_set_wakeup_fd=True,
    )
    token, nursery = await ready
    for key in calls:
        calls[key] = 0
    samples = []
    for _ in range(rounds):
        fut: asyncio.Future[int] = loop.create_future()

        async def op(fut: asyncio.Future[int] = fut) -> None:
            await trio.lowlevel.checkpoint()
            fut.set_result(1)  # guest ticks run on the loop's thread

        start = time.perf_counter()
        token.run_sync_soon(nursery.start_soon, op)
        await fut
        samples.append(time.perf_counter() - start)
    per_op = {key: round(value / rounds, 2) for key, value in calls.items()}
    token.run_sync_soon(nursery.cancel_scope.cancel)
    await finished
    return samples, per_op


async def main(rounds: int) -> None:
    """Run both measurements and print RESULT lines."""
    plain = await thread_roundtrip(rounds)
    print(
        "RESULT scenario=thread_roundtrip"
        f" p50_us={_pct(plain, 0.5):.1f} p99_us={_pct(plain, 0.99):.1f}"
    )
    guest, per_op = await guest_empty_op(rounds)
    print(
        "RESULT scenario=guest_empty_op"
        f" p50_us={_pct(guest, 0.5):.1f} p99_us={_pct(guest, 0.99):.1f}"
        f" host_calls_threadsafe={per_op['threadsafe']}"
        f" host_calls_not_threadsafe={per_op['not_threadsafe']}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3000)
    asyncio.run(main(parser.parse_args().rounds))
