"""``hbtrio orders [--exchange X] [--market M] [--history]``: open orders or history."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import RenderableType
from rich.text import Text

from ..models import OrderStatus
from .common import (
    EXIT_USAGE,
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

__all__ = ["SIDE_STYLES", "STATUS_STYLES", "add_arguments", "render_orders", "run"]

_STATUSES = tuple(status.value for status in OrderStatus)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the command's arguments.

    Args:
        parser: The command's parser.
    """
    parser.add_argument("--exchange", "-e", type=exchange_arg, help="only this connector")
    parser.add_argument("--market", "-m", type=market_arg, help="only this trading pair")
    parser.add_argument(
        "--history", action="store_true", help="the order history instead of open orders"
    )
    parser.add_argument(
        "--status", type=str.upper, choices=_STATUSES, help="with --history: only this status"
    )
    parser.add_argument(
        "--limit", type=positive_int, default=100, help="with --history: at most N orders"
    )
    add_connection_arguments(parser)


SIDE_STYLES = {"BUY": "green", "SELL": "red"}
"""Colour of an order's side."""
STATUS_STYLES = {
    "SUBMITTED": "yellow",
    "OPEN": "cyan",
    "PARTIALLY_FILLED": "cyan",
    "PENDING_CANCEL": "yellow",
    "FILLED": "green",
    "CANCELLED": "dim",
    "FAILED": "bold red",
}
"""Colour of an order's status."""

_COLUMNS = (
    Column("ORDER ID"),
    Column("EXCHANGE", drop=4),
    Column("MARKET", drop=1),
    Column("SIDE"),
    Column("TYPE", drop=3),
    Column("AMOUNT", numeric=True),
    Column("PRICE", numeric=True),
    Column("FILLED", numeric=True, drop=2),
    Column("STATUS"),
    Column("CREATED (UTC)", drop=5),
)
_REASON = Column("REASON", wrap=True, drop=6)


def render_orders(orders: Sequence[Any]) -> RenderableType:
    """Orders as a table fitted to the terminal.

    The least important columns are hidden on a narrow terminal. The reason of a
    ``FAILED`` order is a ``REASON`` column, or a line below the table when the
    column does not fit.

    Args:
        orders: ``hbtrio.Order`` values.

    Returns:
        The table (or ``no orders``).
    """
    if not orders:
        return "no orders"
    reasons = any(o.error_message for o in orders)
    rows = [
        [
            o.order_id,
            o.exchange,
            o.market,
            Text(o.side.value, SIDE_STYLES.get(o.side.value, "")),
            o.order_type.value,
            fmt_decimal(o.amount),
            fmt_decimal(o.price),
            fmt_decimal(o.filled_amount),
            Text(o.status.value, STATUS_STYLES.get(o.status.value, "")),
            fmt_time(o.created_at),
            *([o.error_message or ""] if reasons else []),
        ]
        for o in orders
    ]
    columns = [*_COLUMNS, *([_REASON] if reasons else [])]
    lines = [
        Text(f"{o.order_id} {o.status.value}: {o.error_message}", "red")
        for o in orders
        if o.error_message
    ]
    return FittedTable(columns, rows, when_hidden={_REASON.header: lines})


def run(args: argparse.Namespace) -> int:
    """Print open orders, or the order history.

    Args:
        args: Parsed arguments.

    Returns:
        The exit code.
    """
    if args.status is not None and not args.history:
        print("hbtrio orders: --status needs --history", file=sys.stderr)
        return EXIT_USAGE

    async def body(client: Any) -> Output:
        if args.history:
            orders: list[Any] = []
            cursor = None
            while len(orders) < args.limit:
                page = await client.get_order_history(
                    exchange=args.exchange,
                    market=args.market,
                    status=args.status,
                    limit=min(100, args.limit - len(orders)),
                    cursor=cursor,
                )
                orders.extend(page.items)
                if not page.has_more or not page.next_cursor:
                    break
                cursor = page.next_cursor
            orders = orders[: args.limit]
        else:
            orders = list(await client.get_open_orders(exchange=args.exchange, market=args.market))
        return Output(orders, render_orders(orders))

    return execute(args, "orders", body)
