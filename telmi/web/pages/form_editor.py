"""Administration of the request forms: every specialty's forms, and an editor that saves
a new version (rows of fields, no JSON to write by hand)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from telmi import form_versions
from telmi.errors import NotFound, TelmiError
from telmi.keys import DB
from telmi.models import ActType, Role, Specialty
from telmi.request_forms import FieldKind, FormDefinition
from telmi.values import parse
from telmi.web.access import request_context, roles
from telmi.web.http import path_id
from telmi.web.pages import forms
from telmi.web.render import render

BLANK_ROWS = 3
KIND_LABELS = {
    FieldKind.TEXT: "Texte",
    FieldKind.CHOICE: "Choix",
    FieldKind.NUMBER: "Nombre",
    FieldKind.YES_NO: "Oui / non",
}
ROW_FIELDS = ("name", "label", "kind", "choices", "minimum", "maximum", "unit", "help")


def _act(request: web.Request) -> ActType:
    """`?acte=`: the act type the form is for (teleconsultation or teleexpertise)."""
    raw = request.query.get("acte", "")
    if raw not in {a.value for a in form_versions.FORM_ACTS}:
        raise NotFound("Formulaire introuvable.")
    return ActType(raw)


async def _specialty(request: web.Request) -> Specialty:
    async with request.app[DB].read() as session:
        found = await session.get(Specialty, path_id(request, "specialty_id"))
    if found is None:
        raise NotFound("Spécialité introuvable.")
    return found


def _rows(definition: FormDefinition | None) -> list[dict[str, Any]]:
    """The editor's rows: the fields as text, then blank rows to add some."""
    rows = []
    for f in definition.fields if definition else []:
        rows.append(
            {
                "name": f.name,
                "label": f.label,
                "kind": f.kind.value,
                "required": f.required,
                "integer": f.integer,
                "choices": "\n".join(f.choices),
                "minimum": "" if f.minimum is None else str(f.minimum),
                "maximum": "" if f.maximum is None else str(f.maximum),
                "unit": f.unit,
                "help": f.help,
            }
        )
    blank = {name: "" for name in ROW_FIELDS} | {"kind": "text", "required": False}
    return rows + [dict(blank, integer=False) for _ in range(BLANK_ROWS)]


def _submitted(form: forms.Form) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The definition the rows spell, and the rows as typed (to show them again)."""
    rows, fields = [], []
    count = int(forms.text(form, "rows") or 0) if forms.text(form, "rows").isdigit() else 0
    for i in range(min(count, 60)):
        row: dict[str, Any] = {name: forms.text(form, f"f{i}_{name}") for name in ROW_FIELDS}
        row["choices"] = str(form.get(f"f{i}_choices", ""))
        row["required"] = f"f{i}_required" in form
        row["integer"] = f"f{i}_integer" in form
        rows.append(row)
        if f"f{i}_delete" in form or not (row["name"] or row["label"]):
            continue
        field: dict[str, Any] = {
            "name": row["name"],
            "label": row["label"],
            "kind": row["kind"],
            "required": row["required"],
            "help": row["help"],
        }
        if row["kind"] == FieldKind.CHOICE:
            field["choices"] = [c.strip() for c in row["choices"].splitlines() if c.strip()]
        if row["kind"] == FieldKind.NUMBER:
            field |= {"unit": row["unit"], "integer": row["integer"]}
            for bound in ("minimum", "maximum"):
                if row[bound]:
                    field[bound] = row[bound].replace(",", ".")
        fields.append(field)
    return {"fields": fields, "min_photos": forms.text(form, "min_photos") or "0"}, rows


@roles(Role.ADMIN)
async def overview(request: web.Request) -> web.Response:
    async with request.app[DB].read() as session:
        found = await form_versions.overview(session)
    context = {"overview": found, "acts": form_versions.FORM_ACTS}
    return render(request, "admin_forms.html", context | {"saved": request.query.get("enregistre")})


@roles(Role.ADMIN)
async def edit(request: web.Request) -> web.Response:
    act, specialty = _act(request), await _specialty(request)
    async with request.app[DB].read() as session:
        form = await form_versions.current(session, specialty.id, act)
    return _editor(request, specialty, act, form, _rows(form.definition if form else None), {})


def _editor(
    request: web.Request,
    specialty: Specialty,
    act: ActType,
    form: form_versions.Form | None,
    rows: list[dict[str, Any]],
    errors: dict[str, str],
    min_photos: str | None = None,
    status: int = 200,
) -> web.Response:
    context = {
        "specialty": specialty,
        "act": act,
        "form": form,
        "rows": rows,
        "kinds": KIND_LABELS,
        "errors": errors,
        "min_photos": min_photos
        if min_photos is not None
        else str(form.definition.min_photos if form else 0),
    }
    return render(request, "admin_form.html", context, status=status)


def _row_error(field: str | None) -> str:
    """`fields[2].choices` -> the editor's input `f2_choices` (the rows kept their order
    unless one was deleted or left blank, so it names the nearest row)."""
    if field and field.startswith("fields["):
        index, _, rest = field[len("fields[") :].partition("]")
        return f"f{index}_{rest.lstrip('.') or 'name'}"
    return field or "form"


@roles(Role.ADMIN)
async def save(request: web.Request) -> web.StreamResponse:
    act, specialty = _act(request), await _specialty(request)
    form = await forms.read(request)
    data, rows = _submitted(form)
    ctx = request_context(request)
    try:
        definition = parse(FormDefinition, data, strict=False)
        saved = await request.app[DB].run_write(
            lambda s: form_versions.define(s, ctx, specialty.code, act, definition)
        )
    except TelmiError as exc:
        async with request.app[DB].read() as session:
            current = await form_versions.current(session, specialty.id, act)
        errors = {_row_error(getattr(exc, "field", None)): exc.message}
        return _editor(
            request, specialty, act, current, rows, errors, data["min_photos"], status=422
        )
    location = (
        request.app.router["admin_forms"]
        .url_for()
        .with_query({"enregistre": f"{specialty.code}:{act.value}:{saved.version}"})
    )
    raise web.HTTPSeeOther(location)
