"""The daemon: a supervised client whose events go to its sinks.

``Daemon`` runs, in one nursery:

* the health and metrics endpoint (``serve_health``);
* the writer, subscribed to every event of the ``EventEngine``,
  writing each to every sink and keeping the metrics;
* the supervisor, which opens the client (``open_client(config, engine=...)``,
  with the metrics timing every REST request it makes) and the configured
  subscriptions, and starts them again with backoff when
  they fail; a server unreachable at start or later is retried for as long as
  the daemon runs;
* the signal watcher (SIGINT/SIGTERM: graceful stop; a second signal: exit at once).

A graceful stop closes the client, then lets the writer drain every event it
received before the stop (a private end marker is published after the client
closed), flushes and closes the sinks, all within ``supervisor.stop_timeout``.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import msgspec
import trio

from .._core.backoff import Backoff
from .._errors import (
    AuthenticationFailed,
    ConnectionFailed,
    HbtrioError,
    InputValidationError,
    SubscriptionError,
    lone_exception,
)
from ..events import ConnectionStateChanged, ErrorEvent, Event, EventEngine, EventSubscription
from ..models import ConnectionState
from .config import DaemonConfig, SubscriptionSpec
from .http import serve_health
from .metrics import DaemonMetrics
from .sinks import Sink, open_sinks, sink_tasks

__all__ = [
    "EXIT_AUTH",
    "EXIT_CONFIG",
    "EXIT_ERROR",
    "EXIT_OK",
    "Daemon",
]

EXIT_OK = 0
"""Clean stop."""
EXIT_ERROR = 1
"""Anything else went wrong."""
EXIT_CONFIG = 2
"""Bad configuration."""
EXIT_AUTH = 3
"""Authentication failed at start."""

OpenClient = Callable[..., AbstractAsyncContextManager[Any]]


class _EndOfStream(Event, frozen=True):
    """Private marker published after the client closed: the writer stops at it."""


def _describe(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Daemon:
    """The supervised background client.

    Args:
        config: The validated configuration.
        logger: Where to log (set up with ``setup_logging``).
        open_client: The client factory (default ``hbtrio.open_client``);
            replaceable for tests.
        sink: The sink (default: opened from ``config.sinks``, a
            ``FanoutSink`` when there are several).
        metrics: The metrics (default: new, with ``config.http.stale_after``).
        handle_signals: Install SIGINT/SIGTERM handling (main thread only).
        hard_exit: When a graceful stop overruns ``supervisor.stop_timeout``, end
            the process (``os._exit``) once the sink is flushed, instead of
            waiting for the rest (for the command line; tests leave it off).

    Attributes:
        metrics: Health state and counters.
        received: Events received from the engine.
        health_port: The bound port of the health endpoint, once listening.
        exit_code: The code ``run`` returns.
    """

    def __init__(
        self,
        config: DaemonConfig,
        logger: logging.Logger,
        *,
        open_client: OpenClient | None = None,
        sink: Sink | None = None,
        metrics: DaemonMetrics | None = None,
        handle_signals: bool = True,
        hard_exit: bool = False,
    ) -> None:
        self.config = config
        self.log = logger
        self._open_client = open_client
        self._sink = sink
        self.metrics = metrics or DaemonMetrics(stale_after=config.http.stale_after)
        self._handle_signals = handle_signals
        self._hard_exit = hard_exit
        self._finished = False
        self.engine = EventEngine(grace=5.0, overflow=config.supervisor.buffer * 10)
        self.metrics.watch_engine(lambda: self.engine.stats)
        self.received = 0
        self.health_port: int | None = None
        self.exit_code = EXIT_OK
        self._stop = trio.Event()
        self._client_scope = trio.CancelScope()
        self._supervisor_done = trio.Event()
        self._writer_done = trio.Event()
        self._subscription: EventSubscription[Event] | None = None
        self._started_once = False
        self._backoff = Backoff(
            config.supervisor.backoff_initial,
            config.supervisor.backoff_max,
            reset_after=max(10.0, config.supervisor.backoff_max),
        )

    # -- control -------------------------------------------------------------------

    def request_stop(self, code: int | None = None) -> None:
        """Begin a graceful stop.

        Args:
            code: Exit code to return (default: keep the current one).
        """
        if code is not None and self.exit_code == EXIT_OK:
            self.exit_code = code
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """Whether a stop was requested."""
        return self._stop.is_set()

    # -- main ----------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> int:
        """Run until stopped.

        Args:
            task_status: Reports started once the endpoint listens and the writer
                is subscribed.

        Returns:
            The exit code: 0 after a stop, 3 if authentication failed at start,
            1 for other failures.
        """
        if self._sink is None:
            try:
                self._sink = open_sinks(self.config.sinks)
            except OSError as exc:
                self.log.error(
                    "cannot open a sink",
                    extra={"fields": {"path": exc.filename, "error": exc.strerror}},
                )
                return EXIT_CONFIG
            except InputValidationError as exc:  # an MQTT sink's credentials or CA file
                self.log.error("cannot open a sink", extra={"fields": {"error": str(exc)}})
                return EXIT_CONFIG
        try:
            async with trio.open_nursery() as nursery:
                if self._handle_signals:
                    nursery.start_soon(self._watch_signals)
                http = self.config.http
                if http.enabled:
                    try:
                        self.health_port = await nursery.start(
                            serve_health, self.metrics, http.host, http.port
                        )
                    except OSError as exc:
                        self.log.error(
                            "cannot listen for /healthz and /metrics",
                            extra={"fields": {"listen": http.listen, "error": exc.strerror}},
                        )
                        self.exit_code = EXIT_ERROR
                        nursery.cancel_scope.cancel()
                        return self.exit_code
                    bound = msgspec.structs.replace(http, port=self.health_port).listen
                    self.log.info(
                        "health endpoint listening",
                        extra={
                            "fields": {"url": f"http://{bound}/healthz", "port": self.health_port}
                        },
                    )
                for task in sink_tasks(self._sink):
                    await nursery.start(task)
                await nursery.start(self._write_events)
                nursery.start_soon(self._supervise)
                self.log.info(
                    "daemon started",
                    extra={
                        "fields": {
                            "server": f"{self.config.client.host}:{self.config.client.port}",
                            "subscriptions": len(self.config.subscriptions),
                            "sinks": ", ".join(sink.destination for sink in self.config.sinks),
                            "pid": os.getpid(),
                        }
                    },
                )
                task_status.started()
                await self._stop.wait()
                await self._shutdown()
                nursery.cancel_scope.cancel()
        finally:
            self._finish()
        return self.exit_code

    def _finish(self) -> None:
        if self._finished or self._sink is None:
            return
        self._finished = True
        self._sink.close()
        self.log.info(
            "daemon stopped",
            extra={
                "fields": {
                    "events_received": self.received,
                    "events_written": self._sink.written,
                    "exit_code": self.exit_code,
                }
            },
        )

    async def _shutdown(self) -> None:
        self.log.info("stopping")
        with trio.move_on_after(self.config.supervisor.stop_timeout) as deadline:
            self._client_scope.cancel()
            await self._supervisor_done.wait()
            self.engine.publish(_EndOfStream())
            await self._writer_done.wait()
        if deadline.cancelled_caught:
            self.log.warning("stop took too long; writing what was received and exiting")
            self._drain_now()
            self._finish()
            if self._hard_exit:
                logging.shutdown()
                os._exit(self.exit_code)

    def _drain_now(self) -> None:
        subscription = self._subscription
        if subscription is None:
            return
        while True:
            try:
                event = subscription.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel, SubscriptionError):
                break
            if isinstance(event, _EndOfStream):
                break
            self._handle(event)
        self._flush()

    def _flush(self) -> None:
        if self._sink is not None:
            self._sink.flush()

    # -- signals -------------------------------------------------------------------

    async def _watch_signals(self) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                name = signal.Signals(signum).name
                if not self.stopping:
                    self.log.info("signal received; stopping", extra={"fields": {"signal": name}})
                    self.request_stop()
                    continue
                self.log.warning(
                    "second signal; exiting at once", extra={"fields": {"signal": name}}
                )
                try:
                    self._flush()
                finally:
                    os._exit(EXIT_ERROR)

    # -- writer --------------------------------------------------------------------

    def _handle(self, event: Event) -> None:
        self.received += 1
        kind = type(event).__name__
        self.metrics.event(kind)
        if isinstance(event, ConnectionStateChanged):
            self._on_state(event.old, event.new)
        elif isinstance(event, ErrorEvent):
            self.metrics.error(event.kind)
            self.log.warning(
                "client error", extra={"fields": {"kind": event.kind, "error": event.error}}
            )
        assert self._sink is not None
        self._sink.write(event)
        self.metrics.written()

    def _on_state(self, old: ConnectionState, new: ConnectionState) -> None:
        self.metrics.set_state(new)
        now = trio.current_time()
        if new is ConnectionState.CONNECTED:
            self._backoff.on_connected(now)
        elif old is ConnectionState.CONNECTED:
            self._backoff.on_disconnected(now)
        level = logging.INFO if new is ConnectionState.CONNECTED else logging.WARNING
        if new is ConnectionState.CONNECTING:
            level = logging.DEBUG
        self.log.log(
            level, "connection state", extra={"fields": {"old": old.value, "new": new.value}}
        )

    async def _write_events(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        started = False
        try:
            while True:
                try:
                    async with self.engine.subscribe(
                        buffer=self.config.supervisor.buffer, name="daemon sink"
                    ) as subscription:
                        self._subscription = subscription
                        if not started:
                            started = True
                            task_status.started()
                        async for event in subscription:
                            if isinstance(event, _EndOfStream):
                                self._flush()
                                return
                            self._handle(event)
                            if not subscription.pending:
                                self._flush()
                except SubscriptionError as exc:
                    self.metrics.error("SubscriptionError")
                    self.log.error(
                        "the sink fell behind; events were lost; subscribing again",
                        extra={"fields": {"error": str(exc)}},
                    )
        finally:
            self._writer_done.set()

    # -- supervisor ----------------------------------------------------------------

    def _client_factory(self) -> OpenClient:
        if self._open_client is None:
            import hbtrio

            factory: OpenClient = getattr(hbtrio, "open_client")  # noqa: B009
            self._open_client = factory
        return self._open_client

    async def _supervise(self) -> None:
        try:
            with self._client_scope:
                while True:
                    await self._run_client_once()
                    if self.stopping:
                        return
                    delay = self._backoff.next_delay()
                    self.log.info("retrying", extra={"fields": {"in_seconds": round(delay, 3)}})
                    await trio.sleep(delay)
                    self.metrics.restart()
        finally:
            self._supervisor_done.set()

    async def _run_client_once(self) -> None:
        try:
            open_client = self._client_factory()
            async with open_client(
                self.config.client,
                engine=self.engine,
                request_observer=self.metrics.observe_request,
            ) as client:
                if not self._started_once:
                    self.log.info("client started")
                self._started_once = True
                async with trio.open_nursery() as nursery:
                    for spec in self.config.subscriptions:
                        nursery.start_soon(self._keep_subscription, client, spec)
                    if self.config.supervisor.probe_interval > 0:
                        nursery.start_soon(self._probe, client)
                    await trio.sleep_forever()
        except Exception as raw:
            exc = lone_exception(raw)
            self.metrics.error(type(exc).__name__)
            if self.metrics.state is ConnectionState.CONNECTED:
                self.metrics.set_state(ConnectionState.DISCONNECTED)
            if isinstance(exc, AuthenticationFailed) and not self._started_once:
                self.log.error(
                    "authentication failed at start; check the API key",
                    extra={"fields": {"error": _describe(exc)}},
                )
                self.request_stop(EXIT_AUTH)
                return
            if isinstance(exc, ConnectionFailed):
                self.log.warning(
                    "server unreachable" if not self._started_once else "client lost the server",
                    extra={"fields": {"error": _describe(exc)}},
                )
            elif isinstance(exc, HbtrioError):
                self.log.error("client failed", extra={"fields": {"error": _describe(exc)}})
            else:
                self.log.error(
                    "client crashed (a bug)",
                    extra={"fields": {"error": _describe(exc)}},
                    exc_info=exc,
                )

    async def _probe(self, client: Any) -> None:
        """Ask for the server's info now and then (liveness; timed like every request)."""
        interval = self.config.supervisor.probe_interval
        while True:
            try:
                await client.server_info()
            except HbtrioError as exc:
                self.metrics.error(type(exc).__name__)
                self.log.warning("probe failed", extra={"fields": {"error": _describe(exc)}})
            await trio.sleep(interval)

    async def _keep_subscription(self, client: Any, spec: SubscriptionSpec) -> None:
        backoff = Backoff(
            self.config.supervisor.backoff_initial, self.config.supervisor.backoff_max
        )
        label = f"{spec.type} {spec.exchange} {spec.market}"
        while True:
            try:
                async with self._open_stream(client, spec) as stream:
                    self.log.info("subscribed", extra={"fields": {"stream": label}})
                    backoff.reset()
                    async for _item in stream:
                        pass  # the client publishes each update to the engine
                    self.log.warning("stream ended", extra={"fields": {"stream": label}})
            except (HbtrioError, ValueError) as exc:
                self.metrics.error(type(exc).__name__)
                self.log.warning(
                    "subscription failed",
                    extra={"fields": {"stream": label, "error": _describe(exc)}},
                )
            await trio.sleep(backoff.next_delay())

    @staticmethod
    def _open_stream(
        client: Any, spec: SubscriptionSpec
    ) -> AbstractAsyncContextManager[AsyncIterator[Any]]:
        if spec.type == "order_book":
            return client.subscribe_order_book(spec.exchange, spec.market, depth=spec.depth)  # type: ignore[no-any-return]
        if spec.type == "trades":
            return client.subscribe_trades(spec.exchange, spec.market)  # type: ignore[no-any-return]
        if spec.type == "ticker":
            return client.subscribe_ticker(spec.exchange, spec.market)  # type: ignore[no-any-return]
        return client.subscribe_candles(spec.exchange, spec.market, interval=spec.interval)  # type: ignore[no-any-return]
