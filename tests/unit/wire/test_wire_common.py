"""Tests of hbtrio._wire._common and the sans-IO rule of hbtrio._wire."""

from __future__ import annotations

import ast
from decimal import Decimal
from pathlib import Path

import pytest

import hbtrio._wire
from hbtrio import MalformedResponse
from hbtrio._wire import _common

FORBIDDEN = ("trio", "anyio", "trio_websocket", "hbtrio._actors", "hbtrio._client")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against hbtrio._wire
                parts = ["hbtrio", "_wire"][: max(0, 3 - node.level)]
                base = ".".join([*parts, base] if base else parts)
            names.add(base)
    return names


def test_wire_is_sans_io() -> None:
    files = sorted(Path(hbtrio._wire.__file__).parent.glob("*.py"))
    assert len(files) >= 5
    for path in files:
        for name in _imports(path):
            for bad in FORBIDDEN:
                assert name != bad and not name.startswith(bad + "."), (path.name, name)


def test_timestamp_forms() -> None:
    assert _common.timestamp(1.5, "t") == 1.5
    assert _common.timestamp("1700000000.5", "t") == 1700000000.5
    assert _common.timestamp("2024-01-01T00:00:00Z", "t") == 1704067200.0
    assert _common.timestamp("2024-01-01T01:00:00+01:00", "t") == 1704067200.0
    assert _common.timestamp("2024-01-01T00:00:00.5", "t") == 1704067200.5
    assert _common.timestamp(1_700_000_000_000, "t") == 1_700_000_000.0
    assert _common.timestamp(None, "t", default=3.0) == 3.0
    for bad in (None, "nan", "inf", -1, "garbage", 1e30, float("nan"), 10**400):
        with pytest.raises(MalformedResponse):
            _common.timestamp(bad, "t")


def test_decimal_bounds() -> None:
    assert _common.decimal_value(Decimal("1e-56"), "x") == Decimal("1e-56")
    assert _common.decimal_value(Decimal(0), "x") == 0
    assert _common.optional_decimal(None, "x") is None
    for bad in ("NaN", "sNaN", "Infinity", "1e61", "1e-61"):
        with pytest.raises(MalformedResponse):
            _common.decimal_value(Decimal(bad), "x")


def test_excerpt_is_short() -> None:
    assert len(_common.excerpt(b"\xff" * 1000)) <= 200
    assert len(_common.excerpt("x" * 1000)) == 200
    assert _common.excerpt(123) == "123"
    assert _common.malformed("what", b"body").excerpt == "body"
