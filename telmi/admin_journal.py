"""« Journal d'administration »: the audit events that record an admin change (a facility,
a specialty, an account, a form, an import), newest first, with the fields each changed.

A page reads `limit + 1` rows off `ix_audit_events_admin_id`, a partial index over the admin
actions only: the reads and care acts around them (most of the table) are never scanned.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, literal_column, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from telmi.models import ADMIN_ACTION_PREFIXES, AuditEvent, User
from telmi.paging import DEFAULT_LIMIT, Key, Keyset, Page

KEYSET = Keyset("admin_journal", (int,))


def admin_change() -> ColumnElement[bool]:
    """The partial index's own predicate, with its constants written in the statement (a
    bound parameter would keep PostgreSQL from proving that the index covers the query)."""
    return or_(*(AuditEvent.action.like(literal_column(f"'{p}%'")) for p in ADMIN_ACTION_PREFIXES))


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
    session: AsyncSession, *, after: Key | None = None, limit: int = DEFAULT_LIMIT
) -> Page[Change]:
    """A page of admin changes, newest first, after the key of the previous page."""
    query = (
        select(AuditEvent, User.full_name, User.email)
        .outerjoin(User, User.id == AuditEvent.actor_id)
        .where(admin_change())
        .order_by(AuditEvent.id.desc())
        .limit(limit + 1)
    )
    if after is not None:
        query = query.where(AuditEvent.id < after[0])
    found = (await session.execute(query)).all()
    page = Page.of(found, limit, lambda row: (row[0].id,))
    return page.map(
        lambda row: Change(
            row[0].id,
            row[0].at,
            row[1] or "",
            row[2] or "",
            row[0].action,
            row[0].target_type,
            row[0].target_id,
            _rows(row[0].detail or {}),
            row[0].detail or {},
        )
    )
