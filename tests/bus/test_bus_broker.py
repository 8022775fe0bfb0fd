"""The MQTT sink and ``open_bus`` against a real broker (mosquitto, else amqtt), real sockets."""

from __future__ import annotations

import gc
import json
import os
import signal
import sys
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest
import trio

import hbtrio
from hbtrio.bus import MqttSink, MqttSinkConfig
from hbtrio.bus._mqtt import Credentials, open_link, parse_broker_url
from hbtrio.events import OrderBookUpdate, OrderUpdate, TradeEvent
from hbtrio.models import Order, OrderBook, OrderStatus, OrderType, Side, Trade
from tests.mqtt_broker import Broker


def order_event(n: int, status: OrderStatus = OrderStatus.OPEN) -> OrderUpdate:
    return OrderUpdate(
        order=Order(
            order_id=f"o{n}",
            account="master_account",
            exchange="binance",
            market="BTC-USDT",
            side=Side.BUY,
            order_type=OrderType.LIMIT,
            amount=Decimal("0.01"),
            price=Decimal("100"),
            status=status,
        )
    )


def fill_event(n: int) -> TradeEvent:
    return TradeEvent(
        trade=Trade(
            trade_id=f"t{n}",
            order_id=f"o{n}",
            account="master_account",
            exchange="binance",
            market="BTC-USDT",
            side=Side.BUY,
            amount=Decimal("0.01"),
            price=Decimal("100"),
            fee_paid=Decimal("0"),
            fee_currency=None,
            timestamp=1.0,
        )
    )


def sink_config(broker: Broker, spool: Path, **kw: object) -> MqttSinkConfig:
    return MqttSinkConfig(url=broker.url, spool_dir=str(spool), name="d1", **kw)  # type: ignore[arg-type]


async def collect(events: object, count: int, seconds: float = 30) -> list[hbtrio.Event]:
    got: list[hbtrio.Event] = []
    with trio.fail_after(seconds):
        async for event in events:  # type: ignore[attr-defined]
            got.append(event)
            if len(got) == count:
                break
    return got


async def test_sink_to_consumer_typed_in_order(broker: Broker, tmp_path: Path) -> None:
    sink = MqttSink(sink_config(broker, tmp_path / "spool"))
    async with trio.open_nursery() as nursery:
        async with hbtrio.open_bus(broker.url) as bus, bus.subscribe(OrderUpdate, TradeEvent) as ev:
            await nursery.start(sink.run)
            for n in range(1, 201):
                sink.write(order_event(n))
                sink.write(fill_event(n))
            sink.flush()
            got = await collect(ev, 400)
            assert [type(e) for e in got[:2]] == [OrderUpdate, TradeEvent]
            assert [e.order.order_id for e in got if isinstance(e, OrderUpdate)] == [
                f"o{n}" for n in range(1, 201)
            ]
            assert got[0] == order_event(1).__class__(
                order=got[0].order, timestamp=got[0].timestamp
            )
            assert bus.stats.delivered == 400  # each once (amqtt may reorder: held, not doubled)
            assert sink.journal.head == 400
        await wait_for(lambda: sink.journal.acked == 400)
        nursery.cancel_scope.cancel()
    sink.close()


async def test_payload_is_jsonl_encoding_plus_event_id(broker: Broker, tmp_path: Path) -> None:
    sink = MqttSink(sink_config(broker, tmp_path / "spool"))
    received: list[tuple[str, bytes]] = []
    async with trio.open_nursery() as nursery:
        async with open_link(parse_broker_url(broker.url), client_id="raw") as link:
            link.on_message = lambda t, p: received.append((t, p))
            await link.subscribe(["hbtrio/#"])
            await nursery.start(sink.run)
            event = order_event(7)
            sink.write(event)
            book = OrderBookUpdate(
                book=OrderBook(exchange="binance", market="BTC-USDT", bids=(), asks=(), timestamp=2)
            )
            sink.write(book)
            await wait_for(
                lambda: (
                    any("/orders/" in t for t, _ in received)
                    and any(t.endswith("/book") for t, _ in received)
                )
            )
        nursery.cancel_scope.cancel()
    sink.close()
    topic, payload = next((t, p) for t, p in received if "/orders/" in t)
    assert topic == "hbtrio/master_account/orders/binance/BTC-USDT"
    body = json.loads(payload)
    assert body.pop("event_id") == "d1-1"
    assert body.pop("source") == "d1"
    assert body.pop("seq") == 1
    assert body == json.loads(msgspec.json.encode(event))
    assert any(t == "hbtrio/status/d1" and json.loads(p)["state"] == "online" for t, p in received)


async def wait_for(predicate: object, seconds: float = 30) -> None:
    """Poll a condition on other processes' doings (the broker, a subprocess)."""
    with trio.fail_after(seconds):
        while not predicate():  # type: ignore[operator]  # noqa: ASYNC110
            await trio.sleep(0.02)


def order_ids(events: list[hbtrio.Event]) -> list[str]:
    return [e.order.order_id for e in events if isinstance(e, OrderUpdate)]


async def test_broker_killed_and_restarted_without_persistence(
    broker: Broker, tmp_path: Path
) -> None:
    sink = MqttSink(sink_config(broker, tmp_path / "spool"))
    async with trio.open_nursery() as nursery:
        async with hbtrio.open_bus(broker.url) as bus, bus.subscribe(OrderUpdate) as events:
            await nursery.start(sink.run)
            await wait_for(lambda: sink.connected and bus.stats.connects == 1)
            for n in range(1, 151):
                sink.write(order_event(n))
                if n % 50 == 0:
                    sink.flush()
                    await trio.sleep(0.01)
                if n == 100:
                    broker.kill()  # mid-stream: in flight and queued messages are lost
                    for m in range(101, 121):
                        sink.write(order_event(m))  # spooled while the broker is down
                    await trio.sleep(0.3)
                    broker.start()
            # the lone restart: sessions, queues and retained messages are gone
            got = await collect(events, 170, seconds=60)
            await trio.sleep(0.5)
            assert events.pending == 0  # nothing more (no duplicate got through)
        nursery.cancel_scope.cancel()
    sink.close()
    expected = [f"o{n}" for n in range(1, 101)] + [f"o{n}" for n in range(101, 121)]
    expected += [f"o{n}" for n in range(101, 151)]
    # 101-120 are two writes each of the same order id (two events, two seqs)
    assert sorted(order_ids(got)) == sorted(expected)
    assert bus.stats.connects >= 2
    seqs = [int(e.order.order_id[1:]) for e in got]
    assert seqs[:100] == list(range(1, 101))


async def test_spool_survives_a_daemon_restart(broker: Broker, tmp_path: Path) -> None:
    broker.kill()
    first = MqttSink(sink_config(broker, tmp_path / "spool"))
    for n in range(1, 51):
        first.write(order_event(n))
    first.close()  # the daemon stops before the broker ever came back
    broker.start()
    second = MqttSink(sink_config(broker, tmp_path / "spool"))
    assert second.journal.head == 50 and len(second.journal.pending) == 50
    async with trio.open_nursery() as nursery:
        async with (
            hbtrio.open_bus(broker.url, replay_from_seq=1) as bus,
            bus.subscribe(OrderUpdate) as events,
        ):
            await nursery.start(second.run)
            for n in range(51, 61):
                second.write(order_event(n))
            got = await collect(events, 60)
            await wait_for(lambda: second.journal.acked == 60)
        nursery.cancel_scope.cancel()
    second.close()
    assert order_ids(got) == [f"o{n}" for n in range(1, 61)]
    third = MqttSink(sink_config(broker, tmp_path / "spool"))
    assert third.journal.head == 60 and not third.journal.pending
    third.close()


async def test_gap_detected_and_replayed_in_order(broker: Broker, tmp_path: Path) -> None:
    sink = MqttSink(sink_config(broker, tmp_path / "spool"))
    for n in range(1, 6):
        sink.write(order_event(n))
    del sink.journal.pending[3]  # as if the broker had lost it after acknowledging it
    async with trio.open_nursery() as nursery:
        async with hbtrio.open_bus(broker.url) as bus, bus.subscribe(OrderUpdate) as events:
            await wait_for(lambda: bus.stats.connects == 1)
            await nursery.start(sink.run)
            got = await collect(events, 5)
            await trio.sleep(0.3)
            assert events.pending == 0
        nursery.cancel_scope.cancel()
    sink.close()
    assert order_ids(got) == ["o1", "o2", "o3", "o4", "o5"]
    assert bus.stats.gaps >= 1 and bus.stats.replay_requests >= 1 and sink.replays >= 1


async def test_late_consumer_replays_from_seq_and_time(broker: Broker, tmp_path: Path) -> None:
    sink = MqttSink(sink_config(broker, tmp_path / "spool"))
    async with trio.open_nursery() as nursery:
        await nursery.start(sink.run)
        for n in range(1, 31):
            sink.write(order_event(n))
        await wait_for(lambda: sink.journal.acked == 30)
        async with hbtrio.open_bus(broker.url, replay_from_seq=21) as bus, bus.subscribe() as ev:
            got = await collect(ev, 10)
            assert order_ids(got) == [f"o{n}" for n in range(21, 31)]
            sink.write(order_event(31))
            assert order_ids(await collect(ev, 1)) == ["o31"]
        async with (
            hbtrio.open_bus(broker.url, replay_from_time=0.0) as bus,
            bus.subscribe(OrderUpdate) as ev,
        ):
            got = await collect(ev, 31)
            assert order_ids(got) == [f"o{n}" for n in range(1, 32)]
        nursery.cancel_scope.cancel()
    sink.close()


async def test_duplicates_dropped_by_event_id(broker: Broker, tmp_path: Path) -> None:
    sink = MqttSink(sink_config(broker, tmp_path / "spool"))
    for n in range(1, 4):
        sink.write(order_event(n))
    entries = list(sink.journal.pending.values())
    market = (
        b'{"event_id":"x-1","source":"","type":"OrderBookUpdate","timestamp":1,'
        b'"book":{"exchange":"e","market":"m","bids":[],"asks":[],"timestamp":1}}'
    )
    async with trio.open_nursery() as nursery:
        async with (
            hbtrio.open_bus(broker.url) as bus,
            bus.subscribe() as events,
            open_link(parse_broker_url(broker.url), client_id="dup") as link,
        ):
            await wait_for(lambda: bus.stats.connects == 1)
            for entry in entries + entries + entries[:1]:  # each twice or more
                link.publish(entry.topic, entry.payload, qos=1)
            link.publish("hbtrio/market/e/m/book", market, qos=1)
            link.publish("hbtrio/market/e/m/book", market, qos=1)
            got = await collect(events, 4)
            await nursery.start(sink.run)  # the daemon's own copies: duplicates too
            await wait_for(lambda: sink.journal.acked == 3)
            await trio.sleep(0.3)
            assert events.pending == 0
        nursery.cancel_scope.cancel()
    sink.close()
    assert sorted(order_ids(got)) == ["o1", "o2", "o3"]
    assert sum(isinstance(e, OrderBookUpdate) for e in got) == 1
    assert bus.stats.duplicates >= 5


async def test_tls_broker_verified_with_the_ca(tmp_path: Path) -> None:
    broker = Broker(tmp_path, tls=True)
    broker.start()
    try:
        assert broker.certs is not None
        ca = str(broker.certs.ca)
        sink = MqttSink(sink_config(broker, tmp_path / "spool", ca_file=ca))
        async with trio.open_nursery() as nursery:
            async with hbtrio.open_bus(broker.url, ca_file=ca) as bus, bus.subscribe() as ev:
                await nursery.start(sink.run)
                sink.write(order_event(1))
                assert order_ids(await collect(ev, 1)) == ["o1"]
            nursery.cancel_scope.cancel()
        sink.close()
    finally:
        broker.stop()


async def test_tls_broker_with_an_unknown_ca_is_refused(tmp_path: Path) -> None:
    broker = Broker(tmp_path, tls=True)
    broker.start()
    try:
        with pytest.raises(hbtrio.ConnectionFailed, match="certificate verify failed"):
            async with open_link(parse_broker_url(broker.url), client_id="nca"):
                pass  # the system store does not know the test CA
        gc.collect()  # paho's socket of the failed handshake was closed: no ResourceWarning
    finally:
        broker.stop()


async def test_last_will_marks_a_killed_daemon_offline(broker: Broker, tmp_path: Path) -> None:
    states: list[dict[str, object]] = []
    script = Path(__file__).with_name("_sink_process.py")
    async with open_link(parse_broker_url(broker.url), client_id="watch") as link:
        link.on_message = lambda _t, p: states.append(json.loads(p))
        await link.subscribe(["hbtrio/status/crashy"])
        process = await trio.lowlevel.open_process(
            [sys.executable, str(script), broker.url, str(tmp_path / "spool")],
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
        )
        try:
            await wait_for(lambda: any(s["state"] == "online" for s in states))
            process.send_signal(signal.SIGKILL)  # no DISCONNECT: the broker sends the will
            await process.wait()
            await wait_for(lambda: states[-1]["state"] == "offline", seconds=20)
        finally:
            if process.poll() is None:
                process.kill()
                await process.wait()
    assert states[-1] == {
        "daemon": "crashy",
        "state": "offline",
        "head": None,
        "oldest": None,
        "time": states[-1]["time"],
    }


async def test_events_past_the_journal_are_reported_as_a_gap(
    broker: Broker, tmp_path: Path
) -> None:
    sink = MqttSink(sink_config(broker, tmp_path / "spool", segment_events=5, journal_max_events=6))
    for n in range(1, 21):
        sink.write(order_event(n))
    assert sink.journal.oldest == 11  # 1-10 expired
    async with trio.open_nursery() as nursery:
        await nursery.start(sink.run)
        await wait_for(lambda: sink.journal.acked == 20)
        async with hbtrio.open_bus(broker.url) as bus, bus.subscribe() as events:
            await wait_for(lambda: bus.stats.connects == 1)
            with pytest.raises(hbtrio.InputValidationError):
                bus.replay("not/a/name")
            bus.replay("d1", from_seq=11)
            got = await collect(events, 10)
            assert order_ids(got) == [f"o{n}" for n in range(11, 21)]
        async with hbtrio.open_bus(broker.url, replay_from_seq=1) as bus, bus.subscribe() as ev:
            got = await collect(ev, 11)
            assert isinstance(got[0], hbtrio.ErrorEvent) and got[0].kind == "BusGap"
            assert "10 events of daemon d1" in got[0].error
            assert order_ids(got[1:]) == [f"o{n}" for n in range(11, 21)]
            assert bus.stats.lost == 10
        nursery.cancel_scope.cancel()
    sink.close()


async def test_bad_replay_requests_are_ignored(broker: Broker, tmp_path: Path) -> None:
    sink = MqttSink(sink_config(broker, tmp_path / "spool"))
    async with trio.open_nursery() as nursery:
        await nursery.start(sink.run)
        async with open_link(parse_broker_url(broker.url), client_id="bad") as link:
            await wait_for(lambda: sink.connected)
            link.publish(sink.request_topic, b"not json", qos=1)
            bad_id = b'{"consumer":"a/b","request_id":"x"}'
            link.publish(sink.request_topic, bad_id, qos=1)
            link.publish("hbtrio/master_account/orders/x/y", b"garbage", qos=1)
            async with (
                hbtrio.open_bus(broker.url, replay_from_time=0.0) as bus,
                bus.subscribe(OrderUpdate) as events,
            ):
                sink.write(order_event(1))
                assert order_ids(await collect(events, 1)) == ["o1"]
        assert sink.replays == 1  # only the consumer's
        nursery.cancel_scope.cancel()
    sink.close()


def test_every_event_type_has_its_topic() -> None:
    from hbtrio.bus._protocol import route
    from hbtrio.events import (
        CandleUpdate,
        ConnectionStateChanged,
        ErrorEvent,
        MarketTrades,
        TickerUpdate,
    )
    from hbtrio.models import Candle, ConnectionState, Ticker

    ticker = Ticker(
        exchange="binance",
        market="BTC-USDT",
        bid=Decimal(1),
        ask=Decimal(2),
        last=Decimal(1),
        volume=Decimal(1),
        timestamp=1,
    )
    candle = Candle(
        timestamp=1,
        open=Decimal(1),
        high=Decimal(1),
        low=Decimal(1),
        close=Decimal(1),
        volume=Decimal(1),
    )
    cases = {
        "hbtrio/market/binance/BTC-USDT/ticker": TickerUpdate(ticker=ticker),
        "hbtrio/market/binance/BTC-USDT/trades": MarketTrades(
            exchange="binance", market="BTC-USDT", trades=()
        ),
        "hbtrio/market/binance/BTC-USDT/candles/1m": CandleUpdate(
            exchange="binance", market="BTC-USDT", interval="1m", candle=candle
        ),
        "hbtrio/daemon/d/connection": ConnectionStateChanged(
            old=ConnectionState.CONNECTING, new=ConnectionState.CONNECTED
        ),
        "hbtrio/daemon/d/errors": ErrorEvent(error="x"),
        "hbtrio/master_account/fills/binance/BTC-USDT": fill_event(1),
    }
    for topic, event in cases.items():
        where = route("hbtrio", "d", event)
        assert where.topic == topic
        assert where.journaled == isinstance(event, TradeEvent)
        assert where.qos == (1 if where.journaled else 0)


async def test_broker_credentials_from_env_and_key_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = Broker(tmp_path, users={"hub": "s3cret-pw"})
    broker.start()
    try:
        key = tmp_path / "mqtt.key"
        key.write_text("hub:s3cret-pw\n")
        monkeypatch.setenv("BUS_TEST_MQTT", "hub:s3cret-pw")
        sink = MqttSink(sink_config(broker, tmp_path / "spool", credentials_file=str(key)))
        assert "s3cret" not in repr(sink.credentials)
        async with trio.open_nursery() as nursery:
            async with (
                hbtrio.open_bus(broker.url, credentials_env="BUS_TEST_MQTT") as bus,
                bus.subscribe(OrderUpdate) as events,
            ):
                await nursery.start(sink.run)
                sink.write(order_event(1))
                assert order_ids(await collect(events, 1)) == ["o1"]
            nursery.cancel_scope.cancel()
        sink.close()
        wrong = Credentials("hub", "wrong-pw")
        with pytest.raises(hbtrio.ConnectionFailed, match="refused") as info:
            async with open_link(parse_broker_url(broker.url), client_id="x", credentials=wrong):
                pass
        assert "wrong-pw" not in str(info.value)
    finally:
        broker.stop()
