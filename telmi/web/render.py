"""Rendering a page: the template's own context plus what every page needs."""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web

from telmi.keys import USER
from telmi.web import csrf


def render(
    request: web.Request, template: str, context: dict[str, Any] | None = None, *, status: int = 200
) -> web.Response:
    common = {
        "user": request.get(USER),
        "csrf_token": lambda: csrf.token_for(request),
        "url": lambda name, **parts: request.app.router[name].url_for(**parts),
    }
    response = aiohttp_jinja2.render_template(
        template, request, {**common, **(context or {})}, status=status
    )
    # Cookies must be set before the response is prepared, so here rather than in a signal.
    csrf.set_pre_session_cookie(request, response)
    return response
