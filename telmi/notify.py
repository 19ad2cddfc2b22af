"""Notifications: the outbox is the truth; mail is one way to deliver it.

Every notice is a row with a unique `dedupe_key`, written with ON CONFLICT DO NOTHING, so a
reminder or a booking notice exists once however many times (or processes) compute it.
Reminders are sent only while useful: one whose moment passed during a downtime is sent
late only if it still makes sense, and dropped otherwise. Mail goes out when SMTP is
configured, with retries and a dead-letter state; the pages show the outbox either way.
Nothing sent carries more patient data than the facility's own reference.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

import icalendar
from sqlalchemy import Table, and_, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from telmi.db import Database, dialect_name
from telmi.mail import Mailer
from telmi.models import (
    Booking,
    BookingStatus,
    Facility,
    Notification,
    NotificationStatus,
    Role,
    Slot,
    Specialty,
    User,
)

log = logging.getLogger(__name__)
_NOTIFICATIONS = cast(Table, Notification.__table__)
MONTHS = ["janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
          "septembre", "octobre", "novembre", "décembre"]  # fmt: skip


@dataclass(frozen=True)
class Reminder:
    kind: str
    due_before: timedelta  # sent from this long before the start...
    useful_until: timedelta  # ...until this long before it (after that: dropped)
    subject: str


REMINDERS = (
    Reminder(
        "rappel-24h", timedelta(hours=24), timedelta(hours=2), "Rappel : téléconsultation demain"
    ),
    Reminder(
        "rappel-1h",
        timedelta(hours=1),
        timedelta(minutes=10),
        "Rappel : téléconsultation dans une heure",
    ),
    Reminder(
        "salle-ouverte",
        timedelta(minutes=15),
        timedelta(minutes=-30),
        "La salle de consultation est ouverte",
    ),
)


def _when(at: datetime, tz: ZoneInfo) -> str:
    local = at.astimezone(tz)
    return f"le {local.day} {MONTHS[local.month - 1]} {local.year} à {local:%H:%M}"


async def enqueue(
    session: AsyncSession,
    *,
    user_id: int,
    kind: str,
    subject: str,
    body: str,
    dedupe_key: str,
    now: datetime,
    ics: str | None = None,
) -> bool:
    """Add a notice unless its key exists; True if this call created it."""
    dialect_insert = pg_insert if dialect_name(session) == "postgresql" else sqlite_insert
    result = await session.execute(
        dialect_insert(_NOTIFICATIONS)
        .values(
            user_id=user_id,
            kind=kind,
            subject=subject,
            body=body,
            dedupe_key=dedupe_key,
            status=NotificationStatus.PENDING,
            attempts=0,
            last_error="",
            created_at=now,
            ics=ics,
        )
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(_NOTIFICATIONS.c.id)
    )
    return result.first() is not None


_BOOKINGS = (
    select(
        Booking.id,
        Booking.booked_by_id,
        Booking.patient_ref,
        Booking.status,
        Booking.rescheduled_from_id,
        Slot.starts_at,
        Slot.ends_at,
        Slot.specialist_id,
        User.full_name,
        Specialty.name,
        Facility.name,
    )
    .join(Slot, Slot.id == Booking.slot_id)
    .join(User, User.id == Slot.specialist_id)
    .join(Specialty, Specialty.id == Slot.specialty_id)
    .join(Facility, Facility.id == Booking.facility_id)
)


def _text(row: Any, tz: ZoneInfo, public_url: str, lead: str) -> str:
    return (
        f"{lead}\n\n"
        f"Téléconsultation {_when(row.starts_at, tz)} avec {row[8]} ({row[9]}).\n"
        f"Établissement : {row[10]}. Résident : {row.patient_ref}.\n\n"
        f"Rejoindre la consultation : {public_url}/consultation/{row.id}\n"
        "La salle ouvre 15 minutes avant l'heure prévue. "
        f"Pour tester votre vidéo avant : {public_url}/test-video\n\n"
        "— Telmi, plateforme régionale de télémédecine"
    )


async def send_reminders(
    session: AsyncSession, *, now: datetime, tz: ZoneInfo, public_url: str
) -> int:
    """Create the reminders now due and still useful; returns how many were created."""
    created = 0
    for reminder in REMINDERS:
        rows = await session.execute(
            _BOOKINGS.where(
                Booking.status == BookingStatus.CONFIRMED,
                Slot.starts_at > now + reminder.useful_until,
                Slot.starts_at <= now + reminder.due_before,
            )
        )
        for row in rows:
            for user_id in (row.booked_by_id, row.specialist_id):
                created += await enqueue(
                    session,
                    user_id=user_id,
                    kind=reminder.kind,
                    subject=reminder.subject,
                    body=_text(row, tz, public_url, reminder.subject + "."),
                    dedupe_key=f"{reminder.kind}:{row.id}:{user_id}",
                    now=now,
                )
    return created


def calendar(row: Any, *, cancelled: bool, public_url: str, now: datetime) -> str:
    """An iCalendar REQUEST (or CANCEL) for the booking; no patient data in it."""
    cal = icalendar.Calendar()
    cal.add("prodid", "-//Telmi//Telemedecine//FR")
    cal.add("version", "2.0")
    cal.add("method", "CANCEL" if cancelled else "REQUEST")
    event = icalendar.Event()
    event.add("uid", f"booking-{row.id}@telmi")
    event.add("dtstamp", now)
    event.add("dtstart", row.starts_at)
    event.add("dtend", row.ends_at)
    event.add("sequence", 1 if cancelled else 0)
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    event.add("summary", f"Téléconsultation — {row[9]} ({row[10]})")
    event.add("description", f"Rejoindre depuis Telmi : {public_url}/consultation/{row.id}")
    event.add("url", f"{public_url}/consultation/{row.id}")
    cal.add_component(event)
    return cal.to_ical().decode()


async def booking_notices(
    session: AsyncSession, *, now: datetime, tz: ZoneInfo, public_url: str, since: timedelta
) -> int:
    """Confirmation, move and cancellation notices (with their .ics) for recent changes."""
    created = 0
    recent = now - since
    rows = await session.execute(
        _BOOKINGS.where(
            Slot.ends_at > now,
            or_(
                and_(Booking.status == BookingStatus.CONFIRMED, Booking.confirmed_at >= recent),
                and_(Booking.status == BookingStatus.CANCELLED, Booking.cancelled_at >= recent),
            ),
        )
    )
    for row in rows:
        cancelled = row.status is BookingStatus.CANCELLED
        kind = (
            "rdv-annule"
            if cancelled
            else ("rdv-deplace" if row.rescheduled_from_id else "rdv-confirme")
        )
        subject = {
            "rdv-annule": "Téléconsultation annulée",
            "rdv-deplace": "Téléconsultation déplacée",
            "rdv-confirme": "Téléconsultation confirmée",
        }[kind]
        ics = calendar(row, cancelled=cancelled, public_url=public_url, now=now)
        for user_id in (row.booked_by_id, row.specialist_id):
            created += await enqueue(
                session,
                user_id=user_id,
                kind=kind,
                subject=subject,
                body=_text(row, tz, public_url, subject + "."),
                dedupe_key=f"{kind}:{row.id}:{user_id}",
                now=now,
                ics=ics,
            )
    return created


async def alert_admins(
    session: AsyncSession, *, subject: str, body: str, key: str, now: datetime
) -> int:
    created = 0
    for admin_id in await session.scalars(
        select(User.id).where(User.role == Role.ADMIN, User.is_active.is_(True))
    ):
        created += await enqueue(
            session,
            user_id=admin_id,
            kind="alerte",
            subject=subject,
            body=body,
            dedupe_key=f"{key}:{admin_id}",
            now=now,
        )
    return created


# --- delivery -----------------------------------------------------------------------------------


CLAIM = timedelta(minutes=5)


async def _claim(db: Database, notice_id: int, now: datetime) -> bool:
    """Take the notice for this delivery (a lease: if we die, it is retried after CLAIM)."""
    async with db.write() as session:
        claimed = await session.execute(
            update(Notification)
            .where(
                Notification.id == notice_id,
                Notification.status.in_((NotificationStatus.PENDING, NotificationStatus.FAILED)),
                or_(Notification.next_attempt_at.is_(None), Notification.next_attempt_at <= now),
            )
            .values(next_attempt_at=now + CLAIM)
            .returning(Notification.id)
        )
        return claimed.first() is not None


def _backoff(attempts: int) -> timedelta:
    return timedelta(minutes=min(60, 2 ** (attempts - 1)))


async def deliver(
    db: Database, mailer: Mailer, *, now: datetime, max_attempts: int, batch: int = 50
) -> str:
    """Mail the pending notices; a failure is retried later, then dead-lettered."""
    async with db.read() as session:
        due = (
            await session.execute(
                select(Notification, User.email)
                .join(User, User.id == Notification.user_id)
                .where(
                    Notification.status.in_(
                        (NotificationStatus.PENDING, NotificationStatus.FAILED)
                    ),
                    or_(
                        Notification.next_attempt_at.is_(None), Notification.next_attempt_at <= now
                    ),
                )
                .order_by(Notification.id)
                .limit(batch)
            )
        ).all()
    sent = failed = 0
    for notice, email in due:
        if not await _claim(db, notice.id, now):
            continue  # another delivery run has it
        try:
            await mailer.send(email, notice.subject, notice.body, notice.ics)
        except Exception as exc:
            failed += 1
            attempts = notice.attempts + 1
            dead = attempts >= max_attempts
            log.warning(
                "mail for notification %s failed (attempt %s): %s",
                notice.id,
                attempts,
                type(exc).__name__,
            )
            values: dict[str, Any] = {
                "attempts": attempts,
                "last_error": f"{type(exc).__name__}: {exc}"[:500],
                "status": NotificationStatus.DEAD if dead else NotificationStatus.FAILED,
                "next_attempt_at": None if dead else now + _backoff(attempts),
            }
        else:
            sent += 1
            values = {
                "status": NotificationStatus.SENT,
                "sent_at": now,
                "attempts": notice.attempts + 1,
            }
        async with db.write() as session:
            await session.execute(
                update(Notification).where(Notification.id == notice.id).values(**values)
            )
    return f"{sent} envoyés, {failed} en échec"


async def for_user(session: AsyncSession, user: User, *, limit: int = 50) -> list[Notification]:
    return list(
        await session.scalars(
            select(Notification)
            .where(Notification.user_id == user.id)
            .order_by(Notification.created_at.desc(), Notification.id.desc())
            .limit(limit)
        )
    )


async def mark_read(session: AsyncSession, user: User, *, now: datetime) -> None:
    await session.execute(
        update(Notification)
        .where(Notification.user_id == user.id, Notification.read_at.is_(None))
        .values(read_at=now)
    )
