"""The MQTT sink and ``open_bus`` against a real broker (mosquitto, else amqtt) over real sockets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest
import trio

import hbtrio
from hbtrio.bus import MqttSink, MqttSinkConfig
from hbtrio.bus._mqtt import open_link, parse_broker_url
from hbtrio.events import OrderBookUpdate, OrderUpdate, TradeEvent
from hbtrio.models import Order, OrderBook, OrderStatus, OrderType, Side, Trade
from tests.mqtt_broker import Broker


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path)
    b.start()
    yield b
    b.stop()


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


async def collect(events: object, count: int, timeout: float = 30) -> list[hbtrio.Event]:
    got: list[hbtrio.Event] = []
    with trio.fail_after(timeout):
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
            assert bus.stats.duplicates == 0
            assert sink.journal.head == 400
        with trio.fail_after(10):
            while sink.journal.acked < 400:
                await trio.sleep(0.05)
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
            with trio.fail_after(10):
                while not any("/orders/" in t for t, _ in received) or not any(
                    t.endswith("/book") for t, _ in received
                ):
                    await trio.sleep(0.02)
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
