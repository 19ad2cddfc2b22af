"""Residents and consent over the real app: the JSON API and the « Résidents » pages, who
may see a resident, the access events of every read, and consent before the act (the
specialist's join, the sending of a tele-expertise request)."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from scheduling.clock import FrozenClock
from telmi import booking
from telmi.context import Context
from telmi.db import Database
from telmi.demo import rpps_for
from telmi.models import (
    AuditEvent,
    Booking,
    ConsentRecord,
    IdentityDocument,
    IdentityStatus,
    Patient,
    Role,
)
from telmi.patients import NIA_OID, NIR_OID

from .factories import (
    NOW,
    bearer,
    ins_with_key,
    login,
    make_facility,
    make_resident,
    make_slot,
    make_specialty,
    make_user,
    page_csrf,
)

INS = ins_with_key("2360421231012")
WRONG_KEY_INS = INS[:-2] + f"{(int(INS[-2:]) + 1) % 97:02d}"
RPPS = rpps_for(4242)
WRONG_RPPS = RPPS[:-1] + str((int(RPPS[-1]) + 1) % 10)
QUALIFIED: dict[str, Any] = {
    "reference": "CH-2024-117",
    "birth_name": "MARTIN",
    "first_names": "Jeanne Marie",
    "used_name": "DUPONT",
    "sex": "F",
    "birth_date": "1936-04-12",
    "birthplace": "21231",
    "ins": {"value": INS, "oid": NIR_OID},
    "identity_status": "qualified",
    "identity_document": "identity_card",
    "doctor_name": "Dr Paul Durand",
    "doctor_rpps": RPPS,
    "doctor_mail": "paul.durand@medecin.mssante.fr",
}
GIVEN = {"given_by": "resident", "method": "oral"}


@pytest.fixture
async def w(client: TestClient, db: Database) -> SimpleNamespace:
    """Two nursing homes, two rheumatologists (a specialty with no request form), a regional
    user and an admin, each with a bearer token."""
    a = await make_facility(db, name="EHPAD Les Tilleuls")
    b = await make_facility(db, name="EHPAD Les Chênes")
    specialty = await make_specialty(db, "rhumatologie")
    users = {
        "nurse": await make_user(db, Role.STAFF, facility=a),
        "other_nurse": await make_user(db, Role.STAFF, facility=b),
        "doc": await make_user(db, Role.SPECIALIST, specialty=specialty),
        "other_doc": await make_user(db, Role.SPECIALIST, specialty=specialty),
        "regional": await make_user(db, Role.REGIONAL),
        "admin": await make_user(db, Role.ADMIN),
    }
    headers = {name: await bearer(db, user) for name, user in users.items()}
    return SimpleNamespace(a=a, b=b, h=headers, **users)


async def _qualified(db: Database, staff: Any) -> Any:
    """make_resident(qualified=True), its statuses given as the enums its strict model wants."""
    return await make_resident(
        db,
        staff,
        qualified=True,
        identity_status=IdentityStatus.QUALIFIED,
        identity_document=IdentityDocument.IDENTITY_CARD,
    )


async def _count(db: Database, model: Any, *where: Any) -> int:
    async with db.read() as session:
        found = await session.scalar(select(func.count()).select_from(model).where(*where))
        return int(found or 0)


async def _events(db: Database, action: str, patient_id: int) -> list[AuditEvent]:
    async with db.read() as session:
        rows = await session.scalars(
            select(AuditEvent).where(
                AuditEvent.action == action, AuditEvent.patient_id == patient_id
            )
        )
        return list(rows)


async def _booking(
    client: TestClient, db: Database, w: SimpleNamespace, patient_id: int, start: datetime
) -> int:
    slot = await make_slot(db, w.doc, start)
    response = await client.post(
        "/api/bookings",
        json={"slot_id": slot.id, "patient_id": patient_id, "act_type": "teleconsultation"},
        headers={**w.h["nurse"], "Idempotency-Key": str(uuid.uuid4())},
    )
    assert response.status == 201, await response.text()
    return int((await response.json())["id"])


async def _sign_in(client: TestClient, user: Any) -> None:
    """Sign in as `user` through the login form, whoever was signed in before."""
    client.session.cookie_jar.clear()
    response = await login(client, user.email)
    assert response.status == 303  # type: ignore[attr-defined]


async def _error(response: Any) -> dict[str, Any]:
    return (await response.json())["error"]  # type: ignore[no-any-return]


# --- the JSON API ---------------------------------------------------------------------------


async def test_staff_create_list_read_and_edit_residents_through_the_api(
    client: TestClient, db: Database, w: SimpleNamespace
) -> None:
    created = await client.post("/api/residents", json=QUALIFIED, headers=w.h["nurse"])
    assert created.status == 201, await created.text()
    body = await created.json()
    assert body["ins"] == {"value": INS, "oid": NIR_OID} and body["facility_id"] == w.a.id
    assert (body["birth_name"], body["identity_status"], body["doctor_rpps"]) == (
        "MARTIN",
        "qualified",
        RPPS,
    )
    other = await client.post(
        "/api/residents", json={"reference": "R-2", "birth_name": "BERNARD"}, headers=w.h["nurse"]
    )
    assert other.status == 201 and (await other.json())["identity_status"] == "provisional"

    listed = await (await client.get("/api/residents", headers=w.h["nurse"])).json()
    assert [r["reference"] for r in listed["items"]] == ["CH-2024-117", "R-2"]  # as recorded
    assert listed["next_cursor"] is None
    found = await (await client.get("/api/residents?q=jeanne", headers=w.h["nurse"])).json()
    assert [r["id"] for r in found["items"]] == [body["id"]]
    assert (await (await client.get("/api/residents", headers=w.h["other_nurse"])).json()) == {
        "items": [],
        "next_cursor": None,
    }

    one = await client.get(f"/api/residents/{body['id']}", headers=w.h["nurse"])
    assert one.status == 200 and (await one.json()) == body
    nia = ins_with_key("7360421231012")
    edit = QUALIFIED | {"used_name": "", "ins": {"value": nia, "oid": NIA_OID}}
    updated = await client.put(f"/api/residents/{body['id']}", json=edit, headers=w.h["nurse"])
    assert updated.status == 200, await updated.text()
    changed = await updated.json()
    assert changed["used_name"] == "" and changed["ins"] == {"value": nia, "oid": NIA_OID}
    assert changed["created_at"] == body["created_at"]

    reads = await _events(db, "patient.read", body["id"])
    assert [(e.actor_id, e.actor_role) for e in reads] == [(w.nurse.id, "staff")]
    assert len(await _events(db, "patient.updated", body["id"])) == 1


BAD_INPUT = [
    ("wrong INS key", {"ins": {"value": WRONG_KEY_INS}}, "ins.value"),
    ("INS of another OID", {"ins": {"value": INS, "oid": "1.2.250.1.213.1.4.2"}}, "ins.oid"),
    ("qualified without the birth name", {"birth_name": ""}, "birth_name"),
    ("qualified without the birthplace", {"birthplace": ""}, "birthplace"),
    ("qualified without the INS", {"ins": None}, "ins"),
    ("qualified without the document checked", {"identity_document": ""}, "identity_document"),
    ("validated without the sex", {"identity_status": "validated", "sex": None}, "sex"),
    ("birth date in the future", {"birth_date": "2026-06-11"}, "birth_date"),
    ("RPPS with a wrong check digit", {"doctor_rpps": WRONG_RPPS}, "doctor_rpps"),
    ("birthplace that is no INSEE code", {"birthplace": "DIJON"}, "birthplace"),
    ("mail that is no address", {"doctor_mail": "durand"}, "doctor_mail"),
    ("a name in the reference", {"reference": "Jeanne Martin"}, "reference"),
    ("missing reference", {"reference": None}, "reference"),
]


@pytest.mark.parametrize(("case", "change", "field"), BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
async def test_bad_input_is_a_422_naming_the_field_and_writes_nothing(
    client: TestClient,
    db: Database,
    w: SimpleNamespace,
    case: str,
    change: dict[str, Any],
    field: str,
) -> None:
    existing = await make_resident(db, w.nurse, reference="R-1")
    bad = {k: v for k, v in (QUALIFIED | change).items() if v is not None}
    before = (await _count(db, Patient), await _count(db, AuditEvent))
    for method, path in (("POST", "/api/residents"), ("PUT", f"/api/residents/{existing.id}")):
        response = await client.request(method, path, json=bad, headers=w.h["nurse"])
        assert response.status == 422, (case, method, await response.text())
        assert (await _error(response))["field"] == field, case
    assert (await _count(db, Patient), await _count(db, AuditEvent)) == before
    async with db.read() as session:
        row = await session.get(Patient, existing.id)
        assert row is not None and row.updated_at == existing.updated_at


async def test_a_reference_or_an_ins_used_in_the_facility_is_a_409(
    client: TestClient, db: Database, w: SimpleNamespace
) -> None:
    await make_resident(db, w.nurse, reference="CH-2024-117")
    second = await make_resident(db, w.nurse, reference="R-2", ins=INS)
    before = await _count(db, Patient)
    again = await client.post("/api/residents", json=QUALIFIED, headers=w.h["nurse"])
    assert again.status == 409
    assert (await _error(again))["code"] == "patient_reference_taken"
    assert (await _error(again))["field"] == "reference"
    same_ins = await client.post(
        "/api/residents", json=QUALIFIED | {"reference": "R-3"}, headers=w.h["nurse"]
    )
    assert same_ins.status == 409 and (await _error(same_ins))["code"] == "patient_ins_taken"
    renamed = await client.put(
        f"/api/residents/{second.id}",
        json={"reference": "CH-2024-117"},
        headers=w.h["nurse"],
    )
    assert renamed.status == 409 and (await _error(renamed))["field"] == "reference"
    assert await _count(db, Patient) == before
    # Another facility has references and residents of its own.
    elsewhere = await client.post("/api/residents", json=QUALIFIED, headers=w.h["other_nurse"])
    assert elsewhere.status == 201


async def test_who_may_see_a_resident(
    client: TestClient, db: Database, w: SimpleNamespace, clock: FrozenClock
) -> None:
    resident = await _qualified(db, w.nurse)
    path = f"/api/residents/{resident.id}"
    assert (await client.get(path, headers=w.h["other_nurse"])).status == 404
    put = await client.put(path, json={"reference": "X-1"}, headers=w.h["other_nurse"])
    assert put.status == 404
    assert (await client.get(path, headers=w.h["doc"])).status == 404  # no booking yet
    assert (await client.get("/api/residents/999999", headers=w.h["nurse"])).status == 404
    for who in ("regional", "admin"):
        assert (await client.get(path, headers=w.h[who])).status == 403, who
        assert (await client.get("/api/residents", headers=w.h[who])).status == 403, who
    assert (await client.get("/api/residents", headers=w.h["doc"])).status == 403
    create = await client.post("/api/residents", json=QUALIFIED, headers=w.h["doc"])
    assert create.status == 403

    await _booking(client, db, w, resident.id, clock.now() + timedelta(days=1))
    seen = await client.get(path, headers=w.h["doc"])
    assert seen.status == 200 and (await seen.json())["ins"]["value"] == INS
    assert (await client.get(path, headers=w.h["other_doc"])).status == 404
    assert (await client.put(path, json=QUALIFIED, headers=w.h["doc"])).status == 403

    reads = await _events(db, "patient.read", resident.id)
    assert [(e.actor_id, e.actor_role) for e in reads] == [(w.doc.id, "specialist")]
    assert reads[0].at == NOW and reads[0].target_id == str(resident.id)


async def test_a_specialist_sees_the_resident_of_a_request_once_it_is_sent(
    client: TestClient, db: Database, w: SimpleNamespace
) -> None:
    resident = await _qualified(db, w.nurse)
    draft = await client.post(
        "/api/expertise",
        json={"specialty": "rhumatologie", "patient_id": resident.id, "question": "Goutte ?"},
        headers=w.h["nurse"],
    )
    assert draft.status == 201, await draft.text()
    request_id = (await draft.json())["id"]
    path = f"/api/residents/{resident.id}"
    assert (await client.get(path, headers=w.h["doc"])).status == 404  # a draft is the facility's

    send = f"/api/expertise/{request_id}/send"
    refused = await client.post(send, headers=w.h["nurse"])
    assert refused.status == 409 and (await _error(refused))["code"] == "consent_required"
    consent_path = f"/api/expertise/{request_id}/consent"
    assert (await client.post(consent_path, json=GIVEN, headers=w.h["doc"])).status == 403
    assert (await client.post(consent_path, json=GIVEN, headers=w.h["other_nurse"])).status == 404
    recorded = await client.post(consent_path, json=GIVEN, headers=w.h["nurse"])
    assert recorded.status == 201, await recorded.text()
    assert (await recorded.json())["recorded_by"] == {"id": w.nurse.id, "name": w.nurse.full_name}
    assert (await client.post(send, headers=w.h["nurse"])).status == 200
    assert (await client.get(path, headers=w.h["doc"])).status == 200  # the specialty's inbox


async def test_a_refused_tele_expertise_is_not_sent(
    client: TestClient, db: Database, w: SimpleNamespace
) -> None:
    resident = await make_resident(db, w.nurse)
    draft = await client.post(
        "/api/expertise",
        json={
            "specialty": "rhumatologie",
            "patient_id": resident.id,
            "question": "Goutte ?",
            "consent": GIVEN | {"decision": "refused", "method": "written"},
        },
        headers=w.h["nurse"],
    )
    assert draft.status == 201, await draft.text()
    sent = await client.post(
        f"/api/expertise/{(await draft.json())['id']}/send", headers=w.h["nurse"]
    )
    assert sent.status == 409 and (await _error(sent))["code"] == "consent_refused"


# --- consent to a teleconsultation, and the specialist's join -------------------------------------


async def test_consent_through_the_api_gates_the_specialists_join(
    client: TestClient, db: Database, w: SimpleNamespace, clock: FrozenClock
) -> None:
    resident = await _qualified(db, w.nurse)
    booking_id = await _booking(client, db, w, resident.id, clock.now() + timedelta(minutes=5))
    consent_path, join = f"/api/bookings/{booking_id}/consent", f"/api/bookings/{booking_id}/join"
    assert (await (await client.get(consent_path, headers=w.h["nurse"])).json()) == {
        "consent": None
    }
    refused = await client.post(join, headers=w.h["doc"])
    assert refused.status == 409 and (await _error(refused))["code"] == "consent_required"
    assert (await client.post(join, headers=w.h["nurse"])).status == 200  # staff wait in the room

    future = GIVEN | {"given_at": (clock.now() + timedelta(hours=1)).isoformat()}
    bad = await client.post(consent_path, json=future, headers=w.h["nurse"])
    assert bad.status == 422 and (await _error(bad))["field"] == "given_at"
    bad = await client.post(consent_path, json={"method": "oral"}, headers=w.h["nurse"])
    assert bad.status == 422 and (await _error(bad))["field"] == "given_by"
    assert await _count(db, ConsentRecord) == 0
    for who, status in (("other_nurse", 404), ("other_doc", 404), ("regional", 403)):
        denied = await client.post(consent_path, json=GIVEN, headers=w.h[who])
        assert denied.status == status, who
        assert (await client.get(consent_path, headers=w.h[who])).status == status, who

    no = GIVEN | {"decision": "refused", "given_at": (clock.now() - timedelta(hours=2)).isoformat()}
    recorded = await client.post(consent_path, json=no, headers=w.h["nurse"])
    assert recorded.status == 201, await recorded.text()
    refused = await client.post(join, headers=w.h["doc"])
    assert refused.status == 409 and (await _error(refused))["code"] == "consent_refused"

    # The resident changes their mind; the specialist records it at the start of the call.
    yes = await client.post(consent_path, json=GIVEN, headers=w.h["doc"])
    assert yes.status == 201
    latest = (await (await client.get(consent_path, headers=w.h["nurse"])).json())["consent"]
    assert latest["decision"] == "granted" and latest["recorded_by"]["id"] == w.doc.id
    assert latest["given_at"] == NOW.isoformat()
    assert (await client.post(join, headers=w.h["doc"])).status == 200
    assert len(await _events(db, "consent.recorded", resident.id)) == 2
    assert len(await _events(db, "consent.read", resident.id)) == 2


async def test_consent_cannot_be_recorded_for_a_cancelled_booking(
    client: TestClient, db: Database, w: SimpleNamespace, clock: FrozenClock
) -> None:
    resident = await make_resident(db, w.nurse)
    booking_id = await _booking(client, db, w, resident.id, clock.now() + timedelta(days=2))
    async with db.write() as session:
        await booking.cancel(
            session, Context(w.nurse, NOW), booking_id, booking.Cancellation(reason="Hospitalisée")
        )
    late = await client.post(
        f"/api/bookings/{booking_id}/consent", json=GIVEN, headers=w.h["nurse"]
    )
    assert late.status == 409 and (await _error(late))["code"] == "booking_not_confirmed"


# --- the pages ----------------------------------------------------------------------------------


def _form(**changes: str) -> dict[str, str]:
    fields = {k: v for k, v in QUALIFIED.items() if k != "ins"}
    fields |= {"ins_value": INS, "ins_oid": NIR_OID}
    return {k: str(v) for k, v in fields.items()} | changes


async def _resident_ids(db: Database) -> list[int]:
    async with db.read() as session:
        return list(await session.scalars(select(Patient.id).order_by(Patient.id)))


async def test_staff_create_list_read_and_edit_residents_through_the_pages(
    client: TestClient, db: Database, w: SimpleNamespace
) -> None:
    await _sign_in(client, w.nurse)
    home = await (await client.get("/")).text()
    assert 'href="/residents">Résidents</a>' in home
    empty = await (await client.get("/residents")).text()
    assert "Aucun résident pour l'instant" in empty
    token = await page_csrf(client, "/residents/nouveau")
    made = await client.post(
        "/residents/nouveau", data=_form(csrf_token=token), allow_redirects=False
    )
    assert made.status == 303, await made.text()
    (patient_id,) = await _resident_ids(db)
    assert made.headers["Location"] == f"/residents/{patient_id}?ok=cree"

    page = await (await client.get(made.headers["Location"])).text()
    for shown in (
        "DUPONT Jeanne",
        "MARTIN",
        "Jeanne Marie",
        "Féminin",
        "dimanche 12 avril 1936 (90 ans)",
        "21231",
        INS,
        "NIR",
        NIR_OID,
        "Identité qualifiée",
        "Carte nationale d&#39;identité",
        "Dr Paul Durand",
        RPPS,
        "Le résident est enregistré.",
    ):
        assert shown in page, shown
    listing = await (await client.get("/residents")).text()
    row = listing.split(f'href="/residents/{patient_id}"')[1].split("</tr>")[0]
    for shown in ("DUPONT Jeanne", "CH-2024-117", "90 ans", "identity-qualified", "NIR", "Durand"):
        assert shown in row, shown
    assert "DUPONT" not in await (await client.get("/residents?q=bernard")).text()
    assert "DUPONT" in await (await client.get("/residents?q=ch-2024")).text()

    edit = await (await client.get(f"/residents/{patient_id}/modifier")).text()
    assert f'value="{INS}"' in edit and 'value="MARTIN"' in edit
    changed = await client.post(
        f"/residents/{patient_id}/modifier",
        data=_form(csrf_token=token, used_name="", doctor_name="Dr Anne Roy"),
        allow_redirects=False,
    )
    assert changed.status == 303
    page = await (await client.get(f"/residents/{patient_id}")).text()
    assert "MARTIN Jeanne" in page and "Dr Anne Roy" in page
    # Every read of the page (and of the edit form) is an access event naming the resident.
    assert len(await _events(db, "patient.read", patient_id)) == 3
    async with db.read() as session:
        listed = await session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == "patient.listed")
        )
    assert listed == 4


PAGE_BAD_INPUT = [
    ("wrong INS key", {"ins_value": WRONG_KEY_INS}, "ins_value"),
    ("qualified without the first names", {"first_names": ""}, "first_names"),
    ("birth date in the future", {"birth_date": "2030-01-01"}, "birth_date"),
    ("RPPS with a wrong check digit", {"doctor_rpps": WRONG_RPPS}, "doctor_rpps"),
]


@pytest.mark.parametrize(
    ("case", "change", "field"), PAGE_BAD_INPUT, ids=[c[0] for c in PAGE_BAD_INPUT]
)
async def test_a_refused_form_shows_the_error_beside_its_field_and_keeps_what_was_typed(
    client: TestClient,
    db: Database,
    w: SimpleNamespace,
    case: str,
    change: dict[str, str],
    field: str,
) -> None:
    existing = await make_resident(db, w.nurse, reference="R-1")
    await _sign_in(client, w.nurse)
    token = await page_csrf(client, "/residents/nouveau")
    before = (await _count(db, Patient), await _count(db, AuditEvent))
    for path in ("/residents/nouveau", f"/residents/{existing.id}/modifier"):
        response = await client.post(path, data=_form(csrf_token=token, **change))
        assert response.status == 422, (case, path)
        html = await response.text()
        assert f'<p class="field-error" id="{field}-erreur">' in html, case
        assert re.search(rf'id="{field}"[^>]*aria-invalid="true"', html), case
        assert (
            'value="Dr Paul Durand"' in html
            and 'value="1936-04-12"' in html
            or (field == "birth_date")
        )
        for value in change.values():
            if value:
                assert f'value="{value}"' in html, case
    assert (await _count(db, Patient), await _count(db, AuditEvent)) == before


async def test_a_reference_already_used_is_shown_beside_the_reference(
    client: TestClient, db: Database, w: SimpleNamespace
) -> None:
    await make_resident(db, w.nurse, reference="CH-2024-117")
    await _sign_in(client, w.nurse)
    token = await page_csrf(client, "/residents/nouveau")
    response = await client.post("/residents/nouveau", data=_form(csrf_token=token))
    assert response.status == 409
    html = await response.text()
    assert (
        'id="reference-erreur">Un résident de votre établissement a déjà cette référence.' in html
    )
    assert await _count(db, Patient) == 1


async def test_who_may_open_the_resident_pages(
    client: TestClient, db: Database, w: SimpleNamespace, clock: FrozenClock
) -> None:
    resident = await _qualified(db, w.nurse)
    page = f"/residents/{resident.id}"
    await _sign_in(client, w.other_nurse)
    assert (await client.get(page)).status == 404
    assert (await client.get(page + "/modifier")).status == 404
    token = await page_csrf(client, "/residents")
    post = await client.post(page + "/modifier", data=_form(csrf_token=token))
    assert post.status == 404
    assert "MARTIN" not in await (await client.get("/residents")).text()

    for who in ("regional", "admin"):
        await _sign_in(client, getattr(w, who))
        assert (await client.get(page)).status == 403, who
        assert (await client.get("/residents")).status == 403, who

    await _sign_in(client, w.doc)
    assert (await client.get(page)).status == 404  # not a resident of theirs yet
    assert (await client.get("/residents")).status == 403
    booking_id = await _booking(client, db, w, resident.id, clock.now() + timedelta(minutes=5))
    agenda = await (await client.get("/agenda")).text()
    assert f'href="/residents/{resident.id}"' in agenda
    html = await (await client.get(page)).text()
    assert "MARTIN" in html and INS in html and "Modifier" not in html
    assert f'href="/consultation/{booking_id}"' in html
    assert (await client.get(page + "/modifier")).status == 403
    assert (await client.get(f"/residents/{resident.id}")).status == 200
    reads = await _events(db, "patient.read", resident.id)
    assert {e.actor_id for e in reads} == {w.doc.id} and len(reads) == 2


async def test_consent_recorded_on_mes_rendez_vous_gates_the_join(
    client: TestClient, db: Database, w: SimpleNamespace, clock: FrozenClock
) -> None:
    resident = await _qualified(db, w.nurse)
    booking_id = await _booking(client, db, w, resident.id, clock.now() + timedelta(minutes=5))
    await _sign_in(client, w.nurse)
    page = await (await client.get("/rendez-vous")).text()
    card = page.split(f'id="rdv-{booking_id}"')[1].split("</article>")[0]
    assert "Consentement à recueillir" in card
    token = await page_csrf(client, "/rendez-vous")
    action = f"/rendez-vous/{booking_id}/consentement"

    future = {"csrf_token": token, **GIVEN, "decision": "granted", "given_at": "2026-06-10T12:00"}
    bad = await client.post(action, data=future)
    assert bad.status == 422
    html = await bad.text()
    assert f'id="consentement-{booking_id}-given_at-erreur"' in html
    assert 'value="2026-06-10T12:00"' in html and "« Recueilli le »" in html
    assert await _count(db, ConsentRecord) == 0
    join = f"/api/bookings/{booking_id}/join"
    assert (await _error(await client.post(join, headers=w.h["doc"])))["code"] == "consent_required"

    given = {"csrf_token": token, **GIVEN, "decision": "granted", "given_at": "2026-06-10T09:30"}
    done = await client.post(action, data=given, allow_redirects=False)
    assert done.status == 303 and done.headers["Location"].endswith(f"#consentement-{booking_id}")
    page = await (await client.get("/rendez-vous")).text()
    card = page.split(f'id="rdv-{booking_id}"')[1].split("</article>")[0]
    assert "Consentement recueilli (oral, le résident) le mercredi 10 juin 2026 à 09:30" in card
    assert (await client.post(join, headers=w.h["doc"])).status == 200

    refusal = {"csrf_token": token, "given_by": "legal_representative", "method": "written"}
    done = await client.post(action, data=refusal | {"decision": "refused"}, allow_redirects=False)
    assert done.status == 303
    page = await (await client.get("/rendez-vous")).text()
    assert "Refus (écrit, un représentant légal) le mercredi 10 juin 2026 à 10:00" in page
    refused = await client.post(join, headers=w.h["doc"])
    assert refused.status == 409 and (await _error(refused))["code"] == "consent_refused"


async def test_the_booking_form_may_record_the_consent_with_the_booking(
    client: TestClient, db: Database, w: SimpleNamespace, clock: FrozenClock
) -> None:
    resident = await make_resident(db, w.nurse)
    await _sign_in(client, w.nurse)
    token = await page_csrf(client, "/rendez-vous")
    slot = await make_slot(db, w.doc, clock.now() + timedelta(days=1))
    form = {
        "csrf_token": token,
        "act_type": "teleconsultation",
        "patient_id": str(resident.id),
        "reason": "Douleurs",
        **GIVEN,
        "decision": "granted",
        "given_at": "2026-06-11T09:00",  # tomorrow: refused, and the booking with it
    }
    refused = await client.post(f"/rendez-vous/nouveau/{slot.id}", data=form)
    assert refused.status == 422, await refused.text()
    assert 'value="2026-06-11T09:00"' in await refused.text()
    assert (await _count(db, Booking), await _count(db, ConsentRecord)) == (0, 0)

    booked = await client.post(
        f"/rendez-vous/nouveau/{slot.id}", data=form | {"given_at": ""}, allow_redirects=False
    )
    assert booked.status == 303, await booked.text()
    async with db.read() as session:
        record = await session.scalar(select(ConsentRecord))
        booking_id = await session.scalar(select(Booking.id))
    assert record is not None and record.booking_id == booking_id
    assert (record.given_at, record.recorded_by_id, record.patient_id) == (
        NOW,
        w.nurse.id,
        resident.id,
    )

    slot2 = await make_slot(db, w.doc, clock.now() + timedelta(days=2))
    without = {k: v for k, v in form.items() if k not in ("given_by", "given_at")}
    booked = await client.post(
        f"/rendez-vous/nouveau/{slot2.id}", data=without, allow_redirects=False
    )
    assert booked.status == 303
    assert (await _count(db, Booking), await _count(db, ConsentRecord)) == (2, 1)


async def test_consent_recorded_in_the_tele_expertise_thread(
    client: TestClient, db: Database, w: SimpleNamespace
) -> None:
    resident = await make_resident(db, w.nurse)
    draft = await client.post(
        "/api/expertise",
        json={"specialty": "rhumatologie", "patient_id": resident.id, "question": "Goutte ?"},
        headers=w.h["nurse"],
    )
    request_id = (await draft.json())["id"]
    await _sign_in(client, w.nurse)
    thread = await client.get(f"/teleexpertise/{request_id}")
    assert thread.status == 200, await thread.text()
    html = await thread.text()
    assert (
        "Consentement à recueillir" in html and f"/teleexpertise/{request_id}/consentement" in html
    )
    token = await page_csrf(client, f"/teleexpertise/{request_id}")
    sent = await client.post(f"/teleexpertise/{request_id}/envoyer", data={"csrf_token": token})
    assert sent.status == 422 and "consentement" in (await sent.text()).lower()

    bad = await client.post(
        f"/teleexpertise/{request_id}/consentement",
        data={"csrf_token": token, "method": "oral", "decision": "granted"},
    )
    assert bad.status == 422 and 'id="consentement-given_by-erreur"' in await bad.text()
    done = await client.post(
        f"/teleexpertise/{request_id}/consentement",
        data={"csrf_token": token, "given_by": "trusted_person", "method": "oral"},
        allow_redirects=False,
    )
    assert done.status == 303
    html = await (await client.get(f"/teleexpertise/{request_id}")).text()
    assert "Consentement recueilli (oral, la personne de confiance) le" in html
    sent = await client.post(
        f"/teleexpertise/{request_id}/envoyer", data={"csrf_token": token}, allow_redirects=False
    )
    assert sent.status == 303

    await _sign_in(client, w.doc)
    html = await (await client.get(f"/teleexpertise/{request_id}")).text()
    assert "Consentement recueilli (oral, la personne de confiance)" in html
    assert f"/teleexpertise/{request_id}/consentement" not in html  # read-only for them


async def test_the_room_links_the_specialist_to_the_resident(
    client: TestClient, db: Database, w: SimpleNamespace, clock: FrozenClock
) -> None:
    resident = await _qualified(db, w.nurse)
    booking_id = await _booking(client, db, w, resident.id, clock.now() + timedelta(minutes=5))
    await _sign_in(client, w.doc)
    room = await client.get(f"/consultation/{booking_id}")
    assert room.status == 200
    assert f'href="/residents/{resident.id}"' in await room.text()


async def test_resident_pages_have_no_inline_script_or_style_and_post_forms_carry_csrf(
    client: TestClient, db: Database, w: SimpleNamespace, clock: FrozenClock
) -> None:
    resident = await _qualified(db, w.nurse)
    await _booking(client, db, w, resident.id, clock.now() + timedelta(days=1))
    await _sign_in(client, w.nurse)
    for path in (
        "/residents",
        "/residents?q=martin",
        "/residents/nouveau",
        f"/residents/{resident.id}",
        f"/residents/{resident.id}/modifier",
        "/rendez-vous",
    ):
        response = await client.get(path)
        html = await response.text()
        assert response.status == 200, path
        assert "style=" not in html and "<style" not in html, path
        assert all('src="/static/' in s for s in re.findall(r"<script[^>]*>", html)), path
        posts = re.findall(r'<form[^>]*method="post".*?</form>', html, flags=re.S)
        assert posts and all('name="csrf_token"' in form for form in posts), path
