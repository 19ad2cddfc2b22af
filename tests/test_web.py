"""The HTTP surface: health, directory API, error shapes, security headers, OpenAPI, access."""

from __future__ import annotations

import re
from typing import Any

from aiohttp.test_utils import TestClient
from aiohttp.web_urldispatcher import StaticResource
from aiortc import RTCPeerConnection
from openapi_spec_validator import validate
from sqlalchemy import func, select

from telmi import accounts
from telmi.app import create_app
from telmi.context import Context
from telmi.db import Database
from telmi.models import ApiToken, FacilityCategory, Role
from telmi.settings import Settings
from telmi.web.access import access_of
from telmi.web.api.openapi import document
from telmi.web.rooms import ECHO

from .factories import NOW, make_facility, make_user


async def _bearer(db: Database, role: Role = Role.ADMIN, **kwargs: Any) -> dict[str, str]:
    user = await make_user(db, role, **kwargs)
    async with db.write() as session:
        _, raw = await accounts.create_token(session, Context(user, NOW), accounts.NewToken())
    return {"Authorization": f"Bearer {raw}"}


def _assert_error_shape(body: Any, code: str) -> None:
    assert set(body) == {"error"}
    assert set(body["error"]) - {"field"} == {"code", "message"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


async def test_healthz_checks_the_database(client: TestClient) -> None:
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok", "database": "ok"}


async def test_healthz_reports_an_unreachable_database(
    aiohttp_client: Any, settings: Settings, tmp_path: Any
) -> None:
    missing = tmp_path / "no-such-dir" / "telmi.sqlite3"
    broken = settings.replace(database_url=f"sqlite+aiosqlite:///{missing}")
    client = await aiohttp_client(create_app(broken, require_migrated=False))
    response = await client.get("/healthz")
    assert response.status == 503
    assert (await response.json())["database"] == "unreachable"


async def test_staff_see_only_their_own_facility(client: TestClient, db: Database) -> None:
    mine = await make_facility(db, name="EHPAD Mien")
    await make_facility(db, name="EHPAD Autre")
    headers = await _bearer(db, Role.STAFF, facility=mine)
    response = await client.get("/api/facilities", headers=headers)
    assert response.status == 200
    assert [f["name"] for f in (await response.json())["items"]] == ["EHPAD Mien"]


async def test_facilities_filter_by_departement_and_category(
    client: TestClient, db: Database
) -> None:
    await make_facility(db, departement="21", category=FacilityCategory.HOSPITAL, name="CH 21")
    await make_facility(db, departement="25", category=FacilityCategory.HOSPITAL, name="CH 25")
    await make_facility(db, departement="25", name="EHPAD 25")
    headers = await _bearer(db, Role.REGIONAL)
    everything = await (await client.get("/api/facilities", headers=headers)).json()
    assert {f["name"] for f in everything["items"]} == {"CH 21", "CH 25", "EHPAD 25"}
    doubs = await client.get(
        "/api/facilities", params={"departement": "25", "category": "hospital"}, headers=headers
    )
    assert [f["name"] for f in (await doubs.json())["items"]] == ["CH 25"]


async def test_unknown_facility_category_is_a_422_naming_it(
    client: TestClient, db: Database
) -> None:
    headers = await _bearer(db)
    response = await client.get("/api/facilities?category=castle", headers=headers)
    assert response.status == 422
    body = await response.json()
    _assert_error_shape(body, "invalid")
    assert "nursing_home" in body["error"]["message"]


async def test_a_departement_filter_that_names_none_is_a_422(
    client: TestClient, db: Database
) -> None:
    headers = await _bearer(db)
    for bad in ("<script>", "2C", "1234"):
        response = await client.get("/api/facilities", params={"departement": bad}, headers=headers)
        assert response.status == 422, bad
        assert (await response.json())["error"]["field"] == "departement"
    corsica = await client.get("/api/facilities", params={"departement": "2A"}, headers=headers)
    assert corsica.status == 200 and (await corsica.json())["items"] == []


async def test_token_names_are_short_text_and_the_body_has_no_other_field(
    client: TestClient, db: Database
) -> None:
    headers = await _bearer(db)
    for body, field in (
        ({"name": "x" * 101}, "name"),
        ({"name": "ok", "scope": "all"}, "scope"),
        ({"name": "a\u0000b"}, "name"),
    ):
        response = await client.post("/api/tokens", json=body, headers=headers)
        assert response.status == 422, body
        assert (await response.json())["error"]["field"] == field
    created = await client.post("/api/tokens", json={"name": "  export  "}, headers=headers)
    assert created.status == 201
    made = await created.json()
    assert made["name"] == "export" and made["token"].startswith(accounts.TOKEN_PREFIX)
    listed = await (await client.get("/api/tokens", headers=headers)).json()
    assert [t["name"] for t in listed["items"]] == ["", "export"]
    assert all("token" not in t for t in listed["items"])


async def test_a_precall_offer_must_be_an_sdp_offer(client: TestClient, db: Database) -> None:
    headers = await _bearer(db, Role.STAFF)
    for body, field in (
        ({"type": "answer", "sdp": "v=0 " * 10}, "type"),
        ({"type": "offer", "sdp": "v=0"}, "sdp"),
        ({"type": "offer"}, "sdp"),
        ({"type": "offer", "sdp": 42}, "sdp"),
        ({"type": "offer", "sdp": "00000000000"}, "sdp"),  # no SDP: once an empty echo peer
        ({"type": "offer", "sdp": "v=0\r\na=group:BUNDLE 0\r\nm=video"}, "sdp"),  # was a 500
        ({"type": "offer", "sdp": "v=0\r\nm=audio 9 UDP 0\r\n"}, "sdp"),  # no ICE credentials
    ):
        response = await client.post("/api/precall/offer", json=body, headers=headers)
        assert response.status == 422, body
        assert (await response.json())["error"]["field"] == field


async def test_a_precall_test_when_every_echo_peer_is_busy_says_when_to_retry(
    client: TestClient, db: Database
) -> None:
    """Capacity, not a fault: a 429 with Retry-After, as the document says, not a 5xx."""
    headers = await _bearer(db, Role.STAFF)
    browser = RTCPeerConnection()
    try:
        browser.createDataChannel("rtt")
        await browser.setLocalDescription(await browser.createOffer())
        offer = {"type": "offer", "sdp": browser.localDescription.sdp}
    finally:
        await browser.close()
    client.app[ECHO].limit = 0  # every echo peer taken
    response = await client.post("/api/precall/offer", json=offer, headers=headers)
    assert response.status == 429
    assert response.headers["Retry-After"] == "60"
    assert (await response.json())["error"]["code"] == "echo_busy"
    documented = document()["paths"]["/api/precall/offer"]["post"]["responses"]
    assert "429" in documented and not any(code.startswith("5") for code in documented)


async def test_specialties_are_listed(client: TestClient, db: Database) -> None:
    headers = await _bearer(db, Role.SPECIALIST)  # creates the dermatology specialty
    response = await client.get("/api/specialties", headers=headers)
    assert [s["code"] for s in (await response.json())["items"]] == ["dermatologie"]


async def test_every_api_failure_has_the_error_shape(client: TestClient, db: Database) -> None:
    headers = await _bearer(db)
    cases = [
        (client.get("/api/me"), 401, "unauthenticated"),
        (client.get("/api/nothing-here", headers=headers), 404, "not_found"),
        (client.put("/api/me", headers=headers), 405, "method_not_allowed"),
        (client.delete("/api/tokens/999", headers=headers), 404, "not_found"),
        (client.delete("/api/tokens/abc", headers=headers), 404, "not_found"),
        (
            client.post(
                "/api/tokens",
                data=b"{not json",
                headers={**headers, "Content-Type": "application/json"},
            ),
            400,
            "malformed_json",
        ),
        (client.post("/api/tokens", json=[1, 2], headers=headers), 400, "malformed_json"),
        (client.post("/api/tokens", data="name=x", headers=headers), 415, "unsupported_media_type"),
        (client.post("/api/tokens", json={"name": 42}, headers=headers), 422, "invalid"),
    ]
    for request, status, code in cases:
        response = await request
        assert response.status == status, (status, code, await response.text())
        _assert_error_shape(await response.json(), code)
    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(ApiToken)) == 1  # _bearer's


async def test_oversized_bodies_are_refused_and_change_nothing(
    client: TestClient, db: Database
) -> None:
    headers = await _bearer(db)
    huge = b'{"name": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    response = await client.post(
        "/api/tokens", data=huge, headers={**headers, "Content-Type": "application/json"}
    )
    assert response.status == 413
    _assert_error_shape(await response.json(), "body_too_large")
    await client.get("/login")  # a pre-session cookie, so the body is read
    page = await client.post("/login", data={"email": "x" * (2 * 1024 * 1024)})
    assert page.status == 413
    assert "trop volumineux" in await page.text()
    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(ApiToken)) == 1


async def test_unknown_page_gets_a_french_error_page(client: TestClient) -> None:
    response = await client.get("/nulle-part")
    assert response.status == 404
    html = await response.text()
    assert 'lang="fr"' in html and "Page introuvable" in html


async def test_security_headers_on_pages_api_static_and_errors(
    client: TestClient, db: Database
) -> None:
    headers = await _bearer(db)
    for path, auth in [
        ("/login", {}),
        ("/api/me", headers),
        ("/api/me", {}),
        ("/static/css/telmi.css", {}),
        ("/nulle-part", {}),
    ]:
        response = await client.get(path, headers=auth)
        csp = response.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp, path
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp, path
        assert response.headers["X-Content-Type-Options"] == "nosniff", path
        assert response.headers["Referrer-Policy"] == "same-origin", path
    api = await client.get("/api/me", headers=headers)
    assert api.headers["Cache-Control"] == "no-store"


async def test_pages_have_no_inline_script(client: TestClient) -> None:
    html = await (await client.get("/login")).text()
    assert "<script>" not in html and "onclick=" not in html


async def test_openapi_document_is_valid_and_describes_every_api_route(
    client: TestClient,
) -> None:
    response = await client.get("/api/openapi.json")
    assert response.status == 200
    spec = await response.json()
    assert spec["openapi"].startswith("3.1")
    validate(spec)
    described = {(path, method.upper()) for path, item in spec["paths"].items() for method in item}
    served = {
        (route.resource.canonical, route.method)
        for route in client.app.router.routes()
        if route.resource is not None
        and route.resource.canonical.startswith("/api/")
        and route.method != "HEAD"
    }
    assert served == described


def test_every_route_declares_who_may_call_it(settings: Settings) -> None:
    app = create_app(settings)
    for route in app.router.routes():
        if isinstance(route.resource, StaticResource):
            continue
        assert access_of(route.handler) is not None, (
            f"{route.method} {route.resource} declares no access"
        )


def test_every_id_in_a_route_is_digits_in_the_route_table(settings: Settings) -> None:
    """No handler parses an id: `\\d+` in the route, then 1 to 2^31-1 (`http.path_ids`)."""
    app, seen = create_app(settings), 0
    for resource in app.router.resources():
        pattern = resource.get_info().get("pattern")
        for name in re.findall(r"\{(\w+)\}", resource.canonical):
            if name == "room_id":  # a room's name, not a row: the signaling library checks it
                continue
            seen += 1
            assert name.endswith("_id") and pattern is not None, resource.canonical
            assert f"(?P<{name}>\\d+)" in pattern.pattern, resource.canonical
    assert seen >= 20


def test_openapi_document_is_built_without_a_server() -> None:
    validate(document())


async def test_every_request_gets_one_request_id_a_trusted_proxy_may_give(
    aiohttp_client: Any, settings: Settings, clock: Any, db: Database
) -> None:
    client = await aiohttp_client(create_app(settings, clock=clock))
    first, second = [(await client.get("/healthz")).headers["X-Request-Id"] for _ in range(2)]
    assert len(first) == 16 and first != second
    ignored = await client.get("/healthz", headers={"X-Request-Id": "from-the-client"})
    assert ignored.headers["X-Request-Id"] != "from-the-client"  # no proxy is trusted
    behind = await aiohttp_client(create_app(settings.replace(trust_proxy=True), clock=clock))
    given = await behind.get("/healthz", headers={"X-Request-Id": "haproxy-42"})
    assert given.headers["X-Request-Id"] == "haproxy-42"
    odd = await behind.get("/healthz", headers={"X-Request-Id": "bad id\twith tab"})
    assert odd.headers["X-Request-Id"] != "bad id\twith tab"
