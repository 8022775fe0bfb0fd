"""The event bus: the daemon's events over MQTT to many processes (docs/bus.md).

The sink and the consumer need the ``bus`` extra (``pip install 'hbtrio[bus]'``:
paho-mqtt); ``MqttSinkConfig`` does not, so that the daemon's configuration
reader can name it without the extra installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import MqttSinkConfig

if TYPE_CHECKING:
    from .consumer import Bus, BusStats, open_bus
    from .sink import MqttSink

__all__ = ["Bus", "BusStats", "MqttSink", "MqttSinkConfig", "open_bus"]


def __getattr__(name: str) -> Any:
    if name in ("Bus", "BusStats", "open_bus"):
        from . import consumer

        return getattr(consumer, name)
    if name == "MqttSink":
        from .sink import MqttSink

        return MqttSink
    raise AttributeError(f"module 'hbtrio.bus' has no attribute {name!r}")
