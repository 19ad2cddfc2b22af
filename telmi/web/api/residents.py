"""JSON: a facility's residents (identity opened only for who may see it, every read an
access event naming the resident) and the resident's consent to a booking or a request."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from aiohttp import web
from pydantic import Field

from telmi import consent, expertise, patients
from telmi.consent import ConsentInput, ConsentView
from telmi.keys import DB, SETTINGS
from telmi.models import (
    ConsentDecision,
    ConsentGiver,
    ConsentMethod,
    IdentityDocument,
    IdentityStatus,
    Role,
)
from telmi.paging import PageQuery
from telmi.patients import ResidentInput
from telmi.values import text
from telmi.web.access import request_context, roles
from telmi.web.api.spec import Out, endpoint
from telmi.web.listing import scope
from telmi.web.paging import after, next_cursor

CARERS = (Role.STAFF, Role.SPECIALIST)
TAKEN = (
    "patient_reference_taken / patient_ins_taken: another resident of the facility has "
    "this reference or this INS"
)


class ResidentSearch(PageQuery):
    """The search, `limit` and `cursor` (a cursor is valid only with the search it came with)"""

    q: text(100) = Field("", description="part of a name or of the reference")  # type: ignore[valid-type]


class InsOut(Out):
    value: str
    oid: str = Field(description="1.2.250.1.213.1.4.8 for a NIR, .9 for a NIA")


class ResidentOut(Out):
    """A resident, identity opened"""

    id: int
    facility_id: int
    reference: str = Field(description="the facility's own reference")
    birth_name: str
    first_names: str
    used_name: str
    sex: Literal["F", "M", "I"] | None
    birth_date: date | None
    birthplace: str = Field(description="INSEE code of the birthplace")
    ins: InsOut | None
    identity_status: IdentityStatus
    identity_document: IdentityDocument
    doctor_name: str
    doctor_rpps: str | None
    doctor_mail: str
    created_at: datetime
    updated_at: datetime


class Residents(Out):
    """A page of the facility's residents, in the order they were recorded"""

    items: list[ResidentOut]
    next_cursor: str | None = Field(description="`cursor` of the next page; null on the last")


class Recorder(Out):
    id: int
    name: str


class ConsentOut(Out):
    """A consent or a refusal, as recorded"""

    id: int
    given_by: ConsentGiver
    method: ConsentMethod
    decision: ConsentDecision
    given_at: datetime
    recorded_by: Recorder
    recorded_at: datetime
    note: str


class ActConsent(Out):
    """The act's consent as it stands: its latest record, or null when none was recorded"""

    consent: ConsentOut | None


def _vault_tz(request: web.Request) -> dict[str, Any]:
    settings = request.app[SETTINGS]
    return {"vault": settings.vault, "tz": settings.tz}


@roles(Role.STAFF)
@endpoint(
    "The caller's facility's residents, a page at a time in the order they were recorded; "
    "q searches names and references (one access event per page)",
    "listResidents",
    query=ResidentSearch,
    response=Residents,
)
async def list_residents(request: web.Request, query: ResidentSearch) -> dict[str, Any]:
    ctx, vault = request_context(request), request.app[SETTINGS].vault
    bound = scope(ctx.caller.facility_id, query.q.strip().casefold())
    key = after(request, patients.RESIDENTS, query.cursor, bound)
    page = await request.app[DB].run_write(
        lambda s: patients.residents_page(
            s, ctx, vault=vault, search=query.q, after=key, limit=query.limit
        )
    )
    return {
        "items": [r.as_json() for r in page.items],
        "next_cursor": next_cursor(request, patients.RESIDENTS, page, bound),
    }


@roles(Role.STAFF)
@endpoint(
    "Create a resident of the caller's facility",
    "createResident",
    body=ResidentInput,
    response=ResidentOut,
    status=201,
    errors={409: TAKEN},
)
async def create_resident(request: web.Request, body: ResidentInput) -> dict[str, Any]:
    ctx, keys = request_context(request), _vault_tz(request)
    created = await request.app[DB].run_write(lambda s: patients.create(s, ctx, body, **keys))
    return created.as_json()


@roles(*CARERS)
@endpoint(
    "One resident (audited): the facility's staff, or a specialist of the resident's own "
    "bookings and requests",
    "getResident",
    response=ResidentOut,
)
async def get_resident(request: web.Request, patient_id: int) -> dict[str, Any]:
    ctx, vault = request_context(request), request.app[SETTINGS].vault
    found = await request.app[DB].run_write(lambda s: patients.get(s, ctx, patient_id, vault=vault))
    return found.as_json()


@roles(Role.STAFF)
@endpoint(
    "Replace a resident's record (the facility's staff)",
    "updateResident",
    body=ResidentInput,
    response=ResidentOut,
    errors={409: TAKEN},
)
async def update_resident(
    request: web.Request, patient_id: int, body: ResidentInput
) -> dict[str, Any]:
    ctx, keys = request_context(request), _vault_tz(request)
    updated = await request.app[DB].run_write(
        lambda s: patients.update_resident(s, ctx, patient_id, body, **keys)
    )
    return updated.as_json()


@roles(*CARERS)
@endpoint(
    "Record the resident's consent (or refusal) to a booking: its facility's staff, or the "
    "slot's specialist at the start of the call; a later record supersedes an earlier one",
    "recordBookingConsent",
    body=ConsentInput,
    response=ConsentOut,
    status=201,
    errors={409: "booking_not_confirmed: the booking is not (or no longer) confirmed"},
)
async def record_booking_consent(
    request: web.Request, booking_id: int, body: ConsentInput
) -> dict[str, Any]:
    ctx = request_context(request)
    recorded: ConsentView = await request.app[DB].run_write(
        lambda s: consent.for_booking(s, ctx, booking_id, body)
    )
    return recorded.as_json()


@roles(*CARERS)
@endpoint("The booking's consent as it stands (audited)", "getBookingConsent", response=ActConsent)
async def booking_consent(request: web.Request, booking_id: int) -> dict[str, Any]:
    ctx = request_context(request)
    found = await request.app[DB].run_write(lambda s: consent.of_booking(s, ctx, booking_id))
    return {"consent": found.as_json() if found else None}


@roles(Role.STAFF)
@endpoint(
    "Record the resident's consent (or refusal) to a tele-expertise request (its facility)",
    "recordExpertiseConsent",
    body=ConsentInput,
    response=ConsentOut,
    status=201,
    errors={409: "expertise_state: the request is closed"},
)
async def record_expertise_consent(
    request: web.Request, request_id: int, body: ConsentInput
) -> dict[str, Any]:
    ctx = request_context(request)
    recorded = await request.app[DB].run_write(
        lambda s: expertise.record_consent(s, ctx, request_id, body)
    )
    return recorded.as_json()
