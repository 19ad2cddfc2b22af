"""A region after a year of service, seeded for `telmi bench mixed` and `telmi bench pages`.

40 facilities, 25 specialists, a year of past bookings (most completed, with their acts in
the log through `acts.append_many`, so chain and monthly rollup are what service would have
written), 8 weeks of slots ahead with a share already booked, residents made by
`patients.create` (sealed as the server reads them), staff with API tokens for the load and
password accounts (a nurse per facility, the specialists, a regional user) for the pages.
Slots and bookings are inserted directly, as `telmi bench booking` does: going through the
rules would only take longer to give the same rows.
"""

from __future__ import annotations

import math
import random
import secrets
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert

from telmi import accounts, acts, patients
from telmi.bench.common import progress
from telmi.context import Context
from telmi.db import Database
from telmi.demo import SPECIALTIES, finess_for, rpps_for
from telmi.models import (
    ActType,
    ApiToken,
    Booking,
    BookingStatus,
    Departement,
    Facility,
    FacilityCategory,
    Region,
    Role,
    Slot,
    SlotStatus,
    Specialty,
    User,
    act_mask,
)
from telmi.vault import Vault

PARIS = ZoneInfo("Europe/Paris")
DEPARTEMENTS = ["21", "25", "39", "58", "70", "71", "89", "90"]
# Mostly nursing homes, as in the region's real roll-out.
CATEGORIES = [FacilityCategory.NURSING_HOME] * 6 + [
    FacilityCategory.HEALTH_CENTRE,
    FacilityCategory.DISABILITY_FACILITY,
    FacilityCategory.HOSPITAL,
]
OFFERED = act_mask([ActType.TELECONSULTATION, ActType.TELEEXPERTISE])
FUTURE_PER_DAY = 16  # 09:00-17:00 UTC, 30 minutes each
SURNAMES = ["Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand"]
FIRST_NAMES = ["Jeanne", "Marie", "Louise", "Paulette", "Jean", "Pierre", "Andrée", "Marcel"]


@dataclass(frozen=True)
class Sizes:
    facilities: int = 40
    specialists: int = 25
    weeks: int = 8
    past_bookings: int = 20_000
    residents: int = 25  # per facility
    upcoming: float = 0.2  # share of the slots ahead already booked when the load starts
    staff_facilities: int = 20  # facilities whose staff send the load
    clients: int = 50  # staff members with an API token, spread over those facilities


@dataclass
class Client:
    """A staff member sending the load: their token, facility and its residents."""

    token: str
    facility_id: int
    residents: list[int]


@dataclass
class Seeded:
    url: str
    password: str  # of every password account (nurses, specialists, regional)
    clients: list[Client]
    specialties: list[str]  # codes with at least one specialist
    free: dict[str, list[int]]  # specialty code -> free slot ids ahead, shuffled
    first_day: date  # of the slots ahead
    nurse_email: str  # a nurse of a facility that sends load
    specialist_email: str  # the specialist with the most bookings this week
    regional_email: str
    counts: dict[str, int] = field(default_factory=dict)


async def seed(url: str, sizes: Sizes, vault: Vault, *, rng: random.Random) -> Seeded:
    """Fill the empty, migrated database at `url`; prints progress as it goes."""
    now = datetime.now(UTC)
    password = secrets.token_urlsafe(12)
    password_hash = await accounts.hash_password(password)
    db = Database(url)
    try:
        facilities, specialty_ids = await _directory(db, sizes.facilities, now)
        specialists = await _specialists(db, sizes.specialists, specialty_ids, password_hash, now)
        nurses = await _nurses(db, facilities, password_hash, now)
        regional_email = "ars@bench.telmi"
        async with db.write() as session:
            await session.execute(
                insert(User),
                [_user(regional_email, "ARS", Role.REGIONAL, password_hash, now)],
            )
        residents = await _residents(db, nurses, sizes.residents, vault, now)
        staff_facilities = [f.id for f in facilities[: max(1, sizes.staff_facilities)]]
        clients = await _clients(db, staff_facilities, sizes.clients, residents, now)
        codes = {sid: code for code, sid in specialty_ids.items()}
        past = await _past(
            db, sizes, specialists, facilities, nurses, residents, codes, vault, now, rng
        )
        first_day = now.astimezone(PARIS).date() + timedelta(days=1)
        ahead = await _ahead(
            db, sizes, specialists, facilities, nurses, residents, first_day, now, rng
        )
        await _analyze(db)
    finally:
        await db.dispose()
    free: dict[str, list[int]] = defaultdict(list)
    for slot_id, specialty_id in ahead.free:
        free[codes[specialty_id]].append(slot_id)
    for ids in free.values():
        rng.shuffle(ids)
    busiest = max(specialists, key=lambda s: (ahead.first_week.get(s[0], 0), -s[0]))
    return Seeded(
        url=url,
        password=password,
        clients=clients,
        specialties=sorted(free),
        free=dict(free),
        first_day=first_day,
        nurse_email=nurses[staff_facilities[0]][1],
        specialist_email=f"specialiste{specialists.index(busiest)}@bench.telmi",
        regional_email=regional_email,
        counts={
            "facilities": len(facilities),
            "specialists": len(specialists),
            "residents": sum(len(r) for r in residents.values()),
            "past bookings": past["bookings"],
            "acts": past["acts"],
            "slots ahead": ahead.slots,
            "bookings ahead": ahead.booked,
        },
    )


def describe(seeded: Seeded) -> str:
    return ", ".join(f"{n:,} {what}" for what, n in seeded.counts.items())


# --- the pieces ---------------------------------------------------------------------------------


def _user(email: str, name: str, role: Role, password_hash: str, now: datetime) -> dict[str, Any]:
    return {
        "email": email,
        "full_name": name,
        "role": role,
        "password_hash": password_hash,
        "is_active": True,
        "created_at": now,
    }


async def _directory(
    db: Database, count: int, now: datetime
) -> tuple[list[Facility], dict[str, int]]:
    async with db.write() as session:
        region = Region(code="27", name="Bourgogne-Franche-Comté")
        session.add(region)
        await session.flush()
        session.add_all(Departement(code=c, name=c, region_id=region.id) for c in DEPARTEMENTS)
        await session.flush()
        specialties = [Specialty(code=code, name=name) for code, name in SPECIALTIES]
        session.add_all(specialties)
        rows = [
            Facility(
                finess=finess_for(DEPARTEMENTS[i % 8], i + 1),
                name=f"Établissement {i + 1}",
                category=CATEGORIES[i % len(CATEGORIES)],
                finess_category_code="500",
                departement_code=DEPARTEMENTS[i % 8],
                commune="Dijon",
                created_at=now,
            )
            for i in range(count)
        ]
        session.add_all(rows)
        await session.flush()
        return rows, {s.code: s.id for s in specialties}


async def _specialists(
    db: Database, count: int, specialty_ids: dict[str, int], password_hash: str, now: datetime
) -> list[tuple[int, int, str]]:
    """(id, specialty id, RPPS) of each specialist, spread over the specialties."""
    codes = list(specialty_ids)
    rows = [
        _user(f"specialiste{i}@bench.telmi", f"Dr Banc {i}", Role.SPECIALIST, password_hash, now)
        | {
            "specialty_id": specialty_ids[codes[i % len(codes)]],
            "departement_code": DEPARTEMENTS[i % 8],
            "rpps": rpps_for(100_000 + i),
        }
        for i in range(count)
    ]
    async with db.write() as session:
        ids = list((await session.execute(insert(User).returning(User.id), rows)).scalars())
    return [(uid, row["specialty_id"], row["rpps"]) for uid, row in zip(ids, rows, strict=True)]


async def _nurses(
    db: Database, facilities: list[Facility], password_hash: str, now: datetime
) -> dict[int, tuple[int, str]]:
    """One nurse with a password per facility: {facility id: (user id, email)}."""
    rows = [
        _user(f"ide{f.id}@bench.telmi", f"IDE {f.id}", Role.STAFF, password_hash, now)
        | {"facility_id": f.id}
        for f in facilities
    ]
    async with db.write() as session:
        ids = list((await session.execute(insert(User).returning(User.id), rows)).scalars())
    return {
        int(row["facility_id"]): (uid, str(row["email"]))
        for uid, row in zip(ids, rows, strict=True)
    }


async def _residents(
    db: Database,
    nurses: dict[int, tuple[int, str]],
    per_facility: int,
    vault: Vault,
    now: datetime,
) -> dict[int, list[tuple[int, str]]]:
    """Residents made by `patients.create` as the facility's nurse: {facility: [(id, ref)]}."""
    made: dict[int, list[tuple[int, str]]] = {}
    total = len(nurses)
    for n, (facility_id, (user_id, _)) in enumerate(sorted(nurses.items()), start=1):
        async with db.write() as session:
            user = await session.get_one(User, user_id)
            ctx = Context(user, now)
            made[facility_id] = []
            for k in range(per_facility):
                new = patients.ResidentInput.model_validate(
                    {
                        "reference": f"R{facility_id}-{k + 1:03d}",
                        "birth_name": SURNAMES[k % len(SURNAMES)],
                        "first_names": FIRST_NAMES[(k // len(SURNAMES)) % len(FIRST_NAMES)],
                        "sex": "F" if k % 3 else "M",
                        "birth_date": date(1930 + k % 25, 1 + k % 12, 1 + k % 28).isoformat(),
                    }
                )
                resident = await patients.create(session, ctx, new, vault=vault, tz=PARIS)
                made[facility_id].append((resident.id, resident.reference))
        progress("residents (patients.create)", n, total)
    return made


async def _clients(
    db: Database,
    facility_ids: list[int],
    count: int,
    residents: dict[int, list[tuple[int, str]]],
    now: datetime,
) -> list[Client]:
    """Staff members with one API token each, spread over `facility_ids`."""
    homes = [facility_ids[i % len(facility_ids)] for i in range(count)]
    rows = [
        _user(f"staff{i}@bench.telmi", f"Personnel {i}", Role.STAFF, "!", now)
        | {"facility_id": home}
        for i, home in enumerate(homes)
    ]
    async with db.write() as session:
        ids = list((await session.execute(insert(User).returning(User.id), rows)).scalars())
        tokens = [accounts.TOKEN_PREFIX + uuid.uuid4().hex for _ in ids]
        await session.execute(
            insert(ApiToken),
            [
                {
                    "user_id": uid,
                    "name": "bench",
                    "token_hash": accounts.sha256(raw),
                    "prefix": raw[:12],
                    "created_at": now,
                }
                for uid, raw in zip(ids, tokens, strict=True)
            ],
        )
    return [
        Client(raw, home, [r for r, _ in residents[home]])
        for raw, home in zip(tokens, homes, strict=True)
    ]


def _working_days(first: date, last: date) -> list[date]:
    days, day = [], first
    while day <= last:
        if day.weekday() < 5:
            days.append(day)
        day += timedelta(days=1)
    return days


def _slot(specialist: tuple[int, int, str], at: datetime, now: datetime) -> dict[str, Any]:
    return {
        "specialist_id": specialist[0],
        "specialty_id": specialist[1],
        "starts_at": at,
        "ends_at": at + timedelta(minutes=30),
        "act_mask": OFFERED,
        "status": SlotStatus.OPEN,
        "created_at": now,
    }


async def _insert_slots(db: Database, rows: list[dict[str, Any]], label: str) -> list[int]:
    ids: list[int] = []
    for start in range(0, len(rows), 5_000):
        async with db.write() as session:
            batch = rows[start : start + 5_000]
            ids.extend((await session.execute(insert(Slot).returning(Slot.id), batch)).scalars())
        progress(label, len(ids), len(rows))
    return ids


# Bookings that carry copies of their slot's specialist and times (for the lists' index);
# filled when the schema has them.
_SLOT_COPIES = [c for c in ("specialist_id", "starts_at", "ends_at") if c in Booking.__table__.c]


def _booking(slot: dict[str, Any], slot_id: int, **values: Any) -> dict[str, Any]:
    return {"slot_id": slot_id, **{c: slot[c] for c in _SLOT_COPIES}, **values}


async def _insert_bookings(db: Database, rows: list[dict[str, Any]], label: str) -> list[int]:
    ids: list[int] = []
    for start in range(0, len(rows), 5_000):
        async with db.write() as session:
            batch = rows[start : start + 5_000]
            result = await session.execute(
                insert(Booking).returning(Booking.id, sort_by_parameter_order=True), batch
            )
            ids.extend(result.scalars())
        progress(label, len(ids), len(rows))
    return ids


async def _past(
    db: Database,
    sizes: Sizes,
    specialists: list[tuple[int, int, str]],
    facilities: list[Facility],
    nurses: dict[int, tuple[int, str]],
    residents: dict[int, list[tuple[int, str]]],
    codes: dict[int, str],
    vault: Vault,
    now: datetime,
    rng: random.Random,
) -> dict[str, int]:
    """A year of bookings up to yesterday: 88 % completed (each with its act), 7 % cancelled
    beforehand, 5 % no-shows."""
    if sizes.past_bookings <= 0:
        return {"bookings": 0, "acts": 0}
    today = now.astimezone(PARIS).date()
    days = _working_days(today - timedelta(days=364), today - timedelta(days=1))
    per_day = math.ceil(sizes.past_bookings / (len(specialists) * len(days)) * 1.25)
    slots = [
        _slot(s, datetime.combine(day, time(8, 0), tzinfo=UTC) + timedelta(minutes=30 * k), now)
        for s in specialists
        for day in days
        for k in range(per_day)
    ]
    slot_ids = await _insert_slots(db, slots, "past slots")
    chosen = sorted(rng.sample(range(len(slots)), min(sizes.past_bookings, len(slots))))
    rows, meta = [], []
    for index in chosen:
        slot = slots[index]
        facility = facilities[rng.randrange(len(facilities))]
        patient_id, ref = rng.choice(residents[facility.id])
        fate = rng.random()
        status = (
            BookingStatus.COMPLETED
            if fate < 0.88
            else BookingStatus.CANCELLED
            if fate < 0.95
            else BookingStatus.NO_SHOW
        )
        made = slot["starts_at"] - timedelta(days=rng.randint(2, 30))
        cancelled = status is BookingStatus.CANCELLED
        rows.append(
            _booking(
                slot,
                slot_ids[index],
                facility_id=facility.id,
                booked_by_id=nurses[facility.id][0],
                patient_id=patient_id,
                act_type=ActType.TELECONSULTATION,
                reason="",
                status=status,
                created_at=made,
                confirmed_at=made,
                cancelled_at=made + timedelta(days=1) if cancelled else None,
                cancelled_by_id=nurses[facility.id][0] if cancelled else None,
                cancel_reason="Résident hospitalisé" if cancelled else "",
            )
        )
        meta.append((slot, facility, ref, status))
    booking_ids = await _insert_bookings(db, rows, "past bookings")
    by_id = {s[0]: s for s in specialists}
    news = [
        acts.NewAct(
            act_type=ActType.TELECONSULTATION,
            occurred_at=slot["starts_at"] + timedelta(minutes=rng.randint(0, 5)),
            duration_seconds=rng.randint(12, 35) * 60,
            facility_id=facility.id,
            requester_role="personnel_etablissement",
            requester_id=rows[i]["booked_by_id"],
            specialist_id=slot["specialist_id"],
            specialist_rpps=by_id[slot["specialist_id"]][2],
            specialty_code=codes[slot["specialty_id"]],
            source_key=f"bench-booking:{booking_ids[i]}",
            patient_key=acts.patient_key(vault.secret, finess=facility.finess, patient_ref=ref),
            patient_consent=True,
        )
        for i, (slot, facility, ref, status) in enumerate(meta)
        if status is BookingStatus.COMPLETED
    ]
    news.sort(key=lambda a: a.occurred_at)
    async with db.bulk_connection() as conn:
        for start in range(0, len(news), 2_000):
            async with conn.begin():
                await acts.append_many(
                    conn, news[start : start + 2_000], now=now, tz=PARIS, recorded_by=None
                )
            progress("acts (acts.append_many)", min(start + 2_000, len(news)), len(news))
    return {"bookings": len(booking_ids), "acts": len(news)}


@dataclass(frozen=True)
class _Ahead:
    slots: int
    booked: int
    free: list[tuple[int, int]]  # (slot id, specialty id)
    first_week: dict[int, int]  # bookings per specialist in the first 7 days


async def _ahead(
    db: Database,
    sizes: Sizes,
    specialists: list[tuple[int, int, str]],
    facilities: list[Facility],
    nurses: dict[int, tuple[int, str]],
    residents: dict[int, list[tuple[int, str]]],
    first_day: date,
    now: datetime,
    rng: random.Random,
) -> _Ahead:
    """Slots for `weeks` weeks from `first_day`, a share of them booked."""
    days = _working_days(first_day, first_day + timedelta(weeks=sizes.weeks) - timedelta(days=1))
    slots = [
        _slot(s, datetime.combine(day, time(8, 0), tzinfo=UTC) + timedelta(minutes=30 * k), now)
        for s in specialists
        for day in days
        for k in range(FUTURE_PER_DAY)
    ]
    slot_ids = await _insert_slots(db, slots, "slots ahead")
    booked = set(rng.sample(range(len(slots)), int(len(slots) * sizes.upcoming)))
    rows: list[dict[str, Any]] = []
    week: dict[int, int] = defaultdict(int)
    week_end = datetime.combine(first_day + timedelta(days=7), time(), tzinfo=UTC)
    for index in sorted(booked):
        facility = facilities[rng.randrange(len(facilities))]
        rows.append(
            _booking(
                slots[index],
                slot_ids[index],
                facility_id=facility.id,
                booked_by_id=nurses[facility.id][0],
                patient_id=rng.choice(residents[facility.id])[0],
                act_type=ActType.TELECONSULTATION,
                reason="",
                status=BookingStatus.CONFIRMED,
                created_at=now - timedelta(days=rng.randint(1, 20)),
                confirmed_at=now,
                cancel_reason="",
            )
        )
        if slots[index]["starts_at"] < week_end:
            week[slots[index]["specialist_id"]] += 1
    await _insert_bookings(db, rows, "bookings ahead")
    free = [
        (slot_ids[i], int(slots[i]["specialty_id"])) for i in range(len(slots)) if i not in booked
    ]
    return _Ahead(len(slots), len(rows), free, dict(week))


async def _analyze(db: Database) -> None:
    """Fresh statistics, as a live database has them: without, the planner guesses (badly)."""
    async with db.engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.exec_driver_sql("ANALYZE")
