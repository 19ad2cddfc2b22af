"""Booking over HTTP: never twice, holds, idempotency, cancel, reschedule, isolation, bad input."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from scheduling.clock import FrozenClock
from telmi import booking, patients
from telmi.app import create_app
from telmi.db import Database
from telmi.errors import ValidationError
from telmi.models import ActType, AuditEvent, Booking, BookingStatus, Role, Slot
from telmi.values import parse

from .factories import (
    NOW,
    bearer,
    make_facility,
    make_resident,
    make_slot,
    make_specialty,
    make_user,
)


async def _active_bookings(db: Database, slot_id: int | None = None) -> int:
    async with db.read() as session:
        query = (
            select(func.count())
            .select_from(Booking)
            .where(Booking.status.in_((BookingStatus.HELD, BookingStatus.CONFIRMED)))
        )
        if slot_id is not None:
            query = query.where(Booking.slot_id == slot_id)
        return await session.scalar(query) or 0


async def _all_bookings(db: Database) -> int:
    async with db.read() as session:
        return await session.scalar(select(func.count()).select_from(Booking)) or 0


def _body(slot_id: int, patient_id: int, **extra: Any) -> dict[str, Any]:
    return {
        "slot_id": slot_id,
        "patient_id": patient_id,
        "act_type": "teleconsultation",
        "reason": "Plaie du talon",
        **extra,
    }


async def _book(
    client: TestClient, headers: dict[str, str], slot_id: int, patient_id: int, **extra: Any
) -> Any:
    return await client.post(
        "/api/bookings",
        json=_body(slot_id, patient_id, **extra),
        headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
    )


@pytest.fixture
async def world(db: Database, clock: FrozenClock) -> dict[str, Any]:
    """Two facilities with one staff member and one resident each, a dermatologist with free
    slots tomorrow."""
    a, b = await make_facility(db, name="EHPAD A"), await make_facility(db, name="EHPAD B")
    staff_a = await make_user(db, Role.STAFF, facility=a)
    staff_b = await make_user(db, Role.STAFF, facility=b)
    specialist = await make_user(db, Role.SPECIALIST)
    tomorrow = clock.now().replace(hour=8, minute=0, second=0) + timedelta(days=1)
    slots = [
        await make_slot(db, specialist, tomorrow + timedelta(minutes=30 * i)) for i in range(6)
    ]
    return {
        "a": a,
        "b": b,
        "staff_a": staff_a,
        "staff_b": staff_b,
        "specialist": specialist,
        "slots": slots,
        "ha": await bearer(db, staff_a),
        "hb": await bearer(db, staff_b),
        "hs": await bearer(db, specialist),
        "pa": (await make_resident(db, staff_a, reference="RES-0042")).id,
        "pb": (await make_resident(db, staff_b, reference="RES-0077")).id,
    }


async def test_staff_books_a_free_slot_for_their_facility(
    client: TestClient, db: Database, world: dict[str, Any]
) -> None:
    slot = world["slots"][0]
    response = await _book(client, world["ha"], slot.id, world["pa"])
    assert response.status == 201
    body = await response.json()
    assert body["status"] == "confirmed" and body["facility"]["name"] == "EHPAD A"
    assert body["slot"]["id"] == slot.id and body["patient_ref"] == "RES-0042"
    assert await _active_bookings(db, slot.id) == 1


async def test_fifty_staff_booking_the_same_slot_exactly_one_wins(
    client: TestClient, db: Database, world: dict[str, Any]
) -> None:
    facilities = [await make_facility(db) for _ in range(5)]
    staff = [await make_user(db, Role.STAFF, facility=f) for f in facilities]
    bookers = [(await bearer(db, u), (await make_resident(db, u)).id) for u in staff]
    for slot in world["slots"][:3]:  # the race, three times over
        responses = await asyncio.gather(
            *(_book(client, bookers[i % 5][0], slot.id, bookers[i % 5][1]) for i in range(50))
        )
        statuses = sorted(r.status for r in responses)
        assert statuses == [201] + [409] * 49
        for r in responses:
            if r.status == 409:
                assert (await r.json())["error"]["code"] == "slot_taken"
        assert await _active_bookings(db, slot.id) == 1
    async with db.read() as session:
        assert await booking.count_double_bookings(session) == 0


async def test_concurrent_reschedules_and_cancels_keep_one_booking_per_slot(
    client: TestClient, db: Database, world: dict[str, Any]
) -> None:
    slots, ha, hb, pa, pb = (world[k] for k in ("slots", "ha", "hb", "pa", "pb"))
    first = await (await _book(client, ha, slots[0].id, pa)).json()
    second = await (await _book(client, hb, slots[1].id, pb)).json()
    target = slots[2].id
    responses = await asyncio.gather(
        client.post(
            f"/api/bookings/{first['id']}/reschedule", json={"slot_id": target}, headers=ha
        ),
        client.post(
            f"/api/bookings/{second['id']}/reschedule", json={"slot_id": target}, headers=hb
        ),
        client.post(
            f"/api/bookings/{first['id']}/cancel", json={"reason": "Transfert"}, headers=ha
        ),
        _book(client, ha, target, pa),
    )
    assert all(r.status < 500 for r in responses)
    assert await _active_bookings(db, target) == 1
    async with db.read() as session:
        assert await booking.count_double_bookings(session) == 0
        rows = list(await session.scalars(select(Booking)))
    # Whatever won, every booking of facility B is active exactly once (moved or not).
    b_active = [
        r for r in rows if r.facility_id == world["b"].id and r.status is BookingStatus.CONFIRMED
    ]
    assert len(b_active) == 1


async def test_reschedule_moves_atomically(
    client: TestClient, db: Database, world: dict[str, Any]
) -> None:
    slots, ha, hb, pa, pb = (world[k] for k in ("slots", "ha", "hb", "pa", "pb"))
    mine = await (await _book(client, ha, slots[0].id, pa)).json()
    await _book(client, hb, slots[1].id, pb)
    taken = await client.post(
        f"/api/bookings/{mine['id']}/reschedule", json={"slot_id": slots[1].id}, headers=ha
    )
    assert taken.status == 409 and (await taken.json())["error"]["code"] == "slot_taken"
    assert await _active_bookings(db, slots[0].id) == 1  # the old slot was not freed

    moved = await client.post(
        f"/api/bookings/{mine['id']}/reschedule", json={"slot_id": slots[2].id}, headers=ha
    )
    assert moved.status == 201
    body = await moved.json()
    assert body["slot"]["id"] == slots[2].id and body["rescheduled_from_id"] == mine["id"]
    assert body["patient_ref"] == "RES-0042"
    assert await _active_bookings(db, slots[0].id) == 0


async def test_hold_keeps_the_slot_until_it_expires(
    client: TestClient, db: Database, world: dict[str, Any], clock: FrozenClock
) -> None:
    slot, ha, hb, pb = world["slots"][0], world["ha"], world["hb"], world["pb"]
    held = await client.post(f"/api/slots/{slot.id}/hold", headers=ha)
    assert held.status == 201
    hold = await held.json()
    assert hold["status"] == "held" and hold["hold_expires_at"]

    assert (await _book(client, hb, slot.id, pb)).status == 409  # someone else's hold
    search = await client.get("/api/slots", headers=hb)
    assert slot.id not in [s["id"] for s in (await search.json())["items"]]

    clock.advance(timedelta(minutes=11))
    search = await client.get("/api/slots", headers=hb)
    assert slot.id in [s["id"] for s in (await search.json())["items"]]
    assert (await _book(client, hb, slot.id, pb)).status == 201
    assert await _active_bookings(db, slot.id) == 1


async def test_booking_converts_the_callers_own_hold(
    client: TestClient, db: Database, world: dict[str, Any]
) -> None:
    slot, ha, pa = world["slots"][0], world["ha"], world["pa"]
    hold = await (await client.post(f"/api/slots/{slot.id}/hold", headers=ha)).json()
    booked = await _book(client, ha, slot.id, pa)
    assert booked.status == 201
    assert (await booked.json())["id"] == hold["id"]
    assert await _all_bookings(db) == 1


async def test_idempotent_replay_returns_the_first_response(
    client: TestClient, db: Database, world: dict[str, Any]
) -> None:
    slot, ha = world["slots"][0], world["ha"]
    headers = {**ha, "Idempotency-Key": "booking-42"}
    first = await client.post("/api/bookings", json=_body(slot.id, world["pa"]), headers=headers)
    replays = await asyncio.gather(
        *(
            client.post("/api/bookings", json=_body(slot.id, world["pa"]), headers=headers)
            for _ in range(5)
        )
    )
    assert first.status == 201
    for replay in replays:
        assert replay.status == 201
        assert await replay.json() == await first.json()
    assert await _all_bookings(db) == 1

    other = await client.post(
        "/api/bookings", json=_body(world["slots"][1].id, world["pa"]), headers=headers
    )
    assert other.status == 422
    assert (await other.json())["error"]["code"] == "idempotency_key_reused"
    missing = await client.post(
        "/api/bookings", json=_body(world["slots"][1].id, world["pa"]), headers=ha
    )
    assert missing.status == 400
    assert (await missing.json())["error"]["code"] == "idempotency_key_required"
    assert await _all_bookings(db) == 1


async def test_idempotency_keys_are_kept_a_day_then_reusable(
    client: TestClient, db: Database, world: dict[str, Any], clock: FrozenClock
) -> None:
    headers = {**world["ha"], "Idempotency-Key": "daily"}
    first = await client.post(
        "/api/bookings", json=_body(world["slots"][0].id, world["pa"]), headers=headers
    )
    clock.advance(timedelta(hours=23))
    later = await make_slot(db, world["specialist"], clock.now() + timedelta(days=3))
    other_body = _body(later.id, world["pa"])
    assert (await client.post("/api/bookings", json=other_body, headers=headers)).status == 422
    replay = await client.post(
        "/api/bookings", json=_body(world["slots"][0].id, world["pa"]), headers=headers
    )
    assert await replay.json() == await first.json()
    clock.advance(timedelta(hours=2))  # 25 hours: the key may serve again
    reused = await client.post("/api/bookings", json=other_body, headers=headers)
    assert reused.status == 201 and (await reused.json())["slot"]["id"] == later.id
    assert await _all_bookings(db) == 2


async def test_concurrent_twins_with_one_key_create_one_booking(
    client: TestClient, db: Database, world: dict[str, Any]
) -> None:
    headers = {**world["ha"], "Idempotency-Key": "twin"}
    body = _body(world["slots"][0].id, world["pa"])
    responses = await asyncio.gather(
        *(client.post("/api/bookings", json=body, headers=headers) for _ in range(10))
    )
    assert [r.status for r in responses] == [201] * 10
    assert len({(await r.json())["id"] for r in responses}) == 1
    assert await _all_bookings(db) == 1


async def test_staff_of_another_facility_cannot_read_cancel_or_move_a_booking(
    client: TestClient, db: Database, world: dict[str, Any]
) -> None:
    mine = await (await _book(client, world["ha"], world["slots"][0].id, world["pa"])).json()
    hb = world["hb"]  # another facility's booking answers as a missing one
    assert (await client.get(f"/api/bookings/{mine['id']}", headers=hb)).status == 404
    cancel = await client.post(
        f"/api/bookings/{mine['id']}/cancel", json={"reason": "x"}, headers=hb
    )
    assert cancel.status == 404
    move = await client.post(
        f"/api/bookings/{mine['id']}/reschedule", json={"slot_id": world["slots"][1].id}, headers=hb
    )
    assert move.status == 404
    listed = await (await client.get("/api/bookings", headers=hb)).json()
    assert listed["items"] == []
    assert await _active_bookings(db, world["slots"][0].id) == 1


async def test_booking_for_another_facility_is_refused(
    client: TestClient, db: Database, world: dict[str, Any]
) -> None:
    response = await _book(
        client, world["ha"], world["slots"][0].id, world["pa"], facility_id=world["b"].id
    )
    assert response.status == 403
    assert await _all_bookings(db) == 0


async def test_regional_and_admin_see_no_bookings(
    client: TestClient, db: Database, world: dict[str, Any]
) -> None:
    mine = await (await _book(client, world["ha"], world["slots"][0].id, world["pa"])).json()
    for role in (Role.REGIONAL, Role.ADMIN):
        headers = await bearer(db, await make_user(db, role))
        for method, path in [
            ("GET", "/api/bookings"),
            ("GET", f"/api/bookings/{mine['id']}"),
            ("POST", f"/api/bookings/{mine['id']}/cancel"),
            ("POST", f"/api/slots/{world['slots'][1].id}/hold"),
        ]:
            response = await client.request(method, path, headers=headers, json={"reason": "x"})
            assert response.status == 403, (role, path)
    regional = await bearer(db, await make_user(db, Role.REGIONAL))
    assert (await client.get("/api/slots", headers=regional)).status == 403


async def test_specialist_sees_and_cancels_bookings_of_their_agenda(
    client: TestClient, db: Database, world: dict[str, Any]
) -> None:
    mine = await (await _book(client, world["ha"], world["slots"][0].id, world["pa"])).json()
    agenda = await (await client.get("/api/bookings", headers=world["hs"])).json()
    assert [b["id"] for b in agenda["items"]] == [mine["id"]]
    cancel = await client.post(
        f"/api/bookings/{mine['id']}/cancel", json={"reason": "Congé maladie"}, headers=world["hs"]
    )
    assert cancel.status == 200
    assert (await cancel.json())["status"] == "cancelled"
    again = await client.post(
        f"/api/bookings/{mine['id']}/cancel", json={"reason": "encore"}, headers=world["hs"]
    )
    assert again.status == 409


async def test_reading_a_booking_is_audited_with_who_and_where(
    client: TestClient, db: Database, world: dict[str, Any]
) -> None:
    mine = await (await _book(client, world["ha"], world["slots"][0].id, world["pa"])).json()
    await client.get(f"/api/bookings/{mine['id']}", headers=world["hs"])
    async with db.read() as session:
        event = await session.scalar(select(AuditEvent).where(AuditEvent.action == "booking.read"))
    assert event is not None
    assert event.actor_id == world["specialist"].id and event.target_id == str(mine["id"])
    assert event.address == "127.0.0.1"
    assert "RES-0042" not in str(event.detail)


async def test_a_requests_audit_events_carry_its_instant_and_address(
    aiohttp_client: Any, settings: Any, clock: FrozenClock, db: Database, world: dict[str, Any]
) -> None:
    """The middleware's Context is the only source: the clock read once, the address the
    trusted proxy gave, for every event the request writes."""
    client = await aiohttp_client(create_app(settings.replace(trust_proxy=True), clock=clock))
    proxied = {**world["ha"], "X-Forwarded-For": "203.0.113.7, 10.0.0.1"}
    created = await _book(client, proxied, world["slots"][0].id, world["pa"])
    assert created.status == 201
    clock.advance(timedelta(minutes=5))
    await client.get(f"/api/bookings/{(await created.json())['id']}", headers=proxied)
    async with db.read() as session:
        events = {
            e.action: e
            for e in await session.scalars(
                select(AuditEvent).where(AuditEvent.action.like("booking.%"))
            )
        }
    assert events["booking.created"].at == NOW and events["booking.read"].at == clock.now()
    assert {e.address for e in events.values()} == {"203.0.113.7"}


async def test_cancel_and_reschedule_stop_at_the_start_time(
    client: TestClient, db: Database, world: dict[str, Any], clock: FrozenClock
) -> None:
    mine = await (await _book(client, world["ha"], world["slots"][0].id, world["pa"])).json()
    clock.set(datetime.fromisoformat(mine["slot"]["starts_at"]) + timedelta(minutes=1))
    cancel = await client.post(
        f"/api/bookings/{mine['id']}/cancel", json={"reason": "x"}, headers=world["ha"]
    )
    assert cancel.status == 409 and (await cancel.json())["error"]["code"] == "too_late"


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"slot_id": 999999}, 404, "slot_not_found"),
        ({"slot_id": "1"}, 422, "invalid"),
        ({"act_type": "teleexpertise"}, 409, "act_type_not_offered"),
        ({"act_type": "chirurgie"}, 422, "invalid"),
        ({"patient_id": "1"}, 422, "invalid"),
        ({"patient_id": 999999}, 422, "invalid"),  # no such resident
        ({"patient_id": "of B"}, 422, "invalid"),  # another facility's resident
        ({"patient_ref": "RES-0042"}, 422, "invalid"),  # residents are named by id now
        ({"patient_ins": "1840775123456 12"}, 422, "invalid"),
        ({"reason": 12}, 422, "invalid"),
    ],
)
async def test_bad_booking_input_is_refused_and_writes_nothing(
    client: TestClient,
    db: Database,
    world: dict[str, Any],
    change: dict[str, Any],
    status: int,
    code: str,
) -> None:
    if change.get("patient_id") == "of B":
        change = {"patient_id": world["pb"]}
    body = {**_body(world["slots"][0].id, world["pa"]), **change}
    response = await client.post(
        "/api/bookings", json=body, headers={**world["ha"], "Idempotency-Key": str(uuid.uuid4())}
    )
    assert response.status == status
    error = (await response.json())["error"]
    assert error["code"] == code
    if "patient_id" in change:
        assert error["field"] == "patient_id"
    assert await _all_bookings(db) == 0


async def test_past_slot_cannot_be_booked(
    client: TestClient, db: Database, world: dict[str, Any], clock: FrozenClock
) -> None:
    past = await make_slot(db, world["specialist"], clock.now() - timedelta(hours=2))
    response = await _book(client, world["ha"], past.id, world["pa"])
    assert response.status == 409 and (await response.json())["error"]["code"] == "slot_in_past"
    assert await _all_bookings(db) == 0


def _ins(value: str) -> str | None:
    """The INS of a resident as a form gives it (blank: none); bookings name the resident."""
    body = {"reference": "R1", **({"ins": {"value": value}} if value else {})}
    found = parse(patients.ResidentInput, body, strict=False).ins
    return found.value if found else None


async def test_valid_ins_is_accepted_and_a_wrong_key_refused() -> None:
    nir = "1840775123456"
    key = f"{97 - int(nir) % 97:02d}"
    assert _ins(nir + key) == nir + key
    corsica = "255082A004005"
    corsica_key = f"{97 - int(corsica.replace('2A', '19')) % 97:02d}"
    assert _ins(corsica + corsica_key) == corsica + corsica_key
    assert _ins("") is None
    with pytest.raises(ValidationError, match="clé de contrôle"):
        _ins(nir + f"{(int(key) + 1) % 97:02d}")


async def test_search_is_earliest_first_filtered_and_paginated(
    client: TestClient, db: Database, world: dict[str, Any], clock: FrozenClock
) -> None:
    cardiology = await make_specialty(db, "cardiologie")
    cardio = await make_user(db, Role.SPECIALIST, specialty=cardiology, departement="25")
    base = world["slots"][0].starts_at
    expert = await make_slot(
        db, cardio, base + timedelta(minutes=15), act_types=(ActType.TELEEXPERTISE,)
    )
    headers = world["ha"]

    every = await (await client.get("/api/slots", params={"limit": "100"}, headers=headers)).json()
    starts = [s["starts_at"] for s in every["items"]]
    assert starts == sorted(starts) and len(starts) == 7

    derm = await (await client.get("/api/slots?specialty=dermatologie", headers=headers)).json()
    assert len(derm["items"]) == 6 and expert.id not in [s["id"] for s in derm["items"]]
    by_act = await (await client.get("/api/slots?act_type=teleexpertise", headers=headers)).json()
    assert [s["id"] for s in by_act["items"]] == [expert.id]
    by_dep = await (await client.get("/api/slots?departement=25", headers=headers)).json()
    assert [s["id"] for s in by_dep["items"]] == [expert.id]

    seen: list[int] = []
    cursor = None
    while True:
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        page = await (await client.get("/api/slots", params=params, headers=headers)).json()
        seen += [s["id"] for s in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [s["id"] for s in every["items"]]


@pytest.mark.parametrize(
    "query",
    [
        "from=2026-13-01",
        "from=yesterday",
        "to=0.5",  # lax parsing would read a Unix time
        "limit=0",
        "limit=abc",
        "cursor=%%%",
        "specialty=magie",
        "act_type=x",
    ],
)
async def test_bad_search_parameters_get_a_422_naming_the_field(
    client: TestClient, world: dict[str, Any], query: str
) -> None:
    response = await client.get(f"/api/slots?{query}", headers=world["ha"])
    assert response.status == 422, query
    body = await response.json()
    assert body["error"]["code"] == ("invalid_cursor" if "cursor" in query else "invalid")
    assert body["error"]["field"] == query.split("=")[0], body


async def test_an_empty_search_window_finds_nothing(
    client: TestClient, world: dict[str, Any]
) -> None:
    """`to` at or before `from` is a window with no slot in it, not a malformed request."""
    response = await client.get("/api/slots?to=2020-01-01", headers=world["ha"])
    assert response.status == 200
    assert (await response.json()) == {"items": [], "next_cursor": None}


async def test_postgresql_refuses_overlapping_open_slots(pg_db: Database) -> None:
    specialist = await make_user(pg_db, Role.SPECIALIST)
    first = await make_slot(pg_db, specialist, datetime(2030, 1, 7, 8, tzinfo=UTC))
    with pytest.raises(IntegrityError, match="ex_slots_no_overlap"):
        await make_slot(pg_db, specialist, first.starts_at + timedelta(minutes=10))
    # Back to back is fine, and so is the same time for another specialist.
    await make_slot(pg_db, specialist, first.ends_at)
    await make_slot(pg_db, await make_user(pg_db, Role.SPECIALIST), first.starts_at)
    async with pg_db.read() as session:
        assert await session.scalar(select(func.count()).select_from(Slot)) == 3
