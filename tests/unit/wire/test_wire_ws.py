"""Tests of hbtrio._wire.ws: WebSocket message decoding, encoding and conversion."""

from __future__ import annotations

import contextlib
import json
from decimal import Decimal

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hbtrio import MalformedResponse
from hbtrio._wire import ws
from hbtrio.models import Candle, Level, Side


def test_connected_heartbeat_pong() -> None:
    m = ws.decode_server_message(
        b'{"type":"connected","connection_id":"a1b2c3d4","timestamp":1700000000.25}'
    )
    assert m == ws.ConnectedMessage(connection_id="a1b2c3d4", timestamp=1700000000.25)
    assert ws.decode_server_message('{"type":"heartbeat","timestamp":1}') == ws.HeartbeatMessage(
        timestamp=1.0
    )
    assert isinstance(ws.decode_server_message('{"type":"pong","timestamp":2.5}'), ws.PongMessage)


def test_acks_and_error() -> None:
    assert ws.decode_server_message(
        '{"type":"subscribed","subscription_id":"order_book_binance_BTC-USDT"}'
    ) == ws.SubscribedMessage(subscription_id="order_book_binance_BTC-USDT")
    assert ws.decode_server_message(
        '{"type":"unsubscribed","subscription_id":"x"}'
    ) == ws.UnsubscribedMessage(subscription_id="x")
    err = ws.decode_server_message('{"type":"error","message":"Authentication failed"}')
    assert err == ws.ErrorMessage(message="Authentication failed")


def test_unknown_type_is_not_an_error() -> None:
    m = ws.decode_server_message('{"type":"funding_rate","data":{"x":1}}')
    assert m == ws.UnknownMessage(type="funding_rate")


def test_order_book_push_numbers_strings_and_objects() -> None:
    raw = {
        "type": "order_book",
        "subscription_id": "order_book_binance_BTC-USDT",
        "data": {
            "bids": [[50000.5, 0.1], ["49999.9", "2"]],
            "asks": [{"price": "50001", "amount": 0.25}],
        },
        "timestamp": 1700000000.5,
    }
    m = ws.decode_server_message(json.dumps(raw))
    assert isinstance(m, ws.OrderBookMessage)
    book = ws.order_book_from_push(m, "binance", "BTC-USDT")
    assert book.exchange == "binance" and book.market == "BTC-USDT"
    assert book.bids == (
        Level(Decimal("50000.5"), Decimal("0.1")),
        Level(Decimal("49999.9"), Decimal("2")),
    )
    assert book.asks == (Level(Decimal("50001"), Decimal("0.25")),)
    assert book.timestamp == 1700000000.5


def test_order_book_push_without_timestamp_uses_now() -> None:
    m = ws.decode_server_message(
        '{"type":"order_book","subscription_id":"s","data":{"bids":[],"asks":[]}}'
    )
    assert isinstance(m, ws.OrderBookMessage)
    assert ws.order_book_from_push(m, "x", "A-B", now=42.0).timestamp == 42.0


def test_trades_push() -> None:
    raw = (
        '{"type":"trades","subscription_id":"trades_binance_BTC-USDT","data":['
        '{"timestamp":1700000001.5,"price":50000.1,"amount":"0.01","side":"buy"},'
        '{"timestamp":"2024-01-01T00:00:00+00:00","price":"50000","amount":0.2,"side":"SELL"}],'
        '"timestamp":1700000002}'
    )
    m = ws.decode_server_message(raw)
    assert isinstance(m, ws.TradesMessage)
    trades = ws.trades_from_push(m, "binance", "BTC-USDT")
    assert [t.side for t in trades] == [Side.BUY, Side.SELL]
    assert trades[0].price == Decimal("50000.1") and trades[0].amount == Decimal("0.01")
    assert trades[1].timestamp == 1704067200.0


def test_trades_push_bad_side() -> None:
    m = ws.decode_server_message(
        '{"type":"trades","subscription_id":"s","data":[{"price":1,"amount":1,"side":"hold"}]}'
    )
    assert isinstance(m, ws.TradesMessage)
    with pytest.raises(MalformedResponse):
        ws.trades_from_push(m, "x", "A-B")


def test_candles_and_candle_update() -> None:
    candle = {
        "timestamp": 1700000040,
        "open": 1.5,
        "high": "2",
        "low": 1,
        "close": 1.75,
        "volume": 12.5,
        "quote_asset_volume": 20,
        "n_trades": 7,
    }
    m = ws.decode_server_message(
        json.dumps({"type": "candles", "subscription_id": "c", "data": [candle], "timestamp": 1})
    )
    assert isinstance(m, ws.CandlesMessage)
    expected = Candle(
        timestamp=1700000040.0,
        open=Decimal("1.5"),
        high=Decimal(2),
        low=Decimal(1),
        close=Decimal("1.75"),
        volume=Decimal("12.5"),
    )
    assert ws.candles_from_push(m) == (expected,)
    u = ws.decode_server_message(
        json.dumps({"type": "candle_update", "subscription_id": "c", "data": candle})
    )
    assert isinstance(u, ws.CandleUpdateMessage)
    assert ws.candle_from_update(u) == expected


def test_candle_timestamp_in_milliseconds() -> None:
    candle = ws.WireCandle(
        timestamp=1700000040000,
        open=Decimal(1),
        high=Decimal(1),
        low=Decimal(1),
        close=Decimal(1),
    )
    assert ws.candle_from_wire(candle).timestamp == 1700000040.0


@pytest.mark.parametrize(
    "frame",
    [
        b"\xff\xfe",
        b'{"type":"error","message":"\xff"}',
        b"",
        b"[]",
        b"null",
        b'{"type":1}',
        b'{"no_type":true}',
        b'{"type":"subscribed"}',
        b'{"type":"order_book","subscription_id":"s","data":{"bids":[[1]],"asks":[]}}',
        b'{"type":"order_book","subscription_id":"s","data":{"bids":[[1,2,3]],"asks":[]}}',
        b'{"type":"trades","subscription_id":"s","data":{}}',
        b'{"type":"candles","subscription_id":"s","data":[{"timestamp":1}]}',
        b'{"type":"heartbeat","timestamp":NaN}',
        b'{"type":"heartbeat","timestamp":1e400}',
        '{"type":"error","message":"\ud800"}',
        b'{"type":"heartbeat"',
    ],
)
def test_malformed_frames(frame: bytes | str) -> None:
    with pytest.raises(MalformedResponse) as info:
        ws.decode_server_message(frame)
    assert len(info.value.excerpt) <= 200


def test_oversized_frame() -> None:
    big = '{"type":"heartbeat","pad":"' + "x" * 2000 + '"}'
    assert isinstance(ws.decode_server_message(big), ws.HeartbeatMessage)
    with pytest.raises(MalformedResponse, match="too large"):
        ws.decode_server_message(big, max_size=1000)
    with pytest.raises(MalformedResponse, match="too large"):
        ws.decode_server_message(big.encode(), max_size=1000)


def test_non_bytes_frame() -> None:
    with pytest.raises(MalformedResponse):
        ws.decode_server_message(123)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ['"NaN"', '"Infinity"', '"1e999999"', '"1e-999999"', '"-inf"'])
def test_conversion_refuses_non_finite_or_absurd_numbers(value: str) -> None:
    frame = (
        '{"type":"order_book","subscription_id":"s","data":{"bids":[[' + value + ",1]],"
        '"asks":[]},"timestamp":1}'
    )
    m = ws.decode_server_message(frame)
    assert isinstance(m, ws.OrderBookMessage)
    with pytest.raises(MalformedResponse):
        ws.order_book_from_push(m, "x", "A-B")
    candle = ws.WireCandle(
        timestamp=1,
        open=Decimal(value.strip('"')),
        high=Decimal(1),
        low=Decimal(1),
        close=Decimal(1),
    )
    with pytest.raises(MalformedResponse):
        ws.candles_from_push(ws.CandlesMessage(subscription_id="s", data=[candle]))


@pytest.mark.parametrize("ts", ["-5", "yesterday", -1.0, 1e300])
def test_conversion_refuses_bad_timestamps(ts: float | str) -> None:
    m = ws.OrderBookMessage(
        subscription_id="s",
        data=ws.decode_server_message(  # reuse the decoder for data
            '{"type":"order_book","subscription_id":"s","data":{"bids":[],"asks":[]}}'
        ).data,  # type: ignore[union-attr]
        timestamp=ts,
    )
    with pytest.raises(MalformedResponse):
        ws.order_book_from_push(m, "x", "A-B")


def test_subscription_ids() -> None:
    assert ws.order_book_subscription_id("binance", "BTC-USDT") == "order_book_binance_BTC-USDT"
    assert ws.trades_subscription_id("kucoin", "ETH-USDT") == "trades_kucoin_ETH-USDT"
    assert ws.candles_subscription_id("binance", "BTC-USDT", "1m") == "candles_binance_BTC-USDT_1m"


def test_encoders() -> None:
    assert json.loads(ws.encode_ping()) == {"action": "ping"}
    assert json.loads(ws.encode_subscribe_order_book("binance", "BTC-USDT", depth=20)) == {
        "action": "subscribe",
        "type": "order_book",
        "connector": "binance",
        "trading_pair": "BTC-USDT",
        "depth": 20,
        "update_interval": 1.0,
    }
    assert json.loads(ws.encode_subscribe_trades("binance", "BTC-USDT", update_interval=0.5)) == {
        "action": "subscribe",
        "type": "trades",
        "connector": "binance",
        "trading_pair": "BTC-USDT",
        "update_interval": 0.5,
    }
    assert json.loads(
        ws.encode_subscribe_candles("binance", "BTC-USDT", interval="5m", max_records=50)
    ) == {
        "action": "subscribe",
        "type": "candles",
        "connector": "binance",
        "trading_pair": "BTC-USDT",
        "interval": "5m",
        "max_records": 50,
        "update_interval": 1.0,
    }
    assert json.loads(ws.encode_unsubscribe("trades_a_B-C")) == {
        "action": "unsubscribe",
        "subscription_id": "trades_a_B-C",
    }


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
_types = st.sampled_from(
    [
        "connected",
        "heartbeat",
        "pong",
        "subscribed",
        "unsubscribed",
        "error",
        "order_book",
        "trades",
        "candles",
        "candle_update",
        "other",
    ]
)


def _convert_all(m: ws.ServerMessage) -> None:
    if isinstance(m, ws.OrderBookMessage):
        ws.order_book_from_push(m, "x", "A-B")
    elif isinstance(m, ws.TradesMessage):
        ws.trades_from_push(m, "x", "A-B")
    elif isinstance(m, ws.CandlesMessage):
        ws.candles_from_push(m)
    elif isinstance(m, ws.CandleUpdateMessage):
        ws.candle_from_update(m)


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_random_bytes_only_malformed(data: bytes) -> None:
    with contextlib.suppress(MalformedResponse):
        _convert_all(ws.decode_server_message(data))


@settings(max_examples=300)
@given(
    _types,
    st.dictionaries(
        st.sampled_from(
            ["subscription_id", "data", "timestamp", "message", "connection_id", "bids", "asks"]
        ),
        _json,
        max_size=5,
    ),
)
def test_random_json_only_malformed(type_: str, fields: dict[str, object]) -> None:
    frame = msgspec.json.encode({"type": type_, **fields})
    try:
        m = ws.decode_server_message(frame)
        _convert_all(m)
    except MalformedResponse as exc:
        assert len(exc.excerpt) <= 200
