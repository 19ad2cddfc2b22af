"""JSON: the pre-call test. The browser's offer is answered by a server-side echo peer."""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web
from pydantic import Field

from telmi.errors import Throttled, ValidationError
from telmi.models import Role
from telmi.values import Body
from telmi.web.access import roles
from telmi.web.api.spec import Out, endpoint
from telmi.web.rooms import ECHO


class SdpOffer(Body):
    """The browser's offer, its ICE candidates gathered (no trickle)."""

    type: Literal["offer"]
    sdp: str = Field(
        min_length=11,
        max_length=47_999,
        pattern=r"^v=0\r?\n(?:[\s\S]*\n)?m=[\s\S]*$",
        description="SDP with its media lines, ICE complete",
    )


class SdpAnswer(Out):
    """The echo peer's answer (complete ICE in the SDP)"""

    type: Literal["answer"]
    sdp: str


class EchoBusy(Throttled):
    """Every echo peer is taken: the caller retries in a minute (429 with Retry-After), the
    server itself is fine."""

    code = "echo_busy"
    message = "Trop de tests vidéo en cours. Réessayez dans une minute."

    def __init__(self) -> None:
        super().__init__(60, self.message)


@roles(Role.STAFF, Role.SPECIALIST, Role.ADMIN)
@endpoint(
    "Pre-call test: answer the browser's offer with an echo peer (complete ICE in the SDP)",
    "precallOffer",
    body=SdpOffer,
    response=SdpAnswer,
    errors={429: "echo_busy: every echo peer is in use; Retry-After says when to retry"},
)
async def offer(request: web.Request, body: SdpOffer) -> dict[str, Any]:
    try:
        answer = await request.app[ECHO].answer(body.sdp)
    except OverflowError:
        raise EchoBusy() from None
    except Exception as exc:  # the parser's refusals are ValueError, AssertionError and more
        raise ValidationError(f"Offre SDP illisible : {str(exc)[:120]}", field="sdp") from None
    return {"type": "answer", "sdp": answer}
