"""`telmi serve` as an operator runs it: a subprocess on a real port, then a real login.

Also checks that a built wheel carries what a server needs outside a checkout.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from telmi.demo import DEMO_PASSWORD

pytestmark = pytest.mark.slow  # processes, benchmarks or generated cases

ROOT = Path(__file__).resolve().parent.parent
TELMI = [sys.executable, "-m", "telmi.cli"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _serving(env: dict[str, str]) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`telmi serve` on a free port until the block ends; then SIGTERM, as an operator stops it."""
    port = _free_port()
    process = subprocess.Popen(
        TELMI + ["serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert process.poll() is None, process.stdout.read().decode()  # type: ignore[union-attr]
                time.sleep(0.1)
        yield base, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            output = process.stdout.read().decode() if process.stdout else ""
            raise AssertionError(
                f"telmi serve ignored SIGTERM for 30 s:\n{output[-3000:]}"
            ) from None


def _prepared_env(tmp_path: Path, *, demo: bool) -> dict[str, str]:
    """A migrated SQLite database in `tmp_path`, with the demo region if asked."""
    env = {**os.environ, "TELMI_DATA_DIR": str(tmp_path / "data")}
    env.pop("TELMI_DATABASE_URL", None)
    commands = [["db", "upgrade"]] + ([["demo", "--history-scale", "0.01"]] if demo else [])
    for command in commands:
        subprocess.run(TELMI + command, env=env, check=True, capture_output=True, timeout=120)
    return env


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    with _serving(_prepared_env(tmp_path, demo=True)) as (base, _):
        yield base


async def test_served_app_lets_a_demo_user_log_in(server: str) -> None:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.get(f"{server}/healthz") as response:
            assert response.status == 200
        async with http.get(f"{server}/login") as response:
            token = re.search(r'name="csrf_token" value="([^"]+)"', await response.text())
        assert token
        form = {
            "email": "infirmiere@telmi.demo",
            "password": DEMO_PASSWORD,
            "csrf_token": token.group(1),
        }
        async with http.post(f"{server}/login", data=form) as response:
            assert response.status == 200
            html = await response.text()
        assert "EHPAD Les Tilleuls" in html and "Beaune" in html


@pytest.mark.parametrize(("level", "lines"), [("INFO", 1), ("WARNING", 0)])
async def test_served_app_logs_each_request_by_its_path_never_its_query(
    tmp_path: Path, level: str, lines: int
) -> None:
    env = {**_prepared_env(tmp_path, demo=False), "TELMI_LOG_LEVEL": level, "TELMI_JOBS": "false"}
    with _serving(env) as (base, process):
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/login", params={"next": "/residents?q=Dupont"}) as r:
                assert r.status == 200
    output = process.stdout.read().decode()  # type: ignore[union-attr]
    logged = [line for line in output.splitlines() if '"GET /login" 200' in line]
    assert len(logged) == lines, output
    assert "Dupont" not in output and "next=" not in output


def test_serve_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    env = {**os.environ, "TELMI_DATA_DIR": str(tmp_path)}
    env.pop("TELMI_DATABASE_URL", None)
    result = subprocess.run(
        TELMI + ["serve", "--port", str(_free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "telmi db upgrade" in result.stderr


def test_wheel_ships_migrations_static_and_templates(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        timeout=300,
    )
    [wheel] = tmp_path.glob("telmi-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in (
        "telmi/_bundled/migrations/env.py",
        "telmi/_bundled/static/css/telmi.css",
        "telmi/templates/login.html",
        "signaling/__init__.py",
        "scheduling/__init__.py",
    ):
        assert expected in names
    assert any(n.startswith("telmi/_bundled/migrations/versions/") for n in names)

    # Installed on its own (outside the checkout), it migrates a database and finds its files.
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        timeout=300,
    )
    env = {**os.environ, "PYTHONPATH": str(target), "TELMI_DATA_DIR": str(tmp_path / "data")}
    env.pop("TELMI_DATABASE_URL", None)
    probe = (
        "import os, telmi.paths as p; "
        "assert str(p.MIGRATIONS_DIR).startswith(os.environ['PYTHONPATH']), p.MIGRATIONS_DIR; "
        "assert (p.STATIC_DIR / 'css/telmi.css').is_file(); "
        "assert (p.TEMPLATES_DIR / 'base.html').is_file()"
    )
    subprocess.run([sys.executable, "-c", probe], env=env, cwd=tmp_path, check=True, timeout=60)
    result = subprocess.run(
        TELMI + ["db", "upgrade"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data" / "telmi.sqlite3").is_file()


def test_serve_runs_the_jobs_unless_told_not_to(tmp_path: Path) -> None:
    """With jobs, the frequent ones run at start and are recorded; with --no-jobs, none."""
    import sqlite3

    env = {**os.environ, "TELMI_DATA_DIR": str(tmp_path), "TELMI_LOG_LEVEL": "WARNING"}
    env.pop("TELMI_DATABASE_URL", None)
    subprocess.run(TELMI + ["db", "upgrade"], env=env, check=True, capture_output=True, timeout=120)

    def recorded_runs(*flags: str) -> int:
        port = _free_port()
        process = subprocess.Popen(TELMI + ["serve", "--port", str(port), *flags], env=env)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.1)
            time.sleep(2)
            with sqlite3.connect(tmp_path / "telmi.sqlite3") as conn:
                return int(conn.execute("SELECT count(*) FROM job_runs").fetchone()[0])
        finally:
            process.terminate()
            process.wait(timeout=30)

    assert recorded_runs("--no-jobs") == 0
    assert recorded_runs() >= 5
