"""The consultation room and « Tester ma vidéo » for screen readers, keyboards and weak networks,
in headless Chromium with fake camera and microphone: toggles say their state (aria-pressed),
a live region announces the waiting room and arrivals, « Audio seul » really stops the video
(bytes sent stop growing, the camera is released, the others see initials) and brings it back,
video is capped by the number of participants, each participant's quality is said in words,
and the pre-call test runs again with the devices chosen and plays a tone. Every page state
checked has no axe violation and no sideways scroll on a tablet and a phone."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

from aiohttp.test_utils import TestClient

from scheduling.clock import FrozenClock
from telmi.db import Database
from telmi.models import Role, User

from .browser import VIEWPORTS, axe_violations, poll, scroll_overflow, signed_in
from .factories import bearer, make_facility, make_resident, make_slot, make_user, record_consent
from .test_video_pages import FRAMES_DECODED

STATE = "document.getElementById('room').dataset.state"
# Bytes sent by this page, all peers together, by kind (outbound-rtp, as getStats counts them).
BYTES_SENT = """async () => {
  const sent = {audio: 0, video: 0};
  for (const peer of window.telmiRoom.peers.values()) {
    (await peer.pc.getStats()).forEach(s => { if (s.type === "outbound-rtp") sent[s.kind] += s.bytesSent || 0; });
  }
  return sent;
}"""
# What each video sender is capped at (encodings as the browser holds them).
CAPS = """() => [...window.telmiRoom.peers.values()].map(p => {
  const e = p.videoSender.getParameters().encodings[0] || {};
  return [e.maxBitrate || null, e.scaleResolutionDownBy || null];
})"""
ANNOUNCED = "document.getElementById('room-announce').innerText"


def initials(user: User) -> str:
    words = user.full_name.split()
    return (words[0][0] + words[-1][0]).upper()


async def _consultation(site: TestClient, db: Database, clock: FrozenClock) -> tuple[Any, ...]:
    facility = await make_facility(db)
    staff = await make_user(db, Role.STAFF, facility=facility)
    specialist = await make_user(db, Role.SPECIALIST)
    slot = await make_slot(db, specialist, clock.now() + timedelta(minutes=5))
    resident = await make_resident(db, staff, reference="RES-A11Y", qualified=True)
    booked = await site.post(
        "/api/bookings",
        json={"slot_id": slot.id, "patient_id": resident.id, "act_type": "teleconsultation"},
        headers={**await bearer(db, staff), "Idempotency-Key": str(uuid.uuid4())},
    )
    booking_id = (await booked.json())["id"]
    await record_consent(db, staff, booking_id)
    return staff, specialist, booking_id


async def _join(browser: Any, base: str, users: tuple[User, ...], booking_id: int) -> list[Any]:
    pages = [await signed_in(browser, base, u.email) for u in users]
    for page in pages:
        await page.goto(f"{base}/consultation/{booking_id}")
        await poll(page, "document.getElementById('room-camera').options.length > 0")
        await page.click("#room-join")
    for page in pages:
        await poll(page, f"{STATE} === 'connected'")
    for page in pages:
        await poll(page, FRAMES_DECODED, 20)
    return pages


async def _accessible_everywhere(page: Any, what: str) -> None:
    """0 axe violations and no sideways scroll on a tablet and a phone (and a desktop)."""
    for name, (width, height) in VIEWPORTS.items():
        await page.set_viewport_size({"width": width, "height": height})
        assert await scroll_overflow(page) == 0, (what, name)
        assert await axe_violations(page) == [], (what, name)
    await page.set_viewport_size({"width": 1100, "height": 800})


async def test_audio_only_stops_the_video_and_the_other_side_sees_initials(
    site: TestClient, db: Database, clock: FrozenClock, browser: Any
) -> None:
    staff, specialist, booking_id = await _consultation(site, db, clock)
    base = str(site.make_url("/")).rstrip("/")
    doctor, nurse = await _join(browser, base, (specialist, staff), booking_id)

    # Two people: every video sender capped at the 2-participant cap (1.5 Mbit/s, 720p).
    expected = await nurse.evaluate("window.telmiRoom.capFor(2).maxBitrate")
    assert expected == 1_500_000
    for page in (doctor, nurse):
        caps = await poll(page, f"(() => {{ const c = ({CAPS})(); return c[0][0] && c; }})()")
        assert caps == [[1_500_000, 1]]  # the fake camera is 480p: no downscaling below 720p

    # The call state, accessible: toggles not pressed, no violation, no sideways scroll.
    for toggle in ("#room-mute", "#room-video", "#room-audio-only"):
        assert await nurse.get_attribute(toggle, "aria-pressed") == "false"
    await _accessible_everywhere(nurse, "call")

    # Each participant's quality, in words (a local loop is a good network).
    badge = "#room-participants .quality:not([hidden])"
    await poll(doctor, f"document.querySelector({badge!r}) !== null", 10)
    quality = await doctor.inner_text(badge)
    assert quality in ("connexion bonne", "connexion moyenne")
    assert quality == "connexion " + await doctor.get_attribute(badge, "data-quality")
    assert quality in await doctor.inner_text(".tile:not(.self) figcaption")
    assert staff.full_name in await doctor.inner_text("#room-participants")

    # Micro: the label stays, aria-pressed says it is cut, the other side is told.
    await nurse.click("#room-mute")
    assert await nurse.get_attribute("#room-mute", "aria-pressed") == "true"
    assert await nurse.inner_text("#room-mute") == "Couper le micro"
    await poll(
        doctor, "document.getElementById('room-participants').innerText.includes('micro coupé')"
    )
    await nurse.click("#room-mute")
    assert await nurse.get_attribute("#room-mute", "aria-pressed") == "false"

    # « Audio seul »: pressed, the camera released, no more video bytes, audio goes on.
    assert not await doctor.is_visible(".tile:not(.self) .initials")
    await nurse.click("#room-audio-only")
    await poll(
        nurse, "document.getElementById('room-audio-only').getAttribute('aria-pressed') === 'true'"
    )
    assert await nurse.evaluate(
        "window.telmiRoom.tracks().filter(t => t.kind === 'video').every(t => t.readyState === 'ended')"
    )
    assert await nurse.is_disabled("#room-video")  # no camera to cut in audio only
    await asyncio.sleep(1.0)  # packets in flight
    before = await nurse.evaluate(BYTES_SENT)
    await asyncio.sleep(2.0)
    after = await nurse.evaluate(BYTES_SENT)
    assert after["video"] == before["video"], (before, after)
    assert after["audio"] > before["audio"], (before, after)
    # The specialist sees the nurse's initials instead of a frozen picture, and is told.
    face = doctor.locator(".tile:not(.self) .initials")
    await face.wait_for(state="visible", timeout=5000)
    assert await face.inner_text() == initials(staff)
    assert not await doctor.is_visible(".tile:not(.self) video")
    assert "audio seul" in await doctor.inner_text("#room-participants")
    await poll(doctor, f"{ANNOUNCED}.includes('passe en audio seul')")
    await _accessible_everywhere(doctor, "initials")
    await _accessible_everywhere(nurse, "audio only")

    # Back to video: bytes grow again, the specialist decodes new frames, the face goes.
    frames = await doctor.evaluate(FRAMES_DECODED)
    await nurse.focus("#room-audio-only")  # by keyboard, this time
    await nurse.keyboard.press("Space")
    await poll(
        nurse, "document.getElementById('room-audio-only').getAttribute('aria-pressed') === 'false'"
    )
    assert not await nurse.is_disabled("#room-video")
    await face.wait_for(state="hidden", timeout=5000)
    await asyncio.sleep(1.0)
    before = await nurse.evaluate(BYTES_SENT)
    await asyncio.sleep(2.0)
    after = await nurse.evaluate(BYTES_SENT)
    assert after["video"] > before["video"], (before, after)
    await poll(doctor, f"async () => (await ({FRAMES_DECODED})()) > {frames}", 15)
    assert await doctor.is_visible(".tile:not(.self) video")
    # The new camera track is capped like the first.
    assert await nurse.evaluate(CAPS) == [[1_500_000, 1]]


async def test_a_weak_connection_suggests_audio_only(
    site: TestClient, db: Database, clock: FrozenClock, browser: Any
) -> None:
    """The judgement of getStats samples: bad for three samples (about 6 s) and the page asks;
    one good sample resets it; accepting goes audio only."""
    staff, specialist, booking_id = await _consultation(site, db, clock)
    base = str(site.make_url("/")).rstrip("/")
    doctor, nurse = await _join(browser, base, (specialist, staff), booking_id)
    quality = "(s) => window.telmiRoom.quality(s)"
    assert await nurse.evaluate(f"({quality})({{received: 500, loss: 0, rtt: 0.05}})") == "bonne"
    assert (
        await nurse.evaluate(f"({quality})({{received: 500, loss: 0.05, rtt: 0.05}})") == "moyenne"
    )
    assert await nurse.evaluate(f"({quality})({{received: 500, loss: 0.2, rtt: 0.05}})") == "faible"
    assert await nurse.evaluate(f"({quality})({{received: 500, loss: 0, rtt: 0.9}})") == "faible"
    assert await nurse.evaluate(f"({quality})({{received: 0, loss: 0, rtt: 0}})") == "faible"

    weak = "window.telmiRoom.weigh({outKbps: 60, outLoss: 0.15, rtt: 0.7})"
    good = "window.telmiRoom.weigh({outKbps: 900, outLoss: 0, rtt: 0.02})"
    await nurse.evaluate(weak)
    await nurse.evaluate(weak)
    await nurse.evaluate(good)  # a good sample in between: not « a few seconds » of bad
    await nurse.evaluate(weak)
    await nurse.evaluate(weak)
    assert not await nurse.is_visible("#room-weak")
    await nurse.evaluate(weak)
    assert await nurse.is_visible("#room-weak")
    assert "Connexion faible : passer en audio seul ?" in await nurse.inner_text("#room-weak")
    assert "Connexion faible : passer en audio seul ?" in await nurse.evaluate(ANNOUNCED)
    await _accessible_everywhere(nurse, "suggestion")
    await nurse.click("#room-weak-yes")
    await poll(
        nurse, "document.getElementById('room-audio-only').getAttribute('aria-pressed') === 'true'"
    )
    assert await nurse.evaluate("window.telmiRoom.audioOnly()")
    assert not await nurse.is_visible("#room-weak")
    await doctor.locator(".tile:not(.self) .initials").wait_for(state="visible", timeout=5000)
    # In audio only there is no video to judge: no new suggestion.
    for _ in range(4):
        await nurse.evaluate(weak)
    assert not await nurse.is_visible("#room-weak")


async def test_the_waiting_room_is_announced_and_the_cap_follows_the_participants(
    site: TestClient, db: Database, clock: FrozenClock, browser: Any
) -> None:
    staff, specialist, booking_id = await _consultation(site, db, clock)
    base = str(site.make_url("/")).rstrip("/")

    # Before joining: the room page is accessible on a tablet and a phone.
    doctor = await signed_in(browser, base, specialist.email)
    await doctor.goto(f"{base}/consultation/{booking_id}")
    await poll(doctor, "document.getElementById('room-camera').options.length > 0")
    await _accessible_everywhere(doctor, "preview")
    await doctor.focus("#room-join")
    await doctor.keyboard.press("Enter")
    await poll(doctor, f"{STATE} === 'connected'")
    # The join box went: the keyboard focus moved to the call's first control, not the page.
    assert await doctor.evaluate("document.activeElement.id") == "room-mute"
    region = doctor.locator("#room-announce")
    assert await region.get_attribute("aria-live") == "polite"
    assert await doctor.get_attribute("#room-alert", "role") == "alert"

    invite = await site.post(
        f"/api/bookings/{booking_id}/invites",
        json={"label": "Dr Traitant"},
        headers=await bearer(db, staff),
    )
    link = (await invite.json())["url"]
    guest = await (await browser.new_context(viewport={"width": 390, "height": 844})).new_page()
    await guest.goto(link)
    await poll(guest, "!document.getElementById('room-join').disabled")
    await _accessible_everywhere(guest, "guest preview")
    await guest.click("#room-join")
    await poll(guest, f"{STATE} === 'waiting'")
    assert "salle d'attente" in await guest.inner_text("#room-announce")

    # The specialist is told in words, not only by a beep: in the live region, which the
    # accessibility tree exposes as a polite log.
    await poll(doctor, f'{ANNOUNCED}.includes("Dr Traitant attend dans la salle d\'attente")')
    tree = await doctor.locator("#room").aria_snapshot()
    assert "Dr Traitant attend dans la salle d'attente" in tree
    log = await doctor.evaluate(
        "(() => { const r = document.getElementById('room-announce');"
        " return [r.getAttribute('role'), r.getAttribute('aria-live'), r.isConnected,"
        " getComputedStyle(r).display]; })()"
    )
    assert log == ["log", "polite", True, "block"]  # in the tree, not display:none
    await _accessible_everywhere(doctor, "knock")
    await doctor.focus("#room-lobby button:has-text('Admettre')")
    await doctor.keyboard.press("Enter")
    await poll(guest, f"{STATE} === 'connected'")
    assert await doctor.is_hidden("#room-lobby-box")  # nobody waits any more
    assert await doctor.evaluate("document.activeElement.id") == "room-mute"
    await poll(guest, f"{ANNOUNCED}.includes('Vous avez été admis dans la consultation')")
    await poll(doctor, f"{ANNOUNCED}.includes('Dr Traitant a rejoint la consultation')")

    # The nurse joins too: four people would be 500 kbit/s; three are 800 kbit/s.
    nurse = await signed_in(browser, base, staff.email)
    await nurse.goto(f"{base}/consultation/{booking_id}")
    await poll(nurse, "document.getElementById('room-camera').options.length > 0")
    await nurse.click("#room-join")
    await poll(nurse, f"{STATE} === 'connected'")
    await poll(doctor, f"{ANNOUNCED}.includes('{staff.full_name} a rejoint la consultation')")
    three = await doctor.evaluate("window.telmiRoom.capFor(3).maxBitrate")
    assert three == 800_000
    await poll(
        doctor,
        f"(() => {{ const c = ({CAPS})(); return c.length === 2 && c.every(x => x[0] === {three}); }})()",
        15,
    )
    await _accessible_everywhere(doctor, "three in the call")

    # The guest leaves: announced, and the cap goes back to two people's.
    await guest.click("#room-leave")
    await poll(doctor, f"{ANNOUNCED}.includes('Dr Traitant a quitté la consultation')")
    assert await guest.evaluate(STATE) == "ended"
    await _accessible_everywhere(guest, "after leaving")
    await poll(
        doctor,
        f"(() => {{ const c = ({CAPS})(); return c.length === 1 && c[0][0] === 1500000; }})()",
        10,
    )
    # The nurse's socket drops: the connection change is announced, then its return.
    await nurse.evaluate("window.telmiRoom.socket().close()")
    await poll(nurse, f"{ANNOUNCED}.includes('Connexion perdue')", 5)
    await poll(nurse, f"{ANNOUNCED}.includes('Connexion rétablie')", 15)


async def test_the_pre_call_test_runs_again_with_the_chosen_devices_and_plays_a_tone(
    site: TestClient, db: Database, browser: Any
) -> None:
    staff = await make_user(db, Role.STAFF)
    base = str(site.make_url("/")).rstrip("/")
    page = await signed_in(browser, base, staff.email)
    await page.goto(base + "/test-video")
    await _accessible_everywhere(page, "before the test")
    await page.click("#precall-start")
    await poll(page, "window.telmiPrecall.runs === 1 && window.telmiPrecall.framesDecoded > 0", 20)
    assert await page.inner_text("#precall-start") == "Relancer le test"

    # The lists hold the fake devices (after permission, with their labels).
    cameras = await page.eval_on_selector_all(
        "#precall-camera option", "os => os.map(o => o.textContent)"
    )
    micros = await page.eval_on_selector_all(
        "#precall-micro option", "os => os.map(o => [o.value, o.textContent])"
    )
    assert any("fake_device" in c for c in cameras), cameras
    assert [label for _, label in micros[1:]] == ["Fake Audio Input 1", "Fake Audio Input 2"]
    assert await page.is_visible("#precall-output")  # Chromium can choose the speaker
    outputs = await page.eval_on_selector_all(
        "#precall-output option", "os => os.map(o => o.textContent)"
    )
    assert "Fake Audio Output 1" in outputs

    # Run again: a second run, from zero, that reaches a verdict too.
    await page.focus("#precall-start")  # by keyboard
    await page.keyboard.press("Enter")
    await poll(page, "window.telmiPrecall.runs === 2")
    await poll(page, "window.telmiPrecall.framesDecoded > 0", 20)
    # The button was disabled while the run started: the focus came back to it.
    await poll(page, "document.activeElement.id === 'precall-start'", 5)
    await poll(page, "['ok', 'warn'].includes(document.getElementById('precall').dataset.verdict)")

    # Choosing a microphone runs the test again with it.
    chosen = micros[2][0]
    await page.select_option("#precall-micro", chosen)
    await poll(page, "window.telmiPrecall.runs === 3")
    await poll(page, "window.telmiPrecall.framesDecoded > 0", 20)
    assert await page.evaluate("window.telmiPrecall.micro") == chosen
    await _accessible_everywhere(page, "after the test")

    # The speaker: a tone through WebAudio, running, really sounding, on the chosen output.
    await page.select_option("#precall-output", index=2)
    await page.click("#precall-tone")
    await poll(page, "window.telmiPrecall.lastTone && window.telmiPrecall.lastTone.peak > 0.05", 5)
    tone = await page.evaluate("window.telmiPrecall.lastTone")
    assert tone["state"] == "running" and tone["frequency"] == 440
    assert tone["sinkId"] == await page.eval_on_selector("#precall-output", "s => s.value")
    assert "bip" in await page.inner_text("#precall-tone-status")
