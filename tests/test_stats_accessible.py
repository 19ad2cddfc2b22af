"""« Statistiques d'activité » on a phone, a tablet and a desktop (issue 15, point 9): no
sideways scroll, chart text at a readable size, filters stacked on a phone, a data table
under every chart holding the chart's numbers, the month and year still running marked in
words and drawing, and no axe-core violation, for the regional team and the admin, over the
demo region's act history, with and without filters."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient

from scheduling.clock import FrozenClock
from telmi import demo
from telmi.db import Database
from telmi.demo_history import load_history
from telmi.models import Role

from .browser import VIEWPORTS, axe_violations, scroll_overflow, signed_in
from .factories import TEST_SECRET, make_user

PARIS = ZoneInfo("Europe/Paris")
SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the page, not SQL


@pytest.fixture
async def region(db: Database, clock: FrozenClock) -> dict[str, Any]:
    """The demo region with its act history (2017 to yesterday, shrunk), at NOW: 10 June."""
    async with db.write() as session:
        await demo.load(session, now=clock.now())
    written = await load_history(db, now=clock.now(), tz=PARIS, secret=TEST_SECRET, scale=0.01)
    assert written > 1000
    return {
        "regional": await make_user(db, Role.REGIONAL),
        "admin": await make_user(db, Role.ADMIN),
    }


@SQLITE
@pytest.mark.parametrize("role", ["regional", "admin"])
async def test_statistics_page_fits_every_viewport_without_axe_violation(
    site: TestClient, browser: Any, region: dict[str, Any], role: str
) -> None:
    base = str(site.make_url("")).rstrip("/")
    page = await signed_in(browser, base, region[role].email)
    for query in ("", "?annee=2025", "?departement=21&categorie=nursing_home&type=teleexpertise"):
        await page.goto(base + "/statistiques" + query)
        assert await page.locator("svg.chart").count() == 6
        for name, (width, height) in VIEWPORTS.items():
            await page.set_viewport_size({"width": width, "height": height})
            where = f"{role} {query or 'défaut'} {name}"
            assert await scroll_overflow(page) == 0, where
            assert await axe_violations(page) == [], where
            # Open every « Voir les données »: the tables too must fit and pass.
            await page.eval_on_selector_all(
                "details.chart-data", "ds => ds.forEach(d => d.open = true)"
            )
            assert await scroll_overflow(page) == 0, where + " (tables)"
            spill = await page.eval_on_selector_all(
                "figure",
                "fs => fs.map(f => f.querySelector('table').getBoundingClientRect().right"
                " - f.getBoundingClientRect().right)",
            )
            assert len(spill) == 6 and max(spill) <= 0, (where, spill)  # inside its card
            assert await axe_violations(page) == [], where + " (tables)"
            await page.eval_on_selector_all(
                "details.chart-data", "ds => ds.forEach(d => d.open = false)"
            )


# Each visible text of the charts: its size as drawn (font size times the SVG's scale), its
# box, and the box of its chart.
TEXTS = """() => [...document.querySelectorAll("svg.chart")].map(svg => {
    const box = svg.getBoundingClientRect();
    return [...svg.querySelectorAll("text")]
        .filter(t => t.getBoundingClientRect().width > 0)
        .map(t => { const r = t.getBoundingClientRect();
            return {text: t.textContent, cls: t.getAttribute("class"),
                    px: t.getScreenCTM().a * parseFloat(getComputedStyle(t).fontSize),
                    left: r.left, right: r.right, top: r.top,
                    inside: r.left >= box.left - 1 && r.right <= box.right + 1}; });
})"""


@SQLITE
async def test_chart_text_stays_readable_and_filters_stack_on_a_phone(
    site: TestClient, browser: Any, region: dict[str, Any]
) -> None:
    base = str(site.make_url("")).rstrip("/")
    page = await signed_in(browser, base, region["regional"].email)
    await page.goto(base + "/statistiques")
    for name, (width, height) in VIEWPORTS.items():
        await page.set_viewport_size({"width": width, "height": height})
        charts = await page.evaluate(TEXTS)
        assert len(charts) == 6
        for texts in charts:
            assert texts, name
            small = [t for t in texts if t["px"] < 12]
            assert not small, (name, small[:3])
            assert all(t["inside"] for t in texts), (name, [t for t in texts if not t["inside"]])
            # The labels under an axis, left to right, never run into one another.
            under = [t for t in texts if t["cls"] in ("axis-label", "axis-label minor")]
            for row in {t["top"] for t in under}:
                line = sorted(
                    (t for t in under if t["top"] == row),
                    key=lambda t: t["left"],
                )
                assert all(a["right"] <= b["left"] for a, b in zip(line, line[1:], strict=False)), (
                    name,
                    line,
                )
        widths = await page.eval_on_selector_all(
            "svg.chart", "cs => cs.map(c => c.getBoundingClientRect().width)"
        )
        assert all(w > width * 0.75 for w in widths[:2]), (name, widths)  # to the width
        months = [t["text"] for t in charts[0] if t["cls"] in ("axis-label", "axis-label minor")]
        if name == "phone":  # every other month, and always the one running
            assert months == ["févr.", "avr.", "juin", "août", "oct.", "déc."], months
        else:
            assert len(months) == 12, months
        assert ("axis-label marker", "(en cours)") in {(t["cls"], t["text"]) for t in charts[0]}
    # On a phone the filters are stacked, each the form's width.
    await page.set_viewport_size({"width": 390, "height": 844})
    boxes = await page.eval_on_selector_all(
        "form.filters label, form.filters button",
        "els => els.map(e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.width]; })",
    )
    assert len(boxes) == 6
    assert len({round(left) for left, _, _ in boxes}) == 1
    assert all(a[1] < b[1] for a, b in zip(boxes, boxes[1:], strict=False))
    assert all(w > 300 for _, _, w in boxes), boxes
