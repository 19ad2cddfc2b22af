"""JSON: who am I, the facilities I may see, the specialties."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from telmi import facilities
from telmi.keys import DB
from telmi.models import Facility, Specialty, User
from telmi.web.access import authenticated, current_user
from telmi.web.api import spec


def facility_json(facility: Facility) -> dict[str, Any]:
    return {
        "id": facility.id,
        "finess": facility.finess,
        "name": facility.name,
        "category": facility.category.value,
        "finess_category_code": facility.finess_category_code,
        "departement": facility.departement_code,
        "commune": facility.commune,
        "postcode": facility.postcode,
    }


def specialty_json(specialty: Specialty) -> dict[str, Any]:
    return {"id": specialty.id, "code": specialty.code, "name": specialty.name}


def user_json(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "full_name": user.full_name,
        "role": user.role.value,
        "facility_id": user.facility_id,
        "specialty_id": user.specialty_id,
        "rpps": user.rpps,
    }


@authenticated
async def me(request: web.Request) -> web.Response:
    return web.json_response(user_json(current_user(request)))


@authenticated
async def list_facilities(request: web.Request) -> web.Response:
    async with request.app[DB].read() as session:
        found = await facilities.list_facilities(
            session,
            current_user(request),
            departement=request.query.get("departement"),
            category=request.query.get("category"),
        )
    return web.json_response({"items": [facility_json(f) for f in found]})


@authenticated
async def list_specialties(request: web.Request) -> web.Response:
    async with request.app[DB].read() as session:
        found = await facilities.list_specialties(session)
    return web.json_response({"items": [specialty_json(s) for s in found]})


CATEGORY = {"enum": ["health_centre", "nursing_home", "disability_facility", "hospital"]}

OPENAPI_SCHEMAS: dict[str, Any] = {
    "User": {
        "type": "object",
        "required": ["id", "email", "full_name", "role"],
        "properties": {
            "id": {"type": "integer"},
            "email": {"type": "string", "format": "email"},
            "full_name": {"type": "string"},
            "role": {"enum": ["staff", "specialist", "regional", "admin"]},
            "facility_id": {"type": ["integer", "null"]},
            "specialty_id": {"type": ["integer", "null"]},
            "rpps": {"type": ["string", "null"], "pattern": "^[0-9]{11}$"},
        },
    },
    "Facility": {
        "type": "object",
        "required": ["id", "finess", "name", "category", "departement", "commune"],
        "properties": {
            "id": {"type": "integer"},
            "finess": {"type": "string", "pattern": "^[0-9]{2}[0-9AB][0-9]{6}$"},
            "name": {"type": "string"},
            "category": CATEGORY,
            "finess_category_code": {"type": "string"},
            "departement": {"type": "string"},
            "commune": {"type": "string"},
            "postcode": {"type": "string"},
        },
    },
    "Specialty": {
        "type": "object",
        "required": ["id", "code", "name"],
        "properties": {
            "id": {"type": "integer"},
            "code": {"type": "string"},
            "name": {"type": "string"},
        },
    },
}

OPENAPI_PATHS: dict[str, Any] = {
    "/api/me": {
        "get": spec.fragment(
            "The signed-in user", "me", {"200": spec.ok("The user", spec.ref("User"))}
        )
    },
    "/api/facilities": {
        "get": spec.fragment(
            "Facilities visible to the caller (staff: their own only)",
            "listFacilities",
            {
                "200": spec.ok("Facilities", spec.items("Facility")),
                "422": spec.error("Unknown category"),
            },
            params=[
                spec.query("departement", {"type": "string"}),
                spec.query("category", CATEGORY),
            ],
        )
    },
    "/api/specialties": {
        "get": spec.fragment(
            "Medical specialties offered on the platform",
            "listSpecialties",
            {"200": spec.ok("Specialties", spec.items("Specialty"))},
        )
    },
}
