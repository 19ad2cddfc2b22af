"""Who may call a handler, declared on the handler itself and enforced by one middleware.

Every route must declare its access (`public`, `authenticated` or `roles(...)`): the
middleware refuses to serve a handler that declares nothing, so a forgotten check fails
closed, and a test walks the router to prove each route declares one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web

from telmi.context import Context
from telmi.errors import AuthenticationRequired
from telmi.keys import CONTEXT, USER
from telmi.models import Role, User

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
H = TypeVar("H", bound=Callable[..., Any])
ATTRIBUTE = "__telmi_access__"


@dataclass(frozen=True)
class Access:
    public: bool = False
    roles: frozenset[Role] | None = None  # None: any signed-in user


def _declare(access: Access) -> Callable[[H], H]:
    def decorate(handler: H) -> H:
        setattr(handler, ATTRIBUTE, access)
        return handler

    return decorate


public = _declare(Access(public=True))
authenticated = _declare(Access())


def roles(*allowed: Role) -> Callable[[H], H]:
    return _declare(Access(roles=frozenset(allowed)))


def access_of(handler: Any) -> Access | None:
    return getattr(handler, ATTRIBUTE, None)


def request_context(request: web.Request) -> Context:
    """Who asks, from where, when: built once by the middleware for every routed request."""
    return request[CONTEXT]


def current_user(request: web.Request) -> User:
    """The signed-in user of a handler that declared `authenticated` or `roles(...)`."""
    user = request.get(USER)
    if user is None:
        raise AuthenticationRequired()
    return user
