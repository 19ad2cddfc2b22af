"""Demo data: Bourgogne-Franche-Comté, its facilities, specialists and one login per role.

Every row is found by its natural key before it is created, so `telmi demo` can run any
number of times. Communes are real; names of people and FINESS/RPPS numbers are invented
(the numbers are well-formed, with their check digit, but belong to nobody).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from telmi import accounts
from telmi.models import Departement, Facility, FacilityCategory, Region, Role, Specialty, User

DEMO_PASSWORD = "telmi-demo-2026"

REGION = ("27", "Bourgogne-Franche-Comté")
DEPARTEMENTS = [
    ("21", "Côte-d'Or"),
    ("25", "Doubs"),
    ("39", "Jura"),
    ("58", "Nièvre"),
    ("70", "Haute-Saône"),
    ("71", "Saône-et-Loire"),
    ("89", "Yonne"),
    ("90", "Territoire de Belfort"),
]

# FINESS category codes and labels of the national nomenclature.
FINESS_CATEGORIES = {
    "101": (FacilityCategory.HOSPITAL, "Centre hospitalier régional (CHR)"),
    "355": (FacilityCategory.HOSPITAL, "Centre hospitalier (CH)"),
    "500": (FacilityCategory.NURSING_HOME, "EHPAD"),
    "603": (FacilityCategory.HEALTH_CENTRE, "Maison de santé pluriprofessionnelle"),
    "124": (FacilityCategory.HEALTH_CENTRE, "Centre de santé"),
    "255": (FacilityCategory.DISABILITY_FACILITY, "Maison d'accueil spécialisée (MAS)"),
    "437": (FacilityCategory.DISABILITY_FACILITY, "Foyer d'accueil médicalisé (FAM)"),
    "183": (FacilityCategory.DISABILITY_FACILITY, "Institut médico-éducatif (IME)"),
}

# (departement, finess category, name, commune, postcode)
FACILITIES = [
    ("21", "101", "CHU Dijon Bourgogne", "Dijon", "21000"),
    ("21", "500", "EHPAD Les Tilleuls", "Beaune", "21200"),
    ("21", "603", "Maison de santé du Montbardois", "Montbard", "21500"),
    ("21", "500", "EHPAD Saint-Vorles", "Châtillon-sur-Seine", "21400"),
    ("21", "255", "MAS Les Remparts", "Semur-en-Auxois", "21140"),
    ("25", "101", "CHU de Besançon", "Besançon", "25000"),
    ("25", "355", "CH intercommunal de Haute-Comté", "Pontarlier", "25300"),
    ("25", "500", "EHPAD Les Cèdres", "Montbéliard", "25200"),
    ("25", "124", "Centre de santé de la Vallée du Doubs", "Baume-les-Dames", "25110"),
    ("25", "183", "IME Les Gentianes", "Morteau", "25500"),
    ("39", "355", "CH Jura Sud", "Lons-le-Saunier", "39000"),
    ("39", "500", "EHPAD Les Salines", "Dole", "39100"),
    ("39", "603", "Maison de santé du Haut-Jura", "Saint-Claude", "39200"),
    ("39", "500", "EHPAD Les Épicéas", "Champagnole", "39300"),
    ("39", "437", "FAM Les Vignes", "Poligny", "39800"),
    ("58", "355", "CH de l'agglomération de Nevers", "Nevers", "58000"),
    ("58", "500", "EHPAD Les Bords de Loire", "Cosne-Cours-sur-Loire", "58200"),
    ("58", "603", "Maison de santé du Clamecycois", "Clamecy", "58500"),
    ("58", "500", "EHPAD Le Val d'Aron", "Decize", "58300"),
    ("58", "124", "Centre de santé du Morvan", "Château-Chinon (Ville)", "58120"),
    ("70", "355", "Groupe hospitalier de la Haute-Saône", "Vesoul", "70000"),
    ("70", "500", "EHPAD Les Grands Prés", "Lure", "70200"),
    ("70", "603", "Maison de santé du Pays graylois", "Gray", "70100"),
    ("70", "255", "MAS Les Thermes", "Luxeuil-les-Bains", "70300"),
    ("70", "500", "EHPAD La Chênaie", "Héricourt", "70400"),
    ("71", "355", "CH de Mâcon", "Mâcon", "71000"),
    ("71", "500", "EHPAD Les Acacias", "Chalon-sur-Saône", "71100"),
    ("71", "124", "Centre de santé du Creusot", "Le Creusot", "71200"),
    ("71", "500", "EHPAD Saint-Lazare", "Autun", "71400"),
    ("71", "183", "IME La Bresse", "Louhans", "71500"),
    ("89", "355", "CH d'Auxerre", "Auxerre", "89000"),
    ("89", "500", "EHPAD Les Vignes de l'Yonne", "Sens", "89100"),
    ("89", "603", "Maison de santé de l'Avallonnais", "Avallon", "89200"),
    ("89", "255", "MAS Les Coteaux", "Joigny", "89300"),
    ("89", "124", "Centre de santé du Tonnerrois", "Tonnerre", "89700"),
    ("90", "355", "Hôpital Nord Franche-Comté", "Trévenans", "90400"),
    ("90", "500", "EHPAD Les Jardins du Lion", "Belfort", "90000"),
    ("90", "124", "Centre de santé de Delle", "Delle", "90100"),
    ("90", "437", "FAM du Ballon", "Giromagny", "90200"),
    ("90", "603", "Maison de santé de Beaucourt", "Beaucourt", "90500"),
]

SPECIALTIES = [
    ("dermatologie", "Dermatologie"),
    ("cardiologie", "Cardiologie"),
    ("geriatrie", "Gériatrie"),
    ("psychiatrie", "Psychiatrie"),
    ("gerontopsychiatrie", "Gérontopsychiatrie"),
    ("neurologie", "Neurologie"),
    ("plaies-cicatrisation", "Plaies et cicatrisation"),
    ("nephrologie", "Néphrologie"),
    ("diabetologie", "Endocrinologie-diabétologie"),
    ("pneumologie", "Pneumologie"),
    ("medecine-physique", "Médecine physique et de réadaptation"),
]

# (specialty, full name); the first of each specialty keeps a memorable demo login.
SPECIALISTS = [
    ("dermatologie", "Dr Claire Morel"),
    ("dermatologie", "Dr Julien Perrin"),
    ("dermatologie", "Dr Sophie Girard"),
    ("dermatologie", "Dr Antoine Lambert"),
    ("cardiologie", "Dr Nicolas Fontaine"),
    ("cardiologie", "Dr Isabelle Roux"),
    ("cardiologie", "Dr Mathieu Chevalier"),
    ("geriatrie", "Dr Anne Mercier"),
    ("geriatrie", "Dr Pierre Bonnet"),
    ("geriatrie", "Dr Hélène Dupuis"),
    ("psychiatrie", "Dr Thomas Guérin"),
    ("psychiatrie", "Dr Camille Faure"),
    ("gerontopsychiatrie", "Dr Marie Blanchard"),
    ("gerontopsychiatrie", "Dr François Renaud"),
    ("neurologie", "Dr Laurent Picard"),
    ("neurologie", "Dr Émilie Gauthier"),
    ("plaies-cicatrisation", "Dr Nathalie Colin"),
    ("plaies-cicatrisation", "Dr Olivier Brun"),
    ("plaies-cicatrisation", "Dr Sandrine Lefèvre"),
    ("nephrologie", "Dr Stéphane Marchand"),
    ("nephrologie", "Dr Valérie Arnaud"),
    ("diabetologie", "Dr Christophe Dumont"),
    ("diabetologie", "Dr Aurélie Vidal"),
    ("pneumologie", "Dr Benoît Masson"),
    ("medecine-physique", "Dr Delphine Caron"),
]


# The two sides of the demo's video call: the nurse and the dermatologist.
CALL_ROLES = (Role.STAFF, Role.SPECIALIST)


@dataclass(frozen=True)
class DemoLogin:
    role: Role
    email: str
    name: str
    description: str


LOGINS = [
    DemoLogin(Role.ADMIN, "admin@telmi.demo", "Paul Renard", "administrateur de la plateforme"),
    DemoLogin(Role.REGIONAL, "ars@telmi.demo", "Sophie Lemaire", "ARS, statistiques d'activité"),
    DemoLogin(
        Role.STAFF,
        "infirmiere@telmi.demo",
        "Isabelle Martin",
        "infirmière, EHPAD Les Tilleuls (Beaune)",
    ),
    DemoLogin(
        Role.SPECIALIST, "dermatologue@telmi.demo", "Dr Claire Morel", "dermatologue à distance"
    ),
]


def with_check_digit(digits: str) -> str:
    """Append the Luhn check digit (FINESS and RPPS numbers both end with one)."""
    for check in "0123456789":
        if accounts.luhn_valid(digits + check):
            return digits + check
    raise AssertionError("unreachable: one Luhn digit always fits")


def finess_for(departement: str, index: int) -> str:
    return with_check_digit(f"{departement}0{index:05d}")


def rpps_for(index: int) -> str:
    return with_check_digit(f"1000{index:06d}")


def _email_for(name: str) -> str:
    plain = unicodedata.normalize("NFKD", name.removeprefix("Dr ")).encode("ascii", "ignore")
    return plain.decode().lower().replace(" ", ".") + "@telmi.demo"


Progress = Callable[[str], None]


async def _ensure_territory(session: AsyncSession) -> None:
    region = await session.scalar(select(Region).where(Region.code == REGION[0]))
    if region is None:
        region = Region(code=REGION[0], name=REGION[1])
        session.add(region)
        await session.flush()
    for code, name in DEPARTEMENTS:
        if await session.get(Departement, code) is None:
            session.add(Departement(code=code, name=name, region_id=region.id))
    await session.flush()


async def _ensure_facilities(session: AsyncSession, now: datetime, progress: Progress) -> int:
    created = 0
    for index, (dep, code, name, commune, postcode) in enumerate(FACILITIES, start=1):
        finess = finess_for(dep, index)
        if await session.scalar(select(Facility.id).where(Facility.finess == finess)) is None:
            category, label = FINESS_CATEGORIES[code]
            session.add(
                Facility(
                    finess=finess,
                    name=name,
                    category=category,
                    finess_category_code=code,
                    finess_category_label=label,
                    departement_code=dep,
                    commune=commune,
                    postcode=postcode,
                    created_at=now,
                )
            )
            created += 1
        if index % 10 == 0 or index == len(FACILITIES):
            progress(f"  établissements {index}/{len(FACILITIES)}")
    await session.flush()
    return created


async def _ensure_specialties(session: AsyncSession) -> None:
    for code, name in SPECIALTIES:
        if await session.scalar(select(Specialty.id).where(Specialty.code == code)) is None:
            session.add(Specialty(code=code, name=name))
    await session.flush()


class _Accounts:
    """Creates the demo accounts that are missing. They share one published password, so
    they share its argon2 hash too: one computation instead of one per account."""

    def __init__(self, session: AsyncSession, now: datetime) -> None:
        self.session, self.now = session, now
        self.password_hash: str | None = None

    async def ensure(self, **fields: str | None) -> bool:
        email = str(fields["email"])
        if await self.session.scalar(select(User.id).where(User.email == email)) is not None:
            return False
        self.password_hash = self.password_hash or await accounts.hash_password(DEMO_PASSWORD)
        await accounts.create_user(
            self.session,
            password=DEMO_PASSWORD,
            password_hash=self.password_hash,
            now=self.now,
            **fields,  # type: ignore[arg-type]
        )
        return True


async def load(
    session: AsyncSession, *, now: datetime, progress: Progress = lambda _: None
) -> dict[str, int]:
    """Load the demo region; returns how many rows of each kind were created this time."""
    progress("Région Bourgogne-Franche-Comté et ses 8 départements")
    await _ensure_territory(session)
    progress("Spécialités")
    await _ensure_specialties(session)
    progress("Établissements")
    facilities = await _ensure_facilities(session, now, progress)
    progress("Comptes de démonstration")
    users, made = 0, _Accounts(session, now)
    beaune = finess_for("21", 2)
    for login in LOGINS:
        fields: dict[str, str | None] = {"email": login.email, "role": login.role.value}
        if login.role is Role.STAFF:
            fields |= {"full_name": login.name, "facility_finess": beaune}
        elif login.role is Role.SPECIALIST:
            specialty, name = SPECIALISTS[0]
            fields |= {"full_name": name, "specialty_code": specialty, "rpps": rpps_for(1)}
        else:
            fields["full_name"] = login.name
        users += await made.ensure(**fields)
    for index, (specialty, name) in enumerate(SPECIALISTS[1:], start=2):
        users += await made.ensure(
            email=_email_for(name),
            full_name=name,
            role=Role.SPECIALIST.value,
            specialty_code=specialty,
            rpps=rpps_for(index),
        )
        if index % 8 == 0 or index == len(SPECIALISTS):
            progress(f"  spécialistes {index}/{len(SPECIALISTS)}")
    return {"facilities": facilities, "users": users}
