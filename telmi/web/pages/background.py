"""« Tâches de fond » for admins and « Mes notifications » for everyone signed in."""

from __future__ import annotations

from aiohttp import web

from telmi import jobs, notify
from telmi.keys import CLOCK, DB, SETTINGS, UNREAD
from telmi.models import Role
from telmi.paging import MAX_CURSOR
from telmi.web.access import authenticated, current_user, request_context, roles
from telmi.web.listing import PARAM, page_after, page_links
from telmi.web.pages import forms, notifications_view
from telmi.web.pages.display import page_context
from telmi.web.render import render
from telmi.worker import RUNNER


def _schedule(job: jobs.Job) -> str:
    if job.every_seconds:
        seconds = int(job.every_seconds)
        return f"toutes les {seconds} s" if seconds < 120 else f"toutes les {seconds // 60} min"
    return f"chaque nuit à {job.cron.get('hour', 0):02d}:{job.cron.get('minute', 0):02d}"


@roles(Role.ADMIN)
async def job_list(request: web.Request) -> web.Response:
    app = request.app
    defined = jobs.build(app[DB], app[CLOCK], app[SETTINGS])
    runs = await jobs.last_runs(app[DB])
    here = app[RUNNER].next_runs() if RUNNER in app else {}
    rows = [
        {
            "job": job,
            "schedule": _schedule(job),
            "run": runs.get(job.name),
            "next": here.get(job.name)
            or (runs[job.name].next_run_at if job.name in runs else None),
        }
        for job in defined
    ]
    return render(request, "admin_jobs.html", page_context(request, rows=rows, local=here != {}))


NOTICES_PER_PAGE = 50


@authenticated
async def notifications(request: web.Request) -> web.Response:
    """A page of the user's notices, newest first; the unread count is of all pages (the
    menu's, counted once by the middleware)."""
    user, now = current_user(request), request_context(request).now
    settings, scope = request.app[SETTINGS], str(user.id)
    key = page_after(request, notify.MINE, scope)
    async with request.app[DB].read() as session:
        page = await notify.for_user(session, user, after=key, limit=NOTICES_PER_PAGE)
        booked = {b for b in map(notify.booking_of, page.items) if b is not None}
        starts = await notify.booking_starts(session, booked)
        unread = request.get(UNREAD)
        if unread is None:
            unread = await notify.unread(session, user.id)
    shown = notifications_view.messages(
        page.items, user, starts=starts, now=now, tz=settings.tz, public_url=settings.public_url
    )
    links = page_links(request, notify.MINE, page, scope)
    context = page_context(
        request,
        items=shown,
        unread_here=unread,
        whole=links["first_page"] is None and links["next_page"] is None,  # all on this page
        curseur=request.query.get(PARAM, ""),
        **links,
    )
    return render(request, "notifications.html", context)


@authenticated
async def mark_read(request: web.Request) -> web.Response:
    """« Tout marquer comme lu », or one notice (`notification_id`) « Marquer comme lue »."""
    user, now = current_user(request), request_context(request).now
    form = await forms.read(request)
    raw = forms.text(form, "notification_id")
    one = int(raw) if raw.isdigit() and len(raw) < 12 else None
    await request.app[DB].run_write(lambda s: notify.mark_read(s, user, now=now, notice_id=one))
    url = request.app.router["notifications"].url_for()
    cursor = forms.text(form, PARAM)  # back to the page it was on (checked there)
    if one and cursor and len(cursor) <= MAX_CURSOR:
        url = url.with_query({PARAM: cursor})
    raise web.HTTPSeeOther(url.with_fragment(f"notification-{one}") if one else url)
