"""Running a creating request under an Idempotency-Key.

The key is saved with the response at the end of the same transaction, or in the very
statement that does the work where the work can be one (`at_once`, on PostgreSQL). If the
work fails, or the key turns out to be taken, the first request with this key may have
succeeded: its stored response is replayed (or a 422 given if the key came with another
body). So a retry after a lost response never books twice, and the common case costs no
round trip of its own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from telmi import idempotency
from telmi.db import Driver
from telmi.errors import Conflict, TelmiError
from telmi.keys import DB
from telmi.models import User
from telmi.web.access import request_context
from telmi.web.http import json_answer

Work = Callable[[AsyncConnection], Awaitable[dict[str, Any]]]
AtOnce = Callable[[Driver, idempotency.Pending], Awaitable[dict[str, Any] | None]]


async def idempotent(
    request: web.Request,
    user: User,
    key: str,
    body: Any,
    work: Work,
    *,
    status: int,
    at_once: AtOnce | None = None,
) -> web.Response:
    """`work` in a write transaction, then the key saved in it. `at_once`, if given, is
    tried first on PostgreSQL, on an autocommit connection: it saves the key itself, in the
    statement that writes, and returns None when it cannot (then `work` runs)."""
    db = request.app[DB]
    pending = idempotency.Pending(
        user.id,
        key,
        idempotency.fingerprint(request.method, request.path, body),
        status,
        request_context(request).now,
    )

    async def run(conn: AsyncConnection) -> dict[str, Any]:
        response = await work(conn)
        await idempotency.save(conn, pending, response)
        return response

    try:
        response = None
        if at_once is not None and db.dialect == "postgresql":
            async with db.driver() as driver:
                response = await at_once(driver, pending)
        if response is None:
            response = await db.run_core_write(run)
        return json_answer(response, status=status)
    except (TelmiError, idempotency.KeyTaken) as failure:
        async with db.connection() as conn:
            stored = await idempotency.stored(conn, pending)
        if stored is not None:
            return json_answer(stored[1], status=stored[0])
        if isinstance(failure, idempotency.KeyTaken):
            if at_once is not None:
                # `at_once` ran into an expired row, which only `save`'s upsert takes over.
                try:
                    return json_answer(await db.run_core_write(run), status=status)
                except idempotency.KeyTaken:
                    pass
            raise Conflict("Requête déjà en cours avec cette Idempotency-Key.") from None
        raise
