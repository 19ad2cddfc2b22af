"""Audit trail: who read or changed what, when and from where. Never the patient data itself."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert

from telmi.context import Context
from telmi.db import Executor
from telmi.models import AuditEvent, User

# Built once, on the table: audit rows are written on hot paths and never read back.
_INSERT = insert(cast(Table, AuditEvent.__table__))


async def record(
    session: Executor,
    action: str,
    *,
    actor: User | None,
    address: str = "",
    target_type: str = "",
    target_id: str | int = "",
    at: datetime,
    patient_id: int | None = None,
    **detail: Any,
) -> None:
    """One audit event; `at` is the time of the change it records (the caller's clock).
    `patient_id` names the resident whose data was read or changed: the access log."""
    await session.execute(
        _INSERT,
        {
            "at": at,
            "actor_id": actor.id if actor else None,
            "actor_role": actor.role.value if actor else "",
            "actor_facility_id": actor.facility_id if actor else None,
            "patient_id": patient_id,
            "action": action,
            "target_type": target_type,
            "target_id": str(target_id),
            "address": address,
            "detail": detail,
        },
    )


async def event(
    session: Executor,
    ctx: Context,
    action: str,
    *,
    target_type: str = "",
    target_id: str | int = "",
    patient_id: int | None = None,
    **detail: Any,
) -> None:
    """One audit event of the request `ctx`: its caller, its instant, its address."""
    await record(
        session,
        action,
        actor=ctx.user,
        address=ctx.address,
        target_type=target_type,
        target_id=target_id,
        at=ctx.now,
        patient_id=patient_id,
        **detail,
    )
