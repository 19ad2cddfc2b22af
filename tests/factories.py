"""Test data built through the same services the application uses."""

from __future__ import annotations

import itertools
import json
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from telmi import accounts, acts, consent, patients
from telmi.consent import ConsentInput
from telmi.context import Context
from telmi.db import Database
from telmi.demo import finess_for, rpps_for
from telmi.models import (
    Act,
    ActType,
    ConsentDecision,
    ConsentGiver,
    ConsentMethod,
    Departement,
    Facility,
    FacilityCategory,
    Region,
    Role,
    Slot,
    SlotStatus,
    Specialty,
    User,
    act_mask,
)
from telmi.vault import Vault

PASSWORD = "correct horse battery"
# The suite's instant: Wednesday 10 June 2026, 10:00 in Paris. The `clock` fixture starts
# here and test data made outside a test's clock is stamped with it, so no test depends on
# the day it runs; a test about another date sets its clock there and says so.
NOW = datetime(2026, 6, 10, 8, 0, tzinfo=UTC)
TEST_SECRET = "test-secret-key-" + "x" * 32
# The app of the `settings` fixture seals identities with this (no TELMI_DATA_KEY: derived).
VAULT = Vault.from_settings("", TEST_SECRET)
_seq = itertools.count(1)


async def _ensure_departement(session: AsyncSession, code: str) -> None:
    region = await session.scalar(select(Region).where(Region.code == "27"))
    if region is None:
        region = Region(code="27", name="Bourgogne-Franche-Comté")
        session.add(region)
        await session.flush()
    if await session.get(Departement, code) is None:
        session.add(Departement(code=code, name=f"Dép. {code}", region=region))
        await session.flush()


async def make_facility(
    db: Database,
    *,
    departement: str = "21",
    category: FacilityCategory = FacilityCategory.NURSING_HOME,
    name: str | None = None,
) -> Facility:
    n = next(_seq)
    async with db.write() as session:
        await _ensure_departement(session, departement)
        facility = Facility(
            finess=finess_for(departement, n),
            name=name or f"Établissement {n}",
            category=category,
            finess_category_code="500",
            departement_code=departement,
            commune="Dijon",
            created_at=NOW,
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


_PASSWORD_HASH: str | None = None


async def make_user(
    db: Database,
    role: Role = Role.STAFF,
    *,
    email: str | None = None,
    password: str = PASSWORD,
    facility: Facility | None = None,
    specialty: Specialty | None = None,
    departement: str | None = None,
) -> User:
    """A user made by accounts.create_user; the argon2 hash of PASSWORD is computed once."""
    global _PASSWORD_HASH
    n = next(_seq)
    if role is Role.STAFF and facility is None:
        facility = await make_facility(db)
    if role is Role.SPECIALIST and specialty is None:
        specialty = await make_specialty(db)
    async with db.write() as session:
        if departement is not None:
            await _ensure_departement(session, departement)
        user = await accounts.create_user(
            session,
            email=email or f"{role.value}{n}@example.fr",
            full_name=f"Personne {n}",
            role=role,
            password=password,
            facility_finess=facility.finess if facility else None,
            specialty_code=specialty.code if specialty else None,
            rpps=rpps_for(5000 + n) if role is Role.SPECIALIST else None,
            password_hash=_PASSWORD_HASH if password == PASSWORD else None,
            now=NOW,
        )
        if password == PASSWORD:
            _PASSWORD_HASH = user.password_hash
        user.departement_code = departement
        return user


async def make_slot(
    db: Database,
    specialist: User,
    starts_at: datetime,
    *,
    minutes: int = 30,
    act_types: tuple[ActType, ...] = (ActType.TELECONSULTATION,),
) -> Slot:
    async with db.write() as session:
        slot = Slot(
            specialist_id=specialist.id,
            specialty_id=specialist.specialty_id,
            starts_at=starts_at,
            ends_at=starts_at + timedelta(minutes=minutes),
            act_mask=act_mask(act_types),
            status=SlotStatus.OPEN,
            created_at=NOW,
        )
        session.add(slot)
    return slot


async def bearer(db: Database, user: User) -> dict[str, str]:
    async with db.write() as session:
        _, raw = await accounts.create_token(session, Context(user, NOW), accounts.NewToken())
    return {"Authorization": f"Bearer {raw}"}


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


TEST_SECRET_FOR_KEYS = "test-patient-key-secret"


async def make_act(
    db: Database,
    *,
    facility: Facility,
    specialist: User,
    occurred_at: datetime,
    act_type: ActType = ActType.TELECONSULTATION,
    patient: str = "RES-1",
    minutes: int = 20,
    requester_rpps: str | None = None,
    specialty: str | None = None,
    source_key: str | None = None,
) -> Act:
    """An act appended through the log's one entry point, as a completing service would."""
    async with db.write() as session:
        specialty_code = specialty or await session.scalar(
            select(Specialty.code).where(Specialty.id == specialist.specialty_id)
        )
        return await acts.append(
            session,
            acts.NewAct(
                act_type=act_type,
                occurred_at=occurred_at,
                duration_seconds=minutes * 60,
                facility_id=facility.id,
                requester_role="infirmier",
                requester_rpps=requester_rpps or rpps_for(900 + facility.id),
                specialist_id=specialist.id,
                specialist_rpps=specialist.rpps,
                specialty_code=str(specialty_code),
                source_key=source_key or f"test:{next(_seq)}",
                patient_key=acts.patient_key(
                    TEST_SECRET_FOR_KEYS, finess=facility.finess, patient_ref=patient
                ),
                patient_consent=True,
            ),
            now=NOW,
            tz=ZoneInfo("Europe/Paris"),
            recorded_by=None,
        )


def ins_with_key(body13: str) -> str:
    """A valid INS from its 13 first characters (the key is 97 - n mod 97)."""
    numeric = body13[:5] + {"2A": "19", "2B": "18"}.get(body13[5:7], body13[5:7]) + body13[7:]
    return f"{body13}{97 - int(numeric) % 97:02d}"


async def make_resident(
    db: Database,
    staff: User,
    *,
    reference: str | None = None,
    ins: str | None = None,
    qualified: bool = False,
    **fields: object,
) -> patients.Resident:
    """A resident of `staff`'s facility, made by patients.create; `qualified` fills the
    five traits, an INS and the document checked."""
    n = next(_seq)
    values: dict[str, object] = {"reference": reference or f"R-{n}"}
    if qualified:
        values |= {
            "birth_name": "MARTIN",
            "first_names": "Jeanne Marie",
            "sex": "F",
            "birth_date": "1936-04-12",
            "birthplace": "21231",
            "ins": {"value": ins or ins_with_key("2360421231012")},
            "identity_status": "qualified",
            "identity_document": "identity_card",
        }
    elif ins:
        values["ins"] = {"value": ins}
    values |= fields
    new = patients.ResidentInput.model_validate_json(json.dumps(values))  # as the API reads it
    async with db.write() as session:
        return await patients.create(
            session, Context(staff, NOW), new, vault=VAULT, tz=ZoneInfo("Europe/Paris")
        )


async def record_consent(
    db: Database, user: User, booking_id: int, *, granted: bool = True
) -> consent.ConsentView:
    """The resident's consent (or refusal) to a booking, recorded by `user` at NOW."""
    given = ConsentInput(
        given_by=ConsentGiver.RESIDENT,
        method=ConsentMethod.ORAL,
        decision=ConsentDecision.GRANTED if granted else ConsentDecision.REFUSED,
    )
    async with db.write() as session:
        return await consent.for_booking(session, Context(user, NOW), booking_id, given)
