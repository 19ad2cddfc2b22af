"""Notifications: the outbox is the truth; mail is one way to deliver it.

Every notice is a row with a unique `dedupe_key`, written with ON CONFLICT DO NOTHING, so a
reminder or a booking notice exists once however many times (or processes) compute it.
Reminders are sent only while useful: one whose moment passed during a downtime is sent
late only if it still makes sense, and dropped otherwise. Mail goes out when SMTP is
configured, with retries and a dead-letter state; the pages show the outbox either way.
Nothing sent carries patient data: a notice names the time, the facility and the specialist.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

import icalendar
from sqlalchemy import Table, and_, bindparam, exists, func, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from telmi import labels
from telmi.db import Database, Executor, Prepared, dialect_name
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
from telmi.paging import Key, Keyset, Page

log = logging.getLogger(__name__)
_NOTIFICATIONS = cast(Table, Notification.__table__)


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
    """« le 1er décembre 2026 à 14 h 30 », in the region's time zone."""
    return labels.on(at.astimezone(tz))


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


# No patient column: what is not read cannot end up in a mail.
_BOOKINGS = (
    select(
        Booking.id,
        Booking.booked_by_id,
        Booking.status,
        Booking.rescheduled_from_id,
        Slot.starts_at,
        Slot.ends_at,
        Slot.specialist_id,
        User.full_name.label("specialist_name"),
        Specialty.name.label("specialty_name"),
        Facility.name.label("facility_name"),
    )
    .join(Slot, Slot.id == Booking.slot_id)
    .join(User, User.id == Slot.specialist_id)
    .join(Specialty, Specialty.id == Slot.specialty_id)
    .join(Facility, Facility.id == Booking.facility_id)
)


def _text(
    row: Any,
    tz: ZoneInfo,
    public_url: str,
    lead: str,
    *,
    join: bool = True,
    before: Any | None = None,
) -> str:
    """A notice's body: when, with whom, where; the room's link only if it will open.
    `before` is the booking a move replaced, for « initialement prévue … »."""
    what = f"Téléconsultation {_when(row.starts_at, tz)} avec {row.specialist_name}"
    text = f"{lead}\n\n{what} ({row.specialty_name}).\n"
    if before is not None:
        text += f"Initialement prévue {_when(before.starts_at, tz)}"
        if before.specialist_id != row.specialist_id:
            text += f" avec {before.specialist_name}"
        text += ".\n"
    text += f"Établissement : {row.facility_name}.\n\n"
    if join:
        text += (
            f"Rejoindre la consultation : {public_url}/consultation/{row.id}\n"
            "La salle ouvre 15 minutes avant l'heure prévue.\n"
            f"Tester votre vidéo avant : {public_url}/test-video\n\n"
        )
    return text + "— Telmi, plateforme régionale de télémédecine"


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


@dataclass(frozen=True)
class Chain:
    """Where a booking's calendar event comes from: the first booking of its moves."""

    first_id: int
    moves: int


async def _chains(session: AsyncSession, parents: dict[int, int | None]) -> dict[int, Chain]:
    """booking id -> its chain, walking `rescheduled_from_id` back (a few moves at most)."""
    known = dict(parents)
    wanted = {p for p in parents.values() if p is not None} - known.keys()
    while wanted:
        rows = await session.execute(
            select(Booking.id, Booking.rescheduled_from_id).where(Booking.id.in_(wanted))
        )
        found: dict[int, int | None] = {booking_id: parent for booking_id, parent in rows}
        known.update({w: found.get(w) for w in wanted})
        wanted = {p for p in found.values() if p is not None} - known.keys()
    chains: dict[int, Chain] = {}
    for booking_id in parents:
        first, moves = booking_id, 0
        while known.get(first) is not None:
            first, moves = cast(int, known[first]), moves + 1
        chains[booking_id] = Chain(first, moves)
    return chains


def calendar(
    row: Any, *, cancelled: bool, public_url: str, now: datetime, chain: Chain | None = None
) -> str:
    """An iCalendar REQUEST (or CANCEL) for the booking; no patient data in it.

    A moved booking keeps the event of the booking it replaced (same UID, higher SEQUENCE),
    so a calendar moves the event instead of keeping the old one beside the new."""
    chain = chain or Chain(row.id, 0)
    cal = icalendar.Calendar()
    cal.add("prodid", "-//Telmi//Telemedecine//FR")
    cal.add("version", "2.0")
    cal.add("method", "CANCEL" if cancelled else "REQUEST")
    event = icalendar.Event()
    event.add("uid", f"booking-{chain.first_id}@telmi")
    event.add("dtstamp", now)
    event.add("dtstart", row.starts_at)
    event.add("dtend", row.ends_at)
    event.add("sequence", chain.moves + (1 if cancelled else 0))
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    event.add("summary", f"Téléconsultation — {row.specialty_name} ({row.facility_name})")
    if not cancelled:
        event.add("description", f"Rejoindre depuis Telmi : {public_url}/consultation/{row.id}")
        event.add("url", f"{public_url}/consultation/{row.id}")
    cal.add_component(event)
    return cal.to_ical().decode()


SUBJECTS = {
    "rdv-annule": "Téléconsultation annulée",
    "rdv-deplace": "Téléconsultation déplacée",
    "rdv-confirme": "Téléconsultation confirmée",
}


async def booking_notices(
    session: AsyncSession, *, now: datetime, tz: ZoneInfo, public_url: str, since: timedelta
) -> int:
    """Confirmation, move and cancellation notices (with their .ics) for recent changes.

    A move is one notice per person, « déplacée », keyed by the new booking: the booking it
    replaced (cancelled by the move) gets no cancellation notice of its own."""
    created = 0
    recent = now - since
    replacement = aliased(Booking)
    replaced = exists().where(replacement.rescheduled_from_id == Booking.id)
    rows = (
        await session.execute(
            _BOOKINGS.where(
                Slot.ends_at > now,
                or_(
                    and_(Booking.status == BookingStatus.CONFIRMED, Booking.confirmed_at >= recent),
                    and_(
                        Booking.status == BookingStatus.CANCELLED,
                        Booking.cancelled_at >= recent,
                        ~replaced,
                    ),
                ),
            )
        )
    ).all()
    chains = await _chains(session, {row.id: row.rescheduled_from_id for row in rows})
    moved_from = [row.rescheduled_from_id for row in rows if row.rescheduled_from_id]
    before = {r.id: r for r in await session.execute(_BOOKINGS.where(Booking.id.in_(moved_from)))}
    for row in rows:
        cancelled = row.status is BookingStatus.CANCELLED
        previous = before.get(row.rescheduled_from_id) if not cancelled else None
        kind = "rdv-annule" if cancelled else ("rdv-deplace" if previous else "rdv-confirme")
        subject, chain = SUBJECTS[kind], chains[row.id]
        ics = calendar(row, cancelled=cancelled, public_url=public_url, now=now, chain=chain)
        body = _text(row, tz, public_url, subject + ".", join=not cancelled, before=previous)
        notices = [(user_id, body, ics) for user_id in (row.booked_by_id, row.specialist_id)]
        if previous is not None:
            if previous.booked_by_id not in (row.booked_by_id, row.specialist_id):
                notices.append((previous.booked_by_id, body, ics))  # moved by a colleague
            if previous.specialist_id != row.specialist_id:
                notices.append(
                    (previous.specialist_id, *_left_behind(row, previous, chain, tz, now))
                )
        for user_id, text, attached in notices:
            created += await enqueue(
                session,
                user_id=user_id,
                kind=kind,
                subject=subject,
                body=text,
                dedupe_key=f"{kind}:{row.id}:{user_id}",
                now=now,
                ics=attached,
            )
    return created


def _left_behind(
    row: Any, previous: Any, chain: Chain, tz: ZoneInfo, now: datetime
) -> tuple[str, str]:
    """A move to another specialist: the first one learns where it went (no room link, it
    is not theirs any more) and their calendar drops the event."""
    body = (
        f"{SUBJECTS['rdv-deplace']}.\n\n"
        f"La téléconsultation prévue avec vous {_when(previous.starts_at, tz)} "
        f"({previous.facility_name}) aura lieu {_when(row.starts_at, tz)} "
        f"avec {row.specialist_name} ({row.specialty_name}). Votre créneau est libéré.\n\n"
        "— Telmi, plateforme régionale de télémédecine"
    )
    earlier = Chain(chain.first_id, chain.moves - 1)
    return body, calendar(previous, cancelled=True, public_url="", now=now, chain=earlier)


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


# « Mes notifications », newest first; a cursor serves its own reader only.
MINE = Keyset("notifications", (datetime, int))


def for_user_query(user: User, after: Key | None, limit: int) -> Any:
    """The one statement a page costs: `limit + 1` rows off `user_id, created_at, id`."""
    query = select(Notification).where(Notification.user_id == user.id)
    if after is not None:
        query = query.where(tuple_(Notification.created_at, Notification.id) < after)
    return query.order_by(Notification.created_at.desc(), Notification.id.desc()).limit(limit + 1)


async def for_user(
    session: AsyncSession, user: User, *, after: Key | None = None, limit: int = 50
) -> Page[Notification]:
    """A page of the user's notices, newest first. Nothing is written: a notice holds no
    resident's data, so reading it is no access event."""
    rows = list(await session.scalars(for_user_query(user, after, limit)))
    return Page.of(rows, limit, lambda n: (n.created_at, n.id))


_UNREAD = Prepared(
    select(func.count())
    .select_from(Notification)
    .where(Notification.user_id == bindparam("user_id"), Notification.read_at.is_(None))
)


async def unread(executor: Executor, user_id: int) -> int:
    """How many of the user's notices are unread (the menu's badge: one COUNT per page)."""
    row = await _UNREAD.first(executor, {"user_id": user_id})
    return int(row[0] or 0) if row else 0


async def mark_read(
    session: AsyncSession, user: User, *, now: datetime, notice_id: int | None = None
) -> None:
    """Mark the user's unread notices read: all of them, or the one given (if it is theirs)."""
    mine = [Notification.user_id == user.id, Notification.read_at.is_(None)]
    if notice_id is not None:
        mine.append(Notification.id == notice_id)
    await session.execute(update(Notification).where(*mine).values(read_at=now))


# Notices about a booking are keyed `<kind>:<booking id>:<user id>` (see `booking_notices`).
BOOKING_KINDS = frozenset({*SUBJECTS, *(r.kind for r in REMINDERS)})


def booking_of(notice: Notification) -> int | None:
    """The booking a notice is about, if it is about one."""
    if notice.kind not in BOOKING_KINDS:
        return None
    part = notice.dedupe_key.split(":")[1:2]
    return int(part[0]) if part and part[0].isdigit() else None


async def booking_starts(session: AsyncSession, booking_ids: set[int]) -> dict[int, datetime]:
    """booking id -> the start of its slot (where a notice's link lands in the agenda)."""
    if not booking_ids:
        return {}
    rows = await session.execute(
        select(Booking.id, Slot.starts_at)
        .join(Slot, Slot.id == Booking.slot_id)
        .where(Booking.id.in_(booking_ids))
    )
    return {booking_id: starts_at for booking_id, starts_at in rows}
