"""The landing page after login: what this role can do here."""

from __future__ import annotations

from aiohttp import web

from telmi.keys import DB
from telmi.models import Facility, Specialty
from telmi.web.access import authenticated, current_user
from telmi.web.render import render


@authenticated
async def home(request: web.Request) -> web.Response:
    user = current_user(request)
    async with request.app[DB].read() as session:
        facility = await session.get(Facility, user.facility_id) if user.facility_id else None
        specialty = await session.get(Specialty, user.specialty_id) if user.specialty_id else None
    return render(request, "home.html", {"facility": facility, "specialty": specialty})
