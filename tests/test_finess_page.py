"""« Importer un extrait FINESS » in the browser pages: upload, preview, apply; at the suite's
instant. The extract is written to the published format by tests/test_finess.py's helpers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from telmi.db import Database
from telmi.models import Facility, FinessImport, Role

from .browser import poll, signed_in
from .factories import login, make_user, page_csrf
from .test_finess import extract_bytes, geolocation, number, structure


def _extract() -> bytes:
    return extract_bytes(
        structure(number("21", 1), rs="EHPAD LES TILLEULS"),
        structure(number("25", 2), rs="MAISON DE SANTE DU DOUBS", cat="603", dep="25"),
        structure(number("21", 3), rs="CRECHE", cat="620"),  # not a facility Telmi serves
        geolocation(number("21", 1), 855000.0, 6650000.0),
    )


async def _count(db: Database, model: Any) -> int:
    async with db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_an_admin_previews_then_applies_an_extract_once(
    client: TestClient, db: Database
) -> None:
    admin = await make_user(db, Role.ADMIN)
    await login(client, admin.email)
    token = await page_csrf(client, "/admin/finess")
    headers = {"X-CSRF-Token": token, "Content-Type": "text/csv"}
    refused = await client.post("/admin/finess/fichier", data=b"id;name\n1;x\n", headers=headers)
    assert refused.status == 422 and "extrait FINESS" in (await refused.json())["error"]["message"]
    sent = await client.post(
        "/admin/finess/fichier", params={"nom": "cs1100507.csv", "region": "27"},
        data=_extract(), headers=headers,
    )  # fmt: skip
    assert sent.status == 200, await sent.text()
    preview = await client.get((await sent.json())["url"])
    html = await preview.text()
    assert preview.status == 200 and "2 nouveaux établissements" in html.replace("\u202f", " ")
    assert await _count(db, Facility) == 0  # a preview writes nothing
    form = {"csrf_token": await page_csrf(client, "/admin/finess")}
    for name in ("fichier", "nom", "region", "departements"):
        value = html.split(f'name="{name}" value="', 1)[1].split('"', 1)[0]
        form[name] = value
    applied = await client.post("/admin/finess/appliquer", data=form, allow_redirects=False)
    assert applied.status == 303
    assert await _count(db, Facility) == 2 and await _count(db, FinessImport) == 1
    again = await client.post("/admin/finess/appliquer", data=form, allow_redirects=False)
    assert again.status == 422  # the file was spent: nothing applied twice
    assert await _count(db, FinessImport) == 1


async def test_only_admins_import(client: TestClient, db: Database) -> None:
    staff = await make_user(db, Role.STAFF)
    await login(client, staff.email)
    token = await page_csrf(client, "/")
    sent = await client.post(
        "/admin/finess/fichier", data=_extract(),
        headers={"X-CSRF-Token": token, "Content-Type": "text/csv"},
    )  # fmt: skip
    assert sent.status == 403
    assert (await client.get("/admin/finess", allow_redirects=False)).status == 403


async def test_the_admin_uploads_previews_and_applies_in_chromium(
    site: TestClient, db: Database, browser: Any, tmp_path: Path
) -> None:
    admin = await make_user(db, Role.ADMIN)
    path = tmp_path / "cs1100507.csv"
    path.write_bytes(_extract())
    base = str(site.make_url("/")).rstrip("/")
    page = await signed_in(browser, base, admin.email)
    await page.goto(f"{base}/admin/finess")
    await page.set_input_files("#finess-file", str(path))
    await page.click("#finess-upload button[type=submit]")
    await page.wait_for_url(f"{base}/admin/finess/apercu*")
    summary = await page.inner_text("#finess-summary")
    assert "2 nouveaux" in summary.replace("\u202f", " ")
    await page.click("#finess-apply")
    await page.wait_for_url(f"{base}/admin/finess?importe=*")
    await poll(page, "document.body.innerText.includes('appliqué')")
    assert await _count(db, Facility) == 2
