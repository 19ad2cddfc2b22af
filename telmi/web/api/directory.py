"""JSON: who am I, the facilities I may see, the specialties."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import Field

from telmi import facilities
from telmi.facilities import FacilityFilter
from telmi.keys import DB
from telmi.models import Facility, FacilityCategory, Role, Specialty, User
from telmi.paging import PageQuery
from telmi.web.access import authenticated, request_context
from telmi.web.api.spec import Out, endpoint
from telmi.web.listing import scope
from telmi.web.paging import after, next_cursor


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
    """A page of facilities, by name"""

    items: list[FacilityOut]
    next_cursor: str | None = Field(description="`cursor` of the next page; null on the last")


class FacilityPageQuery(FacilityFilter, PageQuery):
    """The filters, `limit` and `cursor` (a cursor is valid only with the filters it came with)"""


class SpecialtyOut(Out):
    id: int
    code: str
    name: str


class Specialties(Out):
    """A page of specialties, by name"""

    items: list[SpecialtyOut]
    next_cursor: str | None = Field(description="`cursor` of the next page; null on the last")


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
    "Facilities visible to the caller (staff: their own only), a page at a time",
    "listFacilities",
    query=FacilityPageQuery,
    response=Facilities,
)
async def list_facilities(request: web.Request, query: FacilityPageQuery) -> dict[str, Any]:
    viewer = request_context(request).caller
    bound = scope(viewer.facility_id if viewer.role is Role.STAFF else "", query.departement,
                  query.category)  # fmt: skip
    key = after(request, facilities.FACILITIES, query.cursor, bound)
    async with request.app[DB].read() as session:
        page = await facilities.facility_page(session, viewer, query, after=key, limit=query.limit)
    return {
        "items": [facility_json(f) for f in page.items],
        "next_cursor": next_cursor(request, facilities.FACILITIES, page, bound),
    }


@authenticated
@endpoint(
    "Medical specialties offered on the platform, a page at a time",
    "listSpecialties",
    query=PageQuery,
    response=Specialties,
)
async def list_specialties(request: web.Request, query: PageQuery) -> dict[str, Any]:
    key = after(request, facilities.SPECIALTIES, query.cursor)
    async with request.app[DB].read() as session:
        page = await facilities.specialty_page(session, after=key, limit=query.limit)
    return {
        "items": [specialty_json(s) for s in page.items],
        "next_cursor": next_cursor(request, facilities.SPECIALTIES, page),
    }
