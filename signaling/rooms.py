"""Rooms and their participants: presence, the lobby, reconnection within a grace period.

The registry decides; sockets only carry frames. A participant is a person in a room (one
per identity), not a socket: a dropped socket leaves the participant `reconnecting` for the
grace period, the frames meant for it kept in order, and a socket that comes back with the
resume token (or the same identity) takes the participant over with the same id. Frames go
out through the bus, on the participant's own channel.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from signaling import protocol
from signaling.bus import Bus

WAITING, CONNECTED, RECONNECTING = "waiting", "connected", "reconnecting"
MAX_WAITING = 10


@dataclass(frozen=True)
class Grant:
    """What the application decided about a join token."""

    room_id: str
    identity: str  # one per person: a second join of the same identity replaces the first
    role: str
    name: str
    host: bool = False  # admits and denies guests
    lobby: bool = False  # waits in the lobby until a host admits them


class JoinRefused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Observer(Protocol):
    """The application's view of presence (join and leave times, consultation start)."""

    async def present(self, room_id: str, participant: Participant) -> None: ...

    async def gone(self, room_id: str, participant: Participant, reason: str) -> None: ...


@dataclass(eq=False)
class Participant:
    id: str
    grant: Grant
    seq: int
    resume_token: str
    state: str
    media: dict[str, bool] = field(default_factory=dict)
    missed: deque[str] = field(default_factory=lambda: deque(maxlen=500))
    socket: object | None = None  # the attached socket's identity, None while away
    close_socket: Callable[[], Awaitable[None]] | None = None
    grace: asyncio.TimerHandle | None = None

    def info(self) -> dict[str, Any]:
        return {
            "participant_id": self.id,
            "name": self.grant.name,
            "role": self.grant.role,
            "state": self.state,
            "seq": self.seq,
            "media": dict(self.media),
        }


@dataclass(eq=False)
class Room:
    id: str
    participants: dict[str, Participant] = field(default_factory=dict)
    next_seq: int = 1

    def members(self) -> list[Participant]:
        return [p for p in self.participants.values() if p.state != WAITING]

    def hosts(self) -> list[Participant]:
        return [p for p in self.members() if p.grant.host]


Welcome = Callable[[Participant], dict[str, Any]]


class RoomRegistry:
    def __init__(
        self,
        bus: Bus,
        *,
        max_participants: int = 5,
        grace_seconds: float = 20.0,
        welcome: Welcome = lambda _: {},
        observer: Observer | None = None,
    ) -> None:
        self.bus = bus
        self.max_participants = max_participants
        self.grace_seconds = grace_seconds
        self.welcome = welcome
        self.observer = observer
        self.rooms: dict[str, Room] = {}
        self.closed: set[str] = set()

    # --- delivery -------------------------------------------------------------------------------

    @staticmethod
    def channel(room_id: str, participant_id: str) -> str:
        return f"room:{room_id}:{participant_id}"

    async def send(self, room: Room, participant: Participant, frame: str) -> None:
        if participant.socket is None:
            participant.missed.append(frame)
            return
        await self.bus.publish(self.channel(room.id, participant.id), frame)

    async def _broadcast(self, room: Room, frame: str, *, skip: Participant | None = None) -> None:
        for other in room.members():
            if other is not skip:
                await self.send(room, other, frame)

    # --- joining --------------------------------------------------------------------------------

    def resumable(self, room_id: str, resume_token: str) -> Participant | None:
        """The participant a resume token belongs to, while it still has its place."""
        room = self.rooms.get(room_id)
        if room is None:
            return None
        for p in room.participants.values():
            if secrets.compare_digest(p.resume_token, resume_token):
                return p
        return None

    def admit_socket(self, grant: Grant) -> tuple[Room, Participant, bool]:
        """Find or create the participant a new socket speaks for; True if it is a return
        (the same identity is already here: reconnecting, or joining from a second tab)."""
        if grant.room_id in self.closed:
            raise JoinRefused(protocol.ROOM_CLOSED, "this consultation has ended")
        room = self.rooms.setdefault(grant.room_id, Room(grant.room_id))
        for p in room.participants.values():
            if p.grant.identity == grant.identity:
                if p.grace is not None:
                    p.grace.cancel()
                    p.grace = None
                return room, p, True
        if grant.lobby:
            if sum(p.state == WAITING for p in room.participants.values()) >= MAX_WAITING:
                raise JoinRefused(protocol.ROOM_FULL, "too many people are waiting")
            state = WAITING
        else:
            if len(room.members()) >= self.max_participants:
                raise JoinRefused(
                    protocol.ROOM_FULL, f"a room holds {self.max_participants} participants"
                )
            state = CONNECTED
        participant = Participant(
            id=secrets.token_urlsafe(9),
            grant=grant,
            seq=room.next_seq,
            resume_token=secrets.token_urlsafe(24),
            state=state,
        )
        room.next_seq += 1
        room.participants[participant.id] = participant
        return room, participant, False

    async def attach(
        self,
        room: Room,
        participant: Participant,
        socket: object,
        close_socket: Callable[[], Awaitable[None]],
        returning: bool,
    ) -> None:
        """The socket now speaks for the participant: greet it and tell the others."""
        previous = participant.close_socket if participant.socket is not None else None
        participant.socket, participant.close_socket = socket, close_socket
        if previous is not None:
            await previous()  # the same person joined again: the old socket goes
        if participant.state == WAITING:
            await self.send(
                room, participant, protocol.encode("waiting", participant_id=participant.id)
            )
            if not returning:
                knock = protocol.encode("knock", **participant.info())
                for host in room.hosts():
                    await self.send(room, host, knock)
            return
        was_away = participant.state == RECONNECTING
        participant.state = CONNECTED
        if not returning and self.observer is not None:
            await self.observer.present(room.id, participant)  # recorded before announced
        await self._greet(room, participant)
        missed = list(participant.missed)
        participant.missed.clear()
        for frame in missed:
            await self.send(room, participant, frame)
        if returning:
            if was_away:
                await self._broadcast(
                    room,
                    protocol.encode("participant-updated", **participant.info()),
                    skip=participant,
                )
            return
        await self._broadcast(
            room, protocol.encode("participant-joined", **participant.info()), skip=participant
        )

    async def _greet(self, room: Room, participant: Participant) -> None:
        others = [p.info() for p in room.members() if p is not participant]
        waiting = (
            [p.info() for p in room.participants.values() if p.state == WAITING]
            if participant.grant.host
            else []
        )
        await self.send(
            room,
            participant,
            protocol.encode(
                "joined",
                participant_id=participant.id,
                resume_token=participant.resume_token,
                role=participant.grant.role,
                polite=any(p.seq < participant.seq for p in room.members() if p is not participant),
                seq=participant.seq,
                participants=others,
                waiting=waiting,
                **self.welcome(participant),
            ),
        )

    # --- leaving --------------------------------------------------------------------------------

    async def detach(self, room: Room, participant: Participant, socket: object) -> None:
        """The socket closed without `leave`: keep the place for the grace period."""
        if participant.socket is not socket or participant.id not in room.participants:
            return  # replaced by a newer socket, or already gone
        participant.socket = participant.close_socket = None
        if participant.state == WAITING:
            await self._remove(room, participant, "left")
            return
        participant.state = RECONNECTING
        await self._broadcast(
            room, protocol.encode("participant-updated", **participant.info()), skip=participant
        )
        loop = asyncio.get_running_loop()
        participant.grace = loop.call_later(
            self.grace_seconds, lambda: loop.create_task(self._expire(room, participant))
        )

    async def _expire(self, room: Room, participant: Participant) -> None:
        if participant.state == RECONNECTING and participant.id in room.participants:
            await self._remove(room, participant, "timeout")

    async def leave(self, room: Room, participant: Participant, reason: str = "left") -> None:
        await self._remove(room, participant, reason)

    async def _remove(self, room: Room, participant: Participant, reason: str) -> None:
        if room.participants.pop(participant.id, None) is None:
            return
        if participant.grace is not None:
            participant.grace.cancel()
        was_member = participant.state != WAITING
        participant.state = "left"
        frame = protocol.encode("participant-left", participant_id=participant.id, reason=reason)
        if was_member:
            await self._broadcast(room, frame)
            if self.observer is not None:
                await self.observer.gone(room.id, participant, reason)
        else:
            for host in room.hosts():
                await self.send(room, host, frame)
        if not room.participants:
            self.rooms.pop(room.id, None)

    # --- in the room ----------------------------------------------------------------------------

    def _member(self, room: Room, participant: Participant) -> None:
        if participant.id not in room.participants or participant.state == WAITING:
            raise protocol.ProtocolError(protocol.NOT_IN_ROOM, "you are not in this room")

    async def relay(self, room: Room, sender: Participant, message: protocol.Relay) -> None:
        self._member(room, sender)
        target = room.participants.get(message.to)
        if target is None or target.state == WAITING or target is sender:
            raise protocol.ProtocolError(
                protocol.UNKNOWN_PARTICIPANT, "no such participant in this room"
            )
        await self.send(
            room, target, protocol.encode(message.type, **{"from": sender.id}, **message.payload)
        )

    async def update(self, room: Room, participant: Participant, state: dict[str, bool]) -> None:
        self._member(room, participant)
        participant.media.update(state)
        await self._broadcast(
            room, protocol.encode("participant-updated", **participant.info()), skip=participant
        )

    def _waiting(self, room: Room, host: Participant, participant_id: str) -> Participant:
        self._member(room, host)
        if not host.grant.host:
            raise protocol.ProtocolError(protocol.FORBIDDEN, "only the specialist admits or denies")
        guest = room.participants.get(participant_id)
        if guest is None or guest.state != WAITING:
            raise protocol.ProtocolError(
                protocol.UNKNOWN_PARTICIPANT, "nobody by that id is waiting"
            )
        return guest

    async def admit(self, room: Room, host: Participant, participant_id: str) -> None:
        guest = self._waiting(room, host, participant_id)
        if len(room.members()) >= self.max_participants:
            raise protocol.ProtocolError(
                protocol.ROOM_FULL, f"a room holds {self.max_participants} participants"
            )
        guest.state = CONNECTED
        if self.observer is not None:
            await self.observer.present(room.id, guest)
        if guest.socket is None:
            guest.state = RECONNECTING
        else:
            await self._greet(room, guest)
        await self._broadcast(
            room, protocol.encode("participant-joined", **guest.info()), skip=guest
        )

    async def deny(self, room: Room, host: Participant, participant_id: str) -> None:
        guest = self._waiting(room, host, participant_id)
        await self.send(
            room, guest, protocol.error(protocol.DENIED, "the specialist did not admit you")
        )
        close = guest.close_socket
        await self._remove(room, guest, "denied")
        if close is not None:
            await close()

    async def close_room(self, room_id: str) -> None:
        """End the room for everyone (the consultation ended); later joins are refused."""
        self.closed.add(room_id)
        room = self.rooms.pop(room_id, None)
        if room is None:
            return
        for participant in list(room.participants.values()):
            if participant.grace is not None:
                participant.grace.cancel()
            await self.send(
                room,
                participant,
                protocol.error(protocol.ROOM_CLOSED, "the consultation has ended"),
            )
            if participant.close_socket is not None:
                await participant.close_socket()
        room.participants.clear()
