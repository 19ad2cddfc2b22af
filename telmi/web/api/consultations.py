"""JSON: join tokens for a booking's room, guest invitations, ending a consultation."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from telmi import consultations
from telmi.keys import DB, SETTINGS
from telmi.models import Consultation, Role
from telmi.web.access import current_user, public, request_context, roles
from telmi.web.api import spec
from telmi.web.http import path_id, read_json
from telmi.web.rooms import SIGNALING

CARERS = (Role.STAFF, Role.SPECIALIST)


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
async def join(request: web.Request) -> web.Response:
    user, booking_id = current_user(request), path_id(request, "booking_id")
    now, tz = request_context(request).now, request.app[SETTINGS].tz
    ticket = await request.app[DB].run_write(
        lambda s: consultations.join_ticket(
            s,
            user,
            booking_id,
            now=now,
            policy=policy(request),
            tz=tz,
            address=request_context(request).address,
        )
    )
    return web.json_response(ticket.as_json())


@roles(*CARERS)
async def invite(request: web.Request) -> web.Response:
    user, booking_id = current_user(request), path_id(request, "booking_id")
    body = await read_json(request)
    now, tz = request_context(request).now, request.app[SETTINGS].tz

    async def work(session: AsyncSession) -> dict[str, Any]:
        created, raw = await consultations.create_invite(
            session,
            user,
            booking_id,
            label=body.get("label"),
            now=now,
            tz=tz,
            address=request_context(request).address,
        )
        # The token rides in the fragment: browsers never send it to a server or a log.
        link = request.app[SETTINGS].public_url + f"/invitation#{raw}"
        return {"invite_id": created.id, "url": link, "expires_at": created.expires_at.isoformat()}

    return web.json_response(await request.app[DB].run_write(work), status=201)


@public  # the invitation token is the authorisation; it works once
async def redeem(request: web.Request) -> web.Response:
    body = await read_json(request)
    now, tz = request_context(request).now, request.app[SETTINGS].tz
    ticket = await request.app[DB].run_write(
        lambda s: consultations.redeem_invite(
            s, body.get("token"), now=now, policy=policy(request), tz=tz
        )
    )
    return web.json_response(ticket.as_json())


@roles(Role.SPECIALIST)
async def end(request: web.Request) -> web.Response:
    user, consultation_id = current_user(request), path_id(request, "consultation_id")
    body = await read_json(request)
    settings, now = request.app[SETTINGS], request_context(request).now
    ended = await request.app[DB].run_write(
        lambda s: consultations.end(
            s,
            consultation_id,
            by=user,
            outcome=body.get("outcome", ""),
            patient_consent=body.get("patient_consent"),
            incidents=body.get("incidents", ""),
            now=now,
            tz=settings.tz,
            secret=settings.secret_key,
            address=request_context(request).address,
        )
    )
    await request.app[SIGNALING].registry.close_room(ended.room_id)
    return web.json_response(consultation_json(ended))


TICKET = {
    "type": "object",
    "required": ["consultation_id", "room_id", "token", "expires_at", "ws_path"],
    "properties": {
        "consultation_id": {"type": "integer"},
        "room_id": {"type": "string"},
        "token": {
            "type": "string",
            "description": "send it in the first frame: {type: join, token}",
        },
        "expires_at": {"type": "string", "format": "date-time"},
        "role": {"type": "string"},
        "ws_path": {"type": "string"},
    },
}

OPENAPI_SCHEMAS: dict[str, Any] = {
    "JoinTicket": TICKET,
    "Consultation": {
        "type": "object",
        "required": ["id", "booking_id", "status"],
        "properties": {
            "id": {"type": "integer"},
            "booking_id": {"type": "integer"},
            "status": {"type": "string", "enum": ["scheduled", "in_progress", "ended"]},
            "started_at": {"type": ["string", "null"], "format": "date-time"},
            "ended_at": {"type": ["string", "null"], "format": "date-time"},
            "outcome": {"type": "string"},
        },
    },
}

OPENAPI_PATHS: dict[str, Any] = {
    "/api/bookings/{booking_id}/join": {
        "post": spec.fragment(
            "A join token for the booking's video room (its specialist or facility staff), "
            "from 15 minutes before the slot to its end",
            "joinConsultation",
            {
                "200": spec.ok("The token and the room", spec.ref("JoinTicket")),
                "403": spec.FORBIDDEN,
                "404": spec.error("No such booking"),
                "409": spec.error("Room not open yet, closed, or booking not confirmed"),
            },
            params=[spec.path("booking_id")],
            unsafe=True,
        )
    },
    "/api/bookings/{booking_id}/invites": {
        "post": spec.fragment(
            "A single-use guest invitation link, valid until the slot ends",
            "inviteGuest",
            {
                "201": spec.ok(
                    "The link (shown once)",
                    {
                        "type": "object",
                        "properties": {
                            "invite_id": {"type": "integer"},
                            "url": {"type": "string"},
                            "expires_at": {"type": "string", "format": "date-time"},
                        },
                    },
                ),
                "403": spec.FORBIDDEN,
                "409": spec.error("Booking no longer ahead"),
                "422": spec.error("Missing guest name"),
            },
            params=[spec.path("booking_id")],
            body={
                "type": "object",
                "required": ["label"],
                "properties": {"label": {"type": "string", "maxLength": 100}},
            },
            unsafe=True,
        )
    },
    "/api/invites/redeem": {
        "post": spec.fragment(
            "Spend an invitation for a guest join token (the guest then waits in the lobby)",
            "redeemInvite",
            {
                "200": spec.ok("The token and the room", spec.ref("JoinTicket")),
                "403": spec.error("Invalid, expired or used invitation"),
                "409": spec.error("Room not open yet or closed"),
            },
            body={
                "type": "object",
                "required": ["token"],
                "properties": {"token": {"type": "string"}},
            },
            unsafe=True,
        )
    },
    "/api/consultations/{consultation_id}/end": {
        "post": spec.fragment(
            "End the consultation (its specialist); logs the act once if it took place",
            "endConsultation",
            {
                "200": spec.ok("The consultation", spec.ref("Consultation")),
                "403": spec.FORBIDDEN,
                "404": spec.error("No such consultation"),
                "422": spec.error("Missing consent answer or outcome too long"),
            },
            params=[spec.path("consultation_id")],
            body={
                "type": "object",
                "required": ["patient_consent"],
                "properties": {
                    "patient_consent": {"type": "boolean"},
                    "outcome": {"type": "string", "maxLength": 500},
                    "incidents": {
                        "type": "string",
                        "maxLength": 500,
                        "description": "technical incidents, logged with the act",
                    },
                },
            },
            unsafe=True,
        )
    },
}
