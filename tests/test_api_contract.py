"""The OpenAPI document against the live server, as schemathesis sees it from outside.

The server runs on a real socket in a thread of its own, over a SQLite file holding the demo
region with its living activity, on a frozen clock (factories.NOW, 2026-06-10 08:00 UTC), so
ids that exist are found. schemathesis (its CLI, every check, positive and negative cases,
fixed seed, bounded examples) then calls every operation with the bearer token of each role:
any server error, any status or body the document does not promise, any invalid request
accepted is a failure, printed with the command that reproduces it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from sqlalchemy import select, update

from scheduling.clock import FrozenClock
from telmi import accounts, demo, demo_activity
from telmi.app import create_app
from telmi.context import Context
from telmi.db import Database
from telmi.models import ApiToken, User
from telmi.settings import Settings
from tests.conftest import TEST_SECRET
from tests.factories import NOW

pytestmark = pytest.mark.slow  # processes, benchmarks or generated cases

ROOT = Path(__file__).resolve().parent.parent
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
ROLES = {
    "staff": "infirmiere@telmi.demo",
    "specialist": "dermatologue@telmi.demo",
    "regional": "ars@telmi.demo",
    "admin": "admin@telmi.demo",
}
# Far from the ids a generator tries first (1, 2, 2^31-1): a fuzzed DELETE /api/tokens/{id}
# must not revoke the token the run is using.
TOKEN_IDS = {role: 1_500_000_000 + n for n, role in enumerate(ROLES)}
SEED, EXAMPLES = 20261202, 10


async def _seed(settings: Settings, clock: FrozenClock) -> dict[str, str]:
    db = Database(settings.database_url)
    try:
        async with db.write() as session:
            await demo.load(session, now=clock.now())
        await demo_activity.load_activity(db, clock=clock, settings=settings)
        tokens = {}
        async with db.write() as session:
            for role, email in ROLES.items():
                user = await session.scalar(select(User).where(User.email == email))
                assert user is not None, email
                token, raw = await accounts.create_token(
                    session, Context(user, clock.now()), accounts.NewToken(name=role)
                )
                await session.flush()
                await session.execute(
                    update(ApiToken).where(ApiToken.id == token.id).values(id=TOKEN_IDS[role])
                )
                tokens[role] = raw
        return tokens
    finally:
        await db.dispose()


class LiveServer:
    """The app served by its own event loop in a thread, so the test may block on a CLI."""

    def __init__(self, settings: Settings, clock: FrozenClock) -> None:
        self.settings, self.clock = settings, clock
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self.tokens: dict[str, str] = {}
        self.failure: BaseException | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.tokens = self.loop.run_until_complete(_seed(self.settings, self.clock))
            runner = web.AppRunner(create_app(self.settings, clock=self.clock))
            self.loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, "127.0.0.1", self.port)
            self.loop.run_until_complete(site.start())
        except BaseException as exc:  # reported by the fixture
            self.failure = exc
            self.ready.set()
            return
        self.ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(runner.cleanup())

    def __enter__(self) -> LiveServer:
        self.thread.start()
        self.ready.wait(300)
        if self.failure is not None:
            raise self.failure
        return self

    def __exit__(self, *_: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(60)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def demo_settings(sqlite_template: Path, here: Path) -> Settings:
    """A copy of the migrated template in `here`, for a LiveServer to seed with the demo."""
    shutil.copy(sqlite_template, here / "telmi.sqlite3")
    return Settings(
        database_url=f"sqlite+aiosqlite:///{here / 'telmi.sqlite3'}",
        data_dir=here,
        secret_key=TEST_SECRET,
        jobs=False,
        login_max_failures_address=10_000,
    )


@pytest.fixture(scope="module")
def live(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = demo_settings(sqlite_template, tmp_path_factory.mktemp("contract"))
    with LiveServer(settings, FrozenClock(NOW)) as server:
        yield server


@pytest.mark.parametrize("role", list(ROLES))
def test_every_operation_keeps_the_documents_promises(live: LiveServer, role: str) -> None:
    command = [
        str(SCHEMATHESIS),
        "--config-file",
        str(ROOT / "tests" / "schemathesis.toml"),
        "run",
        f"{live.url}/api/openapi.json",
        "--checks",
        "all",
        "--mode",
        "all",
        "--seed",
        str(SEED),
        "--max-examples",
        str(EXAMPLES),
        "--phases",
        "examples,coverage,fuzzing",
        "--workers",
        "1",
        "--no-color",
        "--suppress-health-check",
        "all",
        "--generation-database",
        "none",
        "--header",
        f"Authorization: Bearer {live.tokens[role]}",
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.schemathesis_hooks", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)
    shown = " ".join(c if "Bearer" not in c else "Authorization: Bearer <token>" for c in command)
    assert done.returncode == 0, f"{shown}\n{done.stdout[-12000:]}\n{done.stderr[-3000:]}"
    print(role, *(line.strip() for line in done.stdout.splitlines() if "generated" in line))
