"""Video pages: « Tester ma vidéo », the consultation room, a guest's invitation."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from telmi import booking, form_versions, patients
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
    vault = request.app[SETTINGS].vault

    async def work(s: AsyncSession) -> tuple[Any, Any, Any]:
        found = await booking.get_booking(s, ctx, booking_id)
        resident = (
            await patients.get(s, ctx, found.patient_id, vault=vault) if found.patient_id else None
        )
        asked = await form_versions.by_id(s, found.form_id) if found.form_id else None
        return found, resident, asked

    found, resident, asked = await request.app[DB].run_write(work)
    role = "specialist" if user.role is Role.SPECIALIST else "staff"
    context = {
        "booking": found,
        "resident": resident,
        "asked": asked,
        "today": ctx.now.astimezone(request.app[SETTINGS].tz).date(),
        "mode": "member",
        "role": role,
    }
    return render(request, "room.html", context)


@public
async def invitation(request: web.Request) -> web.Response:
    return render(request, "room.html", {"booking": None, "mode": "guest", "role": "guest"})
