"""Login, sessions, throttling, CSRF, roles and API tokens over a real socket."""

from __future__ import annotations

from datetime import timedelta

from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from scheduling.clock import FrozenClock
from telmi import accounts
from telmi.accounts import NewToken
from telmi.app import create_app
from telmi.context import Context
from telmi.db import Database
from telmi.models import AuditEvent, LoginAttempt, Role, WebSession
from telmi.settings import Settings
from telmi.web.csrf import PRE_SESSION_COOKIE
from telmi.web.middlewares import SESSION_COOKIE

from .factories import PASSWORD, csrf_from, login, make_user, page_csrf


async def _count(db: Database, model: type, *where: object) -> int:
    async with db.read() as session:
        return await session.scalar(select(func.count()).select_from(model).where(*where)) or 0


async def test_login_with_right_password_opens_a_session(client: TestClient, db: Database) -> None:
    user = await make_user(db, Role.STAFF)
    response = await login(client, user.email, next_path="/api/me")
    assert response.status == 303
    assert response.headers["Location"] == "/api/me"
    cookie = response.cookies[SESSION_COOKIE]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert not cookie["secure"]  # plain http in tests; see the https test below
    me = await client.get("/api/me")
    assert me.status == 200
    assert (await me.json())["email"] == user.email
    assert await _count(db, AuditEvent, AuditEvent.action == "login") == 1


async def test_wrong_password_fails_and_opens_nothing(client: TestClient, db: Database) -> None:
    user = await make_user(db)
    response = await login(client, user.email, "not the password")
    assert response.status == 401
    assert "Adresse e-mail ou mot de passe incorrect" in await response.text()
    assert SESSION_COOKIE not in response.cookies
    assert await _count(db, WebSession) == 0
    assert await _count(db, LoginAttempt, LoginAttempt.succeeded.is_(False)) == 1
    assert (await client.get("/api/me")).status == 401


async def test_unknown_user_gets_the_same_answer_as_a_wrong_password(
    client: TestClient, db: Database
) -> None:
    response = await login(client, "nobody@example.fr", PASSWORD)
    assert response.status == 401
    assert "Adresse e-mail ou mot de passe incorrect" in await response.text()
    assert await _count(db, WebSession) == 0


async def test_login_issues_a_new_session_id_and_revokes_the_old(
    client: TestClient, db: Database
) -> None:
    user = await make_user(db)
    first = (await login(client, user.email)).cookies[SESSION_COOKIE].value
    second = (await login(client, user.email)).cookies[SESSION_COOKIE].value
    assert first != second
    async with db.read() as session:
        old = await session.get(WebSession, accounts.sha256(first))
    assert old is not None and old.revoked_at is not None
    assert (await client.get("/api/me")).status == 200


async def test_logout_revokes_the_session(client: TestClient, db: Database) -> None:
    user = await make_user(db)
    await login(client, user.email)
    cookie = client.session.cookie_jar.filter_cookies(client.make_url("/"))[SESSION_COOKIE].value
    token = await page_csrf(client)
    response = await client.post("/logout", data={"csrf_token": token}, allow_redirects=False)
    assert response.status == 303
    # Replaying the old cookie after logout opens nothing.
    replay = await client.get("/api/me", cookies={SESSION_COOKIE: cookie})
    assert replay.status == 401


async def test_idle_session_expires(client: TestClient, db: Database, clock: FrozenClock) -> None:
    user = await make_user(db)
    await login(client, user.email)
    clock.advance(timedelta(minutes=59))
    assert (await client.get("/api/me")).status == 200  # use renews the idle timer
    clock.advance(timedelta(minutes=59))
    assert (await client.get("/api/me")).status == 200
    clock.advance(timedelta(minutes=61))
    assert (await client.get("/api/me")).status == 401
    page = await client.get("/", allow_redirects=False)
    assert page.status == 303 and page.headers["Location"].startswith("/login")


async def test_session_expires_after_its_absolute_lifetime_even_if_used(
    client: TestClient, db: Database, clock: FrozenClock
) -> None:
    user = await make_user(db)
    await login(client, user.email)
    for _ in range(23):  # 11.5 hours of activity every 30 minutes
        clock.advance(timedelta(minutes=30))
        assert (await client.get("/api/me")).status == 200
    clock.advance(timedelta(minutes=31))
    assert (await client.get("/api/me")).status == 401


async def test_disabling_a_user_ends_their_sessions_and_tokens(
    client: TestClient, db: Database, clock: FrozenClock
) -> None:
    user = await make_user(db)
    await login(client, user.email)
    async with db.write() as session:
        _, raw = await accounts.create_token(session, Context(user, clock.now()), NewToken())
        await accounts.disable_user(
            session, await accounts.get_user(session, user.id), now=clock.now()
        )
    assert (await client.get("/api/me")).status == 401
    bearer = await client.get("/api/me", headers={"Authorization": f"Bearer {raw}"})
    assert bearer.status == 401
    assert (await login(client, user.email)).status == 401


async def test_account_throttling_refuses_even_the_right_password(
    client: TestClient, db: Database, clock: FrozenClock
) -> None:
    user = await make_user(db)
    for _ in range(5):
        assert (await login(client, user.email, "wrong password!")).status == 401
    refused = await login(client, user.email, PASSWORD)
    assert refused.status == 429
    assert int(refused.headers["Retry-After"]) > 0
    assert "Trop de tentatives" in await refused.text()
    assert await _count(db, WebSession) == 0
    clock.advance(timedelta(minutes=16))
    assert (await login(client, user.email, PASSWORD)).status == 303


async def test_address_throttling_spans_accounts(
    aiohttp_client: object, settings: Settings, clock: FrozenClock, db: Database
) -> None:
    client = await aiohttp_client(  # type: ignore[operator]
        create_app(settings.replace(login_max_failures_address=3), clock=clock)
    )
    victim = await make_user(db)
    for n in range(3):
        assert (await login(client, f"guess{n}@example.fr", "whatever-guess")).status == 401
    assert (await login(client, victim.email, PASSWORD)).status == 429


async def test_form_post_without_csrf_token_is_refused(client: TestClient, db: Database) -> None:
    user = await make_user(db)
    await client.get("/login")
    response = await client.post("/login", data={"email": user.email, "password": PASSWORD})
    assert response.status == 403
    assert "Jeton de sécurité" in await response.text()
    assert await _count(db, LoginAttempt) == 0

    await login(client, user.email)
    logout = await client.post("/logout", data={}, allow_redirects=False)
    assert logout.status == 403
    assert (await client.get("/api/me")).status == 200


async def test_csrf_token_of_another_session_is_refused(client: TestClient, db: Database) -> None:
    user = await make_user(db)
    await login(client, user.email)
    stale = await page_csrf(client)
    await login(client, user.email)  # a new session, so a new token
    response = await client.post("/logout", data={"csrf_token": stale}, allow_redirects=False)
    assert response.status == 403


async def test_api_post_with_cookie_needs_the_csrf_header(client: TestClient, db: Database) -> None:
    user = await make_user(db)
    await login(client, user.email)
    refused = await client.post("/api/tokens", json={"name": "script"})
    assert refused.status == 403
    assert (await refused.json())["error"]["code"] == "csrf_failed"
    token = await page_csrf(client)
    created = await client.post(
        "/api/tokens", json={"name": "script"}, headers={"X-CSRF-Token": token}
    )
    assert created.status == 201


async def test_staff_cannot_reach_the_admin_page(client: TestClient, db: Database) -> None:
    staff = await make_user(db, Role.STAFF)
    await login(client, staff.email)
    response = await client.get("/admin")
    assert response.status == 403
    html = await response.text()
    assert "Accès refusé" in html and 'lang="fr"' in html


async def test_admin_reaches_the_admin_page(client: TestClient, db: Database) -> None:
    admin = await make_user(db, Role.ADMIN)
    staff = await make_user(db, Role.STAFF)
    await login(client, admin.email)
    response = await client.get("/admin")
    assert response.status == 200
    assert staff.email in await response.text()


async def test_anonymous_visitor_is_sent_to_login(client: TestClient) -> None:
    response = await client.get("/admin", allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == "/login?next=/admin"


async def test_login_never_redirects_off_site(client: TestClient, db: Database) -> None:
    user = await make_user(db)
    response = await login(client, user.email, next_path="//evil.example/")
    assert response.status == 303
    assert response.headers["Location"] == "/"


async def test_bearer_token_works_and_a_revoked_one_does_not(
    client: TestClient, db: Database, clock: FrozenClock
) -> None:
    user = await make_user(db, Role.REGIONAL)
    async with db.write() as session:
        token, raw = await accounts.create_token(
            session, Context(user, clock.now()), NewToken(name="export")
        )
    headers = {"Authorization": f"Bearer {raw}"}
    me = await client.get("/api/me", headers=headers)
    assert me.status == 200 and (await me.json())["role"] == "regional"
    # Bearer calls carry no ambient authority, so they need no CSRF token.
    created = await client.post("/api/tokens", json={"name": "other"}, headers=headers)
    assert created.status == 201

    revoked = await client.delete(f"/api/tokens/{token.id}", headers=headers)
    assert revoked.status == 200 and (await revoked.json())["revoked"] is True
    refused = await client.get("/api/me", headers=headers)
    assert refused.status == 401
    assert (await refused.json())["error"]["code"] == "invalid_token"


async def test_tokens_are_stored_hashed(db: Database, clock: FrozenClock) -> None:
    user = await make_user(db)
    async with db.write() as session:
        token, raw = await accounts.create_token(session, Context(user, clock.now()), NewToken())
    assert raw not in token.token_hash and token.token_hash == accounts.sha256(raw)


async def test_malformed_authorization_header_is_refused(client: TestClient) -> None:
    for value in ("Basic abc", "Bearer", "Bearer    "):
        response = await client.get("/api/me", headers={"Authorization": value})
        assert response.status == 401
        assert (await response.json())["error"]["code"] == "unauthenticated"


async def test_user_cannot_revoke_someone_elses_token(
    client: TestClient, db: Database, clock: FrozenClock
) -> None:
    owner, other = await make_user(db), await make_user(db)
    async with db.write() as session:
        token, raw = await accounts.create_token(session, Context(owner, clock.now()), NewToken())
        _, other_raw = await accounts.create_token(session, Context(other, clock.now()), NewToken())
    response = await client.delete(
        f"/api/tokens/{token.id}", headers={"Authorization": f"Bearer {other_raw}"}
    )
    assert response.status == 404
    assert (await client.get("/api/me", headers={"Authorization": f"Bearer {raw}"})).status == 200


async def test_https_public_url_makes_cookies_secure(
    aiohttp_client: object, settings: Settings, clock: FrozenClock, db: Database
) -> None:
    client = await aiohttp_client(  # type: ignore[operator]
        create_app(settings.replace(public_url="https://telmi.example.fr"), clock=clock)
    )
    user = await make_user(db)
    page = await client.get("/login")
    token = csrf_from(await page.text())
    pre = page.cookies[PRE_SESSION_COOKIE]
    assert pre["secure"] is True
    response = await client.post(  # the client won't send a Secure cookie over http by itself
        "/login",
        data={"email": user.email, "password": PASSWORD, "csrf_token": token},
        cookies={PRE_SESSION_COOKIE: pre.value},
        allow_redirects=False,
    )
    assert response.cookies[SESSION_COOKIE]["secure"] is True
    assert "Strict-Transport-Security" in response.headers
