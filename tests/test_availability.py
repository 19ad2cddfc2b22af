"""Specialists publish weekly rules and absences; slots follow, booked slots are never lost."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from scheduling.clock import FrozenClock
from telmi import availability, booking, jobs
from telmi.context import Context
from telmi.db import Database
from telmi.errors import ValidationError
from telmi.models import ActType, Booking, Role, Slot, SlotStatus, User
from telmi.settings import Settings
from telmi.values import parse_json

from .factories import bearer, make_facility, make_resident, make_user

PARIS = ZoneInfo("Europe/Paris")
# A Wednesday in May 2026, so Monday 25 May (Pentecost Monday, a public holiday) is ahead.
NOW = datetime(2026, 5, 20, 10, 0, tzinfo=PARIS).astimezone(UTC)
MONDAY_RULE = {
    "weekday": 0,
    "start": "09:00",
    "end": "11:00",
    "slot_minutes": 30,
    "act_types": ["teleconsultation", "teleexpertise"],
}


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


async def _open_slots(db: Database, specialist: User) -> list[Slot]:
    async with db.read() as session:
        query = (
            select(Slot)
            .where(Slot.specialist_id == specialist.id, Slot.status == SlotStatus.OPEN)
            .order_by(Slot.starts_at)
        )
        return list(await session.scalars(query))


def _local(slot: Slot) -> str:
    return slot.starts_at.astimezone(PARIS).strftime("%Y-%m-%d %H:%M")


@pytest.fixture
async def doctor(db: Database) -> tuple[User, dict[str, str]]:
    specialist = await make_user(db, Role.SPECIALIST)
    return specialist, await bearer(db, specialist)


async def test_new_rule_has_its_slots_when_the_request_returns(
    client: TestClient, db: Database, doctor: tuple[User, dict[str, str]]
) -> None:
    specialist, headers = doctor
    response = await client.post("/api/availability/rules", json=MONDAY_RULE, headers=headers)
    assert response.status == 201
    body = await response.json()
    slots = await _open_slots(db, specialist)
    # 8 weeks ahead, Mondays 09:00-11:00 in 30 min, minus Pentecost Monday (25 May).
    assert body["slots"]["created"] == len(slots) == 4 * 8 - 4
    assert _local(slots[0]) == "2026-06-01 09:00"
    assert {s.starts_at.astimezone(PARIS).time() for s in slots} == {
        time(9),
        time(9, 30),
        time(10),
        time(10, 30),
    }
    rules = await (await client.get("/api/availability/rules", headers=headers)).json()
    assert [r["start"] for r in rules["items"]] == ["09:00"]


async def test_materialising_twice_creates_nothing_new(
    client: TestClient, db: Database, doctor: tuple[User, dict[str, str]], clock: FrozenClock
) -> None:
    specialist, headers = doctor
    await client.post("/api/availability/rules", json=MONDAY_RULE, headers=headers)
    before = len(await _open_slots(db, specialist))
    async with db.write() as session:
        report = await availability.sync_slots(
            session, await session.get(User, specialist.id), now=clock.now(), tz=PARIS, weeks=8
        )
    assert (report.created, report.reopened, report.withdrawn, report.conflicts) == (0, 0, 0, [])
    assert len(await _open_slots(db, specialist)) == before


async def test_a_holiday_opening_rule_includes_pentecost_monday(
    client: TestClient, db: Database, doctor: tuple[User, dict[str, str]]
) -> None:
    specialist, headers = doctor
    rule = {**MONDAY_RULE, "open_on_public_holidays": True}
    assert (await client.post("/api/availability/rules", json=rule, headers=headers)).status == 201
    assert _local((await _open_slots(db, specialist))[0]) == "2026-05-25 09:00"


async def _book_first_slot(db: Database, specialist: User) -> booking.BookingView:
    staff = await make_user(db, Role.STAFF, facility=await make_facility(db))
    resident = await make_resident(db, staff)
    first = (await _open_slots(db, specialist))[0]
    async with db.write() as session:
        new = booking.NewBooking(
            slot_id=first.id, patient_id=resident.id, act_type=ActType.TELECONSULTATION
        )
        return await booking.book(session, Context(staff, NOW), new)


async def test_changing_a_rule_keeps_booked_slots_and_reports_them(
    client: TestClient, db: Database, doctor: tuple[User, dict[str, str]]
) -> None:
    specialist, headers = doctor
    created = await (
        await client.post("/api/availability/rules", json=MONDAY_RULE, headers=headers)
    ).json()
    booked = await _book_first_slot(db, specialist)
    changed = await client.put(
        f"/api/availability/rules/{created['rule']['id']}",
        json={**MONDAY_RULE, "slot_minutes": 60},
        headers=headers,
    )
    assert changed.status == 200
    report = (await changed.json())["slots"]
    assert [c["booking_id"] for c in report["conflicts"]] == [booked.id]
    slots = await _open_slots(db, specialist)
    assert booked.slot.id in [s.id for s in slots]  # the booked 30-minute slot stays
    # Other Mondays now have two 60-minute slots.
    june_8 = [s for s in slots if _local(s).startswith("2026-06-08")]
    assert [(_local(s)[-5:], (s.ends_at - s.starts_at).seconds // 60) for s in june_8] == [
        ("09:00", 60),
        ("10:00", 60),
    ]
    # On the booked Monday the slots that would overlap the kept one are not created.
    june_1 = [s for s in slots if _local(s).startswith("2026-06-01")]
    assert [_local(s)[-5:] for s in june_1] == ["09:00", "10:00"]
    assert all(x.ends_at <= y.starts_at for x, y in zip(june_1, june_1[1:], strict=False))


async def test_deleting_a_rule_withdraws_free_slots_only(
    client: TestClient, db: Database, doctor: tuple[User, dict[str, str]]
) -> None:
    specialist, headers = doctor
    created = await (
        await client.post("/api/availability/rules", json=MONDAY_RULE, headers=headers)
    ).json()
    booked = await _book_first_slot(db, specialist)
    deleted = await client.delete(
        f"/api/availability/rules/{created['rule']['id']}", headers=headers
    )
    assert deleted.status == 200
    report = (await deleted.json())["slots"]
    assert report["withdrawn"] == created["slots"]["created"] - 1
    assert [c["booking_id"] for c in report["conflicts"]] == [booked.id]
    assert [s.id for s in await _open_slots(db, specialist)] == [booked.slot.id]
    assert (await (await client.get("/api/availability/rules", headers=headers)).json())[
        "items"
    ] == []


async def test_absence_closes_free_slots_and_reports_booked_ones(
    client: TestClient, db: Database, doctor: tuple[User, dict[str, str]]
) -> None:
    specialist, headers = doctor
    await client.post("/api/availability/rules", json=MONDAY_RULE, headers=headers)
    booked = await _book_first_slot(db, specialist)
    absence = {
        "starts_at": "2026-06-01T00:00+02:00",
        "ends_at": "2026-06-09T00:00+02:00",
        "reason": "Congrès",
    }
    response = await client.post("/api/availability/exceptions", json=absence, headers=headers)
    assert response.status == 201
    body = await response.json()
    assert body["slots"]["withdrawn"] == 7  # 3 free on 1 June, 4 on 8 June
    assert [c["booking_id"] for c in body["slots"]["conflicts"]] == [booked.id]
    assert body["exception"]["starts_at"] == "2026-06-01T00:00:00+02:00"

    removed = await client.delete(
        f"/api/availability/exceptions/{body['exception']['id']}", headers=headers
    )
    assert (await removed.json())["slots"]["reopened"] == 7


async def test_overlapping_rule_is_refused(
    client: TestClient, doctor: tuple[User, dict[str, str]]
) -> None:
    _, headers = doctor
    await client.post("/api/availability/rules", json=MONDAY_RULE, headers=headers)
    overlap = {**MONDAY_RULE, "start": "10:30", "end": "12:00"}
    response = await client.post("/api/availability/rules", json=overlap, headers=headers)
    assert response.status == 409 and (await response.json())["error"]["code"] == "rule_overlap"


async def test_preview_saves_nothing(
    client: TestClient, db: Database, doctor: tuple[User, dict[str, str]]
) -> None:
    specialist, headers = doctor
    response = await client.post("/api/availability/preview", json=MONDAY_RULE, headers=headers)
    assert response.status == 200
    assert len((await response.json())["items"]) == 28
    assert await _open_slots(db, specialist) == []


async def test_specialists_manage_only_their_own_availability(
    client: TestClient, db: Database, doctor: tuple[User, dict[str, str]]
) -> None:
    specialist, _ = doctor
    other = await bearer(db, await make_user(db, Role.SPECIALIST))
    foreign = await client.post(
        "/api/availability/rules",
        json={**MONDAY_RULE, "specialist_id": specialist.id},
        headers=other,
    )
    assert foreign.status == 403
    staff = await bearer(db, await make_user(db, Role.STAFF))
    assert (await client.get("/api/availability/rules", headers=staff)).status == 403

    admin = await bearer(db, await make_user(db, Role.ADMIN))
    by_admin = await client.post(
        "/api/availability/rules",
        json={**MONDAY_RULE, "specialist_id": specialist.id},
        headers=admin,
    )
    assert by_admin.status == 201
    assert len(await _open_slots(db, specialist)) == 28
    missing = await client.post("/api/availability/rules", json=MONDAY_RULE, headers=admin)
    assert missing.status == 422


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"weekday": 7}, "weekday"),
        ({"weekday": "lundi"}, "weekday"),
        ({"start": "9h"}, "start"),
        ({"end": "08:00"}, "end"),
        ({"start": "09:00+02:00"}, "start"),
        ({"slot_minutes": 0}, "slot_minutes"),
        ({"slot_minutes": 180}, "slot_minutes"),
        ({"act_types": []}, "act_types"),
        ({"act_types": ["chirurgie"]}, "act_types[0]"),
        ({"act_types": "teleconsultation"}, "act_types"),
        ({"weekday": True}, "weekday"),
        ({"weekday": 2.5}, "weekday"),
        ({"slot_minutes": "30"}, "slot_minutes"),
        ({"buffer_minutes": 121}, "buffer_minutes"),
        ({"start": "09:00:00"}, "start"),
        ({"valid_from": "2026-06-01T00:00"}, "valid_from"),
        ({"valid_until": "2026-05-19"}, "valid_until"),  # before today, the default start
        ({"open_on_public_holidays": "oui"}, "open_on_public_holidays"),
        ({"specialist_id": 0}, "specialist_id"),
        ({"jour": "lundi"}, "jour"),
        ({"valid_from": "2026-02-30"}, "valid_from"),
        ({"valid_from": "2026-06-10", "valid_until": "2026-06-01"}, "valid_until"),
    ],
)
async def test_bad_rules_get_a_422_naming_the_field_and_write_nothing(
    client: TestClient,
    db: Database,
    doctor: tuple[User, dict[str, str]],
    change: dict[str, Any],
    field: str,
) -> None:
    specialist, headers = doctor
    response = await client.post(
        "/api/availability/rules", json={**MONDAY_RULE, **change}, headers=headers
    )
    assert response.status == 422
    assert (await response.json())["error"]["field"] == field
    assert await _open_slots(db, specialist) == []


JUNE_1, JUNE_2, JUNE_9 = "2026-06-01T00:00+02:00", "2026-06-02T00:00+02:00", "2026-06-09T00:00Z"


@pytest.mark.parametrize(
    ("absence", "field"),
    [
        ({"starts_at": "demain", "ends_at": JUNE_9}, "starts_at"),
        ({"starts_at": JUNE_9, "ends_at": JUNE_1}, "ends_at"),
        ({"starts_at": JUNE_1, "ends_at": JUNE_1}, "ends_at"),
        ({"starts_at": "2026-01-01T00:00+01:00", "ends_at": "2026-01-02T00:00+01:00"}, "ends_at"),
        ({"starts_at": JUNE_1, "ends_at": JUNE_2, "reason": "x" * 201}, "reason"),
        ({"starts_at": JUNE_1, "ends_at": JUNE_2, "reason": 7}, "reason"),
        # The API takes instants: a date-time without its offset names no moment.
        ({"starts_at": "2026-06-01T00:00", "ends_at": JUNE_2}, "starts_at"),
        ({"starts_at": JUNE_1, "ends_at": "2026-06-02T00:00"}, "ends_at"),
        ({"starts_at": "2026-06-01", "ends_at": JUNE_2}, "starts_at"),
        # An instant no database can store (year 1 before UTC) is refused where it enters.
        ({"starts_at": "0001-01-01T00:00+01:00", "ends_at": JUNE_2}, "starts_at"),
        ({"starts_at": JUNE_1, "ends_at": "9999-12-31T23:00-05:00"}, "ends_at"),
        ({"starts_at": JUNE_1, "ends_at": JUNE_2, "motif": "Congrès"}, "motif"),
        ({"starts_at": JUNE_1, "ends_at": JUNE_2, "specialist_id": "5"}, "specialist_id"),
    ],
)
async def test_bad_absences_are_refused(
    client: TestClient,
    db: Database,
    doctor: tuple[User, dict[str, str]],
    absence: dict[str, Any],
    field: str,
) -> None:
    _, headers = doctor
    response = await client.post("/api/availability/exceptions", json=absence, headers=headers)
    assert response.status == 422
    assert (await response.json())["error"]["field"] == field
    listed = await (await client.get("/api/availability/exceptions", headers=headers)).json()
    assert listed["items"] == []


async def test_dst_week_slots_keep_their_local_time(
    client: TestClient, db: Database, clock: FrozenClock
) -> None:
    specialist = await make_user(db, Role.SPECIALIST)
    headers = await bearer(db, specialist)
    clock.set(datetime(2026, 3, 18, 12, tzinfo=UTC))
    rule = {**MONDAY_RULE, "weekday": 0, "start": "09:00", "end": "09:30"}
    await client.post("/api/availability/rules", json=rule, headers=headers)
    slots = await _open_slots(db, specialist)
    assert [_local(s) for s in slots[:3]] == [
        "2026-03-23 09:00",
        "2026-03-30 09:00",
        "2026-04-13 09:00",  # 6 April is Easter Monday: closed
    ]
    # 09:00 CET then 09:00 CEST: an hour apart in UTC.
    assert slots[0].starts_at.hour == 8 and slots[1].starts_at.hour == 7


async def test_booking_a_materialised_slot_works_end_to_end(
    client: TestClient, db: Database, doctor: tuple[User, dict[str, str]]
) -> None:
    specialist, headers = doctor
    await client.post("/api/availability/rules", json=MONDAY_RULE, headers=headers)
    nurse = await make_user(db, Role.STAFF)
    staff, resident = await bearer(db, nurse), await make_resident(db, nurse)
    found = await (
        await client.get("/api/slots?act_type=teleexpertise&from=2026-06-01", headers=staff)
    ).json()
    first = found["items"][0]
    assert first["starts_at"] == "2026-06-01T07:00:00+00:00"
    booked = await client.post(
        "/api/bookings",
        json={
            "slot_id": first["id"],
            "patient_id": resident.id,
            "act_type": "teleexpertise",
            # A dermatology tele-expertise asks its form's required fields.
            "answers": {
                "lesion_site": "Avant-bras",
                "duration": "2 semaines",
                "evolution": "Stable",
            },
        },
        headers={**staff, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert booked.status == 201
    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(Booking)) == 1


def _rule(data: dict[str, Any]) -> availability.RuleInput:
    return parse_json(availability.RuleInput, json.dumps(data).encode())


def test_rule_parsing_defaults_to_today() -> None:
    rule = availability.to_weekly(_rule(MONDAY_RULE), today=date(2026, 5, 20))
    assert rule.valid_from == date(2026, 5, 20) and rule.buffer_minutes == 0
    with pytest.raises(ValidationError, match="weekday"):
        _rule({**MONDAY_RULE, "weekday": True})
    assert timedelta(minutes=rule.slot_minutes) == timedelta(minutes=30)
    assert rule.start == time(9) and rule.end == time(11)


def test_a_rule_names_each_act_type_once_in_the_usual_order() -> None:
    repeated = ["teleexpertise", "teleconsultation", "teleexpertise"]
    rule = _rule({**MONDAY_RULE, "act_types": repeated})
    assert rule.act_types == [ActType.TELECONSULTATION, ActType.TELEEXPERTISE]
    assert _rule({**MONDAY_RULE, "weekday": 3.0}).weekday == 3  # JSON Schema's integer


def test_rule_and_absence_checks_name_their_field_in_french() -> None:
    with pytest.raises(ValidationError, match="L'heure de fin doit suivre") as late:
        _rule({**MONDAY_RULE, "start": "11:00", "end": "11:00"})
    assert late.value.field == "end"
    with pytest.raises(ValidationError, match="plus courte qu'un créneau") as short:
        _rule({**MONDAY_RULE, "end": "09:20"})
    assert short.value.field == "slot_minutes"
    with pytest.raises(ValidationError, match="précède") as backwards:
        availability.to_weekly(
            _rule({**MONDAY_RULE, "valid_until": "2026-05-01"}), today=date(2026, 5, 20)
        )
    assert backwards.value.field == "valid_until"
    with pytest.raises(ValidationError, match="avec son fuseau") as naive:
        parse_json(
            availability.ExceptionInput,
            b'{"starts_at": "2026-06-01T09:00", "ends_at": "2026-06-01T10:00+02:00"}',
        )
    assert naive.value.field == "starts_at"
    away = parse_json(
        availability.ExceptionInput,
        b'{"starts_at": "2026-06-01T09:00+02:00", "ends_at": "2026-06-01T10:00+02:00",'
        b' "reason": "  Formation  "}',
    )
    assert away.reason == "Formation" and away.starts_at.utcoffset() == timedelta(hours=2)


async def test_whose_availability_is_an_id_in_the_query_string(
    client: TestClient, db: Database, doctor: tuple[User, dict[str, str]]
) -> None:
    specialist, headers = doctor
    mine = await client.get(
        f"/api/availability/rules?specialist_id={specialist.id}", headers=headers
    )
    assert mine.status == 200
    for path in ("/api/availability/rules", "/api/availability/exceptions"):
        odd = await client.get(f"{path}?specialist_id=abc", headers=headers)
        assert odd.status == 422 and (await odd.json())["error"]["field"] == "specialist_id"
    admin = await bearer(db, await make_user(db, Role.ADMIN))
    nobody = await client.get("/api/availability/exceptions?specialist_id=999999", headers=admin)
    assert nobody.status == 404
    unnamed = await client.delete("/api/availability/exceptions/1", headers=admin)
    assert unnamed.status == 422 and (await unnamed.json())["error"]["field"] == "specialist_id"


async def test_the_nightly_job_extends_the_horizon_by_a_week_and_again_adds_nothing(
    client: TestClient,
    db: Database,
    doctor: tuple[User, dict[str, str]],
    clock: FrozenClock,
    settings: Settings,
) -> None:
    specialist, headers = doctor
    await client.post("/api/availability/rules", json=MONDAY_RULE, headers=headers)
    before = len(await _open_slots(db, specialist))
    clock.advance(timedelta(days=7))
    assert "4 créneaux créés" in await jobs.materialise_slots(db, clock, settings)
    assert "0 créneaux créés" in await jobs.materialise_slots(db, clock, settings)
    assert len(await _open_slots(db, specialist)) == before + 4  # one more week of Mondays
