"""Small helpers shared by handlers: JSON in and out, the client address, policies."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from aiohttp import web

from telmi.accounts import LoginPolicy, SessionPolicy
from telmi.errors import MalformedBody, NotFound, UnsupportedMediaType
from telmi.keys import CONTEXT, SETTINGS
from telmi.settings import Settings
from telmi.values import MAX_ID, check_characters


def is_api(request: web.Request) -> bool:
    """Machine endpoints (the JSON API, the signaling socket) answer errors in JSON."""
    return request.path.startswith(("/api/", "/ws/"))


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


MAX_JSON_DEPTH = 16
MAX_INT_DIGITS = 20


def _bounded_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"entier de plus de {MAX_INT_DIGITS} chiffres")
    return int(digits)


def _depth(value: Any) -> int:
    """How deeply `value` nests, counted without recursion (the input is the attacker's)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if depth <= MAX_JSON_DEPTH:
                stack.extend(
                    (v, depth + 1) for v in (item.values() if isinstance(item, dict) else item)
                )
    return deepest


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request's JSON object, or a 400/415/422 that names what is wrong: malformed,
    nested too deep, integers of absurd length, text no database can store."""
    if request.content_type != "application/json":
        raise UnsupportedMediaType()
    raw = await request.read()
    try:
        body = json.loads(raw, parse_int=_bounded_int)
    except RecursionError:
        raise MalformedBody("JSON trop imbriqué.") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedBody(f"JSON mal formé : {exc}") from None
    if not isinstance(body, dict):
        raise MalformedBody("Le corps JSON doit être un objet.")
    if _depth(body) > MAX_JSON_DEPTH:
        raise MalformedBody(f"JSON trop imbriqué ({MAX_JSON_DEPTH} niveaux au plus).")
    check_characters(body)
    return body


def path_id(request: web.Request, name: str) -> int:
    """The route's id (its `\\d+` is in the route table), or a 404 when no row can have it."""
    raw = request.match_info[name]
    if len(raw) > 10 or not 1 <= int(raw) <= MAX_ID:
        raise NotFound()
    return int(raw)


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
        "now": request[CONTEXT].now,
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
        max_failures_pair=settings.login_max_failures_pair,
        max_failures_address=settings.login_max_failures_address,
        max_failures_account=settings.login_max_failures_account,
    )
