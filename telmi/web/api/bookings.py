"""JSON: free slot search, holds, bookings (idempotent), cancel and reschedule."""

from __future__ import annotations

from datetime import datetime, time
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import Field
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from telmi import booking, idempotency
from telmi.booking import Cancellation, Hold, Move, NewBooking
from telmi.db import Driver
from telmi.keys import DB, SETTINGS
from telmi.models import ActType, BookingStatus, Role
from telmi.paging import PageQuery
from telmi.values import Instant, LocalDate, text
from telmi.web import paging
from telmi.web.access import request_context, roles
from telmi.web.api.spec import Header, Out, endpoint
from telmi.web.idempotent import idempotent

SEARCHERS = (Role.STAFF, Role.SPECIALIST, Role.ADMIN)
CARERS = (Role.STAFF, Role.SPECIALIST)

Bound = Annotated[
    Instant | LocalDate,
    Field(union_mode="left_to_right", description="a date (local midnight) or a date-time"),
]


class SlotSearch(PageQuery):
    specialty: text(40) | None = Field(None, description="specialty code")  # type: ignore[valid-type]
    start: Bound | None = Field(None, alias="from")
    end: Bound | None = Field(None, alias="to", description="exclusive; to <= from finds nothing")
    departement: text(3) | None = Field(None, description="the specialist's département")  # type: ignore[valid-type]
    act_type: ActType | None = None


class BookingsQuery(PageQuery):
    when: Literal["upcoming", "past"] = Field(
        "upcoming", description="upcoming (not ended) earliest first, or past latest first"
    )


class Specialist(Out):
    id: int
    name: str
    departement: str | None


class SpecialtyRef(Out):
    code: str
    name: str


class FreeSlot(Out):
    id: int
    starts_at: datetime
    ends_at: datetime
    act_types: list[ActType]
    specialist: Specialist
    specialty: SpecialtyRef


class SlotPage(Out):
    """A page of free slots, earliest first"""

    items: list[FreeSlot]
    next_cursor: str | None


class BookedSlot(Out):
    id: int
    starts_at: datetime
    ends_at: datetime


class BookingSpecialist(Out):
    id: int
    name: str
    specialty: str = Field(description="specialty code")


class BookingFacility(Out):
    id: int
    name: str
    finess: str


class BookingOut(Out):
    """A booking"""

    id: int
    status: BookingStatus
    act_type: ActType
    patient_id: int | None = Field(description="the resident (none while the slot is held)")
    patient_ref: str = Field(description="the resident's reference in the facility, never a name")
    reason: str
    slot: BookedSlot
    specialist: BookingSpecialist
    facility: BookingFacility
    hold_expires_at: datetime | None
    created_at: datetime
    cancelled_at: datetime | None
    cancel_reason: str
    rescheduled_from_id: int | None
    answers: dict[str, Any] = Field(description="the answers to the specialty's request form")


class Bookings(Out):
    """A page of bookings, in slot order"""

    items: list[BookingOut]
    next_cursor: str | None


def _bound(value: datetime | LocalDate | None, request: web.Request) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.combine(value, time(), tzinfo=request.app[SETTINGS].tz)


TAKEN = "slot_taken: someone else has the slot; or the booking changed meanwhile"
IDEMPOTENCY_KEY = Header(
    "Idempotency-Key", True, "A retry with the same key replays the first answer", 200
)


@roles(*SEARCHERS)
@endpoint(
    "Free slots, earliest first across specialists",
    "searchSlots",
    query=SlotSearch,
    response=SlotPage,
)
async def search_slots(request: web.Request, query: SlotSearch) -> dict[str, Any]:
    now = request_context(request).now
    asked, end = _bound(query.start, request), _bound(query.end, request)
    criteria: dict[str, Any] = {
        "specialty": query.specialty or None,
        "end": end,
        "departement": query.departement or None,
        "act_type": query.act_type,
    }
    scope = booking.search_scope(start=asked, **criteria)
    after = paging.after(request, booking.SLOTS, query.cursor, scope)
    # No transaction: one statement (a second only to name an unknown specialty).
    async with request.app[DB].prepared() as conn:
        page = await booking.search_free_slots(
            conn, start=asked or now, now=now, after=after, limit=query.limit, **criteria
        )
    return {
        "items": [s.as_json() for s in page.items],
        "next_cursor": paging.next_cursor(request, booking.SLOTS, page, scope),
    }


@roles(Role.STAFF)
@endpoint(
    "Hold a slot while the booking form is filled (expires after TELMI_HOLD_MINUTES)",
    "holdSlot",
    body=Hold,
    optional_body=True,
    response=BookingOut,
    status=201,
    errors={409: TAKEN},
)
async def hold_slot(request: web.Request, slot_id: int, body: Hold) -> dict[str, Any]:
    ctx, minutes = request_context(request), request.app[SETTINGS].hold_minutes

    async def work(session: AsyncSession) -> dict[str, Any]:
        held = await booking.hold_slot(session, ctx, slot_id, body, hold_minutes=minutes)
        return held.as_json()

    return await request.app[DB].run_write(work)


@roles(Role.STAFF)
@endpoint(
    "Book a slot for the caller's facility (replays with the same Idempotency-Key)",
    "createBooking",
    body=NewBooking,
    response=BookingOut,
    status=201,
    errors={404: "No such slot", 409: TAKEN},
    headers=[IDEMPOTENCY_KEY],
)
async def create_booking(request: web.Request, body: NewBooking) -> web.Response:
    ctx = request_context(request)
    key = idempotency.check_key(request.headers.get("Idempotency-Key"))

    async def work(conn: AsyncConnection) -> dict[str, Any]:
        return (await booking.book(conn, ctx, body)).as_json()

    async def at_once(conn: Driver, pending: idempotency.Pending) -> dict[str, Any] | None:
        return await booking.book_at_once(conn, ctx, body, pending)

    return await idempotent(
        request, ctx.caller, key, body.model_dump(mode="json"), work, status=201, at_once=at_once
    )


@roles(*CARERS)
@endpoint(
    "The facility's bookings (staff) or the agenda (specialist)",
    "listBookings",
    query=BookingsQuery,
    response=Bookings,
)
async def list_bookings(request: web.Request, query: BookingsQuery) -> dict[str, Any]:
    ctx, past = request_context(request), query.when == "past"
    after = paging.after(request, booking.BOOKINGS, query.cursor, query.when)
    page = await request.app[DB].run_prepared(
        lambda conn: booking.list_bookings(conn, ctx, past=past, after=after, limit=query.limit)
    )
    return {
        "items": [b.as_json() for b in page.items],
        "next_cursor": paging.next_cursor(request, booking.BOOKINGS, page, query.when),
    }


@roles(*CARERS)
@endpoint("One booking (audited)", "getBooking", response=BookingOut)
async def get_booking(request: web.Request, booking_id: int) -> dict[str, Any]:
    ctx = request_context(request)
    found = await request.app[DB].run_write(
        lambda session: booking.get_booking(session, ctx, booking_id)
    )
    return found.as_json()


@roles(*CARERS)
@endpoint(
    "Cancel a booking before it starts (facility or specialist)",
    "cancelBooking",
    body=Cancellation,
    response=BookingOut,
    errors={409: "Not active, or already started"},
)
async def cancel_booking(
    request: web.Request, booking_id: int, body: Cancellation
) -> dict[str, Any]:
    ctx = request_context(request)
    cancelled = await request.app[DB].run_statements(
        lambda conn: booking.cancel(conn, ctx, booking_id, body)
    )
    return cancelled.as_json()


@roles(*CARERS)
@endpoint(
    "Move a booking to another slot: atomic, the old slot is freed only if the new one is taken",
    "rescheduleBooking",
    body=Move,
    response=BookingOut,
    status=201,
    errors={409: TAKEN},
)
async def reschedule_booking(request: web.Request, booking_id: int, body: Move) -> dict[str, Any]:
    ctx = request_context(request)
    moved = await request.app[DB].run_core_write(
        lambda conn: booking.reschedule(conn, ctx, booking_id, body)
    )
    return moved.as_json()
