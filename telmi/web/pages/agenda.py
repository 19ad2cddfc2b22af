"""The specialist's week: open slots and the bookings they carry, Monday to Sunday."""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web

from telmi import agenda, reports
from telmi.keys import DB, SETTINGS
from telmi.models import Role
from telmi.values import LocalDate, Query, parse
from telmi.web.access import request_context, roles
from telmi.web.pages.display import page_context
from telmi.web.render import render


class WeekQuery(Query):
    semaine: LocalDate | None = None


@roles(Role.SPECIALIST)
async def week(request: web.Request) -> web.Response:
    """`?semaine=` is any day of the week wanted (links give its Monday); default this week."""
    now, tz = request_context(request).now, request.app[SETTINGS].tz
    today = now.astimezone(tz).date()
    asked = parse(WeekQuery, {k: v for k, v in request.query.items() if v}, strict=False)
    monday = agenda.monday_of(asked.semaine or today)
    days = await request.app[DB].run_write(
        lambda session: agenda.week_of(session, request_context(request), monday, tz)
    )
    booked = [e.booking.id for day in days for e in day.entries if e.booking]
    async with request.app[DB].read() as session:  # the « Compte rendu » links
        report_status = await reports.statuses(session, booked)
    here = request.app.router["agenda"].url_for()
    context = page_context(
        request,
        days=days,
        monday=monday,
        today=today,
        previous=here.with_query(semaine=(monday - timedelta(days=7)).isoformat()),
        next=here.with_query(semaine=(monday + timedelta(days=7)).isoformat()),
        this_week=here if monday != agenda.monday_of(today) else None,
        empty=not any(day.entries for day in days),
        report_status=report_status,
    )
    return render(request, "agenda.html", context)
