"""The specialist's agenda: a week (Monday to Sunday) or one day on a time grid, with the
open slots, the bookings they carry and the absences."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Literal

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession
from yarl import URL

from telmi import agenda, reports
from telmi.keys import DB, SETTINGS
from telmi.models import Role
from telmi.values import LocalDate, Query, parse
from telmi.web.access import request_context, roles
from telmi.web.pages.display import page_context
from telmi.web.render import render


class AgendaQuery(Query):
    semaine: LocalDate | None = None
    vue: Literal["semaine", "jour"] | None = None
    jour: LocalDate | None = None


def _day_url(here: URL, day: date) -> URL:
    return here.with_query(vue="jour", jour=day.isoformat())


def _week_url(here: URL, day: date) -> URL:
    return here.with_query(semaine=agenda.monday_of(day).isoformat())


@roles(Role.SPECIALIST)
async def week(request: web.Request) -> web.Response:
    """`?semaine=` is any day of the week wanted (links give its Monday); default this week.
    `?vue=jour&jour=` shows one day (default: today, or the Monday of `semaine`)."""
    now, tz = request_context(request).now, request.app[SETTINGS].tz
    today = now.astimezone(tz).date()
    asked = parse(AgendaQuery, {k: v for k, v in request.query.items() if v}, strict=False)
    by_day = asked.vue == "jour" or (asked.vue is None and asked.jour is not None)
    if by_day:
        first = asked.jour or (agenda.monday_of(asked.semaine) if asked.semaine else today)
        count = 1
    else:
        first, count = agenda.monday_of(asked.semaine or asked.jour or today), 7

    async def work(session: AsyncSession) -> tuple[list[agenda.AgendaDay], dict[int, str]]:
        days = await agenda.days_of(session, request_context(request), first, count, tz)
        booked = [e.booking.id for day in days for e in day.entries if e.booking]
        return days, await reports.statuses(session, booked)  # the « Compte rendu » links

    days, report_status = await request.app[DB].run_write(work)
    here = request.app.router["agenda"].url_for()
    if by_day:
        step = timedelta(days=1)
        nav = {
            "previous": _day_url(here, first - step),
            "next": _day_url(here, first + step),
            "this_week": _day_url(here, today) if first != today else None,
        }
    else:
        step = timedelta(days=7)
        nav = {
            "previous": _week_url(here, first - step),
            "next": _week_url(here, first + step),
            "this_week": here if first != agenda.monday_of(today) else None,
        }
    in_week = agenda.monday_of(today) == agenda.monday_of(first)
    context = page_context(
        request,
        view="jour" if by_day else "semaine",
        days=days,
        grid=agenda.grid_of(days),
        monday=agenda.monday_of(first),
        sunday=agenda.monday_of(first) + timedelta(days=6),
        today=today,
        week_view=_week_url(here, first),
        day_view=_day_url(here, today if in_week else first),
        day_url=lambda d: _day_url(here, d),
        empty=not any(day.items for day in days),
        report_status=report_status,
        **nav,
    )
    return render(request, "agenda.html", context)
