"""`telmi bench stats`: the statistics queries over millions of acts, and appends per second.

The N acts are generated straight into the log table in large batches (spread from 2017 to
today like the demo history, with fixed facility dimensions), then the monthly rollup and
its patient sets and kept patient counts are built from the log itself, so they agree as
they do in service. Their hashes are placeholders (this measures reading, not the chain);
patient keys are 64 hexadecimal digits like real ones. Distinct patients are timed from
the kept counts or sets and, as the anchor of the same run, on the log alone (how they
were counted before the sets were kept). The append rates are then measured through the log's
real entry points (`append`, from concurrent tasks, and `append_many`), chain, rollup and
patient sets included, on top of those N acts.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import random
import statistics as pystats
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Table, func, insert, select, text

from telmi import acts, patient_counts, stats
from telmi.bench.common import machine, progress, scratch_database
from telmi.db import Database
from telmi.demo import SPECIALTIES, finess_for, rpps_for
from telmi.demo_history import monthly_targets
from telmi.models import (
    Act,
    ActMonth,
    ActMonthPatient,
    ActType,
    Departement,
    Facility,
    FacilityCategory,
    Region,
    Specialty,
)

PARIS = ZoneInfo("Europe/Paris")
DEPARTEMENTS = ["21", "25", "39", "58", "70", "71", "89", "90"]
CATEGORIES = list(FacilityCategory)
TYPES = [ActType.TELEEXPERTISE] * 11 + [ActType.TELECONSULTATION] * 8 + [ActType.TELESURVEILLANCE]
TARGET_MS = 300
BATCH = 20_000
_ACTS: Table = Act.__table__  # type: ignore[assignment]


async def _seed_directory(db: Database, facilities: int) -> list[Facility]:
    async with db.write() as session:
        region = Region(code="27", name="Bourgogne-Franche-Comté")
        session.add(region)
        await session.flush()
        session.add_all(Departement(code=c, name=c, region_id=region.id) for c in DEPARTEMENTS)
        await session.flush()
        rows = [
            Facility(
                finess=finess_for(DEPARTEMENTS[i % 8], i + 1),
                name=f"Site {i + 1}",
                category=CATEGORIES[i % 4],
                finess_category_code="500",
                departement_code=DEPARTEMENTS[i % 8],
                commune="Dijon",
                created_at=datetime.now(UTC),
            )
            for i in range(facilities)
        ]
        session.add_all(rows)
        session.add_all(Specialty(code=code, name=name) for code, name in SPECIALTIES)
        await session.flush()
        return rows


@functools.cache
def _rpps(index: int) -> str:
    return rpps_for(index)


@functools.cache
def _patient(facility_id: int, n: int) -> str:
    """64 hexadecimal digits, as `acts.patient_key` gives: sorting and hashing cost that."""
    return hashlib.sha256(f"p{facility_id}-{n}".encode()).hexdigest()


async def _insert(db: Database, rows: list[dict[str, Any]]) -> None:
    """Bulk insert; on PostgreSQL through COPY, the way a data load would go."""
    if db.dialect != "postgresql":
        async with db.write() as session:
            await session.execute(insert(_ACTS), rows)
        return
    columns = list(rows[0])
    async with db.engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        await driver.copy_records_to_table(
            "acts", records=[tuple(r[c] for c in columns) for r in rows], columns=columns
        )


def _rows(
    rng: random.Random, facilities: list[Facility], month: tuple[int, int], count: int, start: int
) -> list[dict[str, Any]]:
    year, m = month
    first = datetime(year, m, 1, 8, tzinfo=PARIS)
    days = ((first + timedelta(days=32)).replace(day=1) - first).days
    rows = []
    for i in range(count):
        f = facilities[int(rng.random() ** 1.5 * len(facilities))]
        at = first + timedelta(days=rng.randrange(days), minutes=rng.randrange(600))
        n = start + i
        rows.append(
            {
                "act_type": TYPES[rng.randrange(len(TYPES))].value,
                "occurred_at": at.astimezone(UTC),
                **acts.local_calendar(at, PARIS),
                "duration_seconds": rng.randrange(300, 2700),
                "sign": 1,
                "facility_id": f.id,
                "facility_finess": f.finess,
                "facility_category": f.category.value,
                "facility_category_code": f.finess_category_code,
                "departement_code": f.departement_code,
                "region_code": "27",
                "requester_role": "infirmier",
                "requester_id": None,
                "requester_rpps": _rpps(10_000 + f.id * 8 + n % 8),
                "specialist_id": None,
                "specialist_rpps": _rpps(1 + n % 300),
                "specialty_code": SPECIALTIES[int(rng.random() ** 2 * len(SPECIALTIES))][0],
                "source_key": f"bench:{n}",
                "patient_key": _patient(f.id, rng.randrange(2500)),
                "patient_consent": True,
                "incidents": "",
                "cancels_act_id": None,
                "note": "",
                "recorded_at": at.astimezone(UTC),
                "recorded_by_id": None,
                "prev_hash": "",
                "hash": f"bench-{n}",
            }
        )
    return rows


async def _load(db: Database, total: int, today: date) -> None:
    facilities = await _seed_directory(db, 200)
    targets = monthly_targets(today)
    scale = total / sum(targets.values())
    plan = {month: round(n * scale) for month, n in targets.items()}
    plan[max(plan)] += total - sum(plan.values())
    rng, written, shown = random.Random(5), 0, 0
    for month, count in plan.items():
        for start in range(0, count, BATCH):
            rows = _rows(rng, facilities, month, min(BATCH, count - start), written)
            await _insert(db, rows)
            written += len(rows)
            if written - shown >= total / 20 or written == total:
                progress("acts generated", written, total)
                shown = written
    keys = [_ACTS.c[name] for name in acts.ROLLUP_KEYS]
    async with db.write() as session:
        await session.execute(
            insert(ActMonth).from_select(
                [*(k.name for k in keys), "acts", "duration_seconds"],
                select(
                    *keys,
                    func.sum(_ACTS.c.sign),
                    func.sum(_ACTS.c.sign * _ACTS.c.duration_seconds),
                ).group_by(*keys),
            )
        )
        cell = [_ACTS.c[name] for name in acts.PATIENT_KEYS]
        await session.execute(
            insert(ActMonthPatient).from_select(
                [*(k.name for k in cell), "acts"],
                select(*cell, func.sum(_ACTS.c.sign)).group_by(*cell),
            )
        )
        await patient_counts.rebuild(session)
    async with db.engine.connect() as conn:
        autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.execute(
            text("VACUUM ANALYZE" if db.dialect == "postgresql" else "ANALYZE")
        )


async def _timed(work: Callable[[], Awaitable[Any]], runs: int) -> list[float]:
    await work()  # warm caches and plans, as a served query would be
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        await work()
        out.append((time.perf_counter() - started) * 1000)
    return out


async def _appends(db: Database, count: int, tasks: int) -> tuple[float, float]:
    """Acts per second through `append` (one transaction each, concurrent) and `append_many`."""
    async with db.read() as session:
        facility = await session.scalar(select(Facility).limit(1))
    assert facility is not None
    now = datetime.now(UTC)
    queue = list(range(count))

    def new(n: int) -> acts.NewAct:
        return acts.NewAct(
            act_type=ActType.TELEEXPERTISE,
            occurred_at=now - timedelta(minutes=n),
            duration_seconds=600,
            facility_id=facility.id,
            requester_role="infirmier",
            requester_rpps=rpps_for(77),
            specialty_code="dermatologie",
            source_key=f"bench-append:{n}",
            patient_key=f"pa{n % 500}",
            patient_consent=True,
        )

    async def worker() -> None:
        while queue:
            n = queue.pop()
            async with db.write() as session:
                await acts.append(session, new(n), now=now, tz=PARIS, recorded_by=None)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    single = count / (time.perf_counter() - started)
    batch = [new(count + n) for n in range(count * 5)]
    started = time.perf_counter()
    for i in range(0, len(batch), 1000):
        async with db.write() as session:
            await acts.append_many(
                session, batch[i : i + 1000], now=now, tz=PARIS, recorded_by=None
            )
    many = len(batch) / (time.perf_counter() - started)
    return single, many


async def bench_stats(
    backend: str, *, acts_count: int, runs: int, postgres_url: str | None
) -> bool:
    print(f"telmi bench stats — {backend}, {acts_count:,} acts ({machine()})")
    today = datetime.now(PARIS).date()
    year = today.year - 1
    async with scratch_database(backend, postgres_url) as url:
        db = Database(url)
        try:
            started = time.perf_counter()
            await _load(db, acts_count, today)
            print(f"  loaded and analysed in {time.perf_counter() - started:.0f} s")
            async with db.read() as session:
                in_year = await session.scalar(
                    select(func.count()).select_from(Act).where(Act.month // 100 == year)
                )
            whole_year = stats.Query(date(year, 1, 1), date(year + 1, 1, 1))
            everything = stats.Query(date(2017, 1, 1), today + timedelta(days=1))
            counts = ("acts", "duration")
            cases: list[tuple[str, stats.Query, bool]] = [
                (
                    f"{year} by month x département x category (acts, duration) [target]",
                    replace(
                        whole_year,
                        group_by=("month", "departement", "facility_category"),
                        measures=counts,
                    ),
                    False,
                ),
                (
                    f"{year} by month x département x category, with distinct patients [target]",
                    replace(whole_year, group_by=("month", "departement", "facility_category")),
                    True,
                ),
                (
                    f"{today.year} to date by month x département x category, with distinct patients",
                    replace(
                        whole_year,
                        start=date(today.year, 1, 1),
                        end=today + timedelta(days=1),
                        group_by=("month", "departement", "facility_category"),
                    ),
                    True,
                ),
                (
                    f"{year} by specialty, with distinct patients (on the sets, not kept counts)",
                    replace(whole_year, group_by=("specialty",)),
                    True,
                ),
                (
                    f"{year} by specialty, téléexpertise only (acts, duration)",
                    replace(
                        whole_year,
                        group_by=("specialty",),
                        filters={"act_type": ("teleexpertise",)},
                        measures=counts,
                    ),
                    False,
                ),
                (
                    f"{year} by week x département (acts, duration; from the log)",
                    replace(whole_year, group_by=("week", "departement"), measures=counts),
                    False,
                ),
                (
                    "all years by year x act type (acts, duration)",
                    replace(everything, group_by=("year", "act_type"), measures=counts),
                    False,
                ),
                (
                    "all years by year x act type, with distinct patients",
                    replace(everything, group_by=("year", "act_type")),
                    False,
                ),
            ]
            print(
                f"  {in_year:,} acts in {year}; each query run {runs} times after one warm-up (service call, growth included)"
            )
            ok = True
            for label, query, anchored in cases:

                async def run(q: stats.Query = query, on_log: bool = False) -> Any:
                    async with db.read() as session:
                        return await stats.acts(session, q, on_log=on_log)

                ms = await _timed(run, runs)
                line = f"  {label}: median {pystats.median(ms):.0f} ms, min {min(ms):.0f}, max {max(ms):.0f}"
                if "[target]" in label:
                    met = pystats.median(ms) < TARGET_MS
                    ok = ok and (met or backend != "postgresql")
                    line += (
                        f" (target < {TARGET_MS} ms on PostgreSQL: {'met' if met else 'NOT met'})"
                    )
                print(line)
                if anchored:  # the same query with distinct patients counted on the log
                    logged = await _timed(functools.partial(run, on_log=True), max(1, runs // 2))
                    same = await run() == await run(on_log=True)
                    ok = ok and same
                    print(
                        f"    the same on the log alone (before): median {pystats.median(logged):.0f} ms;"
                        f" what is kept is {pystats.median(logged) / pystats.median(ms):.1f}x faster;"
                        f" same figures: {'yes' if same else 'NO'}"
                    )

            async def report() -> Any:
                async with db.read() as session:
                    return await stats.monthly_report(session, whole_year)

            ms = await _timed(report, runs)
            print(
                f"  monthly report {year}: median {pystats.median(ms):.0f} ms, min {min(ms):.0f}, max {max(ms):.0f}"
            )
            single, many = await _appends(db, 1000, 20)
            print(
                f"  appends: {single:,.0f} acts/s through append() from 20 tasks (one transaction each); {many:,.0f} acts/s through append_many() in batches of 1,000"
            )
            async with db.read() as session:
                mismatches = await acts.rollup_mismatches(session)
                patients = await acts.patient_mismatches(session)
                kept_counts = await patient_counts.mismatches(session)
            print(
                f"  rollup cells differing from the log after the appends: {mismatches};"
                f" patient-set rows: {patients}; kept patient counts: {kept_counts}"
            )
            ok = ok and mismatches == 0 and patients == 0 and kept_counts == 0
        finally:
            await db.dispose()
    print("OK" if ok else "FAILED")
    return ok
