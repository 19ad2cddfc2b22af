"""JSON: who am I, the facilities I may see, the specialties."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import Field

from telmi import facilities
from telmi.facilities import FacilityFilter
from telmi.keys import DB
from telmi.models import Facility, FacilityCategory, Role, Specialty, User
from telmi.web.access import authenticated, request_context
from telmi.web.api.spec import Out, endpoint


class Me(Out):
    """The signed-in user"""

    id: int
    email: str
    full_name: str
    role: Role
    facility_id: int | None
    specialty_id: int | None
    rpps: str | None = Field(description="RPPS, for health professionals")


class FacilityOut(Out):
    id: int
    finess: str
    name: str
    category: FacilityCategory
    finess_category_code: str
    departement: str
    commune: str
    postcode: str


class Facilities(Out):
    """Facilities, by name"""

    items: list[FacilityOut]


class SpecialtyOut(Out):
    id: int
    code: str
    name: str


class Specialties(Out):
    """Specialties, by name"""

    items: list[SpecialtyOut]


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
@endpoint("The signed-in user", "me", response=Me)
async def me(request: web.Request) -> dict[str, Any]:
    return user_json(request_context(request).caller)


@authenticated
@endpoint(
    "Facilities visible to the caller (staff: their own only)",
    "listFacilities",
    query=FacilityFilter,
    response=Facilities,
)
async def list_facilities(request: web.Request, query: FacilityFilter) -> dict[str, Any]:
    async with request.app[DB].read() as session:
        found = await facilities.list_facilities(session, request_context(request).caller, query)
    return {"items": [facility_json(f) for f in found]}


@authenticated
@endpoint("Medical specialties offered on the platform", "listSpecialties", response=Specialties)
async def list_specialties(request: web.Request) -> dict[str, Any]:
    async with request.app[DB].read() as session:
        found = await facilities.list_specialties(session)
    return {"items": [specialty_json(s) for s in found]}
