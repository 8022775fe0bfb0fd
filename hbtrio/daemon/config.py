"""The daemon's TOML configuration, decoded into msgspec Structs.

The file is read with ``tomllib`` and converted with ``msgspec.convert`` into the
Structs below (strict: no type coercion, ``forbid_unknown_fields``, value ranges as
``msgspec.Meta`` constraints). Whatever is wrong raises ``DaemonConfigError``
with one line naming the key by its path (``sinks[1].path``), the rule, and, for
an unknown key close to a known one, the suggestion (``connection.hots: unknown
key; did you mean "host"?``). The API key never appears in the file: it is read
from an environment variable (``api_key_env``) or from a file readable by its
owner only (``api_key_file``).

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

Adding a sink type (as ``hbtrio.bus.config.MqttSinkConfig`` adds ``type = "mqtt"``):

1. Subclass ``SinkBase`` (from ``hbtrio.daemon._tables`` when the class lives in
   another package, to avoid an import cycle) with ``tag="name"``; its fields are the keys of the
   ``[[sinks]]`` table (constraints as ``Annotated[..., msgspec.Meta(...)]``;
   ``description=`` is appended to the error line).
2. Override ``SinkBase.finish`` for checks that need the file system or the
   environment (paths are resolved there; raise ``DaemonConfigError`` with the
   ``key`` it is given plus the field name), ``destination`` (how the logs name
   it) and ``unique`` (the field two sinks may not share).
3. Add the class to ``SinkSpec`` (``SinkSpec = JsonlSinkConfig | MqttSinkConfig``)
   and a branch to ``sinks.open_sink``. Nothing else here changes: unknown keys,
   suggestions, ``type = "..."`` choices and bad values are reported from the
   Structs themselves.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Self, TypeAlias, get_args

import msgspec
import msgspec.inspect as mi

from .._config import ClientConfig, _check_host
from .._errors import ConfigError
from ..bus.config import MqttSinkConfig
from ._tables import DaemonConfigError, SinkBase, Table, read_key_file, resolve_path

__all__ = [
    "AnySinkConfig",
    "DaemonConfig",
    "DaemonConfigError",
    "HttpConfig",
    "JsonlSinkConfig",
    "LogConfig",
    "MqttSinkConfig",
    "SinkBase",
    "SinkConfig",
    "SinkSpec",
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
_DAY = 86_400.0

SubscriptionType: TypeAlias = Literal["order_book", "trades", "ticker", "candles"]
LogFormat: TypeAlias = Literal["human", "json"]
LogLevel: TypeAlias = Literal["debug", "info", "warning", "error"]
SUBSCRIPTION_TYPES: tuple[str, ...] = get_args(SubscriptionType)
LOG_FORMATS: tuple[str, ...] = get_args(LogFormat)
LOG_LEVELS: tuple[str, ...] = get_args(LogLevel)

_Name = Annotated[str, msgspec.Meta(min_length=1)]
_Seconds = Annotated[float, msgspec.Meta(ge=0, le=_DAY)]
_PositiveSeconds = Annotated[float, msgspec.Meta(gt=0, le=_DAY)]


class SubscriptionSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One ``[[subscriptions]]`` table: a market-data stream the daemon keeps open.

    Attributes:
        type: ``order_book``, ``trades``, ``ticker`` or ``candles``.
        exchange: Connector name.
        market: Trading pair.
        depth: Order-book depth, 1..1000 (``order_book`` only).
        interval: Candle interval (``candles`` only).
    """

    type: SubscriptionType
    exchange: _Name
    market: _Name
    depth: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 10
    interval: _Name = "1m"

    @property
    def label(self) -> str:
        """``type exchange market`` as the logs and metrics name the stream."""
        return f"{self.type} {self.exchange} {self.market}"


class JsonlSinkConfig(SinkBase, tag="jsonl", frozen=True):
    """A ``[[sinks]]`` table with ``type = "jsonl"``: events as JSON Lines.

    Attributes:
        path: File path, or ``"-"`` for standard output.
        max_bytes: Rotate the file once it would grow past this size (``0``: never).
        backups: How many rotated files (``path.1`` .. ``path.N``) to keep.
    """

    path: _Name
    max_bytes: Annotated[int, msgspec.Meta(ge=0, le=2**62)] = DEFAULT_MAX_BYTES
    backups: Annotated[int, msgspec.Meta(ge=0, le=1000)] = DEFAULT_BACKUPS

    @property
    def destination(self) -> str:
        """The file path, or ``-`` for standard output."""
        return self.path

    def unique(self) -> tuple[str, str]:
        """Two JSON Lines sinks may not write the same file.

        Returns:
            ``("path", path)``.
        """
        return "path", self.path

    def finish(self, key: str, base: Path | None) -> Self:
        """Resolve the path; its directory must exist and it must not be one.

        Args:
            key: Path of this table, for error messages.
            base: Directory a relative path is resolved against.

        Returns:
            The sink with an absolute path.

        Raises:
            DaemonConfigError: The directory is missing, or the path is a directory.
        """
        if self.path == "-":
            return self
        path = resolve_path(self.path, base)
        parent = os.path.dirname(path) or "."
        if not os.path.isdir(parent):
            raise DaemonConfigError(f"{key}.path", f"directory {parent} does not exist")
        if os.path.isdir(path):
            raise DaemonConfigError(f"{key}.path", f"{path} is a directory")
        return msgspec.structs.replace(self, path=path)


SinkConfig = JsonlSinkConfig
"""The JSON Lines sink's configuration (its historical name)."""

SinkSpec: TypeAlias = JsonlSinkConfig | MqttSinkConfig
"""Any ``[[sinks]]`` table: the union of the ``SinkBase`` subclasses, by ``type``."""

AnySinkConfig: TypeAlias = SinkSpec
"""The same union, under the name the MQTT sink's code uses."""


class HttpConfig(Table, frozen=True):
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


class _HttpTable(Table, frozen=True):
    """``[http]`` as written: ``listen`` is split into ``HttpConfig.host``/``port``."""

    enabled: bool = True
    listen: str = DEFAULT_LISTEN
    stale_after: _PositiveSeconds = 30.0


class LogConfig(Table, frozen=True):
    """The ``[log]`` section: logging of the daemon itself (to standard error).

    Attributes:
        format: ``human`` or ``json`` (one JSON object per line).
        level: ``debug``, ``info``, ``warning`` or ``error``.
    """

    format: LogFormat = "human"
    level: LogLevel = "info"


class SupervisorConfig(Table, frozen=True):
    """The ``[supervisor]`` section: restart policy of the supervised client.

    Attributes:
        backoff_initial: First delay before reconnecting or restarting, seconds.
        backoff_max: Cap of the (doubling, jittered) delay, seconds.
        stop_timeout: Seconds a graceful stop may take before the rest is abandoned
            (at most ``MAX_STOP_TIMEOUT``, so a stop never takes 5 s).
        buffer: Event buffer of the daemon's subscription to the event engine.
        probe_interval: Seconds between ``server_info`` requests that catch a
            server that stopped answering (``0``: no probe).
    """

    backoff_initial: _PositiveSeconds = 0.5
    backoff_max: _PositiveSeconds = 30.0
    stop_timeout: Annotated[
        float,
        msgspec.Meta(
            gt=0, le=MAX_STOP_TIMEOUT, description="the daemon stops within 5 s of a signal"
        ),
    ] = 4.5
    buffer: Annotated[int, msgspec.Meta(ge=1, le=10_000_000)] = 10_000
    probe_interval: _Seconds = 15.0


class _ConnectionTable(Table, frozen=True):
    """``[connection]`` as written; becomes a ``ClientConfig``."""

    host: str
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)]
    tls: bool = True
    ca_file: _Name | None = None
    api_key_env: _Name | None = None
    api_key_file: _Name | None = None
    account: _Name | None = None
    timeout: _Seconds | None = None
    retries: Annotated[int, msgspec.Meta(ge=0, le=1000)] | None = None
    heartbeat_timeout: _PositiveSeconds | None = None
    ping_interval: _PositiveSeconds | None = None
    reconnect_initial: _PositiveSeconds | None = None
    reconnect_max: _PositiveSeconds | None = None
    poll_active: _PositiveSeconds | None = None
    poll_idle: _PositiveSeconds | None = None
    rate_limit: Annotated[float, msgspec.Meta(gt=0, le=1e9)] | None = None


_CLIENT_PASSTHROUGH = (
    "account",
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
"""``[connection]`` keys handed to ``ClientConfig`` unchanged when present."""


class _File(Table, frozen=True):
    """The whole file as written."""

    connection: _ConnectionTable
    subscriptions: tuple[SubscriptionSpec, ...] = ()
    sinks: Annotated[tuple[SinkSpec, ...], msgspec.Meta(min_length=1)] = (
        JsonlSinkConfig(path="-"),
    )
    http: _HttpTable = _HttpTable()
    log: LogConfig = LogConfig()
    supervisor: SupervisorConfig = SupervisorConfig()


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
    sinks: tuple[SinkSpec, ...] = (JsonlSinkConfig(path="-"),)
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


# -- error messages from the Structs' own descriptions ----------------------------------

_FILE_INFO = mi.type_info(_File)
_AT = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?$")
_PART = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]")


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _unwrap(info: mi.Type) -> mi.Type:
    """The type under ``Metadata`` and ``| None`` (TOML has no null)."""
    while True:
        if isinstance(info, mi.Metadata):
            info = info.type
        elif isinstance(info, mi.UnionType):
            rest = [t for t in info.types if not isinstance(t, mi.NoneType)]
            if len(rest) != 1:
                return info
            info = rest[0]
        else:
            return info


def _structs(info: mi.Type) -> list[mi.StructType]:
    """The Struct types a value may decode into (several for a tagged union)."""
    info = _unwrap(info)
    if isinstance(info, mi.StructType):
        return [info]
    if isinstance(info, mi.UnionType):
        return [t for t in info.types if isinstance(t, mi.StructType)]
    return []


def _pick(info: mi.Type, raw: object) -> mi.StructType | None:
    """The Struct type ``raw`` decodes into (by its tag in a union), if any."""
    choices = _structs(info)
    if len(choices) == 1 or not isinstance(raw, dict):
        return choices[0] if len(choices) == 1 else None
    tag_field = choices[0].tag_field
    return next((c for c in choices if raw.get(tag_field or "") == c.tag), None)


def _tags(info: mi.Type) -> str:
    return ", ".join(str(c.tag) for c in _structs(info))


def _table_name(path: str) -> str:
    name = re.sub(r"\[\d+\]$", "", path)
    return f"[[{name}]]" if name != path or path in ("sinks", "subscriptions") else f"[{name}]"


def _rule(info: mi.Type, path: str) -> str:
    """What a value of this type must be, in the file's words."""
    note = ""
    if isinstance(info, mi.Metadata) and info.extra_json_schema:
        note = str(info.extra_json_schema.get("description", ""))
    info = _unwrap(info)
    text = "have a valid value"
    if isinstance(info, mi.BoolType):
        text = "be true or false"
    elif isinstance(info, mi.IntType) and info.ge is not None and info.le is not None:
        text = f"be an integer in {info.ge}..{info.le}"
    elif isinstance(info, mi.IntType | mi.FloatType):
        bounds = [
            f"{op} {value:g}"
            for op, value in ((">=", info.ge), (">", info.gt), ("<=", info.le), ("<", info.lt))
            if value is not None
        ]
        kind = "an integer" if isinstance(info, mi.IntType) else "a number"
        text = " and ".join([f"be {kind} " + bounds[0], *bounds[1:]]) if bounds else f"be {kind}"
    elif isinstance(info, mi.StrType):
        text = "be a non-empty string" if info.min_length else "be a string"
    elif isinstance(info, mi.LiteralType):
        text = "be one of " + ", ".join(map(str, info.values))
    elif isinstance(info, mi.VarTupleType | mi.ListType):
        text = f"be an array of tables ({_table_name(path)})"
        if info.min_length:
            text += f" and have at least one {_table_name(path)} table"
    elif _structs(info):
        text = "be a table"
    return f"must {text}" + (f" ({note})" if note else "")


def _locate(path: str, raw: object) -> mi.Type | None:
    """The type at ``path`` (``.sinks[0].path``), following ``raw`` through tagged unions."""
    info: mi.Type | None = _FILE_INFO
    for name, index in _PART.findall(path):
        if info is None:
            return None
        if index:
            inner = _unwrap(info)
            info = inner.item_type if isinstance(inner, mi.VarTupleType | mi.ListType) else None
            raw = raw[int(index)] if isinstance(raw, list) and int(index) < len(raw) else None
            continue
        choices = _structs(info)
        if choices and name == choices[0].tag_field:
            return info  # the tag: its type is the union
        parent = _pick(info, raw)
        if parent is None:
            return None
        info = next((f.type for f in parent.fields if f.encode_name == name), None)
        raw = raw.get(name) if isinstance(raw, dict) else None
    return info


def _unknown(raw: object, info: mi.Type, path: str) -> DaemonConfigError | None:
    """The first table (in file order) with unknown keys or without its ``type``."""
    if isinstance(raw, list):
        inner = _unwrap(info)
        if isinstance(inner, mi.VarTupleType | mi.ListType):
            for index, item in enumerate(raw):
                found = _unknown(item, inner.item_type, f"{path}[{index}]")
                if found:
                    return found
        return None
    choices = _structs(info)
    if not isinstance(raw, dict) or not choices:
        return None
    tag_field = choices[0].tag_field
    if tag_field is not None and raw.get(tag_field) not in [c.tag for c in choices]:
        return (
            None
            if tag_field in raw
            else DaemonConfigError(
                _join(path, tag_field), f"required: must be one of {_tags(info)}"
            )
        )
    struct = _pick(info, raw)
    assert struct is not None
    allowed = {f.encode_name for f in struct.fields} | ({tag_field} if tag_field else set())
    unknown = [name for name in raw if name not in allowed]
    if unknown:
        return _unknown_keys(path, unknown, allowed, info)
    for item in struct.fields:
        if item.encode_name in raw:
            found = _unknown(raw[item.encode_name], item.type, _join(path, item.encode_name))
            if found:
                return found
    return None


def _unknown_keys(
    path: str, unknown: list[str], allowed: set[str], info: mi.Type
) -> DaemonConfigError:
    names = sorted(unknown)
    key = ", ".join(_join(path, name) for name in names)
    rule = "unknown key" + ("s" if len(names) > 1 else "")
    others = [
        str(c.tag)
        for c in _structs(info)
        if any(f.encode_name == names[0] for f in c.fields) and names[0] not in allowed
    ]
    guess = difflib.get_close_matches(names[0], sorted(allowed), n=1, cutoff=0.6)
    if len(names) == 1 and others:
        rule += f" here (only for type = {', '.join(repr(t) for t in others)})"
    elif len(names) == 1 and guess:
        rule += f'; did you mean "{guess[0]}"?'
    return DaemonConfigError(key, f"{rule} (allowed: {', '.join(sorted(allowed))})")


def _translate(exc: msgspec.ValidationError, raw: object) -> DaemonConfigError:
    """One ``DaemonConfigError`` line for msgspec's error."""
    match = _AT.match(str(exc))
    assert match is not None  # the pattern matches any line
    what, path = match["what"], match["path"] or ""
    key = path.lstrip(".")
    missing = re.fullmatch(r"Object missing required field `(.+)`", what)
    if missing:
        return DaemonConfigError(_join(key, missing[1]), "required")
    info = _locate(path, raw)
    if info is None:  # pragma: no cover - every path msgspec reports is in the Structs
        return DaemonConfigError(key, what)
    if key.endswith(".type") and len(_structs(info)) > 0:
        return DaemonConfigError(key, f"must be one of {_tags(info)}")
    return DaemonConfigError(key, _rule(info, key))


# -- helpers -----------------------------------------------------------------------


def parse_listen(value: str, key: str = "http.listen") -> tuple[str, int]:
    """Split and check a ``HOST:PORT`` listen address.

    Args:
        value: The address: ``"127.0.0.1:9108"``, ``"localhost:9108"``,
            ``"[::1]:9108"`` (an IPv6 address in brackets); port ``0`` means any
            free port.
        key: The key's path reported in errors.

    Returns:
        ``(host, port)``, the host without brackets.

    Raises:
        DaemonConfigError: The value is not ``HOST:PORT`` with a valid
            hostname or IP address and a port in 0..65535.
    """
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


# -- from the decoded file to the configuration ----------------------------------------


def _client(table: _ConnectionTable, base: Path | None, environ: Mapping[str, str]) -> ClientConfig:
    if (table.api_key_env is None) == (table.api_key_file is None):
        raise DaemonConfigError(
            "connection.api_key_env/connection.api_key_file",
            "set exactly one: the name of an environment variable holding the key, "
            "or the path of a file readable by its owner only",
        )
    if table.api_key_env is not None:
        source = "connection.api_key_env"
        api_key = environ.get(table.api_key_env)
        if not api_key:
            raise DaemonConfigError(source, f"environment variable {table.api_key_env} is not set")
    else:
        assert table.api_key_file is not None
        source = "connection.api_key_file"
        api_key = read_key_file(resolve_path(table.api_key_file, base))
    values: dict[str, Any] = {
        name: getattr(table, name)
        for name in _CLIENT_PASSTHROUGH
        if getattr(table, name) is not None
    }
    if table.ca_file is not None:
        values["ca_file"] = resolve_path(table.ca_file, base)
    try:
        return ClientConfig(table.host, table.port, api_key, tls=table.tls, **values)
    except ConfigError as exc:
        if exc.field == "api_key":
            raise DaemonConfigError(source, f"the key it holds is invalid: {exc.rule}") from None
        raise DaemonConfigError(f"connection.{exc.field}", exc.rule) from None


def _check_subscriptions(
    specs: tuple[SubscriptionSpec, ...], raw: object
) -> tuple[SubscriptionSpec, ...]:
    tables = raw if isinstance(raw, list) else []
    seen: set[SubscriptionSpec] = set()
    for index, (spec, table) in enumerate(zip(specs, tables, strict=True)):
        key = f"subscriptions[{index}]"
        if "depth" in table and spec.type != "order_book":
            raise DaemonConfigError(f"{key}.depth", 'only for type = "order_book"')
        if "interval" in table and spec.type != "candles":
            raise DaemonConfigError(f"{key}.interval", 'only for type = "candles"')
        if spec in seen:
            raise DaemonConfigError(key, "duplicate subscription")
        seen.add(spec)
    return specs


def _check_sinks(sinks: tuple[SinkSpec, ...], base: Path | None) -> tuple[SinkSpec, ...]:
    checked: list[SinkSpec] = []
    seen: dict[tuple[str, str], str] = {}
    for index, sink in enumerate(sinks):
        key = f"sinks[{index}]"
        sink = sink.finish(key, base)
        unique = sink.unique()
        name = unique[0]
        if unique in seen:
            raise DaemonConfigError(f"{key}.{name}", f"same destination as {seen[unique]}.{name}")
        seen[unique] = key
        checked.append(sink)
    return tuple(checked)


def parse_config(
    data: Mapping[str, Any],
    *,
    base_dir: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    source: str | None = None,
) -> DaemonConfig:
    """Decode and check a parsed TOML document.

    Unknown keys are reported first (with a suggestion for a near miss), then
    values of the wrong type or out of range, then what needs the file system
    or the environment (paths, the API key's source).

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
    connection = data.get("connection")
    if isinstance(connection, dict) and "api_key" in connection:
        raise DaemonConfigError(
            "connection.api_key",
            "the key must not be written in the configuration file; "
            "use api_key_env (an environment variable) or api_key_file (a file of mode 600)",
        )
    unknown = _unknown(dict(data), _FILE_INFO, "")
    if unknown is not None:
        raise unknown
    if "connection" not in data:
        raise DaemonConfigError("connection", "required section")
    try:
        decoded = msgspec.convert(data, _File, strict=True)
    except msgspec.ValidationError as exc:
        raise _translate(exc, data) from None
    if decoded.supervisor.backoff_max < decoded.supervisor.backoff_initial:
        raise DaemonConfigError("supervisor.backoff_max", "must be >= supervisor.backoff_initial")
    host, port = parse_listen(decoded.http.listen)
    return DaemonConfig(
        client=_client(decoded.connection, base, env),
        subscriptions=_check_subscriptions(decoded.subscriptions, data.get("subscriptions")),
        sinks=_check_sinks(decoded.sinks, base),
        http=HttpConfig(
            enabled=decoded.http.enabled,
            host=host,
            port=port,
            stale_after=decoded.http.stale_after,
        ),
        log=decoded.log,
        supervisor=decoded.supervisor,
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
