"""The event bus: the daemon's events over MQTT to many processes (docs/bus.md).

Needs the ``bus`` extra (``pip install hbtrio[bus]``): paho-mqtt.
"""

from __future__ import annotations

from .config import MqttSinkConfig
from .consumer import Bus, BusStats, open_bus
from .sink import MqttSink

__all__ = ["Bus", "BusStats", "MqttSink", "MqttSinkConfig", "open_bus"]
