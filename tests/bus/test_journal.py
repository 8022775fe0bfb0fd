"""The MQTT sink's journal and spool on disk, its retention, and the bus's input checks."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec
import pytest

from hbtrio import InputValidationError
from hbtrio.bus import MqttSinkConfig
from hbtrio.bus._mqtt import Credentials, make_tls_context, parse_broker_url
from hbtrio.bus._protocol import safe_level
from hbtrio.bus.journal import Journal


def payload(seq: int, _time: float) -> bytes:
    return b'{"seq":%d}' % seq


def test_sequence_spool_and_acked_survive_a_restart(tmp_path: Path) -> None:
    journal = Journal(str(tmp_path), fsync=False)
    for _ in range(5):
        journal.append("t/a", payload)
    journal.ack(1)
    journal.ack(3)  # out of order: the watermark stays at 1
    assert journal.acked == 1
    journal.close()
    again = Journal(str(tmp_path), fsync=False)
    assert again.head == 5
    assert list(again.pending) == [2, 3, 4, 5]  # 3 again: at least once
    assert again.append("t/a", payload).seq == 6
    again.ack(2)
    again.ack(3)
    assert again.acked == 3
    again.close()


def test_a_line_cut_by_a_crash_is_dropped(tmp_path: Path) -> None:
    journal = Journal(str(tmp_path), fsync=False)
    journal.append("t", payload)
    journal.append("t", payload)
    journal.close()
    (segment,) = list(tmp_path.glob("journal-*.log"))
    with open(segment, "ab") as handle:
        handle.write(b"3\t1.0\tt\t{")  # no newline: the write was cut
    again = Journal(str(tmp_path), fsync=False)
    assert again.head == 2
    assert [e.seq for e in again.read(from_seq=1)] == [1, 2]
    assert again.append("t", payload).seq == 3
    again.close()


def test_retention_by_count_and_age(tmp_path: Path) -> None:
    journal = Journal(str(tmp_path), segment_events=10, max_events=25, fsync=False)
    for _ in range(60):
        journal.append("t", payload)
    assert journal.oldest == 31  # whole segments only, while more than 25 are kept
    assert [e.seq for e in journal.read(from_seq=1)][:1] == [31]
    assert journal.head - journal.oldest + 1 <= 35
    journal.close()
    aged = Journal(str(tmp_path), segment_events=10, max_age=60, fsync=False)
    for first in (31, 41):
        old = tmp_path / f"journal-{first:020d}.log"
        os.utime(old, (1.0, 1.0))  # newest event long ago
    for _ in range(10):
        aged.append("t", payload)  # a new segment starts: expiry runs
    assert aged.oldest == 51
    aged.close()


def test_spool_is_bounded_but_the_journal_keeps_the_dropped(tmp_path: Path) -> None:
    journal = Journal(str(tmp_path), spool_max=3, fsync=False)
    for _ in range(5):
        journal.append("t", payload)
    assert list(journal.pending) == [3, 4, 5] and journal.dropped == 2
    assert [e.seq for e in journal.read(from_seq=1)] == [1, 2, 3, 4, 5]
    assert [e.seq for e in journal.read(from_time=0.0)] == [1, 2, 3, 4, 5]
    journal.close()


def test_broker_url() -> None:
    assert parse_broker_url("mqtt://h").port == 1883
    address = parse_broker_url("mqtts://h:9")
    assert (address.host, address.port, address.tls) == ("h", 9, True)
    for bad in ("http://h", "mqtt://", "mqtt://u:p@h", "mqtt://h:99999", 5):
        with pytest.raises(InputValidationError):
            parse_broker_url(bad)  # type: ignore[arg-type]


def test_credentials_from_env_or_file_never_in_repr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BUS_CRED", "alice:s3cret")
    creds = Credentials.load(env="BUS_CRED")
    assert creds is not None and (creds.username, creds.password) == ("alice", "s3cret")
    assert "s3cret" not in repr(creds)
    key = tmp_path / "key"
    key.write_text("bob:pw\n")
    file_creds = Credentials.load(file=str(key))
    assert file_creds is not None and file_creds.username == "bob"
    assert Credentials.load() is None
    monkeypatch.setenv("BUS_BAD", "nocolon")
    for kwargs in (
        {"env": "BUS_BAD"},
        {"env": "BUS_UNSET_X"},
        {"file": str(tmp_path / "missing")},
        {"env": "BUS_CRED", "file": str(key)},
    ):
        with pytest.raises(InputValidationError) as info:
            Credentials.load(**kwargs)
        assert "s3cret" not in str(info.value)


def test_bad_ca_file(tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    with pytest.raises(InputValidationError, match="ca_file"):
        make_tls_context(str(bad))


def test_sink_config_is_strict() -> None:
    decode = msgspec.json.Decoder(MqttSinkConfig).decode
    config = decode(b'{"url": "mqtt://h", "spool_dir": "/s"}')
    assert config.name == "hbtrio" and config.destination == "mqtt://h"
    with pytest.raises(msgspec.ValidationError, match="password"):
        decode(b'{"url": "mqtt://h", "spool_dir": "/s", "password": "x"}')
    with pytest.raises(msgspec.ValidationError):
        decode(b'{"url": "mqtt://h", "spool_dir": "/s", "name": "a/b"}')


def test_topic_levels_are_made_safe() -> None:
    assert safe_level("BTC/USDT #1+") == "BTC_USDT__1_"
    assert safe_level("") == "_"
