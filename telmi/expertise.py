"""Tele-expertise: a facility asks a specialty a question with photos; a specialist answers.

States: draft -> sent -> taken -> (needs_information <-> taken) -> answered, or declined,
or expired (unanswered long past its due date). Every change is one conditional UPDATE on
the state it expects, so two specialists taking the same request cannot both get it, and
answering twice logs one act. Who sees a request: the requesting facility's staff and the
specialists of its specialty (or the one named); every read of it or its photos is audited.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import Field
from sqlalchemy import func, or_, select, tuple_, union_all, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from telmi import acts, audit, consent, form_versions, notify, patients, reports, request_forms
from telmi.consent import ConsentInput
from telmi.context import Context
from telmi.errors import Conflict, Forbidden, NotFound, ValidationError
from telmi.models import (
    ActType,
    ExpertiseAttachment,
    ExpertiseMessage,
    ExpertiseRequest,
    ExpertiseStatus,
    ExpertiseUrgency,
    Facility,
    Patient,
    Role,
    Specialty,
    User,
)
from telmi.paging import Key, Keyset, Page
from telmi.photos import MAX_PHOTOS, Photo
from telmi.values import Answers, Body, Id, text
from telmi.vault import Vault

WITHIN = {
    ExpertiseUrgency.H24: timedelta(hours=24),
    ExpertiseUrgency.H72: timedelta(hours=72),
    ExpertiseUrgency.D7: timedelta(days=7),
}
EXPIRES_AFTER_DUE = timedelta(days=14)
OPEN = (ExpertiseStatus.SENT, ExpertiseStatus.TAKEN, ExpertiseStatus.NEEDS_INFORMATION)


def is_overdue(request: ExpertiseRequest, now: datetime) -> bool:
    """Past its due time and still waiting: the one rule the lists, the thread and the
    overdue job share (the job selects the same rows with `due_at <= now`)."""
    return request.status in OPEN and request.due_at is not None and request.due_at <= now


LABELS = {
    ExpertiseStatus.DRAFT: "Brouillon",
    ExpertiseStatus.SENT: "Envoyée",
    ExpertiseStatus.TAKEN: "Prise en charge",
    ExpertiseStatus.NEEDS_INFORMATION: "Complément demandé",
    ExpertiseStatus.ANSWERED: "Répondue",
    ExpertiseStatus.DECLINED: "Déclinée",
    ExpertiseStatus.EXPIRED: "Expirée",
}


@dataclass
class Thread:
    request: ExpertiseRequest
    specialty: Specialty
    facility: Facility
    requester: User
    assignee: User | None
    messages: list[tuple[ExpertiseMessage, str]]
    photos: list[ExpertiseAttachment]


# --- what the requests carry ------------------------------------------------------------------


def _required(name: str) -> str:
    return f"« {name} » est requis."


class NewRequest(Body):
    """A draft for the caller's facility, to a specialty or one of its specialists."""

    specialty: text(40, required=_required("specialty"))  # type: ignore[valid-type]
    specialist_id: Id | None = None
    urgency: ExpertiseUrgency = ExpertiseUrgency.H72
    patient_id: Id = Field(description="a resident of the caller's facility")
    question: text(4000, required=_required("question"))  # type: ignore[valid-type]
    clinical_context: text(8000) = ""  # type: ignore[valid-type]
    answers: Answers = Field(default_factory=dict)
    consent: ConsentInput | None = Field(
        None, description="the resident's answer, if collected already (else record it later)"
    )


class ExpertiseNote(Body):
    """A question of the specialist, or the facility's reply to it."""

    body: text(4000, required=_required("body"))  # type: ignore[valid-type]


class ExpertiseAnswer(Body):
    """The specialist's answer, which is the tele-expertise's signed report: `body` is its
    conclusion, the other sections are the report's (`telmi/reports.py`)."""

    body: text(8000, required=_required("body")) = Field(description="the conclusion")  # type: ignore[valid-type]
    reason: reports.Reason = ""  # type: ignore[valid-type]
    findings: reports.Findings = ""  # type: ignore[valid-type]
    recommendations: reports.Recommendations = ""  # type: ignore[valid-type]
    prescriptions: reports.Prescriptions = ""  # type: ignore[valid-type]
    follow_up_needed: bool = False
    follow_up_when: reports.FollowUpWhen = ""  # type: ignore[valid-type]

    def as_report(self) -> reports.ReportInput:
        sections = self.model_dump(exclude={"body"})
        return reports.ReportInput(conclusion=self.body, **sections)


class ExpertiseDecline(Body):
    """Why the specialist declines."""

    body: text(2000, required=_required("body"))  # type: ignore[valid-type]


# --- who sees what ----------------------------------------------------------------------------


def may_see(user: User, request: ExpertiseRequest, specialty_id: int | None = None) -> bool:
    if user.role is Role.STAFF:
        return request.facility_id == user.facility_id
    if user.role is Role.SPECIALIST:
        if request.status is ExpertiseStatus.DRAFT:
            return False
        if request.specialist_id is not None:
            return request.specialist_id == user.id or request.assigned_to_id == user.id
        return request.specialty_id == user.specialty_id
    return False


async def _load(session: AsyncSession, request_id: int, user: User) -> ExpertiseRequest:
    found = await session.get(ExpertiseRequest, request_id)
    if found is None or user.role not in (Role.STAFF, Role.SPECIALIST):
        raise NotFound(f"Demande {request_id} introuvable.")
    if not may_see(user, found):
        raise NotFound(f"Demande {request_id} introuvable.")  # as if it did not exist
    return found


async def create(session: AsyncSession, ctx: Context, new: NewRequest) -> ExpertiseRequest:
    """A draft for the staff member's facility (sent with `send`, once its photos are in)."""
    user = ctx.caller
    if user.role is not Role.STAFF or user.facility_id is None:
        raise Forbidden("Seul le personnel d'un établissement demande une téléexpertise.")
    if not await session.scalar(select(Facility.is_active).where(Facility.id == user.facility_id)):
        raise Conflict(
            "Cet établissement est désactivé : il ne fait plus de demande.",
            code="facility_inactive",
        )
    specialty = await session.scalar(select(Specialty).where(Specialty.code == new.specialty))
    if specialty is None or specialty.retired_at is not None:
        raise ValidationError("Spécialité inconnue.", field="specialty")
    if new.specialist_id is not None:
        named = await session.get(User, new.specialist_id)
        if named is None or named.role is not Role.SPECIALIST or named.specialty_id != specialty.id:
            raise ValidationError(
                "Ce spécialiste n'exerce pas cette spécialité.", field="specialist_id"
            )
    resident = await patients.of_facility(session, new.patient_id, user.facility_id)
    form_id, answers = await form_versions.answered(
        session, specialty.id, ActType.TELEEXPERTISE, new.answers, now=ctx.now
    )
    request = ExpertiseRequest(
        facility_id=user.facility_id,
        requested_by_id=user.id,
        specialty_id=specialty.id,
        specialist_id=new.specialist_id,
        patient_id=resident.id,
        form_id=form_id,
        answers=answers,
        question=new.question,
        clinical_context=new.clinical_context,
        urgency=new.urgency,
        status=ExpertiseStatus.DRAFT,
        created_at=ctx.now,
    )
    session.add(request)
    await session.flush()
    await audit.event(
        session, ctx, "expertise.created", target_type="expertise", target_id=request.id,
        patient_id=resident.id,
    )  # fmt: skip
    if new.consent is not None:
        await consent.record(
            session, ctx, new.consent, patient_id=resident.id, act_type=ActType.TELEEXPERTISE,
            expertise_request_id=request.id,
        )  # fmt: skip
    return request


async def record_consent(
    session: AsyncSession, ctx: Context, request_id: int, given: ConsentInput
) -> consent.ConsentView:
    """The facility records the resident's answer, before the request is sent or while it
    waits (a refusal after sending is recorded too: the specialist then declines)."""
    user = ctx.caller
    request = await _load(session, request_id, user)
    if user.role is not Role.STAFF:
        raise Forbidden("Le consentement est recueilli par l'établissement.")
    if request.status not in (ExpertiseStatus.DRAFT, *OPEN):
        raise Conflict("Cette demande est close.", code="expertise_state")
    return await consent.record(
        session, ctx, given, patient_id=request.patient_id, act_type=ActType.TELEEXPERTISE,
        expertise_request_id=request.id,
    )  # fmt: skip


async def add_photos(
    session: AsyncSession, ctx: Context, request_id: int, photos: list[Photo]
) -> list[ExpertiseAttachment]:
    user, now = ctx.caller, ctx.now
    request = await _load(session, request_id, user)
    if user.role is not Role.STAFF or request.status not in (
        ExpertiseStatus.DRAFT,
        ExpertiseStatus.NEEDS_INFORMATION,
    ):
        raise Conflict(
            "Les photos s'ajoutent au brouillon ou en réponse à une demande de complément."
        )
    count = await session.scalar(
        select(func.count())
        .select_from(ExpertiseAttachment)
        .where(ExpertiseAttachment.request_id == request.id)
    )
    if int(count or 0) + len(photos) > MAX_PHOTOS:
        raise ValidationError(f"{MAX_PHOTOS} photos au plus par demande.", field="photos")
    rows = [
        ExpertiseAttachment(
            request_id=request.id,
            uploaded_by_id=user.id,
            content_hash=p.sha256,
            media_type=p.media_type,
            size_bytes=len(p.data),
            width=p.width,
            height=p.height,
            created_at=now,
        )
        for p in photos
    ]
    session.add_all(rows)
    await session.flush()
    await audit.event(
        session,
        ctx,
        "expertise.photos_added",
        target_type="expertise",
        target_id=request.id,
        count=len(rows),
    )
    return rows


async def _specialists(session: AsyncSession, request: ExpertiseRequest) -> list[int]:
    if request.specialist_id is not None:
        return [request.specialist_id]
    return list(
        await session.scalars(
            select(User.id).where(
                User.role == Role.SPECIALIST,
                User.specialty_id == request.specialty_id,
                User.is_active.is_(True),
            )
        )
    )


async def _notify(
    session: AsyncSession,
    request: ExpertiseRequest,
    users: list[int],
    kind: str,
    subject: str,
    now: datetime,
    public_url: str,
    key: str = "",
) -> None:
    for user_id in users:
        await notify.enqueue(
            session,
            user_id=user_id,
            kind=kind,
            subject=subject,
            body=f"{subject}.\n\nDemande de téléexpertise n° {request.id}.\n"
            f"Voir la demande : {public_url}/teleexpertise/{request.id}\n\n— Telmi",
            dedupe_key=f"{kind}:{request.id}:{key or int(now.timestamp())}:{user_id}",
            now=now,
        )


async def send(
    session: AsyncSession, ctx: Context, request_id: int, *, public_url: str
) -> ExpertiseRequest:
    user, now = ctx.caller, ctx.now
    request = await _load(session, request_id, user)
    if user.role is not Role.STAFF:
        raise Forbidden()
    if request.status is ExpertiseStatus.DRAFT:
        consent.require(await consent.latest(session, expertise_request_id=request.id))
        definition = (
            await form_versions.by_id(session, request.form_id) if request.form_id else None
        )
        if definition is not None:
            photos = await session.scalar(
                select(func.count())
                .select_from(ExpertiseAttachment)
                .where(ExpertiseAttachment.request_id == request.id)
            )
            short = request_forms.photo_shortfall(definition, int(photos or 0))
            if short is not None:
                raise ValidationError(short, field="photos")
    sent = await session.execute(
        update(ExpertiseRequest)
        .where(ExpertiseRequest.id == request.id, ExpertiseRequest.status == ExpertiseStatus.DRAFT)
        .values(status=ExpertiseStatus.SENT, sent_at=now, due_at=now + WITHIN[request.urgency])
        .returning(ExpertiseRequest.id)
    )
    if sent.first() is None:
        raise Conflict("Cette demande a déjà été envoyée.", code="already_sent")
    await session.refresh(request)
    await _notify(
        session,
        request,
        await _specialists(session, request),
        "expertise-recue",
        "Nouvelle demande de téléexpertise",
        now,
        public_url,
        "sent",
    )
    await audit.event(session, ctx, "expertise.sent", target_type="expertise", target_id=request.id)
    return request


async def _transition(
    session: AsyncSession,
    request: ExpertiseRequest,
    expected: tuple[ExpertiseStatus, ...],
    extra: Any,
    message: str,
    **values: Any,
) -> None:
    changed = await session.execute(
        update(ExpertiseRequest)
        .where(ExpertiseRequest.id == request.id, ExpertiseRequest.status.in_(expected), extra)
        .values(**values)
        .returning(ExpertiseRequest.id)
    )
    if changed.first() is None:
        raise Conflict(message, code="expertise_state")
    await session.refresh(request)


def _specialist(user: User) -> None:
    if user.role is not Role.SPECIALIST:
        raise Forbidden("Réservé aux spécialistes.")


async def take(
    session: AsyncSession, ctx: Context, request_id: int, *, public_url: str
) -> ExpertiseRequest:
    user, now = ctx.caller, ctx.now
    _specialist(user)
    request = await _load(session, request_id, user)
    await _transition(
        session,
        request,
        (ExpertiseStatus.SENT,),
        ExpertiseRequest.assigned_to_id.is_(None),
        "Cette demande est déjà prise en charge.",
        status=ExpertiseStatus.TAKEN,
        assigned_to_id=user.id,
        taken_at=now,
    )
    await _notify(
        session,
        request,
        [request.requested_by_id],
        "expertise-prise",
        "Votre demande de téléexpertise est prise en charge",
        now,
        public_url,
        "taken",
    )
    return request


async def _message(
    session: AsyncSession,
    request: ExpertiseRequest,
    user: User,
    kind: str,
    body: str,
    now: datetime,
) -> None:
    session.add(
        ExpertiseMessage(
            request_id=request.id, author_id=user.id, kind=kind, body=body, created_at=now
        )
    )
    await session.flush()


async def ask(
    session: AsyncSession, ctx: Context, request_id: int, note: ExpertiseNote, *, public_url: str
) -> ExpertiseRequest:
    user, now = ctx.caller, ctx.now
    _specialist(user)
    request = await _load(session, request_id, user)
    await _transition(
        session,
        request,
        (ExpertiseStatus.TAKEN,),
        ExpertiseRequest.assigned_to_id == user.id,
        "Prenez d'abord la demande en charge.",
        status=ExpertiseStatus.NEEDS_INFORMATION,
    )
    await _message(session, request, user, "question", note.body, now)
    await _notify(
        session,
        request,
        [request.requested_by_id],
        "expertise-complement",
        "Le spécialiste demande un complément",
        now,
        public_url,
    )
    return request


async def reply(
    session: AsyncSession, ctx: Context, request_id: int, note: ExpertiseNote, *, public_url: str
) -> ExpertiseRequest:
    user, now = ctx.caller, ctx.now
    if user.role is not Role.STAFF:
        raise Forbidden()
    request = await _load(session, request_id, user)
    await _transition(
        session,
        request,
        (ExpertiseStatus.NEEDS_INFORMATION,),
        ExpertiseRequest.id.is_not(None),
        "Aucun complément n'est demandé.",
        status=ExpertiseStatus.TAKEN,
    )
    await _message(session, request, user, "information", note.body, now)
    if request.assigned_to_id:
        await _notify(
            session,
            request,
            [request.assigned_to_id],
            "expertise-completee",
            "Complément reçu pour une téléexpertise",
            now,
            public_url,
        )
    return request


async def answer(
    session: AsyncSession,
    ctx: Context,
    request_id: int,
    given: ExpertiseAnswer,
    *,
    tz: ZoneInfo,
    vault: Vault,
    public_url: str,
) -> ExpertiseRequest:
    """The answer, and the one téléexpertise act it is."""
    user, now = ctx.caller, ctx.now
    _specialist(user)
    request = await _load(session, request_id, user)
    await _transition(
        session,
        request,
        (ExpertiseStatus.TAKEN,),
        ExpertiseRequest.assigned_to_id == user.id,
        "Seul le spécialiste qui a pris la demande y répond, une fois.",
        status=ExpertiseStatus.ANSWERED,
        answered_at=now,
    )
    await _message(session, request, user, "answer", given.body, now)
    signed = await reports.sign_for_request(session, ctx, request, given.as_report())
    facility = await session.get(Facility, request.facility_id)
    specialty = await session.get(Specialty, request.specialty_id)
    requester = await session.get(User, request.requested_by_id)
    resident = await session.get(Patient, request.patient_id)
    agreed = await consent.latest(session, expertise_request_id=request.id)
    assert (
        facility is not None
        and resident is not None
        and specialty is not None
        and request.sent_at is not None
    )
    await acts.append(
        session,
        acts.NewAct(
            act_type=ActType.TELEEXPERTISE,
            occurred_at=now,
            duration_seconds=0,
            facility_id=facility.id,
            requester_role="personnel_etablissement",
            requester_id=request.requested_by_id,
            requester_rpps=requester.rpps if requester else None,
            specialist_id=user.id,
            specialist_rpps=user.rpps,
            specialty_code=specialty.code,
            source_key=f"expertise:{request.id}",
            patient_key=patients.act_key(vault, resident, facility.finess),
            patient_consent=agreed is not None and agreed.granted,
            consent_id=agreed.id if agreed else None,
            response_seconds=int((now - request.sent_at).total_seconds()),
        ),
        now=now,
        tz=tz,
        recorded_by=user,
    )
    assert signed.sha256 is not None
    await acts.attach_document(
        session, source_key=f"expertise:{request.id}", kind="report", sha256=signed.sha256,
        now=now,
    )  # fmt: skip
    await _notify(
        session,
        request,
        [request.requested_by_id],
        "expertise-reponse",
        "Réponse à votre demande de téléexpertise",
        now,
        public_url,
        "answer",
    )
    return request


async def decline(
    session: AsyncSession,
    ctx: Context,
    request_id: int,
    reason: ExpertiseDecline,
    *,
    public_url: str,
) -> ExpertiseRequest:
    user, now = ctx.caller, ctx.now
    _specialist(user)
    request = await _load(session, request_id, user)
    await _transition(
        session,
        request,
        (ExpertiseStatus.SENT, ExpertiseStatus.TAKEN),
        or_(ExpertiseRequest.assigned_to_id.is_(None), ExpertiseRequest.assigned_to_id == user.id),
        "Cette demande ne peut plus être déclinée.",
        status=ExpertiseStatus.DECLINED,
    )
    await _message(session, request, user, "declined", reason.body, now)
    await _notify(
        session,
        request,
        [request.requested_by_id],
        "expertise-declinee",
        "Demande de téléexpertise déclinée",
        now,
        public_url,
        "declined",
    )
    return request


async def thread(session: AsyncSession, ctx: Context, request_id: int) -> Thread:
    request = await _load(session, request_id, ctx.caller)
    specialty = await session.get(Specialty, request.specialty_id)
    facility = await session.get(Facility, request.facility_id)
    requester = await session.get(User, request.requested_by_id)
    assignee = await session.get(User, request.assigned_to_id) if request.assigned_to_id else None
    rows = await session.execute(
        select(ExpertiseMessage, User.full_name)
        .join(User, User.id == ExpertiseMessage.author_id)
        .where(ExpertiseMessage.request_id == request.id)
        .order_by(ExpertiseMessage.id)
    )
    photos = list(
        await session.scalars(
            select(ExpertiseAttachment)
            .where(ExpertiseAttachment.request_id == request.id)
            .order_by(ExpertiseAttachment.id)
        )
    )
    await audit.event(
        session, ctx, "expertise.read", target_type="expertise", target_id=request.id,
        patient_id=request.patient_id,
    )  # fmt: skip
    assert specialty is not None and facility is not None and requester is not None
    return Thread(
        request, specialty, facility, requester, assignee, [(m, n) for m, n in rows], photos
    )


async def photo(session: AsyncSession, ctx: Context, attachment_id: int) -> ExpertiseAttachment:
    found = await session.get(ExpertiseAttachment, attachment_id)
    try:
        if found is None:
            raise NotFound()
        request = await _load(session, found.request_id, ctx.caller)
    except NotFound:
        raise NotFound("Photo introuvable.") from None  # missing or not theirs: one answer
    await audit.event(
        session, ctx, "expertise.photo_viewed", target_type="expertise_photo", target_id=found.id,
        patient_id=request.patient_id,
    )  # fmt: skip
    return found


# Newest first: a facility's requests by creation (drafts included), a specialist's inbox by
# sending, like mail. An open request is at most three weeks old (it expires two weeks past
# its due date), so it is on the first pages whatever the history; ordering by due date, as
# before, put the oldest answered requests first once there was a history.
FACILITY_LIST = Keyset("expertise.facility", (datetime, int))
INBOX = Keyset("expertise.inbox", (datetime, int))


def list_keyset(user: User) -> tuple[Keyset, str]:
    """The list a caller reads and its scope: a cursor serves the reader it was given to."""
    if user.role is Role.STAFF:
        return FACILITY_LIST, f"{user.facility_id}:{user.id}"
    if user.role is Role.SPECIALIST:
        return INBOX, f"{user.specialty_id}:{user.id}"
    raise Forbidden()


def _inbox_branch(after: Key | None, limit: int, *where: Any) -> Any:
    """One way into the inbox, a page of it read off its own index."""
    r = ExpertiseRequest
    query = select(r).where(r.sent_at.is_not(None), r.status != ExpertiseStatus.DRAFT, *where)
    if after is not None:
        query = query.where(tuple_(r.sent_at, r.id) < after)
    return query.order_by(r.sent_at.desc(), r.id.desc()).limit(limit + 1).subquery()


def listing_query(user: User, after: Key | None, limit: int) -> Any:
    """The one statement a page of the list costs: at most `limit + 1` rows from each index
    it reads (one for staff; three for a specialist, merged)."""
    r = ExpertiseRequest
    if user.role is Role.STAFF:
        query = select(r).where(r.facility_id == user.facility_id)
        if after is not None:
            query = query.where(tuple_(r.created_at, r.id) < after)
        return query.order_by(r.created_at.desc(), r.id.desc()).limit(limit + 1)
    if user.role is not Role.SPECIALIST:
        raise Forbidden()
    branches = [
        _inbox_branch(after, limit, r.specialist_id == user.id),
        _inbox_branch(after, limit, r.assigned_to_id == user.id),
        _inbox_branch(after, limit, r.specialty_id == user.specialty_id, r.specialist_id.is_(None)),
    ]
    merged = aliased(r, union_all(*(select(aliased(r, b)) for b in branches)).subquery())
    return select(merged).order_by(merged.sent_at.desc(), merged.id.desc())


async def listing(
    session: AsyncSession, ctx: Context, *, after: Key | None, limit: int
) -> Page[ExpertiseRequest]:
    """Staff: their facility's requests; specialists: the inbox; newest first, a page at a
    time. One audit event for the page, naming the requests shown."""
    user = ctx.caller
    rows = list(await session.scalars(listing_query(user, after, limit)))
    if user.role is Role.STAFF:
        page = Page.of(rows, limit, lambda r: (r.created_at, r.id))
    else:  # a request named to and taken by the specialist comes through two branches
        rows = list({r.id: r for r in rows}.values())  # the first place of each, in order
        page = Page.of(rows, limit, lambda r: (r.sent_at, r.id))
    await audit.event(
        session, ctx, "expertise.listed", target_type="expertise",
        ids=[r.id for r in page.items],
    )  # fmt: skip
    return page


async def overdue(session: AsyncSession, *, now: datetime, public_url: str) -> str:
    """Remind the specialists and the requester of overdue requests (once each); expire
    requests left unanswered two weeks past their due date."""
    reminded = 0
    rows = await session.scalars(
        select(ExpertiseRequest).where(
            ExpertiseRequest.status.in_(OPEN), ExpertiseRequest.due_at <= now
        )
    )
    for request in rows:
        users = (
            [request.assigned_to_id]
            if request.assigned_to_id
            else await _specialists(session, request)
        ) + [request.requested_by_id]
        for user_id in users:
            reminded += await notify.enqueue(
                session,
                user_id=user_id,
                kind="expertise-en-retard",
                subject="Téléexpertise en retard",
                body=f"La demande de téléexpertise n° {request.id} a dépassé son délai de réponse.\n"
                f"Voir la demande : {public_url}/teleexpertise/{request.id}\n\n— Telmi",
                dedupe_key=f"expertise-en-retard:{request.id}:{user_id}",
                now=now,
            )
    expired = await session.execute(
        update(ExpertiseRequest)
        .where(
            ExpertiseRequest.status.in_(OPEN), ExpertiseRequest.due_at <= now - EXPIRES_AFTER_DUE
        )
        .values(status=ExpertiseStatus.EXPIRED)
        .returning(ExpertiseRequest.id)
    )
    return f"{reminded} rappels de retard, {len(expired.all())} demandes expirées"
