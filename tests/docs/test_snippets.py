"""Every Python snippet of the documentation is valid Python using real names.

Snippets may use top-level ``await`` / ``async for`` / ``async with`` (they show
calls made inside a Trio program). Every ``hbtrio.NAME`` they mention must exist,
every ``client.METHOD`` must be a public attribute of :class:`hbtrio.Client`, and
keyword arguments passed to ``hbtrio.X(...)``, ``client.M(...)`` and
``engine.M(...)`` must be parameters of the real signatures.
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path
from typing import Any

import pytest

import hbtrio
import hbtrio.aio  # the snippets name hbtrio.aio and hbtrio.sync
import hbtrio.sync

DOCS = Path(__file__).resolve().parents[2] / "docs"
FENCE = re.compile(r"^```python\n(.*?)^```", re.M | re.S)


def _snippets() -> list[tuple[str, str]]:
    found = []
    for page in sorted(DOCS.glob("*.md")):
        for index, match in enumerate(FENCE.finditer(page.read_text(encoding="utf-8"))):
            found.append((f"{page.name}#{index + 1}", match.group(1)))
    return found


SNIPPETS = _snippets()


def test_there_are_snippets() -> None:
    assert len(SNIPPETS) >= 20


OWNERS: dict[str, Any] = {"hbtrio": hbtrio, "client": hbtrio.Client, "engine": hbtrio.EventEngine}


def _check_keywords(where: str, call: ast.Call) -> None:
    func = call.func
    if not (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)):
        return
    owner = OWNERS.get(func.value.id)
    target = getattr(owner, func.attr, None) if owner is not None else None
    if target is None or not callable(target):
        return
    try:
        params = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return
    names = {p.name for p in params}
    for keyword in call.keywords:
        if keyword.arg is not None:
            assert keyword.arg in names, f"{where}: {func.value.id}.{func.attr}({keyword.arg}=)"


@pytest.mark.parametrize(("where", "code"), SNIPPETS, ids=[w for w, _ in SNIPPETS])
def test_snippet_compiles_and_names_exist(where: str, code: str) -> None:
    tree = compile(code, where, "exec", ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    assert isinstance(tree, ast.Module)
    client_attrs = {name for name in dir(hbtrio.Client) if not name.startswith("_")}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            _check_keywords(where, node)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id == "hbtrio":
                assert hasattr(hbtrio, node.attr), f"{where}: hbtrio.{node.attr} does not exist"
            if node.value.id == "client" and node.attr not in ("config", "engine", "rejections"):
                assert node.attr in client_attrs, f"{where}: client.{node.attr} does not exist"
