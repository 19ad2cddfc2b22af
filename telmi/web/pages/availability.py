"""The specialist's availability: weekly rules and absences, and what each change did.

A change answers with a 303 whose query carries the slot counts of the `SyncReport` and the
ids of the conflicting slots (never patient data); the page then shows the conflicts with
their facility, so the specialist knows whom to call. An admin manages any specialist's
availability through `?specialiste=ID`, kept on every form and redirect of the page.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession
from yarl import URL

from telmi import accounts, agenda, availability
from telmi.availability import AvailabilityQuery, ExceptionInput, RuleInput, SyncReport
from telmi.errors import TelmiError
from telmi.keys import DB, SETTINGS
from telmi.models import Role
from telmi.values import parse
from telmi.web.access import request_context, roles
from telmi.web.http import path_id
from telmi.web.pages import forms
from telmi.web.pages.display import FORM_ERRORS, page_context, readable
from telmi.web.render import render

MANAGERS = (Role.SPECIALIST, Role.ADMIN)
MAX_CONFLICTS_SHOWN = 50
Change = Callable[[AsyncSession], Awaitable[SyncReport]]


def _who(request: web.Request) -> dict[str, str]:
    """`?specialiste=ID` as given (admins); specialists manage their own without it."""
    raw = request.query.get("specialiste", "")
    return {"specialiste": raw} if raw.isdigit() else {}


def _whose(request: web.Request) -> AvailabilityQuery:
    """Whose availability the page shows and changes (an id no row can have is refused)."""
    who = _who(request)
    return parse(AvailabilityQuery, {"specialist_id": who.get("specialiste")}, strict=False)


def _horizon(request: web.Request) -> tuple[ZoneInfo, int]:
    settings = request.app[SETTINGS]
    return settings.tz, settings.slot_horizon_weeks


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
    ctx, whose = request_context(request), _whose(request)
    user, (tz, weeks) = ctx.caller, _horizon(request)
    report = _report(request)
    async with request.app[DB].read() as session:
        if user.role is Role.ADMIN and whose.specialist_id is None:
            everyone = await accounts.list_users(session)
            specialists = [u for u in everyone if u.role is Role.SPECIALIST]
            return render(
                request, "availability_choose.html", page_context(request, specialists=specialists)
            )
        specialist = await availability.specialist_for(session, user, whose.specialist_id)
        rules = await availability.list_rules(session, ctx, whose)
        absences = await availability.list_exceptions(session, ctx, whose)
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
        rule=rule or forms.rule_defaults(ctx.now.astimezone(tz).date()),
        absence=absence or {"starts_at": "", "ends_at": "", "reason": ""},
        rule_error=readable(error) if error and rule is not None else None,
        absence_error=readable(error) if error and absence is not None else None,
        timezone=request.app[SETTINGS].timezone,
        weeks=weeks,
    )
    return render(request, "availability.html", context, status=error.status if error else 200)


async def _apply(request: web.Request, ok: str, change: Change) -> web.HTTPSeeOther:
    """Run a change for the page's specialist; 303 to the page with its SyncReport."""
    report = await request.app[DB].run_write(change)
    page: URL = request.app.router["availability"].url_for()
    return web.HTTPSeeOther(page.with_query({**_who(request), "ok": ok, **_report_query(report)}))


@roles(*MANAGERS)
async def show(request: web.Request) -> web.Response:
    """Rules, absences, the forms to add them and the outcome of the last change."""
    return await _page(request)


@roles(*MANAGERS)
async def add_rule(request: web.Request) -> web.Response:
    ctx, form, (tz, weeks) = request_context(request), await forms.read(request), _horizon(request)
    try:
        whose = _whose(request)
        data = {**forms.rule_body(form), "specialist_id": whose.specialist_id}
        rule = parse(RuleInput, data, strict=False)

        async def change(session: AsyncSession) -> SyncReport:
            _, report = await availability.create_rule(session, ctx, rule, tz=tz, weeks=weeks)
            return report

        done = await _apply(request, "regle_ajoutee", change)
    except FORM_ERRORS as exc:
        return await _page(request, error=exc, rule=forms.rule_values(form))
    raise done


@roles(*MANAGERS)
async def delete_rule(request: web.Request) -> web.Response:
    ctx, rule_id, (tz, weeks) = (
        request_context(request),
        path_id(request, "rule_id"),
        _horizon(request),
    )
    whose = _whose(request)

    async def change(session: AsyncSession) -> SyncReport:
        _, report = await availability.delete_rule(session, ctx, rule_id, whose, tz=tz, weeks=weeks)
        return report

    raise await _apply(request, "regle_supprimee", change)


@roles(*MANAGERS)
async def add_absence(request: web.Request) -> web.Response:
    ctx, form, (tz, weeks) = request_context(request), await forms.read(request), _horizon(request)
    try:
        whose = _whose(request)
        data = {**forms.absence_body(form, tz), "specialist_id": whose.specialist_id}
        absence = parse(ExceptionInput, data, strict=False)

        async def change(session: AsyncSession) -> SyncReport:
            _, report = await availability.create_exception(
                session, ctx, absence, tz=tz, weeks=weeks
            )
            return report

        done = await _apply(request, "absence_ajoutee", change)
    except FORM_ERRORS as exc:
        return await _page(request, error=exc, absence=forms.absence_values(form))
    raise done


@roles(*MANAGERS)
async def delete_absence(request: web.Request) -> web.Response:
    ctx, absence_id = request_context(request), path_id(request, "absence_id")
    whose, (tz, weeks) = _whose(request), _horizon(request)

    async def change(session: AsyncSession) -> SyncReport:
        return await availability.delete_exception(
            session, ctx, absence_id, whose, tz=tz, weeks=weeks
        )

    raise await _apply(request, "absence_supprimee", change)
