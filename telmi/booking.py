"""Searching free slots, holding, booking, cancelling and rescheduling.

The database has the last word on double booking: a partial unique index allows one active
booking per slot, so of two concurrent inserts one fails and becomes `SlotTaken` (409).
Every state change is one conditional UPDATE whose WHERE clause names the state it expects;
zero rows changed means someone else got there first.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased, joinedload

from telmi import audit
from telmi.db import is_unique_violation
from telmi.errors import Conflict, Forbidden, NotFound, ValidationError
from telmi.models import (
    ACT_BITS,
    ActType,
    Booking,
    BookingStatus,
    Role,
    Slot,
    SlotStatus,
    Specialty,
    User,
    act_types_of,
)

MAX_PAGE = 100
PATIENT_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$")
_LIVE = (BookingStatus.CONFIRMED, BookingStatus.COMPLETED)


class SlotTaken(Conflict):
    code = "slot_taken"
    message = "Ce créneau vient d'être réservé par quelqu'un d'autre. Choisissez-en un autre."


# --- validation ---------------------------------------------------------------------------------


def check_patient_ref(value: Any) -> str:
    if not isinstance(value, str) or not PATIENT_REF.match(value.strip()):
        raise ValidationError(
            "« patient_ref » : la référence interne du résident (lettres, chiffres, . _ / -, "
            "64 caractères au plus), jamais son nom.",
            field="patient_ref",
        )
    return value.strip()


def check_ins(value: Any) -> str | None:
    """The INS (NIR) with its key: 13 characters (2A/2B for Corsica) plus 97 - (n mod 97)."""
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise ValidationError("« patient_ins » doit être une chaîne.", field="patient_ins")
    ins = value.replace(" ", "").upper()
    if len(ins) != 15:
        raise ValidationError("INS : 15 caractères attendus (13 + clé).", field="patient_ins")
    body, key = ins[:13], ins[13:]
    numeric = body.replace("2A", "19", 1) if body[5:7] == "2A" else body
    numeric = numeric.replace("2B", "18", 1) if body[5:7] == "2B" else numeric
    if not (numeric.isdigit() and key.isdigit()) or 97 - int(numeric) % 97 != int(key):
        raise ValidationError(
            "INS invalide : la clé de contrôle ne correspond pas.", field="patient_ins"
        )
    return ins


def check_act_type(value: Any) -> ActType:
    try:
        return ActType(value)
    except ValueError:
        allowed = ", ".join(t.value for t in ActType)
        raise ValidationError(
            f"« act_type » inconnu (attendu : {allowed}).", field="act_type"
        ) from None


def check_text(value: Any, name: str, limit: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > limit:
        raise ValidationError(f"« {name} » : texte de {limit} caractères au plus.", field=name)
    return value.strip()


# --- search -------------------------------------------------------------------------------------


@dataclass(frozen=True)
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


def encode_cursor(slot: FreeSlot) -> str:
    raw = f"{slot.starts_at.isoformat()}|{slot.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        when, slot_id = raw.split("|")
        return datetime.fromisoformat(when), int(slot_id)
    except (ValueError, UnicodeDecodeError):
        raise ValidationError("Curseur de pagination invalide.", field="cursor") from None


def _taken(slot_id: Any, now: datetime) -> Any:
    """An active booking on the slot: confirmed, done, or a hold that has not expired."""
    return exists().where(
        Booking.slot_id == slot_id,
        or_(
            Booking.status.in_(_LIVE),
            and_(Booking.status == BookingStatus.HELD, Booking.hold_expires_at > now),
        ),
    )


async def search_free_slots(
    session: AsyncSession,
    *,
    specialty: str | None,
    start: datetime,
    end: datetime | None,
    departement: str | None = None,
    act_type: ActType | None = None,
    now: datetime,
    limit: int = 20,
    cursor: str | None = None,
) -> tuple[list[FreeSlot], str | None]:
    """Free slots earliest first across specialists; returns a page and the next cursor."""
    specialist = aliased(User)
    query: Any = (
        select(
            Slot.id,
            Slot.starts_at,
            Slot.ends_at,
            Slot.act_mask,
            specialist.id,
            specialist.full_name,
            Specialty.code,
            Specialty.name,
            specialist.departement_code,
        )
        .join(specialist, specialist.id == Slot.specialist_id)
        .join(Specialty, Specialty.id == Slot.specialty_id)
        .where(
            Slot.status == SlotStatus.OPEN,
            Slot.starts_at >= max(start, now),
            specialist.is_active.is_(True),
            ~_taken(Slot.id, now),
        )
        .order_by(Slot.starts_at, Slot.id)
        .limit(limit + 1)
    )
    if specialty is not None:
        specialty_id = await session.scalar(select(Specialty.id).where(Specialty.code == specialty))
        if specialty_id is None:
            raise ValidationError(f"Spécialité « {specialty} » inconnue.", field="specialty")
        query = query.where(Slot.specialty_id == specialty_id)
    if end is not None:
        query = query.where(Slot.starts_at < end)
    if departement is not None:
        query = query.where(specialist.departement_code == departement)
    if act_type is not None:
        query = query.where(Slot.act_mask.op("&")(ACT_BITS[act_type]) != 0)
    if cursor is not None:
        after, after_id = decode_cursor(cursor)
        query = query.where(
            or_(Slot.starts_at > after, and_(Slot.starts_at == after, Slot.id > after_id))
        )
    rows = (await session.execute(query)).all()
    found = [
        FreeSlot(r[0], r[1], r[2], act_types_of(r[3]), r[4], r[5], r[6], r[7], r[8])
        for r in rows[:limit]
    ]
    next_cursor = encode_cursor(found[-1]) if len(rows) > limit else None
    return found, next_cursor


# --- holding and booking ------------------------------------------------------------------------


def _staff_only(user: User) -> int:
    if user.role is not Role.STAFF or user.facility_id is None:
        raise Forbidden("Seul le personnel d'un établissement réserve des créneaux.")
    return user.facility_id


async def _bookable_slot(
    session: AsyncSession, slot_id: Any, act_type: ActType | None, now: datetime
) -> Slot:
    if isinstance(slot_id, bool) or not isinstance(slot_id, int):
        raise ValidationError("« slot_id » doit être un entier.", field="slot_id")
    slot = await session.get(Slot, slot_id)
    if slot is None:
        raise NotFound(f"Créneau {slot_id} introuvable.", code="slot_not_found")
    if slot.status is not SlotStatus.OPEN:
        raise Conflict("Ce créneau n'est plus proposé.", code="slot_unavailable")
    if slot.starts_at <= now:
        raise ValidationError("Ce créneau est déjà passé.", field="slot_id", code="slot_in_past")
    if act_type is not None and not slot.act_mask & ACT_BITS[act_type]:
        offered = ", ".join(t.value for t in act_types_of(slot.act_mask))
        raise ValidationError(
            f"Ce créneau ne propose pas « {act_type.value} » (proposé : {offered}).",
            field="act_type",
            code="act_type_not_offered",
        )
    return slot


async def _release_expired_hold(session: AsyncSession, slot_id: int, now: datetime) -> None:
    await session.execute(
        update(Booking)
        .where(
            Booking.slot_id == slot_id,
            Booking.status == BookingStatus.HELD,
            Booking.hold_expires_at <= now,
        )
        .values(status=BookingStatus.EXPIRED)
    )


async def _insert_booking(session: AsyncSession, values: dict[str, Any]) -> int:
    """Insert an active booking; a second active booking for the slot is a SlotTaken."""
    try:
        async with session.begin_nested():
            result = await session.execute(insert(Booking).values(**values).returning(Booking.id))
            return int(result.scalar_one())
    except IntegrityError as exc:
        if is_unique_violation(exc):
            raise SlotTaken() from None
        raise


async def hold_slot(
    session: AsyncSession,
    user: User,
    slot_id: Any,
    *,
    act_type: ActType | None,
    now: datetime,
    hold_minutes: int,
    address: str = "",
) -> Booking:
    facility_id = _staff_only(user)
    slot = await _bookable_slot(session, slot_id, act_type, now)
    await _release_expired_hold(session, slot.id, now)
    booking_id = await _insert_booking(
        session,
        {
            "slot_id": slot.id,
            "facility_id": facility_id,
            "booked_by_id": user.id,
            "act_type": act_type or act_types_of(slot.act_mask)[0],
            "status": BookingStatus.HELD,
            "hold_expires_at": now + timedelta(minutes=hold_minutes),
            "created_at": now,
            "patient_ref": "",
            "reason": "",
            "cancel_reason": "",
        },
    )
    await audit.record(
        session,
        "booking.held",
        actor=user,
        address=address,
        target_type="booking",
        target_id=booking_id,
    )
    return await _load(session, booking_id)


async def book(
    session: AsyncSession,
    user: User,
    body: dict[str, Any],
    *,
    now: datetime,
    address: str = "",
) -> Booking:
    """Confirm a booking for the caller's facility, converting the caller's own hold if any."""
    facility_id = _staff_only(user)
    if body.get("facility_id", facility_id) != facility_id:
        raise Forbidden("Vous ne réservez que pour votre propre établissement.")
    act_type = check_act_type(body.get("act_type"))
    fields = {
        "patient_ref": check_patient_ref(body.get("patient_ref")),
        "patient_ins": check_ins(body.get("patient_ins")),
        "reason": check_text(body.get("reason"), "reason", 2000),
        "act_type": act_type,
    }
    slot = await _bookable_slot(session, body.get("slot_id"), act_type, now)
    confirmed = await session.execute(
        update(Booking)
        .where(
            Booking.slot_id == slot.id,
            Booking.facility_id == facility_id,
            Booking.status == BookingStatus.HELD,
            Booking.hold_expires_at > now,
        )
        .values(status=BookingStatus.CONFIRMED, hold_expires_at=None, confirmed_at=now, **fields)
        .returning(Booking.id)
    )
    booking_id = confirmed.scalar_one_or_none()
    if booking_id is None:
        await _release_expired_hold(session, slot.id, now)
        booking_id = await _insert_booking(
            session,
            {
                "slot_id": slot.id,
                "facility_id": facility_id,
                "booked_by_id": user.id,
                "status": BookingStatus.CONFIRMED,
                "created_at": now,
                "confirmed_at": now,
                "cancel_reason": "",
                **fields,
            },
        )
    await audit.record(
        session,
        "booking.created",
        actor=user,
        address=address,
        target_type="booking",
        target_id=booking_id,
    )
    return await _load(session, booking_id)


# --- reading ------------------------------------------------------------------------------------


async def _load(session: AsyncSession, booking_id: int) -> Booking:
    booking = await session.scalar(
        select(Booking)
        .where(Booking.id == booking_id)
        .execution_options(populate_existing=True)
        .options(*_EAGER)
    )
    if booking is None:
        raise NotFound(f"Rendez-vous {booking_id} introuvable.")
    return booking


_EAGER = (
    joinedload(Booking.slot).joinedload(Slot.specialist).joinedload(User.specialty),
    joinedload(Booking.facility),
)


def may_see(user: User, booking: Booking) -> bool:
    """Patient data is for the booking facility's staff and the slot's specialist only."""
    if user.role is Role.STAFF:
        return booking.facility_id == user.facility_id
    if user.role is Role.SPECIALIST:
        return booking.slot.specialist_id == user.id
    return False


async def get_booking(
    session: AsyncSession, user: User, booking_id: int, *, address: str = ""
) -> Booking:
    booking = await _load(session, booking_id)
    if not may_see(user, booking):
        raise Forbidden("Ce rendez-vous ne concerne ni votre établissement ni votre agenda.")
    await audit.record(
        session,
        "booking.read",
        actor=user,
        address=address,
        target_type="booking",
        target_id=booking.id,
    )
    return booking


async def list_bookings(
    session: AsyncSession,
    user: User,
    *,
    now: datetime,
    past: bool = False,
    start: datetime | None = None,
    end: datetime | None = None,
    address: str = "",
    limit: int = 200,
) -> list[Booking]:
    """The facility's bookings (staff) or the specialist's agenda, upcoming or past."""
    query = select(Booking).join(Slot, Slot.id == Booking.slot_id).options(*_EAGER)
    if user.role is Role.STAFF:
        query = query.where(Booking.facility_id == user.facility_id)
    elif user.role is Role.SPECIALIST:
        query = query.where(Slot.specialist_id == user.id)
    else:
        raise Forbidden(
            "Les rendez-vous ne sont visibles que des établissements et des spécialistes."
        )
    query = query.where(Booking.status != BookingStatus.EXPIRED)
    if start is not None:
        query = query.where(Slot.starts_at >= start)
    if end is not None:
        query = query.where(Slot.starts_at < end)
    if start is None and end is None:
        query = query.where(Slot.ends_at <= now if past else Slot.ends_at > now)
    query = query.order_by(Slot.starts_at.desc() if past else Slot.starts_at).limit(limit)
    bookings = list((await session.scalars(query)).unique())
    if bookings:
        await audit.record(
            session,
            "booking.listed",
            actor=user,
            address=address,
            target_type="booking",
            target_id=",".join(str(b.id) for b in bookings)[:40],
            count=len(bookings),
            ids=[b.id for b in bookings],
        )
    return bookings


# --- changing -------------------------------------------------------------------------------------


async def _changeable(session: AsyncSession, user: User, booking_id: int, now: datetime) -> Booking:
    booking = await _load(session, booking_id)
    if not may_see(user, booking):
        raise Forbidden("Ce rendez-vous ne concerne ni votre établissement ni votre agenda.")
    if booking.slot.starts_at <= now:
        raise Conflict(
            "Ce rendez-vous a déjà commencé : il ne peut plus être modifié.", code="too_late"
        )
    return booking


async def cancel(
    session: AsyncSession,
    user: User,
    booking_id: int,
    *,
    reason: Any,
    now: datetime,
    address: str = "",
) -> Booking:
    booking = await _changeable(session, user, booking_id, now)
    reason_text = check_text(reason, "reason", 500)
    if not reason_text:
        raise ValidationError("Indiquez le motif de l'annulation.", field="reason")
    changed = await session.execute(
        update(Booking)
        .where(
            Booking.id == booking.id,
            Booking.status.in_((BookingStatus.HELD, BookingStatus.CONFIRMED)),
        )
        .values(
            status=BookingStatus.CANCELLED,
            cancelled_at=now,
            cancelled_by_id=user.id,
            cancel_reason=reason_text,
        )
        .returning(Booking.id)
    )
    if changed.scalar_one_or_none() is None:
        raise Conflict("Ce rendez-vous n'est plus actif.", code="booking_not_active")
    await audit.record(
        session,
        "booking.cancelled",
        actor=user,
        address=address,
        target_type="booking",
        target_id=booking.id,
    )
    return await _load(session, booking.id)


async def reschedule(
    session: AsyncSession,
    user: User,
    booking_id: int,
    *,
    slot_id: Any,
    now: datetime,
    address: str = "",
) -> Booking:
    """Move a booking to another slot: the new one is taken first, the old freed only then."""
    old = await _changeable(session, user, booking_id, now)
    if old.status is not BookingStatus.CONFIRMED:
        raise Conflict("Seul un rendez-vous confirmé peut être déplacé.", code="booking_not_active")
    slot = await _bookable_slot(session, slot_id, old.act_type, now)
    if slot.id == old.slot_id:
        raise ValidationError("C'est déjà le créneau de ce rendez-vous.", field="slot_id")
    if slot.specialty_id != old.slot.specialty_id:
        raise ValidationError(
            "Le nouveau créneau doit être de la même spécialité.", field="slot_id"
        )
    await _release_expired_hold(session, slot.id, now)
    new_id = await _insert_booking(
        session,
        {
            "slot_id": slot.id,
            "facility_id": old.facility_id,
            "booked_by_id": user.id if user.role is Role.STAFF else old.booked_by_id,
            "patient_ref": old.patient_ref,
            "patient_ins": old.patient_ins,
            "act_type": old.act_type,
            "reason": old.reason,
            "status": BookingStatus.CONFIRMED,
            "created_at": now,
            "confirmed_at": now,
            "cancel_reason": "",
            "rescheduled_from_id": old.id,
        },
    )
    freed = await session.execute(
        update(Booking)
        .where(Booking.id == old.id, Booking.status == BookingStatus.CONFIRMED)
        .values(
            status=BookingStatus.CANCELLED,
            cancelled_at=now,
            cancelled_by_id=user.id,
            cancel_reason=f"Reporté au rendez-vous {new_id}",
        )
        .returning(Booking.id)
    )
    if freed.scalar_one_or_none() is None:
        # Cancelled meanwhile: the whole transaction (and the new booking) is rolled back.
        raise Conflict("Ce rendez-vous a été modifié entre-temps.", code="booking_not_active")
    await audit.record(
        session,
        "booking.rescheduled",
        actor=user,
        address=address,
        target_type="booking",
        target_id=new_id,
        previous=old.id,
    )
    return await _load(session, new_id)


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
