"""Generate ``hbtrio/_sync_methods.py``: the blocking client's typed methods.

``hbtrio.sync.SyncClient`` has one blocking method per public method of
``hbtrio.Client``, with the same parameters, defaults and docstring; this module
writes them from ``Client`` itself, so the blocking client follows the Trio
client as it grows. Run it after changing ``Client``'s public methods::

    python -m hbtrio._sync_gen

``tests/unit/test_sync_generated.py`` fails while the file is stale.

Each coroutine method ``m`` becomes ``def m(...) -> R: return self._portal.call(
self._client.m, ...)`` (type-checked against ``Client.m``); a method returning an
async context manager of an async iterator becomes one returning a context manager
of an iterator (``self._portal.stream``); one returning an async iterator, one
returning an iterator (``self._portal.iterate``).
"""

from __future__ import annotations

import enum
import inspect
import json
import keyword
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["TARGET", "main", "render"]

TARGET = Path(__file__).with_name("_sync_methods.py")
"""The generated module."""

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_BUILTINS = {"None", "int", "float", "str", "bool", "list", "dict", "tuple", "set", "type"}
_BUILTINS |= {"bytes", "object", "frozenset"}
_WIDTH = 100  # the project's line length (ruff format's layout is reproduced)


def _kind(fn: Callable[..., Any], returns: str) -> str | None:
    if inspect.iscoroutinefunction(fn):
        return "call"
    if returns.startswith("AbstractAsyncContextManager[AsyncIterator["):
        return "stream"
    if returns.startswith("AsyncIterator["):
        return "iterate"
    return None


def _sync_text(text: str) -> str:
    text = text.replace("AbstractAsyncContextManager[", "AbstractContextManager[")
    text = text.replace("AsyncIterator[", "Iterator[")
    return text


def _sync_doc(doc: str) -> str:
    doc = doc.replace("an async context manager", "a context manager")
    doc = doc.replace("An async context manager", "A context manager")
    doc = doc.replace("async iterator", "iterator")
    return doc


def _exporter(name: str, obj: object, home: str) -> str:
    """The hbtrio module whose ``__all__`` exports ``obj`` as ``name`` (else ``home``)."""
    for module_name, module in sorted(sys.modules.items()):
        if (
            module_name.startswith("hbtrio")
            and name in getattr(module, "__all__", ())
            and getattr(module, name, None) is obj
        ):
            return module_name
    return home


class _Imports:
    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def need(self, name: str, module: str) -> None:
        known = self.names.setdefault(name, module)
        if known != module:
            raise RuntimeError(f"{name} comes from both {known} and {module}")

    def annotation(self, text: str, namespace: dict[str, Any], home: str) -> None:
        for ident in _IDENT.findall(text):
            head = ident.split(".")[0]
            if head in _BUILTINS or keyword.iskeyword(head):
                continue
            if head in ("Iterator", "AbstractContextManager"):
                self.need(head, "collections.abc" if head == "Iterator" else "contextlib")
                continue
            if head not in namespace:
                raise RuntimeError(f"cannot resolve {head!r} (in {text!r})")
            obj = namespace[head]
            module = getattr(obj, "__module__", None)
            if isinstance(obj, type) and module and getattr(obj, "__name__", "") == head:
                self.need(head, module)
            else:  # a type alias: from the module exporting it
                self.need(head, _exporter(head, obj, home))

    def render(self) -> list[str]:
        by_module: dict[str, list[str]] = {}
        for name, module in self.names.items():
            by_module.setdefault(module, []).append(name)
        outside = [m for m in sorted(by_module) if not m.startswith("hbtrio")]
        ours = [m for m in sorted(by_module) if m.startswith("hbtrio")]
        lines: list[str] = []
        for group in (outside, ours):
            if lines and group:
                lines.append("")
            for module in group:
                names = sorted(by_module[module])
                line = f"from {module} import {', '.join(names)}"
                if len(line) <= _WIDTH:
                    lines.append(line)
                else:
                    lines += [f"from {module} import (", *(f"    {n}," for n in names), ")"]
        return lines


def _default(value: Any, imports: _Imports) -> str:
    if isinstance(value, enum.Enum):
        cls = type(value)
        imports.need(cls.__name__, cls.__module__)
        return f"{cls.__name__}.{value.name}"
    if isinstance(value, str):
        return json.dumps(value)
    if value is None or isinstance(value, bool | int | float):
        return repr(value)
    raise RuntimeError(f"cannot render default {value!r}")


def _method(name: str, fn: Callable[..., Any], imports: _Imports) -> list[str]:
    signature = inspect.signature(fn)
    returns = signature.return_annotation
    assert isinstance(returns, str), f"{name}: annotations must be strings"
    kind = _kind(fn, returns)
    if kind is None:
        return []
    namespace = fn.__globals__
    home = fn.__module__
    params: list[str] = ["self"]
    args: list[str] = []
    star_done = False
    for param in list(signature.parameters.values())[1:]:
        annotation = param.annotation
        assert isinstance(annotation, str), f"{name}.{param.name}: annotation missing"
        imports.annotation(annotation, namespace, home)
        text = f"{param.name}: {annotation}"
        if param.default is not inspect.Parameter.empty:
            text += f" = {_default(param.default, imports)}"
        if param.kind is param.VAR_POSITIONAL:
            params.append(f"*{text}")
            args.append(f"*{param.name}")
            star_done = True
        elif param.kind is param.VAR_KEYWORD:
            params.append(f"**{text}")
            args.append(f"**{param.name}")
        elif param.kind is param.KEYWORD_ONLY:
            if not star_done:
                params.append("*")
                star_done = True
            params.append(text)
            args.append(f"{param.name}={param.name}")
        elif param.kind is param.POSITIONAL_ONLY:
            params.append(text)
            args.append(param.name)
        else:
            params.append(text)
            args.append(param.name)
    if any(p.kind is p.POSITIONAL_ONLY for p in signature.parameters.values()):
        last = max(
            i for i, p in enumerate(signature.parameters.values()) if p.kind is p.POSITIONAL_ONLY
        )
        params.insert(last + 1, "/")
    sync_returns = _sync_text(returns)
    imports.annotation(sync_returns, namespace, home)
    doc = _sync_doc(inspect.getdoc(fn) or "")
    portal = {"call": "call", "stream": "stream", "iterate": "iterate"}[kind]
    lines = [f"    def {name}(", *(f"        {p}," for p in params), f"    ) -> {sync_returns}:"]
    lines.append('        """' + doc.replace("\\", "\\\\").replace("\n", "\n        ").rstrip())
    lines.append('        """')
    lines += _call(f"self._portal.{portal}", [f"self._client.{name}", *args])
    return [_fix_blank(line) for text in lines for line in text.split("\n")]


def _call(function: str, args: list[str]) -> list[str]:
    """``return function(args)`` laid out as ruff format does at width 100."""
    one = f"        return {function}({', '.join(args)})"
    if len(one) <= _WIDTH:
        return [one]
    inner = f"            {', '.join(args)}"
    if len(inner) <= _WIDTH:
        return [f"        return {function}(", inner, "        )"]
    return [f"        return {function}(", *(f"            {a}," for a in args), "        )"]


def _fix_blank(line: str) -> str:
    return "" if not line.strip() else line


def render() -> str:
    """The generated module's text for the installed ``hbtrio.Client``.

    Returns:
        The source of ``hbtrio/_sync_methods.py``.
    """
    from ._client import Client

    imports = _Imports()
    imports.need("Client", "hbtrio._client")
    imports.need("SyncPortal", "hbtrio._sync_portal")
    body: list[str] = []
    for name, member in inspect.getmembers(Client):
        if name.startswith("_") or not inspect.isfunction(member):
            continue
        lines = _method(name, member, imports)
        if lines:
            body.extend(["", *lines])
    header = [
        '"""The blocking client\'s methods, generated from ``hbtrio.Client``.',
        "",
        "Do not edit: run ``python -m hbtrio._sync_gen`` (a test fails while it is stale).",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        *imports.render(),
        "",
        '__all__ = ["SyncClientMethods"]',
        "",
        "",
        "class SyncClientMethods:",
        '    """Every public method of ``hbtrio.Client``, blocking (see ``hbtrio.sync``)."""',
        "",
        "    _client: Client",
        "    _portal: SyncPortal",
    ]
    return "\n".join(header + body) + "\n"


def main() -> int:
    """Write the generated module.

    Returns:
        Exit code.
    """
    TARGET.write_text(render(), encoding="utf-8")
    sys.stdout.write(f"wrote {TARGET}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
