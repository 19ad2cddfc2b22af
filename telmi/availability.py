"""Specialists' weekly rules and exceptions, and the slots they yield.

`sync_slots` is the one place slots are created or withdrawn: it computes the slots the
rules and exceptions call for over the horizon and brings the table in line, creating what
is missing, reopening what was closed, withdrawing free slots no longer wanted. A booked slot
is never touched: when the rules no longer want it, it is reported as a conflict for the
specialist to resolve with the facility. Running it twice changes nothing the second time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from scheduling.calendar import Period, WeeklyRule, french_public_holidays, horizon, slots_for_rule
from telmi import audit
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
from telmi.values import check_id

MAX_SLOT_MINUTES = 240
MAX_BUFFER_MINUTES = 120


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


def _int(body: dict[str, Any], name: str, low: int, high: int, default: int | None = None) -> int:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValidationError(f"« {name} » doit être un entier entre {low} et {high}.", field=name)
    return value


def _time(body: dict[str, Any], name: str) -> time:
    value = body.get(name)
    try:
        parsed = time.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is not None:
        raise ValidationError(f"« {name} » doit être une heure locale HH:MM.", field=name)
    return parsed


def parse_date(value: Any, name: str) -> date:
    try:
        if isinstance(value, str) and len(value) == 10:
            return date.fromisoformat(value)
    except ValueError:
        pass
    raise ValidationError(f"« {name} » doit être une date AAAA-MM-JJ.", field=name)


def parse_instant(value: Any, name: str, tz: ZoneInfo) -> datetime:
    """An ISO 8601 date-time; without an offset it is local time in the region."""
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None:
        raise ValidationError(
            f"« {name} » doit être une date et heure ISO 8601 (ex. 2026-03-02T09:00+01:00).",
            field=name,
        )
    return parsed.replace(tzinfo=tz) if parsed.tzinfo is None else parsed


def parse_act_types(value: Any, name: str = "act_types") -> list[ActType]:
    allowed = ", ".join(t.value for t in ActType)
    if not isinstance(value, list) or not value:
        raise ValidationError(
            f"« {name} » doit être une liste non vide parmi : {allowed}.", field=name
        )
    try:
        return sorted({ActType(v) for v in value}, key=list(ActType).index)
    except ValueError:
        raise ValidationError(
            f"Type d'acte inconnu dans « {name} » (attendu : {allowed}).", field=name
        ) from None


def parse_rule(body: dict[str, Any], *, today: date) -> WeeklyRule:
    valid_from = parse_date(body["valid_from"], "valid_from") if body.get("valid_from") else today
    valid_until = (
        parse_date(body["valid_until"], "valid_until") if body.get("valid_until") else None
    )
    holidays_open = body.get("open_on_public_holidays", False)
    if not isinstance(holidays_open, bool):
        raise ValidationError(
            "« open_on_public_holidays » doit être vrai ou faux.", field="open_on_public_holidays"
        )
    start, end = _time(body, "start"), _time(body, "end")
    if start >= end:
        raise ValidationError("L'heure de fin doit suivre l'heure de début.", field="end")
    if valid_until is not None and valid_until < valid_from:
        raise ValidationError("« valid_until » précède « valid_from ».", field="valid_until")
    rule = WeeklyRule(
        weekday=_int(body, "weekday", 0, 6),
        start=start,
        end=end,
        slot_minutes=_int(body, "slot_minutes", 5, MAX_SLOT_MINUTES),
        buffer_minutes=_int(body, "buffer_minutes", 0, MAX_BUFFER_MINUTES, default=0),
        valid_from=valid_from,
        valid_until=valid_until,
        open_on_public_holidays=holidays_open,
    )
    window = datetime.combine(today, end) - datetime.combine(today, start)
    if timedelta(minutes=rule.slot_minutes) > window:
        raise ValidationError("La plage est plus courte qu'un créneau.", field="slot_minutes")
    return rule


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


async def specialist_for(session: AsyncSession, actor: User, specialist_id: Any) -> User:
    """Specialists manage their own availability; admins anyone's."""
    if actor.role is Role.SPECIALIST and specialist_id in (None, actor.id):
        return actor
    if actor.role is not Role.ADMIN:
        raise Forbidden("Vous ne gérez que vos propres disponibilités.")
    if specialist_id is None:
        raise ValidationError(
            "« specialist_id » est requis pour un administrateur.", field="specialist_id"
        )
    specialist_id = check_id(specialist_id, "specialist_id", digits=True)
    specialist = await session.get(User, specialist_id)
    if specialist is None or specialist.role is not Role.SPECIALIST:
        raise NotFound(f"Spécialiste {specialist_id} introuvable.")
    return specialist


# --- rules ----------------------------------------------------------------------------------


async def list_rules(session: AsyncSession, specialist: User) -> list[AvailabilityRule]:
    query = (
        select(AvailabilityRule)
        .where(
            AvailabilityRule.specialist_id == specialist.id, AvailabilityRule.deleted_at.is_(None)
        )
        .order_by(AvailabilityRule.weekday, AvailabilityRule.start_time)
    )
    return list(await session.scalars(query))


async def _check_no_overlap(
    session: AsyncSession, specialist: User, rule: WeeklyRule, ignore_id: int | None = None
) -> None:
    for other in await list_rules(session, specialist):
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
    session: AsyncSession,
    actor: User,
    specialist: User,
    body: dict[str, Any],
    *,
    now: datetime,
    tz: ZoneInfo,
    weeks: int,
) -> tuple[AvailabilityRule, SyncReport]:
    rule = parse_rule(body, today=now.astimezone(tz).date())
    act_types = parse_act_types(body.get("act_types"))
    await _check_no_overlap(session, specialist, rule)
    row = AvailabilityRule(specialist_id=specialist.id, created_at=now)
    _apply(row, rule, act_types)
    session.add(row)
    await session.flush()
    await audit.record(
        session,
        "availability.rule_created",
        actor=actor,
        target_type="rule",
        target_id=row.id,
        at=now,
    )
    return row, await sync_slots(session, specialist, now=now, tz=tz, weeks=weeks)


async def _own_rule(session: AsyncSession, specialist: User, rule_id: int) -> AvailabilityRule:
    row = await session.get(AvailabilityRule, rule_id)
    if row is None or row.specialist_id != specialist.id or row.deleted_at is not None:
        raise NotFound(f"Règle {rule_id} introuvable.")
    return row


async def update_rule(
    session: AsyncSession,
    actor: User,
    specialist: User,
    rule_id: int,
    body: dict[str, Any],
    *,
    now: datetime,
    tz: ZoneInfo,
    weeks: int,
) -> tuple[AvailabilityRule, SyncReport]:
    row = await _own_rule(session, specialist, rule_id)
    rule = parse_rule(body, today=now.astimezone(tz).date())
    act_types = parse_act_types(body.get("act_types"))
    await _check_no_overlap(session, specialist, rule, ignore_id=row.id)
    _apply(row, rule, act_types)
    await session.flush()
    await audit.record(
        session,
        "availability.rule_changed",
        actor=actor,
        target_type="rule",
        target_id=row.id,
        at=now,
    )
    return row, await sync_slots(session, specialist, now=now, tz=tz, weeks=weeks)


async def delete_rule(
    session: AsyncSession,
    actor: User,
    specialist: User,
    rule_id: int,
    *,
    now: datetime,
    tz: ZoneInfo,
    weeks: int,
) -> tuple[AvailabilityRule, SyncReport]:
    row = await _own_rule(session, specialist, rule_id)
    row.deleted_at = now
    await session.flush()
    await audit.record(
        session,
        "availability.rule_deleted",
        actor=actor,
        target_type="rule",
        target_id=row.id,
        at=now,
    )
    return row, await sync_slots(session, specialist, now=now, tz=tz, weeks=weeks)


def preview(body: dict[str, Any], *, now: datetime, tz: ZoneInfo, weeks: int) -> list[Period]:
    """The slots a rule would yield, without saving it (holidays closed as they would be)."""
    rule = parse_rule(body, today=now.astimezone(tz).date())
    parse_act_types(body.get("act_types"))
    first, last = horizon(now, tz, weeks)
    closed_days = french_public_holidays(range(first.year, last.year + 1))
    return [
        p
        for p in slots_for_rule(rule, first, last, tz, public_holidays=closed_days)
        if p.start > now
    ]


# --- exceptions -----------------------------------------------------------------------------


async def list_exceptions(
    session: AsyncSession, specialist: User, *, now: datetime
) -> list[AvailabilityException]:
    query = (
        select(AvailabilityException)
        .where(
            AvailabilityException.specialist_id == specialist.id,
            AvailabilityException.ends_at > now,
        )
        .order_by(AvailabilityException.starts_at)
    )
    return list(await session.scalars(query))


async def create_exception(
    session: AsyncSession,
    actor: User,
    specialist: User,
    body: dict[str, Any],
    *,
    now: datetime,
    tz: ZoneInfo,
    weeks: int,
) -> tuple[AvailabilityException, SyncReport]:
    starts_at = parse_instant(body.get("starts_at"), "starts_at", tz)
    ends_at = parse_instant(body.get("ends_at"), "ends_at", tz)
    if ends_at <= starts_at:
        raise ValidationError("La fin de l'absence doit suivre son début.", field="ends_at")
    if ends_at <= now:
        raise ValidationError("Cette absence est entièrement passée.", field="ends_at")
    reason = body.get("reason", "")
    if not isinstance(reason, str) or len(reason) > 200:
        raise ValidationError("« reason » : 200 caractères au plus.", field="reason")
    row = AvailabilityException(
        specialist_id=specialist.id,
        starts_at=starts_at,
        ends_at=ends_at,
        reason=reason,
        created_at=now,
    )
    session.add(row)
    await session.flush()
    await audit.record(
        session,
        "availability.exception_created",
        actor=actor,
        target_type="exception",
        target_id=row.id,
        at=now,
    )
    return row, await sync_slots(session, specialist, now=now, tz=tz, weeks=weeks)


async def delete_exception(
    session: AsyncSession,
    actor: User,
    specialist: User,
    exception_id: int,
    *,
    now: datetime,
    tz: ZoneInfo,
    weeks: int,
) -> SyncReport:
    row = await session.get(AvailabilityException, exception_id)
    if row is None or row.specialist_id != specialist.id:
        raise NotFound(f"Absence {exception_id} introuvable.")
    await session.delete(row)
    await session.flush()
    await audit.record(
        session,
        "availability.exception_deleted",
        actor=actor,
        target_type="exception",
        target_id=exception_id,
        at=now,
    )
    return await sync_slots(session, specialist, now=now, tz=tz, weeks=weeks)


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
    for row in await list_rules(session, specialist):
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
