"""The administration lists and the residents, a page at a time (issue 16, point 1).

Each list is walked to its end on SQLite and PostgreSQL (every row exactly once, in the
list's order), its cursors are refused when edited or taken to another list or filter (422
on `cursor` in the API, a French page elsewhere), the residents list writes one access event
per request, and on PostgreSQL the statements the services run are EXPLAINed: no scan reads
more than `limit + 1` rows, with a few thousand rows in the tables.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from telmi import accounts, admin_journal, facilities, patients, record_access
from telmi.context import Context
from telmi.db import Database
from telmi.facilities import FacilityFilter, FacilitySearch
from telmi.models import (
    AuditEvent,
    Base,
    Facility,
    FacilityCategory,
    Patient,
    Role,
    Specialty,
    User,
)
from telmi.paging import DEFAULT_LIMIT, Key, Page

from .factories import (
    NOW,
    VAULT,
    bearer,
    login,
    make_facility,
    make_resident,
    make_specialty,
    make_user,
)
from .plans import selects_sent

NEXT = re.compile(r'href="([^"]*curseur=[^"]*)" rel="next"')
# The indexes these lists read; until the lead's migration adds them, the tests add them
# from the models (tests/test_migrations.py proves migrations and models agree).
INDEXES = (
    "ix_audit_events_admin_id",
    "ix_audit_events_patient_id_id",
    "ix_users_role_email",
    "ix_facilities_name_id",
    "ix_specialties_name_id",
    "ix_patients_facility_id_id",
)


async def _with_indexes(db: Database) -> None:
    wanted = [i for t in Base.metadata.tables.values() for i in t.indexes if i.name in INDEXES]
    async with db.engine.begin() as conn:
        for index in wanted:
            await conn.run_sync(index.create, checkfirst=True)


async def _walk(read: Callable[[Key | None], Awaitable[Page[Any]]]) -> list[list[Any]]:
    """Every page of a service, following its keys to the end."""
    pages, key = [], None
    for _ in range(1000):
        page = await read(key)
        pages.append(page.items)
        if page.next_key is None:
            return pages
        key = page.next_key
    raise AssertionError("no last page")


async def _walk_api(
    client: TestClient, path: str, headers: dict[str, str], **params: str
) -> list[list[dict[str, Any]]]:
    pages: list[list[dict[str, Any]]] = []
    cursor: str | None = None
    for _ in range(1000):
        query = params | ({"cursor": cursor} if cursor else {})
        response = await client.get(path, params=query, headers=headers)
        assert response.status == 200, await response.text()
        body = await response.json()
        assert set(body) == {"items", "next_cursor"}
        pages.append(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
    raise AssertionError("no last page")


async def _walk_pages(client: TestClient, path: str) -> list[str]:
    """The HTML of every page of a list, following « Page suivante »."""
    pages, url = [], path
    for _ in range(100):
        response = await client.get(url)
        assert response.status == 200, await response.text()
        html = await response.text()
        pages.append(html)
        following = NEXT.search(html)
        if following is None:
            return pages
        assert "Page suivante" in html
        url = following.group(1).replace("&amp;", "&")
    raise AssertionError("no last page")


def _tampered(cursor: str) -> str:
    payload, signature = cursor.split(".")
    return f"{payload}.{signature[:-1]}{'A' if signature[-1] != 'A' else 'B'}"


async def _assert_refused(
    client: TestClient, path: str, headers: dict[str, str], **params: str
) -> None:
    response = await client.get(path, params=params, headers=headers)
    assert response.status == 422, (path, params)
    error = (await response.json())["error"]
    assert (error["field"], error["code"]) == ("cursor", "invalid_cursor")


# --- seeding ------------------------------------------------------------------------------------


async def _users(db: Database, count: int) -> None:
    """`count` accounts, admins and regional users (no facility needed), in one statement."""
    roles = (Role.ADMIN, Role.REGIONAL)
    rows = [
        {
            "email": f"compte{i:05d}@example.fr",
            "full_name": f"Compte {i}",
            "role": roles[i % 2],
            "password_hash": "x",
            "is_active": True,
            "created_at": NOW,
        }
        for i in range(count)
    ]
    async with db.write() as session:
        await session.execute(insert(User), rows)


async def _events(
    db: Database, actions: list[str], patient_id: int | None = None, actor: User | None = None
) -> None:
    rows = [
        {
            "at": NOW + timedelta(seconds=i),
            "action": action,
            "patient_id": patient_id,
            "actor_id": actor.id if actor else None,
            "actor_facility_id": actor.facility_id if actor else None,
        }
        for i, action in enumerate(actions)
    ]
    async with db.write() as session:
        await session.execute(insert(AuditEvent), rows)


# --- every row once -----------------------------------------------------------------------------


async def test_the_admin_journal_walks_every_admin_change_once_newest_first(
    db: Database,
) -> None:
    # Admin changes between reads and care acts, which the journal leaves out.
    actions = [
        ("facility.updated", "patient.read", "user.created", "booking.read", "form.defined")[i % 5]
        for i in range(140)
    ]
    await _events(db, actions)
    async with db.read() as session:
        expected = list(
            await session.scalars(
                select(AuditEvent.id)
                .where(admin_journal.admin_change())
                .order_by(AuditEvent.id.desc())
            )
        )

        async def read(key: Key | None) -> Page[admin_journal.Change]:
            return await admin_journal.changes(session, after=key, limit=9)

        pages = await _walk(read)
    assert len(expected) == 84
    assert [c.id for page in pages for c in page] == expected
    assert all(len(page) == 9 for page in pages[:-1]) and pages[-1]
    assert {c.action for page in pages for c in page} == {
        "facility.updated",
        "user.created",
        "form.defined",
    }


async def test_the_admin_journal_page_has_a_next_link_and_a_way_back(
    client: TestClient, db: Database
) -> None:
    await _events(db, ["specialty.renamed"] * (2 * DEFAULT_LIMIT + 7))
    admin = await make_user(db, Role.ADMIN)
    await login(client, admin.email)
    pages = await _walk_pages(client, "/admin/journal")
    assert [html.count('<td data-label="Quand">') for html in pages] == [50, 50, 7]
    assert "Première page" not in pages[0] and all("Première page" in p for p in pages[1:])
    assert 'class="responsive"' in pages[1] and "<h1>Journal d'administration</h1>" in pages[1]
    assert "<script>" not in "".join(pages)

    first = NEXT.search(pages[0])
    assert first is not None
    cursor = first.group(1).split("curseur=")[1]
    for bad in (_tampered(cursor), "x" * 500, "abc", cursor + "."):
        refused = await client.get("/admin/journal", params={"curseur": bad})
        assert refused.status == 422
        assert "repartez de la première page" in await refused.text()
    # A cursor of another list (« Comptes ») is refused here too.
    await _users(db, DEFAULT_LIMIT + 1)
    accounts_page = await (await client.get("/admin/comptes")).text()
    other = NEXT.search(accounts_page)
    assert other is not None
    foreign = other.group(1).replace("&amp;", "&").replace("/admin/comptes", "/admin/journal")
    assert (await client.get(foreign)).status == 422


async def test_a_residents_log_walks_once_and_its_cursor_is_bound_to_the_resident(
    client: TestClient, db: Database
) -> None:
    home = await make_facility(db)
    nurse = await make_user(db, Role.STAFF, facility=home)
    one = await make_resident(db, nurse, reference="A-1")
    two = await make_resident(db, nurse, reference="A-2")
    await _events(db, ["patient.read"] * 75, one.id)
    await _events(db, ["patient.read"] * 60, two.id)
    admin = await make_user(db, Role.ADMIN)
    ctx = Context(admin, NOW + timedelta(days=1))
    async with db.read() as session:
        expected = list(
            await session.scalars(
                select(AuditEvent.id)
                .where(AuditEvent.patient_id == one.id)
                .order_by(AuditEvent.id.desc())
            )
        )
    async with db.write() as session:

        async def read(key: Key | None) -> Page[record_access.AccessEvent]:
            found = await record_access.events_for_resident(
                session, ctx, one.id, after=key, limit=8
            )
            return Page(found.events, found.next_key)

        pages = await _walk(read)
    assert len(expected) == 76  # the creation and 75 reads
    assert [e.id for page in pages for e in page] == expected

    await login(client, admin.email)
    html = await _walk_pages(client, f"/acces-dossier/{one.id}")
    assert [p.count('id="evenement-') for p in html] == [50, 26]
    first = NEXT.search(html[0])
    assert first is not None
    cursor = first.group(1).replace("&amp;", "&").split("curseur=")[1]
    # The same cursor on another resident's log: refused, never that resident's page.
    other = await client.get(f"/acces-dossier/{two.id}", params={"curseur": cursor})
    assert other.status == 422 and 'id="evenement-' not in await other.text()
    edited = await client.get(f"/acces-dossier/{one.id}", params={"curseur": _tampered(cursor)})
    assert edited.status == 422


async def test_accounts_walk_once_by_role_then_email(client: TestClient, db: Database) -> None:
    await _users(db, 2 * DEFAULT_LIMIT + 3)
    async with db.read() as session:
        expected = list(await session.scalars(select(User.id).order_by(User.role, User.email)))

        async def read(key: Key | None) -> Page[User]:
            return await accounts.users_page(session, after=key, limit=11)

        pages = await _walk(read)
    assert [u.id for page in pages for u in page] == expected

    admin = await make_user(db, Role.ADMIN, email="zz-admin@example.fr")
    await login(client, admin.email)
    html = await _walk_pages(client, "/admin/comptes")
    rows = [re.findall(r'<td data-label="E-mail">([^<]+)</td>', p) for p in html]
    assert [len(r) for r in rows] == [50, 50, 4]
    shown = [email for page in rows for email in page]
    assert len(set(shown)) == len(shown) == 2 * DEFAULT_LIMIT + 4
    assert all("Inviter par e-mail" in p and "<h2>Comptes</h2>" in p for p in html)


async def test_facilities_walk_once_in_the_admin_list_and_the_api(
    client: TestClient, db: Database
) -> None:
    for i in range(23):
        await make_facility(db, departement="25" if i % 2 else "21", name=f"Site {i % 7}")
    homes = [await make_facility(db, name="Zèbre", category=FacilityCategory.HOSPITAL)]
    async with db.read() as session:
        expected = list(
            await session.scalars(select(Facility.id).order_by(Facility.name, Facility.id))
        )

        async def read(key: Key | None) -> Page[Facility]:
            return await facilities.search_facilities(session, FacilitySearch(), after=key, limit=4)

        pages = await _walk(read)
        assert [f.id for page in pages for f in page] == expected
        searched = await _walk(
            lambda key: facilities.search_facilities(
                session, FacilitySearch(q="site 3"), after=key, limit=2
            )
        )
        assert [f.name for page in searched for f in page] == ["Site 3"] * 3

    regional = await make_user(db, Role.REGIONAL)
    headers = await bearer(db, regional)
    walked = await _walk_api(client, "/api/facilities", headers, limit="5")
    assert [f["id"] for page in walked for f in page] == expected
    assert [len(page) for page in walked] == [5, 5, 5, 5, 4]
    in_25 = await _walk_api(client, "/api/facilities", headers, limit="3", departement="25")
    assert sorted(f["id"] for page in in_25 for f in page) == sorted(
        f.id for f in await _all_in(db, "25")
    )
    # A cursor is bound to its filters and its list; an edited one is refused.
    first = await (
        await client.get("/api/facilities", params={"limit": "5"}, headers=headers)
    ).json()
    cursor = first["next_cursor"]
    await _assert_refused(client, "/api/facilities", headers, cursor=cursor, departement="25")
    await _assert_refused(client, "/api/facilities", headers, cursor=_tampered(cursor))
    await _assert_refused(client, "/api/specialties", headers, cursor=cursor)
    too_many = await client.get("/api/facilities", params={"limit": "201"}, headers=headers)
    assert too_many.status == 422 and (await too_many.json())["error"]["field"] == "limit"
    # Staff still see their own facility only.
    nurse = await make_user(db, Role.STAFF, facility=homes[0])
    mine = await _walk_api(client, "/api/facilities", await bearer(db, nurse), limit="1")
    assert [[f["id"] for f in page] for page in mine] == [[homes[0].id]]

    admin = await make_user(db, Role.ADMIN)
    await login(client, admin.email)
    html = await _walk_pages(client, "/admin/etablissements")
    assert [p.count('<td data-label="FINESS">') for p in html] == [24]
    wide = await _walk_pages(client, "/admin/etablissements?state=active")
    assert "Première page" not in wide[0]


async def _all_in(db: Database, departement: str) -> list[Facility]:
    async with db.read() as session:
        return list(
            await session.scalars(select(Facility).where(Facility.departement_code == departement))
        )


async def test_specialties_walk_once_through_the_api(client: TestClient, db: Database) -> None:
    for i in range(12):
        await make_specialty(db, f"specialite-{i:02d}")
    async with db.write() as session:
        session.add(Specialty(code="retiree", name="Retirée", retired_at=NOW))
    headers = await bearer(db, await make_user(db, Role.REGIONAL))
    walked = await _walk_api(client, "/api/specialties", headers, limit="5")
    codes = [s["code"] for page in walked for s in page]
    assert codes == [f"specialite-{i:02d}" for i in range(12)]  # by name, the retired one left out


async def test_residents_walk_once_with_one_access_event_per_request(
    client: TestClient, db: Database
) -> None:
    home = await make_facility(db)
    nurse = await make_user(db, Role.STAFF, facility=home)
    made = [
        await make_resident(db, nurse, birth_name="MARTIN" if i % 4 == 0 else "BERNARD")
        for i in range(DEFAULT_LIMIT + 13)
    ]
    elsewhere = await make_user(db, Role.STAFF)
    await make_resident(db, elsewhere, birth_name="MARTIN")
    headers = await bearer(db, nurse)

    async def listed_events() -> list[AuditEvent]:
        async with db.read() as session:
            return list(
                await session.scalars(
                    select(AuditEvent)
                    .where(AuditEvent.action.like("patient.%"))
                    .where(AuditEvent.action != "patient.created")
                )
            )

    walked = await _walk_api(client, "/api/residents", headers, limit="20")
    assert [r["id"] for page in walked for r in page] == [r.id for r in made]
    events = await listed_events()
    # One event per request (four pages), naming no resident; no per-resident read.
    assert [e.action for e in events] == ["patient.listed"] * 4
    assert all(e.patient_id is None for e in events)
    assert [e.detail["count"] for e in events] == [20, 20, 20, 3]

    searched = await _walk_api(client, "/api/residents", headers, limit="4", q="martin")
    assert [r["id"] for page in searched for r in page] == [r.id for r in made[::4]]
    first = await (await client.get("/api/residents", params={"limit": "4", "q": "martin"},
                                    headers=headers)).json()  # fmt: skip
    cursor = first["next_cursor"]
    payload = cursor.split(".")[0]
    assert b"martin" not in base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).lower()
    await _assert_refused(client, "/api/residents", headers, cursor=cursor, q="bernard")
    await _assert_refused(client, "/api/residents", headers, cursor=cursor)  # search dropped
    await _assert_refused(client, "/api/residents", headers, cursor=_tampered(cursor), q="martin")
    other = await bearer(db, elsewhere)
    await _assert_refused(client, "/api/residents", other, cursor=cursor, q="martin")

    await login(client, nurse.email)
    before = len(await listed_events())
    html = await _walk_pages(client, "/residents")
    assert [p.count('<td data-label="Nom">') for p in html] == [50, 13]
    assert "Première page" in html[1] and "<h1>Résidents</h1>" in html[1]
    assert len(await listed_events()) == before + 2
    refused = await client.get("/residents", params={"curseur": "nope"})
    assert refused.status == 422 and "repartez de la première page" in await refused.text()


# --- PostgreSQL: the plan of what the services run ----------------------------------------------


def _scans(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if "Relation Name" in plan or "Scan" in plan["Node Type"]:
        yield plan
    for child in plan.get("Plans", []):
        yield from _scans(child)


async def _rows_read(
    conn: AsyncConnection, statement: str, parameters: Any
) -> list[tuple[str, int]]:
    """Each scan of the statement's plan, run: (node, rows it read over all its loops)."""
    result = await conn.exec_driver_sql(f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}", parameters)
    raw = result.scalar_one()
    plan = (raw if isinstance(raw, list) else json.loads(raw))[0]["Plan"]
    read = []
    for scan in _scans(plan):
        per_loop = (
            scan["Actual Rows"]
            + scan.get("Rows Removed by Filter", 0)
            + scan.get("Rows Removed by Index Recheck", 0)
        )
        name = f"{scan['Node Type']} {scan.get('Index Name') or scan.get('Relation Name', '')}"
        read.append((name, per_loop * scan["Actual Loops"]))
    return read


async def _assert_page_cost(db: Database, captured: list[tuple[str, Any]], limit: int) -> None:
    assert captured
    async with db.engine.connect() as conn:
        for statement, parameters in captured:
            for name, rows in await _rows_read(conn, statement, parameters):
                assert "Seq Scan" not in name or rows <= limit + 1, (name, rows, statement)
                assert rows <= limit + 1, (name, rows, statement)
            await conn.rollback()


async def test_on_postgresql_a_page_reads_at_most_limit_plus_one_rows(pg_db: Database) -> None:
    db = pg_db
    await _with_indexes(db)
    await _users(db, 3000)
    home = await make_facility(db)
    nurse = await make_user(db, Role.STAFF, facility=home)
    resident = await make_resident(db, nurse)
    for _ in range(300):
        await make_facility(db)
    # Old admin changes under a newer flood of reads: a plain scan of the ids would read them.
    admin = await make_user(db, Role.ADMIN)
    await _events(db, ["facility.updated", "user.disabled"] * 1500, actor=admin)
    await _events(db, ["patient.read"] * 3000, resident.id, actor=nurse)
    await _events(db, ["booking.read"] * 2000, actor=nurse)
    async with db.engine.begin() as conn:
        await conn.exec_driver_sql("ANALYZE users, audit_events, facilities, patients")
    limit = DEFAULT_LIMIT

    Work = Callable[[Any, Key | None], Awaitable[Page[Any]]]

    async def cost(work: Work) -> None:
        # The first page, then the one after it: both must cost a page.
        key: Key | None = None
        for _ in range(2):
            with selects_sent(db) as captured:
                async with db.write() as session:
                    page = await work(session, key)
            await _assert_page_cost(db, captured, limit)
            assert page.next_key is not None
            key = page.next_key

    async def log(session: Any, key: Key | None) -> Page[Any]:
        found = await record_access.events_for_resident(
            session, Context(admin, NOW), resident.id, after=key, limit=limit
        )
        return Page(found.events, found.next_key)

    await cost(lambda session, key: accounts.users_page(session, after=key, limit=limit))
    await cost(lambda session, key: admin_journal.changes(session, after=key, limit=limit))
    await cost(log)
    await cost(
        lambda session, key: facilities.facility_page(
            session, admin, FacilityFilter(departement=None), after=key, limit=limit
        )
    )
    await cost(
        lambda session, key: facilities.search_facilities(
            session, FacilitySearch(), after=key, limit=limit
        )
    )


async def test_on_postgresql_a_residents_page_reads_its_rows_only(pg_db: Database) -> None:
    db = pg_db
    await _with_indexes(db)
    home, others = await make_facility(db), [await make_facility(db) for _ in range(39)]
    nurse = await make_user(db, Role.STAFF, facility=home)
    first = await make_resident(db, nurse, birth_name="MARTIN")
    async with db.read() as session:
        sealed = await session.get(Patient, first.id)
        assert sealed is not None
        copy = {
            "identity_status": sealed.identity_status,
            "identity_document": sealed.identity_document,
            "key_id": sealed.key_id,
            "identity": sealed.identity,  # sealed for `home`: opens there only
            "created_at": NOW,
            "updated_at": NOW,
        }
    # A region's 40 facilities, 100 residents each (a copy of one sealed identity), recorded
    # in turns: read in id order alone, a page would skip the 39 others' rows.
    rows = [
        copy | {"facility_id": facility.id, "reference": f"C-{i}"}
        for i in range(100)
        for facility in (home, *others)
    ]
    async with db.write() as session:
        await session.execute(insert(Patient), rows)
    # As autovacuum leaves a table mostly read: its visibility map set, its statistics fresh.
    async with db.engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.exec_driver_sql("VACUUM ANALYZE patients")
    key: Key | None = None
    for _ in range(2):  # the first page and the next
        with selects_sent(db) as captured:
            async with db.write() as session:
                page = await patients.residents_page(
                    session, Context(nurse, NOW), vault=VAULT, after=key
                )
        assert len(page.items) == DEFAULT_LIMIT and page.next_key is not None
        await _assert_page_cost(db, captured, DEFAULT_LIMIT)
        key = page.next_key
    async with db.read() as session:
        written = await session.scalar(
            select(func.count()).where(AuditEvent.action == "patient.listed")
        )
    assert written == 2  # one per page read
