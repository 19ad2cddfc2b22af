"""The demo's act history covers every month up to yesterday, on any day it is loaded."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from telmi import acts, demo
from telmi.db import Database
from telmi.demo_history import load_history, monthly_targets
from telmi.models import Act

from .conftest import TEST_SECRET

PARIS = ZoneInfo("Europe/Paris")
SCALE = 0.01
# The edge days: the 1st of a month (the current month has no day before it yet),
# 1 January (nor does the year), 29 February, and the last evening of a year.
EDGES = [
    datetime(2026, 12, 1, 0, 30, tzinfo=PARIS),
    datetime(2027, 1, 1, 8, 0, tzinfo=PARIS),
    datetime(2028, 2, 29, 12, 0, tzinfo=PARIS),
    datetime(2026, 12, 31, 23, 50, tzinfo=PARIS),
]


def _months_before(today: date) -> list[int]:
    """Every month from January 2017 that has a day before `today`, as yyyymm."""
    last = (today.year, today.month) if today.day > 1 else _previous(today.year, today.month)
    return [y * 100 + m for y in range(2017, last[0] + 1) for m in range(1, 13) if (y, m) <= last]


def _previous(year: int, month: int) -> tuple[int, int]:
    return (year - 1, 12) if month == 1 else (year, month - 1)


@pytest.mark.parametrize("scale", [1.0, SCALE, 0.0001])
@pytest.mark.parametrize("now", EDGES, ids=lambda d: d.strftime("%Y-%m-%d"))
def test_every_month_up_to_yesterday_has_a_target(now: datetime, scale: float) -> None:
    today = now.date()
    targets = monthly_targets(today, scale)
    assert [y * 100 + m for y, m in targets] == _months_before(today)
    assert all(count >= 1 for count in targets.values())


def test_the_current_month_counts_only_the_days_before_today() -> None:
    whole = monthly_targets(date(2026, 12, 1))[(2026, 11)]
    assert monthly_targets(date(2026, 11, 16))[(2026, 11)] == pytest.approx(whole / 2, rel=0.05)
    assert (2026, 12) not in monthly_targets(date(2026, 12, 1))


async def _directory(db: Database, now: datetime) -> None:
    async with db.write() as session:
        await demo.load(session, now=now)


async def _per_month(db: Database) -> dict[int, int]:
    async with db.read() as session:
        rows = await session.execute(select(Act.month, func.count()).group_by(Act.month))
        return {int(m): int(n) for m, n in rows}


@pytest.mark.parametrize("now", EDGES[:3], ids=lambda d: d.strftime("%Y-%m-%d"))
async def test_the_history_loads_every_month_and_loses_no_batch(
    db: Database, now: datetime
) -> None:
    await _directory(db, now)
    written = await load_history(db, now=now, tz=PARIS, secret=TEST_SECRET, scale=SCALE)
    today = now.date()
    assert written == sum(monthly_targets(today, SCALE).values())
    per_month = await _per_month(db)
    assert sorted(per_month) == _months_before(today)
    async with db.read() as session:
        latest = await session.scalar(select(func.max(Act.occurred_on)))
        assert (await acts.verify(session)).ok
    assert latest is not None and latest < today
    assert await load_history(db, now=now, tz=PARIS, secret=TEST_SECRET, scale=SCALE) == 0


class Interrupted(Exception):
    pass


async def test_an_interrupted_load_resumes_without_duplicates(db: Database) -> None:
    """Killed after its first batch, the next run writes the rest, once."""
    now = EDGES[0]
    await _directory(db, now)
    expected = sum(monthly_targets(now.date(), SCALE).values())
    assert expected > 2 * 1_000  # several batches

    def stop(_line: str) -> None:
        raise Interrupted()

    with pytest.raises(Interrupted):
        await load_history(
            db, now=now, tz=PARIS, secret=TEST_SECRET, scale=SCALE, batch_size=1_000, progress=stop
        )
    assert sum((await _per_month(db)).values()) == 1_000
    rest = await load_history(db, now=now, tz=PARIS, secret=TEST_SECRET, scale=SCALE)
    assert rest == expected - 1_000
    async with db.read() as session:
        keys = await session.scalar(select(func.count(func.distinct(Act.source_key))))
        assert keys == expected == await session.scalar(select(func.count()).select_from(Act))
        assert (await acts.verify(session)).ok
