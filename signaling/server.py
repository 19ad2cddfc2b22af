"""The aiohttp WebSocket endpoint of the signaling protocol.

One socket is one participant's connection. Everything it sends is checked: the Origin
before the upgrade, a `join` first (authorised by the application's callback, or by a
resume token while the participant's place is kept), then every frame for its shape, its
rate and the sender's place in the room. A bad frame gets an `error` frame and the socket
stays usable; frames over the size limit close it with 1009 (aiohttp does that); binary
frames are refused. Compression is off: SDP is small and deflate costs memory per socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import WSMsgType, web

from signaling import protocol
from signaling.rooms import Grant, JoinRefused, Participant, Room, RoomRegistry

POLICY_VIOLATION = 1008


class AuthError(Exception):
    """Raised by the application's authorise callback; the code goes back to the client."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


Authorize = Callable[[str, str], Awaitable[Grant]]


# Before the upgrade, refusals use the HTTP error shape of the application's API.
ORIGIN_REFUSED = {
    "error": {
        "code": "origin_not_allowed",
        "message": "This page's origin may not open the signaling socket.",
    }
}


@dataclass(frozen=True)
class Limits:
    allowed_origins: frozenset[str]
    heartbeat_seconds: float = 20.0
    join_timeout_seconds: float = 10.0
    messages_per_second: float = 40.0
    burst: int = 80
    max_frame_bytes: int = protocol.MAX_FRAME_BYTES
    # With TURN credentials, a fresh `ice-servers` frame before they expire.
    ice_refresh_seconds: float | None = None


class TokenBucket:
    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, float(burst)
        self.tokens, self.at = float(burst), time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class SignalingServer:
    def __init__(self, registry: RoomRegistry, authorize: Authorize, limits: Limits) -> None:
        self.registry = registry
        self.authorize = authorize
        self.limits = limits
        self.sockets: weakref.WeakSet[web.WebSocketResponse] = weakref.WeakSet()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Origin") not in self.limits.allowed_origins:
            return web.json_response(ORIGIN_REFUSED, status=403)
        room_id = request.match_info["room_id"]
        ws = web.WebSocketResponse(
            heartbeat=self.limits.heartbeat_seconds,
            max_msg_size=self.limits.max_frame_bytes,
            compress=False,
        )
        await ws.prepare(request)
        self.sockets.add(ws)
        try:
            joined = await self._join(ws, room_id)
            if joined is not None:
                await self._serve(ws, *joined)
        finally:
            if not ws.closed:
                await ws.close()
        return ws

    async def _refuse(self, ws: web.WebSocketResponse, code: str, message: str) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.send_str(protocol.error(code, message))
        await ws.close(code=POLICY_VIOLATION, message=code.encode())

    async def _join(
        self, ws: web.WebSocketResponse, room_id: str
    ) -> tuple[Room, Participant, Callable[[], None]] | None:
        try:
            msg = await ws.receive(timeout=self.limits.join_timeout_seconds)
        except TimeoutError:
            await self._refuse(ws, protocol.UNAUTHORIZED, "send join first")
            return None
        if msg.type != WSMsgType.TEXT:
            if msg.type == WSMsgType.BINARY:
                await self._refuse(ws, protocol.BAD_MESSAGE, "binary frames are not accepted")
            return None
        try:
            message = protocol.parse(msg.data)
        except protocol.ProtocolError as exc:
            await self._refuse(ws, exc.code, exc.message)
            return None
        if not isinstance(message, protocol.Join):
            await self._refuse(ws, protocol.UNAUTHORIZED, "send join first")
            return None
        returning = self.registry.resumable(room_id, message.resume) if message.resume else None
        try:
            grant = returning.grant if returning else await self.authorize(room_id, message.token)
            if grant.room_id != room_id:
                raise AuthError(protocol.UNAUTHORIZED, "this token is for another room")
            room, participant, back = self.registry.admit_socket(grant)
        except (AuthError, JoinRefused) as exc:
            await self._refuse(ws, exc.code, exc.message)
            return None

        async def deliver(frame: str) -> None:
            if not ws.closed:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await ws.send_str(frame)

        unsubscribe = self.registry.bus.subscribe(
            self.registry.channel(room.id, participant.id), deliver
        )

        async def replaced() -> None:
            await ws.close(code=4000, message=b"replaced")

        await self.registry.attach(room, participant, ws, replaced, back)
        return room, participant, unsubscribe

    async def _serve(
        self,
        ws: web.WebSocketResponse,
        room: Room,
        participant: Participant,
        unsubscribe: Callable[[], None],
    ) -> None:
        bucket = TokenBucket(self.limits.messages_per_second, self.limits.burst)
        refused = 0
        left = False
        refresher = (
            asyncio.create_task(self._refresh_ice(ws, participant, self.limits.ice_refresh_seconds))
            if self.limits.ice_refresh_seconds
            else None
        )
        try:
            async for msg in ws:
                if msg.type == WSMsgType.BINARY:
                    await ws.send_str(
                        protocol.error(protocol.BAD_MESSAGE, "binary frames are not accepted")
                    )
                    continue
                if msg.type != WSMsgType.TEXT:
                    continue
                if not bucket.take():
                    refused += 1
                    await ws.send_str(
                        protocol.error(protocol.RATE_LIMITED, "too many messages; slow down")
                    )
                    if refused > self.limits.burst:
                        await ws.close(code=POLICY_VIOLATION, message=b"rate_limited")
                    continue
                if participant.id not in room.participants:
                    await self._refuse(ws, protocol.NOT_IN_ROOM, "you are no longer in this room")
                    break
                try:
                    left = await self._dispatch(ws, room, participant, protocol.parse(msg.data))
                except protocol.ProtocolError as exc:
                    await ws.send_str(protocol.error(exc.code, exc.message))
                if left:
                    break
        finally:
            if refresher is not None:
                refresher.cancel()
            unsubscribe()
            if left:
                await ws.close()
            else:
                await self.registry.detach(room, participant, ws)

    async def _refresh_ice(
        self, ws: web.WebSocketResponse, participant: Participant, every: float
    ) -> None:
        while not ws.closed:
            await asyncio.sleep(every)
            servers = self.registry.welcome(participant).get("ice_servers", [])
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.send_str(protocol.encode("ice-servers", ice_servers=servers))

    async def _dispatch(
        self,
        ws: web.WebSocketResponse,
        room: Room,
        participant: Participant,
        message: protocol.ClientMessage,
    ) -> bool:
        """Act on one frame; True when the participant left."""
        registry = self.registry
        if isinstance(message, protocol.Relay):
            await registry.relay(room, participant, message)
        elif isinstance(message, protocol.Ping):
            await ws.send_str(protocol.encode("pong", id=message.id))
        elif isinstance(message, protocol.Update):
            await registry.update(room, participant, message.state)
        elif isinstance(message, protocol.Admit):
            await registry.admit(room, participant, message.participant_id)
        elif isinstance(message, protocol.Deny):
            await registry.deny(room, participant, message.participant_id)
        elif isinstance(message, protocol.Leave):
            await registry.leave(room, participant)
            return True
        elif isinstance(message, protocol.Join):
            raise protocol.ProtocolError(protocol.BAD_MESSAGE, "already joined")
        return False

    async def close_all(self) -> None:
        """On shutdown: close every socket (clients reconnect to another process)."""
        for ws in list(self.sockets):
            with contextlib.suppress(Exception):
                await ws.close(code=1001, message=b"server shutdown")
