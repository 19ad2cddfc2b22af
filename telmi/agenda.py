"""Calendar views for the pages: a specialist's week, a slot being booked, booked conflicts.

These only read slots and bookings; `week_of` goes through `booking.list_bookings` so that
showing patient references in the agenda is audited like every other listing of bookings.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from telmi import booking
from telmi.booking import BookingView
from telmi.context import Context
from telmi.errors import NotFound
from telmi.models import (
    ACTIVE_BOOKING_STATUSES,
    ActType,
    AvailabilityException,
    AvailabilityRule,
    Booking,
    BookingStatus,
    Facility,
    Slot,
    SlotStatus,
    User,
)

# Five-minute slots around the clock for a week: more bookings than a week can hold.
WEEK_LIMIT = 7 * 24 * 12


@dataclass(frozen=True)
class AgendaEntry:
    slot: Slot
    booking: BookingView | None
    # Booked, but inside an absence or left by its rule: kept, to settle with the facility.
    conflict: bool = False


@dataclass(frozen=True)
class AgendaDay:
    day: date
    entries: list[AgendaEntry]


def monday_of(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _shown(b: BookingView, now: datetime) -> bool:
    """The booking a slot carries: live, or a hold that has not expired yet."""
    if b.status is BookingStatus.HELD:
        return b.hold_expires_at is not None and b.hold_expires_at > now
    return b.status in (BookingStatus.CONFIRMED, BookingStatus.COMPLETED, BookingStatus.NO_SHOW)


async def week_of(
    session: AsyncSession, ctx: Context, monday: date, tz: ZoneInfo
) -> list[AgendaDay]:
    """Monday to Sunday (local days) of the specialist's open and booked slots.

    Records a `booking.listed` audit event when bookings are shown: call it in a write
    transaction. Free slots that were withdrawn or blocked are left out; booked ones stay,
    flagged as conflicts when an absence covers them or their rule was deleted.
    """
    specialist, now = ctx.caller, ctx.now
    start = datetime.combine(monday, time(), tzinfo=tz)
    end = datetime.combine(monday + timedelta(days=7), time(), tzinfo=tz)
    bookings = await booking.list_bookings(session, ctx, start=start, end=end, limit=WEEK_LIMIT)
    carried = {b.slot.id: b for b in bookings if _shown(b, now)}
    slots = await session.scalars(
        select(Slot)
        .where(Slot.specialist_id == specialist.id, Slot.starts_at >= start, Slot.starts_at < end)
        .order_by(Slot.starts_at)
    )
    away = list(
        await session.scalars(
            select(AvailabilityException).where(
                AvailabilityException.specialist_id == specialist.id,
                AvailabilityException.starts_at < end,
                AvailabilityException.ends_at > start,
            )
        )
    )
    dropped_rules = set(
        await session.scalars(
            select(AvailabilityRule.id).where(
                AvailabilityRule.specialist_id == specialist.id,
                AvailabilityRule.deleted_at.is_not(None),
            )
        )
    )
    days = [AgendaDay(monday + timedelta(days=n), []) for n in range(7)]
    for slot in slots:
        booked = carried.get(slot.id)
        if slot.status is not SlotStatus.OPEN and booked is None:
            continue
        conflict = booked is not None and (
            slot.status is not SlotStatus.OPEN
            or slot.rule_id in dropped_rules
            or any(a.starts_at < slot.ends_at and slot.starts_at < a.ends_at for a in away)
        )
        local_day = slot.starts_at.astimezone(tz).date()
        days[(local_day - monday).days].entries.append(AgendaEntry(slot, booked, conflict))
    return days


async def slot_with_hold(
    session: AsyncSession, user: User, slot_id: int, *, now: datetime
) -> tuple[Slot, Booking | None]:
    """A slot with its specialist, and the hold the user's facility has on it, if any.

    The booking form shows both; reloading the form must find the hold it placed rather
    than fail on its own hold as if someone else had taken the slot.
    """
    slot = await session.scalar(
        select(Slot)
        .where(Slot.id == slot_id)
        .options(joinedload(Slot.specialist).joinedload(User.specialty))
    )
    if slot is None:
        raise NotFound(f"Créneau {slot_id} introuvable.", code="slot_not_found")
    hold = await session.scalar(
        select(Booking).where(
            Booking.slot_id == slot_id,
            Booking.facility_id == user.facility_id,
            Booking.status == BookingStatus.HELD,
            Booking.hold_expires_at > now,
        )
    )
    return slot, hold


@dataclass(frozen=True)
class BookedSlot:
    """A booked slot named by when, for whom and what: enough to call the facility."""

    slot_id: int
    starts_at: datetime
    booking_id: int
    facility_name: str
    act_type: ActType


async def booked_slots(
    session: AsyncSession, specialist: User, slot_ids: Iterable[int]
) -> list[BookedSlot]:
    """The specialist's slots among `slot_ids` that carry an active booking, earliest first.

    Explains the conflicts of a change of availability; other specialists' slots and free
    slots are ignored, so the ids may come from a URL.
    """
    ids = sorted(set(slot_ids))
    if not ids:
        return []
    rows = await session.execute(
        select(Slot.id, Slot.starts_at, Booking.id, Facility.name, Booking.act_type)
        .join(Booking, Booking.slot_id == Slot.id)
        .join(Facility, Facility.id == Booking.facility_id)
        .where(
            Slot.id.in_(ids),
            Slot.specialist_id == specialist.id,
            Booking.status.in_(ACTIVE_BOOKING_STATUSES),
        )
        .order_by(Slot.starts_at)
    )
    return [BookedSlot(*row) for row in rows]
