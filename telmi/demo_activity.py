"""The living demo: a month of activity on top of `demo.load`, made by the real services.

`demo.load` builds the region and its people; without this module the nurse's first search
says « Aucun créneau libre ». Here every specialist publishes weekly hours (and a few
absences), five facilities book, hold consultations, cancel or miss them, ask for
tele-expertise with photos, and get notified; one teleconsultation of the demo nurse with
the demo dermatologist is always about to start.

The past is made by replaying it, not by writing rows: every service takes `now`, so the
rules are created a month back (`HISTORY`) and slots synchronised as of then, the
facilities' residents registered then too (`demo_residents`), each booking is made days
before its slot and the resident's consent recorded with it (except for the visits booked
in the last hours: their consent is still to be collected), consultations are joined,
attended and ended at the slot's time (so their act goes to the log through
`acts.append`, with that consent), no-shows are marked by
the job that marks them, tele-expertise requests are sent, taken, questioned, answered,
declined or left to expire by the overdue job two weeks past their due date (each sent
with the resident's consent, recorded as the request was written), and the
booking notices and reminders are created at the moments the jobs would have created
them. Nothing reads the wall clock: every instant derives from the given clock.

Notifications: the carers read theirs « yesterday » (`RECENT` before now) with
`notify.mark_read`, which marks everything unread at once; so everything older is written
before that step and everything newer after it (the visits and requests of the last day,
the notices of today), and the step refuses to mark a user whose notices already include
a newer one.

The joinable consultation (`_Run.joinable`): a room opens `room_opens_minutes` before its
slot and closes at its end, and a slot can be booked only before it begins. `sync_slots`,
the only writer of slots, withdraws the free slots no rule wants (a booked one it keeps),
so the slot comes from a rule: a free slot of Dr Morel's own hours (kept open on public
holidays, so that the demo works on 1 May too), or else the one slot of a rule valid that
day only, at a five-minute mark where `availability.preview` shows the rule engine yields
it (not in the spring gap; no rule crosses midnight, so at 23:50 it is 00:00 the next day)
and `create_rule` finds it overlaps none of her hours. Best is a slot whose room is open
now; failing that (in October's repeated hour, whose second pass no local time names),
one begun within the hour and long enough, booked five minutes before it began by the
same services run at that instant; failing that, one whose room opens within 15 minutes.
Booked, the slot is kept by every later synchronisation, and its rule yields no other.

Idempotent and resumable: each thing is found by a natural key before it is made (staff
by e-mail, residents by their facility's « DEMO-… » reference, a specialist's hours by
the existence of any rule of theirs, bookings and requests by their facility and their
resident, the joinable consultation by its time window), and each is made in its own
transaction, so a run stopped half-way resumes where it stopped, and a second run adds
nothing.
"""

from __future__ import annotations

import asyncio
import io
import math
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from PIL import Image, ImageDraw, ImageFilter, ImageFont
from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from scheduling.clock import Clock, FrozenClock
from telmi import (
    accounts,
    availability,
    booking,
    consent,
    consultations,
    demo,
    demo_residents,
    expertise,
    jobs,
    notify,
    patients,
    photos,
)
from telmi.consent import ConsentInput
from telmi.context import Context
from telmi.db import Database
from telmi.errors import Conflict
from telmi.models import (
    ActType,
    AvailabilityRule,
    Booking,
    BookingStatus,
    ConsentGiver,
    ConsentMethod,
    Consultation,
    ConsultationStatus,
    ExpertiseRequest,
    ExpertiseStatus,
    ExpertiseUrgency,
    Notification,
    Patient,
    Role,
    Slot,
    SlotStatus,
    User,
)
from telmi.settings import Settings

Progress = Callable[[str], None]

HISTORY = timedelta(days=30)  # how far back the simulated month starts
RECENT = timedelta(days=1)  # the carers last read their notifications this long ago
PAST_UNTIL = timedelta(days=2)  # past visits end before this, so their notices are old
UPCOMING_FROM = timedelta(hours=3)  # upcoming visits start after this: none is joinable
LEFT = timedelta(minutes=10)  # the least of the joinable consultation still to come
NOTICE_WINDOW = timedelta(days=2)  # what the reminders job looks back over
KINDS = (
    "users",
    "residents",
    "rules",
    "absences",
    "slots",
    "bookings",
    "consultations",
    "acts",
    "expertise_requests",
    "photos",
    "notifications",
)

TC, TE = ActType.TELECONSULTATION, ActType.TELEEXPERTISE
TS, TSV = ActType.TELESOIN, ActType.TELESURVEILLANCE
_NURSE_LOGIN = next(login for login in demo.LOGINS if login.role is Role.STAFF)
MOREL = demo.SPECIALISTS[0][1]


# --- who --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Carer:
    """A staff account; `site` is the facility's prefix in its residents' references."""

    site: str
    email: str
    name: str
    facility: str  # its name in demo.FACILITIES


NURSE = Carer("TIL", _NURSE_LOGIN.email, _NURSE_LOGIN.name, "EHPAD Les Tilleuls")
STAFF = (
    NURSE,
    Carer("SAL", "marc.rousseau@telmi.demo", "Marc Rousseau", "EHPAD Les Salines"),
    Carer("MON", "lea.bertrand@telmi.demo", "Léa Bertrand", "Maison de santé du Montbardois"),
    Carer("ACA", "nadia.haddad@telmi.demo", "Nadia Haddad", "EHPAD Les Acacias"),
    Carer(
        "VDD",
        "julie.fournier@telmi.demo",
        "Julie Fournier",
        "Centre de santé de la Vallée du Doubs",
    ),
)


def facility_finess(name: str) -> str:
    """The FINESS demo.load gave the facility of that name."""
    for index, (departement, _code, facility, _commune, _postcode) in enumerate(
        demo.FACILITIES, start=1
    ):
        if facility == name:
            return demo.finess_for(departement, index)
    raise KeyError(name)


# --- weekly hours -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Hours:
    weekday: int  # 0 = Monday
    start: str
    end: str
    minutes: int
    acts: tuple[ActType, ...]
    buffer: int = 0


SCHEDULES: dict[str, tuple[Hours, ...]] = {
    "Dr Claire Morel": (
        Hours(0, "09:00", "12:00", 20, (TC, TE)),
        Hours(2, "14:00", "17:00", 20, (TC,)),
        Hours(4, "09:00", "12:00", 20, (TC, TE)),
    ),
    "Dr Julien Perrin": (
        Hours(1, "08:30", "12:30", 15, (TE,)),
        Hours(3, "13:30", "17:30", 15, (TE,)),
    ),
    "Dr Sophie Girard": (
        Hours(0, "14:00", "18:00", 30, (TC,)),
        Hours(3, "09:00", "12:00", 30, (TC, TE)),
    ),
    "Dr Antoine Lambert": (
        Hours(2, "09:00", "12:00", 20, (TE,)),
        Hours(4, "14:00", "17:00", 20, (TE,)),
    ),
    "Dr Nicolas Fontaine": (
        Hours(1, "09:00", "12:00", 30, (TC,)),
        Hours(3, "14:00", "17:00", 30, (TC, TSV)),
    ),
    "Dr Isabelle Roux": (
        Hours(0, "13:30", "17:30", 20, (TC,), 10),
        Hours(2, "09:00", "12:00", 20, (TC, TE)),
    ),
    "Dr Mathieu Chevalier": (
        Hours(1, "14:00", "18:00", 15, (TE,)),
        Hours(4, "09:00", "12:00", 15, (TE,)),
    ),
    "Dr Anne Mercier": (
        Hours(0, "09:00", "12:00", 30, (TC,)),
        Hours(1, "09:00", "12:00", 30, (TC,)),
        Hours(3, "14:00", "17:00", 30, (TC,)),
    ),
    "Dr Pierre Bonnet": (
        Hours(2, "14:00", "18:00", 45, (TC,)),
        Hours(4, "09:00", "12:00", 30, (TC,)),
    ),
    "Dr Hélène Dupuis": (
        Hours(1, "14:00", "17:00", 30, (TC, TE)),
        Hours(3, "09:00", "12:00", 30, (TC,)),
    ),
    "Dr Thomas Guérin": (
        Hours(0, "14:00", "18:00", 45, (TC,), 15),
        Hours(3, "14:00", "18:00", 45, (TC,), 15),
    ),
    "Dr Camille Faure": (
        Hours(1, "09:00", "13:00", 45, (TC,), 15),
        Hours(4, "14:00", "17:00", 45, (TC,), 15),
    ),
    "Dr Marie Blanchard": (
        Hours(2, "09:00", "12:00", 45, (TC,), 15),
        Hours(4, "09:00", "12:00", 45, (TC,), 15),
    ),
    "Dr François Renaud": (
        Hours(0, "09:00", "12:00", 60, (TC,)),
        Hours(3, "14:00", "17:00", 60, (TC,)),
    ),
    "Dr Laurent Picard": (
        Hours(1, "14:00", "17:00", 30, (TC, TE)),
        Hours(4, "09:00", "12:00", 30, (TC,)),
    ),
    "Dr Émilie Gauthier": (
        Hours(2, "09:00", "12:00", 20, (TE,)),
        Hours(3, "09:00", "11:00", 20, (TE,)),
    ),
    "Dr Nathalie Colin": (
        Hours(0, "14:00", "17:00", 30, (TC, TS)),
        Hours(2, "14:00", "17:00", 20, (TE,)),
    ),
    "Dr Olivier Brun": (
        Hours(1, "09:00", "12:00", 20, (TE,)),
        Hours(3, "09:00", "12:00", 20, (TE,)),
    ),
    "Dr Sandrine Lefèvre": (Hours(4, "13:30", "17:30", 30, (TC, TS)),),
    "Dr Stéphane Marchand": (Hours(0, "09:00", "12:00", 30, (TC, TSV)),),
    "Dr Valérie Arnaud": (Hours(3, "14:00", "17:00", 20, (TE,)),),
    "Dr Christophe Dumont": (
        Hours(1, "09:00", "12:00", 30, (TC, TSV)),
        Hours(4, "14:00", "17:00", 30, (TC,)),
    ),
    "Dr Aurélie Vidal": (Hours(2, "14:00", "17:00", 20, (TC, TE)),),
    "Dr Benoît Masson": (
        Hours(0, "14:00", "17:00", 30, (TC,)),
        Hours(3, "09:00", "12:00", 20, (TE,)),
    ),
    "Dr Delphine Caron": (
        Hours(1, "14:00", "17:00", 45, (TC, TS)),
        Hours(4, "09:00", "12:00", 45, (TS,)),
    ),
}
# The demo dermatologist keeps her hours on public holidays: the joinable consultation then
# comes from her own slots whenever her hours cover the moment of the run.
OPEN_ON_HOLIDAYS = frozenset({MOREL})


@dataclass(frozen=True)
class Absence:
    specialist: str
    first_day: int  # local days from today; negative: already over
    days: int
    reason: str


ABSENCES = (
    Absence("Dr Julien Perrin", -14, 3, "Formation continue (DPC)"),
    Absence("Dr Pierre Bonnet", 7, 7, "Congés"),
    Absence("Dr Sophie Girard", 15, 3, "Congrès de dermatologie"),
)


# --- visits -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Visit:
    """A booking to replay: `day` is its local day from today (negative: in the past), `lead`
    how many days before that day it was booked, during office hours (upcoming visits: how
    long before now; under a day, that many hours ago, since the carers' last reading)."""

    site: str
    no: int
    specialty: str
    act: ActType
    day: int
    outcome: str  # completed, cancelled, no_show or upcoming
    lead: timedelta
    reason: str
    specialist: str | None = None
    cancel: str = ""
    cancelled_by_specialist: bool = False

    @property
    def ref(self) -> str:
        return f"DEMO-{self.site}-{self.no:03d}"

    @property
    def recent(self) -> bool:
        """Booked since the carers last read their notifications."""
        return self.day > 0 and self.lead < RECENT

    @property
    def consent_pending(self) -> bool:
        """Booked in the last hours: the resident's consent is still to be collected."""
        return self.day > 0 and self.lead < D


D, H = timedelta(days=1), timedelta(hours=1)
VISITS = (
    Visit("TIL", 1, "dermatologie", TC, -21, "completed", 7 * D,
          "Eczéma des mains, avis sur le traitement", MOREL),
    Visit("TIL", 2, "geriatrie", TC, -18, "completed", 5 * D,
          "Chutes répétées, revue des traitements"),
    Visit("TIL", 3, "gerontopsychiatrie", TC, -14, "completed", 6 * D,
          "Troubles du comportement en fin de journée"),
    Visit("TIL", 4, "plaies-cicatrisation", TS, -10, "completed", 4 * D,
          "Suivi d'un ulcère de jambe"),
    Visit("TIL", 5, "cardiologie", TC, -12, "cancelled", 5 * D,
          "Essoufflement à l'effort", cancel="Résident hospitalisé"),
    Visit("TIL", 6, "psychiatrie", TC, -7, "no_show", 6 * D,
          "Anxiété, adaptation du traitement"),
    Visit("TIL", 7, "dermatologie", TE, -5, "completed", 3 * D,
          "Lésion pigmentée du dos, avis en direct"),
    Visit("TIL", 8, "neurologie", TC, -4, "cancelled", 8 * D,
          "Tremblements d'apparition récente",
          cancel="Indisponibilité du spécialiste, à reprogrammer", cancelled_by_specialist=True),
    Visit("TIL", 9, "dermatologie", TC, 3, "upcoming", 6 * D,
          "Contrôle de l'eczéma des mains", MOREL),
    Visit("TIL", 10, "geriatrie", TC, 2, "upcoming", 9 * D,
          "Bilan gériatrique d'entrée"),
    Visit("TIL", 11, "diabetologie", TSV, 6, "upcoming", 3 * D,
          "Glycémies instables, revue du carnet"),
    Visit("TIL", 12, "plaies-cicatrisation", TS, 8, "upcoming", 5 * H,
          "Escarre du talon, suivi"),
    Visit("TIL", 13, "cardiologie", TC, 12, "upcoming", 2 * H,
          "Suivi d'insuffisance cardiaque"),
    Visit("TIL", 14, "gerontopsychiatrie", TC, 5, "cancelled", 8 * D,
          "Humeur dépressive, réévaluation", cancel="Famille indisponible ce jour-là"),
    Visit("SAL", 1, "geriatrie", TC, -20, "completed", 6 * D,
          "Perte de poids, avis nutritionnel"),
    Visit("SAL", 2, "dermatologie", TC, -15, "completed", 4 * D,
          "Prurit diffus"),
    Visit("SAL", 3, "psychiatrie", TC, -9, "no_show", 5 * D,
          "Insomnie sévère"),
    Visit("SAL", 4, "cardiologie", TC, -6, "cancelled", 7 * D,
          "Palpitations", cancel="Rendez-vous obtenu en présentiel"),
    Visit("SAL", 5, "gerontopsychiatrie", TC, 4, "upcoming", 10 * D,
          "Agitation nocturne"),
    Visit("SAL", 6, "neurologie", TC, 9, "upcoming", 6 * H,
          "Suivi de maladie de Parkinson"),
    Visit("MON", 1, "cardiologie", TSV, -19, "completed", 5 * D,
          "Revue des données de télésurveillance"),
    Visit("MON", 2, "pneumologie", TC, -11, "completed", 6 * D,
          "Toux chronique"),
    Visit("MON", 3, "diabetologie", TC, -8, "cancelled", 5 * D,
          "Équilibre glycémique", cancel="Patient hospitalisé"),
    Visit("MON", 4, "nephrologie", TSV, -5, "no_show", 7 * D,
          "Suivi de la fonction rénale"),
    Visit("MON", 5, "dermatologie", TC, 3, "upcoming", 4 * D,
          "Kératose du visage"),
    Visit("MON", 6, "pneumologie", TC, 10, "upcoming", 2 * D,
          "Dyspnée, résultats des EFR"),
    Visit("ACA", 1, "gerontopsychiatrie", TC, -17, "completed", 6 * D,
          "Confusion, avis sur le traitement"),
    Visit("ACA", 2, "medecine-physique", TS, -13, "completed", 5 * D,
          "Rééducation après fracture du col du fémur"),
    Visit("ACA", 3, "plaies-cicatrisation", TC, -10, "no_show", 4 * D,
          "Plaie chronique de la jambe"),
    Visit("ACA", 4, "geriatrie", TC, -4, "cancelled", 9 * D,
          "Dénutrition",
          cancel="Spécialiste absent, créneau à reprendre", cancelled_by_specialist=True),
    Visit("ACA", 5, "psychiatrie", TC, 2, "upcoming", 7 * D,
          "Suivi d'un traitement antidépresseur"),
    Visit("ACA", 6, "plaies-cicatrisation", TS, 7, "upcoming", 3 * H,
          "Pansement d'une escarre sacrée"),
    Visit("VDD", 1, "neurologie", TC, -16, "completed", 6 * D,
          "Céphalées persistantes"),
    Visit("VDD", 2, "dermatologie", TC, -12, "completed", 5 * D,
          "Lésion du cuir chevelu", MOREL),
    Visit("VDD", 3, "cardiologie", TC, -6, "no_show", 6 * D,
          "Hypertension mal contrôlée"),
    Visit("VDD", 4, "pneumologie", TC, -9, "cancelled", 4 * D,
          "Bronchite traînante", cancel="Amélioration, consultation annulée"),
    Visit("VDD", 5, "diabetologie", TC, 5, "upcoming", 5 * D,
          "Adaptation de l'insuline"),
    Visit("VDD", 6, "geriatrie", TC, 11, "upcoming", 4 * D,
          "Évaluation de l'autonomie"),
)  # fmt: skip
OUTCOMES = (
    "Compte rendu transmis au médecin traitant ; traitement adapté.",
    "Pas de modification du traitement ; réévaluation dans trois mois.",
    "Examens complémentaires prescrits ; nouvelle téléconsultation à prévoir.",
    "Conseils donnés à l'équipe soignante ; ordonnance envoyée à l'établissement.",
)
JOINABLE_REF = "DEMO-TIL-090"
JOINABLE_REASON = "Suivi d'un eczéma des mains : évolution sous dermocorticoïdes"


# --- tele-expertise -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Ask:
    """A tele-expertise request to replay up to `state`; `sent` is how long before now it
    was sent (a draft: created), on a working day when that is two days or more."""

    site: str
    no: int
    specialty: str
    state: ExpertiseStatus
    urgency: ExpertiseUrgency
    sent: timedelta
    question: str
    context: str
    photos: int
    by: str | None = None  # the specialist who acts on it (default: the specialty's first)
    named: bool = False  # addressed to that specialist by name
    asked: bool = False  # answered after a request for more information
    answer: str = ""

    @property
    def ref(self) -> str:
        return f"DEMO-{self.site}-{self.no:03d}"

    @property
    def recent(self) -> bool:
        return self.sent < RECENT


S = ExpertiseStatus
U = ExpertiseUrgency
ASKS = (
    Ask("MON", 101, "diabetologie", S.EXPIRED, U.H24, HISTORY - D,
        "Plaie de l'avant-pied chez un patient diabétique : faut-il une décharge ?",
        "Patient de 71 ans, diabète de type 2 sous insuline, neuropathie connue.", 1),
    Ask("TIL", 101, "plaies-cicatrisation", S.ANSWERED, U.H24, 20 * D,
        "Ulcère de la face interne de la jambe gauche, 4 cm, fond fibrineux. Quel pansement ?",
        "Résidente de 86 ans, insuffisance veineuse. Hydrocolloïdes depuis trois semaines.", 2,
        answer="Détersion mécanique douce, puis pansement alginate ; compression veineuse si "
        "l'IPS le permet. Nouvelle photo dans 10 jours."),
    Ask("TIL", 102, "dermatologie", S.ANSWERED, U.H72, 12 * D,
        "Plaque rouge et squameuse du dos de la main, prurigineuse, depuis trois semaines.",
        "Résidente de 84 ans, diabétique. Dermocorticoïde modéré depuis 10 jours, sans effet.", 2,
        by=MOREL, asked=True,
        answer="Aspect d'eczéma de contact. Arrêt du savon actuel, dermocorticoïde fort une "
        "fois par jour pendant 7 jours puis décroissance. Nouvelle photo dans 15 jours."),
    Ask("SAL", 101, "plaies-cicatrisation", S.ANSWERED, U.H72, 8 * D,
        "Escarre du talon droit, stade 2, qui ne cicatrise pas depuis un mois.",
        "Résident de 90 ans, alité, dénutrition modérée.", 2,
        answer="Mise en décharge stricte du talon, pansement hydrocellulaire, bilan "
        "nutritionnel. Réévaluation par photo dans 7 jours."),
    Ask("VDD", 101, "dermatologie", S.DECLINED, U.H72, 6 * D,
        "Lésion pigmentée de la joue, d'aspect irrégulier, qui a grossi en quelques mois.",
        "Patiente de 77 ans, antécédent de carcinome basocellulaire.", 2, by=MOREL),
    Ask("ACA", 101, "dermatologie", S.ANSWERED, U.D7, 5 * D,
        "Éruption du tronc apparue après un changement de traitement.",
        "Résident de 82 ans ; nouvel antihypertenseur depuis 12 jours.", 2, by=MOREL, named=True,
        answer="Toxidermie probable, sans signe de gravité. Avis au médecin traitant pour "
        "remplacer l'antihypertenseur ; émollient et surveillance."),
    Ask("TIL", 103, "dermatologie", S.NEEDS_INFORMATION, U.D7, 3 * D,
        "Lésion croûteuse du cuir chevelu qui saigne au contact.",
        "Résident de 88 ans, ancien agriculteur, très exposé au soleil.", 2, by=MOREL),
    Ask("SAL", 102, "dermatologie", S.TAKEN, U.H72, 30 * H,
        "Plaques rouges des plis, suintantes, depuis une semaine.",
        "Résidente de 79 ans, obèse, incontinente.", 2, by=MOREL),
    Ask("MON", 102, "plaies-cicatrisation", S.TAKEN, U.H72, 20 * H,
        "Plaie post-opératoire du genou, berges rouges, écoulement clair.",
        "Patient de 68 ans, prothèse totale du genou il y a trois semaines.", 2),
    Ask("ACA", 102, "plaies-cicatrisation", S.SENT, U.H24, 5 * H,
        "Désunion de cicatrice sur l'avant-bras après une chute.",
        "Résidente de 93 ans sous anticoagulant.", 2),
    Ask("TIL", 104, "dermatologie", S.SENT, U.H72, 3 * H,
        "Placard rouge et chaud de la jambe droite depuis hier.",
        "Résident de 81 ans, apyrétique, ulcère de jambe ancien.", 2),
    Ask("TIL", 105, "dermatologie", S.DRAFT, U.H72, 2 * H,
        "Tache brune du dos de la main qui change d'aspect.",
        "Résidente de 90 ans.", 1),
)  # fmt: skip
# What the nurses filled in the specialty's request form (`request_forms.BUILTIN`), by
# resident: required for a tele-expertise (request or booked act), optional otherwise.
ANSWERS: dict[str, dict[str, Any]] = {
    "DEMO-TIL-001": {"lesion_site": "Paumes et dos des mains", "duration": "2 mois",
                     "evolution": "Extension", "pruritus": True,
                     "treatments_tried": "Émollient"},
    "DEMO-TIL-007": {"lesion_site": "Dos, région scapulaire gauche", "duration": "Plusieurs mois",
                     "evolution": "Extension", "pruritus": False, "bleeding": False,
                     "dermoscopy": True},
    "DEMO-TIL-090": {"lesion_site": "Paumes et dos des mains", "duration": "3 mois",
                     "evolution": "Régression", "pruritus": True,
                     "treatments_tried": "Dermocorticoïde fort, émollient"},
    "DEMO-TIL-101": {"wound_type": "Ulcère veineux", "wound_site": "Face interne de la jambe gauche",
                     "wound_age": "2 mois", "length_cm": 4, "width_cm": 3,
                     "depth": "Superficielle", "exudate": "Modéré", "infection_signs": False,
                     "pain": True, "current_dressing": "Hydrocolloïde"},
    "DEMO-TIL-102": {"lesion_site": "Dos de la main droite", "duration": "3 semaines",
                     "evolution": "Extension", "pruritus": True, "bleeding": False,
                     "dermoscopy": False, "treatments_tried": "Dermocorticoïde modéré, 10 jours"},
    "DEMO-SAL-101": {"wound_type": "Escarre", "wound_site": "Talon droit", "wound_age": "1 mois",
                     "length_cm": 2.5, "width_cm": 2, "depth": "Superficielle",
                     "exudate": "Faible", "infection_signs": False, "pain": True,
                     "current_dressing": "Hydrocellulaire"},
    "DEMO-VDD-101": {"lesion_site": "Joue gauche", "duration": "Quelques mois",
                     "evolution": "Extension", "pruritus": False, "bleeding": False,
                     "dermoscopy": True},
    "DEMO-ACA-101": {"lesion_site": "Tronc et racine des membres", "duration": "5 jours",
                     "evolution": "Extension", "pruritus": True, "bleeding": False,
                     "treatments_tried": "Émollient"},
    "DEMO-TIL-103": {"lesion_site": "Cuir chevelu, vertex", "duration": "2 mois",
                     "evolution": "Extension", "pruritus": False, "bleeding": True,
                     "dermoscopy": False},
    "DEMO-SAL-102": {"lesion_site": "Plis sous-mammaires et inguinaux", "duration": "1 semaine",
                     "evolution": "Extension", "pruritus": True, "bleeding": False},
    "DEMO-MON-102": {"wound_type": "Plaie chirurgicale", "wound_site": "Genou droit",
                     "wound_age": "3 semaines", "length_cm": 12, "width_cm": 1,
                     "depth": "Superficielle", "exudate": "Modéré", "infection_signs": True,
                     "pain": True, "current_dressing": "Pansement sec"},
    "DEMO-ACA-102": {"wound_type": "Autre", "wound_site": "Avant-bras gauche",
                     "wound_age": "2 jours", "length_cm": 5, "width_cm": 1.5,
                     "depth": "Superficielle", "exudate": "Faible", "infection_signs": False,
                     "pain": True, "current_dressing": "Strips et pansement gras"},
    "DEMO-TIL-104": {"lesion_site": "Jambe droite", "duration": "1 jour",
                     "evolution": "Extension", "pruritus": False, "bleeding": False},
    "DEMO-TIL-105": {"lesion_site": "Dos de la main gauche", "duration": "6 mois",
                     "evolution": "Extension"},
}  # fmt: skip
ASK_TEXT = (
    "Pouvez-vous envoyer une photo plus rapprochée, avec la règle, et préciser depuis quand "
    "la lésion s'étend ?"
)
REPLY_TEXT = "Nouvelle photo jointe. La lésion s'étend depuis une semaine environ, sans fièvre."
DECLINE_TEXT = (
    "Cette lésion demande un examen clinique et probablement une biopsie : merci d'orienter "
    "la patiente vers une consultation de dermatologie en présentiel."
)
FIRST_OF = {specialty: name for specialty, name in reversed(demo.SPECIALISTS)}


def _residents() -> dict[str, tuple[demo_residents.Who, ...]]:
    """Per facility prefix, the residents of its visits, requests and joinable consultation,
    in reference order (a resident's rank numbers it among the site's)."""
    who = {v.ref: demo_residents.Who(v.ref) for v in VISITS}
    who |= {a.ref: demo_residents.Who.described(a.ref, a.context) for a in ASKS}
    who[JOINABLE_REF] = demo_residents.Who(JOINABLE_REF, qualified=True)
    by_site: dict[str, list[demo_residents.Who]] = {}
    for ref in sorted(who):
        by_site.setdefault(ref.split("-")[1], []).append(who[ref])
    return {site: tuple(residents) for site, residents in by_site.items()}


RESIDENTS = _residents()
# Who answers for a resident with cognitive disorders: the person of trust or the guardian.
REPRESENTED = frozenset({"gerontopsychiatrie", "psychiatrie"})


def consent_of(ref: str, specialty: str) -> ConsentInput:
    """The resident's consent as the nurse records it: oral mostly, given by the resident,
    or for a resident with cognitive disorders by the person of trust or a guardian."""
    rng = random.Random(f"{ref}:consent")
    giver = ConsentGiver.RESIDENT if rng.random() < 0.85 else ConsentGiver.TRUSTED_PERSON
    if specialty in REPRESENTED:
        giver = rng.choice((ConsentGiver.TRUSTED_PERSON, ConsentGiver.LEGAL_REPRESENTATIVE))
    method = ConsentMethod.WRITTEN if rng.random() < 0.25 else ConsentMethod.ORAL
    note = "mesure de tutelle" if giver is ConsentGiver.LEGAL_REPRESENTATIVE else ""
    return ConsentInput.model_validate({"given_by": giver, "method": method, "note": note})


# --- photos -------------------------------------------------------------------------------------


def lesion_photo(seed: str, *, wound: bool = False, size: tuple[int, int] = (720, 540)) -> bytes:
    """A synthetic clinical photo (JPEG): skin, an irregular reddish patch (a wound: a
    yellowish bed in a red rim), a ruler in centimetres. Drawn, so it shows no one."""
    rng = random.Random(seed)
    width, height = size
    light = rng.randint(205, 235)
    skin = (light, light - rng.randint(35, 55), light - rng.randint(65, 90))
    shade = Image.linear_gradient("L").rotate(rng.choice([0, 90, 180, 270])).resize(size)
    image = Image.composite(
        Image.new("RGB", size, skin),
        Image.new("RGB", size, tuple(int(c * 0.86) for c in skin)),
        shade,
    )
    grain = Image.effect_noise((width // 4, height // 4), 24).resize(size).convert("RGB")
    image = Image.blend(image, grain, 0.05)
    cx, cy = width * rng.uniform(0.38, 0.62), height * rng.uniform(0.32, 0.52)
    radius = min(size) * rng.uniform(0.12, 0.2)
    phases = [rng.uniform(0, 2 * math.pi) for _ in range(2)]

    def outline(scale: float) -> list[tuple[float, float]]:
        points = []
        for i in range(32):
            a = 2 * math.pi * i / 32
            k = 1 + 0.18 * math.sin(3 * a + phases[0]) + 0.1 * math.sin(5 * a + phases[1])
            k = scale * (k + rng.uniform(-0.07, 0.07))
            points.append((cx + radius * k * math.cos(a) * 1.3, cy + radius * k * math.sin(a)))
        return points

    red = (rng.randint(165, 200), rng.randint(50, 85), rng.randint(50, 80))
    layers = [(1.0, red, 0.1), (0.55, (215, 190, 110) if wound else (150, 45, 45), 0.2)]
    for scale, colour, blur in layers:
        mask = Image.new("L", size, 0)
        ImageDraw.Draw(mask).polygon(outline(scale), fill=190)
        mask = mask.filter(ImageFilter.GaussianBlur(radius * blur))
        image = Image.composite(Image.new("RGB", size, colour), image, mask)
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(3, 8)):
        x, y = cx + rng.uniform(-radius, radius), cy + rng.uniform(-radius, radius) * 0.8
        s = rng.uniform(2, 7)
        draw.ellipse((x - s, y - s, x + s, y + s), fill=(red[0] - 60, red[1] - 25, red[2] - 20))
    cm = 36  # pixels per centimetre
    left, top = int(width * 0.07), int(height * 0.83)
    draw.rectangle(
        (left, top, left + 10 * cm + 24, top + 52), fill=(246, 244, 236), outline=(110,) * 3
    )
    font = ImageFont.load_default()
    for mm in range(101):
        x = left + 12 + mm * cm / 10
        tick = 20 if mm % 10 == 0 else (13 if mm % 5 == 0 else 7)
        draw.line((x, top, x, top + tick), fill=(30, 30, 30), width=2 if mm % 10 == 0 else 1)
        if mm % 10 == 0:
            draw.text((x - 3, top + 26), str(mm // 10), fill=(30, 30, 30), font=font)
    draw.text((left + 10 * cm, top + 38), "cm", fill=(30, 30, 30), font=font)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


def _clean_photos(ref: str, indexes: Iterable[int], wound: bool) -> list[photos.Photo]:
    """Drawn, then cleaned like an upload (decoded, re-encoded without metadata)."""
    return [
        photos.clean(lesion_photo(f"{ref}:{i}", wound=wound), f"{ref}-{i + 1}.jpg") for i in indexes
    ]


# --- the run ------------------------------------------------------------------------------------


def _midnight(day: date, settings: Settings) -> datetime:
    return datetime.combine(day, time(), tzinfo=settings.tz).astimezone(UTC)


class _Run:
    """One run of the loader: the instant it stands at, the people, what it created."""

    def __init__(self, db: Database, now: datetime, settings: Settings, progress: Progress):
        self.db, self.now, self.settings, self.say = db, now, settings, progress
        self.tz = settings.tz
        self.today = now.astimezone(self.tz).date()
        self.start = now - HISTORY  # the rules were published then
        self.read_at = now - RECENT
        self.weeks = settings.slot_horizon_weeks
        self.url = settings.public_url
        self.counts = dict.fromkeys(KINDS, 0)
        self.store = photos.store_for(settings.photo_storage, settings.data_dir)
        self.policy = consultations.RoomPolicy(
            secret=settings.secret_key,
            opens_minutes=settings.room_opens_minutes,
            token_seconds=settings.join_token_seconds,
            grace_minutes=settings.room_grace_minutes,
        )
        self.vault = settings.vault
        self.staff: dict[str, User] = {}
        self.patients: dict[str, int] = {}  # resident reference -> id
        self.specialists: dict[str, User] = {}
        self.by_id: dict[int, User] = {}
        self.visited = 0

    # --- people ---

    async def people(self) -> None:
        """The specialists of demo.load, and the carers: the nurse of demo.load and four
        colleagues elsewhere, created here."""
        async with self.db.read() as session:
            self.specialists = {
                u.full_name: u
                for u in await session.scalars(
                    select(User).where(
                        User.role == Role.SPECIALIST, User.full_name.in_(list(SCHEDULES))
                    )
                )
            }
        if len(self.specialists) != len(SCHEDULES):
            raise RuntimeError("spécialistes de démonstration absents : lancez demo.load d'abord")
        self.by_id = {u.id: u for u in self.specialists.values()}
        self.say(f"Personnel soignant de {len(STAFF)} établissements")
        emails = [c.email for c in STAFF]
        async with self.db.write() as session:
            known = set(await session.scalars(select(User.email).where(User.email.in_(emails))))
            missing = [c for c in STAFF if c.email not in known]
            # One argon2 hash for the few accounts that share the demo password.
            hashed = await accounts.hash_password(demo.DEMO_PASSWORD) if missing else None
            for carer in missing:
                await accounts.create_user(
                    session,
                    email=carer.email,
                    full_name=carer.name,
                    role=Role.STAFF,
                    password=demo.DEMO_PASSWORD,
                    facility_finess=facility_finess(carer.facility),
                    password_hash=hashed,
                    now=self.start - D,  # their facility joined before the simulated month
                )
                self.counts["users"] += 1
            by_email = {
                u.email: u
                for u in await session.scalars(select(User).where(User.email.in_(emails)))
            }
        self.staff = {c.site: by_email[c.email] for c in STAFF}

    @property
    def nurse(self) -> User:
        return self.staff[NURSE.site]

    # --- residents ---

    async def residents(self) -> None:
        """The residents the visits and requests are for, registered by each facility's
        carer through `patients.create` when the facility joined, before the month."""
        self.say(f"Résidents de {len(STAFF)} établissements")
        for carer in STAFF:
            async with self.db.write() as session:
                await self._residents_of(session, carer.site)

    async def _residents_of(self, session: AsyncSession, site: str) -> None:
        staff = self.staff[site]
        rows = await session.execute(
            select(Patient.reference, Patient.id).where(Patient.facility_id == staff.facility_id)
        )
        known = {reference: patient_id for reference, patient_id in rows}
        for number, who in enumerate(RESIDENTS[site]):
            if who.reference in known:
                continue
            made = await patients.create(
                session,
                Context(staff, self.start - D + timedelta(minutes=number)),
                demo_residents.identity(site, number, who, self.today),
                vault=self.vault,
                tz=self.tz,
            )
            known[made.reference] = made.id
            self.counts["residents"] += 1
        self.patients |= {who.reference: known[who.reference] for who in RESIDENTS[site]}

    @property
    def morel(self) -> User:
        return self.specialists[MOREL]

    # --- availability ---

    async def availability(self) -> None:
        self.say("Disponibilités des spécialistes (règles hebdomadaires et absences)")
        for index, name in enumerate(SCHEDULES, start=1):
            async with self.db.write() as session:
                await self._hours(session, self.specialists[name])
            if index % 5 == 0 or index == len(SCHEDULES):
                self.say(f"  disponibilités des spécialistes {index}/{len(SCHEDULES)}")

    async def _hours(self, session: AsyncSession, specialist: User) -> None:
        """The specialist's weekly rules, published `HISTORY` ago, and the absences declared
        the day after (which close the slots they cover)."""
        if await session.scalar(
            select(AvailabilityRule.id).where(AvailabilityRule.specialist_id == specialist.id)
        ):
            return
        for hours in SCHEDULES[specialist.full_name]:
            rule = availability.RuleInput(
                weekday=hours.weekday,
                start=time.fromisoformat(hours.start),
                end=time.fromisoformat(hours.end),
                slot_minutes=hours.minutes,
                buffer_minutes=hours.buffer,
                act_types=list(hours.acts),
                open_on_public_holidays=specialist.full_name in OPEN_ON_HOLIDAYS,
            )
            _, report = await availability.create_rule(
                session, Context(specialist, self.start), rule, tz=self.tz, weeks=self.weeks
            )
            self.counts["rules"] += 1
            self.counts["slots"] += report.created
        for absence in ABSENCES:
            if absence.specialist != specialist.full_name:
                continue
            first = self.today + timedelta(days=absence.first_day)
            away = availability.ExceptionInput(
                starts_at=datetime.combine(first, time(), tzinfo=self.tz),
                ends_at=datetime.combine(
                    first + timedelta(days=absence.days), time(), tzinfo=self.tz
                ),
                reason=absence.reason,
            )
            await availability.create_exception(
                session, Context(specialist, self.start + D), away, tz=self.tz, weeks=self.weeks
            )
            self.counts["absences"] += 1

    async def horizon(self) -> None:
        """Slots up to the horizon from now, as the nightly job keeps them."""
        self.say(f"Créneaux des {self.weeks} semaines à venir")
        async with self.db.write() as session:
            for specialist in self.specialists.values():
                report = await availability.sync_slots(
                    session, specialist, now=self.now, tz=self.tz, weeks=self.weeks
                )
                self.counts["slots"] += report.created

    # --- visits ---

    def _office_hours(self, days_ago: int, seed: str) -> datetime:
        """A moment of the working day `days_ago` days before today (08:30 to 17:30)."""
        day = self.today - timedelta(days=days_ago)
        minutes = timedelta(minutes=random.Random(seed).randrange(9 * 60))
        return (datetime.combine(day, time(8, 30), tzinfo=self.tz) + minutes).astimezone(UTC)

    def _booked_at(self, visit: Visit) -> datetime:
        if visit.lead < D:
            return self.now - visit.lead
        days_ago = visit.lead.days - min(visit.day, 0)
        return max(self.start + H, self._office_hours(days_ago, f"{visit.ref}:booked"))

    async def visits(self, *, recent: bool) -> None:
        if not recent:
            self.say("Rendez-vous passés et à venir")
        plan = sorted(
            (v for v in VISITS if v.recent == recent), key=lambda v: (self._booked_at(v), v.ref)
        )
        for visit in plan:
            async with self.db.write() as session:
                await self._visit(session, visit)
            self.visited += 1
            if self.visited % 10 == 0 or self.visited == len(VISITS):
                self.say(f"  rendez-vous {self.visited}/{len(VISITS)}")

    def _windows(self, visit: Visit, booked_at: datetime) -> list[tuple[datetime, datetime]]:
        """Where to look for the visit's slot: its week, then the days around it."""
        day = _midnight(self.today + timedelta(days=visit.day), self.settings)
        week = timedelta(days=7)
        if visit.day < 0:
            until = self.now - PAST_UNTIL
            return [(day, min(day + week, until)), (booked_at, min(day, until))]
        start = max(day, self.now + UPCOMING_FROM)
        until = self.start + timedelta(weeks=self.weeks) - D  # slots published back then
        return [(start, min(start + week, until)), (start + week, min(start + 2 * week, until))]

    def _allowed(self, slot: booking.FreeSlot, visit: Visit) -> bool:
        if visit.specialist is not None:
            return slot.specialist_id == self.specialists[visit.specialist].id
        # Dr Morel's coming slots are the nurse's: no one else takes the one meant to join.
        return visit.day < 0 or slot.specialist_id != self.morel.id

    async def _slot_for(
        self, session: AsyncSession, visit: Visit, booked_at: datetime
    ) -> booking.FreeSlot | None:
        for start, end in self._windows(visit, booked_at):
            if end <= start:
                continue
            found = await booking.search_free_slots(
                session,
                specialty=visit.specialty,
                start=start,
                end=end,
                act_type=visit.act,
                now=booked_at,
                limit=40,
            )
            allowed = [s for s in found.items if self._allowed(s, visit)]
            if allowed:
                return random.Random(visit.ref).choice(allowed[:4])
        return None

    async def _notices(self, session: AsyncSession, at: datetime) -> None:
        """The booking notices the reminders job would have written at that moment."""
        await notify.booking_notices(
            session, now=at, tz=self.tz, public_url=self.url, since=NOTICE_WINDOW
        )

    async def _visit(self, session: AsyncSession, visit: Visit) -> None:
        staff, patient_id = self.staff[visit.site], self.patients[visit.ref]
        if await session.scalar(
            select(Booking.id).where(
                Booking.facility_id == staff.facility_id, Booking.patient_id == patient_id
            )
        ):
            return
        booked_at = self._booked_at(visit)
        slot = await self._slot_for(session, visit, booked_at)
        if slot is None:
            return  # no hours of that specialty that week (holidays): the visit is skipped
        new = booking.NewBooking(
            slot_id=slot.id,
            act_type=visit.act,
            patient_id=patient_id,
            reason=visit.reason,
            answers=ANSWERS.get(visit.ref, {}),
        )
        booked = await booking.book(session, Context(staff, booked_at), new)
        self.counts["bookings"] += 1
        if not visit.consent_pending:  # asked as the visit was arranged with the resident
            await consent.for_booking(
                session,
                Context(staff, booked_at + timedelta(minutes=2)),
                booked.id,
                consent_of(visit.ref, visit.specialty),
            )
        await self._notices(session, booked_at + timedelta(minutes=1))
        specialist = self.by_id[slot.specialist_id]
        if visit.outcome == "cancelled":
            latest = slot.starts_at if visit.day < 0 else self.now if visit.recent else self.read_at
            at = booked_at + (latest - booked_at) / 2
            days_ago = (self.today - at.astimezone(self.tz).date()).days
            office = self._office_hours(days_ago, f"{visit.ref}:cancelled")
            at = office if booked_at + H < office < latest - H else at
            who = specialist if visit.cancelled_by_specialist else staff
            cancellation = booking.Cancellation(reason=visit.cancel)
            await booking.cancel(session, Context(who, at), booked.id, cancellation)
            await self._notices(session, at + timedelta(minutes=1))
            return
        if visit.day > 0:
            return  # upcoming: its reminders come from the last step, at now
        for before in (timedelta(hours=20), timedelta(minutes=50), timedelta(minutes=10)):
            if slot.starts_at - before > booked_at:
                await notify.send_reminders(
                    session, now=slot.starts_at - before, tz=self.tz, public_url=self.url
                )
        if visit.outcome == "completed":
            await self._consult(session, booked.id, slot, staff, specialist, visit)
        # A no-show is left confirmed: the no-show job marks it once its slot has passed.

    async def _consult(
        self,
        session: AsyncSession,
        booking_id: int,
        slot: booking.FreeSlot,
        staff: User,
        specialist: User,
        visit: Visit,
    ) -> None:
        """Both join, both are present (the consultation starts), the specialist ends it."""
        rng = random.Random(visit.ref)
        start = slot.starts_at
        early = timedelta(minutes=min(self.policy.opens_minutes, 3))
        ticket = await consultations.join_ticket(
            session, Context(staff, start - early), booking_id, policy=self.policy, tz=self.tz
        )
        await consultations.join_ticket(
            session, Context(specialist, start), booking_id, policy=self.policy, tz=self.tz
        )
        minute = timedelta(minutes=1)
        for user, role, at in ((specialist, "specialist", start), (staff, "staff", start + minute)):
            await consultations.record_presence(
                session, ticket.room_id, f"user:{user.id}", role, now=at + minute
            )
        length = int((slot.ends_at - start).total_seconds() // 60)
        minutes = max(5, length - 2 - rng.randint(0, 6))
        ending = consultations.Ending(
            outcome=rng.choice(OUTCOMES),
            incidents="coupure du son, reprise après une minute" if rng.random() < 0.15 else "",
        )
        await consultations.end(
            session,
            Context(specialist, start + timedelta(minutes=2 + minutes)),
            ticket.consultation_id,
            ending,
            tz=self.tz,
            vault=self.vault,
        )
        self.counts["consultations"] += 1
        self.counts["acts"] += 1

    async def no_shows(self) -> None:
        """The no-show job, run now: past visits left confirmed were missed."""
        self.say("Rendez-vous non honorés")
        await jobs.mark_no_shows(self.db, FrozenClock(self.now), self.settings)

    # --- tele-expertise ---

    async def requests(self, *, recent: bool) -> None:
        plan = [a for a in sorted(ASKS, key=lambda a: -a.sent) if a.recent == recent]
        self.say(f"Téléexpertises {'des dernières heures' if recent else 'des semaines passées'}")
        for ask in plan:
            async with self.db.write() as session:
                await self._request(session, ask)

    async def _photos(
        self,
        session: AsyncSession,
        staff: User,
        request_id: int,
        ask: Ask,
        indexes: range,
        at: datetime,
    ) -> None:
        """Upload as the API does: all cleaned first, stored in the request's transaction."""
        wound = ask.specialty != "dermatologie"
        cleaned = await asyncio.to_thread(_clean_photos, ask.ref, indexes, wound)
        await expertise.add_photos(session, Context(staff, at), request_id, cleaned)
        for photo in cleaned:
            await self.store.save(session, photo)
        self.counts["photos"] += len(cleaned)

    async def _request(self, session: AsyncSession, ask: Ask) -> None:
        staff, patient_id = self.staff[ask.site], self.patients[ask.ref]
        if await session.scalar(
            select(ExpertiseRequest.id).where(
                ExpertiseRequest.facility_id == staff.facility_id,
                ExpertiseRequest.patient_id == patient_id,
            )
        ):
            return
        specialist = self.specialists[ask.by or FIRST_OF[ask.specialty]]
        sent = (
            self.now - ask.sent
            if ask.sent < 2 * D
            else self._office_hours(ask.sent.days, f"{ask.ref}:sent")
        )
        new = expertise.NewRequest(
            specialty=ask.specialty,
            specialist_id=specialist.id if ask.named else None,
            urgency=ask.urgency,
            patient_id=patient_id,
            question=ask.question,
            clinical_context=ask.context,
            answers=ANSWERS.get(ask.ref, {}),
            # A draft waits for the resident's answer; the others were sent with it.
            consent=None if ask.state is S.DRAFT else consent_of(ask.ref, ask.specialty),
        )
        minute = timedelta(minutes=1)
        request = await expertise.create(session, Context(staff, sent - 20 * minute), new)
        self.counts["expertise_requests"] += 1
        await self._photos(session, staff, request.id, ask, range(ask.photos), sent - 15 * minute)
        if ask.state is S.DRAFT:
            return
        url = self.url
        await expertise.send(session, Context(staff, sent), request.id, public_url=url)
        if ask.state is S.SENT:
            return
        if ask.state is S.EXPIRED:  # the overdue job: a reminder, then expiry two weeks later
            due = sent + expertise.WITHIN[ask.urgency]
            await expertise.overdue(session, now=due + 2 * H, public_url=url)
            await expertise.overdue(
                session, now=due + expertise.EXPIRES_AFTER_DUE + H, public_url=url
            )
            return
        if ask.state is S.DECLINED:
            await expertise.decline(
                session,
                Context(specialist, sent + 4 * H),
                request.id,
                expertise.ExpertiseDecline(body=DECLINE_TEXT),
                public_url=url,
            )
            return
        taken = sent + 2 * H
        await expertise.take(session, Context(specialist, taken), request.id, public_url=url)
        if ask.state is S.TAKEN:
            return
        answered = taken + 2 * H
        if ask.state is S.NEEDS_INFORMATION or ask.asked:
            await expertise.ask(
                session,
                Context(specialist, taken + H),
                request.id,
                expertise.ExpertiseNote(body=ASK_TEXT),
                public_url=url,
            )
            if ask.state is S.NEEDS_INFORMATION:
                return
            await self._photos(
                session, staff, request.id, ask, range(ask.photos, ask.photos + 1), taken + 18 * H
            )
            await expertise.reply(
                session,
                Context(staff, taken + 19 * H),
                request.id,
                expertise.ExpertiseNote(body=REPLY_TEXT),
                public_url=url,
            )
            answered = taken + 21 * H
        await expertise.answer(
            session,
            Context(specialist, answered),
            request.id,
            expertise.ExpertiseAnswer(body=ask.answer),
            tz=self.tz,
            vault=self.vault,
            public_url=url,
        )
        self.counts["acts"] += 1

    # --- notifications ---

    async def read_notices(self) -> None:
        """The carers and Dr Morel read their notifications `RECENT` ago."""
        self.say("Notifications lues la veille")
        async with self.db.write() as session:
            for user in (*self.staff.values(), self.morel):
                mine = Notification.user_id == user.id
                if await session.scalar(
                    select(Notification.id).where(mine, Notification.read_at.is_not(None)).limit(1)
                ):
                    continue  # read already (this step ran, or the user did)
                if await session.scalar(
                    select(Notification.id)
                    .where(mine, Notification.created_at > self.read_at)
                    .limit(1)
                ):
                    continue  # a newer notice exists: marking all would read it before it came
                await notify.mark_read(session, user, now=self.read_at)

    async def notices_now(self) -> None:
        """Today's booking notices and reminders, as the reminders job would write them."""
        self.say("Avis de rendez-vous et rappels du jour")
        async with self.db.write() as session:
            await self._notices(session, self.now)
            await notify.send_reminders(session, now=self.now, tz=self.tz, public_url=self.url)

    # --- the consultation to join now ---

    async def joinable(self) -> None:
        opens = timedelta(minutes=self.policy.opens_minutes)
        latest = self.now + opens + timedelta(minutes=15)  # its room opens within 15 minutes
        async with self.db.write() as session:
            existing = await self._joinable_booking(session, latest)
            if existing is not None:
                self._say_joinable(existing, opens, created=False)
                return
            await self._retire_past_one_day_rules(session)
            found = await self._slot_to_join(session, opens, latest)
            if found is None:
                self.say("Aucun créneau de Dr Morel ne peut ouvrir dans le quart d'heure.")
                return
            slot_id, booked_at = found
            new = booking.NewBooking(
                slot_id=slot_id,
                act_type=TC,
                patient_id=self.patients[JOINABLE_REF],
                reason=JOINABLE_REASON,
                answers=ANSWERS[JOINABLE_REF],
            )
            booked = await booking.book(session, Context(self.nurse, booked_at), new)
            self.counts["bookings"] += 1
            given = consent_of(JOINABLE_REF, demo.SPECIALISTS[0][0])  # Dr Morel may start it
            await consent.for_booking(session, Context(self.nurse, booked_at), booked.id, given)
        self._say_joinable(booked.slot.starts_at, opens, created=True)

    def _say_joinable(self, starts_at: datetime, opens: timedelta, *, created: bool) -> None:
        start = starts_at.astimezone(self.tz)
        room = (starts_at - opens).astimezone(self.tz)
        what = "prévue" if created else "déjà prévue"
        self.say(
            f"Téléconsultation {what} : {NURSE.name} et {MOREL}, le {start:%d/%m/%Y} à "
            f"{start:%H:%M} (salle ouverte dès {room:%H:%M})"
        )

    async def _joinable_booking(self, session: AsyncSession, latest: datetime) -> datetime | None:
        """The start of a nurse's teleconsultation with Dr Morel open now or soon, if any."""
        return await session.scalar(
            select(Slot.starts_at)
            .join(Booking, Booking.slot_id == Slot.id)
            .outerjoin(Consultation, Consultation.booking_id == Booking.id)
            .where(
                Booking.facility_id == self.nurse.facility_id,
                Booking.status == BookingStatus.CONFIRMED,
                Booking.act_type == TC,
                Slot.specialist_id == self.morel.id,
                Slot.starts_at <= latest,
                Slot.ends_at > self.now + timedelta(minutes=5),
                or_(Consultation.id.is_(None), Consultation.status != ConsultationStatus.ENDED),
            )
            .order_by(Slot.starts_at)
            .limit(1)
        )

    async def _slot_to_join(
        self, session: AsyncSession, opens: timedelta, latest: datetime
    ) -> tuple[int, datetime] | None:
        """A slot of Dr Morel for the nurse, and when she booked it, best first: one whose
        room is open now; else one that began within the hour and lasts long enough, booked
        five minutes before it began (rules name local times at their first pass, so in the
        repeated hour of October nothing else opens in time); else one whose room opens
        within 15 minutes. Each time a free slot of her own hours if one starts then,
        otherwise the slot of a one-day rule."""
        earliest = self.now - timedelta(hours=1)
        found = await booking.search_free_slots(
            session,
            specialty=demo.SPECIALISTS[0][0],
            start=earliest,
            end=latest + timedelta(seconds=1),
            act_type=TC,
            now=earliest,
            limit=100,
        )
        free = {s.starts_at: s for s in found.items if s.specialist_id == self.morel.id}
        step = timedelta(minutes=5)
        mark = datetime.fromtimestamp(int(earliest.timestamp()) // 300 * 300, UTC) + step
        marks = set()
        while mark <= latest:
            marks.add(mark)
            mark += step

        def preference(start: datetime) -> tuple[int, float]:
            if self.now < start <= self.now + opens:
                return 0, start.timestamp()
            if start <= self.now:
                return 1, -start.timestamp()
            return 2, start.timestamp()

        for start in sorted(marks | set(free), key=preference):
            booked_at = self.now if start > self.now else start - step
            slot = free.get(start)
            if slot is not None:
                if slot.ends_at >= self.now + LEFT:
                    return slot.id, booked_at
            elif (slot_id := await self._one_day_rule(session, start, booked_at)) is not None:
                return slot_id, booked_at
        return None

    async def _retire_past_one_day_rules(self, session: AsyncSession) -> None:
        """Earlier runs' one-day rules, their day past, leave « Mes disponibilités » (the
        slots booked from them stay, as every booked slot does)."""
        today = self.now.astimezone(self.tz).date()
        ctx, hers = Context(self.morel, self.now), availability.AvailabilityQuery()
        for rule in await availability.list_rules(session, ctx, hers):
            if rule.valid_until is not None and rule.valid_from == rule.valid_until < today:
                await availability.delete_rule(
                    session, ctx, rule.id, hers, tz=self.tz, weeks=self.weeks
                )

    async def _one_day_rule(
        self, session: AsyncSession, start: datetime, booked_at: datetime
    ) -> int | None:
        """A rule of one slot at `start`, valid that day only, published when it was booked
        and long enough to leave `LEFT` of it; None when the rule engine would not yield that
        slot or her hours overlap it."""
        local = start.astimezone(self.tz)
        needed = -(-(self.now + LEFT - start) // timedelta(minutes=5)) * 5
        for minutes in sorted({max(m, needed) for m in (30, 20, 15, 10)}, reverse=True):
            if minutes > availability.MAX_SLOT_MINUTES:
                return None
            wall_end = datetime.combine(local.date(), local.time()) + timedelta(minutes=minutes)
            if wall_end.date() != local.date():
                continue  # a rule's slots never cross midnight: the 00:00 one will do
            rule = availability.RuleInput(
                weekday=local.weekday(),
                start=local.time().replace(second=0, microsecond=0),
                end=wall_end.time().replace(second=0, microsecond=0),
                slot_minutes=minutes,
                act_types=[TC],
                valid_from=local.date(),
                valid_until=local.date(),
                open_on_public_holidays=True,
            )
            at, tz, weeks = Context(self.morel, booked_at), self.tz, self.weeks
            if not any(
                p.start == start for p in availability.preview(at, rule, tz=tz, weeks=weeks)
            ):
                return None  # DST: that wall-clock time is not this instant today
            try:
                _, report = await availability.create_rule(session, at, rule, tz=tz, weeks=weeks)
            except Conflict:
                continue  # overlaps her hours or an earlier such rule: a shorter one may not
            self.counts["rules"] += 1
            self.counts["slots"] += report.created
            return await session.scalar(
                select(Slot.id).where(
                    Slot.specialist_id == self.morel.id,
                    Slot.starts_at == start,
                    Slot.status == SlotStatus.OPEN,
                )
            )
        return None


async def _notification_count(db: Database) -> int:
    async with db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(Notification)) or 0)


async def load_activity(
    db: Database, *, clock: Clock, settings: Settings, progress: Progress = lambda _: None
) -> dict[str, int]:
    """Bring the demo to life (after `demo.load`); returns how many rows of each kind were
    created this time, all zeros when everything, the joinable consultation included, was
    there already."""
    run = _Run(db, clock.now(), settings, progress)
    notices_before = await _notification_count(db)
    await run.people()
    await run.residents()
    await run.availability()
    await run.visits(recent=False)
    await run.no_shows()
    await run.requests(recent=False)
    await run.read_notices()  # everything above happened before, everything below after
    await run.visits(recent=True)
    await run.requests(recent=True)
    await run.horizon()
    await run.joinable()
    await run.notices_now()
    run.counts["notifications"] = await _notification_count(db) - notices_before
    return run.counts
