"""The migrations build exactly the schema the models describe, both ways, on both databases."""

from __future__ import annotations

from sqlalchemy import inspect

from telmi import migrate
from telmi.db import Database
from telmi.models import Base


async def _tables(db: Database) -> set[str]:
    async with db.engine.connect() as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))


async def test_migrations_match_models_and_round_trip(fresh_database_url: str) -> None:
    db = Database(fresh_database_url)
    try:
        await migrate.upgrade(db)
        assert await migrate.current_revision(db) == migrate.head_revision()
        await migrate.check(db)  # raises if autogenerate finds any difference
        assert set(Base.metadata.tables) <= await _tables(db)

        await migrate.downgrade(db, "base")
        assert await _tables(db) <= {"alembic_version"}

        await migrate.upgrade(db)
        await migrate.check(db)
    finally:
        await db.dispose()


async def test_app_refuses_an_unmigrated_database(fresh_database_url: str) -> None:
    db = Database(fresh_database_url)
    try:
        try:
            await migrate.ensure_at_head(db)
        except migrate.DatabaseNotMigrated as exc:
            assert "telmi db upgrade" in str(exc)
        else:
            raise AssertionError("an empty database passed as migrated")
    finally:
        await db.dispose()


_AT = "2026-06-01 08:00:00"
_ROWS_AT_0006 = [
    "INSERT INTO regions (id, code, name) VALUES (1, '27', 'Bourgogne-Franche-Comté')",
    "INSERT INTO departements (code, name, region_id) VALUES ('21', 'Côte-d''Or', 1)",
    "INSERT INTO facilities (id, finess, name, category, finess_category_code,"
    " finess_category_label, departement_code, commune, postcode, is_active, created_at)"
    " VALUES (1, '210000014', 'EHPAD A', 'nursing_home', '500', '', '21', 'Dijon', '21000',"
    " true, '{at}')",
    "INSERT INTO specialties (id, code, name) VALUES (1, 'dermatologie', 'Dermatologie')",
    "INSERT INTO users (id, email, full_name, role, facility_id, specialty_id, password_hash,"
    " is_active, created_at) VALUES (1, 'n@x.fr', 'Nurse', 'staff', 1, NULL, 'h', true, '{at}'),"
    " (2, 'd@x.fr', 'Doc', 'specialist', NULL, 1, 'h', true, '{at}')",
    "INSERT INTO slots (id, specialist_id, starts_at, ends_at, status, created_at, specialty_id,"
    " act_mask) VALUES (1, 2, '{at}', '2026-06-01 08:30:00', 'open', '{at}', 1, 1),"
    " (2, 2, '2026-06-01 09:00:00', '2026-06-01 09:30:00', 'open', '{at}', 1, 1),"
    " (3, 2, '2026-06-01 10:00:00', '2026-06-01 10:30:00', 'open', '{at}', 1, 1)",
    "INSERT INTO bookings (id, slot_id, facility_id, booked_by_id, patient_ref, patient_ins,"
    " act_type, reason, status, created_at, cancel_reason) VALUES"
    " (1, 1, 1, 1, 'CH-117', '{ins}', 'teleconsultation', '', 'completed', '{at}', ''),"
    " (2, 2, 1, 1, 'CH-117', NULL, 'teleconsultation', '', 'cancelled', '{at}', ''),"
    " (3, 3, 1, 1, 'CH-200', NULL, 'teleconsultation', '', 'confirmed', '{at}', '')",
    "INSERT INTO expertise_requests (id, facility_id, requested_by_id, specialty_id,"
    " patient_ref, consent_recorded, question, clinical_context, urgency, status, created_at)"
    " VALUES (1, 1, 1, 1, 'CH-300', true, 'Q ?', '', '72h', 'draft', '{at}')",
    # Rows referring to the tables SQLite rebuilds: the rebuild must keep them valid.
    "INSERT INTO expertise_messages (id, request_id, author_id, kind, body, created_at)"
    " VALUES (1, 1, 1, 'information', 'Photo jointe', '{at}')",
    "INSERT INTO consultations (id, booking_id, room_id, status, outcome, created_at)"
    " VALUES (1, 1, 'room-1', 'ended', '', '{at}')",
]


async def test_the_migration_turns_references_into_residents_keeping_every_booking(
    fresh_database_url: str,
) -> None:
    """Revision 0007 on a database with bookings: one provisional resident per facility
    reference, the INS sealed (no longer in clear), the ticked consent a record; and back."""
    from telmi import patients
    from telmi.settings import Settings

    from .factories import TEST_SECRET, ins_with_key

    ins = ins_with_key("1360421231012")
    settings = Settings(database_url=fresh_database_url, secret_key=TEST_SECRET)
    db = Database(fresh_database_url)
    try:
        await migrate.upgrade(db, "0006", settings=settings)
        async with db.engine.begin() as conn:
            for statement in _ROWS_AT_0006:
                await conn.exec_driver_sql(statement.format(at=_AT, ins=ins))
        await migrate.upgrade(db, settings=settings)
        async with db.engine.connect() as conn:
            residents = (
                await conn.exec_driver_sql(
                    "SELECT id, reference, identity_status, key_id, identity, ins_digest"
                    " FROM patients ORDER BY reference"
                )
            ).all()
            bookings = dict(
                (await conn.exec_driver_sql("SELECT id, patient_id FROM bookings")).all()
            )
            consents = (
                await conn.exec_driver_sql(
                    "SELECT expertise_request_id, decision, patient_id FROM consents"
                )
            ).all()
        by_ref = {r.reference: r for r in residents}
        assert sorted(by_ref) == ["CH-117", "CH-200", "CH-300"]
        assert {r.identity_status for r in residents} == {"provisional"}
        assert bookings == {1: by_ref["CH-117"].id, 2: by_ref["CH-117"].id, 3: by_ref["CH-200"].id}
        assert consents == [(1, "granted", by_ref["CH-300"].id)]
        sealed = by_ref["CH-117"]
        assert ins.encode() not in bytes(sealed.identity)
        assert sealed.ins_digest == patients.ins_digest(settings.vault, ins)
        opened = settings.vault.open(sealed.key_id, bytes(sealed.identity), patients.aad(1))
        assert opened["ins"] == {"value": ins, "oid": patients.NIR_OID}

        await migrate.downgrade(db, "0006", settings=settings)
        async with db.engine.connect() as conn:
            back = (
                await conn.exec_driver_sql(
                    "SELECT id, patient_ref, patient_ins FROM bookings ORDER BY id"
                )
            ).all()
        assert [tuple(r) for r in back] == [
            (1, "CH-117", ins),
            (2, "CH-117", ins),
            (3, "CH-200", None),
        ]
    finally:
        await db.dispose()
