"""The demo's residents: who the visits and tele-expertise requests of `demo_activity` are for.

Invented people who look like the residents of a nursing home in Burgundy and Franche-Comté
in the 2020s: French names (a married woman often uses her husband's name), born between
1925 and 1950 unless a request says their age, in a commune of the region (INSEE code;
99xxx for a few born abroad), most with an identity qualified by an INS whose key is valid
(the NIR is built from the sex, birth month and place, so it is consistent with the traits),
some only validated, retrieved or provisional; each has a treating doctor of the area with a
well-formed RPPS (`demo.rpps_for`, invented numbers). Everything is drawn from generators
seeded by the site and the reference: the same residents on every run.
"""

from __future__ import annotations

import json
import random
import re
import unicodedata
from dataclasses import dataclass
from datetime import date, timedelta

from telmi.demo import rpps_for
from telmi.models import IdentityDocument, IdentityStatus
from telmi.patients import NIR_OID, ResidentInput

SURNAMES = (
    "MARTIN", "BERNARD", "PETIT", "DURAND", "MOREAU", "LAURENT", "SIMON", "MICHEL",
    "LEFÈVRE", "GARNIER", "FAIVRE", "GUYOT", "JACQUOT", "MAGNIN", "MONNIER", "BOURGEOIS",
    "PARIZOT", "RENAUD", "JOLY", "COLLIN", "BAILLY", "BRULEY", "COURTOT", "DEMOULIN",
    "FLEURY", "GAUDILLIÈRE", "HUMBERT", "JOBARD", "LACROIX", "LAMBERT", "MAIRE", "MATHEY",
    "MILLOT", "NAUDIN", "PERNOT", "POINSOT", "REGNIER", "ROYER", "SAUVAGEOT", "TISSERAND",
    "VAUCHEY", "VIOLOT", "BARDOT", "BOILLOT", "CHEVALIER", "DESCHAMPS", "GIRARDOT", "PRUDHON",
)  # fmt: skip
WOMEN = (
    "Jeanne", "Marie", "Marguerite", "Germaine", "Suzanne", "Yvonne", "Simone", "Madeleine",
    "Odette", "Paulette", "Denise", "Monique", "Jacqueline", "Colette", "Josette", "Renée",
    "Lucienne", "Georgette", "Andrée", "Gisèle", "Huguette", "Ginette", "Marcelle", "Thérèse",
)  # fmt: skip
MEN = (
    "Jean", "Pierre", "André", "René", "Marcel", "Roger", "Louis", "Henri", "Robert",
    "Georges", "Paul", "Maurice", "Raymond", "Lucien", "Bernard", "Jacques", "Michel",
    "Claude", "Gérard", "Roland", "Gilbert", "Marius", "Émile", "Fernand",
)  # fmt: skip
# INSEE codes of communes of the region, then of a few countries of birth (99 + country).
BORN_HERE = (
    "21231",  # Dijon
    "21054",  # Beaune
    "21425",  # Montbard
    "21154",  # Châtillon-sur-Seine
    "21603",  # Semur-en-Auxois
    "25056",  # Besançon
    "25388",  # Montbéliard
    "25462",  # Pontarlier
    "25047",  # Baume-les-Dames
    "39198",  # Dole
    "39300",  # Lons-le-Saunier
    "39097",  # Champagnole
    "58194",  # Nevers
    "70550",  # Vesoul
    "70310",  # Lure
    "71076",  # Chalon-sur-Saône
    "71270",  # Mâcon
    "71014",  # Autun
    "71153",  # Le Creusot
    "89024",  # Auxerre
    "89387",  # Sens
    "90010",  # Belfort
)
BORN_ABROAD = ("99127", "99139", "99134", "99122")  # Italy, Portugal, Spain, Poland
BORN_FAR = ("99352", "99350")  # Algeria, Morocco: a residence permit is the document checked
# The area's treating doctors, by facility prefix (demo_activity.Carer.site).
DOCTORS = {
    "TIL": ("Dr Bernard Chapuis", "Dr Catherine Jobert"),
    "SAL": ("Dr Philippe Vuillemin", "Dr Martine Grandjean"),
    "MON": ("Dr Alain Thevenin", "Dr Corinne Bouchard"),
    "ACA": ("Dr Gilles Bonnot", "Dr Sylvie Lagrange", "Dr Hervé Perreau"),
    "VDD": ("Dr Éric Cuenot", "Dr Nadine Jeanningros"),
}
# Most identities are qualified; one in ten only validated, retrieved or provisional.
STATUSES = (
    IdentityStatus.QUALIFIED,
    IdentityStatus.QUALIFIED,
    IdentityStatus.QUALIFIED,
    IdentityStatus.VALIDATED,
    IdentityStatus.QUALIFIED,
    IdentityStatus.QUALIFIED,
    IdentityStatus.RETRIEVED,
    IdentityStatus.QUALIFIED,
    IdentityStatus.QUALIFIED,
    IdentityStatus.PROVISIONAL,
)
_RPPS = {
    name: rpps_for(700 + index)
    for index, name in enumerate(n for names in DOCTORS.values() for n in names)
}
_DESCRIBED = re.compile(r"^(Résidente|Résident|Patiente|Patient) de (\d+) ans")


@dataclass(frozen=True)
class Who:
    """A resident to create: its reference, and what the story already says of them."""

    reference: str
    sex: str | None = None
    age: int | None = None
    qualified: bool = False  # the story needs an identity beyond doubt

    @classmethod
    def described(cls, reference: str, context: str) -> Who:
        """« Résidente de 86 ans, … » gives the sex and the age."""
        found = _DESCRIBED.match(context)
        if found is None:
            return cls(reference)
        sex = "F" if found.group(1).endswith("e") else "M"
        return cls(reference, sex, int(found.group(2)))


def ins_for(body13: str) -> str:
    """The INS with its key (97 - n mod 97, Corsica's 2A/2B read as 19/18)."""
    numeric = body13[:5] + {"2A": "19", "2B": "18"}.get(body13[5:7], body13[5:7]) + body13[7:]
    return f"{body13}{97 - int(numeric) % 97:02d}"


def _born(rng: random.Random, age: int | None, today: date) -> date:
    if age is None:  # most residents are in their late eighties
        year = round(rng.triangular(1925, 1950, 1939))
        return date(year, 1, 1) + timedelta(days=rng.randrange(365))
    try:
        anniversary = today.replace(year=today.year - age)
    except ValueError:  # 29 February
        anniversary = today.replace(year=today.year - age, day=28)
    return anniversary - timedelta(days=rng.randrange(1, 364))


def identity(site: str, number: int, who: Who, today: date) -> ResidentInput:
    """The `number`-th resident of the site (the number keeps names distinct within it)."""
    rng = random.Random(who.reference)
    names = random.Random(site).sample(SURNAMES, len(SURNAMES))
    sex = who.sex or ("F" if rng.random() < 0.7 else "M")
    firsts = rng.sample(WOMEN if sex == "F" else MEN, rng.choice((1, 2, 2, 3)))
    birth_name = names[number % len(names)]
    used_name = ""
    if sex == "F" and rng.random() < 0.6:
        used_name = names[(number + len(names) // 2) % len(names)]
    born = _born(rng, who.age, today)
    abroad = rng.random()
    birthplace = rng.choice(
        BORN_FAR if abroad < 0.03 else BORN_ABROAD if abroad < 0.08 else BORN_HERE
    )
    status = IdentityStatus.QUALIFIED if who.qualified else STATUSES[number % len(STATUSES)]
    has_ins = status in (IdentityStatus.QUALIFIED, IdentityStatus.RETRIEVED)
    checked = status in (IdentityStatus.QUALIFIED, IdentityStatus.VALIDATED)
    order = rng.randrange(1, 1000)  # the birth's order number in the commune's register
    body13 = f"{1 if sex == 'M' else 2}{born.year % 100:02d}{born.month:02d}{birthplace}{order:03d}"
    doctor = DOCTORS[site][number % len(DOCTORS[site])]
    first, last = doctor.removeprefix("Dr ").lower().split(" ", 1)
    document = IdentityDocument.NONE
    if checked:
        document = (
            IdentityDocument.PASSPORT if rng.random() < 0.2 else IdentityDocument.IDENTITY_CARD
        )
        if birthplace in BORN_FAR:
            document = IdentityDocument.RESIDENCE_PERMIT
    return ResidentInput.model_validate_json(  # as the API reads it
        json.dumps(
            {
                "reference": who.reference,
                "birth_name": birth_name,
                "first_names": " ".join(firsts),
                "used_name": used_name,
                "sex": sex,
                "birth_date": born.isoformat(),
                "birthplace": birthplace,
                "ins": {"value": ins_for(body13), "oid": NIR_OID} if has_ins else None,
                "identity_status": status.value,
                "identity_document": document.value,
                "doctor_name": doctor,
                "doctor_rpps": _RPPS[doctor],
                "doctor_mail": f"{_plain(first)}.{_plain(last)}@medecin.telmi.demo",
            }
        )
    )


def _plain(name: str) -> str:
    return unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
