"""A facility's residents: identity (INS and the strict traits), status, treating doctor.

The identity is sealed at rest (`telmi/vault.py`): the database holds the facility's own
reference, the identity status and a keyed digest of the INS (to refuse a duplicate), never
a name, a birth date or an INS in clear. Who sees a resident: the facility's staff, and the
specialists of that resident's own bookings and tele-expertise requests; regional users and
admins never. Every read is an access event naming the resident (`audit_events.patient_id`).

The identity status follows the national identity-vigilance referential (RNIV): an INS
"retrieved" comes from the INSi teleservice, an identity "validated" was checked against a
document of high trust, "qualified" is both; anything less is "provisional".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, Field, WithJsonSchema
from pydantic_core import PydanticCustomError
from sqlalchemy import exists, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from telmi import acts, audit
from telmi.context import Context
from telmi.db import Executor, is_unique_violation
from telmi.errors import Conflict, Forbidden, NotFound, ValidationError
from telmi.models import (
    Booking,
    ExpertiseRequest,
    ExpertiseStatus,
    IdentityDocument,
    IdentityStatus,
    Patient,
    Role,
    Slot,
    User,
)
from telmi.paging import DEFAULT_LIMIT, Key, Keyset, Page
from telmi.values import Body, Ins, LocalDate, PatientRef, Rpps, text
from telmi.vault import Vault

NIR_OID = "1.2.250.1.213.1.4.8"
NIA_OID = "1.2.250.1.213.1.4.9"
INS_OIDS = {NIR_OID: "NIR", NIA_OID: "NIA"}

STATUS_LABELS = {
    IdentityStatus.PROVISIONAL: "Identité provisoire",
    IdentityStatus.RETRIEVED: "Identité récupérée",
    IdentityStatus.VALIDATED: "Identité validée",
    IdentityStatus.QUALIFIED: "Identité qualifiée",
}
DOCUMENT_LABELS = {
    IdentityDocument.NONE: "Aucun",
    IdentityDocument.IDENTITY_CARD: "Carte nationale d'identité",
    IdentityDocument.PASSPORT: "Passeport",
    IdentityDocument.RESIDENCE_PERMIT: "Titre de séjour",
    IdentityDocument.BIRTH_CERTIFICATE: "Extrait d'acte de naissance",
    IdentityDocument.FAMILY_RECORD_BOOK: "Livret de famille",
}
SEX_LABELS = {"F": "Féminin", "M": "Masculin", "I": "Indéterminé"}
TRAITS = {
    "birth_name": "nom de naissance",
    "first_names": "prénoms",
    "sex": "sexe",
    "birth_date": "date de naissance",
    "birthplace": "lieu de naissance",
}

_BIRTHPLACE = re.compile(r"^([0-9]{2}|2[AB])[0-9]{3}$")
_MAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")


def _birthplace(value: str) -> str:
    value = value.strip().upper()
    if value and not _BIRTHPLACE.match(value):
        raise PydanticCustomError(
            "birthplace", "doit être un code INSEE de commune (5 caractères, 99xxx à l'étranger)"
        )
    return value


def _mail(value: str) -> str:
    value = value.strip()
    if value and not _MAIL.match(value):
        raise PydanticCustomError("mail", "doit être une adresse de messagerie")
    return value


Birthplace = Annotated[
    str,
    Field(max_length=5),
    AfterValidator(_birthplace),
    WithJsonSchema(
        {"type": "string", "pattern": r"^(|([0-9]{2}|2[AB])[0-9]{3})$", "description": "INSEE"}
    ),
]
Mail = Annotated[
    str,
    Field(max_length=254),
    AfterValidator(_mail),
    WithJsonSchema(
        {
            "type": "string",
            "maxLength": 254,
            "pattern": r"^\s*([^@\s]{1,64}@[^@\s]+\.[^@\s]{2,})?\s*$",
            "description": "a mail address (MSSanté for health professionals), or empty",
        }
    ),
]


class InsIdentifier(Body):
    value: Ins
    oid: Literal["1.2.250.1.213.1.4.8", "1.2.250.1.213.1.4.9"] = Field(
        "1.2.250.1.213.1.4.8", description="1.2.250.1.213.1.4.8 for a NIR, .9 for a NIA"
    )


class ResidentInput(Body):
    """A resident as staff enter it; the same model creates and replaces one."""

    reference: PatientRef
    birth_name: text(100) = ""  # type: ignore[valid-type]
    first_names: text(200) = Field("", description="every first name, in birth order")  # type: ignore[valid-type]
    used_name: text(100) = ""  # type: ignore[valid-type]
    sex: Literal["F", "M", "I"] | None = None
    birth_date: LocalDate | None = None
    birthplace: Birthplace = ""
    ins: InsIdentifier | None = None
    identity_status: IdentityStatus = IdentityStatus.PROVISIONAL
    identity_document: IdentityDocument = IdentityDocument.NONE
    doctor_name: text(200) = ""  # type: ignore[valid-type]
    doctor_rpps: Rpps | None = None
    doctor_mail: Mail = Field("", description="the treating doctor's secure mail (MSSanté)")


@dataclass(frozen=True)
class Resident:
    """A resident with the identity opened: only ever built for someone who may see it."""

    id: int
    facility_id: int
    reference: str
    birth_name: str
    first_names: str
    used_name: str
    sex: str | None
    birth_date: date | None
    birthplace: str
    ins: str | None
    ins_oid: str | None
    identity_status: IdentityStatus
    identity_document: IdentityDocument
    doctor_name: str
    doctor_rpps: str | None
    doctor_mail: str
    created_at: datetime
    updated_at: datetime

    @property
    def display_name(self) -> str:
        """Used name if any, else the birth name, then the first first name (RNIV display)."""
        name = (self.used_name or self.birth_name).upper()
        first = self.first_names.split(" ")[0] if self.first_names else ""
        return " ".join(p for p in (name, first) if p) or f"Résident {self.reference}"

    def age(self, today: date) -> int | None:
        if self.birth_date is None:
            return None
        born = self.birth_date
        return today.year - born.year - ((today.month, today.day) < (born.month, born.day))

    @property
    def status_label(self) -> str:
        return STATUS_LABELS[self.identity_status]

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "facility_id": self.facility_id,
            "reference": self.reference,
            "birth_name": self.birth_name,
            "first_names": self.first_names,
            "used_name": self.used_name,
            "sex": self.sex,
            "birth_date": self.birth_date.isoformat() if self.birth_date else None,
            "birthplace": self.birthplace,
            "ins": {"value": self.ins, "oid": self.ins_oid} if self.ins else None,
            "identity_status": self.identity_status.value,
            "identity_document": self.identity_document.value,
            "doctor_name": self.doctor_name,
            "doctor_rpps": self.doctor_rpps,
            "doctor_mail": self.doctor_mail,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


class ReferenceTaken(Conflict):
    code = "patient_reference_taken"
    field = "reference"
    message = "Un résident de votre établissement a déjà cette référence."


class InsTaken(Conflict):
    code = "patient_ins_taken"
    field = "ins.value"
    message = "Un résident de votre établissement a déjà cet INS."


def aad(facility_id: int) -> bytes:
    """Binds a sealed identity to its facility: it cannot be pasted into another's row."""
    return f"telmi/patient/{facility_id}".encode()


def ins_digest(vault: Vault, ins: str) -> str:
    """The act log's keyed hash of an INS (`acts.patient_key`): one value finds a duplicate
    within a facility and counts the same patient across facilities."""
    return acts.patient_key(vault.secret, finess="", patient_ref="", ins=ins)


def act_key(vault: Vault, patient: Patient, finess: str) -> str:
    """How the act log names this resident: by INS when known, else by the facility's own
    reference (the keys acts had before residents existed)."""
    if patient.ins_digest is not None:
        return patient.ins_digest
    return acts.patient_key(vault.secret, finess=finess, patient_ref=patient.reference)


def check_identity(new: ResidentInput, today: date) -> None:
    """The RNIV's rules: a status above provisional needs the five strict traits; an INS
    retrieved needs the INS; a validated identity names the document checked."""
    if new.birth_date is not None and new.birth_date > today:
        raise ValidationError("« birth_date » ne peut pas être dans le futur.", field="birth_date")
    status = new.identity_status
    if status is IdentityStatus.PROVISIONAL:
        return
    label = STATUS_LABELS[status].lower()
    for name, trait in TRAITS.items():
        if getattr(new, name) in (None, ""):
            raise ValidationError(
                f"« {name} » est requis pour une {label} (trait strict d'identité : {trait}).",
                field=name,
            )
    if status in (IdentityStatus.RETRIEVED, IdentityStatus.QUALIFIED) and new.ins is None:
        raise ValidationError(
            f"« ins » est requis pour une {label} : l'INS récupéré par le téléservice INSi.",
            field="ins",
        )
    needs_document = status in (IdentityStatus.VALIDATED, IdentityStatus.QUALIFIED)
    if needs_document and new.identity_document is IdentityDocument.NONE:
        raise ValidationError(
            f"« identity_document » est requis pour une {label} : le document d'identité contrôlé.",
            field="identity_document",
        )


def _sealed_fields(vault: Vault, facility_id: int, new: ResidentInput) -> dict[str, Any]:
    identity = {
        "birth_name": new.birth_name,
        "first_names": new.first_names,
        "used_name": new.used_name,
        "sex": new.sex,
        "birth_date": new.birth_date.isoformat() if new.birth_date else None,
        "birthplace": new.birthplace,
        "ins": {"value": new.ins.value, "oid": new.ins.oid} if new.ins else None,
    }
    key_id, sealed = vault.seal(identity, aad(facility_id))
    return {
        "reference": new.reference,
        "identity_status": new.identity_status,
        "identity_document": new.identity_document,
        "ins_digest": ins_digest(vault, new.ins.value) if new.ins else None,
        "key_id": key_id,
        "identity": sealed,
        "doctor_name": new.doctor_name,
        "doctor_rpps": new.doctor_rpps,
        "doctor_mail": new.doctor_mail,
    }


def open_resident(vault: Vault, row: Patient) -> Resident:
    identity = vault.open(row.key_id, row.identity, aad(row.facility_id))
    ins = identity.get("ins") or {}
    born = identity.get("birth_date")
    return Resident(
        id=row.id,
        facility_id=row.facility_id,
        reference=row.reference,
        birth_name=identity.get("birth_name", ""),
        first_names=identity.get("first_names", ""),
        used_name=identity.get("used_name", ""),
        sex=identity.get("sex"),
        birth_date=date.fromisoformat(born) if born else None,
        birthplace=identity.get("birthplace", ""),
        ins=ins.get("value"),
        ins_oid=ins.get("oid"),
        identity_status=row.identity_status,
        identity_document=row.identity_document,
        doctor_name=row.doctor_name,
        doctor_rpps=row.doctor_rpps,
        doctor_mail=row.doctor_mail,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _staff_facility(user: User) -> int:
    if user.role is not Role.STAFF or user.facility_id is None:
        raise Forbidden("Seul le personnel d'un établissement gère ses résidents.")
    return user.facility_id


async def _write(session: AsyncSession, statement: Any) -> Any:
    try:
        return await session.execute(statement)
    except IntegrityError as exc:
        if not is_unique_violation(exc):
            raise
        text_ = str(exc.orig)
        raise (InsTaken() if "ins_digest" in text_ else ReferenceTaken()) from None


async def create(
    session: AsyncSession, ctx: Context, new: ResidentInput, *, vault: Vault, tz: ZoneInfo
) -> Resident:
    facility_id = _staff_facility(ctx.caller)
    check_identity(new, ctx.now.astimezone(tz).date())
    values = _sealed_fields(vault, facility_id, new)
    await _clash(session, facility_id, values, None)
    result = await _write(
        session,
        insert(Patient)
        .values(
            facility_id=facility_id,
            created_at=ctx.now,
            updated_at=ctx.now,
            created_by_id=ctx.caller.id,
            **values,
        )
        .returning(Patient.id),
    )
    patient_id = int(result.scalar_one())
    await audit.event(
        session, ctx, "patient.created", target_type="patient", target_id=patient_id,
        patient_id=patient_id,
    )  # fmt: skip
    return open_resident(vault, await _row(session, patient_id))


async def update_resident(
    session: AsyncSession,
    ctx: Context,
    patient_id: int,
    edit: ResidentInput,
    *,
    vault: Vault,
    tz: ZoneInfo,
) -> Resident:
    facility_id = _staff_facility(ctx.caller)
    row = await _row(session, patient_id)
    if row.facility_id != facility_id:
        raise NotFound(f"Résident {patient_id} introuvable.")
    check_identity(edit, ctx.now.astimezone(tz).date())
    values = _sealed_fields(vault, facility_id, edit)
    await _clash(session, facility_id, values, patient_id)
    await _write(
        session,
        update(Patient).where(Patient.id == patient_id).values(updated_at=ctx.now, **values),
    )
    await audit.event(
        session, ctx, "patient.updated", target_type="patient", target_id=patient_id,
        patient_id=patient_id, status=edit.identity_status.value,
    )  # fmt: skip
    session.expire_all()
    return open_resident(vault, await _row(session, patient_id))


async def _clash(
    session: AsyncSession, facility_id: int, values: dict[str, Any], patient_id: int | None
) -> None:
    """A readable 409 before the unique index would give an opaque one."""
    others = select(Patient.id).where(Patient.facility_id == facility_id)
    if patient_id is not None:
        others = others.where(Patient.id != patient_id)
    if await session.scalar(others.where(Patient.reference == values["reference"])):
        raise ReferenceTaken()
    digest = values["ins_digest"]
    if digest is not None and await session.scalar(others.where(Patient.ins_digest == digest)):
        raise InsTaken()


async def _row(session: AsyncSession, patient_id: int) -> Patient:
    row = await session.get(Patient, patient_id, populate_existing=True)
    if row is None:
        raise NotFound(f"Résident {patient_id} introuvable.")
    return row


def _seen_by_specialist(user: User, patient_id: Any) -> Any:
    """The specialist's own bookings and the requests they may read, for this resident."""
    booked = exists().where(
        Booking.patient_id == patient_id,
        Booking.slot_id == Slot.id,
        Slot.specialist_id == user.id,
    )
    asked = exists().where(
        ExpertiseRequest.patient_id == patient_id,
        ExpertiseRequest.status != ExpertiseStatus.DRAFT,
        or_(
            ExpertiseRequest.specialist_id == user.id,
            ExpertiseRequest.assigned_to_id == user.id,
            (ExpertiseRequest.specialist_id.is_(None))
            & (ExpertiseRequest.specialty_id == user.specialty_id),
        ),
    )
    return or_(booked, asked)


async def may_see(session: Executor, user: User, row: Patient) -> bool:
    if user.role is Role.STAFF:
        return row.facility_id == user.facility_id
    if user.role is Role.SPECIALIST:
        return bool(await session.scalar(select(_seen_by_specialist(user, row.id))))
    return False


async def get(session: AsyncSession, ctx: Context, patient_id: int, *, vault: Vault) -> Resident:
    """A resident, for whoever may see it (else 404, as if it did not exist); audited."""
    row = await session.get(Patient, patient_id)
    if row is None or not await may_see(session, ctx.caller, row):
        raise NotFound(f"Résident {patient_id} introuvable.")
    await audit.event(
        session, ctx, "patient.read", target_type="patient", target_id=patient_id,
        patient_id=patient_id,
    )  # fmt: skip
    return open_resident(vault, row)


async def list_residents(
    session: AsyncSession, ctx: Context, *, vault: Vault, search: str = ""
) -> list[Resident]:
    """The caller's facility's residents, by name; a search matches names and references.

    Identities are sealed, so the filter runs after opening them: a facility has at most a
    few hundred residents. One access event for the list, naming none of them."""
    facility_id = _staff_facility(ctx.caller)
    rows = (
        await session.scalars(
            select(Patient).where(Patient.facility_id == facility_id).order_by(Patient.id)
        )
    ).all()
    residents = [open_resident(vault, r) for r in rows]
    needle = search.strip().casefold()
    if needle:
        residents = [
            r
            for r in residents
            if needle
            in " ".join((r.reference, r.birth_name, r.used_name, r.first_names)).casefold()
        ]
    residents.sort(key=lambda r: (r.display_name.casefold(), r.id))
    await audit.event(
        session, ctx, "patient.listed", target_type="facility", target_id=facility_id,
        count=len(residents),
    )  # fmt: skip
    return residents


# « Résidents » and GET /api/residents, in the order residents were recorded: names are
# sealed, so the database can order only by what is in clear, and the cursor (which a URL
# carries) must not name a reference. A page reads `limit + 1` rows off
# `ix_patients_facility_id_id`.
RESIDENTS = Keyset("residents", (int,))
_SEARCH_CHUNK = 200


def _matches(resident: Resident, needle: str) -> bool:
    names = (resident.reference, resident.birth_name, resident.used_name, resident.first_names)
    return needle in " ".join(names).casefold()


async def residents_page(
    session: AsyncSession,
    ctx: Context,
    *,
    vault: Vault,
    search: str = "",
    after: Key | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Page[Resident]:
    """A page of the caller's facility's residents; a search matches names and references.

    Without a search, `limit + 1` rows are read and opened. A search runs on the opened
    identities, so it reads the facility's residents in order, 200 at a time, until the
    page is full (at worst the facility's few hundred). One access event for the page,
    naming none of the residents on it."""
    facility_id = _staff_facility(ctx.caller)
    needle = search.strip().casefold()
    last, found = (after[0] if after else 0), list[Resident]()
    while True:
        chunk = _SEARCH_CHUNK if needle else limit + 1
        # The page's ids off the index alone, then their rows by primary key. In one
        # statement, the planner of a table of a few thousand rows prefers walking the
        # primary key (or the whole table), past every other facility's residents.
        ids = list(
            await session.scalars(
                select(Patient.id)
                .where(Patient.facility_id == facility_id, Patient.id > last)
                .order_by(Patient.id)
                .limit(chunk)
            )
        )
        rows = (
            (
                await session.scalars(
                    select(Patient).where(Patient.id.in_(ids)).order_by(Patient.id)
                )
            ).all()
            if ids
            else []
        )
        opened = (open_resident(vault, row) for row in rows)
        found += [r for r in opened if _matches(r, needle)]
        if not needle or len(found) > limit or len(rows) < chunk:
            break
        last = rows[-1].id
    page = Page.of(found, limit, lambda r: (r.id,))
    await audit.event(
        session, ctx, "patient.listed", target_type="facility", target_id=facility_id,
        count=len(page.items),
    )  # fmt: skip
    return page


class UnknownResident(ValidationError):
    def __init__(self) -> None:
        super().__init__("Résident introuvable dans votre établissement.", field="patient_id")


async def of_facility(session: AsyncSession, patient_id: int, facility_id: int) -> Patient:
    """The resident a booking or a request names, which must be the caller's facility's."""
    row = await session.get(Patient, patient_id)
    if row is None or row.facility_id != facility_id:
        raise UnknownResident()
    return row
