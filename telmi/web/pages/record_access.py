"""« Accès au dossier »: who saw a resident's record, page by page, and its CSV export.

Admins pick a facility and type the resident's reference (they never see an identity);
facility staff may read the log of their own residents. The form is a POST answered by a
303 to the resident's page, so the reference never travels in a URL: the page's address
holds only the resident's id and the cursor.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from telmi import facilities, record_access
from telmi.errors import TelmiError
from telmi.keys import DB, SETTINGS
from telmi.models import Role
from telmi.paging import Page
from telmi.values import Id, PatientRef, Query, parse
from telmi.web.access import current_user, request_context, roles
from telmi.web.http import path_id
from telmi.web.listing import page_after, page_links
from telmi.web.pages import forms
from telmi.web.pages.display import FORM_ERRORS, page_context, readable
from telmi.web.render import render


class Lookup(Query):
    """The form: staff need not choose (their facility is the only one they may read)."""

    facility_id: Id | None = None
    reference: PatientRef


async def _form_page(
    request: web.Request, values: dict[str, Any], error: TelmiError | None = None
) -> web.Response:
    async with request.app[DB].read() as session:
        directory = await facilities.list_facilities(session, current_user(request))
    context = page_context(
        request,
        facilities=directory,
        values=values,
        page=None,
        error=readable(error) if error else None,
    )
    return render(request, "record_access.html", context, status=error.status if error else 200)


@roles(Role.ADMIN, Role.STAFF)
async def choose(request: web.Request) -> web.Response:
    return await _form_page(request, {"facility_id": "", "reference": ""})


@roles(Role.ADMIN, Role.STAFF)
async def find(request: web.Request) -> web.StreamResponse:
    ctx, form = request_context(request), await forms.read(request)
    values = {name: forms.text(form, name) for name in ("facility_id", "reference")}
    try:
        asked = parse(Lookup, {k: v for k, v in values.items() if v}, strict=False)
        async with request.app[DB].read() as session:
            patient_id = await record_access.find_resident(
                session, ctx, facility_id=asked.facility_id, reference=asked.reference
            )
    except FORM_ERRORS as exc:
        return await _form_page(request, values, exc)
    url = request.app.router["record_access"].url_for(patient_id=str(patient_id))
    raise web.HTTPSeeOther(url)


@roles(Role.ADMIN, Role.STAFF)
async def show(request: web.Request) -> web.Response:
    ctx, patient_id = request_context(request), path_id(request, "patient_id")
    bound = str(patient_id)
    after = page_after(request, record_access.KEYSET, bound)
    page = await request.app[DB].run_write(
        lambda s: record_access.events_for_resident(s, ctx, patient_id, after=after)
    )
    links = page_links(request, record_access.KEYSET, Page(page.events, page.next_key), bound)
    context = page_context(
        request,
        page=page,
        retention_months=request.app[SETTINGS].audit_retention_months,
        **links,
    )
    return render(request, "record_access.html", context)


@roles(Role.ADMIN, Role.STAFF)
async def export(request: web.Request) -> web.Response:
    ctx, patient_id = request_context(request), path_id(request, "patient_id")
    tz = request.app[SETTINGS].tz
    _, body = await request.app[DB].run_write(
        lambda s: record_access.csv_for_resident(s, ctx, patient_id, tz=tz)
    )
    day = ctx.now.astimezone(tz).date().isoformat()
    return web.Response(
        text=body,
        content_type="text/csv",
        charset="utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="acces-dossier-{patient_id}-{day}.csv"'
        },
    )
