"""Specialists' weekly rules and exceptions, and the slots they yield.

`sync_slots` is the one place slots are created or withdrawn: it computes the slots the
rules and exceptions call for over the horizon and brings the table in line, creating what
is missing, reopening what was closed, withdrawing free slots no longer wanted. A booked slot
is never touched: when the rules no longer want it, it is reported as a conflict for the
specialist to resolve with the facility. Running it twice changes nothing the second time.

Rules and absences arrive as typed `RuleInput` and `ExceptionInput`; whose they are
(`specialist_id`, named by admins only) each service checks against the caller itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from scheduling.calendar import Period, WeeklyRule, french_public_holidays, horizon, slots_for_rule
from telmi import audit
from telmi.context import Context
from telmi.errors import Conflict, Forbidden, NotFound, ValidationError
from telmi.models import (
    ACTIVE_BOOKING_STATUSES,
    ActType,
    AvailabilityException,
    AvailabilityRule,
    Booking,
    Role,
    Slot,
    SlotStatus,
    User,
    act_mask,
)
from telmi.values import Body, Id, Instant, LocalDate, LocalTime, Query, integer, text

MIN_SLOT_MINUTES = 5
MAX_SLOT_MINUTES = 240
MAX_BUFFER_MINUTES = 120
UNTIL_BEFORE_FROM = "« valid_until » précède « valid_from »."


@dataclass(frozen=True)
class SlotConflict:
    """A booked slot the rules no longer want: kept, and shown to the specialist."""

    slot_id: int
    booking_id: int
    starts_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "slot_id": self.slot_id,
            "booking_id": self.booking_id,
            "starts_at": self.starts_at.isoformat(),
        }


@dataclass
class SyncReport:
    created: int = 0
    reopened: int = 0
    withdrawn: int = 0
    conflicts: list[SlotConflict] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "created": self.created,
            "reopened": self.reopened,
            "withdrawn": self.withdrawn,
            "conflicts": [c.as_json() for c in self.conflicts],
        }


# --- input ------------------------------------------------------------------------------------


def _canonical(act_types: list[ActType]) -> list[ActType]:
    """Each act type once, in the enum's order."""
    return sorted(set(act_types), key=list(ActType).index)


SPECIALIST_ID = "admins only: whose availability; specialists leave it out"


class AvailabilityQuery(Query):
    """Whose availability: admins name the specialist, specialists manage their own."""

    specialist_id: Id | None = Field(default=None, description="admins: whose availability")


class RuleInput(Body):
    """A weekly rule in local wall-clock time (Europe/Paris)."""

    specialist_id: Id | None = Field(default=None, description=SPECIALIST_ID)
    weekday: integer(0, 6) = Field(description="0 = Monday")  # type: ignore[valid-type]
    start: LocalTime
    end: LocalTime
    slot_minutes: integer(MIN_SLOT_MINUTES, MAX_SLOT_MINUTES)  # type: ignore[valid-type]
    buffer_minutes: integer(0, MAX_BUFFER_MINUTES) = 0  # type: ignore[valid-type]
    act_types: Annotated[list[ActType], Field(min_length=1), AfterValidator(_canonical)]
    valid_from: LocalDate | None = Field(default=None, description="the first day; default: today")
    valid_until: LocalDate | None = Field(default=None, description="the last day; default: none")
    open_on_public_holidays: bool = False

    @field_validator("end")
    @classmethod
    def _end_after_start(cls, end: time, info: ValidationInfo) -> time:
        start = info.data.get("start")
        if start is not None and end <= start:
            raise PydanticCustomError(
                "end_before_start", "L'heure de fin doit suivre l'heure de début."
            )
        return end

    @field_validator("slot_minutes")
    @classmethod
    def _fits_the_window(cls, minutes: int, info: ValidationInfo) -> int:
        start, end = info.data.get("start"), info.data.get("end")
        if start is not None and end is not None:
            window = datetime.combine(date.min, end) - datetime.combine(date.min, start)
            if timedelta(minutes=minutes) > window:
                raise PydanticCustomError(
                    "window_too_short", "La plage est plus courte qu'un créneau."
                )
        return minutes

    @field_validator("valid_until")
    @classmethod
    def _until_after_from(cls, until: date | None, info: ValidationInfo) -> date | None:
        since = info.data.get("valid_from")
        if until is not None and since is not None and until < since:
            raise PydanticCustomError("until_before_from", UNTIL_BEFORE_FROM)
        return until


class ExceptionInput(Body):
    """An absence (leave, training): the free slots in it close, booked ones are reported."""

    specialist_id: Id | None = Field(default=None, description=SPECIALIST_ID)
    starts_at: Instant = Field(description="with its offset, e.g. 2026-03-02T09:00:00+01:00")
    ends_at: Instant = Field(description="with its offset; after starts_at, in the future")
    reason: text(200) = ""  # type: ignore[valid-type]

    @field_validator("ends_at")
    @classmethod
    def _ends_after_start(cls, ends_at: datetime, info: ValidationInfo) -> datetime:
        starts_at = info.data.get("starts_at")
        if starts_at is not None and ends_at <= starts_at:
            raise PydanticCustomError(
                "end_before_start", "La fin de l'absence doit suivre son début."
            )
        return ends_at


def to_weekly(rule: RuleInput, *, today: date) -> WeeklyRule:
    """The rule the calendar computes with; it starts today unless it says otherwise."""
    valid_from = rule.valid_from or today
    if rule.valid_until is not None and rule.valid_until < valid_from:
        raise ValidationError(UNTIL_BEFORE_FROM, field="valid_until")
    return WeeklyRule(
        weekday=rule.weekday,
        start=rule.start,
        end=rule.end,
        slot_minutes=rule.slot_minutes,
        buffer_minutes=rule.buffer_minutes,
        valid_from=valid_from,
        valid_until=rule.valid_until,
        open_on_public_holidays=rule.open_on_public_holidays,
    )


def weekly_rule(row: AvailabilityRule) -> WeeklyRule:
    return WeeklyRule(
        weekday=row.weekday,
        start=row.start_time,
        end=row.end_time,
        slot_minutes=row.slot_minutes,
        buffer_minutes=row.buffer_minutes,
        valid_from=row.valid_from,
        valid_until=row.valid_until,
        open_on_public_holidays=row.open_on_public_holidays,
    )


# --- who ----------------------------------------------------------------------------------------


async def specialist_for(session: AsyncSession, actor: User, specialist_id: int | None) -> User:
    """Specialists manage their own availability; admins anyone's."""
    if actor.role is Role.SPECIALIST and specialist_id in (None, actor.id):
        return actor
    if actor.role is not Role.ADMIN:
        raise Forbidden("Vous ne gérez que vos propres disponibilités.")
    if specialist_id is None:
        raise ValidationError(
            "« specialist_id » est requis pour un administrateur.", field="specialist_id"
        )
    specialist = await session.get(User, specialist_id)
    if specialist is None or specialist.role is not Role.SPECIALIST:
        raise NotFound(f"Spécialiste {specialist_id} introuvable.")
    return specialist


# --- rules ----------------------------------------------------------------------------------


async def _rules_of(session: AsyncSession, specialist: User) -> list[AvailabilityRule]:
    query = (
        select(AvailabilityRule)
        .where(
            AvailabilityRule.specialist_id == specialist.id, AvailabilityRule.deleted_at.is_(None)
        )
        .order_by(AvailabilityRule.weekday, AvailabilityRule.start_time)
    )
    return list(await session.scalars(query))


async def list_rules(
    session: AsyncSession, ctx: Context, whose: AvailabilityQuery
) -> list[AvailabilityRule]:
    specialist = await specialist_for(session, ctx.caller, whose.specialist_id)
    return await _rules_of(session, specialist)


async def _check_no_overlap(
    session: AsyncSession, specialist: User, rule: WeeklyRule, ignore_id: int | None = None
) -> None:
    for other in await _rules_of(session, specialist):
        if other.id == ignore_id or other.weekday != rule.weekday:
            continue
        o = weekly_rule(other)
        times_overlap = rule.start < o.end and o.start < rule.end
        dates_overlap = (rule.valid_until is None or o.valid_from <= rule.valid_until) and (
            o.valid_until is None or rule.valid_from <= o.valid_until
        )
        if times_overlap and dates_overlap:
            raise Conflict(
                f"Cette plage chevauche une règle existante ({o.start:%H:%M}–{o.end:%H:%M}).",
                code="rule_overlap",
            )


def _apply(row: AvailabilityRule, rule: WeeklyRule, act_types: list[ActType]) -> None:
    row.weekday = rule.weekday
    row.start_time = rule.start
    row.end_time = rule.end
    row.slot_minutes = rule.slot_minutes
    row.buffer_minutes = rule.buffer_minutes
    row.valid_from = rule.valid_from
    row.valid_until = rule.valid_until
    row.open_on_public_holidays = rule.open_on_public_holidays
    row.act_types = [t.value for t in act_types]


async def create_rule(
    session: AsyncSession, ctx: Context, new: RuleInput, *, tz: ZoneInfo, weeks: int
) -> tuple[AvailabilityRule, SyncReport]:
    now = ctx.now
    specialist = await specialist_for(session, ctx.caller, new.specialist_id)
    rule = to_weekly(new, today=now.astimezone(tz).date())
    await _check_no_overlap(session, specialist, rule)
    row = AvailabilityRule(specialist_id=specialist.id, created_at=now)
    _apply(row, rule, new.act_types)
    session.add(row)
    await session.flush()
    await audit.event(
        session, ctx, "availability.rule_created", target_type="rule", target_id=row.id
    )
    return row, await sync_slots(session, specialist, now=now, tz=tz, weeks=weeks)


async def _own_rule(session: AsyncSession, specialist: User, rule_id: int) -> AvailabilityRule:
    row = await session.get(AvailabilityRule, rule_id)
    if row is None or row.specialist_id != specialist.id or row.deleted_at is not None:
        raise NotFound(f"Règle {rule_id} introuvable.")
    return row


async def update_rule(
    session: AsyncSession,
    ctx: Context,
    rule_id: int,
    change: RuleInput,
    *,
    tz: ZoneInfo,
    weeks: int,
) -> tuple[AvailabilityRule, SyncReport]:
    now = ctx.now
    specialist = await specialist_for(session, ctx.caller, change.specialist_id)
    row = await _own_rule(session, specialist, rule_id)
    rule = to_weekly(change, today=now.astimezone(tz).date())
    await _check_no_overlap(session, specialist, rule, ignore_id=row.id)
    _apply(row, rule, change.act_types)
    await session.flush()
    await audit.event(
        session, ctx, "availability.rule_changed", target_type="rule", target_id=row.id
    )
    return row, await sync_slots(session, specialist, now=now, tz=tz, weeks=weeks)


async def delete_rule(
    session: AsyncSession,
    ctx: Context,
    rule_id: int,
    whose: AvailabilityQuery,
    *,
    tz: ZoneInfo,
    weeks: int,
) -> tuple[AvailabilityRule, SyncReport]:
    now = ctx.now
    specialist = await specialist_for(session, ctx.caller, whose.specialist_id)
    row = await _own_rule(session, specialist, rule_id)
    row.deleted_at = now
    await session.flush()
    await audit.event(
        session, ctx, "availability.rule_deleted", target_type="rule", target_id=row.id
    )
    return row, await sync_slots(session, specialist, now=now, tz=tz, weeks=weeks)


def preview(ctx: Context, rule: RuleInput, *, tz: ZoneInfo, weeks: int) -> list[Period]:
    """The slots a rule would yield, without saving it (holidays closed as they would be)."""
    now = ctx.now
    weekly = to_weekly(rule, today=now.astimezone(tz).date())
    first, last = horizon(now, tz, weeks)
    closed_days = french_public_holidays(range(first.year, last.year + 1))
    return [
        p
        for p in slots_for_rule(weekly, first, last, tz, public_holidays=closed_days)
        if p.start > now
    ]


# --- exceptions -----------------------------------------------------------------------------


async def list_exceptions(
    session: AsyncSession, ctx: Context, whose: AvailabilityQuery
) -> list[AvailabilityException]:
    """The specialist's current and future absences."""
    specialist = await specialist_for(session, ctx.caller, whose.specialist_id)
    query = (
        select(AvailabilityException)
        .where(
            AvailabilityException.specialist_id == specialist.id,
            AvailabilityException.ends_at > ctx.now,
        )
        .order_by(AvailabilityException.starts_at)
    )
    return list(await session.scalars(query))


async def create_exception(
    session: AsyncSession, ctx: Context, absence: ExceptionInput, *, tz: ZoneInfo, weeks: int
) -> tuple[AvailabilityException, SyncReport]:
    now = ctx.now
    specialist = await specialist_for(session, ctx.caller, absence.specialist_id)
    if absence.ends_at <= now:
        raise ValidationError("Cette absence est entièrement passée.", field="ends_at")
    row = AvailabilityException(
        specialist_id=specialist.id,
        starts_at=absence.starts_at,
        ends_at=absence.ends_at,
        reason=absence.reason,
        created_at=now,
    )
    session.add(row)
    await session.flush()
    await audit.event(
        session, ctx, "availability.exception_created", target_type="exception", target_id=row.id
    )
    return row, await sync_slots(session, specialist, now=now, tz=tz, weeks=weeks)


async def delete_exception(
    session: AsyncSession,
    ctx: Context,
    exception_id: int,
    whose: AvailabilityQuery,
    *,
    tz: ZoneInfo,
    weeks: int,
) -> SyncReport:
    specialist = await specialist_for(session, ctx.caller, whose.specialist_id)
    row = await session.get(AvailabilityException, exception_id)
    if row is None or row.specialist_id != specialist.id:
        raise NotFound(f"Absence {exception_id} introuvable.")
    await session.delete(row)
    await session.flush()
    await audit.event(
        session,
        ctx,
        "availability.exception_deleted",
        target_type="exception",
        target_id=exception_id,
    )
    return await sync_slots(session, specialist, now=ctx.now, tz=tz, weeks=weeks)


# --- slots ------------------------------------------------------------------------------------


async def sync_slots(
    session: AsyncSession, specialist: User, *, now: datetime, tz: ZoneInfo, weeks: int
) -> SyncReport:
    """Bring the specialist's future slots in line with their rules and exceptions."""
    if specialist.specialty_id is None:
        raise ValidationError("Ce spécialiste n'a pas de spécialité.", field="specialist_id")
    first, last = horizon(now, tz, weeks)
    window_end = datetime.combine(last + timedelta(days=1), time(), tzinfo=tz)
    closed = [
        Period(e.starts_at, e.ends_at)
        for e in await session.scalars(
            select(AvailabilityException).where(
                AvailabilityException.specialist_id == specialist.id,
                AvailabilityException.ends_at > now,
            )
        )
    ]
    public_holidays = french_public_holidays(range(first.year, last.year + 1))
    wanted: dict[datetime, tuple[Period, int, int]] = {}
    for row in await _rules_of(session, specialist):
        mask = act_mask(row.act_types)
        for period in slots_for_rule(
            weekly_rule(row), first, last, tz, public_holidays=public_holidays, closed=closed
        ):
            if period.start > now:
                wanted.setdefault(period.start, (period, row.id, mask))

    existing = list(
        await session.scalars(
            select(Slot).where(
                Slot.specialist_id == specialist.id,
                Slot.starts_at > now,
                Slot.starts_at < window_end,
            )
        )
    )
    booked = (
        set(
            await session.scalars(
                select(Booking.slot_id).where(
                    Booking.slot_id.in_([s.id for s in existing]),
                    Booking.status.in_(ACTIVE_BOOKING_STATUSES),
                )
            )
        )
        if existing
        else set()
    )
    booking_of: dict[int, int] = {}
    if booked:
        for slot_id, booking_id in await session.execute(
            select(Booking.slot_id, Booking.id).where(
                Booking.slot_id.in_(booked), Booking.status.in_(ACTIVE_BOOKING_STATUSES)
            )
        ):
            booking_of[slot_id] = booking_id

    report = SyncReport()
    by_start = {s.starts_at: s for s in existing}
    # 1. Withdraw (or close) free open slots that are no longer wanted as they are.
    for slot in existing:
        want = wanted.get(slot.starts_at)
        fits = want is not None and want[0].end == slot.ends_at
        if slot.status is SlotStatus.OPEN and not fits:
            if slot.id in booked:
                report.conflicts.append(SlotConflict(slot.id, booking_of[slot.id], slot.starts_at))
                continue
            closed_now = any(Period(slot.starts_at, slot.ends_at).overlaps(c) for c in closed)
            slot.status = SlotStatus.BLOCKED if closed_now else SlotStatus.WITHDRAWN
            report.withdrawn += 1
        elif slot.status is SlotStatus.OPEN and want is not None and slot.act_mask != want[2]:
            slot.act_mask, slot.rule_id = want[2], want[1]
    await session.flush()

    # 2. Create or reopen wanted slots that don't collide with a slot kept open.
    open_periods = sorted(
        Period(s.starts_at, s.ends_at) for s in existing if s.status is SlotStatus.OPEN
    )
    for start, (period, rule_id, mask) in sorted(wanted.items()):
        previous = by_start.get(start)
        if previous is not None and previous.status is SlotStatus.OPEN:
            continue
        if any(period.overlaps(p) for p in open_periods):
            continue
        if previous is not None:
            previous.status, previous.ends_at = SlotStatus.OPEN, period.end
            previous.rule_id, previous.act_mask = rule_id, mask
            previous.specialty_id = specialist.specialty_id
            report.reopened += 1
        else:
            session.add(
                Slot(
                    specialist_id=specialist.id,
                    specialty_id=specialist.specialty_id,
                    rule_id=rule_id,
                    starts_at=period.start,
                    ends_at=period.end,
                    act_mask=mask,
                    status=SlotStatus.OPEN,
                    created_at=now,
                )
            )
            report.created += 1
        open_periods.append(period)
    await session.flush()
    return report
