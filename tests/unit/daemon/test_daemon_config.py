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
[connection]
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
    assert [(s.type, s.path) for s in config.sinks] == [("jsonl", "-")]
    assert config.http.port == 9108 and config.http.host == "127.0.0.1"
    assert config.http.enabled and config.http.listen == "127.0.0.1:9108"
    assert config.http.stale_after == 30.0
    assert config.log.format == "human"
    assert KEY not in repr(config)


def test_full_config_from_file(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    key_file(tmp_path)
    path = write(
        tmp_path,
        """
[connection]
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

[[sinks]]
type = "jsonl"
path = "events.jsonl"
max_bytes = 1000
backups = 2

[[sinks]]
type = "jsonl"
path = "-"

[http]
listen = "localhost:0"
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
    first, second = config.sinks
    assert first.path == str(tmp_path / "events.jsonl")
    assert (first.max_bytes, first.backups) == (1000, 2)
    assert second.path == "-" and second.max_bytes == 100 * 1024 * 1024
    assert config.http.host == "localhost" and config.http.port == 0
    assert config.http.stale_after == 10.0
    assert config.log.format == "json" and config.log.level == "debug"
    assert config.supervisor.backoff_max == 1.0
    assert config.source == str(path)


SINK = '\n[[sinks]]\ntype = "jsonl"\npath = "-"\n'


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        (MINIMAL + "\n[extra]\na = 1\n", "extra", "unknown key"),
        (MINIMAL + '\n[server]\nhost = "x"\n', "server", "unknown key"),
        (MINIMAL + "\n[health]\nport = 1\n", "health", "unknown key"),
        (MINIMAL + '\n[sink]\npath = "-"\n', "sink", "unknown key"),
        (MINIMAL.replace("host =", "hots = 'x'\nhost ="), "connection.hots", "unknown key"),
        (MINIMAL.replace("port = 8000", "port = 70000"), "connection.port", "1..65535"),
        (MINIMAL.replace("port = 8000", 'port = "8000"'), "connection.port", "int"),
        (MINIMAL.replace("port = 8000\n", ""), "connection.port", "required"),
        (MINIMAL.replace('host = "127.0.0.1"\n', ""), "connection.host", "required"),
        (MINIMAL.replace('"127.0.0.1"', '"https://x"'), "connection.host", "hostname"),
        (MINIMAL.replace("tls = false", 'tls = "no"'), "connection.tls", "true or false"),
        (MINIMAL + "timeout = -1\n", "connection.timeout", ">= 0"),
        (MINIMAL + SINK + "size = 3\n", "sinks[0].size", "unknown key"),
        (MINIMAL + SINK.replace("jsonl", "csv"), "sinks[0].type", "one of jsonl"),
        (MINIMAL + SINK.replace('type = "jsonl"\n', ""), "sinks[0].type", "one of jsonl"),
        (MINIMAL + SINK.replace('path = "-"\n', ""), "sinks[0].path", "required"),
        (MINIMAL + SINK + "backups = -2\n", "sinks[0].backups", "0..1000"),
        (MINIMAL + SINK + "max_bytes = 1.5\n", "sinks[0].max_bytes", "integer"),
        (
            MINIMAL + SINK.replace('"-"', '"/nonexistent-dir/x.jsonl"'),
            "sinks[0].path",
            "does not exist",
        ),
        (MINIMAL + SINK.replace('"-"', '"/"'), "sinks[0].path", "is a directory"),
        (MINIMAL + SINK + SINK, "sinks[1].path", "same destination as sinks[0]"),
        (MINIMAL + '\n[sinks]\ntype = "jsonl"\npath = "-"\n', "sinks", "array of tables"),
        (MINIMAL + "\nsinks = []\n", "connection.sinks", "unknown key"),
        ("sinks = []\n" + MINIMAL, "sinks", "at least one"),
        ("sinks = [1]\n" + MINIMAL, "sinks[0]", "table"),
        (MINIMAL + "\n[http]\nport = 9108\n", "http.port", "unknown key"),
        (MINIMAL + '\n[http]\nlisten = "127.0.0.1"\n', "http.listen", "HOST:PORT"),
        (MINIMAL + '\n[http]\nlisten = ":9108"\n', "http.listen", "HOST:PORT"),
        (MINIMAL + '\n[http]\nlisten = "127.0.0.1:"\n', "http.listen", "HOST:PORT"),
        (MINIMAL + "\n[http]\nlisten = 9108\n", "http.listen", "string"),
        (MINIMAL + '\n[http]\nlisten = "127.0.0.1:70000"\n', "http.listen", "0..65535"),
        (MINIMAL + '\n[http]\nlisten = "127.0.0.1:-1"\n', "http.listen", "0..65535"),
        (MINIMAL + '\n[http]\nlisten = "127.0.0.1:9x"\n', "http.listen", "0..65535"),
        (MINIMAL + '\n[http]\nlisten = "127.0.0.1: 80"\n', "http.listen", "0..65535"),
        (MINIMAL + '\n[http]\nlisten = "http://h:80"\n', "http.listen", "without a scheme"),
        (MINIMAL + '\n[http]\nlisten = "user@h:80"\n', "http.listen", "hostname"),
        (MINIMAL + '\n[http]\nlisten = "bad host:80"\n', "http.listen", "hostname"),
        (MINIMAL + '\n[http]\nlisten = "::1:9108"\n', "http.listen", "brackets"),
        (MINIMAL + '\n[http]\nlisten = "[nope]:9108"\n', "http.listen", "hostname"),
        (MINIMAL + "\n[http]\nenabled = 1\n", "http.enabled", "true or false"),
        (MINIMAL + "\n[http]\nstale_after = 0\n", "http.stale_after", "> 0"),
        (MINIMAL + '\n[log]\nformat = "xml"\n', "log.format", "human, json"),
        (MINIMAL + '\n[log]\nlevel = "loud"\n', "log.level", "one of"),
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
        (MINIMAL + "\nsubscriptions = 3\n", "connection.subscriptions", "unknown key"),
        (SINK, "connection", "required section"),
        ("connection = 1\n", "connection", "table"),
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
        parse_config({"connection": {}, "zeta": 1, "alpha": 2}, environ=ENV)
    assert info.value.key == "alpha, zeta"


def test_key_written_in_the_file_is_rejected_without_echo() -> None:
    data = {"connection": {"host": "h", "port": 1, "api_key": KEY}}
    with pytest.raises(DaemonConfigError) as info:
        parse_config(data, environ=ENV)
    assert info.value.key == "connection.api_key"
    assert "api_key_env" in str(info.value)
    assert KEY not in str(info.value)


def test_exactly_one_key_source() -> None:
    both = {"connection": {"host": "h", "port": 1, "api_key_env": "HB_KEY", "api_key_file": "/k"}}
    none = {"connection": {"host": "h", "port": 1}}
    for data in (both, none):
        with pytest.raises(DaemonConfigError, match="exactly one"):
            parse_config(data, environ=ENV)


def test_missing_environment_variable() -> None:
    data = {"connection": {"host": "h", "port": 1, "api_key_env": "NOPE"}}
    with pytest.raises(DaemonConfigError, match="NOPE is not set") as info:
        parse_config(data, environ={})
    assert info.value.key == "connection.api_key_env"


def test_invalid_key_value_is_not_echoed() -> None:
    data = {"connection": {"host": "h", "port": 1, "api_key_env": "HB_KEY"}}
    with pytest.raises(DaemonConfigError) as info:
        parse_config(data, environ={"HB_KEY": "no-colon-secret"})
    assert info.value.key == "connection.api_key_env"
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


def test_key_file_owned_by_another_user_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = key_file(tmp_path, 0o600)
    owner = os.stat(path).st_uid
    monkeypatch.setattr(os, "geteuid", lambda: owner + 1)
    with pytest.raises(DaemonConfigError, match="chown it") as info:
        read_key_file(str(path))
    assert info.value.key == "connection.api_key_file"
    assert f"owned by uid {owner}" in str(info.value) and f"(uid {owner + 1})" in str(info.value)
    assert KEY not in str(info.value)


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_key_file_really_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    path = key_file(tmp_path, 0o600)
    os.chown(path, 65534, -1)  # nobody
    with pytest.raises(DaemonConfigError, match="owned by uid 65534"):
        read_key_file(str(path))


def test_key_file_that_is_a_symlink_to_a_private_file_is_read(tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(key_file(tmp_path, 0o400))
    assert read_key_file(str(link)) == KEY


def test_key_file_too_large_or_not_text_is_refused_without_echo(tmp_path: Path) -> None:
    big = key_file(tmp_path, text=KEY * 1000)
    with pytest.raises(DaemonConfigError, match="larger than 4096") as info:
        read_key_file(str(big))
    assert KEY not in str(info.value)
    binary = tmp_path / "binary"
    binary.write_bytes(b"admin:\xff\xfe-secret")
    os.chmod(binary, 0o600)
    with pytest.raises(DaemonConfigError, match="not UTF-8 text") as info:
        read_key_file(str(binary))
    assert "secret" not in str(info.value) and "xff" not in str(info.value)


def test_key_file_that_is_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(DaemonConfigError, match="not a regular file"):
        read_key_file(str(fifo))


@pytest.mark.parametrize("value", ["4.5", "0.1", "3"])
def test_stop_timeout_up_to_the_cap_is_accepted(value: str) -> None:
    import tomllib

    data = tomllib.loads(MINIMAL + f"\n[supervisor]\nstop_timeout = {value}\n")
    assert parse_config(data, environ=ENV).supervisor.stop_timeout == float(value)


@pytest.mark.parametrize("value", ["4.6", "30", "inf"])
def test_stop_timeout_cannot_break_the_5_s_stop(value: str) -> None:
    import tomllib

    data = tomllib.loads(MINIMAL + f"\n[supervisor]\nstop_timeout = {value}\n")
    with pytest.raises(DaemonConfigError) as info:
        parse_config(data, environ=ENV)
    assert info.value.key == "supervisor.stop_timeout"
    assert "4.5" in str(info.value) or "finite" in str(info.value)


def test_unreadable_or_invalid_toml(tmp_path: Path) -> None:
    with pytest.raises(DaemonConfigError, match="cannot read"):
        load_config(tmp_path / "absent.toml")
    with pytest.raises(DaemonConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[connection\nhost = 1"))


ISSUE_EXAMPLE = """\
[connection]
host = "127.0.0.1"
port = 8000
api_key_env = "HBTRIO_API_KEY"     # or api_key_file = "/run/secrets/hb" (must be readable by the owner only)
ca_file = "/etc/hbtrio/ca.pem"
[[subscriptions]]
type = "order_book"                # order_book | trades | ticker | candles
exchange = "binance"
market = "BTC-USDT"
depth = 10
[[sinks]]
type = "jsonl"                     # jsonl to a file (rotated by size) or "-" for stdout
path = "/var/lib/hbtrio/events.jsonl"
[http]
listen = "127.0.0.1:9108"          # /healthz and /metrics
"""  # noqa: E501
"""The example of issue 7, verbatim."""


def test_the_issue_example_is_accepted(tmp_path: Path) -> None:
    sink_dir = tmp_path / "var-lib-hbtrio"
    sink_dir.mkdir()
    (tmp_path / "ca.pem").write_text("-")
    text = ISSUE_EXAMPLE.replace("/etc/hbtrio/ca.pem", str(tmp_path / "ca.pem")).replace(
        "/var/lib/hbtrio/events.jsonl", str(sink_dir / "events.jsonl")
    )
    assert text.count(str(tmp_path)) == 2  # only the two paths changed
    config = load_config(write(tmp_path, text), environ={"HBTRIO_API_KEY": KEY})
    assert (config.client.host, config.client.port, config.client.api_key) == (
        "127.0.0.1",
        8000,
        KEY,
    )
    assert config.client.tls and config.client.ca_file == str(tmp_path / "ca.pem")
    [spec] = config.subscriptions
    assert (spec.type, spec.exchange, spec.market, spec.depth) == (
        "order_book",
        "binance",
        "BTC-USDT",
        10,
    )
    [sink] = config.sinks
    assert (sink.type, sink.path) == ("jsonl", str(sink_dir / "events.jsonl"))
    assert (config.http.host, config.http.port, config.http.enabled) == ("127.0.0.1", 9108, True)
    assert KEY not in repr(config)


@pytest.mark.parametrize(
    ("listen", "host", "port"),
    [
        ("127.0.0.1:9108", "127.0.0.1", 9108),
        ("localhost:0", "localhost", 0),
        ("0.0.0.0:65535", "0.0.0.0", 65535),
        ("[::1]:9108", "::1", 9108),
        ("metrics.internal.example:80", "metrics.internal.example", 80),
    ],
)
def test_http_listen_addresses(listen: str, host: str, port: int) -> None:
    import tomllib

    data = tomllib.loads(MINIMAL + f'\n[http]\nlisten = "{listen}"\n')
    config = parse_config(data, environ=ENV)
    assert (config.http.host, config.http.port) == (host, port)
    assert config.http.listen == listen


def test_http_can_be_turned_off() -> None:
    import tomllib

    config = parse_config(tomllib.loads(MINIMAL + "\n[http]\nenabled = false\n"), environ=ENV)
    assert not config.http.enabled


@pytest.mark.parametrize(
    ("text", "key", "suggestion"),
    [
        (MINIMAL.replace("host =", "hots ="), "connection.hots", '"host"'),
        (MINIMAL + "\n[htp]\nlisten = 'x:1'\n", "htp", '"http"'),
        (MINIMAL + SINK + SINK.replace("path", "paht"), "sinks[1].paht", '"path"'),
        (MINIMAL + "\n[supervisor]\nbackof_max = 3\n", "supervisor.backof_max", '"backoff_max"'),
    ],
)
def test_unknown_key_near_a_known_one_gets_a_suggestion(
    text: str, key: str, suggestion: str
) -> None:
    import tomllib

    with pytest.raises(DaemonConfigError) as info:
        parse_config(tomllib.loads(text), environ=ENV)
    assert info.value.key == key
    assert f"did you mean {suggestion}?" in str(info.value)
    assert "\n" not in str(info.value)


def test_a_misspelt_key_is_named_rather_than_the_missing_one() -> None:
    import tomllib

    # "hots" instead of "host": the unknown key is the cause, not "host required".
    with pytest.raises(DaemonConfigError) as info:
        parse_config(tomllib.loads(MINIMAL.replace("host =", "hots =")), environ=ENV)
    assert info.value.key == "connection.hots"


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        (MINIMAL + SINK + SINK.replace('"-"', "1"), "sinks[1].path", "string"),
        (MINIMAL + SINK + SINK.replace('"-"', '""'), "sinks[1].path", "non-empty"),
        (MINIMAL + "\n[supervisor]\nbackoff_max = inf\n", "supervisor.backoff_max", "<= 86400"),
        (MINIMAL + "\n[supervisor]\nprobe_interval = nan\n", "supervisor.probe_interval", ">= 0"),
        (MINIMAL + "\n[supervisor]\nbuffer = 0\n", "supervisor.buffer", "1..10000000"),
        (MINIMAL + "\n[http]\nstale_after = inf\n", "http.stale_after", "> 0"),
        (MINIMAL + "retries = true\n", "connection.retries", "integer"),
        (MINIMAL + "rate_limit = 0\n", "connection.rate_limit", "> 0"),
        (
            MINIMAL
            + '\n[[subscriptions]]\ntype = "ticker"\nexchange = "b"\nmarket = "m"'
            + '\ninterval = "1m"\n',
            "subscriptions[0].interval",
            "candles",
        ),
        (
            MINIMAL + '\n[[subscriptions]]\ntype = "order_book"\nexchange = ""\nmarket = "m"\n',
            "subscriptions[0].exchange",
            "non-empty",
        ),
    ],
)
def test_bad_values_deep_in_arrays_are_named_by_path(text: str, key: str, words: str) -> None:
    import tomllib

    with pytest.raises(DaemonConfigError) as info:
        parse_config(tomllib.loads(text), environ=ENV)
    assert info.value.key == key, str(info.value)
    assert words in str(info.value)
    assert "\n" not in str(info.value)


def test_the_sink_struct_knows_its_type_and_destination(tmp_path: Path) -> None:
    import tomllib

    text = MINIMAL + SINK.replace('"-"', '"events.jsonl"')
    config = parse_config(tomllib.loads(text), environ=ENV, base_dir=tmp_path)
    [sink] = config.sinks
    assert sink.type == "jsonl"
    assert sink.destination == str(tmp_path / "events.jsonl")


def test_sink_types_are_a_tagged_union(tmp_path: Path) -> None:
    import tomllib

    mqtt = '\n[[sinks]]\ntype = "mqtt"\nurl = "mqtt://127.0.0.1:1883"\nspool_dir = "spool"\n'
    config = parse_config(tomllib.loads(MINIMAL + SINK + mqtt), environ=ENV, base_dir=tmp_path)
    assert [(s.type, s.destination) for s in config.sinks] == [
        ("jsonl", "-"),
        ("mqtt", "mqtt://127.0.0.1:1883"),
    ]
    assert config.sinks[1].unique() == ("spool_dir", str(tmp_path / "spool"))
    cases = [
        (mqtt + 'path = "x"\n', "sinks[1].path", "only for type = 'jsonl'"),
        (SINK + 'url = "x"\n', "sinks[1].url", "only for type = 'mqtt'"),
        (mqtt.replace("mqtt", "mqqt", 1), "sinks[1].type", "one of jsonl, mqtt"),
        (mqtt + mqtt, "sinks[2].spool_dir", "same destination as sinks[1].spool_dir"),
    ]
    for extra, key, words in cases:
        with pytest.raises(DaemonConfigError) as info:
            parse_config(tomllib.loads(MINIMAL + SINK + extra), environ=ENV, base_dir=tmp_path)
        assert info.value.key == key and words in str(info.value), str(info.value)
