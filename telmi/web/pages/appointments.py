"""Staff pages: find a free slot, book it, then cancel or move the facility's bookings.

Every change is a POST answered by a 303 to a page with a fixed confirmation (`?ok=`), so a
reload never books twice and no patient reference ends up in a URL or a server log. A refused
change shows the form again with the service's message and the status it carries.
"""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from telmi import agenda, booking, facilities
from telmi.booking import BookingView, FreeSlot
from telmi.errors import TelmiError, ValidationError
from telmi.keys import DB, SETTINGS
from telmi.models import ActType, Booking, BookingStatus, Role, Slot
from telmi.values import LocalDate, Query, parse, text
from telmi.web.access import current_user, request_context, roles
from telmi.web.http import path_id
from telmi.web.pages import forms
from telmi.web.pages.display import FORM_ERRORS, page_context, readable
from telmi.web.render import render

PAGE_SIZE = 20


def _done(request: web.Request, ok: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(request.app.router["bookings"].url_for().with_query(ok=ok))


# --- search and book ----------------------------------------------------------------------------


class SearchForm(Query):
    """The search form's query string: French names, shown in the address bar."""

    du: LocalDate | None = None
    specialite: text(40) | None = None  # type: ignore[valid-type]
    departement: text(3) | None = None  # type: ignore[valid-type]
    acte: ActType | None = None
    curseur: text(200) | None = None  # type: ignore[valid-type]


def _criteria(request: web.Request) -> dict[str, Any]:
    """The search form's fields (a blank one is no filter) to the search's arguments."""
    now = request_context(request).now
    asked = parse(SearchForm, {k: v for k, v in request.query.items() if v}, strict=False)
    start = now
    if asked.du is not None:
        start = datetime.combine(asked.du, time(), tzinfo=request.app[SETTINGS].tz)
    return {
        "specialty": asked.specialite,
        "departement": asked.departement,
        "act_type": asked.acte,
        "start": start,
        "end": None,
        "now": now,
        "limit": PAGE_SIZE,
        "cursor": asked.curseur,
    }


@roles(Role.STAFF)
async def search(request: web.Request) -> web.Response:
    """Free slots, earliest first, filtered by the search form, a page at a time."""
    error: TelmiError | None = None
    slots: list[FreeSlot] = []
    cursor = None
    async with request.app[DB].read() as session:
        specialties = await facilities.list_specialties(session)
        departements = await facilities.list_departements(session)
        try:
            slots, cursor = await booking.search_free_slots(session, **_criteria(request))
        except ValidationError as exc:
            error = exc
    here = request.rel_url
    context = page_context(
        request,
        filters=request.query,
        specialties=specialties,
        departements=departements,
        slots=slots,
        next_page=here.update_query(curseur=cursor) if cursor else None,
        first_page=here.without_query_params("curseur") if "curseur" in here.query else None,
        error=readable(error) if error else None,
    )
    return render(request, "booking_search.html", context, status=error.status if error else 200)


def _slot_page(
    request: web.Request,
    slot: Slot | None,
    hold: Booking | None,
    values: dict[str, Any],
    error: TelmiError | None = None,
) -> web.Response:
    status = error.status if error else 200
    context = page_context(
        request,
        slot=slot,
        hold=hold,
        values=values,
        error=readable(error) if error else None,
    )
    return render(request, "booking_form.html", context, status=status)


@roles(Role.STAFF)
async def hold(request: web.Request) -> web.StreamResponse:
    """Hold the slot for the facility while the form is filled in (a POST: GETs change nothing).

    Holding a slot the facility already holds (a second click) is not an error: the form
    then shows that hold.
    """
    ctx, slot_id = request_context(request), path_id(request, "slot_id")
    form = await forms.read(request)
    act = str(form.get("acte", ""))
    try:
        hold = parse(booking.Hold, {"act_type": act or None}, strict=False)
        await request.app[DB].run_write(
            lambda session: booking.hold_slot(
                session, ctx, slot_id, hold, hold_minutes=request.app[SETTINGS].hold_minutes
            )
        )
    except booking.SlotTaken:
        pass  # ours (shown by the form) or someone else's (the form says so)
    except FORM_ERRORS as exc:
        return _slot_page(request, None, None, {}, exc)
    form_url = request.app.router["booking_slot"].url_for(slot_id=str(slot_id))
    raise web.HTTPSeeOther(form_url.with_query({"acte": act} if act else {}))


@roles(Role.STAFF)
async def slot_form(request: web.Request) -> web.Response:
    """The booking form for a slot, with the facility's hold on it if there is one."""
    user, slot_id = current_user(request), path_id(request, "slot_id")
    now = request_context(request).now
    async with request.app[DB].read() as session:
        slot, hold = await agenda.slot_with_hold(session, user, slot_id, now=now)
    if hold is None:
        return _slot_page(request, None, None, {}, booking.SlotTaken())
    return _slot_page(request, slot, hold, {"act_type": hold.act_type.value})


@roles(Role.STAFF)
async def book(request: web.Request) -> web.Response:
    ctx, slot_id = request_context(request), path_id(request, "slot_id")
    user, now = ctx.caller, ctx.now
    form = await forms.read(request)
    body = forms.booking_body(form, slot_id)
    try:
        new = parse(booking.NewBooking, body, strict=False)
        await request.app[DB].run_write(lambda session: booking.book(session, ctx, new))
    except FORM_ERRORS as exc:
        async with request.app[DB].read() as session:
            slot, hold = await agenda.slot_with_hold(session, user, slot_id, now=now)
        return _slot_page(request, slot, hold, body, exc)
    raise _done(request, "reserve")


# --- the facility's bookings ------------------------------------------------------------------


async def _bookings_page(
    request: web.Request, error: TelmiError | None = None, failed: int | None = None
) -> web.Response:
    ctx = request_context(request)

    async def work(session: AsyncSession) -> tuple[list[BookingView], list[BookingView]]:
        # Listing records an audit event (patient references are shown): a write transaction.
        upcoming = await booking.list_bookings(session, ctx)
        past = await booking.list_bookings(session, ctx, past=True)
        return upcoming, past

    upcoming, past = await request.app[DB].run_write(work)
    context = page_context(
        request,
        upcoming=[b for b in upcoming if b.status is not BookingStatus.HELD],
        past=[b for b in past if b.status is not BookingStatus.HELD],
        error=readable(error) if error else None,
        failed=failed,
        room_opens_minutes=request.app[SETTINGS].room_opens_minutes,
    )
    status = error.status if error else 200
    return render(request, "bookings.html", context, status=status)


@roles(Role.STAFF)
async def bookings(request: web.Request) -> web.Response:
    """Upcoming and past bookings of the facility, with what can still be done to each."""
    return await _bookings_page(request)


@roles(Role.STAFF)
async def cancel(request: web.Request) -> web.Response:
    ctx, booking_id = request_context(request), path_id(request, "booking_id")
    reason = forms.text(await forms.read(request), "reason")
    try:
        cancellation = parse(booking.Cancellation, {"reason": reason})
        await request.app[DB].run_write(
            lambda session: booking.cancel(session, ctx, booking_id, cancellation)
        )
    except FORM_ERRORS as exc:
        return await _bookings_page(request, exc, failed=booking_id)
    raise _done(request, "annule")


# --- moving a booking ---------------------------------------------------------------------------


async def _move_page(
    request: web.Request, booking_id: int, error: TelmiError | None = None
) -> web.Response:
    """The booking and the free slots of the same specialty and act it could move to."""
    ctx = request_context(request)
    now, cursor = ctx.now, request.query.get("curseur") or None

    async def work(session: AsyncSession) -> tuple[BookingView, list[FreeSlot], str | None]:
        current = await booking.get_booking(session, ctx, booking_id)
        slots, next_cursor = await booking.search_free_slots(
            session,
            specialty=current.slot.specialty_code,
            act_type=current.act_type,
            start=now,
            end=None,
            now=now,
            limit=PAGE_SIZE,
            cursor=cursor,
        )
        return current, slots, next_cursor

    current, slots, next_cursor = await request.app[DB].run_write(work)
    here = request.rel_url.with_query(None)
    context = page_context(
        request,
        booking=current,
        movable=current.status is BookingStatus.CONFIRMED and current.slot.starts_at > now,
        slots=slots,
        next_page=here.with_query(curseur=next_cursor) if next_cursor else None,
        first_page=here if cursor else None,
        error=readable(error) if error else None,
    )
    status = error.status if error else 200
    return render(request, "booking_move.html", context, status=status)


@roles(Role.STAFF)
async def move_form(request: web.Request) -> web.Response:
    return await _move_page(request, path_id(request, "booking_id"))


@roles(Role.STAFF)
async def move(request: web.Request) -> web.Response:
    ctx, booking_id = request_context(request), path_id(request, "booking_id")
    form = await forms.read(request)
    try:
        move = parse(booking.Move, {"slot_id": forms.text(form, "slot_id")}, strict=False)
        await request.app[DB].run_write(
            lambda session: booking.reschedule(session, ctx, booking_id, move)
        )
    except FORM_ERRORS as exc:
        return await _move_page(request, booking_id, exc)
    raise _done(request, "deplace")
