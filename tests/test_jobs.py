"""Background jobs on the test's clock: holds, reminders by real SMTP, leadership, backups."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select, text

from scheduling.clock import FrozenClock
from scheduling.jobs import Job, JobRunner
from scheduling.leader import FileLock, Leadership
from telmi import backup, jobs
from telmi.db import Database
from telmi.models import Booking, BookingStatus, JobRun, Notification, NotificationStatus, Role
from telmi.settings import Settings

from .factories import (
    PASSWORD,
    bearer,
    login,
    make_facility,
    make_resident,
    make_slot,
    make_user,
)
from .mailbox import Inbox, free_port


@pytest.fixture
async def visit(client: TestClient, db: Database, clock: FrozenClock) -> dict[str, Any]:
    """A booking confirmed now for a slot starting in 30 hours."""
    facility = await make_facility(db)
    staff = await make_user(db, Role.STAFF, facility=facility)
    specialist = await make_user(db, Role.SPECIALIST)
    start = clock.now() + timedelta(hours=30)
    slot = await make_slot(db, specialist, start)
    resident = await make_resident(db, staff, reference="RES-9")
    response = await client.post(
        "/api/bookings",
        json={
            "slot_id": slot.id,
            "patient_id": resident.id,
            "act_type": "teleconsultation",
            "reason": "Suivi",
        },
        headers={**await bearer(db, staff), "Idempotency-Key": str(uuid.uuid4())},
    )
    assert response.status == 201
    return {
        "staff": staff,
        "specialist": specialist,
        "start": start,
        "booking_id": (await response.json())["id"],
    }


async def _tick(db: Database, clock: FrozenClock, settings: Settings) -> None:
    await jobs.reminders(db, clock, settings)
    await jobs.deliver_mail(db, clock, settings)


async def test_holds_expire_and_free_their_slot(
    client: TestClient, db: Database, clock: FrozenClock, settings: Settings
) -> None:
    facility = await make_facility(db)
    staff = await make_user(db, Role.STAFF, facility=facility)
    slot = await make_slot(
        db, await make_user(db, Role.SPECIALIST), clock.now() + timedelta(days=1)
    )
    held = await client.post(f"/api/slots/{slot.id}/hold", json={}, headers=await bearer(db, staff))
    assert held.status == 201
    assert "0 réservations" in await jobs.release_holds(db, clock)
    clock.advance(timedelta(minutes=settings.hold_minutes + 1))
    assert "1 réservations" in await jobs.release_holds(db, clock)
    async with db.read() as session:
        assert await session.scalar(select(Booking.status)) is BookingStatus.EXPIRED
    assert (await client.get("/api/slots", headers=await bearer(db, staff))).status == 200


async def test_each_reminder_is_mailed_once(
    visit: dict[str, Any],
    db: Database,
    clock: FrozenClock,
    settings: Settings,
    smtp: tuple[Inbox, str],
) -> None:
    inbox, url = smtp
    settings = settings.replace(smtp_url=url)
    staff_mail, doc_mail = visit["staff"].email, visit["specialist"].email
    await _tick(db, clock, settings)  # the confirmation, with its calendar invitation
    assert inbox.subjects(staff_mail) == ["Téléconsultation confirmée"]
    invitation = next(m for m in inbox.messages if doc_mail in m["X-Rcpt"])
    calendars = [p for p in invitation.walk() if p.get_content_type() == "text/calendar"]
    assert calendars and "METHOD:REQUEST" in calendars[0].get_payload(decode=True).decode()
    for moment, expected in (
        (visit["start"] - timedelta(hours=23, minutes=50), "Rappel : téléconsultation demain"),
        (visit["start"] - timedelta(minutes=55), "Rappel : téléconsultation dans une heure"),
        (visit["start"] - timedelta(minutes=14), "La salle de consultation est ouverte"),
    ):
        clock.set(moment)
        for _ in range(3):  # the job runs every minute: once is what counts
            await _tick(db, clock, settings)
            clock.advance(timedelta(minutes=1))
        for who in (staff_mail, doc_mail):
            assert inbox.subjects(who).count(expected) == 1, (who, inbox.subjects(who))
    assert len(inbox.messages) == 2 * 4
    body = (
        next(m for m in inbox.messages if "demain" in str(m["Subject"]))
        .get_payload(decode=True)
        .decode()
    )
    assert "RES-9" not in body and "Suivi" not in body  # no resident reference, no reason


async def test_after_a_downtime_a_stale_reminder_is_dropped_and_a_useful_one_sent_once(
    visit: dict[str, Any], db: Database, clock: FrozenClock, settings: Settings
) -> None:
    clock.set(visit["start"] - timedelta(minutes=50))  # down from before the 24-hour mark
    await jobs.reminders(db, clock, settings)
    await jobs.reminders(db, clock, settings)
    async with db.read() as session:
        kinds = list(await session.scalars(select(Notification.kind)))
    assert kinds.count("rappel-1h") == 2  # staff and specialist, once each
    assert "rappel-24h" not in kinds


async def test_unreachable_smtp_retries_then_dead_letters(
    visit: dict[str, Any], db: Database, clock: FrozenClock, settings: Settings
) -> None:
    settings = settings.replace(smtp_url=f"smtp://127.0.0.1:{free_port()}", notification_attempts=3)
    await jobs.reminders(db, clock, settings)
    for _ in range(5):
        result = await jobs.deliver_mail(db, clock, settings)
        assert "0 envoyés" in result
        clock.advance(timedelta(hours=2))
    async with db.read() as session:
        states = list(
            await session.execute(
                select(Notification.status, Notification.attempts, Notification.last_error)
            )
        )
    assert states and all(
        s is NotificationStatus.DEAD and n == 3 and "Error" in e for s, n, e in states
    )


async def test_runs_are_recorded_and_a_failing_job_does_not_stop_the_others(
    db: Database, settings: Settings, clock: FrozenClock
) -> None:
    async def boom() -> None:
        raise RuntimeError("corrupted backup")

    async def fine() -> str:
        return "done"

    leader = Leadership(FileLock(settings.data_dir / "j.lock"))
    await leader.start()
    runner = JobRunner(
        [
            Job("boom", boom, "fails", every_seconds=3600),
            Job("fine", fine, "works", every_seconds=3600),
        ],
        timezone=settings.tz,
        leader=leader,
        clock=clock,
        report=jobs.recorder(db),
    )
    try:
        failed, worked = await runner.run_now("boom"), await runner.run_now("fine")
    finally:
        await leader.stop()
    assert not failed.ok and "corrupted backup" in failed.result and worked.ok
    runs = await jobs.last_runs(db)
    assert runs["boom"].failures == 1 and runs["fine"].last_result == "done"


async def test_one_file_lock_holder_at_a_time(tmp_path: Path) -> None:
    first, second = (
        Leadership(FileLock(tmp_path / "l"), retry_seconds=0.05),
        Leadership(FileLock(tmp_path / "l"), retry_seconds=0.05),
    )
    await first.start()
    await second.start()
    assert first.is_leader and not second.is_leader
    await first.stop()
    await asyncio.sleep(0.2)
    assert second.is_leader
    await second.stop()


async def test_admin_sees_the_jobs_and_users_their_notifications(
    client: TestClient, db: Database, visit: dict[str, Any], clock: FrozenClock, settings: Settings
) -> None:
    await jobs.reminders(db, clock, settings)
    await jobs.recorder(db)(
        __import__("scheduling.jobs", fromlist=["Run"]).Run(
            "rappels", clock.now(), 12.0, True, "2 rappels", None
        )
    )
    admin = await make_user(db, Role.ADMIN)
    await login(client, admin.email, PASSWORD)
    page = await (await client.get("/admin/taches")).text()
    assert "Rappels 24 h" in page and "2 rappels" in page and "Libérer les réservations" in page
    await client.post("/logout", data={})
    await login(client, visit["staff"].email, PASSWORD)
    mine = await (await client.get("/notifications")).text()
    assert "Téléconsultation confirmée" in mine


async def test_backup_then_restore_gives_the_same_data(sqlite_db: Database, tmp_path: Path) -> None:
    path = Path(sqlite_db.url.split("///", 1)[1])
    settings = Settings(database_url=sqlite_db.url, data_dir=tmp_path, backup_keep=2)
    await make_facility(sqlite_db, name="Avant la sauvegarde")
    copies = [
        await backup.backup(settings, now=datetime(2026, 1, d, tzinfo=UTC)) for d in (1, 2, 3)
    ]
    assert sorted(p.name for p in (tmp_path / "backups").iterdir()) == [c.name for c in copies[1:]]
    await make_facility(sqlite_db, name="Après la sauvegarde")
    await sqlite_db.dispose()
    await backup.restore(settings, copies[-1])
    with sqlite3.connect(path) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM facilities ORDER BY id")]
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert names == ["Avant la sauvegarde"]
    broken = tmp_path / "broken.sqlite3"
    broken.write_bytes(copies[-1].read_bytes()[:5000] + b"\x00garbage" * 100)
    with pytest.raises(backup.BackupError):
        await backup.restore(settings, broken)


# --- two processes against PostgreSQL -----------------------------------------------------------


def _worker(url: str, smtp_url: str, data_dir: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "TELMI_DATABASE_URL": url,
        "TELMI_SMTP_URL": smtp_url,
        "TELMI_DATA_DIR": str(data_dir),
        "TELMI_SECRET_KEY": "test-secret-key-" + "x" * 32,
        "TELMI_LEADER_RETRY_SECONDS": "1",
        "TELMI_LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "telmi.cli", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def _wait(check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.3)
    raise AssertionError("timed out")


@pytest.mark.slow
async def test_two_workers_on_postgresql_send_each_reminder_once_and_take_over(
    pg_db: Database, postgres_main: str, tmp_path: Path, smtp: tuple[Inbox, str]
) -> None:
    inbox, smtp_url = smtp
    facility = await make_facility(pg_db)
    staff = await make_user(pg_db, Role.STAFF, facility=facility)
    specialist = await make_user(pg_db, Role.SPECIALIST)
    resident = await make_resident(pg_db, staff, reference="RES-1")

    async def book(minutes: int) -> int:
        doctor = specialist if minutes == 50 else await make_user(pg_db, Role.SPECIALIST)
        slot = await make_slot(pg_db, doctor, datetime.now(UTC) + timedelta(minutes=minutes))
        async with pg_db.write() as session:
            row = Booking(
                slot_id=slot.id,
                specialist_id=slot.specialist_id,
                starts_at=slot.starts_at,
                ends_at=slot.ends_at,
                facility_id=facility.id,
                booked_by_id=staff.id,
                patient_id=resident.id,
                act_type="teleconsultation",
                status=BookingStatus.CONFIRMED,
                created_at=datetime.now(UTC),
                confirmed_at=datetime.now(UTC),
            )
            session.add(row)
        return row.id

    await book(50)  # its one-hour reminder is due now
    workers = [_worker(postgres_main, smtp_url, tmp_path / f"w{i}") for i in range(2)]
    try:

        async def leader() -> str | None:
            async with pg_db.read() as session:
                return await session.scalar(select(JobRun.runner).where(JobRun.name == "rappels"))

        first = await _wait(leader)
        await _wait(lambda: asyncio.sleep(0, result=len(inbox.messages) >= 4))
        await asyncio.sleep(3)  # both workers had time to run: still only one of each
        assert sorted(inbox.subjects()).count("Rappel : téléconsultation dans une heure") == 2
        assert len(inbox.messages) == 4  # 2 confirmations + 2 reminders

        victim = next(w for w in workers if first.endswith(f":{w.pid}"))
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        await book(45)

        async def taken_over() -> bool:
            return (await leader()) != first and len(inbox.messages) >= 8

        await _wait(taken_over, timeout=60)
        await asyncio.sleep(3)
        assert len(inbox.messages) == 8
    finally:
        for w in workers:
            if w.poll() is None:
                w.terminate()
                w.wait(timeout=10)
        async with pg_db.read() as session:
            await session.execute(text("SELECT 1"))
    async with pg_db.read() as session:
        assert await session.scalar(select(func.count()).select_from(Notification)) == 8


async def test_concurrent_deliveries_send_each_notice_once(
    visit: dict[str, Any],
    db: Database,
    clock: FrozenClock,
    settings: Settings,
    smtp: tuple[Inbox, str],
) -> None:
    inbox, url = smtp
    settings = settings.replace(smtp_url=url)
    await jobs.reminders(db, clock.__class__(clock.now()), settings.replace(smtp_url=""))
    await asyncio.gather(*(jobs.deliver_mail(db, clock, settings) for _ in range(4)))
    assert len(inbox.messages) == 2


async def test_cancellation_notice_carries_a_calendar_cancel(
    client: TestClient, visit: dict[str, Any], db: Database, clock: FrozenClock, settings: Settings
) -> None:
    headers = await bearer(db, visit["staff"])
    cancelled = await client.post(
        f"/api/bookings/{visit['booking_id']}/cancel",
        json={"reason": "Hospitalisation"},
        headers=headers,
    )
    assert cancelled.status == 200
    await jobs.reminders(db, clock, settings)
    async with db.read() as session:
        notices = {n.kind: n for n in await session.scalars(select(Notification))}
    assert "rdv-annule" in notices and "METHOD:CANCEL" in (notices["rdv-annule"].ics or "")
    assert "Hospitalisation" not in notices["rdv-annule"].body


async def test_missed_consultations_become_no_shows(
    visit: dict[str, Any], db: Database, clock: FrozenClock, settings: Settings
) -> None:
    clock.set(visit["start"] + timedelta(minutes=30 + settings.room_grace_minutes - 1))
    assert "0 rendez-vous" in await jobs.mark_no_shows(db, clock, settings)
    clock.advance(timedelta(minutes=2))
    assert "1 rendez-vous" in await jobs.mark_no_shows(db, clock, settings)
    assert "0 rendez-vous" in await jobs.mark_no_shows(db, clock, settings)
    async with db.read() as session:
        assert await session.scalar(select(Booking.status)) is BookingStatus.NO_SHOW


async def test_purge_removes_what_expired(
    client: TestClient, visit: dict[str, Any], db: Database, clock: FrozenClock, settings: Settings
) -> None:
    await login(client, visit["staff"].email, PASSWORD)
    clock.advance(timedelta(days=3))
    result = await jobs.purge(db, clock, settings)
    assert "1 sessions" in result and "1 clés d'idempotence" in result


async def test_a_tampered_act_log_alerts_the_admins(sqlite_db: Database, tmp_path: Path) -> None:
    from .factories import make_act

    clock = FrozenClock(datetime(2026, 3, 1, 4, 10, tzinfo=UTC))
    admin = await make_user(sqlite_db, Role.ADMIN)
    facility, specialist = (
        await make_facility(sqlite_db),
        await make_user(sqlite_db, Role.SPECIALIST),
    )
    act = await make_act(
        sqlite_db,
        facility=facility,
        specialist=specialist,
        occurred_at=datetime(2026, 2, 1, tzinfo=UTC),
    )
    assert "intacte" in await jobs.verify_act_chain(sqlite_db, clock)
    async with sqlite_db.write() as session:
        await session.execute(
            text("UPDATE acts SET duration_seconds = 1 WHERE id = :id"), {"id": act.id}
        )
    for _ in range(2):
        with pytest.raises(RuntimeError, match="altéré"):
            await jobs.verify_act_chain(sqlite_db, clock)
    async with sqlite_db.read() as session:
        alerts = list(
            await session.scalars(select(Notification).where(Notification.user_id == admin.id))
        )
    assert len(alerts) == 1 and f"acte {act.id}" in alerts[0].body


@pytest.mark.slow
def test_backup_and_restore_commands(tmp_path: Path) -> None:
    env = {**os.environ, "TELMI_DATA_DIR": str(tmp_path), "TELMI_LOG_LEVEL": "WARNING"}
    env.pop("TELMI_DATABASE_URL", None)

    def telmi(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "telmi.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert telmi("db", "upgrade").returncode == 0
    made = telmi("backup")
    assert made.returncode == 0 and "integrity ok" in made.stdout
    copy = next((tmp_path / "backups").glob("telmi-*.sqlite3"))
    assert telmi("restore", str(copy)).returncode == 0
    bad = tmp_path / "bad.sqlite3"
    bad.write_bytes(b"not a database at all" * 100)
    refused = telmi("restore", str(bad))
    assert refused.returncode == 1 and "endommagé" in refused.stderr
