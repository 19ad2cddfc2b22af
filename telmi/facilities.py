"""The directory: facilities, départements and specialties, scoped to who is asking."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from telmi.errors import ValidationError
from telmi.models import Departement, Facility, FacilityCategory, Role, Specialty, User


async def list_facilities(
    session: AsyncSession,
    viewer: User,
    *,
    departement: str | None = None,
    category: str | None = None,
) -> list[Facility]:
    """Facility staff see their own facility only; other roles see the regional directory."""
    query = select(Facility).where(Facility.is_active.is_(True)).order_by(Facility.name)
    if viewer.role is Role.STAFF:
        query = query.where(Facility.id == viewer.facility_id)
    if departement is not None:
        query = query.where(Facility.departement_code == departement)
    if category is not None:
        try:
            query = query.where(Facility.category == FacilityCategory(category))
        except ValueError:
            allowed = ", ".join(c.value for c in FacilityCategory)
            raise ValidationError(
                f"Catégorie inconnue (attendu : {allowed}).", field="category"
            ) from None
    return list(await session.scalars(query))


async def list_specialties(session: AsyncSession) -> list[Specialty]:
    return list(await session.scalars(select(Specialty).order_by(Specialty.name)))


async def list_departements(session: AsyncSession) -> list[Departement]:
    return list(await session.scalars(select(Departement).order_by(Departement.code)))
