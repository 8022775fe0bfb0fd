"""Structured logging for the daemon and the operator commands.

Two formats, both one record per line on standard error:

* ``human``: ``2024-05-01T12:00:00.123Z INFO  connected  state=CONNECTED``
* ``json``: ``{"ts": ..., "level": "info", "logger": ..., "msg": ..., <fields>}``

Structured fields are passed as ``extra={"fields": {...}}``. A filter redacts
every secret it was given (the API key and its base64 form) from messages and
fields, so a secret that slipped into an exception text is never written.
"""

from __future__ import annotations

import base64
import logging
import sys
import time
from collections.abc import Iterable
from typing import IO, Any

import msgspec

__all__ = ["JsonFormatter", "HumanFormatter", "RedactingFilter", "secrets_of", "setup_logging"]

LOGGER_NAME = "hbtrio.daemon"
_REDACTED = "***"


def secrets_of(api_key: str) -> tuple[str, ...]:
    """The strings that must never appear in a log line for this API key.

    Args:
        api_key: The credential pair ``user:password``.

    Returns:
        The pair, its base64 form, and the password when it is long enough to
        be recognised without mangling ordinary words (8 characters or more).
    """
    token = base64.b64encode(api_key.encode("utf-8")).decode("ascii")
    password = api_key.partition(":")[2]
    found = [api_key, token]
    if len(password) >= 8:
        found.append(password)
    return tuple(found)


def _timestamp(created: float) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{seconds}.{int(created % 1 * 1000):03d}Z"


class RedactingFilter(logging.Filter):
    """Replaces secrets in log records with ``***``.

    Args:
        secrets: The strings to hide.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))

    def redact(self, text: str) -> str:
        """Hide every secret in a text.

        Args:
            text: The text.

        Returns:
            The text with each secret replaced by ``***``.
        """
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, _REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact a record in place.

        Args:
            record: The record.

        Returns:
            Always ``True`` (the record is kept).
        """
        if not self._secrets:
            return True
        record.msg = self.redact(record.getMessage())
        record.args = None
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            record.fields = {
                key: self.redact(value) if isinstance(value, str) else value
                for key, value in fields.items()
            }
        if record.exc_info:
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class HumanFormatter(logging.Formatter):
    """``time LEVEL message key=value ...``."""

    def format(self, record: logging.LogRecord) -> str:
        """Format one record.

        Args:
            record: The record.

        Returns:
            The line.
        """
        parts = [_timestamp(record.created), f"{record.levelname:<7}", record.getMessage()]
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            parts.extend(f"{key}={value}" for key, value in fields.items())
        line = " ".join(parts)
        if record.exc_text:
            line += "\n" + record.exc_text
        elif record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``ts``, ``level``, ``logger``, ``msg`` and the fields."""

    def format(self, record: logging.LogRecord) -> str:
        """Format one record.

        Args:
            record: The record.

        Returns:
            The line (a JSON object).
        """
        payload: dict[str, Any] = {
            "ts": _timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                payload.setdefault(key, value)
        if record.exc_text:
            payload["exception"] = record.exc_text
        elif record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return msgspec.json.encode(payload, enc_hook=str).decode("utf-8")


def setup_logging(
    fmt: str = "human",
    level: str = "info",
    *,
    secrets: Iterable[str] = (),
    stream: IO[str] | None = None,
    name: str = LOGGER_NAME,
) -> logging.Logger:
    """Configure the daemon's logger (replacing any handler set up before).

    Args:
        fmt: ``human`` or ``json``.
        level: ``debug``, ``info``, ``warning`` or ``error``.
        secrets: Strings to redact (see ``secrets_of``).
        stream: Where to write (default: standard error).
        name: The logger's name.

    Returns:
        The logger.

    Raises:
        ValueError: Unknown format or level.
    """
    if fmt not in ("human", "json"):
        raise ValueError(f"unknown log format {fmt!r}")
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    logger = logging.getLogger(name)
    for old in list(logger.handlers):
        logger.removeHandler(old)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else HumanFormatter())
    handler.addFilter(RedactingFilter(secrets))
    logger.addHandler(handler)
    logger.setLevel(numeric)
    logger.propagate = False
    return logger
