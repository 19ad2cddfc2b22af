"""One leader among processes: only the holder of a lock runs the jobs.

A follower retries every `retry_seconds`; the leader checks every `retry_seconds` that its
lock is still held (a PostgreSQL advisory lock dies with its connection, so a killed leader
frees it at once and a follower takes over at its next try, well within a minute).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)


class Lock(Protocol):
    async def acquire(self) -> bool:
        """Try once, without waiting; True if this process now holds the lock."""
        ...

    async def held(self) -> bool:
        """Whether the lock is still ours (its connection may have died)."""
        ...

    async def release(self) -> None: ...


class FileLock:
    """An exclusive `flock` on a file: for one machine (SQLite deployments)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    async def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self.fd = fd
        return True

    async def held(self) -> bool:
        return self.fd is not None

    async def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


class Leadership:
    def __init__(self, lock: Lock, *, retry_seconds: float = 15.0, name: str = "") -> None:
        self.lock = lock
        self.retry_seconds = retry_seconds
        self.name = name
        self._leader = False
        self._task: asyncio.Task[None] | None = None
        self.on_change: Callable[[bool], None] | None = None

    @property
    def is_leader(self) -> bool:
        return self._leader

    async def _once(self) -> None:
        try:
            now_leader = await (self.lock.held() if self._leader else self.lock.acquire())
        except Exception:
            log.exception("leadership check failed")
            now_leader = False
        if now_leader != self._leader:
            self._leader = now_leader
            log.info(
                "%s %s the job leadership",
                self.name or "this process",
                "took" if now_leader else "lost",
            )
            if self.on_change is not None:
                self.on_change(now_leader)

    async def _loop(self) -> None:
        while True:
            await self._once()
            await asyncio.sleep(self.retry_seconds)

    async def start(self) -> None:
        await self._once()
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._leader = False
        with contextlib.suppress(Exception):
            await self.lock.release()
