"""``hbtrio daemon --config FILE``: run the supervised background client.

Exit codes: 0 clean stop (SIGINT/SIGTERM), 2 bad configuration, 3 authentication
failed at start, 1 anything else. A second signal during the stop exits at once (1).
"""

from __future__ import annotations

import argparse
import sys

import trio

from .config import LOG_FORMATS, LOG_LEVELS, DaemonConfigError, load_config
from .logs import secrets_of, setup_logging
from .supervisor import EXIT_CONFIG, EXIT_ERROR, EXIT_OK, Daemon

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``daemon`` command's options.

    Args:
        parser: The sub-command's parser.
    """
    parser.add_argument("--config", "-c", required=True, metavar="FILE", help="TOML configuration")
    parser.add_argument(
        "--log-format", choices=LOG_FORMATS, default=None, help="override log.format"
    )
    parser.add_argument("--log-level", choices=LOG_LEVELS, default=None, help="override log.level")
    parser.add_argument(
        "--check", action="store_true", help="validate the configuration and exit (0 if valid)"
    )


def run(args: argparse.Namespace) -> int:
    """Run the daemon until it is stopped.

    Args:
        args: Parsed arguments.

    Returns:
        The exit code.
    """
    try:
        config = load_config(args.config)
    except DaemonConfigError as exc:
        print(f"hbtrio daemon: bad configuration: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    logger = setup_logging(
        args.log_format or config.log.format,
        args.log_level or config.log.level,
        secrets=secrets_of(config.client.api_key),
    )
    if args.check:
        print(f"hbtrio daemon: configuration OK: {config.source}")
        return EXIT_OK
    daemon = Daemon(config, logger, hard_exit=True)
    try:
        return trio.run(daemon.run)
    except KeyboardInterrupt:  # a signal before the handlers were installed
        logger.warning("interrupted during start")
        return EXIT_ERROR
    except Exception as exc:  # pragma: no cover - a bug; reported, not a traceback dump
        logger.error("daemon crashed", exc_info=exc)
        return EXIT_ERROR
