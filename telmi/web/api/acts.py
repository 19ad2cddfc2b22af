"""JSON: declare an act done outside the platform, read the log, cancel an act by an entry."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from aiohttp import web
from pydantic import Field
from sqlalchemy.ext.asyncio import AsyncSession

from telmi import act_intake, acts
from telmi.act_intake import ExternalAct
from telmi.acts import ActCancellation, ActLogQuery
from telmi.keys import DB, SETTINGS
from telmi.models import Act, ActType, FacilityCategory, Role
from telmi.web import paging
from telmi.web.access import request_context, roles
from telmi.web.api.spec import Out, endpoint

WRITERS = (Role.SPECIALIST, Role.ADMIN)


class ActOut(Out):
    """An act of the log (row level, for admins and the act's specialist; never the patient)"""

    id: int
    act_type: ActType
    occurred_at: datetime
    duration_seconds: int
    sign: Literal[1, -1] = Field(description="-1: the entry cancelling act cancels_act_id")
    cancels_act_id: int | None
    facility_finess: str
    facility_category: FacilityCategory
    facility_category_code: str
    departement: str
    region: str
    requester_role: str
    requester_rpps: str | None
    specialist_rpps: str | None
    specialty: str
    source_key: str
    patient_consent: bool
    incidents: str
    note: str
    recorded_at: datetime
    hash: str


class ActPage(Out):
    """A page of acts, newest first (by when they happened)"""

    items: list[ActOut]
    next_cursor: str | None = Field(description="`cursor` for the next page; null on the last")


def act_json(act: Act) -> dict[str, Any]:
    """Row-level act data, for admins and the act's specialist; never the patient key."""
    return {
        "id": act.id,
        "act_type": str(act.act_type),
        "occurred_at": act.occurred_at.isoformat(),
        "duration_seconds": act.duration_seconds,
        "sign": act.sign,
        "cancels_act_id": act.cancels_act_id,
        "facility_finess": act.facility_finess,
        "facility_category": str(act.facility_category),
        "facility_category_code": act.facility_category_code,
        "departement": act.departement_code,
        "region": act.region_code,
        "requester_role": act.requester_role,
        "requester_rpps": act.requester_rpps,
        "specialist_rpps": act.specialist_rpps,
        "specialty": act.specialty_code,
        "source_key": act.source_key,
        "patient_consent": act.patient_consent,
        "incidents": act.incidents,
        "note": act.note,
        "recorded_at": act.recorded_at.isoformat(),
        "hash": act.hash,
    }


@roles(*WRITERS)
@endpoint(
    "Declare an act done outside the platform (specialist or admin)",
    "createAct",
    body=ExternalAct,
    response=ActOut,
    status=201,
    errors={409: "An act already exists for this source_key"},
)
async def create_act(request: web.Request, body: ExternalAct) -> dict[str, Any]:
    ctx, settings = request_context(request), request.app[SETTINGS]

    async def work(session: AsyncSession) -> dict[str, Any]:
        act = await act_intake.record_external(
            session, ctx, body, tz=settings.tz, secret=settings.secret_key
        )
        return act_json(act)

    return await request.app[DB].run_write(work)


@roles(*WRITERS)
@endpoint(
    "Cancel an act by appending a cancelling entry (the act's specialist or an admin)",
    "cancelAct",
    body=ActCancellation,
    response=ActOut,
    status=201,
    errors={409: "Already cancelled, or itself a cancelling entry"},
)
async def cancel_act(request: web.Request, act_id: int, body: ActCancellation) -> dict[str, Any]:
    ctx = request_context(request)

    async def work(session: AsyncSession) -> dict[str, Any]:
        return act_json(await acts.cancel(session, ctx, act_id, body))

    return await request.app[DB].run_write(work)


@roles(*WRITERS)
@endpoint(
    "Acts newest first, a page at a time (admin: all; specialist: their own)",
    "listActs",
    query=ActLogQuery,
    response=ActPage,
)
async def list_acts(request: web.Request, query: ActLogQuery) -> dict[str, Any]:
    user = request_context(request).caller
    own = user.id if user.role is Role.SPECIALIST else None
    scope = query.scope(own)
    since, until = query.period(request.app[SETTINGS].tz)
    key = paging.after(request, acts.LOG, query.cursor, scope)
    async with request.app[DB].read() as session:
        found = await acts.page(
            session, since=since, until=until, after=key, limit=query.limit, specialist_id=own
        )
    return {
        "items": [act_json(a) for a in found.items],
        "next_cursor": paging.next_cursor(request, acts.LOG, found, scope),
    }
