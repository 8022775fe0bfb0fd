"""The ``[[sinks]] type = "mqtt"`` table, decoded by msgspec (docs/daemon.md)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Self

import msgspec

from ..daemon._tables import DaemonConfigError, SinkBase, resolve_path

__all__ = ["MqttSinkConfig"]

_Name = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
_Positive = Annotated[int, msgspec.Meta(ge=1)]


class MqttSinkConfig(SinkBase, tag="mqtt", frozen=True):
    """One MQTT sink: every event published to a broker (docs/bus.md).

    Credentials are never written here in clear: ``credentials_env`` names an
    environment variable and ``credentials_file`` a key file, each holding
    ``user:password``.

    Attributes:
        url: The broker, ``mqtt://host:1883`` or ``mqtts://host:8883`` (TLS).
        spool_dir: Directory of the journal and spool (created when missing;
            one per sink).
        name: The daemon's name on the bus (topics, event ids); keep it
            stable across restarts.
        topic_prefix: First level of every topic.
        ca_file: CA bundle verifying a TLS broker (default: the system store).
        credentials_env: Environment variable holding ``user:password``.
        credentials_file: File whose first line is ``user:password``.
        keepalive: MQTT keep-alive seconds.
        heartbeat: Seconds between status messages (carrying the last sequence number).
        max_inflight: Unacknowledged QoS 1 messages at once.
        segment_events: Events per journal segment file.
        journal_max_events: Events the journal keeps at most.
        journal_max_age: Seconds after which a complete segment is deleted.
        spool_max_events: Unacknowledged events pushed again after an outage at most.
        fsync: Whether each flush forces the journal to the disk.
    """

    url: str
    spool_dir: str
    name: _Name = "hbtrio"
    topic_prefix: _Name = "hbtrio"
    ca_file: str | None = None
    credentials_env: str | None = None
    credentials_file: str | None = None
    keepalive: Annotated[int, msgspec.Meta(ge=2, le=3600)] = 10
    heartbeat: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 5.0
    max_inflight: Annotated[int, msgspec.Meta(ge=1, le=60000)] = 1000
    segment_events: _Positive = 10_000
    journal_max_events: _Positive = 1_000_000
    journal_max_age: Annotated[float, msgspec.Meta(gt=0)] = 7 * 86400.0
    spool_max_events: _Positive = 100_000
    fsync: bool = True

    @property
    def destination(self) -> str:
        """What the daemon's logs name this sink by (the broker URL)."""
        return self.url

    def unique(self) -> tuple[str, str]:
        """Two MQTT sinks may not share a spool directory.

        Returns:
            ``("spool_dir", spool_dir)``.
        """
        return "spool_dir", self.spool_dir

    def finish(self, key: str, base: Path | None) -> Self:
        """Resolve the paths; ``ca_file`` and ``credentials_file`` must be files.

        Args:
            key: Path of this table (``sinks[1]``), for error messages.
            base: Directory relative paths are resolved against.

        Returns:
            The sink with absolute paths.

        Raises:
            DaemonConfigError: ``ca_file`` or ``credentials_file`` is not a file.
        """
        files: dict[str, str | None] = {}
        for name in ("ca_file", "credentials_file"):
            value = getattr(self, name)
            files[name] = None if value is None else resolve_path(value, base)
            if value is not None and not os.path.isfile(files[name] or ""):
                raise DaemonConfigError(f"{key}.{name}", f"{value} is not a file")
        return msgspec.structs.replace(self, spool_dir=resolve_path(self.spool_dir, base), **files)
