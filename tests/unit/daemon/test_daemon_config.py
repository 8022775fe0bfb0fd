"""Daemon TOML configuration: parsing, validation, the key's sources."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hbtrio.daemon.config import DaemonConfigError, load_config, parse_config, read_key_file

KEY = "admin:s3cret-pass"
ENV = {"HB_KEY": KEY}


def write(tmp_path: Path, text: str, name: str = "daemon.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def key_file(tmp_path: Path, mode: int = 0o600, text: str = KEY + "\n") -> Path:
    path = tmp_path / "key"
    path.write_text(text)
    os.chmod(path, mode)
    return path


MINIMAL = """
[server]
host = "127.0.0.1"
port = 8000
api_key_env = "HB_KEY"
tls = false
"""


def test_minimal_config_has_defaults() -> None:
    import tomllib

    config = parse_config(tomllib.loads(MINIMAL), environ=ENV)
    assert config.client.host == "127.0.0.1"
    assert config.client.port == 8000
    assert config.client.api_key == KEY
    assert config.client.tls is False
    assert config.subscriptions == ()
    assert config.sink.path == "-"
    assert config.health.port == 9108 and config.health.host == "127.0.0.1"
    assert config.health.stale_after == 30.0
    assert config.log.format == "human"
    assert KEY not in repr(config)


def test_full_config_from_file(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    key_file(tmp_path)
    path = write(
        tmp_path,
        """
[server]
host = "localhost"
port = 8443
ca_file = "ca.pem"
api_key_file = "key"
account = "acct_1"
timeout = 2.5
retries = 1
reconnect_max = 5.0

[[subscriptions]]
type = "order_book"
exchange = "binance"
market = "BTC-USDT"
depth = 5

[[subscriptions]]
type = "candles"
exchange = "binance"
market = "ETH-USDT"
interval = "5m"

[[subscriptions]]
type = "trades"
exchange = "binance"
market = "BTC-USDT"

[sink]
path = "events.jsonl"
max_bytes = 1000
backups = 2

[health]
port = 0
stale_after = 10

[log]
format = "json"
level = "debug"

[supervisor]
backoff_initial = 0.1
backoff_max = 1
""",
    )
    config = load_config(path, environ={})
    assert config.client.ca_file == str(ca)
    assert config.client.api_key == KEY
    assert config.client.account == "acct_1"
    assert config.client.timeout == 2.5 and config.client.retries == 1
    assert config.client.reconnect_max == 5.0
    assert [s.type for s in config.subscriptions] == ["order_book", "candles", "trades"]
    assert config.subscriptions[0].depth == 5
    assert config.subscriptions[1].interval == "5m"
    assert config.sink.path == str(tmp_path / "events.jsonl")
    assert (config.sink.max_bytes, config.sink.backups) == (1000, 2)
    assert config.health.port == 0 and config.health.stale_after == 10.0
    assert config.log.format == "json" and config.log.level == "debug"
    assert config.supervisor.backoff_max == 1.0
    assert config.source == str(path)


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        (MINIMAL + "\n[extra]\na = 1\n", "extra", "unknown key"),
        (MINIMAL.replace("host =", "hots = 'x'\nhost ="), "server.hots", "unknown key"),
        (MINIMAL + '\n[sink]\npath = "-"\nsize = 3\n', "sink.size", "unknown key"),
        (MINIMAL.replace("port = 8000", "port = 70000"), "server.port", "1..65535"),
        (MINIMAL.replace("port = 8000", 'port = "8000"'), "server.port", "int"),
        (MINIMAL.replace("port = 8000\n", ""), "server.port", "required"),
        (MINIMAL.replace('host = "127.0.0.1"\n', ""), "server.host", "required"),
        (MINIMAL.replace('"127.0.0.1"', '"https://x"'), "server.host", "hostname"),
        (MINIMAL.replace("tls = false", 'tls = "no"'), "server.tls", "true or false"),
        (MINIMAL + "timeout = -1\n", "server.timeout", ">= 0"),
        (MINIMAL + "\n[health]\nport = -1\n", "health.port", "0..65535"),
        (MINIMAL + "\n[health]\nstale_after = 0\n", "health.stale_after", "> 0"),
        (MINIMAL + '\n[log]\nformat = "xml"\n', "log.format", "human, json"),
        (MINIMAL + '\n[log]\nlevel = "loud"\n', "log.level", "one of"),
        (MINIMAL + "\n[sink]\nbackups = -2\n", "sink.backups", "0..1000"),
        (MINIMAL + '\n[sink]\npath = "/nonexistent-dir/x.jsonl"\n', "sink.path", "does not exist"),
        (
            MINIMAL + "\n[supervisor]\nbackoff_initial = 5\nbackoff_max = 1\n",
            "supervisor.backoff_max",
            ">=",
        ),
        (
            MINIMAL + '\n[[subscriptions]]\ntype = "depth"\nexchange = "b"\nmarket = "m"\n',
            "subscriptions[0].type",
            "order_book",
        ),
        (
            MINIMAL + '\n[[subscriptions]]\ntype = "ticker"\nexchange = "b"\n',
            "subscriptions[0].market",
            "required",
        ),
        (
            MINIMAL
            + '\n[[subscriptions]]\ntype = "ticker"\nexchange = "b"\nmarket = "m"\ndepth = 3\n',
            "subscriptions[0].depth",
            "order_book",
        ),
        (
            MINIMAL
            + '\n[[subscriptions]]\ntype = "order_book"\nexchange = "b"\nmarket = "m"\nfoo = 1\n',
            "subscriptions[0].foo",
            "unknown key",
        ),
        (
            MINIMAL + "\n[[subscriptions]]\ntype = 'ticker'\nexchange = 'b'\nmarket = 'm'\n" * 2,
            "subscriptions[1]",
            "duplicate",
        ),
        (MINIMAL + "\nsubscriptions = 3\n", "server.subscriptions", "unknown key"),
        ("[sink]\npath = '-'\n", "server", "required section"),
        ("server = 1\n", "server", "table"),
    ],
)
def test_bad_values_name_the_key(text: str, key: str, words: str, tmp_path: Path) -> None:
    with pytest.raises(DaemonConfigError) as info:
        load_config(write(tmp_path, text), environ=ENV)
    message = str(info.value)
    assert info.value.key == key, message
    assert words in message
    assert "\n" not in message
    assert KEY not in message


def test_several_unknown_keys_are_all_named() -> None:
    with pytest.raises(DaemonConfigError) as info:
        parse_config({"server": {}, "zeta": 1, "alpha": 2}, environ=ENV)
    assert info.value.key == "alpha, zeta"


def test_key_written_in_the_file_is_rejected_without_echo() -> None:
    data = {"server": {"host": "h", "port": 1, "api_key": KEY}}
    with pytest.raises(DaemonConfigError) as info:
        parse_config(data, environ=ENV)
    assert info.value.key == "server.api_key"
    assert "api_key_env" in str(info.value)
    assert KEY not in str(info.value)


def test_exactly_one_key_source() -> None:
    both = {"server": {"host": "h", "port": 1, "api_key_env": "HB_KEY", "api_key_file": "/k"}}
    none = {"server": {"host": "h", "port": 1}}
    for data in (both, none):
        with pytest.raises(DaemonConfigError, match="exactly one"):
            parse_config(data, environ=ENV)


def test_missing_environment_variable() -> None:
    data = {"server": {"host": "h", "port": 1, "api_key_env": "NOPE"}}
    with pytest.raises(DaemonConfigError, match="NOPE is not set") as info:
        parse_config(data, environ={})
    assert info.value.key == "server.api_key_env"


def test_invalid_key_value_is_not_echoed() -> None:
    data = {"server": {"host": "h", "port": 1, "api_key_env": "HB_KEY"}}
    with pytest.raises(DaemonConfigError) as info:
        parse_config(data, environ={"HB_KEY": "no-colon-secret"})
    assert info.value.key == "server.api_key_env"
    assert "no-colon-secret" not in str(info.value)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_key_file_must_be_private(tmp_path: Path, mode: int) -> None:
    path = key_file(tmp_path, mode)
    with pytest.raises(DaemonConfigError, match="chmod 600") as info:
        read_key_file(str(path))
    assert f"{mode:04o}" in str(info.value)
    assert KEY not in str(info.value)


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_private_key_file_is_read(tmp_path: Path, mode: int) -> None:
    assert read_key_file(str(key_file(tmp_path, mode))) == KEY


def test_key_file_missing_empty_or_directory(tmp_path: Path) -> None:
    with pytest.raises(DaemonConfigError, match="cannot read"):
        read_key_file(str(tmp_path / "absent"))
    with pytest.raises(DaemonConfigError, match="is empty"):
        read_key_file(str(key_file(tmp_path, text="  \n")))
    with pytest.raises(DaemonConfigError, match="not a regular file"):
        read_key_file(str(tmp_path))


def test_unreadable_or_invalid_toml(tmp_path: Path) -> None:
    with pytest.raises(DaemonConfigError, match="cannot read"):
        load_config(tmp_path / "absent.toml")
    with pytest.raises(DaemonConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[server\nhost = 1"))
