"""French labels for the stored vocabularies, as the pages show them."""

from __future__ import annotations

import enum
from datetime import date, datetime

from telmi.models import ActType, BookingStatus, FacilityCategory, Role

LABELS: dict[enum.Enum, str] = {
    Role.STAFF: "Établissement",
    Role.SPECIALIST: "Spécialiste",
    Role.REGIONAL: "Équipe régionale",
    Role.ADMIN: "Administration",
    FacilityCategory.HEALTH_CENTRE: "Centre ou maison de santé",
    FacilityCategory.NURSING_HOME: "EHPAD",
    FacilityCategory.DISABILITY_FACILITY: "Établissement pour personnes handicapées",
    FacilityCategory.HOSPITAL: "Établissement hospitalier",
    ActType.TELECONSULTATION: "Téléconsultation",
    ActType.TELEEXPERTISE: "Téléexpertise",
    ActType.TELESURVEILLANCE: "Télésurveillance",
    ActType.TELEASSISTANCE: "Téléassistance",
    ActType.REGULATION: "Régulation",
    ActType.TELESOIN: "Télésoin",
    BookingStatus.HELD: "En cours de réservation",
    BookingStatus.CONFIRMED: "Confirmé",
    BookingStatus.CANCELLED: "Annulé",
    BookingStatus.EXPIRED: "Expiré",
    BookingStatus.COMPLETED: "Réalisé",
    BookingStatus.NO_SHOW: "Non honoré",
}


def label(value: enum.Enum) -> str:
    return LABELS.get(value, str(value.value))


MONTHS = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
          "septembre", "octobre", "novembre", "décembre")  # fmt: skip


def day_month(day: date, *, year: bool = True) -> str:
    """« 1er décembre 2026 », « 2 décembre » with `year=False`."""
    text = f"{day.day}{'er' if day.day == 1 else ''} {MONTHS[day.month - 1]}"
    return f"{text} {day.year}" if year else text


def on(value: datetime | date, *, year: bool = True) -> str:
    """« le 1er décembre 2026 à 14 h 30 » for a datetime (already local: `astimezone` it
    first), « le 2 décembre 2026 » for a date; `year=False` leaves the year out."""
    day = value.date() if isinstance(value, datetime) else value
    text = "le " + day_month(day, year=year)
    if isinstance(value, datetime):
        text += f" à {value.hour} h" + (f" {value.minute:02d}" if value.minute else "")
    return text
