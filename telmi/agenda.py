"""Calendar views for the pages: a specialist's week, a slot being booked, booked conflicts.

These only read slots and bookings; `week_of` goes through `booking.bookings_between` so that
showing patient references in the agenda is audited like every other listing of bookings.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
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
class AgendaAbsence:
    """The part of an absence that falls on one local day, in minutes since local midnight."""

    reason: str
    start_minute: int  # 0: the absence began on an earlier day (or at midnight)
    end_minute: int  # DAY_MINUTES: it goes on past midnight
    # A booked slot lies under it (a conflict): the grid leaves room for both.
    overlapped: bool = False

    @property
    def span_text(self) -> str:
        """« 14:00–16:00 », « à partir de 14:00 », « jusqu'à 12:00 », « toute la journée »."""
        starts, ends = self.start_minute > 0, self.end_minute < DAY_MINUTES
        if starts and ends:
            return f"{_hm(self.start_minute)}–{_hm(self.end_minute)}"
        if starts:
            return f"à partir de {_hm(self.start_minute)}"
        if ends:
            return f"jusqu'à {_hm(self.end_minute)}"
        return "toute la journée"


@dataclass(frozen=True)
class AgendaItem:
    """One thing the day shows, placed on its time grid: a slot (`entry`) or an absence."""

    start_minute: int
    end_minute: int
    entry: AgendaEntry | None = None
    absence: AgendaAbsence | None = None
    overlap: bool = False  # a slot over an absence


@dataclass(frozen=True)
class AgendaDay:
    day: date
    entries: list[AgendaEntry]
    absences: list[AgendaAbsence] = field(default_factory=list)
    items: list[AgendaItem] = field(default_factory=list)


# The time grid: rows of five minutes (the shortest slot a rule may make), local wall-clock.
STEP_MINUTES = 5
DAY_MINUTES = 24 * 60
# Every grid shows at least the working day, whatever it holds.
GRID_FIRST_MINUTE, GRID_LAST_MINUTE = 8 * 60, 18 * 60


def _hm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _minute_on(day: date, instant: datetime, tz: ZoneInfo) -> int:
    """Wall-clock minutes since the local midnight of `day`, clipped to the day."""
    local = instant.astimezone(tz)
    if local.date() < day:
        return 0
    if local.date() > day:
        return DAY_MINUTES
    return local.hour * 60 + local.minute


def _placed(day: AgendaDay, tz: ZoneInfo) -> list[AgendaItem]:
    """The day's slots and absences in time order (absences first at equal times)."""
    slots = []
    for e in day.entries:
        start = _minute_on(day.day, e.slot.starts_at, tz)
        end = _minute_on(day.day, e.slot.ends_at, tz)
        if end <= start:  # the autumn hour repeated under it: its length, clipped to the day
            length = (e.slot.ends_at - e.slot.starts_at) // timedelta(minutes=1)
            end = min(DAY_MINUTES, start + length)
        slots.append((start, max(end, start + STEP_MINUTES), e))
    items = []
    for a in day.absences:
        covered = [s for s in slots if s[0] < a.end_minute and a.start_minute < s[1]]
        booked = any(s[2].booking is not None for s in covered)
        absence = AgendaAbsence(a.reason, a.start_minute, a.end_minute, overlapped=booked)
        items.append(AgendaItem(a.start_minute, a.end_minute, absence=absence))
    for start, end, e in slots:
        over = any(a.start_minute < end and start < a.end_minute for a in day.absences)
        items.append(AgendaItem(start, end, entry=e, overlap=over))
    return sorted(items, key=lambda i: (i.start_minute, i.entry is not None, i.end_minute))


@dataclass(frozen=True)
class TimeGrid:
    """Whole local hours from the earliest thing shown to the latest, 08:00-18:00 at least.

    Rows are `STEP_MINUTES` long and numbered from 1 at `first_hour`; the page turns
    `row`/`span` into classes of agenda.css (`row-13 span-6`: no inline style under the CSP).
    """

    first_hour: int
    last_hour: int  # exclusive; 24 at most

    @property
    def hours(self) -> list[int]:
        return list(range(self.first_hour, self.last_hour))

    @property
    def rows_per_hour(self) -> int:
        return 60 // STEP_MINUTES

    def row(self, minute: int) -> int:
        minute = min(max(minute, self.first_hour * 60), self.last_hour * 60 - STEP_MINUTES)
        return 1 + (minute - self.first_hour * 60) // STEP_MINUTES

    def span(self, start: int, end: int) -> int:
        start = max(start, self.first_hour * 60)
        end = min(end, self.last_hour * 60)
        return max(1, math.ceil((end - start) / STEP_MINUTES))

    def place(self, item: AgendaItem) -> str:
        """The classes that put an item in its rows."""
        first = self.row(item.start_minute)
        return f"row-{first} span-{self.span(item.start_minute, item.end_minute)}"

    def hour_place(self, hour: int) -> str:
        return f"row-{self.row(hour * 60)} span-{self.rows_per_hour}"


def grid_of(days: Iterable[AgendaDay]) -> TimeGrid:
    """The hours the days need. An absence that runs past midnight does not stretch the grid
    to midnight: only its ends that fall inside a day count, and its block is clipped."""
    first, last = GRID_FIRST_MINUTE, GRID_LAST_MINUTE
    for day in days:
        for item in day.items:
            if item.absence is None or item.start_minute > 0:
                first = min(first, item.start_minute)
            if item.absence is None or item.end_minute < DAY_MINUTES:
                last = max(last, item.end_minute)
            if item.absence is not None and item.start_minute > 0:
                last = max(last, min(DAY_MINUTES, item.start_minute + 60))
            if item.absence is not None and item.end_minute < DAY_MINUTES:
                first = min(first, max(0, item.end_minute - 60))
    return TimeGrid(first // 60, min(24, math.ceil(last / 60)))


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
    """Monday to Sunday (local days) of the specialist's open and booked slots."""
    return await days_of(session, ctx, monday, 7, tz)


async def days_of(
    session: AsyncSession, ctx: Context, first: date, count: int, tz: ZoneInfo
) -> list[AgendaDay]:
    """`count` local days from `first` of the specialist's open and booked slots and absences.

    Records a `booking.listed` audit event when bookings are shown: call it in a write
    transaction. Free slots that were withdrawn or blocked are left out; booked ones stay,
    flagged as conflicts when an absence covers them or their rule was deleted. Each day's
    `items` are its slots and the parts of absences on it, in time order, for the grid.
    """
    specialist, now = ctx.caller, ctx.now
    start = datetime.combine(first, time(), tzinfo=tz)
    end = datetime.combine(first + timedelta(days=count), time(), tzinfo=tz)
    bookings = await booking.bookings_between(session, ctx, start, end, limit=WEEK_LIMIT)
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
    days = [AgendaDay(first + timedelta(days=n), []) for n in range(count)]
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
        days[(local_day - first).days].entries.append(AgendaEntry(slot, booked, conflict))
    for day in days:
        midnight = datetime.combine(day.day, time(), tzinfo=tz)
        following = datetime.combine(day.day + timedelta(days=1), time(), tzinfo=tz)
        for a in sorted(away, key=lambda a: a.starts_at):
            if a.starts_at < following and a.ends_at > midnight:
                part = AgendaAbsence(
                    a.reason,
                    _minute_on(day.day, a.starts_at, tz),
                    _minute_on(day.day, a.ends_at, tz),
                )
                if part.end_minute > part.start_minute:
                    day.absences.append(part)
        day.items.extend(_placed(day, tz))
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
