"""Suite-wide fixtures.

Every integration and reliability test runs with DEBUG logging captured, and fails
if a credential the suite uses (or its base64 form) reached a log record.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator

import pytest

# Credential pairs the integration and reliability tests use.
_SECRETS = ("admin:admin", "admin:wrong", "soak-user:S3cr3t-Pa55-Zq9")
_FORBIDDEN = tuple(
    text for key in _SECRETS for text in (key, base64.b64encode(key.encode()).decode())
)


@pytest.fixture(autouse=True)
def _no_secret_in_debug_logs(
    request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> Iterator[None]:
    path = str(request.node.path)
    if (
        "/integration/" not in path and "/reliability/" not in path
    ) or request.node.get_closest_marker("soak"):
        # (The soak measures the client's memory: it keeps no log records.)
        yield
        return
    caplog.set_level(logging.DEBUG)
    yield
    for record in caplog.get_records("setup") + caplog.get_records("call"):
        text = record.getMessage()
        if record.exc_text:
            text += record.exc_text
        leaked = [secret for secret in _FORBIDDEN if secret in text]
        assert not leaked, f"a credential reached a log record of {record.name!r}"
