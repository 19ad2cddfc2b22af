"""The compte rendu of an act: drafted by the specialist, signed once, corrected by addenda.

A teleconsultation's report is written by the slot's specialist during or after the call
(the booking's consultation exists), saved as drafts, then signed: one conditional UPDATE
from draft to signed stores the SHA-256 of a canonical JSON of what was signed, and the
hash joins the act record (`acts.attach_document`; when the act is logged later, the end of
the consultation attaches it). A signed report never changes (on PostgreSQL a trigger
refuses it too): corrections are addenda, each signed with its own hash. A tele-expertise
answer is its report, signed in the answer's transaction (`sign_for_request`).

Who reads a report: the requesting facility's staff and the specialist who wrote it; a
draft only its author; everyone else gets the 404 of a missing one. Every read names the
resident in the access log. Notices say a report is available, with a link, nothing more.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import Field
from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from telmi import acts, audit, booking, consent, consultations, notify, patients, report_pdf
from telmi.consent import ConsentView
from telmi.context import Context
from telmi.db import Executor, dialect_name
from telmi.errors import Conflict, Forbidden, NotFound, ValidationError
from telmi.models import (
    Act,
    ActType,
    BookingStatus,
    ConsentRecord,
    Consultation,
    ExpertiseRequest,
    Facility,
    Patient,
    Report,
    ReportAddendum,
    ReportStatus,
    Role,
    Specialty,
    User,
)
from telmi.values import Body, text
from telmi.vault import Vault

# The limits of the report's sections, shared with the tele-expertise answer.
Reason = text(4000)
Findings = text(8000)
Conclusion = text(8000)
Recommendations = text(4000)
Prescriptions = text(4000)
FollowUpWhen = text(200)
SECTIONS = (
    "reason",
    "findings",
    "conclusion",
    "recommendations",
    "prescriptions",
    "follow_up_needed",
    "follow_up_when",
)
CONCLUSION_REQUIRED = "« conclusion » est requise pour signer le compte rendu."
ROLE_LABELS = {
    "specialist": "spécialiste",
    "staff": "personnel de l'établissement",
    "guest": "invité",
}
WRITABLE = (BookingStatus.CONFIRMED, BookingStatus.COMPLETED)


class ReportInput(Body):
    """A draft: every section may still be empty."""

    reason: Reason = Field("", description="motif")  # type: ignore[valid-type]
    findings: Findings = Field("", description="constatations")  # type: ignore[valid-type]
    conclusion: Conclusion = Field("", description="conclusion, required to sign")  # type: ignore[valid-type]
    recommendations: Recommendations = Field("", description="recommandations")  # type: ignore[valid-type]
    prescriptions: Prescriptions = Field("", description="prescriptions, as text")  # type: ignore[valid-type]
    follow_up_needed: bool = Field(False, description="a follow-up is needed")
    follow_up_when: FollowUpWhen = Field("", description="when, e.g. « dans un mois »")  # type: ignore[valid-type]


class SignedReportInput(ReportInput):
    """The report as signed: what the specialist saw, with its conclusion."""

    conclusion: text(8000, required=CONCLUSION_REQUIRED) = Field(description="conclusion")  # type: ignore[valid-type]


class AddendumInput(Body):
    body: text(  # type: ignore[valid-type]
        4000, required="« body » est requis : le texte de l'addendum."
    ) = Field(description="the correction or complement, signed at once")


class ReportSigned(Conflict):
    code = "report_signed"
    message = "Ce compte rendu est signé : il ne change plus, ajoutez un addendum."


class ReportNotSigned(Conflict):
    code = "report_not_signed"
    message = "Un addendum s'ajoute à un compte rendu signé."


class ReportNotOpen(Conflict):
    code = "report_not_open"
    message = "Le compte rendu se rédige pendant ou après la consultation."


@dataclass(frozen=True)
class AddendumView:
    id: int
    author_id: int
    author_name: str
    body: str
    signed_at: datetime
    sha256: str

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "author": {"id": self.author_id, "name": self.author_name},
            "body": self.body,
            "signed_at": self.signed_at.isoformat(),
            "sha256": self.sha256,
        }


@dataclass(frozen=True)
class ReportView:
    id: int
    booking_id: int | None
    expertise_request_id: int | None
    patient_id: int
    author_id: int
    author_name: str
    status: ReportStatus
    reason: str
    findings: str
    conclusion: str
    recommendations: str
    prescriptions: str
    follow_up_needed: bool
    follow_up_when: str
    created_at: datetime
    updated_at: datetime
    signed_at: datetime | None
    sha256: str | None
    addenda: tuple[AddendumView, ...] = ()

    @property
    def signed(self) -> bool:
        return self.status is ReportStatus.SIGNED

    def sections(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in SECTIONS}

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "booking_id": self.booking_id,
            "expertise_request_id": self.expertise_request_id,
            "status": self.status.value,
            **self.sections(),
            "author": {"id": self.author_id, "name": self.author_name},
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "signed_at": self.signed_at.isoformat() if self.signed_at else None,
            "sha256": self.sha256,
            "addenda": [a.as_json() for a in self.addenda],
        }


# --- the hashes ------------------------------------------------------------------------------


def _canonical(payload: Mapping[str, Any]) -> str:
    return json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _instant(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def report_hash(
    sections: Mapping[str, Any],
    *,
    booking_id: int | None,
    expertise_request_id: int | None,
    author_id: int,
    signed_at: datetime,
) -> str:
    """SHA-256 of what was signed: the sections, the act, the author, the instant. Anyone
    holding the PDF's text can recompute it; any later change to the row breaks it."""
    payload = {name: sections[name] for name in SECTIONS} | {
        "kind": "report",
        "version": 1,
        "booking_id": booking_id,
        "expertise_request_id": expertise_request_id,
        "author_id": author_id,
        "signed_at": _instant(signed_at),
    }
    return hashlib.sha256(_canonical(payload).encode()).hexdigest()


def addendum_hash(
    *, report_sha256: str, number: int, author_id: int, body: str, signed_at: datetime
) -> str:
    """An addendum's hash covers the report's and its place among the addenda (1, 2, …), so
    it cannot be moved to another report or reordered, and a repeated text is its own."""
    payload = {
        "kind": "addendum",
        "version": 1,
        "report_sha256": report_sha256,
        "number": number,
        "author_id": author_id,
        "body": body,
        "signed_at": _instant(signed_at),
    }
    return hashlib.sha256(_canonical(payload).encode()).hexdigest()


def hash_of(view: ReportView) -> str | None:
    """The hash the stored content gives now (equal to `view.sha256` unless it was altered)."""
    if view.signed_at is None:
        return None
    return report_hash(
        view.sections(),
        booking_id=view.booking_id,
        expertise_request_id=view.expertise_request_id,
        author_id=view.author_id,
        signed_at=view.signed_at,
    )


# --- reading rows ----------------------------------------------------------------------------


async def _view(session: AsyncSession, where: Any) -> ReportView | None:
    row = (
        await session.execute(
            select(Report, User.full_name)
            .join(User, User.id == Report.author_id)
            .where(where)
            .execution_options(populate_existing=True)
        )
    ).first()
    if row is None:
        return None
    report, author_name = row
    addenda = await session.execute(
        select(ReportAddendum, User.full_name)
        .join(User, User.id == ReportAddendum.author_id)
        .where(ReportAddendum.report_id == report.id)
        .order_by(ReportAddendum.signed_at, ReportAddendum.id)
    )
    return ReportView(
        id=report.id,
        booking_id=report.booking_id,
        expertise_request_id=report.expertise_request_id,
        patient_id=report.patient_id,
        author_id=report.author_id,
        author_name=author_name,
        status=report.status,
        **{name: getattr(report, name) for name in SECTIONS},
        created_at=report.created_at,
        updated_at=report.updated_at,
        signed_at=report.signed_at,
        sha256=report.sha256,
        addenda=tuple(
            AddendumView(a.id, a.author_id, name, a.body, a.signed_at, a.sha256)
            for a, name in addenda
        ),
    )


def _visible(view: ReportView | None, user: User) -> ReportView | None:
    """Drafts are their author's alone."""
    if view is None or (not view.signed and view.author_id != user.id):
        return None
    return view


_STATUSES = select(Report.booking_id, Report.status).where(
    Report.booking_id.in_(bindparam("ids", expanding=True))
)


async def statuses(session: Executor, booking_ids: list[int]) -> dict[int, str]:
    """`draft` or `signed` per booking that has a report, for the lists' links (no content:
    the caller lists bookings it may see)."""
    if not booking_ids:
        return {}
    rows = await session.execute(_STATUSES, {"ids": booking_ids})
    return {int(b): s.value for b, s in rows if b is not None}


# --- teleconsultation: draft, sign, addenda ---------------------------------------------------


def _not_found(booking_id: int) -> NotFound:
    return NotFound(f"Rendez-vous {booking_id} introuvable.")


async def _readable_booking(
    session: AsyncSession, user: User, booking_id: int
) -> booking.BookingView:
    b = await booking.load(session, booking_id)
    if user.role not in (Role.STAFF, Role.SPECIALIST) or not booking.may_see(user, b):
        raise _not_found(booking_id)  # as if it did not exist
    return b


async def _consultation(session: AsyncSession, booking_id: int) -> Consultation | None:
    return await session.scalar(select(Consultation).where(Consultation.booking_id == booking_id))


async def _writable(
    session: AsyncSession, ctx: Context, booking_id: int
) -> tuple[booking.BookingView, Consultation]:
    """The booking and its consultation, for the slot's specialist during or after the call."""
    user = ctx.caller
    b = await _readable_booking(session, user, booking_id)
    if user.role is not Role.SPECIALIST or b.slot.specialist_id != user.id:
        raise Forbidden("Seul le spécialiste de la consultation rédige son compte rendu.")
    found = await _consultation(session, booking_id)
    if found is None or b.status not in WRITABLE or b.patient_id is None:
        raise ReportNotOpen()
    return b, found


async def _save(
    session: AsyncSession, ctx: Context, b: booking.BookingView, draft: ReportInput
) -> int:
    """Create or update the draft; a signed report is left as it is (409)."""
    values = {name: getattr(draft, name) for name in SECTIONS}
    dialect_insert = pg_insert if dialect_name(session) == "postgresql" else sqlite_insert
    await session.execute(
        dialect_insert(Report)
        .values(
            booking_id=b.id,
            patient_id=b.patient_id,
            author_id=ctx.caller.id,
            status=ReportStatus.DRAFT,
            created_at=ctx.now,
            updated_at=ctx.now,
            **values,
        )
        .on_conflict_do_nothing(index_elements=["booking_id"])
    )
    changed = await session.execute(
        update(Report)
        .where(Report.booking_id == b.id, Report.status == ReportStatus.DRAFT)
        .values(updated_at=ctx.now, **values)
        .returning(Report.id)
    )
    report_id = changed.scalar_one_or_none()
    if report_id is None:
        raise ReportSigned()
    return int(report_id)


async def save_draft(
    session: AsyncSession, ctx: Context, booking_id: int, draft: ReportInput
) -> ReportView:
    """The specialist's draft, created or replaced; 409 once signed."""
    b, _ = await _writable(session, ctx, booking_id)
    report_id = await _save(session, ctx, b, draft)
    await audit.event(
        session, ctx, "report.draft_saved", target_type="report", target_id=report_id,
        patient_id=b.patient_id,
    )  # fmt: skip
    view = await _view(session, Report.id == report_id)
    assert view is not None
    return view


def _report_link(public_url: str, b: booking.BookingView) -> str:
    return f"{public_url}/rendez-vous/{b.id}/compte-rendu"


async def _tell_requester(
    session: AsyncSession, user_id: int, *, link: str, key: str, addendum: bool, now: datetime
) -> None:
    """Only that something is there, and where: no resident, no reference, no content."""
    subject = "Addendum à un compte rendu" if addendum else "Compte rendu disponible"
    what = "Un addendum a été ajouté à un compte rendu" if addendum else "Un compte rendu"
    await notify.enqueue(
        session,
        user_id=user_id,
        kind="compte-rendu-addendum" if addendum else "compte-rendu",
        subject=subject,
        body=f"{what} est disponible dans Telmi.\n\nLe consulter : {link}\n\n— Telmi",
        dedupe_key=f"{'compte-rendu-addendum' if addendum else 'compte-rendu'}:{key}:{user_id}",
        now=now,
    )


async def sign(
    session: AsyncSession,
    ctx: Context,
    booking_id: int,
    final: ReportInput | None = None,
    *,
    public_url: str,
) -> ReportView:
    """Sign the report (with `final` as its content, else the saved draft): once only."""
    now = ctx.now
    b, found = await _writable(session, ctx, booking_id)
    consent.require(await consent.latest(session, booking_id=b.id))
    if final is not None:
        await _save(session, ctx, b, final)
    row = await session.scalar(
        select(Report)
        .where(Report.booking_id == b.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if row is not None and row.status is ReportStatus.SIGNED:
        raise ReportSigned()
    if row is None or not row.conclusion.strip():
        raise ValidationError(CONCLUSION_REQUIRED, field="conclusion")
    sha = report_hash(
        {name: getattr(row, name) for name in SECTIONS},
        booking_id=b.id,
        expertise_request_id=None,
        author_id=row.author_id,
        signed_at=now,
    )
    signed = await session.execute(
        update(Report)
        .where(Report.id == row.id, Report.status == ReportStatus.DRAFT)
        .values(status=ReportStatus.SIGNED, signed_at=now, sha256=sha, updated_at=now)
        .returning(Report.id)
    )
    if signed.first() is None:
        raise ReportSigned()
    await acts.attach_document(
        session, source_key=consultations.source_key(found.id), kind="report", sha256=sha, now=now
    )
    await _tell_requester(
        session, b.booked_by_id, link=_report_link(public_url, b), key=f"booking:{b.id}",
        addendum=False, now=now,
    )  # fmt: skip
    await audit.event(
        session, ctx, "report.signed", target_type="report", target_id=row.id,
        patient_id=b.patient_id, sha256=sha,
    )  # fmt: skip
    view = await _view(session, Report.id == row.id)
    assert view is not None
    return view


async def add_addendum(
    session: AsyncSession,
    ctx: Context,
    addendum: AddendumInput,
    *,
    booking_id: int | None = None,
    request_id: int | None = None,
    public_url: str,
) -> ReportView:
    """A signed correction of a signed report, by its author; attached to the act."""
    user, now = ctx.caller, ctx.now
    if booking_id is not None:
        b = await _readable_booking(session, user, booking_id)
        where = Report.booking_id == b.id
        link, requester = _report_link(public_url, b), b.booked_by_id
        found = await _consultation(session, b.id)
        source = consultations.source_key(found.id) if found else None
    else:
        assert request_id is not None
        r = await _readable_request(session, user, request_id)
        where = Report.expertise_request_id == r.id
        link, requester = f"{public_url}/teleexpertise/{r.id}", r.requested_by_id
        source = expertise_source_key(r.id)
    view = await _view(session, where)
    if view is None or (not view.signed and view.author_id != user.id):
        raise NotFound("Compte rendu introuvable.")
    if user.role is not Role.SPECIALIST or view.author_id != user.id:
        raise Forbidden("Seul l'auteur du compte rendu y ajoute un addendum.")
    if not view.signed or view.sha256 is None:
        raise ReportNotSigned()
    await session.execute(  # one addendum at a time per report: their numbers are unique
        select(Report.id).where(Report.id == view.id).with_for_update()
    )
    number = 1 + int(
        await session.scalar(
            select(func.count())
            .select_from(ReportAddendum)
            .where(ReportAddendum.report_id == view.id)
        )
        or 0
    )
    sha = addendum_hash(
        report_sha256=view.sha256, number=number, author_id=user.id, body=addendum.body,
        signed_at=now,
    )  # fmt: skip
    await session.execute(
        insert(ReportAddendum).values(
            report_id=view.id, author_id=user.id, body=addendum.body, signed_at=now, sha256=sha
        )
    )
    if source is not None:
        await acts.attach_document(session, source_key=source, kind="addendum", sha256=sha, now=now)
    await _tell_requester(session, requester, link=link, key=sha[:16], addendum=True, now=now)
    await audit.event(
        session, ctx, "report.addendum", target_type="report", target_id=view.id,
        patient_id=view.patient_id, sha256=sha,
    )  # fmt: skip
    result = await _view(session, Report.id == view.id)
    assert result is not None
    return result


async def get_for_booking(session: AsyncSession, ctx: Context, booking_id: int) -> ReportView:
    """The booking's report, for its facility's staff and its specialist (drafts: the
    author only); 404 otherwise, as if it did not exist. Audited, naming the resident."""
    user = ctx.caller
    b = await _readable_booking(session, user, booking_id)
    view = _visible(await _view(session, Report.booking_id == b.id), user)
    if view is None:
        raise NotFound("Compte rendu introuvable.")
    await audit.event(
        session, ctx, "report.read", target_type="report", target_id=view.id,
        patient_id=view.patient_id,
    )  # fmt: skip
    return view


# --- tele-expertise: the answer is the report -------------------------------------------------


def expertise_source_key(request_id: int) -> str:
    """The act log's key for a tele-expertise's act (the one `expertise.answer` logs)."""
    return f"expertise:{request_id}"


async def sign_for_request(
    session: AsyncSession, ctx: Context, request: ExpertiseRequest, answer: ReportInput
) -> ReportView:
    """The answer of `request` as its signed report, written in the answer's transaction
    (`expertise.answer` has checked the caller and attaches the hash to the act it logs)."""
    user, now = ctx.caller, ctx.now
    values = {name: getattr(answer, name) for name in SECTIONS}
    if not values["conclusion"]:
        raise ValidationError(CONCLUSION_REQUIRED, field="conclusion")
    sha = report_hash(
        values, booking_id=None, expertise_request_id=request.id, author_id=user.id, signed_at=now
    )
    result = await session.execute(
        insert(Report)
        .values(
            expertise_request_id=request.id,
            patient_id=request.patient_id,
            author_id=user.id,
            status=ReportStatus.SIGNED,
            created_at=now,
            updated_at=now,
            signed_at=now,
            sha256=sha,
            **values,
        )
        .returning(Report.id)
    )
    report_id = int(result.scalar_one())
    await audit.event(
        session, ctx, "report.signed", target_type="report", target_id=report_id,
        patient_id=request.patient_id, sha256=sha,
    )  # fmt: skip
    view = await _view(session, Report.id == report_id)
    assert view is not None
    return view


async def _readable_request(session: AsyncSession, user: User, request_id: int) -> ExpertiseRequest:
    """The request, for its facility's staff and the specialist who took it."""
    found = await session.get(ExpertiseRequest, request_id)
    mine = found is not None and (
        (user.role is Role.STAFF and found.facility_id == user.facility_id)
        or (user.role is Role.SPECIALIST and found.assigned_to_id == user.id)
    )
    if found is None or not mine:
        raise NotFound(f"Demande {request_id} introuvable.")
    return found


async def get_for_request(session: AsyncSession, ctx: Context, request_id: int) -> ReportView:
    """The tele-expertise's report (its answer): the facility's staff and its author."""
    r = await _readable_request(session, ctx.caller, request_id)
    view = _visible(await _view(session, Report.expertise_request_id == r.id), ctx.caller)
    if view is None:
        raise NotFound("Compte rendu introuvable.")
    await audit.event(
        session, ctx, "report.read", target_type="report", target_id=view.id,
        patient_id=view.patient_id,
    )  # fmt: skip
    return view


async def find_for_request(
    session: AsyncSession, ctx: Context, request_id: int
) -> ReportView | None:
    """`get_for_request`, or None where it would be a 404 (the thread's other readers)."""
    try:
        return await get_for_request(session, ctx, request_id)
    except NotFound:
        return None


# --- the act record: what the page and the PDF show around the report ------------------------


@dataclass(frozen=True)
class ActRecord:
    act_type: ActType
    act_at: datetime
    facility_name: str
    facility_finess: str
    specialist_name: str
    specialist_rpps: str | None
    specialty_name: str
    resident: patients.Resident
    consent: ConsentView | None
    participants: tuple[tuple[str, str], ...]  # (name, role in French)
    incidents: tuple[str, ...]
    report: ReportView | None
    booking_id: int | None = None
    request_id: int | None = None
    act_logged: bool = False
    writable: bool = False  # the caller may still draft and sign it

    @property
    def pdf_name(self) -> str:
        """No resident in a file name: the report's number only."""
        assert self.report is not None
        return f"compte-rendu-{self.report.id}.pdf"


def _participants(found: list[dict[str, Any]]) -> tuple[tuple[str, str], ...]:
    return tuple(
        (str(p.get("name") or ""), ROLE_LABELS.get(str(p.get("role")), str(p.get("role"))))
        for p in found
    )


async def _consent_by_id(session: AsyncSession, consent_id: int) -> ConsentView | None:
    """The consent the act carries (a later record for the act does not rewrite it)."""
    row = (
        await session.execute(
            select(
                ConsentRecord.id,
                ConsentRecord.given_by,
                ConsentRecord.method,
                ConsentRecord.decision,
                ConsentRecord.given_at,
                ConsentRecord.recorded_by_id,
                User.full_name,
                ConsentRecord.recorded_at,
                ConsentRecord.note,
            )
            .join(User, User.id == ConsentRecord.recorded_by_id)
            .where(ConsentRecord.id == consent_id)
        )
    ).first()
    return ConsentView(*row) if row is not None else None


async def _act(session: AsyncSession, source_key: str) -> Act | None:
    return await session.scalar(select(Act).where(Act.source_key == source_key, Act.sign == 1))


async def _resident(session: AsyncSession, patient_id: int, vault: Vault) -> patients.Resident:
    row = await session.get(Patient, patient_id)
    assert row is not None
    return patients.open_resident(vault, row)


async def record_for_booking(
    session: AsyncSession,
    ctx: Context,
    booking_id: int,
    *,
    vault: Vault,
    action: str = "report.read",
) -> ActRecord:
    """The booking's act record with its report (None while there is none the caller may
    see): for the page and the PDF. One access event naming the resident."""
    user = ctx.caller
    b = await _readable_booking(session, user, booking_id)
    if b.patient_id is None:
        raise NotFound("Compte rendu introuvable.")
    view = _visible(await _view(session, Report.booking_id == b.id), user)
    found = await _consultation(session, b.id)
    act = await _act(session, consultations.source_key(found.id)) if found else None
    if act is not None and act.participants is not None:
        people = list(act.participants)
    else:
        people = await consultations.participants(session, found.id) if found else []
    agreed = None
    if act is not None and act.consent_id is not None:
        agreed = await _consent_by_id(session, act.consent_id)
    if agreed is None:
        agreed = await consent.latest(session, booking_id=b.id)
    specialist = await session.get(User, b.slot.specialist_id)
    assert specialist is not None
    if act is not None:
        act_at = act.occurred_at
    else:
        act_at = found.started_at if found and found.started_at else b.slot.starts_at
    await audit.event(
        session, ctx, action, target_type="report" if view else "booking",
        target_id=view.id if view else b.id, patient_id=b.patient_id,
    )  # fmt: skip
    return ActRecord(
        act_type=b.act_type,
        act_at=act_at,
        facility_name=b.facility_name,
        facility_finess=b.facility_finess,
        specialist_name=specialist.full_name,
        specialist_rpps=specialist.rpps,
        specialty_name=b.slot.specialty_name,
        resident=await _resident(session, b.patient_id, vault),
        consent=agreed,
        participants=_participants(people),
        incidents=(act.incidents,) if act is not None and act.incidents else (),
        report=view,
        booking_id=b.id,
        act_logged=act is not None,
        writable=user.id == b.slot.specialist_id
        and user.role is Role.SPECIALIST
        and found is not None
        and b.status in WRITABLE
        and not (view is not None and view.signed),
    )


async def record_for_request(
    session: AsyncSession,
    ctx: Context,
    request_id: int,
    *,
    vault: Vault,
    action: str = "report.read",
) -> ActRecord:
    """The tele-expertise's act record with its signed report (its answer)."""
    user = ctx.caller
    r = await _readable_request(session, user, request_id)
    view = _visible(await _view(session, Report.expertise_request_id == r.id), user)
    if view is None:
        raise NotFound("Compte rendu introuvable.")
    act = await _act(session, expertise_source_key(r.id))
    facility = await session.get(Facility, r.facility_id)
    specialty = await session.get(Specialty, r.specialty_id)
    author = await session.get(User, view.author_id)
    requester = await session.get(User, r.requested_by_id)
    assert facility is not None and specialty is not None and author is not None
    agreed = None
    if act is not None and act.consent_id is not None:
        agreed = await _consent_by_id(session, act.consent_id)
    if agreed is None:
        agreed = await consent.latest(session, expertise_request_id=r.id)
    people = [{"name": requester.full_name, "role": "staff"}] if requester else []
    people.append({"name": author.full_name, "role": "specialist"})
    await audit.event(
        session, ctx, action, target_type="report", target_id=view.id, patient_id=r.patient_id
    )
    return ActRecord(
        act_type=ActType.TELEEXPERTISE,
        act_at=act.occurred_at if act is not None else view.signed_at or view.created_at,
        facility_name=facility.name,
        facility_finess=facility.finess,
        specialist_name=author.full_name,
        specialist_rpps=author.rpps,
        specialty_name=specialty.name,
        resident=await _resident(session, r.patient_id, vault),
        consent=agreed,
        participants=_participants(people),
        incidents=(act.incidents,) if act is not None and act.incidents else (),
        report=view,
        request_id=r.id,
        act_logged=act is not None,
    )


def document(record: ActRecord) -> report_pdf.ReportDocument:
    """The PDF's document: exactly what was signed, and the act around it."""
    view, resident, agreed = record.report, record.resident, record.consent
    if view is None or not view.signed or view.signed_at is None or view.sha256 is None:
        raise NotFound("Aucun compte rendu signé.")
    if record.act_type.value not in report_pdf.ACT_TYPES:
        raise Conflict(
            "Le compte rendu PDF n'existe que pour une téléconsultation ou une téléexpertise.",
            code="report_pdf_unavailable",
        )
    if agreed is None:
        raise consent.ConsentRequired()
    return report_pdf.ReportDocument(
        facility_name=record.facility_name,
        facility_finess=record.facility_finess,
        specialist_name=record.specialist_name,
        specialist_specialty=record.specialty_name,
        specialist_rpps=record.specialist_rpps or "non renseigné",
        resident_ref=resident.reference,
        birth_name=resident.birth_name,
        first_names=resident.first_names,
        used_name=resident.used_name or None,
        sex=resident.sex,
        birth_date=resident.birth_date,
        birthplace_insee=resident.birthplace,
        ins_matricule=resident.ins if resident.ins and resident.ins_oid else None,
        ins_oid=resident.ins_oid if resident.ins and resident.ins_oid else None,
        identity_status=resident.identity_status.value,
        act_type=record.act_type.value,
        act_at=record.act_at,
        participants=record.participants,
        consent_by=agreed.given_by.value,
        consent_method=agreed.method.value,
        consent_at=agreed.given_at,
        consent_recorded_by=agreed.recorded_by_name,
        reason=view.reason,
        findings=view.findings,
        conclusion=view.conclusion,
        recommendations=view.recommendations,
        prescriptions=view.prescriptions,
        follow_up_needed=view.follow_up_needed,
        follow_up_when=view.follow_up_when,
        incidents=record.incidents,
        signed_by=view.author_name,
        signed_at=view.signed_at,
        sha256=view.sha256,
        addenda=[
            report_pdf.Addendum(
                signed_at=a.signed_at, author=a.author_name, text=a.body, sha256=a.sha256
            )
            for a in view.addenda
        ],
    )
