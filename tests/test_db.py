"""The write path survives what PostgreSQL throws at concurrent transactions."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg
import pytest
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from telmi.db import Database, asyncpg_dsn
from telmi.models import Specialty

from .factories import make_specialty


async def test_a_deadlocked_transaction_is_retried_and_both_writers_finish(pg_db: Database) -> None:
    first, second = await make_specialty(pg_db, "a"), await make_specialty(pg_db, "b")
    attempts: list[str] = []
    both_hold_one = asyncio.Barrier(2)

    def writer(name: str, order: tuple[int, int]) -> Callable[[AsyncSession], Awaitable[None]]:
        async def work(session: AsyncSession) -> None:
            attempts.append(name)
            await session.execute(text("SET LOCAL deadlock_timeout = '100ms'"))
            for n, specialty_id in enumerate(order):
                await session.execute(
                    update(Specialty).where(Specialty.id == specialty_id).values(name=f"{name}{n}")
                )
                if n == 0 and attempts.count(name) == 1:
                    await both_hold_one.wait()  # each holds one row and wants the other's

        return work

    await asyncio.wait_for(
        asyncio.gather(
            pg_db.run_write(writer("x", (first.id, second.id))),
            pg_db.run_write(writer("y", (second.id, first.id))),
        ),
        timeout=30,
    )
    assert sorted(attempts) in (["x", "x", "y"], ["x", "y", "y"])  # exactly one retry
    async with pg_db.read() as session:
        names = set(await session.scalars(select(Specialty.name)))
    assert names in ({"x0", "x1"}, {"y0", "y1"})


async def test_a_driver_connection_that_died_is_dropped_from_the_pool(pg_db: Database) -> None:
    async with pg_db.driver() as driver:
        dead = await driver.connection.fetchval("SELECT pg_backend_pid()")
    other = await asyncpg.connect(asyncpg_dsn(pg_db.url))
    try:
        await other.execute("SELECT pg_terminate_backend($1, 5000)", dead)  # and wait
    finally:
        await other.close()
    with pytest.raises((asyncpg.PostgresConnectionError, asyncpg.InterfaceError, OSError)):
        async with pg_db.driver() as driver:
            await driver.connection.fetchval("SELECT 1")
    async with pg_db.driver() as driver:
        assert await driver.connection.fetchval("SELECT pg_backend_pid()") != dead


async def test_a_driver_connection_cancelled_mid_statement_is_not_handed_out_again(
    pg_db: Database,
) -> None:
    async def sleep(started: asyncio.Event) -> None:
        async with pg_db.driver() as driver:
            pids.append(await driver.connection.fetchval("SELECT pg_backend_pid()"))
            started.set()
            await driver.connection.execute("SELECT pg_sleep(30)")

    pids: list[int] = []
    started = asyncio.Event()
    task = asyncio.create_task(sleep(started))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with pg_db.driver() as driver:  # not the one busy sleeping: it answers at once
        assert await driver.connection.fetchval("SELECT pg_backend_pid()") != pids[0]
