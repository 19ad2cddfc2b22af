"""Tele-expertise over HTTP: request, photos, thread, answer, the act, who sees what."""

from __future__ import annotations

import io
import struct
import zlib
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from PIL import Image
from sqlalchemy import func, select

from scheduling.clock import FrozenClock
from telmi import expertise, jobs
from telmi.db import Database
from telmi.models import (
    Act,
    AuditEvent,
    ExpertiseAttachment,
    ExpertiseRequest,
    ExpertiseUrgency,
    Notification,
    Role,
)
from telmi.settings import Settings

from .factories import bearer, make_facility, make_resident, make_specialty, make_user


def jpeg_with_gps(size: tuple[int, int] = (120, 80)) -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "Appareil du service"
    exif[0x8825] = {1: "N", 2: (47.0, 19.0, 0.0), 3: "E", 4: (5.0, 2.0, 0.0)}
    out = io.BytesIO()
    Image.new("RGB", size, (200, 120, 90)).save(out, "JPEG", exif=exif.tobytes())
    return out.getvalue()


def png_bomb() -> bytes:
    """A tiny PNG whose header claims 60,000 x 60,000 pixels."""
    out = io.BytesIO()
    Image.new("L", (8, 8)).save(out, "PNG")
    data = bytearray(out.getvalue())
    ihdr = data[16:29]
    ihdr[0:8] = struct.pack(">II", 60_000, 60_000)
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + bytes(ihdr)))
    return bytes(data)


@pytest.fixture
async def world(db: Database) -> dict[str, Any]:
    a, b = await make_facility(db, name="EHPAD A"), await make_facility(db, name="EHPAD B")
    derm, cardio = await make_specialty(db, "dermatologie"), await make_specialty(db, "cardiologie")
    people = {
        "nurse": await make_user(db, Role.STAFF, facility=a),
        "other_nurse": await make_user(db, Role.STAFF, facility=b),
        "derm": await make_user(db, Role.SPECIALIST, specialty=derm),
        "derm2": await make_user(db, Role.SPECIALIST, specialty=derm),
        "cardio": await make_user(db, Role.SPECIALIST, specialty=cardio),
    }
    world = {name: {"user": u, "h": await bearer(db, u)} for name, u in people.items()}
    for nurse in ("nurse", "other_nurse"):  # a resident of each facility
        world[nurse]["resident"] = (await make_resident(db, people[nurse], reference="RES-12")).id
    return world


# What the dermatology request form asks (`request_forms.BUILTIN`), and the consent the
# facility records with the request: without both a request cannot be sent.
ANSWERS = {"lesion_site": "Talon gauche", "duration": "3 semaines", "evolution": "Extension"}
CONSENT = {"given_by": "resident", "method": "oral"}


async def _draft(
    client: TestClient, nurse: dict[str, Any], *, photos: int = 0, **extra: Any
) -> dict[str, Any]:
    """A draft of `nurse` (a world entry) for their resident; `photos`: how many to add (the
    dermatology form wants two before sending)."""
    body = {
        "specialty": "dermatologie",
        "patient_id": nurse["resident"],
        "consent": CONSENT,
        "question": "Escarre talon gauche : stade ? Conduite à tenir ?",
        "clinical_context": "Patiente de 91 ans, diabétique.",
        "urgency": "72h",
        "answers": ANSWERS,
        **extra,
    }
    response = await client.post("/api/expertise", json=body, headers=nurse["h"])
    assert response.status == 201, await response.text()
    draft: dict[str, Any] = await response.json()
    if photos:
        shots = [(f"photo{i}.png", _png()) for i in range(photos)]
        assert (await _upload(client, nurse["h"], draft["id"], *shots)).status == 201
    return draft


async def _upload(
    client: TestClient, headers: dict[str, str], request_id: int, *files: tuple[str, bytes]
) -> Any:
    form = aiohttp.FormData()
    for name, data in files:
        form.add_field("photos", data, filename=name, content_type="application/octet-stream")
    return await client.post(f"/api/expertise/{request_id}/photos", data=form, headers=headers)


def _stored(settings: Settings) -> list[Path]:
    return (
        [p for p in (settings.data_dir / "photos").rglob("*.img")]
        if (settings.data_dir / "photos").exists()
        else []
    )


async def test_request_to_answer_writes_exactly_one_act(
    client: TestClient, db: Database, world: dict[str, Any], clock: FrozenClock
) -> None:
    nurse, derm = world["nurse"]["h"], world["derm"]["h"]
    draft = await _draft(client, world["nurse"])
    shots = ("talon.jpg", jpeg_with_gps()), ("talon-face.png", _png())  # the form wants two
    assert (await _upload(client, nurse, draft["id"], *shots)).status == 201
    sent = await client.post(f"/api/expertise/{draft['id']}/send", headers=nurse)
    assert (await sent.json())["status"] == "sent"
    inbox = await (await client.get("/api/expertise", headers=derm)).json()
    assert [r["id"] for r in inbox["items"]] == [draft["id"]]
    assert (await client.post(f"/api/expertise/{draft['id']}/take", headers=derm)).status == 200
    assert (
        await client.post(f"/api/expertise/{draft['id']}/take", headers=world["derm2"]["h"])
    ).status == 409
    asked = await client.post(
        f"/api/expertise/{draft['id']}/ask", json={"body": "Photo de profil ?"}, headers=derm
    )
    assert (await asked.json())["status"] == "needs_information"
    assert (await _upload(client, nurse, draft["id"], ("profil.png", _png()))).status == 201
    await client.post(
        f"/api/expertise/{draft['id']}/reply", json={"body": "Ajoutée."}, headers=nurse
    )
    clock.advance(timedelta(hours=5))
    answered = await client.post(
        f"/api/expertise/{draft['id']}/answer",
        json={"body": "Stade 2 ; hydrocolloïde."},
        headers=derm,
    )
    assert (await answered.json())["status"] == "answered"
    again = await client.post(
        f"/api/expertise/{draft['id']}/answer", json={"body": "Encore"}, headers=derm
    )
    assert again.status == 409
    thread = await (await client.get(f"/api/expertise/{draft['id']}", headers=nurse)).json()
    assert [m["kind"] for m in thread["messages"]] == ["question", "information", "answer"]
    assert len(thread["photos"]) == 3
    async with db.read() as session:
        logged = list(await session.scalars(select(Act)))
        told = set(
            await session.scalars(
                select(Notification.kind).where(Notification.user_id == world["nurse"]["user"].id)
            )
        )
    assert len(logged) == 1
    act = logged[0]
    assert act.act_type.value == "teleexpertise" and act.specialty_code == "dermatologie"
    assert (
        act.specialist_id == world["derm"]["user"].id
        and act.requester_id == world["nurse"]["user"].id
    )
    assert act.response_seconds == 5 * 3600 and act.source_key == f"expertise:{draft['id']}"
    assert act.patient_consent is True and act.consent_id is not None  # recorded with the draft
    assert {"expertise-prise", "expertise-complement", "expertise-reponse"} <= told


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 40), (10, 200, 10)).save(out, "PNG")
    return out.getvalue()


async def test_stored_photos_carry_no_exif_or_gps(
    client: TestClient, db: Database, world: dict[str, Any], settings: Settings
) -> None:
    draft = await _draft(client, world["nurse"])
    response = await _upload(
        client, world["nurse"]["h"], draft["id"], ("talon.jpg", jpeg_with_gps())
    )
    photo = (await response.json())["items"][0]
    served = await client.get(photo["url"], headers=world["nurse"]["h"])
    assert served.status == 200 and "no-store" in served.headers["Cache-Control"]
    data = await served.read()
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "JPEG" and not image.getexif()
    assert b"Appareil du service" not in data
    for path in _stored(settings):
        assert b"Exif" not in path.read_bytes()
    thumb = await client.get(photo["thumbnail_url"], headers=world["nurse"]["h"])
    assert thumb.status == 200 and thumb.content_type == "image/jpeg"
    async with db.read() as session:
        views = await session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == "expertise.photo_viewed")
        )
    assert views == 2


@pytest.mark.parametrize(
    ("name", "data", "words"),
    [
        ("notes.txt", b"ceci n'est pas une image" * 10, "pas une image"),
        ("tronquee.jpg", jpeg_with_gps((800, 600))[:1500], "tronquée"),
        ("enorme.jpg", b"\xff\xd8\xff" + b"\x00" * (16 * 1024 * 1024), "15 Mo"),
        ("bombe.png", png_bomb(), "pixels"),
    ],
)
async def test_bad_files_are_refused_and_nothing_is_stored(
    client: TestClient,
    db: Database,
    world: dict[str, Any],
    settings: Settings,
    name: str,
    data: bytes,
    words: str,
) -> None:
    draft = await _draft(client, world["nurse"])
    response = await _upload(
        client, world["nurse"]["h"], draft["id"], ("bonne.png", _png()), (name, data)
    )
    assert response.status == 422
    error = (await response.json())["error"]
    assert error["field"] == "photos" and words in error["message"]
    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(ExpertiseAttachment)) == 0
    assert _stored(settings) == []


async def test_eleven_photos_are_too_many(client: TestClient, world: dict[str, Any]) -> None:
    draft = await _draft(client, world["nurse"])
    response = await _upload(
        client, world["nurse"]["h"], draft["id"], *[(f"{i}.png", _png()) for i in range(11)]
    )
    assert response.status == 422


async def test_other_facilities_and_specialties_get_the_404_of_a_missing_request(
    client: TestClient, world: dict[str, Any]
) -> None:
    """What a caller may not see answers exactly as what does not exist: ids tell nothing."""
    draft = await _draft(client, world["nurse"])
    photo = (
        await (
            await _upload(
                client, world["nurse"]["h"], draft["id"], ("a.png", _png()), ("b.png", _png())
            )
        ).json()
    )["items"][0]
    await client.post(f"/api/expertise/{draft['id']}/send", headers=world["nurse"]["h"])
    missing = photo["url"].replace(f"/{photo['id']}", "/999999")
    for outsider in ("other_nurse", "cardio"):
        headers = world[outsider]["h"]
        for path, absent in (
            (f"/api/expertise/{draft['id']}", "/api/expertise/999999"),
            (photo["url"], missing),
            (photo["thumbnail_url"], missing + "/thumbnail"),
        ):
            hidden, gone = [await client.get(p, headers=headers) for p in (path, absent)]
            assert hidden.status == gone.status == 404, (outsider, path)
            hidden_error, gone_error = [(await r.json())["error"] for r in (hidden, gone)]
            assert hidden_error["code"] == gone_error["code"], path
            assert (
                hidden_error["message"]
                .replace(str(draft["id"]), "999999")
                .replace(str(photo["id"]), "999999")
                == gone_error["message"]
            ), path
    assert (
        await client.post(f"/api/expertise/{draft['id']}/take", headers=world["cardio"]["h"])
    ).status == 404
    assert (
        await client.get(f"/api/expertise/{draft['id']}", headers=world["derm2"]["h"])
    ).status == 200


async def test_bad_requests_name_their_field(client: TestClient, world: dict[str, Any]) -> None:
    nurse = world["nurse"]["h"]
    for change, field in (
        ({"specialty": "astrologie"}, "specialty"),
        ({"consent": {"given_by": "le voisin", "method": "oral"}}, "consent.given_by"),
        ({"urgency": "hier"}, "urgency"),
        ({"question": ""}, "question"),
        ({"patient_id": 999999}, "patient_id"),
        ({"patient_id": world["other_nurse"]["resident"]}, "patient_id"),  # not theirs
        ({"answers": {**ANSWERS, "evolution": "Inconnue"}}, "answers.evolution"),
    ):
        body = {
            "specialty": "dermatologie",
            "patient_id": world["nurse"]["resident"],
            "consent": CONSENT,
            "question": "Q ?",
            "answers": ANSWERS,
            **change,
        }
        response = await client.post("/api/expertise", json=body, headers=nurse)
        assert response.status == 422 and (await response.json())["error"]["field"] == field, change
    # Consent is no box to tick: a draft without a recorded consent is not sent.
    unasked = await _draft(client, world["nurse"], photos=2, consent=None)
    refused = await client.post(f"/api/expertise/{unasked['id']}/send", headers=nurse)
    assert refused.status == 409 and (await refused.json())["error"]["code"] == "consent_required"
    draft = await _draft(client, world["nurse"])
    answer = await client.post(
        f"/api/expertise/{draft['id']}/answer", json={"body": "x"}, headers=world["derm"]["h"]
    )
    assert answer.status in (404, 409)  # a draft is not theirs to see, nor to answer


async def test_overdue_requests_remind_once_then_expire(
    client: TestClient, db: Database, world: dict[str, Any], clock: FrozenClock, settings: Settings
) -> None:
    draft = await _draft(client, world["nurse"], urgency="24h", photos=2)
    await client.post(f"/api/expertise/{draft['id']}/send", headers=world["nurse"]["h"])
    clock.advance(timedelta(hours=25))
    first = await db.run_write(
        lambda s: expertise.overdue(s, now=clock.now(), public_url=settings.public_url)
    )
    again = await db.run_write(
        lambda s: expertise.overdue(s, now=clock.now(), public_url=settings.public_url)
    )
    assert first.startswith("3 rappels") and again.startswith(
        "0 rappels"
    )  # two dermatologists + the nurse
    clock.advance(timedelta(days=15))
    assert "1 demandes expirées" in await db.run_write(
        lambda s: expertise.overdue(s, now=clock.now(), public_url=settings.public_url)
    )
    scheduled = jobs.build(db, clock, settings)
    assert any(job.name == "teleexpertises-en-retard" for job in scheduled)


async def test_heic_photos_are_read_and_stored_as_jpeg(
    client: TestClient, world: dict[str, Any]
) -> None:
    import pillow_heif

    out = io.BytesIO()
    pillow_heif.from_pillow(Image.new("RGB", (64, 64), (120, 30, 30))).save(out, quality=80)
    draft = await _draft(client, world["nurse"])
    response = await _upload(
        client, world["nurse"]["h"], draft["id"], ("IMG_0001.HEIC", out.getvalue())
    )
    assert response.status == 201, await response.text()
    assert (await response.json())["items"][0]["media_type"] == "image/jpeg"


async def test_only_the_specialist_who_took_it_answers(
    client: TestClient, world: dict[str, Any]
) -> None:
    draft = await _draft(client, world["nurse"], photos=2)
    await client.post(f"/api/expertise/{draft['id']}/send", headers=world["nurse"]["h"])
    await client.post(f"/api/expertise/{draft['id']}/take", headers=world["derm"]["h"])
    stolen = await client.post(
        f"/api/expertise/{draft['id']}/answer", json={"body": "Moi !"}, headers=world["derm2"]["h"]
    )
    assert stolen.status == 409
    wrong_type = await client.post(
        f"/api/expertise/{draft['id']}/answer", json={"body": 42}, headers=world["derm"]["h"]
    )
    assert wrong_type.status == 422 and (await wrong_type.json())["error"]["field"] == "body"


async def test_photos_can_live_in_the_database(
    aiohttp_client: Any, db: Database, world: dict[str, Any], settings: Settings, clock: FrozenClock
) -> None:
    from telmi.app import create_app
    from telmi.models import PhotoBlob

    client = await aiohttp_client(
        create_app(settings.replace(photo_storage="database"), clock=clock)
    )
    draft = await _draft(client, world["nurse"])
    response = await _upload(
        client, world["nurse"]["h"], draft["id"], ("talon.jpg", jpeg_with_gps())
    )
    photo = (await response.json())["items"][0]
    served = await client.get(photo["url"], headers=world["nurse"]["h"])
    assert served.status == 200 and (await served.read())[:2] == b"\xff\xd8"
    assert _stored(settings) == []
    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(PhotoBlob)) == 1


async def test_a_declined_request_tells_the_requester_and_cannot_be_taken(
    client: TestClient, db: Database, world: dict[str, Any]
) -> None:
    draft = await _draft(client, world["nurse"], photos=2)
    await client.post(f"/api/expertise/{draft['id']}/send", headers=world["nurse"]["h"])
    declined = await client.post(
        f"/api/expertise/{draft['id']}/decline",
        json={"body": "Hors de ma compétence : voir la chirurgie vasculaire."},
        headers=world["derm"]["h"],
    )
    assert (await declined.json())["status"] == "declined"
    assert (
        await client.post(f"/api/expertise/{draft['id']}/take", headers=world["derm2"]["h"])
    ).status == 409
    async with db.read() as session:
        kinds = set(await session.scalars(select(Notification.kind)))
        assert await session.scalar(select(func.count()).select_from(Act)) == 0
    assert "expertise-declinee" in kinds


async def test_overdue_requests_are_marked_in_the_lists(
    client: TestClient, db: Database, world: dict[str, Any], clock: FrozenClock
) -> None:
    from .factories import PASSWORD, login

    draft = await _draft(client, world["nurse"], urgency="24h", photos=2)
    await client.post(f"/api/expertise/{draft['id']}/send", headers=world["nurse"]["h"])
    await login(client, world["derm"]["user"].email, PASSWORD)
    assert "en retard" not in await (await client.get("/teleexpertise")).text()
    clock.advance(timedelta(hours=25))
    await login(client, world["derm"]["user"].email, PASSWORD)  # the session idled out meanwhile
    inbox = await (await client.get("/teleexpertise")).text()
    assert 'class="overdue"' in inbox and "en retard" in inbox


async def test_at_its_due_instant_a_request_is_late_for_the_lists_and_the_job_alike(
    client: TestClient, db: Database, world: dict[str, Any], clock: FrozenClock, settings: Settings
) -> None:
    from .factories import PASSWORD, login

    draft = await _draft(client, world["nurse"], urgency="24h", photos=2)
    sent = await (
        await client.post(f"/api/expertise/{draft['id']}/send", headers=world["nurse"]["h"])
    ).json()
    clock.set(datetime.fromisoformat(sent["due_at"]))  # exactly due
    await login(client, world["derm"]["user"].email, PASSWORD)
    assert "en retard" in await (await client.get("/teleexpertise")).text()
    thread = await (await client.get(f"/teleexpertise/{draft['id']}")).text()
    assert "en retard" in thread
    result = await db.run_write(
        lambda s: expertise.overdue(s, now=clock.now(), public_url=settings.public_url)
    )
    assert not result.startswith("0"), result


async def test_request_bodies_take_their_fields_and_no_other(
    client: TestClient, db: Database, world: dict[str, Any]
) -> None:
    """The typed bodies refuse what the hand-written parsing let through: unknown fields
    (the old consent checkbox among them), a null where text is expected, text for an id."""
    nurse, derm = world["nurse"]["h"], world["derm"]["h"]
    base = {"specialty": "dermatologie", "patient_id": world["nurse"]["resident"]}
    for change, field in (
        ({"question": "Q ?", "photos": []}, "photos"),
        ({"question": "Q ?", "clinical_context": None}, "clinical_context"),
        ({"question": "Q ?", "specialist_id": "5"}, "specialist_id"),
        ({"question": "Q ?", "patient_id": "5"}, "patient_id"),
        ({"question": "Q ?", "consent_recorded": True}, "consent_recorded"),
        ({"question": "Q ?", "consent": True}, "consent"),
        ({"question": "x" * 4001}, "question"),
    ):
        response = await client.post("/api/expertise", json={**base, **change}, headers=nurse)
        error = (await response.json())["error"]
        assert response.status == 422 and error["field"] == field, (change, error)
    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(ExpertiseRequest)) == 0
    draft = await _draft(client, world["nurse"], photos=2)
    await client.post(f"/api/expertise/{draft['id']}/send", headers=nurse)
    await client.post(f"/api/expertise/{draft['id']}/take", headers=derm)
    for body, field in (
        ({"body": "Photo ?", "urgent": True}, "urgent"),
        ({"body": "   "}, "body"),
        ({}, "body"),
    ):
        asked = await client.post(f"/api/expertise/{draft['id']}/ask", json=body, headers=derm)
        assert asked.status == 422 and (await asked.json())["error"]["field"] == field, body
    shown = await (await client.get(f"/api/expertise/{draft['id']}", headers=derm)).json()
    assert shown["status"] == "taken" and shown["messages"] == []


def test_a_new_request_defaults_to_72h_and_is_stored_trimmed() -> None:
    new = expertise.NewRequest(specialty=" dermatologie ", patient_id=1, question="  Escarre ?  ")
    assert new.urgency is ExpertiseUrgency.H72 and new.specialist_id is None
    assert new.consent is None and new.answers == {}  # consent may be recorded later
    assert (new.specialty, new.question, new.clinical_context) == ("dermatologie", "Escarre ?", "")


def test_the_document_describes_each_expertise_route_as_its_own_operation() -> None:
    from telmi.web.api.openapi import document

    paths = {p: item for p, item in document()["paths"].items() if p.startswith("/api/expertise")}
    ops = [op["operationId"] for item in paths.values() for op in item.values()]
    assert len(ops) == len(set(ops)) == 16  # with the consent and the report (answer, PDF, addenda)
    photo, thumb = (
        paths["/api/expertise/photos/{photo_id}"]["get"],
        paths["/api/expertise/photos/{photo_id}/thumbnail"]["get"],
    )
    assert (photo["operationId"], thumb["operationId"]) == ("expertisePhoto", "expertiseThumbnail")
    assert set(photo["responses"]["200"]["content"]) == {"image/jpeg", "image/png"}
    assert thumb["responses"]["200"]["content"] == {
        "image/jpeg": {"schema": {"type": "string", "format": "binary"}}
    }
    upload = paths["/api/expertise/{request_id}/photos"]["post"]
    form = upload["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["properties"]["photos"]["items"] == {"type": "string", "format": "binary"}
    assert upload["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ExpertisePhotos"
    }
