"""The API reference covers every public name, with complete docstrings.

Every name of ``hbtrio.__all__`` (but ``__version__``) must have a ``::: hbtrio.NAME``
block in ``docs/reference.md``, and its Google-style docstring (parsed by griffe,
as mkdocstrings renders it) must document:

* callables: every parameter of the signature under Args; Returns (or Yields)
  when the return type is not ``None``; Raises when the body raises;
* classes: every constructor parameter under Args or Attributes (a class that
  inherits its ``__init__`` may rely on the class that defines it);
* the public methods of ``Client`` and ``EventEngine``: Args, Returns/Yields and
  Raises as for callables (every ``Client`` method doing I/O needs Raises).
"""

from __future__ import annotations

import ast
import enum
import inspect
import logging
import re
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from griffe import Docstring, DocstringSectionKind

import hbtrio

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "reference.md"
PUBLIC = sorted(name for name in hbtrio.__all__ if name != "__version__")
# Classes whose public methods are checked one by one, and which of them need Raises always.
METHOD_CHECKED = {"Client": True, "EventEngine": False}

logging.getLogger("griffe").setLevel(logging.ERROR)


def _sections(obj: object) -> dict[DocstringSectionKind, list[Any]]:
    doc = inspect.getdoc(obj) if not isinstance(obj, str) else obj
    sections: dict[DocstringSectionKind, list[Any]] = {}
    if not doc:
        return sections
    parsed = Docstring(doc, parser="google").parse(
        warn_unknown_params=False, warn_missing_types=False
    )
    for section in parsed:
        values = section.value if isinstance(section.value, list) else [section.value]
        sections.setdefault(section.kind, []).extend(values)
    return sections


def _names(
    sections: dict[DocstringSectionKind, list[Any]], *kinds: DocstringSectionKind
) -> set[str]:
    return {
        item.name.lstrip("*")
        for kind in kinds
        for item in sections.get(kind, [])
        if getattr(item, "name", None)
    }


def _own_docstring(obj: object) -> str:
    """The object's own docstring: ``inspect.getdoc`` would inherit a base class's."""
    doc = obj.__doc__ if isinstance(obj.__doc__, str) else None
    return inspect.cleandoc(doc) if doc else ""


def _raises(func: Callable[..., Any]) -> bool:
    """Whether the function's own body contains a ``raise`` statement."""
    try:
        source = textwrap.dedent(inspect.getsource(func))
    except (OSError, TypeError):
        return False
    tree = ast.parse(source)
    return any(isinstance(node, ast.Raise) for node in ast.walk(tree))


def _returns_value(func: Callable[..., Any]) -> bool:
    try:
        annotation = inspect.signature(func).return_annotation
    except (TypeError, ValueError):
        return False
    if annotation is inspect.Signature.empty:
        return False
    return annotation not in (None, "None", "NoReturn", "Never")


def _parameters(func: Callable[..., Any]) -> list[str]:
    params = inspect.signature(func).parameters.values()
    return [p.name for p in params if p.name not in ("self", "cls", "task_status")]


def check_callable(
    label: str, func: Callable[..., Any], *, always_raises: bool = False
) -> list[str]:
    """Problems of one function's docstring (empty: complete)."""
    problems: list[str] = []
    doc = inspect.getdoc(func)
    if not doc:
        return [f"{label}: no docstring"]
    sections = _sections(doc)
    documented = _names(sections, DocstringSectionKind.parameters)
    missing = [p for p in _parameters(func) if p not in documented]
    if missing:
        problems.append(f"{label}: parameters not under Args: {', '.join(missing)}")
    if _returns_value(func) and not (
        DocstringSectionKind.returns in sections or DocstringSectionKind.yields in sections
    ):
        problems.append(f"{label}: no Returns/Yields section")
    if (always_raises or _raises(func)) and DocstringSectionKind.raises not in sections:
        problems.append(f"{label}: no Raises section")
    return problems


def check_class(label: str, cls: type) -> list[str]:
    """Problems of one class's docstring (empty: complete)."""
    if not _own_docstring(cls):
        return [f"{label}: no docstring"]
    if issubclass(cls, enum.Enum):
        return []
    try:
        params = _parameters(cls)
    except (TypeError, ValueError):
        params = []
    documented: set[str] = set()
    # Inherited fields and constructors are documented by the class that defines them.
    for klass in cls.__mro__:
        if klass.__module__.split(".")[0] in ("builtins", "msgspec", "enum", "typing", "abc"):
            continue
        sections = _sections(_own_docstring(klass))
        documented |= _names(
            sections, DocstringSectionKind.parameters, DocstringSectionKind.attributes
        )
    missing = [p for p in params if p not in documented]
    if missing:
        return [f"{label}: constructor parameters not under Args/Attributes: {', '.join(missing)}"]
    init = vars(cls).get("__init__")
    if init is not None and not issubclass(cls, BaseException) and _raises(init):
        documented_raises = _sections(_own_docstring(cls)).get(DocstringSectionKind.raises)
        documented_raises = documented_raises or _sections(init.__doc__ or "").get(
            DocstringSectionKind.raises
        )
        if not documented_raises:
            return [f"{label}: constructor raises but no Raises section"]
    return []


def _does_io(name: str, method: Callable[..., Any]) -> bool:
    """Whether a method does I/O: a coroutine, or an async context manager/iterator."""
    if name.startswith("__"):
        return False
    target = getattr(method, "__wrapped__", method)
    return (
        inspect.iscoroutinefunction(target)
        or inspect.isasyncgenfunction(target)
        or "AsyncIterator" in str(inspect.signature(method).return_annotation)
    )


def _public_methods(cls: type) -> Iterator[tuple[str, Callable[..., Any]]]:
    for name, member in vars(cls).items():
        if name.startswith("_") and name not in ("__aenter__", "__aexit__"):
            continue
        if isinstance(member, property | staticmethod | classmethod):
            continue
        if callable(member):
            yield name, member


def test_every_public_name_is_in_the_reference() -> None:
    text = REFERENCE.read_text(encoding="utf-8")
    blocks = set(re.findall(r"^:::\s+hbtrio\.([A-Za-z_][A-Za-z0-9_]*)\s*$", text, re.M))
    missing = [name for name in PUBLIC if name not in blocks]
    assert not missing, f"missing from docs/reference.md: {missing}"


@pytest.mark.parametrize("name", PUBLIC)
def test_public_name_is_documented(name: str) -> None:
    obj = getattr(hbtrio, name)
    if inspect.isclass(obj):
        problems = check_class(name, obj)
        always = METHOD_CHECKED.get(name)
        if always is not None:
            for method_name, method in _public_methods(obj):
                problems += check_callable(
                    f"{name}.{method_name}",
                    method,
                    always_raises=always and _does_io(method_name, method),
                )
            for prop_name, member in vars(obj).items():
                public = isinstance(member, property) and not prop_name.startswith("_")
                if public and not inspect.getdoc(member):
                    problems.append(f"{name}.{prop_name}: property without docstring")
    else:
        problems = check_callable(name, obj, always_raises=name == "open_client")
    assert not problems, "\n".join(problems)


# -- the checker itself catches incomplete docstrings -------------------------------------


def _bad(x: int, y: int) -> int:
    """Only x.

    Args:
        x: The x.
    """
    if x < 0:
        raise ValueError(x)
    return x + y


def _good(x: int, *rest: int) -> int:
    """Sum.

    Args:
        x: The x.
        *rest: More.

    Returns:
        The sum.

    Raises:
        ValueError: ``x`` is negative.
    """
    if x < 0:
        raise ValueError(x)
    return x + sum(rest)


class _Undocumented:
    """A class.

    Args:
        a: Documented.
    """

    def __init__(self, a: int, b: int) -> None:
        self.a, self.b = a, b


def test_checker_flags_missing_parameters_returns_and_raises() -> None:
    problems = check_callable("_bad", _bad)
    assert any("parameters not under Args: y" in p for p in problems)
    assert any("no Returns" in p for p in problems)
    assert any("no Raises" in p for p in problems)
    assert check_callable("_good", _good) == []
    assert check_class("_Undocumented", _Undocumented) == [
        "_Undocumented: constructor parameters not under Args/Attributes: b"
    ]


_SPHINX_ROLE = re.compile(r":[a-z]+:`")


def _docstrings(obj: object) -> Iterator[tuple[str, str]]:
    yield getattr(obj, "__qualname__", repr(obj)), inspect.getdoc(obj) or ""
    if inspect.isclass(obj):
        for name, member in vars(obj).items():
            if not name.startswith("_") or name == "__init__":
                target = member.fget if isinstance(member, property) else member
                if callable(target) or isinstance(member, property):
                    yield f"{obj.__qualname__}.{name}", inspect.getdoc(target) or ""


@pytest.mark.parametrize("name", PUBLIC)
def test_reference_docstrings_use_markdown_not_sphinx_roles(name: str) -> None:
    """mkdocstrings renders Markdown: a Sphinx role would show as raw text."""
    for where, doc in _docstrings(getattr(hbtrio, name)):
        assert not _SPHINX_ROLE.search(doc), f"{where}: Sphinx role in docstring"


# -- the asyncio and blocking front doors ---------------------------------------------------

import hbtrio.aio  # noqa: E402
import hbtrio.sync  # noqa: E402

ADAPTER_NAMES = [(m.__name__, n) for m in (hbtrio.aio, hbtrio.sync) for n in m.__all__]


@pytest.mark.parametrize(("module", "name"), ADAPTER_NAMES)
def test_adapter_names_are_in_the_reference_and_documented(module: str, name: str) -> None:
    text = REFERENCE.read_text(encoding="utf-8")
    assert re.search(rf"^:::\s+{re.escape(module)}\.{name}\s*$", text, re.M), f"{module}.{name}"
    obj = getattr(hbtrio.aio if module == "hbtrio.aio" else hbtrio.sync, name)
    if inspect.isclass(obj):
        problems = check_class(name, obj)
        for method_name, method in _public_methods(obj):
            problems += check_callable(f"{name}.{method_name}", method)
    else:
        problems = check_callable(name, obj, always_raises=True)
    assert not problems, "\n".join(problems)
