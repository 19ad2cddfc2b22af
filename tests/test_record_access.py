"""« Accès au dossier »: every read of a resident is listed for them, exported as CSV, kept
for the retention period only, and never edited."""

from __future__ import annotations

import ast
import csv
import io
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from scheduling.clock import FrozenClock
from telmi import audit, booking, jobs, patients, record_access
from telmi.context import Context
from telmi.db import Database
from telmi.models import ActType, AuditEvent, IdentityDocument, IdentityStatus, Role, User
from telmi.paging import DEFAULT_LIMIT
from telmi.settings import Settings

from .factories import (
    NOW,
    VAULT,
    login,
    make_facility,
    make_resident,
    make_slot,
    make_specialty,
    make_user,
    page_csrf,
)

ROOT = Path(__file__).resolve().parent.parent / "telmi"
PARIS = ZoneInfo("Europe/Paris")
NURSE_ADDRESS = "192.0.2.10"
DOCTOR_ADDRESS = "198.51.100.7"


async def _world(db: Database) -> dict[str, Any]:
    """A nursing home with a nurse and a resident booked with a neurologist (a specialty
    without a request form), and a second facility with its own resident."""
    home = await make_facility(db, name="EHPAD Les Tilleuls")
    nurse = await make_user(db, Role.STAFF, facility=home)
    resident = await make_resident(
        db,
        nurse,
        reference="CH-2024-117",
        qualified=True,
        # The factory's strings are refused by the strict model: the enums themselves.
        identity_status=IdentityStatus.QUALIFIED,
        identity_document=IdentityDocument.IDENTITY_CARD,
    )
    doctor = await make_user(db, Role.SPECIALIST, specialty=await make_specialty(db, "neurologie"))
    slot = await make_slot(db, doctor, NOW + timedelta(days=1))
    async with db.write() as session:
        await booking.book(
            session,
            Context(nurse, NOW),
            booking.NewBooking(
                slot_id=slot.id, patient_id=resident.id, act_type=ActType.TELECONSULTATION
            ),
        )
    other_home = await make_facility(db, name="EHPAD Les Charmes")
    other_nurse = await make_user(db, Role.STAFF, facility=other_home)
    other = await make_resident(db, other_nurse, reference="CH-2024-117")
    return {
        "home": home,
        "nurse": nurse,
        "resident": resident,
        "doctor": doctor,
        "other_nurse": other_nurse,
        "other": other,
        "admin": await make_user(db, Role.ADMIN),
    }


async def _read(db: Database, user: User, patient_id: int, at: datetime, address: str) -> None:
    async with db.write() as session:
        await patients.get(session, Context(user, at, address), patient_id, vault=VAULT)


async def test_a_residents_log_lists_who_read_it_when_and_from_where(db: Database) -> None:
    w = await _world(db)
    resident = w["resident"]
    await _read(db, w["nurse"], resident.id, NOW + timedelta(hours=1), NURSE_ADDRESS)
    await _read(db, w["doctor"], resident.id, NOW + timedelta(hours=2), DOCTOR_ADDRESS)
    await _read(db, w["other_nurse"], w["other"].id, NOW + timedelta(hours=2), NURSE_ADDRESS)

    admin_ctx = Context(w["admin"], NOW + timedelta(hours=3), "203.0.113.5")
    async with db.write() as session:
        page = await record_access.events_for_resident(session, admin_ctx, resident.id)

    assert page.resident.reference == "CH-2024-117"
    assert page.resident.facility == "EHPAD Les Tilleuls"
    doctor_read, nurse_read = page.events[:2]  # newest first
    assert (doctor_read.what, doctor_read.actor, doctor_read.role) == (
        "a consulté le dossier",
        w["doctor"].full_name,
        "Médecin spécialiste",
    )
    assert doctor_read.address == DOCTOR_ADDRESS and doctor_read.facility == ""
    assert doctor_read.at == NOW + timedelta(hours=2)
    assert (nurse_read.actor, nurse_read.facility, nurse_read.address) == (
        w["nurse"].full_name,
        "EHPAD Les Tilleuls",
        NURSE_ADDRESS,
    )
    assert nurse_read.role == "Personnel de l'établissement"
    assert "a créé le dossier" in [e.what for e in page.events]
    # The other facility's resident, same reference, is not in this log.
    assert all(e.actor != w["other_nurse"].full_name for e in page.events)
    assert page.next_key is None

    async with db.read() as session:
        seen = (
            await session.scalars(select(AuditEvent).where(AuditEvent.action == "access_log.read"))
        ).one()
    assert seen.actor_id == w["admin"].id and seen.address == "203.0.113.5"
    assert seen.patient_id is None and seen.target_id == str(resident.id)  # not a record read


async def test_the_log_is_paginated_by_a_cursor_newest_first(db: Database) -> None:
    w = await _world(db)
    resident = w["resident"]
    for hour in range(1, 6):
        await _read(db, w["nurse"], resident.id, NOW + timedelta(hours=hour), NURSE_ADDRESS)
    async with db.read() as session:
        expected = list(
            await session.scalars(
                select(AuditEvent.id)
                .where(AuditEvent.patient_id == resident.id)
                .order_by(AuditEvent.id.desc())
            )
        )
    assert len(expected) >= 6  # the creation and five reads
    seen: list[int] = []
    cursor = None
    ctx = Context(w["admin"], NOW + timedelta(hours=8))
    for _ in range(10):
        async with db.write() as session:
            page = await record_access.events_for_resident(
                session, ctx, resident.id, after=cursor, limit=2
            )
        assert len(page.events) <= 2
        seen += [e.id for e in page.events]
        cursor = page.next_key
        if cursor is None:
            break
    assert seen == expected


async def test_the_csv_export_is_for_a_spreadsheet_in_french(db: Database) -> None:
    w = await _world(db)
    resident = w["resident"]
    await _read(db, w["nurse"], resident.id, NOW + timedelta(hours=1), NURSE_ADDRESS)
    async with db.write() as session:
        ref, body = await record_access.csv_for_resident(
            session, Context(w["admin"], NOW + timedelta(hours=2)), resident.id, tz=PARIS
        )
    assert ref.id == resident.id
    assert body.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(body.removeprefix("\ufeff")), delimiter=";"))
    assert rows[0] == [
        "N° d'évènement",
        "Date et heure (heure de Paris)",
        "Personne",
        "Rôle",
        "Établissement",
        "Action",
        "Adresse",
    ]
    assert rows[1][5] == "a créé le dossier"  # oldest first
    read = next(r for r in rows[1:] if r[5] == "a consulté le dossier")
    assert read[1:] == [
        "10/06/2026 11:00:00",  # 09:00 UTC, summer time in Paris
        w["nurse"].full_name,
        "Personnel de l'établissement",
        "EHPAD Les Tilleuls",
        "a consulté le dossier",
        NURSE_ADDRESS,
    ]
    assert resident.birth_name not in body and resident.first_names not in body
    async with db.read() as session:
        exported = await session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == "access_log.exported", AuditEvent.patient_id.is_(None))
        )
    assert exported == 1


async def test_staff_read_their_own_residents_log_only(db: Database) -> None:
    w = await _world(db)
    async with db.write() as session:
        mine = await record_access.events_for_resident(
            session, Context(w["nurse"], NOW), w["resident"].id
        )
        assert mine.events
        with pytest.raises(record_access.NotFound):
            await record_access.events_for_resident(
                session, Context(w["other_nurse"], NOW), w["resident"].id
            )
        with pytest.raises(record_access.Forbidden):
            await record_access.events_for_resident(
                session, Context(w["doctor"], NOW), w["resident"].id
            )


async def test_admins_find_a_resident_by_facility_and_reference_on_the_page(
    client: TestClient, db: Database
) -> None:
    w = await _world(db)
    resident = w["resident"]
    await _read(db, w["nurse"], resident.id, NOW - timedelta(hours=1), NURSE_ADDRESS)
    await login(client, w["admin"].email)
    form = await client.get("/acces-dossier")
    assert form.status == 200
    html = await form.text()
    assert "EHPAD Les Tilleuls" in html and "Accès au dossier" in html
    token = await page_csrf(client, "/acces-dossier")

    wrong = await client.post(
        "/acces-dossier",
        data={"facility_id": str(w["home"].id), "reference": "CH-0000", "csrf_token": token},
    )
    assert wrong.status == 422
    assert "Aucun résident de cet établissement" in await wrong.text()

    found = await client.post(
        "/acces-dossier",
        data={"facility_id": str(w["home"].id), "reference": "CH-2024-117", "csrf_token": token},
        allow_redirects=False,
    )
    assert found.status == 303
    assert found.headers["Location"] == f"/acces-dossier/{resident.id}"  # no reference in it
    page = await client.get(found.headers["Location"])
    assert page.status == 200
    html = await page.text()
    assert "a consulté le dossier" in html and w["nurse"].full_name in html
    assert NURSE_ADDRESS in html and "CH-2024-117" in html
    assert "09:00:00" in html  # 07:00 UTC in Paris
    assert resident.birth_name not in html and resident.first_names not in html

    export = await client.get(f"/acces-dossier/{resident.id}/export.csv")
    assert export.status == 200
    assert export.content_type == "text/csv" and export.charset == "utf-8"
    assert re.fullmatch(
        rf'attachment; filename="acces-dossier-{resident.id}-2026-06-10\.csv"',
        export.headers["Content-Disposition"],
    )
    raw = await export.read()
    assert raw.startswith(b"\xef\xbb\xbf")
    lines = raw.decode("utf-8-sig").splitlines()
    assert lines[0].split(";")[:3] == [
        "N° d'évènement",
        "Date et heure (heure de Paris)",
        "Personne",
    ]
    assert any("a consulté le dossier" in line and NURSE_ADDRESS in line for line in lines[1:])


async def test_the_page_cursor_walks_to_older_events(client: TestClient, db: Database) -> None:
    w = await _world(db)
    resident = w["resident"]
    for minutes in range(1, 61):
        async with db.write() as session:
            await audit.record(
                session,
                "patient.read",
                actor=w["nurse"],
                at=NOW - timedelta(minutes=minutes),
                patient_id=resident.id,
                target_type="patient",
                target_id=resident.id,
            )
    await login(client, w["admin"].email)
    first = await (await client.get(f"/acces-dossier/{resident.id}")).text()
    assert first.count('id="evenement-') == DEFAULT_LIMIT
    older = re.search(r'href="([^"]*curseur=[^"]*)" rel="next"', first)
    assert older is not None
    second = await (await client.get(older.group(1).replace("&amp;", "&"))).text()
    assert 0 < second.count('id="evenement-') <= 61 - DEFAULT_LIMIT + 1
    last_shown = re.findall(r'id="evenement-(\d+)"', first)[-1]
    assert f'id="evenement-{last_shown}"' not in second  # strictly older
    assert "Première page" in second
    assert (await client.get(f"/acces-dossier/{resident.id}?curseur=x")).status == 422


@pytest.mark.parametrize("role", ["specialist", "regional", "other_staff"])
async def test_others_get_403_or_the_404_of_a_missing_resident(
    client: TestClient, db: Database, role: str
) -> None:
    w = await _world(db)
    who = {
        "specialist": w["doctor"],  # the resident's own specialist: still not the log
        "regional": await make_user(db, Role.REGIONAL, departement="21"),
        "other_staff": w["other_nurse"],
    }[role]
    await login(client, who.email)
    expected = 404 if role == "other_staff" else 403
    for path in (
        f"/acces-dossier/{w['resident'].id}",
        f"/acces-dossier/{w['resident'].id}/export.csv",
    ):
        response = await client.get(path)
        assert response.status == expected, path
        assert w["nurse"].full_name not in await response.text()
    if role == "other_staff":  # their own facility only, whatever they choose
        token = await page_csrf(client, "/acces-dossier")
        response = await client.post(
            "/acces-dossier",
            data={
                "facility_id": str(w["home"].id),
                "reference": "CH-2024-117",
                "csrf_token": token,
            },
            allow_redirects=False,
        )
        assert response.headers["Location"] == f"/acces-dossier/{w['other'].id}"


async def test_the_admin_menu_links_the_page(client: TestClient, db: Database) -> None:
    admin = await make_user(db, Role.ADMIN)
    await login(client, admin.email)
    html = await (await client.get("/admin")).text()
    assert 'href="/acces-dossier">Accès au dossier</a>' in html


# --- retention ---------------------------------------------------------------------------------


async def _event_at(db: Database, at: datetime, patient_id: int | None = None) -> None:
    async with db.write() as session:
        await audit.record(session, "patient.read", actor=None, at=at, patient_id=patient_id)


async def _remaining(db: Database) -> list[datetime]:
    async with db.read() as session:
        return list(await session.scalars(select(AuditEvent.at).order_by(AuditEvent.at)))


async def test_the_retention_job_deletes_events_older_than_the_setting_only(
    db: Database, clock: FrozenClock, settings: Settings
) -> None:
    kept = [NOW - timedelta(days=364), NOW - timedelta(days=30), NOW]
    for at in [
        NOW - timedelta(days=800),
        NOW - timedelta(days=366),
        NOW - timedelta(days=365, seconds=1),
        *kept,
    ]:
        await _event_at(db, at)
    assert settings.audit_retention_months == 12
    # 10 June 2026 less 12 months: 10 June 2025 at the same instant; older goes.
    assert await jobs.audit_retention(db, clock, settings, batch=2) == (
        "3 évènements d'accès supprimés"
    )
    assert await _remaining(db) == kept
    assert await jobs.audit_retention(db, clock, settings) == "0 évènement d'accès supprimé"
    shorter = settings.replace(audit_retention_months=1)
    assert await jobs.audit_retention(db, clock, shorter) == "1 évènement d'accès supprimé"
    assert await _remaining(db) == kept[1:]


async def test_the_retention_job_deletes_in_batches_and_is_scheduled_nightly(
    db: Database, clock: FrozenClock, settings: Settings
) -> None:
    for n in range(7):
        await _event_at(db, NOW - timedelta(days=400 + n))
    assert await jobs.audit_retention(db, clock, settings, batch=3) == (
        "7 évènements d'accès supprimés"
    )
    assert await _remaining(db) == []
    [job] = [j for j in jobs.build(db, clock, settings) if j.name == "retention-acces"]
    assert job.cron and not job.every_seconds
    assert "12 mois" in job.description


@pytest.mark.parametrize(
    ("now", "months", "cutoff"),
    [
        (datetime(2026, 6, 10, 8, tzinfo=UTC), 12, datetime(2025, 6, 10, 8, tzinfo=UTC)),
        (datetime(2026, 3, 31, 22, tzinfo=UTC), 1, datetime(2026, 2, 28, 22, tzinfo=UTC)),
        (datetime(2028, 3, 31, 1, tzinfo=UTC), 1, datetime(2028, 2, 29, 1, tzinfo=UTC)),
        (datetime(2026, 1, 15, tzinfo=UTC), 13, datetime(2024, 12, 15, tzinfo=UTC)),
    ],
)
def test_the_cutoff_is_calendar_months_earlier(
    now: datetime, months: int, cutoff: datetime
) -> None:
    assert record_access.retention_cutoff(now, months) == cutoff


# --- never edited ------------------------------------------------------------------------------

_RAW_UPDATE = re.compile(r"\bUPDATE\s+\"?audit_events\b", re.IGNORECASE)


def _edits_audit_events(source: str) -> list[int]:
    """Lines of `source` that UPDATE audit events: `update(AuditEvent)` (or `sa.update`),
    `AuditEvent.__table__.update()`, or SQL text saying UPDATE audit_events."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            func_ = node.func
            name = func_.id if isinstance(func_, ast.Name) else getattr(func_, "attr", "")
            if name == "update" and node.args and "AuditEvent" in ast.unparse(node.args[0]):
                lines.append(node.lineno)
            if name == "update" and "AuditEvent" in ast.unparse(func_):
                lines.append(node.lineno)
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if _RAW_UPDATE.search(node.value):
                lines.append(node.lineno)
    return lines


def test_the_walker_sees_each_way_of_updating_audit_events() -> None:
    assert _edits_audit_events("update(AuditEvent).values(action='x')")
    assert _edits_audit_events("sa.update(models.AuditEvent)")
    assert _edits_audit_events("AuditEvent.__table__.update()")
    assert _edits_audit_events("text('update audit_events set action = 1')")
    assert not _edits_audit_events("delete(AuditEvent)")
    assert not _edits_audit_events("update(Booking)")


def test_no_code_path_updates_an_audit_event() -> None:
    offenders = {
        str(path.relative_to(ROOT)): lines
        for path in ROOT.rglob("*.py")
        if (lines := _edits_audit_events(path.read_text(encoding="utf-8")))
    }
    assert offenders == {}, f"audit events are never updated: {offenders}"


async def test_postgresql_refuses_to_update_an_audit_event(pg_db: Database) -> None:
    await _event_at(pg_db, NOW)
    with pytest.raises(DBAPIError, match="append-only"):
        async with pg_db.write() as session:
            await session.execute(text("UPDATE audit_events SET action = 'patient.forged'"))
    async with pg_db.read() as session:
        assert await session.scalar(select(AuditEvent.action)) == "patient.read"
    async with pg_db.write() as session:  # the retention job's DELETE stays allowed
        await session.execute(text("DELETE FROM audit_events"))
    assert await _remaining(pg_db) == []
