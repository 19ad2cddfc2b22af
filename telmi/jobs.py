"""The background jobs' bodies: plain async functions over a database and a clock.

Each is idempotent (running it twice, or in two processes, changes nothing more than once),
so a coalesced, late or repeated run is harmless. `scheduling.jobs` decides when they run;
`build` binds them to this deployment.
"""

from __future__ import annotations

import os
import socket
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from scheduling.clock import Clock
from scheduling.jobs import Job, Run
from telmi import (
    acts,
    availability,
    backup,
    booking,
    consultations,
    expertise,
    notify,
    record_access,
)
from telmi.db import Database, dialect_name
from telmi.mail import Mailer
from telmi.models import (
    IdempotencyKey,
    Invite,
    JobRun,
    LoginAttempt,
    Role,
    User,
    WebSession,
)
from telmi.settings import Settings

RUNNER = f"{socket.gethostname()}:{os.getpid()}"


async def release_holds(db: Database, clock: Clock) -> str:
    freed = await db.run_write(lambda s: booking.expire_holds(s, now=clock.now()))
    return f"{freed} réservations temporaires libérées"


async def materialise_slots(db: Database, clock: Clock, settings: Settings) -> str:
    async with db.read() as session:
        specialists = list(
            await session.scalars(
                select(User).where(User.role == Role.SPECIALIST, User.is_active.is_(True))
            )
        )
    created = 0
    for specialist in specialists:

        async def sync(session: Any, sp: User = specialist) -> availability.SyncReport:
            return await availability.sync_slots(
                session, sp, now=clock.now(), tz=settings.tz, weeks=settings.slot_horizon_weeks
            )

        created += (await db.run_write(sync)).created
    return f"{len(specialists)} agendas, {created} créneaux créés"


async def reminders(db: Database, clock: Clock, settings: Settings) -> str:
    created = await db.run_write(
        lambda s: notify.send_reminders(
            s, now=clock.now(), tz=settings.tz, public_url=settings.public_url
        )
    )
    notices = await db.run_write(
        lambda s: notify.booking_notices(
            s,
            now=clock.now(),
            tz=settings.tz,
            public_url=settings.public_url,
            since=timedelta(days=2),
        )
    )
    summary = f"{created} rappels, {notices} avis de rendez-vous"
    if (created or notices) and settings.smtp_url:  # out now rather than at the mail job's tick
        summary += " ; " + await deliver_mail(db, clock, settings)
    return summary


async def mark_no_shows(db: Database, clock: Clock, settings: Settings) -> str:
    """Confirmed bookings whose slot ended (plus the grace) without the consultation starting."""
    cutoff = clock.now() - timedelta(minutes=settings.room_grace_minutes)
    marked = await db.run_write(lambda s: booking.mark_no_shows(s, ended_before=cutoff))
    return f"{marked} rendez-vous non honorés"


async def close_consultations(db: Database, clock: Clock, settings: Settings) -> str:
    rooms = await consultations.close_overdue(
        db,
        now=clock.now(),
        grace_minutes=settings.room_grace_minutes,
        tz=settings.tz,
        vault=settings.vault,
    )
    return f"{len(rooms)} consultations clôturées"


async def purge(db: Database, clock: Clock, settings: Settings) -> str:
    now = clock.now()

    async def work(session: Any) -> dict[str, int]:
        counts = {}
        for name, statement in (
            (
                "sessions",
                delete(WebSession).where(
                    or_(
                        WebSession.expires_at <= now,
                        WebSession.revoked_at.is_not(None),
                        WebSession.last_seen_at
                        <= now - timedelta(minutes=settings.session_idle_minutes),
                    )
                ),
            ),
            ("invitations", delete(Invite).where(Invite.expires_at <= now - timedelta(days=1))),
            ("clés d'idempotence", delete(IdempotencyKey).where(IdempotencyKey.expires_at <= now)),
            (
                "tentatives de connexion",
                delete(LoginAttempt).where(LoginAttempt.at <= now - timedelta(days=30)),
            ),
        ):
            counts[name] = (await session.execute(statement)).rowcount or 0
        return counts

    counts = await db.run_write(work)
    return ", ".join(f"{n} {k}" for k, n in counts.items())


async def audit_retention(
    db: Database, clock: Clock, settings: Settings, *, batch: int = 5000
) -> str:
    """Access events older than TELMI_AUDIT_RETENTION_MONTHS, deleted a batch per transaction."""
    cutoff = record_access.retention_cutoff(clock.now(), settings.audit_retention_months)
    deleted = 0
    while True:
        n = await db.run_write(
            lambda s: record_access.delete_expired(s, before=cutoff, limit=batch)
        )
        deleted += n
        if n < batch:
            return record_access.retention_summary(deleted)


async def overdue_expertise(db: Database, clock: Clock, settings: Settings) -> str:
    return await db.run_write(
        lambda s: expertise.overdue(s, now=clock.now(), public_url=settings.public_url)
    )


async def verify_act_chain(db: Database, clock: Clock) -> str:
    async with db.read() as session:
        verdict = await acts.verify(session)
    if verdict.ok:
        return f"chaîne intacte ({verdict.checked} actes)"
    problem = (
        f"acte {verdict.broken_id} : {verdict.problem}"
        if verdict.broken_id is not None
        else f"{verdict.rollup_mismatches} cellules du cumul mensuel diffèrent du journal"
    )
    day = clock.now().date().isoformat()
    await db.run_write(
        lambda s: notify.alert_admins(
            s,
            subject="Alerte : journal des actes altéré",
            body=f"La vérification nocturne du journal des actes a échoué : {problem}.\n"
            "Lancez `telmi acts verify` et comparez avec la dernière sauvegarde.",
            key=f"chaine-actes:{day}",
            now=clock.now(),
        )
    )
    raise RuntimeError(f"journal des actes altéré : {problem}")


async def nightly_backup(settings: Settings, clock: Clock) -> str:
    path = await backup.backup(settings, now=clock.now())
    return f"sauvegarde {path.name}"


async def deliver_mail(db: Database, clock: Clock, settings: Settings) -> str:
    if not settings.smtp_url:
        return "pas de serveur SMTP configuré : les notifications restent dans Telmi"
    mailer = Mailer(settings.smtp_url, settings.mail_from)
    return await notify.deliver(
        db, mailer, now=clock.now(), max_attempts=settings.notification_attempts
    )


def build(db: Database, clock: Clock, settings: Settings) -> list[Job]:
    jobs = [
        Job(
            "liberer-reservations",
            lambda: release_holds(db, clock),
            "Libérer les réservations temporaires expirées",
            every_seconds=30,
            misfire_grace_seconds=30,
        ),
        Job(
            "creneaux",
            lambda: materialise_slots(db, clock, settings),
            "Créer les créneaux des 8 semaines à venir",
            cron={"hour": 2, "minute": 30},
            misfire_grace_seconds=6 * 3600,
        ),
        Job(
            "rappels",
            lambda: reminders(db, clock, settings),
            "Rappels 24 h, 1 h, ouverture de salle, avis de rendez-vous",
            every_seconds=60,
            misfire_grace_seconds=300,
        ),
        Job(
            "non-honores",
            lambda: mark_no_shows(db, clock, settings),
            "Marquer les rendez-vous non honorés",
            every_seconds=600,
            misfire_grace_seconds=3600,
        ),
        Job(
            "cloture-consultations",
            lambda: close_consultations(db, clock, settings),
            "Clôturer les consultations restées ouvertes",
            every_seconds=60,
            misfire_grace_seconds=600,
        ),
        Job(
            "teleexpertises-en-retard",
            lambda: overdue_expertise(db, clock, settings),
            "Relancer les téléexpertises en retard, expirer les abandonnées",
            every_seconds=600,
            misfire_grace_seconds=3600,
        ),
        Job(
            "purge",
            lambda: purge(db, clock, settings),
            "Purger sessions, invitations, clés d'idempotence expirées",
            cron={"hour": 3, "minute": 40},
            misfire_grace_seconds=12 * 3600,
        ),
        Job(
            "retention-acces",
            lambda: audit_retention(db, clock, settings),
            f"Supprimer les évènements d'accès de plus de {settings.audit_retention_months} mois",
            cron={"hour": 3, "minute": 50},
            misfire_grace_seconds=12 * 3600,
        ),
        Job(
            "verifier-actes",
            lambda: verify_act_chain(db, clock),
            "Vérifier la chaîne du journal des actes",
            cron={"hour": 4, "minute": 10},
            misfire_grace_seconds=12 * 3600,
        ),
        Job(
            "courriels",
            lambda: deliver_mail(db, clock, settings),
            "Envoyer les notifications par courriel",
            every_seconds=30,
            misfire_grace_seconds=120,
        ),
    ]
    if settings.is_sqlite:
        jobs.append(
            Job(
                "sauvegarde",
                lambda: nightly_backup(settings, clock),
                "Sauvegarde de la base SQLite",
                cron={"hour": 2, "minute": 0},
                misfire_grace_seconds=12 * 3600,
            )
        )
    return jobs


def recorder(db: Database) -> Any:
    """Report each run into `job_runs`, whichever process ran it."""

    async def record(run: Run) -> None:
        values = {
            "name": run.job,
            "last_started_at": run.started_at,
            "last_duration_ms": round(run.duration_ms),
            "last_ok": run.ok,
            "last_result": run.result[:500],
            "next_run_at": run.next_run_at,
            "runs": 1,
            "failures": 0 if run.ok else 1,
            "runner": RUNNER,
        }

        async def work(session: Any) -> None:
            dialect_insert = pg_insert if dialect_name(session) == "postgresql" else sqlite_insert
            stmt = dialect_insert(JobRun).values(**values)
            await session.execute(
                stmt.on_conflict_do_update(
                    index_elements=["name"],
                    set_={
                        **{
                            k: stmt.excluded[k]
                            for k in values
                            if k not in ("name", "runs", "failures")
                        },
                        "runs": JobRun.runs + 1,
                        "failures": JobRun.failures + (0 if run.ok else 1),
                    },
                )
            )

        await db.run_write(work)

    return record


async def last_runs(db: Database) -> dict[str, JobRun]:
    async with db.read() as session:
        return {r.name: r for r in await session.scalars(select(JobRun))}
