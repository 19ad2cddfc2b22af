"""Hypothesis drives random book / hold / cancel / reschedule / expire / absence sequences
through the services against a real database; after every step no slot has two active
bookings, no booked slot was closed, and no specialist has two overlapping open slots."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import select

from scheduling.clock import FrozenClock
from telmi import availability, booking
from telmi.context import Context
from telmi.db import Database
from telmi.errors import TelmiError
from telmi.models import ACTIVE_BOOKING_STATUSES, ActType, Booking, Role, Slot, SlotStatus, User

from .conftest import _truncate
from .factories import make_facility, make_resident, make_slot, make_user

pytestmark = pytest.mark.slow  # processes, benchmarks or generated cases

PARIS = ZoneInfo("Europe/Paris")
T0 = datetime(2026, 9, 7, 6, 0, tzinfo=UTC)  # a Monday morning
SLOTS_PER_SPECIALIST = 6


def machine_for(new_database: Callable[[], Coroutine[Any, Any, Database]]) -> type:
    class BookingMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.loop = asyncio.new_event_loop()
            self.clock = FrozenClock(T0)
            self.db = self.run(new_database())
            self.staff: list[User] = []
            self.residents: list[int] = []  # one per staff member's facility
            self.specialists: list[User] = []
            self.slots: list[int] = []
            self.run(self._populate())

        def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
            return self.loop.run_until_complete(coro)

        async def _populate(self) -> None:
            for _ in range(3):
                staff = await make_user(self.db, Role.STAFF, facility=await make_facility(self.db))
                self.staff.append(staff)
                self.residents.append((await make_resident(self.db, staff)).id)
            for _ in range(2):
                specialist = await make_user(self.db, Role.SPECIALIST)
                self.specialists.append(specialist)
                for i in range(SLOTS_PER_SPECIALIST):
                    slot = await make_slot(
                        self.db, specialist, T0 + timedelta(hours=2, minutes=30 * i)
                    )
                    self.slots.append(slot.id)

        async def _try(self, work: Callable[[Any], Coroutine[Any, Any, Any]]) -> None:
            try:
                await self.db.run_write(work)
            except TelmiError:
                pass  # refusals (taken, too late, not yours) are part of the game

        async def _booking_ids(self) -> list[int]:
            async with self.db.read() as session:
                return list(await session.scalars(select(Booking.id).order_by(Booking.id)))

        def _as(self, who: int) -> Context:
            return Context(self.staff[who], self.clock.now())

        def _pick_booking(self, index: int) -> int | None:
            ids = self.run(self._booking_ids())
            return ids[index % len(ids)] if ids else None

        @rule(who=st.integers(0, 2), slot=st.integers(0, 2 * SLOTS_PER_SPECIALIST - 1))
        def book(self, who: int, slot: int) -> None:
            new = booking.NewBooking(
                slot_id=self.slots[slot],
                patient_id=self.residents[who],
                act_type=ActType.TELECONSULTATION,
            )
            self.run(self._try(lambda s: booking.book(s, self._as(who), new)))

        @rule(who=st.integers(0, 2), slot=st.integers(0, 2 * SLOTS_PER_SPECIALIST - 1))
        def hold(self, who: int, slot: int) -> None:
            self.run(
                self._try(
                    lambda s: booking.hold_slot(
                        s, self._as(who), self.slots[slot], booking.Hold(), hold_minutes=10
                    )
                )
            )

        @rule(who=st.integers(0, 2), pick=st.integers(0, 50))
        def cancel(self, who: int, pick: int) -> None:
            booking_id = self._pick_booking(pick)
            if booking_id is not None:
                self.run(
                    self._try(
                        lambda s: booking.cancel(
                            s, self._as(who), booking_id, booking.Cancellation(reason="test")
                        )
                    )
                )

        @rule(
            who=st.integers(0, 2),
            pick=st.integers(0, 50),
            slot=st.integers(0, 2 * SLOTS_PER_SPECIALIST - 1),
        )
        def reschedule(self, who: int, pick: int, slot: int) -> None:
            booking_id = self._pick_booking(pick)
            if booking_id is not None:
                self.run(
                    self._try(
                        lambda s: booking.reschedule(
                            s, self._as(who), booking_id, booking.Move(slot_id=self.slots[slot])
                        )
                    )
                )

        @rule(minutes=st.integers(1, 20))
        def time_passes(self, minutes: int) -> None:
            self.clock.advance(timedelta(minutes=minutes))

        @rule()
        def expire_holds(self) -> None:
            self.run(self._try(lambda s: booking.expire_holds(s, now=self.clock.now())))

        @rule(
            doctor=st.integers(0, 1),
            first=st.integers(0, SLOTS_PER_SPECIALIST - 1),
            length=st.integers(1, 3),
        )
        def absence(self, doctor: int, first: int, length: int) -> None:
            start = T0 + timedelta(hours=2, minutes=30 * first)
            away = availability.ExceptionInput(
                starts_at=start, ends_at=start + timedelta(minutes=30 * length)
            )

            async def declare(session: Any) -> Any:
                specialist = await session.get(User, self.specialists[doctor].id)
                ctx = Context(specialist, self.clock.now())
                return await availability.create_exception(session, ctx, away, tz=PARIS, weeks=1)

            self.run(self._try(declare))

        @invariant()
        def one_active_booking_per_slot(self) -> None:
            async def check() -> int:
                async with self.db.read() as session:
                    return await booking.count_double_bookings(session)

            assert self.run(check()) == 0

        @invariant()
        def booked_slots_stay_open_and_open_slots_never_overlap(self) -> None:
            async def rows() -> tuple[list[Slot], set[int]]:
                async with self.db.read() as session:
                    slots = list(
                        await session.scalars(
                            select(Slot).order_by(Slot.specialist_id, Slot.starts_at)
                        )
                    )
                    active = set(
                        await session.scalars(
                            select(Booking.slot_id).where(
                                Booking.status.in_(ACTIVE_BOOKING_STATUSES)
                            )
                        )
                    )
                return slots, active

            slots, active = self.run(rows())
            for slot in slots:
                if slot.id in active:
                    assert slot.status is SlotStatus.OPEN
            open_slots = [s for s in slots if s.status is SlotStatus.OPEN]
            for a, b in zip(open_slots, open_slots[1:], strict=False):
                if a.specialist_id == b.specialist_id:
                    assert a.ends_at <= b.starts_at

        def teardown(self) -> None:
            self.run(self.db.dispose())
            self.loop.close()

    return BookingMachine


def test_random_booking_histories_keep_the_invariants(
    database_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if database_url.startswith("sqlite"):
        template = request.getfixturevalue("sqlite_template")
        counter = iter(range(10_000))

        async def new_database() -> Database:
            path = tmp_path / f"machine{next(counter)}.sqlite3"
            shutil.copy(template, path)
            return Database(f"sqlite+aiosqlite:///{path}")
    else:

        async def new_database() -> Database:
            db = Database(database_url)
            await _truncate(db)
            return db

    run_state_machine_as_test(
        machine_for(new_database),
        settings=settings(
            max_examples=15,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
            database=None,
        ),
    )
