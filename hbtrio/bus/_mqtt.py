"""One MQTT 3.1.1 connection driven on Trio: paho-mqtt's external-loop API.

paho-mqtt does the protocol (packets, packet ids, keep-alive, QoS 1 flows) on a
non-blocking socket; this module waits for that socket with Trio
(``trio.lowlevel.wait_readable`` / ``wait_writable``) and calls paho's
``loop_read`` / ``loop_write`` / ``loop_misc``. No thread runs per message: the
only thread is the one blocking ``connect`` (name lookup, TCP connect, TLS
handshake), once per connection attempt. Why paho and not another library:
docs/bus.md, "Choice of the MQTT library" (measured).
"""

from __future__ import annotations

import os
import ssl
import urllib.parse
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
import trio
from paho.mqtt.enums import CallbackAPIVersion

from .._errors import ConnectionFailed, InputValidationError

__all__ = [
    "BrokerAddress",
    "Credentials",
    "MqttLink",
    "connection_failure",
    "open_link",
    "parse_broker_url",
]


def connection_failure(exc: BaseException) -> ConnectionFailed | None:
    """The ``ConnectionFailed`` that ``exc`` is or only holds (an exception group).

    Args:
        exc: The exception.

    Returns:
        The first ``ConnectionFailed``, or ``None`` when ``exc`` holds anything else.
    """
    if isinstance(exc, ConnectionFailed):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        matched, rest = exc.split(ConnectionFailed)
        leaf: BaseException | None = matched
        while rest is None and isinstance(leaf, BaseExceptionGroup):
            leaf = leaf.exceptions[0]
        if rest is None and isinstance(leaf, ConnectionFailed):
            return leaf
    return None


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Where the broker listens.

    Attributes:
        host: Host name or address.
        port: TCP port.
        tls: Whether to speak TLS (``mqtts://``).
    """

    host: str
    port: int
    tls: bool


def parse_broker_url(url: str) -> BrokerAddress:
    """Parse ``mqtt://host[:port]`` or ``mqtts://host[:port]``.

    Args:
        url: The broker URL (no user or password in it: credentials come from the
            environment or a key file).

    Returns:
        The address; the port defaults to 1883 (``mqtt``) or 8883 (``mqtts``).

    Raises:
        InputValidationError: Another scheme, no host, a bad port, or credentials in the URL.
    """
    if not isinstance(url, str):
        raise InputValidationError("url", "must be a string like mqtts://host:8883")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts"):
        raise InputValidationError("url", "scheme must be mqtt:// or mqtts://")
    if parts.username is not None or parts.password is not None:
        raise InputValidationError(
            "url", "must not hold credentials; use credentials_env or credentials_file"
        )
    if not parts.hostname:
        raise InputValidationError("url", "needs a host")
    try:
        port = parts.port
    except ValueError:
        raise InputValidationError("url", "port must be 1-65535") from None
    tls = parts.scheme == "mqtts"
    return BrokerAddress(parts.hostname, port or (8883 if tls else 1883), tls)


class Credentials:
    """A broker user name and password; the password never appears in a repr.

    Args:
        username: The user name.
        password: The password.
    """

    __slots__ = ("password", "username")

    def __init__(self, username: str, password: str) -> None:
        self.username = username
        self.password = password

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password=<hidden>)"

    @classmethod
    def load(cls, env: str | None = None, file: str | None = None) -> Credentials | None:
        """Read ``user:password`` from an environment variable or a key file.

        Args:
            env: Name of the environment variable holding ``user:password``.
            file: Path of a file whose first line is ``user:password``.

        Returns:
            The credentials, or ``None`` when neither is given.

        Raises:
            InputValidationError: Both given, the variable is unset or empty, the file
                cannot be read, or the value has no ``:``.
        """
        if env is not None and file is not None:
            raise InputValidationError("credentials", "give credentials_env or _file, not both")
        if env is not None:
            if not isinstance(env, str) or not env:
                raise InputValidationError("credentials_env", "must name a variable")
            value = os.environ.get(env, "")
            where = f"environment variable {env}"
        elif file is not None:
            try:
                with open(file, encoding="utf-8") as handle:
                    value = handle.readline().strip()
            except OSError as exc:
                raise InputValidationError(
                    "credentials_file", f"cannot read {file}: {exc.strerror}"
                ) from None
            where = f"file {file}"
        else:
            return None
        user, sep, password = value.partition(":")
        if not sep or not user:
            raise InputValidationError("credentials", f"{where} must hold user:password")
        return cls(user, password)


class _TlsContext(ssl.SSLContext):
    """An ``SSLContext`` that remembers the sockets it wrapped.

    paho-mqtt leaves the socket of a failed TLS handshake to the garbage
    collector; ``open_link`` closes it at once through this list.
    """

    wrapped: list[ssl.SSLSocket]

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        sock = super().wrap_socket(*args, **kwargs)
        self.wrapped = [sock]
        return sock


def make_tls_context(ca_file: str | None) -> _TlsContext:
    """The client TLS context: verifies the broker's certificate and host name.

    Args:
        ca_file: PEM bundle of the CA(s) to trust (default: the system store).

    Returns:
        The context (TLS 1.2 or newer).

    Raises:
        InputValidationError: ``ca_file`` is not a readable PEM bundle.
    """
    context = _TlsContext(ssl.PROTOCOL_TLS_CLIENT)
    context.wrapped = []
    try:
        if ca_file is None:
            context.load_default_certs(ssl.Purpose.SERVER_AUTH)
        else:
            context.load_verify_locations(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise InputValidationError("ca_file", f"cannot load {ca_file}: {exc}") from None
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    context.minimum_version = max(context.minimum_version, ssl.TLSVersion.TLSv1_2)
    return context


@dataclass(frozen=True, slots=True)
class Will:
    """The Last Will the broker publishes when the connection dies uncleanly.

    Attributes:
        topic: Its topic.
        payload: Its payload.
        retain: Whether the broker retains it.
    """

    topic: str
    payload: bytes
    retain: bool = True


class MqttLink:
    """An established MQTT connection (made by ``open_link``).

    Attributes:
        on_ack: Called with the message id of each QoS 1 message the broker acknowledged.
        on_message: Called with ``(topic, payload)`` for each message received.
    """

    def __init__(self, client: paho.Client) -> None:
        self._client = client
        self._write_wanted = trio.Event()
        self._lost = trio.Event()
        self._lost_reason = "connection closed"
        self._subacks: dict[int, trio.Event] = {}
        self.on_ack: Callable[[int], None] = lambda mid: None
        self.on_message: Callable[[str, bytes], None] = lambda topic, payload: None

    # paho callbacks (run inside loop_read, on the Trio thread)
    def _cb_publish(self, _c: Any, _u: Any, mid: int, _rc: Any, _p: Any) -> None:
        self.on_ack(mid)

    def _cb_message(self, _c: Any, _u: Any, message: paho.MQTTMessage) -> None:
        self.on_message(message.topic, bytes(message.payload))

    def _cb_subscribe(self, _c: Any, _u: Any, mid: int, _codes: Any, _p: Any) -> None:
        event = self._subacks.pop(mid, None)
        if event is not None:
            event.set()

    def _cb_disconnect(self, _c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        self._lost_reason = f"disconnected ({rc})"
        self._lost.set()

    @property
    def lost(self) -> bool:
        """Whether the connection is gone."""
        return self._lost.is_set()

    def _check(self, rc: int) -> None:
        if rc not in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_QUEUE_SIZE):
            self._lost_reason = paho.error_string(rc)
            self._lost.set()
        self._write_wanted.set()

    def publish(self, topic: str, payload: bytes, *, qos: int, retain: bool = False) -> int:
        """Send one message (never blocks; what the socket does not take waits in paho).

        Args:
            topic: The topic.
            payload: The payload.
            qos: 0 or 1.
            retain: Whether the broker keeps it as the topic's latest value.

        Returns:
            The message id (acknowledged through ``on_ack`` for QoS 1).

        Raises:
            ConnectionFailed: The connection is gone.
        """
        if self._lost.is_set():
            raise ConnectionFailed(f"MQTT connection lost: {self._lost_reason}")
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        self._check(info.rc)
        return int(info.mid)

    async def subscribe(self, topics: list[str], qos: int = 1) -> None:
        """Subscribe to topic filters and wait for the broker's acknowledgement.

        Args:
            topics: Topic filters.
            qos: Maximum QoS asked for.

        Raises:
            ConnectionFailed: The connection is gone.
        """
        if not topics:
            return
        rc, mid = self._client.subscribe([(topic, qos) for topic in topics])
        event = trio.Event()
        self._subacks[int(mid or 0)] = event
        self._check(rc)
        with trio.move_on_after(30):
            while not event.is_set() and not self._lost.is_set():
                await _first(event.wait, self._lost.wait)
        if not event.is_set():
            raise ConnectionFailed(f"MQTT subscription not acknowledged: {self._lost_reason}")

    async def _reader(self, sock: Any) -> None:
        client = self._client
        while not self._lost.is_set():
            await trio.lowlevel.wait_readable(sock)
            while True:
                self._check(client.loop_read())
                if not (isinstance(sock, ssl.SSLSocket) and sock.pending()):
                    break

    async def _writer(self, sock: Any) -> None:
        client = self._client
        while not self._lost.is_set():
            if client.want_write():
                await trio.lowlevel.wait_writable(sock)
                self._check(client.loop_write())
            else:
                self._write_wanted = trio.Event()
                if client.want_write():
                    continue
                await self._write_wanted.wait()

    async def _misc(self) -> None:
        while not self._lost.is_set():
            self._check(self._client.loop_misc())
            await trio.sleep(1)

    async def wait_lost(self) -> None:
        """Wait until the connection is gone.

        Raises:
            ConnectionFailed: Always, once it is gone, naming why.
        """
        await self._lost.wait()
        raise ConnectionFailed(f"MQTT connection lost: {self._lost_reason}")


async def _first(*waiters: Callable[[], Any]) -> None:
    async with trio.open_nursery() as nursery:

        async def run(waiter: Callable[[], Any]) -> None:
            await waiter()
            nursery.cancel_scope.cancel()

        for waiter in waiters:
            nursery.start_soon(run, waiter)


@asynccontextmanager
async def _unwrapped() -> AsyncIterator[None]:
    """A connection failure leaves ``open_link`` as itself, not in an exception group."""
    try:
        yield
    except BaseExceptionGroup as group:
        failure = connection_failure(group)
        if failure is None:
            raise
        raise failure from None


@asynccontextmanager
async def open_link(
    address: BrokerAddress,
    *,
    client_id: str,
    credentials: Credentials | None = None,
    ca_file: str | None = None,
    will: Will | None = None,
    keepalive: int = 10,
    max_inflight: int = 1000,
    connect_timeout: float = 10.0,
) -> AsyncIterator[MqttLink]:
    """Connect to the broker (clean session) and run the connection for the block.

    Args:
        address: The broker.
        client_id: The MQTT client id.
        credentials: User name and password, when the broker wants them.
        ca_file: CA bundle verifying a TLS broker (default: the system store).
        will: The Last Will.
        keepalive: Keep-alive seconds.
        max_inflight: Unacknowledged QoS 1 messages allowed at once.
        connect_timeout: Seconds for the TCP connect, TLS handshake and CONNACK.

    Yields:
        The link. The block is cancelled when the connection is lost, and
        ``ConnectionFailed`` raised.

    Raises:
        ConnectionFailed: The broker is unreachable, refused the connection or the
            credentials, TLS verification failed, or the connection was lost.
    """
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=True,
        protocol=paho.MQTTv311,
    )
    client.max_inflight_messages_set(max_inflight)
    client.max_queued_messages_set(0)
    client.connect_timeout = connect_timeout
    tls = make_tls_context(ca_file) if address.tls else None
    if tls is not None:
        client.tls_set_context(tls)
    if credentials is not None:
        client.username_pw_set(credentials.username, credentials.password)
    if will is not None:
        client.will_set(will.topic, will.payload, qos=1, retain=will.retain)
    link = MqttLink(client)
    connack: list[Any] = []
    connected = trio.Event()

    def on_connect(_c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        connack.append(rc)
        connected.set()

    client.on_connect = on_connect
    client.on_publish = link._cb_publish
    client.on_message = link._cb_message
    client.on_subscribe = link._cb_subscribe
    client.on_disconnect = link._cb_disconnect
    where = f"{address.host}:{address.port}"
    failed: str | None = None
    try:
        with trio.fail_after(connect_timeout + 1):
            await trio.to_thread.run_sync(
                client.connect, address.host, address.port, keepalive, abandon_on_cancel=True
            )
    except ssl.SSLError as exc:
        failed = "certificate verify failed" if "CERTIFICATE_VERIFY" in str(exc) else str(exc)
    except (OSError, trio.TooSlowError) as exc:
        failed = str(exc) or type(exc).__name__
    if failed is not None:
        for half_open in tls.wrapped if tls is not None else ():
            half_open.close()
        raise ConnectionFailed(f"cannot reach the MQTT broker at {where}: {failed}")
    sock = client.socket()
    if sock is None:  # pragma: no cover - paho closed it during connect
        raise ConnectionFailed(f"cannot reach the MQTT broker at {where}")
    try:
        async with _unwrapped(), trio.open_nursery() as nursery:
            nursery.start_soon(link._reader, sock)
            nursery.start_soon(link._writer, sock)
            link._write_wanted.set()
            with trio.move_on_after(connect_timeout):
                await _first(connected.wait, link._lost.wait)
            if not connack:
                raise ConnectionFailed(f"no CONNACK from the MQTT broker at {where}")
            if connack[0] != 0:
                raise ConnectionFailed(f"the MQTT broker at {where} refused: {connack[0]}")
            nursery.start_soon(link._misc)
            nursery.start_soon(link.wait_lost)
            yield link
            nursery.cancel_scope.cancel()
    finally:
        if not link.lost:
            client.disconnect()
            with trio.move_on_after(1):
                while client.want_write() and client.socket() is not None:
                    await trio.lowlevel.wait_writable(sock)
                    client.loop_write()
        sock.close()
