"""« Journal d'administration »: the audit events that record an admin change (a facility,
a specialty, an account, a form, an import), newest first, with the fields each changed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from telmi.models import AuditEvent, User

PAGE_SIZE = 50
# The actions an administrator's change writes (the reads and the care acts are elsewhere).
ADMIN_PREFIXES = (
    "facility.",
    "specialty.",
    "user.",
    "account.",
    "form.",
    "finess.",
    "departement.",
)


@dataclass(frozen=True)
class Change:
    id: int
    at: datetime
    actor_name: str
    actor_email: str
    action: str
    target_type: str
    target_id: str
    rows: list[tuple[str, Any, Any]]  # (field, before, after)
    detail: dict[str, Any]


def _rows(detail: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    before, after = detail.get("before"), detail.get("after")
    if not isinstance(before, dict) or not isinstance(after, dict):
        return []
    names = list(dict.fromkeys([*before, *after]))
    return [(name, before.get(name), after.get(name)) for name in names]


async def changes(
    session: AsyncSession, *, before_id: int | None = None, limit: int = PAGE_SIZE
) -> tuple[list[Change], int | None]:
    """A page of admin changes, newest first, and the id cursor of the next page."""
    query = (
        select(AuditEvent, User.full_name, User.email)
        .outerjoin(User, User.id == AuditEvent.actor_id)
        .where(or_(*(AuditEvent.action.startswith(p) for p in ADMIN_PREFIXES)))
        .order_by(AuditEvent.id.desc())
        .limit(limit + 1)
    )
    if before_id is not None:
        query = query.where(AuditEvent.id < before_id)
    found = (await session.execute(query)).all()
    page = [
        Change(
            e.id,
            e.at,
            name or "",
            email or "",
            e.action,
            e.target_type,
            e.target_id,
            _rows(e.detail or {}),
            e.detail or {},
        )  # fmt: skip
        for e, name, email in found[:limit]
    ]
    return page, page[-1].id if len(found) > limit else None
