"""Idempotency keys: a retried request gets the first response and changes nothing more.

A key is saved, with the response, in the transaction that did the work (or in the very
statement, on a hot path that is one statement: `booking.book_at_once`); a unique index on
(user, key) makes the second of two concurrent twins fail, roll back, and replay the first.
Keys are kept 24 hours; an expired key is overwritten by its next use.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, Insert, Table, bindparam, delete, insert, select
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


@dataclass(frozen=True)
class Pending:
    """A key about to be saved with the response of the request it came with."""

    user_id: int
    key: str
    request_hash: str
    status: int
    now: datetime

    def row(self, response: Any) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "key": self.key,
            "request_hash": self.request_hash,
            "response_status": self.status,
            "response_body": response,
            "created_at": self.now,
            "expires_at": self.now + KEEP_FOR,
        }


_KEYS = cast(Table, IdempotencyKey.__table__)
# The unique index a live key's second use runs into, by name (PostgreSQL names it).
KEY_CONSTRAINT = "uq_idempotency_keys_user_id_key"
_STORED = select(
    _KEYS.c.request_hash, _KEYS.c.response_status, _KEYS.c.response_body, _KEYS.c.expires_at
).where(_KEYS.c.user_id == bindparam("user_id"), _KEYS.c.key == bindparam("key"))


async def stored(executor: Executor, pending: Pending) -> tuple[int, dict[str, Any]] | None:
    """The response saved under this key, None if there is none (or it expired)."""
    row = (
        await executor.execute(_STORED, {"user_id": pending.user_id, "key": pending.key})
    ).first()
    if row is None or row.expires_at <= pending.now:
        return None
    if row.request_hash != pending.request_hash:
        raise ValidationError(
            "Cette Idempotency-Key a déjà servi pour une autre requête.",
            field="Idempotency-Key",
            code="idempotency_key_reused",
        )
    return row.response_status, row.response_body


def insert_after(source: Any, response: ColumnElement[Any]) -> Insert:
    """A plain INSERT of the key for each row of `source` (a CTE of the statement doing the
    work), the response computed in SQL: the work and its key in one statement. A live key
    makes the whole statement fail on `KEY_CONSTRAINT` (nothing is written): KeyTaken. No
    upsert here: an expired row is taken over by `save` on the retry."""
    names = [c.name for c in _KEYS.c if c.name != "id"]
    values = [
        response if name == "response_body" else bindparam("key_" + name, type_=_KEYS.c[name].type)
        for name in names
    ]
    return insert(_KEYS).from_select(names, select(*values).select_from(source))


def params(pending: Pending) -> dict[str, Any]:
    """The parameters of `insert_after`."""
    row = pending.row(None)
    del row["response_body"]
    return {"key_" + name: value for name, value in row.items()}


def _upsert(dialect_insert: Any) -> Any:
    """Insert the key, or take over its row if that row has expired; RETURNING tells which."""
    insert = dialect_insert(_KEYS)
    return insert.on_conflict_do_update(
        index_elements=[_KEYS.c.user_id, _KEYS.c.key],
        set_={name: insert.excluded[name] for name in _REPLACED},
        where=_KEYS.c.expires_at <= bindparam("now"),
    ).returning(_KEYS.c.id)


_REPLACED = ("request_hash", "response_status", "response_body", "created_at", "expires_at")
_UPSERT = {"postgresql": _upsert(pg_insert), "sqlite": _upsert(sqlite_insert)}


async def save(executor: Executor, pending: Pending, response: dict[str, Any]) -> None:
    """Save the response under the key; raise KeyTaken if a live row already holds it."""
    upsert = _UPSERT[dialect_name(executor)]
    if (
        await executor.execute(upsert, {**pending.row(response), "now": pending.now})
    ).first() is None:
        raise KeyTaken()


async def purge(session: AsyncSession, *, now: datetime) -> int:
    result = await session.execute(
        delete(IdempotencyKey).where(IdempotencyKey.expires_at <= now).returning(IdempotencyKey.id)
    )
    return len(result.all())
