"""``open_bus``: a daemon's events, typed, from an MQTT broker, at least once and in order."""

from __future__ import annotations

import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import msgspec
import trio

from .._errors import InputValidationError
from ..events import EVENT_DECODER, ErrorEvent, Event, EventEngine, EventSubscription
from ._mqtt import Credentials, MqttLink, connection_failure, open_link, parse_broker_url
from ._protocol import NAME_RE, Envelope, ReplayBatch, ReplayDone, ReplayRequest, Status

__all__ = ["Bus", "BusStats", "open_bus"]

log = logging.getLogger("hbtrio.bus")

_ENVELOPE = msgspec.json.Decoder(Envelope)
_STATUS = msgspec.json.Decoder(Status)
_DONE = msgspec.json.Decoder(ReplayDone)
_BATCH = msgspec.json.Decoder(ReplayBatch)
_ENCODER = msgspec.json.Encoder()
_SEEN_MAX = 100_000
_REPLAY_RETRY = 10.0
_HELD_WAIT = 2.0


class BusStats(msgspec.Struct, kw_only=True):
    """Counters of a bus consumer.

    Attributes:
        received: Messages received from the broker.
        delivered: Events handed to the subscribers.
        duplicates: Events dropped because their ``event_id`` was seen already.
        replayed: Events received in replay answers.
        replay_requests: Replays asked for.
        gaps: Gaps in a daemon's sequence numbers detected.
        lost: Events no longer in a daemon's journal when asked for (reported
            as an ``ErrorEvent`` of kind ``BusGap``).
        undecodable: Messages that were not hbtrio events (ignored).
        connects: Broker connections made.
    """

    received: int = 0
    delivered: int = 0
    duplicates: int = 0
    replayed: int = 0
    replay_requests: int = 0
    gaps: int = 0
    lost: int = 0
    undecodable: int = 0
    connects: int = 0


class _Source:
    """What the consumer knows of one daemon's sequence."""

    __slots__ = ("asked_at", "asked_from", "held", "held_since", "last", "request_id")

    def __init__(self) -> None:
        self.last: int | None = None
        self.held: dict[int, Event] = {}
        self.held_since = 0.0
        self.request_id: str | None = None
        self.asked_at = 0.0
        self.asked_from: int | None = None


class Bus:
    """The consumer side of the bus (made by ``open_bus``).

    Attributes:
        engine: The in-process engine the decoded events are published to.
        stats: Counters.
        client_id: This consumer's MQTT client id (also its replay answer topic).
    """

    def __init__(
        self,
        *,
        prefix: str,
        client_id: str,
        replay_from_seq: int | None,
        replay_from_time: float | None,
        backlog: int,
    ) -> None:
        self.engine = EventEngine()
        self.stats = BusStats()
        self.client_id = client_id
        self._prefix = prefix
        self._replay_from_seq = replay_from_seq
        self._replay_from_time = replay_from_time
        self._sources: dict[str, _Source] = {}
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._link: MqttLink | None = None
        self._backlog: list[Event] | None = []
        self._backlog_max = backlog
        self._response_prefix = f"{prefix}/replay/"
        self._response_suffix = f"/response/{client_id}"
        self._status_prefix = f"{prefix}/status/"

    def subscribe(
        self, *types: type[Event], buffer: int = 1000, name: str | None = None
    ) -> AbstractAsyncContextManager[EventSubscription[Any]]:
        """Subscribe to the bus's events of some types, as with ``EventEngine.subscribe``.

        Events received before the first subscription are kept (up to
        ``backlog``) and delivered to it.

        Args:
            *types: Event classes to receive; none: all.
            buffer: Events buffered for this subscriber.
            name: Name in error messages.

        Returns:
            An async context manager yielding the subscription (an async iterator).

        Raises:
            InputValidationError: As ``EventEngine.subscribe``.
        """
        return self._subscribe(types, buffer, name)

    @asynccontextmanager
    async def _subscribe(
        self, types: tuple[type[Event], ...], buffer: int, name: str | None
    ) -> AsyncIterator[EventSubscription[Any]]:
        async with self.engine.subscribe(*types, buffer=buffer, name=name) as subscription:
            backlog, self._backlog = self._backlog, None
            for event in backlog or ():
                self.engine.publish(event)
            yield subscription

    def replay(
        self, daemon: str, *, from_seq: int | None = None, from_time: float | None = None
    ) -> None:
        """Ask a daemon to publish its journal again from a sequence number or a time.

        The events come through the subscriptions, in order; with ``from_seq``,
        those from ``from_seq`` on are delivered again even if they were already
        (an explicit request), and newer ones wait until the replay is done.

        Args:
            daemon: The daemon's name.
            from_seq: First sequence number wanted.
            from_time: Earliest time wanted, epoch seconds.

        Raises:
            InputValidationError: Bad daemon name.
        """
        if not isinstance(daemon, str) or not NAME_RE.fullmatch(daemon):
            raise InputValidationError("daemon", "must be a daemon name (letters, digits, _.-)")
        source = self._source(daemon)
        if from_seq is not None:
            source.last = from_seq - 1
        self._ask(daemon, source, from_seq=from_seq, from_time=from_time)

    # -- internals --------------------------------------------------------------------

    def _source(self, daemon: str) -> _Source:
        source = self._sources.get(daemon)
        if source is None:
            source = self._sources[daemon] = _Source()
            if self._replay_from_seq is not None or self._replay_from_time is not None:
                self._ask(
                    daemon,
                    source,
                    from_seq=self._replay_from_seq,
                    from_time=self._replay_from_time,
                )
        return source

    def _ask(
        self,
        daemon: str,
        source: _Source,
        *,
        from_seq: int | None = None,
        from_time: float | None = None,
    ) -> None:
        source.request_id = uuid.uuid4().hex
        source.asked_at = time.monotonic()
        source.asked_from = from_seq
        link = self._link
        if link is None or link.lost:
            return  # asked again once connected
        request = ReplayRequest(
            consumer=self.client_id,
            request_id=source.request_id,
            from_seq=from_seq,
            from_time=from_time,
        )
        topic = f"{self._prefix}/replay/{daemon}/request"
        try:
            link.publish(topic, _ENCODER.encode(request), qos=1)
        except Exception:  # the link just died: asked again on the next connection
            return
        self.stats.replay_requests += 1

    def _deliver(self, event: Event) -> None:
        self.stats.delivered += 1
        if self._backlog is not None:
            if len(self._backlog) < self._backlog_max:
                self._backlog.append(event)
            return
        self.engine.publish(event)

    def _on_message(self, topic: str, payload: bytes) -> None:
        self.stats.received += 1
        try:
            if topic.startswith(self._response_prefix):
                if topic.endswith(self._response_suffix):
                    daemon = topic[len(self._response_prefix) :].split("/", 1)[0]
                    self._on_answer(daemon, payload)
                return  # requests, and answers to other consumers
            if topic.startswith(self._status_prefix):
                self._on_status(_STATUS.decode(payload))
                return
            self._on_event(payload, replayed=False)
        except (msgspec.DecodeError, msgspec.ValidationError):
            self.stats.undecodable += 1

    def _on_status(self, status: Status) -> None:
        if not NAME_RE.fullmatch(status.daemon) or status.state != "online":
            return
        source = self._source(status.daemon)
        if status.head is None or source.request_id is not None:
            return
        if source.last is None:
            source.last = status.head  # from now on (replay_from asks for older ones)
        elif source.last < status.head:
            self.stats.gaps += 1
            self._ask(status.daemon, source, from_seq=source.last + 1)

    def _on_answer(self, daemon: str, payload: bytes) -> None:
        source = self._source(daemon)
        if b'"done"' in payload[:200] and payload.rstrip().endswith(b"}"):
            try:
                done = _DONE.decode(payload)
            except msgspec.ValidationError:
                done = None
            if done is not None:
                self._on_done(daemon, source, done)
                return
        batch = _BATCH.decode(payload)
        for raw in batch.events:
            self.stats.replayed += 1
            self._on_event(bytes(raw), replayed=True)

    def _on_done(self, daemon: str, source: _Source, done: ReplayDone) -> None:
        if done.request_id != source.request_id:
            return
        source.request_id = None
        if source.last is None:  # a first replay (replay_from_seq or _time)
            if source.asked_from is not None:
                source.last = source.asked_from - 1
            else:
                source.last = min([done.last, *[seq - 1 for seq in source.held]])
        first_held = min(source.held) if source.held else done.last + 1
        if source.last + 1 < done.oldest and source.last < done.last:
            missing = min(done.oldest, first_held) - source.last - 1
            if missing > 0:
                self.stats.lost += missing
                self._deliver(
                    ErrorEvent(
                        error=(
                            f"{missing} events of daemon {daemon} (from seq {source.last + 1})"
                            " are no longer in its journal"
                        ),
                        kind="BusGap",
                    )
                )
                source.last += missing
        self._drain(source)
        if source.held:  # still a hole: the answer was lost too; ask again
            self.stats.gaps += 1
            self._ask(daemon, source, from_seq=source.last + 1)

    def _drain(self, source: _Source) -> None:
        assert source.last is not None
        while source.last + 1 in source.held:
            source.last += 1
            self._deliver(source.held.pop(source.last))
        for seq in [seq for seq in source.held if seq <= source.last]:
            del source.held[seq]

    def _on_event(self, payload: bytes, *, replayed: bool) -> None:
        envelope = _ENVELOPE.decode(payload)
        event = EVENT_DECODER.decode(payload)
        if envelope.seq is None or not NAME_RE.fullmatch(envelope.source):
            if envelope.event_id in self._seen:
                self.stats.duplicates += 1
                return
            self._seen[envelope.event_id] = None
            if len(self._seen) > _SEEN_MAX:
                self._seen.popitem(last=False)
            self._deliver(event)
            return
        seq = envelope.seq
        source = self._source(envelope.source)
        if source.last is None:
            if source.request_id is not None:
                source.held[seq] = event
                return
            source.last = seq - 1
        if seq <= source.last or seq in source.held:
            self.stats.duplicates += 1
            return
        if seq == source.last + 1:
            source.last = seq
            self._deliver(event)
            self._drain(source)
            return
        if not source.held:
            source.held_since = time.monotonic()
        source.held[seq] = event
        if source.request_id is None and not replayed:
            self.stats.gaps += 1
            self._ask(envelope.source, source, from_seq=source.last + 1)

    def _on_connected(self, link: MqttLink) -> None:
        """A fresh session: what the broker may have lost is asked for again."""
        self._link = link
        for daemon, source in self._sources.items():
            if source.last is not None:
                self._ask(daemon, source, from_seq=source.last + 1)
            elif source.request_id is not None:
                self._ask(
                    daemon,
                    source,
                    from_seq=self._replay_from_seq,
                    from_time=self._replay_from_time,
                )

    async def _retry_replays(self) -> None:
        while True:
            await trio.sleep(1.0)
            now = time.monotonic()
            for daemon, source in self._sources.items():
                stale = source.request_id is not None and now - source.asked_at > _REPLAY_RETRY
                waiting = source.held and now - source.held_since > _HELD_WAIT
                if stale or (source.request_id is None and waiting):
                    start = None if source.last is None else source.last + 1
                    self._ask(daemon, source, from_seq=start)


@asynccontextmanager
async def open_bus(
    url: str,
    topics: list[str] | None = None,
    credentials_env: str | None = None,
    *,
    credentials_file: str | None = None,
    ca_file: str | None = None,
    prefix: str = "hbtrio",
    client_id: str | None = None,
    replay_from_seq: int | None = None,
    replay_from_time: float | None = None,
    backlog: int = 100_000,
) -> AsyncIterator[Bus]:
    """Consume a daemon's events from an MQTT broker, typed, at least once and in order.

    Order-class events (orders, fills) come in each daemon's sequence order, with
    duplicates dropped by ``event_id``. On a gap in the sequence, on every new
    broker session (a broker restarted without persistence forgets everything)
    and when a daemon's status shows events not seen, the bus asks that daemon
    for a replay from its journal and holds newer events until it came.
    The connection is kept: after an outage it reconnects by itself.

    Example:
        ```python
        async with hbtrio.open_bus("mqtts://broker:8883", ca_file="ca.pem") as bus:
            async with bus.subscribe(hbtrio.OrderUpdate, hbtrio.TradeEvent) as events:
                async for event in events:
                    print(event)
        ```

    Args:
        url: The broker, ``mqtt://host:1883`` or ``mqtts://host:8883``.
        topics: Topic filters to subscribe to (default: everything under ``prefix``).
        credentials_env: Environment variable holding ``user:password``.
        credentials_file: File whose first line is ``user:password``.
        ca_file: CA bundle verifying a TLS broker (default: the system store).
        prefix: The daemons' topic prefix.
        client_id: MQTT client id (default: ``hbtrio-bus-<random>``).
        replay_from_seq: Ask each daemon for its journal from this sequence number
            (a consumer starting late).
        replay_from_time: ... or from this time (epoch seconds).
        backlog: Events kept for the first subscription until it is made.

    Yields:
        The bus.

    Raises:
        InputValidationError: A bad argument (before any I/O).
    """
    address = parse_broker_url(url)
    credentials = Credentials.load(credentials_env, credentials_file)
    if not isinstance(prefix, str) or not NAME_RE.fullmatch(prefix):
        raise InputValidationError("prefix", "must be one topic level (letters, digits, _.-)")
    client_id = client_id if client_id is not None else f"hbtrio-bus-{uuid.uuid4().hex[:12]}"
    if not isinstance(client_id, str) or not NAME_RE.fullmatch(client_id):
        raise InputValidationError("client_id", "must be letters, digits, _.- (1-64)")
    if topics is not None and (
        not isinstance(topics, list | tuple) or not all(isinstance(t, str) and t for t in topics)
    ):
        raise InputValidationError("topics", "must be a list of topic filters")
    if isinstance(backlog, bool) or not isinstance(backlog, int) or backlog < 0:
        raise InputValidationError("backlog", "must be an int >= 0")
    bus = Bus(
        prefix=prefix,
        client_id=client_id,
        replay_from_seq=replay_from_seq,
        replay_from_time=replay_from_time,
        backlog=backlog,
    )
    wanted = list(topics) if topics is not None else [f"{prefix}/#"]
    wanted += [f"{prefix}/status/+", f"{prefix}/replay/+/response/{client_id}"]

    async def run() -> None:
        delay = 0.2
        down = False
        while True:
            try:
                async with open_link(
                    address, client_id=client_id, credentials=credentials, ca_file=ca_file
                ) as link:
                    link.on_message = bus._on_message
                    await link.subscribe(sorted(set(wanted)))
                    bus.stats.connects += 1
                    if down:
                        log.info("MQTT broker back", extra={"fields": {"broker": url}})
                    down, delay = False, 0.2
                    bus._on_connected(link)
                    await link.wait_lost()
            except Exception as exc:
                failure = connection_failure(exc)
                if failure is None:
                    raise
                if not down:
                    log.warning(
                        "MQTT broker lost", extra={"fields": {"broker": url, "error": str(failure)}}
                    )
                down = True
            bus._link = None
            await trio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async with bus.engine, trio.open_nursery() as nursery:
        nursery.start_soon(run)
        nursery.start_soon(bus._retry_replays)
        yield bus
        nursery.cancel_scope.cancel()
