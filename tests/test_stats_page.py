"""The statistics page: French, aggregates only, charts drawn (checked in headless Chromium)."""

from __future__ import annotations

import base64
import csv
import io
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient

from scheduling.clock import FrozenClock
from telmi.db import Database
from telmi.models import ActType, FacilityCategory, Role

from .browser import CHROMIUM, CHROMIUM_ARGS, require_browser
from .factories import PASSWORD, login, make_act, make_facility, make_specialty, make_user


@pytest.fixture
async def activity(db: Database) -> dict[str, Any]:
    """Acts in 2024 and 2025 across two départements, two categories and two specialties."""
    ehpad = await make_facility(db, departement="21", category=FacilityCategory.NURSING_HOME)
    centre = await make_facility(db, departement="25", category=FacilityCategory.HEALTH_CENTRE)
    derm = await make_user(db, Role.SPECIALIST, specialty=await make_specialty(db, "dermatologie"))
    cardio = await make_user(db, Role.SPECIALIST, specialty=await make_specialty(db, "cardiologie"))
    start = datetime(2025, 1, 6, 10, tzinfo=UTC)
    made = 0
    for week in range(0, 48, 2):
        for facility, specialist, kind in (
            (ehpad, derm, ActType.TELEEXPERTISE),
            (centre, cardio, ActType.TELECONSULTATION),
            (ehpad, cardio, ActType.TELECONSULTATION),
        ):
            await make_act(
                db,
                facility=facility,
                specialist=specialist,
                occurred_at=start + timedelta(weeks=week),
                act_type=kind,
                patient=f"R{week % 7}",
            )
            made += 1
        await make_act(
            db,
            facility=ehpad,
            specialist=derm,
            occurred_at=start - timedelta(days=365) + timedelta(weeks=week),
            act_type=ActType.TELEEXPERTISE,
        )
    regional = await make_user(db, Role.REGIONAL)
    return {"acts_2025": made, "regional": regional}


async def test_statistics_page_in_french_with_figures(
    client: TestClient, activity: dict[str, Any]
) -> None:
    await login(client, activity["regional"].email, PASSWORD)
    response = await client.get("/statistiques", params={"annee": "2025"})
    assert response.status == 200
    html = await response.text()
    assert "Statistiques d'activité" in html and "Par département" in html
    assert f'data-testid="acts-total">{activity["acts_2025"]}<' in html
    assert html.count('<svg class="chart"') == 6
    assert "text/csv" not in html and "format=csv" in html
    assert "R1" not in html  # no patient reference anywhere


async def test_statistics_page_is_for_regional_teams_and_admins(
    client: TestClient, db: Database
) -> None:
    staff = await make_user(db, Role.STAFF)
    await login(client, staff.email, PASSWORD)
    assert (await client.get("/statistiques")).status == 403


async def test_a_bad_filter_gets_a_french_error_page(
    client: TestClient, activity: dict[str, Any]
) -> None:
    await login(client, activity["regional"].email, PASSWORD)
    for params in ({"annee": "1999"}, {"departement": "<script>"}, {"type": "telepathie"}):
        bad = await client.get("/statistiques", params=params)
        assert bad.status == 422, params
        assert "<script>" not in await bad.text()


async def test_charts_are_drawn_in_chromium(
    client: TestClient, activity: dict[str, Any], tmp_path: Path
) -> None:
    require_browser()
    from playwright.async_api import async_playwright

    base = str(client.make_url("/")).rstrip("/")
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            await page.goto(base + "/login")
            await page.fill("input[name=email]", activity["regional"].email)
            await page.fill("input[name=password]", PASSWORD)
            await page.click("button[type=submit]")
            await page.wait_for_url(base + "/")
            await page.goto(base + "/statistiques?annee=2025")
            await page.screenshot(path=str(tmp_path / "statistiques.png"), full_page=True)
            assert (tmp_path / "statistiques.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

            sizes = await page.eval_on_selector_all(
                "svg.chart",
                "charts => charts.map(c => { const r = c.getBoundingClientRect();"
                " return [r.width, r.height]; })",
            )
            assert len(sizes) == 6
            assert all(w > 300 and h > 60 for w, h in sizes), sizes
            bars = await page.eval_on_selector_all(
                "svg.chart rect.bar:not(.previous)",
                "bars => bars.map(b => b.getBoundingClientRect().width)",
            )
            assert sum(1 for w in bars if w > 5) >= 2 + 2 + 2 + 2 + 1  # départements, ...
            line = await page.get_attribute("svg.chart path.series.current", "d")
            assert line is not None and line.count("L") == 11  # twelve months of 2025
            labels = await page.eval_on_selector_all(
                "svg.chart .axis-label", "ts => ts.map(t => t.textContent)"
            )
            assert "janv." in labels and "déc." in labels and "0" in labels
            fill = await page.eval_on_selector(
                "svg.chart rect.bar", "b => getComputedStyle(b).fill"
            )
            assert fill == "rgb(11, 92, 173)"  # styled by the served stylesheet (CSP allows it)

            # The picture itself: count the bar colour's pixels in a chart's screenshot.
            chart = await page.query_selector_all("svg.chart")
            png = await chart[2].screenshot()
            blue = await page.evaluate(
                """async (data) => {
                    const img = new Image();
                    img.src = "data:image/png;base64," + data;
                    await img.decode();
                    const canvas = document.createElement("canvas");
                    canvas.width = img.width; canvas.height = img.height;
                    const ctx = canvas.getContext("2d");
                    ctx.drawImage(img, 0, 0);
                    const px = ctx.getImageData(0, 0, img.width, img.height).data;
                    let n = 0;
                    for (let i = 0; i < px.length; i += 4)
                        if (Math.abs(px[i] - 11) < 12 && Math.abs(px[i + 1] - 92) < 12
                            && Math.abs(px[i + 2] - 173) < 12) n++;
                    return n;
                }""",
                base64.b64encode(png).decode(),
            )
            assert blue > 500, "the département bars should be visible in the picture"
        finally:
            await browser.close()


# --- the numbers of each chart, and the period still running ------------------------------------


@dataclass
class Figure:
    """One <figure> of the page: its chart's marks and its data table."""

    svg: dict[str, str] = field(default_factory=dict)
    ids: set[str] = field(default_factory=set)
    marks: list[dict[str, str]] = field(default_factory=list)  # rect.bar, circle.dot
    texts: list[tuple[str, str]] = field(default_factory=list)  # (class, text) in the SVG
    caption: str = ""
    headers: list[tuple[str, str | None, str]] = field(default_factory=list)  # (tag, scope, text)
    rows: list[tuple[str, list[str], str]] = field(default_factory=list)  # (th, tds, class)


class Figures(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.figures: list[Figure] = []
        self.inside: list[str] = []
        self.text = ""
        self.row: tuple[str, list[str], str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "figure":
            self.figures.append(Figure())
        if not self.figures:
            return
        fig = self.figures[-1]
        if tag == "svg" and "chart" in a.get("class", "").split():
            fig.svg = a
        if "id" in a:
            fig.ids.add(a["id"])
        if tag in ("rect", "circle") and "data-value" in a:
            fig.marks.append(a)
        if tag == "tr":
            self.row = ("", [], a.get("class", ""))
        if tag in ("th", "td", "caption", "text"):
            self.text = ""
            self.inside.append(a.get("scope", "") if tag != "text" else a.get("class", ""))

    def handle_data(self, data: str) -> None:
        self.text += data

    def handle_endtag(self, tag: str) -> None:
        if not self.figures:
            return
        fig, text = self.figures[-1], " ".join(self.text.split())
        if tag in ("th", "td", "caption", "text"):
            scope = self.inside.pop()
        if tag == "caption":
            fig.caption = text
        elif tag == "text":
            fig.texts.append((scope, text))
        elif tag in ("th", "td"):
            fig.headers.append((tag, scope or None, text)) if tag == "th" else None
            if self.row is not None:
                head, cells, cls = self.row
                self.row = (text, cells, cls) if tag == "th" and scope == "row" else self.row
                if tag == "td":
                    cells.append(text)
        elif tag == "tr" and self.row is not None:
            if self.row[0]:
                fig.rows.append(self.row)
            self.row = None


def figures(html: str) -> list[Figure]:
    parser = Figures()
    parser.feed(html)
    return parser.figures


def _int(text: str) -> int:
    return int(text.replace("\u202f", "").replace(" ", ""))


async def test_every_chart_has_a_table_of_the_same_numbers(
    client: TestClient, activity: dict[str, Any]
) -> None:
    await login(client, activity["regional"].email, PASSWORD)
    html = await (await client.get("/statistiques", params={"annee": "2025"})).text()
    found = figures(html)
    assert len(found) == 6
    for fig in found:
        # The picture is an image named by its title and described by its numbers.
        assert fig.svg["role"] == "img"
        title, desc = fig.svg["aria-labelledby"].split()
        assert {title, desc} <= fig.ids
        # A table with a caption, column and row headers, none of them empty.
        assert fig.caption
        assert fig.headers and all(text for _, _, text in fig.headers)
        assert all(scope in ("col", "row") for _, scope, _ in fig.headers)
        assert {scope for _, scope, _ in fig.headers} == {"col", "row"}
        assert fig.rows
    monthly, history, departement, category, specialty, act_type = found
    # Months: the 2025 column is the solid line's dots, the 2024 one the dashed line's.
    months = [m for m in monthly.marks if "current" in m["class"]]
    before = [m for m in monthly.marks if "previous" in m["class"]]
    assert [m["data-label"] for m in months][:3] == ["janv.", "févr.", "mars"]
    assert len(monthly.rows) == 12 == len(months) == len(before)
    for (head, cells, _), now, then in zip(monthly.rows, months, before, strict=True):
        assert head.lower().startswith(now["data-label"].rstrip(".")[:3]), head
        assert [_int(c) for c in cells] == [int(now["data-value"]), int(then["data-value"])]
    march = monthly.rows[2]
    fortnights = [datetime(2025, 1, 6) + timedelta(weeks=w) for w in range(0, 48, 2)]
    assert march[0] == "Mars 2025"
    assert _int(march[1][0]) == 3 * len([d for d in fortnights if d.month == 3])  # 3, 17, 31
    assert sum(_int(cells[0]) for _, cells, _ in monthly.rows) == activity["acts_2025"]
    # Years, départements, categories, specialties, act types: a row per bar, same value.
    assert [(h, _int(c[0])) for h, c, _ in history.rows] == [
        ("2024", 24),
        ("2025", activity["acts_2025"]),
    ]
    for fig in (history, departement, category, specialty, act_type):
        bars = [m for m in fig.marks if m.get("class", "").startswith("bar")]
        assert [(b["data-label"], int(b["data-value"])) for b in bars] == [
            (h, _int(c[0])) for h, c, _ in fig.rows
        ]
    assert [h for h, _, _ in category.rows] == ["EHPAD", "Centre ou maison de santé"]
    assert {h for h, _, _ in act_type.rows} == {"Téléexpertise", "Téléconsultation"}
    assert category.rows[0][1] == ["48", "24", "+100 %"]  # EHPAD: 2 acts a fortnight
    # Nothing ran on in 2025 seen from June 2026: no month or year marked as running.
    assert "en cours" not in html and "incomplète" not in html
    assert not [m for f in found for m in f.marks if "partial" in m["class"]]


@pytest.fixture
async def this_year(db: Database, activity: dict[str, Any]) -> dict[str, Any]:
    """Two acts in each month of 2026 up to May, and one on 3 June (the clock: 10 June)."""
    ehpad = await make_facility(db, departement="21", category=FacilityCategory.NURSING_HOME)
    derm = await make_user(db, Role.SPECIALIST, specialty=await make_specialty(db, "dermatologie"))
    for month in range(1, 6):
        for day in (4, 18):
            await make_act(
                db,
                facility=ehpad,
                specialist=derm,
                occurred_at=datetime(2026, month, day, 9, tzinfo=UTC),
            )
    await make_act(
        db, facility=ehpad, specialist=derm, occurred_at=datetime(2026, 6, 3, 9, tzinfo=UTC)
    )
    return activity


async def test_the_month_still_running_is_marked_in_words_and_drawing(
    client: TestClient, this_year: dict[str, Any], clock: FrozenClock
) -> None:
    await login(client, this_year["regional"].email, PASSWORD)
    html = await (await client.get("/statistiques")).text()  # 2026, on 10 June
    monthly, history, *_ = figures(html)
    assert [h for h, _, _ in monthly.rows] == [
        "Janvier 2026",
        "Février 2026",
        "Mars 2026",
        "Avril 2026",
        "Mai 2026",
        "Juin 2026 — mois en cours (jusqu'au 10 juin)",
    ]
    assert [cls for _, _, cls in monthly.rows] == [""] * 5 + ["partial"]
    assert [_int(c[0]) for _, c, _ in monthly.rows] == [2, 2, 2, 2, 2, 1]
    # In the chart: June's dots are hollow (class partial), said « (en cours) » under « juin ».
    partial = [m for m in monthly.marks if "partial" in m["class"].split()]
    assert [(m["data-label"], m["data-value"]) for m in partial if "current" in m["class"]] == [
        ("juin", "1")
    ]
    assert ("axis-label marker", "(en cours)") in monthly.texts
    assert 'class="series current partial"' in html  # the dotted segment into June
    # The year: its column hatched and marked, its row said to be running.
    assert history.rows[-1][0] == "2026 — année en cours (jusqu'au 10 juin)"
    column = [m for m in history.marks if m["data-label"] == "2026"]
    assert column[0]["class"] == "bar partial" and 'fill="url(#' in html
    assert ("axis-label marker", "(en cours)") in history.texts
    # Growth on the year before compares the same dates, and says the year is incomplete.
    assert "sur les mêmes dates de 2025" in html and "année incomplète" in html

    # On 1 July at 00:30, June is over: it is a month like the others, and July runs.
    clock.set(datetime(2026, 7, 1, 0, 30, tzinfo=ZoneInfo("Europe/Paris")))
    await login(client, this_year["regional"].email, PASSWORD)  # the session has expired
    monthly, *_ = figures(await (await client.get("/statistiques")).text())
    assert monthly.rows[5][0] == "Juin 2026" and monthly.rows[5][2] == ""
    assert monthly.rows[6][0] == "Juillet 2026 — mois en cours (jusqu'au 1er juillet)"
    running = {m["data-label"] for m in monthly.marks if "partial" in m["class"].split()}
    assert running == {"juil."}


async def test_csv_names_categories_act_types_and_specialties_in_french(
    client: TestClient, activity: dict[str, Any]
) -> None:
    await login(client, activity["regional"].email, PASSWORD)
    html = await (await client.get("/statistiques", params={"annee": "2025"})).text()
    assert "format=csv" in html
    params = {
        "from": "2025-01-01",
        "to": "2025-12-31",
        "group_by": "facility_category,act_type,specialty",
        "format": "csv",
        "sep": ";",
    }
    response = await client.get("/api/stats/acts", params=params)
    assert response.status == 200 and response.content_type == "text/csv"
    raw = (await response.read()).decode("utf-8")
    assert raw.startswith("\ufeff")
    table = list(csv.reader(io.StringIO(raw.removeprefix("\ufeff")), delimiter=";"))
    assert table[0][:4] == ["categorie_etablissement", "type_acte", "specialite", "actes"]
    cells = {tuple(row[:3]): int(row[3]) for row in table[1:]}
    assert cells == {
        ("EHPAD", "Téléexpertise", "Dermatologie"): 24,
        ("Centre ou maison de santé", "Téléconsultation", "Cardiologie"): 24,
        ("EHPAD", "Téléconsultation", "Cardiologie"): 24,
    }
    for code in ("nursing_home", "health_centre", "teleexpertise", "teleconsultation"):
        assert code not in raw
    # The JSON keeps the codes, which the filters take.
    json = await (await client.get("/api/stats/acts", params=params | {"format": "json"})).json()
    assert {r["facility_category"] for r in json["rows"]} == {"nursing_home", "health_centre"}
