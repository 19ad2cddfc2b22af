"""« Déclaration d'accessibilité » (/accessibilite): the sections RGAA 4.1 asks for, for
everyone, and its feedback form, which reaches the administrators through the outbox."""

from __future__ import annotations

import html
import logging
import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from telmi.db import Database
from telmi.models import Notification, Role

from .browser import VIEWPORTS, axe_violations, scroll_overflow, signed_in
from .factories import PASSWORD, csrf_from, login, make_facility, make_user

H2 = [
    "État de conformité",
    "Résultats des tests",
    "Contenus non accessibles",
    "Établissement de cette déclaration d'accessibilité",
    "Retour d'information et contact",
    "Voies de recours",
    "Schéma pluriannuel de mise en accessibilité 2027-2029",
]
H3 = [
    "Non-conformités",
    "Dérogations pour charge disproportionnée",
    "Contenus non soumis à l'obligation d'accessibilité",
    "Technologies utilisées pour la réalisation de Telmi",
    "Environnement de test",
    "Outils pour évaluer l'accessibilité",
    "Pages de Telmi ayant fait l'objet de la vérification de conformité",
]


def headings(page: str, level: int) -> list[str]:
    found = re.findall(rf"<h{level}\b[^>]*>(.*?)</h{level}>", page, re.S)
    return [html.unescape(re.sub(r"<[^>]+>", "", h)).strip() for h in found]


def text_of(page: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def tag(page: str, element_id: str) -> str:
    """The opening tag of the element with this id."""
    match = re.search(rf'<(?:input|textarea)\b[^>]*\bid="{element_id}"[^>]*>', page)
    assert match, f"no field #{element_id}"
    return match.group(0)


def textarea_value(page: str) -> str:
    match = re.search(r'<textarea\b[^>]*id="message"[^>]*>(.*?)</textarea>', page, re.S)
    assert match
    return html.unescape(match.group(1))


def assert_statement(page: str) -> None:
    assert headings(page, 1) == ["Déclaration d'accessibilité"]
    assert headings(page, 2) == H2
    assert headings(page, 3) == H3
    words = text_of(page)
    for needed in (
        "L'opérateur régional de Telmi s'engage",
        "partiellement conforme",
        "autoévaluation",
        "aucun taux de conformité n'est donc annoncé",
        "établie le 2 décembre 2026",
        "axe-core 4.14",
        "1366 × 768",
        "768 × 1024",
        "390 × 844",
        "Chromium 156",
        "n'a pas été testé avec NVDA, JAWS ni VoiceOver",
        "n'est pas balisé",  # the PDF reports, honestly
        "décret n° 2019-768",
        "09 69 39 00 00",
        "Libre réponse 71120",
        "75342 Paris CEDEX 07",
    ):
        assert needed in words, needed
    assert 'href="https://formulaire.defenseurdesdroits.fr/"' in page
    assert "<th></th>" not in page and "<h2></h2>" not in page


async def test_the_statement_is_public_and_has_every_section(
    client: TestClient, db: Database
) -> None:
    anonymous = await client.get("/accessibilite", allow_redirects=False)
    assert anonymous.status == 200
    page = await anonymous.text()
    assert_statement(page)
    assert 'action="/accessibilite"' in page and "Navigation principale" not in page

    nurse = await make_user(db, Role.STAFF, facility=await make_facility(db))
    await login(client, nurse.email, PASSWORD)
    signed = await (await client.get("/accessibilite")).text()
    assert_statement(signed)
    assert "Navigation principale" in signed and nurse.full_name in signed


async def _notifications(db: Database) -> list[Notification]:
    async with db.read() as session:
        return list(await session.scalars(select(Notification).order_by(Notification.user_id)))


async def test_feedback_reaches_the_administrators_and_says_thanks(
    client: TestClient, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    first = await make_user(db, Role.ADMIN)
    second = await make_user(db, Role.ADMIN)
    await make_user(db, Role.REGIONAL)  # not an administrator: not told
    token = csrf_from(await (await client.get("/accessibilite")).text())  # pre-session
    message = "Le bouton « Envoyer » est invisible avec un zoom à 200 %."
    caplog.set_level(logging.DEBUG, logger="telmi")  # Telmi's own logs, all of them
    sent = await client.post(
        "/accessibilite",
        data={
            "csrf_token": token,
            "message": message,
            "email": "lecteur@exemple.fr",
            "page": "Prendre rendez-vous",
        },
        allow_redirects=False,
    )
    assert sent.status == 303
    assert sent.headers["Location"] == "/accessibilite?ok=merci#contact"
    thanks = await (await client.get("/accessibilite?ok=merci")).text()
    assert "Merci, votre message a été transmis" in text_of(thanks)
    assert "Merci, votre message" not in text_of(await (await client.get("/accessibilite")).text())

    notices = await _notifications(db)
    assert [n.user_id for n in notices] == [first.id, second.id]
    for notice in notices:
        assert notice.kind == "alerte" and notice.subject.startswith("Accessibilité")
        assert message in notice.body
        assert "lecteur@exemple.fr" in notice.body and "Prendre rendez-vous" in notice.body
        assert "un visiteur non connecté" in notice.body
    assert "accessibility feedback for 2 administrators" in caplog.text
    assert message not in caplog.text and "zoom" not in caplog.text  # its text never logged

    # The same message sent twice (a double click) is one notice per administrator.
    again = await client.post(
        "/accessibilite",
        data={
            "csrf_token": token,
            "message": message,
            "email": "lecteur@exemple.fr",
            "page": "Prendre rendez-vous",
        },
        allow_redirects=False,
    )
    assert again.status == 303 and len(await _notifications(db)) == 2


async def test_feedback_of_a_signed_in_user_names_them(client: TestClient, db: Database) -> None:
    await make_user(db, Role.ADMIN)
    nurse = await make_user(db, Role.STAFF, facility=await make_facility(db))
    await login(client, nurse.email, PASSWORD)
    token = csrf_from(await (await client.get("/accessibilite")).text())
    sent = await client.post(
        "/accessibilite",
        data={"csrf_token": token, "message": "Contraste trop faible.", "email": "", "page": ""},
        allow_redirects=False,
    )
    assert sent.status == 303
    (notice,) = await _notifications(db)
    assert f"{nurse.full_name} ({nurse.email}), connecté" in notice.body
    assert "Adresse pour la réponse : non indiquée." in notice.body


@pytest.mark.parametrize(
    ("fields", "wrong", "kept"),
    [
        ({"message": "   ", "email": "moi@exemple.fr", "page": "Accueil"}, "message", "Accueil"),
        ({"message": "é" * 2001, "email": "", "page": ""}, "message", "é" * 2001),
        (
            {"message": "Lien illisible.", "email": "pas-une-adresse", "page": ""},
            "email",
            "Lien illisible.",
        ),
    ],
    ids=["empty", "too-long", "bad-email"],
)
async def test_a_refused_feedback_shows_the_form_again_with_the_error_on_its_field(
    client: TestClient, db: Database, fields: dict[str, str], wrong: str, kept: str
) -> None:
    await make_user(db, Role.ADMIN)
    token = csrf_from(await (await client.get("/accessibilite")).text())
    refused = await client.post(
        "/accessibilite", data={"csrf_token": token, **fields}, allow_redirects=False
    )
    assert refused.status == 422
    page = await refused.text()
    field = tag(page, wrong)
    assert 'aria-invalid="true"' in field
    assert f"{wrong}-erreur" in re.search(r'aria-describedby="([^"]+)"', field).group(1)  # type: ignore[union-attr]
    error = re.search(rf'<p class="field-error" id="{wrong}-erreur">(.*?)</p>', page)
    assert error and error.group(1).strip()
    others = [name for name in ("message", "email", "page") if name != wrong]
    assert all("aria-invalid" not in tag(page, name) for name in others)
    assert textarea_value(page) == fields["message"]  # what was typed is kept
    assert kept in html.unescape(page)
    if fields["email"]:
        assert f'value="{fields["email"]}"' in tag(page, "email")
    assert 'role="alert"' in page
    assert await _notifications(db) == []  # nothing written


async def test_feedback_without_its_csrf_token_is_refused(client: TestClient, db: Database) -> None:
    await make_user(db, Role.ADMIN)
    await client.get("/accessibilite")  # the pre-session cookie, but no token sent
    refused = await client.post(
        "/accessibilite", data={"message": "Bonjour"}, allow_redirects=False
    )
    assert refused.status == 403
    forged = await client.post(
        "/accessibilite",
        data={"message": "Bonjour", "csrf_token": "0" * 64},
        allow_redirects=False,
    )
    assert forged.status == 403
    assert await _notifications(db) == []


async def _check_layouts(page: Any, what: str) -> None:
    for name, (width, height) in VIEWPORTS.items():
        await page.set_viewport_size({"width": width, "height": height})
        assert await axe_violations(page) == [], f"{what} at {name}"
        assert await scroll_overflow(page) == 0, f"{what} at {name}"


async def test_the_statement_passes_axe_without_sideways_scroll_for_everyone(
    site: TestClient, db: Database, browser: Any
) -> None:
    await make_user(db, Role.ADMIN)
    users = {role: await make_user(db, role) for role in Role}
    base = str(site.make_url("/")).rstrip("/")

    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(base + "/accessibilite")
    assert await page.inner_text("h1") == "Déclaration d'accessibilité"
    assert await page.locator("h2").all_inner_texts() == H2
    await _check_layouts(page, "anonymous")

    # A refused message, then a sent one, in the browser (novalidate: the server decides).
    await page.fill("#email", "pas-une-adresse")
    await page.click("text=Envoyer le message")
    await page.wait_for_load_state()
    assert await page.get_attribute("#message", "aria-invalid") == "true"
    assert await page.input_value("#email") == "pas-une-adresse"
    await _check_layouts(page, "refused form")
    await page.fill("#message", "Le plan du site manque.")
    await page.fill("#email", "")
    await page.click("text=Envoyer le message")
    await page.wait_for_url(base + "/accessibilite?ok=merci#contact")
    assert "Merci, votre message a été transmis" in await page.inner_text("#contact")
    await _check_layouts(page, "thanks")
    await context.close()

    for role, user in users.items():
        signed = await signed_in(browser, base, user.email)
        await signed.goto(base + "/accessibilite")
        assert await signed.locator("h2").all_inner_texts() == H2
        await _check_layouts(signed, role.value)
        await signed.context.close()
