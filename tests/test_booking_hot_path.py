"""The booking hot path (issue 16): how many statements a booking costs, and that the fast
path keeps what the slow one guaranteed (audit naming the resident, idempotent replays).

Counted with SQLAlchemy's `before_cursor_execute` on the app's own engine: a statement more
is a round trip more on every booking, so the number is asserted, not just measured."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import event, func, select

from scheduling.clock import FrozenClock
from telmi import accounts
from telmi.db import Database
from telmi.keys import DB
from telmi.models import ApiToken, AuditEvent, Booking, BookingStatus, Role

from .factories import bearer, make_facility, make_resident, make_slot, make_specialty, make_user


@pytest.fixture
async def world(db: Database, clock: FrozenClock) -> dict[str, Any]:
    facility = await make_facility(db, name="EHPAD A")
    staff = await make_user(db, Role.STAFF, facility=facility)
    # Dermatology ships a built-in form: its first booking saves it, the others read it.
    dermatology = await make_specialty(db, "dermatologie")
    specialist = await make_user(db, Role.SPECIALIST, specialty=dermatology)
    tomorrow = clock.now().replace(hour=8, minute=0, second=0) + timedelta(days=1)
    slots = [
        await make_slot(db, specialist, tomorrow + timedelta(minutes=30 * i)) for i in range(4)
    ]
    return {
        "staff": staff,
        "slots": slots,
        "headers": await bearer(db, staff),
        "resident": (await make_resident(db, staff, reference="RES-0042")).id,
    }


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    """The statements the app's engine sends meanwhile, BEGIN and COMMIT included.

    Through SQLAlchemy: its `before_cursor_execute` (on SQLite our "begin" hook sends BEGIN
    that way). On PostgreSQL, the hot path's own
    statements go to asyncpg directly (`db.Prepared`), and asyncpg runs BEGIN and COMMIT as
    plain queries: its query logger, on every connection checked out meanwhile, sees those."""
    seen: list[str] = []

    def on_execute(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    def on_query(query: Any) -> None:
        seen.append(query.query)

    def on_checkout(_dbapi: Any, record: Any, _proxy: Any) -> None:
        record.driver_connection.add_query_logger(on_query)

    def on_checkin(_dbapi: Any, record: Any) -> None:
        if record.driver_connection is not None:
            record.driver_connection.remove_query_logger(on_query)

    engine = db.engine.sync_engine
    hooks: list[tuple[Any, str, Any]] = [(engine, "before_cursor_execute", on_execute)]
    if db.dialect == "postgresql":
        hooks += [(engine.pool, "checkout", on_checkout), (engine.pool, "checkin", on_checkin)]
    for target, name, hook in hooks:
        event.listen(target, name, hook)
    try:
        yield seen
    finally:
        for target, name, hook in hooks:
            event.remove(target, name, hook)


async def _post(client: TestClient, world: dict[str, Any], slot: int, key: str) -> Any:
    body = {"slot_id": slot, "patient_id": world["resident"], "act_type": "teleconsultation"}
    return await client.post(
        "/api/bookings", json=body, headers={**world["headers"], "Idempotency-Key": key}
    )


async def test_a_booking_costs_two_statements_on_postgresql_and_no_transaction(
    client: TestClient, world: dict[str, Any]
) -> None:
    app_db = client.app[DB]
    first = await _post(client, world, world["slots"][0].id, str(uuid.uuid4()))
    assert first.status == 201, await first.text()  # saved the built-in form as version 1
    with statements(app_db) as seen:
        response = await _post(client, world, world["slots"][1].id, str(uuid.uuid4()))
    assert response.status == 201, await response.text()
    if app_db.dialect == "postgresql":
        # The token was read by the first booking (kept a second: `accounts.TOKENS`); the
        # slot, facility, resident, hold and form; then one statement inserting the booking,
        # its audit event and the key with the response.
        assert len(seen) == 2, seen
        assert not any(s.lstrip().upper().startswith(("BEGIN", "COMMIT")) for s in seen)
        assert "INSERT INTO bookings" in seen[1] and "INSERT INTO audit_events" in seen[1]
        assert "INSERT INTO idempotency_keys" in seen[1]
    else:
        # SQLite (in-process round trips): one write transaction of the read, the booking,
        # the audit event and the key.
        assert [s.split()[0] for s in seen] == [
            "BEGIN", "SELECT", "INSERT", "INSERT", "INSERT",
        ], seen  # fmt: skip


async def test_a_cancellation_costs_two_statements_on_postgresql_and_is_audited_once(
    client: TestClient, db: Database, world: dict[str, Any]
) -> None:
    made = await (await _post(client, world, world["slots"][0].id, str(uuid.uuid4()))).json()
    url, body = f"/api/bookings/{made['id']}/cancel", {"reason": "Résident hospitalisé"}
    with statements(client.app[DB]) as seen:
        response = await client.post(url, json=body, headers=world["headers"])
    assert response.status == 200, await response.text()
    assert (await response.json())["status"] == "cancelled"
    if db.dialect == "postgresql":
        # The booking (the token kept since the booking was made); then the update and its
        # audit event as one statement.
        assert len(seen) == 2, seen
        assert not any(s.lstrip().upper().startswith(("BEGIN", "COMMIT")) for s in seen)
        assert "UPDATE bookings" in seen[1] and "INSERT INTO audit_events" in seen[1]
    again = await client.post(url, json=body, headers=world["headers"])
    assert again.status == 409 and (await again.json())["error"]["code"] == "booking_not_active"
    async with db.read() as session:
        events = list(
            await session.scalars(
                select(AuditEvent).where(AuditEvent.action == "booking.cancelled")
            )
        )
        booking = await session.get(Booking, made["id"])
    assert [(e.target_type, e.target_id, e.actor_id) for e in events] == [
        ("booking", str(made["id"]), world["staff"].id)
    ]
    assert booking is not None and booking.cancel_reason == "Résident hospitalisé"
    assert booking.cancelled_by_id == world["staff"].id


async def test_the_fast_path_audits_the_booking_naming_the_resident_and_replays_it(
    client: TestClient, db: Database, world: dict[str, Any]
) -> None:
    response = await _post(client, world, world["slots"][0].id, "hot-1")
    assert response.status == 201
    made = await response.json()
    assert made["patient_ref"] == "RES-0042" and made["answers"] == {}
    replay = await _post(client, world, world["slots"][0].id, "hot-1")
    assert replay.status == 201 and await replay.json() == made
    other = await _post(client, world, world["slots"][1].id, "hot-1")
    assert other.status == 422
    async with db.read() as session:
        events = list(
            await session.scalars(select(AuditEvent).where(AuditEvent.action == "booking.created"))
        )
        count = await session.scalar(select(func.count()).select_from(Booking))
    assert count == 1
    assert [(e.target_id, e.patient_id, e.actor_id) for e in events] == [
        (str(made["id"]), world["resident"], world["staff"].id)
    ]


async def test_a_retry_after_a_cancellation_replays_instead_of_booking_again(
    client: TestClient, db: Database, world: dict[str, Any]
) -> None:
    """The slot is free again, so only the key's unique index stops the retry: the whole
    statement fails, nothing is written, and the first response is replayed."""
    first = await (await _post(client, world, world["slots"][0].id, "retry")).json()
    cancelled = await client.post(
        f"/api/bookings/{first['id']}/cancel", json={"reason": "Erreur"}, headers=world["headers"]
    )
    assert cancelled.status == 200, await cancelled.text()
    retry = await _post(client, world, world["slots"][0].id, "retry")
    assert retry.status == 201 and await retry.json() == first
    async with db.read() as session:
        statuses = list(await session.scalars(select(Booking.status)))
        created = await session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == "booking.created")
        )
    assert statuses == [BookingStatus.CANCELLED] and created == 1


async def test_a_revoked_token_or_a_disabled_user_is_refused_on_the_next_request(
    client: TestClient, db: Database, world: dict[str, Any], clock: FrozenClock
) -> None:
    assert (await _post(client, world, world["slots"][0].id, "a")).status == 201
    async with db.write() as session:
        token = await session.scalar(select(ApiToken).where(ApiToken.user_id == world["staff"].id))
        assert token is not None
        token.revoked_at = clock.now()
    refused = await _post(client, world, world["slots"][1].id, "b")
    assert refused.status == 401 and (await refused.json())["error"]["code"] == "invalid_token"

    headers = await bearer(db, world["staff"])
    world = {**world, "headers": headers}
    assert (await _post(client, world, world["slots"][1].id, "c")).status == 201
    async with db.write() as session:
        staff = await session.get(type(world["staff"]), world["staff"].id)
        assert staff is not None
        staff.is_active = False
    assert (await _post(client, world, world["slots"][2].id, "d")).status == 401
    async with db.read() as session:
        raw = headers["Authorization"].removeprefix("Bearer ")
        assert await accounts.resolve_token(session, raw, now=clock.now()) is None
