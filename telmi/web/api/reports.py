"""JSON: a booking's (or a tele-expertise's) report: read, draft, sign, addenda, the PDF.

Reads are open to any signed-in caller and answer 404 unless the report is theirs to see
(the facility's staff, its specialist), so a regional or another facility's account learns
nothing from an id; writes are the specialist's.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import Field
from sqlalchemy.ext.asyncio import AsyncSession

from telmi import report_pdf, reports
from telmi.keys import DB, SETTINGS
from telmi.models import ReportStatus, Role
from telmi.reports import ActRecord, AddendumInput, ReportInput, SignedReportInput
from telmi.web.access import authenticated, request_context, roles
from telmi.web.api.spec import Out, endpoint

PDF = {"application/pdf": {"schema": {"type": "string", "format": "binary"}}}


class Person(Out):
    id: int
    name: str


class AddendumOut(Out):
    id: int
    author: Person
    body: str
    signed_at: datetime
    sha256: str = Field(description="SHA-256 of the addendum, attached to the act")


class ReportOut(Out):
    """The report (a draft is shown to its author only)"""

    id: int
    booking_id: int | None
    expertise_request_id: int | None
    status: ReportStatus
    reason: str
    findings: str
    conclusion: str
    recommendations: str
    prescriptions: str
    follow_up_needed: bool
    follow_up_when: str
    author: Person
    created_at: datetime
    updated_at: datetime
    signed_at: datetime | None
    sha256: str | None = Field(description="SHA-256 of what was signed, attached to the act")
    addenda: list[AddendumOut]


def pdf_response(record: ActRecord, data: bytes) -> web.Response:
    """The PDF as a download named by the report's number, never by the resident."""
    return web.Response(
        body=data,
        content_type="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="{record.pdf_name}"',
            "Cache-Control": "no-store",
        },
    )


async def render_pdf(request: web.Request, record: ActRecord) -> web.Response:
    """Drawn outside the transaction and the event loop: the document holds plain values."""
    doc = reports.document(record)
    data = await asyncio.to_thread(report_pdf.render, doc, tz=request.app[SETTINGS].tz)
    return pdf_response(record, data)


STATE = "Not during or after the call, already signed, or no consent recorded"


@authenticated
@endpoint(
    "The booking's report: its facility's staff and its specialist (audited)",
    "getBookingReport",
    response=ReportOut,
)
async def get_report(request: web.Request, booking_id: int) -> dict[str, Any]:
    ctx = request_context(request)
    found = await request.app[DB].run_write(lambda s: reports.get_for_booking(s, ctx, booking_id))
    return found.as_json()


@roles(Role.SPECIALIST)
@endpoint(
    "Save the report's draft (the slot's specialist, during or after the call)",
    "saveReportDraft",
    body=ReportInput,
    response=ReportOut,
    errors={409: STATE},
)
async def save_draft(request: web.Request, booking_id: int, body: ReportInput) -> dict[str, Any]:
    ctx = request_context(request)
    saved = await request.app[DB].run_write(lambda s: reports.save_draft(s, ctx, booking_id, body))
    return saved.as_json()


@roles(Role.SPECIALIST)
@endpoint(
    "Sign the report with this content: it is locked, its SHA-256 joins the act, the "
    "facility is notified",
    "signReport",
    body=SignedReportInput,
    response=ReportOut,
    errors={409: STATE},
)
async def sign(request: web.Request, booking_id: int, body: SignedReportInput) -> dict[str, Any]:
    ctx, public_url = request_context(request), request.app[SETTINGS].public_url
    signed = await request.app[DB].run_write(
        lambda s: reports.sign(s, ctx, booking_id, body, public_url=public_url)
    )
    return signed.as_json()


@roles(Role.SPECIALIST)
@endpoint(
    "Add a signed addendum to the signed report (its author)",
    "addReportAddendum",
    body=AddendumInput,
    response=ReportOut,
    status=201,
    errors={409: "The report is not signed yet"},
)
async def add_addendum(
    request: web.Request, booking_id: int, body: AddendumInput
) -> dict[str, Any]:
    ctx, public_url = request_context(request), request.app[SETTINGS].public_url
    result = await request.app[DB].run_write(
        lambda s: reports.add_addendum(s, ctx, body, booking_id=booking_id, public_url=public_url)
    )
    return result.as_json()


async def _booking_record(request: web.Request, booking_id: int) -> ActRecord:
    ctx, vault = request_context(request), request.app[SETTINGS].vault

    async def work(session: AsyncSession) -> ActRecord:
        return await reports.record_for_booking(
            session, ctx, booking_id, vault=vault, action="report.pdf"
        )

    return await request.app[DB].run_write(work)


async def _request_record(request: web.Request, request_id: int) -> ActRecord:
    ctx, vault = request_context(request), request.app[SETTINGS].vault

    async def work(session: AsyncSession) -> ActRecord:
        return await reports.record_for_request(
            session, ctx, request_id, vault=vault, action="report.pdf"
        )

    return await request.app[DB].run_write(work)


async def booking_pdf(request: web.Request, booking_id: int) -> web.Response:
    return await render_pdf(request, await _booking_record(request, booking_id))


async def request_pdf(request: web.Request, request_id: int) -> web.Response:
    return await render_pdf(request, await _request_record(request, request_id))


@authenticated
@endpoint(
    "The signed report as a PDF (A4, French): staff of the facility and the specialist "
    "(no-store, audited)",
    "bookingReportPdf",
    response_content=PDF,
    errors={409: "The act type has no PDF report, or no consent is recorded"},
)
async def pdf(request: web.Request, booking_id: int) -> web.Response:
    return await booking_pdf(request, booking_id)


@authenticated
@endpoint(
    "The tele-expertise's report (its answer): the facility's staff and its author (audited)",
    "getExpertiseReport",
    response=ReportOut,
)
async def get_expertise_report(request: web.Request, request_id: int) -> dict[str, Any]:
    ctx = request_context(request)
    found = await request.app[DB].run_write(lambda s: reports.get_for_request(s, ctx, request_id))
    return found.as_json()


@authenticated
@endpoint(
    "The tele-expertise's signed report as a PDF (no-store, audited)",
    "expertiseReportPdf",
    response_content=PDF,
    errors={409: "No consent is recorded"},
)
async def expertise_pdf(request: web.Request, request_id: int) -> web.Response:
    return await request_pdf(request, request_id)


@roles(Role.SPECIALIST)
@endpoint(
    "Add a signed addendum to the tele-expertise's report (its author)",
    "addExpertiseReportAddendum",
    body=AddendumInput,
    response=ReportOut,
    status=201,
)
async def add_expertise_addendum(
    request: web.Request, request_id: int, body: AddendumInput
) -> dict[str, Any]:
    ctx, public_url = request_context(request), request.app[SETTINGS].public_url
    result = await request.app[DB].run_write(
        lambda s: reports.add_addendum(s, ctx, body, request_id=request_id, public_url=public_url)
    )
    return result.as_json()
