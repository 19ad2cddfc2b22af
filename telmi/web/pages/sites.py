"""« Sites de la région »: activity per facility, the quiet sites and the shaded map.

Regional and admin users; aggregates only (telmi/sites.py), the map drawn on the server.
"""

from __future__ import annotations

from aiohttp import web
from markupsafe import Markup

from telmi import sites
from telmi.keys import DB, SETTINGS
from telmi.labels import label
from telmi.models import Role
from telmi.web.access import request_context, roles
from telmi.web.pages import charts
from telmi.web.render import render


@roles(Role.REGIONAL, Role.ADMIN)
async def overview(request: web.Request) -> web.Response:
    ctx = request_context(request)
    async with request.app[DB].read() as session:
        view = await sites.overview(session, ctx, tz=request.app[SETTINGS].tz)
    step = sites.areas_step(view.departements)
    return render(
        request,
        "sites.html",
        {
            "view": view,
            "map": Markup(sites.map_svg(view, step)),  # noqa: S704 - built from escaped parts
            "legend": sites.legend(step),
            "quiet_days": sites.QUIET_DAYS,
            "category": label,
            "number": charts.number,
            "located": sum(1 for s in view.sites if s.latitude is not None),
        },
    )
