"""Helpers of the reliability suite (imported as ``tests.reliability._support``).

* ``SECRET_KEY``: a distinctive credential pair; its password and base64 forms
  (``SECRET_FORMS``) are what the secret-hygiene checks look for.
* ``start_sim(nursery, cert_dir, **kwargs)``: an in-process simulator (TLS by
  default, ``SECRET_KEY``), returning its :class:`hbtrio.sim.SimInfo`.
* ``upstream_context(info)``: a client TLS context trusting the simulator's CA,
  for the fault proxy's upstream side.
* ``config_for(host, port, ca_file, **overrides)``: a :class:`hbtrio.ClientConfig`
  with the secret key.
* ``open_ssl_sockets()`` / ``close_leaked_ssl_sockets(before)``: the
  ``ssl.SSLSocket`` objects (the client's HTTP pool uses them) still open, and
  closing those opened since ``before`` (a known library leak, see
  ``test_regressions``), returning how many.
"""

from __future__ import annotations

import base64
import gc
import ssl
from functools import partial
from pathlib import Path
from typing import Any

import trio

from hbtrio import ClientConfig
from hbtrio.sim import SimInfo, serve

SECRET_KEY = "soak-user:S3cr3t-Pa55-Zq9"
SECRET_FORMS = (
    SECRET_KEY,
    SECRET_KEY.split(":", 1)[1],
    base64.b64encode(SECRET_KEY.encode()).decode(),
    base64.urlsafe_b64encode(SECRET_KEY.encode()).decode(),
)


async def start_sim(nursery: trio.Nursery, cert_dir: Path | None, **kwargs: Any) -> SimInfo:
    """Start a simulator in ``nursery`` (TLS unless ``tls=False``, ``SECRET_KEY``).

    Args:
        nursery: Where it runs (cancel it to stop).
        cert_dir: Certificate directory (``None`` for a temporary one).
        **kwargs: Other :func:`hbtrio.sim.serve` arguments.

    Returns:
        Where it listens.
    """
    options: dict[str, Any] = {"api_key": SECRET_KEY, "cert_dir": cert_dir}
    options.update(kwargs)
    info: SimInfo = await nursery.start(partial(serve, **options))
    return info


def upstream_context(info: SimInfo) -> ssl.SSLContext:
    """A client TLS context that trusts the simulator's CA.

    Args:
        info: The simulator.

    Returns:
        The context.
    """
    assert info.ca_path is not None
    return ssl.create_default_context(cafile=info.ca_path)


def config_for(host: str, port: int, ca_file: str | None, **overrides: Any) -> ClientConfig:
    """A client configuration carrying ``SECRET_KEY``.

    Args:
        host: Server host.
        port: Server port.
        ca_file: CA bundle (``None`` with ``tls=False`` or the system store).
        **overrides: Other configuration fields.

    Returns:
        The configuration.
    """
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "api_key": SECRET_KEY,
        "ca_file": ca_file,
        "timeout": 2.0,
        "retries": 1,
    }
    options.update(overrides)
    return ClientConfig(**options)


def open_ssl_sockets() -> set[int]:
    """Ids of the ``ssl.SSLSocket`` objects alive and not closed.

    Returns:
        The ids.
    """
    return {id(o) for o in gc.get_objects() if isinstance(o, ssl.SSLSocket) and o.fileno() >= 0}


def close_leaked_ssl_sockets(before: set[int]) -> int:
    """Close the ``ssl.SSLSocket`` objects still open that were not in ``before``.

    Args:
        before: What :func:`open_ssl_sockets` returned earlier.

    Returns:
        How many were closed.
    """
    leaked = [
        o
        for o in gc.get_objects()
        if isinstance(o, ssl.SSLSocket) and o.fileno() >= 0 and id(o) not in before
    ]
    for sock in leaked:
        sock.close()
    return len(leaked)


def find_secret(text: str) -> str | None:
    """Return the secret form found in ``text``, if any.

    Args:
        text: Anything rendered to text.

    Returns:
        The form found, or ``None``.
    """
    for form in SECRET_FORMS:
        if form in text:
            return form
    return None


def _open_client() -> Any:
    import hbtrio

    public = getattr(hbtrio, "open_client", None)
    if public is not None:
        return public
    from hbtrio._client import open_client as private  # until the export lands

    return private


open_client = _open_client()
"""``hbtrio.open_client`` (the public entry point)."""
