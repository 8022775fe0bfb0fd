"""``hbtrio book EXCHANGE MARKET [--depth N]``: an order book, bids beside asks."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Group, RenderableType
from rich.text import Text

from .common import (
    Output,
    add_connection_arguments,
    exchange_arg,
    execute,
    fmt_decimal,
    fmt_time,
    market_arg,
    positive_int,
)
from .render import Column, FittedTable

__all__ = ["add_arguments", "render_book", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the command's arguments.

    Args:
        parser: The command's parser.
    """
    parser.add_argument(
        "exchange", metavar="EXCHANGE", type=exchange_arg, help="connector, e.g. binance"
    )
    parser.add_argument(
        "market", metavar="MARKET", type=market_arg, help="trading pair, e.g. BTC-USDT"
    )
    parser.add_argument("--depth", "-d", type=positive_int, default=10, help="levels per side")
    add_connection_arguments(parser)


_BOOK_COLUMNS = (
    Column("BID SIZE", numeric=True, style="green"),
    Column("BID", numeric=True, style="bold green"),
    Column("ASK", numeric=True, style="bold red"),
    Column("ASK SIZE", numeric=True, style="red"),
)


def render_book(book: Any, depth: int | None = None) -> RenderableType:
    """An order book: a title line, then bids and asks side by side.

    Prices and amounts keep the server's digits and are aligned on the point.

    Args:
        book: A ``hbtrio.OrderBook``.
        depth: Levels per side to show (default: all).

    Returns:
        The renderable (title and table).
    """
    bids = list(book.bids)[:depth]
    asks = list(book.asks)[:depth]
    title = Text(f"{book.exchange} {book.market}", "bold")
    title.append(f"  {fmt_time(book.timestamp)} UTC")
    if bids and asks:
        spread = asks[0].price - bids[0].price
        title.append(f"  spread {fmt_decimal(spread)}")
    rows: list[list[str]] = []
    for i in range(max(len(bids), len(asks))):
        bid = bids[i] if i < len(bids) else None
        ask = asks[i] if i < len(asks) else None
        rows.append(
            [
                fmt_decimal(bid.amount) if bid else "",
                fmt_decimal(bid.price) if bid else "",
                fmt_decimal(ask.price) if ask else "",
                fmt_decimal(ask.amount) if ask else "",
            ]
        )
    if not rows:
        return Group(title, Text("(empty book)"))
    return FittedTable(_BOOK_COLUMNS, rows, title=title)


def run(args: argparse.Namespace) -> int:
    """Print the order book.

    Args:
        args: Parsed arguments.

    Returns:
        The exit code.
    """

    async def body(client: Any) -> Output:
        book = await client.get_order_book(args.exchange, args.market, depth=args.depth)
        return Output(book, render_book(book, args.depth))

    return execute(args, "book", body)
