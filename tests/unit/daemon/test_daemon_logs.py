"""Structured logging: human and JSON formats, redaction of the key."""

from __future__ import annotations

import base64
import io
import json

import pytest

from hbtrio.daemon.logs import secrets_of, setup_logging

KEY = "operator:correct-horse-battery"
TOKEN = base64.b64encode(KEY.encode()).decode()


def test_json_lines_carry_fields_and_hide_the_key() -> None:
    stream = io.StringIO()
    log = setup_logging("json", "info", secrets=secrets_of(KEY), stream=stream, name="t.json")
    log.info("connected to %s", "server", extra={"fields": {"state": "CONNECTED", "n": 3}})
    log.warning("header was Basic %s", TOKEN, extra={"fields": {"echo": f"key={KEY}"}})
    log.debug("not shown")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["msg"] == "connected to server"
    assert first["level"] == "info" and first["state"] == "CONNECTED" and first["n"] == 3
    assert first["ts"].endswith("Z") and first["logger"] == "t.json"
    assert KEY not in stream.getvalue() and TOKEN not in stream.getvalue()
    assert "correct-horse-battery" not in stream.getvalue()
    assert second["msg"] == "header was Basic ***"
    assert second["echo"] == "key=***"


def test_human_lines_and_exception_redaction() -> None:
    stream = io.StringIO()
    log = setup_logging("human", "debug", secrets=secrets_of(KEY), stream=stream, name="t.human")
    try:
        raise RuntimeError(f"bad {KEY}")
    except RuntimeError as exc:
        log.error("failed", extra={"fields": {"kind": "RuntimeError"}}, exc_info=exc)
    text = stream.getvalue()
    assert " ERROR " in text and "failed kind=RuntimeError" in text
    assert "RuntimeError: bad ***" in text
    assert KEY not in text


def test_short_passwords_are_not_redacted_alone() -> None:
    assert secrets_of("admin:admin") == ("admin:admin", base64.b64encode(b"admin:admin").decode())


def test_bad_format_or_level() -> None:
    with pytest.raises(ValueError, match="format"):
        setup_logging("xml")
    with pytest.raises(ValueError, match="level"):
        setup_logging("json", "loud")
