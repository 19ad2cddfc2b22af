"""The report of an act over the real app: drafted during or after the call, signed once
(its hash in the act record), corrected by signed addenda, read and downloaded as a PDF by
the facility and the specialist only; the act record lists who was in the room."""

from __future__ import annotations

import io
import json
import uuid
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pypdf
import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from scheduling.clock import FrozenClock
from telmi import consultations, patients, reports
from telmi.context import Context
from telmi.db import Database
from telmi.models import (
    Act,
    ActDocument,
    AuditEvent,
    Notification,
    Report,
    ReportAddendum,
    ReportStatus,
    Role,
    User,
)

from .browser import poll, signed_in
from .factories import (
    NOW,
    VAULT,
    bearer,
    ins_with_key,
    make_facility,
    make_slot,
    make_specialty,
    make_user,
)

INS = ins_with_key("2360421231012")
PARIS = ZoneInfo("Europe/Paris")
CONCLUSION = "Lésion bénigne : kératose séborrhéique, pas d'exérèse."
REPORT: dict[str, Any] = {
    "reason": "Lésion pigmentée de la joue droite.",
    "findings": "Macule brune de 8 mm, bords réguliers.",
    "conclusion": CONCLUSION,
    "recommendations": "Photographier la lésion chaque mois.",
    "prescriptions": "Crème émolliente, deux fois par jour.",
    "follow_up_needed": True,
    "follow_up_when": "dans trois mois",
}


async def make_resident(db: Database, staff: User, **_: object) -> patients.Resident:
    """A resident with a qualified identity, through the service (as JSON: its enums as text)."""
    new = patients.ResidentInput.model_validate_json(
        json.dumps(
            {
                "reference": f"R-{uuid.uuid4().hex[:8]}",
                "birth_name": "MARTIN",
                "first_names": "Jeanne Marie",
                "sex": "F",
                "birth_date": "1936-04-12",
                "birthplace": "21231",
                "ins": {"value": INS},
                "identity_status": "qualified",
                "identity_document": "identity_card",
            }
        )
    )
    async with db.write() as session:
        return await patients.create(session, Context(staff, NOW), new, vault=VAULT, tz=PARIS)


@pytest.fixture
async def visit(client: TestClient, db: Database, clock: FrozenClock) -> dict[str, Any]:
    return await _visit(client, db, clock)


async def _visit(client: TestClient, db: Database, clock: FrozenClock) -> dict[str, Any]:
    """A confirmed, consented booking of « EHPAD Les Tilleuls » with a dermatologist, in ten
    minutes, for a resident with a qualified identity."""
    home = await make_facility(db, name="EHPAD Les Tilleuls")
    elsewhere = await make_facility(db, name="EHPAD B")
    staff = await make_user(db, Role.STAFF, facility=home)
    specialist = await make_user(db, Role.SPECIALIST)
    resident = await make_resident(db, staff, qualified=True)
    slot = await make_slot(db, specialist, clock.now() + timedelta(minutes=10), minutes=30)
    hs, ha = await bearer(db, specialist), await bearer(db, staff)
    booked = await client.post(
        "/api/bookings",
        json={"slot_id": slot.id, "patient_id": resident.id, "act_type": "teleconsultation"},
        headers={**ha, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert booked.status == 201, await booked.text()
    booking_id = (await booked.json())["id"]
    agreed = await client.post(
        f"/api/bookings/{booking_id}/consent",
        json={"given_by": "resident", "method": "oral"},
        headers=ha,
    )
    assert agreed.status == 201, await agreed.text()  # the specialist's join needs it
    return {
        "booking_id": booking_id,
        "api": f"/api/bookings/{booking_id}/report",
        "page": f"/rendez-vous/{booking_id}/compte-rendu",
        "facility": home,
        "staff": staff,
        "specialist": specialist,
        "resident": resident,
        "hs": hs,
        "ha": ha,
        "hb": await bearer(db, await make_user(db, Role.STAFF, facility=elsewhere)),
        "hother": await bearer(db, await make_user(db, Role.SPECIALIST)),
        "hregional": await bearer(db, await make_user(db, Role.REGIONAL)),
    }


async def _call(
    client: TestClient, db: Database, clock: FrozenClock, visit: dict[str, Any]
) -> dict[str, Any]:
    """Both sides join; the specialist, the nurse and an admitted guest are in the room."""
    booking_id = visit["booking_id"]
    doc = await client.post(f"/api/bookings/{booking_id}/join", headers=visit["hs"])
    assert doc.status == 200, await doc.text()
    ticket = await doc.json()
    assert (
        await client.post(f"/api/bookings/{booking_id}/join", headers=visit["ha"])
    ).status == 200
    invited = await client.post(
        f"/api/bookings/{booking_id}/invites",
        json={"label": "Fils du résident"},
        headers=visit["ha"],
    )
    assert invited.status == 201
    invite_id = (await invited.json())["invite_id"]
    clock.advance(timedelta(minutes=10))
    async with db.write() as session:
        for identity, role in (
            (f"user:{visit['specialist'].id}", "specialist"),
            (f"user:{visit['staff'].id}", "staff"),
            (f"invite:{invite_id}", "guest"),
        ):
            await consultations.record_presence(
                session, ticket["room_id"], identity, role, now=clock.now()
            )
    return ticket


async def _end(
    client: TestClient, clock: FrozenClock, visit: dict[str, Any], ticket: dict[str, Any]
) -> None:
    clock.advance(timedelta(minutes=20))
    ended = await client.post(
        f"/api/consultations/{ticket['consultation_id']}/end",
        json={"outcome": "Consultation réalisée", "incidents": "coupure du son deux minutes"},
        headers=visit["hs"],
    )
    assert ended.status == 200, await ended.text()


async def _documents(db: Database) -> list[tuple[str, str, str]]:
    async with db.read() as session:
        rows = await session.execute(
            select(ActDocument.kind, ActDocument.sha256, Act.source_key)
            .join(Act, Act.id == ActDocument.act_id)
            .order_by(ActDocument.id)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


def _recomputed(signed: dict[str, Any]) -> str:
    return reports.report_hash(
        {name: signed[name] for name in reports.SECTIONS},
        booking_id=signed["booking_id"],
        expertise_request_id=signed["expertise_request_id"],
        author_id=signed["author"]["id"],
        signed_at=datetime.fromisoformat(signed["signed_at"]),
    )


async def test_drafts_then_signed_during_the_call_and_the_end_attaches_the_hash(
    client: TestClient, db: Database, clock: FrozenClock, visit: dict[str, Any]
) -> None:
    api, hs, ha = visit["api"], visit["hs"], visit["ha"]
    early = await client.put(api, json={"reason": "Avant l'appel"}, headers=hs)
    assert early.status == 409 and (await early.json())["error"]["code"] == "report_not_open"
    ticket = await _call(client, db, clock, visit)

    first = await client.put(api, json={"reason": REPORT["reason"]}, headers=hs)
    assert first.status == 200 and (await first.json())["status"] == "draft"
    again = await client.put(api, json={**REPORT, "conclusion": "à revoir"}, headers=hs)
    draft = await again.json()
    assert draft["id"] == (await first.json())["id"] and draft["conclusion"] == "à revoir"
    assert (await client.get(api, headers=ha)).status == 404  # a draft is its author's
    assert (await (await client.get(api, headers=hs)).json())["findings"] == REPORT["findings"]
    assert (await client.put(api, json=REPORT, headers=ha)).status == 403  # staff write none

    signed_response = await client.post(f"{api}/sign", json=REPORT, headers=hs)
    assert signed_response.status == 200, await signed_response.text()
    signed = await signed_response.json()
    assert signed["status"] == "signed" and signed["conclusion"] == CONCLUSION
    assert signed["sha256"] == _recomputed(signed)
    async with db.read() as session:
        stored = await session.scalar(select(Report))
    assert stored is not None and stored.sha256 == signed["sha256"]
    assert stored.status is ReportStatus.SIGNED
    assert await _documents(db) == []  # no act yet: the end attaches it

    twice = await client.post(f"{api}/sign", json=REPORT, headers=hs)
    assert twice.status == 409 and (await twice.json())["error"]["code"] == "report_signed"
    edited = await client.put(api, json={**REPORT, "conclusion": "autre"}, headers=hs)
    assert edited.status == 409
    await _end(client, clock, visit, ticket)
    source = consultations.source_key(ticket["consultation_id"])
    assert await _documents(db) == [("report", signed["sha256"], source)]
    read = await (await client.get(api, headers=ha)).json()  # the facility reads it now
    assert read["conclusion"] == CONCLUSION and read["sha256"] == signed["sha256"]


async def test_signed_after_the_end_then_an_addendum_with_its_own_hash(
    client: TestClient, db: Database, clock: FrozenClock, visit: dict[str, Any]
) -> None:
    api, hs = visit["api"], visit["hs"]
    ticket = await _call(client, db, clock, visit)
    await _end(client, clock, visit, ticket)
    assert (
        await client.post(f"{api}/addenda", json={"body": "Trop tôt"}, headers=hs)
    ).status == 404
    assert (await client.put(api, json=REPORT, headers=hs)).status == 200  # after the call
    signed = await (await client.post(f"{api}/sign", json=REPORT, headers=hs)).json()
    source = consultations.source_key(ticket["consultation_id"])
    assert await _documents(db) == [("report", signed["sha256"], source)]

    note = "Précision : la lésion mesure 9 mm à la relecture des photos."
    refused = await client.post(f"{api}/addenda", json={"body": note}, headers=visit["hother"])
    assert refused.status == 404
    assert (
        await client.post(f"{api}/addenda", json={"body": note}, headers=visit["ha"])
    ).status == 403
    added = await client.post(f"{api}/addenda", json={"body": note}, headers=hs)
    assert added.status == 201, await added.text()
    addendum = (await added.json())["addenda"][0]
    assert addendum["body"] == note and addendum["sha256"] != signed["sha256"]
    assert addendum["sha256"] == reports.addendum_hash(
        report_sha256=signed["sha256"],
        number=1,
        author_id=visit["specialist"].id,
        body=note,
        signed_at=datetime.fromisoformat(addendum["signed_at"]),
    )
    repeated = await client.post(f"{api}/addenda", json={"body": note}, headers=hs)
    assert repeated.status == 201  # the same text at the same instant: a second addendum
    second = (await repeated.json())["addenda"][1]
    assert second["sha256"] not in (addendum["sha256"], signed["sha256"])
    assert await _documents(db) == [
        ("report", signed["sha256"], source),
        ("addendum", addendum["sha256"], source),
        ("addendum", second["sha256"], source),
    ]
    async with db.read() as session:  # the report itself did not change
        stored = await session.scalar(select(Report))
    assert stored is not None and stored.sha256 == signed["sha256"]
    assert stored.conclusion == CONCLUSION


async def test_signing_needs_a_conclusion_and_writes_nothing_without_one(
    client: TestClient, db: Database, clock: FrozenClock, visit: dict[str, Any]
) -> None:
    api, hs = visit["api"], visit["hs"]
    await _call(client, db, clock, visit)
    for body in ({**REPORT, "conclusion": "   "}, {"reason": "Sans conclusion"}):
        refused = await client.post(f"{api}/sign", json=body, headers=hs)
        assert refused.status == 422, body
        assert (await refused.json())["error"]["field"] == "conclusion"
    long = await client.put(api, json={"follow_up_when": "x" * 201}, headers=hs)
    assert long.status == 422 and (await long.json())["error"]["field"] == "follow_up_when"
    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(Report)) == 0


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # its trigger
async def test_postgresql_refuses_any_change_to_a_signed_report(
    client: TestClient, db: Database, clock: FrozenClock, visit: dict[str, Any]
) -> None:
    await _call(client, db, clock, visit)
    signed = await client.post(f"{visit['api']}/sign", json=REPORT, headers=visit["hs"])
    report_id = (await signed.json())["id"]
    for statement in (
        "UPDATE reports SET conclusion = 'falsifiée' WHERE id = :id",
        "DELETE FROM reports WHERE id = :id",
    ):
        with pytest.raises(DBAPIError, match="signed"):
            async with db.write() as session:
                await session.execute(text(statement), {"id": report_id})
    added = await client.post(
        f"{visit['api']}/addenda", json={"body": "Complément"}, headers=visit["hs"]
    )
    assert added.status == 201
    with pytest.raises(DBAPIError, match="append-only"):
        async with db.write() as session:
            await session.execute(text("UPDATE report_addenda SET body = 'autre'"))
    async with db.read() as session:
        assert await session.scalar(select(Report.conclusion)) == CONCLUSION
        assert await session.scalar(select(ReportAddendum.body)) == "Complément"


async def test_only_the_facility_and_the_specialist_read_the_report_and_its_pdf(
    client: TestClient, db: Database, clock: FrozenClock, visit: dict[str, Any]
) -> None:
    api, page = visit["api"], visit["page"]
    await _call(client, db, clock, visit)
    assert (await client.post(f"{api}/sign", json=REPORT, headers=visit["hs"])).status == 200
    for who in ("hb", "hother", "hregional"):
        for path in (api, f"{api}.pdf", page, f"{page}.pdf"):
            response = await client.get(path, headers=visit[who])
            assert response.status == 404, (who, path)
    missing = f"/api/bookings/{visit['booking_id'] + 1000}/report"
    assert (await client.get(missing, headers=visit["hs"])).status == 404
    for who in ("ha", "hs"):
        for path in (api, f"{api}.pdf", page, f"{page}.pdf"):
            assert (await client.get(path, headers=visit[who])).status == 200, (who, path)
    async with db.read() as session:
        events = (
            await session.execute(
                select(AuditEvent.action, AuditEvent.patient_id).where(
                    AuditEvent.action.in_(("report.read", "report.pdf"))
                )
            )
        ).all()
    assert len(events) == 8  # every read names the resident, refused ones write nothing
    assert {patient for _, patient in events} == {visit["resident"].id}


def _pdf_text(data: bytes) -> str:
    reader = pypdf.PdfReader(io.BytesIO(data))
    return " ".join(" ".join(page.extract_text().split()) for page in reader.pages)


async def test_the_pdf_carries_the_act_the_resident_the_consent_and_the_signed_report(
    client: TestClient, db: Database, clock: FrozenClock, visit: dict[str, Any]
) -> None:
    api = visit["api"]
    ticket = await _call(client, db, clock, visit)
    await _end(client, clock, visit, ticket)
    signed = await (await client.post(f"{api}/sign", json=REPORT, headers=visit["hs"])).json()
    note = "Addendum : contrôle dermatoscopique normal."
    await client.post(f"{api}/addenda", json={"body": note}, headers=visit["hs"])
    response = await client.get(f"{api}.pdf", headers=visit["ha"])
    assert response.status == 200
    assert response.content_type == "application/pdf"
    assert response.headers["Cache-Control"] == "no-store"
    disposition = response.headers["Content-Disposition"]
    assert disposition == f'attachment; filename="compte-rendu-{signed["id"]}.pdf"'
    data = await response.read()
    assert data.startswith(b"%PDF-")
    shown = _pdf_text(data)
    facility, specialist = visit["facility"], visit["specialist"]
    staff = visit["staff"]
    for needle in (
        "EHPAD Les Tilleuls",
        facility.finess,
        specialist.full_name,
        specialist.rpps,
        "Dermatologie",
        "MARTIN",
        "Jeanne Marie",
        "12 avril 1936",
        "21231",
        INS,
        "qualifiée",
        "10 juin 2026 à 10:10",  # the act began when both sides were in
        "Téléconsultation",
        f"{specialist.full_name} (spécialiste)",
        f"{staff.full_name} (personnel de l'établissement)",
        "Fils du résident (invité)",
        "le résident",
        "orale",
        "coupure du son deux minutes",
        REPORT["findings"],
        CONCLUSION,
        REPORT["prescriptions"],
        "dans trois mois",
        signed["sha256"],
        note,
    ):
        assert needle in shown, needle
    page_pdf = await client.get(f"{visit['page']}.pdf", headers=visit["hs"])
    assert await page_pdf.read() == data  # the same document, whoever downloads it


async def test_the_facility_is_told_a_report_exists_and_nothing_else(
    client: TestClient, db: Database, clock: FrozenClock, visit: dict[str, Any]
) -> None:
    await _call(client, db, clock, visit)
    await client.post(f"{visit['api']}/sign", json=REPORT, headers=visit["hs"])
    async with db.read() as session:
        notices = list(
            await session.scalars(select(Notification).where(Notification.kind == "compte-rendu"))
        )
    assert len(notices) == 1
    notice = notices[0]
    assert notice.user_id == visit["staff"].id
    assert "compte rendu" in notice.subject.lower()
    link = f"http://127.0.0.1:8080/rendez-vous/{visit['booking_id']}/compte-rendu"
    assert link in notice.body
    resident = visit["resident"]
    mail = notice.subject + notice.body
    for secret in (
        resident.reference,
        "MARTIN",
        "Jeanne",
        INS,
        "1936",
        CONCLUSION,
        REPORT["reason"],
        "Lésion",
    ):
        assert secret not in mail, secret


async def test_the_act_record_lists_everyone_in_the_room_and_the_incidents(
    client: TestClient, db: Database, clock: FrozenClock, visit: dict[str, Any]
) -> None:
    ticket = await _call(client, db, clock, visit)
    await _end(client, clock, visit, ticket)
    async with db.read() as session:
        act = await session.scalar(select(Act))
    assert act is not None and act.incidents == "coupure du son deux minutes"
    assert act.participants is not None
    assert [(p["role"], p["name"]) for p in act.participants] == [
        ("specialist", visit["specialist"].full_name),
        ("staff", visit["staff"].full_name),
        ("guest", "Fils du résident"),
    ]
    assert (
        await client.post(f"{visit['api']}/sign", json=REPORT, headers=visit["hs"])
    ).status == 200
    page = await client.get(visit["page"], headers=visit["ha"])
    html = await page.text()
    assert page.status == 200
    for needle in (
        f"{visit['staff'].full_name} — personnel de l&#39;établissement",
        f"{visit['specialist'].full_name} — spécialiste",
        "Fils du résident — invité",
        "coupure du son deux minutes",
        CONCLUSION.replace("'", "&#39;"),
        f"{visit['page']}.pdf",
    ):
        assert needle in html, needle


async def test_the_lists_link_the_signed_report_and_the_page_offers_the_editor(
    client: TestClient, db: Database, clock: FrozenClock, visit: dict[str, Any]
) -> None:
    ticket = await _call(client, db, clock, visit)
    await _end(client, clock, visit, ticket)
    agenda = await (await client.get("/agenda", headers=visit["hs"])).text()
    assert "Compte rendu à rédiger" in agenda and visit["page"] in agenda
    editor = await (await client.get(visit["page"], headers=visit["hs"])).text()
    assert 'id="report-editor"' in editor and "Signer le compte rendu" in editor
    staff_view = await (await client.get(visit["page"], headers=visit["ha"])).text()
    assert 'id="report-editor"' not in staff_view and "pas encore signé" in staff_view
    assert visit["page"] not in await (await client.get("/rendez-vous", headers=visit["ha"])).text()

    await client.post(f"{visit['api']}/sign", json=REPORT, headers=visit["hs"])
    bookings = await (await client.get("/rendez-vous", headers=visit["ha"])).text()
    assert f'href="{visit["page"]}"' in bookings
    agenda = await (await client.get("/agenda", headers=visit["hs"])).text()
    assert "Compte rendu à rédiger" not in agenda and visit["page"] in agenda
    signed_view = await (await client.get(visit["page"], headers=visit["hs"])).text()
    assert 'id="report-editor"' not in signed_view and "Ajouter un addendum" in signed_view
    room = f"/consultation/{visit['booking_id']}"
    assert 'id="report-editor"' in await (await client.get(room, headers=visit["hs"])).text()
    assert 'id="report-editor"' not in await (await client.get(room, headers=visit["ha"])).text()


async def test_a_tele_expertise_answer_is_its_signed_report_and_the_act_gets_its_hash(
    client: TestClient, db: Database
) -> None:
    home, elsewhere = await make_facility(db, name="EHPAD A"), await make_facility(db)
    rheum = await make_specialty(db, "rhumatologie")
    nurse = await make_user(db, Role.STAFF, facility=home)
    doctor = await make_user(db, Role.SPECIALIST, specialty=rheum)
    colleague = await make_user(db, Role.SPECIALIST, specialty=rheum)
    resident = await make_resident(db, nurse, qualified=True)
    hn, hd = await bearer(db, nurse), await bearer(db, doctor)
    created = await client.post(
        "/api/expertise",
        json={
            "specialty": "rhumatologie",
            "patient_id": resident.id,
            "question": "Gonalgie droite : ponction ?",
            "consent": {"given_by": "resident", "method": "written"},
        },
        headers=hn,
    )
    assert created.status == 201, await created.text()
    request_id = (await created.json())["id"]
    for step, headers in (("send", hn), ("take", hd)):
        moved = await client.post(f"/api/expertise/{request_id}/{step}", headers=headers)
        assert moved.status == 200, (step, await moved.text())
    answered = await client.post(
        f"/api/expertise/{request_id}/answer",
        json={"body": "Pas de ponction ; antalgiques.", "findings": "Genou sec, mobile."},
        headers=hd,
    )
    assert answered.status == 200, await answered.text()

    api = f"/api/expertise/{request_id}/report"
    report = await (await client.get(api, headers=hn)).json()
    assert report["status"] == "signed" and report["conclusion"] == "Pas de ponction ; antalgiques."
    assert (
        report["findings"] == "Genou sec, mobile." and report["expertise_request_id"] == request_id
    )
    assert report["sha256"] == _recomputed(report)
    assert await _documents(db) == [("report", report["sha256"], f"expertise:{request_id}")]
    for headers in (
        await bearer(db, colleague),
        await bearer(db, await make_user(db, facility=elsewhere)),
    ):
        assert (await client.get(api, headers=headers)).status == 404
        assert (await client.get(f"{api}.pdf", headers=headers)).status == 404
    pdf = await client.get(f"/teleexpertise/{request_id}/compte-rendu.pdf", headers=hn)
    assert pdf.status == 200
    shown = _pdf_text(await pdf.read())
    for needle in (
        "Téléexpertise",
        "Pas de ponction",
        "écrite",
        report["sha256"],
        "MARTIN",
        f"{doctor.full_name} (spécialiste)",
        f"{nurse.full_name} (personnel de l'établissement)",
    ):
        assert needle in shown, needle
    thread = await (await client.get(f"/teleexpertise/{request_id}", headers=hn)).text()
    assert report["sha256"] in thread and f"/teleexpertise/{request_id}/compte-rendu.pdf" in thread


async def test_the_specialist_drafts_signs_and_adds_an_addendum_in_chromium(
    site: TestClient, db: Database, clock: FrozenClock, browser: Any
) -> None:
    """The report page after the call (report.js saves and signs through the API), then the
    room's panel showing the signed report and taking an addendum."""
    visit = await _visit(site, db, clock)
    await _end(site, clock, visit, await _call(site, db, clock, visit))
    base = str(site.make_url("/")).rstrip("/")
    doctor = await signed_in(browser, base, visit["specialist"].email)
    errors: list[str] = []
    doctor.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    await doctor.goto(base + visit["page"])
    await doctor.fill("#report-reason", REPORT["reason"])
    await doctor.fill("#report-conclusion", CONCLUSION)
    await doctor.check("#report-follow-up")
    await doctor.fill("#report-follow-up-when", "dans trois mois")
    await doctor.click("#report-save")
    await poll(
        doctor, "document.getElementById('report-status').textContent.includes('enregistré')"
    )
    async with db.read() as session:
        draft = await session.scalar(select(Report))
    assert draft is not None and draft.status is ReportStatus.DRAFT
    assert draft.conclusion == CONCLUSION and draft.follow_up_needed is True
    assert doctor.url == base + visit["page"]  # saved through the API, no page load

    doctor.once("dialog", lambda dialog: dialog.accept())
    await doctor.click("#report-sign")
    await doctor.wait_for_url("**/compte-rendu?ok=signe")
    async with db.read() as session:
        signed = await session.scalar(select(Report).execution_options(populate_existing=True))
    assert signed is not None and signed.status is ReportStatus.SIGNED
    shown = await doctor.inner_text("main")
    assert "Compte rendu signé par" in shown and str(signed.sha256) in shown

    await doctor.goto(f"{base}/consultation/{visit['booking_id']}")
    await poll(doctor, "!document.getElementById('report-signed').hidden")
    assert await doctor.inner_text("#report-hash") == signed.sha256
    assert not await doctor.is_visible("#report-form")
    await doctor.fill("#report-addendum", "Complément : photos reçues, rien à ajouter.")
    await doctor.click("#report-addendum-form button[type=submit]")
    await poll(doctor, "document.querySelectorAll('#report-addenda article').length === 1")
    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(ReportAddendum)) == 1
    assert [e for e in errors if "Content Security Policy" in e] == []


async def test_the_report_page_forms_work_without_javascript(
    client: TestClient, db: Database, clock: FrozenClock, visit: dict[str, Any]
) -> None:
    page, hs = visit["page"], visit["hs"]
    await _call(client, db, clock, visit)
    form = {k: v for k, v in REPORT.items() if k != "follow_up_needed"} | {"follow_up_needed": "on"}
    saved = await client.post(
        page, data={**form, "action": "enregistrer"}, headers=hs, allow_redirects=False
    )
    assert saved.status == 303 and saved.headers["Location"].endswith("?ok=brouillon")
    refused = await client.post(
        page, data={**form, "conclusion": " ", "action": "signer"}, headers=hs
    )
    assert refused.status == 422 and "conclusion" in await refused.text()
    signed = await client.post(
        page, data={**form, "action": "signer"}, headers=hs, allow_redirects=False
    )
    assert signed.status == 303 and signed.headers["Location"].endswith("?ok=signe")
    added = await client.post(
        f"{page}/addendum", data={"body": "Complément."}, headers=hs, allow_redirects=False
    )
    assert added.status == 303
    async with db.read() as session:
        report = await session.scalar(select(Report))
        addenda = await session.scalar(select(func.count()).select_from(ReportAddendum))
    assert report is not None and report.status is ReportStatus.SIGNED
    assert report.follow_up_needed is True and report.conclusion == CONCLUSION and addenda == 1
    shown = await (await client.get(f"{page}?ok=signe", headers=visit["ha"])).text()
    assert "l&#39;établissement en est averti" in shown and str(report.sha256) in shown
