"""Administration of the directory: facilities (list, create, edit, deactivate), specialties
(create, rename, retire) and the « Journal d'administration » of every admin change."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from telmi import admin_journal, facilities
from telmi.facilities import FacilityInput, FacilitySearch, SpecialtyInput, SpecialtyName
from telmi.keys import DB
from telmi.labels import LABELS
from telmi.models import Facility, FacilityCategory, Role
from telmi.values import parse
from telmi.web.access import request_context, roles
from telmi.web.http import path_id
from telmi.web.listing import page_after, page_links, scope
from telmi.web.pages import forms
from telmi.web.pages.display import FORM_ERRORS, page_context
from telmi.web.render import render

FACILITY_FIELDS = (
    "name",
    "finess",
    "category",
    "finess_category_code",
    "departement",
    "address",
    "commune",
    "postcode",
    "phone",
    "video_notes",
)
NOTICES = {
    "cree": "L'établissement est créé.",
    "enregistre": "Les modifications sont enregistrées.",
    "desactive": "L'établissement est désactivé : il ne prend plus de nouvelle réservation.",
    "reactive": "L'établissement est réactivé.",
    "specialite_creee": "La spécialité est créée.",
    "specialite_renommee": "La spécialité est renommée.",
    "specialite_retiree": "La spécialité est retirée.",
    "specialite_retablie": "La spécialité est rétablie.",
}


def _notice(request: web.Request) -> str | None:
    return NOTICES.get(request.query.get("ok", ""))


def _see_other(request: web.Request, name: str, ok: str, **parts: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(request.app.router[name].url_for(**parts).with_query({"ok": ok}))


# --- facilities ---------------------------------------------------------------------------------


@roles(Role.ADMIN)
async def facility_list(request: web.Request) -> web.Response:
    wanted = parse(FacilitySearch, dict(request.query), strict=False)
    bound = scope(*wanted.model_dump().values())
    after = page_after(request, facilities.ADMIN_FACILITIES, bound)
    async with request.app[DB].read() as session:
        found = await facilities.search_facilities(session, wanted, after=after)
        departements = await facilities.list_departements(session)
    context = {
        "found": found,
        "wanted": wanted,
        "departements": departements,
        "categories": list(FacilityCategory),
        "labels": LABELS,
        "notice": _notice(request),
        **page_links(request, facilities.ADMIN_FACILITIES, found, bound),
    }
    return render(request, "admin_facilities.html", context)


def _values_of(facility: Facility | None) -> dict[str, str]:
    if facility is None:
        return {name: "" for name in FACILITY_FIELDS}
    columns = {
        name: "departement_code" if name == "departement" else name for name in FACILITY_FIELDS
    }
    values = {name: str(getattr(facility, column) or "") for name, column in columns.items()}
    values["category"] = facility.category.value
    return values


async def _facility_form(
    request: web.Request,
    facility: Facility | None,
    values: dict[str, str],
    errors: dict[str, str],
    status: int = 200,
) -> web.Response:
    async with request.app[DB].read() as session:
        departements = await facilities.list_departements(session)
    context = {
        "facility": facility,
        "values": values,
        "errors": errors,
        "departements": departements,
        "categories": list(FacilityCategory),
        "labels": LABELS,
        "notice": _notice(request),
    }
    return render(request, "admin_facility.html", context, status=status)


@roles(Role.ADMIN)
async def facility_new(request: web.Request) -> web.Response:
    return await _facility_form(request, None, _values_of(None), {})


@roles(Role.ADMIN)
async def facility_edit(request: web.Request) -> web.Response:
    async with request.app[DB].read() as session:
        facility = await facilities.get_facility(session, path_id(request, "facility_id"))
    return await _facility_form(request, facility, _values_of(facility), {})


def _submitted(form: forms.Form) -> dict[str, str]:
    return {name: forms.text(form, name) for name in FACILITY_FIELDS}


@roles(Role.ADMIN)
async def facility_create(request: web.Request) -> web.StreamResponse:
    values, ctx = _submitted(await forms.read(request)), request_context(request)
    try:
        new = parse(FacilityInput, values, strict=False)
        made = await request.app[DB].run_write(lambda s: facilities.create_facility(s, ctx, new))
    except FORM_ERRORS as exc:
        errors = {exc.field or "form": exc.message}
        return await _facility_form(request, None, values, errors, status=exc.status)
    raise _see_other(request, "admin_facility", "cree", facility_id=str(made.id))


@roles(Role.ADMIN)
async def facility_save(request: web.Request) -> web.StreamResponse:
    facility_id = path_id(request, "facility_id")
    values, ctx = _submitted(await forms.read(request)), request_context(request)
    try:
        new = parse(FacilityInput, values, strict=False)
        await request.app[DB].run_write(
            lambda s: facilities.update_facility(s, ctx, facility_id, new)
        )
    except FORM_ERRORS as exc:
        async with request.app[DB].read() as session:
            facility = await facilities.get_facility(session, facility_id)
        errors = {exc.field or "form": exc.message}
        return await _facility_form(request, facility, values, errors, status=exc.status)
    raise _see_other(request, "admin_facility", "enregistre", facility_id=str(facility_id))


async def _set_active(request: web.Request, active: bool) -> web.StreamResponse:
    facility_id, ctx = path_id(request, "facility_id"), request_context(request)
    await forms.read(request)
    await request.app[DB].run_write(
        lambda s: facilities.set_facility_active(s, ctx, facility_id, active)
    )
    ok = "reactive" if active else "desactive"
    raise _see_other(request, "admin_facility", ok, facility_id=str(facility_id))


@roles(Role.ADMIN)
async def facility_deactivate(request: web.Request) -> web.StreamResponse:
    return await _set_active(request, False)


@roles(Role.ADMIN)
async def facility_reactivate(request: web.Request) -> web.StreamResponse:
    return await _set_active(request, True)


# --- specialties --------------------------------------------------------------------------------


async def _specialty_page(
    request: web.Request,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> web.Response:
    async with request.app[DB].read() as session:
        specialties = await facilities.list_specialties(session, include_retired=True)
    context = {
        "specialties": specialties,
        "values": values or {"code": "", "name": ""},
        "errors": errors or {},
        "notice": _notice(request),
    }
    return render(request, "admin_specialties.html", context, status=status)


@roles(Role.ADMIN)
async def specialty_list(request: web.Request) -> web.Response:
    return await _specialty_page(request)


@roles(Role.ADMIN)
async def specialty_create(request: web.Request) -> web.StreamResponse:
    form, ctx = await forms.read(request), request_context(request)
    values = {"code": forms.text(form, "code"), "name": forms.text(form, "name")}
    try:
        new = parse(SpecialtyInput, values, strict=False)
        await request.app[DB].run_write(lambda s: facilities.create_specialty(s, ctx, new))
    except FORM_ERRORS as exc:
        errors = {exc.field or "form": exc.message}
        return await _specialty_page(request, values, errors, status=exc.status)
    raise _see_other(request, "admin_specialties", "specialite_creee")


@roles(Role.ADMIN)
async def specialty_rename(request: web.Request) -> web.StreamResponse:
    specialty_id, ctx = path_id(request, "specialty_id"), request_context(request)
    form = await forms.read(request)
    try:
        new = parse(SpecialtyName, {"name": forms.text(form, "name")}, strict=False)
        await request.app[DB].run_write(
            lambda s: facilities.rename_specialty(s, ctx, specialty_id, new)
        )
    except FORM_ERRORS as exc:
        errors = {f"name-{specialty_id}": exc.message}
        return await _specialty_page(request, None, errors, status=exc.status)
    raise _see_other(request, "admin_specialties", "specialite_renommee")


async def _set_retired(request: web.Request, retired: bool) -> web.StreamResponse:
    specialty_id, ctx = path_id(request, "specialty_id"), request_context(request)
    await forms.read(request)
    await request.app[DB].run_write(
        lambda s: facilities.set_specialty_retired(s, ctx, specialty_id, retired)
    )
    ok = "specialite_retiree" if retired else "specialite_retablie"
    raise _see_other(request, "admin_specialties", ok)


@roles(Role.ADMIN)
async def specialty_retire(request: web.Request) -> web.StreamResponse:
    return await _set_retired(request, True)


@roles(Role.ADMIN)
async def specialty_reinstate(request: web.Request) -> web.StreamResponse:
    return await _set_retired(request, False)


# --- the journal --------------------------------------------------------------------------------


@roles(Role.ADMIN)
async def journal(request: web.Request) -> web.Response:
    after = page_after(request, admin_journal.KEYSET)
    async with request.app[DB].read() as session:
        found = await admin_journal.changes(session, after=after)
    links = page_links(request, admin_journal.KEYSET, found)
    context: dict[str, Any] = page_context(request, changes=found.items, **links)
    return render(request, "admin_journal.html", context)
