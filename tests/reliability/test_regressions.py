"""Regression tests of client bugs the reliability suite found."""

from __future__ import annotations

import gc
import warnings
from pathlib import Path

import trio

import hbtrio
from tests.faultproxy import Fault, FaultKind, FaultPlan, Trigger, open_fault_proxy
from tests.reliability._support import (
    close_leaked_ssl_sockets,
    config_for,
    open_client,
    open_ssl_sockets,
    start_sim,
    upstream_context,
)


async def test_failed_websocket_upgrade_does_not_leak_the_socket(
    nursery: trio.Nursery, cert_dir: Path
) -> None:
    info = await start_sim(nursery, cert_dir)
    # Every upgrade after the first is reset once its 101 answer starts to arrive.
    plan = FaultPlan(
        Fault(
            FaultKind.RESET,
            Trigger.REQUEST_SENT,
            method="GET",
            path="/ws/market-data",
            wait_response=True,
            skip=1,
            limit=3,
        )
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with open_fault_proxy(
            info.host, info.port, tls_terminate=True, upstream_ssl=upstream_context(info), plan=plan
        ) as proxy:
            assert proxy.ca_path is not None
            config = config_for(
                "127.0.0.1", proxy.port, proxy.ca_path, reconnect_initial=0.01, reconnect_max=0.05
            )
            async with open_client(config) as client:
                proxy.reset_all()  # drop the WebSocket: the next three upgrades fail
                with trio.fail_after(10):
                    while proxy.counts["reset"] < 4 or (  # noqa: ASYNC110
                        client.state is not hbtrio.ConnectionState.CONNECTED
                    ):
                        await trio.sleep(0.02)
        gc.collect()
    leaks = [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert proxy.counts["reset"] >= 4
    assert not leaks, [str(w.message) for w in leaks]


async def test_reset_before_the_tls_handshake_does_not_leak_the_socket(
    nursery: trio.Nursery, cert_dir: Path
) -> None:
    # Library bug (open): the server resets the connection between the TCP connect
    # and the TLS wrap; ssl.SSLContext.wrap_socket raises (ECONNRESET from its
    # not-connected probe) after taking the descriptor over, and HttpPool._open
    # (hbtrio/_actors/http.py) closes only the plain socket it detached, so the new
    # SSLSocket stays open until collected (then a ResourceWarning, an error under
    # -W error in whichever test runs then). Found by test_passthrough_tls.
    info = await start_sim(nursery, cert_dir)
    before = open_ssl_sockets()
    async with open_fault_proxy(info.host, info.port) as proxy:  # pass-through
        config = config_for(
            "127.0.0.1",
            proxy.port,
            info.ca_path,
            retries=5,
            reconnect_initial=0.01,
            reconnect_max=0.05,
        )
        async with open_client(config, streaming=False) as client:
            proxy.set_plan(FaultPlan(Fault(FaultKind.RESET, Trigger.CONNECT, every=2)))
            for _ in range(5):
                proxy.fault_all(FaultKind.RESET)  # no kept-alive connection left
                with trio.fail_after(10):
                    while proxy.live_connections:  # noqa: ASYNC110
                        await trio.sleep(0.01)
                assert await client.get_accounts() == ["master_account"]
    assert proxy.counts["reset"] >= 10
    # The client is closed: every socket it opened must be closed too.
    leaked = close_leaked_ssl_sockets(before)
    assert leaked == 0, f"{leaked} TLS socket(s) left open"
