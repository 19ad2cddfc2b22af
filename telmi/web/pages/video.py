"""Video pages: « Tester ma vidéo », the consultation room, a guest's invitation."""

from __future__ import annotations

import json

from aiohttp import web

from telmi import booking
from telmi.keys import DB, SETTINGS
from telmi.models import Role
from telmi.web.access import current_user, public, request_context, roles
from telmi.web.http import path_id
from telmi.web.render import render


@roles(Role.STAFF, Role.SPECIALIST, Role.ADMIN)
async def test_video(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    stun = [{"urls": list(settings.stun_urls)}] if settings.stun_urls else []
    return render(request, "test_video.html", {"ice_servers": json.dumps(stun)})


@roles(Role.STAFF, Role.SPECIALIST)
async def room(request: web.Request) -> web.Response:
    user = current_user(request)
    booking_id = path_id(request, "booking_id")
    ctx = request_context(request)
    found = await request.app[DB].run_write(lambda s: booking.get_booking(s, ctx, booking_id))
    role = "specialist" if user.role is Role.SPECIALIST else "staff"
    return render(request, "room.html", {"booking": found, "mode": "member", "role": role})


@public
async def invitation(request: web.Request) -> web.Response:
    return render(request, "room.html", {"booking": None, "mode": "guest", "role": "guest"})
