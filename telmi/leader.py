"""The job leadership lock: a PostgreSQL advisory lock, or a file lock next to SQLite."""

from __future__ import annotations

import asyncpg

from scheduling.leader import FileLock, Lock
from telmi.db import asyncpg_dsn
from telmi.settings import Settings

JOBS_LOCK = 0x7E1A_0B5  # any constant shared by every Telmi process on the database


class PostgresLock:
    """Held by a session-level advisory lock on a connection of its own: if this process
    dies, PostgreSQL closes the connection and the lock is free for another."""

    def __init__(self, url: str) -> None:
        self.dsn = asyncpg_dsn(url)
        self.conn: asyncpg.Connection | None = None

    async def acquire(self) -> bool:
        if self.conn is None or self.conn.is_closed():
            self.conn = await asyncpg.connect(self.dsn)
        got = bool(await self.conn.fetchval("SELECT pg_try_advisory_lock($1)", JOBS_LOCK))
        return got

    async def held(self) -> bool:
        if self.conn is None or self.conn.is_closed():
            return False
        try:
            await self.conn.fetchval("SELECT 1")
        except (asyncpg.PostgresError, OSError):
            return False
        return True

    async def release(self) -> None:
        if self.conn is not None and not self.conn.is_closed():
            await self.conn.close()  # closing the session releases its advisory locks
        self.conn = None


def lock_for(settings: Settings) -> Lock:
    if settings.is_sqlite:
        return FileLock(settings.data_dir / "jobs.lock")
    return PostgresLock(settings.database_url)
