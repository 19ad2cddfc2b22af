"""The resident a booking or a tele-expertise request is for, chosen in a <select>.

Only what those two forms need: the facility's residents, by display name, each with its
reference (`_resident_select.html` draws them). Residents are created and edited on their
own pages; a richer picker (search, the resident's identity status) can replace `choices`
without the forms changing, as long as it posts `patient_id`.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from telmi import patients
from telmi.keys import DB, SETTINGS
from telmi.web.access import request_context


@dataclass(frozen=True)
class Choice:
    id: int
    label: str  # « MARTIN Jeanne », or the reference alone when no name is known


def label(resident: patients.Resident) -> str:
    if resident.used_name or resident.birth_name:
        return f"{resident.display_name} ({resident.reference})"
    return resident.reference


async def choices(request: web.Request) -> list[Choice]:
    """The caller's facility's residents (listing them is an access event: a write)."""
    ctx, vault = request_context(request), request.app[SETTINGS].vault
    residents = await request.app[DB].run_write(
        lambda session: patients.list_residents(session, ctx, vault=vault)
    )
    return [Choice(r.id, label(r)) for r in residents]
