"""Acts done outside the platform, declared through the API by a specialist or an admin.

Turns a request body into a `NewAct` for the log: the facility is named by its FINESS,
the specialist by their RPPS (a specialist declares their own acts), the patient by the
facility's reference or the INS, which are hashed here and never stored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from telmi import acts, booking
from telmi.accounts import check_rpps
from telmi.db import Executor
from telmi.errors import Forbidden, ValidationError
from telmi.models import Act, ActType, Facility, Role, Specialty, User

EXTERNAL_PREFIX = "external:"


def _text(body: dict[str, Any], name: str, limit: int, *, required: bool = True) -> str:
    value = body.get(name, "")
    if value is None:
        value = ""
    if not isinstance(value, str) or len(value.strip()) > limit:
        raise ValidationError(f"« {name} » : texte de {limit} caractères au plus.", field=name)
    if required and not value.strip():
        raise ValidationError(f"« {name} » est requis.", field=name)
    return value.strip()


def _rpps(body: dict[str, Any], name: str) -> str:
    value = _text(body, name, 11)
    try:
        return check_rpps(value)
    except ValidationError:
        raise ValidationError(
            f"« {name} » : numéro RPPS invalide (11 chiffres, clé de Luhn).", field=name
        ) from None


def _occurred_at(body: dict[str, Any], now: datetime) -> datetime:
    raw = body.get("occurred_at")
    try:
        when = datetime.fromisoformat(raw) if isinstance(raw, str) else None
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise ValidationError(
            "« occurred_at » : date-heure ISO 8601 avec fuseau (ex. 2026-03-02T14:30:00+01:00).",
            field="occurred_at",
        )
    if when > now:
        raise ValidationError("« occurred_at » est dans le futur.", field="occurred_at")
    return when


def _duration(body: dict[str, Any]) -> int:
    minutes = body.get("duration_minutes", 0)
    if (
        isinstance(minutes, bool)
        or not isinstance(minutes, int | float)
        or not 0 <= minutes <= 1440
    ):
        raise ValidationError(
            "« duration_minutes » : un nombre de minutes entre 0 et 1440.", field="duration_minutes"
        )
    return round(minutes * 60)


async def _specialist(session: Executor, caller: User, body: dict[str, Any]) -> User:
    if caller.role is Role.SPECIALIST:
        given = body.get("specialist_rpps")
        if given not in (None, "", caller.rpps):
            raise Forbidden("Un spécialiste ne déclare que ses propres actes.")
        return caller
    rpps = _rpps(body, "specialist_rpps")
    specialist = await session.scalar(
        select(User).where(User.rpps == rpps, User.role == Role.SPECIALIST)
    )
    if specialist is None:
        raise ValidationError(f"Aucun spécialiste de RPPS {rpps}.", field="specialist_rpps")
    return specialist


async def record_external(
    session: Executor,
    caller: User,
    body: dict[str, Any],
    *,
    now: datetime,
    tz: ZoneInfo,
    secret: str,
) -> Act:
    """Check the declaration, then append it (once per `source_key`)."""
    if caller.role not in (Role.SPECIALIST, Role.ADMIN):
        raise Forbidden()
    act_type = booking.check_act_type(body.get("act_type"))
    occurred_at = _occurred_at(body, now)
    duration = _duration(body)
    finess = _text(body, "facility_finess", 9)
    facility = await session.scalar(select(Facility).where(Facility.finess == finess))
    if facility is None:
        raise ValidationError(f"Aucun établissement de FINESS {finess}.", field="facility_finess")
    requester_rpps = _rpps(body, "requester_rpps")
    specialist = await _specialist(session, caller, body)
    specialty_code = _text(body, "specialty", 40, required=False)
    if not specialty_code:
        specialty_code = (
            await session.scalar(
                select(Specialty.code).where(Specialty.id == specialist.specialty_id)
            )
            or ""
        )
    consent = body.get("patient_consent")
    if not isinstance(consent, bool):
        raise ValidationError(
            "« patient_consent » : true ou false (consentement recueilli).",
            field="patient_consent",
        )
    ins = booking.check_ins(body.get("patient_ins"))
    patient_ref = _text(body, "patient_ref", 64, required=ins is None)
    source = _text(body, "source_key", 120 - len(EXTERNAL_PREFIX))
    new = acts.NewAct(
        act_type=ActType(act_type),
        occurred_at=occurred_at,
        duration_seconds=duration,
        facility_id=facility.id,
        requester_role=_text(body, "requester_role", 40),
        requester_rpps=requester_rpps,
        specialist_id=specialist.id,
        specialist_rpps=specialist.rpps,
        specialty_code=specialty_code,
        source_key=EXTERNAL_PREFIX + source,
        patient_key=acts.patient_key(secret, finess=finess, patient_ref=patient_ref, ins=ins),
        patient_consent=consent,
        incidents=_text(body, "incidents", 500, required=False),
    )
    return await acts.append(session, new, now=now, tz=tz, recorded_by=caller)
