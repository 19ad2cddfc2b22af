"""Audit trail: who read or changed what, when and from where. Never the patient data itself."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from telmi.models import AuditEvent, User, utcnow


async def record(
    session: AsyncSession,
    action: str,
    *,
    actor: User | None,
    address: str = "",
    target_type: str = "",
    target_id: str | int = "",
    **detail: Any,
) -> None:
    session.add(
        AuditEvent(
            at=utcnow(),
            actor_id=actor.id if actor else None,
            actor_role=actor.role.value if actor else "",
            action=action,
            target_type=target_type,
            target_id=str(target_id),
            address=address,
            detail=detail,
        )
    )
