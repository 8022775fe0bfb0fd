"""Connection actor: state machine, backoff timings, liveness (autojump_clock, fake peer)."""

from __future__ import annotations

import random

import pytest
import trio
import trio.testing

from hbtrio import (
    AuthenticationFailed,
    ClientConfig,
    ConnectionFailed,
    ConnectionState,
    ConnectionStateChanged,
    ErrorEvent,
    Event,
)
from hbtrio._actors.connection import ConnectionActor
from hbtrio._actors.correlation import CorrelationActor, LinkDown, LinkEvent, LinkUp
from hbtrio._core.backoff import Backoff
from tests.actors.fake_ws import FakePeer

S = ConnectionState


def make_config(**kw: object) -> ClientConfig:
    values: dict[str, object] = {"host": "127.0.0.1", "port": 8000, "api_key": "u:p"}
    values.update(kw)
    return ClientConfig(**values)  # type: ignore[arg-type]


class NoJitter(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return b


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    @property
    def transitions(self) -> list[tuple[S, S]]:
        return [(e.old, e.new) for e in self.events if isinstance(e, ConnectionStateChanged)]

    @property
    def errors(self) -> list[ErrorEvent]:
        return [e for e in self.events if isinstance(e, ErrorEvent)]


async def start_error(actor: ConnectionActor) -> BaseException:
    """Start the actor expecting a startup failure; return the single exception."""
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(actor.run)
    except ExceptionGroup as group:
        assert len(group.exceptions) == 1
        return group.exceptions[0]
    raise AssertionError("the actor started")


def make_actor(
    peer: FakePeer, rec: Recorder, config: ClientConfig | None = None
) -> ConnectionActor:
    config = config or make_config()
    backoff = Backoff(
        config.reconnect_initial,
        config.reconnect_max,
        config.reconnect_reset_after,
        rng=NoJitter(),  # delays are the bounds
    )
    return ConnectionActor(config, peer.dialer(), rec, backoff=backoff)


async def test_connects_and_publishes_states(autojump_clock: trio.abc.Clock) -> None:
    peer, rec = FakePeer(), Recorder()
    actor = make_actor(peer, rec)
    assert actor.state is S.DISCONNECTED
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        assert actor.state is S.CONNECTED
        assert rec.transitions == [(S.DISCONNECTED, S.CONNECTING), (S.CONNECTING, S.CONNECTED)]
        nursery.cancel_scope.cancel()
    assert actor.state is S.DISCONNECTED
    assert rec.transitions[-1] == (S.CONNECTED, S.DISCONNECTED)
    assert len(peer.sessions) == 1


async def test_wrong_credentials_raise_at_once(autojump_clock: trio.abc.Clock) -> None:
    peer, rec = FakePeer(), Recorder()
    peer.auth_ok = False
    actor = make_actor(peer, rec)
    error = await start_error(actor)
    assert isinstance(error, AuthenticationFailed)
    assert "u:p" not in str(error)
    assert len(peer.dial_times) == 1
    assert (S.CONNECTING, S.ERROR) in rec.transitions
    assert actor.state is S.DISCONNECTED


async def test_close_4001_alone_is_authentication_failure(autojump_clock: trio.abc.Clock) -> None:
    peer, rec = FakePeer(), Recorder()
    peer.greet = False
    actor = make_actor(peer, rec)

    async def closer() -> None:
        session = await peer.wait_sessions(1)
        session.close(4001)

    with pytest.RaisesGroup(AuthenticationFailed):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(closer)
            await nursery.start(actor.run)


async def test_startup_gives_up_after_retries_with_backoff(
    autojump_clock: trio.abc.Clock,
) -> None:
    peer, rec = FakePeer(), Recorder()
    peer.refuse = 100
    actor = make_actor(peer, rec, make_config(retries=3))
    start = trio.current_time()
    error = await start_error(actor)
    assert type(error) is ConnectionFailed
    assert "4 attempts" in str(error)
    offsets = [t - start for t in peer.dial_times]
    # 1 + retries attempts; delays 0.1, 0.2, 0.4 between them (no jitter here).
    assert offsets == pytest.approx([0.0, 0.1, 0.3, 0.7])
    assert rec.transitions[:2] == [(S.DISCONNECTED, S.CONNECTING), (S.CONNECTING, S.DISCONNECTED)]


async def test_startup_recovers_within_retries(autojump_clock: trio.abc.Clock) -> None:
    peer, rec = FakePeer(), Recorder()
    peer.refuse = 2
    actor = make_actor(peer, rec, make_config(retries=2))
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        assert actor.state is S.CONNECTED
        nursery.cancel_scope.cancel()
    assert len(peer.dial_times) == 3


async def test_reconnects_after_drops_with_capped_backoff_and_reset(
    autojump_clock: trio.abc.Clock,
) -> None:
    peer, rec = FakePeer(), Recorder()
    actor = make_actor(peer, rec)
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        # Each new connection drops immediately, and the next dials are refused.
        drop_at = trio.current_time()
        peer.refuse = 6
        peer.current.close(1006)
        await peer.wait_sessions(2)
        offsets = [t - drop_at for t in peer.dial_times[1:]]
        # delays 0.1, 0.2, 0.4, 0.8, 1.6, 2.0 (cap), 2.0
        assert offsets == pytest.approx([0.1, 0.3, 0.7, 1.5, 3.1, 5.1, 7.1])
        await actor.wait_state(S.CONNECTED)
        assert actor.connections == 2
        # Stable for longer than reconnect_reset_after: the next drop retries fast.
        await trio.sleep(10.0)
        drop_at = trio.current_time()
        peer.current.close(1011)
        await peer.wait_sessions(3)
        assert peer.dial_times[-1] - drop_at == pytest.approx(0.1)
        nursery.cancel_scope.cancel()
    assert (S.CONNECTED, S.DISCONNECTED) in rec.transitions
    assert any("connection lost" in e.error for e in rec.errors)


async def test_silence_beyond_heartbeat_timeout_replaces_connection(
    autojump_clock: trio.abc.Clock,
) -> None:
    peer, rec = FakePeer(), Recorder()
    peer.auto_pong = False
    config = make_config(heartbeat_timeout=60.0, ping_interval=1000.0)
    actor = make_actor(peer, rec, config)
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        t0 = trio.current_time()
        # Heartbeats keep it alive...
        for _ in range(3):
            await trio.sleep(30.0)
            peer.current.push({"type": "heartbeat", "timestamp": 1.0})
        await trio.sleep(1.0)
        assert len(peer.sessions) == 1
        # ...then the server goes silent.
        await peer.wait_sessions(2)
        lost = [
            e.timestamp for e in rec.events if isinstance(e, ConnectionStateChanged)
        ]  # wall-clock timestamps: only count them
        assert len(lost) >= 4
        assert peer.dial_times[1] - t0 == pytest.approx(90.0 + 60.0 + 0.1)  # last beat at 90 s
        nursery.cancel_scope.cancel()
    assert any("no traffic for 60 s" in e.error for e in rec.errors)


async def test_unanswered_ping_replaces_connection(autojump_clock: trio.abc.Clock) -> None:
    peer, rec = FakePeer(), Recorder()
    peer.auto_pong = False
    config = make_config(ping_interval=10.0, timeout=5.0, heartbeat_timeout=60.0)
    actor = make_actor(peer, rec, config)
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        t0 = trio.current_time()
        await peer.wait_sessions(2)
        # ping at 10 s, no answer by 15 s -> dead; reconnect after 0.1 s.
        assert peer.dial_times[1] - t0 == pytest.approx(15.1)
        assert peer.sessions[0].actions("ping") == [{"action": "ping"}]
        nursery.cancel_scope.cancel()
    assert any("no answer to a ping" in e.error for e in rec.errors)


async def test_pongs_keep_connection_alive(autojump_clock: trio.abc.Clock) -> None:
    peer, rec = FakePeer(), Recorder()
    config = make_config(ping_interval=10.0, heartbeat_timeout=60.0)
    actor = make_actor(peer, rec, config)
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        await trio.sleep(300.0)
        assert len(peer.sessions) == 1
        assert len(peer.current.actions("ping")) == pytest.approx(30, abs=1)  # every 10 s
        nursery.cancel_scope.cancel()


async def test_malformed_messages_are_reported_not_fatal(autojump_clock: trio.abc.Clock) -> None:
    peer, rec = FakePeer(), Recorder()
    routed: list[object] = []
    watcher_send, watcher_receive = trio.open_memory_channel[LinkEvent](10)
    actor = ConnectionActor(
        make_config(),
        peer.dialer(),
        rec,
        route_data=lambda message, now: routed.append(message),
        link_watchers=(watcher_send,),
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        peer.current.push("{not json")
        peer.current.push(b"\xff\xfe")
        peer.current.push({"type": "order_book", "subscription_id": 3})
        peer.current.push({"type": "brand_new_kind", "x": 1})
        peer.current.push({"type": "brand_new_kind", "x": 2})  # reported once
        peer.current.push({"type": "heartbeat", "timestamp": 2.0})
        peer.current.push({"type": "subscribed", "subscription_id": "trades_x_A-B"})
        peer.current.push(
            {"type": "trades", "subscription_id": "trades_x_A-B", "data": [], "timestamp": 1}
        )
        await trio.sleep(1.0)
        assert actor.state is S.CONNECTED
        assert len(peer.sessions) == 1
        nursery.cancel_scope.cancel()
    assert len(rec.errors) == 4
    assert all(e.kind == "MalformedResponse" for e in rec.errors)
    assert sum("brand_new_kind" in e.error for e in rec.errors) == 1
    # Only the data push reached the router (control, heartbeat, unknown did not).
    assert [type(m).__name__ for m in routed] == ["TradesMessage"]
    seen = []
    while True:
        try:
            seen.append(watcher_receive.receive_nowait())
        except trio.WouldBlock:
            break
    assert seen == [LinkUp(seen[0].link, 1), LinkDown(1)]  # type: ignore[union-attr]


async def test_auth_failure_after_start_goes_to_error_then_slow_retry(
    autojump_clock: trio.abc.Clock,
) -> None:
    peer, rec = FakePeer(), Recorder()
    actor = make_actor(peer, rec)
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        peer.auth_ok = False  # the password was changed on the server
        drop_at = trio.current_time()
        peer.current.close(1012)
        await actor.wait_state(S.ERROR)
        assert len(peer.sessions) == 2
        await peer.wait_sessions(3)
        assert peer.dial_times[2] - peer.dial_times[1] == pytest.approx(2.0)  # the cap
        peer.auth_ok = True  # fixed: it recovers by itself
        await actor.wait_state(S.CONNECTED)
        assert peer.dial_times[-1] - drop_at < 10.0
        nursery.cancel_scope.cancel()
    assert (S.CONNECTING, S.ERROR) in rec.transitions
    assert (S.ERROR, S.CONNECTING) in rec.transitions
    assert any(e.kind == "AuthenticationFailed" for e in rec.errors)


async def test_certificate_failure_is_not_retried_at_startup(
    autojump_clock: trio.abc.Clock,
) -> None:
    peer, rec = FakePeer(), Recorder()
    peer.refuse = 5
    peer.refuse_with = lambda: ConnectionFailed("certificate verify failed", retryable=False)
    actor = make_actor(peer, rec)
    error = await start_error(actor)
    assert isinstance(error, ConnectionFailed)
    assert "certificate" in str(error)
    assert len(peer.dial_times) == 1
    assert (S.CONNECTING, S.ERROR) in rec.transitions


async def test_greeting_timeout_is_retryable(autojump_clock: trio.abc.Clock) -> None:
    peer, rec = FakePeer(), Recorder()
    peer.greet = False
    actor = make_actor(peer, rec, make_config(timeout=2.0, retries=1))
    error = await start_error(actor)
    assert isinstance(error, ConnectionFailed)
    assert "no greeting" in str(error)
    assert peer.dial_times == pytest.approx([0.0, 2.1])  # timeout 2 s, backoff 0.1 s


async def test_full_control_inbox_is_reported_and_replaces_the_link(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Control traffic never waits: a stalled correlation actor (its write to the
    socket is stuck) with a flood of control frames is a bug-level condition: the
    reader does not block, it reports it and replaces the connection."""
    peer, rec = FakePeer(), Recorder()
    correlation = CorrelationActor(rec, capacity=4)
    config = make_config(ping_interval=1.0, timeout=5.0)
    backoff = Backoff(0.1, 2.0, 10.0, rng=NoJitter())
    actor = ConnectionActor(config, peer.dialer(), rec, correlation=correlation, backoff=backoff)
    with trio.fail_after(60):  # a regression would deadlock on the LinkDown
        async with trio.open_nursery() as nursery:
            await nursery.start(correlation.run)
            await nursery.start(actor.run)
            peer.stall_sends = True
            await trio.sleep(1.5)  # the ping at 1 s is stuck in the correlation actor
            for n in range(10):
                peer.current.push({"type": "error", "message": f"flood {n}"})
            await peer.wait_sessions(2)
            assert trio.current_time() == pytest.approx(1.6)  # at once, plus the 0.1 s backoff
            peer.stall_sends = False
            await actor.wait_state(S.CONNECTED)
            await trio.sleep(3.0)
            assert len(peer.sessions) == 2
            assert len(peer.current.actions("ping")) >= 2  # the new link is served
            nursery.cancel_scope.cancel()
    assert actor.control_overflows == 1
    assert any("control inbox full" in e.error for e in rec.errors)
    # The queued control messages were still handled once the stuck write was cancelled.
    assert sum("server error: flood" in e.error for e in rec.errors) == 4
