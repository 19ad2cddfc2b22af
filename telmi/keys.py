"""Typed keys for what the application and each request carry."""

from __future__ import annotations

from aiohttp import web

from scheduling.clock import Clock
from telmi.db import Database
from telmi.models import User, WebSession
from telmi.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
DB = web.AppKey("db", Database)
CLOCK = web.AppKey("clock", Clock)

# Per request, set by the authentication middleware.
USER = web.RequestKey("user", User)
WEB_SESSION = web.RequestKey("web_session", WebSession)
AUTH_METHOD = web.RequestKey("auth_method", str)
