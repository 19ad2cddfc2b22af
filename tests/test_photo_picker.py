"""The photo picker of a new tele-expertise request, from the keyboard: Tab reaches it,
Enter or Space opens the file chooser, a file that is not a photo is refused with the same
message as a dropped one and never sent, a photo gets its preview; and the page passes axe
without sideways scroll on a computer, a tablet and a phone."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from telmi.db import Database
from telmi.models import ExpertiseAttachment, ExpertiseRequest, Role

from .browser import VIEWPORTS, axe_violations, poll, scroll_overflow, signed_in
from .factories import make_facility, make_resident, make_specialty, make_user
from .test_expertise import _png

REFUSED = "« notes.txt » n'est pas une photo JPEG, PNG ou HEIC."
DROP_TEXT_FILE = """() => {
  const data = new DataTransfer();
  data.items.add(new File(["pas une photo"], "notes.txt", {type: "text/plain"}));
  const zone = document.getElementById("dropzone");
  for (const type of ["dragenter", "dragover", "drop"]) {
    zone.dispatchEvent(new DragEvent(type, {bubbles: true, cancelable: true, dataTransfer: data}));
  }
}"""


async def _new_request_page(site: TestClient, db: Database, browser: Any) -> tuple[Any, str, int]:
    facility = await make_facility(db)
    nurse = await make_user(db, Role.STAFF, facility=facility)
    await make_user(db, Role.SPECIALIST, specialty=await make_specialty(db, "dermatologie"))
    resident = await make_resident(db, nurse, reference="RES-40")
    base = str(site.make_url("/")).rstrip("/")
    page = await signed_in(browser, base, nurse.email)
    await page.goto(base + "/teleexpertise/nouvelle?specialite=dermatologie")
    return page, base, resident.id


async def _photo_status(page: Any) -> str:
    return str(await page.inner_text("#photo-status")).strip()


async def test_the_photo_picker_works_from_the_keyboard(
    site: TestClient, db: Database, browser: Any, tmp_path: Path
) -> None:
    page, base, resident_id = await _new_request_page(site, db, browser)
    uploads: list[str] = []
    page.on("request", lambda r: uploads.append(r.url) if "/photos" in r.url else None)
    # Playwright turns on file-chooser interception without waiting for the browser: a
    # listener from the start makes sure it is on before the first Enter.
    page.on("filechooser", lambda chooser: None)
    await page.evaluate("1")  # a round trip, so the subscription has reached the browser
    text_file = tmp_path / "notes.txt"
    text_file.write_text("pas une photo")
    photo = tmp_path / "talon.png"
    photo.write_bytes(_png())

    # Tab, from the top of the page, reaches the picker: the file input itself, whose
    # label (the drop zone) shows the focus. It says what it accepts.
    await page.evaluate("document.activeElement.blur()")
    reached = []
    for _ in range(60):
        await page.keyboard.press("Tab")
        reached.append(await page.evaluate("document.activeElement.id"))
        if reached[-1] == "photo-input":
            break
    assert reached[-1] == "photo-input", reached
    assert (
        await page.evaluate("getComputedStyle(document.getElementById('dropzone')).outlineStyle")
        == "solid"
    )
    picker = page.get_by_label("Choisir des photos")
    assert await picker.get_attribute("id") == "photo-input"
    described = await page.get_attribute("#photo-input", "aria-describedby")
    assert "JPEG, PNG ou HEIC" in await page.inner_text(f"#{described}")
    assert "15 Mo" in await page.inner_text(f"#{described}")
    assert (
        await page.evaluate("getComputedStyle(document.getElementById('photo-input')).display")
        != "none"
    )
    assert await page.get_attribute("#photo-status", "role") == "status"

    # A text file dropped on the zone is refused, and says so...
    await page.evaluate(DROP_TEXT_FILE)
    dropped = await _photo_status(page)
    assert REFUSED in dropped
    await page.evaluate("document.getElementById('photo-status').textContent = ''")

    # ...and the same file chosen with Enter gets the very same message.
    focused = await page.evaluate("document.activeElement.id")
    assert focused == "photo-input", focused
    async with page.expect_file_chooser() as chosen:
        await page.keyboard.press("Enter")
    chooser = await chosen.value
    assert chooser.is_multiple()
    await chooser.set_files(str(text_file))
    await poll(page, "document.getElementById('photo-status').textContent !== ''")
    assert await _photo_status(page) == dropped
    assert await page.locator("#previews li").count() == 0

    # Sent as a draft, the request has no photo: the refused file was never uploaded.
    await page.select_option("select[name=patient_id]", str(resident_id))
    await page.fill("textarea[name=question]", "Rougeur du talon : avis ?")
    await page.fill('textarea[name="answers.lesion_site"]', "Talon gauche")
    await page.fill('textarea[name="answers.duration"]', "3 jours")
    await page.select_option('select[name="answers.evolution"]', "Extension")
    await page.click("button[value=draft]")
    await page.wait_for_url(re.compile(r".*/teleexpertise/\d+$"))
    assert uploads == []
    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(ExpertiseRequest)) == 1
        assert await session.scalar(select(func.count()).select_from(ExpertiseAttachment)) == 0

    # Space opens the chooser too; a PNG gets its preview, announced.
    await page.goto(base + "/teleexpertise/nouvelle?specialite=dermatologie")
    await page.focus("#photo-input")
    async with page.expect_file_chooser() as chosen:
        await page.keyboard.press("Space")
    await (await chosen.value).set_files(str(photo))
    await poll(page, "document.querySelectorAll('#previews img').length === 1")
    await poll(page, "document.querySelector('#previews img').naturalWidth === 40")
    status = await _photo_status(page)
    assert "Ajoutée : « talon.png »" in status and "1 photo sur 10" in status
    assert (
        await page.locator("#previews").get_by_role("button", name="Retirer « talon.png »").count()
        == 1
    )
    assert uploads == []  # a preview is local: nothing leaves before the request is saved
    await page.context.close()


async def test_the_new_request_page_passes_axe_without_sideways_scroll(
    site: TestClient, db: Database, browser: Any, tmp_path: Path
) -> None:
    page, _, _ = await _new_request_page(site, db, browser)
    photo = tmp_path / "talon.png"
    photo.write_bytes(_png())
    for state in ("empty", "with a photo and a refusal"):
        if state != "empty":
            await page.set_input_files("#photo-input", str(photo))
            await page.evaluate(DROP_TEXT_FILE)
            await poll(page, "document.querySelectorAll('#previews img').length === 1")
            assert REFUSED in await _photo_status(page)
        for name, (width, height) in VIEWPORTS.items():
            await page.set_viewport_size({"width": width, "height": height})
            assert await axe_violations(page) == [], f"{state} at {name}"
            assert await scroll_overflow(page) == 0, f"{state} at {name}"
    await page.context.close()
