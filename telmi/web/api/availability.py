"""JSON: a specialist's weekly rules and exceptions (an admin's for any specialist)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import Field
from sqlalchemy.ext.asyncio import AsyncSession

from telmi import availability
from telmi.availability import AvailabilityQuery, ExceptionInput, RuleInput
from telmi.keys import DB, SETTINGS
from telmi.models import ActType, AvailabilityException, AvailabilityRule, Role
from telmi.values import LocalDate, LocalTime
from telmi.web.access import request_context, roles
from telmi.web.api.spec import Out, endpoint

MANAGERS = (Role.SPECIALIST, Role.ADMIN)


class RuleOut(Out):
    """A weekly rule"""

    id: int
    specialist_id: int
    weekday: int = Field(description="0 = Monday")
    start: LocalTime
    end: LocalTime
    slot_minutes: int
    buffer_minutes: int
    act_types: list[ActType]
    valid_from: LocalDate
    valid_until: LocalDate | None
    open_on_public_holidays: bool


class RuleList(Out):
    """Rules"""

    items: list[RuleOut]


class SlotSyncConflict(Out):
    slot_id: int
    booking_id: int
    starts_at: datetime


class SlotSync(Out):
    """What changed in the slots; conflicts are booked slots the rules no longer want (kept)"""

    created: int
    reopened: int
    withdrawn: int
    conflicts: list[SlotSyncConflict]


class RuleChange(Out):
    """The rule and the slot changes"""

    rule: RuleOut
    slots: SlotSync


class ExceptionOut(Out):
    """An absence"""

    id: int
    specialist_id: int
    starts_at: datetime
    ends_at: datetime
    reason: str


class ExceptionList(Out):
    """Absences"""

    items: list[ExceptionOut]


class ExceptionChange(Out):
    """The absence and the slot changes"""

    exception: ExceptionOut
    slots: SlotSync


class SlotChanges(Out):
    """Slot changes"""

    slots: SlotSync


class PreviewSlot(Out):
    starts_at: datetime
    ends_at: datetime


class PreviewSlots(Out):
    """Slots"""

    items: list[PreviewSlot]


def rule_json(rule: AvailabilityRule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "specialist_id": rule.specialist_id,
        "weekday": rule.weekday,
        "start": rule.start_time.strftime("%H:%M"),
        "end": rule.end_time.strftime("%H:%M"),
        "slot_minutes": rule.slot_minutes,
        "buffer_minutes": rule.buffer_minutes,
        "act_types": rule.act_types,
        "valid_from": rule.valid_from.isoformat(),
        "valid_until": rule.valid_until.isoformat() if rule.valid_until else None,
        "open_on_public_holidays": rule.open_on_public_holidays,
    }


def exception_json(row: AvailabilityException) -> dict[str, Any]:
    return {
        "id": row.id,
        "specialist_id": row.specialist_id,
        "starts_at": row.starts_at.isoformat(),
        "ends_at": row.ends_at.isoformat(),
        "reason": row.reason,
    }


def _horizon(request: web.Request) -> dict[str, Any]:
    """Where and how far ahead slots are placed."""
    settings = request.app[SETTINGS]
    return {"tz": settings.tz, "weeks": settings.slot_horizon_weeks}


NO_SPECIALIST = "No such specialist (admins name one)"
NO_RULE = "No such rule, or no such specialist"
OVERLAP = "rule_overlap: overlaps a rule"


@roles(*MANAGERS)
@endpoint(
    "Weekly availability rules",
    "listRules",
    query=AvailabilityQuery,
    response=RuleList,
    errors={404: NO_SPECIALIST},
)
async def list_rules(request: web.Request, query: AvailabilityQuery) -> dict[str, Any]:
    ctx = request_context(request)
    async with request.app[DB].read() as session:
        rules = await availability.list_rules(session, ctx, query)
    return {"items": [rule_json(r) for r in rules]}


@roles(*MANAGERS)
@endpoint(
    "Add a weekly rule; its slots exist when this returns",
    "createRule",
    body=RuleInput,
    response=RuleChange,
    status=201,
    errors={404: NO_SPECIALIST, 409: OVERLAP},
)
async def create_rule(request: web.Request, body: RuleInput) -> dict[str, Any]:
    ctx, horizon = request_context(request), _horizon(request)

    async def work(session: AsyncSession) -> dict[str, Any]:
        rule, report = await availability.create_rule(session, ctx, body, **horizon)
        return {"rule": rule_json(rule), "slots": report.as_json()}

    return await request.app[DB].run_write(work)


@roles(*MANAGERS)
@endpoint(
    "Change a rule; booked slots are never removed, they are reported as conflicts",
    "updateRule",
    body=RuleInput,
    response=RuleChange,
    errors={404: NO_RULE, 409: OVERLAP},
)
async def update_rule(request: web.Request, rule_id: int, body: RuleInput) -> dict[str, Any]:
    ctx, horizon = request_context(request), _horizon(request)

    async def work(session: AsyncSession) -> dict[str, Any]:
        rule, report = await availability.update_rule(session, ctx, rule_id, body, **horizon)
        return {"rule": rule_json(rule), "slots": report.as_json()}

    return await request.app[DB].run_write(work)


@roles(*MANAGERS)
@endpoint(
    "Delete a rule: its free future slots are withdrawn, booked ones reported",
    "deleteRule",
    query=AvailabilityQuery,
    response=RuleChange,
    errors={404: NO_RULE},
)
async def delete_rule(
    request: web.Request, rule_id: int, query: AvailabilityQuery
) -> dict[str, Any]:
    ctx, horizon = request_context(request), _horizon(request)

    async def work(session: AsyncSession) -> dict[str, Any]:
        rule, report = await availability.delete_rule(session, ctx, rule_id, query, **horizon)
        return {"rule": rule_json(rule), "slots": report.as_json()}

    return await request.app[DB].run_write(work)


@roles(*MANAGERS)
@endpoint(
    "The slots a rule would make over the horizon, without saving it",
    "previewRule",
    body=RuleInput,
    response=PreviewSlots,
)
async def preview_rule(request: web.Request, body: RuleInput) -> dict[str, Any]:
    periods = availability.preview(request_context(request), body, **_horizon(request))
    return {
        "items": [{"starts_at": p.start.isoformat(), "ends_at": p.end.isoformat()} for p in periods]
    }


@roles(*MANAGERS)
@endpoint(
    "Current and future absences",
    "listExceptions",
    query=AvailabilityQuery,
    response=ExceptionList,
    errors={404: NO_SPECIALIST},
)
async def list_exceptions(request: web.Request, query: AvailabilityQuery) -> dict[str, Any]:
    ctx = request_context(request)
    async with request.app[DB].read() as session:
        rows = await availability.list_exceptions(session, ctx, query)
    return {"items": [exception_json(r) for r in rows]}


@roles(*MANAGERS)
@endpoint(
    "Declare an absence: free slots in it close, booked ones are reported",
    "createException",
    body=ExceptionInput,
    response=ExceptionChange,
    status=201,
    errors={404: NO_SPECIALIST},
)
async def create_exception(request: web.Request, body: ExceptionInput) -> dict[str, Any]:
    ctx, horizon = request_context(request), _horizon(request)

    async def work(session: AsyncSession) -> dict[str, Any]:
        row, report = await availability.create_exception(session, ctx, body, **horizon)
        return {"exception": exception_json(row), "slots": report.as_json()}

    return await request.app[DB].run_write(work)


@roles(*MANAGERS)
@endpoint(
    "Remove an absence: its slots reopen",
    "deleteException",
    query=AvailabilityQuery,
    response=SlotChanges,
    errors={404: "No such absence, or no such specialist"},
)
async def delete_exception(
    request: web.Request, exception_id: int, query: AvailabilityQuery
) -> dict[str, Any]:
    ctx, horizon = request_context(request), _horizon(request)

    async def work(session: AsyncSession) -> dict[str, Any]:
        report = await availability.delete_exception(session, ctx, exception_id, query, **horizon)
        return {"slots": report.as_json()}

    return await request.app[DB].run_write(work)
