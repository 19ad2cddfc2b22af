"""How an API handler declares what it takes and gives (`endpoint`), and the OpenAPI
operation written from that declaration."""

from __future__ import annotations

import functools
import types
import typing
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, NotRequired, Union, cast

from aiohttp import web
from pydantic import BaseModel, ConfigDict, TypeAdapter
from typing_extensions import TypedDict

from telmi.keys import SETTINGS
from telmi.values import Id
from telmi.web.http import json_answer, path_ids, read_body, read_query


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


ID_SCHEMA = TypeAdapter(Id).json_schema()

CSRF_HEADER = {
    "name": "X-CSRF-Token",
    "in": "header",
    "required": False,
    "description": "Required with the session cookie (the page's csrf-token meta); not with a bearer token",
    "schema": {"type": "string"},
}


# --- typed endpoints: the handler's declaration is its OpenAPI operation ----------------------

ENDPOINT = "__telmi_endpoint__"


@dataclass(frozen=True)
class Header:
    name: str
    required: bool
    description: str
    max_length: int


@dataclass(frozen=True)
class Endpoint:
    """What a handler takes and gives: the wrapper parses and checks with it, and
    `openapi.document` writes the operation from it."""

    summary: str
    operation_id: str
    body: type[BaseModel] | None = None
    optional_body: bool = False
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    errors: Mapping[int, str] = field(default_factory=dict)
    headers: Sequence[Header] = ()
    request_content: Mapping[str, Any] | None = None  # a body that is not JSON (multipart)
    response_content: Mapping[str, Any] | None = None  # a 2xx that is not JSON (an image)


def endpoint(
    summary: str, operation_id: str, **declared: Any
) -> Callable[[Callable[..., Awaitable[Any]]], Callable[[web.Request], Awaitable[Any]]]:
    """Declare an API handler with the fields of `Endpoint`. The handler receives the path
    ids by name and, when declared, `body=` and `query=` as models; it returns the JSON data
    of its `status` (checked against `response`, so the document cannot drift from what is
    sent) or a response of its own."""
    info = Endpoint(summary, operation_id, **declared)
    body, query, response = info.body, info.query, info.response
    checker = response_checker(response) if response is not None else None

    def decorate(handler: Callable[..., Awaitable[Any]]) -> Callable[[web.Request], Awaitable[Any]]:
        @functools.wraps(handler)
        async def run(request: web.Request) -> web.StreamResponse:
            kwargs: dict[str, Any] = dict(path_ids(request))
            if query is not None:
                kwargs["query"] = read_query(request, query)
            if body is not None:
                kwargs["body"] = await read_body(request, body, optional=info.optional_body)
            result = await handler(request, **kwargs)
            if isinstance(result, web.StreamResponse):
                return result
            answer = json_answer(result, status=info.status)
            settings = request.app.get(SETTINGS)
            if checker is not None and (settings is None or settings.responses_checked):
                checker.validate_json(cast(bytes, answer.body))  # the very bytes sent
            return answer

        setattr(run, ENDPOINT, info)
        return run

    return decorate


class _NoMirror(Exception):
    pass


def _swapped(annotation: Any, building: set[type[BaseModel]]) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _mirror(annotation, building)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is None or origin is Literal or not args:
        return annotation
    if origin is Annotated:
        return Annotated[(_swapped(args[0], building), *annotation.__metadata__)]
    inner = tuple(_swapped(a, building) for a in args)
    if origin is Union or origin is types.UnionType:
        return Union[inner]  # noqa: UP007 (built from a tuple)
    if origin in (list, dict, tuple, set, frozenset):
        return origin[inner if len(inner) > 1 else inner[0]]
    raise _NoMirror(annotation)


def _mirror(model: type[BaseModel], building: set[type[BaseModel]]) -> Any:
    """A TypedDict with the model's fields, constraints and `extra` rule, nested models
    mirrored too; `_NoMirror` for what a plain dict cannot check alike (validators,
    aliases, computed fields, recursion)."""
    decorators = model.__pydantic_decorators__
    if model in building or any(
        (
            decorators.validators,
            decorators.field_validators,
            decorators.root_validators,
            decorators.model_validators,
            decorators.field_serializers,
            decorators.model_serializers,
            decorators.computed_fields,
        )
    ):
        raise _NoMirror(model)
    building = building | {model}
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if info.alias or info.serialization_alias or info.discriminator or not info.repr:
            raise _NoMirror(model)
        kind = _swapped(info.annotation, building)
        if info.metadata:
            kind = Annotated[(kind, *info.metadata)]
        fields[name] = kind if info.is_required() else NotRequired[kind]
    make: Any = TypedDict  # built from the model's fields, which mypy cannot follow
    mirror = make(model.__name__, fields)
    mirror.__pydantic_config__ = ConfigDict(extra=model.model_config.get("extra") or "ignore")
    return mirror


def response_checker(model: type[BaseModel]) -> TypeAdapter[Any]:
    """What checks a handler's answer against its declared response model.

    The model's own fields read into plain dicts (a TypedDict mirror of it): the same
    schema, without building an instance per object, which cost the largest share of the
    server's CPU in `telmi bench mixed` (a page of 50 slots: 151 instances). A model a
    mirror cannot check alike is checked as itself."""
    try:
        return TypeAdapter(_mirror(model, set()))
    except _NoMirror:
        return TypeAdapter(model)


def endpoint_of(handler: Any) -> Endpoint | None:
    return getattr(handler, ENDPOINT, None)


class Out(BaseModel):
    """A response body: its schema lists every field sent, and nothing else is sent."""

    model_config = ConfigDict(extra="forbid")


UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ref("Error")}}}


def _not_null(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A query value is text or absent, never null: the `None` of an optional field goes."""
    kept = {k: v for k, v in schema.items() if not (k == "default" and v is None)}
    branches = [b for b in kept.get("anyOf", ()) if b != {"type": "null"}]
    if "anyOf" in kept and len(branches) == 1:
        del kept["anyOf"]
        kept = dict(branches[0]) | kept
    elif "anyOf" in kept:
        kept["anyOf"] = branches
    return kept


def _parameters(schema: Mapping[str, Any]) -> list[dict[str, Any]]:
    required = set(schema.get("required", ()))
    params = []
    for name, prop in schema.get("properties", {}).items():
        prop = _not_null(prop)
        description = prop.pop("description", "")
        prop.pop("title", None)
        param = {"name": name, "in": "query", "required": name in required, "schema": prop}
        if prop.get("type") == "array" or "array" in str(prop.get("anyOf", "")):
            param |= {"style": "form", "explode": True}
        params.append(param | ({"description": description} if description else {}))
    return params


def operation(
    info: Endpoint,
    *,
    method: str,
    path_names: Sequence[str],
    public: bool,
    restricted: bool,
    refs: Mapping[tuple[type[BaseModel], str], dict[str, Any]],
    defs: Mapping[str, dict[str, Any]],
) -> dict[str, Any]:
    """The OpenAPI operation of a declared handler, with every status it can answer."""
    op: dict[str, Any] = {"summary": info.summary, "operationId": info.operation_id}
    params = [{"name": n, "in": "path", "required": True, "schema": ID_SCHEMA} for n in path_names]
    if info.query is not None:
        name = refs[(info.query, "validation")]["$ref"].rsplit("/", 1)[1]
        params += _parameters(defs[name])
    params += [
        {
            "name": h.name,
            "in": "header",
            "required": h.required,
            "description": h.description,
            "schema": {"type": "string", "minLength": 1, "maxLength": h.max_length},
        }
        for h in info.headers
    ]
    unsafe = method in UNSAFE
    if unsafe and not public:
        params.append(CSRF_HEADER)
    if params:
        op["parameters"] = params
    if info.response_content is not None:
        success = {"description": "OK", "content": dict(info.response_content)}
    elif info.response is not None:
        success = {
            "description": info.response.__doc__ or "OK",
            "content": {"application/json": {"schema": refs[(info.response, "serialization")]}},
        }
    else:
        success = {"description": "OK"}
    responses: dict[str, Any] = {str(info.status): success}
    if not public:
        responses["401"] = _error("No valid session or token")
    if restricted or (unsafe and not public):
        responses["403"] = _error("The caller's role may not do this, or the CSRF token is missing")
    if path_names:
        responses["404"] = _error("No such object, or not the caller's")
    if info.body is not None or info.request_content is not None:
        responses["400"] = _error("Malformed body")
        responses["413"] = _error("Body too large")
        responses["415"] = _error("Unsupported content type")
        content = (
            dict(info.request_content)
            if info.request_content is not None
            else {"application/json": {"schema": refs[(info.body, "validation")]}}  # type: ignore[index]
        )
        op["requestBody"] = {"required": not info.optional_body, "content": content}
    if info.body is not None or info.query is not None or info.request_content is not None:
        responses["422"] = _error("Invalid input: the message names the field")
    for status, description in info.errors.items():
        responses[str(status)] = _error(description)
    op["responses"] = dict(sorted(responses.items()))
    return op
