"""``hbtrio daemon`` command: configuration errors, --check, the example file."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

import pytest

from hbtrio.cli import main
from hbtrio.daemon.config import parse_config

DOCS = Path(__file__).resolve().parents[3] / "docs"


def write_config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "daemon.toml"
    path.write_text(body)
    return path


GOOD = """
[connection]
host = "127.0.0.1"
port = 8000
tls = false
api_key_env = "HB_TEST_KEY"
"""


def test_bad_configuration_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HB_TEST_KEY", "admin:secret-value-123")
    path = write_config(tmp_path, GOOD + "colour = 'blue'\n")
    assert main(["daemon", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "hbtrio daemon: bad configuration: connection.colour: unknown key (allowed: account, "
        "api_key_env, api_key_file, ca_file, heartbeat_timeout, host, ping_interval, "
        "poll_active, poll_idle, port, rate_limit, reconnect_initial, reconnect_max, "
        "retries, timeout, tls)"
    ]
    assert "secret-value-123" not in err


def test_check_validates_and_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HB_TEST_KEY", "admin:secret-value-123")
    path = write_config(tmp_path, GOOD)
    assert main(["daemon", "--config", str(path), "--check", "--log-format", "json"]) == 0
    out = capsys.readouterr().out
    assert "configuration OK" in out and "secret-value-123" not in out
    monkeypatch.delenv("HB_TEST_KEY")
    assert main(["daemon", "--config", str(path), "--check"]) == 2
    assert "HB_TEST_KEY is not set" in capsys.readouterr().err


def test_bad_log_format_flag_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["daemon", "--config", "x.toml", "--log-format", "xml"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_the_documented_example_is_valid(tmp_path: Path) -> None:
    data = tomllib.loads((DOCS / "daemon.example.toml").read_text())
    key = tmp_path / "api-key"
    key.write_text("admin:admin")
    os.chmod(key, 0o600)
    ca = tmp_path / "ca.pem"
    ca.write_text("-")
    data["connection"]["api_key_file"] = str(key)
    data["connection"]["ca_file"] = str(ca)
    data["sinks"][0]["path"] = str(tmp_path / "events.jsonl")
    config = parse_config(data, environ={})
    assert [s.type for s in config.subscriptions] == ["order_book", "trades", "candles"]
    assert [s.path for s in config.sinks] == [str(tmp_path / "events.jsonl")]
    assert config.http.listen == "127.0.0.1:9108" and config.log.format == "json"


def test_the_toml_in_daemon_md_is_valid(tmp_path: Path) -> None:
    blocks = re.findall(r"^```toml\n(.*?)^```", (DOCS / "daemon.md").read_text(), re.M | re.S)
    assert blocks
    (tmp_path / "ca.pem").write_text("-")
    for block in blocks:
        text = block.replace("/etc/hbtrio/ca.pem", str(tmp_path / "ca.pem"))
        text = text.replace("/var/lib/hbtrio/", str(tmp_path) + "/")
        config = parse_config(tomllib.loads(text), environ={"HBTRIO_API_KEY": "admin:admin"})
        assert config.client.api_key == "admin:admin"
        assert [s.path for s in config.sinks] == [str(tmp_path / "events.jsonl")]
        assert config.http.listen == "127.0.0.1:9108"


def test_the_systemd_unit_matches_the_exit_codes() -> None:
    unit = (DOCS / "hbtrio-daemon.service").read_text()
    assert "RestartPreventExitStatus=2 3" in unit
    assert "hbtrio daemon --config" in unit and "KillSignal=SIGTERM" in unit
