"""``hbtrio place EXCHANGE MARKET buy|sell AMOUNT [--price P] [--type T] [--no-wait]``.

Places an order and, by default, waits until the order is past ``SUBMITTED``
(open, filled, ...); a ``FAILED`` order exits 1 with its reason.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..models import OrderType, Side
from .common import (
    EXIT_USAGE,
    Output,
    add_connection_arguments,
    decimal_arg,
    exchange_arg,
    execute,
    market_arg,
)
from .orders import render_orders

__all__ = ["add_arguments", "run"]


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
    parser.add_argument(
        "side", metavar="SIDE", type=str.lower, choices=("buy", "sell"), help="buy or sell"
    )
    parser.add_argument("amount", metavar="AMOUNT", type=decimal_arg, help="base-asset amount")
    parser.add_argument("--price", "-p", type=decimal_arg, help="limit price (limit orders)")
    parser.add_argument(
        "--type",
        "-t",
        dest="order_type",
        type=str.lower,
        choices=("limit", "market", "limit_maker"),
        default=None,
        help="order type (default: limit with --price, else market)",
    )
    wait = parser.add_mutually_exclusive_group()
    wait.add_argument(
        "--no-wait",
        dest="wait",
        action="store_false",
        help="print the order as soon as the server took it (SUBMITTED), without waiting "
        "to learn whether it was accepted",
    )
    # The default since waiting became the default; kept so that scripts using it still run.
    wait.add_argument("--wait", dest="wait", action="store_true", help=argparse.SUPPRESS)
    parser.set_defaults(wait=True)
    add_connection_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Place the order, wait until it is accepted (unless ``--no-wait``), and print it.

    A ``FAILED`` order exits 1 with the server's reason on standard error.

    Args:
        args: Parsed arguments.

    Returns:
        The exit code.
    """
    kind = args.order_type or ("limit" if args.price is not None else "market")
    order_type = OrderType(kind.upper())
    if order_type.needs_price and args.price is None:
        print(f"hbtrio place: a {kind} order needs --price", file=sys.stderr)
        return EXIT_USAGE
    if order_type is OrderType.MARKET and args.price is not None:
        print("hbtrio place: a market order takes no --price", file=sys.stderr)
        return EXIT_USAGE

    async def body(client: Any) -> Output:
        order = await client.place_order(
            args.exchange,
            args.market,
            Side(args.side.upper()),
            amount=args.amount,
            order_type=order_type,
            price=args.price,
            wait_accepted=args.wait,
        )
        return Output(order, render_orders([order]))

    return execute(args, "place", body)
