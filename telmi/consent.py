"""Consent to one act, recorded before it (public health code R6316-2; HAS guide).

A record says who consented (the resident, a legal representative, the person of trust),
how (oral, written), when, and who recorded it; a refusal is recorded the same way. Records
are never edited: a later one for the same act supersedes the earlier, so the act's consent
is its latest record. The specialist's join of a teleconsultation and the sending of a
tele-expertise request both require that latest record to be a consent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import Field
from sqlalchemy import bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from telmi import audit, booking
from telmi.context import Context
from telmi.db import Executor
from telmi.errors import Conflict, NotFound, ValidationError
from telmi.models import (
    ActType,
    BookingStatus,
    ConsentDecision,
    ConsentGiver,
    ConsentMethod,
    ConsentRecord,
    Role,
    User,
)
from telmi.values import Body, Instant, text

GIVER_LABELS = {
    ConsentGiver.RESIDENT: "le résident",
    ConsentGiver.LEGAL_REPRESENTATIVE: "un représentant légal",
    ConsentGiver.TRUSTED_PERSON: "la personne de confiance",
}
METHOD_LABELS = {ConsentMethod.ORAL: "oral", ConsentMethod.WRITTEN: "écrit"}
DECISION_LABELS = {ConsentDecision.GRANTED: "consentement", ConsentDecision.REFUSED: "refus"}
# A consent given long before is not one for this act: the form says "when", within reason.
OLDEST = timedelta(days=365)


class ConsentInput(Body):
    given_by: ConsentGiver
    method: ConsentMethod
    decision: ConsentDecision = ConsentDecision.GRANTED
    given_at: Instant | None = Field(None, description="when it was given; default: now")
    note: text(500) = Field("", description="e.g. the representative's capacity, never a name")  # type: ignore[valid-type]


@dataclass(frozen=True)
class ConsentView:
    id: int
    given_by: ConsentGiver
    method: ConsentMethod
    decision: ConsentDecision
    given_at: datetime
    recorded_by_id: int
    recorded_by_name: str
    recorded_at: datetime
    note: str

    @property
    def granted(self) -> bool:
        return self.decision is ConsentDecision.GRANTED

    @property
    def giver_label(self) -> str:
        return GIVER_LABELS[self.given_by]

    @property
    def method_label(self) -> str:
        return METHOD_LABELS[self.method]

    @property
    def summary(self) -> str:
        """« Consentement oral, donné par le résident », « Refus écrit, donné par … »."""
        what = DECISION_LABELS[self.decision].capitalize()
        return f"{what} {METHOD_LABELS[self.method]}, donné par {GIVER_LABELS[self.given_by]}"

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "given_by": self.given_by.value,
            "method": self.method.value,
            "decision": self.decision.value,
            "given_at": self.given_at.isoformat(),
            "recorded_by": {"id": self.recorded_by_id, "name": self.recorded_by_name},
            "recorded_at": self.recorded_at.isoformat(),
            "note": self.note,
        }


class ConsentRequired(Conflict):
    code = "consent_required"
    message = (
        "Le consentement du résident à cet acte n'est pas enregistré : l'établissement doit "
        "le recueillir avant l'acte."
    )


class ConsentRefused(Conflict):
    code = "consent_refused"
    message = "Le résident (ou son représentant) a refusé cet acte : il ne peut pas avoir lieu."


_VIEW = select(
    ConsentRecord.id,
    ConsentRecord.given_by,
    ConsentRecord.method,
    ConsentRecord.decision,
    ConsentRecord.given_at,
    ConsentRecord.recorded_by_id,
    User.full_name,
    ConsentRecord.recorded_at,
    ConsentRecord.note,
).join(User, User.id == ConsentRecord.recorded_by_id)


async def record(
    session: AsyncSession,
    ctx: Context,
    c: ConsentInput,
    *,
    patient_id: int,
    act_type: ActType,
    booking_id: int | None = None,
    expertise_request_id: int | None = None,
) -> ConsentView:
    """Append a record for one act; the caller has checked the act is theirs to record."""
    given_at = c.given_at or ctx.now
    if given_at > ctx.now:
        raise ValidationError("« given_at » ne peut pas être dans le futur.", field="given_at")
    if given_at < ctx.now - OLDEST:
        raise ValidationError(
            "« given_at » : le consentement doit être recueilli pour cet acte, il y a moins "
            "d'un an.",
            field="given_at",
        )
    result = await session.execute(
        insert(ConsentRecord)
        .values(
            patient_id=patient_id,
            booking_id=booking_id,
            expertise_request_id=expertise_request_id,
            act_type=act_type,
            given_by=c.given_by,
            method=c.method,
            decision=c.decision,
            given_at=given_at,
            recorded_by_id=ctx.caller.id,
            recorded_at=ctx.now,
            note=c.note,
        )
        .returning(ConsentRecord.id)
    )
    consent_id = int(result.scalar_one())
    await audit.event(
        session,
        ctx,
        "consent.recorded",
        target_type="booking" if booking_id else "expertise",
        target_id=booking_id or expertise_request_id or "",
        patient_id=patient_id,
        decision=c.decision.value,
        consent=consent_id,
    )
    return ConsentView(*(await session.execute(_VIEW.where(ConsentRecord.id == consent_id))).one())


async def latest(
    session: Executor, *, booking_id: int | None = None, expertise_request_id: int | None = None
) -> ConsentView | None:
    """The act's consent as it stands: its latest record, or None."""
    if booking_id is not None:
        where = ConsentRecord.booking_id == booking_id
    elif expertise_request_id is not None:
        where = ConsentRecord.expertise_request_id == expertise_request_id
    else:  # `== None` would be IS NULL: every booking's consent
        raise ValueError("latest() needs the act: booking_id or expertise_request_id")
    row = (
        await session.execute(
            _VIEW.where(where).order_by(ConsentRecord.recorded_at.desc(), ConsentRecord.id.desc())
        )
    ).first()
    return ConsentView(*row) if row is not None else None


def require(view: ConsentView | None) -> ConsentView:
    """The act may take place: its latest record is a consent."""
    if view is None:
        raise ConsentRequired()
    if not view.granted:
        raise ConsentRefused()
    return view


async def for_booking(
    session: AsyncSession, ctx: Context, booking_id: int, c: ConsentInput
) -> ConsentView:
    """The facility's staff (or the slot's specialist, at the start of the call) record the
    resident's answer for a booking still to take place."""
    b = await booking.load(session, booking_id)
    if ctx.caller.role not in (Role.STAFF, Role.SPECIALIST) or not booking.may_see(ctx.caller, b):
        raise NotFound(f"Rendez-vous {booking_id} introuvable.")
    if b.status is not BookingStatus.CONFIRMED or b.patient_id is None:
        raise Conflict("Ce rendez-vous n'est pas confirmé.", code="booking_not_confirmed")
    return await record(
        session, ctx, c, patient_id=b.patient_id, act_type=b.act_type, booking_id=b.id
    )


async def of_booking(session: AsyncSession, ctx: Context, booking_id: int) -> ConsentView | None:
    """The booking's consent as it stands, for its facility's staff and its specialist (else
    404, as if the booking did not exist); a read naming the resident, so audited."""
    b = await booking.load(session, booking_id)
    if ctx.caller.role not in (Role.STAFF, Role.SPECIALIST) or not booking.may_see(ctx.caller, b):
        raise NotFound(f"Rendez-vous {booking_id} introuvable.")
    await audit.event(
        session, ctx, "consent.read", target_type="booking", target_id=b.id,
        patient_id=b.patient_id,
    )  # fmt: skip
    return await latest(session, booking_id=b.id)


_OF_BOOKINGS = (
    _VIEW.add_columns(ConsentRecord.booking_id)
    .where(ConsentRecord.booking_id.in_(bindparam("ids", expanding=True)))
    .order_by(ConsentRecord.recorded_at, ConsentRecord.id)
)


async def latest_by_booking(session: Executor, booking_ids: list[int]) -> dict[int, ConsentView]:
    """The consent as it stands of each of these bookings that has one (a list page's)."""
    if not booking_ids:
        return {}
    rows = await session.execute(_OF_BOOKINGS, {"ids": booking_ids})
    return {row[-1]: ConsentView(*row[:-1]) for row in rows}  # the latest wins
