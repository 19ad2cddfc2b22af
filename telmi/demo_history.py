"""A synthetic act history for the demo region, 2017 to today, shaped like the real one.

The yearly totals follow the figures the regional platform published (about 6,000 acts in
2017, 9,000 in 2018, +50 %, 32,000 in 2023) and grow on since. Sites join in the order the
rollout took (health centres and hospitals, then nursing homes, then disability
facilities); téléexpertise leads, dermatology first among its specialties; activity dips
in August and at Christmas, and teleconsultation jumps in the spring of 2020. Everything
is drawn from a seeded generator: the same history every time, written through the act
log's own batch append (same checks, same hash chain, same rollup).
"""

from __future__ import annotations

import calendar
import functools
import itertools
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from telmi import acts
from telmi.db import Database
from telmi.demo import rpps_for
from telmi.models import Act, ActType, Facility, FacilityCategory, Role, Specialty, User

SOURCE_PREFIX = "demo:"
YEARLY_TOTALS = {
    2017: 6_000,
    2018: 9_000,
    2019: 12_500,
    2020: 19_000,
    2021: 23_500,
    2022: 28_000,
    2023: 32_000,
    2024: 35_000,
    2025: 38_000,
    2026: 41_000,
}
MONTH_WEIGHTS = [1.1, 1.1, 1.1, 1.0, 1.0, 0.95, 0.8, 0.55, 1.0, 1.1, 1.1, 0.85]
JOINED = {  # the year each category's sites came onto the platform
    FacilityCategory.HEALTH_CENTRE: 2017,
    FacilityCategory.HOSPITAL: 2017,
    FacilityCategory.NURSING_HOME: 2018,
    FacilityCategory.DISABILITY_FACILITY: 2020,
}
CATEGORY_WEIGHT = {
    FacilityCategory.HEALTH_CENTRE: 1.0,
    FacilityCategory.HOSPITAL: 0.6,
    FacilityCategory.NURSING_HOME: 1.6,
    FacilityCategory.DISABILITY_FACILITY: 0.8,
}
ACT_TYPES = [
    (ActType.TELEEXPERTISE, 0.55),
    (ActType.TELECONSULTATION, 0.38),
    (ActType.TELESURVEILLANCE, 0.04),
    (ActType.TELESOIN, 0.03),
]
SPECIALTY_MIX = {
    ActType.TELEEXPERTISE: [
        ("dermatologie", 0.42),
        ("plaies-cicatrisation", 0.2),
        ("cardiologie", 0.14),
        ("diabetologie", 0.08),
        ("neurologie", 0.06),
        ("nephrologie", 0.05),
        ("pneumologie", 0.05),
    ],
    ActType.TELECONSULTATION: [
        ("geriatrie", 0.24),
        ("gerontopsychiatrie", 0.2),
        ("psychiatrie", 0.18),
        ("neurologie", 0.1),
        ("cardiologie", 0.1),
        ("diabetologie", 0.08),
        ("medecine-physique", 0.05),
        ("dermatologie", 0.05),
    ],
    ActType.TELESURVEILLANCE: [("cardiologie", 0.6), ("nephrologie", 0.2), ("diabetologie", 0.2)],
    ActType.TELESOIN: [("plaies-cicatrisation", 0.6), ("medecine-physique", 0.4)],
}
MINUTES = {
    ActType.TELEEXPERTISE: (5, 20),
    ActType.TELECONSULTATION: (15, 45),
    ActType.TELESURVEILLANCE: (5, 15),
    ActType.TELESOIN: (20, 40),
}
REQUESTER_ROLES = ["infirmier"] * 6 + ["medecin"] * 3 + ["aide_soignant", "reeducation"]
BATCH = 10_000

Progress = Callable[[str], None]
# Past the published figures the platform keeps growing, more slowly each year.
GROWTH_AFTER = 1.07


class _Weighted:
    """A weighted draw whose cumulative weights are summed once, not at every draw (the
    generator draws a million times; the draws are the same as `choices(values, weights)`)."""

    def __init__(self, weighted: Sequence[tuple[Any, float]]) -> None:
        self.values = [v for v, _ in weighted]
        self.cumulative = list(itertools.accumulate(w for _, w in weighted))

    def draw(self, rng: random.Random) -> Any:
        return rng.choices(self.values, cum_weights=self.cumulative)[0]


def yearly_total(year: int) -> float:
    last = max(YEARLY_TOTALS)
    if year in YEARLY_TOTALS:
        return YEARLY_TOTALS[year]
    return YEARLY_TOTALS[last] * GROWTH_AFTER ** (year - last)


def monthly_targets(today: date, scale: float = 1.0) -> dict[tuple[int, int], int]:
    """How many acts each month gets: every whole month from January 2017 to the month
    before `today`, and the current month pro rata of the days before `today` (none on
    the 1st). Every month that has a day before `today` gets at least one act, whatever
    the scale, so no month of the history is ever empty."""
    targets: dict[tuple[int, int], int] = {}
    weight_sum = sum(MONTH_WEIGHTS)
    first = min(YEARLY_TOTALS)
    for year in range(first, today.year + 1):
        for month in range(1, 13):
            if (year, month) > (today.year, today.month):
                break
            weight = MONTH_WEIGHTS[month - 1]
            if year == 2020 and month in (3, 4, 5):
                weight *= 1.6  # the first lockdown: teleconsultation everywhere
            count = scale * yearly_total(year) * weight / weight_sum
            if (year, month) == (today.year, today.month):
                if today.day == 1:
                    break
                count *= (today.day - 1) / calendar.monthrange(year, month)[1]
            targets[(year, month)] = max(1, round(count))
    return targets


def _days(year: int, month: int, today: date) -> tuple[list[date], list[date]]:
    """The month's days before `today`, and its working days among them (or all of them)."""
    last = calendar.monthrange(year, month)[1]
    days = [d for d in (date(year, month, n) for n in range(1, last + 1)) if d < today]
    return days, [d for d in days if d.weekday() < 5] or days


@dataclass(frozen=True)
class _Directory:
    """What the generator draws from, read once: (id, FINESS, category) of each facility,
    (id, RPPS) of each specialty's specialists."""

    facilities: list[tuple[int, str, FacilityCategory]]
    specialists: dict[str, list[tuple[int | None, str | None]]]


async def _directory(db: Database) -> _Directory:
    async with db.read() as session:
        facilities = [
            (int(i), str(finess), FacilityCategory(category))
            for i, finess, category in await session.execute(
                select(Facility.id, Facility.finess, Facility.category).order_by(Facility.id)
            )
        ]
        specialists: dict[str, list[tuple[int | None, str | None]]] = {
            str(code): [] for code in await session.scalars(select(Specialty.code))
        }
        rows = await session.execute(
            select(Specialty.code, User.id, User.rpps)
            .join(Specialty, Specialty.id == User.specialty_id)
            .where(User.role == Role.SPECIALIST)
            .order_by(User.id)
        )
        for code, user_id, rpps in rows:
            specialists[str(code)].append((int(user_id), rpps))
    return _Directory(facilities, specialists)


def _generate(
    directory: _Directory,
    targets: dict[tuple[int, int], int],
    today: date,
    tz: ZoneInfo,
    secret: str,
) -> Iterator[tuple[tuple[int, int], acts.NewAct]]:
    """Every act of the history, in order, from one seeded generator: the same history
    every time for the same `today` and scale (so an interrupted load resumes where it
    stopped)."""
    rng = random.Random(2017)
    act_types = _Weighted(ACT_TYPES)
    specialties = {act_type: _Weighted(mix) for act_type, mix in SPECIALTY_MIX.items()}
    n = 0
    for (year, month), count in targets.items():
        sites = [f for f in directory.facilities if JOINED[f[2]] <= year]
        site = _Weighted([(s, CATEGORY_WEIGHT[s[2]] * (1 + (s[0] % 5) / 4)) for s in sites])
        days, working = _days(year, month, today)
        for _ in range(count):
            act_type = act_types.draw(rng)
            if year == 2020 and month in (3, 4, 5) and rng.random() < 0.3:
                act_type = ActType.TELECONSULTATION
            specialty = specialties[act_type].draw(rng)
            if specialty not in directory.specialists:
                continue
            facility_id, finess, _category = site.draw(rng)
            day = rng.choice(working)
            local = datetime.combine(day, time(rng.randrange(8, 18), rng.randrange(60)), tzinfo=tz)
            specialist_id, specialist_rpps = rng.choice(
                directory.specialists[specialty] or [(None, None)]
            )
            low, high = MINUTES[act_type]
            n += 1
            yield (
                (year, month),
                acts.NewAct(
                    act_type=act_type,
                    occurred_at=local,
                    duration_seconds=rng.randrange(low, high + 1) * 60,
                    facility_id=facility_id,
                    requester_role=rng.choice(REQUESTER_ROLES),
                    requester_rpps=_requester_rpps(facility_id, rng.randrange(6)),
                    specialist_id=specialist_id,
                    specialist_rpps=specialist_rpps,
                    specialty_code=specialty,
                    source_key=f"{SOURCE_PREFIX}{n}",
                    patient_key=_patient_key(
                        secret, finess, f"DEMO-{rng.randrange(40 + facility_id * 7)}"
                    ),
                    patient_consent=True,
                    incidents="coupure du son, reprise" if rng.random() < 0.02 else "",
                ),
            )


async def written_so_far(db: Database) -> int:
    """Demo acts already in the log. Batches commit in order, so they are a prefix."""
    async with db.read() as session:
        return int(
            await session.scalar(
                select(func.count())
                .select_from(Act)
                .where(Act.source_key.like(SOURCE_PREFIX + "%"))
            )
            or 0
        )


async def load_history(
    db: Database,
    *,
    now: datetime,
    tz: ZoneInfo,
    secret: str,
    scale: float = 1.0,
    batch_size: int = BATCH,
    progress: Progress = lambda _: None,
) -> int:
    """Write the history up to the day before `now`; returns how many acts were written.

    Each batch is its own transaction, so a load interrupted half way keeps what it wrote
    and the next run goes on from there (the generator is seeded, the batches a prefix);
    a complete history writes nothing. `scale` shrinks every month alike (quick setups,
    tests); the shape stays."""
    today = now.astimezone(tz).date()
    targets = monthly_targets(today, scale)
    done = await written_so_far(db)
    if done >= sum(targets.values()):
        return 0
    directory = await _directory(db)
    written, batch, last_month = 0, [], (0, 0)
    async with db.bulk_connection() as conn:
        stream = itertools.islice(_generate(directory, targets, today, tz, secret), done, None)
        for month, new in stream:
            batch.append(new)
            last_month = month
            if len(batch) >= batch_size:
                written += await _append(conn, batch, now, tz)
                batch = []
                progress(_line(last_month, done + written))
        if batch:
            written += await _append(conn, batch, now, tz)
            progress(_line(last_month, done + written))
    return written


async def _append(
    conn: AsyncConnection, batch: list[acts.NewAct], now: datetime, tz: ZoneInfo
) -> int:
    async with conn.begin():
        return await acts.append_many(conn, batch, now=now, tz=tz, recorded_by=None)


def _line(month: tuple[int, int], total: int) -> str:
    return f"  actes jusqu'à {month[1]:02d}/{month[0]} : {total:,}".replace(",", " ")


@functools.lru_cache(maxsize=65536)
def _patient_key(secret: str, finess: str, ref: str) -> str:
    return acts.patient_key(secret, finess=finess, patient_ref=ref)


@functools.lru_cache(maxsize=4096)
def _requester_rpps(facility_id: int, k: int) -> str:
    return rpps_for(20_000 + facility_id * 10 + k)
