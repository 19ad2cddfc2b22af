"""Rendering a page: the template's own context plus what every page needs.

`unread` (the menu's notification badge) is counted once per page request by
`count_unread`, called from the authorisation middleware: render() cannot query."""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web

from telmi import notify
from telmi.keys import AUTH_METHOD, DB, UNREAD, USER
from telmi.web import csrf
from telmi.web.http import is_api


def render(
    request: web.Request, template: str, context: dict[str, Any] | None = None, *, status: int = 200
) -> web.Response:
    common = {
        "user": request.get(USER),
        "unread": request.get(UNREAD, 0),
        "csrf_token": lambda: csrf.token_for(request),
        "url": lambda name, **parts: request.app.router[name].url_for(**parts),
    }
    response = aiohttp_jinja2.render_template(
        template, request, {**common, **(context or {})}, status=status
    )
    # Cookies must be set before the response is prepared, so here rather than in a signal.
    csrf.set_pre_session_cookie(request, response)
    return response


async def count_unread(request: web.Request) -> None:
    """One COUNT for a signed-in user's page (GET, session): never for the API, sockets,
    static files or a bearer token."""
    user = request.get(USER)
    if user is None or request.method != "GET" or request.get(AUTH_METHOD) != "session":
        return
    if is_api(request):
        return
    async with request.app[DB].connection() as conn:
        request[UNREAD] = await notify.unread(conn, user.id)
