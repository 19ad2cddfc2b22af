"""Background jobs in a process: inside `telmi serve` (unless --no-jobs) or alone (`telmi worker`)."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator

from aiohttp import web

from scheduling.clock import Clock
from scheduling.jobs import JobRunner
from scheduling.leader import Leadership
from telmi import jobs
from telmi.db import Database
from telmi.keys import CLOCK, DB, SETTINGS
from telmi.leader import lock_for
from telmi.settings import Settings

RUNNER = web.AppKey("job_runner", JobRunner)


async def start_jobs(
    db: Database, clock: Clock, settings: Settings
) -> tuple[JobRunner, Leadership]:
    # Every run is recorded in job_runs (admin page); APScheduler's own lines would repeat it.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    leadership = Leadership(
        lock_for(settings), retry_seconds=settings.leader_retry_seconds, name=jobs.RUNNER
    )
    runner = JobRunner(
        jobs.build(db, clock, settings),
        timezone=settings.tz,
        leader=leadership,
        clock=clock,
        report=jobs.recorder(db),
    )
    leadership.on_change = runner.took_over
    await leadership.start()
    runner.start()
    return runner, leadership


async def jobs_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    if not settings.jobs:
        yield
        return
    runner, leadership = await start_jobs(app[DB], app[CLOCK], settings)
    app[RUNNER] = runner
    yield
    await runner.stop()
    await leadership.stop()


async def run_worker(settings: Settings, clock: Clock) -> None:
    """`telmi worker`: the jobs without the web server, until SIGTERM or SIGINT."""
    db = Database(settings.database_url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner, leadership = await start_jobs(db, clock, settings)
    try:
        await stop.wait()
    finally:
        await runner.stop()
        await leadership.stop()
        await db.dispose()
