"""What the pages need to speak French: local dates and times, labels, messages.

Times are stored in UTC and shown in the region's time zone. The services name fields by
their JSON keys (« patient_id »); on a page the user sees the form's French labels instead.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from telmi.errors import Conflict, TelmiError, ValidationError
from telmi.keys import SETTINGS
from telmi.labels import LABELS, MONTHS, label
from telmi.models import ActType, act_types_of

WEEKDAYS = ["lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"]


FIELD_LABELS = {
    "slot_id": "Créneau",
    "patient_id": "Résident",
    "act_type": "Type d'acte",
    "reason": "Motif",
    "weekday": "Jour",
    "start": "Heure de début",
    "end": "Heure de fin",
    "slot_minutes": "Durée d'un créneau",
    "buffer_minutes": "Pause entre créneaux",
    "act_types": "Types d'actes",
    "valid_from": "Valable à partir du",
    "valid_until": "Valable jusqu'au",
    "open_on_public_holidays": "Jours fériés",
    "starts_at": "Début de l'absence",
    "ends_at": "Fin de l'absence",
    "specialty": "Spécialité",
    "departement": "Département",
    "du": "À partir du",
    "semaine": "Semaine",
    "cursor": "Page",
    "specialist_id": "Spécialiste",
}

# `?ok=` keys after a successful form: fixed messages, so no user data travels in URLs.
CONFIRMATIONS = {
    "reserve": "Le rendez-vous est réservé.",
    "annule": "Le rendez-vous est annulé.",
    "deplace": "Le rendez-vous est déplacé sur le nouveau créneau.",
    "regle_ajoutee": "La plage hebdomadaire est ajoutée.",
    "regle_supprimee": "La plage hebdomadaire est supprimée.",
    "absence_ajoutee": "L'absence est enregistrée.",
    "absence_supprimee": "L'absence est supprimée.",
}

# What a form can fix by itself, so the form is shown again with the message; NotFound and
# Forbidden go to the error page instead.
FORM_ERRORS = (ValidationError, Conflict)

_QUOTED_FIELD = re.compile(r"« ([a-z_]+) »")


class Problems(str):
    """A refused form's message (the first problem, as text) carrying every problem as
    (field, message), so `_messages.html` can list them all, each tied to its field."""

    problems: list[tuple[str | None, str]]


def _relabel(message: str) -> str:
    return _QUOTED_FIELD.sub(lambda m: f"« {FIELD_LABELS.get(m.group(1), m.group(1))} »", message)


def readable(error: TelmiError) -> Problems:
    """The service's message with field keys replaced by the labels of the form."""
    text = Problems(_relabel(error.message))
    text.problems = [(field, _relabel(message)) for field, message in error.problems]
    return text


def confirmation(request: web.Request) -> str | None:
    return CONFIRMATIONS.get(request.query.get("ok", ""))


def plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n < 2 else many}"


class LocalTime:
    """Formats UTC instants in the region's time zone, in French."""

    def __init__(self, tz: ZoneInfo) -> None:
        self.tz = tz

    def local(self, instant: datetime) -> datetime:
        return instant.astimezone(self.tz)

    def day(self, value: datetime | date, *, year: bool = True) -> str:
        d = self.local(value).date() if isinstance(value, datetime) else value
        text = f"{WEEKDAYS[d.weekday()]} {d.day}{'er' if d.day == 1 else ''} {MONTHS[d.month - 1]}"
        return f"{text} {d.year}" if year else text

    def hm(self, instant: datetime) -> str:
        return self.local(instant).strftime("%H:%M")

    def when(self, instant: datetime) -> str:
        return f"{self.day(instant)} à {self.hm(instant)}"

    def span(self, start: datetime, end: datetime) -> str:
        return f"{self.hm(start)}–{self.hm(end)}"


def act_label(value: str | ActType) -> str:
    """Rules store act types as strings; bookings and slots as `ActType`."""
    return label(ActType(value))


def page_context(request: web.Request, **context: Any) -> dict[str, Any]:
    """The helpers every page of this area uses, plus the page's own context."""
    return {
        "t": LocalTime(request.app[SETTINGS].tz),
        "status_label": LABELS,
        "act_label": act_label,
        "offered": act_types_of,
        "act_types": list(ActType),
        "weekdays": WEEKDAYS,
        "plural": plural,
        "notice": confirmation(request),
        "error": None,
        **context,
    }
