"""A moved booking, as the lists and the notices show it: « Déplacé au … » where it went, one
« déplacée » notice per person naming the new time, no cancellation of the booking it replaced,
and no resident reference in any notice."""

from __future__ import annotations

from datetime import datetime, timedelta
from html import unescape
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from scheduling.clock import FrozenClock
from telmi import booking, notify
from telmi.context import Context
from telmi.db import Database
from telmi.models import ActType, Booking, Notification, Role, Slot, User

from .factories import (
    NOW,
    csrf_from,
    login,
    make_facility,
    make_resident,
    make_slot,
    make_specialty,
    make_user,
)

PARIS = ZoneInfo("Europe/Paris")
# Thursday 11 June 2026, the day after the suite's instant.
THURSDAY_9 = datetime(2026, 6, 11, 9, 0, tzinfo=PARIS)
PUBLIC = "https://telmi.example"


@pytest.fixture
async def world(db: Database) -> dict[str, Any]:
    """A nursing home with two nurses, two dermatologists, three slots of the first tomorrow
    from 9:00 and one of the second at 11:00."""
    home = await make_facility(db, name="EHPAD Les Tilleuls")
    nurse, colleague = [await make_user(db, Role.STAFF, facility=home) for _ in range(2)]
    skin = await make_specialty(db)
    first, second = [await make_user(db, Role.SPECIALIST, specialty=skin) for _ in range(2)]
    slots = [await make_slot(db, first, THURSDAY_9 + timedelta(minutes=30 * i)) for i in range(3)]
    other = await make_slot(db, second, THURSDAY_9 + timedelta(hours=2))
    resident = await make_resident(db, nurse, reference="RES-0042")
    return {"nurse": nurse, "colleague": colleague, "first": first, "second": second,
            "slots": slots, "other": other, "resident": resident.id}  # fmt: skip


async def _book(db: Database, world: dict[str, Any], slot: Slot) -> int:
    """A confirmed booking of the nurse for the resident, made through the service."""
    new = booking.NewBooking(
        slot_id=slot.id, patient_id=world["resident"], act_type=ActType.TELECONSULTATION
    )
    async with db.write() as session:
        return (await booking.book(session, Context(world["nurse"], NOW), new)).id


async def _move(db: Database, staff: User, booking_id: int, slot: Slot, at: datetime) -> int:
    async with db.write() as session:
        moved = await booking.reschedule(
            session, Context(staff, at), booking_id, booking.Move(slot_id=slot.id)
        )
    return moved.id


async def _moved_to(db: Database, ids: list[int]) -> dict[int, datetime]:
    async with db.read() as session:
        return await booking.moved_to(session, ids)


async def _notices(db: Database, at: datetime) -> list[Notification]:
    """Run the booking notices at `at` (twice: a second run adds nothing), then all of them."""
    for _ in range(2):
        async with db.write() as session:
            await notify.booking_notices(
                session, now=at, tz=PARIS, public_url=PUBLIC, since=timedelta(days=2)
            )
            await notify.send_reminders(session, now=at, tz=PARIS, public_url=PUBLIC)
    async with db.read() as session:
        return list(await session.scalars(select(Notification).order_by(Notification.id)))


def _by_kind(notices: list[Notification], kind: str) -> dict[int, Notification]:
    found = [n for n in notices if n.kind == kind]
    by_user = {n.user_id: n for n in found}
    assert len(by_user) == len(found), "one notice per person"
    return by_user


# --- moved_to -------------------------------------------------------------------------------------


async def test_moved_to_gives_the_start_of_the_booking_that_replaced_each_one(
    db: Database, world: dict[str, Any]
) -> None:
    nurse, slots = world["nurse"], world["slots"]
    first = await _book(db, world, slots[0])
    kept = await _book(db, world, slots[1])
    second = await _move(db, nurse, first, slots[2], NOW + timedelta(minutes=1))
    assert await _moved_to(db, [first, second, kept, 999_999]) == {first: slots[2].starts_at}
    assert await _moved_to(db, []) == {}

    # Moved again: each booking names its own next slot (one hop), not the last one.
    third = await _move(db, nurse, second, world["other"], NOW + timedelta(minutes=2))
    assert await _moved_to(db, [first, second, third]) == {
        first: slots[2].starts_at,
        second: world["other"].starts_at,
    }


# --- the lists --------------------------------------------------------------------------------------


async def _page(client: TestClient, path: str) -> str:
    return unescape(await (await client.get(path)).text())


def _card(html: str, booking_id: int) -> str:
    start = html.index(f'id="rdv-{booking_id}"')
    return html[start : html.index("</article>", start)]


async def test_mes_rendez_vous_says_where_a_booking_went_not_that_it_was_cancelled(
    client: TestClient, db: Database, clock: FrozenClock, world: dict[str, Any]
) -> None:
    nurse, slots = world["nurse"], world["slots"]
    old = await _book(db, world, slots[0])
    await login(client, nurse.email)
    page = f"/rendez-vous/{old}/deplacer"
    token = csrf_from(await _page(client, page))
    moved = await client.post(
        page, data={"slot_id": str(slots[2].id), "csrf_token": token}, allow_redirects=False
    )
    assert moved.status == 303
    new = max(b.id for b in await _all_bookings(db))

    listed = await _page(client, "/rendez-vous")
    card = _card(listed, old)
    assert "Déplacé au jeudi 11 juin 2026 à 10:00" in card
    assert "Annulé" not in card and "Reporté" not in card and "Motif" not in card
    assert "Confirmé" in _card(listed, new)
    assert "Reporté au rendez-vous" not in listed

    # Once both slots are past, the table of past bookings says the same.
    clock.set(THURSDAY_9 + timedelta(hours=3))
    await login(client, nurse.email)
    past = await _page(client, "/rendez-vous")
    table = past[past.index('id="passes"') :]
    assert "Déplacé au jeudi 11 juin 2026 à 10:00" in table
    assert "Annulé" not in table and "Reporté" not in table

    # The specialist's agenda shows the booking where it is now; the freed slot is free again.
    await login(client, world["first"].email)
    agenda = await _page(client, "/agenda?semaine=2026-06-08")
    thursday = agenda[agenda.index("jeudi 11 juin") : agenda.index("vendredi 12 juin")]
    assert "10:00–10:30" in thursday and "EHPAD Les Tilleuls" in thursday
    assert "Annulé" not in thursday and "Reporté" not in thursday


async def _all_bookings(db: Database) -> list[Booking]:
    async with db.read() as session:
        return list(await session.scalars(select(Booking).order_by(Booking.id)))


# --- the notices ------------------------------------------------------------------------------------


async def test_a_move_is_one_deplacee_notice_per_person_and_no_cancellation(
    db: Database, world: dict[str, Any]
) -> None:
    nurse, doctor, slots = world["nurse"], world["first"], world["slots"]
    old = await _book(db, world, slots[0])
    confirmed = _by_kind(await _notices(db, NOW), "rdv-confirme")
    assert set(confirmed) == {nurse.id, doctor.id}
    assert f"UID:booking-{old}@telmi" in (confirmed[nurse.id].ics or "")

    new = await _move(db, nurse, old, slots[2], NOW + timedelta(minutes=1))
    notices = await _notices(db, NOW + timedelta(minutes=2))
    assert not [n for n in notices if n.kind == "rdv-annule"]
    moved = _by_kind(notices, "rdv-deplace")
    assert set(moved) == {nurse.id, doctor.id}
    for notice in moved.values():
        assert notice.subject == "Téléconsultation déplacée"
        assert "Téléconsultation le 11 juin 2026 à 10 h avec" in notice.body
        assert "Initialement prévue le 11 juin 2026 à 9 h." in notice.body
        assert f"{PUBLIC}/consultation/{new}" in notice.body
        assert f"/consultation/{old}" not in notice.body
        ics = (notice.ics or "").replace("\r\n ", "")
        # The event of the booking it replaced, moved: same UID, a higher sequence.
        assert "METHOD:REQUEST" in ics and f"UID:booking-{old}@telmi" in ics
        assert "SEQUENCE:1" in ics and "DTSTART:20260611T080000Z" in ics
        assert f"/consultation/{old}" not in ics
    assert len([n for n in notices if n.kind.startswith("rdv-")]) == 4  # 2 confirmed, 2 moved

    # Cancelled later: the same calendar event is cancelled, and there is no room to join.
    async with db.write() as session:
        await booking.cancel(
            session,
            Context(nurse, NOW + timedelta(minutes=3)),
            new,
            booking.Cancellation(reason="Hospitalisation"),
        )
    cancelled = _by_kind(await _notices(db, NOW + timedelta(minutes=4)), "rdv-annule")
    assert set(cancelled) == {nurse.id, doctor.id}
    for notice in cancelled.values():
        ics = notice.ics or ""
        assert "METHOD:CANCEL" in ics and f"UID:booking-{old}@telmi" in ics and "SEQUENCE:2" in ics
        assert "/consultation/" not in notice.body and "Hospitalisation" not in notice.body


async def test_a_move_by_a_colleague_to_another_specialist_tells_each_person_once(
    db: Database, world: dict[str, Any]
) -> None:
    nurse, colleague, first, second = (world[k] for k in ("nurse", "colleague", "first", "second"))
    old = await _book(db, world, world["slots"][0])
    new = await _move(db, colleague, old, world["other"], NOW + timedelta(minutes=1))
    notices = await _notices(db, NOW + timedelta(minutes=2))
    assert not [n for n in notices if n.kind == "rdv-annule"]
    moved = _by_kind(notices, "rdv-deplace")
    assert set(moved) == {nurse.id, colleague.id, first.id, second.id}
    for user in (nurse, colleague, second):
        body = moved[user.id].body
        assert f"Téléconsultation le 11 juin 2026 à 11 h avec {second.full_name}" in body
        assert f"Initialement prévue le 11 juin 2026 à 9 h avec {first.full_name}." in body
        assert f"/consultation/{new}" in body
        assert "METHOD:REQUEST" in (moved[user.id].ics or "")
    # The first specialist is no longer in it: told where it went, the event leaves their
    # calendar, and no room link (the room is not theirs).
    left = moved[first.id]
    assert "aura lieu le 11 juin 2026 à 11 h" in left.body and second.full_name in left.body
    assert "/consultation/" not in left.body
    ics = left.ics or ""
    assert "METHOD:CANCEL" in ics and f"UID:booking-{old}@telmi" in ics and "SEQUENCE:1" in ics


async def test_no_notice_names_the_resident(
    db: Database, world: dict[str, Any], clock: FrozenClock
) -> None:
    nurse, slots = world["nurse"], world["slots"]
    moved = await _book(db, world, slots[0])
    await _move(db, nurse, moved, slots[2], NOW)
    cancelled = await _book(db, world, slots[1])
    async with db.write() as session:
        await booking.cancel(
            session, Context(nurse, NOW), cancelled, booking.Cancellation(reason="Sortie")
        )
    await _book(db, world, world["other"])
    notices = await _notices(db, NOW)
    notices += await _notices(db, THURSDAY_9 + timedelta(hours=1, minutes=45))  # reminders
    kinds = {n.kind for n in notices}
    assert {"rdv-confirme", "rdv-deplace", "rdv-annule", "rappel-1h"} <= kinds
    for notice in notices:
        assert "RES-0042" not in notice.body and "Résident" not in notice.body
        assert "RES-0042" not in (notice.ics or "")
        assert "EHPAD Les Tilleuls" in notice.body  # the facility is named
