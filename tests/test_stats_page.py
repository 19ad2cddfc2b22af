"""The statistics page: French, aggregates only, charts drawn (checked in headless Chromium)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

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
