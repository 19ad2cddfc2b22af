"""Request forms as they are used: versioned, rendered, answered, enforced.

The suite's instant (factories.NOW); slots tomorrow morning."""

from __future__ import annotations

import io
import uuid
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient
from PIL import Image
from sqlalchemy import func, select

from scheduling.clock import FrozenClock
from telmi.db import Database
from telmi.models import AuditEvent, Booking, RequestForm, Role, Specialty

from .factories import (
    bearer,
    login,
    make_resident,
    make_slot,
    make_specialty,
    make_user,
    page_csrf,
)

DERMATOLOGY = {
    "lesion_site": "Avant-bras gauche",
    "duration": "2 mois",
    "evolution": "Extension",
    "pruritus": True,
    "bleeding": False,
}


@pytest.fixture
async def world(db: Database, clock: FrozenClock) -> dict[str, Any]:
    derm = await make_specialty(db, "dermatologie")
    staff = await make_user(db, Role.STAFF)
    specialist = await make_user(db, Role.SPECIALIST, specialty=derm)
    admin = await make_user(db, Role.ADMIN)
    tomorrow = clock.now().replace(hour=8, minute=0) + timedelta(days=1)
    slots = [
        await make_slot(db, specialist, tomorrow + timedelta(minutes=30 * i)) for i in range(3)
    ]
    return {
        "staff": staff,
        "admin": admin,
        "specialist": specialist,
        "slots": slots,
        "resident": await make_resident(db, staff),
        "hs": await bearer(db, staff),
        "ha": await bearer(db, admin),
    }


async def _book(client: TestClient, w: dict[str, Any], slot: int, answers: dict[str, Any]) -> Any:
    return await client.post(
        "/api/bookings",
        json={
            "slot_id": w["slots"][slot].id,
            "patient_id": w["resident"].id,
            "act_type": "teleconsultation",
            "answers": answers,
        },
        headers={**w["hs"], "Idempotency-Key": str(uuid.uuid4())},
    )


async def _count(db: Database, model: Any) -> int:
    async with db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_a_booking_stores_its_answers_with_the_version_they_were_checked_against(
    client: TestClient, db: Database, world: dict[str, Any]
) -> None:
    shown = await client.get(
        "/api/forms", params={"specialty": "dermatologie", "act_type": "teleconsultation"},
        headers=world["hs"],
    )  # fmt: skip
    assert shown.status == 200
    assert (await shown.json())["version"] == 0  # the built-in, not saved yet
    booked = await _book(client, world, 0, DERMATOLOGY)
    assert booked.status == 201, await booked.text()
    assert (await booked.json())["answers"] == DERMATOLOGY
    first = await _count(db, RequestForm)
    assert first == 1  # the built-in became version 1 when an answer needed it

    fields = [
        {"name": "lesion_site", "label": "Localisation", "kind": "text", "required": True},
        {"name": "size_mm", "label": "Taille", "kind": "number", "minimum": 0, "maximum": 300},
    ]
    defined = await client.post(
        "/api/forms",
        json={"specialty": "dermatologie", "act_type": "teleconsultation",
              "definition": {"fields": fields, "min_photos": 0}},
        headers=world["ha"],
    )  # fmt: skip
    assert defined.status == 201, await defined.text()
    assert (await defined.json())["version"] == 2
    again = await _book(client, world, 1, {"lesion_site": "Dos", "size_mm": 12})
    assert again.status == 201, await again.text()
    async with db.read() as session:
        versions = (
            await session.execute(
                select(Booking.id, RequestForm.version)
                .join(RequestForm, RequestForm.id == Booking.form_id)
                .order_by(Booking.id)
            )
        ).all()
    assert [v for _, v in versions] == [1, 2]  # the first booking keeps its version


async def test_answers_outside_the_form_are_refused_and_nothing_is_written(
    client: TestClient, db: Database, world: dict[str, Any]
) -> None:
    before = await _count(db, Booking)
    for answers, field in (
        ({**DERMATOLOGY, "evolution": "Aggravation"}, "answers.evolution"),
        ({**DERMATOLOGY, "pruritus": "oui"}, "answers.pruritus"),
        ({**DERMATOLOGY, "colour": "rouge"}, "answers.colour"),
    ):
        refused = await _book(client, world, 0, answers)
        assert refused.status == 422, answers
        assert (await refused.json())["error"]["field"] == field
    assert await _count(db, Booking) == before


async def test_only_admins_define_forms_and_bad_definitions_name_their_field(
    client: TestClient, world: dict[str, Any]
) -> None:
    body = {
        "specialty": "dermatologie",
        "act_type": "teleexpertise",
        "definition": {"fields": [{"name": "site", "label": "Site", "kind": "choice"}]},
    }
    assert (await client.post("/api/forms", json=body, headers=world["hs"])).status == 403
    refused = await client.post("/api/forms", json=body, headers=world["ha"])
    assert refused.status == 422
    assert (await refused.json())["error"]["field"].startswith("definition.fields[0]")


async def test_an_expertise_request_is_sent_only_with_the_photos_its_form_asks_for(
    client: TestClient, db: Database, world: dict[str, Any]
) -> None:
    created = await client.post(
        "/api/expertise",
        json={"specialty": "dermatologie", "patient_id": world["resident"].id,
              "question": "Lésion suspecte ?", "answers": DERMATOLOGY,
              "consent": {"given_by": "resident", "method": "oral"}},
        headers=world["hs"],
    )  # fmt: skip
    assert created.status == 201, await created.text()
    request_id = (await created.json())["id"]
    short = await client.post(f"/api/expertise/{request_id}/send", headers=world["hs"])
    assert short.status == 422
    error = (await short.json())["error"]
    assert error["field"] == "photos" and "2 photos" in error["message"]
    for n in range(2):
        image = io.BytesIO()
        Image.new("RGB", (64, 48), (200, 40 * n, 90)).save(image, "PNG")
        form = FormData()
        form.add_field("photos", image.getvalue(), filename=f"p{n}.png", content_type="image/png")
        uploaded = await client.post(
            f"/api/expertise/{request_id}/photos", data=form, headers=world["hs"]
        )
        assert uploaded.status == 201, await uploaded.text()
    sent = await client.post(f"/api/expertise/{request_id}/send", headers=world["hs"])
    assert sent.status == 200, await sent.text()

    # Reading the request and one of its photos: each an access event naming the resident.
    thread = await (await client.get(f"/api/expertise/{request_id}", headers=world["hs"])).json()
    photo = thread["photos"][0]["id"]
    assert (await client.get(f"/api/expertise/photos/{photo}", headers=world["hs"])).status == 200
    async with db.read() as session:
        named = set(
            await session.scalars(
                select(AuditEvent.action).where(AuditEvent.patient_id == world["resident"].id)
            )
        )
    assert {"expertise.read", "expertise.photo_viewed", "consent.recorded"} <= named


async def test_a_required_expertise_answer_is_missing_names_its_field(
    client: TestClient, world: dict[str, Any]
) -> None:
    created = await client.post(
        "/api/expertise",
        json={"specialty": "dermatologie", "patient_id": world["resident"].id,
              "question": "Lésion ?", "answers": {"duration": "2 mois"}},
        headers=world["hs"],
    )  # fmt: skip
    assert created.status == 422
    assert (await created.json())["error"]["field"] == "answers.lesion_site"


async def test_the_admin_edits_a_form_in_rows_and_saves_a_new_version(
    client: TestClient, db: Database, world: dict[str, Any]
) -> None:
    await login(client, world["admin"].email)
    listing = await client.get("/admin/formulaires")
    assert listing.status == 200
    assert "Dermatologie" in await listing.text() or "dermatologie" in await listing.text()
    async with db.read() as session:
        derm = await session.scalar(select(Specialty.id).where(Specialty.code == "dermatologie"))
    path = f"/admin/formulaires/{derm}?acte=teleexpertise"
    page = await client.get(path)
    html = await page.text()
    assert page.status == 200 and "Localisation de la lésion" in html
    token = await page_csrf(client, path)
    bad = {"csrf_token": token, "rows": "1", "min_photos": "1",
           "f0_name": "site", "f0_label": "Site", "f0_kind": "choice", "f0_choices": ""}  # fmt: skip
    refused = await client.post(path, data=bad, allow_redirects=False)
    assert refused.status == 422
    assert (
        'id="f0_choices"' in await refused.text() and 'aria-invalid="true"' in await refused.text()
    )
    assert await _count(db, RequestForm) == 0
    good = bad | {"f0_choices": "Visage\nTronc\nMembres", "f0_required": "on"}
    saved = await client.post(path, data=good, allow_redirects=False)
    assert saved.status == 303
    shown = await client.get(
        "/api/forms", params={"specialty": "dermatologie", "act_type": "teleexpertise"},
        headers=world["ha"],
    )  # fmt: skip
    form = await shown.json()
    assert form["version"] == 1 and form["definition"]["min_photos"] == 1
    assert form["definition"]["fields"][0]["choices"] == ["Visage", "Tronc", "Membres"]


async def test_staff_cannot_open_the_form_editor(client: TestClient, world: dict[str, Any]) -> None:
    await login(client, world["staff"].email)
    page = await client.get("/admin/formulaires", allow_redirects=False)
    assert page.status in (403, 404)
