"""JSON: declare an act done outside the platform, read the log, cancel an act by an entry."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from telmi import act_intake, acts, audit
from telmi.availability import parse_date
from telmi.errors import ValidationError
from telmi.keys import DB, SETTINGS
from telmi.models import Act, Role
from telmi.web.access import current_user, request_context, roles
from telmi.web.api import spec
from telmi.web.http import path_id, read_json

WRITERS = (Role.SPECIALIST, Role.ADMIN)


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
async def create_act(request: web.Request) -> web.Response:
    user, body = current_user(request), await read_json(request)
    settings, now = request.app[SETTINGS], request_context(request).now

    async def work(session: AsyncSession) -> dict[str, Any]:
        act = await act_intake.record_external(
            session, user, body, now=now, tz=settings.tz, secret=settings.secret_key
        )
        await audit.record(
            session,
            "act.declared",
            actor=user,
            address=request_context(request).address,
            target_type="act",
            target_id=act.id,
            at=now,
        )
        return act_json(act)

    return web.json_response(await request.app[DB].run_write(work), status=201)


@roles(*WRITERS)
async def cancel_act(request: web.Request) -> web.Response:
    user, act_id, body = current_user(request), path_id(request, "act_id"), await read_json(request)
    now = request_context(request).now

    async def work(session: AsyncSession) -> dict[str, Any]:
        entry = await acts.cancel(session, act_id, reason=body.get("reason", ""), by=user, now=now)
        await audit.record(
            session,
            "act.cancelled",
            actor=user,
            address=request_context(request).address,
            target_type="act",
            target_id=act_id,
            at=now,
        )
        return act_json(entry)

    return web.json_response(await request.app[DB].run_write(work), status=201)


@roles(*WRITERS)
async def list_acts(request: web.Request) -> web.Response:
    user, q = current_user(request), request.query
    start = parse_date(q["from"], "from") if q.get("from") else None
    last = parse_date(q["to"], "to") if q.get("to") else None
    raw_after, raw_limit = q.get("after", "0"), q.get("limit", "100")
    if not raw_after.isdigit():
        raise ValidationError("« after » : identifiant d'acte.", field="after")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 1000:
        raise ValidationError("« limit » : entre 1 et 1000.", field="limit")
    own = user.id if user.role is Role.SPECIALIST else None
    async with request.app[DB].read() as session:
        found = await acts.page(
            session,
            start=start,
            end=None if last is None else last + timedelta(days=1),
            after_id=int(raw_after),
            limit=int(raw_limit),
            specialist_id=own,
        )
    items = [act_json(a) for a in found]
    next_after = found[-1].id if len(found) == int(raw_limit) else None
    return web.json_response({"items": items, "next_after": next_after})


ACT_BODY = {
    "type": "object",
    "required": [
        "act_type",
        "occurred_at",
        "facility_finess",
        "requester_role",
        "requester_rpps",
        "patient_consent",
        "source_key",
    ],
    "properties": {
        "act_type": {"type": "string", "enum": [t.value for t in acts.ActType]},
        "occurred_at": {"type": "string", "format": "date-time"},
        "duration_minutes": {"type": "number", "minimum": 0, "maximum": 1440},
        "facility_finess": {"type": "string", "minLength": 9, "maxLength": 9},
        "requester_role": {"type": "string", "enum": list(acts.REQUESTER_ROLES)},
        "requester_rpps": {"type": "string", "pattern": "^[0-9]{11}$"},
        "specialist_rpps": {
            "type": "string",
            "description": "required from an admin; a specialist declares their own acts",
        },
        "specialty": {"type": "string", "description": "default: the specialist's specialty"},
        "patient_ref": {
            "type": "string",
            "maxLength": 64,
            "description": "the facility's reference; hashed, never stored",
        },
        "patient_ins": {"type": "string", "description": "INS with its key; hashed, never stored"},
        "patient_consent": {"type": "boolean"},
        "incidents": {"type": "string", "maxLength": 500},
        "source_key": {
            "type": "string",
            "maxLength": 111,
            "description": "the act's id in the declaring system: one act per key",
        },
    },
}

OPENAPI_SCHEMAS: dict[str, Any] = {
    "Act": {
        "type": "object",
        "required": ["id", "act_type", "occurred_at", "sign", "hash"],
        "properties": {
            "id": {"type": "integer"},
            "act_type": {"type": "string"},
            "occurred_at": {"type": "string", "format": "date-time"},
            "duration_seconds": {"type": "integer"},
            "sign": {"type": "integer", "enum": [1, -1]},
            "cancels_act_id": {"type": ["integer", "null"]},
            "facility_finess": {"type": "string"},
            "facility_category": {"type": "string"},
            "facility_category_code": {"type": "string"},
            "departement": {"type": "string"},
            "region": {"type": "string"},
            "requester_role": {"type": "string"},
            "requester_rpps": {"type": ["string", "null"]},
            "specialist_rpps": {"type": ["string", "null"]},
            "specialty": {"type": "string"},
            "source_key": {"type": "string"},
            "patient_consent": {"type": "boolean"},
            "incidents": {"type": "string"},
            "note": {"type": "string"},
            "recorded_at": {"type": "string", "format": "date-time"},
            "hash": {"type": "string"},
        },
    }
}

OPENAPI_PATHS: dict[str, Any] = {
    "/api/acts": {
        "get": spec.fragment(
            "Acts in log order (admin: all; specialist: their own)",
            "listActs",
            {
                "200": spec.ok("Acts", spec.items("Act", next_after={"type": ["integer", "null"]})),
                "403": spec.FORBIDDEN,
                "422": spec.error("Invalid date or paging parameter"),
            },
            params=[
                spec.query("from", {"type": "string", "format": "date"}),
                spec.query("to", {"type": "string", "format": "date"}, "inclusive"),
                spec.query("after", {"type": "integer"}, "the last id of the previous page"),
                spec.query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
            ],
        ),
        "post": spec.fragment(
            "Declare an act done outside the platform (specialist or admin)",
            "createAct",
            {
                "201": spec.ok("The act as logged", spec.ref("Act")),
                "403": spec.FORBIDDEN,
                "409": spec.error("An act already exists for this source_key"),
                "422": spec.error("Invalid field, unknown facility, specialist or specialty"),
            },
            body=ACT_BODY,
            unsafe=True,
        ),
    },
    "/api/acts/{act_id}/cancel": {
        "post": spec.fragment(
            "Cancel an act by appending a cancelling entry (the act's specialist or an admin)",
            "cancelAct",
            {
                "201": spec.ok("The cancelling entry", spec.ref("Act")),
                "404": spec.error("No such act for the caller"),
                "409": spec.error("Already cancelled"),
                "422": spec.error("Missing reason"),
            },
            params=[spec.path("act_id")],
            body={
                "type": "object",
                "required": ["reason"],
                "properties": {"reason": {"type": "string", "maxLength": 500}},
            },
            unsafe=True,
        ),
    },
}
