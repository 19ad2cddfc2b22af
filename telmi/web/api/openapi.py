"""The OpenAPI 3.1 description of every /api/ route (a test checks none is missing)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from telmi.web.access import public


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": _ref("Error")}},
    }


def _ok(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _items(name: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["items"],
        "properties": {"items": {"type": "array", "items": _ref(name)}},
    }


UNAUTHENTICATED = _error("Pas de session ni de jeton valide")

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "examples": ["not_found"]},
                    "message": {"type": "string"},
                },
            }
        },
    },
    "User": {
        "type": "object",
        "required": ["id", "email", "full_name", "role"],
        "properties": {
            "id": {"type": "integer"},
            "email": {"type": "string", "format": "email"},
            "full_name": {"type": "string"},
            "role": {"enum": ["staff", "specialist", "regional", "admin"]},
            "facility_id": {"type": ["integer", "null"]},
            "specialty_id": {"type": ["integer", "null"]},
            "rpps": {"type": ["string", "null"], "pattern": "^[0-9]{11}$"},
        },
    },
    "Facility": {
        "type": "object",
        "required": ["id", "finess", "name", "category", "departement", "commune"],
        "properties": {
            "id": {"type": "integer"},
            "finess": {"type": "string", "pattern": "^[0-9]{2}[0-9AB][0-9]{6}$"},
            "name": {"type": "string"},
            "category": {
                "enum": ["health_centre", "nursing_home", "disability_facility", "hospital"]
            },
            "finess_category_code": {"type": "string"},
            "departement": {"type": "string"},
            "commune": {"type": "string"},
            "postcode": {"type": "string"},
        },
    },
    "ApiToken": {
        "type": "object",
        "required": ["id", "name", "prefix", "created_at", "revoked"],
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "prefix": {"type": "string", "description": "first characters, to recognise it"},
            "created_at": {"type": "string", "format": "date-time"},
            "revoked": {"type": "boolean"},
        },
    },
    "Specialty": {
        "type": "object",
        "required": ["id", "code", "name"],
        "properties": {
            "id": {"type": "integer"},
            "code": {"type": "string"},
            "name": {"type": "string"},
        },
    },
}

PATHS: dict[str, Any] = {
    "/api/openapi.json": {
        "get": {
            "summary": "This document",
            "operationId": "openapi",
            "security": [],
            "responses": {"200": {"description": "OpenAPI 3.1 document"}},
        }
    },
    "/api/me": {
        "get": {
            "summary": "The signed-in user",
            "operationId": "me",
            "responses": {"200": _ok("The user", _ref("User")), "401": UNAUTHENTICATED},
        }
    },
    "/api/facilities": {
        "get": {
            "summary": "Facilities visible to the caller (staff: their own only)",
            "operationId": "listFacilities",
            "parameters": [
                {"name": "departement", "in": "query", "schema": {"type": "string"}},
                {
                    "name": "category",
                    "in": "query",
                    "schema": {
                        "enum": ["health_centre", "nursing_home", "disability_facility", "hospital"]
                    },
                },
            ],
            "responses": {
                "200": _ok("Facilities", _items("Facility")),
                "401": UNAUTHENTICATED,
                "422": _error("Unknown category"),
            },
        }
    },
    "/api/specialties": {
        "get": {
            "summary": "Medical specialties offered on the platform",
            "operationId": "listSpecialties",
            "responses": {"200": _ok("Specialties", _items("Specialty")), "401": UNAUTHENTICATED},
        }
    },
}


CSRF_HEADER = {
    "name": "X-CSRF-Token",
    "in": "header",
    "required": False,
    "description": "Required with the session cookie (value of the page's csrf-token meta); not with a bearer token",
    "schema": {"type": "string"},
}

PATHS["/api/tokens"] = {
    "get": {
        "summary": "The caller's personal API tokens",
        "operationId": "listTokens",
        "responses": {"200": _ok("Tokens", _items("ApiToken")), "401": UNAUTHENTICATED},
    },
    "post": {
        "summary": "Create a personal API token; its value is shown once",
        "operationId": "createToken",
        "parameters": [CSRF_HEADER],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {"name": {"type": "string", "maxLength": 100}},
                    }
                }
            },
        },
        "responses": {
            "201": _ok(
                "The token, with its value",
                {
                    "allOf": [
                        _ref("ApiToken"),
                        {"type": "object", "properties": {"token": {"type": "string"}}},
                    ]
                },
            ),
            "400": _error("Malformed JSON"),
            "401": UNAUTHENTICATED,
            "403": _error("Missing or invalid CSRF token"),
            "413": _error("Body too large"),
            "415": _error("Body is not JSON"),
            "422": _error("Invalid name"),
        },
    },
}
PATHS["/api/tokens/{token_id}"] = {
    "delete": {
        "summary": "Revoke one of the caller's tokens",
        "operationId": "revokeToken",
        "parameters": [
            {"name": "token_id", "in": "path", "required": True, "schema": {"type": "integer"}},
            CSRF_HEADER,
        ],
        "responses": {
            "200": _ok("The revoked token", _ref("ApiToken")),
            "401": UNAUTHENTICATED,
            "403": _error("Missing or invalid CSRF token"),
            "404": _error("No such token of the caller"),
        },
    }
}


def document() -> dict[str, Any]:
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
        "paths": PATHS,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer"},
                "sessionCookie": {"type": "apiKey", "in": "cookie", "name": "telmi_session"},
            },
        },
    }


@public
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(document())
