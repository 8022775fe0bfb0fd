"""Event sinks: JSON Lines to a size-rotated file, or to standard output.

Each event is written as one line, ``msgspec.json.encode(event)``: events are
tagged structs, so the ``type`` field tells them apart and
``hbtrio.events.EVENT_DECODER`` reads them back. With several ``[[sinks]]``,
``FanoutSink`` encodes each event once and writes the line to every one.
A ``type = "mqtt"`` sink (``hbtrio.bus.MqttSink``, the ``bus`` extra) publishes
to a broker; its ``run`` method is a task the daemon starts (``sink_tasks``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, Any, Protocol

import msgspec

from ..events import Event
from .config import AnySinkConfig, SinkConfig

if TYPE_CHECKING:
    from ..bus import MqttSink

__all__ = [
    "FanoutSink",
    "JsonLinesFileSink",
    "Sink",
    "StdoutSink",
    "open_sink",
    "open_sinks",
    "sink_tasks",
]

_ENCODER = msgspec.json.Encoder()


class Sink(Protocol):
    """Where the daemon writes the events it receives."""

    written: int
    """Number of events written so far."""

    def write(self, event: Event) -> None:
        """Write one event (buffered).

        Args:
            event: The event.
        """

    def flush(self) -> None:
        """Push buffered lines to the operating system."""

    def close(self) -> None:
        """Flush and release the sink; further writes are errors."""


class JsonLinesFileSink:
    """JSON Lines written to a file, rotated by size.

    The file is opened for appending, so a restarted daemon continues it. When a
    line would make it exceed ``max_bytes`` the file is renamed ``path.1`` (the
    older ``path.1`` .. ``path.N-1`` shift up by one, ``path.N`` is dropped) and
    a new file is started. With ``backups = 0`` the file is truncated instead.

    Args:
        path: The file.
        max_bytes: Size limit of one file (``0``: never rotate).
        backups: Number of rotated files to keep.

    Attributes:
        written: Number of events written.
        rotations: Number of rotations done.
    """

    def __init__(self, path: str, *, max_bytes: int = 0, backups: int = 5) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self.written = 0
        self.rotations = 0
        self._handle: IO[bytes] | None = None
        self._size = 0
        self._open()

    def _open(self) -> None:
        self._handle = open(self.path, "ab")  # noqa: SIM115 - owned by the sink
        self._size = self._handle.tell()

    def _rotate(self) -> None:
        assert self._handle is not None
        self._handle.close()
        self._handle = None
        if self.backups > 0:
            for index in range(self.backups - 1, 0, -1):
                older = f"{self.path}.{index}"
                if os.path.exists(older):
                    os.replace(older, f"{self.path}.{index + 1}")
            os.replace(self.path, f"{self.path}.1")
        else:
            os.truncate(self.path, 0)
        self.rotations += 1
        self._open()

    def write(self, event: Event) -> None:
        """Write one event as one line.

        Args:
            event: The event.

        Raises:
            ValueError: The sink is closed.
        """
        line = _ENCODER.encode(event) + b"\n"
        self.write_line(line)

    def write_line(self, line: bytes) -> None:
        """Write one already encoded line (ending with a newline).

        Args:
            line: The line.

        Raises:
            ValueError: The sink is closed.
        """
        if self._handle is None:
            raise ValueError("sink is closed")
        if self.max_bytes and self._size and self._size + len(line) > self.max_bytes:
            self._rotate()
            assert self._handle is not None
        self._handle.write(line)
        self._size += len(line)
        self.written += 1

    def flush(self) -> None:
        """Push buffered lines to the operating system."""
        if self._handle is not None:
            self._handle.flush()

    def close(self) -> None:
        """Flush and close the file (idempotent)."""
        if self._handle is not None:
            self._handle.flush()
            self._handle.close()
            self._handle = None


class StdoutSink:
    """JSON Lines written to standard output.

    Args:
        stream: Binary stream to write to (default: ``sys.stdout.buffer``).

    Attributes:
        written: Number of events written.
    """

    def __init__(self, stream: IO[bytes] | None = None) -> None:
        self._stream = stream if stream is not None else sys.stdout.buffer
        self._closed = False
        self.written = 0

    def write(self, event: Event) -> None:
        """Write one event as one line.

        Args:
            event: The event.

        Raises:
            ValueError: The sink is closed.
        """
        self.write_line(_ENCODER.encode(event) + b"\n")

    def write_line(self, line: bytes) -> None:
        """Write one already encoded line (ending with a newline).

        Args:
            line: The line.

        Raises:
            ValueError: The sink is closed.
        """
        if self._closed:
            raise ValueError("sink is closed")
        self._stream.write(line)
        self.written += 1

    def flush(self) -> None:
        """Flush standard output."""
        if not self._closed:
            self._stream.flush()

    def close(self) -> None:
        """Flush; standard output itself stays open (idempotent)."""
        if not self._closed:
            self._stream.flush()
            self._closed = True


class FanoutSink:
    """Every event written to each of several JSON Lines sinks.

    The event is encoded once and the same line handed to every sink, in order.
    An error from one sink (a full disk) propagates: the daemon treats a sink
    it cannot write to as fatal.

    Args:
        sinks: The sinks (at least one).

    Attributes:
        sinks: The sinks.
        written: Number of events written (each counted once, not once per sink).

    Raises:
        ValueError: ``sinks`` is empty.
    """

    def __init__(self, sinks: Sequence[JsonLinesFileSink | StdoutSink | MqttSink]) -> None:
        if not sinks:
            raise ValueError("a fan-out sink needs at least one sink")
        self.sinks = tuple(sinks)
        self.written = 0

    def write(self, event: Event) -> None:
        """Write one event as one line to every sink.

        Args:
            event: The event.

        Raises:
            ValueError: A sink is closed.
        """
        line = _ENCODER.encode(event) + b"\n"
        for sink in self.sinks:
            if isinstance(sink, JsonLinesFileSink | StdoutSink):
                sink.write_line(line)
            else:
                sink.write(event)
        self.written += 1

    def flush(self) -> None:
        """Flush every sink."""
        for sink in self.sinks:
            sink.flush()

    def close(self) -> None:
        """Flush and close every sink, even when one fails (idempotent).

        Raises:
            OSError: A sink could not be flushed (the others are still closed).
        """
        error: OSError | None = None
        for sink in self.sinks:
            try:
                sink.close()
            except OSError as exc:
                error = error or exc
        if error is not None:
            raise error


def open_sink(config: AnySinkConfig) -> JsonLinesFileSink | StdoutSink | MqttSink:
    """Open the sink a configuration describes.

    Args:
        config: The sink configuration.

    Returns:
        The sink, ready for writing.

    Raises:
        OSError: The file (or the MQTT sink's spool directory) cannot be opened.
    """
    if not isinstance(config, SinkConfig):
        from ..bus import MqttSink  # the bus extra

        return MqttSink(config)
    if config.path == "-":
        return StdoutSink()
    return JsonLinesFileSink(config.path, max_bytes=config.max_bytes, backups=config.backups)


def open_sinks(
    configs: Sequence[AnySinkConfig],
) -> JsonLinesFileSink | StdoutSink | MqttSink | FanoutSink:
    """Open the sinks of a configuration's ``[[sinks]]`` tables.

    Args:
        configs: The sink configurations (at least one).

    Returns:
        The one sink, or a ``FanoutSink`` over all of them.

    Raises:
        OSError: A file cannot be opened (the sinks opened before it are closed).
        ValueError: ``configs`` is empty.
    """
    if not configs:
        raise ValueError("no sink configured")
    opened: list[JsonLinesFileSink | StdoutSink | MqttSink] = []
    try:
        for config in configs:
            opened.append(open_sink(config))
    except OSError:
        for sink in opened:
            sink.close()
        raise
    return opened[0] if len(opened) == 1 else FanoutSink(opened)


def sink_tasks(sink: Any) -> list[Any]:
    """The background tasks (``run`` methods) of a sink or of the sinks of a fan-out.

    Args:
        sink: The sink ``open_sinks`` returned (or any sink).

    Returns:
        The ``run`` methods to start (``await nursery.start(run)``), one per MQTT sink.
    """
    sinks: tuple[Any, ...] = sink.sinks if isinstance(sink, FanoutSink) else (sink,)
    return [s.run for s in sinks if callable(getattr(s, "run", None))]
