"""The OpenAPI 3.1 document: the fragments of every API module, merged (a test checks that
it describes exactly the /api/ routes the router serves)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from telmi.web.access import public
from telmi.web.api import (
    acts,
    availability,
    bookings,
    consultations,
    directory,
    expertise,
    precall,
    stats,
    tokens,
)

MODULES = (
    directory,
    tokens,
    availability,
    bookings,
    consultations,
    precall,
    expertise,
    acts,
    stats,
)

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "examples": ["not_found"]},
                "message": {"type": "string"},
                "field": {"type": "string", "description": "the offending field, when one is"},
            },
        }
    },
}

SELF = {
    "/api/openapi.json": {
        "get": {
            "summary": "This document",
            "operationId": "openapi",
            "security": [],
            "responses": {"200": {"description": "OpenAPI 3.1 document"}},
        }
    }
}


def document() -> dict[str, Any]:
    paths: dict[str, Any] = dict(SELF)
    schemas: dict[str, Any] = {"Error": ERROR}
    for module in MODULES:
        for route, item in module.OPENAPI_PATHS.items():
            paths.setdefault(route, {}).update(item)
        schemas.update(module.OPENAPI_SCHEMAS)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Telmi API",
            "version": "1",
            "description": (
                "Regional telemedicine: booking, consultations, act statistics. "
                "Authenticate with `Authorization: Bearer <token>` (see `telmi token create`). "
                'Errors are `{"error": {"code", "message"}}`.'
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
    return web.json_response(document())
