"""FINESS import: the public etalab extract of establishments (« stock établissements »,
cs1100502, and its variant with geolocation, cs1100507) into Telmi's facilities.

Three steps, so the upload page and the CLI show the same preview before anything is
written:

- `read_extract(data, filename=..., strict=...)` parses the bytes (UTF-8, or Latin-1 for older
  files; a BOM tolerated): a first line `finess;etalab;...`, then `structureet` lines of 32
  cells and `geolocalisation` lines (Lambert 93, converted to WGS84). Each malformed line is
  kept with its number (or, strict, the whole file refused naming the first).
- `plan(session, extract, region=..., departements=..., now=...)` compares it with the
  database: new, changed (which fields), unchanged, absent from the extract (to flag
  « fermé dans FINESS »), skipped by reason. It writes nothing.
- `apply(session, ctx, plan)` writes the plan in the caller's transaction, records a
  `FinessImport` row and an audit event. Applying the same extract twice changes nothing.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from telmi import audit
from telmi.context import Context
from telmi.errors import ValidationError
from telmi.models import Departement, Facility, FacilityCategory, FinessImport, Region
from telmi.values import luhn_valid

# --- the nomenclature -------------------------------------------------------------------------

_H = FacilityCategory.HOSPITAL
_N = FacilityCategory.NURSING_HOME
_C = FacilityCategory.HEALTH_CENTRE
_D = FacilityCategory.DISABILITY_FACILITY

# Telmi's category for each FINESS category code (`categetab`), after the FINESS nomenclature
# of establishment categories (« Nomenclature des catégories d'établissements », FINESS,
# finess.esante.gouv.fr › Nomenclatures; the labels come from each line's `libcategetab`).
# A code absent from this table is skipped and counted by code.
CATEGORIES: dict[str, FacilityCategory] = {
    # Établissements relevant de la loi hospitalière
    "101": _H,  # Centre hospitalier régional (CHR)
    "106": _H,  # Centre hospitalier, ex-hôpital local
    "109": _H,  # Établissement de santé privé autorisé en SSR
    "114": _H,  # Groupement de coopération sanitaire de moyens - exploitant
    "122": _H,  # Établissement de soins obstétriques, chirurgicaux et médicaux (MCO)
    "127": _H,  # Hospitalisation à domicile
    "128": _H,  # Établissement de soins chirurgicaux
    "129": _H,  # Établissement de soins médicaux
    "131": _H,  # Centre de lutte contre le cancer
    "141": _H,  # Centre de dialyse
    "146": _H,  # Structure d'alternative à la dialyse en centre
    "156": _H,  # Centre médico-psychologique (CMP)
    "161": _H,  # Maison de santé pour maladies mentales
    "292": _H,  # Centre hospitalier spécialisé lutte maladies mentales
    "355": _H,  # Centre hospitalier (CH)
    "362": _H,  # Établissement de soins longue durée
    "365": _H,  # Établissement de soins pluridisciplinaire
    "366": _H,  # Atelier thérapeutique
    "412": _H,  # Appartement thérapeutique
    "415": _H,  # Établissement de soins de suite et de réadaptation (ex-convalescence)
    "425": _H,  # Centre d'accueil thérapeutique à temps partiel (CATTP)
    "430": _H,  # Centre post-cure pour malades mentaux
    "444": _H,  # Centre de crise et d'accueil permanent
    "697": _H,  # Structure d'hospitalisation à temps partiel de jour ou de nuit
    "698": _H,  # Autre établissement de lutte contre les maladies mentales
    # Soins de ville
    "124": _C,  # Centre de santé
    "603": _C,  # Maison de santé (L.6223-3)
    # Personnes âgées
    "500": _N,  # EHPAD
    "501": _N,  # EHPA percevant des crédits d'assurance maladie
    "502": _N,  # EHPA ne percevant pas de crédits d'assurance maladie
    # Personnes handicapées
    "183": _D,  # Institut médico-éducatif (IME)
    "186": _D,  # Institut thérapeutique éducatif et pédagogique (ITEP)
    "188": _D,  # Établissement pour enfants ou adolescents polyhandicapés
    "189": _D,  # Centre d'action médico-sociale précoce (CAMSP)
    "192": _D,  # Établissement pour déficients moteurs
    "194": _D,  # Institut pour déficients visuels
    "195": _D,  # Institut pour déficients auditifs
    "196": _D,  # Institut d'éducation sensorielle sourds/aveugles
    "246": _D,  # Établissement et service d'aide par le travail (ESAT)
    "252": _D,  # Foyer hébergement adultes handicapés
    "253": _D,  # Foyer d'accueil polyvalent pour adultes handicapés
    "255": _D,  # Maison d'accueil spécialisée (MAS)
    "382": _D,  # Foyer de vie pour adultes handicapés
    "437": _D,  # Foyer d'accueil médicalisé (FAM)
    "448": _D,  # Établissement d'accueil médicalisé en tout ou partie (EAM)
    "449": _D,  # Établissement d'accueil non médicalisé (EANM)
}

# INSEE region codes and names (2016 regions).
REGIONS: dict[str, str] = {
    "01": "Guadeloupe",
    "02": "Martinique",
    "03": "Guyane",
    "04": "La Réunion",
    "06": "Mayotte",
    "11": "Île-de-France",
    "24": "Centre-Val de Loire",
    "27": "Bourgogne-Franche-Comté",
    "28": "Normandie",
    "32": "Hauts-de-France",
    "44": "Grand Est",
    "52": "Pays de la Loire",
    "53": "Bretagne",
    "75": "Nouvelle-Aquitaine",
    "76": "Occitanie",
    "84": "Auvergne-Rhône-Alpes",
    "93": "Provence-Alpes-Côte d'Azur",
    "94": "Corse",
    "975": "Saint-Pierre-et-Miquelon",
}
# A département the table does not know (a collectivity FINESS adds): created in this one.
OTHER_REGION = ("99", "Autres collectivités d'outre-mer")

# Départements as FINESS writes them (overseas with a letter: 9A = Guadeloupe, INSEE 971),
# with their name and INSEE region.
DEPARTEMENTS: dict[str, tuple[str, str]] = {
    "01": ("Ain", "84"),
    "02": ("Aisne", "32"),
    "03": ("Allier", "84"),
    "04": ("Alpes-de-Haute-Provence", "93"),
    "05": ("Hautes-Alpes", "93"),
    "06": ("Alpes-Maritimes", "93"),
    "07": ("Ardèche", "84"),
    "08": ("Ardennes", "44"),
    "09": ("Ariège", "76"),
    "10": ("Aube", "44"),
    "11": ("Aude", "76"),
    "12": ("Aveyron", "76"),
    "13": ("Bouches-du-Rhône", "93"),
    "14": ("Calvados", "28"),
    "15": ("Cantal", "84"),
    "16": ("Charente", "75"),
    "17": ("Charente-Maritime", "75"),
    "18": ("Cher", "24"),
    "19": ("Corrèze", "75"),
    "2A": ("Corse-du-Sud", "94"),
    "2B": ("Haute-Corse", "94"),
    "21": ("Côte-d'Or", "27"),
    "22": ("Côtes-d'Armor", "53"),
    "23": ("Creuse", "75"),
    "24": ("Dordogne", "75"),
    "25": ("Doubs", "27"),
    "26": ("Drôme", "84"),
    "27": ("Eure", "28"),
    "28": ("Eure-et-Loir", "24"),
    "29": ("Finistère", "53"),
    "30": ("Gard", "76"),
    "31": ("Haute-Garonne", "76"),
    "32": ("Gers", "76"),
    "33": ("Gironde", "75"),
    "34": ("Hérault", "76"),
    "35": ("Ille-et-Vilaine", "53"),
    "36": ("Indre", "24"),
    "37": ("Indre-et-Loire", "24"),
    "38": ("Isère", "84"),
    "39": ("Jura", "27"),
    "40": ("Landes", "75"),
    "41": ("Loir-et-Cher", "24"),
    "42": ("Loire", "84"),
    "43": ("Haute-Loire", "84"),
    "44": ("Loire-Atlantique", "52"),
    "45": ("Loiret", "24"),
    "46": ("Lot", "76"),
    "47": ("Lot-et-Garonne", "75"),
    "48": ("Lozère", "76"),
    "49": ("Maine-et-Loire", "52"),
    "50": ("Manche", "28"),
    "51": ("Marne", "44"),
    "52": ("Haute-Marne", "44"),
    "53": ("Mayenne", "52"),
    "54": ("Meurthe-et-Moselle", "44"),
    "55": ("Meuse", "44"),
    "56": ("Morbihan", "53"),
    "57": ("Moselle", "44"),
    "58": ("Nièvre", "27"),
    "59": ("Nord", "32"),
    "60": ("Oise", "32"),
    "61": ("Orne", "28"),
    "62": ("Pas-de-Calais", "32"),
    "63": ("Puy-de-Dôme", "84"),
    "64": ("Pyrénées-Atlantiques", "75"),
    "65": ("Hautes-Pyrénées", "76"),
    "66": ("Pyrénées-Orientales", "76"),
    "67": ("Bas-Rhin", "44"),
    "68": ("Haut-Rhin", "44"),
    "69": ("Rhône", "84"),
    "70": ("Haute-Saône", "27"),
    "71": ("Saône-et-Loire", "27"),
    "72": ("Sarthe", "52"),
    "73": ("Savoie", "84"),
    "74": ("Haute-Savoie", "84"),
    "75": ("Paris", "11"),
    "76": ("Seine-Maritime", "28"),
    "77": ("Seine-et-Marne", "11"),
    "78": ("Yvelines", "11"),
    "79": ("Deux-Sèvres", "75"),
    "80": ("Somme", "32"),
    "81": ("Tarn", "76"),
    "82": ("Tarn-et-Garonne", "76"),
    "83": ("Var", "93"),
    "84": ("Vaucluse", "93"),
    "85": ("Vendée", "52"),
    "86": ("Vienne", "75"),
    "87": ("Haute-Vienne", "75"),
    "88": ("Vosges", "44"),
    "89": ("Yonne", "27"),
    "90": ("Territoire de Belfort", "27"),
    "91": ("Essonne", "11"),
    "92": ("Hauts-de-Seine", "11"),
    "93": ("Seine-Saint-Denis", "11"),
    "94": ("Val-de-Marne", "11"),
    "95": ("Val-d'Oise", "11"),
    "9A": ("Guadeloupe", "01"),
    "9B": ("Martinique", "02"),
    "9C": ("Guyane", "03"),
    "9D": ("La Réunion", "04"),
    "9E": ("Saint-Pierre-et-Miquelon", "975"),
    "9F": ("Mayotte", "06"),
}


def departements_of_region(region: str) -> list[str]:
    return [code for code, (_, reg) in DEPARTEMENTS.items() if reg == region]


# --- numbers and coordinates ------------------------------------------------------------------

_FINESS = re.compile(r"(?:[0-9]{2}|2[AB]|9[A-Z])[0-9]{7}")
_DEPARTEMENT = re.compile(r"[0-9]{2}|2[AB]|9[A-Z]")


def finess_valid(number: str) -> bool:
    """9 characters: the département (2 digits, 2A/2B for Corsica, 9 and a letter overseas),
    6 digits and a Luhn key computed on the 8 first characters with the letter read as 0
    (so 2A and 2B count as 20). Checked on published numbers: 210780581 (CHU Dijon),
    750712184 (AP-HP), 690781810 (HCL)."""
    if not _FINESS.fullmatch(number):
        return False
    return luhn_valid(number[0] + ("0" if number[1].isalpha() else number[1]) + number[2:])


# Lambert 93 (RGF93, GRS80 ellipsoid), IGN's constants for the conic conformal projection
# (IGN, « Projection cartographique conique conforme de Lambert », NT/G 71, algorithms
# ALG0002 and ALG0004).
_E = 0.0818191910428158
_LN = 0.7256077650532670
_LC = 11754255.426096
_XS = 700000.0
_YS = 12655612.049876
_LAMBDA0 = math.radians(3.0)


def lambert93_to_wgs84(x: float, y: float) -> tuple[float, float]:
    """(latitude, longitude) in degrees of a Lambert 93 point (metres), IGN ALG0004."""
    dx, dy = x - _XS, _YS - y
    r = math.hypot(dx, dy)
    gamma = math.atan2(dx, dy)
    longitude = _LAMBDA0 + gamma / _LN
    iso = -math.log(r / _LC) / _LN
    phi = 2 * math.atan(math.exp(iso)) - math.pi / 2
    for _ in range(20):
        es = _E * math.sin(phi)
        nxt = 2 * math.atan(((1 + es) / (1 - es)) ** (_E / 2) * math.exp(iso)) - math.pi / 2
        if abs(nxt - phi) < 1e-12:
            phi = nxt
            break
        phi = nxt
    return math.degrees(phi), math.degrees(longitude)


def wgs84_to_lambert93(latitude: float, longitude: float) -> tuple[float, float]:
    """The forward projection (IGN ALG0003), for round trips in tests and the benchmark."""
    phi = math.radians(latitude)
    es = _E * math.sin(phi)
    iso = math.log(math.tan(math.pi / 4 + phi / 2) * ((1 - es) / (1 + es)) ** (_E / 2))
    r = _LC * math.exp(-_LN * iso)
    theta = _LN * (math.radians(longitude) - _LAMBDA0)
    return _XS + r * math.sin(theta), _YS - r * math.cos(theta)


# --- reading an extract -----------------------------------------------------------------------

STRUCTURE_CELLS = (
    "structureet nofinesset nofinessej rs rslongue complrs compldistrib numvoie typvoie voie "
    "compvoie lieuditbp commune departement libdepartement ligneacheminement telephone "
    "telecopie categetab libcategetab categagretab libcategagretab siret codeape codemft libmft "
    "codesph libsph dateouv dateautor datemaj numuai"
).split()
GEOLOCATION_CELLS = "geolocalisation nofinesset coordxet coordyet sourcecoordet datemaj".split()
assert len(STRUCTURE_CELLS) == 32
_S = {name: i for i, name in enumerate(STRUCTURE_CELLS)}
_CEDEX = re.compile(r"\s+CEDEX(\s+\d*)?$", re.IGNORECASE)

Progress = Callable[[int], None]


@dataclass(frozen=True)
class Malformed:
    line: int
    message: str

    def __str__(self) -> str:
        return f"ligne {self.line} : {self.message}"


@dataclass
class Site:
    """One `structureet` line, in Telmi's terms."""

    line: int
    finess: str
    legal_entity_finess: str
    name: str
    category_code: str
    category_label: str
    departement: str
    departement_label: str
    commune: str
    postcode: str
    address: str
    phone: str
    siret: str
    updated_on: date | None
    latitude: float | None = None
    longitude: float | None = None


@dataclass
class Extract:
    filename: str
    lines: int = 0
    sites: list[Site] = field(default_factory=list)
    malformed: list[Malformed] = field(default_factory=list)
    encoding: str = "utf-8"


def _date(value: str) -> date | None:
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _join(*parts: str) -> str:
    return " ".join(p.strip() for p in parts if p.strip())


def _site(cells: list[str], line: int) -> Site | str:
    """A Site, or why the line is malformed."""
    get = cells.__getitem__
    finess = get(_S["nofinesset"]).strip()
    if not finess_valid(finess):
        return f"numéro FINESS invalide « {finess[:20]} » (9 caractères, clé de Luhn)"
    legal = get(_S["nofinessej"]).strip()
    if legal and not finess_valid(legal):
        return f"numéro FINESS juridique invalide « {legal[:20]} »"
    departement = get(_S["departement"]).strip().upper()
    if not _DEPARTEMENT.fullmatch(departement):
        return f"département invalide « {departement[:10]} »"
    routing = get(_S["ligneacheminement"]).strip()
    postcode, _, commune = routing.partition(" ")
    if not (len(postcode) == 5 and postcode.isdigit()):
        postcode, commune = "", routing
    name = get(_S["rslongue"]).strip() or get(_S["rs"]).strip()
    return Site(
        line=line,
        finess=finess,
        legal_entity_finess=legal,
        name=name[:200],
        category_code=get(_S["categetab"]).strip()[:4],
        category_label=get(_S["libcategetab"]).strip()[:200],
        departement=departement,
        departement_label=get(_S["libdepartement"]).strip(),
        commune=_CEDEX.sub("", commune.strip())[:100],
        postcode=postcode,
        address=_join(
            get(_S["numvoie"]),
            get(_S["typvoie"]),
            get(_S["voie"]),
            get(_S["compvoie"]),
            get(_S["lieuditbp"]),
        )[:300],
        phone=get(_S["telephone"]).strip()[:20],
        siret=get(_S["siret"]).strip()[:14],
        updated_on=_date(get(_S["datemaj"]).strip()),
    )


def _decode(data: bytes) -> tuple[str, str]:
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"


def read_extract(
    data: bytes,
    *,
    filename: str = "",
    strict: bool = False,
    progress: Progress | None = None,
    every: int = 10_000,
) -> Extract:
    """Parse an etalab FINESS extract. Raises ValidationError (field `file`) when the file is
    not an extract, or, `strict`, at its first malformed line."""
    text, encoding = _decode(data)
    extract = Extract(filename=filename, encoding=encoding)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=";", quotechar='"', strict=True)
    coordinates: dict[str, tuple[float, float] | None] = {}
    seen: set[str] = set()

    def bad(line: int, message: str) -> None:
        problem = Malformed(line, message)
        if strict:
            raise ValidationError(f"import refusé, {problem}", field="file")
        extract.malformed.append(problem)

    line = 0
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            line = reader.line_num
            if start == 1:
                raise ValidationError(
                    "ce fichier n'est pas un extrait FINESS (ligne 1)", field="file"
                ) from None
            bad(start, f"ligne illisible ({exc})")
            continue
        line = reader.line_num
        if start == 1:
            if cells[:2] != ["finess", "etalab"]:
                raise ValidationError(
                    "ce fichier n'est pas un extrait FINESS (ligne 1 : « finess;etalab;… » "
                    "attendu)",
                    field="file",
                )
            continue
        extract.lines += 1
        if progress is not None and extract.lines % every == 0:
            progress(extract.lines)
        if not cells or cells == [""]:
            continue
        kind = cells[0]
        if kind == "structureet":
            if len(cells) != len(STRUCTURE_CELLS):
                bad(start, f"{len(cells)} champs au lieu de {len(STRUCTURE_CELLS)}")
                continue
            site = _site(cells, start)
            if isinstance(site, str):
                bad(start, site)
            elif site.finess in seen:
                bad(start, f"numéro FINESS {site.finess} en double")
            else:
                seen.add(site.finess)
                extract.sites.append(site)
        elif kind == "geolocalisation":
            if len(cells) != len(GEOLOCATION_CELLS):
                bad(start, f"{len(cells)} champs au lieu de {len(GEOLOCATION_CELLS)}")
                continue
            number, x, y, source = (c.strip() for c in cells[1:5])
            if not finess_valid(number):
                bad(start, f"numéro FINESS invalide « {number[:20]} » (9 caractères, clé de Luhn)")
                continue
            if not x and not y:
                coordinates[number] = None
                continue
            try:
                fx, fy = float(x), float(y)
            except ValueError:
                bad(start, f"coordonnées invalides « {x[:20]} ; {y[:20]} »")
                continue
            coordinates[number] = _wgs84(fx, fy, source)
        else:
            bad(start, f"type de ligne inconnu « {kind[:30]} »")
    if line == 0:
        raise ValidationError(
            "ce fichier n'est pas un extrait FINESS (ligne 1 : vide)", field="file"
        )
    if not extract.sites and not extract.malformed:
        # Applying it would flag every facility in scope as closed: an empty or cut file.
        raise ValidationError(
            f"l'extrait FINESS ne contient aucun établissement (ligne {line} : fichier vide "
            "ou tronqué ?)",
            field="file",
        )
    for site in extract.sites:
        point = coordinates.get(site.finess)
        if point is not None:
            site.latitude, site.longitude = point
    return extract


def _wgs84(x: float, y: float, source: str) -> tuple[float, float] | None:
    """Lambert 93 only: overseas coordinates are in UTM (the source cell says which)."""
    if "UTM" in source.upper() or not (0 < x < 1_300_000 and 6_000_000 < y < 7_200_000):
        return None
    latitude, longitude = lambert93_to_wgs84(x, y)
    return round(latitude, 7), round(longitude, 7)


# --- the plan ---------------------------------------------------------------------------------

# Fields the extract owns; an admin's own (video_notes, is_active) are never touched.
COMPARED = (
    "name",
    "category",
    "finess_category_code",
    "finess_category_label",
    "departement_code",
    "commune",
    "postcode",
    "legal_entity_finess",
    "address",
    "phone",
    "siret",
    "latitude",
    "longitude",
    "finess_updated_on",
)


@dataclass(frozen=True)
class Change:
    facility_id: int
    finess: str
    name: str
    fields: tuple[str, ...]  # names, in COMPARED order (plus finess_closed_at on reopening)
    values: dict[str, Any]


@dataclass(frozen=True)
class Absent:
    facility_id: int
    finess: str
    name: str


@dataclass
class Plan:
    filename: str
    at: datetime
    region: str | None
    departements: list[str] | None
    lines: int
    sites: int = 0  # structureet lines read well
    new: list[dict[str, Any]] = field(default_factory=list)
    changed: list[Change] = field(default_factory=list)
    unchanged: int = 0
    absent: list[Absent] = field(default_factory=list)
    skipped_categories: Counter[str] = field(default_factory=Counter)
    category_labels: dict[str, str] = field(default_factory=dict)
    skipped_departement: int = 0
    malformed: list[Malformed] = field(default_factory=list)
    departements_used: dict[str, str] = field(default_factory=dict)  # code -> extract label

    @property
    def reopened(self) -> int:
        return sum(1 for c in self.changed if "finess_closed_at" in c.fields)

    @property
    def writes_nothing(self) -> bool:
        return not (self.new or self.changed or self.absent)

    def summary(self, *, listed: int = 200) -> dict[str, Any]:
        """JSON for the FinessImport row and the preview (long lists cut at `listed`)."""
        fields: Counter[str] = Counter(f for c in self.changed for f in c.fields)
        return {
            "filename": self.filename,
            "lines": self.lines,
            "sites": self.sites,
            "region": self.region,
            "departements": self.departements,
            "new": len(self.new),
            "changed": len(self.changed),
            "unchanged": self.unchanged,
            "absent": len(self.absent),
            "reopened": self.reopened,
            "changed_fields": dict(fields),
            "changes": [{"finess": c.finess, "fields": list(c.fields)} for c in self.changed][
                :listed
            ],
            "absent_finess": [a.finess for a in self.absent][:listed],
            "skipped": {
                "category": dict(sorted(self.skipped_categories.items())),
                "departement": self.skipped_departement,
                "malformed": len(self.malformed),
            },
            "malformed": [{"line": m.line, "message": m.message} for m in self.malformed][:listed],
        }


def _scope(region: str | None, departements: Iterable[str] | None) -> set[str] | None:
    chosen = {d.strip().upper() for d in departements or () if d.strip()} or None
    if region is None:
        return chosen
    codes = set(departements_of_region(region))
    if not codes:
        raise ValidationError(f"région inconnue « {region} » (code INSEE)", field="region")
    return codes & chosen if chosen is not None else codes


_LOADED = (
    Facility.id,
    Facility.finess,
    Facility.finess_closed_at,
    *(getattr(Facility, name) for name in COMPARED),
)


async def plan(
    session: AsyncSession,
    extract: Extract,
    *,
    region: str | None = None,
    departements: Iterable[str] | None = None,
    now: datetime,
) -> Plan:
    """What applying `extract` would do, restricted to a region (INSEE code) and/or a list of
    départements; writes nothing."""
    deps = [d.strip().upper() for d in departements or () if d.strip()] or None
    scope = _scope(region, deps)
    result = Plan(
        filename=extract.filename,
        at=now,
        region=region,
        departements=deps,
        lines=extract.lines,
        sites=len(extract.sites),
        malformed=list(extract.malformed),
    )
    existing = {row.finess: row for row in (await session.execute(select(*_LOADED))).all()}
    in_extract: set[str] = set()
    for site in extract.sites:
        in_extract.add(site.finess)
        if scope is not None and site.departement not in scope:
            result.skipped_departement += 1
            continue
        category = CATEGORIES.get(site.category_code)
        if category is None:
            result.skipped_categories[site.category_code] += 1
            result.category_labels.setdefault(site.category_code, site.category_label)
            continue
        result.departements_used.setdefault(site.departement, site.departement_label)
        values: dict[str, Any] = {
            "name": site.name,
            "category": category,
            "finess_category_code": site.category_code,
            "finess_category_label": site.category_label,
            "departement_code": site.departement,
            "commune": site.commune,
            "postcode": site.postcode,
            "legal_entity_finess": site.legal_entity_finess,
            "address": site.address,
            "phone": site.phone,
            "siret": site.siret,
            "latitude": site.latitude,
            "longitude": site.longitude,
            "finess_updated_on": site.updated_on,
        }
        row = existing.get(site.finess)
        if row is None:
            result.new.append(values | {"finess": site.finess})
            continue
        changed = {name: v for name, v in values.items() if getattr(row, name) != v}
        if row.finess_closed_at is not None:
            changed["finess_closed_at"] = None
        if changed:
            result.changed.append(Change(row.id, site.finess, site.name, tuple(changed), changed))
        else:
            result.unchanged += 1
    for number, row in existing.items():
        if number in in_extract or row.finess_closed_at is not None:
            continue
        if scope is None or row.departement_code in scope:
            result.absent.append(Absent(row.id, number, row.name))
    return result


async def _ensure_departements(session: AsyncSession, wanted: dict[str, str]) -> list[str]:
    known = set((await session.scalars(select(Departement.code))).all())
    missing = [code for code in wanted if code not in known]
    if not missing:
        return []
    regions = {r.code: r.id for r in (await session.execute(select(Region.code, Region.id)))}
    for code in missing:
        name, region_code = DEPARTEMENTS.get(code, (wanted[code].title() or code, OTHER_REGION[0]))
        if region_code not in regions:
            region_name = REGIONS.get(region_code, OTHER_REGION[1])
            region = Region(code=region_code, name=region_name)
            session.add(region)
            await session.flush()
            regions[region_code] = region.id
        session.add(Departement(code=code, name=name[:100], region_id=regions[region_code]))
    await session.flush()
    return missing


async def apply(session: AsyncSession, ctx: Context, planned: Plan) -> FinessImport:
    """Write `planned` in the caller's transaction: facilities created and updated, absent
    ones flagged (never deleted), missing départements and regions created; a FinessImport
    row and an audit event record it."""
    now = ctx.now
    created_departements = await _ensure_departements(session, planned.departements_used)
    if planned.new:
        rows = [
            values | {"created_at": now, "updated_at": now, "is_active": True, "video_notes": ""}
            for values in planned.new
        ]
        for start in range(0, len(rows), 5000):
            await session.execute(insert(Facility), rows[start : start + 5000])
    if planned.changed:
        by_fields: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for change in planned.changed:
            by_fields.setdefault(change.fields, []).append(
                change.values | {"id": change.facility_id, "updated_at": now}
            )
        for rows in by_fields.values():
            await session.execute(update(Facility), rows)
    if planned.absent:
        await session.execute(
            update(Facility),
            [
                {"id": a.facility_id, "finess_closed_at": now, "updated_at": now}
                for a in planned.absent
            ],
        )
    summary = planned.summary() | {"created_departements": created_departements}
    record = FinessImport(
        at=now,
        by_id=ctx.user.id if ctx.user else None,
        filename=planned.filename[:200],
        summary=summary,
    )
    session.add(record)
    await session.flush()
    await audit.event(
        session,
        ctx,
        "finess.import",
        target_type="finess_import",
        target_id=record.id,
        before={},
        after={
            key: summary[key]
            for key in ("filename", "region", "departements", "new", "changed", "absent")
        },
    )
    return record


async def import_extract(
    session: AsyncSession,
    ctx: Context,
    extract: Extract,
    *,
    region: str | None = None,
    departements: Iterable[str] | None = None,
) -> tuple[Plan, FinessImport]:
    """Plan and apply in one transaction (the caller's): what an upload page runs when the
    admin confirms the preview, re-planned so that it applies to the database as it is now."""
    planned = await plan(session, extract, region=region, departements=departements, now=ctx.now)
    return planned, await apply(session, ctx, planned)


# --- French text for the CLI and the page ------------------------------------------------------


def count(n: int) -> str:
    return f"{n:,}".replace(",", "\u202f")


def describe(planned: Plan) -> list[str]:
    """The preview, in French, one line per item."""
    lines = [
        f"Extrait {planned.filename or 'FINESS'} : {count(planned.lines)} lignes lues, "
        f"{count(planned.sites)} établissements.",
        f"  {count(len(planned.new))} nouveaux établissements",
        f"  {count(len(planned.changed))} modifiés"
        + (
            f" (dont {planned.reopened} de nouveau présents dans FINESS)"
            if planned.reopened
            else ""
        ),
        f"  {count(planned.unchanged)} inchangés",
        f"  {count(len(planned.absent))} absents de l'extrait (marqués « fermé dans FINESS », "
        "non supprimés)",
    ]
    skipped = sum(planned.skipped_categories.values())
    if skipped:
        codes = ", ".join(
            f"{code} {planned.category_labels.get(code, '')}".strip() + f" : {n}"
            for code, n in planned.skipped_categories.most_common(10)
        )
        more = len(planned.skipped_categories) - 10
        lines.append(
            f"  {count(skipped)} ignorés pour leur catégorie ({codes}"
            + (f", et {more} autres codes" if more > 0 else "")
            + ")"
        )
    if planned.skipped_departement:
        lines.append(
            f"  {count(planned.skipped_departement)} ignorés hors des départements choisis"
        )
    if planned.malformed:
        lines.append(f"  {count(len(planned.malformed))} lignes mal formées, ignorées :")
        lines += [f"    {m}" for m in planned.malformed[:20]]
        if len(planned.malformed) > 20:
            lines.append(f"    … et {count(len(planned.malformed) - 20)} autres")
    for change in planned.changed[:20]:
        lines.append(f"  modifié {change.finess} {change.name} : {', '.join(change.fields)}")
    if len(planned.changed) > 20:
        lines.append(f"  … et {count(len(planned.changed) - 20)} autres modifiés")
    for gone in planned.absent[:20]:
        lines.append(f"  absent {gone.finess} {gone.name}")
    if len(planned.absent) > 20:
        lines.append(f"  … et {count(len(planned.absent) - 20)} autres absents")
    return lines
