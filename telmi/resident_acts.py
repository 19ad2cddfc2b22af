"""A resident's bookings and tele-expertise requests, as the reader of the resident page may
see them: the facility's staff all of their facility's, a specialist only their own bookings
and the requests they may read (the same rule as `expertise.may_see`).

Called after `patients.get`, which decided the caller may see the resident at all and wrote
the access event; this only narrows the acts listed beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select

from telmi.db import Executor
from telmi.models import (
    ActType,
    Booking,
    BookingStatus,
    ExpertiseRequest,
    ExpertiseStatus,
    Role,
    Slot,
    Specialty,
    User,
)


@dataclass(frozen=True)
class BookingLine:
    id: int
    status: BookingStatus
    act_type: ActType
    starts_at: datetime
    ends_at: datetime
    specialist_name: str
    specialty_name: str


@dataclass(frozen=True)
class RequestLine:
    id: int
    status: ExpertiseStatus
    specialty_name: str
    created_at: datetime
    sent_at: datetime | None
    due_at: datetime | None


async def bookings_of(session: Executor, user: User, patient_id: int) -> list[BookingLine]:
    """Newest first; holds that expired never were bookings of the resident."""
    query = (
        select(
            Booking.id,
            Booking.status,
            Booking.act_type,
            Slot.starts_at,
            Slot.ends_at,
            User.full_name,
            Specialty.name,
        )
        .join(Slot, Slot.id == Booking.slot_id)
        .join(User, User.id == Slot.specialist_id)
        .join(Specialty, Specialty.id == Slot.specialty_id)
        .where(Booking.patient_id == patient_id, Booking.status != BookingStatus.EXPIRED)
        .order_by(Slot.starts_at.desc(), Booking.id.desc())
    )
    if user.role is Role.STAFF:
        query = query.where(Booking.facility_id == user.facility_id)
    elif user.role is Role.SPECIALIST:
        query = query.where(Slot.specialist_id == user.id)
    else:
        return []
    return [BookingLine(*row) for row in await session.execute(query)]


async def requests_of(session: Executor, user: User, patient_id: int) -> list[RequestLine]:
    """Newest first."""
    query = (
        select(
            ExpertiseRequest.id,
            ExpertiseRequest.status,
            Specialty.name,
            ExpertiseRequest.created_at,
            ExpertiseRequest.sent_at,
            ExpertiseRequest.due_at,
        )
        .join(Specialty, Specialty.id == ExpertiseRequest.specialty_id)
        .where(ExpertiseRequest.patient_id == patient_id)
        .order_by(ExpertiseRequest.created_at.desc(), ExpertiseRequest.id.desc())
    )
    if user.role is Role.STAFF:
        query = query.where(ExpertiseRequest.facility_id == user.facility_id)
    elif user.role is Role.SPECIALIST:
        query = query.where(
            ExpertiseRequest.status != ExpertiseStatus.DRAFT,
            or_(
                ExpertiseRequest.specialist_id == user.id,
                ExpertiseRequest.assigned_to_id == user.id,
                (ExpertiseRequest.specialist_id.is_(None))
                & (ExpertiseRequest.specialty_id == user.specialty_id),
            ),
        )
    else:
        return []
    return [RequestLine(*row) for row in await session.execute(query)]
