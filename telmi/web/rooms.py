"""Wiring the signaling library into the app: tokens, presence, ICE servers, the socket route.

`signaling` knows nothing of Telmi; here Telmi hands it what it needs: a callback that checks
a join token, an observer that records presence (and so the consultation's start), and the
ICE servers each participant gets.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from signaling.bus import InProcessBus
from signaling.peers import EchoPeers
from signaling.rooms import Grant, Participant, RoomRegistry
from signaling.server import Limits, SignalingServer
from signaling.turn import ice_servers
from telmi import consultations, join_tokens
from telmi.keys import CLOCK, DB, SETTINGS
from telmi.web.access import public

log = logging.getLogger(__name__)

SIGNALING = web.AppKey("signaling", SignalingServer)
ECHO = web.AppKey("echo", EchoPeers)


class PresenceLog:
    """Join and leave times in the database; a failure here never breaks a call."""

    def __init__(self, app: web.Application) -> None:
        self.app = app

    async def present(self, room_id: str, participant: Participant) -> None:
        now = self.app[CLOCK].now()
        try:
            await self.app[DB].run_write(
                lambda s: consultations.record_presence(
                    s, room_id, participant.grant.identity, participant.grant.role, now=now
                )
            )
        except Exception:
            log.exception("could not record presence in a room")

    async def gone(self, room_id: str, participant: Participant, reason: str) -> None:
        now = self.app[CLOCK].now()
        try:
            await self.app[DB].run_write(
                lambda s: consultations.record_absence(
                    s, room_id, participant.grant.identity, now=now
                )
            )
        except Exception:
            log.exception("could not record a departure from a room")


def signaling_context(app: web.Application) -> AsyncIterator[None]:
    async def context(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]

        def welcome(participant: Participant) -> dict[str, object]:
            return {
                "ice_servers": ice_servers(
                    stun_urls=settings.stun_urls,
                    turn_urls=settings.turn_urls,
                    turn_secret=settings.turn_secret or None,
                    participant_id=participant.id,
                    now=app[CLOCK].now().timestamp(),
                    ttl_seconds=settings.turn_ttl_seconds,
                ),
                "ping_interval": 20,
            }

        async def authorize(room_id: str, token: str) -> Grant:
            now = app[CLOCK].now()
            return join_tokens.verify(token, settings.secret_key, room_id=room_id, now=now).grant()

        registry = RoomRegistry(
            InProcessBus(),
            max_participants=settings.max_participants,
            grace_seconds=settings.reconnect_grace_seconds,
            welcome=welcome,
            observer=PresenceLog(app),
        )
        refresh = (
            settings.turn_ttl_seconds * 0.8 if settings.turn_secret and settings.turn_urls else None
        )
        app[SIGNALING] = SignalingServer(
            registry,
            authorize,
            Limits(allowed_origins=settings.origins, ice_refresh_seconds=refresh),
        )
        stun = [{"urls": list(settings.stun_urls)}] if settings.stun_urls else []
        app[ECHO] = EchoPeers(stun)
        sweeper = asyncio.create_task(_close_ended_rooms(app))
        yield
        sweeper.cancel()
        await app[ECHO].close()

    return context(app)


async def _close_ended_rooms(app: web.Application, every: float = 30.0) -> None:
    """Close this process's rooms whose consultation has ended elsewhere (by the job that
    closes overdue consultations, perhaps in `telmi worker`, or from another process)."""
    while True:
        await asyncio.sleep(every)
        registry = app[SIGNALING].registry
        try:
            if registry.rooms:
                ended = await consultations.ended_rooms(app[DB], list(registry.rooms))
                for room_id in ended:
                    await registry.close_room(room_id)
        except Exception:
            log.exception("closing ended rooms failed; will retry")


async def close_sockets(app: web.Application) -> None:
    """On shutdown, before handlers are awaited: clients reconnect to another process."""
    if SIGNALING in app:
        await app[SIGNALING].close_all()


@public  # the join token, sent in the first frame, is the authorisation
async def room_socket(request: web.Request) -> web.StreamResponse:
    return await request.app[SIGNALING].handle(request)
