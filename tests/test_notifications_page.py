"""« Mes notifications » and the menu's badge (issue 15, point 7): the unread count in the
menu, a list of messages (title, text with its links, French dates, « Non lue ») without the
mail's delivery state, no room or invitation link in a cancellation (notice and mail), the
dates of the notice texts in French, and the page at the three viewports for axe."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime, timedelta
from html import unescape
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from scheduling.clock import FrozenClock
from telmi import jobs, labels, notify
from telmi.db import Database
from telmi.models import Notification, Role, User
from telmi.settings import Settings
from telmi.web.pages import notifications_view

from .browser import VIEWPORTS, axe_violations, scroll_overflow, signed_in
from .factories import (
    NOW,
    bearer,
    csrf_from,
    login,
    make_facility,
    make_resident,
    make_slot,
    make_user,
)
from .mailbox import Inbox

PARIS = ZoneInfo("Europe/Paris")


# --- the dates, in French -------------------------------------------------------------------------


def test_french_dates_name_the_first_of_the_month_and_the_hour_as_written_in_french() -> None:
    first = datetime(2026, 12, 1, 13, 30, tzinfo=UTC).astimezone(PARIS)  # 14:30 in Paris
    assert labels.on(first) == "le 1er décembre 2026 à 14 h 30"
    assert labels.on(first, year=False) == "le 1er décembre à 14 h 30"
    assert labels.on(date(2026, 12, 2), year=False) == "le 2 décembre"
    assert labels.on(date(2027, 1, 1)) == "le 1er janvier 2027"
    assert labels.on(datetime(2026, 6, 11, 9, 0, tzinfo=PARIS)) == "le 11 juin 2026 à 9 h"
    assert labels.on(datetime(2026, 6, 11, 9, 5, tzinfo=PARIS)) == "le 11 juin 2026 à 9 h 05"


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        (datetime(2026, 12, 1, 13, 30, tzinfo=UTC), "le 1er décembre 2026 à 14 h 30"),  # UTC+1
        (datetime(2026, 7, 1, 6, 0, tzinfo=UTC), "le 1er juillet 2026 à 8 h"),  # UTC+2
        # 29 March 2026: clocks go from 2:00 to 3:00 in Paris.
        (datetime(2026, 3, 29, 0, 30, tzinfo=UTC), "le 29 mars 2026 à 1 h 30"),
        (datetime(2026, 3, 29, 1, 30, tzinfo=UTC), "le 29 mars 2026 à 3 h 30"),
        # 25 October 2026: 2:30 happens twice, an hour apart.
        (datetime(2026, 10, 25, 0, 30, tzinfo=UTC), "le 25 octobre 2026 à 2 h 30"),
        (datetime(2026, 10, 25, 1, 30, tzinfo=UTC), "le 25 octobre 2026 à 2 h 30"),
        (datetime(2026, 10, 25, 2, 45, tzinfo=UTC), "le 25 octobre 2026 à 3 h 45"),
        (datetime(2026, 12, 31, 23, 15, tzinfo=UTC), "le 1er janvier 2027 à 0 h 15"),
    ],
)
def test_notice_times_are_french_in_the_regions_time_zone(instant: datetime, expected: str) -> None:
    assert notify._when(instant, PARIS) == expected


def _row(starts_at: datetime, **more: Any) -> SimpleNamespace:
    return SimpleNamespace(
        id=7, starts_at=starts_at, specialist_id=1, specialist_name="Dr Anne Martin",
        specialty_name="Dermatologie", facility_name="EHPAD Les Tilleuls", **more,
    )  # fmt: skip


def test_a_notice_text_says_when_in_french_and_only_links_a_room_that_will_open() -> None:
    row = _row(datetime(2026, 12, 1, 13, 30, tzinfo=UTC))
    joined = notify._text(row, PARIS, "https://telmi.example", "Téléconsultation confirmée.")
    assert (
        "Téléconsultation le 1er décembre 2026 à 14 h 30 avec Dr Anne Martin (Dermatologie)."
        in joined
    )
    assert "Rejoindre la consultation : https://telmi.example/consultation/7\n" in joined
    assert "Tester votre vidéo avant : https://telmi.example/test-video\n" in joined
    before = _row(datetime(2026, 11, 30, 23, 0, tzinfo=UTC))  # midnight in Paris
    cancelled = notify._text(row, PARIS, "https://x", "Annulée.", join=False, before=before)
    assert "Initialement prévue le 1er décembre 2026 à 0 h." in cancelled
    assert "https://" not in cancelled and "consultation/" not in cancelled


# --- the body as a message --------------------------------------------------------------------------


def test_a_label_and_its_url_become_one_link_and_a_url_in_the_text_is_clickable() -> None:
    pieces = notifications_view.line_pieces
    assert pieces("Voir la demande : https://t.example/teleexpertise/5", "https://t.example") == [
        notifications_view.Piece("Voir la demande", "/teleexpertise/5")
    ]
    # An address outside Telmi stays absolute; the full stop after it is not part of it.
    assert pieces("Lire https://ars.example/guide.", "https://t.example") == [
        notifications_view.Piece("Lire "),
        notifications_view.Piece("https://ars.example/guide", "https://ars.example/guide"),
        notifications_view.Piece("."),
    ]
    # A link alone on its line is named after where it goes; earlier sentences stay text.
    assert pieces("https://t.example/consultation/3", "https://t.example") == [
        notifications_view.Piece("Rejoindre la consultation", "/consultation/3")
    ]
    old = "La salle ouvre 15 minutes avant. Pour tester votre vidéo : https://t.example/test-video"
    assert pieces(old, "https://t.example") == [
        notifications_view.Piece("La salle ouvre 15 minutes avant. "),
        notifications_view.Piece("Pour tester votre vidéo", "/test-video"),
    ]
    assert pieces("Aucun lien ici.", "https://t.example") == [
        notifications_view.Piece("Aucun lien ici.")
    ]


# --- pages --------------------------------------------------------------------------------------------


async def _booked(client: TestClient, db: Database, start: datetime) -> dict[str, Any]:
    """A nurse's confirmed booking with a specialist at `start`, made through the API."""
    facility = await make_facility(db, name="EHPAD Les Tilleuls")
    nurse = await make_user(db, Role.STAFF, facility=facility)
    doctor = await make_user(db, Role.SPECIALIST)
    slot = await make_slot(db, doctor, start)
    resident = await make_resident(db, nurse, reference="RES-0042")
    headers = await bearer(db, nurse)
    response = await client.post(
        "/api/bookings",
        json={"slot_id": slot.id, "patient_id": resident.id, "act_type": "teleconsultation",
              "reason": "Suivi de plaie"},
        headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
    )  # fmt: skip
    assert response.status == 201, await response.text()
    booking_id = (await response.json())["id"]
    return {"nurse": nurse, "doctor": doctor, "id": booking_id, "headers": headers}


async def _page(client: TestClient, path: str) -> str:
    response = await client.get(path)
    assert response.status == 200
    return unescape(await response.text())


def _article(html: str, subject: str) -> str:
    """The message whose title is `subject`."""
    title = html.index(f">{subject}")
    start = html.rindex("<article", 0, title)
    return html[start : html.index("</article>", start)]


def _badge(html: str) -> str | None:
    """The menu link's accessible name beyond « Notifications » (None: no badge), checked
    against the number the badge shows."""
    menu = html[html.index('<nav aria-label="Navigation principale"') :]
    found = re.search(
        r'<a href="/notifications"(?: aria-label="([^"]*)")?>Notifications'
        r'(?: <span class="tag badge">(\d+)</span>)?</a>',
        menu,
    )
    assert found, "no Notifications link in the menu, or not as expected"
    label, shown = found.groups()
    if label is None:
        assert shown is None
        return None
    assert shown and label.startswith(f"Notifications, {shown} "), (label, shown)
    return label.removeprefix("Notifications")


async def _notice(
    db: Database, user: User, subject: str, *, at: datetime = NOW, text: str = "Le détail."
) -> int:
    async with db.write() as session:
        await notify.enqueue(
            session, user_id=user.id, kind="alerte", subject=subject,
            body=f"{subject}.\n\n{text}\n\n— Telmi", dedupe_key=subject, now=at,
        )  # fmt: skip
        return int(
            await session.scalar(select(Notification.id).where(Notification.dedupe_key == subject))
            or 0
        )


async def test_the_menu_counts_the_unread_notifications_and_reading_them_lowers_it(
    client: TestClient, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    nurse = await make_user(db, Role.STAFF, facility=await make_facility(db))
    other = await make_user(db, Role.STAFF, facility=await make_facility(db))
    ids = [await _notice(db, nurse, f"Avis {i}") for i in range(3)]
    theirs = await _notice(db, other, "Avis d'un autre")
    await login(client, nurse.email)
    assert _badge(await _page(client, "/")) == ", 3 non lues"

    page = await _page(client, "/notifications")
    token = csrf_from(page)
    one = await client.post(
        "/notifications/lues",
        data={"csrf_token": token, "notification_id": str(ids[1])},
        allow_redirects=False,
    )
    assert one.status == 303 and one.headers["Location"] == f"/notifications#notification-{ids[1]}"
    page = await _page(client, "/notifications")
    assert _badge(page) == ", 2 non lues"
    assert "Non lue" not in _article(page, "Avis 1") and "Non lue" in _article(page, "Avis 0")

    # Someone else's notice is not marked by giving its number.
    await client.post(
        "/notifications/lues", data={"csrf_token": token, "notification_id": str(theirs)}
    )
    async with db.read() as session:
        assert await notify.unread(session, other.id) == 1
        assert await notify.unread(session, nurse.id) == 2
    await client.post(
        "/notifications/lues", data={"csrf_token": token, "notification_id": str(ids[2])}
    )
    page = await _page(client, "/notifications")
    assert _badge(page) == ", 1 non lue"
    assert "1 notification non lue sur 3." in page

    await client.post("/notifications/lues", data={"csrf_token": token})
    page = await _page(client, "/notifications")
    assert _badge(page) is None and "Non lue" not in page and "badge" not in page
    assert "Toutes vos notifications sont lues." in page

    # One COUNT per signed-in page, none for the API, static files or a form post.
    calls: list[int] = []
    counted = notify.unread

    async def spy(session: Any, user_id: int) -> int:
        calls.append(user_id)
        return await counted(session, user_id)

    monkeypatch.setattr(notify, "unread", spy)
    await _page(client, "/mon-compte")
    assert calls == [nurse.id]
    assert (await client.get("/api/me", headers=await bearer(db, nurse))).status == 200
    assert (await client.get("/api/me")).status == 200  # the session cookie, on the API
    assert (await client.get("/static/css/notifications.css")).status == 200
    posted = await client.post(
        "/notifications/lues", data={"csrf_token": token}, allow_redirects=False
    )
    assert posted.status == 303 and calls == [nurse.id]


async def test_the_page_reads_like_messages_with_links_and_no_delivery_state(
    client: TestClient, db: Database, clock: FrozenClock, settings: Settings
) -> None:
    visit = await _booked(client, db, NOW + timedelta(hours=30))  # 11 June, 16:00 in Paris
    await jobs.reminders(db, clock, settings)  # the confirmation, to both
    booking_id, nurse, doctor = visit["id"], visit["nurse"], visit["doctor"]
    await _notice(db, nurse, "Ancien avis", at=datetime(2025, 12, 1, 13, 30, tzinfo=UTC))
    await login(client, nurse.email)
    page = await _page(client, "/notifications")

    card = _article(page, "Téléconsultation confirmée")
    assert '<h2 id="notification-' in card and "Non lue" in card
    assert '<time datetime="2026-06-10T10:00+02:00">le 10 juin à 10 h</time>' in card
    assert "Téléconsultation le 11 juin 2026 à 16 h avec" in card
    assert f'<a href="/consultation/{booking_id}">Rejoindre la consultation</a>' in card
    assert '<a href="/test-video">Tester votre vidéo avant</a>' in card
    assert f'href="/rendez-vous#rdv-{booking_id}">Voir le rendez-vous</a>' in card
    # The lead repeating the title and the mail's signature are not shown.
    assert "Téléconsultation confirmée." not in card and "— Telmi" not in card
    # Another year: the year is said.
    assert "le 1er décembre 2025 à 14 h 30" in _article(page, "Ancien avis")

    for internal in (
        "à envoyer",
        "envoyé par courriel",
        "échec",
        "abandonné",
        "http://",
        nurse.email,
    ):
        assert internal not in page, internal
    assert "RES-0042" not in page and "Suivi de plaie" not in page  # no resident, no reason

    await login(client, doctor.email)
    card = _article(await _page(client, "/notifications"), "Téléconsultation confirmée")
    assert 'href="/agenda?semaine=2026-06-11">Voir dans mon agenda</a>' in card


# --- a cancellation -------------------------------------------------------------------------------


async def test_a_cancellation_carries_no_room_link_nor_invitation_link(
    client: TestClient,
    db: Database,
    clock: FrozenClock,
    settings: Settings,
    smtp: tuple[Inbox, str],
) -> None:
    inbox, url = smtp
    settings = settings.replace(smtp_url=url)
    visit = await _booked(client, db, NOW + timedelta(hours=30))
    booking_id = visit["id"]
    await jobs.reminders(db, clock, settings)  # the confirmation, mailed
    confirmed = inbox.parts("Téléconsultation confirmée")
    assert any(f"/consultation/{booking_id}" in p for p in confirmed)  # what must not stay

    invited = await client.post(
        f"/api/bookings/{booking_id}/invites", json={"label": "Dr Traitant"},
        headers=visit["headers"],
    )  # fmt: skip
    assert invited.status == 201
    token = (await invited.json())["url"].split("#", 1)[1]
    clock.advance(timedelta(minutes=5))
    cancelled = await client.post(
        f"/api/bookings/{booking_id}/cancel", json={"reason": "Hospitalisation"},
        headers=visit["headers"],
    )  # fmt: skip
    assert cancelled.status == 200, await cancelled.text()
    clock.advance(timedelta(minutes=1))
    await jobs.reminders(db, clock, settings)  # the cancellation, mailed

    async with db.read() as session:
        notices = list(
            await session.scalars(select(Notification).where(Notification.kind == "rdv-annule"))
        )
    mails = inbox.parts("Téléconsultation annulée")
    assert len(notices) == 2 and len(mails) == 4  # nurse and specialist: text and calendar each
    texts = [n.body for n in notices] + [n.ics or "" for n in notices] + mails
    for text in texts:
        flat = text.replace("\r\n ", "")  # iCalendar folds long lines
        assert "/consultation/" not in flat and "/invitation" not in flat
        assert token not in flat and "Hospitalisation" not in flat
    assert all("Téléconsultation le 11 juin 2026 à 16 h avec" in n.body for n in notices)

    await login(client, visit["nurse"].email)
    card = _article(await _page(client, "/notifications"), "Téléconsultation annulée")
    assert "/consultation/" not in card and "/invitation" not in card
    assert f'href="/rendez-vous#rdv-{booking_id}">Voir le rendez-vous</a>' in card


# --- in Chromium ----------------------------------------------------------------------------------


async def test_notifications_page_has_no_axe_violation_nor_sideways_scroll(
    site: TestClient, browser: Any, db: Database, clock: FrozenClock, settings: Settings
) -> None:
    base = str(site.make_url("")).rstrip("/")
    settings = settings.replace(public_url=base)
    visit = await _booked(site, db, NOW + timedelta(hours=30))
    await jobs.reminders(db, clock, settings)
    nurse = visit["nurse"]
    read = await _notice(db, nurse, "Un avis déjà lu", at=NOW - timedelta(days=3))
    async with db.write() as session:
        await notify.mark_read(session, nurse, now=NOW, notice_id=read)
    await _notice(db, nurse, "Un lien long", text="Lire https://example.org/" + "x" * 120)

    page = await signed_in(browser, base, nurse.email)
    await page.goto(base + "/notifications")
    menu = page.get_by_role("link", name="Notifications, 2 non lues", exact=True)
    assert await menu.count() == 1
    assert await page.locator(".message.unread .unread-mark").count() == 2
    assert await page.locator(".message:not(.unread)").count() == 1
    for name, (width, height) in VIEWPORTS.items():
        await page.set_viewport_size({"width": width, "height": height})
        assert await axe_violations(page) == [], name
        assert await scroll_overflow(page) == 0, name
    await page.context.close()
