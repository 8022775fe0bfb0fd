"""``hbtrio balances [--exchange X] [--refresh]``: account balances."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from .common import (
    Output,
    add_connection_arguments,
    exchange_arg,
    execute,
    fmt_decimal,
)
from .render import Column, FittedTable

__all__ = ["add_arguments", "render_balances", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the command's arguments.

    Args:
        parser: The command's parser.
    """
    parser.add_argument("--exchange", "-e", type=exchange_arg, help="only this connector")
    parser.add_argument("--refresh", action="store_true", help="ask the server to refresh first")
    add_connection_arguments(parser)


_COLUMNS = (
    Column("ACCOUNT", drop=1),
    Column("EXCHANGE"),
    Column("ASSET", style="bold"),
    Column("TOTAL", numeric=True),
    Column("AVAILABLE", numeric=True),
)


def render_balances(balances: Sequence[Any], *, accounts: bool = True) -> FittedTable:
    """Balances as a table fitted to the terminal.

    Args:
        balances: ``hbtrio.Balance`` values.
        accounts: Show the account column.

    Returns:
        The table.
    """
    columns = _COLUMNS if accounts else _COLUMNS[1:]
    rows = [
        [
            *([b.account] if accounts else []),
            b.exchange,
            b.asset,
            fmt_decimal(b.total),
            fmt_decimal(b.available),
        ]
        for b in balances
    ]
    return FittedTable(columns, rows)


def run(args: argparse.Namespace) -> int:
    """Print the balances.

    Args:
        args: Parsed arguments.

    Returns:
        The exit code.
    """

    async def body(client: Any) -> Output:
        balances = await client.get_balances(exchange=args.exchange, refresh=args.refresh)
        balances = sorted(balances, key=lambda b: (b.account, b.exchange, b.asset))
        if not balances:
            return Output(balances, "no balances")
        return Output(balances, render_balances(balances))

    return execute(args, "balances", body)
