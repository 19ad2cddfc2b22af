"""The whole record of a teleconsultation in headless Chromium, as the nurse and the
dermatologist live it: the resident with an INS, the consent, the booking, the call, the
signed report, the PDF the nurse downloads. At the suite's instant; the slot starts 5
minutes later, so the room is open."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from pypdf import PdfReader
from sqlalchemy import select

from scheduling.clock import FrozenClock
from telmi.db import Database
from telmi.models import Act, ActDocument, Booking, ConsentRecord, Patient, Report, Role

from .browser import poll, signed_in
from .factories import ins_with_key, make_facility, make_slot, make_specialty, make_user

INS = ins_with_key("2360421231012")


async def _join(page: Any, base: str, booking_id: int) -> None:
    await page.goto(f"{base}/consultation/{booking_id}")
    await poll(page, "document.getElementById('room-camera').options.length > 0")
    await page.click("#room-join")


async def test_nurse_and_dermatologist_make_a_complete_record(
    site: TestClient, db: Database, clock: FrozenClock, browser: Any, tmp_path: Path
) -> None:
    facility = await make_facility(db, name="EHPAD Les Tilleuls")
    staff = await make_user(db, Role.STAFF, facility=facility)
    specialist = await make_user(
        db, Role.SPECIALIST, specialty=await make_specialty(db, "dermatologie")
    )
    slot = await make_slot(db, specialist, clock.now() + timedelta(minutes=5))
    base = str(site.make_url("/")).rstrip("/")
    nurse = await signed_in(browser, base, staff.email)

    # The nurse enters the resident, identity qualified against her identity card.
    await nurse.goto(f"{base}/residents/nouveau")
    for field, value in (
        ("reference", "CH-2024-117"),
        ("birth_name", "Morel"),
        ("first_names", "Odette Jeanne"),
        ("used_name", "Vasseur"),
        ("birth_date", "1936-04-12"),
        ("birthplace", "21231"),
        ("ins_value", INS),
        ("doctor_name", "Dr Paul Girard"),
    ):
        await nurse.fill(f"#{field}", value)
    await nurse.select_option("#sex", "F")
    await nurse.select_option("#identity_status", "qualified")
    await nurse.select_option("#identity_document", "identity_card")
    await nurse.click("form.card button[type=submit]")
    await nurse.wait_for_url(f"{base}/residents/*")
    assert "VASSEUR" in (await nurse.inner_text("main")).upper()
    async with db.read() as session:
        patient = await session.scalar(select(Patient))
    assert patient is not None and patient.identity_status.value == "qualified"

    # She books the slot for the resident and records the resident's oral consent with it.
    await nurse.goto(f"{base}/rendez-vous/nouveau?specialite=dermatologie")
    await nurse.click(f"form[action='/rendez-vous/nouveau/{slot.id}/retenir'] button")
    await nurse.wait_for_url(f"{base}/rendez-vous/nouveau/{slot.id}*")
    await nurse.select_option("#patient_id", str(patient.id))
    await nurse.fill("#reason", "Lésion pigmentée de l'avant-bras")
    await nurse.select_option("#reponse-evolution", "Extension")  # the dermatology form
    await nurse.check("input[name='answers.pruritus'][value='oui']")
    await nurse.select_option("#consentement-given_by", "resident")
    await nurse.click("form.card button[type=submit]")
    await nurse.wait_for_url(f"{base}/rendez-vous*")
    async with db.read() as session:
        consent = await session.scalar(select(ConsentRecord))
    assert consent is not None and consent.booking_id is not None
    booking_id = consent.booking_id

    async with db.read() as session:
        booked = await session.get(Booking, booking_id)
    assert booked is not None and booked.answers == {"evolution": "Extension", "pruritus": True}

    # The call: the dermatologist sees who the resident is and what the nurse answered.
    doctor = await signed_in(browser, base, specialist.email)
    await doctor.goto(f"{base}/consultation/{booking_id}")
    summary = await doctor.inner_text(".resident-summary")
    for expected in ("VASSEUR Odette", "90 ans", "femme", "qualifiée", "Dr Paul Girard"):
        assert expected in summary, expected
    assert "Extension" in summary and "Prurit" in summary
    for page in (doctor, nurse):
        await _join(page, base, booking_id)
    for page in (doctor, nurse):
        await poll(page, "document.getElementById('room').dataset.state === 'connected'", 20)

    # The dermatologist writes the report in the room, saves a draft, then signs.
    await doctor.fill("#report-reason", "Lésion pigmentée de l'avant-bras gauche")
    await doctor.fill("#report-findings", "Lésion de 6 mm, bords réguliers, couleur homogène.")
    await doctor.fill("#report-conclusion", "Naevus bénin, pas d'exérèse nécessaire.")
    await doctor.fill("#report-recommendations", "Photographier la lésion tous les 6 mois.")
    await doctor.check("#report-follow-up")
    await doctor.fill("#report-follow-up-when", "dans six mois")
    await doctor.click("#report-save")
    await poll(doctor, "document.getElementById('report-status').innerText.includes('rouillon')")
    doctor.on("dialog", lambda dialog: dialog.accept())
    await doctor.click("#report-sign")
    await poll(doctor, "!document.getElementById('report-signed').hidden")
    digest = (await doctor.inner_text("#report-hash")).strip()
    assert len(digest) == 64

    await doctor.click("#room-end button[type=submit]")
    for page in (doctor, nurse):
        await poll(page, "document.getElementById('room').dataset.state === 'ended'")
    assert await nurse.evaluate("window.telmiRoom.tracks().every(t => t.readyState === 'ended')")

    async with db.read() as session:
        act = await session.scalar(select(Act))
        report = await session.scalar(select(Report))
        documents = (await session.scalars(select(ActDocument))).all()
    assert act is not None and act.consent_id == consent.id and act.patient_consent
    assert {p["role"] for p in act.participants or []} >= {"specialist", "staff"}
    assert report is not None and report.sha256 == digest
    assert [d.sha256 for d in documents] == [digest]

    # The nurse finds the report from « Mes rendez-vous » and downloads the PDF.
    await nurse.goto(f"{base}/rendez-vous")
    await nurse.click(f"a[href='/rendez-vous/{booking_id}/compte-rendu']")
    await nurse.wait_for_url(f"{base}/rendez-vous/{booking_id}/compte-rendu")
    assert "Naevus bénin" in await nurse.inner_text("main")
    async with nurse.expect_download() as waiting:
        await nurse.click(f"a[href='/rendez-vous/{booking_id}/compte-rendu.pdf']")
    download = await waiting.value
    pdf_path = tmp_path / "compte-rendu.pdf"
    await download.save_as(str(pdf_path))
    text = "\n".join(
        page.extract_text() or "" for page in PdfReader(io.BytesIO(pdf_path.read_bytes())).pages
    )
    flat = " ".join(text.split())
    for expected in (
        "EHPAD Les Tilleuls",
        facility.finess,
        specialist.full_name,
        specialist.rpps or "",
        "Morel",
        "Odette Jeanne",
        "Vasseur",
        "féminin",
        "12 avril 1936",
        "21231",
        INS,
        "1.2.250.1.213.1.4.8",
        "qualifiée",
        "10 juin 2026 à 10:00",  # the act, Paris time
        "Téléconsultation",
        f"{staff.full_name} (personnel de l'établissement)",
        f"{specialist.full_name} (spécialiste)",
        "Donné par : le résident",
        "Naevus bénin, pas d'exérèse nécessaire.",
        "dans six mois",
        digest,
    ):
        assert expected.replace(" ", "") in flat.replace(" ", ""), expected
