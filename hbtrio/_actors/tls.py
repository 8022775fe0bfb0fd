"""TLS settings shared by the REST pool and the WebSocket dialer."""

from __future__ import annotations

import ssl

from .._config import ClientConfig

__all__ = [
    "certificate_error",
    "certificate_failure_text",
    "is_certificate_error",
    "make_ssl_context",
]


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


def certificate_error(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The TLS certificate verification failure behind ``exc``, if any (the only detector).

    Follows ``__cause__`` / ``__context__`` links (cycles are safe).

    Args:
        exc: Any exception.

    Returns:
        The ``ssl.SSLCertVerificationError`` found in the chain, else ``None``.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return current
        current = current.__cause__ or current.__context__
    return None


def is_certificate_error(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is a TLS certificate verification failure.

    Args:
        exc: Any exception.

    Returns:
        ``True`` for a certificate failure (never worth retrying).
    """
    return certificate_error(exc) is not None


def certificate_failure_text(where: str, error: ssl.SSLCertVerificationError) -> str:
    """The one user-facing message for a certificate failure (REST and WebSocket alike).

    Args:
        where: The server being reached (never carries credentials).
        error: The verification failure.

    Returns:
        A message naming the server, the reason and the ``ca_file`` remedy.
    """
    reason = error.verify_message or error.reason or str(error)
    return (
        f"the TLS certificate of {where} could not be verified ({reason}); if the server "
        "uses a private or self-signed CA, pass its certificate as ca_file"
    )
