"""Tele-expertise pages: the thread's forms over HTTP, and a request with a photo made in
headless Chromium (drag-and-drop zone's file input) that the dermatologist then opens."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from telmi.db import Database
from telmi.models import Act, ExpertiseRequest, ExpertiseStatus, Role

from .browser import poll, signed_in
from .factories import (
    PASSWORD,
    csrf_from,
    login,
    make_facility,
    make_resident,
    make_specialty,
    make_user,
)
from .test_expertise import ANSWERS, CONSENT, _png, jpeg_with_gps


async def test_specialist_takes_and_answers_from_the_thread_page(
    client: TestClient, db: Database
) -> None:
    facility = await make_facility(db)
    nurse = await make_user(db, Role.STAFF, facility=facility)
    derm = await make_user(db, Role.SPECIALIST, specialty=await make_specialty(db, "dermatologie"))
    resident = await make_resident(db, nurse, reference="R-7")
    await login(client, nurse.email, PASSWORD)
    page = await client.get("/teleexpertise/nouvelle")
    html = await page.text()
    assert f'<option value="{resident.id}">R-7</option>' in html  # the resident to choose
    meta = html.split('name="csrf-token" content="')[1].split('"')[0]
    body = {
        "specialty": "dermatologie",
        "patient_id": resident.id,
        "question": "Eczéma ?",
        "consent": CONSENT,
        "answers": ANSWERS,
    }
    draft = await (
        await client.post("/api/expertise", json=body, headers={"X-CSRF-Token": meta})
    ).json()
    photos = aiohttp.FormData()
    for name in ("main.png", "main-2.png"):  # the dermatology form wants two
        photos.add_field("photos", _png(), filename=name, content_type="image/png")
    headers = {"X-CSRF-Token": meta}
    await client.post(f"/api/expertise/{draft['id']}/photos", data=photos, headers=headers)
    sent = await client.post(f"/api/expertise/{draft['id']}/send", headers=headers)
    assert sent.status == 200, await sent.text()
    await client.post("/logout", data={"csrf_token": meta})
    await login(client, derm.email, PASSWORD)
    inbox = await (await client.get("/teleexpertise")).text()
    assert "Demandes reçues" in inbox and "R-7" in inbox
    thread = await (await client.get(f"/teleexpertise/{draft['id']}")).text()
    token = csrf_from(thread)
    taken = await client.post(
        f"/teleexpertise/{draft['id']}/prendre", data={"csrf_token": token}, allow_redirects=False
    )
    assert taken.status == 303
    empty = await client.post(
        f"/teleexpertise/{draft['id']}/reponse", data={"csrf_token": token, "body": ""}
    )
    assert empty.status == 422 and "requis" in await empty.text()
    done = await client.post(
        f"/teleexpertise/{draft['id']}/reponse",
        data={"csrf_token": token, "body": "Dermocorticoïde 7 jours."},
        allow_redirects=False,
    )
    assert done.status == 303
    async with db.read() as session:
        assert await session.scalar(select(ExpertiseRequest.status)) is ExpertiseStatus.ANSWERED
        assert len(list(await session.scalars(select(Act)))) == 1


async def test_a_request_with_a_photo_made_in_chromium_reaches_the_dermatologist(
    site: TestClient,
    db: Database,
    browser: Any,
    tmp_path: Path,  # noqa: F811
) -> None:
    facility = await make_facility(db)
    nurse = await make_user(db, Role.STAFF, facility=facility)
    derm = await make_user(db, Role.SPECIALIST, specialty=await make_specialty(db, "dermatologie"))
    resident = await make_resident(db, nurse, reference="RES-21", qualified=True)
    base = str(site.make_url("/")).rstrip("/")
    photo = tmp_path / "plaie.jpg"
    photo.write_bytes(jpeg_with_gps((640, 480)))
    second = tmp_path / "plaie-2.png"
    second.write_bytes(_png())

    page = await signed_in(browser, base, nurse.email)
    await page.goto(base + "/teleexpertise/nouvelle")
    await page.select_option("select[name=specialite]", "dermatologie")
    await page.click("text=Afficher ses questions")  # the specialty's own request form
    await page.wait_for_url(base + "/teleexpertise/nouvelle?specialite=dermatologie")
    await page.select_option("select[name=patient_id]", str(resident.id))
    await page.fill("textarea[name=question]", "Plaie du talon : avis ?")
    await page.fill('textarea[name="answers.lesion_site"]', "Talon gauche")
    await page.fill('textarea[name="answers.duration"]', "3 semaines")
    await page.select_option('select[name="answers.evolution"]', "Extension")
    await page.select_option("select[name=consent_given_by]", "resident")
    await page.select_option("select[name=consent_method]", "oral")
    await page.set_input_files("#photo-input", [str(photo), str(second)])
    await poll(page, "document.querySelectorAll('#previews img').length === 2")
    await page.click("button[value=send]")
    await page.wait_for_url(base + "/teleexpertise/*")
    assert "Envoyée" in await page.inner_text(".status")

    doc = await signed_in(browser, base, derm.email)
    await doc.goto(base + "/teleexpertise")
    await doc.click("text=Ouvrir")
    await poll(
        doc,
        "document.querySelector('.gallery img') && document.querySelector('.gallery img').naturalWidth > 0",
    )
    await doc.click("button.photo")
    await poll(
        doc,
        "document.getElementById('viewer').open && document.getElementById('viewer-image').naturalWidth === 640",
    )
    await doc.screenshot(path=str(tmp_path / "viewer.png"))
