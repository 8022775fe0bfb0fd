"""The streaming supervisor's WebSocket start-up against the real simulator over TLS.

What a user sees (streams delivering, reconnects after dropped WebSockets, recovery
after a simulator restart, order events) is tested through ``hbtrio.open_client`` in
``test_client_streams.py``. ``open_client`` checks the credentials over REST first,
so the WebSocket's own refusal paths (close 4001, an untrusted certificate) are
tested here on the supervisor directly.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from hbtrio import AuthenticationFailed, EventEngine
from hbtrio._actors.streams import StreamingSupervisor
from hbtrio.sim import SimInfo
from tests.integration.conftest import client_config


async def test_wrong_credentials_raise_authentication_failed(sim: SimInfo) -> None:
    config = client_config(sim, api_key="admin:wrong")
    sup = StreamingSupervisor(config, EventEngine().publish)
    with pytest.raises(AuthenticationFailed) as info:
        await _start_fails(sup)
    assert "wrong" not in str(info.value)
    assert sup.connection.connections == 0


async def _start_fails(sup: StreamingSupervisor) -> None:
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
    except ExceptionGroup as group:
        assert len(group.exceptions) == 1
        raise group.exceptions[0] from None


async def test_untrusted_certificate_fails_at_once(sim: SimInfo, tmp_path: Path) -> None:
    # Verify against another CA: the system store does not know the simulator's CA.
    config = client_config(sim, ca_file=None, retries=5)
    sup = StreamingSupervisor(config, EventEngine().publish)
    t0 = trio.current_time()
    with pytest.raises(Exception) as info:
        await _start_fails(sup)
    assert "certificate" in str(info.value).lower()
    assert trio.current_time() - t0 < 2.0  # not retried
