"""Running background jobs on APScheduler 3, once, with a record of each run.

The application hands over `Job`s whose bodies are plain coroutines (already bound to a
database and a clock); this module decides when they run: one instance at a time, missed
runs coalesced into one, an explicit misfire grace per job, and only while this process
holds the leadership (see `scheduling.leader`). Every run is reported to a callback, so the
application can show next run, last run, duration and result.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from scheduling.clock import Clock, SystemClock

log = logging.getLogger(__name__)
# APScheduler sleeps in real time, so "run now" is on its timeline, the system clock; what
# the jobs decide and record comes from the injected clock.
_scheduler_now = SystemClock().now


class Leader(Protocol):
    @property
    def is_leader(self) -> bool: ...


@dataclass(frozen=True)
class Job:
    name: str
    run: Callable[[], Awaitable[Any]]
    description: str
    every_seconds: float | None = None
    cron: dict[str, Any] = field(default_factory=dict)  # e.g. {"hour": 3, "minute": 10}
    misfire_grace_seconds: int = 60


@dataclass
class Run:
    job: str
    started_at: datetime
    duration_ms: float
    ok: bool
    result: str
    next_run_at: datetime | None


Report = Callable[[Run], Awaitable[None]]


class JobRunner:
    def __init__(
        self,
        jobs: Sequence[Job],
        *,
        timezone: ZoneInfo,
        leader: Leader,
        clock: Clock,
        report: Report | None = None,
    ) -> None:
        self.jobs = {job.name: job for job in jobs}
        self.leader = leader
        self.report = report
        self.timezone = timezone
        self.clock = clock
        self.scheduler = AsyncIOScheduler(timezone=timezone)
        self._running: set[asyncio.Task[Any]] = set()
        for job in jobs:
            trigger = (
                IntervalTrigger(seconds=job.every_seconds, timezone=timezone)
                if job.every_seconds
                else CronTrigger(timezone=timezone, **job.cron)
            )
            self.scheduler.add_job(
                self._wrap(job),
                trigger,
                id=job.name,
                name=job.description,
                misfire_grace_time=job.misfire_grace_seconds,
                coalesce=True,
                max_instances=1,
                # Frequent jobs run at start too: after a restart, what fell due is caught up.
                **({"next_run_time": _scheduler_now()} if job.every_seconds else {}),
            )

    def _wrap(self, job: Job) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            if not self.leader.is_leader:
                return  # another process runs the jobs
            await self.run_now(job.name)

        return run

    async def run_now(self, name: str) -> Run:
        """Run one job here and now (also used by tests and the admin page)."""
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        try:
            return await self._run(name)
        finally:
            if task is not None:
                self._running.discard(task)

    async def _run(self, name: str) -> Run:
        job = self.jobs[name]
        started, clock = self.clock.now(), time.perf_counter()
        try:
            result = await job.run()
            ok, text = True, "" if result is None else str(result)
        except Exception as exc:  # a failing job never stops the others
            log.exception("job %s failed", name)
            ok, text = False, f"{type(exc).__name__}: {exc}"[:500]
        scheduled = self.scheduler.get_job(name) if self.scheduler.running else None
        run = Run(
            name,
            started,
            (time.perf_counter() - clock) * 1000,
            ok,
            text,
            scheduled.next_run_time if scheduled else None,
        )
        if self.report is not None:
            try:
                await self.report(run)
            except Exception:
                log.exception("could not record the run of job %s", name)
        return run

    def took_over(self, leader: bool) -> None:
        """A new leader catches up at once rather than at each job's next tick."""
        if leader and self.scheduler.running:
            for name, job in self.jobs.items():
                if job.every_seconds:
                    self.scheduler.modify_job(name, next_run_time=_scheduler_now())

    def start(self) -> None:
        self.scheduler.start()

    async def stop(self, grace_seconds: float = 10.0) -> None:
        """No new runs; the running ones get `grace_seconds` to finish, then are cancelled
        (each job is idempotent: the next leader's run completes its work)."""
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        running = [t for t in self._running if t is not asyncio.current_task()]
        if running:
            _, late = await asyncio.wait(running, timeout=grace_seconds)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=1)

    def next_runs(self) -> dict[str, datetime | None]:
        return {
            name: (j.next_run_time if (j := self.scheduler.get_job(name)) else None)
            for name in self.jobs
        }
