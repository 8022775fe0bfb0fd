"""Client configuration: ``ClientConfig``, validated on construction."""

from __future__ import annotations

import base64
import ipaddress
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._errors import ConfigError
from ._validation import ACCOUNT_RE

__all__ = ["ClientConfig"]

_HOSTNAME_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")  # used with fullmatch
_SCOPE_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # an IPv6 zone: an interface name or index
_HOST_RULE = (
    "must be a hostname or IP address only (letters, digits, '-' and '.'; "
    "no scheme, port, path, whitespace or control characters)"
)


def _check_host(host: object) -> str:
    if not isinstance(host, str) or not host:
        raise ConfigError("host", "required: a non-empty hostname or IP address")
    candidate = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        pass
    else:
        _, zone_sep, zone = candidate.partition("%")
        if zone_sep and not _SCOPE_ID.fullmatch(zone):
            raise ConfigError("host", _HOST_RULE)
        return candidate
    labels = host[:-1].split(".") if host.endswith(".") else host.split(".")
    if len(host) > 253 or not all(_HOSTNAME_LABEL.fullmatch(label) for label in labels):
        raise ConfigError("host", _HOST_RULE)
    return host


def _check_port(port: object) -> int:
    if isinstance(port, bool) or not isinstance(port, int):
        raise ConfigError("port", "must be an int in 1..65535")
    if not 1 <= port <= 65535:
        raise ConfigError("port", "must be in 1..65535")
    return port


def _check_api_key(api_key: object) -> str:
    rule = "must be the credential pair 'username:password' with both parts non-empty"
    if not isinstance(api_key, str):
        raise ConfigError("api_key", "required: " + rule)
    user, sep, password = api_key.partition(":")
    if not sep or not user or not password:
        raise ConfigError("api_key", rule)
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in api_key):
        raise ConfigError("api_key", "must not contain control characters")
    return api_key


def _check_non_negative_float(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(name, "must be a number")
    try:
        result = float(value)
    except OverflowError:  # an int too large for a float
        result = math.inf
    if not math.isfinite(result) or result < 0:
        raise ConfigError(name, "must be finite and >= 0")
    return result


def _check_positive_float(name: str, value: object) -> float:
    result = _check_non_negative_float(name, value)
    if result == 0:
        raise ConfigError(name, "must be > 0")
    return result


def _check_non_negative_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(name, "must be an int >= 0")
    if value < 0:
        raise ConfigError(name, "must be an int >= 0")
    return value


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class ClientConfig:
    """Everything a client needs to talk to one Hummingbot API server.

    Every field is validated on construction; an invalid value raises
    ``ConfigError`` naming the field and the rule (never quoting
    the API key). ``repr()`` and ``str()`` never show the API key.

    Args:
        host: Server hostname or IP address (no scheme, port or path).
        port: Server port, an ``int`` in 1..65535.
        api_key: The Hummingbot API credential pair ``"username:password"``.
        timeout: Seconds each request attempt may take; ``0`` turns per-attempt
            deadlines off (liveness checks still end calls on a dead connection).
        retries: Further attempts after a failed retryable request (``>= 0``).
        tls: Use ``https``/``wss`` with certificate verification (default).
        ca_file: PEM bundle of CA certificates to verify the server with, instead
            of the system trust store. Must exist.
        account: Hummingbot account used for orders.
        rate_limit: Client-side request rate limit in requests per second; callers
            wait for a slot, nothing is dropped. ``None`` (default) for no limit.
        heartbeat_timeout: Seconds without any WebSocket traffic after which the
            connection is declared dead and replaced (default 60, twice the
            server's heartbeat interval).
        ping_interval: Seconds between the client's own WebSocket pings.
        reconnect_initial: First reconnection backoff delay, seconds.
        reconnect_max: Cap of the reconnection backoff delay, seconds.
        reconnect_reset_after: Seconds of stable connection after which the
            backoff starts again from ``reconnect_initial``.
        poll_active: Order-tracker poll interval while orders are in flight, seconds.
        poll_idle: Order-tracker poll interval when no order is in flight, seconds.
        pool_size: Maximum number of kept-alive HTTP connections.

    Raises:
        ConfigError: A value is invalid.
    """

    host: str
    port: int
    api_key: str = field(repr=False)
    timeout: float = 5.0
    retries: int = 3
    tls: bool = True
    ca_file: str | None = None
    account: str = "master_account"
    rate_limit: float | None = None
    heartbeat_timeout: float = 60.0
    ping_interval: float = 10.0
    reconnect_initial: float = 0.1
    reconnect_max: float = 2.0
    reconnect_reset_after: float = 10.0
    poll_active: float = 0.1
    poll_idle: float = 2.0
    pool_size: int = 32

    def __post_init__(self) -> None:
        setter = object.__setattr__
        setter(self, "host", _check_host(self.host))
        setter(self, "port", _check_port(self.port))
        setter(self, "api_key", _check_api_key(self.api_key))
        setter(self, "timeout", _check_non_negative_float("timeout", self.timeout))
        setter(self, "retries", _check_non_negative_int("retries", self.retries))
        if not isinstance(self.tls, bool):
            raise ConfigError("tls", "must be a bool")
        if self.ca_file is not None:
            if not isinstance(self.ca_file, str | os.PathLike) or not os.path.isfile(self.ca_file):
                raise ConfigError("ca_file", "must be the path of an existing file")
            setter(self, "ca_file", os.fspath(self.ca_file))
        if not isinstance(self.account, str) or not ACCOUNT_RE.fullmatch(self.account):
            raise ConfigError(
                "account",
                "must be 1-64 letters, digits, '_' or '-', starting with a letter or digit",
            )
        if self.rate_limit is not None:
            setter(self, "rate_limit", _check_positive_float("rate_limit", self.rate_limit))
        for name in (
            "heartbeat_timeout",
            "ping_interval",
            "reconnect_initial",
            "reconnect_max",
            "reconnect_reset_after",
            "poll_active",
            "poll_idle",
        ):
            setter(self, name, _check_positive_float(name, getattr(self, name)))
        if self.reconnect_max < self.reconnect_initial:
            raise ConfigError("reconnect_max", "must be >= reconnect_initial")
        if isinstance(self.pool_size, bool) or not isinstance(self.pool_size, int):
            raise ConfigError("pool_size", "must be an int >= 1")
        if self.pool_size < 1:
            raise ConfigError("pool_size", "must be an int >= 1")

    # -- derived values --------------------------------------------------------

    @property
    def username(self) -> str:
        """The user name part of the credential pair (not secret)."""
        return self.api_key.partition(":")[0]

    @property
    def authorization(self) -> str:
        """The ``Authorization`` header value (``Basic ...``). Secret: never log it."""
        token = base64.b64encode(self.api_key.encode("utf-8")).decode("ascii")
        return f"Basic {token}"

    @property
    def base_url(self) -> str:
        """``https://host:port`` (or ``http://`` when ``tls`` is off)."""
        return f"{'https' if self.tls else 'http'}://{self._netloc}"

    @property
    def ws_url(self) -> str:
        """URL of the market-data WebSocket (no credentials in it)."""
        return f"{'wss' if self.tls else 'ws'}://{self._netloc}/ws/market-data"

    @property
    def _netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def replace(self, **changes: Any) -> ClientConfig:
        """Return a copy with some fields changed (validated again).

        Args:
            **changes: Field names and their new values.

        Returns:
            The new configuration.

        Raises:
            ConfigError: A new value is invalid, or a name is not a field.
        """
        values = {name: getattr(self, name) for name in self.__dataclass_fields__}
        for name in changes:
            if name not in values:
                raise ConfigError(name, "is not a configuration field")
        values.update(changes)
        return ClientConfig(**values)

    def __repr__(self) -> str:
        return (
            f"ClientConfig(host={self.host!r}, port={self.port!r}, api_key='***', "
            f"timeout={self.timeout!r}, retries={self.retries!r}, tls={self.tls!r}, "
            f"ca_file={self.ca_file!r}, account={self.account!r})"
        )

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ClientConfig):
            return NotImplemented
        return all(
            getattr(self, name) == getattr(other, name) for name in self.__dataclass_fields__
        )

    def __hash__(self) -> int:
        return hash((self.host, self.port, self.account))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> ClientConfig:
        """Build a configuration from ``HBTRIO_*`` environment variables.

        Reads ``HBTRIO_HOST``, ``HBTRIO_PORT``, ``HBTRIO_API_KEY``,
        ``HBTRIO_TIMEOUT``, ``HBTRIO_RETRIES``, ``HBTRIO_TLS`` (``1/0``,
        ``true/false``, ``yes/no``, ``on/off``), ``HBTRIO_CA_FILE`` and
        ``HBTRIO_ACCOUNT``. Unset optional variables keep their defaults.

        Args:
            environ: The mapping to read (default: ``os.environ``).
            **overrides: Values that take precedence over the environment.

        Returns:
            The validated configuration.

        Raises:
            ConfigError: A variable is missing or invalid.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, var in (("host", "HBTRIO_HOST"), ("api_key", "HBTRIO_API_KEY")):
            if var in env:
                values[name] = env[var]
        if "HBTRIO_PORT" in env:
            values["port"] = _parse_int("port", env["HBTRIO_PORT"])
        if "HBTRIO_TIMEOUT" in env:
            try:
                values["timeout"] = float(env["HBTRIO_TIMEOUT"])
            except ValueError:
                raise ConfigError("timeout", "HBTRIO_TIMEOUT must be a number") from None
        if "HBTRIO_RETRIES" in env:
            values["retries"] = _parse_int("retries", env["HBTRIO_RETRIES"])
        if "HBTRIO_TLS" in env:
            values["tls"] = _parse_bool("tls", env["HBTRIO_TLS"])
        if env.get("HBTRIO_CA_FILE"):
            values["ca_file"] = env["HBTRIO_CA_FILE"]
        if env.get("HBTRIO_ACCOUNT"):
            values["account"] = env["HBTRIO_ACCOUNT"]
        values.update(overrides)
        for name, var in (
            ("host", "HBTRIO_HOST"),
            ("port", "HBTRIO_PORT"),
            ("api_key", "HBTRIO_API_KEY"),
        ):
            if name not in values:
                raise ConfigError(name, f"required: set {var}")
        return cls(**values)


def _parse_int(name: str, text: str) -> int:
    try:
        return int(text.strip(), 10)
    except ValueError:
        raise ConfigError(name, f"HBTRIO_{name.upper()} must be an integer") from None


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _parse_bool(name: str, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigError(name, f"HBTRIO_{name.upper()} must be one of 1/0, true/false, yes/no, on/off")
