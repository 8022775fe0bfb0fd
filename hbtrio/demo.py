"""``hbtrio demo``: the simulator in-process over TLS, and a client at work.

Starts the bundled simulator on a free loopback port with a fresh CA written to
a temporary directory, connects a client that verifies the server's certificate
with that CA, shows balances and an order book, places and cancels orders,
streams live events for a few seconds, and exits 0. Needs ``hbtrio[sim]``.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
from collections.abc import Callable
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import trio
from rich.console import RenderableType
from rich.text import Text

from ._cli_ops.balances import render_balances
from ._cli_ops.book import render_book
from ._cli_ops.common import fmt_decimal
from ._cli_ops.orders import render_orders
from ._cli_ops.render import make_console, render_text
from ._config import ClientConfig
from ._errors import HbtrioError
from .events import (
    CandleUpdate,
    ConnectionStateChanged,
    ErrorEvent,
    Event,
    MarketTrades,
    OrderBookUpdate,
    OrderUpdate,
    TickerUpdate,
    TradeEvent,
)
from .models import OrderBook, OrderType, Side

__all__ = ["add_arguments", "run", "run_demo"]

EXCHANGE = "binance"
MARKET = "BTC-USDT"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the command's arguments.

    Args:
        parser: The command's parser.
    """
    parser.add_argument(
        "--seconds", type=float, default=4.0, help="how long to stream live events (default 4)"
    )
    parser.add_argument("--seed", type=int, default=7, help="seed of the simulated market")


_KIND_STYLES = {
    "book": "blue",
    "order": "yellow",
    "fill": "bold green",
    "trade": "magenta",
    "ticker": "cyan",
    "conn": "dim",
    "error": "bold red",
    "placed": "bold yellow",
}


def _heading(text: str) -> Text:
    return Text(f"== {text}", "bold cyan")


def _default_write() -> Callable[[RenderableType], None]:
    console = make_console()

    def write(renderable: RenderableType) -> None:
        console.file.write(render_text(console, renderable))
        console.file.flush()

    return write


class _Printer:
    """Readable, time-stamped lines; order books at most a few per second."""

    def __init__(self, write: Callable[[RenderableType], None]) -> None:
        self._write = write
        self._start = trio.current_time()
        self._last_book: dict[str, float] = {}

    def line(self, kind: str, text: str) -> None:
        elapsed = trio.current_time() - self._start
        line = Text(f"  +{elapsed:5.2f}s  ", "dim")
        line.append(f"{kind:<7}", _KIND_STYLES.get(kind, "bold"))
        line.append(f" {text}")
        self._write(line)

    def book(self, book: OrderBook) -> None:
        now = trio.current_time()
        key = f"{book.exchange}/{book.market}"
        if now - self._last_book.get(key, -1.0) < 0.5:
            return
        self._last_book[key] = now
        bid = book.bids[0] if book.bids else None
        ask = book.asks[0] if book.asks else None
        bid_text = f"{fmt_decimal(bid.price)} x {fmt_decimal(bid.amount)}" if bid else "-"
        ask_text = f"{fmt_decimal(ask.price)} x {fmt_decimal(ask.amount)}" if ask else "-"
        self.line("book", f"bid {bid_text}  |  ask {ask_text}")

    def event(self, event: Event) -> None:
        if isinstance(event, OrderUpdate):
            o = event.order
            self.line(
                "order",
                f"{o.order_id} {o.status.value} "
                f"{fmt_decimal(o.filled_amount)}/{fmt_decimal(o.amount)}",
            )
        elif isinstance(event, TradeEvent):
            t = event.trade
            self.line(
                "fill",
                f"{t.order_id} {fmt_decimal(t.amount)} @ {fmt_decimal(t.price)} "
                f"fee {fmt_decimal(t.fee_paid)} {t.fee_currency}",
            )
        elif isinstance(event, MarketTrades):
            for trade in event.trades[-3:]:
                self.line(
                    "trade",
                    f"{event.exchange} {event.market}  {trade.side.value} "
                    f"{fmt_decimal(trade.amount)} @ {fmt_decimal(trade.price)}",
                )
        elif isinstance(event, TickerUpdate):
            tick = event.ticker
            self.line(
                "ticker",
                f"{tick.exchange} {tick.market}  last {fmt_decimal(tick.last)}  "
                f"bid {fmt_decimal(tick.bid)}  ask {fmt_decimal(tick.ask)}",
            )
        elif isinstance(event, ConnectionStateChanged):
            self.line("conn", f"{event.old.value} -> {event.new.value}")
        elif isinstance(event, ErrorEvent):
            self.line("error", f"{event.kind}: {event.error}")
        elif isinstance(event, OrderBookUpdate):
            self.book(event.book)
        elif isinstance(event, CandleUpdate):
            self.line("candle", f"{event.exchange} {event.market} {event.interval}")


async def run_demo(
    seconds: float = 4.0,
    *,
    seed: int = 7,
    write: Callable[[RenderableType], None] | None = None,
    open_client: Callable[..., Any] | None = None,
) -> None:
    """Run the demo.

    Args:
        seconds: How long to stream live events.
        seed: Seed of the simulated market.
        write: Prints one line or table (default: standard output, fitted to the
            terminal, in colour on a terminal).
        open_client: The client factory (default ``hbtrio.open_client``).

    Raises:
        HbtrioError: The client failed.
    """
    from .sim import serve

    if write is None:
        write = _default_write()
    if open_client is None:
        import hbtrio

        open_client = getattr(hbtrio, "open_client")  # noqa: B009
    api_key = f"demo:{secrets.token_urlsafe(12)}"
    with tempfile.TemporaryDirectory(prefix="hbtrio-demo-") as tmp:
        ca_path = Path(tmp) / "ca.pem"
        async with trio.open_nursery() as nursery:
            info = await nursery.start(
                partial(
                    serve,
                    host="127.0.0.1",
                    port=0,
                    api_key=api_key,
                    seed=seed,
                    tls=True,
                    cert_dir=Path(tmp) / "certs",
                    ca_out=ca_path,
                    min_update_interval=0.1,
                )
            )
            write(f"simulator listening on {info.url} (TLS; its CA written to {ca_path})")
            config = ClientConfig(
                host=info.host, port=info.port, api_key=api_key, tls=True, ca_file=str(ca_path)
            )
            async with open_client(config) as client:
                write(
                    f"client connected and verified the server's certificate: {client.state.value}"
                )
                await _tour(client, write)
                await _stream(client, seconds, write)
            write("client closed; stopping the simulator")
            nursery.cancel_scope.cancel()
    write("demo finished")


async def _tour(client: Any, write: Callable[[RenderableType], None]) -> None:
    write("")
    write(_heading("balances"))
    balances = await client.get_balances(exchange=EXCHANGE)
    write(render_balances(sorted(balances, key=lambda b: b.asset), accounts=False))

    write("")
    write(_heading(f"order book {EXCHANGE} {MARKET}"))
    book = await client.get_order_book(EXCHANGE, MARKET, depth=5)
    write(render_book(book, 5))

    best_bid = book.bids[0].price
    best_ask = book.asks[0].price
    buy_price = (best_bid * Decimal("0.99")).quantize(Decimal("0.01"))
    sell_price = (best_ask * Decimal("1.01")).quantize(Decimal("0.01"))
    write("")
    write(
        _heading(f"placing a limit buy at {buy_price} and a limit sell at {sell_price} (resting)")
    )
    buy = await client.place_order(
        EXCHANGE,
        MARKET,
        Side.BUY,
        amount=Decimal("0.01"),
        order_type=OrderType.LIMIT,
        price=buy_price,
        wait_accepted=True,
    )
    sell = await client.place_order(
        EXCHANGE,
        MARKET,
        Side.SELL,
        amount=Decimal("0.01"),
        order_type=OrderType.LIMIT,
        price=sell_price,
        wait_accepted=True,
    )
    write(render_orders(await client.get_open_orders(exchange=EXCHANGE, market=MARKET)))

    write("")
    write(_heading(f"cancelling {buy.order_id}, then every remaining order"))
    await client.cancel_order(buy.order_id, exchange=EXCHANGE, market=MARKET)
    cancelled = await client.cancel_all_orders(exchange=EXCHANGE)
    write(f"cancel requested for: {', '.join([buy.order_id, *cancelled]) or '-'}")
    del sell


async def _stream(client: Any, seconds: float, write: Callable[[RenderableType], None]) -> None:
    write("")
    write(_heading(f"live events for {seconds:g} s (a market buy is placed halfway)"))
    printer = _Printer(write)
    async with trio.open_nursery() as nursery:

        async def books() -> None:
            async with client.subscribe_order_book(EXCHANGE, MARKET, depth=5) as stream:
                async for book in stream:
                    printer.book(book)

        async def trades() -> None:
            async with client.subscribe_trades(EXCHANGE, MARKET) as stream:
                async for trade in stream:
                    printer.line(
                        "trade",
                        f"{trade.side.value} {fmt_decimal(trade.amount)} @ "
                        f"{fmt_decimal(trade.price)}",
                    )

        async def own_events() -> None:
            async with client.events() as events:
                async for event in events:
                    if isinstance(
                        event, OrderUpdate | TradeEvent | ConnectionStateChanged | ErrorEvent
                    ):
                        printer.event(event)

        async def market_buy() -> None:
            await trio.sleep(seconds / 2)
            order = await client.place_order(
                EXCHANGE, MARKET, Side.BUY, amount=Decimal("0.02"), order_type=OrderType.MARKET
            )
            printer.line("placed", f"market buy 0.02 {MARKET}: {order.order_id}")

        nursery.start_soon(books)
        nursery.start_soon(trades)
        nursery.start_soon(own_events)
        nursery.start_soon(market_buy)
        await trio.sleep(seconds)
        nursery.cancel_scope.cancel()


def run(args: argparse.Namespace) -> int:
    """Run the demo.

    Args:
        args: Parsed arguments.

    Returns:
        0 on success, 1 if the client failed.
    """
    if not 0 < args.seconds <= 600:
        print("hbtrio demo: --seconds must be in (0, 600]", file=sys.stderr)
        return 2
    try:
        trio.run(partial(run_demo, args.seconds, seed=args.seed))
    except KeyboardInterrupt:
        print("hbtrio demo: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        raise  # the reader of standard output went away: hbtrio.cli ends quietly
    except (HbtrioError, OSError) as exc:
        print(f"hbtrio demo: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    return 0
