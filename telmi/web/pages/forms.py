"""HTML forms to the JSON-shaped bodies the services take.

A form sends only strings: numbers, checkboxes and lists are converted here, so the services
validate one shape whether a request came from the API or from a page. Conversion errors are
`ValidationError`s naming the field, shown on the form like the services' own.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from multidict import MultiDictProxy

from telmi.errors import ValidationError
from telmi.values import check_characters

Form = MultiDictProxy[Any]


async def read(request: web.Request) -> Form:
    """The submitted form, its text fields checked for what no database can store."""
    form = await request.post()
    for name, value in form.items():
        if isinstance(value, str):
            check_characters(value, name)
    return form


def text(form: Form, name: str) -> str:
    value = form.get(name, "")
    return value.strip() if isinstance(value, str) else ""


def booking_body(form: Form, slot_id: int) -> dict[str, Any]:
    """The booking form as a `booking.NewBooking`; no resident chosen is an absent one."""
    body = {
        "slot_id": slot_id,
        "act_type": text(form, "act_type"),
        "reason": text(form, "reason"),
    }
    if patient_id := text(form, "patient_id"):
        body["patient_id"] = patient_id
    return body


def answers(form: Form) -> dict[str, str]:
    """A request form's answers: the inputs named `answers.<name>` (never the page's own)."""
    prefix = "answers."
    return {
        name[len(prefix) :]: value
        for name, value in form.items()
        if name.startswith(prefix) and isinstance(value, str)
    }


def rule_defaults(today: date) -> dict[str, Any]:
    """What the add-rule form shows first: a Monday morning of 30-minute teleconsultations."""
    return {
        "weekday": "0",
        "start": "09:00",
        "end": "12:00",
        "slot_minutes": "30",
        "buffer_minutes": "0",
        "act_types": ["teleconsultation"],
        "valid_from": today.isoformat(),
        "valid_until": "",
        "open_on_public_holidays": False,
    }


def rule_values(form: Form) -> dict[str, Any]:
    """The add-rule form as it was sent, to show it again with an error."""
    names = ("weekday", "start", "end", "slot_minutes", "buffer_minutes")
    return {
        **{name: text(form, name) for name in (*names, "valid_from", "valid_until")},
        "act_types": [v for v in form.getall("act_types", []) if isinstance(v, str)],
        "open_on_public_holidays": "open_on_public_holidays" in form,
    }


def rule_body(form: Form) -> dict[str, Any]:
    """The add-rule form as the data of an `availability.RuleInput` (read with
    `values.parse(..., strict=False)`): a blank field is an absent one."""
    values = rule_values(form)
    names = ("weekday", "start", "end", "slot_minutes", "buffer_minutes")
    body: dict[str, Any] = {
        name: values[name] for name in (*names, "valid_from", "valid_until") if values[name]
    }
    body["act_types"] = values["act_types"]
    body["open_on_public_holidays"] = values["open_on_public_holidays"]
    return body


def absence_values(form: Form) -> dict[str, str]:
    return {name: text(form, name) for name in ("starts_at", "ends_at", "reason")}


def absence_body(form: Form, tz: ZoneInfo) -> dict[str, Any]:
    """The absence form as the data of an `availability.ExceptionInput`. `datetime-local`
    inputs carry no offset: they are local wall-clock times, made instants here (the API
    itself takes only instants with their offset)."""
    values = absence_values(form)
    body: dict[str, Any] = {"reason": values["reason"]}
    for name in ("starts_at", "ends_at"):
        if not values[name]:
            continue  # the model says it is required
        try:
            at = datetime.fromisoformat(values[name])
        except ValueError:
            raise ValidationError(
                f"« {name} » : une date et une heure (AAAA-MM-JJTHH:MM).", field=name
            ) from None
        body[name] = at if at.tzinfo is not None else at.replace(tzinfo=tz)
    return body
