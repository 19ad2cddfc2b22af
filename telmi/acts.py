"""The act log: append and read, never update or delete.

Every act is one row whose hash covers its content and the previous row's hash, so any
edit, deletion or insertion in the middle breaks the chain, and `verify` names the first
broken row. A mistake is corrected by appending a cancelling entry (sign -1) that repeats
the original's dimensions. Appends are serialised (an advisory lock on PostgreSQL, the
write lock on SQLite) so the chain stays linear under concurrent requests; the monthly
rollup is updated in the same transaction, so it always equals the log.

Dimensions (facility category, département, region, specialty) are copied at write time:
editing a facility later does not rewrite history. No name, no INS: the patient appears
only as a keyed hash, enough to count distinct patients.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal, cast, get_args
from zoneinfo import ZoneInfo

from pydantic import Field
from sqlalchemy import Table, and_, func, insert, select, text, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from telmi import audit, patient_counts
from telmi.context import Context
from telmi.db import Executor, adding_upserts, dialect_name, is_unique_violation
from telmi.errors import Conflict, NotFound, ValidationError
from telmi.models import (
    Act,
    ActDocument,
    ActMonth,
    ActMonthPatient,
    ActType,
    Departement,
    Facility,
    FacilityCategory,
    Region,
    Role,
    Specialty,
    User,
)
from telmi.paging import Key, Keyset, Page, PageQuery
from telmi.values import Body, LocalDate
from telmi.values import text as text_of

GENESIS = "0" * 64
# Any constant works; it only has to be the same for every Telmi process on the database.
CHAIN_LOCK = 0x7E1A_C75
RequesterRole = Literal[
    "medecin",
    "infirmier",
    "aide_soignant",
    "pharmacien",
    "psychologue",
    "reeducation",
    "personnel_etablissement",
]
REQUESTER_ROLES: tuple[str, ...] = get_args(RequesterRole)
MAX_DURATION_SECONDS = 24 * 3600

# Hashed columns, in a fixed order: changing it would invalidate every stored chain.
HASHED = (
    "act_type",
    "occurred_at",
    "occurred_on",
    "month",
    "iso_week",
    "duration_seconds",
    "sign",
    "facility_id",
    "facility_finess",
    "facility_category",
    "facility_category_code",
    "departement_code",
    "region_code",
    "requester_role",
    "requester_id",
    "requester_rpps",
    "specialist_id",
    "specialist_rpps",
    "specialty_code",
    "source_key",
    "patient_key",
    "patient_consent",
    "incidents",
    "cancels_act_id",
    "note",
    "recorded_at",
    "recorded_by_id",
)

_ACTS = cast(Table, Act.__table__)
_MONTHS = cast(Table, ActMonth.__table__)
_PATIENTS = cast(Table, ActMonthPatient.__table__)


class ActCancellation(Body):
    reason: text_of(  # type: ignore[valid-type]
        500, required="Motif d'annulation requis (500 caractères au plus)."
    )


class ActLogQuery(PageQuery):
    """A page of the log, newest first, over local days (the platform's time zone)."""

    start: LocalDate | None = Field(None, alias="from")
    end: LocalDate | None = Field(None, alias="to", description="inclusive")

    def scope(self, specialist_id: int | None) -> str:
        """What a cursor of this list is bound to: the period and whose acts."""
        return f"{self.start or ''}|{self.end or ''}|{specialist_id or ''}"

    def period(self, tz: ZoneInfo) -> tuple[datetime | None, datetime | None]:
        """The local days as instants: from the first day's midnight to the one after the
        last (`occurred_on` is the same local day, fixed at write time)."""

        def midnight(day: date) -> datetime:
            return datetime.combine(day, time(0), tz).astimezone(UTC)

        since = None if self.start is None else midnight(self.start)
        until = None if self.end is None else midnight(self.end + timedelta(days=1))
        return since, until


# Newest first by when the act happened: the order a reader of the log expects, and one an
# index serves with a period, for all acts or one specialist's (id order, the chain's, cannot
# be read a page at a time within a period).
LOG = Keyset("acts", (datetime, int))


class DuplicateSource(Conflict):
    code = "duplicate_source"
    field = "source_key"
    message = "Un acte a déjà été enregistré pour cette source."


class AlreadyCancelled(Conflict):
    code = "act_already_cancelled"
    message = "Cet acte a déjà été annulé."


def patient_key(secret: str, *, finess: str, patient_ref: str, ins: str | None = None) -> str:
    """A keyed hash standing for the patient: the same patient gives the same key, and the
    key gives back nothing without the server secret. The INS, when known, identifies the
    patient across facilities; otherwise the facility's own reference does, within it."""
    subject = f"ins:{ins}" if ins else f"ref:{finess}:{patient_ref.strip()}"
    return hmac.new(_patient_secret(secret), subject.encode(), hashlib.sha256).hexdigest()


@functools.lru_cache(maxsize=4)
def _patient_secret(secret: str) -> bytes:
    return hmac.new(secret.encode(), b"telmi patient key v1", hashlib.sha256).digest()


_AS_IS = frozenset({str, int, bool, type(None)})


def _canonical(value: Any) -> Any:
    if type(value) in _AS_IS:  # most columns: no conversion (hashing runs once per act)
        return value
    if isinstance(value, datetime):
        return value.isoformat(timespec="microseconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, ActType | str):
        return str(value)
    return value


# Columns added later are hashed only when set, so earlier entries keep their hashes.
HASHED_WHEN_SET = ("response_seconds", "consent_id", "participants")


def chain_hash(prev_hash: str, values: dict[str, Any]) -> str:
    fields = [_canonical(values[name]) for name in HASHED]
    fields += [[n, values[n]] for n in HASHED_WHEN_SET if values.get(n) is not None]
    payload = json.dumps([prev_hash, fields], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


@dataclass(frozen=True)
class NewAct:
    """What the service completing an act knows about it; the log adds the rest."""

    act_type: ActType
    occurred_at: datetime
    duration_seconds: int
    facility_id: int
    requester_role: str
    specialty_code: str
    source_key: str
    patient_key: str
    patient_consent: bool
    requester_id: int | None = None
    requester_rpps: str | None = None
    specialist_id: int | None = None
    specialist_rpps: str | None = None
    incidents: str = ""
    response_seconds: int | None = None
    consent_id: int | None = None
    participants: list[dict[str, Any]] | None = None


def local_calendar(at: datetime, tz: ZoneInfo) -> dict[str, Any]:
    """The act's local date, month (yyyymm) and ISO week (yyyyww), fixed at write time."""
    day = at.astimezone(tz).date()
    iso = day.isocalendar()
    return {
        "occurred_on": day,
        "month": day.year * 100 + day.month,
        "iso_week": iso.year * 100 + iso.week,
    }


async def _lock_chain(session: Executor) -> str:
    """Serialise appenders and return the hash the next act chains to."""
    if dialect_name(session) == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CHAIN_LOCK})
    last = await session.scalar(select(Act.hash).order_by(Act.id.desc()).limit(1))
    return last or GENESIS


_ROLLUP = adding_upserts(_MONTHS, "acts", "duration_seconds")
_PATIENT_SETS = adding_upserts(_PATIENTS, "acts")


def _rollup_rows(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    cells: dict[tuple[Any, ...], list[int]] = {}
    for v in entries:
        key = tuple(v[name] for name in ROLLUP_KEYS)
        cell = cells.setdefault(key, [0, 0])
        cell[0] += v["sign"]
        cell[1] += v["sign"] * v["duration_seconds"]
    return [
        dict(zip(ROLLUP_KEYS, key, strict=True)) | {"acts": n, "duration_seconds": d}
        for key, (n, d) in cells.items()
    ]


ROLLUP_KEYS = tuple(c.name for c in _MONTHS.primary_key.columns)
PATIENT_KEYS = tuple(c.name for c in _PATIENTS.primary_key.columns)


def _patient_rows(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    cells: dict[tuple[Any, ...], int] = {}
    for v in entries:
        key = tuple(v[name] for name in PATIENT_KEYS)
        cells[key] = cells.get(key, 0) + v["sign"]
    return [dict(zip(PATIENT_KEYS, key, strict=True)) | {"acts": n} for key, n in cells.items()]


async def _write(
    session: Executor, entries: list[dict[str, Any]], *, ids: bool = True
) -> list[int]:
    """Chain, insert and roll up entries, in order; the caller holds the write transaction."""
    prev = await _lock_chain(session)
    keys = [v["source_key"] for v in entries]
    for start in range(0, len(keys), 1000):
        if await session.scalar(
            select(Act.id).where(Act.source_key.in_(keys[start : start + 1000]))
        ):
            raise DuplicateSource()
    if len(set(keys)) != len(keys):
        raise DuplicateSource()
    for values in entries:
        values["prev_hash"] = prev
        values["hash"] = prev = chain_hash(prev, values)
    try:
        if ids:
            result = await session.execute(
                insert(_ACTS).returning(_ACTS.c.id, sort_by_parameter_order=True), entries
            )
            written = [int(i) for i in result.scalars()]
        else:
            await session.execute(insert(_ACTS), entries)
            written = []
    except IntegrityError as exc:
        if is_unique_violation(exc) and "cancels_act_id" in str(exc.orig):
            raise AlreadyCancelled() from None
        if is_unique_violation(exc):
            raise DuplicateSource() from None
        raise
    dialect = dialect_name(session)
    await session.execute(_ROLLUP[dialect], _rollup_rows(entries))
    patients = _patient_rows(entries)
    await patient_counts.record(session, patients)
    await session.execute(_PATIENT_SETS[dialect], patients)
    return written


def _check(new: NewAct) -> None:
    if new.occurred_at.tzinfo is None:
        raise ValidationError("« occurred_at » doit porter un fuseau horaire.", field="occurred_at")
    if not 0 <= new.duration_seconds <= MAX_DURATION_SECONDS:
        raise ValidationError(
            "« duration_seconds » : entre 0 et 24 heures.", field="duration_seconds"
        )
    if new.requester_role not in REQUESTER_ROLES:
        raise ValidationError(
            f"« requester_role » vaut l'un de : {', '.join(REQUESTER_ROLES)}.",
            field="requester_role",
        )
    if new.requester_id is None and not new.requester_rpps:
        raise ValidationError("Le professionnel requérant est inconnu.", field="requester_rpps")
    if not new.source_key or len(new.source_key) > 120:
        raise ValidationError("« source_key » : 1 à 120 caractères.", field="source_key")
    if len(new.incidents) > 500:
        raise ValidationError("« incidents » : 500 caractères au plus.", field="incidents")


class _Dimensions:
    """Facility dimensions and known specialties, looked up once per batch."""

    def __init__(self, session: Executor) -> None:
        self.session = session
        self.facilities: dict[int, dict[str, Any]] = {}
        self.specialties: set[str] = set()

    async def facility(self, facility_id: int) -> dict[str, Any]:
        """The facility's columns of an act, as they are now (read once per batch)."""
        if facility_id not in self.facilities:
            row = (
                await self.session.execute(
                    select(
                        Facility.id,
                        Facility.finess,
                        Facility.category,
                        Facility.finess_category_code,
                        Facility.departement_code,
                        Region.code.label("region_code"),
                    )
                    .join(Departement, Departement.code == Facility.departement_code)
                    .join(Region, Region.id == Departement.region_id)
                    .where(Facility.id == facility_id)
                )
            ).first()
            if row is None:
                raise ValidationError("Établissement inconnu.", field="facility_finess")
            self.facilities[facility_id] = {
                "facility_id": row.id,
                "facility_finess": row.finess,
                "facility_category": FacilityCategory(row.category).value,
                "facility_category_code": row.finess_category_code,
                "departement_code": row.departement_code,
                "region_code": row.region_code,
            }
        return self.facilities[facility_id]

    async def check_specialty(self, code: str) -> None:
        if code not in self.specialties:
            found = await self.session.scalar(select(Specialty.id).where(Specialty.code == code))
            if found is None:
                raise ValidationError("Spécialité inconnue.", field="specialty")
            self.specialties.add(code)


async def _entry(
    dims: _Dimensions, new: NewAct, now: datetime, tz: ZoneInfo, recorded_by: User | None
) -> dict[str, Any]:
    _check(new)
    facility = await dims.facility(new.facility_id)
    await dims.check_specialty(new.specialty_code)
    return {
        "act_type": ActType(new.act_type),
        "occurred_at": new.occurred_at.astimezone(UTC),
        **local_calendar(new.occurred_at, tz),
        "duration_seconds": new.duration_seconds,
        "sign": 1,
        **facility,
        "requester_role": new.requester_role,
        "requester_id": new.requester_id,
        "requester_rpps": new.requester_rpps,
        "specialist_id": new.specialist_id,
        "specialist_rpps": new.specialist_rpps,
        "specialty_code": new.specialty_code,
        "source_key": new.source_key,
        "patient_key": new.patient_key,
        "patient_consent": new.patient_consent,
        "incidents": new.incidents,
        "cancels_act_id": None,
        "note": "",
        "response_seconds": new.response_seconds,
        "consent_id": new.consent_id,
        "participants": new.participants,
        "recorded_at": now.astimezone(UTC),
        "recorded_by_id": recorded_by.id if recorded_by else None,
    }


async def append(
    session: Executor,
    new: NewAct,
    *,
    now: datetime,
    tz: ZoneInfo,
    recorded_by: User | None,
) -> Act:
    """The one way an act enters the log, exactly once per source.

    Raises DuplicateSource if the source already has its act (so a retried completion,
    or two processes completing the same consultation, log it once)."""
    values = await _entry(_Dimensions(session), new, now, tz, recorded_by)
    (act_id,) = await _write(session, [values])
    return Act(id=act_id, **values)


async def append_many(
    session: Executor,
    news: list[NewAct],
    *,
    now: datetime,
    tz: ZoneInfo,
    recorded_by: User | None,
) -> int:
    """`append` for a batch (imports, demo history): the same checks, chain and rollup,
    with one round trip per kind of statement instead of one per act."""
    dims = _Dimensions(session)
    entries = [await _entry(dims, new, now, tz, recorded_by) for new in news]
    if entries:
        await _write(session, entries, ids=False)
    return len(entries)


async def attach_document(
    session: Executor, *, source_key: str, kind: str, sha256: str, now: datetime
) -> bool:
    """Record a signed report's (or addendum's) hash with the act of `source_key`; False
    while that act is not logged yet (the end of the consultation attaches it then)."""
    act_id = await session.scalar(select(Act.id).where(Act.source_key == source_key))
    if act_id is None:
        return False
    await session.execute(
        insert(ActDocument).values(act_id=act_id, kind=kind, sha256=sha256, recorded_at=now)
    )
    return True


async def documents(session: Executor, act_id: int) -> list[ActDocument]:
    return list(
        await session.scalars(
            select(ActDocument).where(ActDocument.act_id == act_id).order_by(ActDocument.id)
        )
    )


def may_cancel(user: User, act: Act) -> bool:
    return user.role is Role.ADMIN or (
        user.role is Role.SPECIALIST and act.specialist_id == user.id
    )


async def cancel(
    session: Executor, ctx: Context, act_id: int, cancellation: ActCancellation
) -> Act:
    """Append the entry that cancels act `act_id` (the original stays, as history)."""
    by, now = ctx.caller, ctx.now
    original = await session.scalar(select(Act).where(Act.id == act_id))
    if original is None or not may_cancel(by, original):
        raise NotFound(f"Acte {act_id} introuvable.")
    if original.sign != 1:
        raise Conflict("Une annulation ne s'annule pas.", code="act_is_cancellation")
    values = {name: getattr(original, name) for name in (*HASHED, *HASHED_WHEN_SET)}
    values.update(
        {
            "act_type": original.act_type.value,
            "facility_category": original.facility_category.value,
            "sign": -1,
            "source_key": f"cancel:{original.id}",
            "cancels_act_id": original.id,
            "incidents": "",
            "note": cancellation.reason,
            "recorded_at": now.astimezone(UTC),
            "recorded_by_id": by.id,
        }
    )
    if await session.scalar(select(Act.id).where(Act.cancels_act_id == original.id)):
        raise AlreadyCancelled()
    try:
        (act_id,) = await _write(session, [values])
    except DuplicateSource:
        raise AlreadyCancelled() from None
    await audit.event(session, ctx, "act.cancelled", target_type="act", target_id=original.id)
    return Act(id=act_id, **values)


async def get(session: AsyncSession, act_id: int) -> Act:
    act = await session.scalar(select(Act).where(Act.id == act_id))
    if act is None:
        raise NotFound(f"Acte {act_id} introuvable.")
    return act


def page_query(
    *,
    since: datetime | None,
    until: datetime | None,
    after: Key | None,
    limit: int,
    specialist_id: int | None = None,
) -> Any:
    """The one statement a page costs: `limit + 1` rows off `(specialist_id,) occurred_at,
    id`.

    One specialist's acts are asked as a range of one value, ordered by it too: with an
    equality PostgreSQL may walk the time index of all acts, the log being in time order,
    and filter, reading every act since the specialist's last; only their own index gives
    this order."""
    query = select(Act)
    key: list[Any] = [Act.occurred_at, Act.id]
    if specialist_id is not None:
        query = query.where(Act.specialist_id.between(specialist_id, specialist_id))
        key.insert(0, Act.specialist_id)
        after = None if after is None else (specialist_id, *after)
    if since is not None:
        query = query.where(Act.occurred_at >= since)
    if until is not None:
        query = query.where(Act.occurred_at < until)
    if after is not None:
        query = query.where(tuple_(*key) < after)
    return query.order_by(*(column.desc() for column in key)).limit(limit + 1)


async def page(
    session: AsyncSession,
    *,
    since: datetime | None,
    until: datetime | None,
    after: Key | None,
    limit: int,
    specialist_id: int | None = None,
) -> Page[Act]:
    """Acts newest first within `[since, until)`, a page at a time, for admins (all) and
    specialists (their own)."""
    query = page_query(
        since=since, until=until, after=after, limit=limit, specialist_id=specialist_id
    )
    rows = list(await session.scalars(query))
    return Page.of(rows, limit, lambda a: (a.occurred_at, a.id))


# --- verification -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    checked: int
    broken_id: int | None = None
    problem: str = ""
    rollup_mismatches: int = 0  # cells of `act_months`, plus the two below
    patient_mismatches: int = 0  # rows of `act_month_patients` differing from the log
    count_mismatches: int = 0  # rows of `act_patient_counts` differing from those sets

    @property
    def ok(self) -> bool:
        return self.broken_id is None and self.rollup_mismatches == 0


async def _rows(session: AsyncSession, batch: int) -> AsyncIterator[Any]:
    after = 0
    columns = [
        _ACTS.c.id,
        _ACTS.c.prev_hash,
        _ACTS.c.hash,
        *(_ACTS.c[n] for n in (*HASHED, *HASHED_WHEN_SET)),
    ]
    while True:
        rows = (
            await session.execute(
                select(*columns).where(_ACTS.c.id > after).order_by(_ACTS.c.id).limit(batch)
            )
        ).all()
        if not rows:
            return
        for r in rows:
            yield r
        after = rows[-1].id


async def verify(session: AsyncSession, *, batch: int = 5000, progress: Any = None) -> Verdict:
    """Recompute the chain from the first act; name the first entry whose hash is wrong or
    whose link to its predecessor is. Then check the rollup and its patient sets against
    the log's sums, and the kept patient counts against the sets."""
    total = int(await session.scalar(select(func.count()).select_from(Act)) or 0)
    expected_prev, checked = GENESIS, 0
    async for r in _rows(session, batch):
        values = dict(r._mapping)
        if r.prev_hash != expected_prev:
            return Verdict(checked, r.id, "le lien vers l'acte précédent est rompu")
        if chain_hash(r.prev_hash, values) != r.hash:
            return Verdict(checked, r.id, "le contenu ne correspond plus à son empreinte")
        expected_prev, checked = r.hash, checked + 1
        if progress is not None and checked % batch == 0:
            progress(checked, total)
    if progress is not None:
        progress(checked, total)
    patients = await patient_mismatches(session)
    counts = await patient_counts.mismatches(session)
    return Verdict(
        checked,
        rollup_mismatches=await rollup_mismatches(session) + patients + counts,
        patient_mismatches=patients,
        count_mismatches=counts,
    )


async def rollup_mismatches(session: AsyncSession) -> int:
    """Cells where the monthly rollup differs from the log's own sums."""
    keys = [_ACTS.c[c.name] for c in _MONTHS.primary_key.columns]
    from_log = (
        select(
            *keys,
            func.sum(_ACTS.c.sign).label("acts"),
            func.sum(_ACTS.c.sign * _ACTS.c.duration_seconds).label("duration_seconds"),
        )
        .group_by(*keys)
        .subquery()
    )
    log_cells = {
        tuple(r[:-2]): (int(r[-2]), int(r[-1])) for r in (await session.execute(select(from_log)))
    }
    rollup_cells = {
        tuple(r[:-2]): (int(r[-2]), int(r[-1]))
        for r in await session.execute(select(_MONTHS))
        if r[-2] != 0 or r[-1] != 0
    }
    log_cells = {k: v for k, v in log_cells.items() if v != (0, 0)}
    return sum(log_cells.get(k) != rollup_cells.get(k) for k in log_cells.keys() | rollup_cells)


async def patient_mismatches(session: AsyncSession) -> int:
    """(month, cell, patient) rows where `act_month_patients` differs from the log's net
    acts, zeros left out on both sides. Counted in SQL: there are about as many rows as acts."""
    keys = [_ACTS.c[name] for name in PATIENT_KEYS]
    net = func.sum(_ACTS.c.sign)
    log = select(*keys, net.label("acts")).group_by(*keys).having(net != 0).subquery()
    same = and_(*(log.c[name] == _PATIENTS.c[name] for name in PATIENT_KEYS))
    unmatched_log = (
        select(func.count())
        .select_from(log.outerjoin(_PATIENTS, and_(same, _PATIENTS.c.acts == log.c.acts)))
        .where(_PATIENTS.c.month.is_(None))
    )
    only_kept = (
        select(func.count())
        .select_from(_PATIENTS.outerjoin(log, same))
        .where(_PATIENTS.c.acts != 0, log.c.month.is_(None))
    )
    return int(await session.scalar(unmatched_log) or 0) + int(await session.scalar(only_kept) or 0)
