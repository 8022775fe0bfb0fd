"""The request-correlation actor: acks, refusals, deadlines, pings, disconnects."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import pytest
import trio

from hbtrio import ConnectionFailed, ErrorEvent, Event, RequestTimeout, SubscriptionError
from hbtrio._actors.correlation import (
    Control,
    CorrelationActor,
    LinkDown,
    LinkUp,
    PingRequest,
    Reply,
    SubscriptionRequest,
)
from hbtrio._actors.transport import TransportClosed
from hbtrio._core.correlator import RequestKind
from hbtrio._wire.ws import ErrorMessage, PongMessage, SubscribedMessage, UnsubscribedMessage

SID = "trades_sim_BTC-USDT"


class FakeLink:
    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []
        self.broken = False

    async def send(self, message: str) -> None:
        await trio.lowlevel.checkpoint()
        if self.broken:
            raise TransportClosed(1006)
        self.frames.append(msgspec.json.decode(message))


@asynccontextmanager
async def running() -> AsyncIterator[tuple[CorrelationActor, FakeLink, list[Event]]]:
    events: list[Event] = []
    actor = CorrelationActor(events.append)
    link = FakeLink()
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        await actor.inbox.send(LinkUp(link, 1))
        yield actor, link, events
        nursery.cancel_scope.cancel()


def subscribe(timeout: float = 5.0, link_id: int = 1) -> SubscriptionRequest:
    return SubscriptionRequest(
        kind=RequestKind.SUBSCRIBE,
        subscription_id=SID,
        frame=f'{{"action":"subscribe","id":"{SID}"}}',
        deadline=trio.current_time() + timeout,
        link_id=link_id,
        reply=Reply[None](),
    )


def control(message: Any) -> Control:
    return Control(message, trio.current_time())


async def test_ack_answers_the_request_and_foreign_acks_do_not(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with running() as (actor, link, events):
        request = subscribe()
        await actor.inbox.send(request)
        await trio.sleep(0.1)
        assert link.frames == [{"action": "subscribe", "id": SID}]
        actor.inbox.send_nowait(control(SubscribedMessage(subscription_id="other")))
        actor.inbox.send_nowait(control(UnsubscribedMessage(subscription_id=SID)))
        await trio.sleep(0.1)
        assert not request.reply.done
        actor.inbox.send_nowait(control(SubscribedMessage(subscription_id=SID)))
        assert await request.reply.wait() is None
    assert events == []


async def test_refusal_becomes_subscription_error(autojump_clock: trio.abc.Clock) -> None:
    async with running() as (actor, _, events):
        request = subscribe()
        await actor.inbox.send(request)
        actor.inbox.send_nowait(control(ErrorMessage(message="Trading pair not found")))
        with pytest.raises(SubscriptionError, match="Trading pair not found") as info:
            await request.reply.wait()
        assert info.value.detail == "Trading pair not found"
        # With nothing outstanding, an error is the server's own news.
        actor.inbox.send_nowait(control(ErrorMessage(message="Unknown action: x")))
        await trio.sleep(0.1)
    assert [(e.kind, e.error) for e in events if isinstance(e, ErrorEvent)] == [
        ("ServerError", "server error: Unknown action: x")
    ]


async def test_deadline_gives_request_timeout_exactly(autojump_clock: trio.abc.Clock) -> None:
    async with running() as (actor, _, _events):
        t0 = trio.current_time()
        request = subscribe(timeout=2.0)
        await actor.inbox.send(request)
        with pytest.raises(RequestTimeout, match="within 2 s"):
            await request.reply.wait()
        assert trio.current_time() - t0 == pytest.approx(2.0)
        # The late ack answers nothing, and the next request goes out.
        actor.inbox.send_nowait(control(SubscribedMessage(subscription_id=SID)))
        second = subscribe()
        await actor.inbox.send(second)
        actor.inbox.send_nowait(control(SubscribedMessage(subscription_id=SID)))
        assert await second.reply.wait() is None


async def test_disconnect_fails_everything_outstanding(autojump_clock: trio.abc.Clock) -> None:
    async with running() as (actor, _, _events):
        request = subscribe()
        ping = PingRequest(trio.current_time() + 5.0, 1, Reply[float]())
        await actor.inbox.send(request)
        await actor.inbox.send(ping)
        await actor.inbox.send(LinkDown(1))
        with pytest.raises(ConnectionFailed, match="connection lost"):
            await request.reply.wait()
        with pytest.raises(ConnectionFailed):
            await ping.reply.wait()
        # A request for a connection that is gone is refused at once.
        late = subscribe(link_id=1)
        await actor.inbox.send(late)
        with pytest.raises(ConnectionFailed, match="not connected"):
            await late.reply.wait()
        # A new connection replaces it; requests for the old one are refused.
        await actor.inbox.send(LinkUp(FakeLink(), 2))
        stale = subscribe(link_id=1)
        await actor.inbox.send(stale)
        with pytest.raises(ConnectionFailed):
            await stale.reply.wait()
        assert trio.current_time() == 0.0  # none of it waited for a deadline


async def test_broken_link_fails_the_request(autojump_clock: trio.abc.Clock) -> None:
    async with running() as (actor, link, _events):
        link.broken = True
        request = subscribe()
        await actor.inbox.send(request)
        with pytest.raises(ConnectionFailed, match="connection lost"):
            await request.reply.wait()
        ping = PingRequest(trio.current_time() + 5.0, 1, Reply[float]())
        await actor.inbox.send(ping)
        with pytest.raises(TransportClosed):
            await ping.reply.wait()


async def test_pings_rtt_timeout_and_late_pong(autojump_clock: trio.abc.Clock) -> None:
    async with running() as (actor, link, _events):
        ping = PingRequest(trio.current_time() + 5.0, 1, Reply[float]())
        await actor.inbox.send(ping)
        await trio.sleep(0.25)
        actor.inbox.send_nowait(control(PongMessage()))
        assert await ping.reply.wait() == pytest.approx(0.25)
        assert actor.rtt == pytest.approx(0.25)
        # Unanswered: RequestTimeout at the deadline.
        t0 = trio.current_time()
        lost = PingRequest(t0 + 5.0, 1, Reply[float]())
        await actor.inbox.send(lost)
        with pytest.raises(RequestTimeout):
            await lost.reply.wait()
        assert trio.current_time() - t0 == pytest.approx(5.0)
        # Its pong comes late: it answers the next ping (the link is alive).
        following = PingRequest(trio.current_time() + 5.0, 1, Reply[float]())
        await actor.inbox.send(following)
        await trio.sleep(0.5)
        actor.inbox.send_nowait(control(PongMessage()))
        assert await following.reply.wait() == pytest.approx(0.5)
        # An unsolicited pong is ignored.
        actor.inbox.send_nowait(control(PongMessage()))
        await trio.sleep(0.1)
        assert [f for f in link.frames if f == {"action": "ping"}] == [{"action": "ping"}] * 3


async def test_a_later_ping_with_an_earlier_deadline_times_out_on_time(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with running() as (actor, _link, _events):
        t0 = trio.current_time()
        slow = PingRequest(t0 + 10.0, 1, Reply[float]())
        fast = PingRequest(t0 + 2.0, 1, Reply[float]())
        await actor.inbox.send(slow)
        await actor.inbox.send(fast)
        with pytest.raises(RequestTimeout):
            await fast.reply.wait()
        assert trio.current_time() - t0 == pytest.approx(2.0)
        assert not slow.reply.done
        actor.inbox.send_nowait(control(PongMessage()))
        assert await slow.reply.wait() == pytest.approx(2.0, abs=0.01)
