"""The daemon's ``[[sinks]] type = "mqtt"``: its configuration, and the daemon publishing."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

import hbtrio
from hbtrio.bus import MqttSinkConfig
from hbtrio.daemon.config import DaemonConfigError, load_config
from tests.mqtt_broker import Broker

ENV = {"HB_KEY": "admin:admin"}


def config_text(sinks: str, port: int = 8000) -> str:
    return f"""
[connection]
host = "127.0.0.1"
port = {port}
api_key_env = "HB_KEY"
tls = false
[http]
enabled = false
{sinks}
"""


def test_mqtt_sink_config_read_and_paths_resolved(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("u:p\n")
    path = tmp_path / "d.toml"
    path.write_text(
        config_text(
            """
[[sinks]]
type = "jsonl"
path = "events.jsonl"
[[sinks]]
type = "mqtt"
url = "mqtts://broker:8883"
spool_dir = "spool"
name = "hub"
credentials_file = "key"
[[sinks]]
type = "mqtt"
url = "mqtt://other"
spool_dir = "spool2"
"""
        )
    )
    config = load_config(path, environ=ENV)
    mqtt = [s for s in config.sinks if isinstance(s, MqttSinkConfig)]
    assert [s.url for s in mqtt] == ["mqtts://broker:8883", "mqtt://other"]
    assert mqtt[0].spool_dir == str(tmp_path / "spool") and mqtt[0].name == "hub"
    assert mqtt[0].credentials_file == str(tmp_path / "key")


@pytest.mark.parametrize(
    ("table", "words"),
    [
        ('url = "mqtt://b"\nspool_dir = "s"\npassword = "x"', "password"),
        ('url = "mqtt://b"', "spool_dir"),
        ('url = "mqtt://b"\nspool_dir = "s"\nname = "a/b"', "name"),
        ('url = "mqtt://b"\nspool_dir = "s"\nkeepalive = 0', "keepalive"),
        ('url = "mqtt://b"\nspool_dir = "s"\nca_file = "missing.pem"', "ca_file"),
    ],
)
def test_bad_mqtt_sink_named_in_one_line(tmp_path: Path, table: str, words: str) -> None:
    path = tmp_path / "d.toml"
    path.write_text(config_text(f'[[sinks]]\ntype = "mqtt"\n{table}\n'))
    with pytest.raises(DaemonConfigError) as info:
        load_config(path, environ=ENV)
    message = str(info.value)
    assert "sinks[0]" in message and words in message and "\n" not in message


def test_two_mqtt_sinks_cannot_share_a_spool(tmp_path: Path) -> None:
    path = tmp_path / "d.toml"
    sink = '[[sinks]]\ntype = "mqtt"\nurl = "mqtt://b"\nspool_dir = "s"\n'
    path.write_text(config_text(sink + sink))
    with pytest.raises(DaemonConfigError, match=r"sinks\[1\]\.spool_dir"):
        load_config(path, environ=ENV)


async def test_daemon_publishes_market_data_retained(
    broker: Broker, tmp_path: Path, nursery: trio.Nursery
) -> None:
    from hbtrio.daemon.supervisor import Daemon
    from hbtrio.sim import serve

    info = await nursery.start(
        lambda task_status: serve(port=0, tls=False, task_status=task_status)
    )
    path = tmp_path / "d.toml"
    path.write_text(
        config_text(
            f"""
[[subscriptions]]
type = "order_book"
exchange = "binance"
market = "BTC-USDT"
[[sinks]]
type = "mqtt"
url = "{broker.url}"
spool_dir = "spool"
name = "hub"
""",
            port=info.port,
        )
    )
    import logging

    daemon = Daemon(
        load_config(path, environ=ENV), logging.getLogger("test.daemon"), handle_signals=False
    )
    await nursery.start(daemon.run)
    async with hbtrio.open_bus(broker.url) as bus, bus.subscribe(hbtrio.OrderBookUpdate) as ev:
        with trio.fail_after(30):
            update = await ev.__anext__()
    assert update.book.exchange == "binance" and update.book.market == "BTC-USDT"
    # a late consumer gets the retained latest book at once
    async with hbtrio.open_bus(broker.url) as bus, bus.subscribe(hbtrio.OrderBookUpdate) as ev:
        with trio.fail_after(10):
            late = await ev.__anext__()
    assert late.book.market == "BTC-USDT"
    daemon.request_stop()
