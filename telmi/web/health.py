"""Liveness for load balancers and monitors: answers only if the database answers."""

from __future__ import annotations

import logging

from aiohttp import web

from telmi.keys import DB
from telmi.web.access import public
from telmi.web.http import json_answer

log = logging.getLogger("telmi.health")


@public
async def healthz(request: web.Request) -> web.Response:
    try:
        await request.app[DB].ping()
    except Exception as exc:  # any failure to reach the database means "not healthy"
        log.warning("health check: database unreachable: %s", type(exc).__name__)
        return json_answer({"status": "error", "database": "unreachable"}, status=503)
    return json_answer({"status": "ok", "database": "ok"})
