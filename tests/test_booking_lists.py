"""Lists of bookings and slots, a page at a time: every booking once and in order, a page that
costs its own rows and not the history's, cursors bound to their list and filters, one access
event per list shown."""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import unescape
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import event, func, insert, select

from telmi import booking, migrate
from telmi.context import Context
from telmi.db import Database
from telmi.models import ActType, AuditEvent, Booking, BookingStatus, Role, Slot, SlotStatus, User
from telmi.paging import Key

from .factories import NOW, bearer, login, make_facility, make_resident, make_user

SLOT = timedelta(minutes=30)
LONG_AGO = NOW - timedelta(days=365)


@dataclass
class History:
    staff: User
    other_staff: User
    specialists: list[User]
    facility_id: int
    # (starts_at, ends_at, id, status, specialist_id, facility_id) of every booking
    rows: list[tuple[datetime, datetime, int, BookingStatus, int, int]]

    def upcoming(self, now: datetime, specialist: User | None = None) -> list[int]:
        """What the facility's staff (or `specialist`) should list as upcoming, in order."""
        ahead = [r for r in self._listed(specialist) if r[1] > now]
        return [r[2] for r in sorted(ahead, key=lambda r: (r[0], r[2]))]

    def past(self, now: datetime, specialist: User | None = None) -> list[int]:
        ended = [r for r in self._listed(specialist) if r[1] <= now]
        return [r[2] for r in sorted(ended, key=lambda r: (r[0], r[2]), reverse=True)]

    def straddling(self, now: datetime, past: bool, after: Key | None, user: User) -> int:
        """The bookings a list's index range holds but its filter drops (see list_bookings)."""
        rows = self._listed(user if user.role is Role.SPECIALIST else None)
        if after is not None:  # the key's own instant: the rows up to the key, on the tie
            at, key_id = after
            return sum(r[0] == at and (r[2] >= key_id if past else r[2] <= key_id) for r in rows)
        if past:
            return sum(r[0] < now < r[1] for r in rows)
        return sum(now - booking.LONGEST_SLOT < r[0] and r[1] <= now for r in rows)

    def listed(self) -> int:
        return len(self._listed(None))

    def _listed(self, specialist: User | None) -> list[tuple[Any, ...]]:
        return [
            r
            for r in self.rows
            if r[3] is not BookingStatus.EXPIRED
            and (r[5] == self.facility_id if specialist is None else r[4] == specialist.id)
        ]


async def _history(
    db: Database, bookings: int = 5_000, *, others: int = 600, free: int = 30
) -> History:
    """`bookings` of one facility, half ended and half to come, every half hour across three
    specialists who share the same instants (ties on the start), with cancelled bookings
    beside a confirmed one on the same slot (ties on the slot) and expired holds (never
    listed); then `others` bookings of another facility and `free` slots, later. The grid
    is a quarter of an hour off the hour, so one slot (07:45-08:15) is in progress at NOW."""
    facility, elsewhere = await make_facility(db, name="EHPAD A"), await make_facility(db)
    staff = await make_user(db, Role.STAFF, facility=facility)
    other_staff = await make_user(db, Role.STAFF, facility=elsewhere)
    specialists = [await make_user(db, Role.SPECIALIST) for _ in range(3)]
    resident = (await make_resident(db, staff, reference="RES-1")).id
    stranger = (await make_resident(db, other_staff, reference="AUTRE-1")).id
    # Four rows in five are one slot's only live booking; the fifth is cancelled, or an
    # expired hold, on the slot of the fourth.
    slot_count = bookings // 5 * 4 + 4
    first = NOW - timedelta(minutes=15) - SLOT * (slot_count // 3 // 2)
    slots = [
        {
            "specialist_id": specialists[n % 3].id,
            "specialty_id": specialists[n % 3].specialty_id,
            "starts_at": first + SLOT * (n // 3),
            "ends_at": first + SLOT * (n // 3 + 1),
            "act_mask": 1,
            "status": SlotStatus.OPEN,
            "created_at": NOW,
        }
        for n in range(slot_count + others + free)
    ]
    async with db.write() as session:
        result = await session.execute(
            insert(Slot).returning(Slot.id, sort_by_parameter_order=True), slots
        )
        slot_ids = list(result.scalars())
    values: list[dict[str, Any]] = []
    for n in range(bookings):
        index, fifth = n // 5 * 4 + min(n % 5, 3), n % 5 == 4
        status = BookingStatus.CONFIRMED
        if fifth:
            status = BookingStatus.EXPIRED if n % 10 == 9 else BookingStatus.CANCELLED
        values.append(
            _booking(slots[index], slot_ids[index], facility.id, staff.id, resident, status)
        )
    for n in range(others):
        index = slot_count + n
        values.append(
            _booking(
                slots[index], slot_ids[index], elsewhere.id, other_staff.id, stranger,
                BookingStatus.CONFIRMED,
            )
        )  # fmt: skip
    async with db.write() as session:
        result = await session.execute(
            insert(Booking).returning(Booking.id, sort_by_parameter_order=True), values
        )
        ids = list(result.scalars())
    rows = [
        (v["starts_at"], v["ends_at"], i, v["status"], v["specialist_id"], v["facility_id"])
        for v, i in zip(values, ids, strict=True)
    ]
    return History(staff, other_staff, specialists, facility.id, rows)


def _booking(
    slot: dict[str, Any],
    slot_id: int,
    facility_id: int,
    staff_id: int,
    patient_id: int,
    status: BookingStatus,
) -> dict[str, Any]:
    held = status is BookingStatus.EXPIRED
    return {
        "slot_id": slot_id,
        "specialist_id": slot["specialist_id"],
        "starts_at": slot["starts_at"],
        "ends_at": slot["ends_at"],
        "facility_id": facility_id,
        "booked_by_id": staff_id,
        "patient_id": None if held else patient_id,
        "act_type": ActType.TELECONSULTATION,
        "reason": "",
        "status": status,
        "hold_expires_at": LONG_AGO if held else None,
        "created_at": LONG_AGO,
        "cancelled_at": NOW if status is BookingStatus.CANCELLED else None,
        "cancel_reason": "",
    }


async def _walk(db: Database, ctx: Context, *, past: bool, limit: int) -> list[int]:
    seen: list[int] = []
    after: Key | None = None
    for _ in range(10_000):
        async with db.write() as session:
            page = await booking.list_bookings(session, ctx, past=past, after=after, limit=limit)
        assert len(page.items) <= limit
        seen += [b.id for b in page.items]
        if page.next_key is None:
            return seen
        assert len(page.items) == limit
        after = page.next_key
    raise AssertionError("the pages never ended")


# --- every booking once, in order ---------------------------------------------------------------


@pytest.mark.parametrize("limit", [50, 7])  # 7: page ends fall inside ties of one instant
async def test_walking_the_pages_gives_every_booking_once_in_slot_order(
    db: Database, limit: int
) -> None:
    history = await _history(db, 1_500 if limit == 7 else 5_000)
    ctx = Context(history.staff, NOW)
    upcoming = await _walk(db, ctx, past=False, limit=limit)
    past = await _walk(db, ctx, past=True, limit=limit)
    assert upcoming == history.upcoming(NOW)
    assert past == history.past(NOW)
    assert len(set(upcoming + past)) == len(upcoming + past) == history.listed()


async def test_a_booking_in_progress_is_upcoming_until_it_ends(db: Database) -> None:
    history = await _history(db, 200, others=0)
    now_ctx = Context(history.staff, NOW)
    async with db.write() as session:
        first = (await booking.list_bookings(session, now_ctx, limit=3)).items[0]
    assert first.slot.starts_at < NOW < first.slot.ends_at  # the 07:45-08:15 slot
    later = Context(history.staff, first.slot.ends_at)
    async with db.write() as session:
        upcoming = await booking.list_bookings(session, later, limit=200)
        past = await booking.list_bookings(session, later, past=True, limit=10)
    assert first.id not in [b.id for b in upcoming.items]
    assert first.id in [b.id for b in past.items]


async def test_a_specialist_walks_their_own_bookings_only(db: Database) -> None:
    history = await _history(db, 1_200)
    specialist = history.specialists[1]
    ctx = Context(specialist, NOW)
    assert await _walk(db, ctx, past=False, limit=50) == history.upcoming(NOW, specialist)
    assert await _walk(db, ctx, past=True, limit=50) == history.past(NOW, specialist)


async def test_the_api_walks_every_upcoming_booking_with_its_cursor(
    client: TestClient, db: Database
) -> None:
    history = await _history(db, 400, others=50)
    headers = await bearer(db, history.staff)
    seen, cursor = [], None
    while True:
        params = {"limit": "40", **({"cursor": cursor} if cursor else {})}
        response = await client.get("/api/bookings", params=params, headers=headers)
        assert response.status == 200
        page = await response.json()
        assert set(page) == {"items", "next_cursor"}
        seen += [b["id"] for b in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == history.upcoming(NOW)
    first = await (await client.get("/api/bookings", headers=headers)).json()
    assert len(first["items"]) == 50  # the default limit


# --- what a page costs ---------------------------------------------------------------------------


SCANS_AND_JOINS = re.compile(r"Scan|Nested Loop|Hash Join|Merge Join")


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan, *itertools.chain.from_iterable(_nodes(p) for p in plan.get("Plans", []))]


async def _explained(db: Database, run: Any) -> list[dict[str, Any]]:
    """The plan, as PostgreSQL ran it, of the list statement `run` executes."""
    captured: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().startswith("SELECT") and "FROM bookings JOIN slots" in statement:
            captured.append((statement, parameters))

    event.listen(db.engine.sync_engine, "before_cursor_execute", capture)
    try:
        await run()
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", capture)
    [(statement, parameters)] = captured
    async with db.engine.connect() as conn:
        raw = await conn.exec_driver_sql("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters)
        document = raw.scalar_one()
    plan = (json.loads(document) if isinstance(document, str) else document)[0]["Plan"]
    return _nodes(plan)


async def test_a_page_of_bookings_reads_limit_plus_one_rows_on_postgresql(
    pg_db: Database,
) -> None:
    history = await _history(pg_db, 5_000, others=1_000)
    async with pg_db.engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.exec_driver_sql("ANALYZE")
    limit, staff, specialist = 50, history.staff, history.specialists[0]
    deep = await _walk_to(pg_db, Context(staff, NOW), page=20, past=True, limit=limit)
    cases = {
        "staff, upcoming": (Context(staff, NOW), False, None, "ix_bookings_facility_starts_at"),
        "staff, past": (Context(staff, NOW), True, None, "ix_bookings_facility_starts_at"),
        "staff, 21st past page": (Context(staff, NOW), True, deep, "ix_bookings_facility_starts_at"),
        "specialist, upcoming": (
            Context(specialist, NOW), False, None, "ix_bookings_specialist_starts_at"
        ),
        "specialist, past": (Context(specialist, NOW), True, None, "ix_bookings_specialist_starts_at"),
    }  # fmt: skip
    measured: dict[str, tuple[int, int]] = {}
    for name, (ctx, past, after, index) in cases.items():

        async def run(ctx: Context = ctx, past: bool = past, after: Key | None = after) -> None:
            async with pg_db.write() as session:
                page = await booking.list_bookings(
                    session, ctx, past=past, after=after, limit=limit
                )
            assert len(page.items) == limit

        nodes = await _explained(pg_db, run)
        read = {
            f"{n['Node Type']} {n.get('Relation Name', '')}": n["Actual Rows"] * n["Actual Loops"]
            for n in nodes
            if SCANS_AND_JOINS.search(n["Node Type"])
        }
        assert read and max(read.values()) <= limit + 1, (name, read)
        assert not [n for n in nodes if "Sort" in n["Node Type"]], (name, nodes)
        assert index in [n.get("Index Name") for n in nodes], (name, nodes)
        # What the index range hands over and its filter drops: past, the bookings still in
        # progress; upcoming, those that ended within the longest slot before now (the
        # range starts there); a later page, the rows of the key's instant up to the key.
        [scan] = [n for n in nodes if n.get("Index Name") == index]
        dropped = scan.get("Rows Removed by Filter", 0)
        assert dropped <= history.straddling(NOW, past, after, ctx.caller), (name, dropped)
        measured[name] = (max(read.values()), dropped)
    print("rows read per node at most, rows dropped by the index scan's filter:", measured)


async def _walk_to(db: Database, ctx: Context, *, page: int, past: bool, limit: int) -> Key:
    after: Key | None = None
    for _ in range(page):
        async with db.write() as session:
            listed = await booking.list_bookings(session, ctx, past=past, after=after, limit=limit)
        assert listed.next_key is not None
        after = listed.next_key
    assert after is not None
    return after


async def test_on_sqlite_a_page_is_a_range_of_the_index_in_its_order(sqlite_db: Database) -> None:
    history = await _history(sqlite_db, 600, others=100)
    statements: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "FROM bookings JOIN slots" in statement:
            statements.append((statement, parameters))

    event.listen(sqlite_db.engine.sync_engine, "before_cursor_execute", capture)
    try:
        for user, past in itertools.product((history.staff, history.specialists[0]), (0, 1)):
            ctx = Context(user, NOW)
            after = await _walk_to(sqlite_db, ctx, page=2, past=bool(past), limit=20)
            async with sqlite_db.write() as session:
                await booking.list_bookings(session, ctx, past=bool(past), after=after, limit=20)
    finally:
        event.remove(sqlite_db.engine.sync_engine, "before_cursor_execute", capture)
    assert len(statements) == 12  # first, second and third pages of four lists
    async with sqlite_db.engine.connect() as conn:
        for statement, parameters in statements:
            plan = [
                row[3]
                for row in await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
            ]
            assert not [step for step in plan if "TEMP B-TREE" in step], plan
            [scan] = [step for step in plan if "bookings" in step]
            assert re.search(r"USING INDEX ix_bookings_(facility|specialist)_starts_at", scan), plan
            assert "starts_at" in scan, plan  # a range of it, not the whole facility


# --- cursors bound to their list -----------------------------------------------------------------


async def _error(response: Any) -> dict[str, Any]:
    assert response.status == 422, await response.text()
    return (await response.json())["error"]  # type: ignore[no-any-return]


async def test_a_cursor_is_refused_by_another_list_other_filters_or_once_edited(
    client: TestClient, db: Database
) -> None:
    history = await _history(db, 300, others=0)
    headers = await bearer(db, history.staff)
    past = await (
        await client.get("/api/bookings", params={"when": "past", "limit": "5"}, headers=headers)
    ).json()
    slots = await (await client.get("/api/slots", params={"limit": "2"}, headers=headers)).json()
    derm = {"specialty": "dermatologie", "limit": "2"}
    derm_slots = await (await client.get("/api/slots", params=derm, headers=headers)).json()
    cursor, slot_cursor = past["next_cursor"], derm_slots["next_cursor"]
    assert cursor and slots["next_cursor"] and slot_cursor
    edited = cursor[:-2] + ("AA" if cursor[-2:] != "AA" else "BB")

    refused = [
        ("/api/bookings", {"when": "upcoming", "cursor": cursor}),  # from `when=past`
        ("/api/bookings", {"cursor": slots["next_cursor"]}),  # from the slots
        ("/api/bookings", {"when": "past", "cursor": edited}),
        ("/api/slots", {"cursor": cursor}),  # from the bookings
        ("/api/slots", {"cursor": slot_cursor}),  # from a search by specialty
        ("/api/slots", {"specialty": "dermatologie", "act_type": "teleexpertise",
                        "cursor": slot_cursor}),  # other filters
    ]  # fmt: skip
    for path, params in refused:
        error = await _error(await client.get(path, params=params, headers=headers))
        assert (error["field"], error["code"]) == ("cursor", "invalid_cursor"), (path, params)
        assert "première page" in error["message"]
    fine = await client.get(
        "/api/bookings", params={"when": "past", "cursor": cursor}, headers=headers
    )
    assert fine.status == 200
    assert (await client.get("/api/slots", params=derm | {"cursor": slot_cursor}, headers=headers)).status == 200  # fmt: skip


async def test_another_facilitys_cursor_only_positions_the_callers_own_list(
    client: TestClient, db: Database
) -> None:
    """A cursor carries a position, never a permission: the caller still sees only theirs."""
    history = await _history(db, 300, others=120)
    mine = await (
        await client.get("/api/bookings", params={"limit": "3"}, headers=await bearer(db, history.staff))
    ).json()  # fmt: skip
    theirs = await client.get(
        "/api/bookings",
        params={"cursor": mine["next_cursor"]},
        headers=await bearer(db, history.other_staff),
    )
    listed = await theirs.json()
    assert theirs.status == 200
    assert not set(history.upcoming(NOW)) & {b["id"] for b in listed["items"]}


@pytest.mark.parametrize("limit", ["0", "201", "abc"])
async def test_a_limit_outside_1_to_200_is_a_422(
    client: TestClient, db: Database, limit: str
) -> None:
    staff = await make_user(db, Role.STAFF)
    headers = await bearer(db, staff)
    for path in ("/api/bookings", "/api/slots"):
        error = await _error(await client.get(path, params={"limit": limit}, headers=headers))
        assert error["field"] == "limit"


# --- one access event per list ---------------------------------------------------------------------


async def _listed_events(db: Database) -> list[AuditEvent]:
    async with db.read() as session:
        return list(
            await session.scalars(
                select(AuditEvent).where(AuditEvent.action == "booking.listed").order_by(AuditEvent.id)
            )
        )  # fmt: skip


async def _audit_rows(db: Database) -> int:
    async with db.read() as session:
        return await session.scalar(select(func.count()).select_from(AuditEvent)) or 0


async def test_listing_a_page_of_50_writes_one_access_event_naming_them(
    client: TestClient, db: Database
) -> None:
    history = await _history(db, 400, others=0)
    headers = await bearer(db, history.staff)
    before = await _audit_rows(db)
    page = await (await client.get("/api/bookings", headers=headers)).json()
    assert len(page["items"]) == 50
    assert await _audit_rows(db) == before + 1
    [listed] = await _listed_events(db)
    assert listed.detail["ids"] == [b["id"] for b in page["items"]]

    await client.get("/api/slots", headers=headers)  # free slots name no resident
    assert await _audit_rows(db) == before + 1


async def test_mes_rendez_vous_writes_one_access_event_for_both_lists(
    client: TestClient, db: Database
) -> None:
    history = await _history(db, 400, others=0)
    await login(client, history.staff.email)
    before = await _audit_rows(db)
    assert (await client.get("/rendez-vous")).status == 200
    assert await _audit_rows(db) == before + 1
    [listed] = await _listed_events(db)
    shown = history.upcoming(NOW)[:20] + history.past(NOW)[:20]
    assert sorted(listed.detail["ids"]) == sorted(shown)
    search = await client.get("/rendez-vous/nouveau")
    assert search.status == 200 and await _audit_rows(db) == before + 1


# --- the pages -------------------------------------------------------------------------------------


def _ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'id="rdv-(\d+)"', html)]


def _next(html: str, what: str) -> str | None:
    match = re.search(
        r'href="([^"]+)" rel="next">Page suivante<span class="visually-hidden"> des rendez-vous '
        + what,
        html,
    )
    return unescape(match.group(1)) if match else None


async def test_mes_rendez_vous_pages_through_upcoming_bookings_without_script(
    client: TestClient, db: Database
) -> None:
    history = await _history(db, 150, others=20)
    await login(client, history.staff.email)
    upcoming = history.upcoming(NOW)  # no hold in it: the page leaves holds out
    seen, path = [], "/rendez-vous"
    while path:
        response = await client.get(path)
        assert response.status == 200
        html = await response.text()
        seen += _ids(html)
        following = _next(html, "à venir")
        if following:
            assert "#a_venir" in following and "a_venir=" in following
        path = following or ""
    assert seen == upcoming
    assert "Première page" in html and "Aucun autre rendez-vous à venir." not in html


async def test_mes_rendez_vous_pages_through_past_bookings_keeping_the_upcoming_page(
    client: TestClient, db: Database
) -> None:
    history = await _history(db, 150, others=0)
    await login(client, history.staff.email)
    first = await (await client.get("/rendez-vous")).text()
    second_upcoming = _next(first, "à venir")
    assert second_upcoming
    on_second = await (await client.get(second_upcoming)).text()
    past_next = _next(on_second, "passés")
    assert past_next and "a_venir=" in past_next and "passes=" in past_next
    both = await (await client.get(past_next)).text()
    assert _ids(both) == _ids(on_second)  # the upcoming page stays where it was
    table = both[both.index('id="passes"') :]
    assert table.count('data-label="Date"') == 20


@pytest.mark.parametrize(
    "query",
    ["a_venir=nimporte", "passes=abc.def", "a_venir={past}", "passes={upcoming}"],
)
async def test_a_bad_page_link_on_mes_rendez_vous_says_so_in_french(
    client: TestClient, db: Database, query: str
) -> None:
    history = await _history(db, 150, others=0)
    await login(client, history.staff.email)
    first = await (await client.get("/rendez-vous")).text()
    cursors = {
        "upcoming": re.search(r"a_venir=([^&#\"]+)", unescape(_next(first, "à venir") or "")),
        "past": re.search(r"passes=([^&#\"]+)", unescape(_next(first, "passés") or "")),
    }
    filled = query.format(**{k: m.group(1) for k, m in cursors.items() if m})
    response = await client.get(f"/rendez-vous?{filled}")
    html = unescape(await response.text())
    assert response.status == 422
    assert "Ce lien de page n'est plus valable" in html
    assert "voici la première page" in html
    assert _ids(html)  # the first page is shown under the message


async def test_the_search_page_refuses_a_cursor_of_another_search_in_french(
    client: TestClient, db: Database
) -> None:
    history = await _history(db, 100, others=60)
    await login(client, history.staff.email)
    first = unescape(await (await client.get("/rendez-vous/nouveau")).text())
    cursor = re.search(r'curseur=([^&"]+)" rel="next">Page suivante', first)
    assert cursor
    other = await client.get(
        "/rendez-vous/nouveau", params={"acte": "teleexpertise", "curseur": cursor.group(1)}
    )
    html = unescape(await other.text())
    assert other.status == 422
    assert "Ce lien de page n'est plus valable" in html
    assert "Revenir à la première page de cette recherche" in html
    edited = await client.get("/rendez-vous/nouveau", params={"curseur": cursor.group(1) + "x"})
    assert edited.status == 422
    again = await client.get("/rendez-vous/nouveau", params={"curseur": cursor.group(1)})
    assert again.status == 200 and "Réserver<span" in await again.text()


# --- the copies on each booking --------------------------------------------------------------------


async def test_a_booking_carries_its_slots_specialist_and_times(
    client: TestClient, db: Database
) -> None:
    history = await _history(db, 10, others=0)
    free = await (await client.get("/api/slots", headers=await bearer(db, history.staff))).json()
    slot = free["items"][0]
    headers = await bearer(db, history.staff)
    resident = (await make_resident(db, history.staff)).id
    made = await client.post(
        "/api/bookings",
        json={"slot_id": slot["id"], "patient_id": resident, "act_type": "teleconsultation"},
        headers={**headers, "Idempotency-Key": "copie-1"},
    )
    assert made.status == 201, await made.text()
    async with db.read() as session:
        row = await session.get(Booking, (await made.json())["id"])
        assert row is not None
    assert row.specialist_id == slot["specialist"]["id"]
    assert row.starts_at == datetime.fromisoformat(slot["starts_at"])
    assert row.ends_at == datetime.fromisoformat(slot["ends_at"])


async def test_the_migration_fills_the_copies_of_existing_bookings(
    fresh_database_url: str,
) -> None:
    from telmi.settings import Settings

    from .factories import TEST_SECRET, ins_with_key
    from .test_migrations import _AT, _ROWS_AT_0006

    settings = Settings(database_url=fresh_database_url, secret_key=TEST_SECRET)
    db = Database(fresh_database_url)
    try:
        await migrate.upgrade(db, "0006", settings=settings)
        async with db.engine.begin() as conn:
            for statement in _ROWS_AT_0006:
                await conn.exec_driver_sql(
                    statement.format(at=_AT, ins=ins_with_key("1360421231012"))
                )
        await migrate.upgrade(db, "0009", settings=settings)
        async with db.engine.connect() as conn:
            copied = (
                await conn.exec_driver_sql(
                    "SELECT b.id, s.id FROM bookings b JOIN slots s ON s.id = b.slot_id"
                    " WHERE b.specialist_id = s.specialist_id AND b.starts_at = s.starts_at"
                    " AND b.ends_at = s.ends_at ORDER BY b.id"
                )
            ).all()
        assert [tuple(r) for r in copied] == [(1, 1), (2, 2), (3, 3)]
        await migrate.downgrade(db, "0008", settings=settings)
    finally:
        await db.dispose()
