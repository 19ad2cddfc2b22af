"""The act log: append-only, hash-chained, once per source, declared and cancelled over HTTP."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from scheduling.clock import FrozenClock
from telmi import acts
from telmi.acts import ActCancellation
from telmi.context import Context
from telmi.db import Database
from telmi.demo import rpps_for
from telmi.models import Act, ActMonth, ActType, AuditEvent, FacilityCategory, Role

from .factories import NOW, bearer, make_act, make_facility, make_specialty, make_user

PARIS = ZoneInfo("Europe/Paris")


async def _count(db: Database) -> int:
    async with db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(Act)) or 0)


async def _verify(db: Database) -> acts.Verdict:
    async with db.read() as session:
        return await acts.verify(session, batch=7)


@pytest.fixture
async def world(db: Database) -> dict[str, Any]:
    facility = await make_facility(db, departement="39", category=FacilityCategory.NURSING_HOME)
    specialist = await make_user(db, Role.SPECIALIST)
    return {"facility": facility, "specialist": specialist}


def _declaration(facility_finess: str, **extra: Any) -> dict[str, Any]:
    return {
        "act_type": "teleexpertise",
        "occurred_at": "2026-03-02T14:30:00+01:00",
        "duration_minutes": 15,
        "facility_finess": facility_finess,
        "requester_role": "infirmier",
        "requester_rpps": rpps_for(4242),
        "patient_ref": "RES-0042",
        "patient_consent": True,
        "source_key": "dossier-77",
        **extra,
    }


async def test_appended_acts_form_a_chain_that_verifies(
    db: Database, world: dict[str, Any]
) -> None:
    start = datetime(2026, 1, 5, 9, tzinfo=UTC)
    for i in range(20):
        await make_act(
            db,
            facility=world["facility"],
            specialist=world["specialist"],
            occurred_at=start + timedelta(days=i),
        )
    async with db.read() as session:
        rows = list(await session.scalars(select(Act).order_by(Act.id)))
    assert rows[0].prev_hash == acts.GENESIS
    assert all(b.prev_hash == a.hash for a, b in zip(rows, rows[1:], strict=False))
    verdict = await _verify(db)
    assert verdict.ok and verdict.checked == 20


async def test_dimensions_are_copied_at_write_time(db: Database, world: dict[str, Any]) -> None:
    act = await make_act(
        db,
        facility=world["facility"],
        specialist=world["specialist"],
        occurred_at=datetime(2026, 3, 31, 22, 30, tzinfo=UTC),  # 1 April 00:30 in Paris
    )
    await make_facility(db, departement="21")
    async with db.write() as session:
        await session.execute(
            text(
                "UPDATE facilities SET departement_code = '21', category = 'hospital' WHERE id = :id"
            ),
            {"id": world["facility"].id},
        )
    async with db.read() as session:
        stored = await session.scalar(select(Act).where(Act.id == act.id))
    assert stored is not None
    assert (stored.departement_code, stored.facility_category) == (
        "39",
        FacilityCategory.NURSING_HOME,
    )
    assert stored.region_code == "27"
    assert (stored.occurred_on.isoformat(), stored.month, stored.iso_week) == (
        "2026-04-01",
        202604,
        202614,
    )
    assert (await _verify(db)).ok


async def test_one_act_per_source(db: Database, world: dict[str, Any]) -> None:
    when = datetime(2026, 2, 1, 10, tzinfo=UTC)
    await make_act(
        db,
        facility=world["facility"],
        specialist=world["specialist"],
        occurred_at=when,
        source_key="consultation:7",
    )
    with pytest.raises(acts.DuplicateSource):
        await make_act(
            db,
            facility=world["facility"],
            specialist=world["specialist"],
            occurred_at=when,
            source_key="consultation:7",
        )
    assert await _count(db) == 1


async def test_concurrent_appends_keep_the_chain_linear(
    db: Database, world: dict[str, Any]
) -> None:
    when = datetime(2026, 2, 1, 10, tzinfo=UTC)

    async def one(i: int) -> None:
        await make_act(
            db,
            facility=world["facility"],
            specialist=world["specialist"],
            occurred_at=when + timedelta(hours=i),
        )

    await asyncio.gather(*(one(i) for i in range(40)))
    verdict = await _verify(db)
    assert verdict.ok and verdict.checked == 40
    async with db.read() as session:
        prevs = list(await session.scalars(select(Act.prev_hash)))
    assert len(set(prevs)) == 40  # no two acts chained to the same predecessor


async def test_concurrent_completions_of_one_source_log_one_act(
    db: Database, world: dict[str, Any]
) -> None:
    when = datetime(2026, 2, 1, 10, tzinfo=UTC)

    async def one() -> str:
        try:
            await make_act(
                db,
                facility=world["facility"],
                specialist=world["specialist"],
                occurred_at=when,
                source_key="consultation:99",
            )
            return "logged"
        except acts.DuplicateSource:
            return "duplicate"

    outcomes = await asyncio.gather(*(one() for _ in range(10)))
    assert sorted(outcomes) == ["duplicate"] * 9 + ["logged"]
    assert await _count(db) == 1


async def _daily_acts(db: Database, count: int) -> list[Act]:
    facility, specialist = await make_facility(db), await make_user(db, Role.SPECIALIST)
    start = datetime(2026, 1, 5, 9, tzinfo=UTC)
    return [
        await make_act(
            db, facility=facility, specialist=specialist, occurred_at=start + timedelta(days=i)
        )
        for i in range(count)
    ]


async def test_tampering_is_found_and_named(sqlite_db: Database) -> None:
    made = await _daily_acts(sqlite_db, 10)
    async with sqlite_db.write() as session:
        await session.execute(
            text("UPDATE acts SET duration_seconds = 60 WHERE id = :id"), {"id": made[6].id}
        )
    verdict = await _verify(sqlite_db)
    assert not verdict.ok
    assert verdict.broken_id == made[6].id and verdict.checked == 6


async def test_deleting_an_act_breaks_the_next_link(sqlite_db: Database) -> None:
    made = await _daily_acts(sqlite_db, 5)
    async with sqlite_db.write() as session:
        await session.execute(text("DELETE FROM acts WHERE id = :id"), {"id": made[2].id})
    verdict = await _verify(sqlite_db)
    assert verdict.broken_id == made[3].id
    assert "lien" in verdict.problem


async def test_postgresql_refuses_update_and_delete_of_acts(pg_db: Database) -> None:
    facility = await make_facility(pg_db)
    specialist = await make_user(pg_db, Role.SPECIALIST)
    act = await make_act(
        pg_db,
        facility=facility,
        specialist=specialist,
        occurred_at=datetime(2026, 1, 5, tzinfo=UTC),
    )
    for statement in (
        "UPDATE acts SET duration_seconds = 0 WHERE id = :id",
        "DELETE FROM acts WHERE id = :id",
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            async with pg_db.write() as session:
                await session.execute(text(statement), {"id": act.id})
    async with pg_db.read() as session:
        assert (await session.scalar(select(Act.duration_seconds).where(Act.id == act.id))) == 1200


async def test_a_cancelling_entry_nets_the_act_out_of_the_rollup(
    db: Database, world: dict[str, Any]
) -> None:
    when = datetime(2026, 2, 10, 10, tzinfo=UTC)
    kept = await make_act(
        db, facility=world["facility"], specialist=world["specialist"], occurred_at=when, minutes=10
    )
    wrong = await make_act(
        db, facility=world["facility"], specialist=world["specialist"], occurred_at=when, minutes=30
    )
    async with db.write() as session:
        entry = await acts.cancel(
            session, Context(world["specialist"], NOW), wrong.id, ActCancellation(reason="Doublon")
        )
    assert (entry.sign, entry.cancels_act_id, entry.duration_seconds) == (-1, wrong.id, 1800)
    async with db.write() as session:
        with pytest.raises(acts.AlreadyCancelled):
            await acts.cancel(
                session,
                Context(world["specialist"], NOW),
                wrong.id,
                ActCancellation(reason="Encore"),
            )
    async with db.read() as session:
        cell = (await session.execute(select(ActMonth.acts, ActMonth.duration_seconds))).one()
    assert tuple(cell) == (1, kept.duration_seconds)
    assert await _count(db) == 3  # history kept: the act, the mistake, its cancellation
    assert (await _verify(db)).ok


async def test_verify_reports_a_rollup_that_drifted_from_the_log(
    db: Database, world: dict[str, Any]
) -> None:
    await make_act(
        db,
        facility=world["facility"],
        specialist=world["specialist"],
        occurred_at=datetime(2026, 2, 1, tzinfo=UTC),
    )
    async with db.write() as session:
        await session.execute(text("UPDATE act_months SET acts = acts + 1"))
    verdict = await _verify(db)
    assert verdict.broken_id is None and verdict.rollup_mismatches == 1


def test_telmi_acts_verify_names_the_broken_act(tmp_path: Any) -> None:
    """The operator's command, on a SQLite file tampered with raw SQL."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'acts.sqlite3'}"
    env = {"TELMI_DATABASE_URL": url, "TELMI_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}

    def telmi(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "telmi.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert telmi("db", "upgrade").returncode == 0

    async def seed() -> int:
        db = Database(url)
        try:
            facility = await make_facility(db)
            specialist = await make_user(db, Role.SPECIALIST)
            made = [
                await make_act(
                    db,
                    facility=facility,
                    specialist=specialist,
                    occurred_at=datetime(2026, 1, 1 + i, tzinfo=UTC),
                )
                for i in range(4)
            ]
            async with db.write() as session:
                await session.execute(
                    text("UPDATE acts SET specialty_code = 'cardiologie' WHERE id = :id"),
                    {"id": made[2].id},
                )
            return made[2].id
        finally:
            await db.dispose()

    ok = telmi("acts", "verify")
    assert ok.returncode == 0 and "intact: 0 acts" in ok.stdout
    broken = asyncio.run(seed())
    result = telmi("acts", "verify")
    assert result.returncode == 1
    assert f"broken at act {broken}" in result.stderr


# --- over HTTP ----------------------------------------------------------------------------------


async def test_specialist_declares_an_external_act_once(
    client: TestClient, db: Database, world: dict[str, Any], clock: FrozenClock
) -> None:
    headers = await bearer(db, world["specialist"])
    body = _declaration(world["facility"].finess)
    first = await client.post("/api/acts", json=body, headers=headers)
    assert first.status == 201, await first.text()
    act = await first.json()
    assert act["specialist_rpps"] == world["specialist"].rpps
    assert act["specialty"] == "dermatologie" and act["departement"] == "39"
    assert act["duration_seconds"] == 900
    assert "patient_key" not in act and "RES-0042" not in await first.text()
    again = await client.post("/api/acts", json=body, headers=headers)
    assert again.status == 409
    assert (await again.json())["error"] | {"message": ""} == {
        "code": "duplicate_source",
        "field": "source_key",
        "message": "",
    }
    assert await _count(db) == 1
    async with db.read() as session:
        stored = await session.scalar(select(Act))
        audited = await session.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "act.declared")
        )
    assert stored is not None and stored.patient_key == acts.patient_key(
        "test-secret-key-" + "x" * 32, finess=world["facility"].finess, patient_ref="RES-0042"
    )
    assert audited == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"facility_finess": "999999999"}, "facility_finess"),
        ({"act_type": "telepathie"}, "act_type"),
        ({"occurred_at": "2026-03-02 14:30"}, "occurred_at"),
        ({"occurred_at": "2999-01-01T00:00:00+00:00"}, "occurred_at"),
        ({"duration_minutes": -5}, "duration_minutes"),
        ({"requester_role": "sorcier"}, "requester_role"),
        ({"requester_rpps": "12345678901"}, "requester_rpps"),
        ({"patient_consent": "oui"}, "patient_consent"),
        ({"patient_ref": ""}, "patient_ref"),
        ({"patient_ins": "1234"}, "patient_ins"),
        ({"specialty": "astrologie"}, "specialty"),
        ({"source_key": ""}, "source_key"),
    ],
)
async def test_bad_declarations_name_the_field_and_write_nothing(
    client: TestClient, db: Database, world: dict[str, Any], change: dict[str, Any], field: str
) -> None:
    headers = await bearer(db, world["specialist"])
    response = await client.post(
        "/api/acts", json={**_declaration(world["facility"].finess), **change}, headers=headers
    )
    assert 400 <= response.status < 500
    assert (await response.json())["error"]["field"] == field
    assert await _count(db) == 0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"colour": "bleu"}, "colour"),
        ({"duration_minutes": True}, "duration_minutes"),
        ({"duration_minutes": "15"}, "duration_minutes"),
        ({"duration_minutes": 1441}, "duration_minutes"),
        ({"specialist_rpps": "123"}, "specialist_rpps"),
        ({"requester_role": "   "}, "requester_role"),
        ({"incidents": "x" * 501}, "incidents"),
        ({"source_key": "k" * 112}, "source_key"),
        ({"occurred_at": "2026-03-02T14:30:00"}, "occurred_at"),
    ],
)
async def test_the_declaration_model_refuses_what_the_schema_does(
    client: TestClient, db: Database, world: dict[str, Any], change: dict[str, Any], field: str
) -> None:
    headers = await bearer(db, world["specialist"])
    response = await client.post(
        "/api/acts", json={**_declaration(world["facility"].finess), **change}, headers=headers
    )
    assert response.status == 422, await response.text()
    assert (await response.json())["error"]["field"] == field
    assert await _count(db) == 0


async def test_an_ins_stands_for_the_patient_without_a_reference(
    client: TestClient, db: Database, world: dict[str, Any]
) -> None:
    headers = await bearer(db, world["specialist"])
    body = _declaration(world["facility"].finess, patient_ins="180127510812349")
    del body["patient_ref"]
    declared = await client.post("/api/acts", json=body, headers=headers)
    assert declared.status == 201, await declared.text()
    async with db.read() as session:
        stored = await session.scalar(select(Act))
    assert stored is not None and stored.patient_key == acts.patient_key(
        "test-secret-key-" + "x" * 32, finess="", patient_ref="", ins="180127510812349"
    )


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"cursor": "abc"}, "cursor"),
        ({"cursor": "x" * 401}, "cursor"),
        ({"from": "2026-02-30"}, "from"),
        ({"to": "demain"}, "to"),
        ({"to": "0"}, "to"),  # not the epoch
        ({"from": ""}, "from"),
    ],
)
async def test_bad_act_log_paging_names_the_parameter(
    client: TestClient, db: Database, world: dict[str, Any], params: dict[str, str], field: str
) -> None:
    response = await client.get(
        "/api/acts", params=params, headers=await bearer(db, world["specialist"])
    )
    assert response.status == 422
    assert (await response.json())["error"]["field"] == field


async def test_the_act_log_pages_newest_first_within_inclusive_dates(
    client: TestClient, db: Database, world: dict[str, Any]
) -> None:
    made = [
        await make_act(
            db,
            facility=world["facility"],
            specialist=world["specialist"],
            occurred_at=datetime(2026, 2, day, 12, tzinfo=UTC),
        )
        for day in (1, 2, 3, 4)
    ]
    headers = await bearer(db, world["specialist"])
    params = {"from": "2026-02-02", "to": "2026-02-04", "limit": "2"}
    first = await (await client.get("/api/acts", params=params, headers=headers)).json()
    assert [a["id"] for a in first["items"]] == [made[3].id, made[2].id]
    rest = await (
        await client.get(
            "/api/acts", params={**params, "cursor": first["next_cursor"]}, headers=headers
        )
    ).json()
    assert [a["id"] for a in rest["items"]] == [made[1].id] and rest["next_cursor"] is None


async def test_admin_names_the_specialist_and_an_unknown_one_is_refused(
    client: TestClient, db: Database, world: dict[str, Any]
) -> None:
    headers = await bearer(db, await make_user(db, Role.ADMIN))
    unknown = await client.post(
        "/api/acts",
        json=_declaration(world["facility"].finess, specialist_rpps=rpps_for(777)),
        headers=headers,
    )
    assert unknown.status == 422 and (await unknown.json())["error"]["field"] == "specialist_rpps"
    ok = await client.post(
        "/api/acts",
        json=_declaration(world["facility"].finess, specialist_rpps=world["specialist"].rpps),
        headers=headers,
    )
    assert ok.status == 201


async def test_only_specialists_and_admins_declare_or_list_acts(
    client: TestClient, db: Database, world: dict[str, Any]
) -> None:
    for role in (Role.STAFF, Role.REGIONAL):
        headers = await bearer(db, await make_user(db, role))
        assert (
            await client.post(
                "/api/acts", json=_declaration(world["facility"].finess), headers=headers
            )
        ).status == 403
        assert (await client.get("/api/acts", headers=headers)).status == 403
    assert await _count(db) == 0


async def test_cancel_over_http_by_the_acts_specialist_only(
    client: TestClient, db: Database, world: dict[str, Any]
) -> None:
    act = await make_act(
        db,
        facility=world["facility"],
        specialist=world["specialist"],
        occurred_at=datetime(2026, 2, 1, tzinfo=UTC),
    )
    other = await make_user(db, Role.SPECIALIST, specialty=await make_specialty(db, "cardiologie"))
    refused = await client.post(
        f"/api/acts/{act.id}/cancel", json={"reason": "erreur"}, headers=await bearer(db, other)
    )
    assert refused.status == 404
    headers = await bearer(db, world["specialist"])
    assert (await client.post(f"/api/acts/{act.id}/cancel", json={}, headers=headers)).status == 422
    for body in ({"reason": "   "}, {"reason": "x" * 501}, {"reason": "erreur", "by": "moi"}):
        refused = await client.post(f"/api/acts/{act.id}/cancel", json=body, headers=headers)
        assert refused.status == 422, body
    done = await client.post(
        f"/api/acts/{act.id}/cancel", json={"reason": "Patient erroné"}, headers=headers
    )
    assert done.status == 201 and (await done.json())["cancels_act_id"] == act.id
    twice = await client.post(
        f"/api/acts/{act.id}/cancel", json={"reason": "encore"}, headers=headers
    )
    assert twice.status == 409
    entry = (await done.json())["id"]
    undo = await client.post(f"/api/acts/{entry}/cancel", json={"reason": "x"}, headers=headers)
    assert undo.status == 409 and (await undo.json())["error"]["code"] == "act_is_cancellation"
    listed = await (await client.get("/api/acts", headers=headers)).json()
    assert [a["sign"] for a in listed["items"]] == [-1, 1]  # newest first: the entry, then the act
    assert (await client.get("/api/acts", headers=await bearer(db, other))).status == 200
    assert (await (await client.get("/api/acts", headers=await bearer(db, other))).json())[
        "items"
    ] == []


async def test_act_types_of_the_public_health_code() -> None:
    assert {t.value for t in ActType} == {
        "teleconsultation",
        "teleexpertise",
        "telesurveillance",
        "teleassistance",
        "regulation",
        "telesoin",
    }
