"""Weekly availability rules to concrete slots: pure functions, no I/O, no clock of their own.

Rules are written in local wall-clock time (a specialist works 09:00-12:00 in Dijon all year);
slots are instants in UTC. Converting each slot's local start on its own day keeps 09:00 at
09:00 across the DST changes. Around the changes:

- a local start inside the spring-forward gap (02:00-03:00 on the last Sunday of March) does
  not exist: that slot is skipped rather than moved, so it cannot collide with the next one;
- a local start inside the repeated hour of October is taken at its first occurrence; slots
  keep their real duration, so the day's slots never overlap.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays as holidays_lib


@dataclass(frozen=True)
class WeeklyRule:
    weekday: int  # 0 = Monday
    start: time
    end: time
    slot_minutes: int
    buffer_minutes: int = 0
    valid_from: date = date.min
    valid_until: date | None = None
    open_on_public_holidays: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.weekday <= 6:
            raise ValueError("weekday must be 0 (Monday) to 6 (Sunday)")
        if self.start >= self.end:
            raise ValueError("start must be before end")
        if self.slot_minutes <= 0 or self.buffer_minutes < 0:
            raise ValueError("slot length must be positive and buffer non-negative")
        if self.valid_until is not None and self.valid_until < self.valid_from:
            raise ValueError("valid_until is before valid_from")

    def applies_on(self, day: date) -> bool:
        return (
            day.weekday() == self.weekday
            and day >= self.valid_from
            and (self.valid_until is None or day <= self.valid_until)
        )


@dataclass(frozen=True, order=True)
class Period:
    """A half-open interval [start, end) of aware UTC instants."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("Period needs aware datetimes")
        if self.start >= self.end:
            raise ValueError("Period must end after it starts")

    def overlaps(self, other: Period) -> bool:
        return self.start < other.end and other.start < self.end


def local_instant(day: date, at: time, tz: ZoneInfo) -> datetime | None:
    """The UTC instant of a local wall-clock time, or None if DST skips it that day."""
    local = datetime.combine(day, at, tzinfo=tz)  # fold=0: the first of a repeated hour
    instant = local.astimezone(UTC)
    if instant.astimezone(tz).replace(tzinfo=None) != local.replace(tzinfo=None):
        return None
    return instant


def days(first: date, last: date) -> Iterator[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


def french_public_holidays(years: Iterable[int]) -> dict[date, str]:
    """Metropolitan France's public holidays, named in French (the `holidays` package)."""
    return dict(holidays_lib.country_holidays("FR", years=list(years), language="fr"))


def slots_for_rule(
    rule: WeeklyRule,
    first_day: date,
    last_day: date,
    tz: ZoneInfo,
    *,
    public_holidays: Container[date] = frozenset(),
    closed: Iterable[Period] = (),
) -> list[Period]:
    """The slots a rule yields on the local days first_day..last_day, earliest first.

    Days that are public holidays are skipped unless the rule opens on them; slots that
    overlap a closed period (leave, training) are skipped.
    """
    closed = sorted(closed)
    length = timedelta(minutes=rule.slot_minutes)
    step = timedelta(minutes=rule.slot_minutes + rule.buffer_minutes)
    window = datetime.combine(date.min, rule.end) - datetime.combine(date.min, rule.start)
    result: list[Period] = []
    for day in days(first_day, last_day):
        if not rule.applies_on(day):
            continue
        if day in public_holidays and not rule.open_on_public_holidays:
            continue
        offset = timedelta(0)
        while offset + length <= window:
            wall = (datetime.combine(day, rule.start) + offset).time()
            start = local_instant(day, wall, tz)
            offset += step
            if start is None:
                continue
            slot = Period(start, start + length)
            if result and slot.start < result[-1].end:
                continue  # the repeated hour: never overlap the slot before
            if any(slot.overlaps(c) for c in closed):
                continue
            result.append(slot)
    return result


def horizon(now: datetime, tz: ZoneInfo, weeks: int) -> tuple[date, date]:
    """The local days from today to `weeks` weeks ahead, the span slots are kept for."""
    today = now.astimezone(tz).date()
    return today, today + timedelta(weeks=weeks)
