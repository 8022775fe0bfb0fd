"""Daemon health state and Prometheus metrics (a private registry).

``DaemonMetrics`` is what the daemon's parts update; the HTTP endpoint
(``hbtrio.daemon.http``) reads it for ``/healthz`` and ``/metrics``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import msgspec
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from ..models import ConnectionState

__all__ = ["DaemonMetrics", "HealthReport"]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class HealthReport(msgspec.Struct, frozen=True, kw_only=True):
    """The body of ``/healthz``.

    Attributes:
        healthy: Whether the endpoint answers 200.
        state: The client's connection state.
        last_event: Wall-clock time of the last event received, or ``None``.
        disconnected_for: Seconds since the client was last connected (``0`` while connected).
        events: Events received so far.
        restarts: Times the supervised client was restarted.
    """

    healthy: bool
    state: ConnectionState
    last_event: float | None
    disconnected_for: float
    events: int
    restarts: int


class _EngineCollector(Collector):
    """Reads the event engine's counters at scrape time."""

    def __init__(self, metrics: DaemonMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[CounterMetricFamily]:
        published, conflated = self._metrics.engine_counts()
        for name, help_text, counts in (
            ("hbtrio_events_published", "Events published to the event engine, by type", published),
            (
                "hbtrio_events_conflated",
                "Market-data events replaced by a newer one before delivery, by type",
                conflated,
            ),
        ):
            family = CounterMetricFamily(name, help_text, labels=["type"])
            for event_type, count in sorted(counts.items()):
                family.add_metric([event_type], count)
            yield family


class DaemonMetrics:
    """Counters and health state of one daemon.

    Args:
        stale_after: Seconds not connected after which the daemon is unhealthy.
        clock: Monotonic clock (seconds), injectable for tests.
        wall_clock: Wall clock (epoch seconds), injectable for tests.

    Attributes:
        registry: The private Prometheus registry.
        state: The current connection state.
        events: Events received.
        restarts: Supervised restarts.
        last_event: Wall-clock time of the last event, or ``None``.
    """

    def __init__(
        self,
        *,
        stale_after: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.stale_after = stale_after
        self._clock = clock
        self._wall_clock = wall_clock
        self.state = ConnectionState.DISCONNECTED
        self._not_connected_since: float | None = clock()
        self.events = 0
        self.restarts = 0
        self.last_event: float | None = None
        self._engine_stats: Callable[[], Any] | None = None
        self._connected_before = False

        self.registry = CollectorRegistry(auto_describe=True)
        self._state = Gauge(
            "hbtrio_connection_state",
            "1 for the client's current connection state, 0 for the others",
            ["state"],
            registry=self.registry,
        )
        for state in ConnectionState:
            self._state.labels(state.value).set(1 if state is self.state else 0)
        self._reconnects = Counter(
            "hbtrio_reconnects",
            "Times the client connected again after losing its connection",
            registry=self.registry,
        )
        self._restarts = Counter(
            "hbtrio_restarts",
            "Times the supervised client was started again after failing",
            registry=self.registry,
        )
        self._events = Counter(
            "hbtrio_events_received",
            "Events the daemon received from the event engine, by type",
            ["type"],
            registry=self.registry,
        )
        self._written = Counter(
            "hbtrio_sink_written",
            "Events written to the sink",
            registry=self.registry,
        )
        self._errors = Counter(
            "hbtrio_errors",
            "Errors reported by the client or the supervisor, by kind",
            ["kind"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "hbtrio_request_latency_seconds",
            "Latency of each REST request attempt the client made, by method, "
            "endpoint (path template) and outcome",
            ["method", "endpoint", "outcome"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._last_event = Gauge(
            "hbtrio_last_event_timestamp_seconds",
            "Wall-clock time of the last event received",
            registry=self.registry,
        )
        self._healthy = Gauge(
            "hbtrio_healthy",
            "1 when /healthz answers 200",
            registry=self.registry,
        )
        self._healthy.set_function(lambda: 1.0 if self.health().healthy else 0.0)
        self.registry.register(_EngineCollector(self))

    # -- updates -----------------------------------------------------------------

    def set_state(self, state: ConnectionState) -> None:
        """Record a connection state change.

        Args:
            state: The new state.
        """
        if state is self.state:
            return
        self._state.labels(self.state.value).set(0)
        self._state.labels(state.value).set(1)
        if state is ConnectionState.CONNECTED:
            if self._connected_before:
                self._reconnects.inc()
            self._connected_before = True
            self._not_connected_since = None
        elif self._not_connected_since is None:
            self._not_connected_since = self._clock()
        self.state = state

    def event(self, event_type: str) -> None:
        """Count one event received.

        Args:
            event_type: The event's tag (``order_book_update``, ...).
        """
        self.events += 1
        self._events.labels(event_type).inc()
        now = self._wall_clock()
        self.last_event = now
        self._last_event.set(now)

    def written(self, count: int = 1) -> None:
        """Count events written to the sink.

        Args:
            count: How many.
        """
        self._written.inc(count)

    def error(self, kind: str) -> None:
        """Count one error.

        Args:
            kind: Its kind (exception class name).
        """
        self._errors.labels(kind).inc()

    def restart(self) -> None:
        """Count one restart of the supervised client."""
        self.restarts += 1
        self._restarts.inc()

    def observe_request(self, method: str, endpoint: str, seconds: float, outcome: str) -> None:
        """Record one REST request attempt (a ``RequestObserver``).

        Passed to ``hbtrio.open_client`` as ``request_observer``, so every
        request of the client (orders, tracker polls, market data) is measured.

        Args:
            method: ``GET`` or ``POST``.
            endpoint: The path template, e.g. ``/trading/orders``.
            seconds: How long the attempt took.
            outcome: ``ok``, the status code of another answer, or the
                exception class name when there was no answer.
        """
        self._latency.labels(method, endpoint, outcome).observe(seconds)

    def watch_engine(self, stats: Callable[[], Any]) -> None:
        """Export an event engine's counters (read at scrape time).

        Args:
            stats: Returns an object with ``published`` and ``conflated``
                mappings of event type name to count, such as
                ``lambda: engine.stats``.
        """
        self._engine_stats = stats

    def engine_counts(self) -> tuple[dict[str, int], dict[str, int]]:
        """The watched engine's published and conflated counts per event type.

        Returns:
            ``(published, conflated)``; empty when no engine is watched.
        """
        if self._engine_stats is None:
            return {}, {}
        stats = self._engine_stats()
        return dict(stats.published), dict(stats.conflated)

    # -- reads -------------------------------------------------------------------

    def health(self) -> HealthReport:
        """The current health.

        Returns:
            Healthy while connected or not connected for less than ``stale_after``
            seconds (counted from the last time the client was connected, or from
            the daemon's start).
        """
        if self._not_connected_since is None:
            down_for = 0.0
        else:
            down_for = max(0.0, self._clock() - self._not_connected_since)
        return HealthReport(
            healthy=self.state is ConnectionState.CONNECTED or down_for < self.stale_after,
            state=self.state,
            last_event=self.last_event,
            disconnected_for=round(down_for, 3),
            events=self.events,
            restarts=self.restarts,
        )

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric.

        Returns:
            The text, UTF-8 encoded.
        """
        return generate_latest(self.registry)

    def counter_value(self, name: str, **labels: Any) -> float:
        """A sample's current value (for tests and logs).

        Args:
            name: Sample name, e.g. ``hbtrio_events_total``.
            **labels: Its labels.

        Returns:
            The value, or ``0.0`` when there is no such sample.
        """
        value = self.registry.get_sample_value(name, {k: str(v) for k, v in labels.items()})
        return 0.0 if value is None else value
