"""JSON: join tokens for a booking's room, guest invitations, ending a consultation."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from aiohttp import web
from pydantic import Field
from sqlalchemy.ext.asyncio import AsyncSession

from telmi import consultations
from telmi.consultations import Ending, GuestInvite, InviteRedemption
from telmi.keys import DB, SETTINGS
from telmi.models import Consultation, ConsultationStatus, Role
from telmi.web.access import public, request_context, roles
from telmi.web.api.spec import Out, endpoint
from telmi.web.rooms import SIGNALING

CARERS = (Role.STAFF, Role.SPECIALIST)


class JoinTicket(Out):
    """The token and the room"""

    consultation_id: int
    room_id: str
    token: str = Field(description="send it in the first frame: {type: join, token}")
    expires_at: datetime
    role: Literal["specialist", "staff", "guest"]
    name: str = Field(description="the name the others see")
    ws_path: str = Field(description="the room's WebSocket")


class InviteLink(Out):
    """The link (shown once)"""

    invite_id: int
    url: str = Field(description="the token rides in the fragment, never sent to a server")
    expires_at: datetime


class ConsultationOut(Out):
    """The consultation"""

    id: int
    booking_id: int
    status: ConsultationStatus
    started_at: datetime | None
    ended_at: datetime | None
    outcome: str


def policy(request: web.Request) -> consultations.RoomPolicy:
    settings = request.app[SETTINGS]
    return consultations.RoomPolicy(
        secret=settings.secret_key,
        opens_minutes=settings.room_opens_minutes,
        token_seconds=settings.join_token_seconds,
        grace_minutes=settings.room_grace_minutes,
    )


def consultation_json(c: Consultation) -> dict[str, Any]:
    return {
        "id": c.id,
        "booking_id": c.booking_id,
        "status": c.status.value,
        "started_at": c.started_at.isoformat() if c.started_at else None,
        "ended_at": c.ended_at.isoformat() if c.ended_at else None,
        "outcome": c.outcome,
    }


@roles(*CARERS)
@endpoint(
    "A join token for the booking's video room (its specialist or facility staff), "
    "from 15 minutes before the slot to its end",
    "joinConsultation",
    response=JoinTicket,
    errors={409: "Room not open yet, closed, or booking not confirmed"},
)
async def join(request: web.Request, booking_id: int) -> dict[str, Any]:
    ctx, tz, rules = request_context(request), request.app[SETTINGS].tz, policy(request)
    ticket = await request.app[DB].run_write(
        lambda s: consultations.join_ticket(s, ctx, booking_id, policy=rules, tz=tz)
    )
    return ticket.as_json()


@roles(*CARERS)
@endpoint(
    "A single-use guest invitation link, valid until the slot ends",
    "inviteGuest",
    body=GuestInvite,
    response=InviteLink,
    status=201,
    errors={409: "Booking no longer ahead"},
)
async def invite(request: web.Request, booking_id: int, body: GuestInvite) -> dict[str, Any]:
    ctx, public_url = request_context(request), request.app[SETTINGS].public_url

    async def work(session: AsyncSession) -> dict[str, Any]:
        created, raw = await consultations.create_invite(session, ctx, booking_id, body)
        # The token rides in the fragment: browsers never send it to a server or a log.
        link = public_url + f"/invitation#{raw}"
        return {"invite_id": created.id, "url": link, "expires_at": created.expires_at.isoformat()}

    return await request.app[DB].run_write(work)


@public  # the invitation token is the authorisation; it works once
@endpoint(
    "Spend an invitation for a guest join token (the guest then waits in the lobby)",
    "redeemInvite",
    body=InviteRedemption,
    response=JoinTicket,
    errors={403: "Invalid, expired or used invitation", 409: "Room not open yet or closed"},
)
async def redeem(request: web.Request, body: InviteRedemption) -> dict[str, Any]:
    ctx, tz, rules = request_context(request), request.app[SETTINGS].tz, policy(request)
    ticket = await request.app[DB].run_write(
        lambda s: consultations.redeem_invite(s, ctx, body, policy=rules, tz=tz)
    )
    return ticket.as_json()


@roles(Role.SPECIALIST)
@endpoint(
    "End the consultation (its specialist); logs the act once if it took place",
    "endConsultation",
    body=Ending,
    response=ConsultationOut,
)
async def end(request: web.Request, consultation_id: int, body: Ending) -> dict[str, Any]:
    ctx, settings = request_context(request), request.app[SETTINGS]
    ended = await request.app[DB].run_write(
        lambda s: consultations.end(
            s, ctx, consultation_id, body, tz=settings.tz, vault=settings.vault
        )
    )
    await request.app[SIGNALING].registry.close_room(ended.room_id)
    return consultation_json(ended)
