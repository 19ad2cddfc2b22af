"""Idempotency keys: a retried request gets the first response and changes nothing more.

A key is saved, with the response, in the transaction that did the work; a unique index on
(user, key) makes the second of two concurrent twins fail, roll back, and replay the first.
Keys are kept 24 hours; an expired key is overwritten by its next use.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from telmi.db import Executor, dialect_name
from telmi.errors import TelmiError, ValidationError
from telmi.models import IdempotencyKey

KEEP_FOR = timedelta(hours=24)
MAX_KEY_LENGTH = 200


class KeyTaken(Exception):
    """The key was saved by an earlier (or concurrent) request: replay that one."""


class MissingIdempotencyKey(TelmiError):
    status = 400
    code = "idempotency_key_required"
    message = "En-tête Idempotency-Key requis (une valeur unique par réservation, ex. un UUID)."


def check_key(key: str | None) -> str:
    if not key or not key.strip():
        raise MissingIdempotencyKey()
    if len(key) > MAX_KEY_LENGTH:
        raise ValidationError(
            f"Idempotency-Key : {MAX_KEY_LENGTH} caractères au plus.", field="Idempotency-Key"
        )
    return key.strip()


def fingerprint(method: str, path: str, body: Any) -> str:
    canonical = json.dumps(
        [method, path, body], sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


async def stored(
    session: AsyncSession, user_id: int, key: str, request_hash: str, *, now: datetime
) -> tuple[int, dict[str, Any]] | None:
    """The response saved under this key, None if there is none (or it expired)."""
    row = await session.scalar(
        select(IdempotencyKey).where(IdempotencyKey.user_id == user_id, IdempotencyKey.key == key)
    )
    if row is None or row.expires_at <= now:
        return None
    if row.request_hash != request_hash:
        raise ValidationError(
            "Cette Idempotency-Key a déjà servi pour une autre requête.",
            field="Idempotency-Key",
            code="idempotency_key_reused",
        )
    return row.response_status, row.response_body


def _upsert(dialect_insert: Any) -> Any:
    """Insert the key, or take over its row if that row has expired; RETURNING tells which."""
    table = IdempotencyKey.__table__
    insert = dialect_insert(table)
    return insert.on_conflict_do_update(
        index_elements=[table.c.user_id, table.c.key],
        set_={name: insert.excluded[name] for name in _REPLACED},
        where=table.c.expires_at <= bindparam("now"),
    ).returning(table.c.id)


_REPLACED = ("request_hash", "response_status", "response_body", "created_at", "expires_at")
_UPSERT = {"postgresql": _upsert(pg_insert), "sqlite": _upsert(sqlite_insert)}


async def save(
    session: Executor,
    user_id: int,
    key: str,
    request_hash: str,
    status: int,
    response: dict[str, Any],
    *,
    now: datetime,
) -> None:
    """Save the response under the key; raise KeyTaken if a live row already holds it."""
    values = {
        "user_id": user_id,
        "key": key,
        "request_hash": request_hash,
        "response_status": status,
        "response_body": response,
        "created_at": now,
        "expires_at": now + KEEP_FOR,
    }
    upsert = _UPSERT[dialect_name(session)]
    if (await session.execute(upsert, {**values, "now": now})).first() is None:
        raise KeyTaken()


async def purge(session: AsyncSession, *, now: datetime) -> int:
    result = await session.execute(
        delete(IdempotencyKey).where(IdempotencyKey.expires_at <= now).returning(IdempotencyKey.id)
    )
    return len(result.all())
