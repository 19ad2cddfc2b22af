"""JSON: a specialist's weekly rules and exceptions (an admin's for any specialist)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from telmi import availability
from telmi.keys import DB
from telmi.models import ActType, AvailabilityException, AvailabilityRule, Role
from telmi.web.access import current_user, request_context, roles
from telmi.web.api import spec
from telmi.web.http import path_id, read_json, slot_timing

MANAGERS = (Role.SPECIALIST, Role.ADMIN)


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


@roles(*MANAGERS)
async def list_rules(request: web.Request) -> web.Response:
    user = current_user(request)
    async with request.app[DB].read() as session:
        specialist = await availability.specialist_for(
            session, user, request.query.get("specialist_id")
        )
        rules = await availability.list_rules(session, specialist)
    return web.json_response({"items": [rule_json(r) for r in rules]})


@roles(*MANAGERS)
async def create_rule(request: web.Request) -> web.Response:
    user, body = current_user(request), await read_json(request)

    async def work(session: Any) -> dict[str, Any]:
        specialist = await availability.specialist_for(session, user, body.get("specialist_id"))
        rule, report = await availability.create_rule(
            session, user, specialist, body, **slot_timing(request)
        )
        return {"rule": rule_json(rule), "slots": report.as_json()}

    return web.json_response(await request.app[DB].run_write(work), status=201)


@roles(*MANAGERS)
async def update_rule(request: web.Request) -> web.Response:
    user, body, rule_id = (
        current_user(request),
        await read_json(request),
        path_id(request, "rule_id"),
    )

    async def work(session: Any) -> dict[str, Any]:
        specialist = await availability.specialist_for(session, user, body.get("specialist_id"))
        rule, report = await availability.update_rule(
            session, user, specialist, rule_id, body, **slot_timing(request)
        )
        return {"rule": rule_json(rule), "slots": report.as_json()}

    return web.json_response(await request.app[DB].run_write(work))


@roles(*MANAGERS)
async def delete_rule(request: web.Request) -> web.Response:
    user, rule_id = current_user(request), path_id(request, "rule_id")

    async def work(session: Any) -> dict[str, Any]:
        specialist = await availability.specialist_for(
            session, user, request.query.get("specialist_id")
        )
        rule, report = await availability.delete_rule(
            session, user, specialist, rule_id, **slot_timing(request)
        )
        return {"rule": rule_json(rule), "slots": report.as_json()}

    return web.json_response(await request.app[DB].run_write(work))


@roles(*MANAGERS)
async def preview_rule(request: web.Request) -> web.Response:
    body = await read_json(request)
    periods = availability.preview(body, **slot_timing(request))
    return web.json_response(
        {
            "items": [
                {"starts_at": p.start.isoformat(), "ends_at": p.end.isoformat()} for p in periods
            ]
        }
    )


@roles(*MANAGERS)
async def list_exceptions(request: web.Request) -> web.Response:
    user = current_user(request)
    async with request.app[DB].read() as session:
        specialist = await availability.specialist_for(
            session, user, request.query.get("specialist_id")
        )
        rows = await availability.list_exceptions(
            session, specialist, now=request_context(request).now
        )
    return web.json_response({"items": [exception_json(r) for r in rows]})


@roles(*MANAGERS)
async def create_exception(request: web.Request) -> web.Response:
    user, body = current_user(request), await read_json(request)

    async def work(session: Any) -> dict[str, Any]:
        specialist = await availability.specialist_for(session, user, body.get("specialist_id"))
        row, report = await availability.create_exception(
            session, user, specialist, body, **slot_timing(request)
        )
        return {"exception": exception_json(row), "slots": report.as_json()}

    return web.json_response(await request.app[DB].run_write(work), status=201)


@roles(*MANAGERS)
async def delete_exception(request: web.Request) -> web.Response:
    user, exception_id = current_user(request), path_id(request, "exception_id")

    async def work(session: Any) -> dict[str, Any]:
        specialist = await availability.specialist_for(
            session, user, request.query.get("specialist_id")
        )
        report = await availability.delete_exception(
            session, user, specialist, exception_id, **slot_timing(request)
        )
        return {"slots": report.as_json()}

    return web.json_response(await request.app[DB].run_write(work))


ACT_TYPES = {"type": "array", "minItems": 1, "items": {"enum": [t.value for t in ActType]}}
HHMM = {"type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9]$"}
SPECIALIST_ID = spec.query("specialist_id", spec.ID_SCHEMA, "admins: whose availability")

OPENAPI_SCHEMAS: dict[str, Any] = {
    "RuleInput": {
        "type": "object",
        "required": ["weekday", "start", "end", "slot_minutes", "act_types"],
        "properties": {
            "specialist_id": {**spec.ID_SCHEMA, "description": "admins only"},
            "weekday": {"type": "integer", "minimum": 0, "maximum": 6, "description": "0 = Monday"},
            "start": HHMM,
            "end": HHMM,
            "slot_minutes": {"type": "integer", "minimum": 5, "maximum": 240},
            "buffer_minutes": {"type": "integer", "minimum": 0, "maximum": 120},
            "act_types": ACT_TYPES,
            "valid_from": {"type": "string", "format": "date"},
            "valid_until": {"type": ["string", "null"], "format": "date"},
            "open_on_public_holidays": {"type": "boolean"},
        },
    },
    "Rule": {
        "allOf": [
            {"$ref": "#/components/schemas/RuleInput"},
            {"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}},
        ]
    },
    "Exception": {
        "type": "object",
        "required": ["id", "starts_at", "ends_at", "reason"],
        "properties": {
            "id": {"type": "integer"},
            "specialist_id": {"type": "integer"},
            "starts_at": {"type": "string", "format": "date-time"},
            "ends_at": {"type": "string", "format": "date-time"},
            "reason": {"type": "string"},
        },
    },
    "SlotSync": {
        "type": "object",
        "description": "What changed in the slots; conflicts are booked slots the rules no longer want (kept)",
        "properties": {
            "created": {"type": "integer"},
            "reopened": {"type": "integer"},
            "withdrawn": {"type": "integer"},
            "conflicts": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "slot_id": {"type": "integer"},
                        "booking_id": {"type": "integer"},
                        "starts_at": {"type": "string", "format": "date-time"},
                    },
                },
            },
        },
    },
}


def _with_sync(name: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {name: spec.ref(name.capitalize()), "slots": spec.ref("SlotSync")},
    }


INVALID = spec.error("Invalid field (named in the message)")
OPENAPI_PATHS: dict[str, Any] = {
    "/api/availability/rules": {
        "get": spec.fragment(
            "Weekly availability rules",
            "listRules",
            {"200": spec.ok("Rules", spec.items("Rule"))},
            params=[SPECIALIST_ID],
        ),
        "post": spec.fragment(
            "Add a weekly rule; its slots exist when this returns",
            "createRule",
            {
                "201": spec.ok("The rule and the slots it made", _with_sync("rule")),
                "409": spec.error("Overlaps a rule"),
                "422": INVALID,
            },
            body=spec.ref("RuleInput"),
            unsafe=True,
        ),
    },
    "/api/availability/rules/{rule_id}": {
        "put": spec.fragment(
            "Change a rule; booked slots are never removed, they are reported as conflicts",
            "updateRule",
            {
                "200": spec.ok("The rule and the slot changes", _with_sync("rule")),
                "404": spec.error("No such rule"),
                "409": spec.error("Overlaps a rule"),
                "422": INVALID,
            },
            params=[spec.path("rule_id")],
            body=spec.ref("RuleInput"),
            unsafe=True,
        ),
        "delete": spec.fragment(
            "Delete a rule: its free future slots are withdrawn, booked ones reported",
            "deleteRule",
            {
                "200": spec.ok("The rule and the slot changes", _with_sync("rule")),
                "404": spec.error("No such rule"),
            },
            params=[spec.path("rule_id"), SPECIALIST_ID],
            unsafe=True,
        ),
    },
    "/api/availability/preview": {
        "post": spec.fragment(
            "The slots a rule would make over the horizon, without saving it",
            "previewRule",
            {
                "200": spec.ok(
                    "Slots",
                    {
                        "type": "object",
                        "properties": {
                            "items": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "properties": {
                                        "starts_at": {"type": "string", "format": "date-time"},
                                        "ends_at": {"type": "string", "format": "date-time"},
                                    },
                                },
                            }
                        },
                    },
                ),
                "422": INVALID,
            },
            body=spec.ref("RuleInput"),
            unsafe=True,
        )
    },
    "/api/availability/exceptions": {
        "get": spec.fragment(
            "Current and future absences",
            "listExceptions",
            {"200": spec.ok("Absences", spec.items("Exception"))},
            params=[SPECIALIST_ID],
        ),
        "post": spec.fragment(
            "Declare an absence: free slots in it close, booked ones are reported",
            "createException",
            {
                "201": spec.ok("The absence and the slot changes", _with_sync("exception")),
                "422": INVALID,
            },
            body={
                "type": "object",
                "required": ["starts_at", "ends_at"],
                "properties": {
                    "specialist_id": spec.ID_SCHEMA,
                    "starts_at": {
                        "type": "string",
                        "description": "ISO 8601; local time if no offset",
                    },
                    "ends_at": {"type": "string"},
                    "reason": {"type": "string", "maxLength": 200},
                },
            },
            unsafe=True,
        ),
    },
    "/api/availability/exceptions/{exception_id}": {
        "delete": spec.fragment(
            "Remove an absence: its slots reopen",
            "deleteException",
            {
                "200": spec.ok(
                    "Slot changes",
                    {"type": "object", "properties": {"slots": spec.ref("SlotSync")}},
                ),
                "404": spec.error("No such absence"),
            },
            params=[spec.path("exception_id"), SPECIALIST_ID],
            unsafe=True,
        )
    },
}
