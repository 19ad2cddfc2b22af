"""Tele-expertise pages: « Mes demandes », « Demandes reçues », the new request, the thread.

The new request form sends the photos with JavaScript (drag and drop, previews) through the
JSON API; the thread's actions are plain forms answered by a redirect.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from sqlalchemy import select

from telmi import consent, expertise, facilities, form_versions, reports
from telmi.consent import ConsentInput
from telmi.errors import TelmiError
from telmi.expertise import ExpertiseAnswer, ExpertiseDecline, ExpertiseNote
from telmi.keys import DB, SETTINGS
from telmi.models import ActType, ExpertiseStatus, Role, Specialty
from telmi.values import Body, parse
from telmi.web.access import request_context, roles
from telmi.web.api.expertise import list_page, patient_refs, run_step
from telmi.web.http import path_id
from telmi.web.listing import page_after, page_links
from telmi.web.pages import forms, resident_choice, resident_forms
from telmi.web.pages.display import FORM_ERRORS, page_context
from telmi.web.render import render

CARERS = (Role.STAFF, Role.SPECIALIST)


PAGE_SIZE = 50


@roles(*CARERS)
async def index(request: web.Request) -> web.Response:
    """A page of the list, newest first; « Page suivante » carries the signed cursor."""
    ctx = request_context(request)
    user, now = ctx.caller, ctx.now
    keyset, scope = expertise.list_keyset(user)
    page, refs = await list_page(request, page_after(request, keyset, scope), PAGE_SIZE)
    async with request.app[DB].read() as session:
        names = {s.id: s.name for s in await session.scalars(select(Specialty))}
    return render(
        request,
        "expertise_list.html",
        page_context(
            request,
            items=page.items,
            names=names,
            refs=refs,
            late={r.id for r in page.items if expertise.is_overdue(r, now)},
            labels=expertise.LABELS,
            specialist=user.role is Role.SPECIALIST,
            **page_links(request, keyset, page, scope),
        ),
    )


@roles(Role.STAFF)
async def new(request: web.Request) -> web.Response:
    """The new request's form, for the specialty of `?specialite=` (its own questions)."""
    async with request.app[DB].read() as session:
        specialties = await facilities.list_specialties(session)  # none retired
        wanted = request.query.get("specialite", "")
        chosen = next((s for s in specialties if s.code == wanted), None)
        if chosen is None and specialties:
            chosen = specialties[0]
        asked = (
            await form_versions.current(session, chosen.id, ActType.TELEEXPERTISE)
            if chosen
            else None
        )
    residents = await resident_choice.choices(request)
    context = page_context(
        request,
        specialties=specialties,
        chosen=chosen,
        request_form=asked,
        residents=residents,
        selected="",
    )
    return render(request, "expertise_new.html", context)


@roles(*CARERS)
async def show(request: web.Request, error: str | None = None, **extra: Any) -> web.Response:
    ctx, request_id = request_context(request), path_id(request, "request_id")
    user, now = ctx.caller, ctx.now
    thread = await request.app[DB].run_write(lambda s: expertise.thread(s, ctx, request_id))
    r = thread.request
    report = None
    if r.status is ExpertiseStatus.ANSWERED:  # the answer is the signed report
        report = await request.app[DB].run_write(
            lambda s: reports.find_for_request(s, ctx, request_id)
        )
    async with request.app[DB].read() as session:  # access checked by expertise.thread
        agreed = await consent.latest(session, expertise_request_id=request_id)
        refs = await patient_refs(session, [r])
    mine = r.assigned_to_id == user.id
    actions = {
        "take": user.role is Role.SPECIALIST and r.status is ExpertiseStatus.SENT,
        "answer": user.role is Role.SPECIALIST and mine and r.status is ExpertiseStatus.TAKEN,
        "decline": user.role is Role.SPECIALIST
        and r.status in (ExpertiseStatus.SENT, ExpertiseStatus.TAKEN)
        and (mine or r.assigned_to_id is None),
        "reply": user.role is Role.STAFF and r.status is ExpertiseStatus.NEEDS_INFORMATION,
        "send": user.role is Role.STAFF and r.status is ExpertiseStatus.DRAFT,
    }
    return render(
        request,
        "expertise_thread.html",
        page_context(
            request,
            thread=thread,
            labels=expertise.LABELS,
            actions=actions,
            late=expertise.is_overdue(thread.request, now),
            patient_ref=refs.get(r.patient_id, ""),
            report=report,
            error=error,
            **{
                "consent": agreed,
                "consent_form": user.role is Role.STAFF
                and r.status in (ExpertiseStatus.DRAFT, *expertise.OPEN),
                "consent_values": {},
                "consent_errors": {},
            }
            | extra,
        ),
        status=422 if error else 200,
    )


def _form_step(
    action: Callable[..., Awaitable[Any]], text: type[Body] | None = None, *, extra: bool = False
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A thread's form: its « body » field read as the step's `text` model, if it takes one."""

    async def handler(request: web.Request) -> web.StreamResponse:
        request_id = path_id(request, "request_id")
        form = await forms.read(request)
        try:
            if text:  # the answer's form carries the report's sections too
                given = {"body": form.get("body", "")} | {
                    name: form[name] for name in text.model_fields if name in form
                }
                args: tuple[Any, ...] = (parse(text, given, strict=False),)
            else:
                args = ()
            await run_step(request, request_id, action, *args, extra=extra)
        except TelmiError as exc:
            if exc.status in (403, 404):
                raise
            return await show(request, error=exc.message)
        raise web.HTTPSeeOther(
            request.app.router["expertise_thread"].url_for(request_id=str(request_id))
        )

    return handler


take = roles(Role.SPECIALIST)(_form_step(expertise.take))
ask = roles(Role.SPECIALIST)(_form_step(expertise.ask, ExpertiseNote))
answer = roles(Role.SPECIALIST)(_form_step(expertise.answer, ExpertiseAnswer, extra=True))
decline = roles(Role.SPECIALIST)(_form_step(expertise.decline, ExpertiseDecline))
reply = roles(Role.STAFF)(_form_step(expertise.reply, ExpertiseNote))
send = roles(Role.STAFF)(_form_step(expertise.send))


@roles(Role.STAFF)
async def record_consent(request: web.Request) -> web.StreamResponse:
    """The resident's answer (consent or refusal) to the request, before it is sent or while
    it waits."""
    ctx, request_id = request_context(request), path_id(request, "request_id")
    form = await forms.read(request)
    try:
        body = resident_forms.consent_body(form, request.app[SETTINGS].tz)
        given = parse(ConsentInput, body, strict=False)
        await request.app[DB].run_write(
            lambda s: expertise.record_consent(s, ctx, request_id, given)
        )
    except FORM_ERRORS as exc:
        return await show(
            request,
            error=resident_forms.message(exc),
            consent_values=resident_forms.consent_values(form),
            consent_errors=resident_forms.field_errors(exc),
        )
    url = request.app.router["expertise_thread"].url_for(request_id=str(request_id))
    raise web.HTTPSeeOther(url.with_fragment("consentement"))
