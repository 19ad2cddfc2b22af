"""Video consultations: who may enter a booking's room and when, guests, presence, the end.

A consultation belongs to one confirmed booking; its room opens shortly before the slot and
closes at its end. The slot's specialist (host) and the booking facility's staff get join
tokens; a guest gets one by redeeming a single-use invitation, then waits in the lobby.
The consultation starts when the specialist and the facility are both present, and ending
it writes one act through the act log (a second end writes nothing more).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import Field
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from telmi import acts, audit, booking, consent, join_tokens, patients
from telmi.context import Context
from telmi.db import Database, dialect_name
from telmi.errors import Conflict, Forbidden, NotFound
from telmi.models import (
    Booking,
    BookingStatus,
    Consultation,
    ConsultationStatus,
    Invite,
    Patient,
    Presence,
    Report,
    ReportStatus,
    Role,
    Slot,
    User,
)
from telmi.values import Body, text
from telmi.vault import Vault


class GuestInvite(Body):
    label: text(  # type: ignore[valid-type]
        100,
        required="Nom de l'invité requis (100 caractères au plus), ex. « Dr Martin, médecin "
        "traitant ».",
    ) = Field(description="who the guest is, shown to the others in the room")


class InviteRedemption(Body):
    token: str = Field(description="the invitation link's fragment, after #")


class Ending(Body):
    """The act's consent is the one the facility recorded before it, not a box ticked now."""

    outcome: text(500) = Field(default="", description="the consultation's outcome")  # type: ignore[valid-type]
    incidents: text(500) = Field(default="", description="technical incidents, logged with the act")  # type: ignore[valid-type]


@dataclass(frozen=True)
class RoomPolicy:
    """The timing and signing a consultation needs, from settings."""

    secret: str
    opens_minutes: int = 15
    token_seconds: int = 120
    grace_minutes: int = 30


@dataclass(frozen=True)
class Ticket:
    consultation_id: int
    room_id: str
    token: str
    expires_at: datetime
    role: str
    name: str

    def as_json(self) -> dict[str, Any]:
        return {
            "consultation_id": self.consultation_id,
            "room_id": self.room_id,
            "token": self.token,
            "expires_at": self.expires_at.isoformat(),
            "role": self.role,
            "name": self.name,
            "ws_path": f"/ws/rooms/{self.room_id}",
        }


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


async def _consultation_for(session: AsyncSession, booking_id: int, now: datetime) -> Consultation:
    """The booking's consultation, created on first need (once, even when two race)."""
    dialect_insert = pg_insert if dialect_name(session) == "postgresql" else sqlite_insert
    await session.execute(
        dialect_insert(Consultation)
        .values(
            booking_id=booking_id,
            room_id=secrets.token_urlsafe(16),
            status=ConsultationStatus.SCHEDULED,
            outcome="",
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["booking_id"])
    )
    found = await session.scalar(select(Consultation).where(Consultation.booking_id == booking_id))
    assert found is not None
    return found


def _check_open(b: booking.BookingView, now: datetime, policy: RoomPolicy, tz: ZoneInfo) -> None:
    if b.status is not BookingStatus.CONFIRMED:
        raise Conflict("Ce rendez-vous n'est pas confirmé.", code="booking_not_confirmed")
    opens = b.slot.starts_at - timedelta(minutes=policy.opens_minutes)
    if now < opens:
        local = opens.astimezone(tz)
        raise Conflict(
            f"La salle ouvrira le {local:%d/%m/%Y} à {local:%H:%M}.", code="room_not_open"
        )
    if now >= b.slot.ends_at:
        raise Conflict("Le créneau de cette consultation est passé.", code="room_closed")


def _ticket(
    consultation: Consultation, claims_args: dict[str, Any], now: datetime, policy: RoomPolicy
) -> Ticket:
    expires = now + timedelta(seconds=policy.token_seconds)
    claims = join_tokens.JoinClaims(
        room_id=consultation.room_id,
        consultation_id=consultation.id,
        expires=int(expires.timestamp()),
        **claims_args,
    )
    return Ticket(
        consultation.id,
        consultation.room_id,
        join_tokens.sign(claims, policy.secret),
        expires,
        claims.role,
        claims.name,
    )


async def join_ticket(
    session: AsyncSession, ctx: Context, booking_id: int, *, policy: RoomPolicy, tz: ZoneInfo
) -> Ticket:
    """A join token for the booking's specialist or its facility's staff, while open."""
    user, now = ctx.caller, ctx.now
    b = await booking.load(session, booking_id)
    if user.role not in (Role.STAFF, Role.SPECIALIST) or not booking.may_see(user, b):
        raise NotFound(f"Rendez-vous {booking_id} introuvable.")  # as if it did not exist
    _check_open(b, now, policy, tz)
    consultation = await _consultation_for(session, booking_id, now)
    if consultation.status is ConsultationStatus.ENDED:
        raise Conflict("Cette consultation est terminée.", code="room_closed")
    host = user.role is Role.SPECIALIST
    if host:  # the act starts with the specialist: not without the resident's consent
        consent.require(await consent.latest(session, booking_id=booking_id))
    await audit.event(
        session, ctx, "consultation.join_token", target_type="booking", target_id=booking_id
    )
    return _ticket(
        consultation,
        {
            "identity": f"user:{user.id}",
            "role": "specialist" if host else "staff",
            "name": user.full_name,
            "host": host,
            "lobby": False,
        },
        now,
        policy,
    )


async def create_invite(
    session: AsyncSession, ctx: Context, booking_id: int, invite: GuestInvite
) -> tuple[Invite, str]:
    """A single-use guest invitation valid until the slot ends; the raw token once."""
    user, now = ctx.caller, ctx.now
    b = await booking.load(session, booking_id)
    if user.role not in (Role.STAFF, Role.SPECIALIST) or not booking.may_see(user, b):
        raise NotFound(f"Rendez-vous {booking_id} introuvable.")  # as if it did not exist
    if b.status is not BookingStatus.CONFIRMED or now >= b.slot.ends_at:
        raise Conflict("Ce rendez-vous n'est plus à venir.", code="booking_not_confirmed")
    consultation = await _consultation_for(session, booking_id, now)
    raw = secrets.token_urlsafe(32)
    created = Invite(
        consultation_id=consultation.id,
        token_hash=_hash(raw),
        guest_label=invite.label,
        created_by_id=user.id,
        created_at=now,
        expires_at=b.slot.ends_at,
    )
    session.add(created)
    await session.flush()
    await audit.event(
        session, ctx, "consultation.invite", target_type="booking", target_id=booking_id
    )
    return created, raw


async def redeem_invite(
    session: AsyncSession,
    ctx: Context,
    redemption: InviteRedemption,
    *,
    policy: RoomPolicy,
    tz: ZoneInfo,
) -> Ticket:
    """Spend an invitation (once) for a guest join token; the guest waits in the lobby.
    Public: the invitation is the authorisation, whoever is signed in."""
    raw, now = redemption.token, ctx.now
    refused = Forbidden("Invitation invalide, expirée ou déjà utilisée.", code="invite_invalid")
    if not 20 <= len(raw) <= 100:
        raise refused
    row = (
        await session.execute(
            select(Invite, Consultation)
            .join(Consultation, Consultation.id == Invite.consultation_id)
            .where(Invite.token_hash == _hash(raw))
        )
    ).first()
    if row is None:
        raise refused
    invite, consultation = row
    b = await booking.load(session, consultation.booking_id)
    _check_open(b, now, policy, tz)  # before spending it: an early click keeps the link valid
    spent = await session.execute(
        update(Invite)
        .where(
            Invite.id == invite.id,
            Invite.used_at.is_(None),
            Invite.revoked_at.is_(None),
            Invite.expires_at > now,
        )
        .values(used_at=now)
        .returning(Invite.id)
    )
    if spent.scalar_one_or_none() is None:
        raise refused
    await audit.event(
        session, ctx, "consultation.invite_used", target_type="invite", target_id=invite.id
    )
    return _ticket(
        consultation,
        {
            "identity": f"invite:{invite.id}",
            "role": "guest",
            "name": invite.guest_label,
            "host": False,
            "lobby": True,
        },
        now,
        policy,
    )


# --- presence and the lifecycle -----------------------------------------------------------------


def _who(identity: str) -> dict[str, int | None]:
    kind, _, number = identity.partition(":")
    return {
        "user_id": int(number) if kind == "user" else None,
        "invite_id": int(number) if kind == "invite" else None,
    }


async def record_presence(
    session: AsyncSession, room_id: str, identity: str, role: str, *, now: datetime
) -> None:
    """Someone entered the room; the consultation starts when specialist and staff are both in."""
    consultation = await session.scalar(select(Consultation).where(Consultation.room_id == room_id))
    if consultation is None:
        return
    session.add(
        Presence(consultation_id=consultation.id, role=role, joined_at=now, **_who(identity))
    )
    await session.flush()
    roles = set(
        await session.scalars(
            select(Presence.role).where(
                Presence.consultation_id == consultation.id, Presence.left_at.is_(None)
            )
        )
    )
    if {"specialist", "staff"} <= roles:
        await session.execute(
            update(Consultation)
            .where(Consultation.id == consultation.id, Consultation.started_at.is_(None))
            .values(started_at=now, status=ConsultationStatus.IN_PROGRESS)
        )


async def record_absence(
    session: AsyncSession, room_id: str, identity: str, *, now: datetime
) -> None:
    consultation_id = await session.scalar(
        select(Consultation.id).where(Consultation.room_id == room_id)
    )
    if consultation_id is None:
        return
    who = _who(identity)
    column = Presence.user_id if who["user_id"] is not None else Presence.invite_id
    await session.execute(
        update(Presence)
        .where(
            Presence.consultation_id == consultation_id,
            column == (who["user_id"] or who["invite_id"]),
            Presence.left_at.is_(None),
        )
        .values(left_at=now)
    )


async def end(
    session: AsyncSession,
    ctx: Context,
    consultation_id: int,
    ending: Ending,
    *,
    tz: ZoneInfo,
    vault: Vault,
) -> Consultation:
    """End the consultation (the slot's specialist, or the system when it was left open:
    a context without a user).

    If it took place, one act is logged; ending again changes nothing and logs nothing."""
    by, now = ctx.user, ctx.now
    consultation = await session.scalar(
        select(Consultation).where(Consultation.id == consultation_id)
    )
    if consultation is None:
        raise NotFound(f"Consultation {consultation_id} introuvable.")
    b = await booking.load(session, consultation.booking_id)
    if by is not None and not booking.may_see(by, b):
        raise NotFound(f"Consultation {consultation_id} introuvable.")
    if by is not None and not (by.role is Role.SPECIALIST and b.slot.specialist_id == by.id):
        raise Forbidden("Seul le spécialiste de la consultation peut la terminer.")
    ended = await session.execute(
        update(Consultation)
        .where(Consultation.id == consultation_id, Consultation.status != ConsultationStatus.ENDED)
        .values(
            status=ConsultationStatus.ENDED,
            ended_at=now,
            ended_by_id=by.id if by else None,
            outcome=ending.outcome,
        )
        .returning(Consultation.started_at)
    )
    started = ended.first()
    if started is None:
        return consultation  # already ended: nothing more to log
    await session.execute(
        update(Presence)
        .where(Presence.consultation_id == consultation_id, Presence.left_at.is_(None))
        .values(left_at=now)
    )
    started_at = started[0]
    if started_at is not None:
        staff = await session.get(User, b.booked_by_id)
        specialist = await session.get(User, b.slot.specialist_id)
        agreed = await consent.latest(session, booking_id=b.id)
        resident = await session.get(Patient, b.patient_id) if b.patient_id else None
        await acts.append(
            session,
            acts.NewAct(
                act_type=b.act_type,
                occurred_at=started_at,
                duration_seconds=max(0, int((now - started_at).total_seconds())),
                facility_id=b.facility_id,
                requester_role="personnel_etablissement",
                requester_id=b.booked_by_id,
                requester_rpps=staff.rpps if staff else None,
                specialist_id=b.slot.specialist_id,
                specialist_rpps=specialist.rpps if specialist else None,
                specialty_code=b.slot.specialty_code,
                source_key=source_key(consultation_id),
                patient_key=patients.act_key(vault, resident, b.facility_finess)
                if resident
                else acts.patient_key(vault.secret, finess=b.facility_finess, patient_ref=""),
                patient_consent=agreed is not None and agreed.granted,
                consent_id=agreed.id if agreed else None,
                participants=await participants(session, consultation_id),
                incidents=ending.incidents,
            ),
            now=now,
            tz=tz,
            recorded_by=by,
        )
        await booking.complete(session, b.id)
        signed = await session.scalar(
            select(Report.sha256).where(
                Report.booking_id == b.id, Report.status == ReportStatus.SIGNED
            )
        )
        if signed is not None:  # signed during the call: the act carries it from the start
            await acts.attach_document(
                session, source_key=source_key(consultation_id), kind="report", sha256=signed,
                now=now,
            )  # fmt: skip
    await audit.event(
        session, ctx, "consultation.ended", target_type="consultation", target_id=consultation_id
    )
    await session.refresh(consultation)
    return consultation


def source_key(consultation_id: int) -> str:
    """The act log's key for a consultation's act."""
    return f"consultation:{consultation_id}"


async def participants(session: AsyncSession, consultation_id: int) -> list[dict[str, Any]]:
    """Everyone who was in the room, once each, in order of arrival, with their role."""
    rows = await session.execute(
        select(
            Presence.role, User.full_name, Invite.guest_label, Presence.user_id, Presence.invite_id
        )
        .outerjoin(User, User.id == Presence.user_id)
        .outerjoin(Invite, Invite.id == Presence.invite_id)
        .where(Presence.consultation_id == consultation_id)
        .order_by(Presence.joined_at, Presence.id)
    )
    seen: set[tuple[int | None, int | None]] = set()
    found: list[dict[str, Any]] = []
    for role, name, label, user_id, invite_id in rows:
        if (user_id, invite_id) not in seen:
            seen.add((user_id, invite_id))
            found.append({"role": role, "name": name or label or "", "user_id": user_id})
    return found


async def close_overdue(
    db: Database, *, now: datetime, grace_minutes: int, tz: ZoneInfo, vault: Vault
) -> list[str]:
    """End the consultations left open past their slot plus the grace; returns their rooms.

    Meant for the scheduler; a consultation that took place gets its act (with the consent
    recorded before it, the closing noted as an incident), the others none."""
    async with db.read() as session:
        rows = (
            await session.execute(
                select(Consultation.id, Consultation.room_id)
                .join(Booking, Booking.id == Consultation.booking_id)
                .join(Slot, Slot.id == Booking.slot_id)
                .where(
                    Consultation.status != ConsultationStatus.ENDED,
                    Slot.ends_at < now - timedelta(minutes=grace_minutes),
                )
            )
        ).all()
    for consultation_id, _room in rows:

        async def close(session: AsyncSession, cid: int = consultation_id) -> Consultation:
            return await end(
                session,
                Context(None, now),
                cid,
                Ending(incidents="clôture automatique après le créneau"),
                tz=tz,
                vault=vault,
            )

        await db.run_write(close)
    return [room for _, room in rows]


async def ended_rooms(db: Database, room_ids: list[str]) -> list[str]:
    async with db.read() as session:
        return list(
            await session.scalars(
                select(Consultation.room_id).where(
                    Consultation.room_id.in_(room_ids),
                    Consultation.status == ConsultationStatus.ENDED,
                )
            )
        )
