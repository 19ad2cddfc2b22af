"""Regional statistics over the act log: counts, distinct patients, durations, growth.

Only aggregates leave this module. Acts and durations are sums, so whole months come from
the monthly rollup (written with each act) and only the partial months at the edges of a
range are summed from the log. Distinct patients are not additive: they are counted over
the exact patient sets kept with the rollup (one row per month, cell and patient) for whole
months, and over the log for the edges and for weeks; distinct professionals are counted
on the log. A cancelled act nets out (sign -1 with the same dimensions), and a patient
counts only where their net acts are positive.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from functools import lru_cache
from typing import Annotated, Any, Literal, get_args

import pydantic
import sqlalchemy as sa
from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, WrapValidator
from pydantic_core import PydanticCustomError
from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Select,
    String,
    Table,
    and_,
    bindparam,
    exists,
    func,
    literal,
    select,
    text,
    tuple_,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession

from telmi import patient_counts, values
from telmi.db import dialect_name
from telmi.errors import ValidationError
from telmi.models import (
    Act,
    ActMonth,
    ActMonthPatient,
    ActType,
    Departement,
    FacilityCategory,
    Specialty,
)

TimeKey = Literal["year", "quarter", "month", "week"]
Dimension = Literal[
    "region", "departement", "facility_category", "facility", "specialty", "act_type"
]
GroupKey = Literal[TimeKey, Dimension]
Measure = Literal["acts", "patients", "duration"]
TIME_KEYS: tuple[str, ...] = get_args(TimeKey)
DIMENSIONS: tuple[str, ...] = get_args(Dimension)
GROUP_KEYS = TIME_KEYS + DIMENSIONS
MEASURES: tuple[str, ...] = get_args(Measure)
DEFAULT_THRESHOLD = 11
_COLUMNS = {
    "region": "region_code",
    "departement": "departement_code",
    "facility_category": "facility_category",
    "facility": "facility_finess",
    "specialty": "specialty_code",
    "act_type": "act_type",
}
_ACTS: Table = Act.__table__  # type: ignore[assignment]
_MONTHS: Table = ActMonth.__table__  # type: ignore[assignment]
_PATIENTS: Table = ActMonthPatient.__table__  # type: ignore[assignment]

Key = tuple[Any, ...]


@dataclass(frozen=True)
class Query:
    start: date
    end: date  # exclusive
    group_by: tuple[str, ...] = ()
    filters: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    measures: tuple[str, ...] = MEASURES

    @property
    def last_day(self) -> date:
        return self.end - timedelta(days=1)

    def year_before(self) -> Query:
        return replace(self, start=_years_back(self.start), end=_years_back(self.end))


@dataclass
class Cell:
    acts: int = 0
    duration_seconds: int = 0
    patients: int | None = None


@dataclass
class Row:
    keys: dict[str, Any]
    current: Cell
    previous: Cell

    @property
    def growth(self) -> float | None:
        if self.previous.acts <= 0:
            return None
        return (self.current.acts - self.previous.acts) / self.previous.acts


@dataclass
class Result:
    query: Query
    rows: list[Row]
    total: Row


def _years_back(day: date) -> date:
    try:
        return day.replace(year=day.year - 1)
    except ValueError:  # 29 February
        return day.replace(year=day.year - 1, day=28)


# --- the query string ---------------------------------------------------------------------------


def _listed(item: Any, what: str, choices: Sequence[str] = ()) -> Any:
    """A list given by repeating the parameter or as comma-separated values (both may mix);
    a bad value is named with its parameter, not its position. A blank one is refused: a
    filter on nothing, or a grouping by nothing, is a mistake the schema does not allow."""
    possible = f" (possibles : {', '.join(choices)})" if choices else ""

    def split(value: Any, handler: pydantic.ValidatorFunctionWrapHandler) -> Any:
        given = [value] if isinstance(value, str) else value
        if isinstance(given, list | tuple) and all(isinstance(v, str) for v in given):
            given = [part.strip() for v in given for part in v.split(",") if part.strip()]
            if not given:
                raise PydanticCustomError("empty", "{what} vide", {"what": what})
        try:
            return handler(given)
        except pydantic.ValidationError as exc:
            bad = str(exc.errors(include_url=False)[0].get("input", ""))[:40]
            raise PydanticCustomError(
                "unknown_value",
                "{what} « {bad} » invalide{possible}",
                {"what": what, "bad": bad, "possible": possible},
            ) from None

    return Annotated[list[item], WrapValidator(split)]  # type: ignore[valid-type]


def _one_period(group_by: list[str]) -> list[str]:
    if len(set(group_by)) != len(group_by):
        raise PydanticCustomError("duplicate", "regroupement en double")
    if len([k for k in group_by if k in TIME_KEYS]) > 1:
        raise PydanticCustomError(
            "periods", "une seule période de regroupement (year, quarter, month ou week)"
        )
    return group_by


def _yes_no(value: Any) -> Any:
    if isinstance(value, str):
        if value.lower() in ("1", "true", "oui"):
            return True
        if value.lower() in ("0", "false", "non"):
            return False
        raise PydanticCustomError("yes_no", "vaut 1 ou 0")
    return value


RegionCode = Annotated[str, Field(pattern=r"^\d{2,3}$")]
DepartementCode = Annotated[str, Field(pattern=r"^(\d{2,3}|2[AB])$")]
SpecialtyCode = Annotated[str, Field(pattern=r"^[a-z0-9-]{1,40}$")]
FILTER = "filter: repeat the parameter or separate the values with commas"


class StatsFilters(values.Query):
    """The period, the filters and the output of a statistics request. A parameter this
    does not name is refused: a mistyped filter must not widen the answer silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: values.LocalDate | None = Field(
        None, alias="from", description="first day (default: 1 January of the year of `to`)"
    )
    end: values.LocalDate | None = Field(
        None,
        alias="to",
        description="last day, inclusive (default: today; for a `from` ahead, 31 December)",
    )
    region: _listed(RegionCode, "région") = Field([], description=FILTER)  # type: ignore[valid-type]
    departement: _listed(DepartementCode, "département") = Field([], description=FILTER)  # type: ignore[valid-type]
    facility_category: _listed(  # type: ignore[valid-type]
        FacilityCategory, "catégorie", [c.value for c in FacilityCategory]
    ) = Field([], description=FILTER)
    facility: _listed(values.Finess, "FINESS") = Field([], description=FILTER)  # type: ignore[valid-type]
    specialty: _listed(SpecialtyCode, "spécialité") = Field([], description=FILTER)  # type: ignore[valid-type]
    act_type: _listed(ActType, "type d'acte", [t.value for t in ActType]) = Field(  # type: ignore[valid-type]
        [], description=FILTER
    )
    format: Literal["json", "csv"] = "json"
    sep: Literal[",", ";"] = Field(",", description="CSV separator (; gives decimal commas)")
    publication: Annotated[bool, BeforeValidator(_yes_no)] = Field(
        False, description=f"mask counts below {DEFAULT_THRESHOLD} (statistical secrecy)"
    )
    threshold: int | None = Field(
        None, ge=2, le=1000, description="mask counts below this (overrides publication)"
    )

    @property
    def masking(self) -> int | None:
        """The publication threshold asked for, if any."""
        if self.threshold is not None:
            return self.threshold
        return DEFAULT_THRESHOLD if self.publication else None


class ActStatsQuery(StatsFilters):
    group_by: Annotated[
        _listed(GroupKey, "regroupement", GROUP_KEYS),  # type: ignore[valid-type]
        AfterValidator(_one_period),
    ] = Field(
        [],
        description="at most one of year, quarter, month, week, and any of "
        + ", ".join(DIMENSIONS)
        + " (repeated or comma-separated)",
    )
    measures: _listed(Measure, "mesure", MEASURES) = Field(  # type: ignore[valid-type]
        [], description="subset of acts, patients, duration (default: all)"
    )


class MonthlyReportQuery(StatsFilters):
    """The monthly report is grouped by month and has its own columns."""


def build_query(asked: StatsFilters, *, today: date) -> Query:
    """The service query of a request. The period defaults to the year to date; a lone
    `to` starts on the 1st of January of its year, a lone `from` ahead ends with its year."""
    last = asked.end or (today if asked.start is None or asked.start <= today else None)
    start = asked.start or date((last or today).year, 1, 1)
    last = last or date(start.year, 12, 31)  # a period ahead: its year
    if last < start:
        raise ValidationError("« to » précède « from ».", field="to")
    if start.year < 2000 or last.year > today.year + 1:
        raise ValidationError("Période hors des bornes (2000 à l'an prochain).", field="from")
    filters = {
        name: tuple(str(v) for v in getattr(asked, name))
        for name in DIMENSIONS
        if getattr(asked, name)
    }
    if isinstance(asked, ActStatsQuery):
        group_by, measures = tuple(asked.group_by), tuple(asked.measures) or MEASURES
    else:
        group_by, measures = (), MEASURES
    return Query(start, last + timedelta(days=1), group_by, filters, measures)


# --- SQL ----------------------------------------------------------------------------------------


def _yyyymm(day: date) -> int:
    return day.year * 100 + day.month


def _key_expr(table: Table, key: str) -> ColumnElement[Any]:
    if key == "year":
        return table.c.month // 100
    if key == "quarter":
        return (table.c.month // 100) * 10 + ((table.c.month % 100) - 1) // 3 + 1
    if key == "month":
        return table.c.month
    if key == "week":
        return table.c.iso_week
    return table.c[_COLUMNS[key]]


def _filters(table: Table, query: Query) -> list[ColumnElement[bool]]:
    return [table.c[_COLUMNS[name]].in_(values) for name, values in query.filters.items()]


def _log_range(
    start: date | ColumnElement[Any], end: date | ColumnElement[Any]
) -> ColumnElement[bool]:
    return and_(_ACTS.c.occurred_on >= start, _ACTS.c.occurred_on < end)


def _shown(keys: list[ColumnElement[Any]], tag: int | None) -> list[ColumnElement[Any]]:
    """The key columns of a part; tagged (several queries in one statement: `sums`), the
    query's number and its one key as text."""
    if tag is None:
        return keys
    return [literal(tag), sa.cast(keys[0], String) if keys else literal("")]


@dataclass(frozen=True)
class _Shape:
    """What a statement over a query depends on besides its values: its statements are
    built once per shape, their dates, months and filter values bound at execution (built
    and keyed anew on every request, they were most of the statistics page's time)."""

    group_by: tuple[str, ...]
    filters: tuple[str, ...]
    rollup: bool = False  # whole months from the rollup
    edges: int = 0  # day ranges from the log


def _bound_filters(table: Table, shape: _Shape, prefix: str) -> list[ColumnElement[bool]]:
    return [
        table.c[_COLUMNS[name]].in_(bindparam(f"{prefix}f_{name}", expanding=True))
        for name in shape.filters
    ]


def _bound_range(prefix: str, n: int | str = "") -> ColumnElement[bool]:
    return _log_range(bindparam(f"{prefix}start{n}"), bindparam(f"{prefix}end{n}"))


def _filter_values(query: Query, prefix: str = "") -> dict[str, Any]:
    return {f"{prefix}f_{name}": list(v) for name, v in query.filters.items()}


def _planned(query: Query, prefix: str = "") -> tuple[_Shape, dict[str, Any]]:
    """Whole months from the rollup, partial months at the edges from the log: the shape of
    the query's sums and the values to run it with."""
    months, edges = _split(query)
    bound = _filter_values(query, prefix)
    if months is not None:
        bound[prefix + "first_month"], bound[prefix + "end_month"] = months
    for n, (start, end) in enumerate(edges):
        bound[f"{prefix}start{n}"], bound[f"{prefix}end{n}"] = start, end
    shape = _Shape(query.group_by, tuple(query.filters), months is not None, len(edges))
    return shape, bound


def _sums_on_log(shape: _Shape, prefix: str, n: int, tag: int | None) -> Select[Any]:
    keys = [_key_expr(_ACTS, k) for k in shape.group_by]
    return (
        select(
            *_shown(keys, tag),
            func.sum(_ACTS.c.sign),
            func.sum(_ACTS.c.sign * _ACTS.c.duration_seconds),
        )
        .where(_bound_range(prefix, n), *_bound_filters(_ACTS, shape, prefix))
        .group_by(*keys)
    )


def _sums_on_rollup(shape: _Shape, prefix: str, tag: int | None) -> Select[Any]:
    keys = [_key_expr(_MONTHS, k) for k in shape.group_by]
    return (
        select(*_shown(keys, tag), func.sum(_MONTHS.c.acts), func.sum(_MONTHS.c.duration_seconds))
        .where(
            _MONTHS.c.month >= bindparam(prefix + "first_month"),
            _MONTHS.c.month < bindparam(prefix + "end_month"),
            *_bound_filters(_MONTHS, shape, prefix),
        )
        .group_by(*keys)
    )


def _first_of_next_month(day: date) -> date:
    return (day.replace(day=1) + timedelta(days=32)).replace(day=1)


def _split(query: Query) -> tuple[tuple[int, int] | None, list[tuple[date, date]]]:
    """The whole months of the period (yyyymm, first and past the last) and the day ranges
    left for the log: the partial months at the edges, or all of it for week groupings."""
    if "week" in query.group_by:
        return None, [(query.start, query.end)]
    head_end = query.start if query.start.day == 1 else _first_of_next_month(query.start)
    tail_start = query.end.replace(day=1)
    if head_end >= tail_start:
        return None, [(query.start, query.end)]
    edges = [(query.start, head_end), (tail_start, query.end)]
    return (_yyyymm(head_end), _yyyymm(tail_start)), [(a, b) for a, b in edges if a < b]


def _plan(shape: _Shape, prefix: str = "", tag: int | None = None) -> list[Select[Any]]:
    parts = [_sums_on_rollup(shape, prefix, tag)] if shape.rollup else []
    return parts + [_sums_on_log(shape, prefix, n, tag) for n in range(shape.edges)]


@lru_cache(maxsize=512)
def _plan_statements(shape: _Shape) -> tuple[Select[Any], ...]:
    return tuple(_plan(shape))


@lru_cache(maxsize=64)
def _sums_statement(shapes: tuple[_Shape, ...]) -> CompoundSelect:
    return union_all(
        *(part for tag, shape in enumerate(shapes) for part in _plan(shape, f"q{tag}_", tag))
    )


@lru_cache(maxsize=256)
def _distinct(shape: _Shape) -> Select[Any]:
    """Distinct patients with a positive net count over [start, end), per group."""
    keys = [_key_expr(_ACTS, k).label(f"k{i}") for i, k in enumerate(shape.group_by)]
    who = _ACTS.c.patient_key
    inner = (
        select(*keys, who.label("who"))
        .where(_bound_range(""), *_bound_filters(_ACTS, shape, ""))
        .group_by(*keys, who)
        .having(func.sum(_ACTS.c.sign) > 0)
        .subquery()
    )
    outer_keys = [inner.c[f"k{i}"] for i in range(len(keys))]
    return select(*outer_keys, func.count()).select_from(inner).group_by(*outer_keys)


def _distinct_patients(query: Query) -> tuple[Select[Any], dict[str, Any]]:
    return _distinct(_Shape(query.group_by, tuple(query.filters))), _log_bound(query)


def _log_bound(query: Query) -> dict[str, Any]:
    """The values of a statement over the log between the query's start and end."""
    return {"start": query.start, "end": query.end, **_filter_values(query)}


def _patients(query: Query, *, total: bool = False, postgresql: bool = False) -> Select[Any]:
    """Distinct patients per group, exactly as `_distinct` counts them on the log.

    Whole months come from `act_month_patients`, the edges from the log. A patient counts
    in a group where their net acts over the period are positive; the net of one (month,
    cell, patient) is never negative (a cancellation repeats its act's dimensions, date
    included), so that sum is positive exactly where one of its parts is: the union of the
    positive parts, deduplicated, is the count.

    On PostgreSQL the keys are compared bytewise (`COLLATE "C"`): a database collation such
    as C.UTF-8 sorts text through strcoll, without abbreviated keys, which made sorting a
    year of patient keys several times slower. Equality is the same under both (the
    collations are deterministic), so the counts are too."""
    months, edges = _split(query)

    def who(column: ColumnElement[Any]) -> ColumnElement[Any]:
        return (column.collate("C") if postgresql else column).label("who")

    parts: list[Select[Any]] = []
    if months is not None:
        parts.append(
            select(
                *(_key_expr(_PATIENTS, k).label(f"k{i}") for i, k in enumerate(query.group_by)),
                who(_PATIENTS.c.patient_key),
            ).where(
                _PATIENTS.c.month >= months[0],
                _PATIENTS.c.month < months[1],
                _PATIENTS.c.acts > 0,
                *_filters(_PATIENTS, query),
            )
        )
    for start, end in edges:
        keys = [_key_expr(_ACTS, k).label(f"k{i}") for i, k in enumerate(query.group_by)]
        parts.append(
            select(*keys, who(_ACTS.c.patient_key))
            .where(_log_range(start, end), *_filters(_ACTS, query))
            .group_by(*keys, _ACTS.c.patient_key)
            .having(func.sum(_ACTS.c.sign) > 0)
        )
    inner = (parts[0] if len(parts) == 1 else union_all(*parts)).subquery()
    groups = [inner.c[f"k{i}"] for i in range(len(query.group_by))]
    counted = func.count(inner.c.who.distinct())
    if total and groups:  # the groups and the whole period in one pass (PostgreSQL)
        return select(*groups, func.grouping(*groups), counted).group_by(
            func.grouping_sets(tuple_(*groups), tuple_())
        )
    return select(*groups, counted).group_by(*groups)


async def sums(session: AsyncSession, queries: Sequence[Query]) -> list[dict[Any, Cell]]:
    """Acts and durations of several queries, each grouped by one key at most (the key of
    an ungrouped one is ""), in one statement: a page showing many breakdowns pays one
    round trip and one execution, not one per part."""
    shapes, bound = [], {}
    for tag, query in enumerate(queries):
        assert len(query.group_by) <= 1, "one key per query"
        shape, more = _planned(query, f"q{tag}_")
        shapes.append(shape)
        bound.update(more)
    out: list[dict[Any, Cell]] = [{} for _ in queries]
    for tag, raw, acts_sum, seconds in await session.execute(_sums_statement(tuple(shapes)), bound):
        by = queries[tag].group_by
        cell = out[tag].setdefault(int(raw) if by and by[0] in TIME_KEYS else raw, Cell())
        cell.acts += int(acts_sum or 0)
        cell.duration_seconds += int(seconds or 0)
    return out


def _key(values: Sequence[Any]) -> Key:
    return tuple(v.value if isinstance(v, ActType | FacilityCategory) else v for v in values)


async def _cells(
    session: AsyncSession, query: Query, *, on_log: bool = False
) -> tuple[dict[Key, Cell], int | None]:
    """The groups of the period, and its distinct patients as a whole (None when they are
    not asked for)."""
    cells: dict[Key, Cell] = {}
    shape, bound = _planned(query)
    for part in _plan_statements(shape):
        for row in await session.execute(part, bound):
            cell = cells.setdefault(_key(row[:-2]), Cell())
            cell.acts += int(row[-2] or 0)
            cell.duration_seconds += int(row[-1] or 0)
    whole: int | None = None
    if "patients" in query.measures:
        for cell in cells.values():
            cell.patients = 0
        whole = await _count_patients(session, query, cells, on_log)
    return {k: c for k, c in cells.items() if c.acts or c.patients}, whole


async def _count_patients(
    session: AsyncSession, query: Query, cells: dict[Key, Cell], on_log: bool
) -> int:
    """Fill in each group's distinct patients and return the whole period's."""
    everything = replace(query, group_by=())
    if on_log:
        for row in await session.execute(*_distinct_patients(query)):
            cells.setdefault(_key(row[:-1]), Cell(patients=0)).patients = int(row[-1])
        if not query.group_by:
            return cells.get((), Cell(patients=0)).patients or 0
        return int(await session.scalar(*_distinct_patients(everything)) or 0)
    kept = _kept(query)
    if kept is not None:
        return await _count_kept(session, query, cells, kept)
    postgresql = dialect_name(session) == "postgresql"
    if postgresql:
        # A year of patient keys, sorted per group and for the whole: in memory, not on disk;
        # compiling the plan (JIT) costs more than it saves on these sorts.
        await session.execute(text("SET LOCAL work_mem = '64MB'"))
        await session.execute(text("SET LOCAL jit = off"))
    together = postgresql and bool(query.group_by)
    whole = 0
    for row in await session.execute(_patients(query, total=together, postgresql=postgresql)):
        if together and row[-2]:  # the grouping set of the whole period
            whole = int(row[-1])
            continue
        keys = row[:-2] if together else row[:-1]
        cells.setdefault(_key(keys), Cell(patients=0)).patients = int(row[-1])
    if not query.group_by:
        return cells.get((), Cell(patients=0)).patients or 0
    if not together:
        whole = int(await session.scalar(_patients(everything, postgresql=postgresql)) or 0)
    return whole


_KEPT = {k: _COLUMNS[k] for k in ("region", "departement", "facility_category")}


@dataclass(frozen=True)
class _Kept:
    single: bool  # the period is one whole month
    tail: date | None  # the 1st of a partial last month, counted on the log


def _kept(query: Query) -> _Kept | None:
    """Whether `patient_counts` holds the answer: groups and filters on région, département
    and category only (a filter on one value each), by month or year or not by time, over
    one whole month or from the 1st of January to a day of the same year (the partial last
    month is read from the log, and matched against the year's sets)."""
    dims = [k for k in query.group_by if k not in TIME_KEYS]
    if not {k for k in query.group_by if k in TIME_KEYS} <= {"month", "year"}:
        return None
    if not set(dims) <= _KEPT.keys() or not set(query.filters) <= _KEPT.keys():
        return None
    if any(len(v) != 1 for v in query.filters.values()):
        return None  # a sum over several values would count a patient in two of them twice
    if query.start.day != 1 or query.end <= query.start:
        return None
    if query.end == _first_of_next_month(query.start):
        return _Kept(single=True, tail=None)
    if query.start.month == 1 and query.end <= date(query.start.year + 1, 1, 1):
        return _Kept(single=False, tail=None if query.end.day == 1 else query.end.replace(day=1))
    return None


@lru_cache(maxsize=256)
def _new_in_tail(shape: _Shape) -> Select[Any]:
    """Per group, the patients of the partial last month not seen in the group before it
    this year: probed in the sets through their (patient, month) index."""
    keys = [_key_expr(_ACTS, k).label(f"k{i}") for i, k in enumerate(shape.group_by)]
    seen = (
        select(*keys, _ACTS.c.patient_key.label("who"))
        .where(_bound_range(""), *_bound_filters(_ACTS, shape, ""))
        .group_by(*keys, _ACTS.c.patient_key)
        .having(func.sum(_ACTS.c.sign) > 0)
        .subquery()
    )
    earlier = exists().where(
        _PATIENTS.c.patient_key == seen.c.who,
        _PATIENTS.c.month >= bindparam("first_month"),
        _PATIENTS.c.month < bindparam("end_month"),
        _PATIENTS.c.acts > 0,
        *(
            _PATIENTS.c[_COLUMNS[k]] == seen.c[f"k{i}"]
            for i, k in enumerate(shape.group_by)
            if k in _KEPT
        ),
        *_bound_filters(_PATIENTS, shape, ""),
    )
    groups = [seen.c[f"k{i}"] for i in range(len(keys))]
    return select(*groups, func.count()).select_from(seen).where(~earlier).group_by(*groups)


async def _count_kept(
    session: AsyncSession, query: Query, cells: dict[Key, Cell], kept: _Kept
) -> int:
    """`_count_patients` from the kept counts: a month's patients where the groups are
    months (or the period is one), the year's new patients summed up to the end otherwise."""
    filters = {_KEPT[k]: v for k, v in query.filters.items()}
    span = {"first_month": _yyyymm(query.start), "end_month": _yyyymm(kept.tail or query.end)}

    async def counted(group_by: tuple[str, ...]) -> dict[Key, int]:
        by_month = kept.single or "month" in group_by
        grain = patient_counts.grain_of([*(_KEPT[k] for k in group_by if k in _KEPT), *filters])
        groups: dict[Key, int] = {}
        for month, *cell, patients, new in await patient_counts.read(
            session, grain=grain, filters=filters, **span
        ):
            named = dict(zip(patient_counts.DIMENSIONS, cell, strict=True))
            key = tuple(
                month if k == "month" else month // 100 if k == "year" else named[_KEPT[k]]
                for k in group_by
            )
            groups[key] = groups.get(key, 0) + (patients if by_month else new)
        if kept.tail is not None:
            tail = replace(query, start=kept.tail, group_by=group_by)
            if by_month:
                part, bound = _distinct_patients(tail)
            else:
                part = _new_in_tail(_Shape(group_by, tuple(query.filters)))
                bound = _log_bound(tail) | span
            for row in await session.execute(part, bound):
                key = _key(row[:-1])
                groups[key] = groups.get(key, 0) + int(row[-1])
        return groups

    for key, value in (await counted(query.group_by)).items():
        cells.setdefault(key, Cell(patients=0)).patients = value
    if not query.group_by:
        return cells.get((), Cell(patients=0)).patients or 0
    return (await counted(())).get((), 0)


def _shift(query: Query, key: Key) -> Key:
    """A previous-year key moved onto the current year, to line the two periods up."""
    steps = {"year": 1, "quarter": 10, "month": 100, "week": 100}
    return tuple(
        value + steps[name] if name in steps else value
        for name, value in zip(query.group_by, key, strict=True)
    )


def display_key(name: str, value: Any) -> Any:
    if name == "year":
        return str(value)
    if name == "quarter":
        return f"{value // 10}-T{value % 10}"
    if name == "month":
        return f"{value // 100}-{value % 100:02d}"
    if name == "week":
        return f"{value // 100}-S{value % 100:02d}"
    return value


async def acts(session: AsyncSession, query: Query, *, on_log: bool = False) -> Result:
    """Counts per group for the period, each beside the same period one year earlier.

    `on_log` counts distinct patients on the log alone, as before their sets were kept
    with the rollup: the reference the tests and `telmi bench stats` compare with."""
    before = query.year_before()
    current, current_patients = await _cells(session, query, on_log=on_log)
    earlier, previous_patients = await _cells(session, before, on_log=on_log)
    previous = {_shift(query, k): c for k, c in earlier.items()}
    rows = [
        Row(
            {n: display_key(n, v) for n, v in zip(query.group_by, key, strict=True)},
            current.get(key, Cell(patients=0 if "patients" in query.measures else None)),
            previous.get(key, Cell(patients=0 if "patients" in query.measures else None)),
        )
        for key in sorted(current.keys() | previous.keys(), key=_sortable)
    ]
    # Acts and durations add up over the rows; distinct patients do not, so `_cells` counts
    # them for the whole period as well.
    whole = [
        Cell(
            acts=sum(c.acts for c in cells.values()),
            duration_seconds=sum(c.duration_seconds for c in cells.values()),
            patients=patients,
        )
        for cells, patients in ((current, current_patients), (previous, previous_patients))
    ]
    return Result(query, rows, Row({}, whole[0], whole[1]))


def _masked(value: int | None, threshold: int | None) -> int | None:
    if value is None or threshold is None:
        return value
    return None if 0 < value < threshold else value


def records(result: Result, threshold: int | None = None) -> tuple[list[dict[str, Any]], int]:
    """Flat rows (keys, measures, last year's, growth) for JSON and CSV alike; with a
    publication threshold, counts from 1 to threshold - 1 are masked (with the duration
    and growth that would give them away). Returns the rows and the number of masked rows."""
    out, masked = [], 0
    for row in [*result.rows, result.total]:
        acts = _masked(row.current.acts, threshold)
        previous = _masked(row.previous.acts, threshold)
        record: dict[str, Any] = dict(row.keys)
        record["acts"] = acts
        if "patients" in result.query.measures:
            record["patients"] = _masked(row.current.patients, threshold)
        if "duration" in result.query.measures:
            record["duration_seconds"] = row.current.duration_seconds if acts is not None else None
        record["previous_acts"] = previous
        if "patients" in result.query.measures:
            record["previous_patients"] = _masked(row.previous.patients, threshold)
        growth = row.growth if acts is not None and previous is not None else None
        record["growth"] = None if growth is None else round(growth, 4)
        hidden = any(
            record.get(k) is None and getattr(c, m) not in (None, 0)
            for k, c, m in (
                ("acts", row.current, "acts"),
                ("patients", row.current, "patients"),
                ("previous_acts", row.previous, "acts"),
                ("previous_patients", row.previous, "patients"),
            )
            if k in record
        )
        record["masked"] = hidden
        masked += hidden and row is not result.total
        out.append(record)
    return out, masked


def _sortable(key: Key) -> tuple[str, ...]:
    return tuple(f"{v:012d}" if isinstance(v, int) else str(v) for v in key)


# --- the monthly report -------------------------------------------------------------------------

REPORT_COLUMNS = (
    "teleconsultations",
    "patients_teleconsultation",
    "teleexpertises",
    "patients_teleexpertise",
    "professionnels_requerants",
    "professionnels_requis",
)


def _person(rpps: ColumnElement[Any], user_id: ColumnElement[Any]) -> ColumnElement[Any]:
    """One key per professional: the RPPS when known, else the Telmi account."""
    return func.coalesce(rpps, literal("u", String) + sa.cast(user_id, String))


async def monthly_report(session: AsyncSession, query: Query) -> list[dict[str, Any]]:
    """Per month: téléconsultations and their patients, téléexpertises and their patients,
    requesting and requested professionals (of those two act types)."""
    tc, te = ActType.TELECONSULTATION, ActType.TELEEXPERTISE
    rows: dict[int, dict[str, int]] = {}

    def put(result: Any, column: str) -> None:
        for month, value in result:
            rows.setdefault(month, dict.fromkeys(REPORT_COLUMNS, 0))[column] = int(value or 0)

    columns = {
        tc.value: ("teleconsultations", "patients_teleconsultation"),
        te.value: ("teleexpertises", "patients_teleexpertise"),
    }
    typed = replace(
        query,
        group_by=("month", "act_type"),
        filters={**query.filters, "act_type": tuple(columns)},
        measures=("acts", "patients"),
    )
    for (month, act_type), cell in (await _cells(session, typed))[0].items():
        acts_column, patients_column = columns[act_type]
        put([(month, cell.acts)], acts_column)
        put([(month, cell.patients)], patients_column)
    both = _ACTS.c.act_type.in_([tc.value, te.value])
    requester = _person(_ACTS.c.requester_rpps, _ACTS.c.requester_id)
    specialist = _person(_ACTS.c.specialist_rpps, _ACTS.c.specialist_id)
    if dialect_name(session) == "postgresql":  # bytewise, as `_patients` compares keys
        requester, specialist = requester.collate("C"), specialist.collate("C")
    # Both kinds of professional from one read of the year's log (read twice, it was most
    # of the report's time), each counted where their net acts in the month are positive.
    logged = (
        select(
            _ACTS.c.month.label("month"),
            requester.label("requester"),
            specialist.label("specialist"),
            _ACTS.c.sign.label("sign"),
        )
        .where(_log_range(query.start, query.end), *_filters(_ACTS, query), both)
        .cte("report_acts")
    )
    kinds = union_all(
        *(
            select(literal(column).label("kind"), logged.c.month, logged.c[who].label("who"))
            .where(*extra)
            .group_by(logged.c.month, logged.c[who])
            .having(func.sum(logged.c.sign) > 0)
            for column, who, extra in (
                ("professionnels_requerants", "requester", ()),
                ("professionnels_requis", "specialist", (logged.c.specialist.is_not(None),)),
            )
        )
    ).subquery()
    counted = await session.execute(
        select(kinds.c.kind, kinds.c.month, func.count()).group_by(kinds.c.kind, kinds.c.month)
    )
    for kind, month, value in counted:
        put([(month, value)], kind)
    return [{"month": display_key("month", m), **rows[m]} for m in sorted(rows)]


# --- the statistics page --------------------------------------------------------------------

FIRST_YEAR = 2017  # the platform's first year of activity
OVERVIEW_PARTS = ("departement", "facility_category", "specialty", "act_type")


@dataclass(frozen=True)
class Part:
    """One group of a breakdown, with its display name."""

    key: str
    name: str
    acts: int
    previous_acts: int


@dataclass(frozen=True)
class YearOverview:
    """Everything the statistics page shows for a year (to date for the current one), beside
    the same dates a year earlier: computed here, drawn by the page."""

    query: Query
    total: Row
    monthly: list[tuple[int, int]]  # (acts, acts a year earlier) for January to December
    yearly: list[tuple[int, int]]  # (year, acts) since FIRST_YEAR, years with acts
    parts: dict[str, list[Part]]  # OVERVIEW_PARTS -> groups, most acts first
    names: dict[str, dict[str, str]]  # departement and specialty codes -> display names

    @property
    def expertise_share(self) -> float | None:
        acts = self.total.current.acts
        expertise = next(
            (p.acts for p in self.parts["act_type"] if p.key == ActType.TELEEXPERTISE.value), 0
        )
        return expertise / acts if acts else None


def _acts(cells: Mapping[Any, Cell], key: Any) -> int:
    cell = cells.get(key)
    return cell.acts if cell is not None else 0


async def year_overview(
    session: AsyncSession, query: Query, *, labels: Mapping[str, Mapping[str, str]]
) -> YearOverview:
    """The page's figures for `query` (one year, its filters). `labels` names the groups of
    the fixed vocabularies (facility categories, act types); the directory names the rest.
    The breakdowns (months, years, the four parts, each beside the year before) are one
    statement."""
    acts_only = replace(query, measures=("acts",))
    asked = [replace(acts_only, group_by=()), replace(acts_only, group_by=("month",))]
    asked.append(replace(acts_only, start=date(FIRST_YEAR, 1, 1), group_by=("year",)))
    asked += [replace(acts_only, group_by=(key,)) for key in OVERVIEW_PARTS]
    earlier = [q.year_before() for n, q in enumerate(asked) if n != 2]  # years: no growth
    counted = await sums(session, [*asked, *earlier])
    current, previous = counted[: len(asked)], counted[len(asked) :]
    previous.insert(2, {})
    patients = [
        await _count_patients(session, q, {}, on_log=False)
        if "patients" in query.measures
        else None
        for q in (query, query.year_before())
    ]
    total = Row(
        {},
        replace(current[0].get("", Cell()), patients=patients[0]),
        replace(previous[0].get("", Cell()), patients=patients[1]),
    )
    names: dict[str, dict[str, str]] = {
        "departement": {
            str(code): f"{name} ({code})"
            for code, name in await session.execute(select(Departement.code, Departement.name))
        },
        "specialty": {
            str(code): str(name)
            for code, name in await session.execute(select(Specialty.code, Specialty.name))
        },
    }
    every_name = {**{k: dict(v) for k, v in labels.items()}, **names}
    parts: dict[str, list[Part]] = {}
    for n, key in enumerate(OVERVIEW_PARTS, start=3):
        now, before = current[n], previous[n]
        acts_of = {g: (_acts(now, g), _acts(before, g)) for g in now.keys() | before.keys()}
        groups = [
            Part(str(g), every_name.get(key, {}).get(str(g), str(g)), *acts_of[g])
            for g in sorted(acts_of, key=str)
            if any(acts_of[g])
        ]
        parts[key] = sorted(groups, key=lambda p: -p.acts)
    year = query.start.year
    months = [year * 100 + m for m in range(1, 13)]
    return YearOverview(
        query=query,
        total=total,
        monthly=[(_acts(current[1], m), _acts(previous[1], m - 100)) for m in months],
        yearly=[(y, c.acts) for y, c in sorted(current[2].items()) if c.acts],
        parts=parts,
        names=names,
    )
