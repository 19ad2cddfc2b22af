"""Every URL of Telmi, named, in one place."""

from __future__ import annotations

from aiohttp import web

from telmi.paths import STATIC_DIR
from telmi.web import health
from telmi.web.api import directory, openapi, tokens
from telmi.web.pages import admin, auth, home


def setup_routes(app: web.Application) -> None:
    add = app.router.add_route
    add("GET", "/healthz", health.healthz, name="healthz")

    add("GET", "/", home.home, name="home")
    add("GET", "/login", auth.login_form, name="login")
    add("POST", "/login", auth.login, name="login_submit")
    add("POST", "/logout", auth.logout, name="logout")
    add("GET", "/admin", admin.admin, name="admin")

    add("GET", "/api/openapi.json", openapi.openapi, name="api_openapi")
    add("GET", "/api/me", directory.me, name="api_me")
    add("GET", "/api/facilities", directory.list_facilities, name="api_facilities")
    add("GET", "/api/specialties", directory.list_specialties, name="api_specialties")
    add("GET", "/api/tokens", tokens.list_tokens, name="api_tokens")
    add("POST", "/api/tokens", tokens.create_token, name="api_tokens_create")
    add("DELETE", "/api/tokens/{token_id}", tokens.revoke_token, name="api_token_revoke")

    app.router.add_static("/static", STATIC_DIR, name="static")
