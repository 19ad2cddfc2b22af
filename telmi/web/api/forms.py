"""JSON: the request forms, per specialty and act type (read by all, defined by admins)."""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web
from pydantic import Field
from sqlalchemy import select

from telmi import form_versions
from telmi.errors import NotFound, ValidationError
from telmi.keys import DB
from telmi.models import ActType, Role, Specialty
from telmi.request_forms import FormDefinition
from telmi.values import Body, Query, text
from telmi.web.access import authenticated, request_context, roles
from telmi.web.api.spec import Out, endpoint

FormAct = Literal["teleconsultation", "teleexpertise"]


class FormQuery(Query):
    specialty: text(40, required=True)  # type: ignore[valid-type]
    act_type: FormAct


class NewForm(Body):
    specialty: text(40, required=True)  # type: ignore[valid-type]
    act_type: FormAct
    definition: FormDefinition


class FormOut(Out):
    """A request form's current version"""

    id: int | None = Field(description="null: the built-in form, not saved yet")
    version: int = Field(description="0 for a built-in not saved yet")
    specialty: str
    act_type: FormAct
    definition: FormDefinition


async def _specialty_id(session: Any, code: str) -> int:
    found = await session.scalar(select(Specialty.id).where(Specialty.code == code))
    if found is None:
        raise ValidationError(f"Spécialité « {code} » inconnue.", field="specialty")
    return int(found)


@authenticated
@endpoint(
    "The form a request of this specialty and act type asks to fill",
    "getRequestForm",
    query=FormQuery,
    response=FormOut,
    errors={404: "This specialty asks no form for this act"},
)
async def current_form(request: web.Request, query: FormQuery) -> dict[str, Any]:
    async with request.app[DB].read() as session:
        specialty_id = await _specialty_id(session, query.specialty)
        form = await form_versions.current(session, specialty_id, ActType(query.act_type))
    if form is None:
        raise NotFound("Aucun formulaire pour cette spécialité et cet acte.")
    return form.as_json()


@roles(Role.ADMIN)
@endpoint(
    "Define a new version of a request form (earlier answers keep theirs)",
    "defineRequestForm",
    body=NewForm,
    response=FormOut,
    status=201,
)
async def define_form(request: web.Request, body: NewForm) -> dict[str, Any]:
    ctx = request_context(request)
    form = await request.app[DB].run_write(
        lambda s: form_versions.define(
            s, ctx, body.specialty, ActType(body.act_type), body.definition
        )
    )
    return form.as_json()
