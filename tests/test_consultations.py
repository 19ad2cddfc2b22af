"""Consultations over the real app: join tokens, the room over a socket, guests, the end."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from scheduling.clock import FrozenClock
from telmi import consultations, jobs
from telmi.db import Database
from telmi.keys import SETTINGS
from telmi.models import Act, Booking, BookingStatus, Consultation, Invite, Presence, Role
from telmi.web import rooms

from .factories import (
    bearer,
    make_facility,
    make_resident,
    make_slot,
    make_user,
    page_csrf,
    record_consent,
)

ORIGIN = "http://127.0.0.1:8080"  # the test settings' public URL


@pytest.fixture
async def visit(client: TestClient, db: Database, clock: FrozenClock) -> dict[str, Any]:
    """A confirmed booking of EHPAD A with a dermatologist, starting in ten minutes, for a
    resident whose consent the nurse has recorded (the specialist may start the act)."""
    a, b = await make_facility(db, name="EHPAD A"), await make_facility(db, name="EHPAD B")
    staff = await make_user(db, Role.STAFF, facility=a)
    specialist = await make_user(db, Role.SPECIALIST)
    start = clock.now() + timedelta(minutes=10)
    slot = await make_slot(db, specialist, start, minutes=30)
    hs, ha = await bearer(db, specialist), await bearer(db, staff)
    resident = await make_resident(db, staff, reference="RES-7")
    response = await client.post(
        "/api/bookings",
        json={
            "slot_id": slot.id,
            "patient_id": resident.id,
            "act_type": "teleconsultation",
            "reason": "Suivi",
        },
        headers={**ha, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert response.status == 201
    booking_id = (await response.json())["id"]
    agreed = await record_consent(db, staff, booking_id)
    return {
        "booking_id": booking_id,
        "consent_id": agreed.id,
        "hs": hs,
        "ha": ha,
        "hb": await bearer(db, await make_user(db, Role.STAFF, facility=b)),
        "hother": await bearer(db, await make_user(db, Role.SPECIALIST)),
        "hregional": await bearer(db, await make_user(db, Role.REGIONAL)),
        "specialist": specialist,
        "start": start,
    }


async def _ticket(client: TestClient, headers: dict[str, str], booking_id: int) -> Any:
    return await client.post(f"/api/bookings/{booking_id}/join", headers=headers)


async def _enter(client: TestClient, ticket: dict[str, Any]) -> aiohttp.ClientWebSocketResponse:
    ws = await client.ws_connect(ticket["ws_path"], origin=ORIGIN)
    await ws.send_str(json.dumps({"type": "join", "token": ticket["token"]}))
    return ws


async def _next(ws: aiohttp.ClientWebSocketResponse, kind: str) -> dict[str, Any]:
    while True:
        msg = await ws.receive(timeout=5)
        assert msg.type == WSMsgType.TEXT, (msg.type, msg.data)
        frame = json.loads(msg.data)
        if frame["type"] == kind:
            return frame  # type: ignore[no-any-return]


async def test_specialist_and_facility_staff_get_join_tokens_others_do_not(
    client: TestClient, visit: dict[str, Any]
) -> None:
    for who in ("hs", "ha"):
        response = await _ticket(client, visit[who], visit["booking_id"])
        assert response.status == 200
        body = await response.json()
        assert (
            body["ws_path"] == f"/ws/rooms/{body['room_id']}"
            and body["token"] not in body["ws_path"]
        )
    for who in ("hb", "hother"):  # not theirs: as if it did not exist
        assert (await _ticket(client, visit[who], visit["booking_id"])).status == 404, who
    assert (await _ticket(client, visit["hregional"], visit["booking_id"])).status == 403


async def test_the_room_opens_fifteen_minutes_before_and_closes_at_the_end(
    client: TestClient, visit: dict[str, Any], clock: FrozenClock
) -> None:
    clock.advance(timedelta(minutes=-10))  # 20 minutes before the slot
    early = await _ticket(client, visit["hs"], visit["booking_id"])
    assert early.status == 409 and (await early.json())["error"]["code"] == "room_not_open"
    clock.advance(timedelta(minutes=10 + 10 + 30))  # the slot is over
    late = await _ticket(client, visit["ha"], visit["booking_id"])
    assert late.status == 409 and (await late.json())["error"]["code"] == "room_closed"


async def test_both_sides_meet_and_the_consultation_starts(
    client: TestClient, db: Database, visit: dict[str, Any]
) -> None:
    doc = await _enter(
        client, await (await _ticket(client, visit["hs"], visit["booking_id"])).json()
    )
    assert (await _next(doc, "joined"))["role"] == "specialist"
    nurse = await _enter(
        client, await (await _ticket(client, visit["ha"], visit["booking_id"])).json()
    )
    await _next(nurse, "joined")
    await _next(doc, "participant-joined")
    async with db.read() as session:
        consultation = await session.scalar(select(Consultation))
        presences = await session.scalar(select(func.count()).select_from(Presence))
    assert consultation is not None and consultation.started_at is not None
    assert consultation.status.value == "in_progress" and presences == 2


async def test_expired_and_foreign_tokens_are_refused_on_the_socket(
    client: TestClient, db: Database, visit: dict[str, Any], clock: FrozenClock
) -> None:
    ticket = await (await _ticket(client, visit["ha"], visit["booking_id"])).json()
    clock.advance(timedelta(minutes=3))  # tokens live two minutes
    ws = await _enter(client, ticket)
    assert (await _next(ws, "error"))["code"] == "token_expired"
    fresh = await (await _ticket(client, visit["ha"], visit["booking_id"])).json()
    ws = await client.ws_connect("/ws/rooms/another-room", origin=ORIGIN)
    await ws.send_str(json.dumps({"type": "join", "token": fresh["token"]}))
    assert (await _next(ws, "error"))["code"] == "unauthorized"
    forged = fresh["token"][:-3] + ("AAA" if not fresh["token"].endswith("AAA") else "BBB")
    ws = await _enter(client, {**fresh, "token": forged})
    assert (await _next(ws, "error"))["code"] == "unauthorized"


async def test_a_guest_invitation_works_once_and_the_guest_waits_to_be_admitted(
    client: TestClient, visit: dict[str, Any]
) -> None:
    created = await client.post(
        f"/api/bookings/{visit['booking_id']}/invites",
        json={"label": "Dr Traitant"},
        headers=visit["ha"],
    )
    assert created.status == 201
    url = (await created.json())["url"]
    assert "/invitation#" in url
    raw = url.split("#", 1)[1]
    csrf = await page_csrf(client, "/login")
    redeemed = await client.post(
        "/api/invites/redeem", json={"token": raw}, headers={"X-CSRF-Token": csrf}
    )
    assert redeemed.status == 200, await redeemed.text()
    guest_ticket = await redeemed.json()
    again = await client.post(
        "/api/invites/redeem", json={"token": raw}, headers={"X-CSRF-Token": csrf}
    )
    assert again.status == 403 and (await again.json())["error"]["code"] == "invite_invalid"

    doc = await _enter(
        client, await (await _ticket(client, visit["hs"], visit["booking_id"])).json()
    )
    await _next(doc, "joined")
    guest = await _enter(client, guest_ticket)
    waiting = await _next(guest, "waiting")
    knock = await _next(doc, "knock")
    assert knock["name"] == "Dr Traitant" and knock["role"] == "guest"
    await doc.send_str(json.dumps({"type": "admit", "participant_id": waiting["participant_id"]}))
    assert (await _next(guest, "joined"))["participant_id"] == waiting["participant_id"]


async def test_invitation_and_redemption_bodies_are_checked_before_anything_is_spent(
    client: TestClient, db: Database, visit: dict[str, Any]
) -> None:
    path = f"/api/bookings/{visit['booking_id']}/invites"
    for body, field in (
        ({}, "label"),
        ({"label": "   "}, "label"),
        ({"label": "x" * 101}, "label"),
        ({"label": "Dr Traitant", "email": "dr@example.org"}, "email"),
    ):
        refused = await client.post(path, json=body, headers=visit["ha"])
        assert refused.status == 422, body
        assert (await refused.json())["error"]["field"] == field
    csrf = await page_csrf(client, "/login")
    redeem = {"X-CSRF-Token": csrf}
    for body in ({}, {"token": 42}, {"token": "x" * 30, "guest": "moi"}):
        malformed = await client.post("/api/invites/redeem", json=body, headers=redeem)
        assert malformed.status == 422, body
    for token in ("short", "x" * 30, "x" * 101):  # well formed, but no invitation
        unknown = await client.post("/api/invites/redeem", json={"token": token}, headers=redeem)
        assert unknown.status == 403 and (await unknown.json())["error"]["code"] == "invite_invalid"
    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(Invite)) == 0


async def test_the_end_body_is_checked_and_a_bad_one_ends_nothing(
    client: TestClient, db: Database, visit: dict[str, Any]
) -> None:
    ticket = await (await _ticket(client, visit["hs"], visit["booking_id"])).json()
    path = f"/api/consultations/{ticket['consultation_id']}/end"
    for body, field in (
        # Consent is recorded before the act, not ticked at its end: no such field.
        ({"patient_consent": True}, "patient_consent"),
        ({"outcome": "x" * 501}, "outcome"),
        ({"incidents": "x" * 501}, "incidents"),
        ({"note": "?"}, "note"),
    ):
        refused = await client.post(path, json=body, headers=visit["hs"])
        assert refused.status == 422, body
        assert (await refused.json())["error"]["field"] == field
    async with db.read() as session:
        status = await session.scalar(select(Consultation.status))
    assert status is not None and status.value == "scheduled"
    ended = await client.post(path, json={"outcome": "  Reporté  "}, headers=visit["hs"])
    assert ended.status == 200 and (await ended.json())["outcome"] == "Reporté"


async def test_ending_logs_one_act_closes_the_room_and_a_second_end_logs_nothing(
    client: TestClient, db: Database, visit: dict[str, Any], clock: FrozenClock
) -> None:
    doc_ticket = await (await _ticket(client, visit["hs"], visit["booking_id"])).json()
    doc = await _enter(client, doc_ticket)
    await _next(doc, "joined")
    nurse = await _enter(
        client, await (await _ticket(client, visit["ha"], visit["booking_id"])).json()
    )
    await _next(nurse, "joined")
    clock.advance(timedelta(minutes=25))
    path = f"/api/consultations/{doc_ticket['consultation_id']}/end"
    assert (await client.post(path, json={}, headers=visit["ha"])).status == 403
    assert (await client.post(path, json={"outcome": 5}, headers=visit["hs"])).status == 422
    first = await client.post(
        path,
        json={"outcome": "Traitement adapté", "incidents": "écho du son"},
        headers=visit["hs"],
    )
    assert first.status == 200 and (await first.json())["status"] == "ended"
    assert (await _next(nurse, "error"))["code"] == "room_closed"
    second = await client.post(path, json={}, headers=visit["hs"])
    assert second.status == 200
    async with db.read() as session:
        logged = list(await session.scalars(select(Act)))
        status = await session.scalar(
            select(Booking.status).where(Booking.id == visit["booking_id"])
        )
    assert len(logged) == 1
    act = logged[0]
    assert act.source_key == f"consultation:{doc_ticket['consultation_id']}"
    assert act.act_type.value == "teleconsultation" and act.specialty_code == "dermatologie"
    assert act.duration_seconds == 25 * 60 and act.patient_consent is True
    assert act.consent_id == visit["consent_id"]  # the consent recorded before the act
    assert act.incidents == "écho du son"
    assert status is BookingStatus.COMPLETED
    late = await _ticket(client, visit["ha"], visit["booking_id"])
    assert late.status == 409


async def test_a_consultation_nobody_attended_ends_without_an_act(
    client: TestClient, db: Database, visit: dict[str, Any]
) -> None:
    ticket = await (await _ticket(client, visit["hs"], visit["booking_id"])).json()
    ended = await client.post(
        f"/api/consultations/{ticket['consultation_id']}/end",
        json={},
        headers=visit["hs"],
    )
    assert ended.status == 200
    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(Act)) == 0


async def test_a_consultation_left_open_is_closed_after_its_slot_with_its_act(
    client: TestClient, db: Database, visit: dict[str, Any], clock: FrozenClock, settings: Any
) -> None:
    doc = await _enter(
        client, await (await _ticket(client, visit["hs"], visit["booking_id"])).json()
    )
    await _next(doc, "joined")
    nurse = await _enter(
        client, await (await _ticket(client, visit["ha"], visit["booking_id"])).json()
    )
    await _next(nurse, "joined")
    kwargs = {"grace_minutes": 30, "tz": settings.tz, "vault": settings.vault}
    assert (
        await consultations.close_overdue(db, now=clock.now() + timedelta(minutes=45), **kwargs)
        == []
    )
    closed = await consultations.close_overdue(
        db, now=clock.now() + timedelta(minutes=75), **kwargs
    )
    assert len(closed) == 1
    assert (
        await consultations.close_overdue(db, now=clock.now() + timedelta(minutes=80), **kwargs)
        == []
    )
    async with db.read() as session:
        act = await session.scalar(select(Act))
    assert act is not None and "automatique" in act.incidents
    # Closed by the job, the act still carries the consent the facility recorded before it.
    assert act.patient_consent is True and act.consent_id == visit["consent_id"]


async def test_the_job_ends_consultations_left_open_and_their_rooms_close(
    client: TestClient, db: Database, visit: dict[str, Any], clock: FrozenClock
) -> None:
    doc = await _enter(
        client, await (await _ticket(client, visit["hs"], visit["booking_id"])).json()
    )
    await _next(doc, "joined")
    nurse = await _enter(
        client, await (await _ticket(client, visit["ha"], visit["booking_id"])).json()
    )
    await _next(nurse, "joined")
    clock.advance(timedelta(minutes=10 + 30 + 31))  # the slot, then the 30-minute grace
    settings = client.app[SETTINGS]
    await jobs.close_consultations(db, clock, settings)  # the scheduler's job ends it...
    sweeper = asyncio.create_task(
        rooms._close_ended_rooms(client.app, every=0.05)
    )  # ...rooms close
    try:
        assert (await _next(nurse, "error"))["code"] == "room_closed"
        assert (await _next(doc, "error"))["code"] == "room_closed"
    finally:
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper
    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(Act)) == 1
