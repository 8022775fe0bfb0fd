"""``hbtrio sim``: run the Hummingbot-API-compatible simulator until interrupted.

It prints exactly one line saying where it listens, e.g.
``hbtrio sim listening on https://127.0.0.1:8000 (ca: /home/me/.cache/hbtrio/sim-certs/ca.pem)``,
reuses the address so it can restart at once on the same port, and on SIGINT or
SIGTERM closes its WebSockets with code 1001 and exits 0 within 2 seconds.

Without ``--cert-dir`` the TLS files are kept in ``~/.cache/hbtrio/sim-certs``
(``$XDG_CACHE_HOME/hbtrio/sim-certs``), so clients keep verifying across restarts.
The credential pair comes from ``--api-key``, else ``HBTRIO_SIM_API_KEY``, else
``admin:admin``.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    from .server import SimInfo

__all__ = ["add_arguments", "run"]

_ENV_KEY = "HBTRIO_SIM_API_KEY"


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0.0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


def _account_list(text: str) -> tuple[str, ...]:
    from .server import check_accounts

    try:
        return check_accounts([n.strip() for n in text.split(",") if n.strip()])
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the options of ``hbtrio sim``.

    Args:
        parser: The sub-command's parser.
    """
    parser.add_argument("--host", default="127.0.0.1", help="listen address (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="listen port (8000; 0: any)")
    parser.add_argument(
        "--api-key",
        default=None,
        metavar="USER:PASS",
        help=f"HTTP Basic credential pair (default: ${_ENV_KEY}, else admin:admin)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (0)")
    parser.add_argument(
        "--accounts",
        type=_account_list,
        default=("master_account",),
        metavar="NAME[,NAME...]",
        help="user accounts, each with the default balances on every connector (master_account)",
    )
    parser.add_argument(
        "--tls",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="serve HTTPS/WSS with a private CA (default) or plain HTTP/WS",
    )
    parser.add_argument(
        "--cert-dir", default=None, help="directory keeping the CA and server certificate"
    )
    parser.add_argument("--ca-out", default=None, help="also write the CA certificate here")
    parser.add_argument(
        "--quirks",
        choices=("faithful", "real"),
        default="faithful",
        help="'real' reproduces the real server's known defects",
    )
    parser.add_argument(
        "--latency-ms",
        type=_non_negative,
        default=0.0,
        help="milliseconds added to every answer: each REST response and each "
        "WebSocket message (greeting, acks, pongs, heartbeats, pushes); not to handshakes",
    )
    parser.add_argument(
        "--error-rate",
        type=_probability,
        default=0.0,
        help="share of REST answers that are 500/503",
    )
    parser.add_argument(
        "--drop-ws-after-s",
        type=_non_negative,
        default=None,
        help="close every WebSocket after N seconds",
    )
    parser.add_argument(
        "--drop-ws-after-msgs",
        type=_positive_int,
        default=None,
        help="close every WebSocket after N messages",
    )
    parser.add_argument(
        "--stall-rate", type=_probability, default=0.0, help="share of REST answers never sent"
    )
    parser.add_argument(
        "--heartbeat-interval",
        type=_non_negative,
        default=30.0,
        help="seconds between WebSocket heartbeats (30)",
    )
    parser.add_argument(
        "--min-update-interval",
        type=_non_negative,
        default=0.25,
        help="lowest WebSocket update_interval, seconds (0.25; 0 allowed)",
    )
    parser.add_argument(
        "--book-rate",
        type=_non_negative,
        default=10.0,
        help="book changes per second per market (10)",
    )
    parser.add_argument(
        "--idle-timeout",
        type=_non_negative,
        default=5.0,
        help="close idle kept-alive connections after N seconds (5)",
    )
    _add_rest_real_arguments(parser)


def _no_credentials(text: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        account, sep, connector = item.partition(":")
        if not sep or not account or not connector:
            raise argparse.ArgumentTypeError("must be ACCOUNT:CONNECTOR[,ACCOUNT:CONNECTOR...]")
        pairs.append((account, connector))
    return tuple(pairs)


def _add_rest_real_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the REST side of the real server's behaviour (docs/simulator.md)."""
    parser.add_argument(
        "--terminal-linger",
        type=_non_negative,
        default=None,
        metavar="SECONDS",
        help="seconds a finished order stays in orders/active (0 with --quirks real, else 1)",
    )
    parser.add_argument(
        "--no-credentials",
        type=_no_credentials,
        action="extend",
        default=[],
        metavar="ACCOUNT:CONNECTOR[,...]",
        help="accounts without exchange credentials for a connector: placing there "
        "answers 500 'Unexpected error placing trade: ...'",
    )


async def _main(args: argparse.Namespace, api_key: str) -> int:
    from .server import serve
    from .tls import default_cert_dir

    cert_dir = args.cert_dir if args.cert_dir is not None else str(default_cert_dir())
    stopping = trio.Event()

    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:

        async def trigger() -> None:
            async for _ in signals:
                stopping.set()
                return

        async def watchdog(cancel_scope: trio.CancelScope) -> None:
            await stopping.wait()
            await trio.sleep(1.8)
            cancel_scope.cancel()

        async with trio.open_nursery() as nursery:

            async def run_server(task_status: trio.TaskStatus[SimInfo]) -> None:
                await serve(
                    host=args.host,
                    port=args.port,
                    api_key=api_key,
                    seed=args.seed,
                    accounts=args.accounts,
                    tls=args.tls,
                    cert_dir=cert_dir,
                    ca_out=args.ca_out,
                    quirks=args.quirks,
                    heartbeat_interval=args.heartbeat_interval,
                    min_update_interval=args.min_update_interval,
                    book_change_rate=args.book_rate,
                    latency_ms=args.latency_ms,
                    error_rate=args.error_rate,
                    drop_ws_after_s=args.drop_ws_after_s,
                    drop_ws_after_msgs=args.drop_ws_after_msgs,
                    stall_rate=args.stall_rate,
                    idle_timeout=args.idle_timeout,
                    terminal_linger=args.terminal_linger,
                    no_credentials=args.no_credentials,
                    shutdown_trigger=trigger,
                    task_status=task_status,
                )
                nursery.cancel_scope.cancel()

            info: SimInfo = await nursery.start(run_server)
            where = f"ca: {info.ca_path}" if info.ca_path else "no TLS"
            print(f"hbtrio sim listening on {info.url} ({where})", flush=True)
            nursery.start_soon(watchdog, nursery.cancel_scope)
    return 0


def _find_os_error(exc: BaseException) -> OSError | None:
    if isinstance(exc, OSError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _find_os_error(inner)
            if found is not None:
                return found
    return None


def run(args: argparse.Namespace) -> int:
    """Run the simulator until SIGINT or SIGTERM.

    Args:
        args: Parsed options of ``add_arguments``.

    Returns:
        0 after a clean stop, 2 on a bad option or when the address cannot be used.
    """
    api_key = args.api_key if args.api_key is not None else os.environ.get(_ENV_KEY, "admin:admin")
    user, sep, password = api_key.partition(":")
    if not sep or not user or not password:
        print("hbtrio sim: --api-key must be USER:PASS with both parts non-empty", file=sys.stderr)
        return 2
    try:
        return trio.run(_main, args, api_key)
    except (OSError, BaseExceptionGroup) as exc:
        error = _find_os_error(exc)
        if error is None:
            raise
        print(
            f"hbtrio sim: cannot listen on {args.host}:{args.port}: {error.strerror or error}",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:  # pragma: no cover - a second Ctrl-C during shutdown
        return 0
