"""Benchmark of the simulator itself (not a test).

Reports:

1. order placements per second that one simulator process (pinned to one core)
   serves over TLS with keep-alive, measured by a raw-socket HTTP/1.1 client in
   a separate process (pinned to another core when there is one);
2. order-book snapshots per second one WebSocket subscription receives at
   ``update_interval`` 0 (``--min-update-interval 0``, a high book change rate).

Each measurement is repeated ``--rounds`` times (3) with a fresh simulator, and
the medians are printed (the machine is shared: single runs are noisy).

Run: ``python benchmarks/sim_bench.py [--orders 5000] [--ws-seconds 5] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _start_sim(cert_dir: Path, *extra: str) -> tuple[subprocess.Popen[str], int]:
    cmd = [
        sys.executable,
        "-m",
        "hbtrio",
        "sim",
        "--port",
        "0",
        "--cert-dir",
        str(cert_dir),
        *extra,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise RuntimeError(f"simulator did not start: {line!r}")
    port = int(line.split(" listening on ", 1)[1].split(" ", 1)[0].rsplit(":", 1)[1])
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(proc.pid, {0})
        cpus = os.sched_getaffinity(0)
        if len(cpus) > 1:
            os.sched_setaffinity(0, cpus - {0})
    return proc, port


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _read_response(sock: ssl.SSLSocket, buffer: bytearray) -> tuple[int, bytes]:
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        buffer += chunk
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    body = bytearray(rest)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        body += chunk
    buffer[:] = body[length:]
    return status, bytes(body[:length])


def bench_placements(port: int, ca: Path, orders: int) -> tuple[float, float]:
    """Place ``orders`` limit orders on one kept-alive TLS connection.

    Returns:
        ``(placements per second, p50 latency in microseconds)``.
    """
    ctx = ssl.create_default_context(cafile=str(ca))
    raw = socket.create_connection(("127.0.0.1", port))
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    auth = base64.b64encode(b"admin:admin").decode()
    requests = []
    for side, price in (("BUY", "50000"), ("SELL", "70000")):
        body = json.dumps(
            {
                "account_name": "master_account",
                "connector_name": "binance",
                "trading_pair": "BTC-USDT",
                "trade_type": side,
                "amount": "0.001",
                "order_type": "LIMIT",
                "price": price,
            }
        ).encode()
        head = (
            "POST /trading/orders HTTP/1.1\r\nhost: 127.0.0.1\r\n"
            f"authorization: Basic {auth}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n\r\n"
        ).encode()
        requests.append(head + body)
    buffer = bytearray()
    latencies = []
    for i in range(200):  # warm-up
        sock.sendall(requests[i % 2])
        _read_response(sock, buffer)
    start = time.perf_counter()
    for i in range(orders):
        t0 = time.perf_counter()
        sock.sendall(requests[i % 2])
        status, _ = _read_response(sock, buffer)
        latencies.append(time.perf_counter() - t0)
        if status != 201:
            raise RuntimeError(f"unexpected status {status}")
    elapsed = time.perf_counter() - start
    sock.close()
    return orders / elapsed, statistics.median(latencies) * 1e6


def bench_snapshots(port: int, ca: Path, seconds: float) -> float:
    """Count order-book snapshots one subscription receives at update_interval 0."""
    import trio
    from trio_websocket import open_websocket_url

    async def run() -> float:
        ctx = ssl.create_default_context(cafile=str(ca))
        auth = b"Basic " + base64.b64encode(b"admin:admin")
        url = f"wss://127.0.0.1:{port}/ws/market-data"
        async with open_websocket_url(
            url, ssl_context=ctx, extra_headers=[(b"authorization", auth)]
        ) as ws:
            await ws.get_message()  # connected
            await ws.send_message(
                json.dumps(
                    {
                        "action": "subscribe",
                        "type": "order_book",
                        "connector": "binance",
                        "trading_pair": "BTC-USDT",
                        "depth": 10,
                        "update_interval": 0,
                    }
                )
            )
            count = 0
            deadline = trio.current_time() + seconds
            with trio.move_on_at(deadline):
                while True:
                    message = await ws.get_message()
                    if '"type":"order_book"' in message:
                        count += 1
            return count / seconds

    return trio.run(run)


def _spread(values: list[float]) -> str:
    if len(values) < 2:
        return ""
    return f", {min(values):,.0f}-{max(values):,.0f} over {len(values)} rounds"


def main() -> int:
    """Run both benchmarks ``--rounds`` times and print the medians."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=5000)
    parser.add_argument("--ws-seconds", type=float, default=5.0)
    parser.add_argument("--book-rate", type=float, default=2000.0)
    parser.add_argument(
        "--rounds", type=int, default=3, help="repeat each measurement; medians are reported"
    )
    args = parser.parse_args()
    rates: list[float] = []
    p50s: list[float] = []
    snaps: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        cert_dir = Path(tmp)
        for _ in range(max(1, args.rounds)):
            proc, port = _start_sim(cert_dir)
            try:
                rate, p50 = bench_placements(port, cert_dir / "ca.pem", args.orders)
            finally:
                _stop(proc)
            rates.append(rate)
            p50s.append(p50)
            proc, port = _start_sim(
                cert_dir, "--min-update-interval", "0", "--book-rate", str(args.book_rate)
            )
            try:
                snaps.append(bench_snapshots(port, cert_dir / "ca.pem", args.ws_seconds))
            finally:
                _stop(proc)
    print(
        f"placements: {statistics.median(rates):,.0f}/s over TLS keep-alive on one core "
        f"(p50 {statistics.median(p50s):.0f} us; median{_spread(rates)})"
    )
    print(
        f"snapshots: {statistics.median(snaps):,.0f}/s on one order_book subscription at "
        f"update_interval 0 (book rate {args.book_rate:g}/s per market; "
        f"median{_spread(snaps)})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
