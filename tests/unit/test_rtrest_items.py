"""Issue 13 (REST part): one test per defect, against the in-memory fake server."""

from __future__ import annotations

import base64
import logging

import pytest

import hbtrio
from hbtrio import ErrorEvent, ServerError
from hbtrio._client import Client
from tests.unit.test_rest_fake import FakeServer, detail
from tests.unit.test_rest_unit import KEY, client, server  # noqa: F401 - fixtures

B64 = base64.b64encode(KEY.encode()).decode()


def _no_secret(text: str) -> None:
    assert KEY not in text and B64 not in text and B64.rstrip("=") not in text
    assert "Basic " + B64[:8] not in text


# -- item 8: server texts are scrubbed of the credential ----------------------------------


async def test_item8_credential_echoed_by_the_server_is_scrubbed(
    client: Client,  # noqa: F811
    server: FakeServer,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    echo = f"bad header Authorization: Basic {B64} (user {KEY}, token={B64.rstrip('=')})"
    server.add_fault("/connectors/", lambda call: detail(500, echo))
    with caplog.at_level(logging.DEBUG, logger="hbtrio"), pytest.raises(ServerError) as info:
        await client.get_exchanges()
    exc = info.value
    for text in (str(exc), repr(exc), exc.message, str(exc.detail)):
        _no_secret(text)
    assert "[redacted]" in str(exc)
    for record in caplog.records:
        _no_secret(record.getMessage())
    event = ErrorEvent(error=f"server error: {echo}")
    _no_secret(event.error)
    _no_secret(str(hbtrio.OrderRejected("x", reason=echo).reason))
