"""Small builders for the OpenAPI fragments each API module keeps next to its handlers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ref("Error")}}}


def ok(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def items(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["items"],
        "properties": {"items": {"type": "array", "items": ref(name)}, **extra},
    }


def query(name: str, schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    param = {"name": name, "in": "query", "schema": schema}
    return param | ({"description": description} if description else {})


ID_SCHEMA = {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}


def path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": ID_SCHEMA}


CSRF_HEADER = {
    "name": "X-CSRF-Token",
    "in": "header",
    "required": False,
    "description": "Required with the session cookie (the page's csrf-token meta); not with a bearer token",
    "schema": {"type": "string"},
}

UNAUTHENTICATED = error("No valid session or token")
FORBIDDEN = error("The caller's role or facility may not do this")


def operation(
    summary: str,
    operation_id: str,
    responses: dict[str, Any],
    *,
    params: Iterable[dict[str, Any]] = (),
    body: dict[str, Any] | None = None,
    unsafe: bool = False,
) -> dict[str, Any]:
    """One operation; every one may answer 401, unsafe ones also 403 for a missing CSRF token."""
    op: dict[str, Any] = {
        "summary": summary,
        "operationId": operation_id,
        "responses": {"401": UNAUTHENTICATED, **responses},
    }
    parameters = list(params) + ([CSRF_HEADER] if unsafe else [])
    if parameters:
        op["parameters"] = parameters
    if any(p["in"] == "path" for p in parameters):  # ids no row has, or the caller may not see
        op["responses"].setdefault("404", error("No such object, or not the caller's"))
    if any(p["in"] in ("path", "query") for p in parameters) or body is not None:
        op["responses"].setdefault("422", error("Invalid input (the field is named)"))
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
        op["responses"].setdefault("400", error("Malformed JSON"))
        op["responses"].setdefault("413", error("Body too large"))
        op["responses"].setdefault("415", error("Body is not JSON"))
    if unsafe:
        op["responses"].setdefault("403", error("Not allowed, or missing CSRF token"))
    return op
