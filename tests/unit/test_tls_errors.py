"""The one certificate-error detector and message shared by REST and WebSocket."""

from __future__ import annotations

import ssl

import pytest

from hbtrio._actors import http, rest, transport
from hbtrio._actors.tls import certificate_error, certificate_failure_text, is_certificate_error
from hbtrio._errors import ConnectionFailed


def _cert_failure() -> ssl.SSLCertVerificationError:
    err = ssl.SSLCertVerificationError(1, "certificate verify failed")
    err.verify_message = "self-signed certificate"
    return err


def _wrapped(inner: BaseException) -> BaseException:
    try:
        try:
            raise inner
        except BaseException as exc:
            raise OSError("outer") from exc
    except OSError as outer:
        return outer


def test_detector_follows_the_chain_and_survives_cycles() -> None:
    inner = _cert_failure()
    outer = _wrapped(inner)
    assert certificate_error(outer) is inner
    assert is_certificate_error(outer)
    a, b = OSError("a"), OSError("b")
    a.__context__, b.__context__ = b, a
    assert certificate_error(a) is None
    assert not is_certificate_error(ValueError("x"))


def test_one_detector_everywhere() -> None:
    assert rest.is_certificate_error is is_certificate_error
    assert not hasattr(transport, "_is_cert_error")
    assert http.certificate_error is certificate_error


def test_message_names_server_reason_and_remedy() -> None:
    text = certificate_failure_text("https://h:8000", _cert_failure())
    assert "https://h:8000" in text
    assert "self-signed certificate" in text
    assert "ca_file" in text


@pytest.mark.parametrize("where", ["wss://h:8000/ws"])
def test_websocket_dial_uses_the_shared_message(where: str) -> None:
    translated = transport.translate_dial_error(_wrapped(_cert_failure()), where)
    assert isinstance(translated, ConnectionFailed)
    assert translated.retryable is False
    assert str(translated).startswith(certificate_failure_text(where, _cert_failure()))
