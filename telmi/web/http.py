"""Small helpers shared by handlers: JSON in and out, the client address, policies."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from aiohttp import web

from telmi.accounts import LoginPolicy, SessionPolicy
from telmi.errors import MalformedBody, UnsupportedMediaType
from telmi.keys import CLOCK, SETTINGS
from telmi.settings import Settings


def is_api(request: web.Request) -> bool:
    return request.path.startswith("/api/")


def error_json(
    status: int,
    code: str,
    message: str,
    *,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    error = {"code": code, "message": message} | ({"field": field} if field else {})
    return web.json_response({"error": error}, status=status, headers=headers)


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request's JSON object, or a 400/415 that names what is wrong."""
    if request.content_type != "application/json":
        raise UnsupportedMediaType()
    raw = await request.read()
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedBody(f"JSON mal formé : {exc}") from None
    if not isinstance(body, dict):
        raise MalformedBody("Le corps JSON doit être un objet.")
    return body


def client_address(request: web.Request) -> str:
    if request.app[SETTINGS].trust_proxy:
        forwarded = request.headers.get("X-Forwarded-For", "")
        if forwarded:
            return forwarded.split(",")[0].strip()[:64]
    return (request.remote or "")[:64]


def slot_timing(request: web.Request) -> dict[str, Any]:
    """What the availability services need to place slots: now, the local zone, the horizon."""
    settings = request.app[SETTINGS]
    return {
        "now": request.app[CLOCK].now(),
        "tz": settings.tz,
        "weeks": settings.slot_horizon_weeks,
    }


def session_policy(settings: Settings) -> SessionPolicy:
    return SessionPolicy(
        idle=timedelta(minutes=settings.session_idle_minutes),
        absolute=timedelta(hours=settings.session_max_hours),
    )


def login_policy(settings: Settings) -> LoginPolicy:
    return LoginPolicy(
        window=timedelta(minutes=settings.login_window_minutes),
        max_failures_account=settings.login_max_failures_account,
        max_failures_address=settings.login_max_failures_address,
    )
