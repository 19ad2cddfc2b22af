"""Acts done outside the platform, declared through the API by a specialist or an admin.

Turns a declaration into a `NewAct` for the log: the facility is named by its FINESS,
the specialist by their RPPS (a specialist declares their own acts), the patient by the
facility's reference or the INS, which are hashed here and never stored.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from pydantic import Field
from sqlalchemy import select

from telmi import acts, audit
from telmi.context import Context
from telmi.db import Executor
from telmi.errors import Forbidden, ValidationError
from telmi.models import Act, ActType, Facility, Role, Specialty, User
from telmi.values import Body, Finess, Instant, OptionalIns, Rpps, text

EXTERNAL_PREFIX = "external:"


class ExternalAct(Body):
    """An act done outside the platform, as the declaring system knows it."""

    act_type: ActType
    occurred_at: Instant = Field(description="not in the future")
    duration_minutes: float = Field(0, ge=0, le=24 * 60)
    facility_finess: Finess
    requester_role: acts.RequesterRole = Field(description="who asked for the act")
    requester_rpps: Rpps
    specialist_rpps: Rpps | None = Field(
        None, description="required from an admin; a specialist declares their own acts"
    )
    specialty: text(40) = Field("", description="default: the specialist's specialty")  # type: ignore[valid-type]
    patient_ref: text(64) = Field(  # type: ignore[valid-type]
        "", description="the facility's reference (required without an INS); hashed, never stored"
    )
    patient_ins: OptionalIns = Field(None, description="INS with its key; hashed, never stored")
    patient_consent: bool
    incidents: text(500) = ""  # type: ignore[valid-type]
    source_key: text(120 - len(EXTERNAL_PREFIX), required=True) = Field(  # type: ignore[valid-type]
        description="the act's id in the declaring system: one act per key"
    )


async def _specialist(session: Executor, caller: User, rpps: str | None) -> User:
    if caller.role is Role.SPECIALIST:
        if rpps not in (None, caller.rpps):
            raise Forbidden("Un spécialiste ne déclare que ses propres actes.")
        return caller
    if rpps is None:
        raise ValidationError("« specialist_rpps » est requis.", field="specialist_rpps")
    specialist = await session.scalar(
        select(User).where(User.rpps == rpps, User.role == Role.SPECIALIST)
    )
    if specialist is None:
        raise ValidationError(f"Aucun spécialiste de RPPS {rpps}.", field="specialist_rpps")
    return specialist


async def record_external(
    session: Executor, ctx: Context, declared: ExternalAct, *, tz: ZoneInfo, secret: str
) -> Act:
    """Check the declaration against the database, then append it (once per `source_key`)."""
    caller = ctx.caller
    if caller.role not in (Role.SPECIALIST, Role.ADMIN):
        raise Forbidden()
    if declared.occurred_at > ctx.now:
        raise ValidationError("« occurred_at » est dans le futur.", field="occurred_at")
    finess = declared.facility_finess
    facility = await session.scalar(select(Facility).where(Facility.finess == finess))
    if facility is None:
        raise ValidationError(f"Aucun établissement de FINESS {finess}.", field="facility_finess")
    specialist = await _specialist(session, caller, declared.specialist_rpps)
    specialty_code = declared.specialty or (
        await session.scalar(select(Specialty.code).where(Specialty.id == specialist.specialty_id))
        or ""
    )
    ins = declared.patient_ins
    if ins is None and not declared.patient_ref:
        raise ValidationError(
            "« patient_ref » est requis quand l'INS n'est pas donné.", field="patient_ref"
        )
    new = acts.NewAct(
        act_type=declared.act_type,
        occurred_at=declared.occurred_at,
        duration_seconds=round(declared.duration_minutes * 60),
        facility_id=facility.id,
        requester_role=declared.requester_role,
        requester_rpps=declared.requester_rpps,
        specialist_id=specialist.id,
        specialist_rpps=specialist.rpps,
        specialty_code=specialty_code,
        source_key=EXTERNAL_PREFIX + declared.source_key,
        patient_key=acts.patient_key(
            secret, finess=finess, patient_ref=declared.patient_ref, ins=ins
        ),
        patient_consent=declared.patient_consent,
        incidents=declared.incidents,
    )
    act = await acts.append(session, new, now=ctx.now, tz=tz, recorded_by=caller)
    await audit.event(session, ctx, "act.declared", target_type="act", target_id=act.id)
    return act
