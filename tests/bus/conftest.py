"""Fixtures of the bus tests: ``broker``, a real MQTT broker (``tests/mqtt_broker.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mqtt_broker import Broker


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A broker on 127.0.0.1 without persistence, stopped at teardown."""
    b = Broker(tmp_path)
    b.start()
    yield b
    b.stop()
