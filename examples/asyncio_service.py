"""An asyncio web service (FastAPI-style lifespan) serving quotes from one hbtrio client.

The service opens one ``hbtrio.aio`` client for its whole life (as a FastAPI or
Starlette ``lifespan`` would), serves ``GET /book`` and ``POST /orders`` from plain
``asyncio`` streams, and shares the client between every request handler. To keep
it self-contained it then calls itself over HTTP and shuts down.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from decimal import Decimal

import hbtrio
import hbtrio.aio

EXCHANGE, MARKET = "binance", "BTC-USDT"


@asynccontextmanager
async def lifespan() -> AsyncIterator[hbtrio.aio.AsyncClient]:
    """What a FastAPI ``lifespan`` would do: one client for the service's life."""
    async with hbtrio.aio.open_client(hbtrio.ClientConfig.from_env()) as client:
        yield client


async def handle(client: hbtrio.aio.AsyncClient, method: str, path: str) -> tuple[int, object]:
    """One request -> (status, JSON body). hbtrio's typed errors map to statuses."""
    try:
        if method == "GET" and path == "/book":
            book = await client.get_order_book(EXCHANGE, MARKET, depth=3)
            return 200, {
                "bid": str(book.bids[0].price),
                "ask": str(book.asks[0].price),
            }
        if method == "POST" and path == "/orders":
            book = await client.get_order_book(EXCHANGE, MARKET, depth=1)
            price = (book.bids[0].price * Decimal("0.9")).quantize(Decimal("0.01"))
            order = await client.place_limit_order(
                EXCHANGE, MARKET, hbtrio.Side.BUY, price=price, amount=Decimal("0.001")
            )
            await client.cancel_order(order.order_id, exchange=EXCHANGE, market=MARKET)
            return 201, {"order_id": order.order_id, "status": "cancel requested"}
    except hbtrio.InputValidationError as exc:
        return 422, {"detail": str(exc)}
    except hbtrio.HbtrioError as exc:
        return 502, {"detail": type(exc).__name__}
    return 404, {"detail": "not found"}


def serve(
    client: hbtrio.aio.AsyncClient,
) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = (await reader.readline()).decode().split()
        while (await reader.readline()) not in (b"\r\n", b""):
            pass  # headers
        status, body = await handle(client, request[0], request[1])
        payload = json.dumps(body).encode()
        writer.write(
            f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n"
            f"content-length: {len(payload)}\r\nconnection: close\r\n\r\n".encode()
            + payload
        )
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    return on_connection


async def fetch(port: int, method: str, path: str) -> tuple[int, object]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"{method} {path} HTTP/1.1\r\nhost: localhost\r\n\r\n".encode())
    await writer.drain()
    response = await reader.read()
    writer.close()
    await writer.wait_closed()
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


async def main() -> None:
    async with lifespan() as client:
        server = await asyncio.start_server(serve(client), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            # Several requests at once share the one client.
            books = await asyncio.gather(*(fetch(port, "GET", "/book") for _ in range(5)))
            for status, body in books[:1]:
                print(f"GET /book -> {status} {body}")
            print(f"concurrent requests answered: {sum(s == 200 for s, _ in books)}")
            status, body = await fetch(port, "POST", "/orders")
            print(f"POST /orders -> {status} {body}")
            status, body = await fetch(port, "GET", "/nowhere")
            print(f"GET /nowhere -> {status}")
    print("service stopped; client closed:", client.state.name)


if __name__ == "__main__":
    asyncio.run(main())
