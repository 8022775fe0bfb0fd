"""The simulator's certificate files: ``ensure_certs`` and its ``ca_out`` copy."""

from __future__ import annotations

import ssl
from pathlib import Path

from hbtrio.sim.tls import ensure_certs


def test_ca_out_elsewhere_is_a_copy_of_the_ca(tmp_path: Path) -> None:
    out = tmp_path / "out" / "ca.pem"
    paths = ensure_certs(tmp_path / "certs", "127.0.0.1", out)
    assert out.read_bytes() == paths.ca.read_bytes()
    ssl.create_default_context(cafile=str(out))  # a loadable CA certificate


def test_ca_out_naming_the_ca_itself_is_accepted(tmp_path: Path) -> None:
    first = ensure_certs(tmp_path, "127.0.0.1")
    before = first.ca.read_bytes()
    again = ensure_certs(tmp_path, "127.0.0.1", first.ca)  # was: "are the same file"
    assert again.ca == first.ca
    assert again.ca.read_bytes() == before
