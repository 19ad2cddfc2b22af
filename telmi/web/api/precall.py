"""JSON: the pre-call test. The browser's offer is answered by a server-side echo peer."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from telmi.errors import TelmiError, ValidationError
from telmi.models import Role
from telmi.web.access import roles
from telmi.web.api import spec
from telmi.web.http import read_json
from telmi.web.rooms import ECHO


class EchoBusy(TelmiError):
    status = 503
    code = "echo_busy"
    message = "Trop de tests vidéo en cours. Réessayez dans une minute."


@roles(Role.STAFF, Role.SPECIALIST, Role.ADMIN)
async def offer(request: web.Request) -> web.Response:
    body = await read_json(request)
    sdp = body.get("sdp")
    if body.get("type") != "offer" or not isinstance(sdp, str) or not 10 < len(sdp) < 48_000:
        raise ValidationError("Une offre SDP est attendue : {type: offer, sdp}.", field="sdp")
    try:
        answer = await request.app[ECHO].answer(sdp)
    except OverflowError:
        raise EchoBusy() from None
    except ValueError as exc:
        raise ValidationError(f"Offre SDP illisible : {str(exc)[:120]}", field="sdp") from None
    return web.json_response({"type": "answer", "sdp": answer})


OPENAPI_SCHEMAS: dict[str, Any] = {}
OPENAPI_PATHS: dict[str, Any] = {
    "/api/precall/offer": {
        "post": spec.fragment(
            "Pre-call test: answer the browser's offer with an echo peer (complete ICE in the SDP)",
            "precallOffer",
            {
                "200": spec.ok(
                    "The echo peer's answer",
                    {
                        "type": "object",
                        "properties": {"type": {"type": "string"}, "sdp": {"type": "string"}},
                    },
                ),
                "403": spec.FORBIDDEN,
                "422": spec.error("Not an SDP offer"),
                "503": spec.error("Too many tests at once"),
            },
            body={
                "type": "object",
                "required": ["type", "sdp"],
                "properties": {"type": {"const": "offer"}, "sdp": {"type": "string"}},
            },
            unsafe=True,
        )
    }
}
