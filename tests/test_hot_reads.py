"""The reads every request of a region makes: the free-slot search finds exactly the slots
without an active booking, in statements built once with a fixed text per filter set, that
probe the partial unique index of active bookings instead of scanning them; and the check of
a handler's answer against its declared response model, done on plain dicts, accepts and
refuses what the model itself does, every endpoint's."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pydantic
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pydantic import BaseModel
from sqlalchemy import event, insert, select

from telmi import booking
from telmi.db import Database
from telmi.keys import SETTINGS
from telmi.models import ActType, Booking, BookingStatus, Slot
from telmi.paging import Key
from telmi.settings import Settings
from telmi.web.api import openapi, spec
from telmi.web.api.bookings import BookingOut, SlotPage

from .factories import NOW
from .test_booking_lists import _booking, _history

# --- search ------------------------------------------------------------------------------------


async def _with_odd_bookings(db: Database) -> list[int]:
    """A history, then on four of its free slots: a live hold, a hold whose time is up but
    not yet marked expired, a cancelled booking and a completed one."""
    history = await _history(db, 200, others=50, free=12)
    async with db.read() as session:
        free = list(
            (
                await session.execute(
                    select(Slot.id, Slot.specialist_id, Slot.specialty_id, Slot.starts_at,
                           Slot.ends_at)
                    .where(~select(Booking.id).where(Booking.slot_id == Slot.id).exists())
                    .order_by(Slot.starts_at.desc(), Slot.id)
                    .limit(4)
                )
            ).all()
        )  # fmt: skip
    statuses = [
        (BookingStatus.HELD, NOW + timedelta(minutes=5)),
        (BookingStatus.HELD, NOW - timedelta(minutes=1)),
        (BookingStatus.CANCELLED, None),
        (BookingStatus.COMPLETED, None),
    ]
    rows = []
    for (slot_id, specialist_id, _, starts_at, ends_at), (status, expires) in zip(
        free, statuses, strict=True
    ):
        slot = {"specialist_id": specialist_id, "starts_at": starts_at, "ends_at": ends_at}
        row = _booking(slot, slot_id, history.facility_id, history.staff.id, 1, status)
        rows.append(row | {"status": status, "hold_expires_at": expires, "patient_id": None})
    async with db.write() as session:
        await session.execute(insert(Booking), rows)
    return [slot[0] for slot in free]


async def _expected_free(db: Database, now: datetime) -> list[int]:
    """The oracle, in Python: open slots from now on whose bookings are all inactive."""
    async with db.read() as session:
        slots = (
            await session.execute(
                select(Slot.id, Slot.starts_at).where(Slot.starts_at >= now, Slot.status == "open")
            )
        ).all()
        bookings = (
            await session.execute(select(Booking.slot_id, Booking.status, Booking.hold_expires_at))
        ).all()
    taken = {
        slot_id
        for slot_id, status, expires in bookings
        if status in (BookingStatus.CONFIRMED, BookingStatus.COMPLETED)
        or (status is BookingStatus.HELD and expires > now)
    }
    return [i for _, i in sorted((at, i) for i, at in slots if i not in taken)]


async def _walk(db: Database, limit: int, **criteria: Any) -> list[int]:
    seen: list[int] = []
    after: Key | None = None
    while True:
        async with db.connection() as session:
            page = await booking.search_free_slots(
                session, start=NOW, now=NOW, after=after, limit=limit, **criteria
            )
        seen += [s.id for s in page.items]
        if page.next_key is None:
            return seen
        after = page.next_key


async def test_search_finds_exactly_the_slots_without_an_active_booking(db: Database) -> None:
    live_hold, time_up, cancelled, completed = await _with_odd_bookings(db)
    expected = await _expected_free(db, NOW)
    assert len(expected) >= 12 - 2 and {time_up, cancelled} <= set(expected)
    assert not {live_hold, completed} & set(expected)
    plain = {"specialty": None, "end": None}
    assert await _walk(db, 5, **plain) == expected
    assert await _walk(db, 3, specialty="dermatologie", end=None) == expected
    assert await _walk(db, 4, **plain, act_type=ActType.TELECONSULTATION) == expected
    assert await _walk(db, 4, **plain, act_type=ActType.TELEEXPERTISE) == []
    assert await _walk(db, 4, **plain, departement="25") == []
    async with db.read() as session:
        fourth = await session.scalar(select(Slot.starts_at).where(Slot.id == expected[4]))
    assert await _walk(db, 2, specialty=None, end=fourth) == expected[:4]


def _capture(db: Database, into: list[tuple[str, Any]]) -> Any:
    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "FROM slots JOIN users" in statement:
            into.append((statement, parameters))

    event.listen(db.engine.sync_engine, "before_cursor_execute", capture)
    return lambda: event.remove(db.engine.sync_engine, "before_cursor_execute", capture)


SHAPES: list[dict[str, Any]] = [
    {"specialty": None, "end": None},
    {"specialty": "dermatologie", "end": None},
    {"specialty": None, "end": NOW + timedelta(days=400), "departement": "25"},
    {"specialty": "dermatologie", "end": None, "act_type": ActType.TELECONSULTATION},
]


async def _search_statements(db: Database) -> list[tuple[str, Any]]:
    """Each shape's statement, on a first page and on a later one (after a key)."""
    statements: list[tuple[str, Any]] = []
    stop = _capture(db, statements)
    try:
        for criteria in SHAPES:
            for after in (None, (NOW + timedelta(days=30), 1)):
                async with db.read() as session:  # through SQLAlchemy, where events see it
                    await booking.search_free_slots(
                        session, start=NOW, now=NOW, after=after, limit=5, **criteria
                    )
    finally:
        stop()
    assert len(statements) == 2 * len(SHAPES)
    return statements


async def test_a_search_shape_has_one_statement_text_whatever_its_values(db: Database) -> None:
    """Values are bound, never written in the SQL: one compiled statement (and on
    PostgreSQL one prepared statement) per set of filters."""
    await _with_odd_bookings(db)
    texts: list[tuple[str, Any]] = []
    stop = _capture(db, texts)
    try:
        for specialty, limit, now in (("dermatologie", 5, NOW), ("dermatologie", 50, NOW + SLOT_)):
            async with db.read() as session:  # through SQLAlchemy, where events see it
                await booking.search_free_slots(
                    session, specialty=specialty, start=now, end=None, now=now, limit=limit
                )
    finally:
        stop()
    [(first, one), (second, other)] = texts
    assert first == second and one != other
    assert "dermatologie" not in first and "51" not in first


SLOT_ = timedelta(minutes=30)


def _sqlite_plan_steps(rows: Any) -> list[str]:
    return [row[3] for row in rows]


async def test_on_sqlite_the_search_probes_the_active_bookings_index(
    sqlite_db: Database,
) -> None:
    await _with_odd_bookings(sqlite_db)
    async with sqlite_db.engine.connect() as conn:
        for statement, parameters in await _search_statements(sqlite_db):
            plan = _sqlite_plan_steps(
                await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
            )
            on_bookings = [step for step in plan if re.search(r"\bbookings\b", step)]
            assert on_bookings, plan
            for step in on_bookings:
                assert "USING INDEX uq_bookings_active_slot (slot_id=?)" in step, plan
            [on_slots] = [step for step in plan if re.search(r"\bslots\b", step)]
            assert "USING INDEX ix_slots_open_" in on_slots, plan


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan, *[n for p in plan.get("Plans", []) for n in _nodes(p)]]


async def test_on_postgresql_the_search_can_probe_the_active_bookings_index(
    pg_db: Database,
) -> None:
    """With sequential scans priced out, a partial index the query's WHERE does not imply
    would still be left aside: the plan naming it shows the predicate matches."""
    await _with_odd_bookings(pg_db)
    async with pg_db.engine.connect() as conn:
        await conn.exec_driver_sql("SET enable_seqscan = off")
        for statement, parameters in await _search_statements(pg_db):
            raw = await conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, parameters)
            document = raw.scalar_one()
            plan = (json.loads(document) if isinstance(document, str) else document)[0]["Plan"]
            nodes = _nodes(plan)
            on_bookings = [
                n for n in nodes if "bookings" in (n.get("Relation Name"), n.get("Alias"))
            ]
            assert on_bookings, nodes
            for node in on_bookings:  # an index scan, or a bitmap heap scan over one
                assert node["Node Type"] in ("Index Scan", "Index Only Scan", "Bitmap Heap Scan")
            used = {n.get("Index Name") for n in nodes if "bookings" in str(n.get("Index Name"))}
            assert used == {"uq_bookings_active_slot"}, nodes
            assert not [n for n in nodes if n["Node Type"] == "Seq Scan"], nodes


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


async def test_on_postgresql_the_booking_read_probes_the_holds_index_even_as_a_generic_plan(
    pg_db: Database,
) -> None:
    """A prepared statement run more than five times may get a generic plan, made without
    its values: the hold the booking's read looks for must still be a probe of the partial
    index (with `status` as a parameter, that plan scanned `bookings`: 4.6 ms a booking)."""
    await _with_odd_bookings(pg_db)
    async with pg_db.connection() as conn:
        sql, args = booking._BOOK_TARGET._bound(
            conn,
            {"slot_id": 1, "facility_id": 1, "patient_id": 1, "act_type": ActType.TELECONSULTATION},
        )
        raw: Any = (await conn.get_raw_connection()).driver_connection
        async with raw.transaction():
            await raw.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            await raw.execute("SET LOCAL enable_seqscan = off")
            await raw.execute(f"PREPARE booking_read AS {sql}")
            values = ", ".join(_literal(a) for a in args)  # EXECUTE takes no parameters
            document = await raw.fetchval(f"EXPLAIN (FORMAT JSON) EXECUTE booking_read({values})")
            await raw.execute("DEALLOCATE booking_read")
    plan = (json.loads(document) if isinstance(document, str) else document)[0]["Plan"]
    nodes = _nodes(plan)
    on_bookings = [n for n in nodes if n.get("Relation Name") == "bookings"]
    assert [n.get("Index Name") for n in on_bookings] == ["uq_bookings_active_slot"], nodes


# --- the response check ------------------------------------------------------------------------


def _declared() -> list[type[BaseModel]]:
    app = web.Application()
    from telmi.web.routes import setup_routes

    setup_routes(app)
    found = {
        info.response
        for route in openapi._api_routes(app.router)
        if (info := spec.endpoint_of(route.handler)) is not None and info.response is not None
    }
    return sorted(found, key=lambda m: m.__name__)  # type: ignore[arg-type]


def _shape(schema: Any) -> Any:
    """A JSON schema without what does not constrain a value (titles, descriptions,
    defaults, examples)."""
    if isinstance(schema, dict):
        return {
            k: _shape(v)
            for k, v in schema.items()
            if k not in ("title", "description", "default", "examples")
        }
    if isinstance(schema, list):
        return [_shape(v) for v in schema]
    return schema


@pytest.mark.parametrize("model", _declared(), ids=lambda m: m.__name__)
def test_every_response_check_has_its_models_schema(model: type[BaseModel]) -> None:
    """A model a mirror cannot check alike (validators, aliases) is checked as itself; the
    lists and bookings, the hot answers, are mirrored."""
    checker = spec.response_checker(model)
    if model.__name__ in ("SlotPage", "Bookings", "BookingOut"):
        assert checker.core_schema["type"] != "model", f"{model.__name__} is checked as a model"
    mirrored = _shape(checker.json_schema(mode="validation"))
    modelled = _shape(pydantic.TypeAdapter(model).json_schema(mode="validation"))
    assert mirrored == modelled


SLOT_JSON = {
    "id": 3,
    "starts_at": "2026-12-03T09:00:00+01:00",
    "ends_at": "2026-12-03T09:30:00+01:00",
    "act_types": ["teleconsultation"],
    "specialist": {"id": 7, "name": "Dr Durand", "departement": None},
    "specialty": {"code": "dermatologie", "name": "Dermatologie"},
}
GOOD = {"items": [SLOT_JSON], "next_cursor": None}
BAD = {
    "an extra field": {**GOOD, "total": 1},
    "an extra nested field": {"items": [SLOT_JSON | {"patient": "x"}], "next_cursor": None},
    "a missing field": {"items": [{k: v for k, v in SLOT_JSON.items() if k != "ends_at"}]},
    "a wrong type deep down": {
        "items": [SLOT_JSON | {"specialist": {"id": "sept", "name": "x", "departement": None}}],
        "next_cursor": None,
    },
    "an unknown act type": {"items": [SLOT_JSON | {"act_types": ["magie"]}], "next_cursor": None},
    "not a date-time": {"items": [SLOT_JSON | {"starts_at": "demain"}], "next_cursor": None},
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_the_check_refuses_what_the_model_refuses(case: str) -> None:
    raw = json.dumps(BAD[case]).encode()
    with pytest.raises(pydantic.ValidationError):
        pydantic.TypeAdapter(SlotPage).validate_json(raw)
    with pytest.raises(pydantic.ValidationError):
        spec.response_checker(SlotPage).validate_json(raw)


async def test_a_handler_answer_outside_its_model_is_never_sent(aiohttp_client: Any) -> None:
    answers: dict[str, Any] = {"good": GOOD, **BAD}

    @spec.endpoint("A test", "test", response=SlotPage)
    async def handler(request: web.Request) -> dict[str, Any]:
        return answers[request.query["case"]]  # type: ignore[no-any-return]

    app = web.Application()
    app.router.add_get("/api/test", handler)
    client: TestClient = await aiohttp_client(app)
    good = await client.get("/api/test", params={"case": "good"})
    assert good.status == 200 and good.content_type == "application/json"
    assert good.charset == "utf-8" and await good.json() == GOOD
    for case in BAD:
        refused = await client.get("/api/test", params={"case": case})
        assert refused.status == 500, case
        assert "total" not in await refused.text()


@pytest.mark.parametrize(
    ("settings", "checked"),
    [
        (Settings(), True),  # development: the default of the tests and `make run`
        (replace(Settings(), env="production"), False),
        (replace(Settings(), env="production", check_responses=True), True),
        (replace(Settings(), check_responses=False), False),
    ],
    ids=["development", "production", "production-forced", "development-off"],
)
async def test_answers_are_checked_everywhere_but_in_production(
    aiohttp_client: Any, settings: Settings, checked: bool
) -> None:
    """The check is the tests' and the developers' (every API test runs it); production,
    where it cost a tenth of a list's CPU, sends what the tested handlers give."""

    @spec.endpoint("A test", "test", response=SlotPage)
    async def handler(request: web.Request) -> dict[str, Any]:
        return BAD["an extra field"]

    app = web.Application()
    app[SETTINGS] = settings
    app.router.add_get("/api/test", handler)
    client: TestClient = await aiohttp_client(app)
    answer = await client.get("/api/test")
    assert settings.responses_checked is checked
    assert answer.status == (500 if checked else 200)


def test_a_booking_answer_is_checked_with_its_answers_and_nullable_fields() -> None:
    checker = spec.response_checker(BookingOut)
    answer = {
        "id": 1,
        "status": "confirmed",
        "act_type": "teleconsultation",
        "patient_id": None,
        "patient_ref": "RES-1",
        "reason": "",
        "slot": {"id": 2, "starts_at": SLOT_JSON["starts_at"], "ends_at": SLOT_JSON["ends_at"]},
        "specialist": {"id": 7, "name": "Dr Durand", "specialty": "dermatologie"},
        "facility": {"id": 3, "name": "EHPAD A", "finess": "330000001"},
        "hold_expires_at": None,
        "created_at": SLOT_JSON["starts_at"],
        "cancelled_at": None,
        "cancel_reason": "",
        "rescheduled_from_id": None,
        "answers": {"q1": ["a", 2, {"deep": None}]},
    }
    checker.validate_json(json.dumps(answer))
    with pytest.raises(pydantic.ValidationError):
        checker.validate_json(json.dumps(answer | {"status": "lost"}))
    with pytest.raises(pydantic.ValidationError):
        checker.validate_json(json.dumps({k: v for k, v in answer.items() if k != "patient_id"}))
