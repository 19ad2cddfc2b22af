"""The edge: a request's JSON body, query string and path ids read into typed values, the
client address, the policies built from settings."""

from __future__ import annotations

import json
import typing
from datetime import timedelta
from typing import Any, TypeVar

import pydantic
import pydantic_core
from aiohttp import web

from telmi.accounts import LoginPolicy, SessionPolicy
from telmi.errors import MalformedBody, NotFound, UnsupportedMediaType
from telmi.keys import SETTINGS
from telmi.settings import Settings
from telmi.values import Id, check_characters, parse, parse_json

M = TypeVar("M", bound=pydantic.BaseModel)
ID = pydantic.TypeAdapter(Id)


def is_api(request: web.Request) -> bool:
    """Machine endpoints (the JSON API, the signaling socket) answer errors in JSON."""
    return request.path.startswith(("/api/", "/ws/"))


def json_answer(data: Any, *, status: int = 200, headers: Any = None) -> web.Response:
    """A JSON answer encoded by pydantic's Rust encoder: a booking's answer in 3 µs against
    13 for `json.dumps`, on every API request."""
    return web.Response(
        body=pydantic_core.to_json(data),
        status=status,
        headers=headers,
        content_type="application/json",
        charset="utf-8",
    )


def error_json(
    status: int,
    code: str,
    message: str,
    *,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    error = {"code": code, "message": message} | ({"field": field} if field else {})
    return json_answer({"error": error}, status=status, headers=headers)


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


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} n'est pas du JSON")


async def _raw_json(request: web.Request) -> bytes:
    if request.content_type != "application/json":
        raise UnsupportedMediaType()
    return await request.read()


def _checked(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object, or a 400/422 naming what no schema can: malformed, nested
    too deep, integers of absurd length, text no database can store."""
    try:
        body = json.loads(raw, parse_int=_bounded_int, parse_constant=_no_constant)
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


async def read_body(request: web.Request, model: type[M], *, optional: bool = False) -> M:
    """The JSON body as `model`: the guards of `_checked` first (they name what no schema
    can), then the model, strict (an id is a number, never "5"). An `optional` body may be
    left out altogether."""
    if optional and not request.can_read_body:
        return parse_json(model, b"{}")
    raw = await _raw_json(request)
    _checked(raw)
    return parse_json(model, raw)


def _is_list(annotation: Any) -> bool:
    if typing.get_origin(annotation) in (list, tuple):
        return True
    return any(_is_list(a) for a in typing.get_args(annotation) if a is not type(None))


def read_query(request: web.Request, model: type[M]) -> M:
    """The query string as `model`; a list field takes every repetition of its name."""
    lists = {
        info.alias or name for name, info in model.model_fields.items() if _is_list(info.annotation)
    }
    data: dict[str, Any] = {
        key: request.query.getall(key) if key in lists else request.query.getall(key)[-1]
        for key in request.query
    }
    check_characters(data)
    return parse(model, data, strict=False)


def path_ids(request: web.Request) -> dict[str, int]:
    """The route's ids (each has its `\\d+` in the route table), or a 404 when no row can
    have one."""
    ids = {}
    for name, raw in request.match_info.items():
        try:
            ids[name] = ID.validate_python(raw if len(raw) <= 10 else "0", strict=False)
        except pydantic.ValidationError:
            raise NotFound() from None
    return ids


def path_id(request: web.Request, name: str) -> int:
    return path_ids(request)[name]


def client_address(request: web.Request) -> str:
    if request.app[SETTINGS].trust_proxy:
        forwarded = request.headers.get("X-Forwarded-For", "")
        if forwarded:
            return forwarded.split(",")[0].strip()[:64]
    return (request.remote or "")[:64]


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
