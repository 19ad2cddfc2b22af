"""The one place that builds the engine and hands out sessions.

Reads and writes are separate on purpose: on SQLite a write transaction starts with
`BEGIN IMMEDIATE`, taking the write lock up front, so two writers never deadlock upgrading
a read lock; reads stay `BEGIN DEFERRED` and run beside a writer thanks to WAL.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import asyncpg
from sqlalchemy import Table, event, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.util import greenlet_spawn

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


def constraint_name(exc: DBAPIError) -> str | None:
    """The constraint a PostgreSQL integrity error names (asyncpg's `constraint_name`)."""
    cause = getattr(exc.orig, "__cause__", None)
    return getattr(exc.orig, "constraint_name", None) or getattr(cause, "constraint_name", None)


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


def asyncpg_dsn(url: str) -> str:
    """The DSN asyncpg itself takes for a SQLAlchemy URL (LISTEN, scratch databases, tests)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(url, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_on_begin)
        return engine
    # As many kept connections as requests in flight at a region's peak: a connection opened
    # past `pool_size` is closed at its return, and opening one costs round trips (TLS
    # attempt, startup, then a PREPARE for every statement it runs for the first time). With
    # 40 kept, 50 clients (`telmi bench mixed`) churned overflow connections: the server's
    # RSS grew 2-6 MiB a run; with 70, 0.7-1.2 MiB, and the p99 at half load fell under 30 ms.
    kwargs.setdefault("pool_size", 70)
    kwargs.setdefault("max_overflow", 10)
    # No pre-ping: it costs a round trip per checkout, on every request. Connections are
    # recycled instead, and a dropped one fails one request and is then discarded.
    kwargs.setdefault("pool_recycle", 1800)
    return create_async_engine(url, **kwargs)


Executor = AsyncSession | AsyncConnection


def dialect_name(executor: Executor) -> str:
    if isinstance(executor, AsyncConnection):
        return executor.dialect.name
    return executor.get_bind().dialect.name


def adding_upserts(table: Table, *added: str) -> dict[str, Any]:
    """Per dialect, an insert that adds its `added` columns onto the row already at its
    primary key: how counters kept beside the log (rollups, patient counts) move."""

    def build(dialect_insert: Any) -> Any:
        stmt = dialect_insert(table)
        return stmt.on_conflict_do_update(
            index_elements=list(table.primary_key.columns),
            set_={name: table.c[name] + stmt.excluded[name] for name in added},
        )

    return {"postgresql": build(pg_insert), "sqlite": build(sqlite_insert)}


async def _retrying(once: Callable[[], Awaitable[T]], attempts: int) -> T:
    for attempt in range(1, attempts + 1):
        try:
            return await once()
        except DBAPIError as exc:
            if attempt == attempts or not is_retryable(exc):
                raise
            await asyncio.sleep(0.005 * attempt)
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Driver:
    """The driver's own connection (asyncpg), checked out of the pool without a SQLAlchemy
    `Connection` around it: only `Prepared` statements run on it (`Database.driver`)."""

    connection: Any
    dialect: Any


# What a connection that died raises: the pool drops it (as one a cancellation left mid-statement).
_BROKEN = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    OSError,
)


class Prepared:
    """A Core statement compiled once for asyncpg and run on the driver's own connection, its
    parameters and results converted by the statement's own types (PostgreSQL only).

    For the few statements every booking runs: SQLAlchemy's execution costs 0.1-0.3 ms of
    CPU each (cache key, execution context, parameter and row processing), several times
    what asyncpg itself spends. The SQL is SQLAlchemy's, so the schema still has one source."""

    def __init__(self, statement: Any) -> None:
        self.statement = statement
        self._plan: tuple[str, list[tuple[str, Any, Any]], list[Any]] | None = None

    def _compile(self, dialect: Any) -> tuple[str, list[tuple[str, Any, Any]], list[Any]]:
        compiled = self.statement.compile(dialect=dialect)
        binds = []
        for name in compiled.positiontup or ():
            bind = compiled.binds[name]
            assert not bind.expanding, "IN lists are not supported"
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            binds.append((name, None if bind.required else bind.value, process))
        results = [
            column.type.dialect_impl(dialect).result_processor(dialect, None)
            for column in self.statement.exported_columns
        ]
        return str(compiled), binds, results

    def _bound(self, dialect: Any, values: dict[str, Any]) -> tuple[str, list[Any]]:
        if self._plan is None:
            self._plan = self._compile(dialect)
        sql, binds, _ = self._plan
        args = []
        for name, default, process in binds:
            value = values.get(name, default)
            args.append(process(value) if process is not None else value)
        return sql, args

    def _row(self, record: Any) -> tuple[Any, ...]:
        assert self._plan is not None
        return tuple(
            value if process is None else process(value)
            for value, process in zip(record, self._plan[2], strict=True)
        )

    @staticmethod
    async def _driver(executor: Executor | Driver) -> tuple[Any, Any] | None:
        """The asyncpg connection and the dialect to run on, None where SQLAlchemy runs it."""
        if isinstance(executor, Driver):
            return executor.connection, executor.dialect
        if isinstance(executor, AsyncConnection) and executor.dialect.name == "postgresql":
            return (await executor.get_raw_connection()).driver_connection, executor.dialect
        return None

    async def first(self, executor: Executor | Driver, values: dict[str, Any]) -> Any:
        """The first row (a tuple, converted), or None; elsewhere than on a PostgreSQL
        connection (a session, SQLite), through SQLAlchemy as any statement."""
        driver = await self._driver(executor)
        if driver is None:
            return (await cast(Executor, executor).execute(self.statement, values)).first()
        sql, args = self._bound(driver[1], values)
        try:
            record = await driver[0].fetchrow(sql, *args)
        except asyncpg.IntegrityConstraintViolationError as exc:
            # As SQLAlchemy would raise it: `sqlstate` and `constraint_name` read `orig`.
            raise IntegrityError(sql, args, exc) from exc
        return None if record is None else self._row(record)

    async def run(self, executor: Executor | Driver, values: dict[str, Any]) -> None:
        """A statement that returns no rows (an INSERT of an audit event)."""
        driver = await self._driver(executor)
        if driver is None:
            await cast(Executor, executor).execute(self.statement, values)
            return
        sql, args = self._bound(driver[1], values)
        await driver[0].execute(sql, *args)

    async def all(
        self, executor: Executor | Driver, values: dict[str, Any]
    ) -> list[tuple[Any, ...]]:
        """Every row, as `first` gives one: for the lists read on every page."""
        driver = await self._driver(executor)
        if driver is None:
            rows = await cast(Executor, executor).execute(self.statement, values)
            return [tuple(r) for r in rows]
        sql, args = self._bound(driver[1], values)
        return [self._row(record) for record in await driver[0].fetch(sql, *args)]


class Database:
    """An engine with a read session factory and a write session factory."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = create_engine(url, **engine_kwargs)
        self.write_engine = self.engine.execution_options(**{_WRITE: True})
        self._read = async_sessionmaker(self.engine, expire_on_commit=False)
        self._write = async_sessionmaker(self.write_engine, expire_on_commit=False)
        self.autocommit_engine = (
            self.engine
            if url.startswith("sqlite")
            else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with self._read() as session:
            yield session

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection]:
        """A bare connection, without ORM session, whose statements commit one by one on
        PostgreSQL (no BEGIN/COMMIT round trips): for the lookups of every request and for
        a write that is one statement. On SQLite, an ordinary read connection."""
        async with self.autocommit_engine.connect() as conn:
            yield conn

    @asynccontextmanager
    async def driver(self) -> AsyncIterator[Driver]:
        """asyncpg's connection straight from the pool (PostgreSQL): each statement commits
        alone. For a hot path made of `Prepared` statements only, which then skips the
        `Connection` that `connection` builds around it (a checkout and return cost 68 µs
        with it, 16 without). A connection that broke, or was left mid-statement, is dropped."""
        fairy = await self.engine.raw_connection()
        try:
            yield Driver(fairy.driver_connection, self.engine.dialect)
        except BaseException as exc:
            if isinstance(exc, _BROKEN) or not isinstance(exc, Exception):
                await greenlet_spawn(fairy.invalidate, exc if isinstance(exc, Exception) else None)
            raise
        finally:
            await greenlet_spawn(fairy.close)

    @asynccontextmanager
    async def prepared(self) -> AsyncIterator[Driver | AsyncConnection]:
        """For reads made of `Prepared` statements only: `driver()` on PostgreSQL,
        `connection()` elsewhere."""
        if self.dialect != "postgresql":
            async with self.connection() as conn:
                yield conn
            return
        async with self.driver() as driver:
            yield driver

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

    async def run_statements(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """`work` on a bare connection where each statement commits alone on PostgreSQL: for
        a read and its access event, without BEGIN/COMMIT round trips (the event is written
        before the answer is sent, so a failed one still fails the request). On SQLite, in
        one write transaction."""
        if self.dialect != "postgresql":
            return await self.run_core_write(work)
        async with self.connection() as conn:
            return await work(conn)

    async def run_prepared(self, work: Callable[[Driver | AsyncConnection], Awaitable[T]]) -> T:
        """As `run_statements`, for work made of `Prepared` statements only (a list and its
        access event): on PostgreSQL on `driver()`."""
        if self.dialect != "postgresql":
            return await self.run_core_write(work)
        async with self.driver() as driver:
            return await work(driver)

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
