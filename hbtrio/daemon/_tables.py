"""Building blocks of the daemon configuration that sink types share.

``hbtrio.daemon.config`` re-exports everything here; a sink type defined in
another package (``hbtrio.bus.config``) imports its base from here, so that the
daemon's configuration can list it without an import cycle.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Self

import msgspec

__all__ = ["DaemonConfigError", "SinkBase", "read_key_file", "resolve_path"]


class DaemonConfigError(ValueError):
    """The daemon configuration is invalid.

    The message is one line naming the offending key by its path
    (``section.key``, ``sinks[1].path``) and the rule; it never quotes the API key.

    Args:
        key: Path of the offending key (empty for an unreadable file or a syntax error).
        rule: What is wrong.

    Attributes:
        key: Path of the offending key.
        rule: What is wrong.
    """

    def __init__(self, key: str, rule: str) -> None:
        super().__init__(f"{key}: {rule}" if key else rule)
        self.key = key
        self.rule = rule


class Table(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Base of every table of the file: strict, unknown keys refused, frozen."""


class SinkBase(Table, tag_field="type", frozen=True):
    """Base of the ``[[sinks]]`` table types, told apart by their ``type`` key.

    A subclass sets ``tag="name"`` (the value of ``type``) and declares its keys
    as fields; see ``hbtrio.daemon.config`` on adding a sink type.
    """

    @property
    def type(self) -> str:
        """The sink's kind: the value of its ``type`` key."""
        return str(self.__struct_config__.tag)

    @property
    def destination(self) -> str:
        """Where the events go, as the daemon's logs name the sink."""
        raise NotImplementedError

    def unique(self) -> tuple[str, str]:
        """The key and value two sinks may not share (a file, a spool directory).

        Returns:
            ``(field name, value)``.
        """
        raise NotImplementedError

    def finish(self, key: str, base: Path | None) -> Self:
        """Check what needs the file system or environment, resolve relative paths.

        Args:
            key: Path of this table (``sinks[0]``), for error messages.
            base: Directory relative paths are resolved against (the file's).

        Returns:
            The checked sink (a copy with resolved paths, or ``self``).

        Raises:
            DaemonConfigError: A value is unusable.
        """
        return self


def resolve_path(path: str, base: Path | None) -> str:
    """A path from the file, with ``~`` expanded and made absolute against ``base``.

    Args:
        path: The path as written.
        base: The configuration file's directory (``None``: leave a relative path).

    Returns:
        The resolved path.
    """
    candidate = Path(path).expanduser()
    if not candidate.is_absolute() and base is not None:
        candidate = base / candidate
    return str(candidate)


_MAX_KEY_FILE = 4096


def read_key_file(path: str, key: str = "connection.api_key_file") -> str:
    """Read a key file, which must be the running user's and private to it.

    The file is opened first and the opened file is checked (``fstat``), so it
    cannot be swapped between the check and the read.

    Args:
        path: The file's path (a symbolic link is followed). It must be a regular
            file owned by the effective user running the daemon
            (``st_uid == os.geteuid()``) whose mode grants nothing to group or
            others (``mode & 0o077 == 0``, e.g. ``0600`` or ``0400``).
        key: Path of the configuration key naming the file, for error messages
            (another section's secret file, e.g. a sink's password file, passes its own).

    Returns:
        The file's text, stripped of surrounding whitespace.

    Raises:
        DaemonConfigError: The file is missing, unreadable, not a regular file,
            owned by another user, too open, larger than 4 KiB, not UTF-8 text
            or empty. The message never quotes the file's content.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise DaemonConfigError(key, f"cannot read {path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise DaemonConfigError(key, f"{path} is not a regular file")
        euid = os.geteuid()
        if info.st_uid != euid:
            raise DaemonConfigError(
                key,
                f"{path} is owned by uid {info.st_uid}, not by the user running the daemon "
                f"(uid {euid}); chown it",
            )
        if info.st_mode & 0o077:
            raise DaemonConfigError(
                key,
                f"{path} is accessible by group or others "
                f"(mode {stat.S_IMODE(info.st_mode):04o}); chmod 600 it",
            )
        chunks: list[bytes] = []
        size = 0
        while size <= _MAX_KEY_FILE and (chunk := os.read(fd, 4096)):
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise DaemonConfigError(key, f"cannot read {path}: {exc.strerror}") from None
    finally:
        os.close(fd)
    if size > _MAX_KEY_FILE:
        raise DaemonConfigError(key, f"{path} is larger than {_MAX_KEY_FILE} bytes: not a key")
    raw = b"".join(chunks)
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise DaemonConfigError(key, f"{path} is not UTF-8 text") from None
    if not text:
        raise DaemonConfigError(key, f"{path} is empty")
    return text
