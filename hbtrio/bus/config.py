"""The ``[[sinks]] type = "mqtt"`` table, decoded by msgspec (docs/daemon.md)."""

from __future__ import annotations

from typing import Annotated

import msgspec

__all__ = ["MqttSinkConfig"]

_Name = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
_Positive = Annotated[int, msgspec.Meta(ge=1)]


class MqttSinkConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One MQTT sink: every event published to a broker (docs/bus.md).

    Credentials are never written here in clear: ``credentials_env`` names an
    environment variable and ``credentials_file`` a key file, each holding
    ``user:password``.

    Attributes:
        type: ``"mqtt"``.
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

    type: str = "mqtt"
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
    def path(self) -> str:
        """What the daemon's logs name this sink by (the broker URL)."""
        return self.url
