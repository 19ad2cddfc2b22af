"""Server-side and test-side WebRTC peers, on aiortc.

aiortc cannot roll back an offer, does not trickle its own candidates (they are in its SDP
once gathering ends) and has no ICE restart; so:
- the echo peer is always the answerer, and a failed session is replaced by a new one;
- the room client offers only to participants who were there before it (the newcomer
  offers, the others answer), which keeps two aiortc clients out of glare;
- ICE servers are always passed explicitly, empty when none are configured, or aiortc falls
  back to a public STUN server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack
from aiortc.sdp import candidate_from_sdp


def rtc_configuration(ice_servers: Sequence[dict[str, Any]]) -> RTCConfiguration:
    servers = [
        RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
        for s in ice_servers
    ]
    return RTCConfiguration(iceServers=servers)


# --- the echo peer (pre-call test) --------------------------------------------------------------


class EchoPeers:
    """Answers a browser's offer with a peer that sends its camera and microphone back and
    echoes datachannel messages (the page measures round-trip time with them)."""

    def __init__(
        self, ice_servers: Sequence[dict[str, Any]] = (), *, limit: int = 4, lifetime: float = 120.0
    ) -> None:
        self.ice_servers = list(ice_servers)
        self.limit = limit
        self.lifetime = lifetime
        self.peers: set[RTCPeerConnection] = set()
        self.relay = MediaRelay()

    async def answer(self, offer_sdp: str) -> str:
        if len(self.peers) >= self.limit:
            raise OverflowError("too many echo sessions at once")
        pc = RTCPeerConnection(rtc_configuration(self.ice_servers))
        self.peers.add(pc)

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            pc.addTrack(self.relay.subscribe(track))

        @pc.on("datachannel")
        def on_datachannel(channel: RTCDataChannel) -> None:
            @channel.on("message")
            def on_message(message: Any) -> None:
                channel.send(message)

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                await self._close(pc)

        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception:
            await self._close(pc)
            raise
        asyncio.get_running_loop().call_later(
            self.lifetime, lambda: asyncio.ensure_future(self._close(pc))
        )
        return str(pc.localDescription.sdp)

    async def _close(self, pc: RTCPeerConnection) -> None:
        if pc in self.peers:
            self.peers.discard(pc)
            await pc.close()

    async def close(self) -> None:
        for pc in list(self.peers):
            await self._close(pc)


# --- a room participant on aiortc (tests, benchmarks, `telmi probe`) ----------------------------


@dataclass
class Remote:
    participant_id: str
    pc: RTCPeerConnection
    frames: dict[str, int] = field(default_factory=lambda: {"video": 0, "audio": 0})
    messages: list[str] = field(default_factory=list)
    channel: RTCDataChannel | None = None


class RoomClient:
    """Joins a room over the signaling protocol and meets every other participant in a mesh,
    sending a synthetic camera and microphone and a datachannel."""

    def __init__(self, url: str, token: str, *, origin: str, media: bool = True) -> None:
        self.url, self.token, self.origin, self.media = url, token, origin, media
        self.session: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.participant_id = ""
        self.ice_servers: list[dict[str, Any]] = []
        self.remotes: dict[str, Remote] = {}
        self.frames: list[dict[str, Any]] = []
        self.connected = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self._consumers: set[asyncio.Task[None]] = set()

    async def join(self, timeout: float = 10.0) -> dict[str, Any]:
        self.session = aiohttp.ClientSession()
        self.ws = await self.session.ws_connect(self.url, origin=self.origin)
        await self.ws.send_str(json.dumps({"type": "join", "token": self.token}))
        while True:
            msg = await self.ws.receive(timeout=timeout)
            if msg.type != aiohttp.WSMsgType.TEXT:
                raise ConnectionError(f"room refused the join: {msg.type} {msg.extra}")
            frame = json.loads(msg.data)
            self.frames.append(frame)
            if frame["type"] == "error":
                raise ConnectionError(f"{frame['code']}: {frame['message']}")
            if frame["type"] in ("joined", "waiting"):
                break
        self._reader = asyncio.create_task(self._read())
        if frame["type"] == "joined":
            await self._welcomed(frame)
        return frame  # type: ignore[no-any-return]

    async def _welcomed(self, frame: dict[str, Any]) -> None:
        self.participant_id = frame["participant_id"]
        self.ice_servers = frame.get("ice_servers", [])
        for other in frame["participants"]:
            await self._offer(other["participant_id"])

    def _peer(self, participant_id: str) -> Remote:
        if participant_id in self.remotes:
            return self.remotes[participant_id]
        pc = RTCPeerConnection(rtc_configuration(self.ice_servers))
        remote = Remote(participant_id, pc)
        self.remotes[participant_id] = remote

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            task = asyncio.create_task(self._consume(remote, track))
            self._consumers.add(task)
            task.add_done_callback(self._consumers.discard)

        @pc.on("datachannel")
        def on_datachannel(channel: RTCDataChannel) -> None:
            self._listen(remote, channel)

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc.connectionState == "connected":
                self.connected.set()

        if self.media:
            pc.addTrack(VideoStreamTrack())
            pc.addTrack(AudioStreamTrack())
        return remote

    def _listen(self, remote: Remote, channel: RTCDataChannel) -> None:
        remote.channel = channel

        @channel.on("message")
        def on_message(message: Any) -> None:
            remote.messages.append(str(message))

    async def _consume(self, remote: Remote, track: MediaStreamTrack) -> None:
        with contextlib.suppress(Exception):
            while True:
                await track.recv()
                remote.frames[track.kind] += 1

    async def _send(self, **frame: Any) -> None:
        assert self.ws is not None
        await self.ws.send_str(json.dumps(frame))

    async def _offer(self, participant_id: str) -> None:
        remote = self._peer(participant_id)
        self._listen(remote, remote.pc.createDataChannel("chat"))
        await remote.pc.setLocalDescription(await remote.pc.createOffer())
        await self._send(type="offer", to=participant_id, sdp=remote.pc.localDescription.sdp)

    async def _read(self) -> None:
        assert self.ws is not None
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            frame = json.loads(msg.data)
            self.frames.append(frame)
            kind = frame["type"]
            if kind == "joined":  # admitted from the lobby
                await self._welcomed(frame)
            elif kind == "offer":
                remote = self._peer(frame["from"])
                await remote.pc.setRemoteDescription(RTCSessionDescription(frame["sdp"], "offer"))
                await remote.pc.setLocalDescription(await remote.pc.createAnswer())
                await self._send(
                    type="answer", to=frame["from"], sdp=remote.pc.localDescription.sdp
                )
            elif kind == "answer" and frame["from"] in self.remotes:
                await self.remotes[frame["from"]].pc.setRemoteDescription(
                    RTCSessionDescription(frame["sdp"], "answer")
                )
            elif kind == "candidate" and frame["from"] in self.remotes and frame.get("candidate"):
                c = frame["candidate"]
                candidate = candidate_from_sdp(c["candidate"].removeprefix("candidate:"))
                candidate.sdpMid, candidate.sdpMLineIndex = c.get("sdpMid"), c.get("sdpMLineIndex")
                await self.remotes[frame["from"]].pc.addIceCandidate(candidate)
            elif kind == "participant-left" and frame["participant_id"] in self.remotes:
                await self.remotes.pop(frame["participant_id"]).pc.close()

    async def wait_for(self, kind: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            for frame in self.frames[seen:]:
                if frame["type"] == kind:
                    return frame
            seen = len(self.frames)
            await asyncio.sleep(0.02)
        raise TimeoutError(f"no {kind} frame within {timeout} s")

    async def send_raw(self, **frame: Any) -> None:
        await self._send(**frame)

    async def close(self) -> None:
        for task in list(self._consumers):
            task.cancel()
        for remote in self.remotes.values():
            await remote.pc.close()
        if self._reader is not None:
            self._reader.cancel()
        if self.ws is not None:
            await self.ws.close()
        if self.session is not None:
            await self.session.close()
