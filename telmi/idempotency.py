"""Idempotency keys: a retried request gets the first response and changes nothing more.

The key row is inserted first, inside the same transaction as the work, so a concurrent
twin blocks on the unique index until the first commits, then replays its response.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from telmi.errors import TelmiError, ValidationError
from telmi.models import IdempotencyKey

KEEP_FOR = timedelta(hours=24)
MAX_KEY_LENGTH = 200


class KeyInFlight(Exception):
    """Another transaction inserted the same key first; retry to replay its response."""


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


async def begin(
    session: AsyncSession, user_id: int, key: str, request_hash: str, *, now: datetime
) -> tuple[int, dict[str, Any]] | None:
    """The stored response to replay, or None after reserving the key for this request."""
    row = await session.scalar(
        select(IdempotencyKey).where(IdempotencyKey.user_id == user_id, IdempotencyKey.key == key)
    )
    if row is not None and row.expires_at > now:
        if row.request_hash != request_hash:
            raise ValidationError(
                "Cette Idempotency-Key a déjà servi pour une autre requête.",
                field="Idempotency-Key",
                code="idempotency_key_reused",
            )
        return row.response_status, row.response_body
    if row is not None:
        await session.execute(delete(IdempotencyKey).where(IdempotencyKey.id == row.id))
    try:
        async with session.begin_nested():
            session.add(
                IdempotencyKey(
                    user_id=user_id,
                    key=key,
                    request_hash=request_hash,
                    response_status=0,
                    response_body={},
                    created_at=now,
                    expires_at=now + KEEP_FOR,
                )
            )
    except IntegrityError:
        raise KeyInFlight() from None
    return None


async def finish(
    session: AsyncSession, user_id: int, key: str, status: int, body: dict[str, Any]
) -> None:
    await session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.user_id == user_id, IdempotencyKey.key == key)
        .values(response_status=status, response_body=body)
    )


async def purge(session: AsyncSession, *, now: datetime) -> int:
    result = await session.execute(
        delete(IdempotencyKey).where(IdempotencyKey.expires_at <= now).returning(IdempotencyKey.id)
    )
    return len(result.all())
