"""A refused form lists all its errors at once, each tied to its field; a session that expired
while a form was being typed gives the form back after the next login; error pages speak
French without internal codes. Fixed instant: tests.factories.NOW (2026-06-10 08:00 UTC)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import expect
from sqlalchemy import func, select

from scheduling.clock import FrozenClock
from telmi import availability, values
from telmi.db import Database
from telmi.errors import ValidationError
from telmi.models import Patient, Role

from .browser import poll, signed_in
from .factories import PASSWORD, login, make_facility, make_user


def test_a_model_refusing_three_fields_names_all_three() -> None:
    data = {"weekday": "9", "start": "25:00", "end": "12:00", "slot_minutes": "1000"}
    with pytest.raises(ValidationError) as refused:
        values.parse(availability.RuleInput, {**data, "act_types": []}, strict=False)
    fields = [field for field, _ in refused.value.problems]
    assert fields[:1] == [refused.value.field]  # the API still names the first one
    assert {"weekday", "start", "slot_minutes", "act_types"} <= set(fields)
    assert all(message for _, message in refused.value.problems)


async def _new_resident_page(browser: Any, site: TestClient, db: Database) -> tuple[Any, Any]:
    facility = await make_facility(db)
    staff = await make_user(db, Role.STAFF, facility=facility)
    base = str(site.make_url("/")).rstrip("/")
    page = await signed_in(browser, base, staff.email)
    await page.goto(base + "/residents/nouveau")
    return page, staff


async def test_resident_form_lists_every_error_tied_to_its_field(
    site: TestClient, db: Database, browser: Any
) -> None:
    page, _ = await _new_resident_page(browser, site, db)
    await page.fill("#reference", "RES 12 !")
    await page.fill("#doctor_rpps", "123")
    await page.fill("#doctor_mail", "pas-une-adresse")
    await page.click("form.form-narrow button[type=submit]")
    await poll(page, "document.querySelector('[data-error-summary]') !== null")
    await poll(page, "document.activeElement.matches('[data-error-summary]')")
    items = await page.locator("[data-error-summary] li").all_inner_texts()
    assert len(items) >= 3, items
    for name in ("reference", "doctor_rpps", "doctor_mail"):
        field = page.locator(f"#{name}")
        assert await field.get_attribute("aria-invalid") == "true", name
        described = await field.get_attribute("aria-describedby") or ""
        notes = [await page.inner_text(f"#{i}") for i in described.split() if "erreur" in i]
        assert notes and any(note in items for note in notes), (name, notes, items)
        # What a screen reader announces on the field, from the accessibility tree.
        said = re.compile(re.escape(notes[0]))
        await expect(field).to_have_accessible_description(said)
    link = page.locator("[data-error-summary] a[data-field=doctor_mail]")
    await link.click()
    assert await page.evaluate("document.activeElement.id") == "doctor_mail"
    assert await page.input_value("#reference") == "RES 12 !"  # what was typed stays
    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(Patient)) == 0


async def test_expired_session_gives_the_typed_form_back_after_login(
    site: TestClient, db: Database, clock: FrozenClock, browser: Any
) -> None:
    page, staff = await _new_resident_page(browser, site, db)
    await page.fill("#reference", "RES-77")
    await page.fill("#birth_name", "Martin")
    await page.fill("#first_names", "Louise Anne")
    clock.advance(timedelta(minutes=61))  # past the 60 idle minutes
    await page.click("form.form-narrow button[type=submit]")
    await page.wait_for_url(re.compile(r"/login\?"))
    assert "Votre session a expiré" in await page.inner_text("main")
    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(Patient)) == 0
    await page.fill("input[name=email]", staff.email)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(re.compile(r"/residents/nouveau$"))
    await poll(page, "document.getElementById('saisie-retablie') !== null")
    assert "Votre session a expiré" in await page.inner_text("#saisie-retablie")
    assert await page.input_value("#reference") == "RES-77"
    assert await page.input_value("#birth_name") == "Martin"
    assert await page.input_value("#first_names") == "Louise Anne"
    # Given back once: the next visit starts blank, and nothing lingers in the tab.
    await page.reload()
    assert await page.input_value("#reference") == ""
    assert await page.evaluate("sessionStorage.getItem('telmi.draft')") is None


async def test_a_form_sent_after_expiry_goes_to_login_then_back_to_its_page(
    client: TestClient, db: Database, clock: FrozenClock
) -> None:
    facility = await make_facility(db)
    staff = await make_user(db, Role.STAFF, facility=facility)
    await login(client, staff.email)
    clock.advance(timedelta(hours=2))
    sent = await client.post(
        "/residents/nouveau",
        data={"reference": "RES-1"},
        headers={"Referer": str(client.make_url("/residents/nouveau"))},
        allow_redirects=False,
    )
    assert sent.status == 303
    location = sent.headers["Location"]
    assert location.startswith("/login?") and "expiree=1" in location
    assert "next=/residents/nouveau" in location
    elsewhere = await client.post(
        "/residents/nouveau",
        data={"reference": "RES-1"},
        headers={"Referer": "https://elsewhere.example/phish?x=1"},
        allow_redirects=False,
    )
    assert elsewhere.status == 303
    assert "next=/phish&" in elsewhere.headers["Location"]  # a path of this site, not a host
    client.session.cookie_jar.clear()  # never signed in: no word of an expired session
    anonymous = await client.post(
        "/residents/nouveau", data={"reference": "RES-1"}, allow_redirects=False
    )
    assert anonymous.status == 303 and "expiree" not in anonymous.headers["Location"]
    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(Patient)) == 0


async def test_error_pages_speak_french_without_internal_codes(
    client: TestClient, db: Database
) -> None:
    facility = await make_facility(db)
    staff = await make_user(db, Role.STAFF, facility=facility)
    await login(client, staff.email)
    for path, status, title in (
        ("/admin", 403, "Accès refusé"),
        ("/residents/999999", 404, "Page introuvable"),
        ("/nulle-part", 404, "Page introuvable"),
    ):
        response = await client.get(path)
        html = await response.text()
        assert response.status == status, path
        assert f"<h1>{title}</h1>" in html
        for internal in ("forbidden", "not_found", "Code :", f"HTTP {status}"):
            assert internal not in html, (path, internal)
