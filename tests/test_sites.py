"""« Sites de la région »: figures per facility, the quiet sites, the map (SVG and Chromium)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from telmi import acts, sites
from telmi.acts import ActCancellation
from telmi.context import Context
from telmi.db import Database
from telmi.models import Facility, Role, User

from .browser import signed_in
from .factories import NOW, PASSWORD, login, make_act, make_facility, make_user

SVG = "{http://www.w3.org/2000/svg}"
DIJON, BESANCON = (47.322, 5.041), (47.238, 6.024)


async def _place(db: Database, facility: Facility, where: tuple[float, float] | None) -> None:
    async with db.write() as session:
        row = await session.get(Facility, facility.id)
        assert row is not None
        row.latitude, row.longitude = where if where else (None, None)


@pytest.fixture
async def region(db: Database) -> dict[str, Any]:
    """At the suite's instant (10 June 2026, Paris), the twelve months run from 11 June 2025.

    busy (21, Dijon): 6 net acts in the window, one more cancelled on 5 June, one on 10 June
    2025 (outside); late (25, Besançon): one act exactly 90 days ago; recent (25, not
    geolocated): one act 89 days ago; idle (39): never an act."""
    busy = await make_facility(db, departement="21", name="EHPAD Les Tilleuls")
    late = await make_facility(db, departement="25", name="Centre de santé Battant")
    recent = await make_facility(db, departement="25", name="EHPAD Les Lilas")
    idle = await make_facility(db, departement="39", name="MAS Le Revermont")
    await _place(db, busy, DIJON)
    await _place(db, late, BESANCON)
    specialist = await make_user(db, Role.SPECIALIST)
    attached = await make_user(db, Role.SPECIALIST)  # a specialist who works at `late`
    async with db.write() as session:
        row = await session.get(User, attached.id)
        assert row is not None
        row.facility_id = late.id

    async def act(facility: Facility, at: datetime, by: User = specialist) -> int:
        return (await make_act(db, facility=facility, specialist=by, occurred_at=at)).id

    await act(busy, datetime(2025, 6, 10, 12, tzinfo=UTC))  # 10 June 2025: outside
    await act(busy, datetime(2025, 6, 10, 22, 30, tzinfo=UTC))  # 11 June 00:30 in Paris: in
    for day in (2, 9, 16, 23):
        await act(busy, datetime(2026, 3, day, 9, tzinfo=UTC))
    await act(busy, datetime(2026, 6, 1, 9, tzinfo=UTC), by=attached)
    cancelled = await act(busy, datetime(2026, 6, 5, 9, tzinfo=UTC))
    admin = await make_user(db, Role.ADMIN)
    async with db.write() as session:
        await acts.cancel(
            session, Context(admin, NOW), cancelled, ActCancellation(reason="Doublon")
        )
    await act(late, datetime(2026, 3, 12, 9, tzinfo=UTC))  # 90 days before 10 June
    await act(recent, datetime(2026, 3, 13, 9, tzinfo=UTC))  # 89 days
    return {
        "busy": busy,
        "late": late,
        "recent": recent,
        "idle": idle,
        "regional": await make_user(db, Role.REGIONAL),
        "admin": admin,
    }


async def _page(client: TestClient, user: User) -> str:
    await login(client, user.email, PASSWORD)
    response = await client.get("/sites-de-la-region")
    assert response.status == 200
    return await response.text()


def _row(html: str, facility: Facility) -> dict[str, str]:
    found = re.search(rf'<tr data-finess="{facility.finess}"[^>]*>(.*?)</tr>', html, re.S)
    assert found, facility.finess
    cells = dict(re.findall(r'data-testid="([a-z-]+)">([^<]*)<', found.group(1)))
    return cells


def _map(html: str) -> ET.Element:
    found = re.search(r'<svg class="sites-map".*?</svg>', html, re.S)
    assert found
    return ET.fromstring(found.group(0))  # well-formed XML, or this raises


def test_the_twelve_months_end_today() -> None:
    assert sites.window(date(2026, 6, 10)) == (date(2025, 6, 11), date(2026, 6, 10))
    assert sites.window(date(2028, 2, 29)) == (date(2027, 3, 1), date(2028, 2, 29))


async def test_figures_per_facility(client: TestClient, region: dict[str, Any]) -> None:
    html = await _page(client, region["regional"])
    assert _row(html, region["busy"]) == {"acts": "6", "answered": "0", "last-act": "01/06/2026"}
    assert _row(html, region["late"]) == {"acts": "1", "answered": "1", "last-act": "12/03/2026"}
    assert _row(html, region["recent"]) == {"acts": "1", "answered": "0", "last-act": "13/03/2026"}
    assert _row(html, region["idle"]) == {"acts": "0", "answered": "0", "last-act": "—"}
    # Most acts first; the period is written out; no patient anywhere.
    assert html.index(region["busy"].finess) < html.index(region["idle"].finess)
    assert "du 11/06/2025 au 10/06/2026" in html
    assert "RES-1" not in html


async def test_sites_without_an_act_for_90_days(client: TestClient, region: dict[str, Any]) -> None:
    html = await _page(client, region["admin"])
    quiet = re.search(r'data-testid="quiet-sites">(.*?)</ul>', html, re.S)
    assert quiet
    listed = re.findall(r'data-finess="(\d{9})"', quiet.group(1))
    assert listed == [region["idle"].finess, region["late"].finess]  # never first, then oldest
    assert "aucun acte" in quiet.group(1) and "dernier acte le 12/03/2026" in quiet.group(1)
    assert "Sites sans acte depuis 90 jours (2)" in html


@pytest.mark.parametrize("role", [Role.STAFF, Role.SPECIALIST])
async def test_only_regional_teams_and_admins(client: TestClient, db: Database, role: Role) -> None:
    user = await make_user(db, role)
    await login(client, user.email, PASSWORD)
    assert (await client.get("/sites-de-la-region")).status == 403


async def test_the_menu_and_the_statistics_page_link_here(
    client: TestClient, region: dict[str, Any]
) -> None:
    await login(client, region["regional"].email, PASSWORD)
    home = await (await client.get("/")).text()
    stats = await (await client.get("/statistiques")).text()
    assert 'href="/sites-de-la-region"' in home and 'href="/sites-de-la-region"' in stats


async def test_the_map_is_shaded_per_departement(
    client: TestClient, region: dict[str, Any]
) -> None:
    svg = _map(await _page(client, region["regional"]))
    assert svg.find(f"{SVG}title") is not None and svg.find(f"{SVG}desc") is not None
    paths = svg.findall(f"{SVG}path")
    assert sorted(p.get("data-code") or "" for p in paths) == ["21", "25", "39"]
    # 21: 6 acts, 25: 2, 39: none; classes of 2 acts (the largest, 6, over four classes).
    shading = {p.get("data-code"): (p.get("class") or "").split()[1] for p in paths}
    assert shading == {"21": "map-c3", "25": "map-c1", "39": "map-c0"}
    titles = {p.get("data-code"): p.findtext(f"{SVG}title") for p in paths}
    assert titles["21"] == "Côte-d'Or (21) : 6 actes en 12 mois"
    assert titles["39"] == "Jura (39) : 0 acte en 12 mois"
    assert sites.legend(2)[1:] == [
        (1, "1 à 2 actes"),
        (2, "3 à 4 actes"),
        (3, "5 à 6 actes"),
        (4, "7 actes et plus"),
    ]


async def test_geolocated_sites_are_dots_in_their_departement(
    client: TestClient, region: dict[str, Any]
) -> None:
    svg = _map(await _page(client, region["regional"]))
    dots = {c.get("data-finess"): c for c in svg.findall(f"{SVG}circle")}
    assert set(dots) == {region["busy"].finess, region["late"].finess}  # `recent` has no place
    outlines = sites.departement_outlines()
    for facility, code in ((region["busy"], "21"), (region["late"], "25")):
        x0, y0, x1, y1 = sites.bounding_box(outlines[code][1])
        dot = dots[facility.finess]
        assert x0 < float(dot.get("cx") or 0) < x1 and y0 < float(dot.get("cy") or 0) < y1
    assert "quiet" in (dots[region["late"].finess].get("class") or "")


def _inside(x: float, y: float, d: str) -> bool:
    inside = False
    for ring in sites.polygons(d):
        for (x1, y1), (x2, y2) in zip(ring, ring[1:] + ring[:1], strict=True):
            if (y1 > y) != (y2 > y) and x < (x2 - x1) * (y - y1) / (y2 - y1) + x1:
                inside = not inside
    return inside


@pytest.mark.parametrize(
    ("code", "latitude", "longitude"),
    [
        ("21", 47.322, 5.041),  # Dijon
        ("25", 47.238, 6.024),  # Besançon
        ("39", 46.675, 5.555),  # Lons-le-Saunier
        ("58", 46.990, 3.159),  # Nevers
        ("70", 47.622, 6.155),  # Vesoul
        ("71", 46.307, 4.828),  # Mâcon
        ("89", 47.798, 3.567),  # Auxerre
        ("90", 47.638, 6.863),  # Belfort
        ("25", 46.904, 6.354),  # Pontarlier
        ("71", 46.781, 4.854),  # Chalon-sur-Saône
        ("21", 47.026, 4.840),  # Beaune
        ("75", 48.857, 2.352),  # Paris
        ("59", 50.629, 3.057),  # Lille
        ("29", 48.390, -4.486),  # Brest
        ("67", 48.573, 7.752),  # Strasbourg
        ("66", 42.699, 2.895),  # Perpignan
        ("64", 43.295, -0.370),  # Pau
        ("06", 43.710, 7.262),  # Nice
        ("33", 44.838, -0.579),  # Bordeaux
    ],
)
def test_the_projection_puts_towns_in_their_departement(
    code: str, latitude: float, longitude: float
) -> None:
    x, y = sites.project(latitude, longitude)
    assert _inside(x, y, sites.departement_outlines()[code][1]), (code, x, y)


async def test_the_map_renders_in_chromium(
    client: TestClient, region: dict[str, Any], browser: Any
) -> None:
    base = str(client.make_url("/")).rstrip("/")
    page = await signed_in(browser, base, region["regional"].email)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    response = await page.goto(base + "/sites-de-la-region")
    assert response is not None and response.status == 200
    fills = await page.eval_on_selector_all(
        "svg.sites-map path.departement",
        "ps => Object.fromEntries(ps.map(p => [p.dataset.code, getComputedStyle(p).fill]))",
    )
    assert fills == {
        "21": "rgb(74, 143, 208)",  # .map-c3
        "25": "rgb(207, 225, 243)",  # .map-c1
        "39": "rgb(238, 241, 245)",  # .map-c0
    }
    box = await page.eval_on_selector(
        "svg.sites-map", "s => { const r = s.getBoundingClientRect(); return [r.width, r.height]; }"
    )
    assert box[0] > 300 and box[1] > 200, box
    dot = await page.eval_on_selector(
        "svg.sites-map circle.site:not(.quiet)", "c => getComputedStyle(c).fill"
    )
    assert dot == "rgb(232, 89, 12)"
    assert errors == []


async def test_a_region_without_sites_still_renders(client: TestClient, db: Database) -> None:
    html = await _page(client, await make_user(db, Role.REGIONAL))
    assert _map(html).findall(f"{SVG}path") == []
    assert "Sites sans acte depuis 90 jours (0)" in html
