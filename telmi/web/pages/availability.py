"""The specialist's availability: weekly rules and absences, and what each change did.

A change answers with a 303 whose query carries the slot counts of the `SyncReport` and the
ids of the conflicting slots (never patient data); the page then shows the conflicts with
their facility, so the specialist knows whom to call. An admin manages any specialist's
availability through `?specialiste=ID`, kept on every form and redirect of the page.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession
from yarl import URL

from telmi import accounts, agenda, availability
from telmi.availability import SyncReport
from telmi.errors import TelmiError
from telmi.keys import DB, SETTINGS
from telmi.models import Role, User
from telmi.web.access import current_user, roles
from telmi.web.http import path_id, slot_timing
from telmi.web.pages import forms
from telmi.web.pages.display import FORM_ERRORS, page_context, readable
from telmi.web.render import render

MANAGERS = (Role.SPECIALIST, Role.ADMIN)
MAX_CONFLICTS_SHOWN = 50
Change = Callable[[AsyncSession, User], Awaitable[SyncReport]]


def _who(request: web.Request) -> dict[str, str]:
    """`?specialiste=ID` as given (admins); specialists manage their own without it."""
    raw = request.query.get("specialiste", "")
    return {"specialiste": raw} if raw.isdigit() else {}


def _specialist_id(request: web.Request) -> int | None:
    who = _who(request)
    return int(who["specialiste"]) if who else None


def _report_query(report: SyncReport) -> dict[str, str]:
    query = {
        "crees": str(report.created),
        "rouverts": str(report.reopened),
        "retires": str(report.withdrawn),
    }
    if report.conflicts:
        query["conflits"] = str(len(report.conflicts))
        shown = report.conflicts[:MAX_CONFLICTS_SHOWN]
        query["creneaux"] = ",".join(str(c.slot_id) for c in shown)
    return query


def _report(request: web.Request) -> dict[str, Any] | None:
    """The counts a change left in the query string, if this page follows a change."""
    q = request.query
    if "crees" not in q:
        return None

    def count(name: str) -> int:
        raw = q.get(name, "0")
        return int(raw) if raw.isdigit() else 0

    slot_ids = [int(s) for s in q.get("creneaux", "").split(",") if s.isdigit()]
    return {
        "created": count("crees"),
        "reopened": count("rouverts"),
        "withdrawn": count("retires"),
        "conflicts": count("conflits"),
        "slot_ids": slot_ids[:MAX_CONFLICTS_SHOWN],
    }


async def _page(
    request: web.Request,
    *,
    error: TelmiError | None = None,
    rule: dict[str, Any] | None = None,
    absence: dict[str, str] | None = None,
) -> web.Response:
    user, timing = current_user(request), slot_timing(request)
    report = _report(request)
    async with request.app[DB].read() as session:
        if user.role is Role.ADMIN and _specialist_id(request) is None:
            everyone = await accounts.list_users(session)
            specialists = [u for u in everyone if u.role is Role.SPECIALIST]
            return render(
                request, "availability_choose.html", page_context(request, specialists=specialists)
            )
        specialist = await availability.specialist_for(session, user, _specialist_id(request))
        rules = await availability.list_rules(session, specialist)
        absences = await availability.list_exceptions(session, specialist, now=timing["now"])
        conflicts = await agenda.booked_slots(
            session, specialist, report["slot_ids"] if report else []
        )
    context = page_context(
        request,
        specialist=specialist,
        for_someone_else=specialist.id != user.id,
        who=_who(request),
        rules=rules,
        absences=absences,
        report=report,
        conflicts=conflicts,
        rule=rule or forms.rule_defaults(timing["now"].astimezone(timing["tz"]).date()),
        absence=absence or {"starts_at": "", "ends_at": "", "reason": ""},
        rule_error=readable(error) if error and rule is not None else None,
        absence_error=readable(error) if error and absence is not None else None,
        timezone=request.app[SETTINGS].timezone,
        weeks=timing["weeks"],
    )
    return render(request, "availability.html", context, status=error.status if error else 200)


async def _apply(request: web.Request, ok: str, change: Change) -> web.HTTPSeeOther:
    """Run a change for the page's specialist; 303 to the page with its SyncReport."""
    user = current_user(request)

    async def work(session: AsyncSession) -> SyncReport:
        specialist = await availability.specialist_for(session, user, _specialist_id(request))
        return await change(session, specialist)

    report = await request.app[DB].run_write(work)
    page: URL = request.app.router["availability"].url_for()
    return web.HTTPSeeOther(page.with_query({**_who(request), "ok": ok, **_report_query(report)}))


@roles(*MANAGERS)
async def show(request: web.Request) -> web.Response:
    """Rules, absences, the forms to add them and the outcome of the last change."""
    return await _page(request)


@roles(*MANAGERS)
async def add_rule(request: web.Request) -> web.Response:
    user, form = current_user(request), await forms.read(request)

    async def change(session: AsyncSession, specialist: User) -> SyncReport:
        body = forms.rule_body(form)
        _, report = await availability.create_rule(
            session, user, specialist, body, **slot_timing(request)
        )
        return report

    try:
        done = await _apply(request, "regle_ajoutee", change)
    except FORM_ERRORS as exc:
        return await _page(request, error=exc, rule=forms.rule_values(form))
    raise done


@roles(*MANAGERS)
async def delete_rule(request: web.Request) -> web.Response:
    user, rule_id = current_user(request), path_id(request, "rule_id")

    async def change(session: AsyncSession, specialist: User) -> SyncReport:
        _, report = await availability.delete_rule(
            session, user, specialist, rule_id, **slot_timing(request)
        )
        return report

    raise await _apply(request, "regle_supprimee", change)


@roles(*MANAGERS)
async def add_absence(request: web.Request) -> web.Response:
    user, form = current_user(request), await forms.read(request)

    async def change(session: AsyncSession, specialist: User) -> SyncReport:
        body = forms.absence_body(form)
        _, report = await availability.create_exception(
            session, user, specialist, body, **slot_timing(request)
        )
        return report

    try:
        done = await _apply(request, "absence_ajoutee", change)
    except FORM_ERRORS as exc:
        return await _page(request, error=exc, absence=forms.absence_values(form))
    raise done


@roles(*MANAGERS)
async def delete_absence(request: web.Request) -> web.Response:
    user, absence_id = current_user(request), path_id(request, "absence_id")

    async def change(session: AsyncSession, specialist: User) -> SyncReport:
        return await availability.delete_exception(
            session, user, specialist, absence_id, **slot_timing(request)
        )

    raise await _apply(request, "absence_supprimee", change)
