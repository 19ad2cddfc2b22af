"""Weekly rules to slots: local times hold across DST, holidays close, nothing overlaps."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from scheduling.calendar import (
    Period,
    WeeklyRule,
    french_public_holidays,
    horizon,
    local_instant,
    slots_for_rule,
)

PARIS = ZoneInfo("Europe/Paris")
MONDAY, SUNDAY = 0, 6


def _local(periods: list[Period]) -> list[str]:
    return [p.start.astimezone(PARIS).strftime("%Y-%m-%d %H:%M") for p in periods]


@pytest.mark.parametrize(
    ("before", "after"),
    [(date(2026, 3, 23), date(2026, 3, 30)), (date(2026, 10, 19), date(2026, 10, 26))],
)
def test_nine_oclock_stays_nine_oclock_across_dst(before: date, after: date) -> None:
    rule = WeeklyRule(weekday=MONDAY, start=time(9), end=time(10), slot_minutes=30)
    slots = slots_for_rule(rule, before, after, PARIS)
    assert _local(slots) == [
        f"{before} 09:00",
        f"{before} 09:30",
        f"{after} 09:00",
        f"{after} 09:30",
    ]
    # The UTC instants differ by a week plus or minus the hour that changed.
    assert slots[2].start - slots[0].start in (
        timedelta(days=7, hours=-1),
        timedelta(days=7, hours=1),
    )
    assert all(p.end - p.start == timedelta(minutes=30) for p in slots)


def test_spring_forward_gap_skips_the_slots_that_do_not_exist() -> None:
    rule = WeeklyRule(weekday=SUNDAY, start=time(1), end=time(4), slot_minutes=30)
    slots = slots_for_rule(rule, date(2026, 3, 29), date(2026, 3, 29), PARIS)
    assert _local(slots) == [
        "2026-03-29 01:00",
        "2026-03-29 01:30",
        "2026-03-29 03:00",
        "2026-03-29 03:30",
    ]
    assert local_instant(date(2026, 3, 29), time(2, 30), PARIS) is None


def test_autumn_repeated_hour_yields_no_overlapping_slots() -> None:
    rule = WeeklyRule(weekday=SUNDAY, start=time(1), end=time(4), slot_minutes=45)
    slots = slots_for_rule(rule, date(2026, 10, 25), date(2026, 10, 25), PARIS)
    for first, second in zip(slots, slots[1:], strict=False):
        assert first.end <= second.start
    # 02:30 is taken at its first occurrence (CEST, UTC+2).
    first_0230 = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert any(p.start == first_0230 for p in slots)
    assert _local(slots)[0] == "2026-10-25 01:00"


def test_buffer_spaces_slots_and_the_last_must_fit() -> None:
    rule = WeeklyRule(
        weekday=MONDAY, start=time(9), end=time(10, 30), slot_minutes=20, buffer_minutes=10
    )
    slots = slots_for_rule(rule, date(2026, 6, 1), date(2026, 6, 1), PARIS)
    assert [s[-5:] for s in _local(slots)] == ["09:00", "09:30", "10:00"]


def test_public_holidays_are_closed_unless_the_rule_opens_them() -> None:
    holidays = french_public_holidays([2026])
    assert date(2026, 5, 25) in holidays  # lundi de Pentecôte
    closed = WeeklyRule(weekday=MONDAY, start=time(9), end=time(10), slot_minutes=60)
    opened = WeeklyRule(
        weekday=MONDAY, start=time(9), end=time(10), slot_minutes=60, open_on_public_holidays=True
    )
    days = (date(2026, 5, 18), date(2026, 6, 1))
    assert _local(slots_for_rule(closed, *days, PARIS, public_holidays=holidays)) == [
        "2026-05-18 09:00",
        "2026-06-01 09:00",
    ]
    assert len(slots_for_rule(opened, *days, PARIS, public_holidays=holidays)) == 3


def test_validity_dates_and_closed_periods_are_respected() -> None:
    rule = WeeklyRule(
        weekday=MONDAY,
        start=time(9),
        end=time(11),
        slot_minutes=60,
        valid_from=date(2026, 6, 8),
        valid_until=date(2026, 6, 22),
    )
    leave = Period(
        datetime(2026, 6, 15, 9, 30, tzinfo=PARIS).astimezone(UTC),
        datetime(2026, 6, 15, 23, tzinfo=PARIS).astimezone(UTC),
    )
    slots = slots_for_rule(rule, date(2026, 6, 1), date(2026, 6, 30), PARIS, closed=[leave])
    assert _local(slots) == [
        "2026-06-08 09:00",
        "2026-06-08 10:00",
        "2026-06-22 09:00",
        "2026-06-22 10:00",
    ]


def test_invalid_rules_are_refused() -> None:
    with pytest.raises(ValueError):
        WeeklyRule(weekday=7, start=time(9), end=time(10), slot_minutes=30)
    with pytest.raises(ValueError):
        WeeklyRule(weekday=0, start=time(10), end=time(9), slot_minutes=30)
    with pytest.raises(ValueError):
        Period(datetime(2026, 1, 1), datetime(2026, 1, 2))


def test_horizon_counts_local_days() -> None:
    late_evening_utc = datetime(2026, 6, 30, 22, 30, tzinfo=UTC)  # already July 1st in Paris
    assert horizon(late_evening_utc, PARIS, 8) == (date(2026, 7, 1), date(2026, 8, 26))
