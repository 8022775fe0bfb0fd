"""Fixtures of the reliability and security suite (helpers live in ``_support``)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One simulator certificate directory shared by the session."""
    return tmp_path_factory.mktemp("reliability-certs")
