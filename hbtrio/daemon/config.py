"""The daemon's TOML configuration: parsing and validation.

Every key is checked at start: an unknown key or a bad value raises
:class:`DaemonConfigError` with one line naming it. The API key never appears
in the file: it is read from an environment variable (``api_key_env``) or from
a file readable by its owner only (``api_key_file``).

Example::

    [server]
    host = "127.0.0.1"
    port = 8000
    ca_file = "/etc/hbtrio/ca.pem"
    api_key_file = "/etc/hbtrio/api-key"

    [[subscriptions]]
    type = "order_book"
    exchange = "binance"
    market = "BTC-USDT"
    depth = 10

    [sink]
    path = "/var/lib/hbtrio/events.jsonl"
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

from .._config import ClientConfig
from .._errors import ConfigError

__all__ = [
    "DaemonConfig",
    "DaemonConfigError",
    "HealthConfig",
    "LogConfig",
    "SinkConfig",
    "SubscriptionSpec",
    "SupervisorConfig",
    "load_config",
    "parse_config",
]

DEFAULT_MAX_BYTES = 100 * 1024 * 1024
DEFAULT_BACKUPS = 5
DEFAULT_HEALTH_HOST = "127.0.0.1"
DEFAULT_HEALTH_PORT = 9108

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
    """Where events are written, as JSON Lines.

    Attributes:
        path: File path, or ``"-"`` for standard output.
        max_bytes: Rotate the file once it would grow past this size (``0``: never).
        backups: How many rotated files (``path.1`` .. ``path.N``) to keep.
    """

    path: str = "-"
    max_bytes: int = DEFAULT_MAX_BYTES
    backups: int = DEFAULT_BACKUPS


@dataclass(frozen=True, slots=True)
class HealthConfig:
    """The ``/healthz`` and ``/metrics`` HTTP endpoint.

    Attributes:
        enabled: Whether to serve it.
        host: Address to bind (loopback by default).
        port: Port to bind (``0``: any free port, logged at start).
        stale_after: Seconds disconnected after which ``/healthz`` answers 503.
    """

    enabled: bool = True
    host: str = DEFAULT_HEALTH_HOST
    port: int = DEFAULT_HEALTH_PORT
    stale_after: float = 30.0


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
        stop_timeout: Seconds a graceful stop may take before the rest is abandoned.
        buffer: Event buffer of the daemon's subscription to the event engine.
        probe_interval: Seconds between timed ``server_info`` requests that feed
            the latency histogram and catch a server that stopped answering
            (``0``: no probe).
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
        client: The client configuration (with the API key read from its source).
        subscriptions: Market-data streams to keep open.
        sink: The event sink.
        health: The health and metrics endpoint.
        log: Logging.
        supervisor: Restart policy.
        source: Path of the configuration file, when loaded from one.
    """

    client: ClientConfig
    subscriptions: tuple[SubscriptionSpec, ...] = ()
    sink: SinkConfig = field(default_factory=SinkConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    log: LogConfig = field(default_factory=LogConfig)
    supervisor: SupervisorConfig = field(default_factory=SupervisorConfig)
    source: str | None = None

    def __repr__(self) -> str:
        return (
            f"DaemonConfig(client={self.client!r}, subscriptions={self.subscriptions!r}, "
            f"sink={self.sink!r}, health={self.health!r}, log={self.log!r}, "
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


def read_key_file(path: str) -> str:
    """Read an API key file, which must be readable by its owner only.

    Args:
        path: The file's path. Its mode must grant nothing to group or others
            (``mode & 0o077 == 0``, e.g. ``0600`` or ``0400``).

    Returns:
        The credential pair, stripped of surrounding whitespace.

    Raises:
        DaemonConfigError: The file is missing, unreadable, too open or empty.
    """
    key = "server.api_key_file"
    try:
        info = os.stat(path)
    except OSError as exc:
        raise DaemonConfigError(key, f"cannot read {path}: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise DaemonConfigError(key, f"{path} is not a regular file")
    if info.st_mode & 0o077:
        raise DaemonConfigError(
            key,
            f"{path} is accessible by group or others (mode {stat.S_IMODE(info.st_mode):04o}); "
            f"chmod 600 it",
        )
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise DaemonConfigError(key, f"cannot read {path}: {exc}") from None
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
"""``[server]`` keys handed to :class:`~hbtrio.ClientConfig` unchanged."""
_SERVER_KEYS = {
    "host",
    "port",
    "tls",
    "ca_file",
    "api_key_env",
    "api_key_file",
    "account",
    *_CLIENT_PASSTHROUGH,
}


def _parse_server(raw: object, base: Path | None, environ: Mapping[str, str]) -> ClientConfig:
    table = _table(raw, "server")
    if "api_key" in table:
        raise DaemonConfigError(
            "server.api_key",
            "the key must not be written in the configuration file; "
            "use api_key_env (an environment variable) or api_key_file (a file of mode 600)",
        )
    _reject_unknown(table, _SERVER_KEYS, "server.")
    has_env = "api_key_env" in table
    has_file = "api_key_file" in table
    if has_env == has_file:
        raise DaemonConfigError(
            "server.api_key_env/server.api_key_file",
            "set exactly one: the name of an environment variable holding the key, "
            "or the path of a file readable by its owner only",
        )
    if has_env:
        variable = _str(table, "api_key_env", "server.api_key_env")
        api_key = environ.get(variable)
        if not api_key:
            raise DaemonConfigError(
                "server.api_key_env", f"environment variable {variable} is not set"
            )
    else:
        api_key = read_key_file(_resolve(_str(table, "api_key_file", "server.api_key_file"), base))
    values: dict[str, Any] = {
        "host": _str(table, "host", "server.host"),
        "port": table.get("port"),
        "api_key": api_key,
        "tls": _bool(table, "tls", "server.tls", True),
    }
    if values["port"] is None:
        raise DaemonConfigError("server.port", "required")
    if "ca_file" in table:
        values["ca_file"] = _resolve(_str(table, "ca_file", "server.ca_file"), base)
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
            source = "server.api_key_env" if has_env else "server.api_key_file"
            raise DaemonConfigError(source, f"the key it holds is invalid: {rule}") from None
        raise DaemonConfigError(f"server.{exc.field}", rule) from None


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


def _parse_sink(raw: object, base: Path | None) -> SinkConfig:
    table = _table(raw, "sink")
    _reject_unknown(table, {"path", "max_bytes", "backups"}, "sink.")
    path = _str(table, "path", "sink.path", "-")
    if path != "-":
        path = _resolve(path, base)
        parent = os.path.dirname(path) or "."
        if not os.path.isdir(parent):
            raise DaemonConfigError("sink.path", f"directory {parent} does not exist")
    return SinkConfig(
        path=path,
        max_bytes=_int(table, "max_bytes", "sink.max_bytes", DEFAULT_MAX_BYTES, 0, 2**62),
        backups=_int(table, "backups", "sink.backups", DEFAULT_BACKUPS, 0, 1000),
    )


def _parse_health(raw: object) -> HealthConfig:
    table = _table(raw, "health")
    _reject_unknown(table, {"enabled", "host", "port", "stale_after"}, "health.")
    return HealthConfig(
        enabled=_bool(table, "enabled", "health.enabled", True),
        host=_str(table, "host", "health.host", DEFAULT_HEALTH_HOST),
        port=_int(table, "port", "health.port", DEFAULT_HEALTH_PORT, 0, 65535),
        stale_after=_float(table, "stale_after", "health.stale_after", 30.0, positive=True),
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
    buffer = _int(table, "buffer", "supervisor.buffer", 10_000, 1, 10_000_000)
    probe = _float(table, "probe_interval", "supervisor.probe_interval", 15.0)
    return SupervisorConfig(initial, cap, stop_timeout, buffer, probe)


_TOP_KEYS = {"server", "subscriptions", "sink", "health", "log", "supervisor"}


def parse_config(
    data: Mapping[str, Any],
    *,
    base_dir: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    source: str | None = None,
) -> DaemonConfig:
    """Validate a parsed TOML document.

    Args:
        data: The document (as returned by :func:`tomllib.loads`).
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
    if "server" not in data:
        raise DaemonConfigError("server", "required section")
    return DaemonConfig(
        client=_parse_server(data["server"], base, env),
        subscriptions=_parse_subscriptions(data.get("subscriptions", [])),
        sink=_parse_sink(data.get("sink", {}), base),
        health=_parse_health(data.get("health", {})),
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
