"""The video pages in headless Chromium with fake camera and microphone: two people meet in a
consultation room and see each other; the pre-call test reaches its verdict."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import select

from scheduling.clock import FrozenClock
from telmi.db import Database
from telmi.models import Act, Role

from .browser import poll, signed_in
from .factories import (
    bearer,
    make_facility,
    make_resident,
    make_slot,
    make_user,
    record_consent,
)

FRAMES_DECODED = """async () => {
  const room = window.telmiRoom;
  if (!room) return false;
  for (const peer of room.peers.values()) {
    const stats = await peer.pc.getStats();
    let frames = 0;
    stats.forEach(s => { if (s.type === "inbound-rtp" && s.kind === "video") frames = s.framesDecoded || 0; });
    if (frames > 0) return frames;
  }
  return false;
}"""


async def test_two_pages_in_a_consultation_see_each_other(
    site: TestClient, db: Database, clock: FrozenClock, browser: Any, tmp_path: Path
) -> None:
    facility = await make_facility(db)
    staff = await make_user(db, Role.STAFF, facility=facility)
    specialist = await make_user(db, Role.SPECIALIST)
    slot = await make_slot(db, specialist, clock.now() + timedelta(minutes=5))
    resident = await make_resident(db, staff, reference="RES-3", qualified=True)
    booked = await site.post(
        "/api/bookings",
        json={
            "slot_id": slot.id,
            "patient_id": resident.id,
            "act_type": "teleconsultation",
            "reason": "",
        },
        headers={**await bearer(db, staff), "Idempotency-Key": str(uuid.uuid4())},
    )
    booking_id = (await booked.json())["id"]
    agreed = await record_consent(db, staff, booking_id)  # before the specialist joins
    base = str(site.make_url("/")).rstrip("/")
    pages = [await signed_in(browser, base, u.email) for u in (specialist, staff)]
    for page in pages:
        await page.goto(f"{base}/consultation/{booking_id}")
        await poll(page, "document.getElementById('room-camera').options.length > 0")
        await page.click("#room-join")
    for page in pages:
        await poll(page, "document.getElementById('room').dataset.state === 'connected'")
    decoded = [await poll(page, FRAMES_DECODED, 20) for page in pages]
    for page, before in zip(pages, decoded, strict=True):
        await poll(page, f"async () => (await ({FRAMES_DECODED})()) > {before}", 10)
    await pages[0].screenshot(path=str(tmp_path / "room.png"))
    names = await pages[0].inner_text("#room-participants")
    assert staff.full_name in names and "connecté" in names
    assert await pages[0].is_visible("#room-end")  # the specialist may end it
    assert not await pages[1].is_visible("#room-end")

    # Toggles: the nurse mutes her microphone; the specialist's list says so.
    await pages[1].click("#room-mute")
    # A toggle keeps its label; aria-pressed says the micro is cut (and the tracks agree).
    assert await pages[1].get_attribute("#room-mute", "aria-pressed") == "true"
    assert await pages[1].inner_text("#room-mute") == "Couper le micro"
    assert await pages[1].evaluate(
        "window.telmiRoom.tracks().filter(t => t.kind === 'audio').every(t => !t.enabled)"
    )
    await poll(
        pages[0], "document.getElementById('room-participants').innerText.includes('micro coupé')"
    )

    # Reconnection: the nurse's socket drops; her page shows it, then she is back, same place.
    await pages[1].evaluate("window.telmiRoom.socket().close()")
    await poll(pages[1], "document.getElementById('room').dataset.state === 'reconnecting'", 5)
    await poll(pages[1], "document.getElementById('room').dataset.state === 'connected'", 15)
    assert await pages[1].evaluate("window.telmiRoom.peers.size") == 1

    # Lobby: a guest's invitation; the specialist hears the knock and admits.
    invite = await site.post(
        f"/api/bookings/{booking_id}/invites",
        json={"label": "Dr Traitant"},
        headers=await bearer(db, staff),
    )
    link = (await invite.json())["url"]
    assert link.startswith(base + "/invitation#")
    guest = await (await browser.new_context()).new_page()
    await guest.goto(link)
    await poll(guest, "!document.getElementById('room-join').disabled")
    assert "#" not in guest.url  # the token left the address bar
    await guest.click("#room-join")
    await poll(guest, "document.getElementById('room').dataset.state === 'waiting'")
    await poll(pages[0], "document.getElementById('room-lobby').innerText.includes('Dr Traitant')")
    await pages[0].click("#room-lobby button:has-text('Admettre')")
    await poll(guest, "document.getElementById('room').dataset.state === 'connected'")
    await poll(
        pages[0], "document.getElementById('room-participants').innerText.includes('Dr Traitant')"
    )

    await pages[0].select_option("#room-outcome-kind", index=1)
    await pages[0].fill("#room-incidents", "image figée une minute")
    await pages[0].click("#room-end button[type=submit]")
    for page in pages:
        await poll(page, "document.getElementById('room').dataset.state === 'ended'")
    assert "terminée" in await pages[1].inner_text("#room-status")
    async with db.read() as session:
        act = await session.scalar(select(Act))
    assert act is not None and act.incidents == "image figée une minute"
    assert act.patient_consent and act.consent_id == agreed.id  # recorded before, not ticked


async def test_pre_call_test_reaches_its_verdict(
    site: TestClient, db: Database, browser: Any
) -> None:
    staff = await make_user(db, Role.STAFF)
    base = str(site.make_url("/")).rstrip("/")
    page = await signed_in(browser, base, staff.email)
    await page.goto(base + "/test-video")
    await page.click("#precall-start")
    await poll(page, "window.telmiPrecall && window.telmiPrecall.framesDecoded > 0", 20)
    await poll(page, "['ok', 'warn'].includes(document.getElementById('precall').dataset.verdict)")
    verdict = await page.inner_text("#precall-verdict")
    assert verdict.startswith(("Prêt", "Presque prêt"))
    result = await page.evaluate("window.telmiPrecall")
    assert result["state"] == "connected" and result["rtt"] is not None
