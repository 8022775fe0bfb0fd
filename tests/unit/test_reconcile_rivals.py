"""Reconciliation never hands one server order to two identical placements."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
import trio

from hbtrio import ConnectionFailed, MinOrderSizeNotMet, OrderOutcomeUnknown, RequestTimeout
from hbtrio._actors.http import HttpResponse
from hbtrio._client import Client, open_client
from tests.unit.test_rest_fake import Call, FakeServer, FakeTransport
from tests.unit.test_rest_unit import make_config


@pytest.fixture
def server() -> FakeServer:
    return FakeServer()


@pytest.fixture
async def client(server: FakeServer) -> AsyncIterator[Client]:
    async with open_client(make_config(), transport=FakeTransport(server), streaming=False) as c:
        await c.get_trading_rules("binance", ["BTC-USDT"])
        yield c


async def _place(client: Client, outcomes: list[tuple[str, tuple[str, ...]]]) -> None:
    try:
        order = await client.place_limit_order(
            "binance", "BTC-USDT", "BUY", price=100, amount="0.01"
        )
    except OrderOutcomeUnknown as exc:
        outcomes.append(("unknown", tuple(o.order_id for o in exc.candidates)))
    else:
        outcomes.append(("order", (order.order_id,)))


async def test_two_lost_identical_placements_never_share_the_one_order(
    client: Client, server: FakeServer
) -> None:
    # A's order is created and its answer lost; B's request never arrives. The
    # lone matching order may be either's: neither call may claim it.
    def created_then_lost(call: Call) -> None:
        server._place(call.body)
        raise RequestTimeout("no answer", retryable=False)

    def never_arrived(call: Call) -> None:
        raise ConnectionFailed("dropped", retryable=False)

    server.add_fault("/trading/orders", created_then_lost)
    server.add_fault("/trading/orders", never_arrived)
    outcomes: list[tuple[str, tuple[str, ...]]] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_place, client, outcomes)
        nursery.start_soon(_place, client, outcomes)
    assert len(server.orders) == 1
    only = next(iter(server.orders))
    assert sorted(outcomes) == [("unknown", (only,)), ("unknown", (only,))]


class HoldingTransport(FakeTransport):
    """Holds the answer of the next placement (after the server made the order).

    When ``race`` is set, the held answer is released by the next order search
    (another call's reconciliation), which waits until the held call returned.
    """

    def __init__(self, server: FakeServer, *, race: bool = False) -> None:
        super().__init__(server)
        self.hold_next = False
        self.race = race
        self.holding = trio.Event()
        self.release = trio.Event()
        self.held_returned = trio.Event()

    async def request(
        self,
        method: str,
        path: str,
        body: bytes | None,
        *,
        timeout: float | None,  # noqa: ASYNC109
    ) -> HttpResponse:
        if self.race and self.holding.is_set() and path == "/trading/orders/search":
            self.race = False
            self.release.set()  # the held call returns its order now ...
            await self.held_returned.wait()  # ... before this search answers
        hold = self.hold_next and path == "/trading/orders"
        if hold:
            self.hold_next = False
        answer = await super().request(method, path, body, timeout=timeout)
        if hold:
            self.holding.set()
            await self.release.wait()
        return answer


async def _lost_beside_a_held_twin(
    server: FakeServer, *, race: bool
) -> list[tuple[str, tuple[str, ...]]]:
    """B's order is made but its answer held; A's answer is lost (A made nothing).

    Without ``race`` B's answer arrives after A decided; with it, B returns while
    A's reconciliation is still searching the history.
    """
    transport = HoldingTransport(server, race=race)
    outcomes: list[tuple[str, tuple[str, ...]]] = []
    async with open_client(make_config(), transport=transport, streaming=False) as client:
        await client.get_trading_rules("binance", ["BTC-USDT"])

        def lost_without_order(call: Call) -> None:
            raise ConnectionFailed("dropped", retryable=False)

        async def place_b() -> None:
            await _place(client, outcomes)
            transport.held_returned.set()

        async with trio.open_nursery() as nursery:
            transport.hold_next = True
            nursery.start_soon(place_b)
            await transport.holding.wait()
            server.add_fault("/trading/orders", lost_without_order)
            await _place(client, outcomes)  # A
            transport.release.set()
    return outcomes


async def test_a_lost_placement_beside_an_answered_twin_does_not_guess(
    server: FakeServer,
) -> None:
    # The lone match is B's, still in flight: A must not take it as its own.
    outcomes = await _lost_beside_a_held_twin(server, race=False)
    assert len(server.orders) == 1
    only = next(iter(server.orders))
    assert outcomes == [("unknown", (only,)), ("order", (only,))]


async def test_an_earlier_unknown_outcome_makes_an_overlapping_twin_ambiguous(
    client: Client, server: FakeServer, autojump_clock: trio.abc.Clock
) -> None:
    def lost_without_order(call: Call) -> None:
        raise ConnectionFailed("dropped", retryable=False)

    def created_then_lost(call: Call) -> None:
        server._place(call.body)
        raise RequestTimeout("no answer", retryable=False)

    server.add_fault("/trading/orders", lost_without_order)
    outcomes: list[tuple[str, tuple[str, ...]]] = []
    await _place(client, outcomes)  # nothing found: unknown, no candidates
    assert outcomes == [("unknown", ())]
    # A second identical placement moments later: its lone match may be the
    # first one's order showing up late, so it is not claimed either.
    server.add_fault("/trading/orders", created_then_lost)
    await _place(client, outcomes)
    only = next(iter(server.orders))
    assert outcomes[1] == ("unknown", (only,))


async def test_settled_twins_leave_reconciliation_free_to_return_the_match(
    client: Client, server: FakeServer
) -> None:
    first = await client.place_limit_order("binance", "BTC-USDT", "BUY", price=100, amount="0.01")

    def created_then_lost(call: Call) -> None:
        server._place(call.body)
        raise RequestTimeout("no answer", retryable=False)

    server.add_fault("/trading/orders", created_then_lost)
    second = await client.place_limit_order("binance", "BTC-USDT", "BUY", price=100, amount="0.01")
    assert second.order_id != first.order_id
    assert sorted(server.orders) == sorted([first.order_id, second.order_id])


async def test_amount_and_price_are_sent_rounded_down_to_the_increments(
    client: Client, server: FakeServer
) -> None:
    server.calls.clear()
    order = await client.place_limit_order(
        "binance", "BTC-USDT", "SELL", price="100.019", amount="0.012345"
    )
    (sent,) = [c.body for c in server.calls if c.path == "/trading/orders"]
    assert Decimal(sent["amount"]) == Decimal("0.0123")
    assert Decimal(sent["price"]) == Decimal("100.01")
    assert order.amount == Decimal("0.0123")


async def test_a_lost_answer_of_an_unrounded_order_is_reconciled(
    client: Client, server: FakeServer
) -> None:
    def created_rounded_then_lost(call: Call) -> None:
        # The server keeps the amount and price rounded down, as Hummingbot does.
        body = dict(call.body)
        body["amount"] = str((Decimal(body["amount"]) // Decimal("0.0001")) * Decimal("0.0001"))
        body["price"] = str((Decimal(body["price"]) // Decimal("0.01")) * Decimal("0.01"))
        server._place(body)
        raise RequestTimeout("no answer", retryable=False)

    server.add_fault("/trading/orders", created_rounded_then_lost)
    order = await client.place_limit_order(
        "binance", "BTC-USDT", "BUY", price="100.019", amount="0.012345"
    )
    assert list(server.orders) == [order.order_id]
    assert order.amount == Decimal("0.0123")


@pytest.mark.parametrize(
    ("amount", "price"),
    [
        ("0.00099", "1000"),  # rounds down to 0.0009, below the 0.001 minimum size
        ("0.0014", "0.3599"),  # notional 0.504 as given, 0.0014 x 0.35 = 0.49 < 0.5 rounded
    ],
)
async def test_minimum_size_and_notional_are_checked_on_rounded_values(
    client: Client, server: FakeServer, amount: str, price: str
) -> None:
    server.calls.clear()
    with pytest.raises(MinOrderSizeNotMet):
        await client.place_limit_order("binance", "BTC-USDT", "BUY", price=price, amount=amount)
    assert not [c for c in server.calls if c.path == "/trading/orders"]


async def test_an_order_returned_during_the_search_is_not_claimed_again(
    server: FakeServer,
) -> None:
    # A's search sees B's order among the open orders, then B returns it while A
    # still searches the history: A must not return it too.
    outcomes = await _lost_beside_a_held_twin(server, race=True)
    assert len(server.orders) == 1
    only = next(iter(server.orders))
    returned = [ids for kind, ids in outcomes if kind == "order"]
    assert returned == [(only,)]  # B's, and only B's
    assert ("unknown", ()) in outcomes
