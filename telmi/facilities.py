"""The directory: facilities, départements and specialties, scoped to who is asking."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from telmi.models import Departement, Facility, FacilityCategory, Role, Specialty, User
from telmi.values import Query


class FacilityFilter(Query):
    departement: Annotated[str, Field(pattern=r"^(\d{2,3}|2[AB])$")] | None = Field(
        None, description="département code"
    )
    category: FacilityCategory | None = None


async def list_facilities(
    session: AsyncSession, viewer: User, wanted: FacilityFilter | None = None
) -> list[Facility]:
    """Facility staff see their own facility only; other roles see the regional directory."""
    query = select(Facility).where(Facility.is_active.is_(True)).order_by(Facility.name)
    if viewer.role is Role.STAFF:
        query = query.where(Facility.id == viewer.facility_id)
    if wanted is not None and wanted.departement is not None:
        query = query.where(Facility.departement_code == wanted.departement)
    if wanted is not None and wanted.category is not None:
        query = query.where(Facility.category == wanted.category)
    return list(await session.scalars(query))


async def list_specialties(session: AsyncSession) -> list[Specialty]:
    return list(await session.scalars(select(Specialty).order_by(Specialty.name)))


async def list_departements(session: AsyncSession) -> list[Departement]:
    return list(await session.scalars(select(Departement).order_by(Departement.code)))
