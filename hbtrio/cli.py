"""The ``hbtrio`` command line.

Each sub-command lives in its own module and registers itself through
:data:`_COMMANDS`; this module only builds the parser and dispatches.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["main"]

# name -> (module, help). The module provides ``add_arguments(parser)`` and
# ``run(args) -> int``. Modules are imported lazily so that ``hbtrio --help``
# stays fast and optional extras are needed only by the commands that use them.
_COMMANDS: dict[str, tuple[str, str]] = {
    "sim": ("hbtrio.sim.cli", "run the Hummingbot-API-compatible simulator"),
}


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every sub-command.

    Returns:
        The parser.
    """
    parser = argparse.ArgumentParser(prog="hbtrio", description="Hummingbot API client for Trio")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in _COMMANDS.items():
        module = importlib.import_module(module_name)
        command = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(command)
        command.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: Arguments without the program name (default: ``sys.argv[1:]``).

    Returns:
        The process exit code.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    code: int = args._run(args)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
