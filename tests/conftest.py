"""Fixtures: a real app on a real socket over a real SQLite file or PostgreSQL database.

Database tests take the `database_url` fixture, parametrised over SQLite and PostgreSQL. The
schema always comes from the Alembic migrations. PostgreSQL tests skip only when
TELMI_TEST_POSTGRES_URL is unset; each test run creates its own database and drops it.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import text
from sqlalchemy.engine import make_url

from scheduling.clock import FrozenClock
from telmi import accounts, migrate
from telmi.app import create_app
from telmi.db import Database, asyncpg_dsn
from telmi.models import Base
from telmi.settings import Settings

from .factories import NOW, TEST_SECRET
from .mailbox import smtp  # noqa: F401 (a fixture: a real SMTP server for the mail tests)

POSTGRES_URL = os.environ.get("TELMI_TEST_POSTGRES_URL")
NO_POSTGRES = "TELMI_TEST_POSTGRES_URL is not set: PostgreSQL variant skipped"
BACKENDS = ["sqlite", "postgresql"]


async def _migrated(url: str) -> None:
    db = Database(url)
    try:
        await migrate.upgrade(db)
    finally:
        await db.dispose()


class PostgresDatabases:
    """Creates databases named after this run on the server TELMI_TEST_POSTGRES_URL points to."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.run = f"telmi_test_{os.getpid()}_{secrets.token_hex(3)}"
        self.created: list[str] = []

    async def _admin(self, sql: str) -> None:
        conn = await asyncpg.connect(asyncpg_dsn(self.admin_url))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    def create(self, suffix: str) -> str:
        name = f"{self.run}_{suffix}"
        asyncio.run(self._admin(f'CREATE DATABASE "{name}"'))
        self.created.append(name)
        return make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        for name in self.created:
            asyncio.run(self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that drive Chromium are the `browser` tier (`make test-fast` leaves them out,
    with the `slow` ones marked in their modules)."""
    for item in items:
        if "browser" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresDatabases]:
    if not POSTGRES_URL:
        pytest.skip(NO_POSTGRES)
    databases = PostgresDatabases(POSTGRES_URL)
    try:
        yield databases
    finally:
        databases.drop_all()


@pytest.fixture(scope="session")
def postgres_main(postgres: PostgresDatabases) -> str:
    url = postgres.create("main")
    asyncio.run(_migrated(url))
    return url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "telmi.sqlite3"
    asyncio.run(_migrated(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database: a copy of the SQLite template, or the run's PostgreSQL one."""
    if request.param == "sqlite":
        path = tmp_path / "telmi.sqlite3"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite+aiosqlite:///{path}"
    return request.getfixturevalue("postgres_main")


@pytest.fixture(params=BACKENDS)
def fresh_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty, unmigrated database of its own (for migration tests)."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'fresh.sqlite3'}"
    postgres = request.getfixturevalue("postgres")
    return postgres.create(f"fresh_{secrets.token_hex(3)}")


async def _truncate(db: Database) -> None:
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    async with db.engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    if database.dialect == "postgresql":
        await _truncate(database)
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
async def sqlite_db(sqlite_template: Path, tmp_path: Path) -> AsyncIterator[Database]:
    """SQLite alone, for what a test can only do there (raw tampering PostgreSQL refuses)."""
    path = tmp_path / "telmi.sqlite3"
    shutil.copy(sqlite_template, path)
    database = Database(f"sqlite+aiosqlite:///{path}")
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
async def pg_db(postgres_main: str) -> AsyncIterator[Database]:
    """PostgreSQL alone, for what only PostgreSQL enforces."""
    database = Database(postgres_main)
    await _truncate(database)
    try:
        yield database
    finally:
        await database.dispose()


class StoppedClock:
    """A monotonic clock that moves only when a test moves it."""

    def __init__(self) -> None:
        self.value = 0.0

    def __call__(self) -> float:
        return self.value


@pytest.fixture(autouse=True)
def token_cache(monkeypatch: pytest.MonkeyPatch) -> accounts.TokenCache:
    """Each test starts with an empty token cache whose clock stands still: a kept token
    ages only when the test moves `token_cache.monotonic`, whatever the machine's speed."""
    cache = accounts.TokenCache(monotonic=StoppedClock())
    monkeypatch.setattr(accounts, "TOKENS", cache)
    return cache


@pytest.fixture
def clock() -> FrozenClock:
    """The suite's fixed instant (factories.NOW); tests about another date set it there."""
    return FrozenClock(NOW)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    # Jobs off: tests run them explicitly, on the test's clock (see tests/test_jobs.py).
    return Settings(
        database_url=database_url, data_dir=tmp_path, secret_key=TEST_SECRET, jobs=False
    )


@pytest.fixture
async def client(
    aiohttp_client: object, settings: Settings, clock: FrozenClock, db: Database
) -> TestClient:
    """The app on a real socket on 127.0.0.1; `db` first, so PostgreSQL starts empty."""
    app = create_app(settings, clock=clock)
    return await aiohttp_client(app)  # type: ignore[operator, no-any-return]


@pytest.fixture
async def site(
    aiohttp_client: object, settings: Settings, clock: FrozenClock, db: Database
) -> TestClient:
    """The app on a port known in advance, so its public URL (the allowed Origin) matches:
    what browsers need for the signaling WebSocket."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    app = create_app(settings.replace(public_url=f"http://127.0.0.1:{port}"), clock=clock)
    return await aiohttp_client(app, server_kwargs={"port": port})  # type: ignore[operator, no-any-return]


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    from .browser import CHROMIUM, CHROMIUM_ARGS, require_browser

    require_browser()
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        launched = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()
