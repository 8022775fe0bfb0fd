"""TLS settings shared by the REST pool and the WebSocket dialer."""

from __future__ import annotations

import ssl

from .._config import ClientConfig

__all__ = ["make_ssl_context"]


def make_ssl_context(config: ClientConfig) -> ssl.SSLContext | None:
    """Build the client TLS context that verifies the server.

    ``ssl.create_default_context`` semantics: certificate verification against
    ``config.ca_file`` when given, else the system trust store; hostname checking
    on; TLS 1.2 or newer; ALPN offers ``http/1.1`` only.

    Args:
        config: The client configuration.

    Returns:
        The context, or ``None`` when ``config.tls`` is off (plain HTTP).

    Raises:
        ssl.SSLError: ``config.ca_file`` is not a readable PEM bundle.
    """
    if not config.tls:
        return None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=config.ca_file)
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    if context.minimum_version < ssl.TLSVersion.TLSv1_2:
        context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    return context
