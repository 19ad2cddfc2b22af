"""Real WebRTC through Telmi's signaling: aiortc peers in a consultation room, the echo peer."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import VideoStreamTrack

from scheduling.clock import FrozenClock
from signaling.peers import EchoPeers, RoomClient, rtc_configuration
from telmi.db import Database
from telmi.models import Role

from .factories import (
    bearer,
    make_facility,
    make_resident,
    make_slot,
    make_user,
    record_consent,
)

ORIGIN = "http://127.0.0.1:8080"


async def _until(check: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


@pytest.fixture
async def room(client: TestClient, db: Database, clock: FrozenClock) -> dict[str, Any]:
    facility = await make_facility(db)
    staff = await make_user(db, Role.STAFF, facility=facility)
    specialist = await make_user(db, Role.SPECIALIST)
    slot = await make_slot(db, specialist, clock.now() + timedelta(minutes=5))
    ha, hs = await bearer(db, staff), await bearer(db, specialist)
    resident = await make_resident(db, staff, reference="RES-1")
    booked = await client.post(
        "/api/bookings",
        json={
            "slot_id": slot.id,
            "patient_id": resident.id,
            "act_type": "teleconsultation",
            "reason": "",
        },
        headers={**ha, "Idempotency-Key": str(uuid.uuid4())},
    )
    booking_id = (await booked.json())["id"]
    await record_consent(db, staff, booking_id)  # the specialist may start the act

    async def ticket(headers: dict[str, str]) -> dict[str, Any]:
        response = await client.post(f"/api/bookings/{booking_id}/join", headers=headers)
        assert response.status == 200
        return await response.json()  # type: ignore[no-any-return]

    return {"booking_id": booking_id, "ha": ha, "hs": hs, "ticket": ticket}


def _url(client: TestClient, ticket: dict[str, Any]) -> str:
    return str(client.make_url(ticket["ws_path"])).replace("http://", "ws://")


async def test_two_aiortc_peers_exchange_media_and_a_message_through_the_room(
    client: TestClient, room: dict[str, Any]
) -> None:
    doc_ticket = await room["ticket"](room["hs"])
    doc = RoomClient(_url(client, doc_ticket), doc_ticket["token"], origin=ORIGIN)
    nurse_ticket = await room["ticket"](room["ha"])
    nurse = RoomClient(_url(client, nurse_ticket), nurse_ticket["token"], origin=ORIGIN)
    try:
        await doc.join()
        started = time.monotonic()
        await nurse.join()
        await asyncio.wait_for(nurse.connected.wait(), 10)
        await asyncio.wait_for(doc.connected.wait(), 10)
        connect_seconds = time.monotonic() - started
        await _until(lambda: doc.remotes and nurse.remotes)
        from_doc = next(iter(nurse.remotes.values()))
        to_nurse = next(iter(doc.remotes.values()))
        await _until(lambda: from_doc.frames["video"] > 5 and to_nurse.frames["video"] > 5)
        await _until(lambda: to_nurse.channel is not None and to_nurse.channel.readyState == "open")
        assert to_nurse.channel is not None
        to_nurse.channel.send("bonjour depuis le cabinet")
        await _until(lambda: "bonjour depuis le cabinet" in from_doc.messages)
        assert connect_seconds < 10
    finally:
        await nurse.close()
        await doc.close()


async def test_echo_peer_sends_the_camera_back() -> None:
    echo = EchoPeers()
    pc = RTCPeerConnection(rtc_configuration([]))
    received = {"frames": 0}
    pc.addTrack(VideoStreamTrack())
    channel = pc.createDataChannel("rtt")
    replies: list[str] = []
    channel.on("message", replies.append)

    @pc.on("track")
    def on_track(track: Any) -> None:
        async def count() -> None:
            while True:
                await track.recv()
                received["frames"] += 1

        asyncio.ensure_future(count())

    try:
        await pc.setLocalDescription(await pc.createOffer())
        answer = await echo.answer(pc.localDescription.sdp)
        await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        await _until(lambda: received["frames"] > 5)
        await _until(lambda: channel.readyState == "open")
        channel.send("ping:1")
        await _until(lambda: replies == ["ping:1"])
    finally:
        await pc.close()
        await echo.close()
    assert echo.peers == set()


async def test_echo_sessions_are_limited() -> None:
    echo = EchoPeers(limit=1)
    pcs = [RTCPeerConnection(rtc_configuration([])) for _ in range(2)]
    try:
        offers = []
        for pc in pcs:
            pc.addTrack(VideoStreamTrack())
            await pc.setLocalDescription(await pc.createOffer())
            offers.append(pc.localDescription.sdp)
        await echo.answer(offers[0])
        with pytest.raises(OverflowError):
            await echo.answer(offers[1])
    finally:
        for pc in pcs:
            await pc.close()
        await echo.close()


def test_aiortc_gets_an_explicit_empty_ice_list_when_none_is_configured() -> None:
    """aiortc falls back to a public STUN server when given None; Telmi never gives None."""
    assert rtc_configuration([]).iceServers == []
    servers = rtc_configuration(
        [{"urls": ["turn:t.example:3478"], "username": "u", "credential": "c"}]
    )
    assert servers.iceServers is not None and servers.iceServers[0].username == "u"
