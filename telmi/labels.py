"""French labels for the stored vocabularies, as the pages show them."""

from __future__ import annotations

import enum

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
