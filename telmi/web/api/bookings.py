"""JSON: free slot search, holds, bookings (idempotent), cancel and reschedule."""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from telmi import booking, idempotency
from telmi.availability import parse_date, parse_instant
from telmi.errors import ValidationError
from telmi.keys import DB, SETTINGS
from telmi.models import ActType, BookingStatus, Role
from telmi.web.access import current_user, request_context, roles
from telmi.web.api import spec
from telmi.web.http import path_id, read_json
from telmi.web.idempotent import idempotent

SEARCHERS = (Role.STAFF, Role.SPECIALIST, Role.ADMIN)
CARERS = (Role.STAFF, Role.SPECIALIST)


def booking_json(b: booking.BookingView) -> dict[str, Any]:
    return b.as_json()


def _when(value: str | None, name: str, request: web.Request) -> datetime | None:
    """A query bound: a local date (midnight, Europe/Paris) or an ISO 8601 date-time."""
    if value is None or value == "":
        return None
    tz = request.app[SETTINGS].tz
    if len(value) == 10:
        return datetime.combine(parse_date(value, name), time(), tzinfo=tz)
    return parse_instant(value, name, tz)


def _int_query(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ValidationError(f"« {name} » doit être un entier entre {low} et {high}.", field=name)
    return int(raw)


@roles(*SEARCHERS)
async def search_slots(request: web.Request) -> web.Response:
    q = request.query
    now = request_context(request).now
    start = _when(q.get("from"), "from", request) or now
    end = _when(q.get("to"), "to", request)
    if end is not None and end <= start:
        raise ValidationError("« to » doit suivre « from ».", field="to")
    act_type = booking.check_act_type(q["act_type"]) if q.get("act_type") else None
    async with request.app[DB].read() as session:
        slots, cursor = await booking.search_free_slots(
            session,
            specialty=q.get("specialty") or None,
            start=start,
            end=end,
            departement=q.get("departement") or None,
            act_type=act_type,
            now=now,
            limit=_int_query(request, "limit", 20, 1, booking.MAX_PAGE),
            cursor=q.get("cursor") or None,
        )
    return web.json_response({"items": [s.as_json() for s in slots], "next_cursor": cursor})


@roles(Role.STAFF)
async def hold_slot(request: web.Request) -> web.Response:
    user = current_user(request)
    body = await read_json(request) if request.can_read_body else {}
    slot_id = path_id(request, "slot_id")
    act_type = booking.check_act_type(body["act_type"]) if body.get("act_type") else None
    settings = request.app[SETTINGS]

    async def work(session: AsyncSession) -> dict[str, Any]:
        held = await booking.hold_slot(
            session,
            user,
            slot_id,
            act_type=act_type,
            now=request_context(request).now,
            hold_minutes=settings.hold_minutes,
            address=request_context(request).address,
        )
        return booking_json(held)

    return web.json_response(await request.app[DB].run_write(work), status=201)


@roles(Role.STAFF)
async def create_booking(request: web.Request) -> web.Response:
    user = current_user(request)
    key = idempotency.check_key(request.headers.get("Idempotency-Key"))
    body = await read_json(request)
    now = request_context(request).now

    async def work(conn: AsyncConnection) -> dict[str, Any]:
        created = await booking.book(
            conn, user, body, now=now, address=request_context(request).address
        )
        return booking_json(created)

    return await idempotent(request, user, key, body, work, status=201)


@roles(*CARERS)
async def list_bookings(request: web.Request) -> web.Response:
    user = current_user(request)
    past = request.query.get("when", "upcoming")
    if past not in ("upcoming", "past"):
        raise ValidationError("« when » vaut upcoming ou past.", field="when")
    items = await request.app[DB].run_write(
        lambda session: booking.list_bookings(
            session,
            user,
            now=request_context(request).now,
            past=past == "past",
            address=request_context(request).address,
        )
    )
    return web.json_response({"items": [booking_json(b) for b in items]})


@roles(*CARERS)
async def get_booking(request: web.Request) -> web.Response:
    user, booking_id = current_user(request), path_id(request, "booking_id")
    found = await request.app[DB].run_write(
        lambda session: booking.get_booking(
            session,
            user,
            booking_id,
            now=request_context(request).now,
            address=request_context(request).address,
        )
    )
    return web.json_response(booking_json(found))


@roles(*CARERS)
async def cancel_booking(request: web.Request) -> web.Response:
    user, booking_id, body = (
        current_user(request),
        path_id(request, "booking_id"),
        await read_json(request),
    )
    cancelled = await request.app[DB].run_write(
        lambda session: booking.cancel(
            session,
            user,
            booking_id,
            reason=body.get("reason"),
            now=request_context(request).now,
            address=request_context(request).address,
        )
    )
    return web.json_response(booking_json(cancelled))


@roles(*CARERS)
async def reschedule_booking(request: web.Request) -> web.Response:
    user, booking_id, body = (
        current_user(request),
        path_id(request, "booking_id"),
        await read_json(request),
    )
    moved = await request.app[DB].run_write(
        lambda session: booking.reschedule(
            session,
            user,
            booking_id,
            slot_id=body.get("slot_id"),
            now=request_context(request).now,
            address=request_context(request).address,
        )
    )
    return web.json_response(booking_json(moved), status=201)


DATE_TIME = {"type": "string", "format": "date-time"}
OPENAPI_SCHEMAS: dict[str, Any] = {
    "FreeSlot": {
        "type": "object",
        "required": ["id", "starts_at", "ends_at", "act_types", "specialist", "specialty"],
        "properties": {
            "id": {"type": "integer"},
            "starts_at": DATE_TIME,
            "ends_at": DATE_TIME,
            "act_types": {"type": "array", "items": {"enum": [t.value for t in ActType]}},
            "specialist": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "name": {"type": "string"},
                    "departement": {"type": ["string", "null"]},
                },
            },
            "specialty": {
                "type": "object",
                "properties": {"code": {"type": "string"}, "name": {"type": "string"}},
            },
        },
    },
    "Booking": {
        "type": "object",
        "required": ["id", "status", "act_type", "slot", "specialist", "facility"],
        "properties": {
            "id": {"type": "integer"},
            "status": {"enum": [s.value for s in BookingStatus]},
            "act_type": {"enum": [t.value for t in ActType]},
            "patient_ref": {
                "type": "string",
                "description": "the facility's own reference, never a name",
            },
            "patient_ins": {"type": ["string", "null"]},
            "reason": {"type": "string"},
            "slot": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "starts_at": DATE_TIME,
                    "ends_at": DATE_TIME,
                },
            },
            "specialist": {"type": "object"},
            "facility": {"type": "object"},
            "hold_expires_at": {"type": ["string", "null"], "format": "date-time"},
            "created_at": DATE_TIME,
            "cancelled_at": {"type": ["string", "null"], "format": "date-time"},
            "cancel_reason": {"type": "string"},
            "rescheduled_from_id": {"type": ["integer", "null"]},
        },
    },
}

INVALID = spec.error("Invalid field (named in the message)")
BOOKING = spec.ok("The booking", spec.ref("Booking"))
TAKEN = spec.error("slot_taken: someone else has the slot; or the booking changed meanwhile")
OPENAPI_PATHS: dict[str, Any] = {
    "/api/slots": {
        "get": spec.operation(
            "Free slots, earliest first across specialists",
            "searchSlots",
            {
                "200": spec.ok(
                    "A page of free slots",
                    spec.items("FreeSlot", next_cursor={"type": ["string", "null"]}),
                ),
                "403": spec.FORBIDDEN,
                "422": INVALID,
            },
            params=[
                spec.query("specialty", {"type": "string"}, "specialty code"),
                spec.query("from", {"type": "string"}, "date (local midnight) or date-time"),
                spec.query("to", {"type": "string"}),
                spec.query("departement", {"type": "string"}, "the specialist's département"),
                spec.query("act_type", {"enum": [t.value for t in ActType]}),
                spec.query("limit", {"type": "integer", "minimum": 1, "maximum": booking.MAX_PAGE}),
                spec.query("cursor", {"type": "string"}, "next_cursor of the previous page"),
            ],
        )
    },
    "/api/slots/{slot_id}/hold": {
        "post": spec.operation(
            "Hold a slot while the booking form is filled (expires after TELMI_HOLD_MINUTES)",
            "holdSlot",
            {"201": BOOKING, "404": spec.error("No such slot"), "409": TAKEN, "422": INVALID},
            params=[spec.path("slot_id")],
            unsafe=True,
        )
    },
    "/api/bookings": {
        "get": spec.operation(
            "The facility's bookings (staff) or the agenda (specialist)",
            "listBookings",
            {"200": spec.ok("Bookings", spec.items("Booking")), "403": spec.FORBIDDEN},
            params=[spec.query("when", {"enum": ["upcoming", "past"]})],
        ),
        "post": spec.operation(
            "Book a slot for the caller's facility (replays with the same Idempotency-Key)",
            "createBooking",
            {
                "201": BOOKING,
                "400": spec.error("Missing Idempotency-Key, or malformed JSON"),
                "404": spec.error("No such slot"),
                "409": TAKEN,
                "422": INVALID,
            },
            params=[
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": True,
                    "schema": {"type": "string", "maxLength": 200},
                }
            ],
            body={
                "type": "object",
                "required": ["slot_id", "patient_ref", "act_type"],
                "properties": {
                    "slot_id": spec.ID_SCHEMA,
                    "patient_ref": {"type": "string", "pattern": booking.PATIENT_REF.pattern},
                    "patient_ins": {"type": "string", "description": "INS with its 2-digit key"},
                    "act_type": {"enum": [t.value for t in ActType]},
                    "reason": {"type": "string", "maxLength": 2000},
                },
            },
            unsafe=True,
        ),
    },
    "/api/bookings/{booking_id}": {
        "get": spec.operation(
            "One booking (audited)",
            "getBooking",
            {"200": BOOKING, "403": spec.FORBIDDEN, "404": spec.error("No such booking")},
            params=[spec.path("booking_id")],
        )
    },
    "/api/bookings/{booking_id}/cancel": {
        "post": spec.operation(
            "Cancel a booking before it starts (facility or specialist)",
            "cancelBooking",
            {
                "200": BOOKING,
                "404": spec.error("No such booking"),
                "409": spec.error("Not active, or already started"),
                "422": INVALID,
            },
            params=[spec.path("booking_id")],
            body={
                "type": "object",
                "required": ["reason"],
                "properties": {"reason": {"type": "string", "maxLength": 500}},
            },
            unsafe=True,
        )
    },
    "/api/bookings/{booking_id}/reschedule": {
        "post": spec.operation(
            "Move a booking to another slot: atomic, the old slot is freed only if the new one is taken",
            "rescheduleBooking",
            {
                "201": BOOKING,
                "404": spec.error("No such booking or slot"),
                "409": TAKEN,
                "422": INVALID,
            },
            params=[spec.path("booking_id")],
            body={
                "type": "object",
                "required": ["slot_id"],
                "properties": {"slot_id": spec.ID_SCHEMA},
            },
            unsafe=True,
        )
    },
}
