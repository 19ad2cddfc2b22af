"""Running a creating request under an Idempotency-Key.

The key is saved with the response at the end of the same transaction. If the work fails,
or the key turns out to be taken, the first request with this key may have succeeded: its
stored response is replayed (or a 422 given if the key came with another body). So a retry
after a lost response never books twice, and the common case costs one extra INSERT.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from telmi import idempotency
from telmi.errors import Conflict, TelmiError
from telmi.keys import DB
from telmi.models import User
from telmi.web.access import request_context


async def idempotent(
    request: web.Request,
    user: User,
    key: str,
    body: Any,
    work: Callable[[AsyncConnection], Awaitable[dict[str, Any]]],
    *,
    status: int,
) -> web.Response:
    db, now = request.app[DB], request_context(request).now
    request_hash = idempotency.fingerprint(request.method, request.path, body)

    async def run(conn: AsyncConnection) -> dict[str, Any]:
        response = await work(conn)
        await idempotency.save(conn, user.id, key, request_hash, status, response, now=now)
        return response

    try:
        return web.json_response(await db.run_core_write(run), status=status)
    except (TelmiError, idempotency.KeyTaken) as failure:
        async with db.read() as session:
            stored = await idempotency.stored(session, user.id, key, request_hash, now=now)
        if stored is not None:
            return web.json_response(stored[1], status=stored[0])
        if isinstance(failure, idempotency.KeyTaken):
            raise Conflict("Requête déjà en cours avec cette Idempotency-Key.") from None
        raise
