"""Audit trail: who read or changed what, when and from where. Never the patient data itself."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Insert, Table, bindparam, insert, select
from sqlalchemy import cast as cast_

from telmi.context import Context
from telmi.db import Driver, Executor, Prepared
from telmi.models import AuditEvent, User

# Built once, on the table: audit rows are written on hot paths and never read back.
_TABLE = cast(Table, AuditEvent.__table__)
_INSERT = Prepared(
    insert(_TABLE).values(
        {c.name: bindparam(c.name, type_=c.type) for c in _TABLE.c if c.name != "id"}
    )
)
_PREFIX = "audit_"


def insert_after(source: Any, target_id: ColumnElement[Any]) -> Insert:
    """An INSERT of one event per row of `source` (a CTE of the statement that made the
    target), naming the target by its column: a write and its audit event in one statement.
    Its parameters are `params(ctx, ...)`."""
    names = [c.name for c in _TABLE.c if c.name != "id"]
    values = [
        cast_(target_id, _TABLE.c.target_id.type)
        if name == "target_id"
        else bindparam(_PREFIX + name, type_=_TABLE.c[name].type)
        for name in names
    ]
    return insert(_TABLE).from_select(names, select(*values).select_from(source))


def params(
    ctx: Context,
    action: str,
    *,
    target_type: str = "",
    patient_id: int | None = None,
    **detail: Any,
) -> dict[str, Any]:
    """The parameters of `insert_after`: the request's caller, instant and address."""
    actor = ctx.user
    return {
        _PREFIX + "at": ctx.now,
        _PREFIX + "actor_id": actor.id if actor else None,
        _PREFIX + "actor_role": actor.role.value if actor else "",
        _PREFIX + "actor_facility_id": actor.facility_id if actor else None,
        _PREFIX + "patient_id": patient_id,
        _PREFIX + "action": action,
        _PREFIX + "target_type": target_type,
        _PREFIX + "address": ctx.address,
        _PREFIX + "detail": detail,
    }


async def record(
    session: Executor | Driver,
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
    await _INSERT.run(
        session,
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
    session: Executor | Driver,
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
