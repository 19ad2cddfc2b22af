"""The directory: facilities, départements and specialties, scoped to who is asking; and
their administration (create, edit, deactivate; specialties created, renamed, retired),
each change audited with the fields it changed, before and after."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError
from sqlalchemy import func, or_, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from telmi import audit
from telmi.context import Context
from telmi.db import is_unique_violation
from telmi.errors import Conflict, NotFound, ValidationError
from telmi.finess import finess_valid
from telmi.models import Departement, Facility, FacilityCategory, Role, Specialty, User
from telmi.paging import DEFAULT_LIMIT, Key, Keyset, Page
from telmi.values import Query, text

DEPARTEMENT_PATTERN = r"^(\d{2,3}|2[AB]|9[A-Z])$"


class FacilityFilter(Query):
    departement: Annotated[str, Field(pattern=r"^(\d{2,3}|2[AB])$")] | None = Field(
        None, description="département code"
    )
    category: FacilityCategory | None = None


# Pages by name, then id (names repeat): `ix_facilities_name_id`, `ix_specialties_name_id`.
FACILITIES = Keyset("facilities", (str, int))
ADMIN_FACILITIES = Keyset("admin_facilities", (str, int))
SPECIALTIES = Keyset("specialties", (str, int))


def _directory(viewer: User, wanted: FacilityFilter | None) -> Any:
    query = select(Facility).where(Facility.is_active.is_(True))
    if viewer.role is Role.STAFF:
        query = query.where(Facility.id == viewer.facility_id)
    if wanted is not None and wanted.departement is not None:
        query = query.where(Facility.departement_code == wanted.departement)
    if wanted is not None and wanted.category is not None:
        query = query.where(Facility.category == wanted.category)
    return query.order_by(Facility.name, Facility.id)


async def list_facilities(
    session: AsyncSession, viewer: User, wanted: FacilityFilter | None = None
) -> list[Facility]:
    """Facility staff see their own facility only; other roles see the regional directory.
    Whole, for the forms' choices; the API reads it a page at a time (`facility_page`)."""
    return list(await session.scalars(_directory(viewer, wanted)))


async def facility_page(
    session: AsyncSession,
    viewer: User,
    wanted: FacilityFilter | None = None,
    *,
    after: Key | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Page[Facility]:
    """The directory a page at a time, by name: `limit + 1` rows read in the index's order
    (a département or category filter skips, in that order, the facilities it leaves out)."""
    query = _directory(viewer, wanted)
    if after is not None:
        query = query.where(tuple_(Facility.name, Facility.id) > tuple_(*after))
    found = list(await session.scalars(query.limit(limit + 1)))
    return Page.of(found, limit, lambda f: (f.name, f.id))


def _specialties(include_retired: bool) -> Any:
    query = select(Specialty).order_by(Specialty.name, Specialty.id)
    if not include_retired:
        query = query.where(Specialty.retired_at.is_(None))
    return query


async def list_specialties(
    session: AsyncSession, *, include_retired: bool = False
) -> list[Specialty]:
    """The specialties offered; a retired one only when asked (the admin's list). Whole:
    the medical specialties are a short nomenclature, shown in forms' choices."""
    return list(await session.scalars(_specialties(include_retired)))


async def specialty_page(
    session: AsyncSession, *, after: Key | None = None, limit: int = DEFAULT_LIMIT
) -> Page[Specialty]:
    """The specialties offered, a page at a time, by name (the API's list)."""
    query = _specialties(False)
    if after is not None:
        query = query.where(tuple_(Specialty.name, Specialty.id) > tuple_(*after))
    found = list(await session.scalars(query.limit(limit + 1)))
    return Page.of(found, limit, lambda s: (s.name, s.id))


async def list_departements(session: AsyncSession) -> list[Departement]:
    return list(await session.scalars(select(Departement).order_by(Departement.code)))


# --- facilities admin -------------------------------------------------------------------------


def _finess_key(value: str) -> str:
    if not finess_valid(value):
        raise PydanticCustomError(
            "finess", "numéro FINESS invalide, la clé de contrôle ne correspond pas"
        )
    return value


# values.Finess, widened to the overseas départements FINESS writes 9A to 9J, with its key.
KeyedFiness = Annotated[
    str,
    Field(
        pattern=r"^([0-9]{2}|2[AB]|9[A-Z])[0-9]{7}$",
        description="FINESS: the département (2A/2B, 9A...) and 7 digits, the last a Luhn key",
    ),
    AfterValidator(_finess_key),
]


class FacilityInput(Query):
    """What an admin types for a facility; the fields the extract alone fills (SIRET,
    coordinates, legal entity) are kept as they are on an edit."""

    name: text(200, required=True)  # type: ignore[valid-type]
    finess: KeyedFiness
    category: FacilityCategory
    finess_category_code: Annotated[str, Field(pattern=r"^[0-9]{3,4}$")]
    departement: Annotated[str, Field(pattern=DEPARTEMENT_PATTERN)]
    address: text(300) = ""  # type: ignore[valid-type]
    commune: text(100, required=True)  # type: ignore[valid-type]
    postcode: Annotated[str, Field(pattern=r"^([0-9]{5})?$")] = ""
    phone: Annotated[str, Field(pattern=r"^[0-9+. ]{0,20}$")] = ""
    video_notes: text(2000) = ""  # type: ignore[valid-type]


# The input's fields as the facility's columns.
_COLUMNS = {"departement": "departement_code"}


def _columns(new: FacilityInput) -> dict[str, Any]:
    return {_COLUMNS.get(name, name): value for name, value in new.model_dump().items()}


class FinessTaken(Conflict):
    code = "finess_taken"
    field = "finess"
    message = "Un établissement porte déjà ce numéro FINESS."


class CodeTaken(Conflict):
    code = "specialty_code_taken"
    field = "code"
    message = "Une spécialité porte déjà ce code."


async def _checked(session: AsyncSession, values: dict[str, Any], facility_id: int | None) -> None:
    if await session.get(Departement, values["departement_code"]) is None:
        raise ValidationError(
            f"Département « {values['departement_code']} » inconnu.", field="departement"
        )
    same = select(Facility.id).where(Facility.finess == values["finess"])
    if facility_id is not None:
        same = same.where(Facility.id != facility_id)
    if await session.scalar(same) is not None:
        raise FinessTaken()


async def _flush(session: AsyncSession, taken: type[Conflict]) -> None:
    """Flush; a unique number taken meanwhile by a concurrent request is the same conflict
    as one found by the check before."""
    try:
        await session.flush()
    except IntegrityError as exc:
        if is_unique_violation(exc):
            raise taken() from None
        raise


async def get_facility(session: AsyncSession, facility_id: int) -> Facility:
    found = await session.get(Facility, facility_id)
    if found is None:
        raise NotFound("Établissement introuvable.")
    return found


async def create_facility(session: AsyncSession, ctx: Context, new: FacilityInput) -> Facility:
    values = _columns(new)
    await _checked(session, values, None)
    facility = Facility(**values, is_active=True, created_at=ctx.now)
    session.add(facility)
    await _flush(session, FinessTaken)
    await audit.event(
        session, ctx, "facility.created", target_type="facility", target_id=facility.id,
        before={}, after=_json(values),
    )  # fmt: skip
    return facility


def _json(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v.value if isinstance(v, FacilityCategory) else v for k, v in values.items()}


async def update_facility(
    session: AsyncSession, ctx: Context, facility_id: int, new: FacilityInput
) -> Facility:
    """Only the fields the form shows are written; the audit event names the changed ones."""
    facility = await get_facility(session, facility_id)
    values = _columns(new)
    await _checked(session, values, facility.id)
    before = {k: getattr(facility, k) for k, v in values.items() if getattr(facility, k) != v}
    if not before:
        return facility
    after = {k: values[k] for k in before}
    for name, value in after.items():
        setattr(facility, name, value)
    facility.updated_at = ctx.now
    await _flush(session, FinessTaken)
    await audit.event(
        session, ctx, "facility.updated", target_type="facility", target_id=facility.id,
        before=_json(before), after=_json(after),
    )  # fmt: skip
    return facility


async def set_facility_active(
    session: AsyncSession, ctx: Context, facility_id: int, active: bool
) -> Facility:
    """Deactivated: no new booking nor request from it; what it has is kept. Idempotent."""
    facility = await get_facility(session, facility_id)
    if facility.is_active is active:
        return facility
    facility.is_active = active
    facility.updated_at = ctx.now
    await session.flush()
    action = "facility.reactivated" if active else "facility.deactivated"
    await audit.event(
        session, ctx, action, target_type="facility", target_id=facility.id,
        before={"is_active": not active}, after={"is_active": active},
    )  # fmt: skip
    return facility


class FacilitySearch(Query):
    q: text(100) = ""  # type: ignore[valid-type]
    departement: Annotated[str, Field(pattern=r"^(|\d{2,3}|2[AB]|9[A-Z])$")] = ""
    category: FacilityCategory | Literal[""] = ""
    state: Literal["", "active", "inactive"] = ""
    closed: bool = False  # only those « fermé dans FINESS »


def _like(term: str) -> str:
    escaped = term.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def search_facilities(
    session: AsyncSession,
    wanted: FacilitySearch,
    *,
    after: Key | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Page[Facility]:
    """The admin's list, by name then id, a page at a time: by name, FINESS or commune,
    filtered. Without a filter a page reads `limit + 1` rows off `ix_facilities_name_id`;
    a search (a substring, no index can serve it) walks that index until the page is full,
    at worst the region's directory (a few thousand rows)."""
    query = select(Facility)
    if wanted.q:
        pattern = _like(wanted.q)
        query = query.where(
            or_(
                *(
                    func.lower(column).like(pattern, escape="\\")
                    for column in (Facility.name, Facility.finess, Facility.commune)
                )
            )
        )
    if wanted.departement:
        query = query.where(Facility.departement_code == wanted.departement)
    if wanted.category:
        query = query.where(Facility.category == wanted.category)
    if wanted.state:
        query = query.where(Facility.is_active.is_(wanted.state == "active"))
    if wanted.closed:
        query = query.where(Facility.finess_closed_at.is_not(None))
    if after is not None:
        query = query.where(tuple_(Facility.name, Facility.id) > tuple_(*after))
    query = query.order_by(Facility.name, Facility.id).limit(limit + 1)
    found = list(await session.scalars(query))
    return Page.of(found, limit, lambda f: (f.name, f.id))


# --- specialties admin ------------------------------------------------------------------------


class SpecialtyInput(Query):
    code: Annotated[str, Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length=40)]
    name: text(100, required=True)  # type: ignore[valid-type]


class SpecialtyName(Query):
    name: text(100, required=True)  # type: ignore[valid-type]


async def get_specialty(session: AsyncSession, specialty_id: int) -> Specialty:
    found = await session.get(Specialty, specialty_id)
    if found is None:
        raise NotFound("Spécialité introuvable.")
    return found


async def create_specialty(session: AsyncSession, ctx: Context, new: SpecialtyInput) -> Specialty:
    if await session.scalar(select(Specialty.id).where(Specialty.code == new.code)) is not None:
        raise CodeTaken()
    specialty = Specialty(code=new.code, name=new.name)
    session.add(specialty)
    await _flush(session, CodeTaken)
    await audit.event(
        session, ctx, "specialty.created", target_type="specialty", target_id=specialty.id,
        before={}, after={"code": new.code, "name": new.name},
    )  # fmt: skip
    return specialty


async def rename_specialty(
    session: AsyncSession, ctx: Context, specialty_id: int, new: SpecialtyName
) -> Specialty:
    specialty = await get_specialty(session, specialty_id)
    if specialty.name == new.name:
        return specialty
    before, specialty.name = specialty.name, new.name
    await session.flush()
    await audit.event(
        session, ctx, "specialty.renamed", target_type="specialty", target_id=specialty.id,
        before={"name": before}, after={"name": new.name},
    )  # fmt: skip
    return specialty


async def set_specialty_retired(
    session: AsyncSession, ctx: Context, specialty_id: int, retired: bool
) -> Specialty:
    """Retired: gone from the lists a booking or a request starts from; its history kept."""
    specialty = await get_specialty(session, specialty_id)
    if (specialty.retired_at is not None) is retired:
        return specialty
    specialty.retired_at = ctx.now if retired else None
    await session.flush()
    action = "specialty.retired" if retired else "specialty.reinstated"
    await audit.event(
        session, ctx, action, target_type="specialty", target_id=specialty.id,
        before={"retired": not retired}, after={"retired": retired},
    )  # fmt: skip
    return specialty
