"""The signaling library on its own: a real aiohttp server on a socket, real WebSocket clients.

Tokens here are plain strings the test's authorise callback maps to grants; Telmi's signed
tokens are tested with the consultation endpoints.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signaling import protocol
from signaling.bus import InProcessBus
from signaling.rooms import Grant, RoomRegistry
from signaling.server import AuthError, Limits, SignalingServer
from signaling.turn import ice_servers, turn_password

ORIGIN = "http://telmi.test"
SERVER = web.AppKey("server", SignalingServer)
GRANTS = {
    "doc": Grant("r1", "user:1", "specialist", "Dr Morel", host=True),
    "nurse": Grant("r1", "user:2", "staff", "Isabelle"),
    "gp": Grant("r1", "invite:1", "guest", "Dr Traitant", lobby=True),
    "other": Grant("r2", "user:3", "staff", "Ailleurs"),
    **{f"extra{i}": Grant("r1", f"user:{10 + i}", "staff", f"Extra {i}") for i in range(6)},
}


async def authorize(room_id: str, token: str) -> Grant:
    if token == "expired":
        raise AuthError(protocol.TOKEN_EXPIRED, "token expired")
    if token not in GRANTS:
        raise AuthError(protocol.UNAUTHORIZED, "bad token")
    return GRANTS[token]


def make_app(**limits: Any) -> web.Application:
    registry = RoomRegistry(
        InProcessBus(),
        grace_seconds=limits.pop("grace", 20.0),
        welcome=lambda p: {"ice_servers": [], "ping_interval": 20},
    )
    server = SignalingServer(
        registry, authorize, Limits(allowed_origins=frozenset({ORIGIN}), **limits)
    )
    app = web.Application()
    app[SERVER] = server
    app.router.add_get("/ws/rooms/{room_id}", server.handle)
    return app


class Peer:
    """One WebSocket client and the frames it has received."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []

    async def send(self, **frame: Any) -> None:
        await self.ws.send_str(json.dumps(frame))

    async def next(self, kind: str | None = None, timeout: float = 3.0) -> dict[str, Any]:
        """The next frame (of that type, skipping others)."""
        while True:
            msg = await self.ws.receive(timeout=timeout)
            if msg.type != WSMsgType.TEXT:
                raise AssertionError(f"socket closed or not text: {msg.type} {msg.data!r}")
            frame = json.loads(msg.data)
            self.frames.append(frame)
            if kind is None or frame["type"] == kind:
                return frame

    async def nothing(self, wait: float = 0.3) -> None:
        with pytest.raises(TimeoutError):
            msg = await self.ws.receive(timeout=wait)
            raise AssertionError(f"unexpected frame {msg.data!r}")


Connect = Callable[..., Awaitable[Peer]]


@pytest.fixture
async def app_client(aiohttp_client: Any) -> TestClient:
    return await aiohttp_client(make_app(grace=0.5))  # type: ignore[no-any-return]


@pytest.fixture
def connect(app_client: TestClient) -> Connect:
    async def open_(
        room: str = "r1", token: str | None = None, resume: str | None = None, **kw: Any
    ) -> Peer:
        ws = await app_client.ws_connect(f"/ws/rooms/{room}", origin=ORIGIN, **kw)
        peer = Peer(ws)
        if token is not None:
            await peer.send(type="join", token=token, **({"resume": resume} if resume else {}))
        return peer

    return open_


async def test_two_participants_join_and_relay_offers_to_each_other(connect: Connect) -> None:
    doc = await connect(token="doc")
    welcome = await doc.next("joined")
    assert (
        welcome["participants"] == [] and welcome["ice_servers"] == [] and welcome["resume_token"]
    )
    nurse = await connect(token="nurse")
    joined = await nurse.next("joined")
    assert [p["name"] for p in joined["participants"]] == ["Dr Morel"]
    assert joined["polite"] is True  # the newcomer is polite towards those already here
    arrived = await doc.next("participant-joined")
    assert arrived["participant_id"] == joined["participant_id"] and arrived["role"] == "staff"
    await nurse.send(type="offer", to=welcome["participant_id"], sdp="v=0 offer")
    offer = await doc.next("offer")
    assert offer == {"type": "offer", "from": joined["participant_id"], "sdp": "v=0 offer"}
    await doc.send(
        type="candidate", to=joined["participant_id"], candidate={"candidate": "c", "sdpMid": "0"}
    )
    candidate = await nurse.next("candidate")
    assert (
        candidate["from"] == welcome["participant_id"] and candidate["candidate"]["sdpMid"] == "0"
    )
    await nurse.send(type="leave")
    left = await doc.next("participant-left")
    assert left == {
        "type": "participant-left",
        "participant_id": joined["participant_id"],
        "reason": "left",
    }


async def test_a_guest_waits_in_the_lobby_until_admitted(connect: Connect) -> None:
    doc = await connect(token="doc")
    await doc.next("joined")
    gp = await connect(token="gp")
    waiting = await gp.next()
    assert waiting["type"] == "waiting"
    knock = await doc.next("knock")
    assert knock["name"] == "Dr Traitant" and knock["participant_id"] == waiting["participant_id"]
    await gp.send(type="offer", to="whoever", sdp="x")  # not in the room yet
    assert (await gp.next("error"))["code"] == protocol.NOT_IN_ROOM
    nurse = await connect(token="nurse")
    await nurse.next("joined")
    await nurse.send(type="admit", participant_id=waiting["participant_id"])
    assert (await nurse.next("error"))["code"] == protocol.FORBIDDEN  # only the specialist admits
    await doc.send(type="admit", participant_id=waiting["participant_id"])
    admitted = await gp.next("joined")
    assert {p["name"] for p in admitted["participants"]} == {"Dr Morel", "Isabelle"}
    assert (await nurse.next("participant-joined"))["name"] == "Dr Traitant"


async def test_a_denied_guest_is_told_and_disconnected(connect: Connect) -> None:
    doc = await connect(token="doc")
    await doc.next("joined")
    gp = await connect(token="gp")
    waiting = await gp.next("waiting")
    await doc.send(type="deny", participant_id=waiting["participant_id"])
    assert (await gp.next("error"))["code"] == protocol.DENIED
    closed = await gp.ws.receive(timeout=3)
    assert closed.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING)


async def test_a_dropped_socket_resumes_its_place_and_gets_what_it_missed(connect: Connect) -> None:
    doc = await connect(token="doc")
    first = await doc.next("joined")
    nurse = await connect(token="nurse")
    nurse_id = (await nurse.next("joined"))["participant_id"]
    await doc.next("participant-joined")
    await doc.ws.close()  # the network drops; no leave
    away = await nurse.next("participant-updated")
    assert away["participant_id"] == first["participant_id"] and away["state"] == "reconnecting"
    await nurse.send(type="offer", to=first["participant_id"], sdp="sent while away")
    back = await connect(token="expired", resume=first["resume_token"])  # resume token suffices
    again = await back.next("joined")
    assert again["participant_id"] == first["participant_id"]
    missed = await back.next("offer")
    assert missed["sdp"] == "sent while away" and missed["from"] == nurse_id
    returned = await nurse.next("participant-updated")
    assert returned["state"] == "connected"
    assert not any(f["type"] in ("participant-left", "participant-joined") for f in nurse.frames)


async def test_past_the_grace_period_the_participant_has_left(connect: Connect) -> None:
    doc = await connect(token="doc")
    await doc.next("joined")
    nurse = await connect(token="nurse")
    nurse_id = (await nurse.next("joined"))["participant_id"]
    await nurse.ws.close()
    assert (await doc.next("participant-updated"))["state"] == "reconnecting"
    left = await doc.next("participant-left", timeout=3)
    assert left["participant_id"] == nurse_id and left["reason"] == "timeout"


async def test_joining_again_with_the_same_identity_replaces_the_old_socket(
    connect: Connect,
) -> None:
    doc = await connect(token="doc")
    await doc.next("joined")
    tab1 = await connect(token="nurse")
    first_id = (await tab1.next("joined"))["participant_id"]
    await doc.next("participant-joined")
    tab2 = await connect(token="nurse")
    assert (await tab2.next("joined"))["participant_id"] == first_id
    closed = await tab1.ws.receive(timeout=3)
    assert closed.type in (WSMsgType.CLOSE, WSMsgType.CLOSED) and tab1.ws.close_code == 4000
    await doc.nothing()  # no leave/join noise for the others


@pytest.mark.parametrize(
    ("token", "room", "code"),
    [
        ("nope", "r1", protocol.UNAUTHORIZED),
        ("expired", "r1", protocol.TOKEN_EXPIRED),
        ("other", "r1", protocol.UNAUTHORIZED),
    ],
)
async def test_bad_tokens_are_refused(connect: Connect, token: str, room: str, code: str) -> None:
    peer = await connect(room=room, token=token)
    assert (await peer.next("error"))["code"] == code
    closed = await peer.ws.receive(timeout=3)
    assert closed.type in (WSMsgType.CLOSE, WSMsgType.CLOSED)


async def test_the_first_frame_must_be_join(connect: Connect) -> None:
    peer = await connect()
    await peer.send(type="offer", to="x", sdp="y")
    assert (await peer.next("error"))["code"] == protocol.UNAUTHORIZED


async def test_a_room_holds_five(connect: Connect) -> None:
    peers = [await connect(token="doc")] + [await connect(token=f"extra{i}") for i in range(4)]
    for p in peers:
        await p.next("joined")
    sixth = await connect(token="extra5")
    assert (await sixth.next("error"))["code"] == protocol.ROOM_FULL


async def test_bad_frames_get_an_error_and_the_socket_stays_usable(connect: Connect) -> None:
    doc = await connect(token="doc")
    await doc.next("joined")
    for bad in (
        "{not json",
        "[1, 2]",
        '{"type": 42}',
        '{"type": "teleport"}',
        '{"type": "offer", "to": "x"}',
    ):
        await doc.ws.send_str(bad)
        assert (await doc.next("error"))["code"] == protocol.BAD_MESSAGE, bad
    await doc.ws.send_bytes(b"\x00\x01")
    assert (await doc.next("error"))["code"] == protocol.BAD_MESSAGE
    await doc.send(type="offer", to="ghost", sdp="v=0")
    assert (await doc.next("error"))["code"] == protocol.UNKNOWN_PARTICIPANT
    await doc.send(type="ping", id=7)
    assert await doc.next("pong") == {"type": "pong", "id": 7}


async def test_nothing_crosses_between_rooms(connect: Connect) -> None:
    doc = await connect(token="doc")
    doc_id = (await doc.next("joined"))["participant_id"]
    stranger = await connect(room="r2", token="other")
    await stranger.next("joined")
    await stranger.send(type="offer", to=doc_id, sdp="v=0 intrusion")
    assert (await stranger.next("error"))["code"] == protocol.UNKNOWN_PARTICIPANT
    await doc.nothing()


async def test_frames_over_64_kib_close_the_socket_with_1009(connect: Connect) -> None:
    doc = await connect(token="doc")
    await doc.next("joined")
    await doc.ws.send_str(json.dumps({"type": "offer", "to": "x", "sdp": "a" * 70_000}))
    msg = await doc.ws.receive(timeout=3)
    assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED)
    assert doc.ws.close_code == 1009


async def test_flooding_is_rate_limited(aiohttp_client: Any) -> None:
    client = await aiohttp_client(make_app(messages_per_second=5, burst=5))
    ws = await client.ws_connect("/ws/rooms/r1", origin=ORIGIN)
    peer = Peer(ws)
    await peer.send(type="join", token="doc")
    await peer.next("joined")
    for i in range(9):
        await peer.send(type="ping", id=i)
    kinds = [(await peer.next())["type"] for _ in range(9)]
    assert 5 <= kinds.count("pong") <= 6 and "error" in kinds
    assert any(f.get("code") == protocol.RATE_LIMITED for f in peer.frames)
    for i in range(30):  # a client that keeps flooding is cut off
        await peer.send(type="ping", id=i)
    while (await ws.receive(timeout=3)).type == WSMsgType.TEXT:
        pass
    assert ws.close_code == 1008


async def test_origin_is_checked_before_the_upgrade(app_client: TestClient) -> None:
    for origin in ("http://evil.example", None):
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await app_client.ws_connect("/ws/rooms/r1", **({"origin": origin} if origin else {}))
        assert refused.value.status == 403
    plain = await app_client.get("/ws/rooms/r1", headers={"Origin": "http://evil.example"})
    assert plain.status == 403
    assert (await plain.json())["error"]["code"] == "origin_not_allowed"


async def test_no_compression_and_a_server_heartbeat(aiohttp_client: Any) -> None:
    client = await aiohttp_client(make_app(heartbeat_seconds=0.2))
    ws = await client.ws_connect("/ws/rooms/r1", origin=ORIGIN, compress=15, autoping=False)
    assert ws.compress == 0  # permessage-deflate refused
    msg = await ws.receive(timeout=3)
    assert msg.type == WSMsgType.PING


async def test_closing_a_room_tells_everyone_and_refuses_later_joins(
    app_client: TestClient, connect: Connect
) -> None:
    doc = await connect(token="doc")
    await doc.next("joined")
    await app_client.app[SERVER].registry.close_room("r1")
    assert (await doc.next("error"))["code"] == protocol.ROOM_CLOSED
    late = await connect(token="nurse")
    assert (await late.next("error"))["code"] == protocol.ROOM_CLOSED


def test_turn_credentials_follow_the_turn_rest_convention() -> None:
    servers = ice_servers(
        stun_urls=["stun:stun.example:3478"],
        turn_urls=["turn:turn.example:3478?transport=udp"],
        turn_secret="s3cret",
        participant_id="abc",
        now=1_700_000_000,
        ttl_seconds=3600,
    )
    assert servers[0] == {"urls": ["stun:stun.example:3478"]}
    assert servers[1]["username"] == "1700003600:abc"
    # coturn's check: base64(HMAC-SHA1(secret, username)), computed independently here.
    import base64
    import hashlib
    import hmac

    expected = base64.b64encode(
        hmac.new(b"s3cret", b"1700003600:abc", hashlib.sha1).digest()
    ).decode()
    assert servers[1]["credential"] == expected == turn_password("s3cret", "1700003600:abc")
    assert (
        ice_servers(
            stun_urls=[], turn_urls=[], turn_secret=None, participant_id="x", now=0, ttl_seconds=1
        )
        == []
    )


def test_protocol_refuses_oversized_and_malformed_fields() -> None:
    with pytest.raises(protocol.ProtocolError):
        protocol.parse(json.dumps({"type": "candidate", "to": "a", "candidate": "not an object"}))
    with pytest.raises(protocol.ProtocolError):
        protocol.parse(json.dumps({"type": "update", "state": {"audio": "yes"}}))
    with pytest.raises(protocol.ProtocolError):
        protocol.parse(json.dumps({"type": "join", "token": ""}))
    assert protocol.parse('{"type": "candidate", "to": "a", "candidate": null}') == protocol.Relay(
        "candidate", "a", {"candidate": None}
    )
    assert asyncio.iscoroutinefunction(SignalingServer.handle)


def test_signaling_and_scheduling_never_import_telmi() -> None:
    """The dependency runs one way: telmi uses them, they know nothing of telmi."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    for package in ("signaling", "scheduling"):
        for path in (root / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else []
                )
                assert not any(n == "telmi" or n.startswith("telmi.") for n in names), path


async def test_turn_credentials_are_refreshed_before_they_expire(aiohttp_client: Any) -> None:
    registry = RoomRegistry(
        InProcessBus(),
        welcome=lambda p: {
            "ice_servers": ice_servers(
                stun_urls=[],
                turn_urls=["turn:turn.example:3478"],
                turn_secret="s3cret",
                participant_id=p.id,
                now=time.time(),
                ttl_seconds=60,
            )
        },
    )
    limits = Limits(allowed_origins=frozenset({ORIGIN}), ice_refresh_seconds=0.2)
    app = web.Application()
    app.router.add_get("/ws/rooms/{room_id}", SignalingServer(registry, authorize, limits).handle)
    client = await aiohttp_client(app)
    peer = Peer(await client.ws_connect("/ws/rooms/r1", origin=ORIGIN))
    await peer.send(type="join", token="doc")
    first = (await peer.next("joined"))["ice_servers"][0]
    assert first["username"].endswith(":" + (peer.frames[-1]["participant_id"]))
    refreshed = (await peer.next("ice-servers"))["ice_servers"][0]
    assert refreshed["credential"] == turn_password("s3cret", refreshed["username"])


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
frames = st.one_of(
    st.text(max_size=200),
    json_values.map(json.dumps),
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(
                [*protocol.RELAYED, "admit", "deny", "update", "ping", "join", "x"]
            )
        },
        optional={
            "to": json_values,
            "sdp": json_values,
            "candidate": json_values,
            "participant_id": json_values,
            "state": json_values,
            "token": json_values,
            "id": json_values,
        },
    ).map(json.dumps),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batch=st.lists(frames, min_size=1, max_size=8))
async def test_nothing_a_client_sends_breaks_the_server(connect: Connect, batch: list[str]) -> None:
    doc = await connect(token="doc")
    await doc.next("joined")
    for frame in batch:
        await doc.ws.send_str(frame)
    await doc.send(type="ping", id="still-alive")
    while (reply := await doc.next()).get("id") != "still-alive":
        assert reply["type"] in ("error", "pong", "participant-updated"), reply
    await doc.send(type="leave")


def _documented_frames(direction: str) -> list[dict[str, Any]]:
    """The example frames of ARCHITECTURE.md « Signaling protocol v1 », `// comments` off."""
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "ARCHITECTURE.md").read_text("utf-8")
    section = text.split("## Signaling protocol v1", 1)[1]
    block = section.split(f"{direction}:\n\n```json\n", 1)[1].split("```", 1)[0]
    frames, pending = [], ""
    for line in block.splitlines():
        pending += line.split("  //", 1)[0].strip().replace("[...]", "[]")
        try:
            frames.append(json.loads(pending))
            pending = ""
        except json.JSONDecodeError:
            continue  # a frame spread over lines
    assert not pending, pending
    return frames


async def test_a_client_written_from_the_document_alone_gets_what_it_documents(
    connect: Connect,
) -> None:
    """Every documented client frame is accepted as written; the server's frames carry the
    documented fields; candidates trickle and end with `null`; `ping` is answered."""
    client_frames = _documented_frames("Client to server")
    assert {f["type"] for f in client_frames} == {
        "join", "offer", "answer", "candidate", "admit", "deny", "update", "leave", "ping"
    }  # fmt: skip
    for frame in client_frames:
        protocol.parse(json.dumps(frame))  # raises if the document shows a refused frame
    documented = {f["type"]: set(f) for f in _documented_frames("Server to client")}

    doc, nurse = await connect(token="doc"), await connect(token="nurse")
    joined = await nurse.next("joined")
    assert set(joined) == documented["joined"]
    arrived = await doc.next("participant-joined")
    assert set(arrived) == documented["participant-joined"]
    assert joined["polite"] is True and joined["seq"] > joined["participants"][0]["seq"]
    offer = next(f for f in client_frames if f["type"] == "offer")
    doc_id = joined["participants"][0]["participant_id"]
    await nurse.send(**{**offer, "to": doc_id})  # the newcomer offers
    relayed = await doc.next("offer")
    assert set(relayed) == documented["offer"] and relayed["from"] == joined["participant_id"]
    candidate = next(f for f in client_frames if f["type"] == "candidate")
    for payload in (candidate["candidate"], None):  # trickle, then end of candidates
        await doc.send(type="candidate", to=joined["participant_id"], candidate=payload)
        assert (await nurse.next("candidate"))["candidate"] == payload
    await nurse.send(**next(f for f in client_frames if f["type"] == "ping"))
    assert await nurse.next("pong") == {"type": "pong", "id": 7}


async def test_audio_only_is_a_media_state_the_others_see(connect: Connect) -> None:
    """A weak network: the nurse goes audio only; the specialist's page is told (it shows her
    initials); a malformed state is refused with an error frame and the socket stays usable."""
    doc = await connect(token="doc")
    await doc.next("joined")
    nurse = await connect(token="nurse")
    nurse_id = (await nurse.next("joined"))["participant_id"]
    await doc.next("participant-joined")
    await nurse.send(type="update", state={"audio_only": True, "video": True})
    told = await doc.next("participant-updated")
    assert told["participant_id"] == nurse_id
    assert told["media"] == {"audio_only": True, "video": True}
    wrongs: list[Any] = [{"audio_only": "yes"}, {"audio_only": 1}, {"bandwidth": True}, []]
    for wrong in wrongs:
        await nurse.send(type="update", state=wrong)
        refused = await nurse.next("error")
        assert refused["code"] == protocol.BAD_MESSAGE
    await nurse.send(type="update", state={"audio_only": False})
    back = await doc.next("participant-updated")
    assert back["media"] == {"audio_only": False, "video": True}
    await nurse.send(type="ping", id=1)
    assert (await nurse.next("pong"))["id"] == 1
