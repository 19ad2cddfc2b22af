"""Input an attacker would send: each gets its status and the error shape, and changes nothing.

The cases were found probing the server from outside (issue « One front door »): each used to
be a 500, an open redirect, a foreign lock-out or an existence leak.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from telmi.app import create_app
from telmi.db import Database
from telmi.models import Booking, ExpertiseRequest, Role
from telmi.settings import Settings
from telmi.web.http import MAX_INT_DIGITS

from .factories import (
    PASSWORD,
    bearer,
    csrf_from,
    login,
    make_facility,
    make_resident,
    make_slot,
    make_specialty,
    make_user,
)

EXPERTISE_DRAFT = {  # with the fields the dermatology request form requires
    "specialty": "dermatologie",
    "question": "Q ?",
    "answers": {"lesion_site": "Main", "duration": "1 semaine", "evolution": "Stable"},
}
TOO_BIG = ["2147483648", "9223372036854775808", "99999999999999999999999"]  # 2^31, 2^63, more


@pytest.fixture
async def world(db: Database, clock: Any) -> dict[str, Any]:
    facility = await make_facility(db)
    specialty = await make_specialty(db, "dermatologie")
    nurse = await make_user(db, Role.STAFF, facility=facility)
    doctor = await make_user(db, Role.SPECIALIST, specialty=specialty)
    admin = await make_user(db, Role.ADMIN)
    slot = await make_slot(db, doctor, clock.now() + timedelta(days=1))
    return {
        "nurse": nurse,
        "patient": (await make_resident(db, nurse)).id,
        "slot": slot,
        "h_nurse": await bearer(db, nurse),
        "h_doctor": await bearer(db, doctor),
        "h_admin": await bearer(db, admin),
    }


async def _count(db: Database, model: Any) -> int:
    async with db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def _error(response: Any, status: int) -> dict[str, Any]:
    assert response.status == status, (response.url, await response.text())
    error: dict[str, Any] = (await response.json())["error"]
    assert set(error) >= {"code", "message"}
    return error


# --- redirects --------------------------------------------------------------------------------


@pytest.mark.parametrize("sneaky", ["/%09/evil.example", "/%0d/evil.example", "/%0a/evil.example"])
async def test_login_never_redirects_off_site(
    client: TestClient, db: Database, world: dict[str, Any], sneaky: str
) -> None:
    """Browsers drop tab, CR and LF from URLs: `/<TAB>/evil.example` is `//evil.example`."""
    page = await client.get(f"/login?next={sneaky}")
    form = {
        "email": world["nurse"].email,
        "password": PASSWORD,
        "next": sneaky.replace("%09", "\t"),
    }
    form["next"] = form["next"].replace("%0d", "\r").replace("%0a", "\n")
    form["csrf_token"] = csrf_from(await page.text())
    submitted = await client.post("/login", data=form, allow_redirects=False)
    assert submitted.status == 303 and submitted.headers["Location"] == "/"
    signed_in = await client.get(f"/login?next={sneaky}", allow_redirects=False)
    assert signed_in.status == 303 and signed_in.headers["Location"] == "/"
    kept = await client.get("/login?next=/rendez-vous?ok=1", allow_redirects=False)
    assert kept.headers["Location"] == "/rendez-vous?ok=1"  # a same-site path survives


# --- ids ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("big", TOO_BIG)
async def test_ids_no_row_can_have_are_404_in_paths_and_422_in_bodies(
    client: TestClient, db: Database, world: dict[str, Any], big: str
) -> None:
    nurse, doctor, admin = world["h_nurse"], world["h_doctor"], world["h_admin"]
    for method, path, headers in (
        ("GET", f"/api/bookings/{big}", nurse),
        ("POST", f"/api/bookings/{big}/cancel", nurse),
        ("POST", f"/api/bookings/{big}/join", nurse),
        ("POST", f"/api/slots/{big}/hold", nurse),
        ("GET", f"/api/expertise/{big}", nurse),
        ("GET", f"/api/expertise/photos/{big}", nurse),
        ("DELETE", f"/api/tokens/{big}", nurse),
        ("PUT", f"/api/availability/rules/{big}", doctor),
        ("POST", f"/api/acts/{big}/cancel", admin),
        ("GET", f"/rendez-vous/{big}/deplacer", nurse),
    ):
        response = await client.request(method, path, headers=headers, json={"reason": "x"})
        assert response.status == 404, (method, path, response.status)
    listed = await client.get(f"/api/availability/rules?specialist_id={big}", headers=admin)
    assert (await _error(listed, 422))["field"] == "specialist_id"
    booked = await client.post(
        "/api/bookings",
        json={"slot_id": int(big), "act_type": "teleconsultation", "patient_id": world["patient"]},
        headers={**nurse, "Idempotency-Key": str(uuid.uuid4())},
    )
    if len(big) > MAX_INT_DIGITS:  # refused while parsing, before any field is read
        assert (await _error(booked, 400))["code"] == "malformed_json"
        return
    assert (await _error(booked, 422))["field"] == "slot_id"
    asked = await client.post(
        "/api/expertise",
        json={**EXPERTISE_DRAFT, "patient_id": world["patient"], "specialist_id": int(big)},
        headers=nurse,
    )
    assert (await _error(asked, 422))["field"] == "specialist_id"
    assert await _count(db, Booking) == await _count(db, ExpertiseRequest) == 0


# --- JSON ---------------------------------------------------------------------------------------


async def test_json_nested_without_end_or_with_endless_integers_is_a_400(
    client: TestClient, db: Database, world: dict[str, Any]
) -> None:
    headers = {
        **world["h_nurse"],
        "Content-Type": "application/json",
        "Idempotency-Key": str(uuid.uuid4()),
    }
    slot, patient = world["slot"].id, world["patient"]
    for raw in (
        "[" * 100_000 + "]" * 100_000,
        '{"a":' * 50 + "1" + "}" * 50,
        '{"slot_id": '
        + "7" * 5_000
        + f', "act_type": "teleconsultation", "patient_id": {patient}}}',
        '{"slot_id": ' + str(slot) + f', "act_type": "teleconsultation", "patient_id": {patient}, '
        '"x": ' + "[" * 40 + "]" * 40 + "}",
    ):
        response = await client.post("/api/bookings", data=raw, headers=headers)
        assert (await _error(response, 400))["code"] == "malformed_json", raw[:40]
    assert await _count(db, Booking) == 0


@pytest.mark.parametrize(
    ("escaped", "what"), [("a\\ud800b", "demi-paire"), ("a\\u0000b", "caractère nul")]
)
async def test_text_no_database_can_store_is_a_422_naming_its_field(
    client: TestClient, db: Database, world: dict[str, Any], escaped: str, what: str
) -> None:
    headers = {
        **world["h_nurse"],
        "Content-Type": "application/json",
        "Idempotency-Key": str(uuid.uuid4()),
    }
    booking = (
        f'{{"slot_id": {world["slot"].id}, "act_type": "teleconsultation", '
        f'"patient_id": {world["patient"]}, "reason": "{escaped}"}}'
    )
    error = await _error(await client.post("/api/bookings", data=booking, headers=headers), 422)
    assert error["field"] == "reason" and what in error["message"]
    question = (
        f'{{"specialty": "dermatologie", "patient_id": {world["patient"]}, '
        f'"question": "{escaped}"}}'
    )
    asked = await client.post("/api/expertise", data=question, headers=headers)
    assert (await _error(asked, 422))["field"] == "question"
    assert await _count(db, Booking) == await _count(db, ExpertiseRequest) == 0


async def test_a_nul_in_a_form_field_is_refused_before_the_database(
    client: TestClient, db: Database, world: dict[str, Any]
) -> None:
    await login(client, world["nurse"].email)
    page = await client.get(f"/rendez-vous/nouveau/{world['slot'].id}")
    response = await client.post(
        f"/rendez-vous/nouveau/{world['slot'].id}",
        data={
            "csrf_token": csrf_from(await page.text()),
            "act_type": "teleconsultation",
            "patient_id": str(world["patient"]),
            "reason": "a\x00b",
        },
        allow_redirects=False,
    )
    assert response.status == 422 and "caractère nul" in await response.text()
    assert await _count(db, Booking) == 0


# --- multipart ----------------------------------------------------------------------------------


async def test_a_malformed_multipart_header_is_a_400(
    client: TestClient, db: Database, world: dict[str, Any]
) -> None:
    body = {**EXPERTISE_DRAFT, "patient_id": world["patient"]}
    draft = await client.post("/api/expertise", json=body, headers=world["h_nurse"])
    request_id = (await draft.json())["id"]
    body = (
        b"--frontier\r\n"
        b'Content-Disposition: form-data; name="photos"; filename="a.png"\r\n'
        b"this line is no header\r\n\r\n"
        b"\x89PNG\r\n--frontier--\r\n"
    )
    response = await client.post(
        f"/api/expertise/{request_id}/photos",
        data=body,
        headers={**world["h_nurse"], "Content-Type": "multipart/form-data; boundary=frontier"},
    )
    await _error(response, 400)
    shown = await (
        await client.get(f"/api/expertise/{request_id}", headers=world["h_nurse"])
    ).json()
    assert shown["photos"] == []


# --- the signaling socket -----------------------------------------------------------------------


async def test_a_foreign_origin_gets_the_error_shape_before_the_upgrade(
    client: TestClient,
) -> None:
    response = await client.get(
        "/ws/rooms/abc",
        headers={
            "Origin": "http://evil.example",
            "Connection": "Upgrade",
            "Upgrade": "websocket",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        },
    )
    assert (await _error(response, 403))["code"] == "origin_not_allowed"


# --- logins -------------------------------------------------------------------------------------


async def _login_from(client: TestClient, address: str, email: str, password: str) -> int:
    page = await client.get("/login", headers={"X-Forwarded-For": address})
    response = await client.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": csrf_from(await page.text())},
        headers={"X-Forwarded-For": address},
        allow_redirects=False,
    )
    client.session.cookie_jar.clear()
    return response.status


async def test_wrong_passwords_from_elsewhere_do_not_lock_the_nurse_out(
    aiohttp_client: Any, settings: Settings, clock: Any, db: Database, world: dict[str, Any]
) -> None:
    app = create_app(settings.replace(trust_proxy=True, login_max_failures_account=12), clock=clock)
    client = await aiohttp_client(app)
    nurse = world["nurse"].email
    for _ in range(5):
        assert await _login_from(client, "203.0.113.9", nurse, "a wrong guess!") == 401
    assert await _login_from(client, "203.0.113.9", nurse, PASSWORD) == 429  # the guesser
    assert await _login_from(client, "198.51.100.7", nurse, PASSWORD) == 303  # the nurse
    for n in range(7):  # a spread-out attack reaches the account's own, far higher, limit
        assert await _login_from(client, f"192.0.2.{n}", nurse, "a wrong guess!") == 401
    assert await _login_from(client, "198.51.100.8", nurse, PASSWORD) == 429
