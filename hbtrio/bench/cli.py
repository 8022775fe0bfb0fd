"""``hbtrio bench``: run the bundled latency suite.

Imports only ``argparse``, the small ``protocol`` module (names of the
scenarios and contenders) and the shared refusal of ``--api-key`` at module
level; the runner is imported when the suite runs. The credential for ``--url``
comes from ``HBTRIO_API_KEY`` or ``--api-key-file``, never from the command line.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

__all__ = ["add_arguments", "run"]

from .._cli_ops.common import RefuseKeyFlag
from .protocol import ALL_SCENARIOS as _SCENARIOS
from .protocol import CONTENDERS as _CONTENDERS


def _names(allowed: tuple[str, ...]) -> Callable[[str], tuple[str, ...]]:
    def parse(text: str) -> tuple[str, ...]:
        names = tuple(n.strip() for n in text.split(",") if n.strip())
        unknown = [n for n in names if n not in allowed]
        if unknown or not names:
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated subset of {','.join(allowed)}"
            )
        return names

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the options of ``hbtrio bench``.

    Args:
        parser: The sub-command's parser.
    """
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick",
        action="store_true",
        help="short run: under a minute on 2 cores, 2,000 samples per scenario and contender",
    )
    mode.add_argument(
        "--full", action="store_true", help="full run (default): 20,000 samples per scenario"
    )
    parser.add_argument(
        "--url",
        help="benchmark this server (https://HOST:PORT) instead of the simulator; "
        "all contenders then share one account (--account)",
    )
    parser.add_argument(
        "--api-key-file",
        metavar="FILE",
        help="with --url: file holding 'user:password', mode 600 (default: HBTRIO_API_KEY)",
    )
    # The credential is never taken from the command line (it would show in `ps`).
    parser.add_argument("--api-key", nargs="?", action=RefuseKeyFlag, help=argparse.SUPPRESS)
    parser.add_argument("--ca-file", help="CA bundle to verify --url with")
    parser.add_argument(
        "--account",
        metavar="NAME",
        help="account every contender uses on --url (default: master_account); "
        "the simulator the suite starts gives each contender its own "
        "(bench_hbtrio, bench_peer, bench_floor)",
    )
    parser.add_argument(
        "--contenders",
        type=_names(_CONTENDERS),
        default=_CONTENDERS,
        help="comma-separated subset of " + ",".join(_CONTENDERS) + " (default: all)",
    )
    parser.add_argument(
        "--scenarios",
        type=_names(_SCENARIOS),
        default=_SCENARIOS,
        help="comma-separated subset of " + ",".join(_SCENARIOS) + " (default: all)",
    )
    parser.add_argument("--samples", type=int, help="override samples per latency scenario")
    parser.add_argument("--batch", type=int, help="override samples per contender per round")
    parser.add_argument(
        "--book-rate", type=float, help="book changes/s/market of the started simulator (50)"
    )
    parser.add_argument(
        "--stream-book-rate",
        type=float,
        help="book rate of the started simulator during the stream scenario (1000)",
    )
    parser.add_argument("--seed", type=int, help="simulator seed (1)")
    parser.add_argument("--connector", default="binance", help="connector benchmarked (binance)")
    parser.add_argument("--trading-pair", default="BTC-USDT", help="trading pair (BTC-USDT)")
    parser.add_argument(
        "--order-amount", default="0.001", help="base amount of benchmark orders (0.001)"
    )
    parser.add_argument(
        "--output", default="bench-results", help="directory for the JSON file and plot"
    )
    parser.add_argument("--no-plot", action="store_true", help="do not write the PNG plot")
    parser.add_argument("--no-progress", action="store_true", help="no progress display")


def run(args: argparse.Namespace) -> int:
    """Run the suite.

    Args:
        args: Parsed options of ``add_arguments``.

    Returns:
        0 when the suite ran (goals are reported, not asserted), 2 on bad
        options, 1 when it could not run.
    """
    from .runner import DEFAULT_ACCOUNT, BenchError, run_bench, settings_for

    try:
        settings = settings_for(
            "quick" if args.quick else "full",
            samples=args.samples,
            batch=args.batch,
            contenders=tuple(args.contenders),
            scenarios=tuple(args.scenarios),
            sim_book_rate=args.book_rate,
            stream_book_rate=args.stream_book_rate,
            seed=args.seed,
        )
    except (TypeError, ValueError) as exc:
        print(f"hbtrio bench: {exc}", file=sys.stderr)
        return 2
    if settings.samples < 1 or settings.batch < 1:
        print("hbtrio bench: --samples and --batch must be >= 1", file=sys.stderr)
        return 2
    if args.url is None and (args.api_key_file or args.ca_file or args.account):
        print("hbtrio bench: --api-key-file/--ca-file/--account go with --url", file=sys.stderr)
        return 2
    api_key = None
    if args.api_key_file is not None:
        from ..daemon.config import DaemonConfigError, read_key_file

        try:
            api_key = read_key_file(args.api_key_file)
        except DaemonConfigError as exc:
            print(f"hbtrio bench: invalid --api-key-file: {exc.rule}", file=sys.stderr)
            return 2
    try:
        run_bench(
            settings,
            url=args.url,
            api_key=api_key,
            ca_file=args.ca_file,
            output=Path(args.output),
            plot=not args.no_plot,
            market=(args.connector, args.trading_pair),
            order_amount=args.order_amount,
            account=args.account or DEFAULT_ACCOUNT,
            show_progress=not args.no_progress,
        )
    except (BenchError, ValueError) as exc:
        print(f"hbtrio bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("hbtrio bench: interrupted", file=sys.stderr)
        return 130
    return 0
