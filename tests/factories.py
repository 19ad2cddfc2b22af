"""Test data built through the same services the application uses."""

from __future__ import annotations

import itertools
import re

from aiohttp.test_utils import TestClient
from sqlalchemy import select

from telmi import accounts
from telmi.db import Database
from telmi.demo import finess_for, rpps_for
from telmi.models import Departement, Facility, FacilityCategory, Region, Role, Specialty, User

PASSWORD = "correct horse battery"
_seq = itertools.count(1)


async def make_facility(
    db: Database,
    *,
    departement: str = "21",
    category: FacilityCategory = FacilityCategory.NURSING_HOME,
    name: str | None = None,
) -> Facility:
    n = next(_seq)
    async with db.write() as session:
        region = await session.scalar(select(Region).where(Region.code == "27"))
        if region is None:
            region = Region(code="27", name="Bourgogne-Franche-Comté")
            session.add(region)
            await session.flush()
        if await session.get(Departement, departement) is None:
            session.add(Departement(code=departement, name=f"Dép. {departement}", region=region))
            await session.flush()
        facility = Facility(
            finess=finess_for(departement, n),
            name=name or f"Établissement {n}",
            category=category,
            finess_category_code="500",
            departement_code=departement,
            commune="Dijon",
        )
        session.add(facility)
    return facility


async def make_specialty(db: Database, code: str = "dermatologie") -> Specialty:
    async with db.write() as session:
        specialty = await session.scalar(select(Specialty).where(Specialty.code == code))
        if specialty is None:
            specialty = Specialty(code=code, name=code.capitalize())
            session.add(specialty)
    return specialty


async def make_user(
    db: Database,
    role: Role = Role.STAFF,
    *,
    email: str | None = None,
    password: str = PASSWORD,
    facility: Facility | None = None,
    specialty: Specialty | None = None,
) -> User:
    n = next(_seq)
    if role is Role.STAFF and facility is None:
        facility = await make_facility(db)
    if role is Role.SPECIALIST and specialty is None:
        specialty = await make_specialty(db)
    async with db.write() as session:
        return await accounts.create_user(
            session,
            email=email or f"{role.value}{n}@example.fr",
            full_name=f"Personne {n}",
            role=role,
            password=password,
            facility_finess=facility.finess if facility else None,
            specialty_code=specialty.code if specialty else None,
            rpps=rpps_for(5000 + n) if role is Role.SPECIALIST else None,
        )


_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_from(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "page has no CSRF field"
    return match.group(1)


async def login(
    client: TestClient, email: str, password: str = PASSWORD, *, next_path: str = "/"
) -> object:
    """Log in through the real form (GET for the CSRF token, then POST); returns the response."""
    page = await client.get("/login")
    token = csrf_from(await page.text())
    return await client.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": token, "next": next_path},
        allow_redirects=False,
    )


async def page_csrf(client: TestClient, path: str = "/") -> str:
    """The CSRF token of the signed-in session, as a page would embed it."""
    response = await client.get(path)
    return csrf_from(await response.text())
