"""JSON: a signed-in user's personal API tokens (create, list, revoke)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import Field

from telmi import accounts
from telmi.accounts import NewToken
from telmi.keys import DB
from telmi.models import ApiToken
from telmi.web.access import authenticated, request_context
from telmi.web.api.spec import Out, endpoint


class ApiTokenOut(Out):
    """A personal API token (never its value)"""

    id: int
    name: str
    prefix: str = Field(description="first characters, to recognise it")
    created_at: datetime
    revoked: bool


class CreatedToken(ApiTokenOut):
    """The token, with its value (shown once)"""

    token: str = Field(description="send it as `Authorization: Bearer <token>`")


class ApiTokens(Out):
    """The caller's tokens"""

    items: list[ApiTokenOut]


def token_json(token: ApiToken) -> dict[str, Any]:
    return {
        "id": token.id,
        "name": token.name,
        "prefix": token.prefix,
        "created_at": token.created_at.isoformat(),
        "revoked": token.revoked_at is not None,
    }


@authenticated
@endpoint("The caller's personal API tokens", "listTokens", response=ApiTokens)
async def list_tokens(request: web.Request) -> dict[str, Any]:
    async with request.app[DB].read() as session:
        tokens = await accounts.list_tokens(session, request_context(request).caller)
    return {"items": [token_json(t) for t in tokens]}


@authenticated
@endpoint(
    "Create a personal API token; its value is shown once",
    "createToken",
    body=NewToken,
    response=CreatedToken,
    status=201,
)
async def create_token(request: web.Request, body: NewToken) -> dict[str, Any]:
    async with request.app[DB].write() as session:
        token, raw = await accounts.create_token(session, request_context(request), body)
    return {**token_json(token), "token": raw}


@authenticated
@endpoint("Revoke one of the caller's tokens", "revokeToken", response=ApiTokenOut)
async def revoke_token(request: web.Request, token_id: int) -> dict[str, Any]:
    async with request.app[DB].write() as session:
        token = await accounts.revoke_token(session, request_context(request), token_id)
    return token_json(token)
