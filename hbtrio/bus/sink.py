"""The daemon's MQTT sink: every event to a broker, order-class events spooled and journaled.

``write`` (called by the daemon for each event) is synchronous and cheap: an
order-class event is appended to the journal (``journal.py``) and a market-data
event replaces the previous one of its topic; ``run`` (a task of the daemon)
keeps the broker connection and publishes. See docs/bus.md.
"""

from __future__ import annotations

import logging
import time
from collections import deque

import msgspec
import trio

from ..events import Event
from ._mqtt import Credentials, MqttLink, Will, connection_failure, open_link, parse_broker_url
from ._protocol import NAME_RE, ReplayRequest, Status, encode_event, route
from .config import MqttSinkConfig
from .journal import Journal

__all__ = ["MqttSink"]

log = logging.getLogger("hbtrio.bus")

_ENCODER = msgspec.json.Encoder()
_REQUEST = msgspec.json.Decoder(ReplayRequest)
_BATCH = 200
_OTHER_MAX = 1000
_SUMMARY_EVERY = 60.0


class MqttSink:
    """Publishes the daemon's events to an MQTT broker.

    Args:
        config: The sink's configuration.

    Attributes:
        config: The configuration.
        journal: The journal and spool.
        written: Events written (journaled or queued).
        published: Messages handed to the broker connection.
        connected: Whether the broker connection is up.
        replays: Replay requests served.

    Raises:
        InputValidationError: Bad URL or unreadable credentials (before any I/O).
        OSError: The spool directory cannot be used.
    """

    def __init__(self, config: MqttSinkConfig) -> None:
        self.config = config
        self.address = parse_broker_url(config.url)
        self.credentials = Credentials.load(config.credentials_env, config.credentials_file)
        self.journal = Journal(
            config.spool_dir,
            segment_events=config.segment_events,
            max_events=config.journal_max_events,
            max_age=config.journal_max_age,
            spool_max=config.spool_max_events,
            fsync=config.fsync,
        )
        self.path = config.url
        self.written = 0
        self.published = 0
        self.replays = 0
        self.connected = False
        self._prefix = config.topic_prefix
        self._name = config.name
        self._boot = f"{int(time.time() * 1000):x}"
        self._counter = 0
        self._latest: dict[str, tuple[bytes, int, bool]] = {}
        self._other: deque[tuple[str, bytes]] = deque(maxlen=_OTHER_MAX)
        self._requests: deque[ReplayRequest] = deque(maxlen=100)
        self._wake = trio.Event()
        self._inflight: dict[int, int] = {}
        self._qos0: set[int] = set()
        self._cursor = 0
        self._closed = False
        base = f"{self._prefix}/replay/{self._name}"
        self.request_topic = f"{base}/request"
        self._response_base = f"{base}/response"
        self.status_topic = f"{self._prefix}/status/{self._name}"

    # -- Sink protocol ----------------------------------------------------------------

    def write(self, event: Event) -> None:
        """Journal (order-class) or queue (market data, status) one event.

        Args:
            event: The event.

        Raises:
            ValueError: The sink is closed.
            OSError: The journal cannot be written.
        """
        if self._closed:
            raise ValueError("sink is closed")
        where = route(self._prefix, self._name, event)
        if where.journaled:
            name = self._name
            self.journal.append(
                where.topic, lambda seq, _t: encode_event(event, f"{name}-{seq}", name, seq)
            )
        else:
            self._counter += 1
            payload = encode_event(event, f"{self._name}-{self._boot}-{self._counter}", "", None)
            if where.retain:
                self._latest[where.topic] = (payload, where.qos, True)
            else:
                self._other.append((where.topic, payload))
        self.written += 1
        self._wake.set()

    def flush(self) -> None:
        """Flush the journal to the disk."""
        self.journal.flush()

    def close(self) -> None:
        """Flush and close the journal (idempotent)."""
        self._closed = True
        self.journal.close()

    # -- the connection ---------------------------------------------------------------

    def _status(self, state: str) -> bytes:
        online = state == "online"
        return _ENCODER.encode(
            Status(
                daemon=self._name,
                state=state,
                head=self.journal.acked if online else None,
                oldest=self.journal.oldest if online else None,
                time=time.time(),
            )
        )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Keep the broker connection and publish, until cancelled.

        Reconnects after an outage (0.2 s doubling to 5 s between attempts) and
        publishes the spool again. Logs one line when the broker is lost, one when
        it is back, and at most one summary a minute in between.

        Args:
            task_status: Reports started at once (the broker may be down).
        """
        task_status.started()
        delay = 0.2
        down_since: float | None = None
        attempts = 0
        last_summary = 0.0
        last_error = ""
        will = Will(self.status_topic, self._status("offline"))
        while True:
            try:
                async with open_link(
                    self.address,
                    client_id=f"{self._name}-sink",
                    credentials=self.credentials,
                    ca_file=self.config.ca_file,
                    will=will,
                    keepalive=self.config.keepalive,
                    max_inflight=self.config.max_inflight,
                ) as link:
                    await link.subscribe([self.request_topic])
                    self.connected = True
                    if down_since is not None or attempts:
                        log.info(
                            "MQTT broker back",
                            extra={"fields": {"broker": self.path, "attempts": attempts}},
                        )
                    else:
                        log.info("MQTT broker connected", extra={"fields": {"broker": self.path}})
                    down_since, attempts, delay = None, 0, 0.2
                    await self._serve(link)
            except Exception as exc:
                failure = connection_failure(exc)
                if failure is None:
                    raise
                last_error = str(failure)
            self.connected = False
            now = time.monotonic()
            attempts += 1
            if down_since is None:
                down_since = last_summary = now
                log.warning(
                    "MQTT broker lost", extra={"fields": {"broker": self.path, "error": last_error}}
                )
            elif now - last_summary >= _SUMMARY_EVERY:
                last_summary = now
                log.warning(
                    "MQTT broker still unreachable",
                    extra={"fields": {"attempts": attempts, "last_error": last_error}},
                )
            await trio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _serve(self, link: MqttLink) -> None:
        self._inflight.clear()
        self._qos0.clear()
        pending = self.journal.pending
        self._cursor = next(iter(pending)) if pending else self.journal.head + 1
        link.on_ack = self._on_ack
        link.on_message = self._on_request
        self._send(link, self.status_topic, self._status("online"), 1, True)
        status_head, status_at = self.journal.acked, trio.current_time()
        next_heartbeat = status_at + self.config.heartbeat
        while True:
            self._push(link)
            while self._requests:
                await self._replay(link, self._requests.popleft())
                self._push(link)
            now = trio.current_time()
            moved = self.journal.acked != status_head and now >= status_at + 1.0
            if now >= next_heartbeat or moved:  # retained: late consumers see a fresh head
                status_head, status_at = self.journal.acked, now
                self._send(link, self.status_topic, self._status("online"), 1, True)
                next_heartbeat = now + self.config.heartbeat
            self._wake = trio.Event()
            deadline = next_heartbeat
            if self.journal.acked != status_head:
                deadline = min(deadline, status_at + 1.0)
            with trio.move_on_at(deadline):
                await self._wake.wait()

    def _send(self, link: MqttLink, topic: str, payload: bytes, qos: int, retain: bool) -> int:
        mid = link.publish(topic, payload, qos=qos, retain=retain)
        if qos == 0:
            self._qos0.add(mid)
        self.published += 1
        return mid

    def _push(self, link: MqttLink) -> None:
        pending = self.journal.pending
        head = self.journal.head
        window = self.config.max_inflight
        while self._cursor <= head and len(self._inflight) < window:
            entry = pending.get(self._cursor)
            if entry is not None:
                self._inflight[self._send(link, entry.topic, entry.payload, 1, False)] = entry.seq
            self._cursor += 1
        latest, self._latest = self._latest, {}
        for topic, (payload, qos, retain) in latest.items():
            self._send(link, topic, payload, qos, retain)
        while self._other:
            topic, payload = self._other.popleft()
            self._send(link, topic, payload, 0, False)

    def _on_ack(self, mid: int) -> None:
        if mid in self._qos0:
            self._qos0.discard(mid)
            return
        seq = self._inflight.pop(mid, None)
        if seq is not None:
            self.journal.ack(seq)
            self._wake.set()

    def _on_request(self, topic: str, payload: bytes) -> None:
        if topic != self.request_topic:
            return
        try:
            request = _REQUEST.decode(payload)
        except msgspec.DecodeError as exc:  # ValidationError included
            log.warning("bad replay request ignored", extra={"fields": {"error": str(exc)}})
            return
        if not NAME_RE.fullmatch(request.consumer):
            log.warning("replay request with a bad consumer id ignored")
            return
        self._requests.append(request)
        self._wake.set()

    async def _replay(self, link: MqttLink, request: ReplayRequest) -> None:
        self.journal.flush()
        topic = f"{self._response_base}/{request.consumer}"
        last = self.journal.head
        oldest = self.journal.oldest
        rid = _ENCODER.encode(request.request_id)
        batch: list[bytes] = []
        from_seq = request.from_seq
        if from_seq is None and request.from_time is None:
            from_seq = oldest
        for entry in self.journal.read(from_seq=from_seq, from_time=request.from_time):
            if entry.seq > last:
                break
            batch.append(entry.payload)
            if len(batch) >= _BATCH:
                self._send_batch(link, topic, rid, batch)
                batch = []
                await trio.lowlevel.checkpoint()
        if batch:
            self._send_batch(link, topic, rid, batch)
        done = b'{"request_id":%s,"done":true,"last":%d,"oldest":%d}' % (rid, last, oldest)
        self._send(link, topic, done, 1, False)
        self.replays += 1

    def _send_batch(self, link: MqttLink, topic: str, rid: bytes, batch: list[bytes]) -> None:
        payload = b'{"request_id":%s,"events":[%s]}' % (rid, b",".join(batch))
        self._send(link, topic, payload, 1, False)
