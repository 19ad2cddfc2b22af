"""Staff pages: find a free slot, book it, then cancel or move the facility's bookings.

Every change is a POST answered by a 303 to a page with a fixed confirmation (`?ok=`), so a
reload never books twice and no patient reference ends up in a URL or a server log. A refused
change shows the form again with the service's message and the status it carries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from telmi import agenda, booking, consent, facilities, form_versions, reports, request_forms
from telmi.booking import BookingView, FreeSlot
from telmi.consent import ConsentInput
from telmi.context import Context
from telmi.errors import TelmiError, ValidationError
from telmi.keys import DB, SETTINGS
from telmi.models import ActType, Booking, BookingStatus, Role, Slot
from telmi.paging import MAX_CURSOR, Key, Keyset, Page
from telmi.values import LocalDate, Query, parse, text
from telmi.web import paging
from telmi.web.access import current_user, request_context, roles
from telmi.web.http import path_id
from telmi.web.pages import forms, resident_choice, resident_forms
from telmi.web.pages.display import FORM_ERRORS, page_context, readable
from telmi.web.render import render

PAGE_SIZE = 20
STALE_PAGE = (
    "Ce lien de page n'est plus valable (modifié, ou venu d'une autre liste) : "
    "voici la première page."
)


def _after(request: web.Request, keyset: Keyset, param: str, scope: str) -> Key | None:
    """The key the page's `?<param>=` cursor names (None: the first page); a cursor this
    list, with these filters, did not hand out is a ValidationError the page can show."""
    try:
        return paging.after(request, keyset, request.query.get(param) or None, scope)
    except ValidationError:
        raise ValidationError(STALE_PAGE, code="invalid_cursor") from None


def _links(
    request: web.Request,
    keyset: Keyset,
    page: Page[Any],
    scope: str,
    param: str = "curseur",
    fragment: str = "",
) -> dict[str, str | None]:
    """« Page suivante » (this address, the next cursor) and « Première page » (without it):
    plain links, so the lists page without a script."""
    here, cursor = request.rel_url, paging.next_cursor(request, keyset, page, scope)
    following = here.update_query({param: cursor or ""}).with_fragment(fragment or None)
    first = here.without_query_params(param).with_fragment(fragment or None)
    return {
        "next_page": str(following) if cursor else None,
        "first_page": str(first) if param in here.query else None,
    }


def _done(request: web.Request, ok: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(request.app.router["bookings"].url_for().with_query(ok=ok))


# --- search and book ----------------------------------------------------------------------------


class SearchForm(Query):
    """The search form's query string: French names, shown in the address bar."""

    du: LocalDate | None = None
    specialite: text(40) | None = None  # type: ignore[valid-type]
    departement: text(3) | None = None  # type: ignore[valid-type]
    acte: ActType | None = None
    curseur: text(MAX_CURSOR) | None = None  # type: ignore[valid-type]


def _criteria(request: web.Request) -> tuple[dict[str, Any], str]:
    """The search form's fields (a blank one is no filter) to the search's arguments, and
    the scope its cursors are bound to."""
    now = request_context(request).now
    asked = parse(SearchForm, {k: v for k, v in request.query.items() if v}, strict=False)
    start = None
    if asked.du is not None:
        start = datetime.combine(asked.du, time(), tzinfo=request.app[SETTINGS].tz)
    criteria: dict[str, Any] = {
        "specialty": asked.specialite,
        "departement": asked.departement,
        "act_type": asked.acte,
        "end": None,
    }
    scope = booking.search_scope(start=start, **criteria)
    after = _after(request, booking.SLOTS, "curseur", scope)
    criteria |= {"start": start or now, "now": now, "after": after, "limit": PAGE_SIZE}
    return criteria, scope


@roles(Role.STAFF)
async def search(request: web.Request) -> web.Response:
    """Free slots, earliest first, filtered by the search form, a page at a time."""
    error: TelmiError | None = None
    page: Page[FreeSlot] = Page([], None)
    scope = ""
    async with request.app[DB].read() as session:
        specialties = await facilities.list_specialties(session)
        departements = await facilities.list_departements(session)
        try:
            criteria, scope = _criteria(request)
            page = await booking.search_free_slots(session, **criteria)
        except ValidationError as exc:
            error = exc
    context = page_context(
        request,
        filters=request.query,
        specialties=specialties,
        departements=departements,
        slots=page.items,
        error=readable(error) if error else None,
        **_links(request, booking.SLOTS, page, scope),
    )
    return render(request, "booking_search.html", context, status=error.status if error else 200)


async def _slot_page(
    request: web.Request,
    slot: Slot | None,
    hold: Booking | None,
    values: dict[str, Any],
    error: TelmiError | None = None,
) -> web.Response:
    status = error.status if error else 200
    asked = None
    if slot is not None:
        act = _act_of(values.get("act_type"))
        async with request.app[DB].read() as session:
            asked = await form_versions.current(session, slot.specialty_id, act)
    context = page_context(
        request,
        slot=slot,
        hold=hold,
        values=values,
        residents=await resident_choice.choices(request) if slot is not None else [],
        request_form=asked,
        answers=values.get("answers", {}),
        answer_errors=_answer_errors(error),
        error=readable(error) if error else None,
    )
    return render(request, "booking_form.html", context, status=status)


def _act_of(raw: object) -> ActType:
    """The act a form names; anything else reads as a teleconsultation (NewBooking then
    refuses the bad value, naming its field)."""
    try:
        return ActType(str(raw))
    except ValueError:
        return ActType.TELECONSULTATION


def _answer_errors(error: TelmiError | None) -> dict[str, str]:
    """Each refused answer's message, by its input's name (`answers.<name>`)."""
    if isinstance(error, request_forms.FormAnswersInvalid):
        return dict(error.errors)
    field = getattr(error, "field", None) or ""
    return {field: error.message} if error and field.startswith("answers.") else {}


async def _typed_answers(request: web.Request, form: forms.Form, slot_id: int) -> dict[str, Any]:
    """The form's answers typed as the JSON API sends them, read against the slot's
    specialty's form (the service checks them again against the version it stores)."""
    raw = forms.answers(form)
    act = _act_of(forms.text(form, "act_type"))
    async with request.app[DB].read() as session:
        specialty_id = await session.scalar(select(Slot.specialty_id).where(Slot.id == slot_id))
        asked = await form_versions.current(session, specialty_id, act) if specialty_id else None
    if asked is None:
        return {}
    return request_forms.validate_answers(asked.definition, raw, strict=False)


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
        return await _slot_page(request, None, None, {}, exc)
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
        return await _slot_page(request, None, None, {}, booking.SlotTaken())
    return await _slot_page(request, slot, hold, {"act_type": hold.act_type.value})


@roles(Role.STAFF)
async def book(request: web.Request) -> web.Response:
    ctx, slot_id = request_context(request), path_id(request, "slot_id")
    user, now = ctx.caller, ctx.now
    form = await forms.read(request)
    body = forms.booking_body(form, slot_id)
    try:
        body["answers"] = await _typed_answers(request, form, slot_id)
        new = parse(booking.NewBooking, body, strict=False)
        given = _consent_of(request, form) if resident_forms.consent_given(form) else None
        await request.app[DB].run_write(lambda session: _book(session, ctx, new, given))
    except FORM_ERRORS as exc:
        async with request.app[DB].read() as session:
            slot, hold = await agenda.slot_with_hold(session, user, slot_id, now=now)
        values = {
            **body,
            "answers": forms.answers(form),
            "consent": resident_forms.consent_values(form),
        }
        return await _slot_page(request, slot, hold, values, exc)
    raise _done(request, "reserve")


def _consent_of(request: web.Request, form: forms.Form) -> ConsentInput:
    """The consent fields of a form, their errors in the form's words."""
    try:
        body = resident_forms.consent_body(form, request.app[SETTINGS].tz)
        return parse(ConsentInput, body, strict=False)
    except ValidationError as exc:
        raise ValidationError(resident_forms.message(exc), field=exc.field) from None


async def _record_consent(
    session: AsyncSession, ctx: Context, booking_id: int, given: ConsentInput
) -> None:
    try:
        await consent.for_booking(session, ctx, booking_id, given)
    except ValidationError as exc:
        raise ValidationError(resident_forms.message(exc), field=exc.field) from None


async def _book(
    session: AsyncSession, ctx: Context, new: booking.NewBooking, given: ConsentInput | None
) -> BookingView:
    """The booking and, when the form carried it, the resident's answer: both or neither."""
    made = await booking.book(session, ctx, new)
    if given is not None:
        await _record_consent(session, ctx, made.id, given)
    return made


# --- the facility's bookings ------------------------------------------------------------------

# The page's two lists, by the name of their cursor's parameter (and of their section).
SECTIONS = ("a_venir", "passes")
_SCOPES = {"a_venir": "page:upcoming", "passes": "page:past"}  # no holds: not the API's lists


@dataclass
class _Lists:
    """What « Mes rendez-vous » reads in one go."""

    upcoming: Page[BookingView]
    past: Page[BookingView]
    moved: dict[int, datetime]
    consents: dict[int, consent.ConsentView]
    report_status: dict[int, str]


async def _bookings_page(
    request: web.Request,
    error: TelmiError | None = None,
    failed: int | None = None,
    **extra: Any,
) -> web.Response:
    """Both lists, a page each (`?a_venir=` and `?passes=` carry their cursors): holds are
    left out (a form being filled in), and the two pages are one `booking.listed` event."""
    ctx = request_context(request)
    after: dict[str, Key | None] = {}
    for section in SECTIONS:
        try:
            after[section] = _after(request, booking.BOOKINGS, section, _SCOPES[section])
        except ValidationError as exc:
            after[section], error = None, error or exc

    async def work(conn: AsyncConnection) -> _Lists:
        # Listing records an audit event (patient references are shown), written before
        # the page is sent; the rest of the page's reads share the connection.
        upcoming, past = [
            await booking.list_bookings(
                conn,
                ctx,
                past=section == "passes",
                after=after[section],
                limit=PAGE_SIZE,
                holds=False,
                record=False,
            )
            for section in SECTIONS
        ]
        shown = upcoming.items + past.items
        await booking.record_listed(conn, ctx, shown)
        cancelled = [b.id for b in shown if b.status is BookingStatus.CANCELLED]
        confirmed = [b.id for b in upcoming.items if b.status is BookingStatus.CONFIRMED]
        return _Lists(
            upcoming,
            past,
            moved=await booking.moved_to(conn, cancelled),
            consents=await consent.latest_by_booking(conn, confirmed),
            report_status=await reports.statuses(conn, [b.id for b in shown]),
        )

    lists = await request.app[DB].run_statements(work)
    context = page_context(
        request,
        upcoming=lists.upcoming.items,
        past=lists.past.items,
        pages={
            section: _links(request, booking.BOOKINGS, listed, _SCOPES[section], section, section)
            for section, listed in zip(SECTIONS, (lists.upcoming, lists.past), strict=True)
        },
        moved=lists.moved,
        report_status=lists.report_status,
        error=readable(error) if error else None,
        failed=failed,
        room_opens_minutes=request.app[SETTINGS].room_opens_minutes,
        **_consent_forms(lists.consents),
    )
    context |= extra
    status = error.status if error else 200
    return render(request, "bookings.html", context, status=status)


def _consent_forms(consents: dict[int, consent.ConsentView]) -> dict[str, Any]:
    """Each upcoming confirmed booking's consent as it stands, and an empty consent form."""
    return {
        "consents": consents,
        "consent_failed": None,
        "consent_values": {},
        "consent_errors": {},
    }


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


@roles(Role.STAFF)
async def record_consent(request: web.Request) -> web.Response:
    """The resident's answer (consent or refusal) to an upcoming booking."""
    ctx, booking_id = request_context(request), path_id(request, "booking_id")
    form = await forms.read(request)
    try:
        given = _consent_of(request, form)
        await request.app[DB].run_write(
            lambda session: _record_consent(session, ctx, booking_id, given)
        )
    except FORM_ERRORS as exc:
        return await _bookings_page(
            request,
            exc,
            consent_failed=booking_id,
            consent_values=resident_forms.consent_values(form),
            consent_errors=resident_forms.field_errors(exc),
        )
    url = request.app.router["bookings"].url_for().with_fragment(f"consentement-{booking_id}")
    raise web.HTTPSeeOther(url)


# --- moving a booking ---------------------------------------------------------------------------


async def _move_page(
    request: web.Request, booking_id: int, error: TelmiError | None = None
) -> web.Response:
    """The booking and the free slots of the same specialty and act it could move to."""
    ctx = request_context(request)
    now, scope = ctx.now, f"move:{booking_id}"  # the booking fixes the specialty and act
    try:
        after = _after(request, booking.SLOTS, "curseur", scope)
    except ValidationError as exc:
        after, error = None, error or exc

    async def work(session: AsyncSession) -> tuple[BookingView, Page[FreeSlot]]:
        current = await booking.get_booking(session, ctx, booking_id)
        slots = await booking.search_free_slots(
            session,
            specialty=current.slot.specialty_code,
            act_type=current.act_type,
            start=now,
            end=None,
            now=now,
            after=after,
            limit=PAGE_SIZE,
        )
        return current, slots

    current, slots = await request.app[DB].run_write(work)
    context = page_context(
        request,
        booking=current,
        movable=current.status is BookingStatus.CONFIRMED and current.slot.starts_at > now,
        slots=slots.items,
        error=readable(error) if error else None,
        **_links(request, booking.SLOTS, slots, scope),
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
