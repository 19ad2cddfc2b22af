"""A token is read once, then trusted for a second in the process (`accounts.TOKENS`):
what that second may and may not let through.

The cache's clock is the `token_cache` fixture's, which stands still until a test moves it;
the requests' instant is the suite's frozen clock (factories.NOW)."""

from __future__ import annotations

from datetime import timedelta

from aiohttp.test_utils import TestClient
from sqlalchemy import update

from scheduling.clock import FrozenClock
from telmi import accounts
from telmi.context import Context
from telmi.db import Database
from telmi.models import ApiToken, Role, User

from .factories import make_user


async def _token(db: Database, user: User, clock: FrozenClock) -> tuple[ApiToken, str]:
    async with db.write() as session:
        return await accounts.create_token(
            session, Context(user, clock.now()), accounts.NewToken(name="logiciel de soins")
        )


async def _me(client: TestClient, raw: str) -> int:
    response = await client.get("/api/me", headers={"Authorization": f"Bearer {raw}"})
    return response.status


async def test_a_token_revoked_by_another_process_is_refused_within_a_second(
    client: TestClient, db: Database, clock: FrozenClock, token_cache: accounts.TokenCache
) -> None:
    token, raw = await _token(db, await make_user(db, Role.STAFF), clock)
    assert await _me(client, raw) == 200
    # As the CLI or another server would: a plain statement, nothing this process hears of.
    async with db.connection() as conn, conn.begin():
        await conn.execute(
            update(ApiToken).where(ApiToken.id == token.id).values(revoked_at=clock.now())
        )
    token_cache.monotonic.value += 0.9  # type: ignore[attr-defined]
    assert await _me(client, raw) == 200  # still within the second it is trusted for
    token_cache.monotonic.value += 0.1  # type: ignore[attr-defined]
    assert await _me(client, raw) == 401
    assert await _me(client, raw) == 401  # a refusal is not kept as a pass either


async def test_a_token_revoked_or_a_user_disabled_in_this_process_is_refused_at_once(
    client: TestClient, db: Database, clock: FrozenClock
) -> None:
    user = await make_user(db, Role.STAFF)
    token, raw = await _token(db, user, clock)
    assert await _me(client, raw) == 200
    async with db.write() as session:
        await accounts.revoke_token(session, Context(user, clock.now()), token.id)
    assert await _me(client, raw) == 401

    _, other = await _token(db, user, clock)
    assert await _me(client, other) == 200
    async with db.write() as session:
        found = await session.get(User, user.id)
        assert found is not None
        await accounts.disable_user(session, found, now=clock.now())
    assert await _me(client, other) == 401


async def test_a_kept_token_that_expires_is_refused_at_its_expiry(
    client: TestClient, db: Database, clock: FrozenClock
) -> None:
    token, raw = await _token(db, await make_user(db, Role.REGIONAL), clock)
    async with db.write() as session:
        found = await session.get(ApiToken, token.id)
        assert found is not None
        found.expires_at = clock.now() + timedelta(minutes=10)
    assert await _me(client, raw) == 200
    clock.advance(timedelta(minutes=10))  # the cache's own clock has not moved
    assert await _me(client, raw) == 401


async def test_a_read_begun_before_a_change_is_not_kept(clock: FrozenClock) -> None:
    cache = accounts.TokenCache(monotonic=lambda: 0.0)
    user = {"id": 1, "is_active": True}
    began = cache.generation
    cache.forget()  # a commit changed an account while the token was being read
    cache.keep("hash", None, user, began)
    assert cache.user("hash", clock.now()) is None
    cache.keep("hash", None, user, cache.generation)
    assert cache.user("hash", clock.now()) is not None


async def test_each_request_gets_its_own_user_object(clock: FrozenClock) -> None:
    cache = accounts.TokenCache(monotonic=lambda: 0.0)
    cache.keep("hash", None, {"id": 7, "is_active": True, "full_name": "A"}, cache.generation)
    first, second = cache.user("hash", clock.now()), cache.user("hash", clock.now())
    assert first is not None and second is not None and first is not second
    first.full_name = "changed by a handler"
    assert second.full_name == "A"
