"""``hbtrio sim`` as a real subprocess: one line, restart on the same port, clean stop."""

from __future__ import annotations

import dataclasses
import signal
import ssl
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trio
from trio_websocket import ConnectionClosed, open_websocket_url

from tests.integration.conftest import RawHTTP, SimProcess, basic_auth, ssl_context_for

Launch = Callable[..., Awaitable[SimProcess]]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_stop_closes_websockets_1001_and_restarts_on_same_port(
    sim_process: Launch, sig: int
) -> None:
    proc = await sim_process("--seed", "5", api_key="alice:s3cret")
    assert (
        proc.line == f"hbtrio sim listening on https://127.0.0.1:{proc.port} (ca: {proc.ca_path})"
    )
    assert proc.ca_path is not None
    ca_before = await trio.Path(proc.ca_path).read_bytes()
    info = proc.info
    http = RawHTTP(info)
    try:
        assert (await http.get("/accounts/")).json() == ["master_account"]
        async with open_websocket_url(
            info.ws_url,
            ssl_context=ssl_context_for(info),
            extra_headers=[(b"authorization", basic_auth(info.api_key))],
        ) as ws:
            assert '"connected"' in await ws.get_message()
            started = trio.current_time()
            assert proc.process is not None
            proc.process.send_signal(sig)
            with pytest.raises(ConnectionClosed) as closed, trio.fail_after(2):
                while True:
                    await ws.get_message()
            assert closed.value.reason.code == 1001
            await ws._stream.aclose()
            assert await proc.stop(None) == 0
            assert trio.current_time() - started < 2.0
    finally:
        await http.aclose()

    port = proc.port
    await proc.start()  # at once, same port, same CA
    assert proc.port == port
    assert await trio.Path(proc.info.ca_path or "").read_bytes() == ca_before
    http = RawHTTP(proc.info)
    try:
        assert (await http.get("/accounts/")).status == 200
    finally:
        await http.aclose()


async def test_no_tls_and_bad_key(sim_process: Launch) -> None:
    proc = await sim_process("--no-tls")
    assert proc.line == f"hbtrio sim listening on http://127.0.0.1:{proc.port} (no TLS)"
    assert await proc.stop() == 0
    bad = await trio.run_process(
        [sys.executable, "-m", "hbtrio", "sim", "--api-key", "nocolon"],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    assert bad.returncode == 2
    assert b"nocolon" not in bad.stderr and bad.stdout == b""


async def test_ca_out_writes_the_ca_that_verifies_the_server(
    sim_process: Launch, tmp_path: Path
) -> None:
    ca_out = tmp_path / "elsewhere" / "hbtrio-ca.pem"  # its directory does not exist yet
    proc = await sim_process("--ca-out", str(ca_out))
    assert proc.line == f"hbtrio sim listening on https://127.0.0.1:{proc.port} (ca: {ca_out})"
    pem = ca_out.read_text()
    assert pem.startswith("-----BEGIN CERTIFICATE-----")
    context = ssl.create_default_context(cafile=str(ca_out))
    assert len(context.get_ca_certs()) == 1  # one CA, no server certificate or key
    assert "PRIVATE KEY" not in pem

    # that file alone verifies the server (hostname included) over a real TLS socket
    http = RawHTTP(dataclasses.replace(proc.info, ca_path=str(ca_out)))
    try:
        assert (await http.get("/accounts/")).json() == ["master_account"]
    finally:
        await http.aclose()
    # ... and verification is real: the system trust store alone refuses the server
    tcp = await trio.open_tcp_stream(proc.host, proc.port)
    stream = trio.SSLStream(tcp, ssl.create_default_context(), server_hostname=proc.host)
    with pytest.raises(trio.BrokenResourceError) as refused:
        await stream.do_handshake()
    assert isinstance(refused.value.__cause__, ssl.SSLCertVerificationError)
    await trio.aclose_forcefully(stream)

    # a restart keeps the CA (kept in --cert-dir) and writes the same file again
    assert await proc.stop() == 0
    ca_out.unlink()
    await proc.start()
    assert ca_out.read_text() == pem


async def test_accounts_option_gives_separate_accounts(sim_process: Launch) -> None:
    proc = await sim_process("--no-tls", "--accounts", "bench_a,bench_b")
    http = RawHTTP(proc.info)
    try:
        assert (await http.get("/accounts/")).json() == ["bench_a", "bench_b"]
        portfolio = (await http.request("POST", "/portfolio/state", {})).json()
        assert set(portfolio) == {"bench_a", "bench_b"}
        for account in ("bench_a", "bench_b"):
            usdt = [r for r in portfolio[account]["binance"] if r["token"] == "USDT"]
            assert usdt and float(usdt[0]["units"]) == 1_000_000
        order = {
            "account_name": "bench_a",
            "connector_name": "binance",
            "trading_pair": "BTC-USDT",
            "trade_type": "BUY",
            "amount": "0.001",
            "order_type": "LIMIT",
            "price": "40000",  # well below the mid: rests
        }
        placed = await http.request("POST", "/trading/orders", order)
        assert placed.status == 201
        order_id = placed.json()["order_id"]

        async def active(account: str) -> list[str]:
            body = {"account_names": [account], "limit": 1000}
            page = (await http.request("POST", "/trading/orders/active", body)).json()
            return [o["order_id"] for o in page["data"]]

        assert await active("bench_a") == [order_id]
        assert await active("bench_b") == []
        path = f"/trading/bench_b/binance/orders/{order_id}/cancel"
        assert (await http.request("POST", path)).status == 404  # not bench_b's order
        missing = await http.request(
            "POST", "/trading/orders", {**order, "account_name": "master_account"}
        )
        assert missing.status == 404
    finally:
        await http.aclose()


@pytest.mark.parametrize("accounts", ["bad name", "a,a", ",", "__market_makers__"])
async def test_bad_accounts_option_is_refused(accounts: str) -> None:
    bad = await trio.run_process(
        [sys.executable, "-m", "hbtrio", "sim", "--no-tls", "--port", "0", "--accounts", accounts],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    assert bad.returncode == 2
    assert b"--accounts" in bad.stderr and bad.stdout == b""
