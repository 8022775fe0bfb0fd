"""The daemon's TOML configuration: parsing and validation.

Every key is checked at start: an unknown key or a bad value raises
``DaemonConfigError`` with one line naming it. The API key never appears
in the file: it is read from an environment variable (``api_key_env``) or from
a file readable by its owner only (``api_key_file``).

Example::

    [connection]
    host = "127.0.0.1"
    port = 8000
    api_key_env = "HBTRIO_API_KEY"     # or api_key_file = "/run/secrets/hb"
    ca_file = "/etc/hbtrio/ca.pem"

    [[subscriptions]]
    type = "order_book"                # order_book | trades | ticker | candles
    exchange = "binance"
    market = "BTC-USDT"
    depth = 10

    [[sinks]]
    type = "jsonl"                     # a file (rotated by size) or "-" for stdout
    path = "/var/lib/hbtrio/events.jsonl"

    [http]
    listen = "127.0.0.1:9108"          # /healthz and /metrics

Sections: ``[connection]`` (required), ``[[subscriptions]]``, ``[[sinks]]``
(default: one JSON Lines sink to standard output), ``[http]``, ``[log]`` and
``[supervisor]``.
"""

from __future__ import annotations

import math
import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from .._config import ClientConfig, _check_host
from .._errors import ConfigError
from ..bus.config import MqttSinkConfig

__all__ = [
    "DaemonConfig",
    "DaemonConfigError",
    "HttpConfig",
    "LogConfig",
    "AnySinkConfig",
    "SinkConfig",
    "SubscriptionSpec",
    "SupervisorConfig",
    "load_config",
    "parse_config",
    "parse_listen",
    "read_key_file",
]

DEFAULT_MAX_BYTES = 100 * 1024 * 1024
DEFAULT_BACKUPS = 5
MAX_STOP_TIMEOUT = 4.5
"""Cap of ``supervisor.stop_timeout``: the daemon stops within 5 s of a signal."""
DEFAULT_HTTP_HOST = "127.0.0.1"
DEFAULT_HTTP_PORT = 9108
DEFAULT_LISTEN = f"{DEFAULT_HTTP_HOST}:{DEFAULT_HTTP_PORT}"

SINK_TYPES = ("jsonl", "mqtt")
SUBSCRIPTION_TYPES = ("order_book", "trades", "ticker", "candles")
LOG_FORMATS = ("human", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")


class DaemonConfigError(ValueError):
    """The daemon configuration is invalid.

    The message is one line naming the offending key (``section.key``) and the
    rule; it never quotes the API key.

    Args:
        key: Dotted name of the offending key (or the file, for a syntax error).
        rule: What is wrong.

    Attributes:
        key: Dotted name of the offending key.
        rule: What is wrong.
    """

    def __init__(self, key: str, rule: str) -> None:
        super().__init__(f"{key}: {rule}" if key else rule)
        self.key = key
        self.rule = rule


@dataclass(frozen=True, slots=True)
class SubscriptionSpec:
    """One market-data stream the daemon keeps open.

    Attributes:
        type: ``order_book``, ``trades``, ``ticker`` or ``candles``.
        exchange: Connector name.
        market: Trading pair.
        depth: Order-book depth (``order_book`` only).
        interval: Candle interval (``candles`` only).
    """

    type: str
    exchange: str
    market: str
    depth: int = 10
    interval: str = "1m"


@dataclass(frozen=True, slots=True)
class SinkConfig:
    """One ``[[sinks]]`` table: where events are written, as JSON Lines.

    Attributes:
        type: The sink's kind; ``jsonl`` (JSON Lines) is the only one.
        path: File path, or ``"-"`` for standard output.
        max_bytes: Rotate the file once it would grow past this size (``0``: never).
        backups: How many rotated files (``path.1`` .. ``path.N``) to keep.
    """

    type: str = "jsonl"
    path: str = "-"
    max_bytes: int = DEFAULT_MAX_BYTES
    backups: int = DEFAULT_BACKUPS


AnySinkConfig = SinkConfig | MqttSinkConfig
"""A ``[[sinks]]`` table: JSON Lines (``jsonl``) or MQTT (``mqtt``, docs/bus.md)."""


@dataclass(frozen=True, slots=True)
class HttpConfig:
    """The ``[http]`` section: the ``/healthz`` and ``/metrics`` endpoint.

    Attributes:
        enabled: Whether to serve it.
        host: Address to bind (loopback by default; an IPv6 address without brackets).
        port: Port to bind (``0``: any free port, logged at start).
        stale_after: Seconds disconnected after which ``/healthz`` answers 503.
    """

    enabled: bool = True
    host: str = DEFAULT_HTTP_HOST
    port: int = DEFAULT_HTTP_PORT
    stale_after: float = 30.0

    @property
    def listen(self) -> str:
        """The address as written in the file, ``HOST:PORT`` (``[v6]:PORT``)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class LogConfig:
    """Logging of the daemon itself (to standard error).

    Attributes:
        format: ``human`` or ``json`` (one JSON object per line).
        level: ``debug``, ``info``, ``warning`` or ``error``.
    """

    format: str = "human"
    level: str = "info"


@dataclass(frozen=True, slots=True)
class SupervisorConfig:
    """Restart policy of the supervised client.

    Attributes:
        backoff_initial: First delay before reconnecting or restarting, seconds.
        backoff_max: Cap of the (doubling, jittered) delay, seconds.
        stop_timeout: Seconds a graceful stop may take before the rest is abandoned
            (at most ``MAX_STOP_TIMEOUT``, so a stop never takes 5 s).
        buffer: Event buffer of the daemon's subscription to the event engine.
        probe_interval: Seconds between ``server_info`` requests that catch a
            server that stopped answering (``0``: no probe).
    """

    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    stop_timeout: float = 4.5
    buffer: int = 10_000
    probe_interval: float = 15.0


@dataclass(frozen=True, slots=True, repr=False)
class DaemonConfig:
    """The whole daemon configuration.

    Attributes:
        client: The client configuration, from ``[connection]`` (with the API key
            read from its source).
        subscriptions: Market-data streams to keep open.
        sinks: The event sinks; every event is written to each of them.
        http: The health and metrics endpoint.
        log: Logging.
        supervisor: Restart policy.
        source: Path of the configuration file, when loaded from one.
    """

    client: ClientConfig
    subscriptions: tuple[SubscriptionSpec, ...] = ()
    sinks: tuple[AnySinkConfig, ...] = (SinkConfig(),)
    http: HttpConfig = field(default_factory=HttpConfig)
    log: LogConfig = field(default_factory=LogConfig)
    supervisor: SupervisorConfig = field(default_factory=SupervisorConfig)
    source: str | None = None

    def __repr__(self) -> str:
        return (
            f"DaemonConfig(client={self.client!r}, subscriptions={self.subscriptions!r}, "
            f"sinks={self.sinks!r}, http={self.http!r}, log={self.log!r}, "
            f"supervisor={self.supervisor!r})"
        )


# -- helpers -----------------------------------------------------------------------


def _table(value: object, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DaemonConfigError(key, "must be a table")
    return value


def _reject_unknown(table: Mapping[str, Any], allowed: set[str], prefix: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        names = ", ".join(f"{prefix}{name}" for name in unknown)
        plural = "s" if len(unknown) > 1 else ""
        raise DaemonConfigError(
            names, f"unknown key{plural} (allowed: {', '.join(sorted(allowed))})"
        )


def _str(table: Mapping[str, Any], name: str, key: str, default: str | None = None) -> str:
    value = table.get(name, default)
    if value is None:
        raise DaemonConfigError(key, "required")
    if not isinstance(value, str) or not value:
        raise DaemonConfigError(key, "must be a non-empty string")
    return value


def _int(table: Mapping[str, Any], name: str, key: str, default: int, low: int, high: int) -> int:
    value = table.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise DaemonConfigError(key, f"must be an integer in {low}..{high}")
    return value


def _float(
    table: Mapping[str, Any], name: str, key: str, default: float, *, positive: bool = False
) -> float:
    value = table.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DaemonConfigError(key, "must be a number")
    result = float(value)
    if not math.isfinite(result) or result < 0 or (positive and result == 0):
        raise DaemonConfigError(key, "must be a finite number " + ("> 0" if positive else ">= 0"))
    return result


def _bool(table: Mapping[str, Any], name: str, key: str, default: bool) -> bool:
    value = table.get(name, default)
    if not isinstance(value, bool):
        raise DaemonConfigError(key, "must be true or false")
    return value


def _choice(
    table: Mapping[str, Any], name: str, key: str, default: str, choices: tuple[str, ...]
) -> str:
    value = table.get(name, default)
    if value not in choices:
        raise DaemonConfigError(key, f"must be one of {', '.join(choices)}")
    assert isinstance(value, str)
    return value


def _resolve(path: str, base: Path | None) -> str:
    candidate = Path(path).expanduser()
    if not candidate.is_absolute() and base is not None:
        candidate = base / candidate
    return str(candidate)


_MAX_KEY_FILE = 4096


def read_key_file(path: str) -> str:
    """Read an API key file, which must be the running user's and private to it.

    The file is opened first and the opened file is checked (``fstat``), so it
    cannot be swapped between the check and the read.

    Args:
        path: The file's path (a symbolic link is followed). It must be a regular
            file owned by the effective user running the daemon
            (``st_uid == os.geteuid()``) whose mode grants nothing to group or
            others (``mode & 0o077 == 0``, e.g. ``0600`` or ``0400``).

    Returns:
        The credential pair, stripped of surrounding whitespace.

    Raises:
        DaemonConfigError: The file is missing, unreadable, not a regular file,
            owned by another user, too open, larger than 4 KiB, not UTF-8 text
            or empty. The
            message never quotes the file's content.
    """
    key = "connection.api_key_file"
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


# -- sections ----------------------------------------------------------------------

_CLIENT_PASSTHROUGH = (
    "timeout",
    "retries",
    "heartbeat_timeout",
    "ping_interval",
    "reconnect_initial",
    "reconnect_max",
    "poll_active",
    "poll_idle",
    "rate_limit",
)
"""``[connection]`` keys handed to ``ClientConfig`` unchanged."""
_CONNECTION_KEYS = {
    "host",
    "port",
    "tls",
    "ca_file",
    "api_key_env",
    "api_key_file",
    "account",
    *_CLIENT_PASSTHROUGH,
}


def _parse_connection(raw: object, base: Path | None, environ: Mapping[str, str]) -> ClientConfig:
    table = _table(raw, "connection")
    if "api_key" in table:
        raise DaemonConfigError(
            "connection.api_key",
            "the key must not be written in the configuration file; "
            "use api_key_env (an environment variable) or api_key_file (a file of mode 600)",
        )
    _reject_unknown(table, _CONNECTION_KEYS, "connection.")
    has_env = "api_key_env" in table
    has_file = "api_key_file" in table
    if has_env == has_file:
        raise DaemonConfigError(
            "connection.api_key_env/connection.api_key_file",
            "set exactly one: the name of an environment variable holding the key, "
            "or the path of a file readable by its owner only",
        )
    if has_env:
        variable = _str(table, "api_key_env", "connection.api_key_env")
        api_key = environ.get(variable)
        if not api_key:
            raise DaemonConfigError(
                "connection.api_key_env", f"environment variable {variable} is not set"
            )
    else:
        api_key = read_key_file(
            _resolve(_str(table, "api_key_file", "connection.api_key_file"), base)
        )
    values: dict[str, Any] = {
        "host": _str(table, "host", "connection.host"),
        "port": table.get("port"),
        "api_key": api_key,
        "tls": _bool(table, "tls", "connection.tls", True),
    }
    if values["port"] is None:
        raise DaemonConfigError("connection.port", "required")
    if "ca_file" in table:
        values["ca_file"] = _resolve(_str(table, "ca_file", "connection.ca_file"), base)
    if "account" in table:
        values["account"] = table["account"]
    for name in _CLIENT_PASSTHROUGH:
        if name in table:
            values[name] = table[name]
    try:
        return ClientConfig(**values)
    except ConfigError as exc:
        rule = exc.rule
        if exc.field == "api_key":
            source = "connection.api_key_env" if has_env else "connection.api_key_file"
            raise DaemonConfigError(source, f"the key it holds is invalid: {rule}") from None
        raise DaemonConfigError(f"connection.{exc.field}", rule) from None


_SUBSCRIPTION_KEYS = {"type", "exchange", "market", "depth", "interval"}


def _parse_subscriptions(raw: object) -> tuple[SubscriptionSpec, ...]:
    if not isinstance(raw, list):
        raise DaemonConfigError("subscriptions", "must be an array of tables ([[subscriptions]])")
    specs: list[SubscriptionSpec] = []
    seen: set[tuple[str, str, str, int, str]] = set()
    for index, item in enumerate(raw):
        key = f"subscriptions[{index}]"
        table = _table(item, key)
        _reject_unknown(table, _SUBSCRIPTION_KEYS, f"{key}.")
        kind = _choice(table, "type", f"{key}.type", "", SUBSCRIPTION_TYPES)
        exchange = _str(table, "exchange", f"{key}.exchange")
        market = _str(table, "market", f"{key}.market")
        if "depth" in table and kind != "order_book":
            raise DaemonConfigError(f"{key}.depth", 'only for type = "order_book"')
        if "interval" in table and kind != "candles":
            raise DaemonConfigError(f"{key}.interval", 'only for type = "candles"')
        depth = _int(table, "depth", f"{key}.depth", 10, 1, 1000)
        interval = _str(table, "interval", f"{key}.interval", "1m")
        spec = SubscriptionSpec(kind, exchange, market, depth, interval)
        identity = (kind, exchange, market, depth, interval)
        if identity in seen:
            raise DaemonConfigError(key, "duplicate subscription")
        seen.add(identity)
        specs.append(spec)
    return tuple(specs)


_SINK_KEYS = {"type", "path", "max_bytes", "backups"}


def _parse_sinks(raw: object, base: Path | None) -> tuple[AnySinkConfig, ...]:
    if not isinstance(raw, list):
        raise DaemonConfigError("sinks", "must be an array of tables ([[sinks]])")
    if not raw:
        raise DaemonConfigError("sinks", "must have at least one [[sinks]] table")
    sinks: list[AnySinkConfig] = []
    seen: dict[str, str] = {}
    for index, item in enumerate(raw):
        key = f"sinks[{index}]"
        table = _table(item, key)
        if table.get("type") == "mqtt":
            mqtt = _parse_mqtt_sink(table, key, base)
            if mqtt.spool_dir in seen:
                raise DaemonConfigError(f"{key}.spool_dir", f"same as {seen[mqtt.spool_dir]}")
            seen[mqtt.spool_dir] = key
            sinks.append(mqtt)
            continue
        _reject_unknown(table, _SINK_KEYS, f"{key}.")
        kind = _choice(table, "type", f"{key}.type", "", SINK_TYPES)
        path = _str(table, "path", f"{key}.path")
        if path != "-":
            path = _resolve(path, base)
            parent = os.path.dirname(path) or "."
            if not os.path.isdir(parent):
                raise DaemonConfigError(f"{key}.path", f"directory {parent} does not exist")
            if os.path.isdir(path):
                raise DaemonConfigError(f"{key}.path", f"{path} is a directory")
        if path in seen:
            raise DaemonConfigError(f"{key}.path", f"same destination as {seen[path]}.path")
        seen[path] = key
        sinks.append(
            SinkConfig(
                type=kind,
                path=path,
                max_bytes=_int(table, "max_bytes", f"{key}.max_bytes", DEFAULT_MAX_BYTES, 0, 2**62),
                backups=_int(table, "backups", f"{key}.backups", DEFAULT_BACKUPS, 0, 1000),
            )
        )
    return tuple(sinks)


def _parse_mqtt_sink(table: Mapping[str, Any], key: str, base: Path | None) -> MqttSinkConfig:
    try:
        config = msgspec.convert(dict(table), MqttSinkConfig)
    except msgspec.ValidationError as exc:
        where, _, rule = str(exc).rpartition(" - at `$.")
        detail = where if not rule else f"{rule.rstrip('`')}: {where}"
        raise DaemonConfigError(key, detail) from None
    resolved = _resolve(config.spool_dir, base)
    for name in ("ca_file", "credentials_file"):
        value = getattr(config, name)
        if value is not None and not os.path.isfile(_resolve(value, base)):
            raise DaemonConfigError(f"{key}.{name}", f"{value} is not a file")
    return msgspec.structs.replace(
        config,
        spool_dir=resolved,
        ca_file=None if config.ca_file is None else _resolve(config.ca_file, base),
        credentials_file=(
            None if config.credentials_file is None else _resolve(config.credentials_file, base)
        ),
    )


def parse_listen(value: object, key: str = "http.listen") -> tuple[str, int]:
    """Split and check a ``HOST:PORT`` listen address.

    Args:
        value: The address: ``"127.0.0.1:9108"``, ``"localhost:9108"``,
            ``"[::1]:9108"`` (an IPv6 address in brackets); port ``0`` means any
            free port.
        key: The dotted name reported in errors.

    Returns:
        ``(host, port)``, the host without brackets.

    Raises:
        DaemonConfigError: The value is not a string ``HOST:PORT`` with a valid
            hostname or IP address and a port in 0..65535.
    """
    if not isinstance(value, str):
        raise DaemonConfigError(key, 'must be a string "HOST:PORT", e.g. "127.0.0.1:9108"')
    if "/" in value:
        raise DaemonConfigError(key, 'must be "HOST:PORT" without a scheme or path')
    host, colon, port_text = value.rpartition(":")
    if not colon or not host or not port_text:
        raise DaemonConfigError(key, 'must be "HOST:PORT", e.g. "127.0.0.1:9108"')
    if ":" in host and not (host.startswith("[") and host.endswith("]")):
        raise DaemonConfigError(key, 'an IPv6 address must be in brackets, e.g. "[::1]:9108"')
    try:
        host = _check_host(host)
    except ConfigError as exc:
        raise DaemonConfigError(key, f"host {exc.rule}") from None
    if not (port_text.isascii() and port_text.isdigit()) or int(port_text) > 65535:
        raise DaemonConfigError(key, "port must be an integer in 0..65535")
    return host, int(port_text)


def _parse_http(raw: object) -> HttpConfig:
    table = _table(raw, "http")
    _reject_unknown(table, {"enabled", "listen", "stale_after"}, "http.")
    host, port = parse_listen(table.get("listen", DEFAULT_LISTEN))
    return HttpConfig(
        enabled=_bool(table, "enabled", "http.enabled", True),
        host=host,
        port=port,
        stale_after=_float(table, "stale_after", "http.stale_after", 30.0, positive=True),
    )


def _parse_log(raw: object) -> LogConfig:
    table = _table(raw, "log")
    _reject_unknown(table, {"format", "level"}, "log.")
    return LogConfig(
        format=_choice(table, "format", "log.format", "human", LOG_FORMATS),
        level=_choice(table, "level", "log.level", "info", LOG_LEVELS),
    )


def _parse_supervisor(raw: object) -> SupervisorConfig:
    table = _table(raw, "supervisor")
    _reject_unknown(
        table,
        {"backoff_initial", "backoff_max", "stop_timeout", "buffer", "probe_interval"},
        "supervisor.",
    )
    initial = _float(table, "backoff_initial", "supervisor.backoff_initial", 0.5, positive=True)
    cap = _float(table, "backoff_max", "supervisor.backoff_max", 30.0, positive=True)
    if cap < initial:
        raise DaemonConfigError("supervisor.backoff_max", "must be >= supervisor.backoff_initial")
    stop_timeout = _float(table, "stop_timeout", "supervisor.stop_timeout", 4.5, positive=True)
    if stop_timeout > MAX_STOP_TIMEOUT:
        raise DaemonConfigError(
            "supervisor.stop_timeout",
            f"must be at most {MAX_STOP_TIMEOUT} (the daemon stops within 5 s of a signal)",
        )
    buffer = _int(table, "buffer", "supervisor.buffer", 10_000, 1, 10_000_000)
    probe = _float(table, "probe_interval", "supervisor.probe_interval", 15.0)
    return SupervisorConfig(initial, cap, stop_timeout, buffer, probe)


_TOP_KEYS = {"connection", "subscriptions", "sinks", "http", "log", "supervisor"}


def parse_config(
    data: Mapping[str, Any],
    *,
    base_dir: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    source: str | None = None,
) -> DaemonConfig:
    """Validate a parsed TOML document.

    Args:
        data: The document (as returned by ``tomllib.loads``).
        base_dir: Directory relative paths are resolved against (the file's).
        environ: Environment to read ``api_key_env`` from (default ``os.environ``).
        source: Path of the file, recorded in the result.

    Returns:
        The validated configuration.

    Raises:
        DaemonConfigError: A key is unknown or a value is invalid.
    """
    env = os.environ if environ is None else environ
    base = Path(base_dir) if base_dir is not None else None
    _reject_unknown(data, _TOP_KEYS, "")
    if "connection" not in data:
        raise DaemonConfigError("connection", "required section")
    return DaemonConfig(
        client=_parse_connection(data["connection"], base, env),
        subscriptions=_parse_subscriptions(data.get("subscriptions", [])),
        sinks=_parse_sinks(data["sinks"], base) if "sinks" in data else (SinkConfig(),),
        http=_parse_http(data.get("http", {})),
        log=_parse_log(data.get("log", {})),
        supervisor=_parse_supervisor(data.get("supervisor", {})),
        source=source,
    )


def load_config(
    path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None
) -> DaemonConfig:
    """Read and validate a daemon configuration file.

    Relative paths in the file are resolved against the file's directory.

    Args:
        path: The TOML file.
        environ: Environment to read ``api_key_env`` from (default ``os.environ``).

    Returns:
        The validated configuration.

    Raises:
        DaemonConfigError: The file is unreadable, not TOML, or invalid.
    """
    name = os.fspath(path)
    try:
        with open(name, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise DaemonConfigError("", f"cannot read {name}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise DaemonConfigError("", f"{name} is not valid TOML: {exc}") from None
    return parse_config(
        data,
        base_dir=os.path.dirname(os.path.abspath(name)),
        environ=environ,
        source=name,
    )
