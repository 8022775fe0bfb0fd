"""JSON Lines sinks: encoding, rotation by size, stdout, closing."""

from __future__ import annotations

import io
from decimal import Decimal
from pathlib import Path

import pytest

from hbtrio.daemon.config import SinkConfig
from hbtrio.daemon.sinks import FanoutSink, JsonLinesFileSink, StdoutSink, open_sink, open_sinks
from hbtrio.events import EVENT_DECODER, ConnectionStateChanged, ErrorEvent, TickerUpdate
from hbtrio.models import ConnectionState, Ticker


def ticker_event(i: int) -> TickerUpdate:
    ticker = Ticker(
        exchange="binance",
        market="BTC-USDT",
        bid=Decimal("100.1"),
        ask=Decimal("100.2"),
        last=Decimal(i),
        volume=Decimal("5"),
        timestamp=1.5,
    )
    return TickerUpdate(ticker=ticker, timestamp=float(i))


def test_events_round_trip_as_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    sink = JsonLinesFileSink(str(path))
    events = [
        ticker_event(1),
        ConnectionStateChanged(old=ConnectionState.CONNECTING, new=ConnectionState.CONNECTED),
        ErrorEvent(error="boom", kind="ServerError"),
    ]
    for event in events:
        sink.write(event)
    sink.close()
    lines = path.read_bytes().splitlines()
    assert [EVENT_DECODER.decode(line) for line in lines] == events
    assert b'"type":"TickerUpdate"' in lines[0]
    assert b'"last":"1"' in lines[0]  # Decimal as a string, never a float
    assert sink.written == 3


def test_file_is_appended_to_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    for i in range(2):
        sink = JsonLinesFileSink(str(path))
        sink.write(ticker_event(i))
        sink.close()
    assert len(path.read_bytes().splitlines()) == 2


def test_rotation_keeps_n_backups(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    line_size = len(open_line(ticker_event(1)))
    sink = JsonLinesFileSink(str(path), max_bytes=line_size * 3, backups=2)
    for i in range(10):  # 10 lines, 3 per file: files of 3, 3, 3, 1 lines
        sink.write(ticker_event(i % 10))
    sink.close()
    assert sink.rotations == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "events.jsonl",
        "events.jsonl.1",
        "events.jsonl.2",
    ]
    current = [EVENT_DECODER.decode(x) for x in path.read_bytes().splitlines()]
    newest_backup = [
        EVENT_DECODER.decode(x) for x in (tmp_path / "events.jsonl.1").read_bytes().splitlines()
    ]
    oldest_backup = [
        EVENT_DECODER.decode(x) for x in (tmp_path / "events.jsonl.2").read_bytes().splitlines()
    ]
    assert [e.timestamp for e in current] == [9.0]
    assert [e.timestamp for e in newest_backup] == [6.0, 7.0, 8.0]
    assert [e.timestamp for e in oldest_backup] == [3.0, 4.0, 5.0]
    for name in ("events.jsonl", "events.jsonl.1", "events.jsonl.2"):
        assert (tmp_path / name).stat().st_size <= line_size * 3


def test_rotation_without_backups_truncates(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    line_size = len(open_line(ticker_event(1)))
    sink = JsonLinesFileSink(str(path), max_bytes=line_size * 2, backups=0)
    for i in range(5):
        sink.write(ticker_event(i))
    sink.close()
    assert [p.name for p in tmp_path.iterdir()] == ["events.jsonl"]
    assert len(path.read_bytes().splitlines()) == 1


def test_a_line_larger_than_the_limit_is_still_written_whole(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    sink = JsonLinesFileSink(str(path), max_bytes=10, backups=1)
    sink.write(ticker_event(1))
    sink.write(ticker_event(2))
    sink.close()
    assert EVENT_DECODER.decode(path.read_bytes()).timestamp == 2.0
    assert EVENT_DECODER.decode((tmp_path / "events.jsonl.1").read_bytes()).timestamp == 1.0


def test_flush_makes_lines_visible_and_closed_sink_refuses(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    sink = JsonLinesFileSink(str(path))
    sink.write(ticker_event(1))
    sink.flush()
    assert len(path.read_bytes().splitlines()) == 1
    sink.close()
    sink.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        sink.write(ticker_event(2))


def test_stdout_sink() -> None:
    stream = io.BytesIO()
    sink = StdoutSink(stream)
    sink.write(ticker_event(3))
    sink.close()
    assert EVENT_DECODER.decode(stream.getvalue()) == ticker_event(3)
    assert sink.written == 1
    with pytest.raises(ValueError, match="closed"):
        sink.write(ticker_event(4))


def test_open_sink_chooses_by_path(tmp_path: Path) -> None:
    assert isinstance(open_sink(SinkConfig(path="-")), StdoutSink)
    file_sink = open_sink(SinkConfig(path=str(tmp_path / "e.jsonl"), max_bytes=5, backups=1))
    assert isinstance(file_sink, JsonLinesFileSink)
    assert (file_sink.max_bytes, file_sink.backups) == (5, 1)
    file_sink.close()


def test_fanout_writes_every_event_to_every_sink(tmp_path: Path) -> None:
    rotated, plain = tmp_path / "rotated.jsonl", tmp_path / "plain.jsonl"
    line = len(open_line(ticker_event(0)))
    sink = open_sinks(
        [
            SinkConfig(path=str(rotated), max_bytes=2 * line, backups=3),
            SinkConfig(path=str(plain), max_bytes=0),
        ]
    )
    assert isinstance(sink, FanoutSink)
    for i in range(5):
        sink.write(ticker_event(i))
    sink.flush()
    assert sink.written == 5  # events, not lines
    decoded = [EVENT_DECODER.decode(x).timestamp for x in plain.read_bytes().splitlines()]
    assert decoded == [0.0, 1.0, 2.0, 3.0, 4.0]
    # the rotated sink kept its own size limit: 2 lines per file
    rotated_lines = [
        EVENT_DECODER.decode(x).timestamp
        for name in ("rotated.jsonl.2", "rotated.jsonl.1", "rotated.jsonl")
        for x in (tmp_path / name).read_bytes().splitlines()
    ]
    assert rotated_lines == decoded
    assert [s.written for s in sink.sinks] == [5, 5]
    sink.close()
    sink.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        sink.write(ticker_event(9))


def test_open_sinks_one_sink_is_not_wrapped_and_failure_closes_the_opened(
    tmp_path: Path,
) -> None:
    single = open_sinks([SinkConfig(path=str(tmp_path / "one.jsonl"))])
    assert isinstance(single, JsonLinesFileSink)
    single.close()
    with pytest.raises(ValueError, match="no sink"):
        open_sinks([])
    with pytest.raises(OSError) as info:
        open_sinks([SinkConfig(path=str(tmp_path / "ok.jsonl")), SinkConfig(path=str(tmp_path))])
    assert info.value.filename == str(tmp_path)
    assert (tmp_path / "ok.jsonl").exists()


def open_line(event: TickerUpdate) -> bytes:
    import msgspec

    return msgspec.json.encode(event) + b"\n"
