"""Distinct patients kept as counts for the coarse cells regional teams read most.

The patient sets (`act_month_patients`, one row per month, rollup cell and patient) make
distinct patients exact, but counting a year of them still deduplicates about as many rows
as the year has acts. For the cells of the statistics page (month or year, by région,
département and facility category, any of them summed over) the count itself is kept:
each act's transaction reads its patients' set rows of the year, sees in which of those
cells and months each patient appears or disappears, and moves the counts by one. Exact,
not HyperLogLog: the figures are published with a secrecy threshold at 11 patients, where
an estimate's error would decide what is masked. Any other grouping or filter (specialty,
act type, facility, quarters, periods not starting on the 1st of January) is still counted
on the sets by `telmi.stats`.

A cell is (region, département, category) with '' for a dimension summed over; six grains,
since a département lies in one région. `patients` counts the month's patients in a cell,
`new_patients` those whose first month of the calendar year in the cell it is, so the
patients from January to the end of any month are the sum of `new_patients` over them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import Select, Table, and_, bindparam, func, literal_column, select, true
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from telmi.db import Executor, adding_upserts, dialect_name
from telmi.models import ActMonthPatient, ActPatientCount

ALL = ""  # a dimension summed over
DIMENSIONS = ("region_code", "departement_code", "facility_category")
# Which of DIMENSIONS a grain keeps; a département implies its région.
GRAINS: tuple[tuple[bool, bool, bool], ...] = (
    (False, False, False),
    (True, False, False),
    (False, False, True),
    (True, False, True),
    (True, True, False),
    (True, True, True),
)
_SETS = cast(Table, ActMonthPatient.__table__)
_COUNTS = cast(Table, ActPatientCount.__table__)
_SET_KEYS = tuple(c.name for c in _SETS.primary_key.columns)
_CHUNK = 500

Cell = tuple[str, str, str]


def grain_of(dimensions: Iterable[str]) -> tuple[bool, bool, bool]:
    """The grain keeping these of DIMENSIONS (and the région of a département)."""
    kept = set(dimensions)
    departement = "departement_code" in kept
    return ("region_code" in kept or departement, departement, "facility_category" in kept)


def _plain(value: Any) -> Any:
    return getattr(value, "value", value)


def _cells(region: str, departement: str, category: str) -> list[Cell]:
    """The six cells one set row counts in."""
    return [
        (region if r else ALL, departement if d else ALL, category if c else ALL)
        for r, d, c in GRAINS
    ]


_UPSERT = adding_upserts(_COUNTS, "patients", "new_patients")


def _presence(rows: Iterable[tuple[tuple[Any, ...], int]]) -> dict[Cell, set[int]]:
    """The months of each cell where the patient has a positive net."""
    months: dict[Cell, set[int]] = defaultdict(set)
    for key, acts in rows:
        if acts > 0:
            month, _, region, departement, category = key[:5]
            for cell in _cells(region, departement, category):
                months[cell].add(month)
    return months


async def record(session: Executor, changes: Sequence[dict[str, Any]]) -> None:
    """Move the counts for `changes` to the patient sets (their keys and a net `acts`),
    before they are applied. The caller holds the act log's lock, so no other writer
    moves these patients meanwhile."""
    if not changes:
        return
    delta = {tuple(_plain(c[k]) for k in _SET_KEYS): int(c["acts"]) for c in changes}
    years = sorted({key[0] // 100 for key in delta})
    patients = sorted({key[-1] for key in delta})
    before: dict[tuple[Any, ...], int] = {}
    for start in range(0, len(patients), _CHUNK):
        rows = await session.execute(
            select(*(_SETS.c[k] for k in _SET_KEYS), _SETS.c.acts).where(
                _SETS.c.patient_key.in_(patients[start : start + _CHUNK]),
                _SETS.c.month >= years[0] * 100,
                _SETS.c.month < (years[-1] + 1) * 100,
            )
        )
        for row in rows:
            before[tuple(_plain(v) for v in row[:-1])] = int(row[-1])
    after = dict(before)
    for key, n in delta.items():
        after[key] = after.get(key, 0) + n
    touched = {(key[-1], key[0] // 100) for key in delta}
    mine: dict[tuple[str, int], list[tuple[Any, ...]]] = defaultdict(list)
    for key in after:
        if (key[-1], key[0] // 100) in touched:
            mine[key[-1], key[0] // 100].append(key)
    moves: dict[tuple[int, Cell], list[int]] = defaultdict(lambda: [0, 0])
    for keys in mine.values():
        was = _presence((k, before.get(k, 0)) for k in keys)
        now = _presence((k, after[k]) for k in keys)
        for cell in was.keys() | now.keys():
            old, new = was.get(cell, set()), now.get(cell, set())
            for month in new - old:
                moves[month, cell][0] += 1
            for month in old - new:
                moves[month, cell][0] -= 1
            first_old, first_new = min(old, default=None), min(new, default=None)
            if first_old != first_new:
                if first_old is not None:
                    moves[first_old, cell][1] -= 1
                if first_new is not None:
                    moves[first_new, cell][1] += 1
    rows_out = [
        {
            "month": month,
            **dict(zip(DIMENSIONS, cell, strict=True)),
            "patients": p,
            "new_patients": n,
        }
        for (month, cell), (p, n) in moves.items()
        if p or n
    ]
    if rows_out:
        await session.execute(_UPSERT[dialect_name(session)], rows_out)


def _expected(grain: tuple[bool, bool, bool]) -> tuple[Select[Any], Select[Any]]:
    """The counts of one grain computed from the patient sets: per month, and first months."""
    kept = [_SETS.c[d] for d, keep in zip(DIMENSIONS, grain, strict=True) if keep]
    shown = [
        _SETS.c[d] if keep else literal_column("''").label(d)
        for d, keep in zip(DIMENSIONS, grain, strict=True)
    ]
    positive = _SETS.c.acts > 0
    monthly = (
        select(_SETS.c.month, *shown, func.count(_SETS.c.patient_key.distinct()))
        .where(positive)
        .group_by(_SETS.c.month, *kept)
    )
    firsts = (
        select(func.min(_SETS.c.month).label("month"), *shown)
        .where(positive)
        .group_by(_SETS.c.month // 100, *kept, _SETS.c.patient_key)
        .subquery()
    )
    new = (
        select(firsts.c.month, *(firsts.c[d] for d in DIMENSIONS), func.count())
        .where(true())  # SQLite: an upsert's SELECT needs a WHERE to parse
        .group_by(firsts.c.month, *(firsts.c[d] for d in DIMENSIONS))
    )
    return monthly, new


async def rebuild(session: Executor) -> None:
    """Recompute every count from the patient sets (a bulk load, a repair)."""
    await session.execute(_COUNTS.delete())
    dialect = dialect_name(session)
    columns = ["month", *DIMENSIONS]
    for grain in GRAINS:
        monthly, new = _expected(grain)
        await session.execute(
            _COUNTS.insert().from_select(
                [*columns, "patients", "new_patients"],
                monthly.add_columns(literal_column("0")),
            )
        )
        stmt = (pg_insert if dialect == "postgresql" else sqlite_insert)(_COUNTS)
        await session.execute(
            stmt.from_select(
                [*columns, "new_patients", "patients"], new.add_columns(literal_column("0"))
            ).on_conflict_do_update(
                index_elements=list(_COUNTS.primary_key.columns),
                set_={"new_patients": stmt.excluded.new_patients},
            )
        )


async def mismatches(session: Executor) -> int:
    """Rows where the kept counts differ from the patient sets' (zeros left out)."""
    expected: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0])
    for grain in GRAINS:
        monthly, new = _expected(grain)
        for row in await session.execute(monthly):
            expected[tuple(_plain(v) for v in row[:-1])][0] = int(row[-1])
        for row in await session.execute(new):
            expected[tuple(_plain(v) for v in row[:-1])][1] = int(row[-1])
    kept = {
        tuple(row[:-2]): [int(row[-2]), int(row[-1])]
        for row in await session.execute(select(_COUNTS))
        if row[-2] or row[-1]
    }
    want = {k: v for k, v in expected.items() if v != [0, 0]}
    return sum(kept.get(k) != want.get(k) for k in kept.keys() | want.keys())


@lru_cache(maxsize=64)
def _reading(grain: tuple[bool, bool, bool], filtered: tuple[str, ...]) -> Select[Any]:
    where = [
        _COUNTS.c.month >= bindparam("first_month"),
        _COUNTS.c.month < bindparam("end_month"),
    ]
    for name, keep in zip(DIMENSIONS, grain, strict=True):
        column = _COUNTS.c[name]
        where.append(column != ALL if keep else column == ALL)
        if name in filtered:
            where.append(column.in_(bindparam(name, expanding=True)))
    return select(
        _COUNTS.c.month,
        *(_COUNTS.c[d] for d in DIMENSIONS),
        _COUNTS.c.patients,
        _COUNTS.c.new_patients,
    ).where(and_(*where))


async def read(
    session: Executor,
    *,
    grain: tuple[bool, bool, bool],
    first_month: int,
    end_month: int,
    filters: Mapping[str, Sequence[str]],
) -> list[tuple[int, str, str, str, int, int]]:
    """The kept rows of one grain for months in [first_month, end_month): month, cell,
    patients, new patients (the statement built once per grain and filtered dimensions)."""
    filtered = tuple(name for name in DIMENSIONS if name in filters)
    bound: dict[str, Any] = {name: list(filters[name]) for name in filtered}
    bound.update(first_month=first_month, end_month=end_month)
    rows = await session.execute(_reading(grain, filtered), bound)
    return [(int(r[0]), r[1], r[2], r[3], int(r[4]), int(r[5])) for r in rows]
