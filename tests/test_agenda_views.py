"""« Mon agenda » on a time grid: a week (days as columns, hours as rows) or one day, slots
placed at their start and sized by their duration, absences as blocks with their reason;
a list of days on tablets and phones; black on white on paper; accessible everywhere."""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp.test_utils import TestClient

from scheduling.clock import FrozenClock
from telmi import agenda
from telmi.db import Database
from telmi.models import ActType, AvailabilityException, Role, User

from .browser import VIEWPORTS, axe_violations, scroll_overflow, signed_in
from .factories import bearer, login, make_facility, make_resident, make_slot, make_user

PARIS = ZoneInfo("Europe/Paris")


def paris(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=PARIS)


WED, THU, FRI = date(2026, 6, 10), date(2026, 6, 11), date(2026, 6, 12)  # NOW: Wed 10:00


async def _week(site: TestClient, db: Database) -> dict[str, Any]:
    """A specialist's week: a booked slot, free slots of 30 and 60 minutes, an absence."""
    facility = await make_facility(db, name="EHPAD Les Glycines")
    staff = await make_user(db, Role.STAFF, facility=facility)
    specialist = await make_user(db, Role.SPECIALIST)
    # The absence first: it withdraws the free slots no rule wants, such as the ones below.
    absent = await site.post(
        "/api/availability/exceptions",
        json={
            "starts_at": paris(FRI, 9).isoformat(),
            "ends_at": paris(FRI, 11).isoformat(),
            "reason": "congrès",
        },
        headers=await bearer(db, specialist),
    )
    assert absent.status == 201, await absent.text()
    booked = await make_slot(db, specialist, paris(THU, 9))
    await make_slot(db, specialist, paris(THU, 10), minutes=60)
    await make_slot(db, specialist, paris(WED, 14), act_types=(ActType.TELEEXPERTISE,))
    await make_slot(db, specialist, paris(FRI, 14))
    resident = await make_resident(db, staff, reference="RES-77")
    response = await site.post(
        "/api/bookings",
        json={
            "slot_id": booked.id,
            "patient_id": resident.id,
            "act_type": "teleconsultation",
            "reason": "",
        },
        headers={**await bearer(db, staff), "Idempotency-Key": str(uuid.uuid4())},
    )
    assert response.status == 201, await response.text()
    return {"specialist": specialist, "base": str(site.make_url("/")).rstrip("/")}


def _day(name: str) -> str:
    return f'section.agenda-day:has(h2:has-text("{name}"))'


async def _box(page: Any, selector: str) -> dict[str, float]:
    box = await page.locator(selector).bounding_box()
    assert box is not None, selector
    return dict(box)


async def _hour(page: Any, label: str) -> dict[str, float]:
    return await _box(page, f'.agenda-hours li:text-is("{label}")')


# --- the grid ---------------------------------------------------------------------------------


def test_the_time_grid_turns_local_minutes_into_rows_of_five_minutes() -> None:
    grid = agenda.TimeGrid(8, 18)
    nine = agenda.AgendaItem(9 * 60, 9 * 60 + 30)
    assert grid.place(nine) == "row-13 span-6"  # 08:00 is row 1
    assert grid.place(agenda.AgendaItem(10 * 60, 11 * 60)) == "row-25 span-12"
    assert grid.hours == list(range(8, 18)) and grid.hour_place(17) == "row-109 span-12"
    early = agenda.AgendaDay(WED, [], items=[agenda.AgendaItem(6 * 60 + 30, 7 * 60)])
    late = agenda.AgendaDay(THU, [], items=[agenda.AgendaItem(19 * 60, 20 * 60 + 15)])
    assert agenda.grid_of([early, late]) == agenda.TimeGrid(6, 21)
    assert agenda.grid_of([]) == agenda.TimeGrid(8, 18)  # 08:00-18:00 at least
    # An absence running on past midnight does not stretch the grid to midnight.
    away = agenda.AgendaAbsence("congrès", 0, agenda.DAY_MINUTES)
    whole = agenda.AgendaItem(0, agenda.DAY_MINUTES, absence=away)
    assert agenda.grid_of([agenda.AgendaDay(FRI, [], [away], [whole])]) == agenda.TimeGrid(8, 18)
    assert away.span_text == "toute la journée"
    assert agenda.AgendaAbsence("", 14 * 60, agenda.DAY_MINUTES).span_text == "à partir de 14:00"
    assert agenda.AgendaAbsence("", 0, 12 * 60).span_text == "jusqu'à 12:00"
    assert agenda.AgendaAbsence("", 9 * 60, 11 * 60).span_text == "09:00–11:00"


async def test_the_week_grid_places_slots_at_their_start_and_sizes_them_by_duration(
    site: TestClient, db: Database, clock: FrozenClock, browser: Any
) -> None:
    w = await _week(site, db)
    page = await signed_in(browser, w["base"], w["specialist"].email)
    await page.set_viewport_size({"width": 1366, "height": 768})
    await page.goto(w["base"] + "/agenda")

    # The seven days are columns side by side, Monday first.
    heads = [await _box(page, f"[aria-labelledby=jour-{n}]") for n in range(1, 8)]
    assert len({round(h["y"]) for h in heads}) == 1
    assert [h["x"] for h in heads] == sorted(h["x"] for h in heads)
    assert heads[-1]["x"] + heads[-1]["width"] <= 1366

    thursday = _day("jeudi 11 juin")
    nine = await _box(page, f'{thursday} li.slot:has-text("09:00–09:30")')
    ten = await _box(page, f'{thursday} li.slot:has-text("10:00–11:00")')
    assert nine["y"] < ten["y"]  # 09:00 above 10:00, in the same column
    assert abs(nine["x"] - ten["x"]) < 1
    thu = await _box(page, f"{thursday} h2")
    assert thu["x"] <= nine["x"] < thu["x"] + thu["width"]
    # Each starts in the row of its hour; 60 minutes are twice as tall as 30 (1px margins).
    assert abs(nine["y"] - 1 - (await _hour(page, "09:00"))["y"]) < 1.5
    assert abs(ten["y"] - 1 - (await _hour(page, "10:00"))["y"]) < 1.5
    assert abs((ten["height"] + 2) - 2 * (nine["height"] + 2)) < 1.5
    hour = (await _hour(page, "10:00"))["y"] - (await _hour(page, "09:00"))["y"]
    assert abs(ten["height"] + 2 - hour) < 1.5

    # The booked slot says what it is, in words, not only by its place and colour.
    booked = page.locator(f'{thursday} li.slot:has-text("09:00–09:30")')
    assert "booked" in (await booked.get_attribute("class") or "")
    words = await booked.inner_text()
    assert "EHPAD Les Glycines" in words and "Téléconsultation" in words and "RES-77" in words
    assert "réservé" in await booked.text_content()  # for screen readers
    # Its details do not fit in 30 minutes: focusing its link unfolds it over the grid.
    room = booked.locator("a:text-is('Salle de consultation')")
    await room.focus()
    unfolded, link = await _box(page, f"{thursday} li.slot.booked"), await room.bounding_box()
    assert unfolded["height"] > nine["height"] and link is not None
    assert link["y"] + link["height"] <= unfolded["y"] + unfolded["height"]
    free = page.locator(f'{thursday} li.slot:has-text("10:00–11:00")')
    assert "free" in (await free.get_attribute("class") or "")
    assert "Libre" in await free.inner_text()
    assert "Libre" not in words

    # The absence covers 09:00-11:00 on Friday and gives its reason.
    absence = await _box(page, f"{_day('vendredi 12 juin')} li.absence")
    assert abs(absence["y"] - 1 - (await _hour(page, "09:00"))["y"]) < 1.5
    assert abs(absence["y"] + absence["height"] + 1 - (await _hour(page, "11:00"))["y"]) < 1.5
    text = await page.locator(f"{_day('vendredi 12 juin')} li.absence").inner_text()
    assert "Absence : congrès" in text and "09:00–11:00" in text
    # The grid runs 08:00-18:00 (nothing earlier or later this week).
    labels = await page.locator(".agenda-hours li").all_inner_texts()
    assert labels[0] == "08:00" and labels[-1] == "17:00" and len(labels) == 10


async def test_a_booked_slot_under_an_absence_stands_beside_its_reason(
    site: TestClient, db: Database, clock: FrozenClock, browser: Any
) -> None:
    w = await _week(site, db)
    async with db.write() as session:  # as if the absence came after the booking
        session.add(
            AvailabilityException(
                specialist_id=w["specialist"].id,
                starts_at=paris(THU, 8, 30),
                ends_at=paris(THU, 9, 45),
                reason="formation",
                created_at=clock.now(),
            )
        )
    page = await signed_in(browser, w["base"], w["specialist"].email)
    await page.set_viewport_size({"width": 1366, "height": 768})
    await page.goto(w["base"] + "/agenda")
    thursday = _day("jeudi 11 juin")
    slot = page.locator(f'{thursday} li.slot:has-text("09:00–09:30")')
    assert "conflict" in (await slot.get_attribute("class") or "")
    assert "Hors de vos disponibilités" in await slot.text_content()
    reason = await _box(page, f"{thursday} li.absence .absence-reason")
    block = await _box(page, f"{thursday} li.absence")
    assert "Absence : formation" in await page.locator(f"{thursday} li.absence").inner_text()
    eight, nine = (await _hour(page, "08:00"))["y"], (await _hour(page, "09:00"))["y"]
    assert abs(block["y"] - 1 - (eight + nine) / 2) < 1.5  # from 08:30
    here = await _box(page, f'{thursday} li.slot:has-text("09:00–09:30")')
    assert here["x"] >= reason["x"] + reason["width"]  # side by side, the reason readable
    assert here["y"] < block["y"] + block["height"]  # and still in the absence's rows
    assert await axe_violations(page) == []


async def test_the_agenda_is_accessible_without_sideways_scroll_in_both_views(
    site: TestClient, db: Database, clock: FrozenClock, browser: Any
) -> None:
    w = await _week(site, db)
    page = await signed_in(browser, w["base"], w["specialist"].email)
    views = {"semaine": "/agenda?semaine=2026-06-08", "jour": "/agenda?vue=jour&jour=2026-06-11"}
    for name, (width, height) in VIEWPORTS.items():
        await page.set_viewport_size({"width": width, "height": height})
        for view, path in views.items():
            await page.goto(w["base"] + path)
            assert await axe_violations(page) == [], (name, view)
            assert await scroll_overflow(page) == 0, (name, view)
        # The week on a tablet or a phone is a list of days, one under the other.
        await page.goto(w["base"] + views["semaine"])
        first = await _box(page, "[aria-labelledby=jour-1]")
        second = await _box(page, "[aria-labelledby=jour-2]")
        if name == "desktop":
            assert first["y"] == second["y"] and first["x"] < second["x"]
            assert await page.locator(".agenda-axis").is_visible()
        else:
            assert first["x"] == second["x"] and first["y"] < second["y"]
            assert not await page.locator(".agenda-axis").is_visible()
            assert await page.locator("li.absence:has-text('Absence : congrès')").is_visible()


async def test_the_day_view_shows_one_day_and_moves_a_day_at_a_time(
    site: TestClient, db: Database, clock: FrozenClock, browser: Any
) -> None:
    w = await _week(site, db)
    await login(site, w["specialist"].email)
    html = await (await site.get("/agenda", params={"vue": "jour", "jour": "2026-06-11"})).text()
    assert html.count('<section class="agenda-day') == 1
    assert "Journée du jeudi 11 juin 2026" in html and "09:00–09:30" in html
    assert "14:00–14:30" not in html  # Wednesday's and Friday's slots are other days
    assert "/agenda?vue=jour&amp;jour=2026-06-10" in html  # previous day
    assert "/agenda?vue=jour&amp;jour=2026-06-12" in html  # next day
    assert "/agenda?semaine=2026-06-08" in html  # its week
    assert "style=" not in html
    week = await (await site.get("/agenda", params={"semaine": "2026-06-08"})).text()
    assert week.count('<section class="agenda-day') == 7
    for day in range(8, 15):  # each day's heading opens it
        assert f'href="/agenda?vue=jour&amp;jour=2026-06-{day:02d}"' in week
    assert "style=" not in week
    friday = await (await site.get("/agenda?vue=jour&jour=2026-06-12")).text()
    assert "Absence : congrès" in friday and "09:00–11:00" in friday
    assert "09:00–09:30" not in friday
    today = await (await site.get("/agenda?vue=jour")).text()
    assert "Journée du mercredi 10 juin 2026" in today and "(aujourd'hui)" in today
    for wrong in ("vue=mois", "vue=jour&jour=2026-02-30"):  # refused in French, not a 500
        refused = await site.get(f"/agenda?{wrong}")
        assert refused.status == 422 and "<h1>Mon agenda</h1>" not in await refused.text()
    # An empty day says so.
    empty = await (await site.get("/agenda?vue=jour&jour=2026-06-13")).text()
    assert "Aucun créneau ce jour" in empty and 'class="slot' not in empty

    # In the browser: the week's « Vue jour », then the next day, then back to the week.
    page = await signed_in(browser, w["base"], w["specialist"].email)
    await page.goto(w["base"] + "/agenda?semaine=2026-06-08")
    await page.click("text=Vue jour")
    assert page.url.endswith("/agenda?vue=jour&jour=2026-06-10")
    await page.click("text=Jour suivant →")
    assert page.url.endswith("/agenda?vue=jour&jour=2026-06-11")
    assert await page.locator("section.agenda-day").count() == 1
    assert "09:00–09:30" in await page.locator("section.agenda-day").inner_text()
    await page.click("text=Vue semaine")
    assert page.url.endswith("/agenda?semaine=2026-06-08")
    assert await page.locator("section.agenda-day").count() == 7


async def test_the_dst_week_keeps_wall_clock_hours_aligned(
    site: TestClient, db: Database, clock: FrozenClock, browser: Any
) -> None:
    specialist: User = await make_user(db, Role.SPECIALIST)
    # Summer time ends on Sunday 25 October 2026 at 03:00: 09:00 is 07:00 UTC on Saturday,
    # 08:00 UTC on Sunday; both sit in the 09:00 row.
    monday, saturday, sunday = date(2026, 10, 19), date(2026, 10, 24), date(2026, 10, 25)
    for day in (monday, saturday, sunday):
        await make_slot(db, specialist, paris(day, 9))
    assert paris(saturday, 9).utcoffset() != paris(sunday, 9).utcoffset()
    await make_slot(db, specialist, paris(sunday, 17), minutes=60)
    await login(site, specialist.email)
    html = await (await site.get("/agenda?semaine=2026-10-21")).text()
    assert "Semaine du lundi 19 octobre au dimanche 25 octobre 2026" in html
    assert len(re.findall(r'class="slot free row-13 span-6"', html)) == 3
    assert 'class="slot free row-109 span-12"' in html  # 17:00-18:00 on Sunday

    base = str(site.make_url("/")).rstrip("/")
    page = await signed_in(browser, base, specialist.email)
    await page.set_viewport_size({"width": 1366, "height": 768})
    await page.goto(base + "/agenda?semaine=2026-10-21")
    nine = (await _hour(page, "09:00"))["y"]
    for name in ("lundi 19 octobre", "samedi 24 octobre", "dimanche 25 octobre"):
        slot = await _box(page, f'{_day(name)} li.slot:has-text("09:00–09:30")')
        assert abs(slot["y"] - 1 - nine) < 1.5, name
    late = await _box(page, f'{_day("dimanche 25 octobre")} li.slot:has-text("17:00–18:00")')
    assert abs(late["y"] - 1 - (await _hour(page, "17:00"))["y"]) < 1.5


async def test_printing_the_agenda_leaves_the_days_in_black_on_white_without_the_chrome(
    site: TestClient, db: Database, clock: FrozenClock, browser: Any
) -> None:
    w = await _week(site, db)
    page = await signed_in(browser, w["base"], w["specialist"].email)
    await page.set_viewport_size({"width": 1366, "height": 768})
    await page.goto(w["base"] + "/agenda")

    async def style(selector: str, prop: str) -> str:
        return str(
            await page.locator(selector).first.evaluate(
                f"e => getComputedStyle(e).getPropertyValue('{prop}')"
            )
        )

    assert await style(".topbar", "display") != "none"  # on screen
    assert await style(".agenda", "display") == "grid"
    await page.emulate_media(media="print")
    for chrome in (".topbar", ".footer", ".agenda-views", ".week-nav a", ".page-head .button"):
        assert await style(chrome, "display") == "none", chrome
    assert await style(".agenda", "display") == "block"  # the list of days, not the grid
    assert await style(".agenda-axis", "display") == "none"
    assert await page.locator("li.slot.booked").is_visible()
    assert await page.locator("li.absence").is_visible()
    for item in ("li.slot.booked", "li.slot.free", "li.absence", ".agenda-day h2 a"):
        assert await style(item, "color") == "rgb(0, 0, 0)", item
    for item in ("li.slot.booked", "li.slot.free", "li.absence", ".agenda-day"):
        assert await style(item, "background-color") == "rgb(255, 255, 255)", item
    assert await style(".agenda-day", "break-inside") == "avoid"  # breaks fall between days
    assert await style(".week-title", "display") != "none"  # which week it is
