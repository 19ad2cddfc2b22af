"""What every benchmark needs: a scratch database, a real `telmi serve` process, percentiles."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from telmi import migrate
from telmi.db import Database, asyncpg_dsn

DEFAULT_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def percentile(values: Sequence[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def progress(label: str, done: int, total: int) -> None:
    print(f"\r  {label}: {done}/{total}", end="" if done < total else "\n", flush=True)


def machine() -> str:
    return f"{os.cpu_count()} CPU, Python {sys.version.split()[0]}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def scratch_database(backend: str, postgres_url: str | None) -> AsyncIterator[str]:
    """A migrated, empty database that disappears afterwards."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="telmi-bench-") as folder:
            url = f"sqlite+aiosqlite:///{Path(folder) / 'bench.sqlite3'}"
            await _migrate(url)
            yield url
        return
    admin = postgres_url or os.environ.get("TELMI_BENCH_POSTGRES_URL") or DEFAULT_POSTGRES
    name = f"telmi_bench_{os.getpid()}_{secrets.token_hex(3)}"
    dsn = asyncpg_dsn(admin)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = make_url(admin).set(database=name).render_as_string(hide_password=False)
    try:
        await _migrate(url)
        yield url
    finally:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


async def _migrate(url: str) -> None:
    db = Database(url)
    try:
        await migrate.upgrade(db)
    finally:
        await db.dispose()


@dataclass(frozen=True)
class Server:
    base_url: str
    process: subprocess.Popen[bytes]

    def cpu_seconds(self) -> float:
        """CPU time the server process has used so far (user + system, from /proc)."""
        try:
            return _cpu_seconds(self.process.pid)
        except OSError:
            return float("nan")


def _cpu_seconds(pid: int | str) -> float:
    """User + system CPU time of a process so far, from /proc (OSError if it is gone)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def local_postgres_cpu_seconds() -> float:
    """CPU time used so far by the processes named `postgres` on this machine (the server's
    backends and its helpers), from /proc; 0 where there are none (another host, SQLite).
    Read before and after a run: what the database did for it, beside the server's CPU."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as comm:
                if comm.read().strip() == "postgres":
                    total += _cpu_seconds(entry)
        except OSError:
            continue  # a process that ended meanwhile
    return total


@contextmanager
def serve(database_url: str, *, extra_env: dict[str, str] | None = None) -> Iterator[Server]:
    """`telmi serve` in its own process, as in production: one process, one event loop."""
    port = free_port()
    env = {
        **os.environ,
        "TELMI_DATABASE_URL": database_url,
        "TELMI_LOG_LEVEL": "WARNING",
        # Measured alone: in production the jobs can run in `telmi worker` beside it.
        "TELMI_JOBS": "false",
        # As in production: the answers' check against their models is the tests' job.
        "TELMI_CHECK_RESPONSES": "false",
        **(extra_env or {}),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "telmi.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    err = process.stderr.read().decode() if process.stderr else ""
                    raise RuntimeError(f"telmi serve did not start: {err}") from None
                time.sleep(0.1)
        yield Server(f"http://127.0.0.1:{port}", process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def rss_kib(server: Server) -> int:
    """The server's resident set (VmRSS), in KiB."""
    with open(f"/proc/{server.process.pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@contextmanager
def py_spy(server: Server, path: str | None) -> Iterator[None]:
    """py-spy sampling the server while the block runs (not pausing it), collapsed stacks
    written to `path`; nothing when `path` is None. A failure is printed, not raised: the
    benchmark's figures still stand."""
    if path is None:
        yield
        return
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        raise RuntimeError("py-spy is not installed (.venv/bin/pip install py-spy)")
    process = subprocess.Popen(
        [spy, "record", "--pid", str(server.process.pid), "--rate", "200", "--format", "raw"]
        + ["--nonblocking", "--nolineno", "--output", path],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield
    finally:
        process.send_signal(signal.SIGINT)  # py-spy writes its file on Ctrl-C
        try:
            _, err = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            _, err = process.communicate()
        if not Path(path).exists():
            print(f"  py-spy wrote nothing: {err.decode().strip()[-300:]}")


_PLUMBING = re.compile(r"\((asyncio|<frozen runpy>|aiohttp/web\.py|telmi/cli\.py)")


def top_costs(path: str, count: int = 20) -> list[str]:
    """Where the server's samples went, from py-spy's collapsed stacks: functions of the
    project and of libraries by inclusive share (each function once per stack; the event
    loop and entry points left out), then the leaves (self).

    py-spy samples a thread that is not idle, including while it waits for a core or in a
    syscall: on a shared machine a socket write that wakes PostgreSQL weighs heavily, and
    with --nonblocking some waits in epoll are counted. The shares without those leaves
    are printed too: closer to where the CPU went."""
    stacks: list[tuple[list[str], int]] = []
    for line in Path(path).read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        if stack and samples.isdigit():
            stacks.append(([f.strip() for f in stack.split(";") if f.strip()], int(samples)))
    out: list[str] = []
    waits = ("_SelectorSocketTransport.write", "EpollSelector.select")
    busy = [s for s in stacks if not s[0][-1].startswith(waits)]
    for title, kept in (("all samples", stacks), ("without socket writes and epoll", busy)):
        inclusive: Counter[str] = Counter()
        own: Counter[str] = Counter()
        for frames, n in kept:
            for frame in set(frames):
                inclusive[frame] += n
            own[frames[-1]] += n
        total = sum(n for _, n in kept)
        if not total:
            return ["  (no samples)"]
        ranked = [(f, n) for f, n in inclusive.most_common() if not _PLUMBING.search(f)]
        ours = [(f, n) for f, n in ranked if re.search(r"\((telmi|signaling|scheduling)/", f)]
        theirs = [(f, n) for f, n in ranked if (f, n) not in ours]
        out.append(f"  {title} ({total} samples) — inclusive, the project:")
        out += [f"    {n / total:6.1%}  {f}" for f, n in ours[:count]]
        out.append("  inclusive, libraries:")
        out += [f"    {n / total:6.1%}  {f}" for f, n in theirs[:count]]
        out.append("  self:")
        out += [f"    {n / total:6.1%}  {f}" for f, n in own.most_common(count)]
    return out
