"""Typed keys for what the application and each request carry."""

from __future__ import annotations

from aiohttp import web

from scheduling.clock import Clock
from telmi.context import Context
from telmi.db import Database
from telmi.models import User, WebSession
from telmi.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
DB = web.AppKey("db", Database)
CLOCK = web.AppKey("clock", Clock)

# Per request, set by the authentication middleware.
USER: web.RequestKey[User | None] = web.RequestKey("user")
WEB_SESSION: web.RequestKey[WebSession | None] = web.RequestKey("web_session")
AUTH_METHOD: web.RequestKey[str | None] = web.RequestKey("auth_method")
CONTEXT = web.RequestKey("context", Context)
# Per page request of a signed-in user: their unread notices (the menu's badge).
UNREAD: web.RequestKey[int] = web.RequestKey("unread", int)
