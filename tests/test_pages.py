"""The French pages for booking and availability, driven like a browser: forms, redirects, roles."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from html import unescape
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from scheduling.clock import FrozenClock
from telmi import availability, booking
from telmi.app import create_app
from telmi.context import Context
from telmi.db import Database
from telmi.models import (
    ActType,
    AvailabilityException,
    AvailabilityRule,
    Booking,
    BookingStatus,
    Patient,
    Role,
    Slot,
    SlotStatus,
    User,
)
from telmi.settings import Settings

from .factories import (
    csrf_from,
    login,
    make_facility,
    make_resident,
    make_slot,
    make_specialty,
    make_user,
)

PARIS = ZoneInfo("Europe/Paris")
# Wednesday 6 March 2030, 10:00 in Paris: no public holiday for weeks, no DST change before 31 March.
NOW = datetime(2030, 3, 6, 10, 0, tzinfo=PARIS).astimezone(UTC)
TOMORROW_9 = datetime(2030, 3, 7, 9, 0, tzinfo=PARIS).astimezone(UTC)
THURSDAY_RULE = {
    "weekday": "3",
    "start": "14:00",
    "end": "16:00",
    "slot_minutes": "30",
    "buffer_minutes": "0",
    "act_types": ["teleconsultation", "teleexpertise"],
}


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
async def world(db: Database) -> dict[str, Any]:
    """A nursing home's nurse, a dermatologist with three slots tomorrow morning, a cardiologist."""
    home = await make_facility(db, name="EHPAD Les Tilleuls")
    staff = await make_user(db, Role.STAFF, facility=home)
    dermatologist = await make_user(db, Role.SPECIALIST, specialty=await make_specialty(db))
    cardiologist = await make_user(
        db, Role.SPECIALIST, specialty=await make_specialty(db, "cardiologie")
    )
    slots = [
        await make_slot(db, dermatologist, TOMORROW_9 + timedelta(minutes=30 * i)) for i in range(3)
    ]
    cardio_slot = await make_slot(db, cardiologist, TOMORROW_9 + timedelta(minutes=15))
    return {
        "home": home,
        "staff": staff,
        "dermatologist": dermatologist,
        "cardiologist": cardiologist,
        "slots": slots,
        "cardio_slot": cardio_slot,
    }


async def _read(response: Any) -> str:
    """The page's text with entities decoded, as a reader sees it (Jinja escapes ' as &#39;)."""
    return unescape(await response.text())


async def _count(db: Database, model: type, *where: Any) -> int:
    async with db.read() as session:
        return await session.scalar(select(func.count()).select_from(model).where(*where)) or 0


async def _bookings(db: Database) -> list[Booking]:
    async with db.read() as session:
        return list(await session.scalars(select(Booking).order_by(Booking.id)))


async def _resident(db: Database, staff: User, reference: str) -> int:
    """The resident of that reference in the staff's facility, registered the first time."""
    async with db.read() as session:
        found = await session.scalar(
            select(Patient.id).where(
                Patient.facility_id == staff.facility_id, Patient.reference == reference
            )
        )
    if found is not None:
        return found
    qualified = reference == "RES-0042"  # one INS per facility: the others are provisional
    return (await make_resident(db, staff, reference=reference, qualified=qualified)).id


async def _book(db: Database, staff: User, slot: Slot, reference: str = "RES-0042") -> Booking:
    """A confirmed booking made through the service, as the API would."""
    new = booking.NewBooking(
        slot_id=slot.id,
        patient_id=await _resident(db, staff, reference),
        act_type=ActType.TELECONSULTATION,
    )
    async with db.write() as session:
        return await booking.book(session, Context(staff, NOW), new)


Fields = dict[str, str] | list[tuple[str, str]]


async def _post(client: TestClient, path: str, data: Fields, page: str) -> Any:
    """Submit a form the way a browser would: with the CSRF token of the page it is on."""
    token = csrf_from(await _read(await client.get(page)))
    fields = list(data.items()) if isinstance(data, dict) else data
    return await client.post(path, data=[*fields, ("csrf_token", token)], allow_redirects=False)


async def _hold(client: TestClient, slot_id: int) -> Any:
    """Click « Réserver » in the search results: a POST that holds the slot, then the form."""
    path = f"/rendez-vous/nouveau/{slot_id}/retenir"
    response = await _post(client, path, {}, "/rendez-vous/nouveau")
    if response.status == 303:
        return await client.get(response.headers["Location"])
    return response


def _rule_form(**changes: Any) -> list[tuple[str, str]]:
    """The add-rule form as a browser sends it: one `act_types` field per ticked box."""
    values = {**THURSDAY_RULE, **changes}
    fields = [(k, v) for k, v in values.items() if k != "act_types"]
    return fields + [("act_types", t) for t in values["act_types"]]


# --- staff: search, book, cancel, move ------------------------------------------------------------


async def test_staff_finds_a_slot_books_it_through_the_form_and_sees_it_in_mes_rendez_vous(
    client: TestClient, db: Database, world: dict[str, Any]
) -> None:
    await login(client, world["staff"].email)
    search = await client.get("/rendez-vous/nouveau", params={"specialite": "dermatologie"})
    html = await _read(search)
    assert search.status == 200
    assert "jeudi 7 mars 2030" in html
    assert html.index("09:00–09:30") < html.index("09:30–10:00") < html.index("10:00–10:30")
    assert "09:15–09:45" not in html  # the cardiologist's slot is filtered out
    assert world["dermatologist"].full_name in html and "Téléconsultation" in html

    slot = world["slots"][0]
    resident = await _resident(db, world["staff"], "RES-0042")
    form = await _hold(client, slot.id)
    form_html = await _read(form)
    assert form.status == 200
    assert "réservé jusqu'à <strong>10:10</strong>" in form_html  # a 10-minute hold, local time
    assert f'<option value="{resident}">MARTIN Jeanne (RES-0042)</option>' in form_html
    [hold] = await _bookings(db)
    assert hold.status is BookingStatus.HELD and hold.slot_id == slot.id

    response = await client.post(
        f"/rendez-vous/nouveau/{slot.id}",
        data={
            "csrf_token": csrf_from(form_html),
            "act_type": "teleconsultation",
            "patient_id": str(resident),
            "reason": "Plaie du talon",
        },
        allow_redirects=False,
    )
    assert response.status == 303
    assert response.headers["Location"] == "/rendez-vous?ok=reserve"
    [booked] = await _bookings(db)
    assert booked.id == hold.id and booked.status is BookingStatus.CONFIRMED
    assert booked.patient_id == resident and booked.reason == "Plaie du talon"

    mine = await _read(await client.get(response.headers["Location"]))
    assert "Le rendez-vous est réservé." in mine
    assert "RES-0042" in mine and "jeudi 7 mars 2030, 09:00–09:30" in mine
    assert f'href="/consultation/{booked.id}"' in mine and "Rejoindre la consultation" in mine


async def test_search_pages_through_free_slots_with_the_next_cursor(
    client: TestClient, db: Database, world: dict[str, Any]
) -> None:
    friday = TOMORROW_9 + timedelta(days=1)
    for i in range(20):
        await make_slot(db, world["dermatologist"], friday + timedelta(minutes=30 * i))
    await login(client, world["staff"].email)
    first = await _read(await client.get("/rendez-vous/nouveau?specialite=dermatologie"))
    assert first.count("Réserver<span") == 20
    assert "vendredi 8 mars 2030" in first and "Première page" not in first
    match = re.search(r'href="([^"]+)" rel="next">Page suivante', first)
    assert match, "no link to the next page"
    second = await _read(await client.get(match.group(1)))
    assert second.count("Réserver<span") == 3  # 23 dermatology slots in all
    assert "18:30–19:00" in second and "Page suivante" not in second
    assert "Première page" in second


async def test_a_held_slot_stays_with_its_facility_and_is_refused_to_others(
    client: TestClient, db: Database, world: dict[str, Any]
) -> None:
    slot = world["slots"][0]
    await login(client, world["staff"].email)
    assert (await _hold(client, slot.id)).status == 200
    again = await _hold(client, slot.id)  # a second click
    assert again.status == 200 and "réservé jusqu'à" in await _read(again)
    reload = await client.get(f"/rendez-vous/nouveau/{slot.id}")
    assert reload.status == 200 and "réservé jusqu'à" in await _read(reload)
    assert len(await _bookings(db)) == 1

    other = await make_user(db, Role.STAFF, facility=await make_facility(db, name="MAS Autre"))
    await login(client, other.email)
    refused = await _hold(client, slot.id)
    assert refused.status == 409
    assert "vient d'être réservé par quelqu'un d'autre" in await _read(refused)
    listed = await _read(await client.get("/rendez-vous/nouveau"))
    assert "09:00–09:30" not in listed and "09:30–10:00" in listed


async def test_booking_without_a_resident_shows_the_form_again_and_books_nothing(
    client: TestClient, db: Database, world: dict[str, Any]
) -> None:
    slot = world["slots"][0]
    mine = await _resident(db, world["staff"], "RES-0042")
    await login(client, world["staff"].email)
    await _hold(client, slot.id)
    page = f"/rendez-vous/nouveau/{slot.id}"
    data = {"act_type": "teleconsultation", "patient_id": "", "reason": "Eczéma"}
    response = await _post(client, page, data, page)
    html = await _read(response)
    assert response.status == 422
    assert "« Résident » est obligatoire" in html
    assert "Eczéma</textarea>" in html  # what was typed is kept
    [hold] = await _bookings(db)
    assert hold.status is BookingStatus.HELD

    elsewhere = await make_user(db, Role.STAFF, facility=await make_facility(db))
    theirs = await _resident(db, elsewhere, "RES-0042")  # another facility's resident
    named = await _post(client, page, {**data, "patient_id": str(theirs)}, page)
    shown = await _read(named)
    assert named.status == 422 and "Résident introuvable dans votre établissement" in shown
    assert f'<option value="{mine}">' in shown and f'<option value="{theirs}"' not in shown
    assert [b.status for b in await _bookings(db)] == [BookingStatus.HELD]


async def test_staff_cancels_a_booking_giving_a_reason(
    client: TestClient, db: Database, world: dict[str, Any]
) -> None:
    mine = await _book(db, world["staff"], world["slots"][0])
    await login(client, world["staff"].email)
    path = f"/rendez-vous/{mine.id}/annuler"

    no_reason = await _post(client, path, {"reason": "  "}, "/rendez-vous")
    assert no_reason.status == 422
    assert "Indiquez le motif de l'annulation." in await _read(no_reason)
    assert (await _bookings(db))[0].status is BookingStatus.CONFIRMED

    response = await _post(client, path, {"reason": "Résident hospitalisé"}, "/rendez-vous")
    assert response.status == 303 and response.headers["Location"] == "/rendez-vous?ok=annule"
    [cancelled] = await _bookings(db)
    assert cancelled.status is BookingStatus.CANCELLED
    assert cancelled.cancel_reason == "Résident hospitalisé"
    html = await _read(await client.get(response.headers["Location"]))
    assert "Le rendez-vous est annulé." in html and "Motif : Résident hospitalisé" in html
    assert "Rejoindre la consultation" not in html  # nothing left to join or cancel


async def test_staff_moves_a_booking_to_another_slot_of_the_same_specialty(
    client: TestClient, db: Database, world: dict[str, Any]
) -> None:
    slots = world["slots"]
    mine = await _book(db, world["staff"], slots[0])
    await login(client, world["staff"].email)
    page = f"/rendez-vous/{mine.id}/deplacer"
    html = await _read(await client.get(page))
    offered = {int(v) for v in re.findall(r'name="slot_id" value="(\d+)"', html)}
    assert offered == {slots[1].id, slots[2].id}  # not its own, not the cardiologist's

    response = await _post(client, page, {"slot_id": str(slots[2].id)}, page)
    assert response.status == 303 and response.headers["Location"] == "/rendez-vous?ok=deplace"
    old, new = await _bookings(db)
    assert old.status is BookingStatus.CANCELLED
    assert new.status is BookingStatus.CONFIRMED and new.slot_id == slots[2].id
    assert new.rescheduled_from_id == old.id and new.patient_id == old.patient_id
    listed = await _read(await client.get(response.headers["Location"]))
    assert "jeudi 7 mars 2030, 10:00–10:30" in listed

    taken = await _book(db, world["staff"], slots[1], "RES-0099")
    refused = await _post(client, f"/rendez-vous/{new.id}/deplacer", {"slot_id": "999999"}, page)
    assert refused.status == 404
    clash = await _post(
        client, f"/rendez-vous/{new.id}/deplacer", {"slot_id": str(slots[1].id)}, page
    )
    assert clash.status == 409 and "Choisissez-en un autre" in await _read(clash)
    assert {b.id: b.status for b in await _bookings(db)}[taken.id] is BookingStatus.CONFIRMED


async def test_staff_of_another_facility_can_neither_cancel_nor_move_a_booking(
    client: TestClient, db: Database, world: dict[str, Any]
) -> None:
    mine = await _book(db, world["staff"], world["slots"][0])
    other = await make_user(db, Role.STAFF)
    await login(client, other.email)
    listed = await _read(await client.get("/rendez-vous"))
    assert "RES-0042" not in listed and "Aucun rendez-vous à venir" in listed
    assert (await client.get(f"/rendez-vous/{mine.id}/deplacer")).status == 404
    cancel = await _post(client, f"/rendez-vous/{mine.id}/annuler", {"reason": "x"}, "/")
    assert cancel.status == 404 and "introuvable" in await _read(cancel)
    assert (await _bookings(db))[0].status is BookingStatus.CONFIRMED


# --- specialist: availability and agenda ----------------------------------------------------------


async def test_specialist_adds_a_rule_and_finds_its_slots_in_mon_agenda(
    client: TestClient, db: Database, world: dict[str, Any]
) -> None:
    await login(client, world["dermatologist"].email)
    response = await _post(client, "/disponibilites/regles", _rule_form(), "/disponibilites")
    assert response.status == 303
    location = response.headers["Location"]
    # Thursdays 14:00-16:00 in 30 minutes over the 8 weeks ahead: 8 Thursdays of 4 slots.
    assert location.startswith("/disponibilites?ok=regle_ajoutee&crees=32&")
    html = await _read(await client.get(location))
    assert "La plage hebdomadaire est ajoutée." in html and "32 créneaux créés" in html
    assert "<td>Jeudi</td>" in html and "14:00–16:00" in html
    assert '<span class="tag">Téléexpertise</span>' in html
    assert "à partir du mercredi 6 mars 2030" in html

    week = await client.get("/agenda", params={"semaine": "2030-03-13"})  # a Wednesday
    agenda = await _read(week)
    assert week.status == 200
    assert "Semaine du lundi 11 mars au dimanche 17 mars 2030" in agenda
    assert agenda.count('class="slot free') == 4
    thursday = agenda[agenda.index("jeudi 14 mars") : agenda.index("vendredi 15 mars")]
    for start in ("14:00–14:30", "14:30–15:00", "15:00–15:30", "15:30–16:00"):
        assert start in thursday
    assert "semaine=2030-03-04" in agenda and "semaine=2030-03-18" in agenda  # previous, next

    outside = await _read(await client.get("/agenda?semaine=2030-05-06"))
    assert 'class="slot' not in outside and "Aucun créneau cette semaine" in outside


async def test_absence_over_a_booked_slot_is_reported_as_a_conflict(
    client: TestClient, db: Database, world: dict[str, Any]
) -> None:
    doctor = world["dermatologist"]
    rule = availability.RuleInput(
        weekday=3,
        start=time(14),
        end=time(16),
        slot_minutes=30,
        act_types=[ActType.TELECONSULTATION, ActType.TELEEXPERTISE],
    )
    async with db.write() as session:
        await availability.create_rule(session, Context(doctor, NOW), rule, tz=PARIS, weeks=8)
        booked_slot = await session.scalar(
            select(Slot).where(
                Slot.starts_at == datetime(2030, 3, 7, 14, 30, tzinfo=PARIS).astimezone(UTC)
            )
        )
    assert booked_slot is not None
    mine = await _book(db, world["staff"], booked_slot)

    await login(client, doctor.email)
    form = {"starts_at": "2030-03-07T14:00", "ends_at": "2030-03-07T16:00", "reason": "Formation"}
    response = await _post(client, "/disponibilites/absences", form, "/disponibilites")
    assert response.status == 303
    html = await _read(await client.get(response.headers["Location"]))
    assert "L'absence est enregistrée." in html
    assert "3 créneaux libres retirés" in html
    assert "1 rendez-vous réservé ne correspond plus à vos disponibilités." in html
    assert "jeudi 7 mars 2030 à 14:30" in html and "EHPAD Les Tilleuls" in html
    assert f"rendez-vous n° {mine.id}" in html
    assert "jeudi 7 mars 2030 à 14:00" in html and "Formation" in html  # the absence listed

    async with db.read() as session:
        rows = await session.execute(select(Slot.id, Slot.status).where(Slot.rule_id.is_not(None)))
        statuses = {slot_id: status for slot_id, status in rows}
    assert statuses[booked_slot.id] is SlotStatus.OPEN  # a booked slot is never taken away
    assert list(statuses.values()).count(SlotStatus.BLOCKED) == 3
    assert (await _bookings(db))[0].status is BookingStatus.CONFIRMED

    agenda = await _read(await client.get("/agenda"))
    thursday = agenda[agenda.index("jeudi 7 mars") : agenda.index("vendredi 8 mars")]
    assert "EHPAD Les Tilleuls" in thursday and "RES-0042</a>" in thursday
    assert "Confirmé" in thursday and "Hors de vos disponibilités" in thursday
    assert "14:00–14:30" not in thursday  # blocked by the absence

    async with db.read() as session:
        absence_id = await session.scalar(select(AvailabilityException.id))
    removed = await _post(
        client, f"/disponibilites/absences/{absence_id}/supprimer", {}, "/disponibilites"
    )
    assert removed.status == 303
    after = await _read(await client.get(removed.headers["Location"]))
    assert "L'absence est supprimée." in after and "3 créneaux rouverts" in after
    assert await _count(db, AvailabilityException) == 0


async def test_deleting_a_rule_withdraws_its_free_slots(
    client: TestClient, db: Database, world: dict[str, Any]
) -> None:
    await login(client, world["dermatologist"].email)
    await _post(client, "/disponibilites/regles", _rule_form(), "/disponibilites")
    async with db.read() as session:
        rule_id = await session.scalar(select(AvailabilityRule.id))
    response = await _post(
        client, f"/disponibilites/regles/{rule_id}/supprimer", {}, "/disponibilites"
    )
    assert response.status == 303
    html = await _read(await client.get(response.headers["Location"]))
    assert "La plage hebdomadaire est supprimée." in html
    assert "32 créneaux libres retirés" in html and "Aucune plage hebdomadaire" in html
    assert await _count(db, Slot, Slot.rule_id == rule_id, Slot.status == SlotStatus.OPEN) == 0


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"start": "16:00", "end": "14:00"}, "L'heure de fin doit suivre l'heure de début."),
        ({"act_types": []}, "« Types d'actes » : au moins 1 élément(s)."),
        ({"act_types": ["chirurgie"]}, "« act_types[0] » : valeur inconnue"),
        ({"slot_minutes": "trente"}, "« Durée d'un créneau » doit être un entier."),
        ({"slot_minutes": "300"}, "≤ 240"),  # « Durée d'un créneau » : ... ≤ 240.
        ({"slot_minutes": "150"}, "La plage est plus courte qu'un créneau."),
        ({"start": ""}, "« Heure de début » est obligatoire."),
        ({"start": "2 h"}, "« Heure de début » doit être une heure HH:MM."),
        (
            {"valid_from": "2030-06-01", "valid_until": "2030-05-01"},
            "« Valable jusqu'au » précède « Valable à partir du ».",
        ),
    ],
)
async def test_a_bad_rule_is_shown_again_with_a_french_message_and_writes_nothing(
    client: TestClient,
    db: Database,
    world: dict[str, Any],
    changes: dict[str, Any],
    message: str,
) -> None:
    await login(client, world["dermatologist"].email)
    response = await _post(
        client, "/disponibilites/regles", _rule_form(**changes), "/disponibilites"
    )
    html = await _read(response)
    assert response.status == 422
    assert message in html
    assert await _count(db, AvailabilityRule) == 0
    assert await _count(db, Slot, Slot.specialist_id == world["dermatologist"].id) == 3


async def test_a_bad_absence_is_refused_with_a_french_message(
    client: TestClient, db: Database, world: dict[str, Any]
) -> None:
    await login(client, world["dermatologist"].email)
    backwards = {"starts_at": "2030-03-08T12:00", "ends_at": "2030-03-08T09:00", "reason": ""}
    response = await _post(client, "/disponibilites/absences", backwards, "/disponibilites")
    html = await _read(response)
    assert response.status == 422
    assert "La fin de l'absence doit suivre son début." in html
    assert 'value="2030-03-08T12:00"' in html
    missing = await _post(client, "/disponibilites/absences", {"ends_at": ""}, "/disponibilites")
    assert missing.status == 422
    assert "« Début de l'absence » est obligatoire." in await _read(missing)
    odd = {"starts_at": "le 8 mars", "ends_at": "2030-03-08T09:00"}
    refused = await _post(client, "/disponibilites/absences", odd, "/disponibilites")
    assert refused.status == 422
    assert "« Début de l'absence » : une date et une heure" in await _read(refused)
    assert await _count(db, AvailabilityException) == 0


async def test_an_admin_manages_a_chosen_specialists_availability(
    client: TestClient, db: Database, world: dict[str, Any]
) -> None:
    admin = await make_user(db, Role.ADMIN)
    doctor = world["dermatologist"]
    await login(client, admin.email)
    chooser = await _read(await client.get("/disponibilites"))
    assert f'<option value="{doctor.id}">{doctor.full_name}' in chooser

    page = f"/disponibilites?specialiste={doctor.id}"
    html = await _read(await client.get(page))
    assert f"Disponibilités de {doctor.full_name}" in html
    assert f'action="/disponibilites/regles?specialiste={doctor.id}"' in html
    response = await _post(
        client, f"/disponibilites/regles?specialiste={doctor.id}", _rule_form(), page
    )
    assert response.status == 303
    assert response.headers["Location"].startswith(f"/disponibilites?specialiste={doctor.id}&ok=")
    async with db.read() as session:
        rule = await session.scalar(select(AvailabilityRule))
    assert rule is not None and rule.specialist_id == doctor.id


async def test_a_specialist_cannot_manage_someone_elses_availability(
    client: TestClient, db: Database, world: dict[str, Any]
) -> None:
    await login(client, world["dermatologist"].email)
    other = world["cardiologist"].id
    assert (await client.get(f"/disponibilites?specialiste={other}")).status == 403
    response = await _post(
        client, f"/disponibilites/regles?specialiste={other}", _rule_form(), "/disponibilites"
    )
    assert response.status == 403
    assert await _count(db, AvailabilityRule) == 0


# --- roles, navigation, page hygiene --------------------------------------------------------------

STAFF_PAGES = ["/rendez-vous/nouveau", "/rendez-vous"]
SPECIALIST_PAGES = ["/agenda", "/disponibilites"]


async def test_a_specialist_cannot_open_staff_pages(
    client: TestClient, db: Database, world: dict[str, Any]
) -> None:
    await login(client, world["dermatologist"].email)
    for path in [*STAFF_PAGES, f"/rendez-vous/nouveau/{world['slots'][0].id}"]:
        response = await client.get(path)
        assert response.status == 403, path
        assert "Accès refusé" in await _read(response)
    hold = await client.post(f"/rendez-vous/nouveau/{world['slots'][0].id}/retenir", data={})
    assert hold.status == 403
    assert await _count(db, Booking) == 0  # no hold was placed


async def test_staff_cannot_open_specialist_pages(
    client: TestClient, db: Database, world: dict[str, Any]
) -> None:
    await login(client, world["staff"].email)
    for path in SPECIALIST_PAGES:
        response = await client.get(path)
        assert response.status == 403, path
        assert "Accès refusé" in await _read(response)
    refused = await _post(client, "/disponibilites/regles", _rule_form(), "/")
    assert refused.status == 403


async def test_navigation_offers_each_role_its_own_pages(
    client: TestClient, world: dict[str, Any]
) -> None:
    await login(client, world["staff"].email)
    staff_home = await _read(await client.get("/"))
    assert 'href="/rendez-vous/nouveau">Prendre rendez-vous' in staff_home
    assert 'href="/rendez-vous">Mes rendez-vous' in staff_home
    assert "Mon agenda" not in staff_home
    await login(client, world["dermatologist"].email)
    doctor_home = await _read(await client.get("/"))
    assert 'href="/agenda">Mon agenda' in doctor_home
    assert 'href="/disponibilites">Mes disponibilités' in doctor_home
    assert "Prendre rendez-vous" not in doctor_home


async def test_pages_have_no_inline_script_or_style_and_every_post_form_a_csrf_token(
    client: TestClient, db: Database, world: dict[str, Any]
) -> None:
    mine = await _book(db, world["staff"], world["slots"][0])
    pages = {
        world["staff"].email: [*STAFF_PAGES, f"/rendez-vous/{mine.id}/deplacer"],
        world["dermatologist"].email: [*SPECIALIST_PAGES, "/agenda?semaine=2030-03-04"],
    }
    for email, paths in pages.items():
        await login(client, email)
        for path in paths:
            response = await client.get(path)
            html = await _read(response)
            assert response.status == 200, path
            assert "style=" not in html and "<style" not in html, path
            for script in re.findall(r"<script[^>]*>", html):
                assert 'src="/static/' in script, (path, script)
            posts = re.findall(r'<form[^>]*method="post".*?</form>', html, flags=re.S)
            assert posts and all('name="csrf_token"' in form for form in posts), path
    preview = await client.get("/disponibilites")
    assert '<script src="/static/js/availability-preview.js" defer>' in await _read(preview)
    assert (await client.get("/static/js/availability-preview.js")).status == 200


async def test_a_bad_search_date_is_explained_in_french(
    client: TestClient, world: dict[str, Any]
) -> None:
    await login(client, world["staff"].email)
    response = await client.get("/rendez-vous/nouveau", params={"du": "demain"})
    assert response.status == 422
    assert "« À partir du » doit être une date AAAA-MM-JJ." in await _read(response)


async def test_the_join_button_says_when_the_room_opens_as_configured(
    aiohttp_client: Any, settings: Settings, clock: FrozenClock, db: Database, world: dict[str, Any]
) -> None:
    client = await aiohttp_client(create_app(settings.replace(room_opens_minutes=20), clock=clock))
    await _book(db, world["staff"], world["slots"][0])
    await login(client, world["staff"].email)
    page = await _read(await client.get("/rendez-vous"))
    assert "La salle ouvre 20 minutes avant le rendez-vous" in page
