"""The one place that builds the engine and hands out sessions.

Reads and writes are separate on purpose: on SQLite a write transaction starts with
`BEGIN IMMEDIATE`, taking the write lock up front, so two writers never deadlock upgrading
a read lock; reads stay `BEGIN DEFERRED` and run beside a writer thanks to WAL.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

SQLITE_BUSY_TIMEOUT_MS = 10_000
WRITE_ATTEMPTS = 4
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})  # serialization_failure, deadlock_detected
_WRITE = "telmi_write"
T = TypeVar("T")


def sqlstate(exc: DBAPIError) -> str | None:
    """The SQLSTATE of a driver error (asyncpg exposes it as `sqlstate`)."""
    orig = exc.orig
    return getattr(orig, "sqlstate", None) or getattr(
        getattr(orig, "__cause__", None), "sqlstate", None
    )


def is_retryable(exc: DBAPIError) -> bool:
    return sqlstate(exc) in RETRYABLE_SQLSTATES


def is_unique_violation(exc: DBAPIError) -> bool:
    if sqlstate(exc) == "23505":
        return True
    return "UNIQUE constraint failed" in str(exc.orig)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Take transaction control from the driver so the "begin" hook decides how to begin.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    for pragma in (
        "PRAGMA journal_mode=WAL",
        "PRAGMA synchronous=FULL",
        "PRAGMA foreign_keys=ON",
        f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",
    ):
        cursor.execute(pragma)
    cursor.close()


def _sqlite_on_begin(connection: Connection) -> None:
    immediate = connection.get_execution_options().get(_WRITE, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(url, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_on_begin)
        return engine
    kwargs.setdefault("pool_size", 20)
    kwargs.setdefault("max_overflow", 20)
    # No pre-ping: it costs a round trip per checkout, on every request. Connections are
    # recycled instead, and a dropped one fails one request and is then discarded.
    kwargs.setdefault("pool_recycle", 1800)
    return create_async_engine(url, **kwargs)


Executor = AsyncSession | AsyncConnection


def dialect_name(executor: Executor) -> str:
    if isinstance(executor, AsyncConnection):
        return executor.dialect.name
    return executor.get_bind().dialect.name


async def _retrying(once: Callable[[], Awaitable[T]], attempts: int) -> T:
    for attempt in range(1, attempts + 1):
        try:
            return await once()
        except DBAPIError as exc:
            if attempt == attempts or not is_retryable(exc):
                raise
            await asyncio.sleep(0.005 * attempt)
    raise AssertionError("unreachable")


class Database:
    """An engine with a read session factory and a write session factory."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = create_engine(url, **engine_kwargs)
        self.write_engine = self.engine.execution_options(**{_WRITE: True})
        self._read = async_sessionmaker(self.engine, expire_on_commit=False)
        self._write = async_sessionmaker(self.write_engine, expire_on_commit=False)
        # SQLite round trips are in-process calls: its lookups keep the ordinary read session.
        self._lookup = (
            self._read
            if url.startswith("sqlite")
            else async_sessionmaker(
                self.engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False
            )
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with self._read() as session:
            yield session

    @asynccontextmanager
    async def lookup(self) -> AsyncIterator[AsyncSession]:
        """A session for one read statement, without BEGIN/ROLLBACK round trips (per-request
        authentication runs on every call; a single statement needs no transaction)."""
        async with self._lookup() as session:
            yield session

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A session in one write transaction: committed on success, rolled back on error."""
        async with self._write() as session, session.begin():
            yield session

    async def run_write(
        self, work: Callable[[AsyncSession], Awaitable[T]], *, attempts: int = WRITE_ATTEMPTS
    ) -> T:
        """Run `work` in a write transaction, again if PostgreSQL aborts it as a serialization
        failure or a deadlock (safe: the aborted attempt wrote nothing)."""

        async def once() -> T:
            async with self.write() as session:
                return await work(session)

        return await _retrying(once, attempts)

    async def run_core_write(
        self, work: Callable[[AsyncConnection], Awaitable[T]], *, attempts: int = WRITE_ATTEMPTS
    ) -> T:
        """As `run_write`, on a bare connection: for hot paths made of Core statements only,
        which then skip the ORM session's bookkeeping (a third of a booking's database time)."""

        async def once() -> T:
            async with self.write_engine.begin() as conn:
                return await work(conn)

        return await _retrying(once, attempts)

    @asynccontextmanager
    async def bulk_connection(self) -> AsyncIterator[AsyncConnection]:
        """A write connection for loading generated data (the demo) in many transactions.

        On SQLite it commits without waiting for the disk (synchronous=NORMAL: in WAL a
        crash may lose the last transactions, never corrupt the file) and with a larger page
        cache; both are restored before the connection returns to the pool."""
        async with self.write_engine.connect() as conn:
            if self.dialect != "sqlite":
                yield conn
                return
            raw: Any = (await conn.get_raw_connection()).driver_connection
            await raw.execute("PRAGMA synchronous=NORMAL")
            await raw.execute("PRAGMA cache_size=-65536")
            try:
                yield conn
            finally:
                await conn.rollback()
                await raw.execute("PRAGMA synchronous=FULL")
                await raw.execute("PRAGMA cache_size=-2000")

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
