"""Accounts administration over a real socket: invitations, one-time links, the password
policy, resets, « Mot de passe oublié ? », « Mon compte », role changes, disabling; and in
Chromium, an admin inviting a nurse who sets her password from the link."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from scheduling.clock import FrozenClock
from telmi import account_links
from telmi.db import Database
from telmi.demo import rpps_for
from telmi.models import (
    AccountLink,
    ApiToken,
    AuditEvent,
    Notification,
    Role,
    User,
    WebSession,
)
from telmi.web.middlewares import SESSION_COOKIE

from .browser import poll, signed_in
from .factories import (
    PASSWORD,
    bearer,
    csrf_from,
    login,
    make_facility,
    make_specialty,
    make_user,
    page_csrf,
)

GOOD = "Le héron au long bec emmanché"
_LINK = re.compile(r"https?://[^/\s]+(/compte/lien#[A-Za-z0-9_-]+)")


async def _login(client: TestClient, email: str, password: str = PASSWORD) -> Any:
    return await login(client, email, password)


async def _count(db: Database, model: Any, *where: Any) -> int:
    async with db.read() as session:
        return await session.scalar(select(func.count()).select_from(model).where(*where)) or 0


async def _admin(client: TestClient, db: Database) -> User:
    admin = await make_user(db, Role.ADMIN)
    assert (await _login(client, admin.email)).status == 303
    return admin


async def _link_of(db: Database, email: str) -> str:
    """The path of the latest link mailed to `email` (read from the notifications table)."""
    async with db.read() as session:
        body = await session.scalar(
            select(Notification.body)
            .join(User, User.id == Notification.user_id)
            .where(User.email == email)
            .order_by(Notification.id.desc())
        )
    assert body is not None, "no notification"
    match = _LINK.search(body)
    assert match, body
    return match.group(1)


async def _session_of(client: TestClient, email: str) -> str:
    """Log `email` in and return its session cookie, leaving the client signed out."""
    response = await _login(client, email)
    assert response.status == 303
    client.session.cookie_jar.clear()
    return str(response.cookies[SESSION_COOKIE].value)


async def _as(client: TestClient, cookie: str) -> Any:
    """GET /api/me with that session cookie only (another browser)."""
    client.session.cookie_jar.clear()
    return await client.get("/api/me", headers={"Cookie": f"{SESSION_COOKIE}={cookie}"})


async def _invite(client: TestClient, db: Database, **fields: str) -> Any:
    facility = await make_facility(db)
    data = {
        "email": "ines.martin@ehpad.example.fr",
        "full_name": "Inès Martin",
        "role": "staff",
        "facility": facility.finess,
        "csrf_token": await page_csrf(client, "/admin/comptes"),
    } | fields
    return await client.post("/admin/comptes/inviter", data=data, allow_redirects=False)


async def _open(client: TestClient, path: str) -> Any:
    """What the link's page does: its script posts the fragment's token (never in a URL)."""
    landing = await client.get(path.split("#", 1)[0])
    assert landing.status == 200
    data = {"jeton": path.split("#", 1)[1], "csrf_token": csrf_from(await landing.text())}
    return await client.post("/compte/lien/ouvrir", data=data, allow_redirects=False)


async def _choose(client: TestClient, path: str, password: str, confirm: str | None = None) -> Any:
    page = await _open(client, path)
    assert page.status == 200, await page.text()
    data = {
        "password": password,
        "confirm": password if confirm is None else confirm,
        "csrf_token": csrf_from(await page.text()),
        "jeton": path.split("#", 1)[1],
    }
    return await client.post("/compte/lien", data=data, allow_redirects=False)


async def _state(db: Database) -> tuple[int, ...]:
    """What a refusal must leave unchanged."""
    return (
        await _count(db, User),
        await _count(db, AccountLink),
        await _count(db, AccountLink, AccountLink.used_at.is_not(None)),
        await _count(db, Notification),
        await _count(db, AuditEvent),
        await _count(db, WebSession, WebSession.revoked_at.is_(None)),
    )


async def test_invitation_link_sets_the_password_once(client: TestClient, db: Database) -> None:
    await _admin(client, db)
    response = await _invite(client, db)
    assert response.status == 303
    page = await client.get(response.headers["Location"])
    assert "Invitation envoyée" in await page.text()
    assert "/compte/lien" not in await page.text()  # the page never shows the link
    async with db.read() as session:
        invited = await session.scalar(
            select(User).where(User.email == "ines.martin@ehpad.example.fr")
        )
        assert invited is not None
        notice = await session.scalar(
            select(Notification).where(Notification.user_id == invited.id)
        )
        link = await session.scalar(select(AccountLink))
        event = await session.scalar(select(AuditEvent).where(AuditEvent.action == "user.invited"))
    assert invited is not None and not invited.is_active
    assert notice is not None and notice.subject == "Votre accès à Telmi"
    path = await _link_of(db, invited.email)
    token = path.split("#", 1)[1]
    assert link is not None and link.token_hash == account_links.accounts.sha256(token)
    assert token not in str(link.token_hash) and link.purpose == "invitation"
    assert link.expires_at - link.created_at == timedelta(hours=72)
    assert event is not None and event.detail["after"]["role"] == "staff"
    assert token not in str(event.detail)

    client.session.cookie_jar.clear()  # the nurse, on her own browser
    assert (await _login(client, invited.email, "anything at all")).status == 401
    before = await _state(db)
    weak = await _choose(client, path, "azertyuiop123")
    assert weak.status == 422
    assert 'id="password-erreur"' in await weak.text()
    short = await _choose(client, path, "court")
    assert short.status == 422 and "12 caractères" in await short.text()
    mismatch = await _choose(client, path, GOOD, GOOD + "!")
    assert mismatch.status == 422 and 'id="confirm-erreur"' in await mismatch.text()
    assert await _state(db) == before

    done = await _choose(client, path, GOOD)
    assert done.status == 303 and SESSION_COOKIE in done.cookies
    me = await client.get("/api/me")
    assert me.status == 200 and (await me.json())["email"] == invited.email

    client.session.cookie_jar.clear()
    assert (await _login(client, invited.email, GOOD)).status == 303

    client.session.cookie_jar.clear()
    before = await _state(db)
    again = await _open(client, path)
    assert again.status == 410 and "plus valable" in await again.text()
    token_page = await client.get("/login")
    reused = await client.post(
        "/compte/lien",
        data={
            "password": GOOD + "2",
            "confirm": GOOD + "2",
            "jeton": token,
            "csrf_token": csrf_from(await token_page.text()),
        },
        allow_redirects=False,
    )
    assert reused.status == 410
    assert await _state(db) == before
    assert (await _open(client, "/compte/lien#" + "x" * 43)).status == 410


async def test_expired_invitation_is_refused(
    client: TestClient, db: Database, clock: FrozenClock
) -> None:
    await _admin(client, db)
    assert (await _invite(client, db)).status == 303
    path = await _link_of(db, "ines.martin@ehpad.example.fr")
    client.session.cookie_jar.clear()
    clock.advance(timedelta(hours=71))
    assert (await _open(client, path)).status == 200
    clock.advance(timedelta(hours=1, seconds=1))
    before = await _state(db)
    page = await _open(client, path)
    assert page.status == 410 and "expiré" in await page.text()
    csrf = csrf_from(await (await client.get("/login")).text())
    data = {"password": GOOD, "confirm": GOOD, "csrf_token": csrf, "jeton": path.split("#")[1]}
    late = await client.post("/compte/lien", data=data, allow_redirects=False)
    assert late.status == 410
    assert await _state(db) == before


async def test_invitation_refusals_write_nothing(client: TestClient, db: Database) -> None:
    await _admin(client, db)
    specialty = await make_specialty(db)
    good_rpps = rpps_for(4242)
    bad_rpps = good_rpps[:-1] + str((int(good_rpps[-1]) + 1) % 10)
    before = await _state(db)
    for fields, name in (
        ({"role": "specialist", "specialty": specialty.code, "rpps": bad_rpps}, "rpps"),
        ({"role": "specialist", "specialty": ""}, "specialty"),
        ({"role": "staff", "facility": ""}, "facility"),
        ({"email": "pas-une-adresse"}, "email"),
        ({"role": "pirate"}, "role"),
    ):
        response = await _invite(client, db, **fields)
        assert response.status == 422, fields
        assert f'id="{name}-erreur"' in await response.text(), fields
    assert await _state(db) == before
    ok = await _invite(
        client, db, role="specialist", specialty=specialty.code, rpps=good_rpps, facility=""
    )
    assert ok.status == 303
    taken = await _invite(client, db)
    assert taken.status == 409  # the same e-mail again


async def test_admin_pages_are_for_admins(client: TestClient, db: Database) -> None:
    target = await make_user(db, Role.STAFF)
    for role in (Role.STAFF, Role.SPECIALIST, Role.REGIONAL):
        client.session.cookie_jar.clear()
        user = await make_user(db, role)
        await _login(client, user.email)
        csrf = await page_csrf(client)
        assert (await client.get("/admin/comptes")).status == 403
        assert (await client.get(f"/admin/comptes/{target.id}")).status == 403
        for action in ("inviter",):
            post = await client.post(f"/admin/comptes/{action}", data={"csrf_token": csrf})
            assert post.status == 403
        for action in ("desactiver", "reinitialiser", ""):
            url = f"/admin/comptes/{target.id}" + (f"/{action}" if action else "")
            post = await client.post(url, data={"csrf_token": csrf, "role": "admin"})
            assert post.status == 403
    async with db.read() as session:
        unchanged = await session.get(User, target.id)
    assert unchanged is not None and unchanged.is_active and unchanged.role is Role.STAFF


async def test_edit_role_and_facility_with_audit(client: TestClient, db: Database) -> None:
    await _admin(client, db)
    nurse = await make_user(db, Role.STAFF)
    other = await make_facility(db)
    specialty = await make_specialty(db, "cardiologie")
    page = await client.get(f"/admin/comptes/{nurse.id}")
    assert page.status == 200
    csrf = csrf_from(await page.text())
    url = f"/admin/comptes/{nurse.id}"
    moved = await client.post(
        url,
        data={"csrf_token": csrf, "role": "staff", "facility": other.finess},
        allow_redirects=False,
    )
    assert moved.status == 303
    before = await _state(db)
    refused = await client.post(url, data={"csrf_token": csrf, "role": "specialist"})
    assert refused.status == 422 and 'id="specialty-erreur"' in await refused.text()
    assert await _state(db) == before
    changed = await client.post(
        url,
        data={"csrf_token": csrf, "role": "specialist", "specialty": "cardiologie"},
        allow_redirects=False,
    )
    assert changed.status == 303
    async with db.read() as session:
        user = await session.get(User, nurse.id)
        events = list(
            await session.scalars(
                select(AuditEvent)
                .where(AuditEvent.action == "user.updated")
                .order_by(AuditEvent.id)
            )
        )
    assert user is not None and user.role is Role.SPECIALIST
    assert user.specialty_id == specialty.id and user.facility_id is None
    assert [e.detail["after"]["facility_id"] for e in events] == [other.id, None]
    assert events[0].detail["before"]["facility_id"] == nurse.facility_id
    assert events[1].detail["before"]["role"] == "staff"
    assert events[1].detail["after"]["role"] == "specialist"


async def test_disable_revokes_sessions_and_enable_restores(
    client: TestClient, db: Database
) -> None:
    nurse = await make_user(db, Role.STAFF)
    nurse_cookie = await _session_of(client, nurse.email)
    headers = await bearer(db, nurse)
    assert (await _as(client, nurse_cookie)).status == 200
    await _admin(client, db)
    csrf = await page_csrf(client, f"/admin/comptes/{nurse.id}")
    off = await client.post(
        f"/admin/comptes/{nurse.id}/desactiver", data={"csrf_token": csrf}, allow_redirects=False
    )
    assert off.status == 303
    open_sessions = (WebSession.user_id == nurse.id, WebSession.revoked_at.is_(None))
    assert await _count(db, WebSession, *open_sessions) == 0
    assert await _count(db, ApiToken, ApiToken.revoked_at.is_(None)) == 0
    assert await _count(db, AuditEvent, AuditEvent.action == "user.disable") == 1
    on = await client.post(
        f"/admin/comptes/{nurse.id}/activer", data={"csrf_token": csrf}, allow_redirects=False
    )
    assert on.status == 303
    assert (await _as(client, nurse_cookie)).status == 401  # revoked, even once enabled
    assert (await client.get("/api/me", headers=headers)).status == 401
    assert (await _login(client, nurse.email)).status == 303


async def test_admin_sends_a_reset_link(
    client: TestClient, db: Database, clock: FrozenClock
) -> None:
    await _admin(client, db)
    nurse = await make_user(db, Role.STAFF)
    csrf = await page_csrf(client, f"/admin/comptes/{nurse.id}")
    sent = await client.post(
        f"/admin/comptes/{nurse.id}/reinitialiser", data={"csrf_token": csrf}, allow_redirects=False
    )
    assert sent.status == 303
    first = await _link_of(db, nurse.email)
    await client.post(f"/admin/comptes/{nurse.id}/reinitialiser", data={"csrf_token": csrf})
    path = await _link_of(db, nurse.email)
    assert path != first
    async with db.read() as session:
        link = await session.scalar(select(AccountLink).order_by(AccountLink.id.desc()))
    assert link is not None and link.purpose == "reset"
    assert link.expires_at - link.created_at == timedelta(hours=2)

    client.session.cookie_jar.clear()
    assert (await _open(client, first)).status == 410  # the newer link replaced it
    assert (await _login(client, nurse.email)).status == 303  # the old password still works
    client.session.cookie_jar.clear()
    assert (await _choose(client, path, GOOD)).status == 303
    client.session.cookie_jar.clear()
    assert (await _login(client, nurse.email)).status == 401
    assert (await _login(client, nurse.email, GOOD)).status == 303
    assert (await _open(client, path)).status == 410


async def _forgot(client: TestClient, email: str) -> Any:
    csrf = csrf_from(await (await client.get("/mot-de-passe-oublie")).text())
    return await client.post("/mot-de-passe-oublie", data={"email": email, "csrf_token": csrf})


async def test_forgot_password_answers_the_same_and_is_throttled(
    client: TestClient, db: Database, clock: FrozenClock
) -> None:
    nurse = await make_user(db, Role.STAFF)
    login_page = await client.get("/login")
    assert "/mot-de-passe-oublie" in await login_page.text()
    known = await _forgot(client, nurse.email.upper())
    unknown = await _forgot(client, "personne@example.fr")
    assert known.status == unknown.status == 200
    assert await known.text() == await unknown.text()
    assert await _count(db, Notification) == 1
    path = await _link_of(db, nurse.email)
    assert (await _choose(client, path, GOOD)).status == 303
    client.session.cookie_jar.clear()

    for _ in range(account_links.FORGOT_MAX_PER_ADDRESS - 2):
        assert (await _forgot(client, "personne@example.fr")).status == 200
    before = await _state(db)
    throttled = await _forgot(client, nurse.email)
    assert throttled.status == 429 and "Retry-After" in throttled.headers
    assert await _state(db) == before
    clock.advance(account_links.FORGOT_WINDOW + timedelta(seconds=1))
    assert (await _forgot(client, nurse.email)).status == 200
    assert await _count(db, Notification) == 2


async def test_forgot_password_sends_nothing_to_a_disabled_account(
    client: TestClient, db: Database
) -> None:
    await _admin(client, db)
    nurse = await make_user(db, Role.STAFF)
    csrf = await page_csrf(client, f"/admin/comptes/{nurse.id}")
    await client.post(f"/admin/comptes/{nurse.id}/desactiver", data={"csrf_token": csrf})
    client.session.cookie_jar.clear()
    assert (await _forgot(client, nurse.email)).status == 200
    assert await _count(db, Notification) == 0


async def test_change_own_password(client: TestClient, db: Database) -> None:
    user = await make_user(db, Role.SPECIALIST)
    other = await _session_of(client, user.email)
    await _login(client, user.email)
    page = await client.get("/mon-compte")
    assert page.status == 200
    home = await client.get("/")
    assert "/mon-compte" in await home.text()
    csrf = csrf_from(await page.text())

    async def change(current: str, new: str, confirm: str | None = None) -> Any:
        data = {
            "csrf_token": csrf,
            "current_password": current,
            "password": new,
            "confirm": new if confirm is None else confirm,
        }
        return await client.post("/mon-compte", data=data, allow_redirects=False)

    before = await _state(db)
    wrong = await change("pas le bon mot de passe", GOOD)
    assert wrong.status == 422 and 'id="current_password-erreur"' in await wrong.text()
    common = await change(PASSWORD, "motdepasse123")
    assert common.status == 422 and 'id="password-erreur"' in await common.text()
    assert await _state(db) == before
    done = await change(PASSWORD, GOOD)
    assert done.status == 303
    assert (await client.get("/api/me")).status == 200  # this session stays
    assert (await _as(client, other)).status == 401  # the others are closed
    assert (await _login(client, user.email)).status == 401
    assert (await _login(client, user.email, GOOD)).status == 303
    async with db.read() as session:
        events = list(await session.scalars(select(AuditEvent.detail)))
    assert not any(GOOD in str(e) or PASSWORD in str(e) for e in events)


def test_the_common_list_is_shipped_and_used() -> None:
    common = account_links.common_passwords()
    assert len(common) >= 1000
    assert {"azertyuiop123", "motdepasse123", "123456789012"} <= common
    for weak in ("AZERTYUIOP123", "123456789012", "Motdepasse2026"):
        try:
            account_links.check_new_password(weak, weak)
        except account_links.ValidationError as exc:
            assert exc.field == "password"
        else:
            raise AssertionError(weak)
    account_links.check_new_password(GOOD, GOOD)


async def test_admin_invites_a_nurse_who_sets_her_password_in_chromium(
    site: TestClient, db: Database, browser: Any
) -> None:
    admin = await make_user(db, Role.ADMIN)
    facility = await make_facility(db, name="EHPAD Les Tilleuls")
    base = str(site.make_url("/")).rstrip("/")
    page = await signed_in(browser, base, admin.email)
    await page.click("a:has-text('Administration')")
    await page.click("a:has-text('Gérer les comptes')")
    await page.fill("#email", "claire.petit@tilleuls.example.fr")
    await page.fill("#full_name", "Claire Petit")
    await page.select_option("#role", "staff")
    await page.select_option("#facility", facility.finess)
    await page.click("button:has-text('Envoyer l\\'invitation')")
    await page.wait_for_url(base + "/admin/comptes?ok=invitation")
    assert "Invitation envoyée" in await page.inner_text("main")

    path = await _link_of(db, "claire.petit@tilleuls.example.fr")
    nurse = await (await browser.new_context()).new_page()
    await nurse.goto(base + path)
    assert "Choisir votre mot de passe" in await nurse.inner_text("h1")
    await nurse.fill("#password", "123456789012")
    await nurse.fill("#confirm", "123456789012")
    await nurse.click("button[type=submit]")
    assert "trop courant" in await nurse.inner_text("#password-erreur")
    await nurse.fill("#password", GOOD)
    await nurse.fill("#confirm", GOOD)
    await nurse.click("button[type=submit]")
    await nurse.wait_for_url(base + "/")
    assert "Claire Petit" in await nurse.inner_text(".who")
    assert "Mon compte" in await nurse.inner_text("nav")

    # Later she forgets it: « Mot de passe oublié ? », the mailed link, a new password.
    await nurse.click(".logout button")
    await nurse.goto(base + "/login")
    await nurse.click("a:has-text('Mot de passe oublié ?')")
    await nurse.fill("input[name=email]", "claire.petit@tilleuls.example.fr")
    await nurse.click("form[action='/mot-de-passe-oublie'] button[type=submit]")
    reset = await _link_of(db, "claire.petit@tilleuls.example.fr")
    assert reset != path
    await nurse.goto(base + reset)
    renewed = "Une souris verte qui courait dans l'herbe"
    await nurse.fill("#password", renewed)
    await nurse.fill("#confirm", renewed)
    await nurse.click("button[type=submit]")
    await nurse.wait_for_url(base + "/")
    assert "Claire Petit" in await nurse.inner_text(".who")
    await nurse.goto(base + reset)  # a link works once
    await poll(nurse, "document.body.innerText.includes('plus valable')")
    assert "#" not in nurse.url  # the token left the address bar
    assert "Choisir votre mot de passe" not in await nurse.inner_text("main")
