"""ClientConfig validation: hypothesis properties and the documented rules."""

from __future__ import annotations

import base64
import contextlib
import math
import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hbtrio
from hbtrio import ClientConfig, ConfigError

label = st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9-]{0,20}[A-Za-z0-9])?", fullmatch=True)
hostnames = st.lists(label, min_size=1, max_size=4).map(".".join)
ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(str)
valid_hosts = st.one_of(hostnames, ipv4, ipv6)
secret_part = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, blacklist_characters=":"),
    min_size=1,
    max_size=30,
)
valid_keys = st.builds(lambda u, p: f"{u}:{p}", secret_part, secret_part)
# Distinctive secrets for leak checks: long enough never to occur in a message by chance.
distinct_keys = st.builds(
    lambda u, p: f"usr{u}:Pw{p}Zq",
    st.text(alphabet=string.ascii_letters + string.digits, min_size=6, max_size=20),
    st.text(alphabet=string.ascii_letters + string.digits + "+/=!", min_size=8, max_size=30),
)
valid_accounts = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,20}", fullmatch=True)


@st.composite
def valid_configs(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "host": draw(valid_hosts),
        "port": draw(st.integers(1, 65535)),
        "api_key": draw(valid_keys),
        "timeout": draw(st.floats(0, 1e6, allow_nan=False, allow_infinity=False)),
        "retries": draw(st.integers(0, 100)),
        "tls": draw(st.booleans()),
        "account": draw(valid_accounts),
    }


@given(valid_configs())
def test_every_valid_configuration_is_accepted_and_kept(values: dict[str, Any]) -> None:
    config = ClientConfig(**values)
    for name, value in values.items():
        assert getattr(config, name) == value
    assert "api_key='***'" in repr(config)


# Each invalid strategy breaks exactly one field of an otherwise valid config.
bad_hosts = st.one_of(
    st.just(""),
    st.text(min_size=1).filter(lambda s: any(c in s for c in " /:?#@\t\n\x00%[]")),
    st.builds(lambda h: f"http://{h}", hostnames),
    st.builds(lambda h: f"{h}/path", hostnames),
    st.integers(),
    st.none(),
    st.just("-bad.example"),
    st.just("a" * 64 + ".com"),
    st.builds(lambda h, end: h + end, hostnames, st.sampled_from(["\n", "\r\n", " "])),
    st.builds(
        lambda zone: f"fe80::1%{zone}",
        st.text(min_size=1).filter(
            lambda z: (
                any(not (c.isascii() and c.isalnum()) for c in z)
                and any(c in z for c in ' \r\n"?#/%:@')
            )
        ),
    ),
)
bad_ports = st.one_of(
    st.integers(max_value=0),
    st.integers(min_value=65536),
    st.booleans(),
    st.floats(),
    st.integers(1, 65535).map(str),
    st.none(),
)
bad_keys = st.one_of(
    st.text(alphabet=string.ascii_letters, max_size=20),  # no colon
    secret_part.map(lambda u: f"{u}:"),
    secret_part.map(lambda p: f":{p}"),
    st.integers(),
    st.none(),
    st.builds(lambda u, p: f"{u}:\n{p}", secret_part, secret_part),
)
bad_timeouts = st.one_of(
    st.floats(max_value=-1e-9),
    st.integers(min_value=2**1024),
    st.just(math.inf),
    st.just(math.nan),
    st.text(),
    st.booleans(),
    st.none(),
)
bad_retries = st.one_of(st.integers(max_value=-1), st.floats(), st.booleans(), st.text(), st.none())
bad_accounts = st.one_of(
    st.just(""),
    st.text(min_size=1).filter(lambda s: any(c in s for c in " /.?#\"'\x00")),
    st.just("a" * 65),
    st.integers(),
)


@pytest.mark.parametrize(
    ("field", "strategy"),
    [
        ("host", bad_hosts),
        ("port", bad_ports),
        ("api_key", bad_keys),
        ("timeout", bad_timeouts),
        ("retries", bad_retries),
        ("account", bad_accounts),
        ("tls", st.one_of(st.integers(), st.text(), st.none())),
    ],
)
def test_every_invalid_field_raises_config_error(
    field: str, strategy: st.SearchStrategy[Any]
) -> None:
    @settings(suppress_health_check=[HealthCheck.filter_too_much], max_examples=150)
    @given(valid_configs(), strategy)
    def check(values: dict[str, Any], bad: Any) -> None:
        values[field] = bad
        with pytest.raises(ConfigError) as info:
            ClientConfig(**values)
        assert info.value.field == field
        assert isinstance(info.value, ValueError)
        if field != "api_key":
            assert values["api_key"] not in f"{info.value} {info.value!r}"

    check()


@given(
    st.dictionaries(
        st.sampled_from(
            [
                "host",
                "port",
                "api_key",
                "timeout",
                "retries",
                "tls",
                "ca_file",
                "account",
                "rate_limit",
            ]
        ),
        st.one_of(st.none(), st.integers(), st.floats(), st.text(), st.booleans(), st.binary()),
    )
)
def test_no_input_raises_anything_but_config_error(values: dict[str, Any]) -> None:
    base: dict[str, Any] = {"host": "localhost", "port": 8000, "api_key": "u:p"}
    base.update(values)
    with contextlib.suppress(ConfigError):
        ClientConfig(**base)


@given(distinct_keys)
def test_config_error_about_the_key_never_quotes_it(key: str) -> None:
    broken = key.replace(":", "")  # no separator: invalid
    with pytest.raises(ConfigError) as info:
        ClientConfig(host="localhost", port=1, api_key=broken)
    text = f"{info.value} {info.value!r} {info.value.args}"
    assert broken not in text
    assert base64.b64encode(broken.encode()).decode() not in text


@given(distinct_keys)
def test_repr_and_str_never_show_the_key_nor_its_base64(key: str) -> None:
    config = ClientConfig(host="localhost", port=1, api_key=key)
    password = key.partition(":")[2]
    token = base64.b64encode(key.encode()).decode()
    for text in (repr(config), str(config), f"{config}"):
        assert token not in text
        assert password not in text
    assert config.authorization == f"Basic {token}"


def test_defaults() -> None:
    config = ClientConfig(host="127.0.0.1", port=8000, api_key="admin:admin")
    assert config.timeout == 5.0
    assert config.retries == 3
    assert config.tls is True
    assert config.ca_file is None
    assert config.account == "master_account"
    assert config.base_url == "https://127.0.0.1:8000"
    assert config.ws_url == "wss://127.0.0.1:8000/ws/market-data"
    plain = config.replace(tls=False, host="::1")
    assert plain.base_url == "http://[::1]:8000"
    assert plain.ws_url == "ws://[::1]:8000/ws/market-data"
    assert plain != config
    assert config == ClientConfig(host="127.0.0.1", port=8000, api_key="admin:admin")
    assert hash(config) == hash(ClientConfig(host="127.0.0.1", port=8000, api_key="admin:x"))
    assert config.__eq__(object()) is NotImplemented


def test_replace_refuses_unknown_fields() -> None:
    config = ClientConfig(host="localhost", port=1, api_key="a:b")
    with pytest.raises(ConfigError, match="nope"):
        config.replace(nope=1)


def test_ca_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ca_file"):
        ClientConfig(host="localhost", port=1, api_key="a:b", ca_file=str(tmp_path / "missing"))
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    assert ClientConfig(host="localhost", port=1, api_key="a:b", ca_file=ca).ca_file == str(ca)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("rate_limit", 0),
        ("rate_limit", -1.0),
        ("heartbeat_timeout", 0),
        ("reconnect_initial", math.nan),
        ("pool_size", 0),
        ("pool_size", True),
        ("pool_size", 1.5),
    ],
)
def test_tuning_fields_are_validated(name: str, value: object) -> None:
    with pytest.raises(ConfigError, match=name):
        ClientConfig(host="localhost", port=1, api_key="a:b", **{name: value})


def test_reconnect_cap_not_below_initial() -> None:
    with pytest.raises(ConfigError, match="reconnect_max"):
        ClientConfig(host="h", port=1, api_key="a:b", reconnect_initial=3.0, reconnect_max=1.0)


def test_from_env_reads_every_variable(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    env = {
        "HBTRIO_HOST": "hb.example.com",
        "HBTRIO_PORT": "8443",
        "HBTRIO_API_KEY": "alice:s3cret",
        "HBTRIO_TIMEOUT": "2.5",
        "HBTRIO_RETRIES": "1",
        "HBTRIO_TLS": "off",
        "HBTRIO_CA_FILE": str(ca),
        "HBTRIO_ACCOUNT": "desk_1",
    }
    config = ClientConfig.from_env(env)
    assert (config.host, config.port, config.api_key) == ("hb.example.com", 8443, "alice:s3cret")
    assert (config.timeout, config.retries, config.tls) == (2.5, 1, False)
    assert (config.ca_file, config.account) == (str(ca), "desk_1")
    assert ClientConfig.from_env(env, port=9000).port == 9000


@pytest.mark.parametrize(
    ("env", "field"),
    [
        ({"HBTRIO_PORT": "8000", "HBTRIO_API_KEY": "a:b"}, "host"),
        ({"HBTRIO_HOST": "h", "HBTRIO_API_KEY": "a:b"}, "port"),
        ({"HBTRIO_HOST": "h", "HBTRIO_PORT": "8000"}, "api_key"),
        ({"HBTRIO_HOST": "h", "HBTRIO_PORT": "x", "HBTRIO_API_KEY": "a:b"}, "port"),
        (
            {
                "HBTRIO_HOST": "h",
                "HBTRIO_PORT": "1",
                "HBTRIO_API_KEY": "a:b",
                "HBTRIO_TLS": "maybe",
            },
            "tls",
        ),
        (
            {
                "HBTRIO_HOST": "h",
                "HBTRIO_PORT": "1",
                "HBTRIO_API_KEY": "a:b",
                "HBTRIO_TIMEOUT": "soon",
            },
            "timeout",
        ),
        (
            {
                "HBTRIO_HOST": "h",
                "HBTRIO_PORT": "1",
                "HBTRIO_API_KEY": "a:b",
                "HBTRIO_RETRIES": "-",
            },
            "retries",
        ),
    ],
)
def test_from_env_errors_name_the_field(env: dict[str, str], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        ClientConfig.from_env(env)
    assert info.value.field == field
    assert "a:b" not in str(info.value)


def test_from_env_uses_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HBTRIO_HOST", "localhost")
    monkeypatch.setenv("HBTRIO_PORT", "8000")
    monkeypatch.setenv("HBTRIO_API_KEY", "admin:admin")
    monkeypatch.setenv("HBTRIO_TLS", "1")
    assert ClientConfig.from_env().tls is True


def test_config_is_immutable() -> None:
    config = ClientConfig(host="localhost", port=1, api_key="a:b")
    with pytest.raises(AttributeError):
        config.port = 2  # type: ignore[misc]
    assert hbtrio.ClientConfig is ClientConfig
