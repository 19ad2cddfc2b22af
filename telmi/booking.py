"""Searching free slots, holding, booking, cancelling and rescheduling.

The database has the last word on double booking: a partial unique index allows one active
booking per slot, so of two concurrent inserts one fails and becomes `SlotTaken` (409).
Every state change is one conditional UPDATE whose WHERE clause names the state it expects;
zero rows changed means someone else got there first.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from pydantic import Field
from sqlalchemy import (
    JSON,
    Integer,
    Table,
    Text,
    and_,
    bindparam,
    exists,
    func,
    insert,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy import cast as sa_cast
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from telmi import audit, availability, form_versions, idempotency, patients, request_forms
from telmi.context import Context
from telmi.db import (
    Driver,
    Executor,
    Prepared,
    constraint_name,
    dialect_name,
    is_unique_violation,
)
from telmi.errors import Conflict, Forbidden, NotFound, ValidationError
from telmi.models import (
    ACT_BITS,
    ACTIVE_BOOKING_STATUSES,
    ActType,
    Booking,
    BookingStatus,
    Consultation,
    Facility,
    Patient,
    RequestForm,
    Role,
    Slot,
    SlotStatus,
    Specialty,
    User,
    act_types_of,
)
from telmi.paging import DEFAULT_LIMIT, Key, Keyset, Page
from telmi.request_forms import FormDefinition
from telmi.values import Answers, Body, Id, text


class NewBooking(Body):
    """A booking for the caller's facility; `facility_id`, when given, must be it."""

    slot_id: Id
    patient_id: Id = Field(description="a resident of the caller's facility")
    act_type: ActType
    reason: text(2000) = ""  # type: ignore[valid-type]
    facility_id: Id | None = None
    answers: Answers = Field(default_factory=dict)


class Hold(Body):
    act_type: ActType | None = None


class Cancellation(Body):
    reason: text(500, required="Indiquez le motif de l'annulation.")  # type: ignore[valid-type]


class Move(Body):
    slot_id: Id


class SlotTaken(Conflict):
    code = "slot_taken"
    message = "Ce créneau vient d'être réservé par quelqu'un d'autre. Choisissez-en un autre."


# --- search -------------------------------------------------------------------------------------


# Views are built per row of every list: slotted, not frozen (a frozen __init__ costs 7 times
# as much).
@dataclass(slots=True)
class FreeSlot:
    id: int
    starts_at: datetime
    ends_at: datetime
    act_types: list[ActType]
    specialist_id: int
    specialist_name: str
    specialty_code: str
    specialty_name: str
    departement: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "starts_at": self.starts_at.isoformat(),
            "ends_at": self.ends_at.isoformat(),
            "act_types": [t.value for t in self.act_types],
            "specialist": {
                "id": self.specialist_id,
                "name": self.specialist_name,
                "departement": self.departement,
            },
            "specialty": {"code": self.specialty_code, "name": self.specialty_name},
        }


# Both lists are read in start order, ties broken by id: the key is (start, id).
SLOTS = Keyset("slots", (datetime, int))
BOOKINGS = Keyset("bookings", (datetime, int))


def search_scope(
    *,
    specialty: str | None,
    start: datetime | None,
    end: datetime | None,
    departement: str | None = None,
    act_type: ActType | None = None,
) -> str:
    """The filters a search cursor is bound to: another search cannot continue from it.

    `start` is the bound the caller gave (None for « from now »), not the instant it became.
    Hashed: a cursor is signed, not sealed, and need not repeat the search in clear."""
    parts = (
        specialty or "",
        start.isoformat() if start else "",
        end.isoformat() if end else "",
        departement or "",
        act_type.value if act_type else "",
    )
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:24]


# Literals, not bound values: SQLite uses a partial index only when the query's WHERE spells
# out the index's own predicate (`status IN ('held', 'confirmed', 'completed')`, `status =
# 'open'`); with the statuses as parameters it scanned every booking for each candidate slot.
_ACTIVE = Booking.status.in_([literal_column(f"'{s.value}'") for s in ACTIVE_BOOKING_STATUSES])
_OPEN = Slot.status == literal_column(f"'{SlotStatus.OPEN.value}'")
# PostgreSQL too: a generic plan (a prepared statement run more than five times) with the
# status as a parameter cannot prove the partial index's predicate and scans `bookings`.
_HELD = Booking.status == literal_column(f"'{BookingStatus.HELD.value}'")


def _taken(slot_id: Any, now: Any) -> Any:
    """An active booking on the slot: confirmed, done, or a hold that has not expired.

    Written as the partial unique index's own predicate plus a filter, so each candidate slot
    costs one probe of that index (a hash of all bookings took 100 ms at 200,000 of them)."""
    return exists().where(
        Booking.slot_id == slot_id,
        _ACTIVE,
        or_(Booking.status != BookingStatus.HELD, Booking.hold_expires_at > now),
    )


# A subquery, so the planner still sees one specialty and walks its partial index in order.
_SPECIALTY_ID = select(Specialty.id).where(Specialty.code == bindparam("specialty"))
_SPECIALIST = aliased(User, name="specialist")
_SEARCH = (
    select(
        Slot.id,
        Slot.starts_at,
        Slot.ends_at,
        Slot.act_mask,
        _SPECIALIST.id,
        _SPECIALIST.full_name,
        Specialty.code,
        Specialty.name,
        _SPECIALIST.departement_code,
    )
    .join(_SPECIALIST, _SPECIALIST.id == Slot.specialist_id)
    .join(Specialty, Specialty.id == Slot.specialty_id)
    .where(
        _OPEN,
        Slot.starts_at >= bindparam("start", type_=Slot.starts_at.type),
        _SPECIALIST.is_active.is_(True),
        ~_taken(Slot.id, bindparam("now", type_=Booking.hold_expires_at.type)),
    )
    .order_by(Slot.starts_at, Slot.id)
    .limit(bindparam("limit", type_=Integer))
)
# Each filter is a fixed clause with bound values: a search's statement is one of these 32
# shapes, built once (building one cost a tenth of the server's time in `telmi bench mixed`),
# and SQLAlchemy's compiled cache and the driver's prepared statements keep one per shape.
_FILTERS = (
    ("specialty", Slot.specialty_id == _SPECIALTY_ID.scalar_subquery()),
    ("end", Slot.starts_at < bindparam("end", type_=Slot.starts_at.type)),
    ("departement", _SPECIALIST.departement_code == bindparam("departement")),
    ("act_bit", Slot.act_mask.op("&")(bindparam("act_bit", type_=Integer)) != 0),
    (
        "after",
        and_(
            Slot.starts_at >= bindparam("after_at", type_=Slot.starts_at.type),
            or_(
                Slot.starts_at > bindparam("after_at", type_=Slot.starts_at.type),
                Slot.id > bindparam("after_id", type_=Integer),
            ),
        ),
    ),
)
_SEARCHES: dict[tuple[bool, ...], Prepared] = {}
_KNOWN_SPECIALTY = Prepared(_SPECIALTY_ID)


def _search(shape: tuple[bool, ...]) -> Prepared:
    found = _SEARCHES.get(shape)
    if found is None:
        clauses = [clause for (_, clause), used in zip(_FILTERS, shape, strict=True) if used]
        found = _SEARCHES[shape] = Prepared(_SEARCH.where(*clauses))
    return found


async def search_free_slots(
    session: Executor | Driver,
    *,
    specialty: str | None,
    start: datetime,
    end: datetime | None,
    departement: str | None = None,
    act_type: ActType | None = None,
    now: datetime,
    after: Key | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Page[FreeSlot]:
    """Free slots earliest first across specialists, a page after the key `after`."""
    values: dict[str, Any] = {"start": max(start, now), "now": now, "limit": limit + 1}
    if specialty is not None:
        values["specialty"] = specialty
    if end is not None:
        values["end"] = end
    if departement is not None:
        values["departement"] = departement
    if act_type is not None:
        values["act_bit"] = ACT_BITS[act_type]
    if after is not None:
        # The range bound lets the index start at the key; the rest breaks a tie on id.
        values["after_at"], values["after_id"] = after
    shape = (
        specialty is not None,
        end is not None,
        departement is not None,
        act_type is not None,
        after is not None,
    )
    rows = await _search(shape).all(session, values)
    if not rows and specialty is not None:
        if await _KNOWN_SPECIALTY.first(session, {"specialty": specialty}) is None:
            raise ValidationError(f"Spécialité « {specialty} » inconnue.", field="specialty")
    found = [
        FreeSlot(r[0], r[1], r[2], act_types_of(r[3]), r[4], r[5], r[6], r[7], r[8]) for r in rows
    ]
    return Page.of(found, limit, lambda s: (s.starts_at, s.id))


# --- views ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class SlotView:
    id: int
    starts_at: datetime
    ends_at: datetime
    specialty_id: int
    specialist_id: int
    specialist_name: str
    specialty_code: str
    specialty_name: str


@dataclass(slots=True)
class BookingView:
    """A booking as its readers see it; built from one Core query, no ORM loading."""

    id: int
    status: BookingStatus
    act_type: ActType
    patient_id: int | None
    patient_ref: str
    reason: str
    facility_id: int
    facility_name: str
    facility_finess: str
    booked_by_id: int
    slot: SlotView
    hold_expires_at: datetime | None
    created_at: datetime
    cancelled_at: datetime | None
    cancel_reason: str
    rescheduled_from_id: int | None
    form_id: int | None = None
    answers: dict[str, Any] | None = None

    @property
    def is_active(self) -> bool:
        return self.status in (BookingStatus.HELD, BookingStatus.CONFIRMED)

    def as_json(self) -> dict[str, Any]:
        slot = self.slot
        return {
            "id": self.id,
            "status": self.status.value,
            "act_type": self.act_type.value,
            "patient_id": self.patient_id,
            "patient_ref": self.patient_ref,
            "reason": self.reason,
            "slot": {
                "id": slot.id,
                "starts_at": slot.starts_at.isoformat(),
                "ends_at": slot.ends_at.isoformat(),
            },
            "specialist": {
                "id": slot.specialist_id,
                "name": slot.specialist_name,
                "specialty": slot.specialty_code,
            },
            "facility": {
                "id": self.facility_id,
                "name": self.facility_name,
                "finess": self.facility_finess,
            },
            "hold_expires_at": self.hold_expires_at.isoformat() if self.hold_expires_at else None,
            "created_at": self.created_at.isoformat(),
            "cancelled_at": self.cancelled_at.isoformat() if self.cancelled_at else None,
            "cancel_reason": self.cancel_reason,
            "rescheduled_from_id": self.rescheduled_from_id,
            "answers": self.answers or {},
        }


_VIEW = (
    select(
        Booking.id,
        Booking.status,
        Booking.act_type,
        Booking.patient_id,
        func.coalesce(Patient.reference, ""),
        Booking.reason,
        Booking.facility_id,
        Facility.name,
        Facility.finess,
        Booking.booked_by_id,
        Slot.id,
        Slot.starts_at,
        Slot.ends_at,
        Slot.specialty_id,
        User.id,
        User.full_name,
        Specialty.code,
        Specialty.name,
        Booking.hold_expires_at,
        Booking.created_at,
        Booking.cancelled_at,
        Booking.cancel_reason,
        Booking.rescheduled_from_id,
        Booking.form_id,
        Booking.answers,
    )
    .join(Slot, Slot.id == Booking.slot_id)
    .join(Facility, Facility.id == Booking.facility_id)
    .join(User, User.id == Slot.specialist_id)
    .join(Specialty, Specialty.id == Slot.specialty_id)
    .outerjoin(Patient, Patient.id == Booking.patient_id)
)
_ONE = _VIEW.where(Booking.id == bindparam("booking_id"))


def _view(r: Any) -> BookingView:
    return BookingView(
        r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9],
        SlotView(r[10], r[11], r[12], r[13], r[14], r[15], r[16], r[17]),
        r[18], r[19], r[20], r[21], r[22], r[23], r[24],
    )  # fmt: skip


_LOAD = Prepared(_ONE)


async def load(session: Executor, booking_id: int) -> BookingView:
    row = await _LOAD.first(session, {"booking_id": booking_id})
    if row is None:
        raise NotFound(f"Rendez-vous {booking_id} introuvable.")
    return _view(row)


def may_see(user: User, booking: BookingView) -> bool:
    """Patient data is for the booking facility's staff and the slot's specialist only."""
    if user.role is Role.STAFF:
        return booking.facility_id == user.facility_id
    if user.role is Role.SPECIALIST:
        return booking.slot.specialist_id == user.id
    return False


# --- holding and booking ------------------------------------------------------------------------


def _staff_only(user: User) -> int:
    if user.role is not Role.STAFF or user.facility_id is None:
        raise Forbidden("Seul le personnel d'un établissement réserve des créneaux.")
    return user.facility_id


@dataclass(frozen=True)
class _Target:
    """A slot about to be booked, with what the response needs and the hold on it, if any."""

    slot: SlotView
    status: SlotStatus
    act_mask: int
    facility_name: str
    facility_finess: str
    facility_active: bool | None
    patient_ref: str | None  # the named resident's reference, if the facility's
    hold_id: int | None
    hold_facility_id: int | None
    hold_expires_at: datetime | None


_TARGET = (
    select(
        Slot.id,
        Slot.starts_at,
        Slot.ends_at,
        Slot.specialty_id,
        User.id,
        User.full_name,
        Specialty.code,
        Specialty.name,
        Slot.status,
        Slot.act_mask,
        select(Facility.name).where(Facility.id == bindparam("facility_id")).scalar_subquery(),
        select(Facility.finess).where(Facility.id == bindparam("facility_id")).scalar_subquery(),
        select(Facility.is_active).where(Facility.id == bindparam("facility_id")).scalar_subquery(),
        select(Patient.reference)
        .where(
            Patient.id == bindparam("patient_id"), Patient.facility_id == bindparam("facility_id")
        )
        .scalar_subquery(),
        Booking.id,
        Booking.facility_id,
        Booking.hold_expires_at,
    )
    .join(User, User.id == Slot.specialist_id)
    .join(Specialty, Specialty.id == Slot.specialty_id)
    .outerjoin(Booking, and_(Booking.slot_id == Slot.id, _HELD))
    .where(Slot.id == bindparam("slot_id"))
)


async def _target(
    session: Executor,
    slot_id: int,
    facility_id: int,
    act_type: ActType | None,
    now: datetime,
    patient_id: int | None = None,
) -> _Target:
    """One query for the slot, its specialist, the caller's facility, the resident named
    (if the facility's) and any hold on the slot."""
    r = (
        await session.execute(
            _TARGET, {"slot_id": slot_id, "facility_id": facility_id, "patient_id": patient_id}
        )
    ).first()
    return _checked(r, slot_id, act_type, now, patient_id)


def _checked(
    r: Any, slot_id: int, act_type: ActType | None, now: datetime, patient_id: int | None
) -> _Target:
    if r is None:
        raise NotFound(f"Créneau {slot_id} introuvable.", code="slot_not_found")
    target = _Target(SlotView(*r[:8]), *cast(Any, r[8:17]))
    if not target.facility_active:
        raise Conflict(
            "Cet établissement est désactivé : il ne prend plus de réservation.",
            code="facility_inactive",
        )
    if patient_id is not None and target.patient_ref is None:
        raise patients.UnknownResident()
    if target.status is not SlotStatus.OPEN:
        raise Conflict("Ce créneau n'est plus proposé.", code="slot_unavailable")
    if target.slot.starts_at <= now:
        # The request is well formed; the slot's time has gone: a state, not a bad field.
        raise Conflict("Ce créneau est déjà passé.", code="slot_in_past")
    if act_type is not None and not target.act_mask & ACT_BITS[act_type]:
        offered = ", ".join(t.value for t in act_types_of(target.act_mask))
        raise Conflict(
            f"Ce créneau ne propose pas « {act_type.value} » (proposé : {offered}).",
            code="act_type_not_offered",
        )
    return target


async def _release_expired_hold(session: Executor, target: _Target, now: datetime) -> None:
    if target.hold_id is None or target.hold_expires_at is None or target.hold_expires_at > now:
        return
    await session.execute(
        update(Booking)
        .where(Booking.id == target.hold_id, Booking.status == BookingStatus.HELD)
        .values(status=BookingStatus.EXPIRED)
    )


_BOOKINGS = cast(Table, Booking.__table__)
_INSERT = insert(_BOOKINGS).returning(_BOOKINGS.c.id)


async def _insert_booking(session: Executor, values: dict[str, Any], slot: SlotView) -> int:
    """Insert an active booking; a second active booking for the slot is a SlotTaken.

    The slot's specialist and times are copied onto the booking (the lists' index).
    No savepoint: a SlotTaken ends the whole transaction anyway."""
    row = values | {
        "specialist_id": slot.specialist_id,
        "starts_at": slot.starts_at,
        "ends_at": slot.ends_at,
    }
    try:
        return int((await session.execute(_INSERT, row)).scalar_one())
    except IntegrityError as exc:
        if is_unique_violation(exc):
            raise SlotTaken() from None
        raise


def _new(booking_id: int, target: _Target, values: dict[str, Any]) -> BookingView:
    """The view of a booking this transaction just wrote, without reading it back."""
    return BookingView(
        id=booking_id,
        status=values["status"],
        act_type=values["act_type"],
        patient_id=values.get("patient_id"),
        patient_ref=target.patient_ref or "",
        reason=values.get("reason", ""),
        facility_id=values["facility_id"],
        facility_name=target.facility_name,
        facility_finess=target.facility_finess,
        booked_by_id=values["booked_by_id"],
        slot=target.slot,
        hold_expires_at=values.get("hold_expires_at"),
        created_at=values["created_at"],
        cancelled_at=None,
        cancel_reason="",
        rescheduled_from_id=None,
        form_id=values.get("form_id"),
        answers=values.get("answers"),
    )


async def hold_slot(
    session: Executor, ctx: Context, slot_id: int, hold: Hold, *, hold_minutes: int
) -> BookingView:
    user, now, act_type = ctx.caller, ctx.now, hold.act_type
    facility_id = _staff_only(user)
    target = await _target(session, slot_id, facility_id, act_type, now)
    await _release_expired_hold(session, target, now)
    values = {
        "slot_id": target.slot.id,
        "facility_id": facility_id,
        "booked_by_id": user.id,
        "act_type": act_type or act_types_of(target.act_mask)[0],
        "status": BookingStatus.HELD,
        "hold_expires_at": now + timedelta(minutes=hold_minutes),
        "created_at": now,
        "reason": "",
        "cancel_reason": "",
    }
    booking_id = await _insert_booking(session, values, target.slot)
    await audit.event(session, ctx, "booking.held", target_type="booking", target_id=booking_id)
    return _new(booking_id, target, values)


# The latest stored version of the slot's specialty form for the act: the booking names it.
_FORMS = cast(Table, RequestForm.__table__).c


def _latest_form(column: Any) -> Any:
    return (
        select(column)
        .where(_FORMS.specialty_id == Slot.specialty_id, _FORMS.act_type == bindparam("act_type"))
        .order_by(_FORMS.version.desc())
        .limit(1)
        .scalar_subquery()
    )


# `_TARGET` and the form to fill, in one statement: every booking reads it.
_BOOK_TARGET = Prepared(
    _TARGET.add_columns(_latest_form(_FORMS.id), _latest_form(sa_cast(_FORMS.definition, Text)))
)
# Parsed definitions by their stored text: a stored version never changes.
_DEFINITIONS: dict[str, FormDefinition] = {}


def _definition(stored: str) -> FormDefinition:
    found = _DEFINITIONS.get(stored)
    if found is None:
        if len(_DEFINITIONS) >= 256:
            _DEFINITIONS.clear()
        found = _DEFINITIONS[stored] = FormDefinition.model_validate_json(stored)
    return found


class _NeedsSession(Exception):
    """`_prepare` on a bare driver connection met what only a session can do."""


async def _prepare(
    session: Executor | Driver, ctx: Context, new: NewBooking
) -> tuple[_Target, dict[str, Any]]:
    """The checks of a booking and the row to write: one read (the slot, the facility, the
    resident, any hold, the form), then the answers checked against the form."""
    user, now, act_type = ctx.caller, ctx.now, new.act_type
    facility_id = _staff_only(user)
    if new.facility_id not in (None, facility_id):
        raise Forbidden("Vous ne réservez que pour votre propre établissement.")
    params = {
        "slot_id": new.slot_id,
        "facility_id": facility_id,
        "patient_id": new.patient_id,
        "act_type": act_type,
    }
    r = await _BOOK_TARGET.first(session, params)
    target = _checked(r, new.slot_id, act_type, now, new.patient_id)
    form_id, definition = cast(Any, r)[17:19]  # r is a row: `_checked` refuses None
    answers: dict[str, Any] | None = None
    if form_id is not None:
        answers = request_forms.validate_answers(_definition(definition), new.answers, strict=True)
    elif request_forms.builtin_for(target.slot.specialty_code, act_type) is not None:
        # A built-in form not saved yet: saved now as version 1, so the answers name it.
        if isinstance(session, Driver):
            raise _NeedsSession()
        form_id, answers = await form_versions.answered(
            session, target.slot.specialty_id, act_type, new.answers, now=now
        )
    elif new.answers:
        raise ValidationError(
            "Cette spécialité ne demande pas de formulaire : « answers » doit être vide.",
            field="answers",
        )
    values: dict[str, Any] = {
        "slot_id": target.slot.id,
        "facility_id": facility_id,
        "booked_by_id": user.id,
        "status": BookingStatus.CONFIRMED,
        "created_at": now,
        "confirmed_at": now,
        "cancel_reason": "",
        "patient_id": new.patient_id,
        "reason": new.reason,
        "act_type": act_type,
        "form_id": form_id,
        "answers": answers,
    }
    return target, values


async def book(session: Executor, ctx: Context, new: NewBooking) -> BookingView:
    """Confirm a booking for the caller's facility, converting the caller's own hold if any.

    The common case is three statements: read the slot (and its form), insert the booking,
    audit. `book_at_once` makes it two, without a transaction, where it can."""
    now = ctx.now
    target, values = await _prepare(session, ctx, new)
    facility_id = values["facility_id"]
    fields = {k: values[k] for k in ("patient_id", "reason", "act_type", "form_id", "answers")}
    booking_id = None
    own_hold = (
        target.hold_id is not None
        and target.hold_facility_id == facility_id
        and target.hold_expires_at is not None
        and target.hold_expires_at > now
    )
    if own_hold:
        confirmed = await session.execute(
            update(Booking)
            .where(
                Booking.id == target.hold_id,
                Booking.status == BookingStatus.HELD,
                Booking.hold_expires_at > now,
            )
            .values(
                status=BookingStatus.CONFIRMED, hold_expires_at=None, confirmed_at=now, **fields
            )
            .returning(Booking.id)
        )
        booking_id = confirmed.scalar_one_or_none()
    if booking_id is None:
        await _release_expired_hold(session, target, now)
        booking_id = await _insert_booking(session, values, target.slot)
    await audit.event(
        session,
        ctx,
        "booking.created",
        target_type="booking",
        target_id=booking_id,
        patient_id=new.patient_id,
    )
    return _new(booking_id, target, values)


_SLOTS = cast(Table, Slot.__table__).c
# The slot is still open and to come when the row is written (it was when it was read).
_STILL_OPEN = exists().where(
    _SLOTS.id == bindparam("slot_id"),
    _SLOTS.status == SlotStatus.OPEN,
    _SLOTS.starts_at > bindparam("now"),
)
_AT_ONCE: dict[tuple[str, ...], Prepared] = {}


def _at_once(columns: tuple[str, ...]) -> Prepared:
    """INSERT the booking if its slot is still open, then its audit event and the key with
    the response (the booking's id set in SQL), as CTEs of one statement."""
    found = _AT_ONCE.get(columns)
    if found is None:
        c = _BOOKINGS.c
        row = select(*(bindparam(name, type_=c[name].type) for name in columns))
        booked = (
            insert(_BOOKINGS)
            .from_select(list(columns), row.where(_STILL_OPEN))
            .returning(c.id)
            .cte("booked")
        )
        response = sa_cast(
            sa_cast(bindparam("response", type_=JSONB), JSONB).op("||")(
                func.jsonb_build_object("id", booked.c.id)
            ),
            JSON,
        )
        audited = audit.insert_after(booked, booked.c.id).cte("audited")
        keyed = idempotency.insert_after(booked, response).cte("keyed")
        found = _AT_ONCE[columns] = Prepared(select(booked.c.id).add_cte(audited, keyed))
    return found


async def book_at_once(
    conn: Driver, ctx: Context, new: NewBooking, key: idempotency.Pending
) -> dict[str, Any] | None:
    """`book` and the key's response in two statements and no transaction (PostgreSQL, on
    an autocommit connection): the read, then one statement writing the booking, its audit
    event and the key, all or nothing. Returns the booking's JSON, the very one stored with
    the key (built once: the answer and its replays differ only in key order). None if the
    slot has a hold (converted or released by `book`, in a transaction) or the specialty's
    built-in form has no stored version yet (`book` saves it).

    The write re-checks that the slot is still open and to come; the partial unique index
    still decides between two bookers, and the key's unique index between two twins."""
    try:
        target, values = await _prepare(conn, ctx, new)
    except _NeedsSession:
        return None
    if target.hold_id is not None:
        return None
    slot = target.slot
    row = values | {
        "specialist_id": slot.specialist_id,
        "starts_at": slot.starts_at,
        "ends_at": slot.ends_at,
    }
    body = _new(0, target, values).as_json()  # the id is set by the write, in SQL and here
    params = {
        **row,
        "now": ctx.now,
        "response": body,
        **audit.params(ctx, "booking.created", target_type="booking", patient_id=new.patient_id),
        **idempotency.params(key),
    }
    try:
        written = await _at_once(tuple(row)).first(conn, params)
    except IntegrityError as exc:
        if is_unique_violation(exc):
            if constraint_name(exc) == idempotency.KEY_CONSTRAINT:
                raise idempotency.KeyTaken() from None
            raise SlotTaken() from None
        raise
    if written is None:
        raise Conflict("Ce créneau n'est plus proposé.", code="slot_unavailable")
    body["id"] = written[0]
    return body


# --- reading ------------------------------------------------------------------------------------


async def get_booking(session: AsyncSession, ctx: Context, booking_id: int) -> BookingView:
    booking = await load(session, booking_id)
    if not may_see(ctx.caller, booking):
        raise NotFound(f"Rendez-vous {booking_id} introuvable.")  # as if it did not exist
    await audit.event(
        session, ctx, "booking.read", target_type="booking", target_id=booking.id,
        patient_id=booking.patient_id,
    )  # fmt: skip
    return booking


# A slot lasts at most this long (rules are the only source of slots, and they cap it), so a
# booking still in progress started less than this before now: the bound lets the upcoming
# list start its index range there instead of at the facility's first booking.
LONGEST_SLOT = timedelta(minutes=availability.MAX_SLOT_MINUTES)
_LISTED = Booking.status != literal_column("'expired'")  # the lists' partial indexes' predicate


def _viewer(user: User) -> bool:
    """True for a facility's staff, False for a specialist; no one else lists bookings."""
    if user.role is Role.STAFF:
        return True
    if user.role is Role.SPECIALIST:
        return False
    raise Forbidden("Les rendez-vous ne sont visibles que des établissements et des spécialistes.")


def _seen_by(user: User) -> Any:
    if _viewer(user):
        return Booking.facility_id == user.facility_id
    return Booking.specialist_id == user.id


_LISTS: dict[tuple[bool, bool, bool, bool], Prepared] = {}


def _list_statement(staff: bool, past: bool, keyed: bool, holds: bool) -> Prepared:
    """One of the 16 shapes of a page of bookings, built once, its values bound."""
    shape = (staff, past, keyed, holds)
    found = _LISTS.get(shape)
    if found is not None:
        return found
    at = Booking.starts_at.type
    now, after_at = bindparam("now", type_=at), bindparam("after_at", type_=at)
    after_id = bindparam("after_id", type_=Integer)
    viewer = Booking.facility_id if staff else Booking.specialist_id
    # One range bound on `starts_at` (SQLite takes one as the index range, not a row value),
    # the rest a filter that only breaks ties on id.
    query = _VIEW.where(viewer == bindparam("viewer", type_=Integer), _LISTED)
    if not holds:
        query = query.where(Booking.status != literal_column("'held'"))
    if past:
        query = query.where(Booking.ends_at <= now).order_by(
            Booking.starts_at.desc(), Booking.id.desc()
        )
        query = query.where(
            and_(
                Booking.starts_at <= after_at,
                or_(Booking.starts_at < after_at, Booking.id < after_id),
            )
            if keyed
            else Booking.starts_at < now
        )
    else:
        query = query.where(Booking.ends_at > now).order_by(Booking.starts_at, Booking.id)
        query = query.where(
            and_(
                Booking.starts_at >= after_at,
                or_(Booking.starts_at > after_at, Booking.id > after_id),
            )
            if keyed
            else Booking.starts_at > bindparam("floor", type_=at)
        )
    found = _LISTS[shape] = Prepared(query.limit(bindparam("limit", type_=Integer)))
    return found


async def list_bookings(
    session: Executor | Driver,
    ctx: Context,
    *,
    past: bool = False,
    after: Key | None = None,
    limit: int = DEFAULT_LIMIT,
    holds: bool = True,
    record: bool = True,
) -> Page[BookingView]:
    """A page of the facility's bookings (staff) or of the specialist's: upcoming (not ended
    yet) earliest first, or past (ended) latest first, in slot order then id, after the key
    of the previous page.

    It reads `limit + 1` rows off `ix_bookings_facility_starts_at` (staff) or
    `ix_bookings_specialist_starts_at` (specialist), whatever the history's length: the
    order is the index's, and the range starts at the key (or at now).

    Patient references are shown: the page is one `booking.listed` audit event naming its
    ids (written before the page is returned, so a page is never shown unrecorded). A
    caller showing several lists in one answer passes `record=False` and calls
    `record_listed` once with all of them."""
    user, now = ctx.caller, ctx.now
    staff = _viewer(user)
    values: dict[str, Any] = {
        "viewer": user.facility_id if staff else user.id,
        "now": now,
        "floor": now - LONGEST_SLOT,
        "limit": limit + 1,
    }
    keyed = after is not None and (past or after[0] > now - LONGEST_SLOT)
    if after is not None:
        values["after_at"], values["after_id"] = after
    statement = _list_statement(staff, past, keyed, holds)
    rows = [_view(r) for r in await statement.all(session, values)]
    page = Page.of(rows, limit, lambda b: (b.slot.starts_at, b.id))
    if record:
        await record_listed(session, ctx, page.items)
    return page


async def bookings_between(
    session: AsyncSession, ctx: Context, start: datetime, end: datetime, *, limit: int
) -> list[BookingView]:
    """The caller's bookings starting in [start, end), in slot order: a calendar's window,
    bounded by its length (the agenda's week). One `booking.listed` event."""
    query = (
        _VIEW.where(
            _seen_by(ctx.caller), _LISTED, Booking.starts_at >= start, Booking.starts_at < end
        )
        .order_by(Booking.starts_at, Booking.id)
        .limit(limit)
    )
    bookings = [_view(r) for r in await session.execute(query)]
    await record_listed(session, ctx, bookings)
    return bookings


async def record_listed(session: Executor | Driver, ctx: Context, shown: list[BookingView]) -> None:
    """One access event for a request's list of bookings, naming them; never one per row."""
    if shown:
        await audit.event(
            session,
            ctx,
            "booking.listed",
            target_type="booking",
            target_id=len(shown),
            ids=[b.id for b in shown],
        )


# --- changing -------------------------------------------------------------------------------------


async def _changeable(session: Executor, user: User, booking_id: int, now: datetime) -> BookingView:
    booking = await load(session, booking_id)
    if not may_see(user, booking):
        raise NotFound(f"Rendez-vous {booking_id} introuvable.")  # as if it did not exist
    if booking.slot.starts_at <= now:
        raise Conflict(
            "Ce rendez-vous a déjà commencé : il ne peut plus être modifié.", code="too_late"
        )
    return booking


def _ended_by(reason: Any) -> Any:
    """Set a booking cancelled by the caller, now, for `reason`, if it is still `status`."""
    c = _BOOKINGS.c
    return (
        update(_BOOKINGS)
        .values(
            status=BookingStatus.CANCELLED,
            cancelled_at=bindparam("now", type_=c.cancelled_at.type),
            cancelled_by_id=bindparam("by", type_=Integer),
            cancel_reason=reason,
        )
        .returning(c.id)
    )


_CANCEL = Prepared(
    _ended_by(bindparam("why", type_=_BOOKINGS.c.cancel_reason.type)).where(
        _BOOKINGS.c.id == bindparam("booking_id", type_=Integer),
        or_(
            _BOOKINGS.c.status == BookingStatus.HELD,
            _BOOKINGS.c.status == BookingStatus.CONFIRMED,
        ),
    )
)
# On PostgreSQL the change and its audit event are one statement (data-modifying CTEs): on
# a bare connection, a cancellation is the read and this, with no BEGIN or COMMIT.
_CANCELLING = _CANCEL.statement.cte("cancelled")
_CANCEL_AUDITED = Prepared(
    select(_CANCELLING.c.id).add_cte(
        audit.insert_after(_CANCELLING, _CANCELLING.c.id).cte("audited")
    )
)
_MOVED = Prepared(
    _ended_by(bindparam("why", type_=_BOOKINGS.c.cancel_reason.type)).where(
        _BOOKINGS.c.id == bindparam("booking_id", type_=Integer),
        _BOOKINGS.c.status == BookingStatus.CONFIRMED,
    )
)


async def cancel(
    session: Executor, ctx: Context, booking_id: int, cancellation: Cancellation
) -> BookingView:
    """The read, then the conditional update with its audit event: one statement on
    PostgreSQL, two elsewhere (the answer is the read with the change applied, not read
    again). The update re-checks that the booking is still active."""
    user, now, reason_text = ctx.caller, ctx.now, cancellation.reason
    booking = await _changeable(session, user, booking_id, now)
    values = {"booking_id": booking.id, "now": now, "by": user.id, "why": reason_text}
    one_statement = dialect_name(session) == "postgresql"
    if one_statement:
        values |= audit.params(ctx, "booking.cancelled", target_type="booking")
    changed = await (_CANCEL_AUDITED if one_statement else _CANCEL).first(session, values)
    if changed is None:
        raise Conflict("Ce rendez-vous n'est plus actif.", code="booking_not_active")
    if not one_statement:
        await audit.event(
            session, ctx, "booking.cancelled", target_type="booking", target_id=booking.id
        )
    return dataclasses.replace(
        booking, status=BookingStatus.CANCELLED, cancelled_at=now, cancel_reason=reason_text
    )


async def reschedule(session: Executor, ctx: Context, booking_id: int, move: Move) -> BookingView:
    """Move a booking to another slot: the new one is taken first, the old freed only then."""
    user, now = ctx.caller, ctx.now
    old = await _changeable(session, user, booking_id, now)
    if old.status is not BookingStatus.CONFIRMED:
        raise Conflict("Seul un rendez-vous confirmé peut être déplacé.", code="booking_not_active")
    target = await _target(session, move.slot_id, old.facility_id, old.act_type, now)
    if target.slot.id == old.slot.id:
        raise ValidationError("C'est déjà le créneau de ce rendez-vous.", field="slot_id")
    if target.slot.specialty_id != old.slot.specialty_id:
        raise ValidationError(
            "Le nouveau créneau doit être de la même spécialité.", field="slot_id"
        )
    await _release_expired_hold(session, target, now)
    values = {
        "slot_id": target.slot.id,
        "facility_id": old.facility_id,
        "booked_by_id": user.id if user.role is Role.STAFF else old.booked_by_id,
        "patient_id": old.patient_id,
        "form_id": old.form_id,
        "answers": old.answers,
        "act_type": old.act_type,
        "reason": old.reason,
        "status": BookingStatus.CONFIRMED,
        "created_at": now,
        "confirmed_at": now,
        "cancel_reason": "",
        "rescheduled_from_id": old.id,
    }
    new_id = await _insert_booking(session, values, target.slot)
    freed = await _MOVED.first(
        session,
        {
            "booking_id": old.id,
            "now": now,
            "by": user.id,
            "why": f"Reporté au rendez-vous {new_id}",
        },
    )
    if freed is None:
        # Cancelled meanwhile: the whole transaction (and the new booking) is rolled back.
        raise Conflict("Ce rendez-vous a été modifié entre-temps.", code="booking_not_active")
    await audit.event(
        session,
        ctx,
        "booking.rescheduled",
        target_type="booking",
        target_id=new_id,
        previous=old.id,
    )
    return dataclasses.replace(
        _new(new_id, target, values), patient_ref=old.patient_ref, rescheduled_from_id=old.id
    )


async def complete(session: Executor, booking_id: int) -> bool:
    """The consultation took place (called by `consultations.end`); False if the booking
    was no longer confirmed."""
    result = await session.execute(
        update(Booking)
        .where(Booking.id == booking_id, Booking.status == BookingStatus.CONFIRMED)
        .values(status=BookingStatus.COMPLETED)
        .returning(Booking.id)
    )
    return result.first() is not None


async def mark_no_shows(session: Executor, *, ended_before: datetime) -> int:
    """Confirmed bookings whose slot ended before `ended_before` and whose consultation
    never started (the no-show job)."""
    started = select(Consultation.booking_id).where(Consultation.started_at.is_not(None))
    result = await session.execute(
        update(Booking)
        .where(
            Booking.status == BookingStatus.CONFIRMED,
            Booking.slot_id.in_(select(Slot.id).where(Slot.ends_at < ended_before)),
            Booking.id.not_in(started),
        )
        .values(status=BookingStatus.NO_SHOW)
        .returning(Booking.id)
    )
    return len(result.all())


async def expire_holds(session: AsyncSession, *, now: datetime) -> int:
    result = await session.execute(
        update(Booking)
        .where(Booking.status == BookingStatus.HELD, Booking.hold_expires_at <= now)
        .values(status=BookingStatus.EXPIRED)
        .returning(Booking.id)
    )
    return len(result.all())


async def count_double_bookings(session: AsyncSession) -> int:
    """Slots with more than one active booking: always 0 unless the database failed us."""
    active = Booking.status.in_(
        (BookingStatus.HELD, BookingStatus.CONFIRMED, BookingStatus.COMPLETED)
    )
    per_slot = (
        select(Booking.slot_id).where(active).group_by(Booking.slot_id).having(func.count() > 1)
    )
    return int(await session.scalar(select(func.count()).select_from(per_slot.subquery())) or 0)


# --- moves, for the lists ------------------------------------------------------------------------


_MOVED_TO = (
    select(Booking.rescheduled_from_id, Slot.starts_at)
    .join(Slot, Slot.id == Booking.slot_id)
    .where(Booking.rescheduled_from_id.in_(bindparam("ids", expanding=True)))
    .order_by(Booking.id)
)


async def moved_to(session: Executor, booking_ids: list[int]) -> dict[int, datetime]:
    """For each given booking that was rescheduled, the start of the booking that replaced it.

    A moved booking is kept, cancelled, so that its history stays; the lists show where it
    went (« Déplacé au … ») rather than its cancellation. One hop only: a booking moved twice
    shows its own next slot, which shows the one after. Callers pass ids they may see.
    """
    if not booking_ids:
        return {}
    rows = await session.execute(_MOVED_TO, {"ids": sorted(set(booking_ids))})
    return {old: starts_at for old, starts_at in rows if old is not None}
