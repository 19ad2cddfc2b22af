"""The stored versions of the request forms: which definition a specialty's act asks for now.

A version is never changed: defining a form appends version n + 1, so every stored answer
keeps the definition it was validated against (`bookings.form_id`, `expertise_requests.
form_id`). A specialty Telmi ships a form for (`request_forms.BUILTIN`) gets it as version 1
the first time a write needs it; until then readers see the same definition, unsaved.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, true
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from telmi import audit, request_forms
from telmi.context import Context
from telmi.db import Executor, dialect_name
from telmi.errors import Forbidden, ValidationError
from telmi.models import ActType, RequestForm, Role, Specialty
from telmi.request_forms import FormDefinition

FORM_ACTS = (ActType.TELECONSULTATION, ActType.TELEEXPERTISE)


@dataclass(frozen=True)
class Form:
    """A definition and the row it is stored in (`id` None: a built-in not saved yet)."""

    id: int | None
    version: int
    specialty_code: str
    act_type: ActType
    definition: FormDefinition
    created_at: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "version": self.version,
            "specialty": self.specialty_code,
            "act_type": self.act_type.value,
            "definition": self.definition.model_dump(mode="json"),
        }


async def _latest(session: Executor, specialty_id: int, act_type: ActType) -> Form | None:
    row = (
        await session.execute(
            select(
                RequestForm.id,
                RequestForm.version,
                Specialty.code,
                RequestForm.definition,
                RequestForm.created_at,
            )
            .join(Specialty, Specialty.id == RequestForm.specialty_id)
            .where(RequestForm.specialty_id == specialty_id, RequestForm.act_type == act_type)
            .order_by(RequestForm.version.desc())
            .limit(1)
        )
    ).first()
    if row is None:
        return None
    form_id, version, code, definition, created_at = row
    return Form(
        form_id, version, code, act_type, FormDefinition.model_validate(definition), created_at
    )


async def current(session: Executor, specialty_id: int, act_type: ActType) -> Form | None:
    """The form to fill now: the latest version, else the built-in (unsaved), else None.

    One statement (the specialty beside its latest version, if any): every booking reads it."""
    latest = (
        select(RequestForm.id, RequestForm.version, RequestForm.definition, RequestForm.created_at)
        .where(RequestForm.specialty_id == specialty_id, RequestForm.act_type == act_type)
        .order_by(RequestForm.version.desc())
        .limit(1)
        .subquery()
    )
    row = (
        await session.execute(
            select(Specialty.code, latest.c.id, latest.c.version, latest.c.definition)
            .select_from(Specialty)
            .outerjoin(latest, true())
            .where(Specialty.id == specialty_id)
        )
    ).first()
    if row is None:
        return None
    code, form_id, version, definition = row
    if form_id is not None:
        return Form(form_id, version, code, act_type, FormDefinition.model_validate(definition))
    builtin = request_forms.builtin_for(code, act_type)
    return Form(None, 0, code, act_type, builtin) if builtin else None


async def for_answers(
    session: Executor, specialty_id: int, act_type: ActType, *, now: datetime
) -> Form | None:
    """`current`, with a built-in saved as version 1 so answers can name their version.
    Two first writers race on the unique version: one inserts, both read the same row."""
    form = await current(session, specialty_id, act_type)
    if form is None or form.id is not None:
        return form
    insert = pg_insert if dialect_name(session) == "postgresql" else sqlite_insert
    await session.execute(
        insert(RequestForm)
        .values(
            specialty_id=specialty_id,
            act_type=act_type,
            version=1,
            definition=form.definition.model_dump(mode="json"),
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["specialty_id", "act_type", "version"])
    )
    return await _latest(session, specialty_id, act_type)


async def answered(
    session: Executor,
    specialty_id: int,
    act_type: ActType,
    answers: dict[str, Any],
    *,
    now: datetime,
) -> tuple[int | None, dict[str, Any] | None]:
    """(form id, clean answers) for a booking or a request; without a form, no answers."""
    form = await for_answers(session, specialty_id, act_type, now=now)
    if form is None:
        if answers:
            raise ValidationError(
                "Cette spécialité ne demande pas de formulaire : « answers » doit être vide.",
                field="answers",
            )
        return None, None
    clean = request_forms.validate_answers(form.definition, answers, strict=True)
    return form.id, clean


async def define(
    session: AsyncSession,
    ctx: Context,
    specialty_code: str,
    act_type: ActType,
    definition: FormDefinition,
) -> Form:
    """A new version of a specialty's form (admins); earlier answers keep theirs."""
    if ctx.caller.role is not Role.ADMIN:
        raise Forbidden("Seuls les administrateurs définissent les formulaires de demande.")
    if act_type not in FORM_ACTS:
        raise ValidationError(
            "Les formulaires concernent la téléconsultation et la téléexpertise.",
            field="act_type",
        )
    specialty_id = await session.scalar(
        select(Specialty.id).where(Specialty.code == specialty_code)
    )
    if specialty_id is None:
        raise ValidationError(f"Spécialité « {specialty_code} » inconnue.", field="specialty")
    last = await session.scalar(
        select(func.max(RequestForm.version)).where(
            RequestForm.specialty_id == specialty_id, RequestForm.act_type == act_type
        )
    )
    version = int(last or 0) + 1
    session.add(
        RequestForm(
            specialty_id=specialty_id,
            act_type=act_type,
            version=version,
            definition=definition.model_dump(mode="json"),
            created_at=ctx.now,
            created_by_id=ctx.caller.id,
        )
    )
    await session.flush()
    await audit.event(
        session,
        ctx,
        "form.defined",
        target_type="specialty",
        target_id=specialty_id,
        act_type=act_type.value,
        version=version,
    )
    found = await _latest(session, specialty_id, act_type)
    assert found is not None
    return found


async def by_id(session: AsyncSession, form_id: int) -> FormDefinition | None:
    stored = await session.scalar(select(RequestForm.definition).where(RequestForm.id == form_id))
    return FormDefinition.model_validate(stored) if stored is not None else None


async def overview(session: AsyncSession) -> list[tuple[Specialty, dict[ActType, Form | None]]]:
    """Every specialty with its current forms, for the admin page."""
    found = []
    for specialty in (await session.scalars(select(Specialty).order_by(Specialty.name))).all():
        found.append(
            (specialty, {act: await current(session, specialty.id, act) for act in FORM_ACTS})
        )
    return found
