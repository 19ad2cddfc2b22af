"""« Résidents »: the facility's residents, a resident's page, the new and edit forms.

Staff of the facility list, create and edit their residents; a specialist opens the page of
a resident of their own bookings or requests (read-only, from the agenda or the room);
regional and admin users never see one. Every read goes through `patients` (which writes
the access event naming the resident). A change is a POST answered by a 303 to the
resident's page; a refused form is shown again, each message beside its field.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from telmi import expertise, patients, resident_acts
from telmi.consent import GIVER_LABELS, METHOD_LABELS
from telmi.errors import TelmiError
from telmi.keys import DB, SETTINGS
from telmi.models import IdentityDocument, IdentityStatus, Role
from telmi.patients import Resident, ResidentInput
from telmi.values import Query, parse, text
from telmi.web.access import request_context, roles
from telmi.web.http import path_id
from telmi.web.listing import page_after, page_links, scope
from telmi.web.pages import forms, resident_forms
from telmi.web.pages.display import FORM_ERRORS, page_context
from telmi.web.render import render

CONFIRMATIONS = {
    "cree": "Le résident est enregistré.",
    "modifie": "Les informations du résident sont enregistrées.",
}


class ResidentSearch(Query):
    q: text(100) = ""  # type: ignore[valid-type]


def _labels() -> dict[str, Any]:
    return {
        "status_labels": patients.STATUS_LABELS,
        "document_labels": patients.DOCUMENT_LABELS,
        "sex_labels": patients.SEX_LABELS,
        "ins_kinds": patients.INS_OIDS,
        "statuses": list(IdentityStatus),
        "documents": list(IdentityDocument),
        "giver_labels": GIVER_LABELS,
        "method_labels": METHOD_LABELS,
    }


def _resident_url(request: web.Request, patient_id: int, ok: str) -> web.HTTPSeeOther:
    url = request.app.router["resident"].url_for(patient_id=str(patient_id))
    return web.HTTPSeeOther(url.with_query(ok=ok))


@roles(Role.STAFF)
async def index(request: web.Request) -> web.Response:
    """The facility's residents, 50 a page in the order they were recorded; the search box
    filters names and references."""
    ctx, vault = request_context(request), request.app[SETTINGS].vault
    asked = parse(ResidentSearch, dict(request.query), strict=False)
    bound = scope(ctx.caller.facility_id, asked.q.strip().casefold())
    after = page_after(request, patients.RESIDENTS, bound)
    page = await request.app[DB].run_write(
        lambda s: patients.residents_page(s, ctx, vault=vault, search=asked.q, after=after)
    )
    today = ctx.now.astimezone(request.app[SETTINGS].tz).date()
    links = page_links(request, patients.RESIDENTS, page, bound)
    context = page_context(
        request, residents=page.items, q=asked.q, today=today, **links, **_labels()
    )
    return render(request, "residents.html", context)


@roles(Role.STAFF, Role.SPECIALIST)
async def show(request: web.Request) -> web.Response:
    """A resident's identity, treating doctor, bookings and requests (audited read)."""
    ctx, vault = request_context(request), request.app[SETTINGS].vault
    patient_id = path_id(request, "patient_id")

    async def work(
        session: AsyncSession,
    ) -> tuple[Resident, list[resident_acts.BookingLine], list[resident_acts.RequestLine]]:
        resident = await patients.get(session, ctx, patient_id, vault=vault)
        return (
            resident,
            await resident_acts.bookings_of(session, ctx.caller, resident.id),
            await resident_acts.requests_of(session, ctx.caller, resident.id),
        )

    resident, booked, asked = await request.app[DB].run_write(work)
    context = page_context(
        request,
        resident=resident,
        bookings=booked,
        requests=asked,
        today=ctx.now.astimezone(request.app[SETTINGS].tz).date(),
        editable=ctx.caller.role is Role.STAFF,
        expertise_labels=expertise.LABELS,
        notice=CONFIRMATIONS.get(request.query.get("ok", "")),
        **_labels(),
    )
    return render(request, "resident.html", context)


def _form_page(
    request: web.Request,
    values: dict[str, str],
    *,
    patient_id: int | None = None,
    error: TelmiError | None = None,
) -> web.Response:
    """The new form (no `patient_id`) or the edit form of that resident."""
    errors = resident_forms.field_errors(error) if error else {}
    context = page_context(
        request,
        patient_id=patient_id,
        values=values,
        errors=errors,
        error=(resident_forms.message(error) if error and not errors else None),
        has_errors=bool(error),
        **_labels(),
    )
    return render(request, "resident_form.html", context, status=error.status if error else 200)


@roles(Role.STAFF)
async def new(request: web.Request) -> web.Response:
    values = dict.fromkeys(resident_forms.RESIDENT_FIELDS, "")
    values |= {"identity_status": IdentityStatus.PROVISIONAL.value, "ins_oid": patients.NIR_OID}
    return _form_page(request, values)


@roles(Role.STAFF)
async def create(request: web.Request) -> web.Response:
    ctx, settings = request_context(request), request.app[SETTINGS]
    values = resident_forms.resident_values(await forms.read(request))
    try:
        new = parse(ResidentInput, resident_forms.resident_body(values), strict=False)
        created = await request.app[DB].run_write(
            lambda s: patients.create(s, ctx, new, vault=settings.vault, tz=settings.tz)
        )
    except FORM_ERRORS as exc:
        return _form_page(request, values, error=exc)
    raise _resident_url(request, created.id, "cree")


@roles(Role.STAFF)
async def edit(request: web.Request) -> web.Response:
    ctx, vault = request_context(request), request.app[SETTINGS].vault
    patient_id = path_id(request, "patient_id")
    resident = await request.app[DB].run_write(
        lambda s: patients.get(s, ctx, patient_id, vault=vault)
    )
    values = resident_forms.resident_values_of(resident)
    return _form_page(request, values, patient_id=resident.id)


@roles(Role.STAFF)
async def update(request: web.Request) -> web.Response:
    ctx, settings = request_context(request), request.app[SETTINGS]
    patient_id = path_id(request, "patient_id")
    values = resident_forms.resident_values(await forms.read(request))
    try:
        edit = parse(ResidentInput, resident_forms.resident_body(values), strict=False)
        updated = await request.app[DB].run_write(
            lambda s: patients.update_resident(
                s, ctx, patient_id, edit, vault=settings.vault, tz=settings.tz
            )
        )
    except FORM_ERRORS as exc:  # another facility's resident is the service's 404
        return _form_page(request, values, patient_id=patient_id, error=exc)
    raise _resident_url(request, updated.id, "modifie")
