"""Validate request and response bodies against the real server's OpenAPI schema.

A shared test helper: the schema is the Hummingbot API's own ``openapi.json``
(OpenAPI 3.1, i.e. JSON Schema Draft 2020-12). It is looked up, in order, at the
path named by the ``HBTRIO_OPENAPI`` environment variable, at
``../shared/reference/hummingbot-api-openapi.json`` next to the repository root,
and at the copy vendored in ``tests/data``.

Usage::

    from tests.openapi_schema import validate_request, validate_response

    validate_request("POST", "/trading/orders", {"account_name": "master_account", ...})
    validate_response("POST", "/trading/orders", 201, answer_json)

``path_template`` is the OpenAPI path with its ``{placeholders}``, e.g.
``/connectors/{connector_name}/trading-rules``. Bodies are decoded JSON values
(``dict``/``list``/...); ``bytes`` and ``str`` are decoded as JSON first.
Every mismatch raises :class:`AssertionError` with a readable message.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

__all__ = [
    "SCHEMA_URI",
    "load_openapi",
    "operation",
    "openapi_path",
    "request_schema",
    "response_schema",
    "validate_request",
    "validate_response",
]

SCHEMA_URI = "urn:hummingbot-api:openapi"
_FILENAME = "hummingbot-api-openapi.json"
_REPO = Path(__file__).resolve().parents[1]


def openapi_path() -> Path:
    """Locate the OpenAPI document.

    Returns:
        The path of the first existing candidate.

    Raises:
        AssertionError: No candidate exists.
    """
    candidates: list[Path] = []
    env = os.environ.get("HBTRIO_OPENAPI")
    if env:
        candidates.append(Path(env))
    candidates.append(_REPO.parent / "shared" / "reference" / _FILENAME)
    candidates.append(_REPO / "tests" / "data" / _FILENAME)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise AssertionError(
        "OpenAPI schema not found; tried "
        + ", ".join(str(c) for c in candidates)
        + " (set HBTRIO_OPENAPI to its path)"
    )


@functools.cache
def load_openapi() -> dict[str, Any]:
    """Load (once) and return the OpenAPI document."""
    with openapi_path().open("rb") as f:
        doc: dict[str, Any] = json.load(f)
    return doc


@functools.cache
def _registry() -> Registry[Any]:
    resource = Resource(contents=load_openapi(), specification=DRAFT202012)
    return Registry().with_resource(SCHEMA_URI, resource)


def _pointer_escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def operation(method: str, path_template: str) -> dict[str, Any]:
    """Return the OpenAPI operation object of ``method path_template``.

    Args:
        method: HTTP method, any case.
        path_template: OpenAPI path, e.g. ``/trading/orders``.

    Returns:
        The operation object.

    Raises:
        AssertionError: The schema has no such path or method.
    """
    paths = load_openapi()["paths"]
    if path_template not in paths:
        close = [p for p in paths if p.split("/")[1:2] == path_template.split("/")[1:2]]
        raise AssertionError(
            f"OpenAPI schema has no path {path_template!r}; similar paths: {close[:10]}"
        )
    ops = paths[path_template]
    if method.lower() not in ops:
        raise AssertionError(
            f"OpenAPI path {path_template!r} has no {method.upper()} (has {sorted(ops)})"
        )
    op: dict[str, Any] = ops[method.lower()]
    return op


def _json_pointer(*tokens: str) -> str:
    return "#/" + "/".join(_pointer_escape(t) for t in tokens)


def request_schema(method: str, path_template: str) -> dict[str, Any] | None:
    """Return a ``$ref`` schema for the JSON request body, or ``None`` if it has none.

    Args:
        method: HTTP method.
        path_template: OpenAPI path.

    Returns:
        ``{"$ref": ...}`` into the document, or ``None`` when no JSON body is declared.
    """
    op = operation(method, path_template)
    content = (op.get("requestBody") or {}).get("content") or {}
    if "application/json" not in content:
        return None
    ptr = _json_pointer(
        "paths",
        path_template,
        method.lower(),
        "requestBody",
        "content",
        "application/json",
        "schema",
    )
    return {"$ref": SCHEMA_URI + ptr}


def response_schema(method: str, path_template: str, status: int) -> dict[str, Any] | None:
    """Return a ``$ref`` schema for the JSON response of ``status``, or ``None``.

    Args:
        method: HTTP method.
        path_template: OpenAPI path.
        status: HTTP status code.

    Returns:
        ``{"$ref": ...}`` into the document, or ``None`` when that status (or a
        ``default``) declares no JSON body.
    """
    responses = operation(method, path_template).get("responses") or {}
    key = str(status) if str(status) in responses else "default"
    content = (responses.get(key) or {}).get("content") or {}
    if "application/json" not in content:
        return None
    ptr = _json_pointer(
        "paths",
        path_template,
        method.lower(),
        "responses",
        key,
        "content",
        "application/json",
        "schema",
    )
    return {"$ref": SCHEMA_URI + ptr}


def _as_json(body: object, what: str) -> object:
    if isinstance(body, bytes | bytearray | memoryview | str):
        try:
            return json.loads(bytes(body) if not isinstance(body, str) else body)
        except ValueError as exc:
            raise AssertionError(f"{what} is not valid JSON: {exc}; body={body!r:.200}") from None
    return body


def _check(schema: dict[str, Any], instance: object, what: str) -> None:
    validator = jsonschema.Draft202012Validator(schema, registry=_registry())
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for err in errors[:10]:
            where = "/".join(str(p) for p in err.absolute_path) or "<root>"
            lines.append(f"  at {where}: {err.message}")
        more = f"\n  ... and {len(errors) - 10} more" if len(errors) > 10 else ""
        raise AssertionError(
            f"{what} does not match the OpenAPI schema:\n"
            + "\n".join(lines)
            + more
            + f"\n  instance: {json.dumps(instance, default=str)[:500]}"
        )


def validate_request(
    method: str, path_template: str, body: object, *, allow_missing: bool = False
) -> None:
    """Assert that ``body`` is a valid request body of ``method path_template``.

    Args:
        method: HTTP method.
        path_template: OpenAPI path with placeholders.
        body: Decoded JSON (or raw ``bytes``/``str`` JSON). ``None`` means "no body".
        allow_missing: Accept an operation that declares no JSON body (then any
            ``body`` passes).

    Raises:
        AssertionError: The operation is unknown, declares no body (unless
            ``allow_missing``) while one was given, requires one while none was
            given, or the body does not validate.
    """
    what = f"request body of {method.upper()} {path_template}"
    schema = request_schema(method, path_template)
    if schema is None:
        if body is None or allow_missing:
            return
        raise AssertionError(f"{what}: the schema declares no JSON request body, got {body!r:.200}")
    if body is None:
        required = bool(operation(method, path_template)["requestBody"].get("required"))
        if required:
            raise AssertionError(f"{what}: a body is required, none was given")
        return
    _check(schema, _as_json(body, what), what)


def validate_response(
    method: str, path_template: str, status: int, body: object, *, allow_missing: bool = False
) -> None:
    """Assert that ``body`` is a valid ``status`` response of ``method path_template``.

    Args:
        method: HTTP method.
        path_template: OpenAPI path with placeholders.
        status: HTTP status code of the response.
        body: Decoded JSON (or raw ``bytes``/``str`` JSON).
        allow_missing: Accept a status the schema does not document (then any
            ``body`` passes).

    Raises:
        AssertionError: The operation is unknown, the status is undocumented
            (unless ``allow_missing``), or the body does not validate.
    """
    what = f"{status} response of {method.upper()} {path_template}"
    schema = response_schema(method, path_template, status)
    if schema is None:
        if allow_missing:
            return
        documented = sorted((operation(method, path_template).get("responses") or {}).keys())
        raise AssertionError(
            f"{what}: no JSON schema for status {status} (documented: {documented}); "
            "pass allow_missing=True to accept"
        )
    _check(schema, _as_json(body, what), what)
