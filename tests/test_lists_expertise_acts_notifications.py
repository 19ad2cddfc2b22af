"""Tele-expertise, the act log and « Mes notifications » a page at a time (issue 16, points 1
and 2): signed cursors bound to their list, reader and filters; every item once over all
pages; a page's cost is its own rows (EXPLAIN ANALYZE on PostgreSQL over a few thousand rows);
one audit event per list read, none per row.

Rows are inserted in bulk where a test needs volume or exact instants: what is under test is
the reading, and the services that write these rows have their own tests."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Awaitable, Iterator
from datetime import datetime, timedelta
from html import unescape
from typing import Any, TypeVar, cast
from zoneinfo import ZoneInfo

from aiohttp.test_utils import TestClient
from sqlalchemy import Table, func, insert, select

from telmi import acts, expertise, notify
from telmi.context import Context
from telmi.db import Database
from telmi.models import (
    Act,
    ActType,
    AuditEvent,
    ExpertiseRequest,
    ExpertiseStatus,
    ExpertiseUrgency,
    Facility,
    Notification,
    Role,
    User,
)

from .factories import (
    NOW,
    PASSWORD,
    bearer,
    login,
    make_facility,
    make_resident,
    make_specialty,
    make_user,
    rpps_for,
)
from .plans import selects_sent

PARIS = ZoneInfo("Europe/Paris")
INVALID = {"code": "invalid_cursor", "field": "cursor"}
T = TypeVar("T")


async def _ensure_list_indexes(db: Database) -> None:
    """The lists' indexes as telmi/models.py declares them, on a database migrated before
    their migration exists (a no-op once it does)."""
    async with db.engine.begin() as conn:
        for model in (ExpertiseRequest, Act, Notification):
            for index in cast(Table, model.__table__).indexes:
                await conn.run_sync(lambda c, i=index: i.create(c, checkfirst=True))


# --- the world -----------------------------------------------------------------------------------


async def _world(db: Database) -> dict[str, Any]:
    await _ensure_list_indexes(db)
    home, elsewhere = await make_facility(db, name="EHPAD A"), await make_facility(db)
    derm, cardio = await make_specialty(db, "dermatologie"), await make_specialty(db, "cardiologie")
    nurse = await make_user(db, Role.STAFF, facility=home)
    world: dict[str, Any] = {
        "home": home,
        "elsewhere": elsewhere,
        "derm": derm,
        "cardio": cardio,
        "nurse": nurse,
        "colleague": await make_user(db, Role.STAFF, facility=home),
        "other_nurse": await make_user(db, Role.STAFF, facility=elsewhere),
        "dr": await make_user(db, Role.SPECIALIST, specialty=derm),
        "dr2": await make_user(db, Role.SPECIALIST, specialty=derm),
        "dr_cardio": await make_user(db, Role.SPECIALIST, specialty=cardio),
        "admin": await make_user(db, Role.ADMIN),
    }
    world["resident"] = (await make_resident(db, nurse, reference="RES-1")).id
    world["other_resident"] = (await make_resident(db, world["other_nurse"], reference="RES-2")).id
    return world


def _request_row(
    w: dict[str, Any],
    n: int,
    *,
    facility: str = "home",
    specialty: str = "derm",
    status: ExpertiseStatus = ExpertiseStatus.SENT,
    specialist: User | None = None,
    assigned: User | None = None,
) -> dict[str, Any]:
    created = NOW - timedelta(minutes=n // 3)  # three at each instant: the id breaks ties
    sent = None if status is ExpertiseStatus.DRAFT else created + timedelta(seconds=30)
    return {
        "facility_id": w[facility].id,
        "requested_by_id": w["nurse" if facility == "home" else "other_nurse"].id,
        "specialty_id": w[specialty].id,
        "specialist_id": specialist.id if specialist else None,
        "assigned_to_id": assigned.id if assigned else None,
        "patient_id": w["resident" if facility == "home" else "other_resident"],
        "question": f"Question {n}",
        "clinical_context": "",
        "urgency": ExpertiseUrgency.H72,
        "status": status,
        "created_at": created,
        "sent_at": sent,
        "due_at": None if sent is None else sent + timedelta(hours=72),
    }


def _mixed_requests(w: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """Every way a request reaches, or does not reach, the nurse's and Dr's lists."""
    kinds: list[dict[str, Any]] = [
        {},  # to the specialty
        {"status": ExpertiseStatus.DRAFT},  # the facility's draft: never a specialist's
        {"specialist": w["dr"]},  # named to Dr
        {"specialist": w["dr"], "assigned": w["dr"]},  # named to and taken by Dr: listed once
        {"assigned": w["dr"], "status": ExpertiseStatus.TAKEN},  # taken by Dr: listed once
        {"specialist": w["dr2"]},  # named to a colleague
        {"specialty": "cardio"},
        {"facility": "elsewhere"},
        {"status": ExpertiseStatus.ANSWERED, "assigned": w["dr2"]},
    ]
    return [_request_row(w, n, **kinds[n % len(kinds)]) for n in range(count)]


async def _insert(db: Database, model: type[Any], rows: list[dict[str, Any]]) -> None:
    async with db.write() as session:
        for start in range(0, len(rows), 1000):
            await session.execute(insert(model), rows[start : start + 1000])


async def _requests(db: Database) -> list[ExpertiseRequest]:
    async with db.read() as session:
        return list(await session.scalars(select(ExpertiseRequest)))


def _facility_list(rows: list[ExpertiseRequest], user: User) -> list[int]:
    mine = [r for r in rows if r.facility_id == user.facility_id]
    return [r.id for r in sorted(mine, key=lambda r: (r.created_at, r.id), reverse=True)]


def _inbox(rows: list[ExpertiseRequest], user: User) -> list[int]:
    mine = [
        r
        for r in rows
        if r.status is not ExpertiseStatus.DRAFT
        and (
            r.specialist_id == user.id
            or r.assigned_to_id == user.id
            or (r.specialist_id is None and r.specialty_id == user.specialty_id)
        )
    ]
    assert all(r.sent_at is not None for r in mine)
    return [r.id for r in sorted(mine, key=lambda r: (r.sent_at, r.id), reverse=True)]


async def _walk(client: TestClient, path: str, headers: dict[str, str], **params: str) -> Any:
    """Every page of an API list: its items' ids and how many pages it took."""
    ids: list[int] = []
    pages, cursor = 0, None
    while True:
        asked = params | ({"cursor": cursor} if cursor else {})
        response = await client.get(path, params=asked, headers=headers)
        assert response.status == 200, await response.text()
        body = await response.json()
        ids += [item["id"] for item in body["items"]]
        pages, cursor = pages + 1, body["next_cursor"]
        if cursor is None:
            return ids, pages
        assert len(body["items"]) == int(params.get("limit", "50"))


async def _events(db: Database, action: str | None = None) -> list[AuditEvent]:
    async with db.read() as session:
        query = select(AuditEvent).order_by(AuditEvent.id)
        if action is not None:
            query = query.where(AuditEvent.action == action)
        return list(await session.scalars(query))


# --- tele-expertise ------------------------------------------------------------------------------


async def test_every_request_is_on_exactly_one_page_newest_first(
    client: TestClient, db: Database
) -> None:
    w = await _world(db)
    await _insert(db, ExpertiseRequest, _mixed_requests(w, 60))
    rows = await _requests(db)
    for who, expected in (
        ("nurse", _facility_list(rows, w["nurse"])),
        ("other_nurse", _facility_list(rows, w["other_nurse"])),
        ("dr", _inbox(rows, w["dr"])),
        ("dr2", _inbox(rows, w["dr2"])),
        ("dr_cardio", _inbox(rows, w["dr_cardio"])),
    ):
        headers = await bearer(db, w[who])
        ids, pages = await _walk(client, "/api/expertise", headers, limit="4")
        assert ids == expected, who  # each once, in order: ties on the instant by id
        assert pages == max(1, -(-len(expected) // 4))  # no empty last page
    # What Dr's inbox holds: the specialty's, named to them, taken by them; once each.
    dr_ids = set(_inbox(rows, w["dr"]))
    named_and_taken = {r.id for r in rows if r.specialist_id == r.assigned_to_id == w["dr"].id}
    assert named_and_taken and named_and_taken <= dr_ids
    assert not any(
        r.id in dr_ids
        for r in rows
        if r.status is ExpertiseStatus.DRAFT
        or r.specialist_id == w["dr2"].id
        or r.specialty_id == w["cardio"].id
    )


async def test_the_default_page_is_fifty_and_the_limit_is_bounded(
    client: TestClient, db: Database
) -> None:
    w = await _world(db)
    await _insert(db, ExpertiseRequest, [_request_row(w, n) for n in range(55)])
    headers = await bearer(db, w["nurse"])
    body = await (await client.get("/api/expertise", headers=headers)).json()
    assert len(body["items"]) == 50 and body["next_cursor"]
    for limit in ("0", "201", "abc"):
        response = await client.get("/api/expertise", params={"limit": limit}, headers=headers)
        assert response.status == 422 and (await response.json())["error"]["field"] == "limit"


def _tampered(cursor: str) -> list[str]:
    payload, signature = cursor.split(".")
    flip = "A" if signature[0] != "A" else "B"
    raw = json.loads(_unb64(payload))
    raw[2][1] += 1  # a later id, honestly encoded, but not signed by the server
    return [
        f"{payload}.{flip}{signature[1:]}",
        f"{_b64(json.dumps(raw, separators=(',', ':')))}.{signature}",
        cursor + "x",
        cursor.replace(".", ""),
        "not-a-cursor",
    ]


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


async def _refused(client: TestClient, path: str, headers: dict[str, str], **params: str) -> None:
    response = await client.get(path, params=params, headers=headers)
    assert response.status == 422, (path, params, await response.text())
    error = (await response.json())["error"]
    assert {"code": error["code"], "field": error["field"]} == INVALID
    assert "première page" in error["message"]


async def test_tampered_and_foreign_cursors_are_refused_on_cursor(
    client: TestClient, db: Database
) -> None:
    w = await _world(db)
    await _insert(db, ExpertiseRequest, _mixed_requests(w, 40))
    await _insert(db, Act, [_act_row(w, n, NOW - timedelta(hours=n)) for n in range(10)])
    nurse, dr = await bearer(db, w["nurse"]), await bearer(db, w["dr"])
    colleague, admin = await bearer(db, w["colleague"]), await bearer(db, w["admin"])
    first = await (await client.get("/api/expertise", params={"limit": "2"}, headers=nurse)).json()
    cursor = first["next_cursor"]
    before = len(await _events(db))
    for bad in _tampered(cursor):
        await _refused(client, "/api/expertise", nurse, cursor=bad)
    await _refused(client, "/api/expertise", dr, cursor=cursor)  # the nurse's, to a specialist
    await _refused(client, "/api/expertise", colleague, cursor=cursor)  # to a colleague
    await _refused(client, "/api/acts", admin, cursor=cursor)  # another list
    assert len(await _events(db)) == before  # a refused list read is no read
    # Acts: a cursor is bound to its period and to whose acts.
    period = {"from": "2026-06-01", "to": "2026-06-10", "limit": "3"}
    page = await (await client.get("/api/acts", params=period, headers=admin)).json()
    acts_cursor = page["next_cursor"]
    assert acts_cursor
    await _refused(
        client, "/api/acts", admin, **(period | {"to": "2026-06-09"}), cursor=acts_cursor
    )
    await _refused(client, "/api/acts", admin, limit="3", cursor=acts_cursor)  # filter dropped
    dr_acts = await bearer(db, w["dr"])
    await _refused(client, "/api/acts", dr_acts, **period, cursor=acts_cursor)  # admin's, to Dr
    await _refused(client, "/api/expertise", nurse, cursor=acts_cursor)
    for bad in _tampered(acts_cursor):
        await _refused(client, "/api/acts", admin, **period, cursor=bad)
    ok = await client.get("/api/acts", params=period | {"cursor": acts_cursor}, headers=admin)
    assert ok.status == 200


async def test_a_list_read_is_one_audit_event_naming_the_requests_shown(
    client: TestClient, db: Database
) -> None:
    w = await _world(db)
    await _insert(db, ExpertiseRequest, _mixed_requests(w, 40))
    headers = await bearer(db, w["dr"])
    before = len(await _events(db))
    body = await (await client.get("/api/expertise", params={"limit": "5"}, headers=headers)).json()
    after = await _events(db)
    assert len(after) == before + 1  # one, not one per request
    assert after[-1].action == "expertise.listed" and after[-1].actor_id == w["dr"].id
    assert after[-1].detail["ids"] == [item["id"] for item in body["items"]]
    await client.get("/api/expertise", params={"cursor": body["next_cursor"]}, headers=headers)
    assert len(await _events(db)) == before + 2

    # The page: the same one event per page, the « Page suivante » link walks the list.
    await login(client, w["nurse"].email, PASSWORD)
    expected = _facility_list(await _requests(db), w["nurse"])
    seen: list[int] = []
    path: str | None = "/teleexpertise"
    pages = 0
    while path is not None:
        before = len(await _events(db))
        response = await client.get(path)
        assert response.status == 200
        html = await response.text()
        shown = [int(n) for n in re.findall(r'href="/teleexpertise/(\d+)"', html)]
        events = await _events(db)
        assert len(events) == before + 1 and events[-1].detail["ids"] == shown
        seen += shown
        pages += 1
        found = re.search(r'<a href="([^"]+)" rel="next">Page suivante</a>', html)
        path = unescape(found.group(1)) if found else None
        if pages > 1:
            assert "Première page" in html
    assert seen == expected and pages == 1  # 40 mixed rows: fewer than 50 for the nurse

    await _insert(db, ExpertiseRequest, [_request_row(w, n) for n in range(100, 160)])
    expected = _facility_list(await _requests(db), w["nurse"])
    html = await (await client.get("/teleexpertise")).text()
    link = re.search(r'<a href="([^"]+)" rel="next">Page suivante</a>', html)
    assert link is not None and "curseur=" in link.group(1)
    second = await (await client.get(unescape(link.group(1)))).text()
    shown = re.findall(r'href="/teleexpertise/(\d+)"', html + second)
    assert [int(n) for n in shown] == expected and 'rel="next"' not in second


async def test_a_bad_cursor_on_the_page_is_a_french_message_not_a_500(
    client: TestClient, db: Database
) -> None:
    w = await _world(db)
    await _insert(db, ExpertiseRequest, [_request_row(w, n) for n in range(60)])
    await login(client, w["nurse"].email, PASSWORD)
    html = await (await client.get("/teleexpertise")).text()
    link = re.search(r'<a href="([^"]+)" rel="next">', html)
    assert link is not None
    cursor = unescape(link.group(1)).split("curseur=")[1]
    before = len(await _events(db))
    for bad in ("abc", cursor[:-2] + "zz", "x" * 500):
        response = await client.get("/teleexpertise", params={"curseur": bad})
        assert response.status == 422
        assert "Ce lien de page n'est pas valable" in unescape(await response.text())
    assert len(await _events(db)) == before  # nothing read, nothing audited
    await login(client, w["colleague"].email, PASSWORD)  # a colleague's link is the nurse's
    response = await client.get("/teleexpertise", params={"curseur": cursor})
    assert response.status == 422
    assert "Ce lien de page n'est pas valable" in unescape(await response.text())


# --- acts ----------------------------------------------------------------------------------------


def _act_row(w: dict[str, Any], n: int, at: datetime, specialist: str = "dr") -> dict[str, Any]:
    facility: Facility = w["home"]
    doctor: User = w[specialist]
    return {
        "act_type": ActType.TELECONSULTATION,
        "occurred_at": at,
        **acts.local_calendar(at, PARIS),
        "duration_seconds": 600,
        "sign": 1,
        "facility_id": facility.id,
        "facility_finess": facility.finess,
        "facility_category": facility.category,
        "facility_category_code": "500",
        "departement_code": facility.departement_code,
        "region_code": "27",
        "requester_role": "infirmier",
        "requester_rpps": rpps_for(900),
        "specialist_id": doctor.id,
        "specialist_rpps": doctor.rpps,
        "specialty_code": "dermatologie",
        "source_key": f"bulk:{n}",
        "patient_key": f"{n:064x}",
        "patient_consent": True,
        "incidents": "",
        "note": "",
        "recorded_at": NOW,
        "prev_hash": "0" * 64,
        "hash": f"{n + 10**9:064x}",
    }


async def test_the_act_log_walks_newest_first_each_act_once_and_writes_nothing(
    client: TestClient, db: Database
) -> None:
    w = await _world(db)
    # Two acts at each instant, every 5 hours back from now, Dr's and a colleague's.
    rows = [
        _act_row(w, n, NOW - timedelta(hours=5 * (n // 2)), "dr" if n % 3 else "dr2")
        for n in range(70)
    ]
    await _insert(db, Act, rows)
    async with db.read() as session:
        made = list(await session.scalars(select(Act)))
    newest = sorted(made, key=lambda a: (a.occurred_at, a.id), reverse=True)
    admin, dr = await bearer(db, w["admin"]), await bearer(db, w["dr"])
    before = len(await _events(db))
    ids, _ = await _walk(client, "/api/acts", admin, limit="7")
    assert ids == [a.id for a in newest]
    ids, _ = await _walk(client, "/api/acts", dr, limit="4")
    assert ids == [a.id for a in newest if a.specialist_id == w["dr"].id]
    # Local days, inclusive: 8 and 9 June in Paris.
    ids, _ = await _walk(
        client, "/api/acts", admin, limit="5", **{"from": "2026-06-08", "to": "2026-06-09"}
    )
    assert ids == [
        a.id
        for a in newest
        if a.occurred_at.astimezone(PARIS).date().isoformat() in {"2026-06-08", "2026-06-09"}
    ]
    assert ids
    assert len(await _events(db)) == before  # reading the log writes nothing, per row or not


# --- notifications -------------------------------------------------------------------------------


def _notice_row(user: User, n: int) -> dict[str, Any]:
    return {
        "user_id": user.id,
        "kind": "expertise-en-retard",
        "subject": f"Avis {n}",
        "body": f"Avis numéro {n}.\n\n— Telmi",
        "dedupe_key": f"bulk:{user.id}:{n}",
        "created_at": NOW - timedelta(minutes=n // 2),
        "read_at": NOW if n % 4 else None,
    }


def _notice_ids(html: str) -> list[int]:
    return [
        int(n) for n in re.findall(r'<article class="message[^"]*" id="notification-(\d+)"', html)
    ]


async def test_notifications_page_walks_every_notice_once_and_writes_nothing(
    client: TestClient, db: Database
) -> None:
    w = await _world(db)
    await _insert(db, Notification, [_notice_row(w["nurse"], n) for n in range(120)])
    await _insert(db, Notification, [_notice_row(w["colleague"], n) for n in range(120, 130)])
    async with db.read() as session:
        mine = list(
            await session.scalars(select(Notification).where(Notification.user_id == w["nurse"].id))
        )
    expected = [n.id for n in sorted(mine, key=lambda n: (n.created_at, n.id), reverse=True)]
    await login(client, w["nurse"].email, PASSWORD)
    before = len(await _events(db))
    seen: list[int] = []
    path: str | None = "/notifications"
    htmls = []
    while path is not None:
        response = await client.get(path)
        assert response.status == 200
        html = await response.text()
        htmls.append(html)
        seen += _notice_ids(html)
        found = re.search(r'<a href="([^"]+)" rel="next">Page suivante</a>', html)
        path = unescape(found.group(1)) if found else None
    assert seen == expected and len(htmls) == 3  # 50, 50, 20
    assert "30 notifications non lues." in htmls[1]  # of all pages, not of this one
    assert len(await _events(db)) == before

    # « Marquer comme lue » on the second page comes back to the second page.
    link = re.search(r'<a href="([^"]+)" rel="next">Page suivante</a>', htmls[0])
    assert link is not None
    second = unescape(link.group(1))
    token = re.search(r'name="csrf_token" value="([^"]+)"', htmls[1])
    unread = re.search(
        r'name="notification_id" value="(\d+)">\s*<input type="hidden" name="curseur" value="([^"]+)"',
        htmls[1],
    )
    assert token and unread
    done = await client.post(
        "/notifications/lues",
        data={
            "csrf_token": token.group(1),
            "notification_id": unread.group(1),
            "curseur": unescape(unread.group(2)),
        },
        allow_redirects=False,
    )
    assert done.status == 303
    assert done.headers["Location"].split("#")[0] == second

    # A cursor from someone else's page, or edited, is a French message.
    cursor = second.split("curseur=")[1]
    for bad in (cursor[:-3] + "abc", "abc"):
        response = await client.get("/notifications", params={"curseur": bad})
        assert response.status == 422
        assert "Ce lien de page n'est pas valable" in unescape(await response.text())
    await login(client, w["colleague"].email, PASSWORD)
    response = await client.get(second)
    assert response.status == 422


# --- a page's cost on PostgreSQL -----------------------------------------------------------------


def _scans(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _scans(child)


async def _rows_read(db: Database, statement: str, parameters: Any) -> list[tuple[str, int]]:
    """Each scan of the statement's plan and how many rows it read (kept, filtered out or
    rechecked, over all its loops)."""
    async with db.engine.connect() as conn:
        result = await conn.exec_driver_sql(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters
        )
        raw = result.scalar_one()
    plan = (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]
    read = []
    for node in _scans(plan):
        if "Relation Name" in node or "Index Name" in node:
            rows = (
                node["Actual Rows"]
                + node.get("Rows Removed by Filter", 0)
                + node.get("Rows Removed by Index Recheck", 0)
            ) * node["Actual Loops"]
            read.append(
                (f"{node['Node Type']} {node.get('Index Name', node.get('Relation Name'))}", rows)
            )
    return read


async def _check_cost(db: Database, run: Awaitable[T], limit: int) -> T:
    """Run a service's read (not started yet) and EXPLAIN the one statement it sent."""
    with selects_sent(db) as seen:
        result = await run
    listed = [
        s
        for s in seen
        if "expertise_requests" in s[0] or "FROM acts" in s[0] or "notifications" in s[0]
    ]
    assert len(listed) == 1, listed  # one statement for the page
    scans = await _rows_read(db, *listed[0])
    assert scans and all(rows <= limit + 1 for _, rows in scans), (scans, listed[0])
    assert not any(name.startswith("Seq Scan") for name, _ in scans), scans
    return result


async def test_a_page_reads_at_most_limit_plus_one_rows_on_postgresql(pg_db: Database) -> None:
    db, limit = pg_db, 50
    w = await _world(db)
    await _insert(db, ExpertiseRequest, _mixed_requests(w, 4500))
    # The region's acts by eight specialists, Dr doing one in eight.
    for k in range(6):
        w[f"peer{k}"] = await make_user(db, Role.SPECIALIST, specialty=w["derm"])
    doers = ["dr", "dr2", *(f"peer{k}" for k in range(6))]
    await _insert(
        db,
        Act,
        [_act_row(w, n, NOW - timedelta(minutes=20 * n), doers[n % 8]) for n in range(4000)],
    )
    # And a specialist who stopped a year ago: their page must not walk the year since.
    w["retired"] = await make_user(db, Role.SPECIALIST, specialty=w["derm"])
    old = NOW - timedelta(days=400)
    await _insert(
        db, Act, [_act_row(w, n, old - timedelta(hours=n), "retired") for n in range(5000, 5200)]
    )
    for user in ("nurse", "colleague", "dr", "dr2"):
        await _insert(db, Notification, [_notice_row(w[user], n) for n in range(1000)])
    async with db.engine.begin() as conn:  # committed: statistics of a rolled-back ANALYZE go
        await conn.exec_driver_sql("ANALYZE expertise_requests, acts, notifications")

    for who in ("nurse", "dr"):
        ctx = Context(w[who], NOW)
        after = None
        for _ in range(3):  # the first page and two after it
            async with db.write() as session:
                page = await _check_cost(
                    db, expertise.listing(session, ctx, after=after, limit=limit), limit
                )
            assert len(page.items) == limit and page.next_key is not None
            after = page.next_key

    since, until = datetime(2026, 5, 1, tzinfo=PARIS), datetime(2026, 6, 1, tzinfo=PARIS)
    for specialist_id in (None, w["dr"].id, w["retired"].id):
        for period in ((None, None), (since, until)):
            after = None
            for _ in range(3):
                async with db.read() as session:
                    found = await _check_cost(
                        db,
                        acts.page(
                            session,
                            since=period[0],
                            until=period[1],
                            after=after,
                            limit=limit,
                            specialist_id=specialist_id,
                        ),
                        limit,
                    )
                if specialist_id != w["retired"].id or period == (None, None):
                    assert len(found.items) == limit
                after = found.next_key

    after = None
    for _ in range(3):
        async with db.read() as session:
            notices = await _check_cost(
                db,
                notify.for_user(session, w["nurse"], after=after, limit=limit),
                limit,
            )
        assert len(notices.items) == limit
        after = notices.next_key
    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(Notification)) == 4000


async def test_each_page_is_read_off_an_index_on_sqlite(sqlite_db: Database) -> None:
    """SQLite has no EXPLAIN ANALYZE: its plan must search an index in the list's order
    (no table scan, no temporary B-tree sorting a table's rows; the inbox's merge sorts the
    three branches' pages, each at most `limit + 1` rows)."""
    db, limit = sqlite_db, 50
    w = await _world(db)
    await _insert(db, ExpertiseRequest, _mixed_requests(w, 600))
    await _insert(db, Act, [_act_row(w, n, NOW - timedelta(hours=n)) for n in range(300)])
    await _insert(db, Notification, [_notice_row(w["nurse"], n) for n in range(300)])
    async with db.engine.begin() as conn:
        await conn.exec_driver_sql("ANALYZE")
    since, until = datetime(2026, 5, 1, tzinfo=PARIS), datetime(2026, 6, 1, tzinfo=PARIS)
    for who in ("nurse", "dr"):
        after = None
        for _ in range(2):  # the first page and the next
            async with db.write() as session:
                page = await _sqlite_plan(
                    db, expertise.listing(session, Context(w[who], NOW), after=after, limit=limit)
                )
            after = page.next_key
            assert after is not None
    for specialist_id in (None, w["dr"].id):
        for period in ((None, None), (since, until)):
            async with db.read() as session:
                await _sqlite_plan(
                    db,
                    acts.page(
                        session,
                        since=period[0],
                        until=period[1],
                        after=None,
                        limit=limit,
                        specialist_id=specialist_id,
                    ),
                )
    async with db.read() as session:
        await _sqlite_plan(db, notify.for_user(session, w["nurse"], after=None, limit=limit))


async def _sqlite_plan(db: Database, run: Awaitable[T]) -> T:
    with selects_sent(db) as seen:
        result = await run
    listed = [s for s in seen if "audit_events" not in s[0]]
    assert len(listed) == 1, listed
    statement, parameters = listed[0]
    async with db.engine.connect() as conn:
        plan = [
            row[-1]
            for row in await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
        ]
    for i, step in enumerate(plan):  # a sort only of a branch's page (the inbox's merge)
        assert "TEMP B-TREE" not in step or plan[i - 1].startswith("SCAN anon_"), plan
    tables = [s for s in plan if s.startswith(("SCAN", "SEARCH")) and " anon_" not in s]
    assert tables and all("USING INDEX" in step for step in tables), plan
    return result
