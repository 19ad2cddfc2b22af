"""The living demo: slots, visits, tele-expertise and notices, made once, at any instant.

Each test loads the demo region at a fixed instant, then runs `load_activity` on a clock
frozen there, on SQLite and PostgreSQL. A run stopped half-way and finished must leave the
same rows as a run in one go; the consultation the nurse is meant to join is checked the
way the room page asks for it, `consultations.join_ticket`.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from scheduling.clock import FrozenClock
from telmi import consultations, demo, expertise, migrate
from telmi.context import Context
from telmi.db import Database
from telmi.demo_activity import HISTORY, MOREL, NURSE, STAFF, load_activity
from telmi.errors import Conflict
from telmi.models import (
    Act,
    ActType,
    AuditEvent,
    AvailabilityException,
    AvailabilityRule,
    Base,
    Booking,
    BookingStatus,
    Consultation,
    ExpertiseAttachment,
    ExpertiseRequest,
    ExpertiseStatus,
    Notification,
    Patient,
    Slot,
    SlotStatus,
    Specialty,
    User,
)
from telmi.settings import Settings

pytestmark = pytest.mark.slow  # processes, benchmarks or generated cases

PARIS = ZoneInfo("Europe/Paris")
# A Monday morning inside Dr Morel's hours: her own next slot becomes the consultation.
NOW = datetime(2026, 6, 8, 10, 7, tzinfo=PARIS)
# Loaded at the first, then run again at each later one, as a kept demo is refreshed.
EDGES = [
    datetime(2026, 12, 31, 23, 50, tzinfo=PARIS),  # the year's last slot is tomorrow's 00:00
    datetime(2027, 3, 28, 3, 30, tzinfo=PARIS),  # a Sunday, just after the spring-forward gap
    datetime(2027, 10, 31, 2, 10, fold=1, tzinfo=PARIS),  # the repeated hour, second pass
    datetime(2028, 2, 29, 12, 0, tzinfo=PARIS),  # 29 February, lunchtime
]


async def _loaded(db: Database, settings: Settings, now: datetime) -> dict[str, int]:
    async with db.write() as session:
        await demo.load(session, now=now)
    return await load_activity(db, clock=FrozenClock(now), settings=settings)


async def _census(db: Database) -> dict[str, int]:
    """Rows per table, plus the states that matter: what two equal demos must share."""
    counts: dict[str, int] = {}
    async with db.read() as session:
        for table in Base.metadata.sorted_tables:
            counts[table.name] = int(
                await session.scalar(select(func.count()).select_from(table)) or 0
            )
        for booked, n in await session.execute(
            select(Booking.status, func.count()).group_by(Booking.status)
        ):
            counts[f"booking:{booked.value}"] = n
        for asked, n in await session.execute(
            select(ExpertiseRequest.status, func.count()).group_by(ExpertiseRequest.status)
        ):
            counts[f"expertise:{asked.value}"] = n
        counts["notifications read"] = int(
            await session.scalar(select(func.count()).where(Notification.read_at.is_not(None))) or 0
        )
    return counts


async def _joinable(db: Database, settings: Settings, now: datetime) -> dict[int, bool]:
    """The nurse's bookings with Dr Morel whose room lets her in now or within 15 minutes,
    each with whether it is open now."""
    policy = consultations.RoomPolicy(
        secret=settings.secret_key, opens_minutes=settings.room_opens_minutes
    )
    async with db.read() as session:
        nurse = await session.scalar(select(User).where(User.email == NURSE.email))
        morel = await session.scalar(select(User).where(User.full_name == MOREL))
        assert nurse is not None and morel is not None
        candidates = list(
            await session.scalars(
                select(Booking.id)
                .join(Slot, Slot.id == Booking.slot_id)
                .where(Booking.facility_id == nurse.facility_id, Slot.specialist_id == morel.id)
            )
        )
    joinable = {}
    for booking_id in candidates:
        for at in (now, now + timedelta(minutes=15)):
            try:
                async with db.write() as session:
                    await consultations.join_ticket(
                        session, Context(nurse, at), booking_id, policy=policy, tz=PARIS
                    )
            except Conflict:
                continue
            joinable[booking_id] = at == now
            break
    return joinable


async def _sites(db: Database, now: datetime) -> dict[str, dict[str, int]]:
    """Per facility prefix: upcoming confirmed visits and past ones by outcome."""
    sites: dict[str, dict[str, int]] = {}
    async with db.read() as session:
        rows = await session.execute(
            select(Patient.reference, Booking.status, Slot.starts_at, Slot.ends_at)
            .join(Slot, Slot.id == Booking.slot_id)
            .join(Patient, Patient.id == Booking.patient_id)
        )
        for ref, status, starts_at, ends_at in rows:
            site = sites.setdefault(ref.split("-")[1], {})
            if ends_at > now:
                key = "upcoming" if status is BookingStatus.CONFIRMED else f"upcoming {status}"
            else:
                assert ends_at < now - timedelta(days=1), (ref, status, starts_at)
                key = str(status)
            site[key] = site.get(key, 0) + 1
    return sites


async def _check_the_demo(db: Database, settings: Settings, created: dict[str, int]) -> None:
    """What the pages need: slots, visits of every outcome, requests in every state, acts,
    read and unread notices, and nothing stamped by the wall clock."""
    now = NOW
    assert created["users"] == len(STAFF) - 1  # the nurse comes with demo.load
    assert created["expertise_requests"] == 12 and created["photos"] >= 12
    async with db.read() as session:
        # Slots for the coming week in most specialties, tele-expertise-only specialists,
        # absences that closed slots.
        week = await session.scalar(
            select(func.count(func.distinct(Slot.specialty_id))).where(
                Slot.status == SlotStatus.OPEN,
                Slot.starts_at > now,
                Slot.starts_at < now + timedelta(days=7),
            )
        )
        assert week is not None and week >= 5
        horizon = await session.scalar(select(func.max(Slot.starts_at)))
        assert horizon is not None and horizon > now + timedelta(weeks=7)
        rules = list(await session.scalars(select(AvailabilityRule)))
        by_specialist: dict[int, set[str]] = {}
        for rule in rules:
            by_specialist.setdefault(rule.specialist_id, set()).update(rule.act_types)
        assert len(by_specialist) == len(demo.SPECIALISTS)
        assert sum(types == {ActType.TELEEXPERTISE.value} for types in by_specialist.values()) >= 3
        assert {r.slot_minutes for r in rules} >= {15, 20, 30, 45, 60}
        assert await session.scalar(select(func.count()).select_from(AvailabilityException)) == 3
        assert await session.scalar(select(func.count()).where(Slot.status == SlotStatus.BLOCKED))
        # Every completed visit is an act of the log, and every answered request too.
        completed = list(
            await session.scalars(
                select(Consultation.id)
                .join(Booking, Booking.id == Consultation.booking_id)
                .where(Booking.status == BookingStatus.COMPLETED)
            )
        )
        answered = list(
            await session.scalars(
                select(ExpertiseRequest.id).where(
                    ExpertiseRequest.status == ExpertiseStatus.ANSWERED
                )
            )
        )
        sources = set(await session.scalars(select(Act.source_key)))
        assert completed and {f"consultation:{c}" for c in completed} <= sources
        assert answered and {f"expertise:{a}" for a in answered} <= sources
        assert created["acts"] == len(sources) == len(completed) + len(answered)
        kinds = set(
            await session.execute(
                select(Booking.act_type, Specialty.code)
                .join(Slot, Slot.id == Booking.slot_id)
                .join(Specialty, Specialty.id == Slot.specialty_id)
            )
        )
        assert len({k for k, _ in kinds}) >= 3 and len({s for _, s in kinds}) >= 8
        # Every state of a request, each with its photos, stored under the data directory.
        states = {
            status: n
            for status, n in await session.execute(
                select(ExpertiseRequest.status, func.count(func.distinct(ExpertiseRequest.id)))
                .join(ExpertiseAttachment, ExpertiseAttachment.request_id == ExpertiseRequest.id)
                .group_by(ExpertiseRequest.status)
            )
        }
        assert set(states) == set(ExpertiseStatus)
        hashes = set(await session.scalars(select(ExpertiseAttachment.content_hash)))
        assert all((settings.data_dir / "photos" / h[:2] / f"{h}.img").exists() for h in hashes)
        # Read and unread notices for the demo logins; none read before it was written.
        for email in (NURSE.email, "dermatologue@telmi.demo"):
            read = {
                r is not None
                for r in await session.scalars(
                    select(Notification.read_at)
                    .join(User, User.id == Notification.user_id)
                    .where(User.email == email)
                )
            }
            assert read == {True, False}, email
        assert not await session.scalar(
            select(func.count()).where(Notification.read_at < Notification.created_at)
        )
        # Nothing was stamped with the wall clock: every record lies in the simulated month.
        for column in (
            AuditEvent.at,
            Notification.created_at,
            Booking.created_at,
            Slot.created_at,
            Act.recorded_at,
            ExpertiseRequest.created_at,
            Consultation.created_at,
        ):
            low, high = (await session.execute(select(func.min(column), func.max(column)))).one()
            assert now - HISTORY - timedelta(days=2) <= low and high <= now, column
    # The nurse and at least three other facilities: upcoming visits, past ones of each outcome.
    sites = await _sites(db, now)
    full = [
        site
        for site, seen in sites.items()
        if {"upcoming", "completed", "cancelled", "no_show"} <= set(seen)
    ]
    assert NURSE.site in full and len(full) >= 4, sites


class Interrupted(Exception):
    pass


def _stop_after(lines: int) -> Callable[[str], None]:
    said = []

    def progress(line: str) -> None:
        said.append(line)
        if len(said) == lines:
            raise Interrupted(line)

    return progress


async def _migrate(url: str) -> None:
    database = Database(url)
    try:
        await migrate.upgrade(database)
    finally:
        await database.dispose()


@pytest.fixture
def twin_url(database_url: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A second empty, migrated database on the same backend, for a run to compare with."""
    if database_url.startswith("sqlite"):
        path = tmp_path / "twin.sqlite3"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite+aiosqlite:///{path}"
    url: str = request.getfixturevalue("postgres").create(f"twin_{secrets.token_hex(3)}")
    asyncio.run(_migrate(url))
    return url


@pytest.fixture
async def twin(
    twin_url: str, tmp_path: Path, settings: Settings
) -> AsyncIterator[tuple[Database, Settings]]:
    database = Database(twin_url)
    try:
        yield database, settings.replace(database_url=twin_url, data_dir=tmp_path / "twin")
    finally:
        await database.dispose()


async def test_the_demo_comes_alive_once_even_when_interrupted(
    db: Database,
    settings: Settings,
    twin: tuple[Database, Settings],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    other, other_settings = twin
    created = await _loaded(other, other_settings, NOW)  # in one go, for comparison
    async with db.write() as session:
        await demo.load(session, now=NOW)
    clock = FrozenClock(NOW)
    with pytest.raises(Interrupted):  # between two visits
        await load_activity(db, clock=clock, settings=settings, progress=_stop_after(10))

    async def fails(*args: object, **kwargs: object) -> None:
        raise Interrupted("answer")

    with monkeypatch.context() as patch, pytest.raises(Interrupted):  # inside a request's life
        patch.setattr(expertise, "answer", fails)
        await load_activity(db, clock=clock, settings=settings)
    assert any((await load_activity(db, clock=clock, settings=settings)).values())
    census = await _census(db)
    assert census == await _census(other)
    await _check_the_demo(db, settings, created)

    assert not any((await load_activity(db, clock=clock, settings=settings)).values())
    assert await _census(db) == census
    assert list((await _joinable(db, settings, NOW)).values()) == [True]


async def test_the_consultation_is_joinable_at_any_hour(db: Database, settings: Settings) -> None:
    """Loaded on New Year's Eve at 23:50, then run again at each later edge: every time one
    consultation of the nurse with Dr Morel, its room open."""
    first = EDGES[0].astimezone(UTC)
    await _loaded(db, settings, first)
    async with db.read() as session:
        latest = await session.scalar(select(func.max(Act.occurred_at)))
    assert latest is not None and latest < first - timedelta(days=1)
    sites = await _sites(db, first)  # past visits long over, upcoming ones to come
    assert all(seen.get("upcoming") for seen in sites.values()), sites
    for edge in EDGES:
        now = edge.astimezone(UTC)
        if now != first:
            await load_activity(db, clock=FrozenClock(now), settings=settings)
        assert list((await _joinable(db, settings, now)).values()) == [True], edge  # open now
    async with db.read() as session:  # earlier runs' one-day rules have left her hours
        one_day = await session.scalar(
            select(func.count())
            .select_from(AvailabilityRule)
            .join(User, User.id == AvailabilityRule.specialist_id)
            .where(
                User.full_name == MOREL,
                AvailabilityRule.deleted_at.is_(None),
                AvailabilityRule.valid_from == AvailabilityRule.valid_until,
            )
        )
    assert one_day is not None and one_day <= 1
