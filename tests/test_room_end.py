"""The room from the nurse's tablet, in headless Chromium with fake camera and microphone: the
specialist invites a guest from the page, the guest comes in through the link shown; when the
call ends (for the guest by « Quitter », for the others by « Terminer ») every page releases
the camera and microphone, drops its peer connections and its controls, and leads back."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from aiohttp.test_utils import TestClient

from scheduling.clock import FrozenClock
from telmi.db import Database
from telmi.models import Role

from .browser import poll, signed_in
from .factories import bearer, make_facility, make_resident, make_slot, make_user

STATE = "document.getElementById('room').dataset.state"
# Every local track stopped, and there were some: a page that never had a camera proves nothing.
RELEASED = """() => {
  const tracks = window.telmiRoom.tracks();
  return tracks.length === 2 && tracks.every(t => t.readyState === "ended");
}"""
KEEP_PEERS = "() => { window.testPeers = [...window.telmiRoom.peers.values()].map(p => p.pc); return window.testPeers.length; }"
PEERS_CLOSED = "() => window.testPeers.every(pc => pc.signalingState === 'closed')"
CONTROLS = ("#room-controls", "#room-stage", "#room-people", "#room-end", "#room-invite")


async def _visible(page: Any, selectors: tuple[str, ...]) -> list[str]:
    return [s for s in selectors if await page.is_visible(s)]


async def test_invite_from_the_room_then_the_end_releases_the_devices_and_leads_back(
    site: TestClient, db: Database, clock: FrozenClock, browser: Any
) -> None:
    facility = await make_facility(db)
    staff = await make_user(db, Role.STAFF, facility=facility)
    specialist = await make_user(db, Role.SPECIALIST)
    slot = await make_slot(db, specialist, clock.now() + timedelta(minutes=5))
    resident = await make_resident(db, staff)
    booked = await site.post(
        "/api/bookings",
        json={"slot_id": slot.id, "patient_id": resident.id, "act_type": "teleconsultation"},
        headers={**await bearer(db, staff), "Idempotency-Key": str(uuid.uuid4())},
    )
    booking_id = (await booked.json())["id"]
    agreed = await site.post(
        f"/api/bookings/{booking_id}/consent",
        json={"given_by": "resident", "method": "oral"},
        headers=await bearer(db, staff),
    )
    assert agreed.status == 201, await agreed.text()  # the specialist's join needs it
    base = str(site.make_url("/")).rstrip("/")
    doctor, nurse = [await signed_in(browser, base, u.email) for u in (specialist, staff)]
    for page in (doctor, nurse):
        await page.goto(f"{base}/consultation/{booking_id}")
        await poll(page, "document.getElementById('room-camera').options.length > 0")
        await page.click("#room-join")
    for page in (doctor, nurse):
        await poll(page, f"{STATE} === 'connected'")
    assert await nurse.is_visible("#room-invite")  # the API lets the facility's staff invite too

    # The specialist invites the treating doctor from the page and copies the link.
    await doctor.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    await doctor.fill("#room-invite-label", "Dr Martin, médecin traitant")
    await doctor.click("#room-invite button[type=submit]")
    await poll(doctor, "!document.getElementById('room-invite-result').hidden")
    link = await doctor.input_value("#room-invite-url")
    assert link.startswith(base + "/invitation#") and len(link.split("#")[1]) >= 20
    shown = await doctor.inner_text("#room-invite-result")
    assert "Dr Martin, médecin traitant" in shown
    assert "qu'une fois" in shown and "fin du créneau" in shown
    await doctor.click("#room-invite-copy")
    await poll(
        doctor, "document.getElementById('room-invite-copied').textContent === 'Lien copié.'"
    )
    assert await doctor.evaluate("navigator.clipboard.readText()") == link
    assert await doctor.input_value("#room-invite-label") == ""  # ready for another guest

    # The link works: the guest reaches the lobby, is admitted, then leaves with « Quitter ».
    guest = await (await browser.new_context()).new_page()
    await guest.goto(link)
    await poll(guest, "!document.getElementById('room-join').disabled")
    assert not await guest.is_visible("#room-invite")  # guests invite no one
    await guest.click("#room-join")
    await poll(guest, f"{STATE} === 'waiting'")
    await poll(doctor, "document.getElementById('room-lobby').innerText.includes('Dr Martin')")
    await doctor.click("#room-lobby button:has-text('Admettre')")
    await poll(guest, f"{STATE} === 'connected'")
    await poll(guest, "window.telmiRoom.peers.size === 2")
    assert await guest.evaluate(KEEP_PEERS) == 2
    await guest.click("#room-leave")
    await poll(guest, f"{STATE} === 'ended'")
    await poll(guest, RELEASED, 5)
    assert await guest.evaluate(PEERS_CLOSED)
    assert await _visible(guest, CONTROLS) == []
    assert "fermer cette page" in await guest.inner_text("#room-after")
    assert await guest.locator("#room-back").count() == 0
    await poll(doctor, "window.telmiRoom.peers.size === 1")  # the guest left the others' pages

    # The specialist ends the consultation; both pages are done with the call.
    for page in (doctor, nurse):
        assert await page.evaluate(KEEP_PEERS) == 1
    await doctor.click("#room-end button[type=submit]")
    for page, href, label in (
        (doctor, "/agenda", "Retour à l'agenda"),
        (nurse, "/rendez-vous", "Retour à mes rendez-vous"),
    ):
        await poll(page, f"{STATE} === 'ended'")
        await poll(page, RELEASED, 5)
        assert await page.evaluate(PEERS_CLOSED)
        assert await page.evaluate("window.telmiRoom.peers.size") == 0
        assert await _visible(page, CONTROLS) == []
        back = page.locator("#room-back")
        assert await back.is_visible() and await back.inner_text() == label
        assert await back.get_attribute("href") == href
    assert "terminée" in await nurse.inner_text("#room-status")

    await nurse.click("#room-back")
    await nurse.wait_for_url(base + "/rendez-vous")
    assert "Réalisé" in await nurse.inner_text("main")
