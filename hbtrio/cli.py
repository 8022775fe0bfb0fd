"""The ``hbtrio`` command line.

Each sub-command lives in its own module and registers itself through
``_COMMANDS``; this module only builds the parser and dispatches.
Only the module of the command being run is imported, so a missing optional
extra of one command never breaks another, and ``hbtrio --help`` lists every
command without importing any of them.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import NoReturn

__all__ = ["build_parser", "main"]

# name -> (module, help). The module provides ``add_arguments(parser)`` and
# ``run(args) -> int``. Modules are imported lazily so that ``hbtrio --help``
# stays fast and optional extras are needed only by the commands that use them.
_COMMANDS: dict[str, tuple[str, str]] = {
    "sim": ("hbtrio.sim.cli", "run the Hummingbot-API-compatible simulator"),
    "demo": ("hbtrio.demo", "run the simulator in-process and show the client at work"),
    "daemon": ("hbtrio.daemon.cli", "run the supervised background client"),
    "balances": ("hbtrio._cli_ops.balances", "show account balances"),
    "book": ("hbtrio._cli_ops.book", "show an order book"),
    "orders": ("hbtrio._cli_ops.orders", "list open orders (or the order history)"),
    "place": ("hbtrio._cli_ops.place", "place an order"),
    "cancel": ("hbtrio._cli_ops.cancel", "cancel an order, or every open order"),
    "bench": ("hbtrio.bench.cli", "run the bundled latency suite"),
}

# Top-level module of an optional dependency -> the extra that installs it.
_EXTRAS: dict[str, str] = {
    "hypercorn": "sim",
    "trustme": "sim",
    "matplotlib": "bench",
    "psutil": "bench",
    "hummingbot_api_client": "bench",
}

EXIT_USAGE = 2
"""Exit code of a usage or configuration error (also argparse's)."""
EXIT_CLOSED_PIPE = 128 + signal.SIGPIPE
"""Exit code when standard output was closed by its reader (``hbtrio ... | head``):
the status a shell reports for a command ended by ``SIGPIPE`` (141)."""


class MissingExtra(Exception):
    """A command needs an optional extra that is not installed.

    Args:
        command: The command being run.
        extra: The name of the extra to install (``sim``, ``bench``, ...).
    """

    def __init__(self, command: str, extra: str) -> None:
        super().__init__(
            f"hbtrio {command}: this command needs an optional extra: install hbtrio[{extra}]"
        )
        self.command = command
        self.extra = extra


def _load(command: str) -> ModuleType:
    module_name = _COMMANDS[command][0]
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        missing = (exc.name or "").partition(".")[0]
        extra = _EXTRAS.get(missing)
        if extra is None:
            raise
        raise MissingExtra(command, extra) from exc


def _selected_command(argv: Sequence[str]) -> str | None:
    for token in argv:
        if token == "--":
            return None
        if not token.startswith("-"):
            return token if token in _COMMANDS else None
    return None


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line on stderr (exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Build the argument parser.

    Every sub-command is listed (with its help text); only ``command``'s module
    is imported and gets its own arguments.

    Args:
        command: The sub-command whose arguments to add, or ``None`` for none.

    Returns:
        The parser.

    Raises:
        MissingExtra: ``command`` needs an optional extra that is not installed.
    """
    parser = _Parser(
        prog="hbtrio", description="Hummingbot API client for Trio", allow_abbrev=False
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {_version()}", help="show the version"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_module_name, help_text) in _COMMANDS.items():
        parser_of_command = sub.add_parser(
            name, help=help_text, description=help_text, allow_abbrev=False
        )
        if name == "daemon":  # a service manager asks the daemon itself
            parser_of_command.add_argument(
                "--version", action="version", version=f"hbtrio daemon {_version()}"
            )
        if name == command:
            module = _load(name)
            module.add_arguments(parser_of_command)
            parser_of_command.set_defaults(_run=module.run)
    return parser


def _version() -> str:
    from . import __version__

    return __version__


def _quiet_closed_stdout() -> None:
    """Point standard output at ``/dev/null`` so that the final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no file descriptor behind sys.stdout (tests)
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: Arguments without the program name (default: ``sys.argv[1:]``).

    Returns:
        The process exit code (``2`` for a usage error or a missing extra,
        ``141`` when the reader of standard output went away, as for a command
        ended by ``SIGPIPE``).
    """
    try:
        return _main(argv)
    except BrokenPipeError:
        _quiet_closed_stdout()
        return EXIT_CLOSED_PIPE


def _main(argv: Sequence[str] | None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser(_selected_command(arguments))
    except MissingExtra as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    try:
        args = parser.parse_args(arguments)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        code: int = args._run(args)
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
