"""JSON: a signed-in user's personal API tokens (create, list, revoke)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from telmi import accounts
from telmi.errors import ValidationError
from telmi.keys import DB
from telmi.models import ApiToken
from telmi.web.access import authenticated, current_user, request_context
from telmi.web.api import spec
from telmi.web.http import path_id, read_json


def token_json(token: ApiToken) -> dict[str, Any]:
    return {
        "id": token.id,
        "name": token.name,
        "prefix": token.prefix,
        "created_at": token.created_at.isoformat(),
        "revoked": token.revoked_at is not None,
    }


@authenticated
async def list_tokens(request: web.Request) -> web.Response:
    async with request.app[DB].read() as session:
        tokens = await accounts.list_tokens(session, current_user(request))
    return web.json_response({"items": [token_json(t) for t in tokens]})


@authenticated
async def create_token(request: web.Request) -> web.Response:
    body = await read_json(request)
    name = body.get("name", "")
    if not isinstance(name, str) or len(name) > 100:
        raise ValidationError(
            "« name » doit être un texte de 100 caractères au plus.", field="name"
        )
    async with request.app[DB].write() as session:
        token, raw = await accounts.create_token(
            session, current_user(request), name=name, now=request_context(request).now
        )
    return web.json_response({**token_json(token), "token": raw}, status=201)


@authenticated
async def revoke_token(request: web.Request) -> web.Response:
    token_id = path_id(request, "token_id")
    async with request.app[DB].write() as session:
        token = await accounts.revoke_token(
            session, token_id, actor=current_user(request), now=request_context(request).now
        )
    return web.json_response(token_json(token))


OPENAPI_SCHEMAS: dict[str, Any] = {
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
    }
}

OPENAPI_PATHS: dict[str, Any] = {
    "/api/tokens": {
        "get": spec.fragment(
            "The caller's personal API tokens",
            "listTokens",
            {"200": spec.ok("Tokens", spec.items("ApiToken"))},
        ),
        "post": spec.fragment(
            "Create a personal API token; its value is shown once",
            "createToken",
            {
                "201": spec.ok(
                    "The token, with its value",
                    {
                        "allOf": [
                            spec.ref("ApiToken"),
                            {"type": "object", "properties": {"token": {"type": "string"}}},
                        ]
                    },
                ),
                "422": spec.error("Invalid name"),
            },
            body={"type": "object", "properties": {"name": {"type": "string", "maxLength": 100}}},
            unsafe=True,
        ),
    },
    "/api/tokens/{token_id}": {
        "delete": spec.fragment(
            "Revoke one of the caller's tokens",
            "revokeToken",
            {
                "200": spec.ok("The revoked token", spec.ref("ApiToken")),
                "404": spec.error("No such token of the caller"),
            },
            params=[spec.path("token_id")],
            unsafe=True,
        )
    },
}
