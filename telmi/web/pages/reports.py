"""The report page of a booking (« Compte rendu »), its forms and the PDF downloads.

The page shows the act record (who, when, the resident, consent, participants, incidents)
and the report: signed, read-only with its hash and addenda; for the slot's specialist, the
editor while it is not signed. The forms work without JavaScript (POST, then a 303 with a
fixed `?ok=`); `static/js/report.js` saves and signs through the JSON API instead.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from telmi import reports
from telmi.errors import TelmiError
from telmi.keys import DB, SETTINGS
from telmi.models import Role
from telmi.reports import AddendumInput, ReportInput, SignedReportInput
from telmi.values import parse
from telmi.web.access import authenticated, request_context, roles
from telmi.web.api import reports as api
from telmi.web.http import path_id
from telmi.web.pages import forms
from telmi.web.pages.display import FORM_ERRORS, page_context, readable
from telmi.web.render import render

NOTICES = {
    "brouillon": "Le brouillon du compte rendu est enregistré.",
    "signe": "Le compte rendu est signé ; l'établissement en est averti.",
    "addendum": "L'addendum est signé et ajouté au compte rendu.",
}
TEXTS = ("reason", "findings", "conclusion", "recommendations", "prescriptions", "follow_up_when")


def _here(request: web.Request, booking_id: int) -> Any:
    return request.app.router["booking_report"].url_for(booking_id=str(booking_id))


async def _page(
    request: web.Request,
    *,
    error: TelmiError | None = None,
    values: dict[str, Any] | None = None,
) -> web.Response:
    ctx, booking_id = request_context(request), path_id(request, "booking_id")
    vault = request.app[SETTINGS].vault
    record = await request.app[DB].run_write(
        lambda s: reports.record_for_booking(s, ctx, booking_id, vault=vault)
    )
    report = record.report
    context = page_context(
        request,
        record=record,
        booking_id=booking_id,
        report=report if report is not None and not report.signed else None,
        signed=report if report is not None and report.signed else None,
        values=values if values is not None else (report.sections() if report else {}),
        can_addend=report is not None
        and report.signed
        and ctx.caller.id == report.author_id
        and ctx.caller.role is Role.SPECIALIST,
        notice=NOTICES.get(request.query.get("ok", "")),
        error=readable(error) if error else None,
        reload_url=str(_here(request, booking_id).with_query(ok="signe")),
    )
    return render(request, "report.html", context, status=error.status if error else 200)


@authenticated  # anyone but the facility's staff and the specialist gets the 404 page
async def show(request: web.Request) -> web.Response:
    return await _page(request)


def _sections(form: forms.Form) -> dict[str, Any]:
    values: dict[str, Any] = {name: forms.text(form, name) for name in TEXTS}
    values["follow_up_needed"] = "follow_up_needed" in form
    return values


@roles(Role.SPECIALIST)
async def submit(request: web.Request) -> web.Response:
    """« Enregistrer le brouillon » or « Signer le compte rendu » (the button's `action`)."""
    ctx, booking_id = request_context(request), path_id(request, "booking_id")
    public_url = request.app[SETTINGS].public_url
    form = await forms.read(request)
    values = _sections(form)
    try:
        if form.get("action") == "signer":
            final = parse(SignedReportInput, values, strict=False)
            await request.app[DB].run_write(
                lambda s: reports.sign(s, ctx, booking_id, final, public_url=public_url)
            )
            ok = "signe"
        else:
            draft = parse(ReportInput, values, strict=False)
            await request.app[DB].run_write(lambda s: reports.save_draft(s, ctx, booking_id, draft))
            ok = "brouillon"
    except FORM_ERRORS as exc:
        return await _page(request, error=exc, values=values)
    raise web.HTTPSeeOther(_here(request, booking_id).with_query(ok=ok))


@roles(Role.SPECIALIST)
async def addendum(request: web.Request) -> web.Response:
    ctx, booking_id = request_context(request), path_id(request, "booking_id")
    public_url = request.app[SETTINGS].public_url
    form = await forms.read(request)
    try:
        added = parse(AddendumInput, {"body": forms.text(form, "body")}, strict=False)
        await request.app[DB].run_write(
            lambda s: reports.add_addendum(
                s, ctx, added, booking_id=booking_id, public_url=public_url
            )
        )
    except FORM_ERRORS as exc:
        return await _page(request, error=exc)
    raise web.HTTPSeeOther(_here(request, booking_id).with_query(ok="addendum"))


@authenticated
async def booking_pdf(request: web.Request) -> web.Response:
    return await api.booking_pdf(request, path_id(request, "booking_id"))


@authenticated
async def expertise_pdf(request: web.Request) -> web.Response:
    return await api.request_pdf(request, path_id(request, "request_id"))
