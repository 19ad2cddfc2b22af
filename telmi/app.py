"""The application factory: no I/O here, resources open in cleanup contexts."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web

from scheduling.clock import Clock, SystemClock
from telmi import migrate, worker
from telmi.db import Database
from telmi.keys import CLOCK, DB, SETTINGS
from telmi.labels import label
from telmi.paths import TEMPLATES_DIR
from telmi.settings import Settings
from telmi.web import middlewares, rooms
from telmi.web.routes import setup_routes

log = logging.getLogger("telmi")


def database_context(*, require_head: bool) -> Any:
    async def context(app: web.Application) -> AsyncIterator[None]:
        db = Database(app[SETTINGS].database_url)
        try:
            if require_head:
                await migrate.ensure_at_head(db)
            app[DB] = db
            yield
        finally:
            await db.dispose()

    return context


def create_app(
    settings: Settings, *, clock: Clock | None = None, require_migrated: bool = True
) -> web.Application:
    app = web.Application(
        middlewares=[middlewares.errors, middlewares.authorize],
        client_max_size=settings.max_body_bytes,
    )
    app[SETTINGS] = settings
    app[CLOCK] = clock or SystemClock()
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.globals["static"] = lambda path: f"/static/{path}"
    env.filters["label"] = label
    app.cleanup_ctx.append(database_context(require_head=require_migrated))
    app.cleanup_ctx.append(rooms.signaling_context)
    app.cleanup_ctx.append(worker.jobs_context)
    app.on_shutdown.append(rooms.close_sockets)
    app.on_response_prepare.append(middlewares.security_headers)
    setup_routes(app)
    return app
