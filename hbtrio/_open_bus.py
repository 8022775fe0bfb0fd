"""``hbtrio.open_bus``, importable without the ``bus`` extra (paho-mqtt loads on the call)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .bus import Bus

__all__ = ["open_bus"]


def open_bus(
    url: str,
    topics: list[str] | None = None,
    credentials_env: str | None = None,
    **kwargs: Any,
) -> AbstractAsyncContextManager[Bus]:
    """Consume a daemon's events from an MQTT broker: see ``hbtrio.bus.open_bus``.

    Example:
        ```python
        async with hbtrio.open_bus("mqtts://broker:8883") as bus:
            async with bus.subscribe(hbtrio.OrderUpdate, hbtrio.TradeEvent) as events:
                async for event in events:
                    print(event)
        ```

    Args:
        url: The broker, ``mqtt://host:1883`` or ``mqtts://host:8883``.
        topics: Topic filters (default: everything under the prefix ``hbtrio``).
        credentials_env: Environment variable holding ``user:password``.
        **kwargs: The other keyword arguments of ``hbtrio.bus.open_bus``
            (``credentials_file``, ``ca_file``, ``prefix``, ``client_id``,
            ``replay_from_seq``, ``replay_from_time``, ``backlog``).

    Returns:
        An async context manager yielding the ``Bus``.

    Raises:
        ImportError: The ``bus`` extra is not installed (``pip install 'hbtrio[bus]'``).
        InputValidationError: A bad argument (when entered, before any I/O).
    """
    try:
        from .bus import open_bus as open_
    except ImportError as exc:  # pragma: no cover - the test extra installs it
        raise ImportError("hbtrio.open_bus needs the bus extra: pip install 'hbtrio[bus]'") from exc
    return open_(url, topics, credentials_env, **kwargs)
