"""The resident and consent forms to the bodies of `patients.ResidentInput` and
`consent.ConsentInput`, and back (a refused form is shown again with what was typed).

A blank field is an absent one, so the model's default or its own rule decides; an error's
`field` (the JSON key, « ins.value ») is mapped to the form's input, where it is shown.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from telmi.errors import TelmiError, ValidationError
from telmi.patients import NIR_OID, Resident
from telmi.web.pages.forms import Form, text

RESIDENT_FIELDS = (
    "reference",
    "birth_name",
    "first_names",
    "used_name",
    "sex",
    "birth_date",
    "birthplace",
    "ins_value",
    "ins_oid",
    "identity_status",
    "identity_document",
    "doctor_name",
    "doctor_rpps",
    "doctor_mail",
)
CONSENT_FIELDS = ("given_by", "method", "decision", "given_at", "note")

LABELS = {
    "reference": "Référence",
    "birth_name": "Nom de naissance",
    "first_names": "Prénoms",
    "used_name": "Nom utilisé",
    "sex": "Sexe",
    "birth_date": "Date de naissance",
    "birthplace": "Lieu de naissance",
    "ins": "INS",
    "ins.value": "INS",
    "ins.oid": "Type d'INS",
    "identity_status": "Statut de l'identité",
    "identity_document": "Document contrôlé",
    "doctor_name": "Médecin traitant",
    "doctor_rpps": "RPPS du médecin traitant",
    "doctor_mail": "Messagerie sécurisée du médecin",
    "given_by": "Donné par",
    "method": "Forme",
    "decision": "Décision",
    "given_at": "Recueilli le",
    "note": "Précision",
    "consent.given_by": "Donné par",
    "consent.method": "Forme",
    "consent.decision": "Décision",
    "consent.given_at": "Recueilli le",
    "consent.note": "Précision",
}
# An error's field (the JSON key) to the form input it is shown beside.
INPUTS = {"ins": "ins_value", "ins.value": "ins_value", "ins.oid": "ins_oid"}

_QUOTED = re.compile(r"« ([a-z_.]+) »")


def _relabel(text: str) -> str:
    return _QUOTED.sub(lambda m: f"« {LABELS.get(m.group(1), m.group(1))} »", text)


def message(error: TelmiError) -> str:
    """The service's message with JSON keys replaced by the form's labels."""
    return _relabel(error.message)


def field_errors(error: TelmiError) -> dict[str, str]:
    """{form input: message} for every problem naming a field; {} if none does."""
    found: dict[str, str] = {}
    for field, said in error.problems:
        if field:
            name = field.removeprefix("consent.")
            found.setdefault(INPUTS.get(name, name), _relabel(said))
    return found


# --- residents ----------------------------------------------------------------------------------


def resident_values(form: Form) -> dict[str, str]:
    return {name: text(form, name) for name in RESIDENT_FIELDS}


def resident_values_of(r: Resident) -> dict[str, str]:
    """The edit form, filled with the resident as recorded."""
    return {
        "reference": r.reference,
        "birth_name": r.birth_name,
        "first_names": r.first_names,
        "used_name": r.used_name,
        "sex": r.sex or "",
        "birth_date": r.birth_date.isoformat() if r.birth_date else "",
        "birthplace": r.birthplace,
        "ins_value": r.ins or "",
        "ins_oid": r.ins_oid or NIR_OID,
        "identity_status": r.identity_status.value,
        "identity_document": r.identity_document.value,
        "doctor_name": r.doctor_name,
        "doctor_rpps": r.doctor_rpps or "",
        "doctor_mail": r.doctor_mail,
    }


def resident_body(values: dict[str, str]) -> dict[str, Any]:
    """The data of a `ResidentInput` (read with `values.parse(..., strict=False)`)."""
    body: dict[str, Any] = {
        name: values[name]
        for name in (
            "reference",
            "birth_name",
            "first_names",
            "used_name",
            "birthplace",
            "identity_document",
            "doctor_name",
            "doctor_mail",
        )
    }
    for name in ("sex", "birth_date", "identity_status"):
        if values[name]:
            body[name] = values[name]
    if values["doctor_rpps"]:
        body["doctor_rpps"] = values["doctor_rpps"].replace(" ", "")
    if values["ins_value"]:
        body["ins"] = {
            "value": values["ins_value"].replace(" ", ""),
            "oid": values["ins_oid"] or NIR_OID,
        }
    return body


# --- consent --------------------------------------------------------------------------------------


def consent_values(form: Form) -> dict[str, str]:
    return {name: text(form, name) for name in CONSENT_FIELDS}


def consent_given(form: Form) -> bool:
    """Whether an optional consent block (the booking form's) was filled in."""
    return bool(text(form, "given_by"))


def consent_body(form: Form, tz: ZoneInfo) -> dict[str, Any]:
    """The data of a `ConsentInput`. « Recueilli le » is a `datetime-local` (the region's
    wall clock, no offset), made an instant here; blank, it means now."""
    values = consent_values(form)
    body: dict[str, Any] = {
        name: values[name] for name in ("given_by", "method", "decision", "note") if values[name]
    }
    if values["given_at"]:
        try:
            at = datetime.fromisoformat(values["given_at"])
        except ValueError:
            raise ValidationError(
                "« given_at » : une date et une heure (AAAA-MM-JJTHH:MM).", field="given_at"
            ) from None
        body["given_at"] = at if at.tzinfo is not None else at.replace(tzinfo=tz)
    return body
