"""Fixtures of the reliability and security suite (helpers live in ``_support``)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from hbtrio.sim import SimInfo
from tests.reliability._support import start_sim


@pytest.fixture(scope="session")
def cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One simulator certificate directory shared by the session."""
    return tmp_path_factory.mktemp("reliability-certs")


@pytest.fixture(scope="session")
def thread_sim(cert_dir: Path) -> Iterator[SimInfo]:
    """A simulator running in its own thread (its own Trio loop) for the whole session.

    Hypothesis runs every example of an async test in a fresh ``trio.run``; a
    simulator in a thread lets all of them share one server.
    """
    ready: queue.Queue[tuple[SimInfo, trio.lowlevel.TrioToken, trio.CancelScope]] = queue.Queue()

    async def main() -> None:
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:
                info = await start_sim(nursery, cert_dir, seed=5)
                ready.put((info, trio.lowlevel.current_trio_token(), scope))

    thread = threading.Thread(target=trio.run, args=(main,), name="thread-sim", daemon=True)
    thread.start()
    info, token, scope = ready.get(timeout=30)
    yield info
    trio.from_thread.run_sync(scope.cancel, trio_token=token)
    thread.join(timeout=10)
