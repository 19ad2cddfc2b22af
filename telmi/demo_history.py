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

import functools
import random
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from telmi import acts
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
BATCH = 2_000

Progress = Callable[[str], None]


def _pick(
    rng: random.Random, weighted: list[tuple[str, float]] | list[tuple[ActType, float]]
) -> Any:
    return rng.choices([v for v, _ in weighted], [w for _, w in weighted])[0]


def monthly_targets(today: date, scale: float = 1.0) -> dict[tuple[int, int], int]:
    """How many acts each month gets, up to today (the current month pro rata)."""
    targets: dict[tuple[int, int], int] = {}
    weight_sum = sum(MONTH_WEIGHTS)
    for year, total in YEARLY_TOTALS.items():
        for month in range(1, 13):
            if (year, month) > (today.year, today.month):
                break
            weight = MONTH_WEIGHTS[month - 1]
            if year == 2020 and month in (3, 4, 5):
                weight *= 1.6  # the first lockdown: teleconsultation everywhere
            count = scale * total * weight / weight_sum
            if (year, month) == (today.year, today.month):
                count *= today.day / 30
            targets[(year, month)] = round(count)
    return targets


async def load_history(
    session: AsyncSession,
    *,
    today: date,
    tz: ZoneInfo,
    secret: str,
    scale: float = 1.0,
    progress: Progress = lambda _: None,
) -> int:
    """Write the history once; returns how many acts were written (0 if already there).
    `scale` shrinks every month alike (quick setups, tests); the shape stays."""
    first = SOURCE_PREFIX + "1"
    if await session.scalar(select(Act.id).where(Act.source_key == first)) is not None:
        return 0
    facilities = list(await session.scalars(select(Facility).order_by(Facility.id)))
    codes = set(await session.scalars(select(Specialty.code)))
    specialists: dict[str, list[tuple[int, str | None]]] = {}
    for user in await session.scalars(select(User).where(User.role == Role.SPECIALIST)):
        code = await session.scalar(select(Specialty.code).where(Specialty.id == user.specialty_id))
        specialists.setdefault(str(code), []).append((user.id, user.rpps))
    rng = random.Random(2017)
    written, n, batch = 0, 0, []
    targets = monthly_targets(today, scale)
    for (year, month), count in targets.items():
        sites = [f for f in facilities if JOINED[f.category] <= year]
        weights = [CATEGORY_WEIGHT[f.category] * (1 + (f.id % 5) / 4) for f in sites]
        days = [
            d
            for d in (date(year, month, 1) + timedelta(days=i) for i in range(31))
            if d.month == month and d < today
        ]
        for _ in range(count):
            act_type = _pick(rng, ACT_TYPES)
            if year == 2020 and month in (3, 4, 5) and rng.random() < 0.3:
                act_type = ActType.TELECONSULTATION
            specialty = _pick(rng, SPECIALTY_MIX[act_type])
            if specialty not in codes:
                continue
            facility = rng.choices(sites, weights)[0]
            day = rng.choice([d for d in days if d.weekday() < 5] or days)
            local = datetime.combine(day, time(rng.randrange(8, 18), rng.randrange(60)), tzinfo=tz)
            specialist_id, specialist_rpps = rng.choice(specialists.get(specialty, [(None, None)]))
            low, high = MINUTES[act_type]
            n += 1
            batch.append(
                acts.NewAct(
                    act_type=act_type,
                    occurred_at=local,
                    duration_seconds=rng.randrange(low, high + 1) * 60,
                    facility_id=facility.id,
                    requester_role=rng.choice(REQUESTER_ROLES),
                    requester_rpps=_requester_rpps(facility.id, rng.randrange(6)),
                    specialist_id=specialist_id,
                    specialist_rpps=specialist_rpps,
                    specialty_code=specialty,
                    source_key=f"{SOURCE_PREFIX}{n}",
                    patient_key=acts.patient_key(
                        secret,
                        finess=facility.finess,
                        patient_ref=f"DEMO-{rng.randrange(40 + facility.id * 7)}",
                    ),
                    patient_consent=True,
                    incidents="coupure du son, reprise" if rng.random() < 0.02 else "",
                )
            )
        if len(batch) >= BATCH or (year, month) == max(targets):
            now = datetime.now(UTC)
            written += await acts.append_many(session, batch, now=now, tz=tz, recorded_by=None)
            batch = []
            progress(f"  actes jusqu'à {month:02d}/{year} : {written:,}".replace(",", " "))
    return written


@functools.lru_cache(maxsize=4096)
def _requester_rpps(facility_id: int, k: int) -> str:
    return rpps_for(20_000 + facility_id * 10 + k)
