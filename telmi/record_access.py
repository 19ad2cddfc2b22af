"""« Accès au dossier »: who saw or changed a resident's record, for the CNIL's traceability
and a resident's right of access (RGPD art. 15).

Every read or change of a resident's data is an audit event naming the resident
(`audit_events.patient_id`); this module reads them back for one resident, a page at a time
or as a CSV, and deletes them once past the retention period. It never opens the sealed
identity: an admin finds a resident by facility and reference and sees only those. Reading
the log is itself an audit event, which names no resident (it reveals who looked, not what).
"""

from __future__ import annotations

import calendar
import csv
import io
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from telmi import audit
from telmi.context import Context
from telmi.db import Executor
from telmi.errors import Forbidden, NotFound, ValidationError
from telmi.models import AuditEvent, Facility, Patient, Role, User
from telmi.paging import DEFAULT_LIMIT, Key, Keyset

# A page reads `limit + 1` rows off `ix_audit_events_patient_id_id`; a cursor is bound to
# its resident (the scope is the resident's id), so it never opens another's log.
KEYSET = Keyset("record_access", (int,))

# What each audited action means in the log a resident reads: one place, one wording.
ACTIONS: dict[str, str] = {
    "patient.created": "a créé le dossier",
    "patient.read": "a consulté le dossier",
    "patient.updated": "a modifié l'identité",
    "booking.created": "a pris un rendez-vous",
    "booking.read": "a consulté le rendez-vous",
    "booking.listed": "a consulté la liste des rendez-vous",
    "booking.cancelled": "a annulé le rendez-vous",
    "booking.rescheduled": "a déplacé le rendez-vous",
    "consent.recorded": "a enregistré le consentement",
    "consent.read": "a consulté le consentement",
    "consultation.join_token": "a rejoint la téléconsultation",
    "consultation.invite": "a invité un participant à la téléconsultation",
    "consultation.invite_used": "a rejoint la téléconsultation sur invitation",
    "consultation.ended": "a terminé la téléconsultation",
    "expertise.created": "a créé une demande de téléexpertise",
    "expertise.read": "a consulté la demande de téléexpertise",
    "expertise.sent": "a envoyé la demande de téléexpertise",
    "expertise.taken": "a pris en charge la demande de téléexpertise",
    "expertise.asked": "a demandé un complément",
    "expertise.replied": "a apporté un complément",
    "expertise.answered": "a répondu à la demande de téléexpertise",
    "expertise.declined": "a décliné la demande de téléexpertise",
    "expertise.photos_added": "a ajouté des photos",
    "expertise.photo_viewed": "a vu les photos",
    "report.created": "a commencé le compte rendu",
    "report.saved": "a enregistré un brouillon du compte rendu",
    "report.signed": "a signé le compte rendu",
    "report.read": "a lu le compte rendu",
    "report.pdf": "a téléchargé le PDF",
    "report.downloaded": "a téléchargé le PDF",
    "report.addendum": "a ajouté un addendum au compte rendu",
    "report.addendum_signed": "a signé un addendum au compte rendu",
}
ROLES: dict[str, str] = {
    Role.STAFF.value: "Personnel de l'établissement",
    Role.SPECIALIST.value: "Médecin spécialiste",
    Role.REGIONAL.value: "Équipe régionale",
    Role.ADMIN.value: "Administration",
}
SYSTEM = "Telmi (tâche automatique)"
CSV_HEADER = (
    "N° d'évènement",
    "Date et heure (heure de Paris)",
    "Personne",
    "Rôle",
    "Établissement",
    "Action",
    "Adresse",
)


def describe(action: str) -> str:
    """The French wording of an action; an action not listed yet still shows, by its code."""
    return ACTIONS.get(action, f"action « {action} »")


@dataclass(frozen=True)
class AccessEvent:
    id: int
    at: datetime
    actor: str
    role: str
    facility: str
    action: str
    what: str
    address: str


@dataclass(frozen=True)
class ResidentRef:
    """A resident as the access log names it: facility and reference, never the identity."""

    id: int
    reference: str
    facility_id: int
    facility: str
    finess: str


@dataclass(frozen=True)
class AccessPage:
    resident: ResidentRef
    events: list[AccessEvent]
    next_key: Key | None  # the key to read the next (older) page after


def _reader(user: User) -> None:
    if user.role not in (Role.ADMIN, Role.STAFF):
        raise Forbidden("Le journal des accès est réservé à l'administration et à l'établissement.")


async def _resident(session: Executor, user: User, patient_id: int) -> ResidentRef:
    _reader(user)
    row = (
        await session.execute(
            select(Patient.id, Patient.reference, Facility.id, Facility.name, Facility.finess)
            .join(Facility, Facility.id == Patient.facility_id)
            .where(Patient.id == patient_id)
        )
    ).first()
    if row is None or (user.role is Role.STAFF and row[2] != user.facility_id):
        raise NotFound(f"Résident {patient_id} introuvable.")
    return ResidentRef(*row)


async def find_resident(
    session: AsyncSession, ctx: Context, *, facility_id: int | None, reference: str
) -> int:
    """The id of the resident a facility knows by `reference` (staff: their own facility)."""
    user = ctx.caller
    _reader(user)
    if user.role is Role.STAFF:
        facility_id = user.facility_id
    if facility_id is None:
        raise ValidationError("Choisissez l'établissement.", field="facility_id")
    found = await session.scalar(
        select(Patient.id).where(
            Patient.facility_id == facility_id, Patient.reference == reference.strip()
        )
    )
    if found is None:
        raise ValidationError(
            "Aucun résident de cet établissement n'a cette référence.", field="reference"
        )
    return int(found)


_EVENTS = (
    select(
        AuditEvent.id,
        AuditEvent.at,
        User.full_name,
        AuditEvent.actor_role,
        Facility.name,
        AuditEvent.action,
        AuditEvent.address,
    )
    .outerjoin(User, User.id == AuditEvent.actor_id)
    .outerjoin(Facility, Facility.id == AuditEvent.actor_facility_id)
)


def _event(row: Any) -> AccessEvent:
    event_id, at, name, role, facility, action, address = row
    return AccessEvent(
        id=event_id,
        at=at,
        actor=name or SYSTEM,
        role=ROLES.get(role, role),
        facility=facility or "",
        action=action,
        what=describe(action),
        address=address,
    )


async def events_for_resident(
    session: AsyncSession,
    ctx: Context,
    patient_id: int,
    *,
    after: Key | None = None,
    limit: int = DEFAULT_LIMIT,
) -> AccessPage:
    """The events naming the resident, newest first, `limit` at a time after the key of
    the previous page (the last event it showed)."""
    resident = await _resident(session, ctx.caller, patient_id)
    query = _EVENTS.where(AuditEvent.patient_id == patient_id)
    if after is not None:
        query = query.where(AuditEvent.id < after[0])
    rows = (await session.execute(query.order_by(AuditEvent.id.desc()).limit(limit + 1))).all()
    events = [_event(r) for r in rows[:limit]]
    await audit.event(
        session, ctx, "access_log.read", target_type="patient", target_id=patient_id,
        shown=len(events),
    )  # fmt: skip
    return AccessPage(resident, events, (events[-1].id,) if len(rows) > limit else None)


def _paris(at: datetime, tz: ZoneInfo) -> str:
    return at.astimezone(tz).strftime("%d/%m/%Y %H:%M:%S")


async def csv_for_resident(
    session: AsyncSession, ctx: Context, patient_id: int, *, tz: ZoneInfo
) -> tuple[ResidentRef, str]:
    """Every event naming the resident, oldest first, as CSV for a spreadsheet: `;`
    separated (French Excel reads it as columns), UTF-8 with a BOM (so it reads the accents),
    a French header row."""
    resident = await _resident(session, ctx.caller, patient_id)
    rows = await session.execute(
        _EVENTS.where(AuditEvent.patient_id == patient_id).order_by(AuditEvent.id)
    )
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    count = 0
    for row in rows:
        e = _event(row)
        writer.writerow((e.id, _paris(e.at, tz), e.actor, e.role, e.facility, e.what, e.address))
        count += 1
    await audit.event(
        session, ctx, "access_log.exported", target_type="patient", target_id=patient_id,
        rows=count,
    )  # fmt: skip
    return resident, out.getvalue()


# --- retention ----------------------------------------------------------------------------------


def retention_cutoff(now: datetime, months: int) -> datetime:
    """The same instant `months` calendar months earlier (31 March less one: 28/29 February)."""
    index = now.year * 12 + now.month - 1 - months
    year, month = divmod(index, 12)
    day = min(now.day, calendar.monthrange(year, month + 1)[1])
    return now.replace(year=year, month=month + 1, day=day)


async def delete_expired(session: Executor, *, before: datetime, limit: int) -> int:
    """Delete up to `limit` events older than `before`, oldest first: one short transaction
    per batch, so a first run over years of events never holds the write lock for long."""
    oldest = select(AuditEvent.id).where(AuditEvent.at < before).order_by(AuditEvent.id)
    result = await session.execute(delete(AuditEvent).where(AuditEvent.id.in_(oldest.limit(limit))))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def retention_summary(deleted: int) -> str:
    n = f"{deleted:,}".replace(",", "\u202f")
    if deleted < 2:
        return f"{n} évènement d'accès supprimé"
    return f"{n} évènements d'accès supprimés"
