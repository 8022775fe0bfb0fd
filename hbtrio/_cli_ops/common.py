"""What the operator commands share: connection options, errors, output.

Configuration comes from the ``HBTRIO_*`` environment variables
(``hbtrio.ClientConfig.from_env``), overridden by ``--host``, ``--port``,
``--ca-file``, ``--no-tls``, ``--timeout``, ``--retries`` and ``--account``.
The API key is never taken from a flag: it comes from ``HBTRIO_API_KEY`` or
from ``--api-key-file`` (a file readable by its owner only).

Exit codes: 0 success, 1 the request failed (rejected order, unknown order,
server error), 2 bad arguments or configuration, 3 authentication failed,
4 the server could not be reached or did not answer in time, 130 interrupted.
Errors are one line on standard error, never a traceback, never the key.
"""

from __future__ import annotations

import argparse
import math
import os
import ssl
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, TextIO

import msgspec
import trio
from rich.console import RenderableType

from .._config import ClientConfig
from .._errors import (
    AuthenticationFailed,
    ConfigError,
    ConnectionFailed,
    HbtrioError,
    InputValidationError,
    RequestTimeout,
    lone_exception,
)
from .._validation import check_account, check_exchange, check_market, check_order_id
from ..daemon.config import DaemonConfigError, read_key_file
from ..daemon.logs import RedactingFilter, secrets_of
from .render import make_console, plain_table, render_text

__all__ = [
    "EXIT_AUTH",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "Output",
    "RefuseKeyFlag",
    "add_connection_arguments",
    "build_config",
    "decimal_arg",
    "execute",
    "format_table",
    "tls_hint",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_UNREACHABLE = 4
EXIT_INTERRUPTED = 130


@dataclass(frozen=True, slots=True)
class Output:
    """What a command prints: ``data`` as JSON with ``--json``, else ``text``.

    Attributes:
        data: Any msgspec-encodable value (structs, lists, dicts).
        text: The human-readable form (text or a rich renderable, fitted to the
            terminal when printed).
        code: The exit code.
    """

    data: Any
    text: RenderableType
    code: int = EXIT_OK


def positive_int(text: str) -> int:
    """``argparse`` type of a positive integer.

    Args:
        text: The argument.

    Returns:
        The integer.

    Raises:
        argparse.ArgumentTypeError: Not an integer >= 1.
    """
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1: {text}")
    return value


def port_arg(text: str) -> int:
    """``argparse`` type of a TCP port.

    Args:
        text: The argument.

    Returns:
        The port.

    Raises:
        argparse.ArgumentTypeError: Not an integer in 1..65535.
    """
    value = positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be in 1..65535: {text}")
    return value


def non_negative_float(text: str) -> float:
    """``argparse`` type of a finite number >= 0.

    Args:
        text: The argument.

    Returns:
        The number.

    Raises:
        argparse.ArgumentTypeError: Not a finite number >= 0.
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0: {text}")
    return value


def decimal_arg(text: str) -> Decimal:
    """``argparse`` type of a positive decimal amount or price.

    Args:
        text: The argument, e.g. ``0.01``.

    Returns:
        The decimal.

    Raises:
        argparse.ArgumentTypeError: Not a finite decimal > 0.
    """
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not a decimal number: {text!r}") from None
    if not value.is_finite() or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0: {text}")
    return value


def _identifier(check: Callable[[object], str]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        try:
            return check(text)
        except InputValidationError as exc:
            raise argparse.ArgumentTypeError(f"{text!r}: {exc.rule}") from None

    return parse


exchange_arg = _identifier(check_exchange)
"""``argparse`` type of a connector name, checked as the client checks it (before I/O)."""
market_arg = _identifier(check_market)
"""``argparse`` type of a trading pair, checked as the client checks it (before I/O)."""
account_arg = _identifier(check_account)
"""``argparse`` type of an account name, checked as the client checks it (before I/O)."""
order_id_arg = _identifier(check_order_id)
"""``argparse`` type of an order id, checked as the client checks it (before I/O)."""


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the connection options and ``--json``.

    Args:
        parser: The command's parser.
    """
    group = parser.add_argument_group(
        "connection (defaults from HBTRIO_HOST, HBTRIO_PORT, HBTRIO_CA_FILE, ...)"
    )
    group.add_argument("--host", help="server host (HBTRIO_HOST)")
    group.add_argument("--port", type=port_arg, help="server port (HBTRIO_PORT)")
    group.add_argument("--ca-file", metavar="PEM", help="CA bundle to verify the server with")
    group.add_argument(
        "--no-tls", action="store_true", help="plain HTTP (loopback development servers only)"
    )
    group.add_argument(
        "--timeout", type=non_negative_float, metavar="SECONDS", help="per request attempt"
    )
    group.add_argument("--retries", type=int, metavar="N", help="further attempts (>= 0)")
    group.add_argument("--account", type=account_arg, help="Hummingbot account (HBTRIO_ACCOUNT)")
    group.add_argument(
        "--api-key-file",
        metavar="FILE",
        help="file holding 'user:password', mode 600 (default: HBTRIO_API_KEY)",
    )
    group.add_argument("--api-key", nargs="?", action=RefuseKeyFlag, help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help="machine-readable JSON output")


class RefuseKeyFlag(argparse.Action):
    """``--api-key`` exists only to refuse it without echoing its value."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        parser.error(
            "the API key is never taken from the command line: "
            "set HBTRIO_API_KEY or use --api-key-file FILE (mode 600)"
        )


def build_config(args: argparse.Namespace, environ: dict[str, str] | None = None) -> ClientConfig:
    """The client configuration from the environment and the flags.

    Args:
        args: Parsed arguments (see ``add_connection_arguments``).
        environ: Environment (default ``os.environ``).

    Returns:
        The configuration.

    Raises:
        ConfigError: A value is missing or invalid.
        DaemonConfigError: The key file is unreadable or too open.
    """
    env = dict(os.environ if environ is None else environ)
    overrides: dict[str, Any] = {}
    if args.host is not None:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    if args.ca_file is not None:
        overrides["ca_file"] = args.ca_file
    if args.no_tls:
        overrides["tls"] = False
        env.pop("HBTRIO_CA_FILE", None)
    if args.timeout is not None:
        overrides["timeout"] = args.timeout
    if args.retries is not None:
        overrides["retries"] = args.retries
    if args.account is not None:
        overrides["account"] = args.account
    if args.api_key_file is not None:
        overrides["api_key"] = read_key_file(args.api_key_file)
    elif "HBTRIO_API_KEY" not in env:
        raise ConfigError("api_key", "required: set HBTRIO_API_KEY or pass --api-key-file FILE")
    return ClientConfig.from_env(env, **overrides)


def time_bound(config: ClientConfig) -> float:
    """An outer deadline for one command: every attempt plus the backoff between them.

    Connecting and the command's request each get ``timeout * (retries + 1)``,
    plus at most ``reconnect_max`` of backoff between attempts, plus one second.

    Args:
        config: The configuration.

    Returns:
        Seconds, or ``inf`` when ``timeout`` is 0.
    """
    if config.timeout == 0:
        return math.inf
    attempts = config.retries + 1
    return 2 * config.timeout * attempts + config.reconnect_max * config.retries + 1.0


format_table = plain_table
"""A plain-text table (see ``render.plain_table``)."""


def fmt_time(timestamp: float | None) -> str:
    """A timestamp as ``YYYY-MM-DD HH:MM:SS`` UTC.

    Args:
        timestamp: Epoch seconds, or ``None``.

    Returns:
        The text (``-`` for ``None``).
    """
    if timestamp is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(timestamp))


def fmt_decimal(value: Decimal | None) -> str:
    """A decimal as the server wrote it, without exponent notation.

    Trailing zeros are kept: ``Decimal("0.53910")`` shows as ``0.53910``.

    Args:
        value: The number, or ``None``.

    Returns:
        The text (``-`` for ``None``).
    """
    if value is None:
        return "-"
    return format(value, "f")


def _exit_code_of(exc: BaseException) -> int:
    if isinstance(exc, ConfigError | InputValidationError | DaemonConfigError):
        return EXIT_USAGE
    if isinstance(exc, AuthenticationFailed):
        return EXIT_AUTH
    if isinstance(exc, ConnectionFailed | RequestTimeout | trio.TooSlowError):
        return EXIT_UNREACHABLE
    return EXIT_FAILED


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, trio.TooSlowError):
        return "the server did not answer in time"
    if isinstance(exc, DaemonConfigError):
        return f"invalid --api-key-file: {exc.rule}"
    text = " ".join(str(exc).split())
    if not isinstance(exc, HbtrioError):
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text


_NOT_TLS = ("wrong version number", "wrong_version_number", "record layer failure")
_UNVERIFIED = ("could not be verified", "certificate verify failed", "certificate_verify_failed")


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def tls_hint(exc: BaseException, tls: bool | None) -> str | None:
    """What to do about a TLS mismatch or an unverifiable certificate.

    Args:
        exc: The error.
        tls: Whether the client used TLS (``None``: unknown).

    Returns:
        The hint naming the flag and the environment variable that fix it, or
        ``None`` when ``exc`` is not such a failure.
    """
    chain = _chain(exc)
    texts = " ".join(str(e) for e in chain).lower()
    if isinstance(exc, ConnectionFailed) or any(isinstance(e, ssl.SSLError) for e in chain):
        if any(isinstance(e, ssl.SSLCertVerificationError) for e in chain) or any(
            marker in texts for marker in _UNVERIFIED
        ):
            return "give the server's CA certificate with --ca-file PEM (or set HBTRIO_CA_FILE=PEM)"
        if tls is not False and any(marker in texts for marker in _NOT_TLS):
            return (
                "the server does not speak TLS: for a plain-HTTP loopback server "
                "pass --no-tls (or set HBTRIO_TLS=0)"
            )
    if tls is False and isinstance(exc, ConnectionFailed) and "closed the connection" in texts:
        return (
            "if the server uses TLS, leave out --no-tls and unset HBTRIO_TLS=0 "
            "(its CA: --ca-file PEM or HBTRIO_CA_FILE)"
        )
    return None


def report_error(
    command: str,
    exc: BaseException,
    secrets: Sequence[str] = (),
    *,
    stream: TextIO | None = None,
    tls: bool | None = None,
) -> int:
    """Print one line for an error and return its exit code.

    Args:
        command: The command's name.
        exc: The error.
        secrets: Strings to redact from the line.
        stream: Where to print (default standard error).
        tls: Whether the client used TLS (for the hint on a TLS mismatch).

    Returns:
        The exit code.
    """
    exc = lone_exception(exc)
    text = _one_line(exc)
    hint = tls_hint(exc, tls)
    if hint is not None:
        text = f"{text}: {hint}"
    line = RedactingFilter(secrets).redact(f"hbtrio {command}: {text}")
    print(line, file=stream if stream is not None else sys.stderr)
    return _exit_code_of(exc)


def emit(output: Output, as_json: bool, stream: TextIO | None = None) -> None:
    """Print a command's output.

    Args:
        output: The output.
        as_json: JSON (``output.data``) instead of text.
        stream: Where (default standard output).
    """
    target = stream if stream is not None else sys.stdout
    if as_json:
        target.write(msgspec.json.format(msgspec.json.encode(output.data), indent=2).decode())
        target.write("\n")
    elif output.text:
        target.write(render_text(make_console(target), output.text))
    target.flush()


def _default_open_client() -> Callable[..., Any]:
    import hbtrio

    factory: Callable[..., Any] = getattr(hbtrio, "open_client")  # noqa: B009
    return factory


def execute(
    args: argparse.Namespace,
    command: str,
    body: Callable[[Any], Awaitable[Output]],
    *,
    open_client: Callable[..., Any] | None = None,
) -> int:
    """Connect, run a command's body with the client, print, and map errors.

    Args:
        args: Parsed arguments (connection options and ``--json``).
        command: The command's name (for error lines).
        body: Called with the connected client; returns what to print.
        open_client: The client factory (default ``hbtrio.open_client``).

    Returns:
        The exit code.
    """
    try:
        config = build_config(args)
    except (ConfigError, DaemonConfigError) as exc:
        return report_error(command, exc)
    secrets = secrets_of(config.api_key)

    async def main() -> Output:
        factory = open_client if open_client is not None else _default_open_client()
        with trio.fail_after(time_bound(config)):
            async with factory(config) as client:
                return await body(client)

    try:
        output = trio.run(main)
    except KeyboardInterrupt:
        print(f"hbtrio {command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        return report_error(command, exc, secrets, tls=config.tls)
    emit(output, args.json)
    return output.code
