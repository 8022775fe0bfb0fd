"""``hbtrio balances [--exchange X] [--refresh]``: account balances."""

from __future__ import annotations

import argparse
from typing import Any

from .common import (
    Output,
    add_connection_arguments,
    exchange_arg,
    execute,
    fmt_decimal,
    format_table,
)

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the command's arguments.

    Args:
        parser: The command's parser.
    """
    parser.add_argument("--exchange", "-e", type=exchange_arg, help="only this connector")
    parser.add_argument("--refresh", action="store_true", help="ask the server to refresh first")
    add_connection_arguments(parser)


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
        rows = [
            (b.account, b.exchange, b.asset, fmt_decimal(b.total), fmt_decimal(b.available))
            for b in balances
        ]
        table = format_table(("ACCOUNT", "EXCHANGE", "ASSET", "TOTAL", "AVAILABLE"), rows)
        return Output(balances, table)

    return execute(args, "balances", body)
