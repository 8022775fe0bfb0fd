"""``hbtrio cancel ORDER_ID [--exchange X] [--market M]`` or ``hbtrio cancel --all [--exchange X]``.

Without ``--exchange`` the order is looked up first (as ``Client.cancel_order`` does).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .common import (
    EXIT_USAGE,
    Output,
    add_connection_arguments,
    exchange_arg,
    execute,
    market_arg,
    order_id_arg,
)

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the command's arguments.

    Args:
        parser: The command's parser.
    """
    parser.add_argument(
        "order_id", metavar="ORDER_ID", nargs="?", type=order_id_arg, help="the order to cancel"
    )
    parser.add_argument("--all", action="store_true", help="cancel every open order")
    parser.add_argument(
        "--exchange",
        "-e",
        type=exchange_arg,
        help="the order's connector (default: looked up); with --all: only this connector",
    )
    parser.add_argument(
        "--market",
        "-m",
        type=market_arg,
        help="the order's trading pair (narrows the look-up); with --all: only this pair",
    )
    add_connection_arguments(parser)


def _usage_error(message: str) -> int:
    print(f"hbtrio cancel: {message}", file=sys.stderr)
    return EXIT_USAGE


def run(args: argparse.Namespace) -> int:
    """Cancel one order or all of them.

    Args:
        args: Parsed arguments.

    Returns:
        The exit code.
    """
    if args.all and args.order_id:
        return _usage_error("give either ORDER_ID or --all, not both")
    if not args.all and not args.order_id:
        return _usage_error("give ORDER_ID or --all")

    async def body(client: Any) -> Output:
        if args.all:
            cancelled = list(
                await client.cancel_all_orders(exchange=args.exchange, market=args.market)
            )
            text = (
                "\n".join(f"cancel requested: {order_id}" for order_id in cancelled)
                if cancelled
                else "no open orders"
            )
            return Output({"cancelled": cancelled}, text)
        await client.cancel_order(args.order_id, exchange=args.exchange, market=args.market)
        return Output({"cancelled": [args.order_id]}, f"cancel requested: {args.order_id}")

    return execute(args, "cancel", body)
