"""The regional view of sites: activity per facility, the quiet ones, and a shaded map.

Aggregates only, never a patient: per facility, the net acts (SUM(sign), so a cancelled act
nets out) of the last twelve months, the date of its last act that was not cancelled, and
the acts it answered, and the sites without an act for `QUIET_DAYS` days. The map is
drawn here as SVG from the département outlines shipped in
`static/img/france-departements.json` (CC BY 4.0, see the licence file beside it).

Requesting and answering: an act names the facility that requested it (`Act.facility_id`)
and the specialist who answered (`Act.specialist_id`). A specialist's account may be
attached to a facility (`User.facility_id`); the acts answered by a facility are the acts
of the specialists attached to it. Most specialists practise outside the sites, so the
column is often zero and the page says how it is counted.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Table, and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from telmi.context import Context
from telmi.errors import Forbidden
from telmi.models import Act, Departement, Facility, FacilityCategory, Role, User
from telmi.paths import STATIC_DIR

QUIET_DAYS = 90
CLASSES = 4  # shading classes above zero
MAP_FILE = STATIC_DIR / "img" / "france-departements.json"
_ACTS: Table = Act.__table__  # type: ignore[assignment]

# The package's paths are a Mercator projection of France (Corsica moved as an inset):
# x and y are an affine map of (longitude in radians, ln tan(pi/4 + latitude/2)), fitted on
# five extreme points of the outlines (Ouessant, pointe de Corsen, Lauterbourg, Bray-Dunes,
# the Puig de Comanegra) with residuals under one unit; tests/test_sites.py checks that the
# prefectures of the mainland fall inside their département.
_X = (2383.28187, -0.814148509, 215.667123)
_Y = (-2.24211820, -2370.51556, 2467.46525)


@dataclass(frozen=True)
class Site:
    facility_id: int
    finess: str
    name: str
    category: FacilityCategory
    departement_code: str
    commune: str
    is_active: bool
    latitude: float | None
    longitude: float | None
    acts: int  # net acts requested over the twelve months
    answered: int  # net acts answered by specialists attached to the facility
    last_act: date | None  # the last act not cancelled, any time


@dataclass(frozen=True)
class Area:
    code: str
    name: str
    acts: int
    sites: int


@dataclass(frozen=True)
class Overview:
    today: date
    start: date  # first day of the twelve months
    sites: list[Site]  # most acts first
    quiet: list[Site]  # active sites without an act for QUIET_DAYS days, never first
    departements: list[Area]

    @property
    def total(self) -> int:
        return sum(s.acts for s in self.sites)


def _years_back(day: date) -> date:
    try:
        return day.replace(year=day.year - 1)
    except ValueError:  # 29 February
        return day.replace(year=day.year - 1, day=28)


def window(today: date) -> tuple[date, date]:
    """The last twelve months: from the day after the same date a year ago to `today`,
    both included (for 10 June 2026: 11 June 2025 to 10 June 2026)."""
    return _years_back(today) + timedelta(days=1), today


def is_quiet(site: Site, today: date) -> bool:
    """No act in the last QUIET_DAYS days (today included), or never one."""
    return site.last_act is None or site.last_act <= today - timedelta(days=QUIET_DAYS)


async def overview(session: AsyncSession, ctx: Context, *, tz: ZoneInfo) -> Overview:
    """The figures of the page, for regional and admin users."""
    if ctx.caller.role not in (Role.REGIONAL, Role.ADMIN):
        raise Forbidden("Réservé aux équipes régionales et aux administrateurs.")
    today = ctx.now.astimezone(tz).date()
    start, last = window(today)
    in_window = and_(_ACTS.c.occurred_on >= start, _ACTS.c.occurred_on <= last)
    requested = {
        int(fid): int(n or 0)
        for fid, n in await session.execute(
            select(_ACTS.c.facility_id, func.sum(_ACTS.c.sign))
            .where(in_window)
            .group_by(_ACTS.c.facility_id)
        )
    }
    answered = {
        int(fid): int(n or 0)
        for fid, n in await session.execute(
            select(User.facility_id, func.sum(_ACTS.c.sign))
            .join(User, User.id == _ACTS.c.specialist_id)
            .where(in_window, User.facility_id.is_not(None))
            .group_by(User.facility_id)
        )
    }
    cancel = aliased(Act)
    last_acts = {
        int(fid): day
        for fid, day in await session.execute(
            select(Act.facility_id, func.max(Act.occurred_on))
            .outerjoin(cancel, cancel.cancels_act_id == Act.id)
            .where(Act.sign == 1, cancel.id.is_(None), Act.occurred_on <= last)
            .group_by(Act.facility_id)
        )
    }
    facilities = (await session.scalars(select(Facility).order_by(Facility.name))).all()
    sites = [
        Site(
            facility_id=f.id,
            finess=f.finess,
            name=f.name,
            category=f.category,
            departement_code=f.departement_code,
            commune=f.commune,
            is_active=f.is_active,
            latitude=f.latitude,
            longitude=f.longitude,
            acts=requested.get(f.id, 0),
            answered=answered.get(f.id, 0),
            last_act=last_acts.get(f.id),
        )
        for f in facilities
    ]
    sites.sort(key=lambda s: (-s.acts, s.name))
    quiet = sorted(
        (s for s in sites if s.is_active and is_quiet(s, today)),
        key=lambda s: (s.last_act is not None, s.last_act or today, s.name),
    )
    # The départements of the regions that have sites (a national FINESS import may have
    # created others), those the shipped outlines draw (metropolitan France).
    with_sites = select(Departement.region_id).where(
        Departement.code.in_({s.departement_code for s in sites})
    )
    codes = set(
        await session.scalars(select(Departement.code).where(Departement.region_id.in_(with_sites)))
    )
    outlines = departement_outlines()
    shown = sorted(codes & set(outlines))
    areas = [
        Area(
            code,
            outlines[code][0],
            sum(s.acts for s in sites if s.departement_code == code),
            sum(1 for s in sites if s.departement_code == code),
        )
        for code in shown
    ]
    return Overview(today, start, sites, quiet, areas)


# --- the map ------------------------------------------------------------------------------------


@cache
def _map_data() -> dict[str, Any]:
    return json.loads(MAP_FILE.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def departement_outlines() -> dict[str, tuple[str, str]]:
    """Code -> (name, SVG path data) for the metropolitan départements of the package."""
    return {code: (v["name"], v["d"]) for code, v in _map_data()["departements"].items()}


def polygons(d: str) -> list[list[tuple[float, float]]]:
    """The rings of a path written as the package writes them: relative `m` with implicit
    line-tos, closed by `z` (the next `m` is relative to the ring's first point)."""
    rings: list[list[tuple[float, float]]] = []
    x = y = 0.0
    ring: list[tuple[float, float]] | None = None
    first = False
    tokens = d.replace(",", " ").split()
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token in ("m", "M"):
            first, i = True, i + 1
            continue
        if token in ("z", "Z"):
            if ring:
                rings.append(ring)
                x, y = ring[0]
            ring, i = None, i + 1
            continue
        dx, dy = float(token), float(tokens[i + 1])
        i += 2
        x, y = x + dx, y + dy
        if first:
            ring, first = [(x, y)], False
        elif ring is not None:
            ring.append((x, y))
    if ring:
        rings.append(ring)
    return rings


def bounding_box(d: str) -> tuple[float, float, float, float]:
    points = [p for ring in polygons(d) for p in ring]
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return min(xs), min(ys), max(xs), max(ys)


def project(latitude: float, longitude: float) -> tuple[float, float]:
    """WGS84 degrees -> the map's coordinates."""
    u = math.radians(longitude)
    v = math.log(math.tan(math.pi / 4 + math.radians(latitude) / 2))
    return _X[0] * u + _X[1] * v + _X[2], _Y[0] * u + _Y[1] * v + _Y[2]


def class_step(largest: int) -> int:
    """The width of a shading class: 1, 2, 2.5 or 5 times a power of ten (whole), so that
    CLASSES classes cover the largest value."""
    raw = max(1, largest) / CLASSES
    power = 10 ** math.floor(math.log10(raw))
    return max(1, round(next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)))


def shade(acts: int, step: int) -> int:
    """0 for no act, then 1..CLASSES by steps of `step` acts."""
    if acts <= 0:
        return 0
    return min(CLASSES, math.ceil(acts / step))


def legend(step: int) -> list[tuple[int, str]]:
    """(class, bounds in words) for the map's legend."""
    rows = [(0, "aucun acte")]
    for k in range(1, CLASSES + 1):
        low, high = (k - 1) * step + 1, k * step
        if k == CLASSES:
            rows.append((k, f"{low} actes et plus"))
        elif low == high:
            rows.append((k, f"{low} acte{'s' if low > 1 else ''}"))
        else:
            rows.append((k, f"{low} à {high} actes"))
    return rows


def _esc(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


def map_svg(view: Overview, step: int) -> str:
    """The départements shown, shaded by their acts, and the geolocated sites as dots."""
    outlines = departement_outlines()
    boxes = [bounding_box(outlines[a.code][1]) for a in view.departements]
    if boxes:
        x0, y0 = min(b[0] for b in boxes) - 6, min(b[1] for b in boxes) - 6
        x1, y1 = max(b[2] for b in boxes) + 6, max(b[3] for b in boxes) + 6
    else:
        x0, y0, x1, y1 = 0.0, 0.0, 613.0, 585.0
    body = []
    for area in view.departements:
        name, d = outlines[area.code]
        body.append(
            f'<path class="departement map-c{shade(area.acts, step)}" data-code="{area.code}" '
            f'd="{d}"><title>{_esc(name)} ({area.code}) : {area.acts} acte'
            f"{'s' if area.acts > 1 else ''} en 12 mois</title></path>"
        )
    for site in view.sites:
        if site.latitude is None or site.longitude is None:
            continue
        x, y = project(site.latitude, site.longitude)
        if not (x0 <= x <= x1 and y0 <= y <= y1):
            continue
        quiet = " quiet" if is_quiet(site, view.today) else ""
        body.append(
            f'<circle class="site{quiet}" data-finess="{site.finess}" cx="{x:.2f}" '
            f'cy="{y:.2f}" r="2.6"><title>{_esc(site.name)} ({_esc(site.commune)}) : '
            f"{site.acts} acte{'s' if site.acts > 1 else ''}</title></circle>"
        )
    located = sum(1 for s in view.sites if s.latitude is not None and s.longitude is not None)
    description = (
        f"{len(view.departements)} départements, ombrés selon les actes des 12 derniers mois "
        f"({view.total} au total) ; {located} établissements géolocalisés en points."
    )
    return (
        f'<svg class="sites-map" viewBox="{x0:.1f} {y0:.1f} {x1 - x0:.1f} {y1 - y0:.1f}" '
        'width="100%" role="img" aria-labelledby="sites-map-t sites-map-d" '
        'xmlns="http://www.w3.org/2000/svg">'
        '<title id="sites-map-t">Carte des actes par département</title>'
        f'<desc id="sites-map-d">{_esc(description)}</desc>' + "".join(body) + "</svg>"
    )


def areas_step(areas: Sequence[Area]) -> int:
    return class_step(max([a.acts for a in areas] + [0]))
