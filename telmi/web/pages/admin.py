"""Administration: accounts and the facility directory."""

from __future__ import annotations

from aiohttp import web

from telmi import accounts, facilities
from telmi.keys import DB
from telmi.models import Role
from telmi.web.access import current_user, roles
from telmi.web.render import render


@roles(Role.ADMIN)
async def admin(request: web.Request) -> web.Response:
    async with request.app[DB].read() as session:
        users = await accounts.list_users(session)
        directory = await facilities.list_facilities(session, current_user(request))
        specialties = await facilities.list_specialties(session)
    context = {"users": users, "facilities": directory, "specialties": specialties}
    return render(request, "admin.html", context)
