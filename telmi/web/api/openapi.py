"""The OpenAPI 3.1 document, written from the route table and the endpoints' models: an
operation exists because a route does, and its schemas are the models that parse and check
its requests and responses, so the document cannot drift from the server."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from telmi.web.access import access_of, public
from telmi.web.api import spec
from telmi.web.http import json_answer

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "examples": ["not_found"]},
                "message": {"type": "string", "description": "in French, for the user"},
                "field": {"type": "string", "description": "the offending field, when one is"},
            },
        }
    },
}

SELF = {
    "summary": "This document",
    "operationId": "openapi",
    "security": [],
    "responses": {"200": {"description": "OpenAPI 3.1 document"}},
}


def _api_routes(router: web.UrlDispatcher) -> list[web.AbstractRoute]:
    return [
        route
        for route in router.routes()
        if route.resource is not None
        and route.resource.canonical.startswith("/api/")
        and route.method != "HEAD"
    ]


def _schemas(endpoints: list[spec.Endpoint]) -> tuple[dict[Any, Any], dict[str, Any]]:
    wanted: set[tuple[type[BaseModel], JsonSchemaMode]] = set()
    for info in endpoints:
        wanted.update((m, "validation") for m in (info.body, info.query) if m is not None)
        if info.response is not None:
            wanted.add((info.response, "serialization"))
    ordered = sorted(wanted, key=lambda pair: (pair[0].__name__, pair[1]))
    refs, top = models_json_schema(ordered, ref_template="#/components/schemas/{model}")
    return refs, top.get("$defs", {})


def document(router: web.UrlDispatcher | None = None) -> dict[str, Any]:
    if router is None:
        from telmi.web.routes import setup_routes

        app = web.Application()
        setup_routes(app)
        router = app.router
    routes = _api_routes(router)
    endpoints = [e for r in routes if (e := spec.endpoint_of(r.handler)) is not None]
    refs, defs = _schemas(endpoints)
    schemas: dict[str, Any] = {"Error": ERROR, **defs}
    paths: dict[str, Any] = {}
    for route in routes:
        path, method = route.resource.canonical, route.method.lower()  # type: ignore[union-attr]
        info, access = spec.endpoint_of(route.handler), access_of(route.handler)
        if path == "/api/openapi.json":
            op = SELF
        elif info is None:
            raise LookupError(f"{route.method} {path}: an API handler without @endpoint")
        else:
            op = spec.operation(
                info,
                method=route.method,
                path_names=re.findall(r"\{(\w+)\}", path),
                public=bool(access and access.public),
                restricted=bool(access and access.roles is not None),
                refs=refs,
                defs=defs,
            )
            if access and access.public:
                op = op | {"security": []}
        paths.setdefault(path, {})[method] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Telmi API",
            "version": "1",
            "description": (
                "Regional telemedicine: booking, consultations, act statistics. "
                "Authenticate with `Authorization: Bearer <token>` (see `telmi token create`). "
                'Errors are `{"error": {"code", "message", "field"}}`, messages in French.'
            ),
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}, {"sessionCookie": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer"},
                "sessionCookie": {"type": "apiKey", "in": "cookie", "name": "telmi_session"},
            },
        },
    }


@public
async def openapi(request: web.Request) -> web.Response:
    return json_answer(document(request.app.router))
