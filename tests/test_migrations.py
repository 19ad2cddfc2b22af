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
