"""SQLite runs in WAL, synchronous=FULL, foreign keys on, and writers begin IMMEDIATE."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from telmi.db import SQLITE_BUSY_TIMEOUT_MS, Database
from telmi.models import Region, Specialty


@pytest.fixture
async def sqlite_db(sqlite_template: Path, tmp_path: Path) -> Database:
    path = tmp_path / "t.sqlite3"
    path.write_bytes(sqlite_template.read_bytes())
    db = Database(f"sqlite+aiosqlite:///{path}")
    yield db  # type: ignore[misc]
    await db.dispose()


async def test_pragmas_are_set_on_every_connection(sqlite_db: Database) -> None:
    async with sqlite_db.engine.connect() as conn:
        assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
        assert (await conn.execute(text("PRAGMA synchronous"))).scalar() == 2  # FULL
        assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
        timeout = (await conn.execute(text("PRAGMA busy_timeout"))).scalar()
        assert timeout == SQLITE_BUSY_TIMEOUT_MS


async def test_foreign_keys_are_enforced(sqlite_db: Database) -> None:
    with pytest.raises(IntegrityError):
        async with sqlite_db.write() as session:
            await session.execute(
                text("INSERT INTO departements (code, name, region_id) VALUES ('99', 'x', 12345)")
            )


async def test_write_transaction_takes_the_write_lock_at_begin(
    sqlite_db: Database, tmp_path: Path
) -> None:
    async with sqlite_db.write() as session:
        await session.execute(select(func.count()).select_from(Region))  # a read only
        other = sqlite3.connect(tmp_path / "t.sqlite3", timeout=0, isolation_level=None)
        try:
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
            # Readers are not blocked (WAL).
            assert other.execute("SELECT count(*) FROM regions").fetchone() == (0,)
        finally:
            other.close()


async def test_read_session_does_not_take_the_write_lock(
    sqlite_db: Database, tmp_path: Path
) -> None:
    async with sqlite_db.read() as session:
        await session.execute(select(func.count()).select_from(Region))
        other = sqlite3.connect(tmp_path / "t.sqlite3", timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
        finally:
            other.close()


async def test_concurrent_read_then_write_transactions_never_deadlock(sqlite_db: Database) -> None:
    """Each writer reads, yields to the others, then writes: DEFERRED would fail with 'locked'."""

    async def writer(n: int) -> None:
        async with sqlite_db.write() as session:
            count = await session.scalar(select(func.count()).select_from(Specialty))
            await asyncio.sleep(0.01)
            session.add(Specialty(code=f"s{n}-{count}", name=f"Spécialité {n}"))

    await asyncio.gather(*(writer(n) for n in range(10)))
    async with sqlite_db.read() as session:
        codes = list(await session.scalars(select(Specialty.code)))
    # Serialised writers: each saw the rows of those before it.
    assert sorted(int(code.split("-")[1]) for code in codes) == list(range(10))
