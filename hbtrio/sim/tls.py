"""TLS material of the simulator: a private CA and a server certificate, kept on disk.

The first start creates, with ``trustme``, a CA and a server certificate for the
listen host plus ``127.0.0.1``, ``::1`` and ``localhost``, and keeps them in the
certificate directory. Later starts reuse them (so clients keep verifying across
restarts); when the listen host is not covered, a new server certificate is
issued by the same CA. The CA's private key is written with mode 0600.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CertPaths", "default_cert_dir", "ensure_certs"]

_CA = "ca.pem"
_CA_KEY = "ca-key.pem"
_CERT = "server.pem"
_KEY = "server-key.pem"
_HOSTS = "hosts.txt"


@dataclass(frozen=True, slots=True)
class CertPaths:
    """Where the simulator's TLS files are.

    Attributes:
        ca: The CA certificate (PEM) clients verify with.
        cert: The server certificate chain (PEM).
        key: The server private key (PEM).
    """

    ca: Path
    cert: Path
    key: Path


def default_cert_dir() -> Path:
    """The command line's certificate directory when ``--cert-dir`` is not given.

    Returns:
        ``$XDG_CACHE_HOME/hbtrio/sim-certs`` (``~/.cache/hbtrio/sim-certs`` by default).
    """
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hbtrio" / "sim-certs"


def _hosts_for(host: str) -> list[str]:
    hosts = [host] if host not in ("", "0.0.0.0", "::") else []
    for extra in ("127.0.0.1", "::1", "localhost"):
        if extra not in hosts:
            hosts.append(extra)
    return hosts


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def ensure_certs(cert_dir: Path, host: str, ca_out: Path | None = None) -> CertPaths:
    """Create or reuse the CA and server certificate for ``host``.

    Args:
        cert_dir: Directory keeping the files (created if needed).
        host: The listen host the certificate must name.
        ca_out: Also copy the CA certificate there, when given.

    Returns:
        The paths of the CA, certificate and key.
    """
    import trustme  # the ``sim`` extra

    cert_dir.mkdir(parents=True, exist_ok=True)
    paths = CertPaths(cert_dir / _CA, cert_dir / _CERT, cert_dir / _KEY)
    hosts = _hosts_for(host)
    hosts_file = cert_dir / _HOSTS
    ca_key = cert_dir / _CA_KEY
    have_ca = paths.ca.exists() and ca_key.exists()
    covered = (
        have_ca
        and paths.cert.exists()
        and paths.key.exists()
        and hosts_file.exists()
        and set(hosts) <= set(hosts_file.read_text().split())
    )
    if not covered:
        if have_ca:
            ca = trustme.CA.from_pem(paths.ca.read_bytes(), ca_key.read_bytes())
        else:
            ca = trustme.CA(organization_name="hbtrio simulator")
            paths.ca.write_bytes(ca.cert_pem.bytes())
            _write_private(ca_key, ca.private_key_pem.bytes())
        leaf = ca.issue_cert(*hosts)
        paths.cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
        _write_private(paths.key, leaf.private_key_pem.bytes())
        hosts_file.write_text("\n".join(hosts) + "\n")
    if ca_out is not None and not (ca_out.exists() and ca_out.samefile(paths.ca)):
        ca_out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(paths.ca, ca_out)
    return paths
